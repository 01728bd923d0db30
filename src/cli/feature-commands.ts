// Subcommands contributed by features (block-*, network-*, mem, save/restore, ...).
// Each feature adds its group here; the table in commands.ts includes them.

import type { CommandSpec } from './commands.ts';

export const FEATURE_COMMANDS: CommandSpec[] = [];
