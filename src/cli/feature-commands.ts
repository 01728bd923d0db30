// Subcommands contributed by features (block-*, network-*, mem, save/restore, ...).
// Each feature adds its group here; the table in commands.ts includes them.

import { accountingCommands } from '../features/accounting/commands.ts';
import { auditCommands } from '../features/audit/commands.ts';
import { blockCommands } from '../features/disks/commands.ts';
import { memoryCommands } from '../features/memory/commands.ts';
import { netCommands } from '../features/network/commands.ts';
import { poolCommands } from '../features/pool/commands.ts';
import { saveRestoreCommands } from '../features/saverestore/commands.ts';
import { schedCommands } from '../features/sched/commands.ts';
import { storageCommands } from '../features/storage/commands.ts';
import type { CommandSpec } from './command-spec.ts';
import { quotaCommands } from './quota-commands.ts';
import { webCommands } from './web-commands.ts';

export const FEATURE_COMMANDS: CommandSpec[] = [
  ...memoryCommands,
  ...netCommands,
  ...webCommands,
  ...blockCommands,
  ...saveRestoreCommands,
  ...quotaCommands,
  ...storageCommands,
  ...schedCommands,
  ...accountingCommands,
  ...auditCommands,
  ...poolCommands,
];
