// The admin's price table and the bill's arithmetic. A price is an amount per
// unit, written as the admin thinks of it (cpu=0.02/h, memory=0.005/GiB-h,
// disk=0.01/GiB, disk-ops=0.5/M); it is kept as written and as (amount, base
// units per unit), so a line is (quantity in base units / per) * amount.

import { XenodeError } from '../../errors.ts';
import type { Usage, UsageKey } from './usage.ts';

type Kind = 'time' | 'memtime' | 'bytes' | 'count';

interface ItemSpec {
  kind: Kind;
  /** The usage quantities it bills (summed). */
  of: UsageKey[];
  /** How the bill shows the quantity: its unit and the base units in one. */
  unit: string;
  unitBase: number;
  help: string;
}

const GiB = 1024 ** 3;

/** The items of the bill, in its order. */
export const PRICE_ITEMS = {
  cpu: { kind: 'time', of: ['cpuSeconds'], unit: 'CPU-h', unitBase: 3600, help: 'CPU time' },
  memory: {
    kind: 'memtime',
    of: ['memTargetMiBSeconds'],
    unit: 'GiB-h',
    unitBase: 1024 * 3600,
    help: 'memory target over time',
  },
  rss: {
    kind: 'memtime',
    of: ['memRssMiBSeconds'],
    unit: 'GiB-h',
    unitBase: 1024 * 3600,
    help: "QEMU's resident memory over time",
  },
  'disk-read': { kind: 'bytes', of: ['diskReadBytes'], unit: 'GiB', unitBase: GiB, help: 'bytes read from disks' },
  'disk-write': { kind: 'bytes', of: ['diskWriteBytes'], unit: 'GiB', unitBase: GiB, help: 'bytes written to disks' },
  'disk-ops': {
    kind: 'count',
    of: ['diskReadOps', 'diskWriteOps'],
    unit: 'ops',
    unitBase: 1,
    help: 'disk operations, read and write',
  },
  'net-rx': { kind: 'bytes', of: ['netRxBytes'], unit: 'GiB', unitBase: GiB, help: 'bytes the guests received' },
  'net-tx': { kind: 'bytes', of: ['netTxBytes'], unit: 'GiB', unitBase: GiB, help: 'bytes the guests sent' },
  'net-packets': {
    kind: 'count',
    of: ['netRxPackets', 'netTxPackets'],
    unit: 'packets',
    unitBase: 1,
    help: 'packets, both ways',
  },
} as const satisfies Record<string, ItemSpec>;

export type PriceKey = keyof typeof PRICE_ITEMS;
export const PRICE_KEYS = Object.keys(PRICE_ITEMS) as PriceKey[];
/** Shorthands that set both directions. */
const SHORTHANDS: Record<string, PriceKey[]> = { disk: ['disk-read', 'disk-write'], net: ['net-rx', 'net-tx'] };

export interface Price {
  key: PriceKey;
  /** As the admin wrote it, e.g. 0.02/h */
  text: string;
  amount: number;
  /** Base units (seconds, MiB-seconds, bytes, ops) in the unit priced. */
  per: number;
}

export interface PriceTable {
  currency?: string;
  prices: Partial<Record<PriceKey, Price>>;
}

const TIME: Record<string, number> = { s: 1, sec: 1, min: 60, h: 3600, hour: 3600, d: 86_400, day: 86_400 };
const BYTES: Record<string, number> = {
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB,
  TiB: 1024 ** 4,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
};
const MIB: Record<string, number> = { MiB: 1, GiB: 1024, TiB: 1024 ** 2 };
const COUNT: Record<string, number> = { op: 1, ops: 1, packet: 1, packets: 1, K: 1e3, M: 1e6 };

const UNITS: Record<Kind, string> = {
  time: '/s, /min, /h, /d (per CPU-second, -minute, -hour, -day)',
  memtime: '/MiB-s, /MiB-h, /GiB-h, /GiB-d',
  bytes: '/B, /KiB, /MiB, /GiB, /TiB, /KB, /MB, /GB, /TB',
  count: '/op (or /packet), /K, /M',
};

function own<T>(table: Record<string, T>, k: string): T | undefined {
  return Object.hasOwn(table, k) ? table[k] : undefined;
}

function unitSize(kind: Kind, unit: string): number | undefined {
  switch (kind) {
    case 'time':
      return own(TIME, unit);
    case 'bytes':
      return own(BYTES, unit);
    case 'count':
      return own(COUNT, unit);
    case 'memtime': {
      const [size = '', time = ''] = unit.split('-');
      const s = own(MIB, size);
      const t = own(TIME, time);
      return s !== undefined && t !== undefined ? s * t : undefined;
    }
  }
}

function keyError(key: string): XenodeError {
  const shown = key.length > 32 ? `${key.slice(0, 32)}…` : key;
  return new XenodeError('usage', `unknown price '${shown}'`, {
    hint: `prices: ${[...PRICE_KEYS, 'disk', 'net'].join(', ')}, currency`,
  });
}

/** The keys a table entry stands for: a shorthand's two, else itself. */
export function expandPriceKey(key: string): string[] {
  return own(SHORTHANDS, key) ?? [key];
}

/** One `key=value` of the table: one price, or two for a shorthand (disk, net). */
export function parsePrice(key: string, text: string): Price[] {
  const keys: PriceKey[] | undefined =
    own(SHORTHANDS, key) ?? (Object.hasOwn(PRICE_ITEMS, key) ? [key as PriceKey] : undefined);
  if (!keys) throw keyError(key);
  const kind = PRICE_ITEMS[keys[0] as PriceKey].kind;
  const m = /^(\d{1,12}(?:\.\d{1,12})?)\/([A-Za-z]+(?:-[A-Za-z]+)?)$/.exec(text);
  const per = m ? unitSize(kind, m[2] as string) : undefined;
  if (!m || per === undefined) {
    const shown = text.length > 32 ? `${text.slice(0, 32)}…` : text;
    throw new XenodeError('usage', `price ${key}=${shown} is not an amount per unit`, {
      hint: `e.g. ${key}=${exampleOf(kind)}; units: ${UNITS[kind]}`,
    });
  }
  return keys.map((k) => ({ key: k, text, amount: Number(m[1]), per }));
}

function exampleOf(kind: Kind): string {
  return { time: '0.02/h', memtime: '0.005/GiB-h', bytes: '0.01/GiB', count: '0.5/M' }[kind];
}

const CURRENCY = /^[A-Za-z$€£¥]{1,8}$/u;

/** `key=value` words (price-set) -> key: text, or null for `none`. */
export function parsePriceWords(words: string[]): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const w of words) {
    const eq = w.indexOf('=');
    if (eq < 1) throw new XenodeError('usage', `'${w.slice(0, 40)}' is not key=value`, { hint: 'e.g. cpu=0.02/h' });
    const k = w.slice(0, eq).trim();
    const v = w.slice(eq + 1).trim();
    if (v === 'none' || v === '') out[k] = null;
    else if (k === 'currency') {
      if (!CURRENCY.test(v)) throw new XenodeError('usage', 'currency must be 1 to 8 letters', { hint: 'e.g. EUR' });
      out[k] = v;
    } else {
      parsePrice(k, v);
      out[k] = v;
    }
  }
  return out;
}

/** A prices file: `key = value` lines, `#` comments. */
export function parsePriceFile(text: string): Record<string, string> {
  if (text.length > 65_536) throw new XenodeError('usage', 'prices file is over 64 KiB');
  const words: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    const m = /^([A-Za-z-]+)\s*=\s*(\S+)$/.exec(line);
    if (!m)
      throw new XenodeError('usage', `prices file, line ${i + 1}: not key = value`, { hint: 'e.g. cpu = 0.02/h' });
    words.push(`${m[1]}=${m[2]}`);
  });
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsePriceWords(words))) if (v !== null) out[k] = v;
  return out;
}

export interface BillLine {
  item: PriceKey;
  /** In `unit` (CPU-h, GiB-h, GiB, ops, packets). */
  quantity: number;
  unit: string;
  price: string;
  amount: number;
}

/** Amounts to 1e-10: no float noise (0.15000000000000002) in a bill. */
function money(x: number): number {
  return Math.round(x * 1e10) / 1e10;
}

export function billLines(u: Usage, t: PriceTable): BillLine[] {
  const out: BillLine[] = [];
  for (const item of PRICE_KEYS) {
    const p = t.prices[item];
    if (!p) continue;
    const spec: ItemSpec = PRICE_ITEMS[item];
    const base = spec.of.reduce((n, k) => n + u[k], 0);
    out.push({
      item,
      quantity: base / spec.unitBase,
      unit: spec.unit,
      price: p.text,
      amount: money((base / p.per) * p.amount),
    });
  }
  return out;
}

export function billTotal(lines: BillLine[]): number {
  return money(lines.reduce((n, l) => n + l.amount, 0));
}

/** A table as kept (key -> text) made whole again; entries that no longer parse are dropped. */
export function priceTable(stored: Record<string, string>): PriceTable {
  const t: PriceTable = { prices: {} };
  for (const [k, v] of Object.entries(stored)) {
    if (k === 'currency') t.currency = v;
    else
      try {
        for (const p of parsePrice(k, v)) t.prices[p.key] = p;
      } catch {
        /* a key of an older version */
      }
  }
  return t;
}

export function priceHelp(): string {
  return PRICE_KEYS.map((k) => `${k} (${PRICE_ITEMS[k].help}; ${UNITS[PRICE_ITEMS[k].kind]})`).join('\n');
}
