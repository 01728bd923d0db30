// bench:io — I/O seen from inside guests, one section per kind of device: disks
// (bench/io-disk.ts), then networks (bench/io-net.ts) when that file exists. Each
// section writes its own `## ` part of docs/benchmarks.md.
//
//   npm run bench:io -- [--rounds 3] [--only xenode,xenode-blk,qemu-same,qemu-iouring,qemu-native] [--no-doc]
//                       [--sections disk,net]

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Cleanup } from './lib/cleanup.ts';
import type { IoSection } from './lib/io-section.ts';

const SECTIONS = ['io-disk.ts', 'io-net.ts'];
const ROOT = resolve(import.meta.dirname, '..');

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    only: { type: 'string' },
    'no-doc': { type: 'boolean', default: false },
    sections: { type: 'string', default: 'disk,net' },
  },
  strict: true,
});
const rounds = Number(opt.rounds);
if (!Number.isInteger(rounds) || rounds < 1) {
  process.stderr.write('bench:io: --rounds must be a positive integer\n');
  process.exit(2);
}
const cleanup = new Cleanup();
cleanup.installSignalHandlers();
const log = (s: string) => process.stderr.write(`${s}\n`);

try {
  const wanted = new Set(opt.sections.split(',').map((s) => `io-${s.trim()}.ts`));
  for (const file of SECTIONS) {
    if (!wanted.has(file)) continue;
    const path = join(import.meta.dirname, file);
    if (!existsSync(path)) continue;
    log(`bench:io: ${file}`);
    const mod = (await import(pathToFileURL(path).href)) as { runSection?: IoSection };
    if (typeof mod.runSection !== 'function') throw new Error(`${file} exports no runSection()`);
    await mod.runSection({
      rounds,
      doc: !opt['no-doc'],
      only: opt.only ? new Set(opt.only.split(',').map((s) => s.trim())) : undefined,
      root: ROOT,
      cleanup,
      log,
    });
  }
} finally {
  await cleanup.runAll();
}
