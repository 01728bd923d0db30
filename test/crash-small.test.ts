// Issue 14, findings 11 and 12 (the smaller ones): CLIs racing to start the
// daemon, a reader that stops reading (`| head`), a full disk during save, the
// save banner's format version, a domain destroyed during daemon start, and the
// QEMU -name of a migrated domain.

import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import { type CliResult, type ConsoleSession, TestHost, XENODE_BIN } from './helpers/host.ts';

const root = process.getuid?.() === 0;
const NAME = 'cs';

/** Processes of xenoded whose environment names this XENODE_DIR. */
function daemonsOf(dir: string): number[] {
  const out: number[] = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const cmd = readFileSync(`/proc/${ent}/cmdline`, 'utf8');
      if (!cmd.includes('xenoded') && !cmd.includes('daemon-main')) continue;
      const env = readFileSync(`/proc/${ent}/environ`, 'utf8').split('\0');
      if (env.includes(`XENODE_DIR=${dir}`)) out.push(Number(ent));
    } catch {
      /* gone */
    }
  }
  return out;
}

function killAll(pids: number[]): void {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** Run a shell pipeline; `rc` is the exit status of its first command, `err` what it wrote to stderr. */
function pipeline(host: TestHost, script: string): Promise<{ rc: number; err: string; out: string }> {
  const errFile = join(host.dir, `pipe-${Date.now()}-${Math.random().toString(36).slice(2)}.err`);
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [
        '-c',
        `${script.replace('XN', `'${XENODE_BIN}'`).replace('|', `2>'${errFile}' |`)}; echo "rc=\${PIPESTATUS[0]}"`,
      ],
      { env: host.env, timeout: 60_000 },
      (e, stdout) => {
        if (e) return reject(e);
        const m = /rc=(\d+)\s*$/.exec(stdout);
        const err = readFileSync(errFile, 'utf8');
        rmSync(errFile, { force: true });
        resolve({ rc: Number(m?.[1] ?? -1), err, out: stdout.replace(/rc=\d+\s*$/, '') });
      },
    );
  });
}

/** QMP straight with QEMU (no daemon): commands and events, capabilities negotiated first. */
class Qmp {
  private buf = '';
  private readonly pending: Array<(ret: unknown) => void> = [];
  private readonly events: string[] = [];
  private eventWaiters: Array<() => void> = [];
  readonly ready: Promise<void>;

  constructor(private readonly c: Socket) {
    this.ready = new Promise((resolve, reject) => {
      c.once('error', reject);
      this.pending.push(() => resolve());
    });
    c.on('data', (d: Buffer) => {
      this.buf += d.toString('utf8');
      for (let i = this.buf.indexOf('\n'); i >= 0; i = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, i).trim();
        this.buf = this.buf.slice(i + 1);
        if (!line) continue;
        const msg = JSON.parse(line) as { QMP?: unknown; event?: string; return?: unknown; error?: unknown };
        if (msg.QMP) c.write('{"execute":"qmp_capabilities"}\n');
        else if (msg.event) {
          this.events.push(msg.event);
          for (const w of this.eventWaiters.splice(0)) w();
        } else this.pending.shift()?.(msg.return ?? msg.error);
      }
    });
  }

  static open(sock: string): Qmp {
    return new Qmp(createConnection(sock));
  }

  execute(cmd: string): Promise<unknown> {
    return new Promise((resolve) => {
      this.pending.push(resolve);
      this.c.write(`${JSON.stringify({ execute: cmd })}\n`);
    });
  }

  async event(name: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.events.includes(name)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no QMP event ${name} in ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.eventWaiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  close(): void {
    this.c.destroy();
  }
}

/** TestHost.cleanup, also when the test killed the daemon and left its pid file. */
async function cleanup(h: TestHost | undefined): Promise<void> {
  if (!h) return;
  const pid = h.daemonPid();
  if (pid) {
    try {
      process.kill(pid, 0);
    } catch {
      rmSync(join(h.dir, 'xenoded.pid'), { force: true });
    }
  }
  await h.cleanup();
}

describe('CLIs starting the daemon at once', () => {
  const hosts: TestHost[] = [];
  after(async () => {
    for (const h of hosts) {
      killAll(daemonsOf(h.dir));
      await cleanup(h);
    }
  });

  it('eight CLIs against a fresh directory all succeed and name the one live daemon', async () => {
    for (let round = 0; round < 4; round++) {
      const h = new TestHost();
      hosts.push(h);
      const results: CliResult[] = await Promise.all(Array.from({ length: 8 }, () => h.xl(['list'])));
      const live = daemonsOf(h.dir);
      assert.equal(live.length, 1, `round ${round}: one xenoded runs for the directory, found ${live.join(', ')}`);
      const pid = live[0] as number;
      assert.equal(h.daemonPid(), pid, 'the pid file names the live daemon');
      const reported = new Set<number>();
      for (const r of results) {
        assert.equal(r.code, 0, `round ${round}: every CLI succeeds: ${r.stderr}`);
        assert.match(r.stdout, /^Name\s+ID\s+Mem/m);
        for (const m of r.stderr.matchAll(/pid (\d+)/g)) reported.add(Number(m[1]));
      }
      assert.ok(reported.size > 0, 'the CLIs that found no daemon say which one they got');
      assert.deepEqual([...reported], [pid], `round ${round}: every pid printed is the live daemon's`);
      // The daemon started by one CLI and found by the others answers for all.
      assert.equal(Number((await h.ok(['info', 'xenoded_pid'])).trim()), pid);
    }
  });

  it('a start lock left by a CLI that was killed does not stop the next one', async () => {
    const h = new TestHost();
    hosts.push(h);
    // The pid of a process that has exited: a CLI killed while it started the daemon.
    const dead = await new Promise<number>((resolve) => {
      const c = execFile('true');
      c.on('exit', () => resolve(c.pid as number));
    });
    writeFileSync(join(h.dir, 'xenoded.start.lock'), String(dead));
    const r = await h.xl(['list'], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /xenoded was not running; started it \(pid (\d+)/);
    assert.deepEqual(daemonsOf(h.dir), [h.daemonPid()]);
    assert.ok(!existsSync(join(h.dir, 'xenoded.start.lock')), 'the lock is released');
  });
});

describe('a guest through save, migration and a daemon restart', () => {
  let src: TestHost;
  let dst: TestHost;
  let con: ConsoleSession | undefined;
  let tmpfs = '';
  let mounted = false;

  before(async () => {
    await ensureDefaultGuest();
    src = new TestHost({ XENODE_NET_HOSTPORT: 'none' });
    dst = new TestHost({ XENODE_NET_HOSTPORT: 'none' });
  });

  after(async () => {
    con?.close();
    if (mounted) execFileSync('umount', ['-l', tmpfs]);
    if (tmpfs) rmSync(tmpfs, { recursive: true, force: true });
    await cleanup(src);
    await cleanup(dst);
  });

  it('a reader that stops reading ends the CLI quietly, without a stack trace', async () => {
    await src.ok(['list']);
    for (const script of [
      'XN store ls / | true',
      'XN list | true',
      'XN dmesg | true',
      'XN store ls / | head -1',
      'XN list | head -1',
      'XN dmesg | head -1',
    ]) {
      const r = await pipeline(src, script);
      assert.equal(r.err, '', `${script}: nothing on stderr`);
      assert.equal(r.rc, 0, `${script}: exit status`);
    }
    const r = await pipeline(src, 'XN list | head -1');
    assert.match(r.out, /^Name\s+ID/, 'head still got the first line');
  });

  it('boots a guest', async () => {
    const cfg = src.writeConfig('cs.cfg', `name = "${NAME}"\nmemory = 256\non_poweroff = "destroy"\n`);
    const r = await src.xl(['create', cfg]);
    assert.equal(r.code, 0, r.stderr);
    con = await src.console(NAME);
    await con.expect(new RegExp(`${NAME}:/# `), 120_000);
    await con.run('i=0; while true; do i=$((i+1)); echo $i > /tmp/c.n; mv /tmp/c.n /tmp/c; sleep 0.1; done & :');
  });

  it('a full disk during save says so, naming the file; no .partial is left and the guest runs on', {
    skip: !root && 'mounting a small tmpfs needs root',
  }, async () => {
    tmpfs = mkdtempSync('/tmp/xn-full-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', tmpfs]);
    mounted = true;
    const file = join(tmpfs, 'cs.save');
    const r = await src.xl(['save', NAME, file]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /no space left on device/i);
    assert.match(r.stderr, /ENOSPC/);
    assert.ok(r.stderr.includes(file), `names the file: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /Broken pipe/i);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.deepEqual(readdirSync(tmpfs), [], 'nothing left on the full file system');
    assert.match(await src.ok(['list', NAME]), new RegExp(`^${NAME}\\s+\\d+\\s+256\\s+1\\s+[rb-]{2}----`, 'm'));
    const c = con as ConsoleSession;
    const before = Number(await c.run('cat /tmp/c'));
    const later = Number(await c.run(`while [ "$(cat /tmp/c)" -le ${before} ]; do sleep 0.05; done; cat /tmp/c`));
    assert.ok(later > before, 'the guest keeps running');
    execFileSync('umount', [tmpfs]);
    mounted = false;
  });

  it('the save banner names the format version the file has', async () => {
    const file = join(src.dir, 'cs-checkpoint.save');
    const r = await src.xl(['save', '-c', NAME, file]);
    assert.equal(r.code, 0, r.stderr);
    const fd = openSync(file, 'r');
    const h = Buffer.alloc(24);
    readSync(fd, h, 0, 24, 0);
    const version = `${h.readUInt16LE(16)}.${h.readUInt16LE(18)}`;
    assert.match(r.stderr, /xenode save format (\d+\.\d+)/);
    for (const m of r.stderr.matchAll(/xenode save format (\d+\.\d+)/g)) assert.equal(m[1], version);
    rmSync(file, { force: true });
  });

  it('a migrated QEMU runs under the domain name, not the hand-over name', async () => {
    const token = (await dst.ok(['token', 'create', 'admin', '--admin'])).trim();
    con?.close();
    con = undefined;
    // Paused first: what is tested is the name QEMU runs under, and QEMU 7.2's TCG can
    // deliver pages written during pre-copy stale (docs/saverestore.md, known limits),
    // which on a loaded machine sometimes oopses the guest on the target.
    await src.ok(['pause', NAME]);
    const r = await src.xl(['migrate', NAME, `127.0.0.1:${dst.tcpPort()}`, '--token', token]);
    assert.equal(r.code, 0, `${r.stderr}\n${src.logTail()}\n${dst.logTail()}`);
    const id = (await dst.ok(['domid', NAME])).trim();
    await dst.ok(['unpause', NAME]);
    const pid = Number(readFileSync(join(dst.dir, 'domains', id, 'qemu.pid'), 'utf8'));
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const name = argv[argv.indexOf('-name') + 1] ?? '';
    assert.match(name, new RegExp(`^${NAME},`), `QEMU's -name: ${name}`);
    assert.doesNotMatch(argv.join(' '), /--incoming/);
    // And the guest runs on there.
    con = await dst.console(NAME);
    const n = Number(await con.run('cat /tmp/c'));
    const later = Number(await con.run(`while [ "$(cat /tmp/c)" -le ${n} ]; do sleep 0.05; done; cat /tmp/c`));
    assert.ok(later > n, 'the migrated guest keeps counting');
    con.close();
    con = undefined;
  });

  it('a guest that powered off while the daemon was down is destroyed on start, and not called reattached', {
    timeout: 180_000,
  }, async () => {
    const id = (await dst.ok(['domid', NAME])).trim();
    const run = join(dst.dir, 'domains', id);
    dst.killDaemon('SIGKILL');
    // With no daemon, QEMU's sockets are free: watch for the power-off and type it.
    const q = Qmp.open(join(run, 'qmp.sock'));
    const serial = createConnection(join(run, 'serial.sock'));
    const connected = new Promise<void>((resolve, reject) => {
      serial.once('connect', () => resolve());
      serial.once('error', reject);
    });
    try {
      await q.ready;
      await connected;
      serial.write('\npoweroff -f\n');
      await q.event('SHUTDOWN');
      assert.equal(((await q.execute('query-status')) as { status?: string }).status, 'shutdown');
    } finally {
      q.close();
      serial.destroy();
    }

    const list = await dst.ok(['list']);
    assert.ok(!list.split('\n').some((l) => l.startsWith(`${NAME} `)), list);
    const lines = readFileSync(join(dst.dir, 'xenoded.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string; domid?: number })
      .filter((e) => e.domid === Number(id))
      .map((e) => e.msg);
    const destroyed = lines.lastIndexOf(`destroyed ${NAME}`);
    assert.ok(destroyed >= 0, lines.join('\n'));
    assert.deepEqual(
      lines.slice(destroyed + 1).filter((l) => l.startsWith('reattached')),
      [],
      'nothing reattached after it was destroyed',
    );
    assert.ok(!existsSync(run), 'its run directory is gone');
  });
});
