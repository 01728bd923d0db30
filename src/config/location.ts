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

/**
 * Control characters from user text shown as escapes, so that every message stays
 * on one line and cannot move a terminal's cursor.
 */
export function printable(s: string): string {
  let out = '';
  for (const c of s) {
    const code = c.charCodeAt(0);
    if (c === '\n') out += '\\n';
    else if (c === '\t') out += '\\t';
    else if (c === '\r') out += '\\r';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += c;
  }
  return out;
}

/** User text shortened for a message. */
export function clip(s: string, max = 60): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/** A config error; `loc` may name only the file when no line applies (e.g. a missing key). */
export function configError(message: string, loc?: SourceLocation, hint?: string): XenodeError {
  return new XenodeError('config', printable(message), {
    location: loc,
    hint: hint === undefined ? undefined : printable(hint),
  });
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
