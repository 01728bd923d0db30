// Running host tools (apt-cache, apt-get, dpkg-deb, xz, busybox) without a shell,
// so package names and paths never need quoting, with errors a user can act on.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { XenodeError } from '../src/errors.ts';

const execFileAsync = promisify(execFile);

export interface RunOptions {
  cwd?: string;
  signal?: AbortSignal;
  /** Which Debian package provides the tool, for the "not found" hint. */
  providedBy?: string;
}

/** Runs `cmd args` and returns its stdout as raw bytes (kernels are tens of MiB). */
export async function runBuffer(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<Buffer> {
  try {
    const { stdout } = await execFileAsync(cmd, args, {
      cwd: opts.cwd,
      signal: opts.signal,
      encoding: 'buffer',
      maxBuffer: 1 << 30,
      // apt prints translated messages otherwise, and we quote them back to the user.
      env: { ...process.env, LC_ALL: 'C' },
    });
    return stdout;
  } catch (e) {
    throw toolError(cmd, args, e, opts);
  }
}

export async function runText(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  return (await runBuffer(cmd, args, opts)).toString('utf8');
}

interface ExecFailure {
  code?: string | number;
  stderr?: Buffer | string;
  name?: string;
}

function toolError(cmd: string, args: readonly string[], e: unknown, opts: RunOptions): Error {
  const err = (e ?? {}) as ExecFailure;
  if (err.name === 'AbortError') return e as Error;
  if (err.code === 'ENOENT') {
    return new XenodeError('not-found', `${cmd} not found on this host`, {
      hint: opts.providedBy ? `install the ${opts.providedBy} package` : undefined,
    });
  }
  const stderr = err.stderr === undefined ? '' : err.stderr.toString().trim();
  // apt's warnings (e.g. about the _apt sandbox user) are noise; its E: lines are the cause.
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  const errors = lines.filter((l) => l.startsWith('E:'));
  const detail = (errors.length > 0 ? errors : lines.slice(-3)).join('; ');
  return new XenodeError('internal', `${cmd} ${args.join(' ')} failed${detail ? `: ${detail}` : ''}`);
}
