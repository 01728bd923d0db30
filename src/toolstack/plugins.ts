// The feature plugins xenoded runs, in order. Each feature adds one line here.

import { storagePlugin } from '../features/storage/plugin.ts';
import { diskPlugin } from './disk-plugin.ts';
import { memoryPlugins } from './memory-plugins.ts';
import { metricsPlugin } from './metrics-plugin.ts';
import { netPlugin } from './net-plugin.ts';
import type { ToolstackPlugin } from './plugin.ts';
import { saveRestorePlugin } from './saverestore-plugin.ts';

export function createPlugins(): ToolstackPlugin[] {
  const storage = storagePlugin();
  // Disks get their images' chains from the storage gate that checked them.
  return [metricsPlugin(), ...memoryPlugins(), netPlugin(), storage, diskPlugin(storage.fileGate), saveRestorePlugin()];
}
