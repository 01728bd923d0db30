// Names and sizes of pools and volumes, shared by the daemon and the CLI.

import { XenodeError } from '../../errors.ts';

export type VolumeFormat = 'raw' | 'qcow2';
export const VOLUME_FORMATS: readonly VolumeFormat[] = ['raw', 'qcow2'];

/** Pool and volume names: one path component, never `.` or `..`, no `:` (QEMU would read a protocol). */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** As tokens.ts: a sponsor name is also safe as a directory name. */
export const SPONSOR_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;

export function checkName(what: 'pool' | 'volume', name: string): void {
  if (!NAME_RE.test(name)) {
    throw new XenodeError('usage', `invalid ${what} name '${name}'`, {
      hint: 'letters, digits, _ . and -, starting with a letter or digit, at most 64 characters',
    });
  }
}

export function checkFormat(format: string): VolumeFormat {
  if (format === 'raw' || format === 'qcow2') return format;
  throw new XenodeError('usage', `invalid volume format '${format}'`, { hint: 'use raw or qcow2' });
}

/** `POOL/NAME` as the CLI takes it. */
export function splitVolumeRef(ref: string | undefined): { pool: string; name: string } {
  const m = ref ? /^([^/]+)\/([^/]+)$/.exec(ref) : null;
  if (!m) throw new XenodeError('usage', `a volume is named POOL/NAME, not '${ref ?? ''}'`);
  const [pool, name] = [m[1] as string, m[2] as string];
  checkName('pool', pool);
  checkName('volume', name);
  return { pool, name };
}

const UNITS: Record<string, number> = { '': 1, B: 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };
/** No volume larger than this (ext4's file size limit). */
export const MAX_VOLUME_BYTES = 16 * 2 ** 40;

/** `1G`, `512M`, `10GiB`, `4096` (bytes), rounded up to whole 512-byte sectors. */
export function parseSize(s: string | number): number {
  let bytes: number;
  if (typeof s === 'number') bytes = s;
  else {
    const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(s.trim());
    if (!m) throw new XenodeError('usage', `invalid size '${s}'`, { hint: 'e.g. 1G, 512M, 64K or a number of bytes' });
    bytes = Number(m[1]) * (UNITS[(m[2] as string).toUpperCase()] as number);
  }
  if (!Number.isFinite(bytes) || bytes <= 0) throw new XenodeError('usage', `invalid size '${s}'`);
  bytes = Math.ceil(bytes / 512) * 512;
  if (bytes > MAX_VOLUME_BYTES) throw new XenodeError('usage', `size '${s}' is over the limit of 16T for a volume`);
  return bytes;
}

/** 1.0G, 512M, 4.0K: the way the tables show sizes. */
export function formatSize(n: number): string {
  for (const u of ['T', 'G', 'M', 'K'] as const) {
    const v = n / (UNITS[u] as number);
    if (v >= 1) return `${v >= 100 || Number.isInteger(v) ? Math.round(v) : v.toFixed(1)}${u}`;
  }
  return `${n}B`;
}
