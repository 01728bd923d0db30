// Disk spec strings (`disk=[...]`), per xl-disk-configuration(5) and the
// scanner in libxlu_disk_l.l:
//   - comma-separated items; bare items fill target, format, vdev, access in turn
//     (format is skipped after a deprecated prefix such as `phy:`);
//   - `key=value` items and flags anywhere; `target=` takes the rest of the string;
//   - deprecated prefixes: `phy: file: tap: tap2: aio: ioemu: tapdisk:` are dropped,
//     `raw: qcow: qcow2: vhd:` set the format; `vdev:cdrom` marks a CD-ROM.
// Xenode differences: only raw and qcow2 images (QEMU formats Xenode tests and
// snapshots); a relative target is resolved against the config file's directory
// (xl prepends /dev/, which only makes sense for dom0 block devices); backend
// placement keys are accepted and ignored since the backend is always Xenode's.
// Xenode extension: I/O limit keys (bps=, iops_rd=, bps_max=, ...; QEMU's names,
// see disk-throttle.ts); a spec without them parses exactly as before.
// Xenode extension: `backendtype=xenode` serves the disk from Xenode's own
// vhost-user backend process (src/backends/vhost-blk) instead of QEMU's block
// layer; `backendtype=qdisk` (xl's name for QEMU) is the default. Raw disks only.

import path from 'node:path';
import { checkThrottle, takeThrottleItem } from './disk-throttle.ts';
import { clip, configError } from './location.ts';
import type { DiskSpec, DiskThrottle } from './types.ts';

export interface DiskParseOptions {
  /** Directory a relative target is resolved against. */
  baseDir: string;
  warn?: (msg: string) => void;
}

const HINT = "e.g. 'file:/srv/web.img,xvda,w' or 'format=qcow2, vdev=xvda, access=rw, target=/srv/web.qcow2'";
const VDEV_HINT = 'a vdev is xvdX[N], hdX[N], sdX[N], dNpM or a number, e.g. xvda';

const IGNORED_PARAMS = new Set(['backend', 'script', 'specification', 'grant_usage']);
const IGNORED_FLAGS = new Set(['direct-io-safe', 'discard', 'no-discard', 'trusted', 'untrusted']);
const UNSUPPORTED_PARAMS = new Set(['colo-host', 'colo-port', 'colo-export', 'active-disk', 'hidden-disk']);
const UNSUPPORTED_FLAGS = new Set(['colo', 'no-colo']);
const DROPPED_PREFIXES = new Set(['phy', 'file', 'tap', 'tap2', 'aio', 'ioemu', 'tapdisk']);
const FORMAT_PREFIXES = new Set(['raw', 'qcow', 'qcow2', 'vhd']);
const SCRIPT_PREFIXES = new Set(['iscsi', 'nbd', 'enbd', 'drbd']);
const KNOWN_PREFIXES = new Set([...DROPPED_PREFIXES, ...FORMAT_PREFIXES, ...SCRIPT_PREFIXES]);

type Format = DiskSpec['format'] | 'empty';

interface State {
  target?: string;
  format?: Format;
  vdev?: string;
  access?: DiskSpec['access'];
  accessSet: boolean;
  cdrom?: boolean;
  hadPrefix: boolean;
  throttle: DiskThrottle;
  throttleSeen: Set<string>;
  backendtype?: string;
}

function setFormat(st: State, value: string): void {
  let f: Format;
  if (value === '' || value === 'raw') f = 'raw';
  else if (value === 'qcow2') f = 'qcow2';
  else if (value === 'empty') f = 'empty';
  else if (value === 'qcow' || value === 'vhd' || value === 'qed') {
    throw configError(
      `disk format '${value}' is not supported by Xenode`,
      undefined,
      `convert the image: qemu-img convert -O qcow2 <image> <image>.qcow2`,
    );
  } else throw configError(`unknown disk format '${value}'`, undefined, 'formats: raw, qcow2');
  if (st.format !== undefined && st.format !== f) {
    throw configError(`disk format given twice ('${st.format}' and '${f}')`, undefined, HINT);
  }
  st.format = f;
}

function setAccess(st: State, value: string): void {
  if (value === 'r' || value === 'ro') st.access = 'ro';
  else if (value === 'w' || value === 'rw' || value === '') st.access = 'rw';
  else throw configError(`unknown disk access '${value}'`, undefined, 'access is rw (or w) or ro (or r)');
}

function setOnce(st: State, field: 'target' | 'vdev', value: string): void {
  const prev = st[field];
  // Upstream does not complain about overwriting an empty value (e.g. an empty positional target).
  if (prev) throw configError(`disk ${field} given twice ('${prev}' and '${value}')`, undefined, HINT);
  st[field] = value;
}

/** `hdc:cdrom` / `xvdb:disk` (deprecated); returns false if `item` has no colon. */
function vdevAndDevtype(st: State, item: string): boolean {
  const colon = item.lastIndexOf(':');
  if (colon < 0) return false;
  setOnce(st, 'vdev', item.slice(0, colon));
  const type = item.slice(colon + 1);
  if (type === 'cdrom') st.cdrom = true;
  else if (type === 'disk') st.cdrom = false;
  else
    throw configError(`unknown disk type '${type}' in '${item}'`, undefined, 'use :cdrom or :disk, or devtype=cdrom');
  return true;
}

function positional(st: State, item: string): void {
  if (st.target === undefined) st.target = item;
  else if (!st.hadPrefix && st.format === undefined) {
    if (st.target === '' && vdevAndDevtype(st, item)) st.format = 'empty';
    else setFormat(st, item);
  } else if (st.vdev === undefined) {
    if (!vdevAndDevtype(st, item)) setOnce(st, 'vdev', item);
  } else if (!st.accessSet) {
    st.accessSet = true;
    setAccess(st, item);
  } else {
    throw configError(`too many positional parameters at '${item}'`, undefined, HINT);
  }
}

/**
 * The Linux device number of a vdev (xen-vbd-interface(7)), or undefined if it is
 * not a valid vdev. xvda = 51712, hda = 768, sda = 2048.
 */
export function vdevNumber(vdev: string): number | undefined {
  const dp = /^d([0-9]+)p([0-9]+)$/.exec(vdev);
  if (dp) {
    const disk = Number(dp[1]);
    const part = Number(dp[2]);
    if (disk < 1 << 20 && part < 256) return xvdNumber(disk, part);
    return undefined;
  }
  const xvd = letters(vdev, 'xvd', (1 << 20) - 1, 255);
  if (xvd) return xvdNumber(xvd.disk, xvd.part);
  if (/^(0|[1-9][0-9]*|0x[0-9a-fA-F]+|0[0-7]+)$/.test(vdev)) {
    const n = vdev.startsWith('0x')
      ? Number.parseInt(vdev, 16)
      : vdev.length > 1 && vdev.startsWith('0')
        ? Number.parseInt(vdev, 8)
        : Number(vdev);
    return n <= 0x7fffffff ? n : undefined;
  }
  const hd = letters(vdev, 'hd', 3, 63);
  if (hd) return ((hd.disk < 2 ? 3 : 22) << 8) | ((hd.disk & 1) << 6) | hd.part;
  const sd = letters(vdev, 'sd', 15, 15);
  if (sd) return (8 << 8) | (sd.disk << 4) | sd.part;
  return undefined;
}

function xvdNumber(disk: number, part: number): number {
  if (disk <= 15 && part <= 15) return (202 << 8) | (disk << 4) | part;
  return ((1 << 28) | (disk << 8) | part) >>> 0;
}

/** Drive letters as bijective base 26 (a..z, aa..), then an optional partition without leading zeros. */
function letters(
  vdev: string,
  prefix: string,
  maxDisk: number,
  maxPart: number,
): { disk: number; part: number } | undefined {
  const m = new RegExp(`^${prefix}([a-z]+)([1-9][0-9]*)?$`).exec(vdev);
  if (!m) return undefined;
  let disk = -1;
  for (const ch of m[1] as string) {
    disk = (disk + 1) * 26 + (ch.charCodeAt(0) - 97);
    if (disk > maxDisk) return undefined;
  }
  const part = m[2] === undefined ? 0 : Number(m[2]);
  if (part > maxPart) return undefined;
  return { disk, part };
}

export function parseDiskSpec(spec: string, opts: DiskParseOptions): DiskSpec {
  const st: State = { accessSet: false, hadPrefix: false, throttle: {}, throttleSeen: new Set() };
  const warn = opts.warn ?? (() => {});
  let rest = spec;
  while (rest.length > 0) {
    rest = rest.replace(/^[ \t\n]+/, '');
    if (rest.length === 0) break;
    if (rest.startsWith('target=')) {
      // Takes the rest of the string, including commas; one trailing comma is dropped as upstream does.
      let t = rest.slice('target='.length);
      if (t.endsWith(',')) t = t.slice(0, -1);
      setOnce(st, 'target', t);
      break;
    }
    // Deprecated `prefix:`. Known prefixes apply whatever follows (`tap:aio:/img`); an unknown
    // word followed by a colon is an error only if no letter or digit follows, so `hdc:cdrom` stays a vdev.
    const pre = /^([a-z][a-z0-9]*):/.exec(rest);
    const name = pre?.[1];
    if (name !== undefined && (KNOWN_PREFIXES.has(name) || !/^[a-z0-9]/.test(rest.slice(name.length + 1)))) {
      rest = rest.slice(name.length + 1);
      st.hadPrefix = true;
      if (FORMAT_PREFIXES.has(name)) setFormat(st, name);
      else if (SCRIPT_PREFIXES.has(name)) {
        throw configError(
          `disk prefix '${name}:' needs a block script, which Xenode does not run`,
          undefined,
          'give an image file or block device path',
        );
      } else if (!DROPPED_PREFIXES.has(name)) {
        throw configError(`unknown disk prefix '${name}:'`, undefined, HINT);
      }
      continue;
    }
    const comma = rest.indexOf(',');
    // Trailing blanks are trimmed too (upstream keeps them and then rejects 'w ').
    const item = (comma < 0 ? rest : rest.slice(0, comma)).replace(/[ \t\n]+$/, '');
    rest = comma < 0 ? '' : rest.slice(comma + 1);
    const eq = item.indexOf('=');
    if (eq < 0) {
      if (item === 'cdrom') st.cdrom = true;
      else if (IGNORED_FLAGS.has(item)) warn(`disk flag '${item}' is ignored by Xenode`);
      else if (UNSUPPORTED_FLAGS.has(item)) throw configError(`disk flag '${item}' (COLO) is not supported by Xenode`);
      else positional(st, item);
      continue;
    }
    const key = item.slice(0, eq);
    const value = item.slice(eq + 1);
    switch (key) {
      case 'format':
        setFormat(st, value);
        break;
      case 'vdev':
        setOnce(st, 'vdev', value);
        break;
      case 'access':
        setAccess(st, value);
        break;
      case 'devtype':
        if (value === 'cdrom') st.cdrom = true;
        else if (value === 'disk') st.cdrom = false;
        else throw configError(`unknown disk devtype '${value}'`, undefined, 'devtype is disk or cdrom');
        break;
      case 'backendtype':
        if (st.backendtype !== undefined && st.backendtype !== value) {
          throw configError(`disk backendtype given twice ('${st.backendtype}' and '${value}')`, undefined, HINT);
        }
        st.backendtype = value;
        break;
      default:
        if (takeThrottleItem(st.throttle, st.throttleSeen, key, value)) break;
        if (IGNORED_PARAMS.has(key)) warn(`disk parameter '${key}=' is ignored: Xenode always serves disks itself`);
        else if (UNSUPPORTED_PARAMS.has(key))
          throw configError(`disk parameter '${key}=' (COLO) is not supported by Xenode`);
        else if (/^[a-z][-a-z0-9_]*$/.test(key)) throw configError(`unknown disk parameter '${key}='`, undefined, HINT);
        else throw configError(`bad disk syntax at '${item}'`, undefined, HINT);
    }
  }

  if (st.vdev === undefined || st.vdev === '') {
    throw configError(`no vdev in disk spec '${clip(spec)}'`, undefined, `add a virtual device name, ${HINT}`);
  }
  if (vdevNumber(st.vdev) === undefined) throw configError(`invalid vdev '${st.vdev}'`, undefined, VDEV_HINT);
  const cdrom = st.cdrom === true;
  let target = st.target ?? '';
  if (target === '' && !cdrom) {
    throw configError(
      `no target in disk spec '${clip(spec)}'`,
      undefined,
      'only a cdrom may be empty; give an image path',
    );
  }
  if (st.format === 'empty' && target !== '') {
    throw configError(`disk format 'empty' with target '${target}'`, undefined, "format 'empty' is for an empty cdrom");
  }
  let access = st.access ?? (cdrom ? 'ro' : 'rw');
  if (cdrom && access === 'rw') {
    if (st.access === 'rw') warn(`cdrom ${st.vdev} is read-only; access=rw ignored`);
    access = 'ro';
  }
  if (target !== '') target = path.resolve(opts.baseDir, target);
  const format = st.format === 'qcow2' ? 'qcow2' : 'raw';
  const out: DiskSpec = { target, format, vdev: st.vdev, access, devtype: cdrom ? 'cdrom' : 'disk' };
  if (Object.keys(st.throttle).length > 0) {
    if (target === '') {
      throw configError(`an empty CD-ROM (${st.vdev}) has no image to limit`, undefined, 'give the CD-ROM an image');
    }
    checkThrottle(st.throttle);
    out.throttle = st.throttle;
  }
  if (st.backendtype !== undefined) backendType(out, st.backendtype, warn);
  return out;
}

const BACKEND_HINT = "backendtype=xenode (Xenode's own backend) or qdisk (QEMU, the default): docs/disks.md";

/** `backendtype=`: where the disk is served; xl's phy/tap/standalone have no meaning here. */
function backendType(out: DiskSpec, value: string, warn: (msg: string) => void): void {
  if (value === 'qdisk') return;
  if (value === 'phy' || value === 'tap' || value === 'standalone') {
    warn(`disk backendtype '${value}' is ignored: Xenode serves ${out.vdev} with QEMU (qdisk)`);
    return;
  }
  if (value !== 'xenode') throw configError(`unknown disk backendtype '${value}'`, undefined, BACKEND_HINT);
  const refuse = (why: string, hint: string) => {
    throw configError(`${out.vdev}: backendtype=xenode ${why}`, undefined, hint);
  };
  if (out.devtype === 'cdrom') refuse('serves disks, not CD-ROMs', 'drop backendtype= for a CD-ROM');
  if (out.format !== 'raw') refuse('serves raw images only', 'convert it: qemu-img convert -O raw IMAGE IMAGE.raw');
  if (out.throttle) {
    refuse(
      "does not enforce I/O limits (QEMU's block layer, where they are applied, is not in its path)",
      'drop the limit keys, or serve the disk with QEMU (backendtype=qdisk)',
    );
  }
  out.backendtype = 'xenode';
}
