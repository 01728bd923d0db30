// bench:io, disk section — block I/O seen from inside the default guest on a raw
// image: sequential 1 MiB read and write (MB/s) and 4 KiB random reads and
// writes (IOPS at queue depth 1 and 4), all O_DIRECT in the guest, measured by
// bench/io-tool.c (built static on the host, handed to the guest on a read-only
// disk of its own). Next to Xenode, in the same run and alternating: the same
// disk served by Xenode's own backend process (backendtype=xenode, the
// TypeScript vhost-user-blk backend), plain QEMU started by hand with Xenode's
// disk options, and with the O_DIRECT options Xenode did not pick.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
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
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDefaultGuest, type GuestImage } from '../guest/build.ts';
import { blockdevOptions, DEFAULT_DISK_IO, type DiskIo, type PlacedDisk } from '../src/engine/disk-args.ts';
import type { BenchContext } from './lib/contender.ts';
import { replaceSection } from './lib/doc.ts';
import { GuestConsole } from './lib/guest-console.ts';
import { hostFacts, loadAvg1, waitQuiet } from './lib/host.ts';
import type { IoSectionOptions } from './lib/io-section.ts';
import { cpuSeconds, stopPid } from './lib/proc.ts';
import { fmt, markdownTable, max, median, min } from './lib/stats.ts';
import { XenodeDaemon } from './lib/xenode.ts';

const HEADING = '## Disk I/O (bench:io)';
const DATA_MIB = 256;
const SEQ_READ_MIB = 128;
const SEQ_WRITE_MIB = 64;
const RAND_SECONDS = 5;
const MEMORY_MIB = 256;

interface Result {
  contender: string;
  round: number;
  seqRead: number;
  seqWrite: number;
  iops1: number;
  iops4: number;
  wiops1: number;
  wiops4: number;
  /** CPU µs per 4 KiB request (all the contender's processes: QEMU, and the backend where there is one). */
  cpu1: number;
  cpu4: number;
  wcpu1: number;
  wcpu4: number;
  load1: number;
}

interface Guest {
  con: GuestConsole;
  /** The processes serving the guest (its QEMU; the disk backend's, found afresh each time: it may restart). */
  pids(): Promise<number[]>;
  stop(): Promise<void>;
}

interface DiskContender {
  id: string;
  what: string;
  boot(tag: string): Promise<Guest>;
}

interface Files {
  dir: string;
  data: string;
  tools: string;
  guest: GuestImage;
}

/** The I/O tool, static, on an ext4 image the guest mounts read-only. */
function buildTools(dir: string, root: string): string {
  const tdir = join(dir, 'tools');
  mkdirSync(tdir);
  try {
    execFileSync('gcc', ['-static', '-O2', '-o', join(tdir, 'xnio'), join(root, 'bench', 'io-tool.c')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  } catch (e) {
    throw new Error(
      `cannot build bench/io-tool.c with gcc -static (apt-get install gcc libc6-dev): ${(e as Error).message}`,
    );
  }
  const img = join(dir, 'tools.img');
  execFileSync('mke2fs', ['-q', '-t', 'ext4', '-d', tdir, '-F', img, '8M']);
  return img;
}

/** A raw image full of random bytes: no holes, so every read reaches the file. */
function makeData(path: string): void {
  const fd = openSync(path, 'w');
  const buf = Buffer.alloc(1 << 20);
  try {
    for (let i = 0; i < DATA_MIB; i++) writeSync(fd, randomFillSync(buf));
  } finally {
    closeSync(fd);
  }
}

/** Drop the host's cached pages of the image (GNU dd's nocache advice) so no run reads another's cache. */
function dropCache(path: string): void {
  try {
    execFileSync('dd', [`if=${path}`, 'iflag=nocache', 'count=0'], { stdio: 'ignore' });
  } catch {
    // best effort: only the page-cache contender could profit
  }
}

async function readyShell(con: GuestConsole, name: string): Promise<void> {
  // Long: on a host shared with other people's guests a boot under TCG can take minutes.
  await con.expect(/XENODE-READY/, 600_000);
  await con.expect(new RegExp(`${name}:/# `), 60_000);
}

// ---- contenders -----------------------------------------------------------------

/** `backend`: the data disk served by Xenode's own backend process (backendtype=xenode). */
function xenodeContender(ctx: BenchContext, daemon: XenodeDaemon, f: Files, backend = false): DiskContender {
  const extra = backend ? ',backendtype=xenode' : '';
  return {
    id: backend ? 'xenode-blk' : 'xenode',
    what: backend
      ? "as xenode, but the data disk is `'<data>,raw,xvdb,rw,backendtype=xenode'`: served by Xenode's TypeScript vhost-user-blk backend process (`dist/xenode-blk.mjs`) through QEMU's `vhost-user-blk-pci`"
      : "`xenode create` with `disk=['<data>,raw,xvdb,rw', '<tools>,raw,xvdc,ro']`: Xenode's own choice of disk options (QEMU's virtio-blk serves both)",
    async boot(tag) {
      const name = `io${tag}`;
      const cfg = join(f.dir, `${name}.cfg`);
      writeFileSync(
        cfg,
        `name="${name}"\nmemory=${MEMORY_MIB}\ndisk=["${f.data},raw,xvdb,rw${extra}","${f.tools},raw,xvdc,ro"]\n`,
      );
      const r = await daemon.cli(['create', cfg], 120_000);
      if (r.code !== 0) throw new Error(`xenode create: ${r.stderr.trim()}`);
      const undo = ctx.cleanup.add(`destroy ${name}`, async () => {
        await daemon.cli(['destroy', name]);
      });
      const con = await GuestConsole.overWebSocket(
        `ws+unix://${join(daemon.dir, 'xenoded.sock')}:/v1/domains/${name}/console`,
      );
      await readyShell(con, name);
      return {
        con,
        async pids() {
          const view = await apiGet<{ pid?: number }>(join(daemon.dir, 'xenoded.sock'), `/v1/domains/${name}`);
          return [...(view.pid ? [view.pid] : []), ...(backend ? backendPids(f.data) : [])];
        },
        async stop() {
          // The disk counters Xenode reports must have seen the reads (a check on block-stats).
          const stats = await apiGet<{ disk: Array<{ vdev: string; rdBytes: number }> }>(
            join(daemon.dir, 'xenoded.sock'),
            `/v1/domains/${name}/block/stats`,
          );
          const rd = stats.disk.find((s) => s.vdev === 'xvdb')?.rdBytes ?? 0;
          if (rd < SEQ_READ_MIB * 2 ** 20) throw new Error(`block/stats saw only ${rd} bytes read from xvdb`);
          con.close();
          await daemon.cli(['destroy', name]);
          undo();
        },
      };
    },
  };
}

/** QEMU by hand: the default guest, a serial socket, and the two disks as `disks` describes them. */
function qemuContender(
  ctx: BenchContext,
  f: Files,
  id: string,
  what: string,
  disks: (data: string, tools: string) => string[],
): DiskContender {
  return {
    id,
    what,
    async boot(tag) {
      const name = `io${tag}`;
      const dir = mkdtempSync(join(f.dir, `${id}-`));
      const serial = join(dir, 'serial.sock');
      const args = [
        ...['-machine', 'pc-i440fx-7.2', '-accel', 'tcg', '-cpu', 'max', '-m', String(MEMORY_MIB)],
        ...['-nodefaults', '-no-user-config', '-display', 'none'],
        ...['-chardev', `socket,id=ser0,path=${serial},server=on,wait=off`, '-serial', 'chardev:ser0'],
        ...['-kernel', f.guest.vmlinux, '-initrd', f.guest.initrd],
        ...['-append', `console=ttyS0 xenode.name=${name} quiet xenode.data=`],
        ...disks(f.data, f.tools),
      ];
      const log = openSync(join(dir, 'qemu.log'), 'a');
      const child: ChildProcess = spawn('qemu-system-x86_64', args, { stdio: ['ignore', log, log] });
      closeSync(log);
      const pid = child.pid;
      if (pid) ctx.ourPids.add(pid);
      const undo = ctx.cleanup.add(`kill ${id} ${pid}`, async () => {
        if (pid) await stopPid(pid);
      });
      const con = await GuestConsole.overSocket(serial, 30_000);
      await readyShell(con, name);
      return {
        con,
        async pids() {
          return pid ? [pid] : [];
        },
        async stop() {
          con.close();
          if (pid) await stopPid(pid);
          undo();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  };
}

/** Xenode's own -blockdev objects for the two disks (or with `io` instead of its choice), on plain virtio-blk-pci. */
function xenodeDiskOptions(data: string, tools: string, override?: DiskIo): string[] {
  const out: string[] = [];
  for (const [vdev, target, access, devnum] of [
    ['xvdb', data, 'rw', 51728],
    ['xvdc', tools, 'ro', 51744],
  ] as const) {
    const p: PlacedDisk = {
      spec: { target, format: 'raw', vdev, access, devtype: 'disk' },
      devnum,
      kind: 'virtio-blk',
      slot: 0,
    };
    const io: DiskIo = override ?? DEFAULT_DISK_IO;
    const bd = blockdevOptions(p, io) as Record<string, unknown>;
    out.push('-blockdev', JSON.stringify(bd));
    out.push('-device', `virtio-blk-pci,drive=${String(bd['node-name'])},serial=${vdev}`);
  }
  return out;
}

/** xenode-blk processes serving `image`. */
function backendPids(image: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => a.endsWith('xenode-blk.mjs')) && argv.includes(image)) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function apiGet<T>(socketPath: string, path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => {
        try {
          resolve(JSON.parse(body) as T);
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}

// ---- one measurement ------------------------------------------------------------------

function field(out: string, key: string): number {
  const m = new RegExp(`${key}=([\\d.]+)`).exec(out);
  if (!m) throw new Error(`xnio printed no ${key}: ${out}`);
  return Number(m[1]);
}

async function measure(g: Guest, id: string, round: number, data: string, log: (s: string) => void): Promise<Result> {
  const { con } = g;
  // Find the disks by their serials (the Xen names), whatever the guest called them.
  const dev = (serial: string) =>
    `$(for s in /sys/block/vd*/serial; do [ "$(cat $s)" = ${serial} ] && { d=\${s%/serial}; echo /dev/\${d##*/}; }; done)`;
  await con.run(`mkdir -p /mnt/t && mount -o ro ${dev('xvdc')} /mnt/t && D=${dev('xvdb')} && echo $D`);
  const x = async (args: string) => {
    // Every phase starts cold on the host, so page-cache modes are timed on the I/O path, not on hits.
    dropCache(data);
    await waitQuiet(0.6, 20_000);
    const out = await con.run(`/mnt/t/xnio ${args}`, 300_000);
    if (!/mbps=|iops=/.test(out)) throw new Error(`${id}: xnio ${args}: ${out}`);
    return out;
  };
  // A random phase: IOPS, and CPU µs per request of the contender's processes (QEMU's
  // includes the guest's own vCPU time under TCG, the same for every contender).
  const rand = async (args: string): Promise<[number, number]> => {
    const cpu = async () => (await g.pids()).reduce((s, p) => s + cpuSeconds(p), 0);
    dropCache(data);
    await waitQuiet(0.6, 20_000);
    const c0 = await cpu();
    const out = await con.run(`/mnt/t/xnio ${args}`, 300_000);
    const c1 = await cpu();
    if (!/iops=/.test(out)) throw new Error(`${id}: xnio ${args}: ${out}`);
    return [field(out, 'iops'), ((c1 - c0) * 1e6) / field(out, 'ops')];
  };
  const load1 = loadAvg1();
  const seqRead = field(await x(`seqread $D ${SEQ_READ_MIB}`), 'mbps');
  const seqWrite = field(await x(`seqwrite $D ${SEQ_WRITE_MIB}`), 'mbps');
  const [iops1, cpu1] = await rand(`randread $D ${RAND_SECONDS} 1`);
  const [iops4, cpu4] = await rand(`randread $D ${RAND_SECONDS} 4`);
  const [wiops1, wcpu1] = await rand(`randwrite $D ${RAND_SECONDS} 1`);
  const [wiops4, wcpu4] = await rand(`randwrite $D ${RAND_SECONDS} 4`);
  log(
    `  ${id} round ${round}: read ${fmt(seqRead, 1)} MB/s, write ${fmt(seqWrite, 1)} MB/s, 4k rand read ${fmt(iops1, 0)} IOPS (QD1), ${fmt(iops4, 0)} (QD4), write ${fmt(wiops1, 0)} (QD1), ${fmt(wiops4, 0)} (QD4); CPU µs per request ${[cpu1, cpu4, wcpu1, wcpu4].map((c) => fmt(c, 0)).join(' / ')}`,
  );
  return {
    contender: id,
    round,
    seqRead,
    seqWrite,
    iops1,
    iops4,
    wiops1,
    wiops4,
    cpu1,
    cpu4,
    wcpu1,
    wcpu4,
    load1,
  };
}

// ---- the section ---------------------------------------------------------------------------

export async function runSection(o: IoSectionOptions): Promise<void> {
  const startedAt = new Date();
  const facts = hostFacts();
  const dir = mkdtempSync(join(tmpdir(), 'xn-io-'));
  o.cleanup.add(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  const ctx: BenchContext = {
    root: o.root,
    tmp: dir,
    memoryMiB: MEMORY_MIB,
    vcpus: 1,
    timeoutMs: 180_000,
    cleanup: o.cleanup,
    ourPids: new Set(),
    log: o.log,
  };
  o.log('disk: building the I/O tool and the images');
  const f: Files = {
    dir,
    data: join(dir, 'data.img'),
    tools: buildTools(dir, o.root),
    guest: await ensureDefaultGuest({ onProgress: (m) => o.log(`default guest: ${m}`) }),
  };
  makeData(f.data);
  const io = DEFAULT_DISK_IO;
  const daemon = new XenodeDaemon(ctx, join(dir, 'xenode'));
  await daemon.start();
  const all: DiskContender[] = [
    xenodeContender(ctx, daemon, f),
    xenodeContender(ctx, daemon, f, true),
    qemuContender(
      ctx,
      f,
      'qemu-same',
      "plain QEMU by hand with Xenode's `-blockdev` options for each disk (`virtio-blk-pci` on the root bus)",
      (data, tools) => xenodeDiskOptions(data, tools),
    ),
    qemuContender(
      ctx,
      f,
      'qemu-iouring',
      'as qemu-same but cache.direct=on (O_DIRECT) with aio=io_uring: an alternative Xenode did not pick',
      (data, tools) => xenodeDiskOptions(data, tools, { direct: true, aio: 'io_uring' }),
    ),
    qemuContender(
      ctx,
      f,
      'qemu-native',
      'as qemu-same but cache.direct=on (O_DIRECT) with aio=native (Linux AIO): the other alternative',
      (data, tools) => xenodeDiskOptions(data, tools, { direct: true, aio: 'native' }),
    ),
  ];
  const contenders = all.filter((c) => !o.only || o.only.has(c.id));
  const results: Result[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    // Rotate the order so no contender always runs first (or last) in a round.
    const order = contenders.map((_, i) => contenders[(i + round - 1) % contenders.length] as DiskContender);
    for (const c of order) {
      const g = await c.boot(`${round}${c.id.replace(/[^a-z]/g, '')}`.slice(0, 20));
      try {
        results.push(await measure(g, c.id, round, f.data, o.log));
      } finally {
        await g.stop();
      }
    }
  }
  await daemon.stop();

  type Col = 'seqRead' | 'seqWrite' | 'iops1' | 'iops4' | 'wiops1' | 'wiops4' | 'cpu1' | 'cpu4' | 'wcpu1' | 'wcpu4';
  const CPU_COLS: Col[] = ['cpu1', 'cpu4', 'wcpu1', 'wcpu4'];
  const COLS: Array<[Col, number]> = [
    ['seqRead', 1],
    ['seqWrite', 1],
    ['iops1', 0],
    ['iops4', 0],
    ['wiops1', 0],
    ['wiops4', 0],
  ];
  const of = (id: string, k: Col) => results.filter((r) => r.contender === id).map((r) => r[k]);
  const rows = contenders.map((c) => {
    const col = (k: Col, d: number) => {
      const xs = of(c.id, k);
      return `${fmt(median(xs), d)} (${fmt(min(xs), d)}–${fmt(max(xs), d)})`;
    };
    return [c.id, ...COLS.map(([k, d]) => col(k, d)), String(of(c.id, 'seqRead').length)];
  });
  const cpuRows = contenders.map((c) => [
    c.id,
    ...CPU_COLS.map((k) => {
      const xs = of(c.id, k);
      return `${fmt(median(xs), 0)} (${fmt(min(xs), 0)}–${fmt(max(xs), 0)})`;
    }),
  ]);
  // The goal of issue 18: Xenode's backend at least 0.8x QEMU's own virtio-blk, on each measure.
  // The ratio of the medians, and the range of the per-round ratios (the two ran back to back).
  const ratioLines: string[] = [];
  const peers = ['xenode', 'qemu-native'].filter((p) => contenders.some((c) => c.id === p));
  if (contenders.some((c) => c.id === 'xenode-blk')) {
    for (const peer of peers) {
      const cells = COLS.map(([k]) => {
        const a = of('xenode-blk', k);
        const b = of(peer, k);
        const per = results
          .filter((r) => r.contender === 'xenode-blk')
          .map((r) => {
            const p = results.find((q) => q.contender === peer && q.round === r.round);
            return p ? r[k] / p[k] : Number.NaN;
          })
          .filter((x) => Number.isFinite(x));
        const m = median(a) / median(b);
        return `**${fmt(m, 2)}×** (${fmt(min(per), 2)}–${fmt(max(per), 2)})${m >= 0.8 ? '' : ' ✗'}`;
      });
      // CPU per request: less is better, so the peer's over the backend's (≥ 0.8: at most 1.25× the CPU).
      const cpuCells = CPU_COLS.map((k) => {
        const m = median(of(peer, k)) / median(of('xenode-blk', k));
        return `**${fmt(m, 2)}×**${m >= 0.8 ? '' : ' ✗'}`;
      });
      ratioLines.push(`| xenode-blk / ${peer} | ${cells.join(' | ')} | ${cpuCells.join(' | ')} |`);
    }
  }
  const loads = results.map((r) => r.load1);
  const body = [
    `Block I/O measured inside the default guest (${MEMORY_MIB} MiB, 1 vCPU) on a ${DATA_MIB} MiB raw image of random bytes: ${SEQ_READ_MIB} MiB of sequential 1 MiB reads, ${SEQ_WRITE_MIB} MiB of sequential 1 MiB writes (then fdatasync), and ${RAND_SECONDS} s each of 4 KiB reads and of 4 KiB writes at random offsets by 1 and by 4 processes (queue depth 1 and 4), all with O_DIRECT in the guest. The tool is \`bench/io-tool.c\`, built with \`gcc -static -O2\` and given to the guest on a read-only disk. The host's cached pages of the image are dropped before each phase, so the page-cache contenders are timed on their I/O path rather than on cache hits (a warm host cache would flatter them). Run: \`npm run bench:io\` (\`-- --rounds N --only xenode,xenode-blk,qemu-same,qemu-iouring,qemu-native\`). Source: \`bench/io-disk.ts\`.`,
    '',
    `- **Date:** ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC; **rounds:** ${o.rounds}, contenders rotating in each round`,
    `- **Machine:** ${facts.nproc} CPUs (\`nproc\`), ${facts.cpuModel}, ${facts.ramGiB.toFixed(1)} GiB RAM; host kernel ${facts.kernel}; image on the host's ${fsType(dir)} file system`,
    `- **Accelerator:** ${facts.accelNote}`,
    `- **QEMU:** ${facts.qemuVersion}; Xenode's choice for this image: cache.direct=${io.direct ? 'on' : 'off'}, aio=${io.aio}`,
    `- **Load:** 1-minute load average ${fmt(min(loads), 1)}–${fmt(max(loads), 1)} on ${facts.nproc} CPUs (other people's guests share them; each measurement waited up to 20 s for the CPUs to be ≤ 60 % busy)`,
    '',
    markdownTable(
      [
        'contender',
        'seq read MB/s',
        'seq write MB/s',
        '4k rand read IOPS QD1',
        '4k rand read IOPS QD4',
        '4k rand write IOPS QD1',
        '4k rand write IOPS QD4',
        'runs',
      ],
      rows,
    ),
    '',
    'Median (min–max) over the rounds. MB = 2^20 bytes.',
    '',
    'CPU time per 4 KiB request, in µs, of all the processes serving the guest (its QEMU, whose TCG vCPU also runs the guest; the disk backend for xenode-blk), user + system from /proc, over each random phase:',
    '',
    markdownTable(['contender', 'rand read QD1', 'rand read QD4', 'rand write QD1', 'rand write QD4'], cpuRows),
    ...(ratioLines.length > 0
      ? [
          '',
          "Xenode's backend against QEMU's own virtio-blk (goal: at least 0.8× on every measure; ✗ marks a miss): the ratio of the medians, with the range of the per-round ratios (the two ran in the same round); for CPU per request the peer's over the backend's, so 0.8× means 1.25× the CPU.",
          '',
          '| ratio | seq read | seq write | rand read QD1 | rand read QD4 | rand write QD1 | rand write QD4 | CPU/req read QD1 | read QD4 | write QD1 | write QD4 |',
          '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
          ...ratioLines,
        ]
      : []),
    '',
    ...contenders.map((c) => `- **${c.id}**: ${c.what}.`),
  ].join('\n');
  process.stdout.write(`\n${HEADING}\n\n${body}\n`);
  if (o.doc) {
    replaceSection(join(o.root, 'docs', 'benchmarks.md'), HEADING, body);
    o.log('wrote docs/benchmarks.md');
  }
}

function fsType(path: string): string {
  try {
    return execFileSync('stat', ['-f', '-c', '%T', path], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}
