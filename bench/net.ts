// bench:net — the network section of bench:io on its own, with its own knobs.
//
//   npm run bench:net -- [--rounds 3] [--mb 16] [--only switch,bridge,jumbo,alone,restart,audit,records,blast]
//                        [--blast-cap 50] [--no-doc] [--json FILE] [--keep]
//
// audit, records and blast (bench/net-audit.ts): the switch with its audit on,
// off and a Linux bridge, interleaved; flow records written per second; a
// transfer alone and next to a throttled blast. Their own section of docs/benchmarks.md.

import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { NET_IDS, runSection as runIoSection } from './io-net.ts';
import { Cleanup } from './lib/cleanup.ts';
import { AUDIT_IDS, runAuditSection } from './net-audit.ts';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    mb: { type: 'string', default: '16' },
    only: { type: 'string' },
    'no-doc': { type: 'boolean', default: false },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'blast-cap': { type: 'string', default: '50' },
  },
  strict: true,
});
const rounds = Number(opt.rounds);
const mb = Number(opt.mb);
if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(mb) || mb < 1) {
  process.stderr.write('bench:net: --rounds and --mb must be positive integers\n');
  process.exit(2);
}
const cleanup = new Cleanup();
cleanup.installSignalHandlers();

const only = opt.only ? new Set(opt.only.split(',').map((s) => s.trim())) : undefined;
const blastCap = Number(opt['blast-cap']);
if (!Number.isInteger(blastCap) || blastCap < 1 || blastCap > 100) {
  process.stderr.write('bench:net: --blast-cap is a percentage of one CPU, 1 to 100\n');
  process.exit(2);
}
try {
  if (!only || NET_IDS.some((id) => only.has(id)))
    await runIoSection({
      rounds,
      mb,
      doc: !opt['no-doc'],
      only,
      root: resolve(import.meta.dirname, '..'),
      cleanup,
      log: (s) => process.stderr.write(`${s}\n`),
      json: opt.json,
      keep: opt.keep,
    });
  if (!only || AUDIT_IDS.some((id) => only.has(id)))
    await runAuditSection({
      rounds,
      mb,
      blastCap,
      only: only && AUDIT_IDS.some((id) => only.has(id)) ? only : undefined,
      root: resolve(import.meta.dirname, '..'),
      cleanup,
      log: (s) => process.stderr.write(`${s}\n`),
      doc: !opt['no-doc'],
      json: opt.json ? `${opt.json}.audit.json` : undefined,
    });
} finally {
  await cleanup.runAll();
}
