// The xenstored request handling over a real ControlStore, in process: every
// request type, its reply and its error names as Xen's xenstored gives them, and
// a domain's connection held to that domain's permissions and quotas.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ControlStore, TOOLSTACK } from '../../src/store/index.ts';
import { WireServer, type WireSession } from '../../src/store/wire/index.ts';
import { type Frame, FrameReader, frame, strs, XS } from '../helpers/xs-wire.ts';

class Conn {
  readonly frames: Frame[] = [];
  closed = false;
  readonly session: WireSession;
  private readonly reader = new FrameReader();
  private req = 1;

  constructor(server: WireServer, domid: number, privileged: boolean) {
    this.session = server.open(
      { domid, privileged },
      {
        send: (b) => {
          this.frames.push(...this.reader.push(b));
          return true;
        },
        close: () => {
          this.closed = true;
        },
      },
    );
  }

  /** Sends one request; the reply is produced synchronously. */
  call(type: number, payload: Buffer | string, tx = 0): Frame {
    const reqId = this.req++;
    const bytes = frame(type, reqId, tx, payload);
    this.session.handle({
      type: bytes.readUInt32LE(0),
      reqId,
      txId: tx,
      payload: bytes.subarray(16),
    });
    const i = this.frames.findIndex((f) => f.reqId === reqId && f.type !== XS.WATCH_EVENT);
    assert.ok(i >= 0, `no reply to request type ${type}`);
    return this.frames.splice(i, 1)[0] as Frame;
  }

  /** 'OK', the value, or 'ERR:EXXX' */
  t(type: number, payload: Buffer | string, tx = 0): string {
    const f = this.call(type, payload, tx);
    const s = f.payload.toString('utf8');
    return f.type === XS.ERROR ? `ERR:${s.replace(/\0$/, '')}` : s.replace(/\0$/, '');
  }

  events(): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    for (let i = 0; i < this.frames.length; ) {
      const f = this.frames[i] as Frame;
      if (f.type === XS.WATCH_EVENT) {
        assert.equal(f.reqId, 0);
        assert.equal(f.txId, 0);
        const [p = '', tok = ''] = strs(f.payload);
        out.push([p, tok]);
        this.frames.splice(i, 1);
      } else i++;
    }
    return out;
  }
}

function setup(quotas = {}) {
  const store = new ControlStore({ quotas });
  const server = new WireServer(store);
  const dom0 = () => new Conn(server, 0, true);
  const dom = (id: number) => new Conn(server, id, false);
  return { store, server, dom0, dom };
}

describe('reads and writes', () => {
  it('WRITE/READ/MKDIR/DIRECTORY/RM reply as xenstored does', async () => {
    const { dom0 } = setup();
    const c = dom0();
    const w = c.call(XS.WRITE, '/tool/a\0hello');
    assert.equal(w.type, XS.WRITE);
    assert.equal(w.payload.toString(), 'OK\0');
    // READ's reply is the value with no NUL added.
    const r = c.call(XS.READ, '/tool/a\0');
    assert.equal(r.type, XS.READ);
    assert.equal(r.payload.toString(), 'hello');
    assert.equal(c.t(XS.MKDIR, '/tool/b\0'), 'OK');
    assert.equal(c.t(XS.MKDIR, '/tool/b\0'), 'OK', 'mkdir of an existing node is fine');
    assert.equal(c.t(XS.READ, '/tool/b\0'), '');
    const d = c.call(XS.DIRECTORY, '/tool\0');
    assert.equal(d.payload.toString(), 'a\0b\0');
    const empty = c.call(XS.DIRECTORY, '/tool/b\0');
    assert.equal(empty.type, XS.DIRECTORY);
    assert.equal(empty.payload.length, 0);
    assert.equal(c.t(XS.RM, '/tool\0'), 'OK');
    assert.equal(c.t(XS.READ, '/tool/a\0'), 'ERR:ENOENT');
    assert.equal(c.t(XS.RM, '/tool\0'), 'OK', 'rm of an absent node whose parent exists');
    assert.equal(c.t(XS.RM, '/tool/x/y\0'), 'ERR:ENOENT', 'rm when the parent is absent too');
    assert.equal(c.t(XS.RM, '/\0'), 'ERR:EINVAL');
  });

  it('a value may hold NULs and any UTF-8; bytes that are not UTF-8 are refused with EINVAL', () => {
    const { dom0 } = setup();
    const c = dom0();
    const value = Buffer.concat([Buffer.from('a\0b\0'), Buffer.from('é→', 'utf8')]);
    assert.equal(c.t(XS.WRITE, Buffer.concat([Buffer.from('/v\0'), value])), 'OK');
    assert.deepEqual(c.call(XS.READ, '/v\0').payload, value);
    assert.equal(c.t(XS.WRITE, Buffer.concat([Buffer.from('/v\0'), Buffer.from([0xff, 0xfe])])), 'ERR:EINVAL');
    assert.deepEqual(c.call(XS.READ, '/v\0').payload, value, 'unchanged');
    // An empty value: the path's NUL and nothing after it.
    assert.equal(c.t(XS.WRITE, '/v\0'), 'OK');
    assert.equal(c.call(XS.READ, '/v\0').payload.length, 0);
  });

  it('malformed payloads are EINVAL, unknown types ENOSYS, and the reply copies req_id and tx_id', () => {
    const { dom0 } = setup();
    const c = dom0();
    assert.equal(c.t(XS.READ, '/a'), 'ERR:EINVAL', 'no NUL');
    assert.equal(c.t(XS.READ, '/a\0/b\0'), 'ERR:EINVAL', 'two args');
    assert.equal(c.t(XS.READ, ''), 'ERR:EINVAL', 'empty');
    assert.equal(c.t(XS.WRITE, '/no-nul-at-all'), 'ERR:EINVAL');
    assert.equal(c.t(XS.READ, '/a//b\0'), 'ERR:EINVAL');
    assert.equal(c.t(XS.READ, '/a/\0'), 'ERR:EINVAL');
    assert.equal(c.t(XS.READ, '/a b\0'), 'ERR:EINVAL');
    assert.equal(c.t(XS.READ, `/${'x'.repeat(3100)}\0`), 'ERR:EINVAL');
    for (const type of [XS.WATCH_EVENT, XS.ERROR, 20, 23, 24, 99, 0xffff, 0xffffffff]) {
      assert.equal(c.t(type, '/a\0'), 'ERR:ENOSYS', `type ${type}`);
    }
    const f = c.call(XS.READ, '/nope\0');
    assert.equal(f.type, XS.ERROR);
    assert.equal(f.payload.toString(), 'ENOENT\0');
  });

  it('relative paths are relative to the connection home (/local/domain/0 for a socket)', () => {
    const { dom0 } = setup();
    const c = dom0();
    assert.equal(c.t(XS.WRITE, 'xenstore-test/1/a\0v'), 'OK');
    assert.equal(c.t(XS.READ, '/local/domain/0/xenstore-test/1/a\0'), 'v');
    assert.equal(c.t(XS.READ, 'xenstore-test/1/a\0'), 'v');
    assert.equal(c.t(XS.DIRECTORY, 'xenstore-test\0'), '1');
    assert.equal(c.t(XS.READ, '\0'), 'ERR:EINVAL', 'the empty relative path');
  });

  it('a DIRECTORY reply over 4096 bytes is E2BIG and DIRECTORY_PART pages through it', () => {
    const { dom0 } = setup();
    const c = dom0();
    const names: string[] = [];
    for (let i = 0; i < 200; i++) {
      const n = `child-${String(i).padStart(3, '0')}-${'x'.repeat(20)}`;
      names.push(n);
      assert.equal(c.t(XS.MKDIR, `/big/${n}\0`), 'OK');
    }
    assert.equal(c.t(XS.DIRECTORY, '/big\0'), 'ERR:E2BIG');
    const got: string[] = [];
    let gen: string | undefined;
    for (let off = 0; ; ) {
      const f = c.call(XS.DIRECTORY_PART, `/big\0${off}\0`);
      assert.equal(f.type, XS.DIRECTORY_PART);
      assert.ok(f.payload.length <= 4096);
      const s = f.payload.toString('latin1');
      const g = s.slice(0, s.indexOf('\0'));
      gen ??= g;
      assert.equal(g, gen, 'the generation count is stable while the node does not change');
      const rest = s.slice(g.length + 1);
      const done = rest.endsWith('\0\0') || rest === '\0';
      const part = rest.split('\0').filter((x) => x !== '');
      got.push(...part);
      off += part.reduce((n, x) => n + x.length + 1, 0);
      if (done) break;
    }
    assert.deepEqual(got, names);
    assert.equal(c.t(XS.MKDIR, '/big/zzz\0'), 'OK');
    const after = c.call(XS.DIRECTORY_PART, '/big\x00999999\0').payload.toString('latin1');
    assert.notEqual(after.slice(0, after.indexOf('\0')), gen, 'a change moves the generation count');
    assert.equal(c.t(XS.DIRECTORY_PART, '/big\0'), 'ERR:EINVAL');
  });

  it('GET_PERMS/SET_PERMS use the n0 r3 string form; bad lists are EINVAL', () => {
    const { dom0, store } = setup();
    store.introduceDomain(3);
    const c = dom0();
    assert.equal(c.t(XS.WRITE, '/p\0x'), 'OK');
    assert.equal(c.call(XS.GET_PERMS, '/p\0').payload.toString(), 'n0\0');
    assert.equal(c.t(XS.SET_PERMS, '/p\0n0\0r3\0b5\0'), 'OK');
    assert.equal(c.call(XS.GET_PERMS, '/p\0').payload.toString(), 'n0\0r3\0b5\0');
    assert.equal(c.t(XS.SET_PERMS, '/p\0'), 'ERR:EINVAL', 'no permission at all');
    assert.equal(c.t(XS.SET_PERMS, '/p\0x3\0'), 'ERR:EINVAL');
    assert.equal(c.t(XS.SET_PERMS, '/p\0r\0'), 'ERR:EINVAL');
    assert.equal(c.t(XS.SET_PERMS, '/p\0r99999\0'), 'ERR:EINVAL');
    // xenstored refuses an owner that is no domain it knows.
    assert.equal(c.t(XS.SET_PERMS, '/p\0n77\0'), 'ERR:ENOENT');
    assert.equal(c.t(XS.SET_PERMS, '/p\0b3\0'), 'OK');
    assert.equal(c.call(XS.GET_PERMS, '/p\0').payload.toString(), 'b3\0');
    assert.equal(c.t(XS.GET_PERMS, '/none\0'), 'ERR:ENOENT');
  });
});

describe('watches', () => {
  it('fire once on registration after the OK, then on changes below, with the token', async () => {
    const { dom0, store } = setup();
    const a = dom0();
    const b = dom0();
    const w = a.call(XS.WATCH, '/w\0tok\0');
    assert.equal(w.type, XS.WATCH);
    assert.equal(w.payload.toString(), 'OK\0');
    await store.settled();
    assert.deepEqual(a.events(), [['/w', 'tok']]);
    assert.equal(b.t(XS.WRITE, '/w/x/y\0v'), 'OK');
    assert.equal(b.t(XS.WRITE, '/other\0v'), 'OK');
    await store.settled();
    assert.deepEqual(a.events(), [['/w/x/y', 'tok']]);
    assert.deepEqual(b.events(), []);
    assert.equal(a.t(XS.WATCH, '/w\0tok\0'), 'ERR:EEXIST');
    // Another connection may use the same path and token: watches are per connection.
    assert.equal(b.t(XS.WATCH, '/w\0tok\0'), 'OK');
    assert.equal(a.t(XS.UNWATCH, '/w\0tok\0'), 'OK');
    assert.equal(a.t(XS.UNWATCH, '/w\0tok\0'), 'ERR:ENOENT');
    await store.settled();
    b.events();
    assert.equal(b.t(XS.RM, '/w\0'), 'OK');
    await store.settled();
    assert.deepEqual(a.events(), []);
    assert.deepEqual(b.events(), [['/w', 'tok']]);
    assert.equal(a.t(XS.WATCH, '/w\0'), 'ERR:EINVAL', 'no token');
    assert.equal(a.t(XS.WATCH, '/w\0t\0extra\0'), 'ERR:EINVAL', 'three strings');
    assert.equal(a.t(XS.WATCH, 'bad path\0t\0'), 'ERR:EINVAL');
  });

  it('a relative watch reports relative paths; the tx_id of WATCH is ignored', async () => {
    const { dom0, store } = setup();
    const a = dom0();
    assert.equal(a.t(XS.WATCH, 'rel\0T\0', 12345), 'OK');
    assert.equal(a.t(XS.WRITE, '/local/domain/0/rel/k\0v'), 'OK');
    await store.settled();
    assert.deepEqual(a.events(), [
      ['rel', 'T'],
      ['rel/k', 'T'],
    ]);
    assert.equal(a.t(XS.UNWATCH, 'rel\0T\0'), 'OK');
  });

  it('tokens are echoed byte for byte, even when they are not UTF-8', async () => {
    const { dom0, store } = setup();
    const a = dom0();
    const token = Buffer.from([0xff, 0x01, 0x80]);
    const f = a.call(XS.WATCH, Buffer.concat([Buffer.from('/t\0'), token, Buffer.from([0])]));
    assert.equal(f.payload.toString(), 'OK\0');
    await store.settled();
    const ev = a.frames.find((x) => x.type === XS.WATCH_EVENT);
    assert.deepEqual(ev?.payload, Buffer.concat([Buffer.from('/t\0'), token, Buffer.from([0])]));
  });

  it('RESET_WATCHES drops the connection’s watches and transactions', async () => {
    const { dom0, store } = setup();
    const a = dom0();
    a.t(XS.WATCH, '/r\0t\0');
    const tx = Number(a.t(XS.TRANSACTION_START, '\0'));
    assert.equal(a.t(XS.RESET_WATCHES, '\0'), 'OK');
    await store.settled();
    a.events();
    a.t(XS.WRITE, '/r\0x');
    await store.settled();
    assert.deepEqual(a.events(), []);
    assert.equal(a.t(XS.READ, '/r\0', tx), 'ERR:ENOENT');
  });

  it('closing a connection forgets its watches and aborts its transactions', async () => {
    const { dom0, dom, store } = setup();
    store.introduceDomain(3);
    const g = dom(3);
    g.t(XS.WATCH, 'data\0t\0');
    const tx = Number(g.t(XS.TRANSACTION_START, '\0'));
    assert.ok(tx > 0);
    g.t(XS.WRITE, 'data/x\0v', tx);
    assert.deepEqual(store.usage(3), { nodes: store.usage(3).nodes, watches: 1, transactions: 1 });
    g.session.close();
    assert.equal(store.usage(3).watches, 0);
    assert.equal(store.usage(3).transactions, 0);
    assert.equal(dom0().t(XS.READ, '/local/domain/3/data/x\0'), 'ERR:ENOENT', 'never committed');
  });
});

describe('transactions', () => {
  it('START returns an id; reads see the transaction; END T commits, END F aborts', () => {
    const { dom0 } = setup();
    const c = dom0();
    c.t(XS.WRITE, '/t/a\0a');
    const start = c.call(XS.TRANSACTION_START, '\0');
    assert.equal(start.type, XS.TRANSACTION_START);
    assert.match(start.payload.toString(), /^[1-9]\d*\0$/);
    const tx = Number(start.payload.toString().slice(0, -1));
    assert.equal(c.t(XS.WRITE, '/t/a\0b', tx), 'OK');
    assert.equal(c.t(XS.READ, '/t/a\0', tx), 'b');
    assert.equal(c.t(XS.READ, '/t/a\0'), 'a');
    const end = c.call(XS.TRANSACTION_END, 'T\0', tx);
    assert.equal(end.type, XS.TRANSACTION_END);
    assert.equal(end.txId, tx, 'the reply carries the tx_id');
    assert.equal(c.t(XS.READ, '/t/a\0'), 'b');
    const tx2 = Number(c.t(XS.TRANSACTION_START, '\0'));
    c.t(XS.WRITE, '/t/a\0c', tx2);
    assert.equal(c.t(XS.TRANSACTION_END, 'F\0', tx2), 'OK');
    assert.equal(c.t(XS.READ, '/t/a\0'), 'b');
  });

  it('a conflicting write makes the commit fail with EAGAIN', () => {
    const { dom0 } = setup();
    const c = dom0();
    const other = dom0();
    c.t(XS.WRITE, '/t/a\0a');
    const tx = Number(c.t(XS.TRANSACTION_START, '\0'));
    assert.equal(c.t(XS.READ, '/t/a\0', tx), 'a');
    assert.equal(other.t(XS.WRITE, '/t/a\0b'), 'OK');
    assert.equal(c.t(XS.WRITE, '/t/a\0c', tx), 'OK');
    assert.equal(c.t(XS.TRANSACTION_END, 'T\0', tx), 'ERR:EAGAIN');
    assert.equal(c.t(XS.READ, '/t/a\0'), 'b');
    assert.equal(c.t(XS.TRANSACTION_END, 'T\0', tx), 'ERR:ENOENT', 'the id is gone after END');
  });

  it('unknown ids are ENOENT, nesting EBUSY, END arguments other than T/F EINVAL', () => {
    const { dom0 } = setup();
    const c = dom0();
    const other = dom0();
    assert.equal(c.t(XS.READ, '/\0', 424242), 'ERR:ENOENT');
    assert.equal(c.t(XS.TRANSACTION_END, 'T\0'), 'ERR:ENOENT', 'END without a transaction');
    const tx = Number(c.t(XS.TRANSACTION_START, '\0'));
    assert.equal(c.t(XS.TRANSACTION_START, '\0', tx), 'ERR:EBUSY');
    assert.equal(c.t(XS.TRANSACTION_END, 'X\0', tx), 'ERR:EINVAL');
    assert.equal(c.t(XS.TRANSACTION_END, 'T', tx), 'ERR:EINVAL');
    // Another connection of the same domain cannot use (or end) this one's transaction.
    assert.equal(other.t(XS.READ, '/\0', tx), 'ERR:ENOENT');
    assert.equal(other.t(XS.TRANSACTION_END, 'T\0', tx), 'ERR:ENOENT');
    assert.equal(c.t(XS.TRANSACTION_END, 'T\0', tx), 'OK');
  });
});

describe('a domain’s connection', () => {
  it('acts with that domain’s permissions: its own home yes, another domain’s no', () => {
    const { dom0, dom, store } = setup();
    store.introduceDomain(3);
    store.introduceDomain(4);
    const admin = dom0();
    admin.t(XS.WRITE, '/local/domain/4/data/secret\0s3cr3t');
    const g3 = dom(3);
    const g4 = dom(4);
    assert.equal(g3.t(XS.WRITE, 'data/mine\0m'), 'OK', 'relative to /local/domain/3');
    assert.equal(g3.t(XS.READ, '/local/domain/3/data/mine\0'), 'm');
    assert.equal(g3.t(XS.READ, '/local/domain/3/domid\0'), '3');
    assert.equal(g3.t(XS.WRITE, '/local/domain/3/domid\0x'), 'ERR:EACCES', 'toolstack-owned');
    for (const [type, p] of [
      [XS.READ, '/local/domain/4/data/secret\0'],
      [XS.DIRECTORY, '/local/domain/4\0'],
      [XS.GET_PERMS, '/local/domain/4/data\0'],
      [XS.WRITE, '/local/domain/4/data/x\0y'],
      [XS.MKDIR, '/local/domain/4/data/y\0'],
      [XS.RM, '/local/domain/4/data/secret\0'],
      [XS.SET_PERMS, '/local/domain/4/data/secret\0n3\0'],
      // A node that does not exist below an unreadable one is not revealed as absent.
      [XS.READ, '/local/domain/4/data/nothing\0'],
    ] as const) {
      assert.equal(g3.t(type, p), 'ERR:EACCES', `${type} ${p}`);
    }
    assert.equal(g4.t(XS.READ, 'data/secret\0'), 's3cr3t');
    // The owner opens a node to the other domain; then (and only then) it can read it.
    assert.equal(g4.t(XS.SET_PERMS, 'data/secret\0n4\0r3\0'), 'OK');
    assert.equal(g3.t(XS.READ, '/local/domain/4/data/secret\0'), 's3cr3t');
    assert.equal(g3.t(XS.WRITE, '/local/domain/4/data/secret\0x'), 'ERR:EACCES');
    assert.equal(g4.t(XS.SET_PERMS, 'data/secret\0n3\0'), 'ERR:EPERM', 'only dom0 changes the owner');
  });

  it('its watches fire only for what it may read', async () => {
    const { dom0, dom, store } = setup();
    store.introduceDomain(3);
    store.introduceDomain(4);
    const g3 = dom(3);
    assert.equal(g3.t(XS.WATCH, '/local/domain/4\0spy\0'), 'OK');
    await store.settled();
    g3.events();
    dom0().t(XS.WRITE, '/local/domain/4/data/k\0v');
    dom(4).t(XS.WRITE, 'data/k2\0v');
    await store.settled();
    assert.deepEqual(g3.events(), []);
  });

  it('privileged requests are EACCES', () => {
    const { dom, store } = setup();
    store.introduceDomain(3);
    const g = dom(3);
    for (const [type, p] of [
      [XS.INTRODUCE, '5\x000\x001\0'],
      [XS.RELEASE, '3\0'],
      [XS.IS_DOMAIN_INTRODUCED, '3\0'],
      [XS.RESUME, '3\0'],
      [XS.SET_TARGET, '3\x004\0'],
      [XS.CONTROL, 'help\0'],
    ] as const) {
      assert.equal(g.t(type, p), 'ERR:EACCES', `type ${type}`);
    }
    assert.equal(g.t(XS.GET_DOMAIN_PATH, '3\0'), '/local/domain/3');
  });

  it('is held to the domain’s quotas: node size and nodes ENOSPC, watches E2BIG, transactions ENOSPC', () => {
    const { dom, store } = setup({ nodes: 20, watches: 2, transactions: 1, nodeSize: 100 });
    store.introduceDomain(3);
    const g = dom(3);
    assert.equal(g.t(XS.WRITE, `data/big\0${'x'.repeat(101)}`), 'ERR:ENOSPC');
    let i = 0;
    let last = 'OK';
    while (last === 'OK' && i < 50) last = g.t(XS.WRITE, `data/n${i++}\0v`);
    assert.equal(last, 'ERR:ENOSPC');
    assert.ok(i < 50);
    assert.equal(g.t(XS.WATCH, 'data\0a\0'), 'OK');
    assert.equal(g.t(XS.WATCH, 'data\0b\0'), 'OK');
    assert.equal(g.t(XS.WATCH, 'data\0c\0'), 'ERR:E2BIG');
    assert.notEqual(g.t(XS.TRANSACTION_START, '\0').slice(0, 4), 'ERR:');
    assert.equal(g.t(XS.TRANSACTION_START, '\0'), 'ERR:ENOSPC');
    // A second connection of the same domain shares its quotas.
    const g2 = dom(3);
    assert.equal(g2.t(XS.WATCH, 'data\0d\0'), 'ERR:E2BIG');
  });

  it('cannot see @introduceDomain/@releaseDomain unless dom0 grants it, like xenstored', async () => {
    const { dom0, dom, store } = setup();
    store.introduceDomain(3);
    const g = dom(3);
    assert.equal(g.t(XS.WATCH, '@releaseDomain\0r\0'), 'OK');
    await store.settled();
    g.events();
    store.introduceDomain(9);
    store.releaseDomain(9);
    await store.settled();
    assert.deepEqual(g.events(), []);
    assert.equal(dom0().t(XS.SET_PERMS, '@releaseDomain\0n0\0r3\0'), 'OK');
    // (Xenode's store tells watchers of the perms change itself: a spurious event, which the protocol allows.)
    await store.settled();
    g.events();
    store.introduceDomain(9);
    store.releaseDomain(9);
    await store.settled();
    assert.deepEqual(g.events(), [['@releaseDomain', 'r']]);
  });
});

describe('domains', () => {
  it('INTRODUCE fires @introduceDomain; IS_DOMAIN_INTRODUCED; RELEASE fires @releaseDomain', async () => {
    const { dom0, store } = setup();
    const c = dom0();
    c.t(XS.WATCH, '@introduceDomain\0i\0');
    c.t(XS.WATCH, '@releaseDomain\0r\0');
    await store.settled();
    assert.deepEqual(c.events(), [
      ['@introduceDomain', 'i'],
      ['@releaseDomain', 'r'],
    ]);
    assert.equal(c.t(XS.IS_DOMAIN_INTRODUCED, '7\0'), 'F');
    assert.equal(c.t(XS.INTRODUCE, '7\x00123\x004\0'), 'OK');
    assert.equal(c.t(XS.IS_DOMAIN_INTRODUCED, '7\0'), 'T');
    assert.equal(c.t(XS.READ, '/local/domain/7/domid\0'), '7', 'Xenode lays out the new domain’s home');
    await store.settled();
    assert.deepEqual(c.events(), [['@introduceDomain', 'i']]);
    assert.equal(c.t(XS.INTRODUCE, '7\x00123\x004\0'), 'OK', 'introducing again is fine (xenstored rebinds)');
    assert.equal(c.t(XS.INTRODUCE, '7\x00123\x000\0'), 'ERR:EINVAL', 'event channel 0');
    assert.equal(c.t(XS.INTRODUCE, '7\x00123\0'), 'ERR:EINVAL', 'two args');
    assert.equal(c.t(XS.INTRODUCE, '0\x00123\x004\0'), 'ERR:EINVAL', 'domain 0');
    assert.equal(c.t(XS.IS_DOMAIN_INTRODUCED, '0\0'), 'T');
    assert.equal(c.t(XS.RESUME, '7\0'), 'OK');
    assert.equal(c.t(XS.RESUME, '8\0'), 'ERR:ENOENT');
    assert.equal(c.t(XS.RELEASE, '7\0'), 'OK');
    await store.settled();
    assert.deepEqual(c.events(), [['@releaseDomain', 'r']]);
    assert.equal(c.t(XS.IS_DOMAIN_INTRODUCED, '7\0'), 'F');
    assert.equal(c.t(XS.RELEASE, '7\0'), 'ERR:ENOENT');
    assert.equal(c.t(XS.RELEASE, '0\0'), 'ERR:EINVAL');
    assert.equal(c.t(XS.RELEASE, 'x\0'), 'ERR:EINVAL');
  });

  it('RELEASE closes that domain’s connections', async () => {
    const { dom0, dom, store } = setup();
    store.introduceDomain(5);
    const g = dom(5);
    const other = dom0();
    assert.equal(dom0().t(XS.RELEASE, '5\0'), 'OK');
    await store.settled();
    assert.equal(g.closed, true);
    assert.equal(other.closed, false);
  });

  it('GET_DOMAIN_PATH answers for any number, as xenstored (atoi)', () => {
    const { dom0 } = setup();
    const c = dom0();
    assert.equal(c.call(XS.GET_DOMAIN_PATH, '12\0').payload.toString(), '/local/domain/12\0');
    assert.equal(c.t(XS.GET_DOMAIN_PATH, 'abc\0'), '/local/domain/0');
    assert.equal(c.t(XS.GET_DOMAIN_PATH, '12'), 'ERR:EINVAL');
  });

  it('SET_TARGET gives a domain the permissions of its target, like a device model', () => {
    const { dom0, dom, store } = setup();
    store.introduceDomain(3);
    store.introduceDomain(4);
    const admin = dom0();
    admin.t(XS.WRITE, '/local/domain/4/data/k\0v');
    const dm = dom(3);
    assert.equal(dm.t(XS.READ, '/local/domain/4/data/k\0'), 'ERR:EACCES');
    assert.equal(admin.t(XS.SET_TARGET, '3\x004\0'), 'OK');
    assert.equal(dm.t(XS.READ, '/local/domain/4/data/k\0'), 'v');
    assert.equal(dm.t(XS.WRITE, '/local/domain/4/data/k\0w'), 'OK');
    assert.equal(admin.t(XS.SET_TARGET, '3\x009\0'), 'ERR:ENOENT');
    assert.equal(admin.t(XS.SET_TARGET, '3\0'), 'ERR:EINVAL');
  });
});

describe('CONTROL', () => {
  it('answers help, check, print and quota as xenstored does; unknown commands are EINVAL', () => {
    const { dom0, store } = setup();
    const c = dom0();
    const help = c.t(XS.CONTROL, 'help\0');
    assert.match(help, /^check\t/m);
    assert.match(help, /^quota\t/m);
    assert.equal(c.t(XS.CONTROL, 'check\0'), 'OK');
    assert.equal(c.t(XS.CONTROL, 'print\0hello\0'), 'OK');
    assert.match(c.t(XS.CONTROL, 'quota\0'), /^Quota settings:\nnodes\s+:\s+1000 /);
    store.introduceDomain(3);
    assert.match(c.t(XS.CONTROL, 'quota\x003\0'), /^Domain 3:\nnodes\s+:\s+\d+\n/);
    assert.equal(c.t(XS.CONTROL, 'quota\x0099\0'), 'ERR:ENOENT');
    assert.equal(c.t(XS.CONTROL, 'no-such\0'), 'ERR:EINVAL');
    assert.equal(c.t(XS.CONTROL, ''), 'ERR:EINVAL');
  });
});

describe('replies never exceed the payload limit', () => {
  it('a value too long for one message (written through the API) is E2BIG on READ', () => {
    const { dom0, store } = setup();
    store.write(TOOLSTACK, '/huge', 'x'.repeat(5000));
    assert.equal(dom0().t(XS.READ, '/huge\0'), 'ERR:E2BIG');
  });
});

describe('group commit', () => {
  it('a request’s changes are answered and live at once, and queued for SQLite; reads leave nothing queued', () => {
    const { store, server, dom0 } = setup();
    const c = dom0();
    assert.equal(c.t(XS.WRITE, '/gc/a\0v'), 'OK');
    assert.ok(store.unflushedChanges > 0, 'the WRITE waits for the group commit');
    assert.equal(c.t(XS.READ, '/gc/a\0'), 'v');
    assert.equal(store.read(TOOLSTACK, '/gc/a'), 'v');
    store.flush();
    assert.equal(c.t(XS.READ, '/gc/a\0'), 'v');
    assert.equal(c.t(XS.DIRECTORY, '/gc\0'), 'a');
    assert.equal(store.unflushedChanges, 0);
    const tx = c.t(XS.TRANSACTION_START, '\0');
    assert.equal(c.t(XS.WRITE, '/gc/b\0w', Number(tx)), 'OK');
    assert.equal(store.unflushedChanges, 0, 'nothing is live before the commit');
    assert.equal(c.t(XS.TRANSACTION_END, 'T\0', Number(tx)), 'OK');
    assert.ok(store.unflushedChanges > 0);
    server.close();
    store.close();
  });

  it('a READ answered by the fast path still hides a node the domain may not read', () => {
    const { store, server, dom0, dom } = setup();
    store.introduceDomain(3);
    store.introduceDomain(4);
    const admin = dom0();
    assert.equal(admin.t(XS.WRITE, '/local/domain/3/data/s\0secret'), 'OK');
    const d4 = dom(4);
    assert.equal(d4.t(XS.READ, '/local/domain/3/data/s\0'), 'ERR:EACCES');
    assert.equal(d4.t(XS.READ, '/local/domain/3/data/none\0'), 'ERR:EACCES');
    assert.equal(dom(3).t(XS.READ, 'data/s\0'), 'secret');
    assert.equal(dom(3).t(XS.READ, 'data/none\0'), 'ERR:ENOENT');
    server.close();
    store.close();
  });
});
