// The feature plugins xenoded runs, in order. Each feature adds one line here.

import { diskPlugin } from '../features/disks/plugin.ts';
import { memoryPlugins } from '../features/memory/plugin.ts';
import { metricsPlugin } from '../features/metrics/plugin.ts';
import { netPlugin } from '../features/network/plugin.ts';
import { saveRestorePlugin } from '../features/saverestore/plugin.ts';
import { storagePlugin } from '../features/storage/plugin.ts';
import type { ToolstackPlugin } from './plugin.ts';

export function createPlugins(): ToolstackPlugin[] {
  const storage = storagePlugin();
  // Disks get their images' chains from the storage gate that checked them.
  return [metricsPlugin(), ...memoryPlugins(), netPlugin(), storage, diskPlugin(storage.fileGate), saveRestorePlugin()];
}
