// Network spec strings (`vif=[...]`), per xl-network-configuration(5) and
// xl_parse.c parse_nic_config / libxlu_vif.c: comma-separated `key=value`, all
// optional, '' means "default". Xenode connects every vif to its own virtual
// switch, so the hotplug `script`, the `backend` domain and the emulated-vs-PV
// `type` have nothing to select; they are accepted with a warning.

import { isIP } from 'node:net';
import { configError } from './location.ts';
import { didYouMean } from './suggest.ts';
import type { VifSpec } from './types.ts';

export interface VifParseOptions {
  warn?: (msg: string) => void;
}

/** QEMU NIC models a Xenode guest can be given (xl passes `model` to QEMU as is). */
export const NIC_MODELS = [
  'virtio',
  'virtio-net',
  'virtio-net-pci',
  'e1000',
  'e1000e',
  'rtl8139',
  'ne2k_pci',
  'pcnet',
  'i82551',
  'i82557b',
  'i82559er',
  'vmxnet3',
] as const;

const KEYS = ['mac', 'bridge', 'ip', 'model', 'rate', 'vifname', 'mtu', 'vlan'] as const;
const IGNORED = ['script', 'backend', 'type', 'gatewaydev', 'netdev', 'devid'] as const;
const IGNORED_FLAGS = ['trusted', 'untrusted'] as const;
const UNSUPPORTED = ['accel', 'forwarddev'] as const;
const IFNAME = /^[A-Za-z0-9_.:-]{1,15}$/;

/** A unicast MAC in canonical form (lower case, two digits per octet), or an error. */
export function parseMac(mac: string): string {
  const m =
    /^([0-9a-fA-F]{1,2})([:-])([0-9a-fA-F]{1,2})\2([0-9a-fA-F]{1,2})\2([0-9a-fA-F]{1,2})\2([0-9a-fA-F]{1,2})\2([0-9a-fA-F]{1,2})$/.exec(
      mac,
    );
  if (!m) throw configError(`invalid MAC address '${mac}'`, undefined, 'write six hex octets, e.g. 00:16:3e:01:02:03');
  const octets = [m[1], m[3], m[4], m[5], m[6], m[7]].map((o) => Number.parseInt(o as string, 16));
  if (((octets[0] as number) & 1) === 1) {
    throw configError(
      `MAC address '${mac}' is a multicast address`,
      undefined,
      'the first octet must be even, e.g. 00:16:3e:…',
    );
  }
  if (octets.every((o) => o === 0)) throw configError(`MAC address '${mac}' is all zeros`);
  return octets.map((o) => o.toString(16).padStart(2, '0')).join(':');
}

export interface VifRate {
  bytesPerSec: number;
  intervalUs: number;
  /** Credit refilled each interval, as the backend key `rate = "<bytes>,<us>"` carries it. */
  bytesPerInterval: number;
}

const RATE_HINT = "rate is RATE/s[@INTERVAL], e.g. '10MB/s', '100Mb/s@20ms'";

/** `rate=` per libxlu_vif.c: `^[0-9]+[GMK]?[Bb]/s$` optionally `@` `^[0-9]+[mu]?s?$` (default 50 ms). */
export function parseVifRate(rate: string): VifRate {
  const at = rate.indexOf('@');
  const bytes = at < 0 ? rate : rate.slice(0, at);
  const interval = at < 0 ? undefined : rate.slice(at + 1);
  if (bytes === '') throw configError(`no rate in '${rate}'`, undefined, RATE_HINT);
  const bm = /^([0-9]+)([GMK]?)([Bb])\/s$/.exec(bytes);
  if (!bm) throw configError(`invalid rate '${bytes}'`, undefined, RATE_HINT);
  const base = Number(bm[1]);
  if (base === 0 || base > 0xffffffff) throw configError(`rate '${bytes}' is out of range`, undefined, RATE_HINT);
  const mult = bm[2] === 'G' ? 1e9 : bm[2] === 'M' ? 1e6 : bm[2] === 'K' ? 1e3 : 1;
  let bytesPerSec = base * mult;
  if (bm[3] === 'b') bytesPerSec = Math.floor(bytesPerSec / 8);
  if (!Number.isSafeInteger(bytesPerSec)) throw configError(`rate '${bytes}' is out of range`, undefined, RATE_HINT);
  let intervalUs = 50_000;
  if (interval !== undefined) {
    const im = /^([0-9]+)([mu]?)(s?)$/.exec(interval);
    if (!im) throw configError(`invalid replenishment interval '${interval}'`, undefined, RATE_HINT);
    const n = Number(im[1]);
    // Upstream: no unit or `s` = seconds, `m`/`ms` = milliseconds, `u`/`us` = microseconds.
    intervalUs = im[2] === 'm' ? n * 1000 : im[2] === 'u' ? n : n * 1_000_000;
    if (n === 0 || intervalUs > 0xffffffff) {
      throw configError(`replenishment interval '${interval}' is out of range`, undefined, RATE_HINT);
    }
  }
  const bytesPerInterval = Number((BigInt(bytesPerSec) * BigInt(intervalUs)) / 1_000_000n);
  return { bytesPerSec, intervalUs, bytesPerInterval };
}

function parseIp(value: string): string {
  const addrs = value.split(/\s+/).filter((a) => a !== '');
  for (const a of addrs) {
    const m = /^([^/]+)(?:\/([0-9]{1,3}))?$/.exec(a);
    const family = m ? isIP(m[1] as string) : 0;
    const prefix = m?.[2] === undefined ? 0 : Number(m[2]);
    if (!m || family === 0 || prefix > (family === 4 ? 32 : 128)) {
      throw configError(`invalid IP address '${a}'`, undefined, 'give IPv4 or IPv6 addresses separated by spaces');
    }
  }
  return addrs.join(' ');
}

function parseMtu(value: string): number {
  if (!/^[0-9]{1,6}$/.test(value) || Number(value) < 68 || Number(value) > 65535) {
    throw configError(`invalid mtu '${value}'`, undefined, 'mtu is an integer from 68 to 65535');
  }
  return Number(value);
}

function has<T extends string>(list: readonly T[], s: string): s is T {
  return (list as readonly string[]).includes(s);
}

export function parseVifSpec(spec: string, opts: VifParseOptions = {}): VifSpec {
  const warn = opts.warn ?? (() => {});
  const out: VifSpec = {};
  const seen = new Set<string>();
  // Upstream tokenises with strtok(","), which skips empty items, and strips leading spaces.
  for (const raw of spec.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq < 0) {
      if (has(IGNORED_FLAGS, item)) {
        warn(`vif flag '${item}' is ignored by Xenode`);
        continue;
      }
      throw configError(
        `vif parameter '${item}' needs a value`,
        undefined,
        "vif items are key=value, e.g. 'bridge=xenbr0'",
      );
    }
    const key = item.slice(0, eq).trim();
    const value = item.slice(eq + 1).trim();
    if (seen.has(key)) throw configError(`vif parameter '${key}' given twice`);
    seen.add(key);
    if (has(IGNORED, key)) {
      if (key === 'type' && value !== 'ioemu' && value !== 'vif' && value !== '') {
        throw configError(`invalid vif type '${value}'`, undefined, 'type is ioemu or vif');
      }
      warn(`vif parameter '${key}=' is ignored: every Xenode vif is a virtio or emulated NIC on Xenode's switch`);
      continue;
    }
    if (has(UNSUPPORTED, key)) throw configError(`vif parameter '${key}=' is not supported by Xenode`);
    if (key.startsWith('colo_')) throw configError(`vif parameter '${key}=' (COLO) is not supported by Xenode`);
    if (!has(KEYS, key)) {
      throw configError(
        `unknown vif parameter '${key}'`,
        undefined,
        didYouMean(key, [...KEYS, ...IGNORED]) ?? `known: ${KEYS.join(', ')}`,
      );
    }
    if (value === '') continue;
    switch (key) {
      case 'mac':
        out.mac = parseMac(value);
        break;
      case 'bridge':
        if (!IFNAME.test(value))
          throw configError(`invalid bridge name '${value}'`, undefined, 'up to 15 of A-Z a-z 0-9 _ . : -');
        out.bridge = value;
        break;
      case 'ip':
        out.ip = parseIp(value);
        break;
      case 'model':
        if (!has(NIC_MODELS, value)) {
          throw configError(
            `unknown NIC model '${value}'`,
            undefined,
            didYouMean(value, NIC_MODELS) ?? `models: ${NIC_MODELS.join(', ')}`,
          );
        }
        out.model = value;
        break;
      case 'rate':
        parseVifRate(value);
        out.rate = value;
        break;
      case 'vifname':
        if (!IFNAME.test(value))
          throw configError(`invalid vifname '${value}'`, undefined, 'up to 15 of A-Z a-z 0-9 _ . : -');
        out.vifname = value;
        break;
      case 'mtu':
        out.mtu = parseMtu(value);
        break;
      case 'vlan':
        // One VLAN id: the vif is an access port of it (trunks, `10:20`, are not offered to guests).
        if (!/^[0-9]{1,4}$/.test(value) || Number(value) < 1 || Number(value) > 4094) {
          throw configError(`invalid vlan '${value}'`, undefined, 'vlan is one VLAN id from 1 to 4094, e.g. vlan=10');
        }
        out.vlan = Number(value);
        break;
    }
  }
  return out;
}
