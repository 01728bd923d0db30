// The wire protocol over a real Unix socket, from the hostile side: oversized,
// truncated and random messages, a client that never reads its events, and
// pipelined requests. Nothing may crash the server, leak a watch or a
// transaction, or let one connection's memory grow without bound.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { ControlStore } from '../../src/store/index.ts';
import { serveStream, type WireConnection, WireServer } from '../../src/store/wire/index.ts';
import { frame, XS, XsClient } from '../helpers/xs-wire.ts';

let dir: string;
let store: ControlStore;
let wire: WireServer;
let server: Server;
let sock: string;
const conns: WireConnection[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'xs-'));
  sock = join(dir, 's');
  store = new ControlStore();
  store.introduceDomain(3);
  wire = new WireServer(store);
  server = createServer((s) => {
    // Every connection here is domain 3's.
    conns.push(serveStream(wire, s, { domid: 3, privileged: false }, { eventBacklog: 64 * 1024 }));
  });
  await new Promise<void>((r) => server.listen(sock, r));
});

after(async () => {
  for (const c of conns) c.close();
  await new Promise<void>((r) => server.close(() => r()));
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function connected(): Promise<{ c: XsClient; conn: WireConnection }> {
  const before = conns.length;
  const c = await XsClient.open(sock);
  while (conns.length === before) await new Promise((r) => setImmediate(r));
  return { c, conn: conns[conns.length - 1] as WireConnection };
}

describe('over a Unix socket', () => {
  it('answers pipelined requests in order', async () => {
    const { c } = await connected();
    const burst = [];
    for (let i = 1; i <= 50; i++) burst.push(frame(XS.WRITE, 1000 + i, 0, `data/p${i}\0v${i}`));
    for (let i = 1; i <= 50; i++) burst.push(frame(XS.READ, 2000 + i, 0, `data/p${i}\0`));
    c.sock.write(Buffer.concat(burst));
    await c.reply(2050);
    const replies = c.takeReplies();
    const all = [...replies];
    assert.deepEqual(
      all.map((f) => f.reqId),
      [...Array.from({ length: 50 }, (_, i) => 1001 + i), ...Array.from({ length: 49 }, (_, i) => 2001 + i)],
    );
    assert.ok(all.slice(50).every((f, i) => f.payload.toString() === `v${i + 1}`));
    c.close();
  });

  it('a header announcing more than 4096 bytes closes that connection, and only that one', async () => {
    const { c: bad, conn } = await connected();
    const { c: good } = await connected();
    await bad.call(XS.WATCH, 'data\0t\0');
    assert.equal(store.usage(3).watches, 1);
    bad.sock.write(frame(XS.WRITE, 9, 0, '', 0xffffffff));
    await bad.waitClosed();
    assert.equal(conn.closed, true);
    assert.equal(store.usage(3).watches, 0, 'its watch went with it');
    assert.equal(await good.text(XS.WRITE, 'data/still\0ok'), 'OK');
    good.close();
  });

  it('a connection closed in the middle of a message leaks nothing', async () => {
    const { c, conn } = await connected();
    await c.call(XS.WATCH, 'data\0t2\0');
    const tx = Number(await c.text(XS.TRANSACTION_START, '\0'));
    assert.ok(tx > 0);
    assert.equal(store.usage(3).transactions, 1);
    const half = frame(XS.WRITE, 5, tx, 'data/half\0value');
    c.sock.end(half.subarray(0, 20));
    while (!conn.closed) await new Promise((r) => setTimeout(r, 5));
    assert.equal(store.usage(3).watches, 0);
    assert.equal(store.usage(3).transactions, 0);
  });

  it('a client that never reads its events is bounded: events beyond the backlog are dropped', async () => {
    const { c, conn } = await connected();
    await c.call(XS.WATCH, 'data/flood\0flood-token-with-some-length\0');
    c.sock.pause(); // stop reading: the kernel buffers fill, then Node's
    for (let i = 0; i < 20_000; i++)
      store.write({ domid: 0, privileged: true }, `/local/domain/3/data/flood/k${i % 50}`, String(i));
    await store.settled();
    assert.ok(conn.droppedEvents > 0, 'some events were dropped');
    assert.ok(
      conn.pendingBytes <= 64 * 1024 + 8192,
      `pending output ${conn.pendingBytes} stays near the backlog limit`,
    );
    // Requests still get answers once it reads again.
    c.sock.resume();
    assert.equal(await c.text(XS.READ, 'data/flood/k1\0'), '19951');
    c.close();
  });

  it('property: random bytes never crash the server; it answers or closes the connection', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 600 }), async (bytes) => {
        const { c, conn } = await connected();
        c.sock.write(Buffer.from(bytes));
        // A well-formed request after the garbage either gets its reply or finds the connection closed.
        c.sock.write(frame(XS.GET_DOMAIN_PATH, 0xabcdef, 0, '3\0'));
        await new Promise((r) => setTimeout(r, 2));
        c.close();
        while (!conn.closed) await new Promise((r) => setTimeout(r, 1));
      }),
      { numRuns: 60 },
    );
    assert.equal(store.usage(3).watches, 0);
    assert.equal(store.usage(3).transactions, 0);
    const { c } = await connected();
    assert.equal(await c.text(XS.GET_DOMAIN_PATH, '3\0'), '/local/domain/3');
    c.close();
  });
});
