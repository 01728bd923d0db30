// bench:boot — wall time from command start to the guest's ready line, and QEMU's
// peak RSS, for Xenode and its peers, alternating contenders within each round.
//
//   npm run bench:boot -- [--rounds 10] [--vcpus 1] [--memory 256] [--warmup 1]
//                         [--only xenode,qemu-same,...] [--no-extras] [--no-doc]
//                         [--timeout 90] [--json FILE] [--keep] [--settle 0.35] [--settle-max 30] [--seed 1]
//
// --settle: before each run, wait (up to --settle-max seconds) until the host's CPUs are
// at most this busy (fraction of all CPUs) so other people's work disturbs fewer runs.

import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureDefaultGuest } from '../guest/build.ts';
import { TCG_CPU_MODEL } from '../src/engine/machine.ts';
import { Cleanup } from './lib/cleanup.ts';
import type { BenchContext, BootSample, Contender } from './lib/contender.ts';
import { replaceSection } from './lib/doc.ts';
import { busyBetween, cpuTimes, foreignQemus, hostFacts, loadAvg1, waitQuiet } from './lib/host.ts';
import {
  describeDevices,
  devicesFromQemuArgv,
  ensureLibvirt,
  LibvirtContender,
  libvirtUserNote,
  withoutDevices,
} from './lib/libvirt.ts';
import { run } from './lib/proc.ts';
import { QemuDefaultContender, QemuSameContender } from './lib/qemu.ts';
import { fmt, markdownTable, max, median, min } from './lib/stats.ts';
import { XenodeContender, XenodeDaemon } from './lib/xenode.ts';

const HEADING = '## Boot (bench:boot)';
const ROOT = resolve(import.meta.dirname, '..');

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '10' },
    vcpus: { type: 'string', default: '1' },
    memory: { type: 'string', default: '256' },
    warmup: { type: 'string', default: '1' },
    timeout: { type: 'string', default: '90' },
    only: { type: 'string' },
    'no-extras': { type: 'boolean', default: false },
    'no-doc': { type: 'boolean', default: false },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
    settle: { type: 'string', default: '0.35' },
    seed: { type: 'string', default: '1' },
    'settle-max': { type: 'string', default: '30' },
  },
  strict: true,
});

function positiveInt(name: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    process.stderr.write(`bench:boot: --${name} must be a non-negative integer, got '${v}'\n`);
    process.exit(2);
  }
  return n;
}

const rounds = positiveInt('rounds', opt.rounds);
const vcpus = positiveInt('vcpus', opt.vcpus) || 1;
const memoryMiB = positiveInt('memory', opt.memory) || 256;
const warmup = positiveInt('warmup', opt.warmup);
const settle = Number(opt.settle);
const seed = positiveInt('seed', opt.seed);
/** mulberry32: a tiny seeded PRNG, so an order can be reproduced. */
function prng(a: number): () => number {
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function shuffle<T>(xs: readonly T[], rand: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}
const rng = prng(seed);
const settleMaxMs = positiveInt('settle-max', opt['settle-max']) * 1000;
const only = opt.only ? new Set(opt.only.split(',').map((s) => s.trim())) : undefined;

interface Attempt {
  round: number;
  contender: string;
  load1: number;
  /** Host CPU busy fraction (all CPUs) just before the run, and during it (ours included). */
  busyBefore: number;
  busyDuring: number;
  waitedMs: number;
  sample?: BootSample;
  error?: string;
}

const pct = (x: number) => (Number.isNaN(x) ? '–' : `${Math.round(x * 100)}%`);
const log = (s: string) => process.stderr.write(`${s}\n`);
const cleanup = new Cleanup();
/** Set on Ctrl-C: no new runs start while cleanup tears the current one down. */
let aborted = false;
cleanup.installSignalHandlers(() => {
  aborted = true;
});

const tmp = mkdtempSync('/tmp/xenode-bench-boot-');
// libvirt's QEMU must be able to read the kernel and reach the serial socket.
await run('chmod', ['0755', tmp]);
if (!opt.keep) cleanup.add(`remove ${tmp}`, () => rmSync(tmp, { recursive: true, force: true }));

const ctx: BenchContext = {
  root: ROOT,
  tmp,
  memoryMiB,
  vcpus,
  timeoutMs: positiveInt('timeout', opt.timeout) * 1000,
  cleanup,
  ourPids: new Set(),
  log,
};

/** Boot the bench guest once in `d`, make it the template `bench`, and let it go. */
async function makeTemplate(d: XenodeDaemon): Promise<void> {
  const cfg = join(tmp, 'tsrc.cfg');
  writeFileSync(cfg, `name="tsrc"\nmemory=${memoryMiB}\nvcpus=${vcpus}\n`);
  const steps: string[][] = [
    ['create', cfg],
    ['wait-ready', 'tsrc', '--timeout', '120'],
    ['template', 'create', 'tsrc', 'bench'],
    ['destroy', 'tsrc'],
  ];
  for (const a of steps) {
    const r = await d.cli(a, 300_000);
    if (r.code !== 0) throw new Error(`xenode ${a.join(' ')} failed: ${r.stderr.trim()}`);
    if (a[0] === 'template') log(r.stderr.trim());
  }
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const host = hostFacts();
  log(`bench:boot: ${rounds} rounds, ${memoryMiB} MiB, ${vcpus} vCPU(s); temp dir ${tmp}`);
  if (!existsSync(join(ROOT, 'dist', 'xenode.cjs'))) {
    log('warning: dist/xenode.cjs is missing, so bin/xenode runs from source through tsx (slow); run `npm run build`');
  }

  const guest = await ensureDefaultGuest({ onProgress: (m) => log(`default guest: ${m}`) });
  log(`guest: ${guest.kernelVersion} (${guest.dir})`);
  // World-readable copies for libvirt (the cache under /root is not readable to its QEMU user).
  const gdir = join(tmp, 'guest');
  await run('mkdir', ['-m', '0755', gdir]);
  for (const f of [guest.vmlinux, guest.initrd]) copyFileSync(f, join(gdir, f.split('/').pop() as string));
  await run('chmod', ['0644', ...[guest.vmlinux, guest.initrd].map((f) => join(gdir, f.split('/').pop() as string))]);

  const foreignAtStart = foreignQemus(ctx.ourPids);
  const wanted = (id: string) => !only || only.has(id);

  // ---- daemons -------------------------------------------------------------------
  const main = new XenodeDaemon(ctx, join(tmp, 'xenode-main'));
  log('starting the bench xenoded (not timed)...');
  await main.start();
  const xenode = new XenodeContender(ctx, { id: 'xenode', daemon: main });
  const contenders: Contender[] = [];
  if (wanted('xenode') || wanted('qemu-same')) contenders.push(xenode);
  if (wanted('qemu-same')) contenders.push(new QemuSameContender(ctx, () => xenode.lastQemu));

  let libvirtSkip: string | undefined;
  const libvirtIds = ['libvirt', ...(opt['no-extras'] ? [] : ['libvirt-minimal'])].filter(wanted);
  if (libvirtIds.length) {
    libvirtSkip = await ensureLibvirt(log);
    if (libvirtSkip) log(`skipping libvirt: ${libvirtSkip}`);
    else {
      const note = libvirtUserNote();
      if (note) log(`note: ${note}`);
      const boot = () => {
        const argv = xenode.lastQemu?.argv ?? [];
        const i = argv.indexOf('-append');
        const append = i >= 0 ? (argv[i + 1] ?? '') : 'console=ttyS0 xenode.name=NAME quiet';
        return {
          kernel: join(gdir, guest.vmlinux.split('/').pop() as string),
          initrd: join(gdir, guest.initrd.split('/').pop() as string),
          // Same command line as Xenode's, with the domain's own name.
          cmdline: append.replace(/xenode\.name=\S+/, 'xenode.name=NAME'),
        };
      };
      // "libvirt" mirrors the devices Xenode's command line has (so only the toolstacks differ);
      // "libvirt-minimal" has none (no balloon, no rng): what the guest's devices cost.
      if (libvirtIds.includes('libvirt')) {
        contenders.push(
          new LibvirtContender(ctx, boot, {
            id: 'libvirt',
            informational: false,
            devices: () => (xenode.lastQemu ? devicesFromQemuArgv(xenode.lastQemu.argv) : undefined),
          }),
        );
      }
      if (libvirtIds.includes('libvirt-minimal')) {
        contenders.push(
          new LibvirtContender(ctx, boot, {
            id: 'libvirt-minimal',
            informational: true,
            devices: () => withoutDevices(xenode.lastQemu ? devicesFromQemuArgv(xenode.lastQemu.argv) : undefined),
          }),
        );
      }
    }
  }
  if (wanted('xenode-template')) {
    // A daemon of its own, so the cold-boot contender never finds the template.
    const d = new XenodeDaemon(ctx, join(tmp, 'xenode-template'));
    log('starting a xenoded and making a template of the bench guest (not timed)...');
    await d.start();
    await makeTemplate(d);
    contenders.push(new XenodeContender(ctx, { id: 'xenode-template', daemon: d }));
  }
  if (wanted('qemu-default')) {
    contenders.push(
      new QemuDefaultContender(ctx, { qemu: 'qemu-system-x86_64', kernel: guest.kernel, initrd: guest.initrd }),
    );
  }
  if (!opt['no-extras']) {
    for (const m of ['pc', 'microvm']) {
      const id = `xenode-${m}`;
      if (wanted(id)) {
        contenders.push(
          new XenodeContender(ctx, { id, daemon: main, overrides: [`machine=${m}`], informational: true }),
        );
      }
    }
    for (const tb of [32, 64]) {
      const id = `xenode-tb${tb}`;
      if (!wanted(id)) continue;
      const d = new XenodeDaemon(ctx, join(tmp, `xenode-tb${tb}`), { XENODE_TCG_TB_MIB: String(tb) });
      log(`starting a xenoded with XENODE_TCG_TB_MIB=${tb} (not timed)...`);
      await d.start();
      contenders.push(new XenodeContender(ctx, { id, daemon: d, informational: true }));
    }
  }

  // ---- CLI baselines (what any xenode command costs before it does anything) ----------
  const timeIt = async (cmd: string, args: string[], env?: NodeJS.ProcessEnv) => {
    const xs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      await run(cmd, args, { env });
      xs.push((performance.now() - t) / 1000);
    }
    return median(xs);
  };
  const baseline = {
    nodeStart: await timeIt(process.execPath, ['-e', '0']),
    cliVersion: await timeIt(main.bin, ['--version'], main.env),
    cliList: await timeIt(main.bin, ['list'], main.env),
  };
  log(
    `baselines: node -e 0 ${fmt(baseline.nodeStart, 3)} s, xenode --version ${fmt(baseline.cliVersion, 3)} s, xenode list ${fmt(baseline.cliList, 3)} s`,
  );

  // ---- warm-up (not counted; also captures Xenode's QEMU command line) ----------------
  let seq = 0;
  const attempts: Attempt[] = [];
  const runOne = async (c: Contender, round: number): Promise<Attempt> => {
    if (aborted) throw new Error('interrupted');
    const quiet = settleMaxMs > 0 ? await waitQuiet(settle, settleMaxMs) : { busy: Number.NaN, waitedMs: 0 };
    if (aborted) throw new Error('interrupted');
    const a: Attempt = {
      round,
      contender: c.id,
      load1: loadAvg1(),
      busyBefore: quiet.busy,
      busyDuring: Number.NaN,
      waitedMs: quiet.waitedMs,
    };
    const t0 = cpuTimes();
    try {
      a.sample = await c.run(`${++seq}`);
    } catch (e) {
      a.error = e instanceof Error ? e.message : String(e);
    }
    a.busyDuring = busyBetween(t0, cpuTimes());
    const s = a.sample;
    log(
      `${round ? `round ${String(round).padStart(2)}/${rounds}` : 'warm-up    '}  ${c.id.padEnd(15)} ${
        s
          ? `${fmt(s.wall, 3)} s  (guest uptime ${fmt(s.uptime)} s, QEMU peak RSS ${fmt(s.rssMiB, 0)} MiB${s.qemuExec !== undefined ? `, QEMU started at ${fmt(s.qemuExec)} s` : ''}${s.created !== undefined ? `, running at ${fmt(s.created, 3)} s` : ''})`
          : `FAILED: ${a.error}`
      }  [load ${fmt(a.load1)}, CPU busy before ${pct(a.busyBefore)}${a.waitedMs > 1000 ? ` after waiting ${fmt(a.waitedMs / 1000, 0)} s` : ''}, during ${pct(a.busyDuring)}]`,
    );
    return a;
  };
  for (let w = 0; w < Math.max(warmup, 1); w++) {
    for (const c of contenders) {
      if (w >= warmup && c !== xenode) continue; // with --warmup 0, xenode still runs once to capture its command line
      await runOne(c, 0);
    }
  }
  if (!xenode.lastQemu && contenders.some((c) => c.id === 'qemu-same')) {
    log('could not capture the QEMU command line from xenode; qemu-same runs will fail');
  }

  // ---- rounds: every contender once per round, in a fresh (seeded) random order ----------
  for (let r = 1; r <= rounds; r++) {
    const order = shuffle(contenders, rng);
    for (const c of order) {
      if (c === xenode && !wanted('xenode')) continue;
      attempts.push(await runOne(c, r));
    }
  }
  const foreignAtEnd = foreignQemus(ctx.ourPids);

  // ---- summary -----------------------------------------------------------------------
  interface Summary {
    id: string;
    informational: boolean;
    ok: number;
    failed: number;
    errors: string[];
    wall: number[];
    uptime: number[];
    rss: number[];
    overhead: number[];
    created: number[];
    qemuExec: number[];
    qemuCpu: number[];
    toolCpu: number[];
    busy: number[];
  }
  const summaries: Summary[] = [];
  for (const c of contenders) {
    if (c === xenode && !wanted('xenode')) continue;
    const mine = attempts.filter((a) => a.contender === c.id);
    const ok = mine.flatMap((a) => (a.sample ? [a.sample] : []));
    summaries.push({
      id: c.id,
      informational: c.informational,
      ok: ok.length,
      failed: mine.length - ok.length,
      errors: mine.flatMap((a) => (a.error ? [`round ${a.round}: ${a.error}`] : [])),
      wall: ok.map((s) => s.wall),
      uptime: ok.map((s) => s.uptime),
      rss: ok.flatMap((s) => (s.rssMiB !== undefined ? [s.rssMiB] : [])),
      overhead: ok.map((s) => s.wall - s.uptime),
      created: ok.flatMap((s) => (s.created !== undefined ? [s.created] : [])),
      qemuExec: ok.flatMap((s) => (s.qemuExec !== undefined && !Number.isNaN(s.qemuExec) ? [s.qemuExec] : [])),
      busy: mine.map((a) => a.busyDuring).filter((x) => !Number.isNaN(x)),
      qemuCpu: ok.flatMap((s) => (s.qemuCpu !== undefined && !Number.isNaN(s.qemuCpu) ? [s.qemuCpu] : [])),
      toolCpu: ok.flatMap((s) => (s.toolCpu !== undefined && !Number.isNaN(s.toolCpu) ? [s.toolCpu] : [])),
    });
  }
  const byId = new Map(summaries.map((s) => [s.id, s]));
  const sample = (id: string, round: number) => attempts.find((a) => a.contender === id && a.round === round)?.sample;
  /** Per-round paired values f(a, b), for rounds where both ran. */
  const paired = (a: string, b: string, f: (x: BootSample, y: BootSample) => number) => {
    const out: number[] = [];
    for (let r = 1; r <= rounds; r++) {
      const x = sample(a, r);
      const y = sample(b, r);
      if (x && y) out.push(f(x, y));
    }
    return out;
  };

  const header = [
    'contender',
    'ok/runs',
    'median s',
    'min s',
    'max s',
    'guest uptime at ready s',
    'median peak RSS MiB',
  ];
  const row = (s: Summary) => [
    s.id,
    `${s.ok}/${s.ok + s.failed}`,
    fmt(median(s.wall)),
    fmt(min(s.wall)),
    fmt(max(s.wall)),
    fmt(median(s.uptime)),
    fmt(median(s.rss), 0),
  ];
  const mainTable = markdownTable(header, summaries.filter((s) => !s.informational).map(row));
  const extraRows = summaries.filter((s) => s.informational);
  const extraTable = extraRows.length ? markdownTable(header, extraRows.map(row)) : '';

  interface Goal {
    text: string;
    ratio: number;
    pairedRatio: number;
    goal: string;
    met: boolean | undefined;
  }
  const goal = (a: string, b: string, limit: number, strict: boolean, label: string): Goal | undefined => {
    const sa = byId.get(a);
    const sb = byId.get(b);
    if (!sa || !sb || !sa.ok || !sb.ok) return undefined;
    const ratio = median(sa.wall) / median(sb.wall);
    const pr = median(paired(a, b, (x, y) => x.wall / y.wall));
    return {
      text: `${a} / ${b}`,
      ratio,
      pairedRatio: pr,
      goal: label,
      met: strict ? ratio < limit : ratio <= limit,
    };
  };
  const goals = [
    goal('xenode-template', 'xenode', 0.25, false, '≤ 0.25'),
    goal('xenode', 'qemu-same', 1.05, false, '≤ 1.05'),
    goal('xenode', 'qemu-default', 0.85, false, '≤ 0.85'),
    goal('xenode', 'libvirt', 1, true, '< 1 (ahead)'),
  ].filter((g): g is Goal => g !== undefined);
  const goalTable = markdownTable(
    ['ratio (wall time)', 'of medians', 'median of per-round ratios', 'goal', 'met'],
    goals.map((g) => [g.text, fmt(g.ratio, 3), fmt(g.pairedRatio, 3), g.goal, g.met ? 'yes' : 'NO']),
  );

  const print = ['', mainTable, extraTable ? `\ninformational:\n${extraTable}` : '', '', goalTable, ''].join('\n');
  process.stdout.write(`${print}\n`);

  // ---- where the time goes -------------------------------------------------------------
  /** Median over the counted runs of `id` of a per-run value. */
  const medOf = (id: string, f: (s: BootSample) => number | undefined): number =>
    median(
      attempts.flatMap((a) => {
        if (a.contender !== id || !a.sample) return [];
        const v = f(a.sample);
        return v === undefined || Number.isNaN(v) ? [] : [v];
      }),
    );
  const has = (id: string) => (byId.get(id)?.ok ?? 0) > 0;
  const lag = (s: BootSample) => s.consoleLag;
  const preExec = (s: BootSample) => s.qemuExec;
  const startup = (s: BootSample) =>
    s.qemuExec === undefined ? undefined : s.wall - s.uptime - (s.consoleLag ?? 0) - s.qemuExec;
  const lines: string[] = [];
  const mainIds = ['xenode', 'qemu-same', 'libvirt', 'qemu-default'].filter(has);
  const allIds = summaries.filter((s) => s.ok).map((s) => s.id);
  const f2 = (x: number) => fmt(x);
  /** Seconds as whole milliseconds, never below 0 (for quantities measured by polling). */
  const ms = (x: number) => (Number.isNaN(x) ? '–' : `${Math.round(Math.max(0, x) * 1000)} ms`);
  /** Signed difference with a real minus sign, 0 when it rounds to 0. */
  const signed = (x: number, digits: number) => {
    const r = Number(x.toFixed(digits));
    return r === 0 ? `±${(0).toFixed(digits)}` : `${r > 0 ? '+' : '−'}${Math.abs(r).toFixed(digits)}`;
  };
  const breakdown = (ids: string[]) =>
    markdownTable(
      ['median per run', ...ids],
      [
        ['command start → QEMU process start s', ...ids.map((id) => f2(medOf(id, preExec)))],
        [
          'QEMU start → guest clock starts s (QEMU init, firmware, early kernel; for toolstacks also their setup before the guest runs)',
          ...ids.map((id) => f2(medOf(id, startup))),
        ],
        ['guest clock → ready line s (guest uptime)', ...ids.map((id) => f2(medOf(id, (s) => s.uptime)))],
        [
          "ready line in QEMU's console log → seen by the reader s (console path)",
          ...ids.map((id) => ms(medOf(id, lag))),
        ],
        ['**wall s**', ...ids.map((id) => f2(medOf(id, (s) => s.wall)))],
        ['QEMU CPU s to ready', ...ids.map((id) => f2(medOf(id, (s) => s.qemuCpu)))],
        ['toolstack CPU s to ready (CLI, daemons)', ...ids.map((id) => f2(medOf(id, (s) => s.toolCpu)))],
        [
          'QEMU peak RSS MiB',
          ...ids.map((id) =>
            fmt(
              medOf(id, (s) => s.rssMiB),
              0,
            ),
          ),
        ],
        [
          'QEMU RSS at ready MiB: guest RAM / anon / files',
          ...ids.map(
            (id) =>
              `${fmt(
                medOf(id, (s) => s.rssParts?.shmem),
                0,
              )} / ${fmt(
                medOf(id, (s) => s.rssParts?.anon),
                0,
              )} / ${fmt(
                medOf(id, (s) => s.rssParts?.file),
                0,
              )}`,
          ),
        ],
        [
          'QEMU own RSS at ready MiB (guest RAM + anon)',
          ...ids.map((id) =>
            fmt(
              medOf(id, (s) => (s.rssParts ? s.rssParts.shmem + s.rssParts.anon : undefined)),
              0,
            ),
          ),
        ],
        ['host CPU busy during run', ...ids.map((id) => pct(median(byId.get(id)?.busy ?? [])))],
      ],
    );
  if (mainIds.length) {
    lines.push(
      "The guest's clock (its uptime in the ready line) starts early in the kernel, when it sets up the TSC; everything " +
        'before that (process start, toolstack work, QEMU initialisation, SeaBIOS and the option ROM that loads the kernel, ' +
        'bzImage decompression, early kernel entry) is host-side time. The console path is measured by following ' +
        "QEMU's own copy of the serial output (its chardev `logfile=`) next to the contender's reader. Medians of each " +
        'quantity over the runs (so the rows need not add up exactly):',
      '',
      breakdown(mainIds),
      '',
    );
    const extraIds = allIds.filter((id) => !mainIds.includes(id));
    if (extraIds.length) lines.push('The informational rows, likewise:', '', breakdown(extraIds), '');
  }
  if (has('xenode') && has('qemu-same')) {
    const wallDiff = median(paired('xenode', 'qemu-same', (x, y) => x.wall - y.wall));
    const hostDiff = median(paired('xenode', 'qemu-same', (x, y) => x.wall - x.uptime - (y.wall - y.uptime)));
    const same = medOf('qemu-same', (s) => s.wall);
    const cpuOf = (x: BootSample) => (x.qemuCpu ?? Number.NaN) + (x.toolCpu ?? 0);
    const cpuRatio = median(paired('xenode', 'qemu-same', (x, y) => cpuOf(x) / cpuOf(y)));
    lines.push(
      `- **What Xenode adds (xenode − qemu-same, same QEMU command line, paired per round):** wall time ` +
        `${fmt(wallDiff, 3)} s, of which host-side (wall − guest uptime) ${fmt(hostDiff, 3)} s. The guest's own boot ` +
        `varies more from run to run on a shared host than the toolstack's cost, so the host-side difference is the steadier ` +
        `measure: (qemu-same median + ${fmt(hostDiff, 3)} s) / qemu-same median = **${fmt((same + hostDiff) / same, 3)}**. ` +
        `In CPU time (QEMU + CLI + daemon, which load disturbs less): xenode / qemu-same = **${fmt(cpuRatio, 3)}**.`,
    );
    const running = medOf('xenode', (s) => s.created);
    const exec = medOf('xenode', preExec);
    lines.push(
      `- **Xenode's critical path:** QEMU starts ${fmt(exec)} s after the CLI is spawned (Node start of the CLI: ` +
        `\`node -e 0\` takes ${fmt(baseline.nodeStart)} s, \`xenode --version\` ${fmt(baseline.cliVersion)} s, a daemon round ` +
        `trip \`xenode list\` ${fmt(baseline.cliList)} s; then config parsing, the CLI's default-guest cache check, the HTTP ` +
        `request, and the daemon's boot plan, records and plugins). The CLI reports the domain running ${fmt(running)} s ` +
        `after spawn, i.e. ${fmt(running - exec)} s after QEMU started: QEMU initialises to its QMP greeting, then the ` +
        `daemon attaches the serial console, queries vCPUs, runs its plugins' QMP set-up and sends \`cont\` (QEMU runs -S ` +
        `until then), and answers the HTTP request. The console reaches the CLI ${ms(medOf('xenode', lag))} after QEMU ` +
        `wrote it (daemon reads the serial socket, one WebSocket frame per byte, CLI writes stdout), vs ` +
        `${ms(medOf('qemu-same', lag))} for a direct socket reader (the log is polled every 5 ms, so these are ±5 ms).`,
    );
  }
  if (has('qemu-default') && has('qemu-same')) {
    lines.push(
      `- **qemu-default vs qemu-same:** ${fmt(medOf('qemu-default', (s) => s.wall))} s vs ` +
        `${fmt(medOf('qemu-same', (s) => s.wall))} s; host-side (QEMU start → guest clock) ` +
        `${fmt(medOf('qemu-default', startup))} s vs ${fmt(medOf('qemu-same', startup))} s, guest side (uptime at ready) ` +
        `${fmt(medOf('qemu-default', (s) => s.uptime))} s vs ${fmt(medOf('qemu-same', (s) => s.uptime))} s. Host side, ` +
        `QEMU's defaults boot the compressed bzImage, which SeaBIOS/linuxboot load and the guest decompresses before its ` +
        `clock starts, and bring a VGA card, an e1000 NIC with its option ROM and slirp, IDE and floppy; Xenode boots the ` +
        `uncompressed vmlinux through its PVH entry on a \`-nodefaults\` machine and tells the kernel the TSC's ` +
        `frequency (\`tsc_early_khz=\`: under TCG its calibration against the PIT fails and falls back to the HPET, ` +
        `0.4–0.5 s before the guest's clock starts). Guest side, the machines differ in what ` +
        `the kernel and the initramfs must set up: QEMU's default CPU model is qemu64 where Xenode asks for \`-cpu ${TCG_CPU_MODEL}\` ` +
        `and its kernel command line skips the crypto self-tests (\`cryptomgr.notests\`, \`initcall_blacklist=crypto_kdf108_init\`) ` +
        `and keeps the kernel's LOCK prefixes (\`noreplace-smp\`: a one-CPU kernel otherwise rewrites each of them, and under TCG ` +
        `every such write lands on translated code), where QEMU's default runs with \`console=ttyS0 quiet\`; Xenode's command line ` +
        `also adds the devices its plugins want (see qemu-same's command line below), which the guest probes and whose drivers ` +
        `the initramfs loads before its ready line (the drivers of absent devices load after it). RSS ${fmt(
          medOf('qemu-default', (s) => s.rssMiB),
          0,
        )} vs ` +
        `${fmt(
          medOf('qemu-same', (s) => s.rssMiB),
          0,
        )} MiB.`,
    );
  }
  if (has('libvirt')) {
    lines.push(
      `- **libvirt:** QEMU starts ${fmt(medOf('libvirt', preExec))} s after \`virsh create\` (virsh is a small C client ` +
        `and libvirtd is already running), but libvirt then sets QEMU up over QMP while it waits in -S (cgroups, ` +
        `security labels, virtlogd, capability checks) before it resumes it: ${fmt(medOf('libvirt', startup))} s from QEMU ` +
        `start to the guest clock vs ${fmt(medOf('qemu-same', startup))} s for bare QEMU. CPU: virsh + libvirtd + virtlogd ` +
        `${fmt(medOf('libvirt', (s) => s.toolCpu))} s vs Xenode's CLI + daemon ${fmt(medOf('xenode', (s) => s.toolCpu))} s.`,
    );
  }
  if (has('libvirt') && has('libvirt-minimal')) {
    const devCost = median(paired('libvirt', 'libvirt-minimal', (x, y) => x.uptime - y.uptime));
    lines.push(
      `- **What the guest's devices cost:** libvirt-minimal is the same libvirt domain without the devices Xenode's ` +
        `command line adds (${describeDevices(xenode.lastQemu ? devicesFromQemuArgv(xenode.lastQemu.argv) : undefined)}): ` +
        `${fmt(medOf('libvirt-minimal', (s) => s.wall))} s vs ${fmt(medOf('libvirt', (s) => s.wall))} s, guest uptime at ready ` +
        `${fmt(medOf('libvirt-minimal', (s) => s.uptime))} s vs ${fmt(medOf('libvirt', (s) => s.uptime))} s (paired ` +
        `difference ${signed(devCost, 2)} s): the guest probes each device and the initramfs loads its driver, all under TCG.`,
    );
  }
  const tbIds = ['xenode', 'xenode-tb64', 'xenode-tb32'].filter(has);
  if (tbIds.length > 1) {
    const rssOf = (id: string) => medOf(id, (s) => s.rssMiB);
    const base = rssOf('xenode');
    lines.push(
      `- **RSS and the TB cache:** at the ready line Xenode's QEMU holds ${fmt(
        medOf('xenode', (s) => s.rssParts?.shmem),
        0,
      )} MiB ` +
        `of guest RAM (the memfd: what the guest touched, kernel and initramfs included), ` +
        `${fmt(
          medOf('xenode', (s) => s.rssParts?.anon),
          0,
        )} MiB anonymous (TCG's translation cache and QEMU's heap) and ` +
        `${fmt(
          medOf('xenode', (s) => s.rssParts?.file),
          0,
        )} MiB of files. The files are mostly the kernel: for the PVH ` +
        `boot QEMU maps the vmlinux ELF and keeps it mapped (most of its ${fmt(statSync(guest.vmlinux).size / 2 ** 20, 0)} MiB resident; also the initrd), ` +
        `page cache that every domain booting the same image shares, so peak RSS overstates a PVH domain's own memory ` +
        `by that much; a bzImage (qemu-default) is copied into anonymous memory instead, and there guest RAM is private ` +
        `anonymous memory rather than a memfd. ` +
        tbIds
          .map(
            (id) =>
              `${id === 'xenode' ? 'default tb-size' : `tb-size=${id.slice(9)} MiB`}: peak ${fmt(rssOf(id), 0)} MiB` +
              (id === 'xenode'
                ? ''
                : ` (${signed(rssOf(id) - base, 0)} MiB, anonymous ${fmt(
                    medOf(id, (s) => s.rssParts?.anon),
                    0,
                  )} MiB)`) +
              `, ${fmt(medOf(id, (s) => s.wall))} s` +
              (id === 'xenode' ? '' : ` (${signed(medOf(id, (s) => s.wall) - medOf('xenode', (s) => s.wall), 2)} s)`),
          )
          .join('; ') +
        '. The translation cache lives in the anonymous part, so capping it (XENODE_TCG_TB_MIB on the daemon sets ' +
        '`-accel tcg,tb-size=N`) can only take from that part; a cap below what a boot translates makes QEMU flush ' +
        'and retranslate. The larger shares of peak RSS are guest RAM and the mapped kernel.',
    );
  }
  const machines = ['xenode', 'xenode-pc', 'xenode-microvm'].filter(
    (id) => (byId.get(id)?.ok ?? 0) + (byId.get(id)?.failed ?? 0) > 0,
  );
  if (machines.length > 1) {
    lines.push(
      '- **Machine type:** ' +
        machines
          .map((id) => {
            const s = byId.get(id) as Summary;
            return `${id === 'xenode' ? 'q35 (the default)' : id.slice(7)}: ${fmt(median(s.wall))} s (guest ${fmt(median(s.uptime))} s + host ${fmt(medOf(id, startup))} s after QEMU start), ${fmt(median(s.rss), 0)} MiB, ${s.ok}/${s.ok + s.failed} booted`;
          })
          .join('; ') +
        `. Fastest to ready in this run: ${[...machines].sort((a, b) => medOf(a, (x) => x.wall) - medOf(b, (x) => x.wall))[0] === 'xenode' ? 'q35' : ([...machines].sort((a, b) => medOf(a, (x) => x.wall) - medOf(b, (x) => x.wall))[0] ?? '').slice(7)}` +
        '. microvm has no PIT/HPET to calibrate the TSC against under TCG and can hang at boot on a loaded host ' +
        '(Xenode adds `tsc_early_khz=` for it); ' +
        "pc's ACPI _PRT is an AML loop (128 entries) that Linux evaluates again for every PCI device it enables, " +
        'which costs 0.2–0.3 s per device under TCG; q35 describes its interrupt routing as a table.',
    );
  }

  // ---- document ----------------------------------------------------------------------
  const loads = attempts.map((a) => a.load1).filter((x) => !Number.isNaN(x));
  const busyBefore = attempts.map((a) => a.busyBefore).filter((x) => !Number.isNaN(x));
  const busyDuring = attempts.map((a) => a.busyDuring).filter((x) => !Number.isNaN(x));
  const busyStarts = busyBefore.filter((x) => x > settle).length;
  const failures = summaries.filter((s) => s.failed);
  const described = contenders
    .filter((c) => !(c === xenode && !wanted('xenode')))
    .map((c) => `- **${c.id}**${c.informational ? ' (informational)' : ''}: ${c.describe()}`);
  const doc = [
    `Wall time from starting the command to the guest's \`XENODE-READY\` line on its serial console, and QEMU's ` +
      `peak RSS (VmHWM from /proc/<qemu pid>/status, read right after the ready line). Run: \`npm run bench:boot\` ` +
      `(\`-- --rounds N --vcpus 2 --no-extras --only xenode,qemu-same\`). Source: \`bench/boot.ts\`.`,
    '',
    `- **Date:** ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC; **rounds:** ${rounds} (+${Math.max(warmup, 1)} warm-up, not counted); guest ${memoryMiB} MiB, ${vcpus} vCPU(s)`,
    `- **Machine:** ${host.nproc} CPUs (\`nproc\`), ${host.cpuModel}, ${fmt(host.ramGiB, 1)} GiB RAM; host kernel ${host.kernel}; Node ${host.nodeVersion}`,
    `- **Accelerator:** ${host.accelNote}`,
    `- **QEMU:** ${host.qemuVersion}; **guest:** Debian ${guest.kernelVersion} + busybox initramfs (the default guest)`,
    `- **Load:** 1-min load average at run starts median ${fmt(median(loads))}, max ${fmt(max(loads))} on ${host.nproc} CPUs. ` +
      (foreignAtStart.length || foreignAtEnd.length
        ? `Other people's QEMUs were running (${Math.max(foreignAtStart.length, foreignAtEnd.length)} at start/end), so absolute numbers are noisy; the alternation keeps the comparison fair.`
        : 'No other QEMU was running at start or end.'),
    `- **Host CPU busy** (all ${host.nproc} CPUs, from /proc/stat): just before each run median ${pct(median(busyBefore))}, ` +
      `max ${pct(max(busyBefore))}` +
      (settleMaxMs > 0
        ? ` (each run first waits up to ${settleMaxMs / 1000} s for ≤ ${pct(settle)}; ${busyStarts} of ${attempts.length} started above it)`
        : '') +
      `; during runs median ${pct(median(busyDuring))} (one booting guest alone keeps about ${pct(1 / host.nproc)} busy).`,
    '',
    '### Results',
    '',
    mainTable,
    '',
    goalTable,
    '',
    ...(extraTable
      ? [
          'Informational (same daemon with `machine=` overrides; separate daemons for the TB cache size):',
          '',
          extraTable,
          '',
        ]
      : []),
    failures.length
      ? `**Failed runs:** ${failures.map((s) => `${s.id} ${s.failed}`).join(', ')} — ${failures
          .flatMap((s) => s.errors.slice(0, 3).map((e) => `${s.id} ${e}`))
          .join('; ')}`
      : '**Failed runs:** none.',
    '',
    '### Where the time goes',
    '',
    ...lines,
    '',
    '### Method',
    '',
    `- Every round runs each contender once, in a random order drawn afresh each round (seed ${seed}), so drift and load from other work hit all of them alike and no contender always follows the same one. Each run is torn down (domain destroyed / QEMU killed) before the next starts.`,
    "- Xenode's daemon is started before the rounds (`xenode list` on a private XENODE_DIR), so daemon start-up is **not** counted; `xenode create -c` is timed from spawning the CLI to seeing the ready line on its stdout (the console relayed over the daemon's WebSocket).",
    '- qemu-same reads the serial chardev socket itself, connecting as soon as the socket exists; libvirt does the same with its unix serial socket; qemu-default reads `-serial stdio`.',
    ...(libvirtSkip ? [`- libvirt was skipped: ${libvirtSkip}.`] : []),
    ...(libvirtUserNote() ? [`- ${libvirtUserNote()}`] : []),
    '- Contenders:',
    ...described.map((d) => `  ${d}`),
  ].join('\n');

  if (!opt['no-doc']) {
    const file = join(ROOT, 'docs', 'benchmarks.md');
    replaceSection(file, HEADING, doc);
    log(`wrote ${file} (${HEADING})`);
  }
  if (opt.json) {
    writeFileSync(
      opt.json,
      `${JSON.stringify({ startedAt, host, rounds, vcpus, memoryMiB, baseline, attempts, goals }, null, 2)}\n`,
    );
    log(`wrote ${opt.json}`);
  }
  process.stdout.write(`\n${lines.join('\n')}\n`);
}

try {
  await main();
} catch (e) {
  if (aborted) log('bench:boot: interrupted');
  else log(`bench:boot failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exitCode = 1;
} finally {
  await cleanup.runAll();
}
