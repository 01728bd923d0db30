// The memory feature's plugins: balloon + virtio-mem control, and static_shm.

import type { ToolstackPlugin } from '../../toolstack/plugin.ts';
import { MemoryControl } from './control.ts';
import { StaticShmPlugin } from './static-shm.ts';

export function memoryPlugins(): ToolstackPlugin[] {
  return [new MemoryControl(), new StaticShmPlugin()];
}
