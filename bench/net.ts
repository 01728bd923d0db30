// bench:net — the network section of bench:io on its own, with its own knobs.
//
//   npm run bench:net -- [--rounds 3] [--mb 16] [--only switch,bridge,jumbo,alone,restart]
//                        [--no-doc] [--json FILE] [--keep]

import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runSection } from './io-net.ts';
import { Cleanup } from './lib/cleanup.ts';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    mb: { type: 'string', default: '16' },
    only: { type: 'string' },
    'no-doc': { type: 'boolean', default: false },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
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

try {
  await runSection({
    rounds,
    mb,
    doc: !opt['no-doc'],
    only: opt.only ? new Set(opt.only.split(',').map((s) => s.trim())) : undefined,
    root: resolve(import.meta.dirname, '..'),
    cleanup,
    log: (s) => process.stderr.write(`${s}\n`),
    json: opt.json,
    keep: opt.keep,
  });
} finally {
  await cleanup.runAll();
}
