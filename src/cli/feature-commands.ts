// Subcommands contributed by features (block-*, network-*, mem, save/restore, ...).
// Each feature adds its group here; the table in commands.ts includes them.

import { storageCommands } from '../features/storage/commands.ts';
import { blockCommands } from './cmd-block.ts';
import { netCommands } from './cmd-net.ts';
import type { CommandSpec } from './command-spec.ts';
import { memoryCommands } from './memory-commands.ts';
import { quotaCommands } from './quota-commands.ts';
import { saveRestoreCommands } from './saverestore-commands.ts';
import { webCommands } from './web-commands.ts';

export const FEATURE_COMMANDS: CommandSpec[] = [
  ...memoryCommands,
  ...netCommands,
  ...webCommands,
  ...blockCommands,
  ...saveRestoreCommands,
  ...quotaCommands,
  ...storageCommands,
];
