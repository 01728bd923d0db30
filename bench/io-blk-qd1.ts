// A tuning loop for Xenode's disk backend (backendtype=xenode), not part of
// bench:io: one guest with two copies of the same image, one served by QEMU's
// virtio-blk and one by the backend, and the same guest measures 4 KiB random
// I/O on each in turn, round after round. Because the backend is restartable,
// a new build of it (`npm run build`, or just dist/xenode-blk.mjs) is tried by
// killing the running one: the supervisor starts the new code and the guest
// carries on. Each line names the backend's pid, so the rounds of each build
// can be told apart.
//
//   node --import tsx bench/io-blk-qd1.ts [--rounds N] [--seconds S] [--mode randread|randwrite] [--jobs J]

import { execFileSync } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureDefaultGuest } from '../guest/build.ts';
import { Cleanup } from './lib/cleanup.ts';
import { GuestConsole } from './lib/guest-console.ts';
import { XenodeDaemon } from './lib/xenode.ts';

const ROOT = resolve(import.meta.dirname, '..');
const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '3' },
    mode: { type: 'string', default: 'randread' },
    jobs: { type: 'string', default: '1' },
  },
  strict: true,
});
const log = (s: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
const cleanup = new Cleanup();
cleanup.installSignalHandlers();
const dir = mkdtempSync(join(tmpdir(), 'xn-qd1-'));
cleanup.add(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));

try {
  const tdir = join(dir, 'tools');
  mkdirSync(tdir);
  execFileSync('gcc', ['-static', '-O2', '-o', join(tdir, 'xnio'), join(ROOT, 'bench', 'io-tool.c')]);
  execFileSync('mke2fs', ['-q', '-t', 'ext4', '-d', tdir, '-F', join(dir, 'tools.img'), '8M']);
  const buf = Buffer.alloc(1 << 20);
  for (const name of ['a.img', 'b.img']) {
    const fd = openSync(join(dir, name), 'w');
    for (let i = 0; i < 256; i++) writeSync(fd, buf.fill(i));
    closeSync(fd);
  }
  await ensureDefaultGuest();
  const daemon = new XenodeDaemon(
    {
      root: ROOT,
      tmp: dir,
      memoryMiB: 256,
      vcpus: 1,
      timeoutMs: 180_000,
      cleanup,
      ourPids: new Set(),
      log,
    },
    join(dir, 'xenode'),
  );
  await daemon.start();
  const cfg = join(dir, 'q.cfg');
  writeFileSync(
    cfg,
    `name="qd1"\nmemory=256\ndisk=["${dir}/a.img,raw,xvdb,rw","${dir}/b.img,raw,xvdc,rw,backendtype=xenode","${dir}/tools.img,raw,xvdd,ro"]\n`,
  );
  const r = await daemon.cli(['create', cfg], 120_000);
  if (r.code !== 0) throw new Error(r.stderr);
  cleanup.add('destroy', async () => {
    await daemon.cli(['destroy', 'qd1']);
  });
  const con = await GuestConsole.overWebSocket(`ws+unix://${join(daemon.dir, 'xenoded.sock')}:/v1/domains/qd1/console`);
  await con.expect(/XENODE-READY/, 180_000);
  await con.expect(/qd1:\/# /, 60_000);
  const dev = (serial: string) =>
    `$(for s in /sys/block/vd*/serial; do [ "$(cat $s)" = ${serial} ] && { d=\${s%/serial}; echo /dev/\${d##*/}; }; done)`;
  await con.run(`mkdir -p /mnt/t && mount -o ro ${dev('xvdd')} /mnt/t`);
  const qdev = await con.run(`echo ${dev('xvdb')}`);
  const bdev = await con.run(`echo ${dev('xvdc')}`);
  const domid = (await daemon.cli(['domid', 'qd1'])).stdout.trim();
  const ctl = join(daemon.dir, 'domains', domid, 'vblk-51744.log');
  const iops = async (d: string) => {
    const out = await con.run(`/mnt/t/xnio ${opt.mode} ${d} ${opt.seconds} ${opt.jobs}`, 120_000);
    const m = /iops=(\d+) ops=(\d+)/.exec(out);
    if (!m) throw new Error(out);
    return { iops: Number(m[1]), ops: Number(m[2]) };
  };
  // What the backend spends per request, whatever the host's load: CPU time and
  // context switches (thread hand-offs) of all its threads.
  const TICK_US = 1e6 / 100;
  const usage = (pid: string) => {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    const cpu = (Number(st[11]) + Number(st[12])) * TICK_US;
    let ctx = 0;
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const s = readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8');
      for (const m of s.matchAll(/(?:non)?voluntary_ctxt_switches:\s+(\d+)/g)) ctx += Number(m[1]);
    }
    return { cpu, ctx };
  };
  for (let i = 0; i < Number(opt.rounds); i++) {
    const q = await iops(qdev);
    const pids = [...readFileSync(ctl, 'utf8').matchAll(/xenode-blk\[(\d+)\]/g)].map((m) => m[1]);
    const pid = pids.at(-1) ?? '0';
    let u0: ReturnType<typeof usage>;
    let u1: ReturnType<typeof usage>;
    let b: Awaited<ReturnType<typeof iops>>;
    try {
      u0 = usage(pid);
      b = await iops(bdev);
      u1 = usage(pid);
    } catch {
      log('the backend changed during the round (restarted): round skipped');
      continue;
    }
    log(
      `${opt.mode} QD${opt.jobs}: qemu ${q.iops} backend ${b.iops} ratio ${(b.iops / q.iops).toFixed(2)}; backend per request: ${((u1.cpu - u0.cpu) / b.ops).toFixed(0)} us CPU, ${((u1.ctx - u0.ctx) / b.ops).toFixed(2)} context switches (pid ${pid}); load ${loadavg()[0]?.toFixed(1)}`,
    );
  }
} finally {
  await cleanup.runAll();
}
