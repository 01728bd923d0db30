// npm run fuzz:guest -- [--minutes N] [--guests N] [--seed N]
//
// Fuzzing from inside guests (issue 20): N guests of a hostile sponsor run
// fuzz/guest/xnfuzz.c, which sends malformed and random frames on its vif,
// odd disk requests to a disk served by Xenode's vhost-user backend, and random
// store-channel messages, while this harness checks once a minute that the
// daemon, the switch and every backend are still the same processes, that the
// fuzzing guests still run, and that a bystander of another sponsor still reads
// back what it writes to its own backend disk and reaches its neighbour.
// Coverage: every Xenode process runs with NODE_V8_COVERAGE; the bundles' module
// markers (`// src/...`) attribute V8's blocks to source files.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDefaultGuest } from '../guest/build.ts';
import { type ConsoleSession, ROOT, TestHost } from '../test/helpers/host.ts';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : dflt;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} needs a positive number`);
  return v;
};
const MINUTES = opt('minutes', 30);
const GUESTS = opt('guests', 3);
const SEED = opt('seed', Date.now() % 100000);

/** Source files whose coverage is reported: what a guest's bytes reach. */
const TARGETS = ['src/net/', 'src/backends/vhost-blk/', 'src/store/wire/', 'src/features/xenstored/'];

function log(s: string): void {
  console.log(`[fuzz:guest ${new Date().toISOString().slice(11, 19)}] ${s}`);
}

/** The agent, compiled static with the host's gcc, as a raw image the guest copies it from. */
function toolsImage(dir: string): { path: string; bytes: number } {
  const bin = join(dir, 'xnfuzz');
  execFileSync('gcc', ['-static', '-O2', '-s', '-Wall', '-o', bin, join(ROOT, 'fuzz/guest/xnfuzz.c')]);
  const b = readFileSync(bin);
  const img = Buffer.alloc(Math.ceil(b.length / 4096) * 4096 + 4096);
  b.copy(img);
  const path = join(dir, 'tools.img');
  writeFileSync(path, img);
  return { path, bytes: b.length };
}

function blankImage(path: string, mib: number): string {
  writeFileSync(path, '');
  execFileSync('truncate', ['-s', `${mib}M`, path]);
  return path;
}

/** Pids of this host's `title` processes (they set their title; the environment names the host). */
function pidsWith(host: TestHost, title: string): number[] {
  const out: number[] = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      if (readFileSync(`/proc/${ent}/cmdline`, 'utf8').split('\0')[0] !== title) continue;
      if (readFileSync(`/proc/${ent}/environ`, 'utf8').split('\0').includes(`XENODE_DIR=${host.dir}`)) {
        out.push(Number(ent));
      }
    } catch {
      /* gone */
    }
  }
  return out.sort((a, b) => a - b);
}

async function shell(host: TestHost, name: string): Promise<ConsoleSession> {
  const c = await host.console(name);
  await c.expect(/XENODE-READY/, 300_000);
  await c.expect(new RegExp(`${name}:/# `), 120_000);
  return c;
}

interface Finding {
  at: string;
  what: string;
}

interface Coverage {
  file: string;
  covered: number;
  known: number;
}

/** Blocks per source file from the V8 coverage files of every Xenode process. */
function coverage(dir: string): Coverage[] {
  const byFile = new Map<string, { hit: Set<string>; known: Set<string> }>();
  const markers = new Map<string, Array<{ at: number; file: string }>>();
  const markersOf = (url: string): Array<{ at: number; file: string }> => {
    let m = markers.get(url);
    if (m) return m;
    m = [];
    try {
      const text = readFileSync(new URL(url), 'latin1');
      for (const x of text.matchAll(/^\/\/ (src\/[^\n]+\.ts)$/gm)) m.push({ at: x.index ?? 0, file: x[1] as string });
    } catch {
      /* not a file */
    }
    markers.set(url, m);
    return m;
  };
  for (const f of readdirSync(dir)) {
    const data = JSON.parse(readFileSync(join(dir, f), 'utf8')) as {
      result: Array<{
        url: string;
        functions: Array<{ ranges: Array<{ startOffset: number; endOffset: number; count: number }> }>;
      }>;
    };
    for (const script of data.result) {
      if (!script.url.startsWith('file://') || !script.url.includes('/dist/')) continue;
      const ms = markersOf(script.url);
      for (const fn of script.functions) {
        for (const r of fn.ranges) {
          let file: string | undefined;
          for (const m of ms) if (m.at <= r.startOffset) file = m.file;
          if (!file || !TARGETS.some((t) => file?.startsWith(t))) continue;
          const e = byFile.get(file) ?? { hit: new Set(), known: new Set() };
          byFile.set(file, e);
          const key = `${r.startOffset}:${r.endOffset}`;
          e.known.add(key);
          if (r.count > 0) e.hit.add(key);
        }
      }
    }
  }
  return [...byFile.entries()]
    .map(([file, e]) => ({ file, covered: e.hit.size, known: e.known.size }))
    .sort((a, b) => a.file.localeCompare(b.file));
}

async function main(): Promise<void> {
  await ensureDefaultGuest();
  const work = mkdtempSync('/tmp/xnfz-');
  const covDir = join(work, 'coverage');
  mkdirSync(covDir);
  const tools = toolsImage(work);
  const host = new TestHost({ NODE_V8_COVERAGE: covDir });
  const findings: Finding[] = [];
  const found = (what: string) => {
    findings.push({ at: new Date().toISOString(), what });
    log(`FINDING: ${what}`);
  };
  const started = Date.now();
  try {
    await host.ok(['quota-set', 'mallory', 'domains=16', 'memory=4G', 'vcpus=16']);
    const names = Array.from({ length: GUESTS }, (_, i) => `fz${i + 1}`);
    for (const [i, name] of names.entries()) {
      const data = blankImage(join(work, `${name}.img`), 64);
      await host.ok([
        'create',
        host.writeConfig(
          `${name}.cfg`,
          `name = "${name}"\nmemory = 160\nsponsor = "mallory"\nvif = ['ip=10.0.1.${i + 10}']\n` +
            `disk = ['${tools.path},raw,xvdb,ro', '${data},raw,xvdc,rw,backendtype=xenode']\n`,
        ),
      ]);
    }
    // The bystanders: another sponsor's pair that must not notice any of it.
    for (const [i, name] of ['by1', 'by2'].entries()) {
      const data = blankImage(join(work, `${name}.img`), 16);
      await host.ok([
        'create',
        host.writeConfig(
          `${name}.cfg`,
          `name = "${name}"\nmemory = 128\nsponsor = "alice"\nvif = ['ip=10.0.2.${i + 10}']\n` +
            `disk = ['${data},raw,xvdb,rw,backendtype=xenode']\n`,
        ),
      ]);
    }
    const by1 = await shell(host, 'by1');
    (await shell(host, 'by2')).close(); // up before by1 pings it
    const daemon = host.daemonPid();
    const switches = pidsWith(host, 'xenode-switch');
    const backends = pidsWith(host, 'xenode-blk');
    log(`daemon ${daemon}, switch ${switches.join(',')}, ${backends.length} backends; seed ${SEED}`);

    const fuzzers: ConsoleSession[] = [];
    for (const [i, name] of names.entries()) {
      const c = await shell(host, name);
      const domid = (await host.ok(['domid', name])).trim();
      // Which vd* is which: the tools image is the small one.
      const disks = await c.run('for d in /sys/block/vd*; do echo $(basename $d) $(cat $d/size); done');
      const rows = disks.split('\n').map((l) => l.trim().split(/\s+/));
      const toolsDev = rows.find((r) => Number(r[1]) * 512 < 8 << 20)?.[0];
      const dataDev = rows.find((r) => Number(r[1]) * 512 === 64 << 20)?.[0];
      if (!toolsDev || !dataDev) throw new Error(`${name}: cannot tell its disks apart: ${disks}`);
      await c.run(`head -c ${tools.bytes} /dev/${toolsDev} > /tmp/xnfuzz && chmod +x /tmp/xnfuzz`);
      c.send(`/tmp/xnfuzz ${MINUTES * 60} ${SEED + i} eth0 /dev/${dataDev} ${domid} &\n`);
      await c.expect(/xnfuzz: start/, 60_000);
      fuzzers.push(c);
    }
    log(`${GUESTS} guests fuzzing for ${MINUTES} min`);

    const end = Date.now() + MINUTES * 60_000;
    let round = 0;
    while (Date.now() < end) {
      await new Promise((r) => setTimeout(r, Math.min(60_000, Math.max(0, end - Date.now()))));
      round++;
      if (host.daemonPid() !== daemon) found(`the daemon changed: ${daemon} -> ${host.daemonPid()}`);
      const sw = pidsWith(host, 'xenode-switch');
      if (sw.join() !== switches.join()) found(`the switch changed: ${switches} -> ${sw}`);
      const be = pidsWith(host, 'xenode-blk');
      if (be.join() !== backends.join()) found(`backends changed: ${backends} -> ${be}`);
      const list = await host.xl(['list']);
      if (list.code !== 0) found(`xenode list failed: ${list.stderr}`);
      for (const n of [...names, 'by1', 'by2']) {
        if (!new RegExp(`^${n}\\s+\\d+\\s.*\\s[r-][b-]----\\s`, 'm').test(list.stdout)) found(`${n} is not running`);
      }
      try {
        const sum = await by1.run(
          'dd if=/dev/urandom of=/tmp/w bs=4k count=64 2>/dev/null; dd if=/tmp/w of=/dev/vdb bs=4k conv=fsync 2>/dev/null; ' +
            'echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vdb bs=4k count=64 2>/dev/null | md5sum; md5sum < /tmp/w; ' +
            'ping -c 1 -W 5 10.0.2.11 >/dev/null && echo reached',
          120_000,
        );
        const sums = sum.match(/[0-9a-f]{32}/g) ?? [];
        if (sums.length !== 2 || sums[0] !== sums[1]) found(`bystander's disk read back wrong: ${sum}`);
        if (!/reached/.test(sum)) found(`bystander by1 could not reach by2: ${sum}`);
      } catch (e) {
        found(`bystander did not answer: ${e instanceof Error ? e.message : String(e)}`);
      }
      const last = fuzzers.map((c) => c.output.match(/xnfuzz: progress [^\r\n]*/g)?.at(-1) ?? '(none)');
      log(`round ${round}: ${findings.length} findings; ${last.join(' | ')}`);
    }
    const finals: string[] = [];
    for (const [i, c] of fuzzers.entries()) {
      const m = await c.expect(/xnfuzz: done [^\r\n]*/, 120_000);
      finals.push(`${names[i]}: ${m[0]}`);
      const dmesg = await c.run('dmesg | grep -ciE "I/O error|blk_update_request|Call Trace" || true');
      if (Number(dmesg) > 0) found(`${names[i]}'s kernel logged ${dmesg} I/O errors or traces`);
    }
    for (const n of [...names, 'by1', 'by2']) await host.xl(['destroy', n]);
    // A clean stop so every process writes its coverage.
    const pid = host.daemonPid();
    const gone = async (pids: number[]) => {
      for (let i = 0; i < 300 && pids.some((p) => existsSync(`/proc/${p}`)); i++)
        await new Promise((r) => setTimeout(r, 100));
    };
    if (pid) process.kill(pid, 'SIGTERM');
    await gone(pid ? [pid] : []);
    const sw = pidsWith(host, 'xenode-switch');
    for (const p of sw) process.kill(p, 'SIGTERM');
    await gone(sw);
    const errors = readFileSync(join(host.dir, 'xenoded.log'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('"level":"error"'));
    for (const e of errors.slice(0, 20)) found(`daemon logged an error: ${e.slice(0, 300)}`);
    const cov = coverage(covDir);
    const wall = (Date.now() - started) / 1000;
    const report = [
      `# in-guest fuzz run: ${GUESTS} guests, ${MINUTES} min, seed ${SEED}, ${new Date().toISOString()}`,
      `wall ${wall.toFixed(0)} s; load average at the end: ${readFileSync('/proc/loadavg', 'utf8').trim()}`,
      ...finals,
      `findings: ${findings.length}`,
      ...findings.map((f) => `- ${f.at} ${f.what}`),
      'coverage (blocks hit / known, per file):',
      ...cov.map((c) => `  ${c.file} ${c.covered}/${c.known}`),
    ].join('\n');
    console.log(report);
    mkdirSync(join(ROOT, 'fuzz', 'out'), { recursive: true });
    writeFileSync(join(ROOT, 'fuzz', 'out', `in-guest-${SEED}.txt`), `${report}\n`);
    process.exitCode = findings.length ? 1 : 0;
  } finally {
    await host.cleanup();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
