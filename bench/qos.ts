// bench:qos — do Xenode's guarantees hold on real guests? In one run, with the
// rounds interleaving Xenode and a peer built by hand from the same Linux and
// QEMU mechanisms (cgroup v1 groups, QEMU's own throttling, tc on a Linux
// bridge's TAP):
//   weight   two CPU-bound guests on one host CPU, cpu_weight 512 and 256: CPU time 2:1 within 10 %
//   cap      a busy guest with cap=25: 25 ± 5 % of one CPU
//   disk     dd onto a disk limited to 10 MiB/s: within ±10 %
//   net      a TCP transfer through rate=8Mb/s: within ±10 %, and an unlimited
//            domain's transfer next to it slowed by at most 10 %
//
//   npm run bench:qos -- [--rounds 3] [--only weight,cap,disk,net] [--no-doc]

import { type ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureDefaultGuest, type GuestImage } from '../guest/build.ts';
import { Cleanup } from './lib/cleanup.ts';
import type { BenchContext } from './lib/contender.ts';
import { replaceSection } from './lib/doc.ts';
import { GuestConsole } from './lib/guest-console.ts';
import { hostFacts, loadAvg1 } from './lib/host.ts';
import { run, stopPid } from './lib/proc.ts';
import { fmt, markdownTable, max, median, min } from './lib/stats.ts';
import { XenodeDaemon } from './lib/xenode.ts';

const ROOT = resolve(import.meta.dirname, '..');
const HEADING = '## Guarantees and quotas (bench:qos)';
const SECTIONS = ['weight', 'cap', 'disk', 'net'] as const;
type SectionId = (typeof SECTIONS)[number];
const CG = '/sys/fs/cgroup';
const PEER_CG = 'xnbench-qos';
const SW_NET = '10.235.0';
const HOST_TAP = 'xnqos0';
const BRIDGE = 'xnqosbr0';
const BR_NET = '10.236.0';
const SINK_PORT = 7200;
/** Seconds of CPU sampling per measurement. */
const CPU_WINDOW_S = 15;
const DISK_MIB = 48;
const DISK_LIMIT = 10 * 2 ** 20;
const NET_MB = 4;

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    only: { type: 'string' },
    'no-doc': { type: 'boolean', default: false },
  },
  strict: true,
});
const rounds = Number(opt.rounds);
if (!Number.isInteger(rounds) || rounds < 1) {
  process.stderr.write('bench:qos: --rounds must be a positive integer\n');
  process.exit(2);
}
const only = opt.only ? new Set(opt.only.split(',').map((s) => s.trim())) : undefined;
for (const s of only ?? []) {
  if (!(SECTIONS as readonly string[]).includes(s)) {
    process.stderr.write(`bench:qos: unknown section '${s}' (sections: ${SECTIONS.join(', ')})\n`);
    process.exit(2);
  }
}
const wanted = (s: SectionId) => !only || only.has(s);
const log = (s: string) => process.stderr.write(`${s}\n`);
const cleanup = new Cleanup();
cleanup.installSignalHandlers();

// ---- small tools ------------------------------------------------------------------

const TICK = 100; // USER_HZ

/** utime + stime of a /proc stat line, seconds. */
function statSeconds(stat: string): number {
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK;
}

/** CPU seconds of a QEMU's vCPU threads (named `CPU n/TCG` with debug-threads=on): the guest's own
 *  CPU time, what cpu_weight and cpus= apply to. Falls back to the whole process. */
function cpuSeconds(pid: number): number {
  let sum = 0;
  let found = false;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8');
      if (!/^CPU \d+\//.test(comm)) continue;
      sum += statSeconds(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
      found = true;
    } catch {}
  }
  return found ? sum : statSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** CPU seconds each pid used over the same window. */
async function cpuOver(pids: number[], seconds: number): Promise<number[]> {
  const a = pids.map(cpuSeconds);
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const b = pids.map(cpuSeconds);
  const wall = (performance.now() - t0) / 1000;
  return pids.map((_, i) => ((b[i] as number) - (a[i] as number)) / wall);
}

async function sh(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args, { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** A cgroup v1 group of the peer's, in one controller. */
function peerGroup(ctrl: string, name: string, knobs: Record<string, string>): string {
  const dir = join(CG, ctrl, PEER_CG, name);
  mkdirSync(dir, { recursive: true });
  for (const [k, v] of Object.entries(knobs)) writeFileSync(join(dir, k), v);
  cleanup.add(`remove cgroup ${dir}`, async () => {
    for (let i = 0; i < 50; i++) {
      try {
        rmdirSync(dir);
        break;
      } catch {
        await sleep(100);
      }
    }
    try {
      rmdirSync(join(CG, ctrl, PEER_CG));
    } catch {}
  });
  return dir;
}

interface Guest {
  name: string;
  pid: number;
  con: GuestConsole;
  stop(): Promise<void>;
}

async function readyShell(con: GuestConsole, name: string): Promise<void> {
  await con.expect(/XENODE-READY/, 240_000);
  await con.expect(new RegExp(`${name}:/# `), 60_000);
}

// ---- Xenode guests --------------------------------------------------------------

async function xenodeGuest(daemon: XenodeDaemon, tmp: string, name: string, cfgLines: string[]): Promise<Guest> {
  const cfg = join(tmp, `${name}.cfg`);
  writeFileSync(cfg, [`name = "${name}"`, 'memory = 256', ...cfgLines, ''].join('\n'));
  const r = await daemon.cli(['create', cfg], 240_000);
  if (r.code !== 0) throw new Error(`xenode create ${name}: ${r.stderr.trim()}`);
  const undo = cleanup.add(`destroy ${name}`, async () => {
    await daemon.cli(['destroy', name]);
  });
  const domid = (await daemon.cli(['domid', name])).stdout.trim();
  const pidFile = join(daemon.dir, 'domains', domid, 'qemu.pid');
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  const con = await GuestConsole.overWebSocket(
    `ws+unix://${join(daemon.dir, 'xenoded.sock')}:/v1/domains/${name}/console`,
  );
  await readyShell(con, name);
  return {
    name,
    pid,
    con,
    async stop() {
      con.close();
      await daemon.cli(['destroy', name], 30_000);
      undo();
    },
  };
}

// ---- the peer: QEMU by hand ----------------------------------------------------------

async function qemuGuest(
  ctx: BenchContext,
  img: GuestImage,
  name: string,
  extra: string[],
  place?: (pid: number) => Promise<void>,
): Promise<Guest> {
  const dir = mkdtempSync(join(ctx.tmp, `${name}-`));
  const serial = join(dir, 'serial.sock');
  const args = [
    ...['-machine', 'pc-i440fx-7.2', '-accel', 'tcg', '-cpu', 'max', '-m', '256'],
    ...['-nodefaults', '-no-user-config', '-display', 'none', '-smp', '1', '-name', `${name},debug-threads=on`],
    ...['-chardev', `socket,id=ser0,path=${serial},server=on,wait=off`, '-serial', 'chardev:ser0'],
    ...['-kernel', img.vmlinux, '-initrd', img.initrd],
    ...['-append', `console=ttyS0 xenode.name=${name} quiet`],
    ...extra,
  ];
  const out = openSync(join(dir, 'qemu.log'), 'a');
  const child: ChildProcess = spawn('qemu-system-x86_64', args, { stdio: ['ignore', out, out] });
  closeSync(out);
  const pid = child.pid;
  if (!pid) throw new Error(`${name}: QEMU did not start`);
  ctx.ourPids.add(pid);
  const undo = cleanup.add(`kill ${name}`, () => stopPid(pid));
  if (place) await place(pid);
  const con = await GuestConsole.overSocket(serial, 30_000);
  await readyShell(con, name);
  return {
    name,
    pid,
    con,
    async stop() {
      con.close();
      await stopPid(pid);
      undo();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The peer's CPU placement: every QEMU thread on `cpus`, in a cpu-controller group with `knobs`. */
function cpuPlacement(group: string, cpus: string, knobs: Record<string, string>): (pid: number) => Promise<void> {
  return async (pid) => {
    const dir = peerGroup('cpu', group, knobs);
    writeFileSync(join(dir, 'cgroup.procs'), String(pid));
    await sh('taskset', ['-a', '-p', '-c', cpus, String(pid)]);
  };
}

// ---- measurements -----------------------------------------------------------------

interface Row {
  section: SectionId;
  who: 'xenode' | 'peer';
  round: number;
  /** What the goal is stated in: the 2:1 ratio, % of a CPU, MiB/s, bytes/s. */
  value: number;
  extra?: number;
  load1: number;
}

const BUSY = '(while :; do :; done) >/dev/null 2>&1 & true';

async function weightRound(guests: [Guest, Guest]): Promise<number> {
  const [a, b] = guests;
  const [ca, cb] = await cpuOver([a.pid, b.pid], CPU_WINDOW_S);
  log(`    CPU ${a.name} ${fmt(ca)} ${b.name} ${fmt(cb)} of a CPU: ratio ${fmt((ca as number) / (cb as number))}`);
  return (ca as number) / (cb as number);
}

async function capRound(g: Guest): Promise<number> {
  const [c] = await cpuOver([g.pid], CPU_WINDOW_S);
  log(`    CPU ${g.name} ${fmt((c as number) * 100)} % of a CPU`);
  return (c as number) * 100;
}

/** dd of DISK_MIB MiB with O_DIRECT onto /dev/vda; MiB/s from the guest's own clock. */
async function ddRound(g: Guest): Promise<number> {
  const out = await g.con.run(
    `a=$(cut -d' ' -f1 /proc/uptime); dd if=/dev/zero of=/dev/vda bs=1M count=${DISK_MIB} oflag=direct 2>/dev/null; b=$(cut -d' ' -f1 /proc/uptime); echo "DD $a $b"`,
    600_000,
  );
  const m = /DD ([\d.]+) ([\d.]+)/.exec(out);
  if (!m) throw new Error(`${g.name}: dd printed ${out}`);
  const s = Number(m[2]) - Number(m[1]);
  log(`    dd ${g.name}: ${DISK_MIB} MiB in ${fmt(s)} s = ${fmt(DISK_MIB / s)} MiB/s`);
  return DISK_MIB / s;
}

/** One TCP sink on the host: each connection resolves with its bytes and seconds. */
class Sink {
  private server: Server;
  private waiting = new Map<string, (r: { bytes: number; at: number }) => void>();

  constructor() {
    this.server = createServer((s: Socket) => {
      let bytes = 0;
      const from = s.remoteAddress ?? '';
      s.on('data', (d: Buffer) => {
        bytes += d.length;
      });
      s.on('end', () => {
        s.end();
        const at = performance.now();
        for (const [ip, w] of this.waiting) {
          if (from.endsWith(ip)) {
            this.waiting.delete(ip);
            w({ bytes, at });
          }
        }
      });
      s.on('error', () => {});
    });
  }

  listen(): Promise<void> {
    return new Promise((r) => this.server.listen(SINK_PORT, '0.0.0.0', () => r()));
  }

  from(ip: string): Promise<{ bytes: number; at: number }> {
    return new Promise((r) => this.waiting.set(ip, r));
  }

  close(): void {
    this.server.close();
  }
}

/** NET_MB MiB from the guest to the host sink: bytes/s. */
async function send(g: Guest, ip: string, hostIp: string, sink: Sink): Promise<number> {
  const got = sink.from(ip);
  const t0 = performance.now();
  await g.con.run(`dd if=/dev/zero bs=64k count=${NET_MB * 16} 2>/dev/null | nc ${hostIp} ${SINK_PORT}`, 600_000);
  const r = await got;
  if (r.bytes !== NET_MB * 2 ** 20) throw new Error(`${g.name}: the host got ${r.bytes} bytes`);
  return r.bytes / ((r.at - t0) / 1000);
}

/** NET_MB MiB from the host to a listener in the guest: bytes/s until the guest saw the end. */
async function receive(g: Guest, ip: string): Promise<number> {
  const done = g.con.marker('R');
  const from = g.con.length;
  await g.con.run(
    `(nc -l -p ${SINK_PORT} > /dev/null; echo ${done.typed}) & for i in $(seq 200); do netstat -ltn | grep -q ":${SINK_PORT} " && break; sleep 0.05; done`,
  );
  const t0 = performance.now();
  await new Promise<void>((resolveP, reject) => {
    const sock = createConnection({ host: ip, port: SINK_PORT }, () => {
      const chunk = Buffer.alloc(64 * 1024);
      let left = NET_MB * 16;
      const pump = (): void => {
        while (left > 0) {
          left--;
          if (!sock.write(chunk)) {
            sock.once('drain', pump);
            return;
          }
        }
        sock.end();
      };
      pump();
    });
    sock.on('error', reject);
    sock.on('close', () => resolveP());
  });
  const hit = await g.con.expect(done.re(), 600_000, from + 1);
  return (NET_MB * 2 ** 20) / ((hit.at - t0) / 1000);
}

// ---- the run ----------------------------------------------------------------------

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:qos needs root (cgroups, TAPs, a bridge)');
  const facts = hostFacts();
  if (facts.nproc < 2) throw new Error('bench:qos needs 2 host CPUs (one is given to the guests under test)');
  const tmp = mkdtempSync(join(tmpdir(), 'xenode-qos-'));
  cleanup.add('remove the bench dir', () => rmSync(tmp, { recursive: true, force: true }));
  const ctx: BenchContext = {
    root: ROOT,
    tmp,
    memoryMiB: 256,
    vcpus: 1,
    timeoutMs: 600_000,
    cleanup,
    ourPids: new Set(),
    log,
  };
  log('bench:qos: the default guest...');
  const img = await ensureDefaultGuest();
  const daemon = new XenodeDaemon(ctx, join(tmp, 'xenode'), { XENODE_NET_HOSTPORT: `${HOST_TAP},${SW_NET}.1/24` });
  await daemon.start();
  const rows: Row[] = [];
  const pinned = String(facts.nproc - 1);
  const started = new Date();

  if (wanted('weight')) {
    log(`weight: two busy guests on host CPU ${pinned}`);
    const xa = await xenodeGuest(daemon, tmp, 'w512', [`cpus = "${pinned}"`, 'cpu_weight = 512']);
    const xb = await xenodeGuest(daemon, tmp, 'w256', [`cpus = "${pinned}"`, 'cpu_weight = 256']);
    const pa = await qemuGuest(ctx, img, 'pw512', [], cpuPlacement('w512', pinned, { 'cpu.shares': '2048' }));
    const pb = await qemuGuest(ctx, img, 'pw256', [], cpuPlacement('w256', pinned, { 'cpu.shares': '1024' }));
    for (const g of [xa, xb, pa, pb]) await g.con.run(BUSY);
    // Only one pair competes at a time: the other pair is stopped (SIGSTOP), so it takes no CPU.
    const pairs: Array<['xenode' | 'peer', [Guest, Guest]]> = [
      ['xenode', [xa, xb]],
      ['peer', [pa, pb]],
    ];
    for (let round = 1; round <= rounds; round++) {
      for (const [who, pair] of round % 2 ? pairs : [...pairs].reverse()) {
        const other = pairs.find((p) => p[0] !== who)?.[1] ?? [];
        for (const g of other) process.kill(g.pid, 'SIGSTOP');
        for (const g of pair) process.kill(g.pid, 'SIGCONT');
        await sleep(2000);
        log(`  round ${round} ${who}`);
        rows.push({ section: 'weight', who, round, value: await weightRound(pair), load1: loadAvg1() });
      }
    }
    for (const g of [xa, xb, pa, pb]) process.kill(g.pid, 'SIGCONT');
    for (const g of [xa, xb, pa, pb]) await g.stop();
  }

  if (wanted('cap')) {
    log('cap: one busy guest with cap=25');
    const x = await xenodeGuest(daemon, tmp, 'cap25', ['cap = 25']);
    const p = await qemuGuest(
      ctx,
      img,
      'pcap25',
      [],
      cpuPlacement('cap25', `0-${facts.nproc - 1}`, { 'cpu.cfs_period_us': '100000', 'cpu.cfs_quota_us': '25000' }),
    );
    for (const g of [x, p]) await g.con.run(BUSY);
    for (let round = 1; round <= rounds; round++) {
      for (const [who, g] of round % 2
        ? ([
            ['xenode', x],
            ['peer', p],
          ] as const)
        : ([
            ['peer', p],
            ['xenode', x],
          ] as const)) {
        log(`  round ${round} ${who}`);
        rows.push({ section: 'cap', who, round, value: await capRound(g), load1: loadAvg1() });
      }
    }
    for (const g of [x, p]) await g.stop();
  }

  if (wanted('disk')) {
    log('disk: dd onto a disk limited to 10 MiB/s');
    const data = join(tmp, 'data.img');
    await sh('truncate', ['-s', `${DISK_MIB * 2}M`, data]);
    const x = await xenodeGuest(daemon, tmp, 'disk10', [`disk = [ "${data},raw,xvdb,rw,bps=${DISK_LIMIT}" ]`]);
    const pdata = join(tmp, 'pdata.img');
    await sh('truncate', ['-s', `${DISK_MIB * 2}M`, pdata]);
    const p = await qemuGuest(ctx, img, 'pdisk10', [
      '-drive',
      `file=${pdata},format=raw,if=none,id=d1,cache=none,aio=threads,throttling.bps-total=${DISK_LIMIT}`,
      '-device',
      'virtio-blk-pci,drive=d1',
    ]);
    for (let round = 1; round <= rounds; round++) {
      for (const [who, g] of round % 2
        ? ([
            ['xenode', x],
            ['peer', p],
          ] as const)
        : ([
            ['peer', p],
            ['xenode', x],
          ] as const)) {
        log(`  round ${round} ${who}`);
        rows.push({ section: 'disk', who, round, value: await ddRound(g), load1: loadAvg1() });
      }
    }
    for (const g of [x, p]) await g.stop();
  }

  if (wanted('net')) {
    log('net: rate=8Mb/s, and an unlimited domain beside it');
    await sh('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
    cleanup.add(`remove bridge ${BRIDGE}`, async () => {
      await run('ip', ['link', 'del', BRIDGE]);
    });
    await sh('ip', ['addr', 'add', `${BR_NET}.1/24`, 'dev', BRIDGE]);
    await sh('ip', ['link', 'set', BRIDGE, 'up']);
    const sink = new Sink();
    await sink.listen();
    cleanup.add('close the sink', () => sink.close());
    const xl = await xenodeGuest(daemon, tmp, 'rated', [`vif = [ "ip=${SW_NET}.11,rate=8Mb/s" ]`]);
    const xu = await xenodeGuest(daemon, tmp, 'free', [`vif = [ "ip=${SW_NET}.12" ]`]);
    // The peer: the same guests on a Linux bridge, the limit Linux's token bucket (tc tbf) on the
    // rated one's TAP. tbf shapes what leaves the TAP, towards the guest (this kernel has no
    // ingress policer), so the peer's transfers run host -> guest.
    const pl = await xenodeGuest(daemon, tmp, 'prated', [`vif = [ "bridge=${BRIDGE},ip=${BR_NET}.11" ]`]);
    const pu = await xenodeGuest(daemon, tmp, 'pfree', [`vif = [ "bridge=${BRIDGE},ip=${BR_NET}.12" ]`]);
    const tap = `vif${(await daemon.cli(['domid', 'prated'])).stdout.trim()}.0`;
    await sh('tc', ['qdisc', 'add', 'dev', tap, 'root', 'tbf', 'rate', '8mbit', 'burst', '32k', 'latency', '400ms']);
    for (const [g, host] of [
      [xl, `${SW_NET}.1`],
      [xu, `${SW_NET}.1`],
      [pl, `${BR_NET}.1`],
      [pu, `${BR_NET}.1`],
    ] as const)
      await g.con.run(`ping -c 2 -W 2 ${host} >/dev/null`, 60_000);
    const xenodeRun = async (): Promise<[number, number, number]> => {
      const alone = await send(xu, `${SW_NET}.12`, `${SW_NET}.1`, sink);
      const [rated, beside] = await Promise.all([
        send(xl, `${SW_NET}.11`, `${SW_NET}.1`, sink),
        send(xu, `${SW_NET}.12`, `${SW_NET}.1`, sink),
      ]);
      return [alone, rated, beside];
    };
    const peerRun = async (): Promise<[number, number, number]> => {
      const alone = await receive(pu, `${BR_NET}.12`);
      const [rated, beside] = await Promise.all([receive(pl, `${BR_NET}.11`), receive(pu, `${BR_NET}.12`)]);
      return [alone, rated, beside];
    };
    for (let round = 1; round <= rounds; round++) {
      for (const who of round % 2 ? (['xenode', 'peer'] as const) : (['peer', 'xenode'] as const)) {
        log(`  round ${round} ${who}`);
        const [alone, rated, beside] = await (who === 'xenode' ? xenodeRun() : peerRun());
        log(
          `    rated ${fmt((rated * 8) / 1e6)} Mb/s; unlimited alone ${fmt((alone * 8) / 1e6)} Mb/s, beside it ${fmt((beside * 8) / 1e6)} Mb/s`,
        );
        rows.push({ section: 'net', who, round, value: rated, extra: beside / alone, load1: loadAvg1() });
      }
    }
    for (const g of [xl, xu, pl, pu]) await g.stop();
  }

  await daemon.stop();
  report(rows, facts, started);
}

// ---- the report -------------------------------------------------------------------

function report(rows: Row[], facts: ReturnType<typeof hostFacts>, started: Date): void {
  const of = (section: SectionId, who: 'xenode' | 'peer', pick: (r: Row) => number = (r) => r.value) =>
    rows.filter((r) => r.section === section && r.who === who).map(pick);
  const span = (xs: number[], d = 2) => `${fmt(median(xs), d)} (${fmt(min(xs), d)}–${fmt(max(xs), d)})`;
  const table: string[][] = [];
  const goal = (section: SectionId, label: string, unit: string, lo: number, hi: number, scale = 1, d = 2) => {
    for (const who of ['xenode', 'peer'] as const) {
      const xs = of(section, who).map((x) => x * scale);
      if (xs.length === 0) continue;
      const inside = xs.every((x) => x >= lo && x <= hi);
      table.push([label, who, `${span(xs, d)} ${unit}`, `${fmt(lo, d)}–${fmt(hi, d)}`, inside ? 'yes' : 'no']);
    }
  };
  goal('weight', 'cpu_weight 512 : 256, one host CPU', '', 1.8, 2.2);
  goal('cap', 'cap=25, a busy guest', '% of a CPU', 20, 30, 1, 1);
  goal('disk', 'dd O_DIRECT, limit 10 MiB/s', 'MiB/s', 9, 11);
  goal('net', 'TCP through rate=8Mb/s', 'Mb/s', 7.2, 8.8, 8 / 1e6);
  for (const who of ['xenode', 'peer'] as const) {
    const xs = of('net', who, (r) => r.extra ?? Number.NaN);
    if (xs.length === 0) continue;
    table.push([
      'unlimited domain beside it, speed vs alone',
      who,
      span(xs),
      '≥ 0.90',
      xs.every((x) => x >= 0.9) ? 'yes' : 'no',
    ]);
  }
  const loads = rows.map((r) => r.load1);
  const body = `Whether the limits hold, measured inside real guests (the default guest, 256 MiB, 1 vCPU), Xenode next to a peer made by hand from the mechanisms Linux and QEMU offer, in one run with the two interleaved in every round. Run: \`npm run bench:qos\` (\`-- --rounds N --only weight,cap,disk,net\`). Source: \`bench/qos.ts\`.

- **Date:** ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC; **rounds:** ${rounds}
- **Machine:** ${facts.nproc} CPUs (\`nproc\`), ${facts.cpuModel}, ${facts.ramGiB.toFixed(1)} GiB RAM; host kernel ${facts.kernel}; cgroup v1
- **Accelerator:** ${facts.accelNote}
- **QEMU:** ${facts.qemuVersion}
- **Load:** 1-minute load average ${fmt(min(loads), 1)}–${fmt(max(loads), 1)} on ${facts.nproc} CPUs

${markdownTable(['goal', 'who', 'median (min–max)', 'goal range', 'every round inside'], table)}

- **weight**: both guests busy (\`while :; do :; done\` in the guest shell), both pinned to host CPU ${facts.nproc - 1}; CPU seconds of each guest's vCPU thread (\`/proc/<pid>/task/<tid>/stat\` of QEMU's \`CPU 0/TCG\` thread) over ${CPU_WINDOW_S} s; the value is the ratio. Xenode: \`cpus="${facts.nproc - 1}"\`, \`cpu_weight=512\` / \`256\`. Peer: plain QEMU processes, \`taskset -a\` and cgroup v1 \`cpu.shares\` 2048 / 1024 set by hand. While one pair is measured the other pair is stopped (SIGSTOP).
- **cap**: a busy guest, CPU share of its vCPU thread over ${CPU_WINDOW_S} s (the cap holds the whole QEMU process). Xenode: \`cap=25\`. Peer: plain QEMU in a cgroup with \`cpu.cfs_quota_us=25000\` of \`100000\`.
- **disk**: \`dd if=/dev/zero of=/dev/vda bs=1M count=${DISK_MIB} oflag=direct\` timed by the guest's clock. Xenode: \`disk=["…,raw,xvdb,rw,bps=${DISK_LIMIT}"]\`. Peer: plain QEMU, \`-drive …,throttling.bps-total=${DISK_LIMIT}\`.
- **net**: ${NET_MB} MiB from busybox \`nc\` to a TCP sink on the host, the rated domain and the unlimited one sending at once; "alone" is the unlimited one sending by itself just before. Xenode: \`vif=["rate=8Mb/s"]\` on Xenode's switch. Peer: the same guests on a Linux bridge with \`tc qdisc … tbf rate 8mbit burst 32k\` on the rated guest's TAP; tbf shapes what leaves the TAP, so the peer's transfers run from the host to the guest (this host's kernel has no ingress policer).
`;
  log(body);
  if (!opt['no-doc']) replaceSection(join(ROOT, 'docs', 'benchmarks.md'), HEADING, body);
}

try {
  await main();
} finally {
  await cleanup.runAll();
  try {
    if (existsSync(join(CG, 'cpu', PEER_CG))) rmdirSync(join(CG, 'cpu', PEER_CG));
  } catch {}
}
