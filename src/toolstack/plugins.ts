// The feature plugins xenoded runs, in order. Each feature adds one line here.

import { accountingPlugin } from '../features/accounting/plugin.ts';
import { auditPlugin } from '../features/audit/plugin.ts';
import { cloudInitPlugin } from '../features/cloudinit/plugin.ts';
import { diskPlugin } from '../features/disks/plugin.ts';
import { historyPlugin } from '../features/history/plugin.ts';
import { memoryPlugins } from '../features/memory/plugin.ts';
import { metricsPlugin } from '../features/metrics/plugin.ts';
import { netPlugin } from '../features/network/plugin.ts';
import { poolPlugin } from '../features/pool/plugin.ts';
import { qgaPlugin } from '../features/qga/plugin.ts';
import { saveRestorePlugin } from '../features/saverestore/plugin.ts';
import { schedPlugin } from '../features/sched/plugin.ts';
import { storagePlugin } from '../features/storage/plugin.ts';
import { xenstoredPlugin } from '../features/xenstored/plugin.ts';
import type { ToolstackPlugin } from './plugin.ts';

export function createPlugins(): ToolstackPlugin[] {
  const storage = storagePlugin();
  // The audit log takes the switch's flow records through the network feature.
  const net = netPlugin();
  // Disks get their images' chains from the storage gate that checked them.
  return [
    // First: its last sample of a domain reads the devices before the others' teardown releases them.
    accountingPlugin(),
    metricsPlugin(),
    historyPlugin(),
    ...memoryPlugins(),
    net,
    auditPlugin(net),
    storage,
    diskPlugin(storage.fileGate),
    saveRestorePlugin(),
    schedPlugin(),
    xenstoredPlugin(),
    cloudInitPlugin(),
    qgaPlugin(),
    poolPlugin(),
  ];
}
