// npm run fuzz -- <target|all> [--seconds N] [--seed N] [--out DIR] [--list]

import { runFuzz } from './engine.ts';
import { TARGET_NAMES, TARGETS } from './targets/index.ts';

function usage(): never {
  console.error(`usage: npm run fuzz -- <target|all> [--seconds N] [--seed N] [--out DIR] [--hang-ms N]
targets: ${TARGET_NAMES.join(', ')}`);
  process.exit(2);
}

const args = process.argv.slice(2);
let target: string | undefined;
let seconds = 60;
let seed: number | undefined;
let outDir: string | undefined;
let hangMs: number | undefined;
for (let i = 0; i < args.length; i++) {
  const a = args[i] as string;
  const num = () => {
    const v = Number(args[++i]);
    if (!Number.isFinite(v) || v <= 0) usage();
    return v;
  };
  if (a === '--seconds' || a === '--time') seconds = num();
  else if (a === '--seed') seed = num();
  else if (a === '--hang-ms') hangMs = num();
  else if (a === '--out') outDir = args[++i];
  else if (a === '--list') {
    console.log(TARGET_NAMES.join('\n'));
    process.exit(0);
  } else if (!a.startsWith('-') && !target) target = a;
  else usage();
}
if (!target || (target !== 'all' && !(target in TARGETS))) usage();
const names = target === 'all' ? TARGET_NAMES : [target];
let failed = 0;
for (const name of names) {
  console.log(`== ${name}: ${seconds} s`);
  const r = await runFuzz({
    target: name,
    seconds,
    seed,
    outDir: names.length > 1 || !outDir ? undefined : outDir,
    hangMs,
    log: (l) => console.log(`[${name}] ${l}`),
  });
  console.log(
    `[${name}] cpu ${r.cpuSeconds.toFixed(1)} s, ${Math.round(r.execPerSec)} exec/s, ` +
      `coverage ${r.covered}/${r.total} blocks, corpus ${r.corpus} (+${r.newEntries}), crashes ${r.crashes.length}`,
  );
  failed += r.crashes.length;
}
process.exit(failed ? 1 : 0);
