// Where a config value came from, and the one way this package builds errors,
// so every message a user sees carries file:line:column and a hint.

import { type SourceLocation, XenodeError } from '../errors.ts';

export interface Loc {
  file: string;
  line: number;
  column: number;
}

/** The pseudo file name for `key=value` arguments given to `create`. */
export const COMMAND_LINE = '<command line>';

/** A config error; `loc` may name only the file when no line applies (e.g. a missing key). */
export function configError(message: string, loc?: SourceLocation, hint?: string): XenodeError {
  return new XenodeError('config', message, { location: loc, hint });
}

/**
 * Spec parsers (disk, vif, static_shm, cpus) work on bare strings and do not know
 * where the string sits in the file; the caller attaches the location here.
 */
export function withLocation(err: unknown, loc: Loc): unknown {
  if (err instanceof XenodeError && err.kind === 'config' && !err.location) {
    return new XenodeError('config', err.message, { location: loc, hint: err.hint });
  }
  return err;
}

/** `file:line:col: ` prefix for warnings, matching XenodeError.format(). */
export function formatLoc(loc: Loc): string {
  return `${loc.file}:${loc.line}:${loc.column}`;
}
