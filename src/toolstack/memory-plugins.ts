// The memory feature's plugins: balloon + virtio-mem control, and static_shm.

import { MemoryControl } from './memory.ts';
import type { ToolstackPlugin } from './plugin.ts';
import { StaticShmPlugin } from './static-shm.ts';

export function memoryPlugins(): ToolstackPlugin[] {
  return [new MemoryControl(), new StaticShmPlugin()];
}
