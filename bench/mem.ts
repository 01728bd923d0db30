// bench:mem — how long from a memory command until the guest sees 512 MiB more
// (or 512 MiB less) in /proc/meminfo, and what QEMU holds on the host before and
// after, for Xenode (virtio-mem and balloon) next to libvirt's `virsh setmem` and
// a bare QEMU driven over QMP, all in one run on the same guest.
//
//   npm run bench:mem -- [--rounds 5] [--only xenode-hotplug,xenode-balloon,libvirt,qemu-qmp]
//                        [--no-doc] [--json FILE] [--keep]

import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, copyFileSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureDefaultGuest } from '../guest/build.ts';
import { QmpClient } from '../src/engine/qmp.ts';
import { Cleanup } from './lib/cleanup.ts';
import type { BenchContext } from './lib/contender.ts';
import { replaceSection } from './lib/doc.ts';
import { GuestConsole } from './lib/guest-console.ts';
import { hostFacts, loadAvg1, waitQuiet } from './lib/host.ts';
import { ensureLibvirt, LIBVIRT_URI } from './lib/libvirt.ts';
import { readPid, run, stopPid } from './lib/proc.ts';
import { fmt, markdownTable, max, median, min } from './lib/stats.ts';
import { XenodeDaemon } from './lib/xenode.ts';

const HEADING = '## Memory (bench:mem)';
const ROOT = resolve(import.meta.dirname, '..');
const STEP_MIB = 512;
const OP_TIMEOUT_MS = 120_000;

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    only: { type: 'string' },
    'no-doc': { type: 'boolean', default: false },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
  strict: true,
});
const rounds = Number(opt.rounds);
if (!Number.isInteger(rounds) || rounds < 1) {
  process.stderr.write(`bench:mem: --rounds must be a positive integer, got '${opt.rounds}'\n`);
  process.exit(2);
}
const only = opt.only ? new Set(opt.only.split(',').map((s) => s.trim())) : undefined;
const wanted = (id: string) => !only || only.has(id);
const log = (s: string) => process.stderr.write(`${s}\n`);
const cleanup = new Cleanup();
cleanup.installSignalHandlers();

/** One domain under test and how to change its memory. */
interface Subject {
  id: string;
  /** 'hotplug': boot 256 MiB, grow to 768 and back; 'balloon': boot 1024 MiB, shrink to 512 and back. */
  kind: 'hotplug' | 'balloon';
  what: string;
  con: GuestConsole;
  pid: number;
  setMem(mib: number): Promise<void>;
}

interface Sample {
  subject: string;
  op: 'grow' | 'reclaim';
  round: number;
  /** Command start until the guest's MemTotal moved by 512 MiB. */
  seconds: number;
  /** Command start until the command returned. */
  commandSeconds: number;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  load1: number;
}

/** QEMU's resident memory including the shared guest RAM (smaps_rollup Rss), MiB. */
function rssMiB(pid: number): number {
  const m = /^Rss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

async function memTotalKiB(con: GuestConsole): Promise<number> {
  const out = await con.run('read -r _ t _ < /proc/meminfo; echo $t');
  return Number(out);
}

/** Change the target and time it until the guest's MemTotal has moved by STEP_MIB. */
async function op(s: Subject, targetMiB: number, kind: Sample['op'], round: number): Promise<Sample> {
  await waitQuiet(0.5, 15_000);
  const before = await memTotalKiB(s.con);
  const slack = 2048;
  const goal = kind === 'grow' ? before + STEP_MIB * 1024 - slack : before - STEP_MIB * 1024 + slack;
  const test = kind === 'grow' ? `-ge ${goal}` : `-le ${goal}`;
  // Read while touch()'s file still holds its pages (it goes just before the command).
  const rssBeforeMiB = rssMiB(s.pid);
  const w = s.con.marker('W');
  const m = s.con.marker('M');
  const from = s.con.length;
  // The guest polls its own MemTotal (shell builtins, a 20 ms usleep between reads).
  // Any file left by touch() goes just before the command.
  s.con.send(
    `rm -f /mnt/t/f; echo ${w.typed}; while :; do read -r _ t _ < /proc/meminfo; [ "$t" ${test} ] && break; usleep 20000; done; echo ${m.typed} $t\n`,
  );
  await s.con.expect(w.re('\\r?\\n'), 30_000, from);
  const load1 = loadAvg1();
  const t0 = performance.now();
  await s.setMem(targetMiB);
  const commandSeconds = (performance.now() - t0) / 1000;
  const hit = await s.con.expect(m.re(' \\d+'), OP_TIMEOUT_MS, from);
  const seconds = (hit.at - t0) / 1000;
  const rssAfterMiB = rssMiB(s.pid);
  log(
    `  ${s.id} ${kind} -> ${targetMiB} MiB: ${seconds.toFixed(3)} s (command ${commandSeconds.toFixed(3)} s), RSS ${rssBeforeMiB.toFixed(0)} -> ${rssAfterMiB.toFixed(0)} MiB`,
  );
  return { subject: s.id, op: kind, round, seconds, commandSeconds, rssBeforeMiB, rssAfterMiB, load1 };
}

/** Touch `mib` of guest memory (a tmpfs file; op() deletes it right before its command). */
async function touch(s: Subject, mib: number): Promise<void> {
  const out = await s.con.run(`dd if=/dev/zero of=/mnt/t/f bs=1M count=${mib} 2>&1 | tail -1`, 120_000);
  if (!out.includes(`${mib}+0 records out`)) throw new Error(`${s.id}: filling guest memory failed: ${out}`);
}

async function prepare(con: GuestConsole, name: string): Promise<void> {
  await con.expect(/XENODE-READY/, 120_000);
  await con.expect(new RegExp(`${name}:/# `), 60_000);
  await con.run('mkdir -p /mnt/t && mount -t tmpfs -o size=900m tmpfs /mnt/t');
}

// ---- subjects ---------------------------------------------------------------------

async function xenodeSubject(
  daemon: XenodeDaemon,
  id: string,
  name: string,
  cfgText: string,
  kind: Subject['kind'],
  tmp: string,
): Promise<Subject> {
  const cfg = join(tmp, `${name}.cfg`);
  writeFileSync(cfg, cfgText);
  const r = await daemon.cli(['create', cfg], 120_000);
  if (r.code !== 0) throw new Error(`xenode create ${name}: ${r.stderr.trim()}`);
  const domid = (await daemon.cli(['domid', name])).stdout.trim();
  const con = await GuestConsole.overWebSocket(
    `ws+unix://${join(daemon.dir, 'xenoded.sock')}:/v1/domains/${domid}/console`,
  );
  await prepare(con, name);
  const pid = readPid(join(daemon.dir, 'domains', domid, 'qemu.pid'));
  if (!pid) throw new Error(`no QEMU pid for ${name}`);
  return {
    id,
    kind,
    what: `\`xenode mem-set ${name} <MiB>\` (${kind === 'hotplug' ? 'virtio-mem' : 'balloon'})`,
    con,
    pid,
    async setMem(mib) {
      const res = await daemon.cli(['mem-set', name, String(mib)]);
      if (res.code !== 0) throw new Error(`mem-set ${name} ${mib}: ${res.stderr.trim()}`);
    },
  };
}

function xmlEscape(s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll("'", '&apos;');
}

async function libvirtSubject(tmp: string, kernel: string, initrd: string, cmdline: string): Promise<Subject> {
  const name = 'benchmemlv';
  const sock = join(tmp, 'lv-serial.sock');
  const xml = `<domain type='qemu'>
  <name>${name}</name>
  <memory unit='MiB'>1024</memory>
  <currentMemory unit='MiB'>1024</currentMemory>
  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>
  <vcpu>1</vcpu>
  <cpu mode='maximum'/>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${xmlEscape(kernel)}</kernel>
    <initrd>${xmlEscape(initrd)}</initrd>
    <cmdline>${xmlEscape(cmdline.replaceAll('NAME', name))}</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <devices>
    <controller type='usb' model='none'/>
    <serial type='unix'><source mode='bind' path='${xmlEscape(sock)}'/><target port='0'/></serial>
    <memballoon model='virtio'/>
  </devices>
</domain>
`;
  const xmlPath = join(tmp, 'lv.xml');
  writeFileSync(xmlPath, xml);
  await run('virsh', ['-c', LIBVIRT_URI, 'destroy', name], { timeoutMs: 20_000 });
  cleanup.add(`virsh destroy ${name}`, async () => {
    await run('virsh', ['-c', LIBVIRT_URI, 'destroy', name], { timeoutMs: 20_000 });
  });
  const r = await run('virsh', ['-c', LIBVIRT_URI, 'create', xmlPath], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`virsh create: ${r.stderr.trim()}`);
  const con = await GuestConsole.overSocket(sock, 30_000);
  con.send('\n');
  await prepare(con, name);
  const pid = readPid(`/run/libvirt/qemu/${name}.pid`);
  if (!pid) throw new Error('no pid for the libvirt QEMU');
  return {
    id: 'libvirt',
    kind: 'balloon',
    what: "`virsh setmem <dom> <MiB>M --live` (libvirt 9.0, `<memballoon model='virtio'/>`, same kernel, initrd, command line, memfd RAM)",
    con,
    pid,
    async setMem(mib) {
      const res = await run('virsh', ['-c', LIBVIRT_URI, 'setmem', name, `${mib}M`, '--live'], { timeoutMs: 30_000 });
      if (res.code !== 0) throw new Error(`virsh setmem: ${res.stderr.trim()}`);
    },
  };
}

/** Xenode's own QEMU command line for the balloon domain, run bare and driven over QMP. */
async function qemuSubject(tmp: string, templatePid: number, templateRunDir: string): Promise<Subject> {
  const dir = mkdtempSync(join(tmp, 'qemu-'));
  const argv = readFileSync(`/proc/${templatePid}/cmdline`, 'utf8')
    .split('\0')
    .filter((a) => a !== '' && a !== '-S')
    .map((a) => a.replaceAll(templateRunDir, dir).replaceAll('xenode.name=memballoon', 'xenode.name=qemuqmp'));
  const [bin, ...args] = argv;
  if (!bin) throw new Error('empty QEMU command line');
  const out = openSync(join(dir, 'qemu.log'), 'a');
  const child: ChildProcess = spawn(bin, args, { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  const pid = child.pid;
  if (!pid) throw new Error('QEMU did not start');
  cleanup.add('stop bare QEMU', () => stopPid(pid));
  const con = await GuestConsole.overSocket(join(dir, 'serial.sock'), 30_000);
  const qmp = new QmpClient(join(dir, 'qmp.sock'));
  await qmp.connect({ retryUntil: Date.now() + 30_000 });
  cleanup.add('close QMP', () => qmp.close());
  await prepare(con, 'qemuqmp');
  return {
    id: 'qemu-qmp',
    kind: 'balloon',
    what: "Xenode's QEMU command line for the balloon domain, started bare; QMP `balloon` (no toolstack)",
    con,
    pid,
    async setMem(mib) {
      await qmp.execute('balloon', { value: mib * 1024 * 1024 });
    },
  };
}

// ---- main -------------------------------------------------------------------------

async function main(): Promise<void> {
  const startedAt = new Date();
  const facts = hostFacts();
  const tmp = mkdtempSync('/tmp/xenode-bench-mem-');
  await run('chmod', ['0755', tmp]);
  if (!opt.keep) cleanup.add(`remove ${tmp}`, () => rmSync(tmp, { recursive: true, force: true }));
  log(`bench:mem: ${rounds} rounds; temp dir ${tmp}`);

  const guest = await ensureDefaultGuest({ onProgress: (m) => log(`default guest: ${m}`) });
  // World-readable copies for libvirt's QEMU (the cache under /root is not readable to it).
  const gdir = join(tmp, 'guest');
  await run('mkdir', ['-m', '0755', gdir]);
  const kernel = join(gdir, 'vmlinux');
  const initrd = join(gdir, 'initrd.cpio');
  copyFileSync(guest.vmlinux, kernel);
  copyFileSync(guest.initrd, initrd);
  await run('chmod', ['0644', kernel, initrd]);

  const ctx: BenchContext = {
    root: ROOT,
    tmp,
    memoryMiB: 1024,
    vcpus: 1,
    timeoutMs: OP_TIMEOUT_MS,
    cleanup,
    ourPids: new Set(),
    log,
  };
  const daemon = new XenodeDaemon(ctx, join(tmp, 'xenode'));
  log('starting the bench xenoded (not timed)...');
  await daemon.start();

  const subjects: Subject[] = [];
  if (wanted('xenode-hotplug')) {
    subjects.push(
      await xenodeSubject(
        daemon,
        'xenode-hotplug',
        'memhotplug',
        'name = "memhotplug"\nmemory = 256\nmaxmem = 1024\n',
        'hotplug',
        tmp,
      ),
    );
  }
  // The balloon domain is also the template for the bare QEMU.
  const balloon = await xenodeSubject(
    daemon,
    'xenode-balloon',
    'memballoon',
    'name = "memballoon"\nmemory = 1024\n',
    'balloon',
    tmp,
  );
  if (wanted('xenode-balloon')) subjects.push(balloon);
  const balloonDomid = (await daemon.cli(['domid', 'memballoon'])).stdout.trim();
  const argv = readFileSync(`/proc/${balloon.pid}/cmdline`, 'utf8').split('\0');
  const append = argv[argv.indexOf('-append') + 1] ?? 'console=ttyS0 xenode.name=NAME quiet';
  if (wanted('qemu-qmp')) subjects.push(await qemuSubject(tmp, balloon.pid, join(daemon.dir, 'domains', balloonDomid)));
  let libvirtSkip: string | undefined;
  if (wanted('libvirt')) {
    libvirtSkip = await ensureLibvirt(log);
    if (libvirtSkip) log(`skipping libvirt: ${libvirtSkip}`);
    else
      subjects.push(
        await libvirtSubject(tmp, kernel, initrd, append.replace('xenode.name=memballoon', 'xenode.name=NAME')),
      );
  }
  if (!wanted('xenode-balloon')) {
    balloon.con.close();
    await daemon.cli(['destroy', 'memballoon']);
  }

  const samples: Sample[] = [];
  for (let round = 1; round <= rounds; round++) {
    log(`round ${round}/${rounds}`);
    // Rotate the order so no subject always goes first.
    const order = subjects.map((_, i) => subjects[(i + round) % subjects.length] as Subject);
    for (const s of order) {
      if (s.kind === 'hotplug') {
        samples.push(await op(s, 256 + STEP_MIB, 'grow', round));
        await touch(s, 400);
        samples.push(await op(s, 256, 'reclaim', round));
      } else {
        await touch(s, 600);
        samples.push(await op(s, 1024 - STEP_MIB, 'reclaim', round));
        samples.push(await op(s, 1024, 'grow', round));
      }
    }
  }
  for (const s of subjects) s.con.close();

  const rows: string[][] = [];
  for (const s of subjects) {
    for (const o of ['grow', 'reclaim'] as const) {
      const xs = samples.filter((x) => x.subject === s.id && x.op === o);
      const range =
        s.kind === 'hotplug' ? (o === 'grow' ? '256 → 768' : '768 → 256') : o === 'grow' ? '512 → 1024' : '1024 → 512';
      rows.push([
        s.id,
        `${o} ${range}`,
        fmt(median(xs.map((x) => x.seconds)), 3),
        `${fmt(min(xs.map((x) => x.seconds)), 3)}–${fmt(max(xs.map((x) => x.seconds)), 3)}`,
        fmt(median(xs.map((x) => x.commandSeconds)), 3),
        `${fmt(median(xs.map((x) => x.rssBeforeMiB)), 0)} → ${fmt(median(xs.map((x) => x.rssAfterMiB)), 0)}`,
      ]);
    }
  }
  const table = markdownTable(
    ['subject', 'operation (MiB)', 'median s', 'min–max s', 'command s', 'QEMU RSS MiB before → after (median)'],
    rows,
  );
  const loads = samples.map((x) => x.load1);
  const body = [
    `Run ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC on ${facts.cpuModel}, ${facts.nproc} CPUs, ${facts.ramGiB.toFixed(0)} GiB, Linux ${facts.kernel}; ${facts.qemuVersion}; accelerator ${facts.accelNote}. ${rounds} rounds, subjects alternating; 1-minute load average during the run ${fmt(min(loads), 1)}–${fmt(max(loads), 1)} (other people's guests share the 2 CPUs).`,
    '',
    table,
    '',
    '- **Time**: from starting the command (CLI process, `virsh`, or the QMP request) until the guest, polling its own `/proc/meminfo` every ~20 ms, sees MemTotal 512 MiB higher (grow) or lower (reclaim). **command s**: until the command itself returned (all of them return before the guest is done).',
    '- **QEMU RSS**: `/proc/<pid>/smaps_rollup` Rss (guest RAM is a shared memfd, so this includes it) before the command and when the guest saw the change. Before each reclaim the guest wrote 400 MiB (hot-plug) or 600 MiB (balloon) to a tmpfs file, so there was touched memory to give back; "before" is read while the file exists, and the guest deletes it just before the command.',
    "- Xenode's balloon has free page reporting on: freed guest pages go back to the host within seconds even without a mem-set; libvirt's default balloon has it off.",
    "- The three balloon subjects inflate the same virtio-balloon in the same guest kernel; under this host's varying load their min–max ranges overlap widely, so their medians do not rank them. virtio-mem (xenode-hotplug) is the faster way both to grow and to reclaim: it moves whole 2 MiB blocks, where the balloon moves 4 KiB pages one by one.",
    ...subjects.map((s) => `- ${s.id}: ${s.what}.`),
    ...(libvirtSkip ? [`- libvirt was skipped: ${libvirtSkip}.`] : []),
  ].join('\n');
  process.stdout.write(`\n${HEADING}\n\n${body}\n`);
  if (opt.json) writeFileSync(opt.json, JSON.stringify({ startedAt, facts, samples }, null, 2));
  if (!opt['no-doc']) {
    replaceSection(join(ROOT, 'docs', 'benchmarks.md'), HEADING, body);
    log('wrote docs/benchmarks.md');
  }
  await daemon.stop();
}

try {
  await main();
} finally {
  await cleanup.runAll();
}
