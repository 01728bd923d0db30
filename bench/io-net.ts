// TCP throughput domain-to-domain and domain-to-host through Xenode's switch,
// next to the same guests on a Linux bridge through TAPs (vif bridge=: QEMU
// `-netdev tap`, as plain QEMU or libvirt wire a guest), in one run with the
// rounds alternating. Also: the switch alone with synthetic frames (its own
// ceiling, no guests), and how fast a killed switch is back. Run by
// `npm run bench:net` (bench/net.ts) and as the network section of `npm run bench:io`.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { ensureDefaultGuest } from '../guest/build.ts';
import type { NetStatus } from '../src/features/network/manager.ts';
import type { SwitchStats } from '../src/net/control-protocol.ts';
import { SwitchClient } from '../src/net/switch-client.ts';
import type { Cleanup } from './lib/cleanup.ts';
import type { BenchContext } from './lib/contender.ts';
import { replaceSection } from './lib/doc.ts';
import { GuestConsole } from './lib/guest-console.ts';
import { hostFacts, loadAvg1, waitQuiet } from './lib/host.ts';
import type { IoSectionOptions } from './lib/io-section.ts';
import { run, stopPid } from './lib/proc.ts';
import { fmt, markdownTable, max, median, min } from './lib/stats.ts';
import { XenodeDaemon } from './lib/xenode.ts';

const HEADING = '## Network (bench:net)';
const SW_NET = '10.233.0';
const BR_NET = '10.234.0';
const HOST_TAP = 'xnbench0';
const BRIDGE = 'xnbenchbr0';
const SINK_PORT = 7100;
export const NET_IDS = ['switch', 'bridge', 'jumbo', 'alone', 'restart'] as const;

export interface NetSectionOptions extends IoSectionOptions {
  /** MiB per transfer (default 16). */
  mb?: number;
  json?: string;
  keep?: boolean;
}

// Set by runSection for the helpers below.
let rounds = 3;
let MB = 16;
let ROOT = '';
let cleanup: Cleanup;
let log: (s: string) => void = () => {};
let wanted: (id: string) => boolean = () => true;

interface Guest {
  name: string;
  ip: string;
  con: GuestConsole;
}

/** A pair of domains on one kind of network, and the host's address on it. */
interface Mode {
  id: 'switch' | 'bridge' | 'jumbo';
  what: string;
  a: Guest;
  b: Guest;
  hostIp?: string;
}

interface Sample {
  mode: string;
  test: 'd2d' | 'd2h';
  round: number;
  seconds: number;
  mbps: number;
  load1: number;
}

function sh(cmd: string, args: string[]): void {
  const r = spawn(cmd, args, { stdio: 'ignore' });
  r.on('error', () => {});
}

async function ip(args: string[]): Promise<void> {
  const r = await run('ip', args);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

function apiGet<T>(socket: string, path: string): Promise<T> {
  return new Promise((resolveP, reject) => {
    const req = request({ socketPath: socket, path }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolveP(JSON.parse(body) as T));
    });
    req.on('error', reject);
    req.end();
  });
}

async function boot(daemon: XenodeDaemon, tmp: string, name: string, vif: string): Promise<void> {
  const cfg = join(tmp, `${name}.cfg`);
  writeFileSync(cfg, `name = "${name}"\nmemory = 256\nvif = [ '${vif}' ]\n`);
  const r = await daemon.cli(['create', cfg], 120_000);
  if (r.code !== 0) throw new Error(`xenode create ${name}: ${r.stderr.trim()}`);
}

async function attach(daemon: XenodeDaemon, name: string, ipAddr: string): Promise<Guest> {
  const con = await GuestConsole.overWebSocket(
    `ws+unix://${join(daemon.dir, 'xenoded.sock')}:/v1/domains/${name}/console`,
  );
  await con.expect(/XENODE-READY/, 180_000);
  await con.expect(new RegExp(`${name}:/# `), 60_000);
  return { name, ip: ipAddr, con };
}

/** One TCP sink on the host for every domain-to-host transfer: resolves with bytes and end time. */
class HostSink {
  private server: Server;
  private next?: (r: { bytes: number; at: number }) => void;

  constructor() {
    this.server = createServer((s: Socket) => {
      let bytes = 0;
      s.on('data', (d: Buffer) => {
        bytes += d.length;
      });
      s.on('end', () => {
        const at = performance.now();
        s.end();
        this.next?.({ bytes, at });
      });
      s.on('error', () => {});
    });
  }

  listen(): Promise<void> {
    return new Promise((r) => this.server.listen(SINK_PORT, '0.0.0.0', () => r()));
  }

  nextTransfer(): Promise<{ bytes: number; at: number }> {
    return new Promise((r) => {
      this.next = r;
    });
  }

  close(): void {
    this.server.close();
  }
}

const listening = (port: number) =>
  `for i in $(seq 200); do netstat -ltn | grep -q ":${port} " && break; sleep 0.05; done`;
const source = () => `dd if=/dev/zero bs=64k count=${MB * 16} 2>/dev/null`;

async function d2d(m: Mode, round: number): Promise<Sample> {
  await waitQuiet(0.6, 20_000);
  const done = m.b.con.marker('D');
  const from = m.b.con.length;
  // The receiver runs in the background and prints a marker when the sender has closed.
  await m.b.con.run(`(nc -l -p 7000 > /dev/null; echo ${done.typed}) & ${listening(7000)}`);
  const load1 = loadAvg1();
  const t0 = performance.now();
  await m.a.con.run(`${source()} | nc ${m.b.ip} 7000`, 600_000);
  const hit = await m.b.con.expect(done.re(), 600_000, from + 1);
  const seconds = (hit.at - t0) / 1000;
  log(`  ${m.id} d2d: ${MB} MiB in ${seconds.toFixed(2)} s = ${(MB / seconds).toFixed(2)} MiB/s`);
  return { mode: m.id, test: 'd2d', round, seconds, mbps: MB / seconds, load1 };
}

async function d2h(m: Mode, sink: HostSink, round: number): Promise<Sample> {
  await waitQuiet(0.6, 20_000);
  const got = sink.nextTransfer();
  const load1 = loadAvg1();
  const t0 = performance.now();
  await m.a.con.run(`${source()} | nc ${m.hostIp} ${SINK_PORT}`, 600_000);
  const r = await got;
  if (r.bytes !== MB * 1024 * 1024) throw new Error(`${m.id} d2h: host got ${r.bytes} bytes`);
  const seconds = (r.at - t0) / 1000;
  log(`  ${m.id} d2h: ${MB} MiB in ${seconds.toFixed(2)} s = ${(MB / seconds).toFixed(2)} MiB/s`);
  return { mode: m.id, test: 'd2h', round, seconds, mbps: MB / seconds, load1 };
}

/** Kill the switch; time until the daemon runs a new one and until every domain link is up again. */
async function restartOnce(daemon: XenodeDaemon): Promise<{ upMs: number; linksMs: number }> {
  const sock = join(daemon.dir, 'xenoded.sock');
  const before = await apiGet<NetStatus>(sock, '/v1/net');
  const pid = before.switch.pid;
  if (!pid) throw new Error('no switch running');
  const t0 = performance.now();
  process.kill(pid, 'SIGKILL');
  let upMs = Number.NaN;
  for (;;) {
    const s = await apiGet<NetStatus>(sock, '/v1/net');
    if (s.switch.running && s.switch.pid !== pid) {
      if (Number.isNaN(upMs)) upMs = performance.now() - t0;
      const vifs = s.ports.filter((p) => p.kind === 'vif');
      if (vifs.length > 0 && vifs.every((p) => p.connected)) return { upMs, linksMs: performance.now() - t0 };
    }
    if (performance.now() - t0 > 30_000) throw new Error('switch did not come back within 30 s');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The switch process alone: frames between two fake QEMUs (Unix stream servers), as fast as it takes them. */
async function switchAlone(
  tmp: string,
  frameLen: number,
  seconds: number,
): Promise<{ kfps: number; mibps: number; delivered: number }> {
  const dir = mkdtempSync(join(tmp, 'alone-'));
  const ctl = join(dir, 'ctl.sock');
  const child: ChildProcess = spawn(process.execPath, [join(ROOT, 'dist', 'xenode-switch.mjs'), '--control', ctl], {
    stdio: 'ignore',
  });
  const pid = child.pid;
  if (!pid) throw new Error('switch did not start');
  const stop = cleanup.add('stop the bench switch', () => stopPid(pid));
  let client: SwitchClient | undefined;
  for (let i = 0; i < 400 && !client; i++) {
    client = await SwitchClient.connect(ctl, 500).catch(() => undefined);
    if (!client) await new Promise((r) => setTimeout(r, 25));
  }
  if (!client) throw new Error('switch control socket did not appear');
  const peers: Socket[] = [];
  const servers: Server[] = [];
  let received = 0;
  for (const n of [0, 1]) {
    const server = createServer((s) => {
      peers[n] = s;
      if (n === 1) {
        s.on('data', (d: Buffer) => {
          received += d.length;
        });
      }
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(join(dir, `q${n}.sock`), () => r()));
    await client.call({
      op: 'add-port',
      port: {
        id: `d${n}.0`,
        domid: n + 1,
        devid: 0,
        sponsor: 'admin',
        mac: `00:16:3e:00:00:0${n}`,
        path: join(dir, `q${n}.sock`),
      },
      waitMs: 5000,
    });
  }
  const frame = Buffer.alloc(4 + frameLen);
  frame.writeUInt32BE(frameLen, 0);
  Buffer.from([0, 0x16, 0x3e, 0, 0, 1, 0, 0x16, 0x3e, 0, 0, 0, 0x08, 0]).copy(frame, 4);
  // One frame from B first, so the switch learns its MAC and forwards instead of flooding.
  const learn = Buffer.from(frame);
  Buffer.from([0, 0x16, 0x3e, 0, 0, 0, 0, 0x16, 0x3e, 0, 0, 1]).copy(learn, 4);
  peers[1]?.write(learn);
  await new Promise((r) => setTimeout(r, 100));
  const a = peers[0] as Socket;
  const batch = Buffer.concat(new Array(64).fill(frame));
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  while (performance.now() < until) {
    if (!a.write(batch)) await new Promise((r) => a.once('drain', r));
    // Sender and receiver share this process: yield so the receiving side keeps reading.
    else await new Promise((r) => setImmediate(r));
  }
  // Let what is in flight arrive, then count only what arrived in the window plus that.
  await new Promise((r) => setTimeout(r, 200));
  const elapsed = (performance.now() - t0) / 1000;
  const frames = received / (4 + frameLen);
  const st = await client.call<SwitchStats>({ op: 'stats' });
  const inFrames = st.ports.find((p) => p.id === 'd0.0')?.counters.rxPackets ?? 0;
  client.close();
  for (const p of peers) p.destroy();
  for (const s of servers) s.close();
  await stopPid(pid);
  stop();
  return {
    kfps: frames / elapsed / 1000,
    mibps: (frames * frameLen) / elapsed / 2 ** 20,
    delivered: inFrames > 0 ? frames / inFrames : Number.NaN,
  };
}

export async function runSection(o: NetSectionOptions): Promise<void> {
  rounds = o.rounds;
  MB = o.mb ?? 16;
  ROOT = o.root;
  cleanup = o.cleanup;
  log = o.log;
  const root = process.getuid?.() === 0;
  // bench:io's --only names other sections' contenders too: with none of ours named, run all.
  const only = o.only && NET_IDS.some((id) => o.only?.has(id)) ? o.only : undefined;
  wanted = (id) => (!only || only.has(id)) && (root || id === 'switch' || id === 'alone' || id === 'jumbo');
  const startedAt = new Date();
  const facts = hostFacts();
  const tmp = mkdtempSync('/tmp/xenode-bench-net-');
  if (!o.keep) cleanup.add(`remove ${tmp}`, () => rmSync(tmp, { recursive: true, force: true }));
  log(`bench:net: ${rounds} rounds of ${MB} MiB; temp dir ${tmp}`);
  await ensureDefaultGuest({ onProgress: (m) => log(`default guest: ${m}`) });

  const alone: Array<{ frameLen: number; kfps: number; mibps: number; delivered: number }> = [];
  if (wanted('alone')) {
    for (const frameLen of [1514, 64]) {
      const r = await switchAlone(tmp, frameLen, 3);
      log(
        `  switch alone, ${frameLen}-byte frames: ${r.kfps.toFixed(0)} kframes/s, ${r.mibps.toFixed(0)} MiB/s, ${(r.delivered * 100).toFixed(1)} % delivered`,
      );
      alone.push({ frameLen, ...r });
    }
  }

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
  const daemon = new XenodeDaemon(ctx, join(tmp, 'xenode'), {
    XENODE_NET_HOSTPORT: root ? `${HOST_TAP},${SW_NET}.1/24` : 'none',
  });
  log('starting the bench xenoded (not timed)...');
  await daemon.start();
  if (wanted('bridge')) {
    await ip(['link', 'add', BRIDGE, 'type', 'bridge']);
    cleanup.add(`remove bridge ${BRIDGE}`, () => sh('ip', ['link', 'del', BRIDGE]));
    await ip(['addr', 'add', `${BR_NET}.1/24`, 'dev', BRIDGE]);
    await ip(['link', 'set', BRIDGE, 'up']);
  }
  const plan: Array<{
    id: Mode['id'];
    names: [string, string];
    vif: (ipAddr: string) => string;
    hostIp?: string;
    net: string;
  }> = [];
  if (wanted('switch'))
    plan.push({
      id: 'switch',
      names: ['sw1', 'sw2'],
      vif: (a) => `ip=${a}`,
      hostIp: root ? `${SW_NET}.1` : undefined,
      net: SW_NET,
    });
  if (wanted('bridge'))
    plan.push({
      id: 'bridge',
      names: ['br1', 'br2'],
      vif: (a) => `bridge=${BRIDGE},ip=${a}`,
      hostIp: `${BR_NET}.1`,
      net: BR_NET,
    });
  if (wanted('jumbo')) plan.push({ id: 'jumbo', names: ['jb1', 'jb2'], vif: (a) => `ip=${a},mtu=65520`, net: SW_NET });
  let host = 11;
  const addrs = new Map<string, string>();
  for (const p of plan) {
    for (const n of p.names) {
      const a = `${p.net}.${host++}`;
      addrs.set(n, a);
      await boot(daemon, tmp, n, p.vif(a));
    }
  }
  const modes: Mode[] = [];
  for (const p of plan) {
    const [a, b] = await Promise.all(p.names.map((n) => attach(daemon, n, addrs.get(n) as string)));
    modes.push({
      id: p.id,
      what:
        p.id === 'bridge'
          ? `Linux bridge \`${BRIDGE}\` with a TAP per vif (\`vif bridge=\`, QEMU \`-netdev tap,vhost=off\`)`
          : p.id === 'jumbo'
            ? "Xenode's switch with `mtu=65520` on both vifs (virtio-net `host_mtu`)"
            : "Xenode's switch (`-netdev stream`, QEMU listening, switch process connecting)",
      a: a as Guest,
      b: b as Guest,
      hostIp: p.hostIp,
    });
  }
  const sink = new HostSink();
  await sink.listen();
  cleanup.add('close the host sink', () => sink.close());
  // Warm-up (ARP, TCP slow start paths, page cache): one small transfer per mode, not counted.
  for (const m of modes) await m.a.con.run(`ping -c 2 -W 2 ${m.b.ip} >/dev/null`, 60_000);

  const samples: Sample[] = [];
  for (let round = 1; round <= rounds; round++) {
    log(`round ${round}/${rounds}`);
    const order = modes.map((_, i) => modes[(i + round) % modes.length] as Mode);
    for (const m of order) {
      samples.push(await d2d(m, round));
      if (m.hostIp) samples.push(await d2h(m, sink, round));
    }
  }

  const restarts: Array<{ upMs: number; linksMs: number }> = [];
  if (wanted('restart') && wanted('switch')) {
    for (let i = 0; i < rounds; i++) {
      const r = await restartOnce(daemon);
      log(`  switch restart: new switch after ${r.upMs.toFixed(0)} ms, all links up after ${r.linksMs.toFixed(0)} ms`);
      restarts.push(r);
      const sw = modes.find((m) => m.id === 'switch');
      if (sw) {
        const out = await sw.a.con.run(`ping -c 1 -W 5 ${sw.b.ip} | grep received`, 60_000);
        if (!/1 packets received/.test(out)) throw new Error(`no ping after the restart: ${out}`);
      }
    }
  }
  for (const m of modes) {
    m.a.con.close();
    m.b.con.close();
  }

  // ---- report ----------------------------------------------------------------------
  const rows: string[][] = [];
  const med = (mode: string, test: string) =>
    median(samples.filter((s) => s.mode === mode && s.test === test).map((s) => s.mbps));
  for (const m of modes) {
    for (const test of ['d2d', 'd2h'] as const) {
      const xs = samples.filter((s) => s.mode === m.id && s.test === test).map((s) => s.mbps);
      if (xs.length === 0) continue;
      rows.push([
        m.id,
        test === 'd2d' ? 'domain → domain' : 'domain → host',
        fmt(median(xs), 2),
        `${fmt(min(xs), 2)}–${fmt(max(xs), 2)}`,
        String(xs.length),
      ]);
    }
  }
  const ratios: string[][] = [];
  for (const test of ['d2d', 'd2h'] as const) {
    const s = med('switch', test);
    const b = med('bridge', test);
    if (!Number.isNaN(s) && !Number.isNaN(b)) {
      const per = [];
      for (let r = 1; r <= rounds; r++) {
        const x = samples.find((v) => v.mode === 'switch' && v.test === test && v.round === r);
        const y = samples.find((v) => v.mode === 'bridge' && v.test === test && v.round === r);
        if (x && y) per.push(x.mbps / y.mbps);
      }
      ratios.push([
        `switch / bridge, ${test === 'd2d' ? 'domain → domain' : 'domain → host'}`,
        fmt(s / b, 2),
        fmt(median(per), 2),
        '≥ 0.5',
        s / b >= 0.5 ? 'yes' : 'no',
      ]);
    }
  }
  const loads = samples.map((s) => s.load1);
  const body = [
    `TCP throughput of busybox \`nc\` fed by \`dd if=/dev/zero bs=64k\` (${MB} MiB per transfer), between two domains and from a domain to a TCP sink on the host, through each network. Run: \`npm run bench:net\` (\`-- --rounds N --mb N --only switch,bridge,jumbo,alone,restart\`). Source: \`bench/io-net.ts\` (also the network section of \`npm run bench:io\`).`,
    '',
    `- **Date:** ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC; **rounds:** ${rounds}, networks alternating in each round; guests 256 MiB, 1 vCPU`,
    `- **Machine:** ${facts.nproc} CPUs (\`nproc\`), ${facts.cpuModel}, ${facts.ramGiB.toFixed(1)} GiB RAM; host kernel ${facts.kernel}; Node ${facts.nodeVersion}`,
    `- **Accelerator:** ${facts.accelNote}`,
    `- **QEMU:** ${facts.qemuVersion}; **guest:** the default guest (Debian cloud kernel + busybox)`,
    `- **Load:** 1-minute load average at the transfers ${fmt(min(loads), 1)}–${fmt(max(loads), 1)} on ${facts.nproc} CPUs (other people's guests share them; each transfer waited up to 20 s for the CPUs to be ≤ 60 % busy).`,
    '',
    '### Guest to guest, guest to host',
    '',
    markdownTable(['network', 'transfer', 'median MiB/s', 'min–max MiB/s', 'runs'], rows),
    '',
    ...(ratios.length
      ? [markdownTable(['ratio', 'of medians', 'median of per-round ratios', 'goal', 'met'], ratios), '']
      : []),
    ...modes.map((m) => `- **${m.id}**: ${m.what}.`),
    '- **Time**: domain → domain from sending the sender its command until the receiver (`nc -l`, output to /dev/null) printed its end marker; domain → host from sending the command until the host sink saw the connection end with every byte.',
    '',
    ...(alone.length
      ? [
          '### The switch alone',
          '',
          "The switch process between two fake QEMUs (Unix stream servers speaking QEMU's length-prefixed framing), one sending as fast as the switch takes frames for 3 s, after the switch learned the receiver's MAC: its ceiling, with no guest in the way. The fake QEMUs run in the bench process at the default priority; *delivered* is frames received over frames the switch read (it drops the rest when the receiver's socket is full).",
          '',
          markdownTable(
            ['frame bytes', 'kframes/s', 'MiB/s', 'delivered'],
            alone.map((a) => [String(a.frameLen), fmt(a.kfps, 0), fmt(a.mibps, 0), `${fmt(a.delivered * 100, 1)} %`]),
          ),
          '',
        ]
      : []),
    ...(restarts.length
      ? [
          '### Switch restart',
          '',
          `\`kill -9\` of the switch with ${modes.length * 2} domains' vifs on it, ${restarts.length} times: the daemon had a new switch running after median ${fmt(median(restarts.map((r) => r.upMs)), 0)} ms (${fmt(min(restarts.map((r) => r.upMs)), 0)}–${fmt(max(restarts.map((r) => r.upMs)), 0)}), and every vif link up again after median ${fmt(median(restarts.map((r) => r.linksMs)), 0)} ms (${fmt(min(restarts.map((r) => r.linksMs)), 0)}–${fmt(max(restarts.map((r) => r.linksMs)), 0)}); a guest ping across the switch worked after each.`,
          '',
        ]
      : []),
  ].join('\n');
  process.stdout.write(`\n${HEADING}\n\n${body}\n`);
  if (o.json) writeFileSync(o.json, JSON.stringify({ startedAt, facts, samples, alone, restarts }, null, 2));
  if (o.doc) {
    replaceSection(join(ROOT, 'docs', 'benchmarks.md'), HEADING, body);
    log('wrote docs/benchmarks.md');
  }
  await daemon.stop();
}
