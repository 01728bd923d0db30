// The price table and the bill's arithmetic: units as an admin writes them
// (0.02/h, 0.005/GiB-h, 0.01/GiB), shorthands, files, and malformed prices.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { XenodeError } from '../../src/errors.ts';
import {
  billLines,
  type PriceTable,
  parsePrice,
  parsePriceFile,
  parsePriceWords,
} from '../../src/features/accounting/prices.ts';
import { zeroUsage } from '../../src/features/accounting/usage.ts';

const GiB = 1024 ** 3;

function table(words: string[]): PriceTable {
  const t: PriceTable = { prices: {} };
  for (const [k, v] of Object.entries(parsePriceWords(words))) {
    if (k === 'currency') t.currency = v ?? undefined;
    else if (v !== null) for (const p of parsePrice(k, v)) t.prices[p.key] = p;
  }
  return t;
}

describe('prices', () => {
  it('normalises each unit', () => {
    assert.deepEqual(parsePrice('cpu', '0.02/h'), [{ key: 'cpu', text: '0.02/h', amount: 0.02, per: 3600 }]);
    assert.equal(parsePrice('memory', '0.005/GiB-h')[0]?.per, 1024 * 3600);
    assert.equal(parsePrice('rss', '1/MiB-s')[0]?.per, 1);
    assert.equal(parsePrice('disk-read', '0.01/GiB')[0]?.per, GiB);
    assert.equal(parsePrice('net-tx', '0.01/GB')[0]?.per, 1e9);
    assert.equal(parsePrice('disk-ops', '0.5/M')[0]?.per, 1e6);
    assert.equal(parsePrice('net-packets', '2/K')[0]?.per, 1000);
    assert.deepEqual(
      parsePrice('disk', '0.01/GiB').map((p) => p.key),
      ['disk-read', 'disk-write'],
    );
    assert.deepEqual(
      parsePrice('net', '0.05/GiB').map((p) => p.key),
      ['net-rx', 'net-tx'],
    );
  });

  it('refuses prices it cannot read, naming the key and the units', () => {
    for (const [k, v] of [
      ['cpu', '0.02'],
      ['cpu', '0.02/GiB'],
      ['memory', '0.005/h'],
      ['disk', '-1/GiB'],
      ['disk', '1e400/GiB'],
      ['disk', 'NaN/GiB'],
      ['net', '0x10/GiB'],
      ['gpu', '1/h'],
      ['cpu', `${'9'.repeat(300)}/h`],
      ['__proto__', '1/h'],
    ] as const) {
      assert.throws(
        () => parsePrice(k, v),
        (e: unknown) => e instanceof XenodeError && e.kind === 'usage' && e.hint !== undefined,
        `${k}=${v}`,
      );
    }
  });

  it('reads words and files; none removes a price', () => {
    assert.deepEqual(parsePriceWords(['cpu=0.02/h', 'net=none', 'currency=EUR']), {
      cpu: '0.02/h',
      net: null,
      currency: 'EUR',
    });
    assert.throws(() => parsePriceWords(['cpu']), /key=value/);
    assert.throws(() => parsePriceWords(['currency=€€€€€€€€€€€€€']), /currency/);
    assert.deepEqual(parsePriceFile('# prices\ncpu = 0.02/h\n\nmemory=0.005/GiB-h  # target\n'), {
      cpu: '0.02/h',
      memory: '0.005/GiB-h',
    });
    assert.throws(() => parsePriceFile('cpu = 0.02/h\nthis is not a price\n'), /line 2/);
  });
});

describe('the bill', () => {
  it('multiplies usage by the prices, one line per priced item', () => {
    const t = table(['cpu=0.02/h', 'memory=0.005/GiB-h', 'disk=0.01/GiB', 'net=0.05/GiB', 'disk-ops=1/M']);
    const u = zeroUsage();
    u.cpuSeconds = 7200;
    u.memTargetMiBSeconds = 1024 * 3600 * 10;
    u.memRssMiBSeconds = 5;
    u.diskReadBytes = 2 * GiB;
    u.diskWriteBytes = GiB;
    u.diskReadOps = 1_500_000;
    u.diskWriteOps = 500_000;
    u.netRxBytes = GiB;
    u.netTxBytes = 3 * GiB;
    const lines = billLines(u, t);
    const amount = Object.fromEntries(lines.map((l) => [l.item, l.amount]));
    assert.equal(amount.cpu, 0.04);
    assert.equal(amount.memory, 0.05);
    assert.equal(amount['disk-read'], 0.02);
    assert.equal(amount['disk-write'], 0.01);
    assert.equal(amount['disk-ops'], 2);
    assert.equal(amount['net-rx'], 0.05);
    assert.equal(amount['net-tx'], 0.15, 'rounded to 1e-10, no float noise');
    assert.equal(amount.rss, undefined, 'an item without a price is not billed');
    const cpu = lines.find((l) => l.item === 'cpu');
    assert.deepEqual(cpu && { q: cpu.quantity, u: cpu.unit }, { q: 2, u: 'CPU-h' });
  });

  it('an empty price table bills nothing', () => {
    const u = zeroUsage();
    u.cpuSeconds = 1e6;
    assert.deepEqual(billLines(u, { prices: {} }), []);
  });
});
