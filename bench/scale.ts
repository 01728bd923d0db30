// bench:scale — many small domains on one host: how fast they are created, how
// long until all are ready, what the daemon and each domain cost in memory, how
// fast `list` answers, and what the host's CPUs do with all of them idle.
//
//   npm run bench:scale -- [--counts 10,50,100] [--memory 128] [--parallel 4]
//                          [--timeout 900] [--idle 10] [--no-doc] [--json FILE]
//
// A count the host's free memory cannot hold is skipped and said so. The peer is
// Xenode's own QEMU command line run by hand (no daemon), at the smallest count,
// for the per-domain memory.

import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureDefaultGuest } from '../guest/build.ts';
import { Cleanup } from './lib/cleanup.ts';
import type { BenchContext } from './lib/contender.ts';
import { replaceSection } from './lib/doc.ts';
import { busyBetween, cpuTimes, hostFacts, loadAvg1 } from './lib/host.ts';
import { FileFollower, pidAlive, READY_RE, readPid, rssParts, stopPid } from './lib/proc.ts';
import { fmt, markdownTable, median } from './lib/stats.ts';
import { XenodeDaemon } from './lib/xenode.ts';

const HEADING = '## Many domains (bench:scale)';
const ROOT = resolve(import.meta.dirname, '..');

const { values: opt } = parseArgs({
  options: {
    counts: { type: 'string', default: '10,50,100' },
    memory: { type: 'string', default: '128' },
    parallel: { type: 'string', default: '4' },
    timeout: { type: 'string', default: '900' },
    idle: { type: 'string', default: '10' },
    'no-doc': { type: 'boolean', default: false },
    json: { type: 'string' },
  },
  strict: true,
});

function whole(name: string, v: string | undefined, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`bench:scale: --${name} must be a whole number of at least ${min}, got '${v}'\n`);
    process.exit(2);
  }
  return n;
}

const counts = (opt.counts ?? '').split(',').map((c) => whole('counts', c, 1));
const memoryMiB = whole('memory', opt.memory, 64);
const parallel = whole('parallel', opt.parallel, 1);
const timeoutMs = whole('timeout', opt.timeout, 10) * 1000;
const idleS = whole('idle', opt.idle, 1);

const cleanup = new Cleanup();
cleanup.installSignalHandlers();
const tmp = mkdtempSync('/tmp/xn-scale-');
cleanup.add(`remove ${tmp}`, () => rmSync(tmp, { recursive: true, force: true }));
const log = (s: string): void => void process.stderr.write(`${s}\n`);
const ctx: BenchContext = {
  root: ROOT,
  tmp,
  memoryMiB,
  vcpus: 1,
  timeoutMs,
  cleanup,
  ourPids: new Set(),
  log,
};

/** MemAvailable in MiB. */
function memAvailableMiB(): number {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

function rssMiB(pid: number | undefined): number {
  const p = rssParts(pid);
  return p ? p.anon + p.shmem + p.file : Number.NaN;
}

/** GET a daemon route on its Unix socket; resolves with the time it took, in ms. */
function timedGet(socketPath: string, path: string): Promise<number> {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const req = http.get({ socketPath, path }, (r) => {
      r.resume();
      r.on('end', () =>
        r.statusCode === 200 ? res(performance.now() - t0) : rej(new Error(`${path}: ${r.statusCode}`)),
      );
    });
    req.on('error', rej);
  });
}

/** Resolves when the domain's console log shows the default guest's ready line. */
function whenReady(daemon: XenodeDaemon, domid: number, deadline: number): Promise<number> {
  return new Promise((res, rej) => {
    let text = '';
    const f = new FileFollower(join(daemon.dir, 'domains', String(domid), 'console.log'), (d) => {
      text = (text + d.toString('latin1')).slice(-4096);
      if (READY_RE.test(text)) {
        clearInterval(timer);
        f.stop();
        res(performance.now());
      }
    }).start(50);
    const timer = setInterval(() => {
      if (performance.now() > deadline) {
        clearInterval(timer);
        f.stop();
        rej(new Error(`domain ${domid} not ready in time`));
      }
    }, 500);
  });
}

interface ScaleRow {
  count: number;
  skipped?: string;
  createRate?: number;
  allReadyS?: number;
  daemonIdleMiB?: number;
  daemonAllMiB?: number;
  perDomainHostMiB?: number;
  perDomainQemuMiB?: number;
  listCliMs?: number;
  listApiMs?: number;
  idleCpuPct?: number;
  load?: number;
}

async function runCount(n: number): Promise<ScaleRow> {
  const need = n * (memoryMiB + 160) + 1024;
  const avail = memAvailableMiB();
  if (avail < need) return { count: n, skipped: `needs about ${Math.round(need)} MiB, ${Math.round(avail)} MiB free` };
  const daemon = new XenodeDaemon(ctx, join(tmp, `d${n}`), { XENODE_LISTEN: 'none', XENODE_NET_HOSTPORT: 'none' });
  await daemon.start();
  try {
    await new Promise((r) => setTimeout(r, 2000));
    const daemonIdleMiB = rssMiB(daemon.pid);
    const avail0 = memAvailableMiB();
    const deadline = performance.now() + timeoutMs;
    const cfgs = Array.from({ length: n }, (_, i) => {
      const f = join(tmp, `s${n}-${i}.cfg`);
      writeFileSync(f, `name="s${i}"\nmemory=${memoryMiB}\nvcpus=1\n`);
      return f;
    });
    const ready: Promise<number>[] = [];
    const t0 = performance.now();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < cfgs.length) {
        const i = next++;
        const r = await daemon.cli(['create', cfgs[i] as string], 120_000);
        if (r.code !== 0) throw new Error(`create s${i}: ${r.stderr.trim()}`);
        const id = Number((await daemon.cli(['domid', `s${i}`])).stdout.trim());
        ready.push(whenReady(daemon, id, deadline));
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallel, n) }, worker));
    const created = performance.now();
    const readyAt = await Promise.all(ready);
    const allReadyS = (Math.max(...readyAt) - t0) / 1000;
    // Let the guests settle after boot before measuring idle costs.
    await new Promise((r) => setTimeout(r, 5000));
    const c0 = cpuTimes();
    await new Promise((r) => setTimeout(r, idleS * 1000));
    const idleCpuPct = busyBetween(c0, cpuTimes()) * 100;
    const qemuPids = readdirPids(daemon.dir);
    const perDomainQemuMiB = median(qemuPids.map((p) => rssMiB(p)));
    const sock = join(daemon.dir, 'xenoded.sock');
    const api: number[] = [];
    const cli: number[] = [];
    for (let i = 0; i < 10; i++) {
      api.push(await timedGet(sock, '/v1/domains'));
      const t = performance.now();
      await daemon.cli(['list']);
      cli.push(performance.now() - t);
    }
    return {
      count: n,
      createRate: n / ((created - t0) / 1000),
      allReadyS,
      daemonIdleMiB,
      daemonAllMiB: rssMiB(daemon.pid),
      perDomainHostMiB: (avail0 - memAvailableMiB()) / n,
      perDomainQemuMiB,
      listCliMs: median(cli),
      listApiMs: median(api),
      idleCpuPct,
      load: loadAvg1(),
    };
  } finally {
    await daemon.stop();
  }
}

function readdirPids(dir: string): number[] {
  return readdirSync(join(dir, 'domains'))
    .map((id) => readPid(join(dir, 'domains', id, 'qemu.pid')))
    .filter((p): p is number => p !== undefined);
}

/** The peer: Xenode's QEMU command line of one domain, run by hand `k` times; median RSS once all are ready. */
async function plainQemuMiB(k: number): Promise<number> {
  const daemon = new XenodeDaemon(ctx, join(tmp, 'peer'), { XENODE_LISTEN: 'none', XENODE_NET_HOSTPORT: 'none' });
  await daemon.start();
  let argv: string[];
  let runDir: string;
  try {
    const f = join(tmp, 'peer.cfg');
    writeFileSync(f, `name="peer"\nmemory=${memoryMiB}\nvcpus=1\n`);
    const r = await daemon.cli(['create', f]);
    if (r.code !== 0) throw new Error(`create peer: ${r.stderr}`);
    const id = (await daemon.cli(['domid', 'peer'])).stdout.trim();
    runDir = join(daemon.dir, 'domains', id);
    const pid = readPid(join(runDir, 'qemu.pid'));
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } finally {
    await daemon.stop();
  }
  const pids: number[] = [];
  const ready: Promise<number>[] = [];
  const deadline = performance.now() + timeoutMs;
  for (let i = 0; i < k; i++) {
    const dir = mkdtempSync(join(tmp, 'plain-'));
    const [bin, ...args] = argv.filter((a) => a !== '-S').map((a) => a.replaceAll(runDir, dir));
    const out = openSync(join(dir, 'qemu.log'), 'a');
    const child = spawn(bin as string, args, { detached: true, stdio: ['ignore', out, out] });
    closeSync(out);
    const pid = child.pid as number;
    pids.push(pid);
    cleanup.add(`kill plain qemu ${pid}`, () => stopPid(pid, 2000));
    ready.push(
      new Promise((res, rej) => {
        let text = '';
        const fl = new FileFollower(join(dir, 'console.log'), (d) => {
          text = (text + d.toString('latin1')).slice(-4096);
          if (READY_RE.test(text)) {
            fl.stop();
            res(performance.now());
          }
        }).start(50);
        const t = setInterval(() => {
          if (performance.now() > deadline || !pidAlive(pid)) {
            clearInterval(t);
            fl.stop();
            rej(new Error(`plain qemu ${pid} not ready`));
          }
        }, 500);
      }),
    );
  }
  await Promise.all(ready);
  await new Promise((r) => setTimeout(r, 5000));
  const m = median(pids.map((p) => rssMiB(p)));
  for (const p of pids) await stopPid(p, 2000);
  return m;
}

async function main(): Promise<void> {
  await ensureDefaultGuest();
  const facts = hostFacts();
  const date = new Date().toISOString().slice(0, 16).replace('T', ' ');
  const rows: ScaleRow[] = [];
  for (const n of counts) {
    log(`bench:scale: ${n} domains of ${memoryMiB} MiB…`);
    const row = await runCount(n).catch((e: unknown) => ({
      count: n,
      skipped: `failed: ${e instanceof Error ? e.message : String(e)}`,
    }));
    log(`bench:scale: ${JSON.stringify(row)}`);
    rows.push(row);
  }
  const k = Math.min(...counts, 10);
  log(`bench:scale: peer, ${k} plain QEMUs…`);
  const peer = await plainQemuMiB(k).catch(() => Number.NaN);
  if (opt.json) writeFileSync(opt.json, JSON.stringify({ rows, peer }, null, 2));
  const table = markdownTable(
    [
      'domains',
      'create rate /s',
      'all ready s',
      'daemon MiB idle → all',
      'host MiB per domain',
      'QEMU RSS MiB (median)',
      '`list` CLI ms',
      'GET /v1/domains ms',
      'host CPU % all idle',
      'load',
    ],
    rows.map((r) =>
      r.skipped
        ? [String(r.count), `skipped: ${r.skipped}`, '', '', '', '', '', '', '', '']
        : [
            String(r.count),
            fmt(r.createRate, 2),
            fmt(r.allReadyS, 1),
            `${fmt(r.daemonIdleMiB, 0)} → ${fmt(r.daemonAllMiB, 0)}`,
            fmt(r.perDomainHostMiB, 0),
            fmt(r.perDomainQemuMiB, 0),
            fmt(r.listCliMs, 0),
            fmt(r.listApiMs, 1),
            fmt(r.idleCpuPct, 0),
            fmt(r.load, 1),
          ],
    ),
  );
  const body = `Run ${date} UTC on ${facts.cpuModel}, ${facts.nproc} CPUs, ${facts.ramGiB.toFixed(0)} GiB, Linux ${facts.kernel}, ${facts.qemuVersion}, Node ${facts.nodeVersion}. ${facts.accelNote}. Source: \`bench/scale.ts\` (\`npm run bench:scale -- --counts ${counts.join(',')} --memory ${memoryMiB} --parallel ${parallel}\`).

Domains of ${memoryMiB} MiB, 1 vCPU, the default guest, created ${parallel} at a time through the CLI; "all ready" is from the first create to the last guest's ready line on its console; the daemon's resident memory before the first domain and with all of them; host memory per domain is the drop of MemAvailable divided by the count; \`list\` is the CLI (Node start-up included) and the API call it makes, medians of 10; host CPU is the busy share of all CPUs over ${idleS} s with every guest idle.

${table}

Peer: Xenode's QEMU command line of one domain run by hand (no daemon, no switch), ${k} at once: median QEMU RSS ${fmt(peer, 0)} MiB.

Goals (issue 22): the daemon under 60 MiB with 50 domains; 100 idle ${memoryMiB} MiB domains on this 24 GiB host; \`list\` under 50 ms at 100 domains.`;
  if (!opt['no-doc']) replaceSection(join(ROOT, 'docs', 'benchmarks.md'), HEADING, body);
  process.stdout.write(`${body}\n`);
}

main()
  .catch((e: unknown) => {
    process.stderr.write(`bench:scale: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  })
  .finally(() => cleanup.runAll(log));
