// Issue 13, finding 6: incoming migration. Two daemons on this machine stand in
// for two hosts. Only the target's admin may send it a domain (a sponsor's
// token is refused before anything starts), and the machine state is taken
// only from the source that holds the migration's key: a stranger who
// connects to the stream port first, or instead of the source, feeds nothing.
//
// The stranger's bytes are a real, loadable machine state (the stream of a
// save file), so a target that took them would run a guest built from them.
// This test plays the source's side of the control link itself (with the
// target's admin token), which lets it put the stranger first.

import assert from 'node:assert/strict';
import { createReadStream, readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ensureDefaultGuest } from '../guest/build.ts';
import { jsonSection, readSaveFileHeader, SECTION } from '../src/features/saverestore/save-format.ts';
import { type ConsoleSession, TestHost } from './helpers/host.ts';

const NAME = 'smg';
const MIGRATE_PATH = '/v1/migrate/incoming';
let src: TestHost;
let dst: TestHost;
let adminToken: string;
let aliceToken: string;

async function names(h: TestHost): Promise<string[]> {
  return (await h.ok(['list']))
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split(/\s+/)[0] as string)
    .filter((n) => n !== 'Domain-0');
}

/** QEMUs whose command line names the host's directory (started or not, pid file or not). */
function qemusOf(h: TestHost): number[] {
  const out: number[] = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const cmd = readFileSync(`/proc/${ent}/cmdline`, 'utf8');
      if (cmd.includes('qemu-system') && cmd.includes(`${h.dir}/`)) out.push(Number(ent));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Poll a condition until it holds (or fail after `ms`). */
async function until(what: string, ms: number, cond: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

type Msg = { type: string; [k: string]: unknown };

/** The source's end of the control link, as a queue of messages. */
class Link {
  private queue: Msg[] = [];
  private wake?: () => void;
  closed = false;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => {
      this.queue.push(JSON.parse(d.toString('utf8')) as Msg);
      this.wake?.();
    });
    ws.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
  }

  static open(token: string): Promise<Link> {
    const ws = new WebSocket(`ws://127.0.0.1:${dst.tcpPort()}${MIGRATE_PATH}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new Link(ws)));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (c: Buffer) => {
          body += c.toString();
        });
        res.on('end', () =>
          reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, body })),
        );
      });
      ws.once('error', reject);
    });
  }

  send(m: Msg): void {
    this.ws.send(JSON.stringify(m));
  }

  async next(timeoutMs: number): Promise<Msg | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.queue.shift();
      if (m) return m;
      if (this.closed) return undefined;
      const left = deadline - Date.now();
      if (left <= 0) assert.fail('the target did not answer in time');
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
      this.wake = undefined;
    }
  }

  close(): void {
    this.ws.close();
  }
}

/** What a source sends: the saved domain's config, metadata and machine state. */
let saved: { config: unknown; meta: unknown; file: string; offset: number; length: number };

/**
 * Connect to the stream port from `from`, send `head` then the saved machine
 * state, and resolve once the connection is over (whoever ended it).
 */
function feed(port: number, from: string, head?: Buffer): { sock: Socket; over: Promise<void> } {
  const sock = connect({ host: '127.0.0.1', port, localAddress: from });
  sock.on('error', () => undefined);
  const over = new Promise<void>((r) => sock.once('close', () => r()));
  sock.once('connect', () => {
    if (head) sock.write(head);
    createReadStream(saved.file, { start: saved.offset, end: saved.offset + saved.length - 1 })
      .on('error', () => sock.destroy())
      .pipe(sock);
  });
  return { sock, over };
}

function prepare(link: Link): void {
  link.send({ type: 'prepare', config: saved.config, meta: saved.meta, paused: false });
}

before(async () => {
  await ensureDefaultGuest();
  src = new TestHost({ XENODE_NET_HOSTPORT: 'none' });
  dst = new TestHost({ XENODE_NET_HOSTPORT: 'none' });
  adminToken = (await dst.ok(['token', 'create', 'admin', '--admin'])).trim();
  aliceToken = (await dst.ok(['token', 'create', 'alice'])).trim();
  const cfg = src.writeConfig('smg.cfg', `name = "${NAME}"\nmemory = 256\nsponsor = "alice"\n`);
  const r = await src.xl(['create', cfg]);
  assert.equal(r.code, 0, r.stderr);
  const con: ConsoleSession = await src.console(NAME);
  try {
    await con.expect(new RegExp(`${NAME}:/# `), 120_000);
    await con.run('echo booted > /tmp/mark');
  } finally {
    con.close();
  }
});

after(async () => {
  await src?.cleanup();
  await dst?.cleanup();
});

describe('incoming migration: only the admin, only the source', () => {
  it("refuses a sponsor's token on the target before anything starts", async () => {
    // The raw endpoint: HTTP 403 before the upgrade.
    const refused = await Link.open(aliceToken).then(
      (l) => {
        l.close();
        return undefined;
      },
      (e: { status?: number; body?: string }) => e,
    );
    assert.ok(refused, "the migration endpoint opened for a sponsor's token");
    assert.equal(refused.status, 403);
    assert.match(refused.body ?? '', /"kind":"permission"/);

    // Through the CLI, for the sponsor's own domain: a one-line refusal, nothing moves.
    const r = await src.xl(['migrate', NAME, `127.0.0.1:${dst.tcpPort()}`, '--token', aliceToken]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /xenoded at 127\.0\.0\.1:\d+ takes in domains only from its admin/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.deepEqual(await names(dst), [], 'no domain on the target');
    assert.deepEqual(qemusOf(dst), [], 'no QEMU started on the target');
    assert.match(await src.ok(['list', NAME]), new RegExp(`^${NAME}\\s+\\d+\\s+256\\s+1\\s+[rb-]{2}----`, 'm'));
  });

  it('a stranger who feeds the stream port instead of the source starts no guest', async () => {
    // A real machine state to feed: the domain saved to a file (which ends it on the source).
    const file = `${src.dir}/smg.save`;
    await src.ok(['save', NAME, file]);
    const f = readSaveFileHeader(file);
    saved = {
      config: jsonSection(f, SECTION.config),
      meta: jsonSection(f, SECTION.meta),
      file,
      offset: f.stream.offset,
      length: f.stream.length,
    };

    const link = await Link.open(adminToken);
    prepare(link);
    const ready = await link.next(300_000);
    assert.equal(ready?.type, 'listening', JSON.stringify(ready));
    const port = Number(ready?.port);
    // From another address, then from the source's own address without the key.
    await feed(port, '127.0.0.2').over;
    await feed(port, '127.0.0.1').over;
    // Tell the target the state is complete, as a source does when its QEMU is done.
    link.send({ type: 'go', console: '' });
    const answer = await link.next(60_000);
    assert.notEqual(
      answer?.type,
      'running',
      `the target ran a guest built from a stranger's bytes: ${JSON.stringify(answer)}`,
    );
    assert.equal(answer?.type, 'error', JSON.stringify(answer));
    link.close();
    await until('the target has no domain and no QEMU left', 30_000, async () => {
      return (await names(dst)).length === 0 && qemusOf(dst).length === 0;
    });
    const log = await dst.ok(['dmesg']);
    assert.match(log, /refused a migration stream connection from 127\.0\.0\.2: not the source's address/);
    assert.match(log, /refused a migration stream connection from 127\.0\.0\.1: wrong key/);
  });

  it("a stranger who connects first does not stop the source's own stream", async () => {
    const link = await Link.open(adminToken);
    prepare(link);
    const ready = await link.next(300_000);
    assert.equal(ready?.type, 'listening', JSON.stringify(ready));
    const port = Number(ready?.port);
    const key = Buffer.from(String(ready?.key), 'hex');
    // One stranger feeds a state and is dropped; another connects and says nothing.
    await feed(port, '127.0.0.1').over;
    const silent = connect({ host: '127.0.0.1', port });
    silent.on('error', () => undefined);
    const silentOver = new Promise<void>((r) => silent.once('close', () => r()));
    await new Promise<void>((r) => silent.once('connect', () => r()));

    // The source: its key, then (once the target's QEMU holds the connection) the state.
    const stream = connect({ host: '127.0.0.1', port });
    stream.on('error', () => undefined);
    await new Promise<void>((r) => stream.once('connect', () => r()));
    stream.write(key);
    const accepted = await link.next(30_000);
    assert.equal(accepted?.type, 'stream-accepted', JSON.stringify(accepted));
    await silentOver; // the gate dropped the silent stranger once the source was in
    await new Promise<void>((resolve, reject) => {
      createReadStream(saved.file, { start: saved.offset, end: saved.offset + saved.length - 1 })
        .on('error', reject)
        .on('end', () => resolve())
        .pipe(stream, { end: false });
    });
    link.send({ type: 'go', console: '' });
    const answer = await link.next(60_000);
    assert.equal(answer?.type, 'running', JSON.stringify(answer));
    stream.destroy();
    link.close();

    assert.deepEqual(await names(dst), [NAME]);
    const con = await dst.console(NAME);
    try {
      assert.equal(await con.run('cat /tmp/mark', 60_000), 'booted', "the guest is the source's own");
    } finally {
      con.close();
    }
    await dst.ok(['destroy', NAME]);
  });
});
