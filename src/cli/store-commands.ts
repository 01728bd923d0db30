// `xenode store read|write|ls|rm|watch`, like xenstore-read/-write/-ls/-rm/-watch.

import type { CommandSpec } from './commands.ts';

export const storeCommands: CommandSpec[] = [];
