// Issue 23, "Logs": the daemon's log is structured (pino JSON lines in xenoded.log,
// one line per event, level, domid, domain and sponsor as fields), `xenode dmesg`
// still reads it, and under systemd each event reaches the journal as an entry of
// its own with PRIORITY and XENODE_* fields (native protocol), or, when journald's
// socket cannot take it, as a `<N>`-prefixed stderr line journald's stream reads.
// journald is played by a Unix datagram socket (python3) the daemon is pointed at.

import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import { isJournalStream, JournalSocket } from '../src/toolstack/journal.ts';
import { DaemonLog, echoModeOf, type LogEntry } from '../src/toolstack/log.ts';
import { type CliResult, ROOT, TestHost, XENODE_BIN } from './helpers/host.ts';

type Entry = Array<[string, string]>;

/** A journal entry back from the native protocol (both the `K=v` and the length-prefixed form). */
function parseEntry(b: Buffer): Entry {
  const out: Entry = [];
  let i = 0;
  while (i < b.length) {
    const nl = b.indexOf(0x0a, i);
    const line = b.subarray(i, nl).toString('utf8');
    const eq = line.indexOf('=');
    if (eq >= 0) {
      out.push([line.slice(0, eq), line.slice(eq + 1)]);
      i = nl + 1;
    } else {
      const len = Number(b.readBigUInt64LE(nl + 1));
      out.push([line, b.subarray(nl + 9, nl + 9 + len).toString('utf8')]);
      i = nl + 9 + len + 1;
    }
  }
  return out;
}
const field = (e: Entry, k: string) => e.filter(([x]) => x === k).map(([, v]) => v);

/** A stand-in journald: a datagram socket at `path`; every entry it receives, parsed. */
class FakeJournald {
  readonly entries: Entry[] = [];
  private readonly proc: ChildProcess;
  private waiters: Array<() => void> = [];
  readonly ready: Promise<void>;

  constructor(readonly path: string) {
    const py = `import socket,sys,base64
s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM); s.bind(sys.argv[1]); print("ready",flush=True)
while True: print(base64.b64encode(s.recv(1<<20)).decode(),flush=True)`;
    this.proc = spawn('python3', ['-c', py, path], { stdio: ['ignore', 'pipe', 'inherit'] });
    const rl = createInterface({ input: this.proc.stdout as NodeJS.ReadableStream });
    this.ready = new Promise((resolve) => {
      rl.on('line', (l) => {
        if (l === 'ready') return resolve();
        this.entries.push(parseEntry(Buffer.from(l, 'base64')));
        for (const w of this.waiters.splice(0)) w();
      });
    });
  }

  /** The first entry (already in, or to come) that `pred` accepts. */
  async waitFor(pred: (e: Entry) => boolean, what: string, ms = 120_000): Promise<Entry> {
    const until = Date.now() + ms;
    for (;;) {
      const hit = this.entries.find(pred);
      if (hit) return hit;
      if (Date.now() > until) throw new Error(`journal: no entry ${what}; got ${JSON.stringify(this.entries)}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 1000);
      });
    }
  }

  stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return Promise.resolve();
    return new Promise((r) => {
      this.proc.once('exit', () => r());
      this.proc.kill('SIGKILL');
    });
  }
}

const tmp = mkdtempSync(join(tmpdir(), 'xenode-log-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('the daemon log (no daemon)', () => {
  it('writes one JSON line per event with level, domid, domain and sponsor as fields', () => {
    const file = join(tmp, 'a.log');
    const log = new DaemonLog(file);
    let live = true;
    log.setDomainLabeler((d) => (d === 3 && live ? { name: 'web', sponsor: 'alice' } : undefined));
    log.info('created web', 3);
    log.warn('first line\n<0>forged line', 3);
    live = false; // the domain is gone: its last events still name it
    log.error('destroyed web', 3);
    log.info('token t1 created for sponsor bob', { sponsor: 'bob' });
    log.info('no domain here');
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    assert.equal(lines.length, 5, 'one line per event, the newline in a message included');
    const e = lines.map((l) => JSON.parse(l) as LogEntry & { pid: number });
    assert.deepEqual(
      e.map(({ level, msg, domid, domain, sponsor }) => ({ level, msg, domid, domain, sponsor })),
      [
        { level: 'info', msg: 'created web', domid: 3, domain: 'web', sponsor: 'alice' },
        { level: 'warn', msg: 'first line\n<0>forged line', domid: 3, domain: 'web', sponsor: 'alice' },
        { level: 'error', msg: 'destroyed web', domid: 3, domain: 'web', sponsor: 'alice' },
        { level: 'info', msg: 'token t1 created for sponsor bob', domid: undefined, domain: undefined, sponsor: 'bob' },
        { level: 'info', msg: 'no domain here', domid: undefined, domain: undefined, sponsor: undefined },
      ],
    );
    assert.ok(e.every((x) => x.pid === process.pid && typeof x.time === 'number'));
    // The ring behind `xenode dmesg` holds the same fields.
    assert.deepEqual(
      log.entries().map((x) => x.sponsor),
      ['alice', 'alice', 'alice', 'bob', undefined],
    );
  });

  it('prints the same JSON lines on stderr with XENODE_LOG_FORMAT=json, text otherwise', () => {
    assert.equal(echoModeOf({ XENODE_LOG_FORMAT: 'json' }, 2), 'json');
    assert.equal(echoModeOf({}, 2), 'text');
    const err: string[] = [];
    const log = new DaemonLog(undefined, 10, 'json', { stderr: { write: (s: string) => err.push(s) } });
    log.warn('two\nlines', { sponsor: 'alice' });
    assert.equal(err.length, 1);
    assert.match(err[0] as string, /^\{.*\}\n$/);
    const e = JSON.parse(err[0] as string) as LogEntry;
    assert.deepEqual([e.level, e.msg, e.sponsor], ['warn', 'two\nlines', 'alice']);
  });

  it('knows a journal stream by the device and inode systemd put in JOURNAL_STREAM', () => {
    const fd = openSync(join(tmp, 'stream'), 'w');
    const other = openSync(join(tmp, 'other'), 'w');
    try {
      const st = fstatSync(fd, { bigint: true });
      const env = { JOURNAL_STREAM: `${st.dev}:${st.ino}` };
      assert.equal(isJournalStream(env, fd), true);
      assert.equal(isJournalStream(env, other), false, 'stderr redirected since');
      assert.equal(isJournalStream({}, fd), false);
      assert.equal(isJournalStream({ JOURNAL_STREAM: 'x:y' }, fd), false);
    } finally {
      closeSync(fd);
      closeSync(other);
    }
  });

  it('sends each event to journald as one entry with PRIORITY and XENODE_* fields', async () => {
    const j = new FakeJournald(join(tmp, 'j1.sock'));
    await j.ready;
    try {
      const err: string[] = [];
      const log = new DaemonLog(undefined, 10, 'journal', {
        stderr: { write: (s: string) => err.push(s) },
        journal: new JournalSocket(j.path),
      });
      // A name a hostile sponsor chose, with a newline and a field of its own: stays one value.
      log.setDomainLabeler(() => ({ name: 'evil\nPRIORITY=0', sponsor: 'alice' }));
      log.warn('QEMU exited unexpectedly', 7);
      const e = await j.waitFor((x) => field(x, 'MESSAGE')[0] === 'QEMU exited unexpectedly', 'for the warning');
      assert.deepEqual(field(e, 'PRIORITY'), ['4']);
      assert.deepEqual(field(e, 'SYSLOG_IDENTIFIER'), ['xenoded']);
      assert.deepEqual(field(e, 'XENODE_DOMID'), ['7']);
      assert.deepEqual(field(e, 'XENODE_DOMAIN'), ['evil\nPRIORITY=0']);
      assert.deepEqual(field(e, 'XENODE_SPONSOR'), ['alice']);
      assert.deepEqual(err, [], 'nothing on stderr while journald takes the entries');
    } finally {
      await j.stop();
    }
  });

  it("writes a '<N>'-prefixed line to stderr when journald's socket does not take the entry", () => {
    const err: string[] = [];
    const log = new DaemonLog(undefined, 10, 'journal', {
      stderr: { write: (s: string) => err.push(s) },
      journal: new JournalSocket(join(tmp, 'no-such.sock')),
    });
    log.setDomainLabeler(() => ({ name: 'web', sponsor: 'a b' }));
    log.error('restart failed:\n<0>forged', 5);
    log.info('xenoded started');
    assert.deepEqual(err, [
      '<3>restart failed:\\x0a<0>forged domid=5 domain=web sponsor="a b"\n',
      '<6>xenoded started\n',
    ]);
  });
});

describe('xenoded under a journal', { timeout: 10 * 60_000 }, () => {
  let host: TestHost;
  let journal: FakeJournald;
  let daemon: ChildProcess;
  let stderrFile: string;

  function asSponsor(token: string, args: string[]): Promise<CliResult> {
    const env = { ...host.env, XENODE_URL: `http://127.0.0.1:${host.tcpPort()}`, XENODE_TOKEN: token };
    return new Promise((resolve) => {
      execFile(XENODE_BIN, args, { env, timeout: 120_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      });
    });
  }

  before(async () => {
    await ensureDefaultGuest();
    host = new TestHost();
    journal = new FakeJournald(join(host.dir, 'journal.sock'));
    await journal.ready;
    // As systemd starts it: in the foreground, stderr a stream whose device:inode is in JOURNAL_STREAM.
    stderrFile = join(host.dir, 'stderr');
    const fd = openSync(stderrFile, 'a');
    const st = fstatSync(fd, { bigint: true });
    daemon = spawn(process.execPath, [join(ROOT, 'dist', 'xenoded.mjs'), '--foreground'], {
      env: { ...host.env, JOURNAL_STREAM: `${st.dev}:${st.ino}`, XENODE_JOURNAL_SOCKET: journal.path },
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    await journal.waitFor((e) => /^xenoded \S+ started/.test(field(e, 'MESSAGE')[0] ?? ''), 'xenoded started');
  });

  after(async () => {
    daemon?.kill('SIGKILL');
    await journal?.stop();
    await host?.cleanup();
  });

  it("puts a sponsor's domain events in the journal, the log file and dmesg with domain and sponsor", async () => {
    const token = (await host.ok(['token', 'create', 'alice'])).trim();
    await journal.waitFor(
      (e) => field(e, 'XENODE_SPONSOR')[0] === 'alice' && /^token \S+ created/.test(field(e, 'MESSAGE')[0] ?? ''),
      'token created, sponsor alice',
    );
    const r = await asSponsor(token, ['create', '-p', 'name=logged', 'memory=64']);
    assert.equal(r.code, 0, `${r.stderr}\n${host.logTail()}`);
    const domid = (await host.ok(['domid', 'logged'])).trim();
    const e = await journal.waitFor((x) => /^created logged /.test(field(x, 'MESSAGE')[0] ?? ''), 'created logged');
    assert.deepEqual(field(e, 'PRIORITY'), ['6']);
    assert.deepEqual(field(e, 'SYSLOG_IDENTIFIER'), ['xenoded']);
    assert.deepEqual(field(e, 'XENODE_DOMID'), [domid]);
    assert.deepEqual(field(e, 'XENODE_DOMAIN'), ['logged']);
    assert.deepEqual(field(e, 'XENODE_SPONSOR'), ['alice']);

    const line = readFileSync(join(host.dir, 'xenoded.log'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as LogEntry)
      .find((x) => x.msg.startsWith('created logged '));
    assert.ok(line, 'the event is in xenoded.log');
    assert.deepEqual(
      { level: line.level, domid: line.domid, domain: line.domain, sponsor: line.sponsor },
      { level: 'info', domid: Number(domid), domain: 'logged', sponsor: 'alice' },
    );
    assert.match(
      await host.ok(['dmesg']),
      new RegExp(`INFO  d${domid}: created logged .* domain=logged sponsor=alice$`, 'm'),
    );
    // The journal had every event: nothing of the logger's on the stream.
    assert.doesNotMatch(readFileSync(stderrFile, 'utf8'), /created logged/);
  });

  it('falls back to <N> lines on the journal stream when journald is gone, and keeps running', async () => {
    await journal.stop();
    await host.ok(['destroy', 'logged']);
    const text = readFileSync(stderrFile, 'utf8');
    assert.match(text, /^<6>destroyed logged domid=\d+ domain=logged sponsor=alice$/m);
    assert.match(await host.ok(['dmesg']), /destroyed logged/);
  });
});
