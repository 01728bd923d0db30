// The feature plugins xenoded runs, in order. Each feature adds one line here.

import type { ToolstackPlugin } from './plugin.ts';

export function createPlugins(): ToolstackPlugin[] {
  return [];
}
