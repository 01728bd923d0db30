// What the switch's audit costs, and what a blast does to a neighbour (issue 17),
// in one run, interleaved: TCP throughput and ping latency guest to guest through
// Xenode's switch with the flow log and every rule on, through the same switch
// with the audit off (audit rules `enabled: false`), and through a Linux bridge;
// flow records written per second, switch to segment file; and a TCP transfer
// alone against the same transfer while a third guest blasts UDP at the host
// with pktgen (the one-way rule throttles it). Part of `npm run bench:net`
// (`-- --only audit,records,blast`).

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { getPriority, loadavg } from 'node:os';
import { join } from 'node:path';
import { ensureDefaultGuest } from '../guest/build.ts';
import { FlowLog } from '../src/features/audit/flow-log.ts';
import type { AuditDrain } from '../src/net/audit/engine.ts';
import type { SwitchStats } from '../src/net/control-protocol.ts';
import { SwitchClient } from '../src/net/switch-client.ts';
import { cgroupTopName } from '../src/toolstack/cgroups.ts';
import type { Cleanup } from './lib/cleanup.ts';
import type { BenchContext } from './lib/contender.ts';
import { replaceSection } from './lib/doc.ts';
import { GuestConsole } from './lib/guest-console.ts';
import { hostFacts, loadAvg1, waitQuiet } from './lib/host.ts';
import { run, stopPid } from './lib/proc.ts';
import { fmt, markdownTable, max, median, min } from './lib/stats.ts';
import { XenodeDaemon } from './lib/xenode.ts';

const HEADING = '## Network audit cost (bench:net)';
const SW_NET = '10.235.0';
const BR_NET = '10.236.0';
const HOST_TAP = 'xnaudit0';
const BRIDGE = 'xnauditbr0';
export const AUDIT_IDS = ['audit', 'records', 'blast'] as const;
/** The one-way budget of the blast rounds: 1 MiB per 5 s, crossed by the blast within its first second. */
const BLAST_BUDGET = 1024 * 1024;

export interface AuditSectionOptions {
  rounds: number;
  mb: number;
  /** The blaster's CPU cap in % of one CPU (cap=): on 2 CPUs an uncapped TCG blaster takes one from the transfer. */
  blastCap: number;
  only?: Set<string>;
  root: string;
  cleanup: Cleanup;
  log: (s: string) => void;
  doc: boolean;
  json?: string;
}

interface Guest {
  name: string;
  ip: string;
  con: GuestConsole;
}

function admin<T>(dir: string, method: string, path: string, body?: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        socketPath: join(dir, 'xenoded.sock'),
        method,
        path,
        headers: payload ? { 'content-type': 'application/json' } : {},
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => {
          text += d.toString();
        });
        res.on('end', () => {
          if ((res.statusCode ?? 500) >= 300) reject(new Error(`${method} ${path}: ${res.statusCode} ${text}`));
          else resolve((text ? JSON.parse(text) : {}) as T);
        });
      },
    );
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  });
}

/**
 * The daemon puts each QEMU in a cpu cgroup of its own top group, and the kernel shares
 * CPU between groups by their weight, not by nice: a bench run at `nice -n -15` gives its
 * guests that priority only through their top group's weight (nice -15 is weight 29154
 * against 1024 in the kernel's table). Nothing when the bench runs at nice 0 or above.
 */
function raiseGuestsPriority(daemonDir: string, env: NodeJS.ProcessEnv, log: (s: string) => void): void {
  const nice = getPriority();
  if (nice >= 0) return;
  const shares = Math.round(1024 * 1.25 ** -nice);
  const top = cgroupTopName(daemonDir, env);
  for (const [file, value] of [
    [`/sys/fs/cgroup/cpu/${top}/cpu.shares`, String(shares)],
    [`/sys/fs/cgroup/${top}/cpu.weight`, String(Math.min(10_000, Math.round((shares / 1024) * 100)))],
  ] as const) {
    try {
      writeFileSync(file, value);
      log(`guests' cgroup ${top}: ${file.split('/').pop()} ${value} (as nice ${nice})`);
      return;
    } catch {
      /* not this cgroup version */
    }
  }
  log(`guests' cgroup ${top}: not found; the guests run at the default weight`);
}

async function ip(args: string[]): Promise<void> {
  const r = await run('ip', args);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

async function boot(daemon: XenodeDaemon, tmp: string, name: string, extra: string): Promise<void> {
  const cfg = join(tmp, `${name}.cfg`);
  // no_timer_check: under TCG on a loaded host the IO-APIC timer check can fail and panic the guest.
  writeFileSync(cfg, `name = "${name}"\nmemory = 256\nextra = "quiet no_timer_check"\n${extra}`);
  const r = await daemon.cli(['create', cfg], 180_000);
  if (r.code !== 0) throw new Error(`xenode create ${name}: ${r.stderr.trim()}`);
}

async function attach(daemon: XenodeDaemon, name: string, ipAddr: string): Promise<Guest> {
  const con = await GuestConsole.overWebSocket(
    `ws+unix://${join(daemon.dir, 'xenoded.sock')}:/v1/domains/${name}/console`,
  );
  await con.expect(/XENODE-READY/, 180_000);
  await con.expect(new RegExp(`${name}:/# `), 60_000);
  await con.run('echo 1 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6');
  return { name, ip: ipAddr, con };
}

const listening = (port: number) =>
  `for i in $(seq 200); do netstat -ltn | grep -q ":${port} " && break; sleep 0.05; done`;

/** `mb` MiB from a to b over TCP (busybox nc), timed from the command to the receiver's end marker: MiB/s. */
async function transfer(a: Guest, b: Guest, mb: number): Promise<number> {
  const done = b.con.marker('D');
  const from = b.con.length;
  await b.con.run(`(nc -l -p 7000 > /dev/null; echo ${done.typed}) & ${listening(7000)}`);
  const t0 = performance.now();
  await a.con.run(`dd if=/dev/zero bs=64k count=${mb * 16} 2>/dev/null | nc ${b.ip} 7000`, 600_000);
  const hit = await b.con.expect(done.re(), 600_000, from + 1);
  return mb / ((hit.at - t0) / 1000);
}

/** Average ping round trip a → b in ms (busybox prints min/avg/max). */
async function rtt(a: Guest, b: Guest): Promise<number> {
  const out = await a.con.run(`ping -c 20 -i 0.2 -q ${b.ip} | tail -1`, 60_000);
  const m = /= [0-9.]+\/([0-9.]+)\//.exec(out);
  if (!m) throw new Error(`ping ${a.name} → ${b.name}: ${out}`);
  return Number(m[1]);
}

/** Flow records from the switch's flow table to a segment file: a switch process fed new UDP flows by a fake QEMU. */
async function recordsPerSecond(
  o: AuditSectionOptions,
  tmp: string,
  seconds: number,
): Promise<{ framesPerSec: number; recordsPerSec: number; bytesPerRecord: number; records: number }> {
  const dir = mkdtempSync(join(tmp, 'records-'));
  const ctl = join(dir, 'ctl.sock');
  const child: ChildProcess = spawn(process.execPath, [join(o.root, 'dist', 'xenode-switch.mjs'), '--control', ctl], {
    stdio: 'ignore',
  });
  const pid = child.pid;
  if (!pid) throw new Error('switch did not start');
  const stop = o.cleanup.add('stop the bench switch', () => stopPid(pid));
  let client: SwitchClient | undefined;
  for (let i = 0; i < 400 && !client; i++) {
    client = await SwitchClient.connect(ctl, 500).catch(() => undefined);
    if (!client) await new Promise((r) => setTimeout(r, 25));
  }
  if (!client) throw new Error('switch control socket did not appear');
  // Every flow closes after 1 s idle; enough of them tracked; no rule in the way of a stream of new flows.
  await client.call({
    op: 'audit-rules',
    rules: {
      flows: { windowSec: 1, idleSec: 1, maxFlowsPerVif: 1_000_000 },
      portScan: { enabled: false },
      synFlood: { enabled: false },
      ackSymmetry: { enabled: false },
    },
  });
  const peers: Socket[] = [];
  const servers: Server[] = [];
  for (const n of [0, 1]) {
    const server = createServer((s) => {
      peers[n] = s;
      s.on('data', () => {});
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(join(dir, `q${n}.sock`), () => r()));
    await client.call({
      op: 'add-port',
      port: {
        id: `d${n}.0`,
        domid: n + 1,
        devid: 0,
        sponsor: 'bench',
        mac: `00:16:3e:00:00:0${n}`,
        path: join(dir, `q${n}.sock`),
        domain: `vm${n}`,
        ips: [`10.9.0.${n + 1}`],
      },
      waitMs: 5000,
    });
  }
  // 64-byte Ethernet frames: IPv4/UDP from 10.9.0.1, a new source port (a new flow) each.
  const frameLen = 60;
  const frame = (sport: number, dport: number): Buffer => {
    const f = Buffer.alloc(4 + frameLen);
    f.writeUInt32BE(frameLen, 0);
    Buffer.from([0, 0x16, 0x3e, 0, 0, 1, 0, 0x16, 0x3e, 0, 0, 0, 0x08, 0x00]).copy(f, 4);
    const ipOff = 4 + 14;
    // IPv4 (no options, TTL 64, UDP) 10.9.0.1 -> 10.9.0.2; then UDP with the rest as payload.
    Buffer.from([0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 10, 9, 0, 1, 10, 9, 0, 2]).copy(f, ipOff);
    f.writeUInt16BE(frameLen - 14, ipOff + 2);
    f.writeUInt16BE(sport, ipOff + 20);
    f.writeUInt16BE(dport, ipOff + 22);
    f.writeUInt16BE(frameLen - 14 - 20, ipOff + 24);
    return f;
  };
  const learn = Buffer.from(frame(1, 1));
  Buffer.from([0, 0x16, 0x3e, 0, 0, 0, 0, 0x16, 0x3e, 0, 0, 1]).copy(learn, 4);
  learn.writeUInt8(2, 4 + 14 + 15);
  learn.writeUInt8(1, 4 + 14 + 19);
  peers[1]?.write(learn);
  await new Promise((r) => setTimeout(r, 100));
  const log = new FlowLog({ dir: join(dir, 'flows') });
  let written = 0;
  const drain = async (): Promise<void> => {
    for (;;) {
      const d = await (client as SwitchClient).call<AuditDrain>({ op: 'audit-drain' }, 60_000);
      if (d.flows.length > 0) log.append(d.flows);
      written += d.flows.length;
      if (d.flows.length < 50_000) return;
    }
  };
  // As the daemon does: drain once a second, while a fake QEMU sends.
  const a = peers[0] as Socket;
  // One batch of 4096 frames with distinct source ports, built once; each send gives it a
  // new destination port, so every frame is a new flow (the sender must not be the limit).
  const PER = 4096;
  const size = 4 + frameLen;
  const batch = Buffer.concat(Array.from({ length: PER }, (_, i) => frame(1024 + i, 2000)));
  let sent = 0;
  let cycle = 0;
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  let nextDrain = t0 + 1000;
  while (performance.now() < until) {
    cycle++;
    for (let i = 0; i < PER; i++) batch.writeUInt16BE(2000 + (cycle % 60000), i * size + 4 + 14 + 22);
    sent += PER;
    // write() keeps a reference: hand it a copy, as the batch changes on the next round.
    if (!a.write(Buffer.from(batch))) await new Promise((r) => a.once('drain', r));
    else await new Promise((r) => setImmediate(r));
    if (performance.now() >= nextDrain) {
      await drain();
      nextDrain += 1000;
    }
  }
  const sendSecs = (performance.now() - t0) / 1000;
  const st = await client.call<SwitchStats>({ op: 'stats' }, 60_000);
  const read = st.ports.find((p) => p.id === 'd0.0')?.counters.rxPackets ?? 0;
  // The last flows close after their idle second: drain until the switch tracks none and has none to give.
  const endBy = performance.now() + 60_000;
  for (;;) {
    await new Promise((r) => setTimeout(r, 1000));
    const before = written;
    await drain();
    const now = await client.call<SwitchStats>({ op: 'stats' }, 60_000);
    if ((now.audit?.flows ?? 0) === 0 && written === before) break;
    if (performance.now() > endBy) throw new Error('the switch did not close its flows within 60 s');
  }
  const secs = (performance.now() - t0) / 1000;
  log.close();
  const bytes = readdirSync(join(dir, 'flows')).reduce((s, f) => s + statSync(join(dir, 'flows', f)).size, 0);
  client.close();
  for (const p of peers) p.destroy();
  for (const s of servers) s.close();
  await stopPid(pid);
  stop();
  o.log(
    `  records: ${sent} frames offered, ${read} read (a new flow each, a record on each vif), ${written} records written in ${secs.toFixed(1)} s`,
  );
  return {
    framesPerSec: read / sendSecs,
    recordsPerSec: written / secs,
    bytesPerRecord: written > 0 ? bytes / written : Number.NaN,
    records: written,
  };
}

export async function runAuditSection(o: AuditSectionOptions): Promise<void> {
  const isRoot = process.getuid?.() === 0;
  const want = (id: string) => !o.only || o.only.has(id);
  const log = o.log;
  const startedAt = new Date();
  const startLoad = loadavg();
  const facts = hostFacts();
  const tmp = mkdtempSync('/tmp/xenode-bench-audit-');
  o.cleanup.add(`remove ${tmp}`, () => rmSync(tmp, { recursive: true, force: true }));
  log(`bench:net audit: ${o.rounds} rounds of ${o.mb} MiB; temp dir ${tmp}`);
  await ensureDefaultGuest({ onProgress: (m) => log(`default guest: ${m}`) });

  let records: Awaited<ReturnType<typeof recordsPerSecond>> | undefined;
  if (want('records')) {
    records = await recordsPerSecond(o, tmp, 5);
    log(`  records: ${fmt(records.recordsPerSec, 0)} records/s written, ${fmt(records.bytesPerRecord, 1)} B each`);
  }

  const guestsWanted = (want('audit') || want('blast')) && isRoot;
  const samples: Array<{ mode: string; test: string; round: number; value: number; load1: number }> = [];
  const blastInfo: Array<{ round: number; mode: string; pps: number; dropped: number; passedPps: number }> = [];
  if (guestsWanted) {
    const ctx: BenchContext = {
      root: o.root,
      tmp,
      memoryMiB: 256,
      vcpus: 1,
      timeoutMs: 600_000,
      cleanup: o.cleanup,
      ourPids: new Set(),
      log,
    };
    const daemon = new XenodeDaemon(ctx, join(tmp, 'xenode'), { XENODE_NET_HOSTPORT: `${HOST_TAP},${SW_NET}.1/24` });
    log('starting the bench xenoded (not timed)...');
    await daemon.start();
    const setAudit = (enabled: boolean) => admin(daemon.dir, 'PUT', '/v1/audit/rules', { rules: { enabled } });
    await setAudit(true);
    const names: Array<[string, string, string]> = [
      ['sa1', `${SW_NET}.11`, `vif = ['ip=${SW_NET}.11']\n`],
      ['sa2', `${SW_NET}.12`, `vif = ['ip=${SW_NET}.12']\n`],
    ];
    if (want('audit')) {
      await ip(['link', 'add', BRIDGE, 'type', 'bridge']);
      o.cleanup.add(`remove bridge ${BRIDGE}`, () => run('ip', ['link', 'del', BRIDGE]).then(() => undefined));
      await ip(['addr', 'add', `${BR_NET}.1/24`, 'dev', BRIDGE]);
      await ip(['link', 'set', BRIDGE, 'up']);
      names.push(['ba1', `${BR_NET}.11`, `vif = ['bridge=${BRIDGE},ip=${BR_NET}.11']\n`]);
      names.push(['ba2', `${BR_NET}.12`, `vif = ['bridge=${BRIDGE},ip=${BR_NET}.12']\n`]);
    }
    if (want('blast')) names.push(['bl', `${SW_NET}.13`, `vif = ['ip=${SW_NET}.13']\ncap = ${o.blastCap}\n`]);
    for (const [n, , cfg] of names) await boot(daemon, tmp, n, cfg);
    raiseGuestsPriority(daemon.dir, daemon.env, log);
    const g = new Map<string, Guest>();
    for (const gu of await Promise.all(names.map(([n, a]) => attach(daemon, n, a)))) g.set(gu.name, gu);
    const get = (n: string) => g.get(n) as Guest;
    for (const [a, b] of [
      ['sa1', 'sa2'],
      ['ba1', 'ba2'],
    ])
      if (g.has(a)) await get(a).con.run(`ping -c 2 -W 2 ${get(b).ip} >/dev/null`, 60_000);

    if (want('audit')) {
      const modes = ['on', 'off', 'bridge'];
      for (let round = 1; round <= o.rounds; round++) {
        log(`audit round ${round}/${o.rounds}`);
        for (let i = 0; i < modes.length; i++) {
          const mode = modes[(i + round) % modes.length] as string;
          if (mode !== 'bridge') await setAudit(mode === 'on');
          const [a, b] = mode === 'bridge' ? [get('ba1'), get('ba2')] : [get('sa1'), get('sa2')];
          await waitQuiet(0.6, 20_000);
          const load1 = loadAvg1();
          const mbps = await transfer(a, b, o.mb);
          const ms = await rtt(a, b);
          log(`  ${mode}: ${mbps.toFixed(2)} MiB/s, ping ${ms.toFixed(3)} ms`);
          samples.push({ mode, test: 'mbps', round, value: mbps, load1 });
          samples.push({ mode, test: 'rtt', round, value: ms, load1 });
        }
      }
      await setAudit(true);
    }

    if (want('blast')) {
      const bl = get('bl');
      const hostMac = (await run('cat', [`/sys/class/net/${HOST_TAP}/address`])).stdout.trim();
      await bl.con.run(
        [
          'modprobe pktgen',
          'echo "add_device eth0" > /proc/net/pktgen/kpktgend_0',
          `for s in "count 0" "pkt_size 1000" "delay 0" "dst ${SW_NET}.1" "dst_mac ${hostMac}" "udp_dst_min 9" "udp_dst_max 9"; do echo "$s" > /proc/net/pktgen/eth0; done`,
        ].join('; '),
      );
      const sent = async () =>
        Number(/pkts-sofar: (\d+)/.exec(await bl.con.run('cat /proc/net/pktgen/eth0'))?.[1] ?? 0);
      const domids = new Map<string, number>();
      const list = await daemon.cli(['list']);
      for (const row of list.stdout.split('\n').slice(1)) {
        const [n, id] = row.trim().split(/\s+/);
        if (n && id) domids.set(n, Number(id));
      }
      const blPort = `d${domids.get('bl')}.0`;
      const dropped = async (): Promise<number> => {
        const s = await admin<{ ports: Array<{ id: string; counters: { auditDrops: number } }> }>(
          daemon.dir,
          'GET',
          '/v1/net',
        );
        return s.ports.find((p) => p.id === blPort)?.counters.auditDrops ?? 0;
      };
      // A one-way budget the blast crosses within its first second (the default, 256 MiB per 5 s,
      // is above what a capped TCG guest sends): the blast is throttled, as in the test.
      const blastRules = { enabled: true, ackSymmetry: { maxOneWayBytes: BLAST_BUDGET, windowSec: 5 } };
      const tapRx = async () =>
        Number((await run('cat', [`/sys/class/net/${HOST_TAP}/statistics/rx_packets`])).stdout.trim());
      const modes = ['alone', 'blast', 'blast-off'] as const;
      for (let round = 1; round <= o.rounds; round++) {
        log(`blast round ${round}/${o.rounds}`);
        for (let i = 0; i < modes.length; i++) {
          const mode = modes[(i + round) % modes.length] as (typeof modes)[number];
          // blast-off: the same blast with the audit off, so nothing throttles it (the peer).
          await admin(daemon.dir, 'PUT', '/v1/audit/rules', {
            rules: mode === 'blast-off' ? { enabled: false } : blastRules,
          });
          await waitQuiet(0.6, 20_000);
          let d0 = 0;
          let r0 = 0;
          let t0 = 0;
          if (mode !== 'alone') {
            d0 = await dropped();
            r0 = await tapRx();
            t0 = performance.now();
            await bl.con.run('(echo start > /proc/net/pktgen/pgctrl 2>/dev/null &)');
            // Let the rule see it (it judges once a second over its window).
            await new Promise((r) => setTimeout(r, 3000));
          }
          const load1 = loadAvg1();
          const mbps = await transfer(get('sa1'), get('sa2'), o.mb);
          log(`  transfer, ${mode}: ${mbps.toFixed(2)} MiB/s`);
          samples.push({ mode, test: 'mbps', round, value: mbps, load1 });
          if (mode !== 'alone') {
            await bl.con.run('echo stop > /proc/net/pktgen/pgctrl');
            const secs = (performance.now() - t0) / 1000;
            // pkts-sofar counts from the last start (pktgen clears it then).
            const pps = (await sent()) / secs;
            const dr = (await dropped()) - d0;
            const passed = ((await tapRx()) - r0) / secs;
            blastInfo.push({ round, mode, pps, dropped: dr, passedPps: passed });
            log(
              `  blast (${mode}): ${pps.toFixed(0)} packets/s offered, ${dr} dropped by the switch, ${passed.toFixed(0)}/s reached the host`,
            );
          }
        }
      }
      await admin(daemon.dir, 'PUT', '/v1/audit/rules', { rules: {} });
    }
    for (const gu of g.values()) gu.con.close();
    await daemon.stop();
  }

  // ---- report ----------------------------------------------------------------------
  const xs = (mode: string, test: string) => samples.filter((s) => s.mode === mode && s.test === test);
  const perRound = (a: string, b: string, test: string) => {
    const out: number[] = [];
    for (const s of xs(a, test)) {
      const t = xs(b, test).find((v) => v.round === s.round);
      if (t) out.push(s.value / t.value);
    }
    return out;
  };
  const line = (label: string, mode: string, test: string, digits: number) => {
    const v = xs(mode, test).map((s) => s.value);
    return v.length
      ? [label, fmt(median(v), digits), `${fmt(min(v), digits)}–${fmt(max(v), digits)}`, String(v.length)]
      : undefined;
  };
  const rows = [
    line('switch, audit on: MiB/s', 'on', 'mbps', 2),
    line('switch, audit off: MiB/s', 'off', 'mbps', 2),
    line('Linux bridge: MiB/s', 'bridge', 'mbps', 2),
    line('switch, audit on: ping ms', 'on', 'rtt', 3),
    line('switch, audit off: ping ms', 'off', 'rtt', 3),
    line('Linux bridge: ping ms', 'bridge', 'rtt', 3),
    line('transfer alone: MiB/s', 'alone', 'mbps', 2),
    line('transfer during the blast (throttled): MiB/s', 'blast', 'mbps', 2),
    line('transfer during the blast, audit off (not throttled): MiB/s', 'blast-off', 'mbps', 2),
  ].filter((r): r is string[] => r !== undefined);
  const ratios: string[][] = [];
  /** goal undefined: a peer shown for comparison, with no goal of its own. */
  const ratio = (label: string, a: string, b: string, test: string, goal: number | undefined, higher: boolean) => {
    const per = perRound(a, b, test);
    if (per.length === 0) return;
    const m = median(per);
    ratios.push([
      label,
      fmt(m, 2),
      `${fmt(min(per), 2)}–${fmt(max(per), 2)}`,
      goal === undefined ? '—' : `${higher ? '≥' : '≤'} ${goal}`,
      goal === undefined ? '—' : (higher ? m >= goal : m <= goal) ? 'yes' : 'no',
    ]);
  };
  ratio('throughput, audit on / Linux bridge', 'on', 'bridge', 'mbps', 0.8, true);
  ratio('throughput, audit on / audit off', 'on', 'off', 'mbps', 0.8, true);
  ratio('ping, audit on / audit off (added latency)', 'on', 'off', 'rtt', 1.25, false);
  ratio('ping, audit on / Linux bridge', 'on', 'bridge', 'rtt', 1.25, false);
  ratio('transfer during the throttled blast / alone', 'blast', 'alone', 'mbps', 0.9, true);
  ratio('transfer during the unthrottled blast (audit off) / alone', 'blast-off', 'alone', 'mbps', undefined, true);
  const loads = samples.map((s) => s.load1);
  const blastSummary = (mode: string): string => {
    const b = blastInfo.filter((x) => x.mode === mode);
    if (b.length === 0) return 'nothing (not run)';
    const pps = b.map((x) => x.pps);
    const passed = b.map((x) => x.passedPps);
    return `median ${fmt(median(pps), 0)} packets/s (${fmt(min(pps), 0)}–${fmt(max(pps), 0)}), of which median ${fmt(median(passed), 0)}/s reached the host's TAP (${fmt(min(passed), 0)}–${fmt(max(passed), 0)}); the switch dropped ${b.map((x) => x.dropped).join(', ')} packets in the ${b.length} rounds`;
  };
  const body = [
    `What the switch's flow log and rules cost, and what a one-way blast does to a neighbour's transfer. Run: \`npm run bench:net -- --only audit,records,blast\` (\`--rounds N --mb N --blast-cap PCT\`). Source: \`bench/net-audit.ts\`.`,
    '',
    `- **Date:** ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC; **rounds:** ${o.rounds}, modes alternating in each round; guests 256 MiB, 1 vCPU; ${o.mb} MiB per transfer`,
    `- **Machine:** ${facts.nproc} CPUs (\`nproc\`), ${facts.cpuModel}, ${facts.ramGiB.toFixed(1)} GiB RAM; host kernel ${facts.kernel}; Node ${facts.nodeVersion}`,
    `- **Accelerator:** ${facts.accelNote}`,
    `- **QEMU:** ${facts.qemuVersion}`,
    `- **Priority:** nice ${getPriority()} (each guest's QEMU runs in a cpu cgroup, which nice does not reach: their top group's weight is raised to match); load average at the start ${startLoad.map((l) => l.toFixed(2)).join(', ')} (1, 5, 15 min)`,
    ...(loads.length
      ? [
          `- **Load:** 1-minute load average at the measurements ${fmt(min(loads), 1)}–${fmt(max(loads), 1)} on ${facts.nproc} CPUs (shared; each waited up to 20 s for the CPUs to be ≤ 60 % busy).`,
        ]
      : []),
    '',
    ...(rows.length ? [markdownTable(['measurement', 'median', 'min–max', 'runs'], rows), ''] : []),
    ...(ratios.length
      ? [markdownTable(['ratio (per round, then the median)', 'median', 'min–max', 'goal', 'met'], ratios), '']
      : []),
    ...(xs('on', 'mbps').length + xs('off', 'mbps').length + xs('bridge', 'mbps').length
      ? [
          '- **audit on**: Xenode\'s switch with the default rules (SMTP limit, ACK symmetry, SYN-flood and port-scan detection, IPv4/ARP anti-spoofing) and the flow log; **audit off**: the same switch and guests after `xenode audit-rules` with `{"enabled": false}`; **Linux bridge**: two other guests on a bridge through TAPs (`vif bridge=`).',
          "- **Throughput**: busybox `nc` fed by `dd if=/dev/zero bs=64k`, from the command to the receiver's end marker. **Ping**: the average of `ping -c 20 -i 0.2` guest to guest.",
          '',
        ]
      : []),
    ...(blastInfo.length
      ? [
          `- **Blast**: a third guest (\`cap=${o.blastCap}\`: on ${facts.nproc} CPUs under TCG an uncapped blaster would take a whole CPU from the transfer's two guests and the switch, which measures the CPU, not the network) runs pktgen (1000-byte UDP to the host's port 9, no delay) from 3 s before the transfer to its end. **Throttled**: the default rules with a one-way budget of ${BLAST_BUDGET / 1048576} MiB per 5 s (the default 256 MiB is above what a capped TCG guest sends), so the ACK-symmetry rule throttles the blaster to the throttle's 50 packets/s within its first second; **audit off**: the same blast with \`{"enabled": false}\`, nothing throttles it. Offered ${blastSummary('blast')}; audit off: offered ${blastSummary('blast-off')}. The two transfer guests are the audit rows' \`sa1\` → \`sa2\`, on the same switch.`,
          '',
        ]
      : []),
    ...(records
      ? [
          `- **Flow records written per second**: a switch process fed 60-byte UDP frames, each a new flow, by a fake QEMU for 5 s (flows close after 1 s idle; each flow is a record on the sending and on the receiving vif), drained once a second as the daemon does and appended to a segment file, timed from the first frame to the last record written: ${fmt(records.framesPerSec, 0)} new flows/s read by the switch, **${fmt(records.recordsPerSec, 0)} records/s** written end to end (${records.records} records, ${fmt(records.bytesPerRecord, 1)} bytes each on disk). The flow log alone writes 136 000 records/s (bench/audit-store.ts, docs/audit.md): here the switch process on a loaded host, not the log, is the limit.`,
          '',
        ]
      : []),
  ].join('\n');
  process.stdout.write(`\n${HEADING}\n\n${body}\n`);
  if (o.json) writeFileSync(o.json, JSON.stringify({ startedAt, facts, samples, blastInfo, records }, null, 2));
  if (o.doc) {
    replaceSection(join(o.root, 'docs', 'benchmarks.md'), HEADING, body);
    log('wrote docs/benchmarks.md');
  }
}
