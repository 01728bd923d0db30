// The xenstored wire protocol from guests: bytes through the frame decoder into
// two guests' sessions (dom3 and dom5) of one WireServer over a ControlStore in
// which the toolstack keeps dom4's private data. Input: records of
// [session byte][len u16 LE][raw stream bytes], so the fuzzer also splits frames.
// Invariants: only WireProtocolError leaves the decoder (the connection is then
// dropped); every frame sent back is well formed; nothing of dom4 or of the
// toolstack reaches a guest or changes; quotas hold.

import fc from 'fast-check';
import { ControlStore, TOOLSTACK } from '../../src/store/index.ts';
import { FrameDecoder, WireProtocolError } from '../../src/store/wire/codec.ts';
import { WireServer, type WireSession } from '../../src/store/wire/index.ts';
import { HEADER_SIZE, PAYLOAD_MAX, XsType } from '../../src/store/wire/protocol.ts';
import { type FuzzTarget, invariant } from '../target.ts';

const SECRET = 'kq7Zx_p9Wm2-dom4-only';
const QUOTAS = {
  nodes: 20,
  watches: 4,
  transactions: 2,
  transactionNodes: 16,
  nodeSize: 256,
  perms: 3,
  pathLength: 128,
};

export function xsFrame(type: number, reqId: number, txId: number, payload: string | Uint8Array): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : Buffer.from(payload);
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt32LE(type, 0);
  h.writeUInt32LE(reqId, 4);
  h.writeUInt32LE(txId, 8);
  h.writeUInt32LE(body.length, 12);
  return Buffer.concat([h, body]);
}

export function records(rs: Array<[number, Uint8Array]>): Buffer {
  return Buffer.concat(
    rs.map(([s, b]) => {
      const h = Buffer.alloc(3);
      h[0] = s;
      h.writeUInt16LE(b.length, 1);
      return Buffer.concat([h, b]);
    }),
  );
}

const PATHS = [
  'data/x',
  '/local/domain/3/data',
  '/local/domain/4/private/key',
  '/local/domain/4',
  '/tool/secret',
  '@introduceDomain',
  '@releaseDomain',
  '/',
  'a/b/c/d',
  '/local/domain/5/x',
  'data',
];
const arbPath = fc.oneof(fc.constantFrom(...PATHS), fc.stringMatching(/^[a-z/@._-]{0,20}$/));
const arbReq = fc
  .record({
    type: fc.constantFrom(...Object.values(XsType)),
    tx: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 4 })),
    path: arbPath,
    extra: fc.constantFrom('', 'value', 'tok', 'n3', 'r4', 'b5', 'n4\0r3', '1', '0', 'T'),
  })
  .map(({ type, tx, path, extra }) => xsFrame(type, 1, tx, `${path}\0${extra}${extra ? '\0' : ''}`));

export function target(): FuzzTarget {
  return {
    name: 'xenstore',
    about:
      'xenstored wire protocol from two guests: clean errors, well-formed replies, no leak of or change to dom4/toolstack nodes',
    files: ['src/store/', 'src/features/xenstored/'],
    maxLen: 8192,
    dict: [
      ...PATHS,
      ...['n3', 'r3', 'w3', 'b3', 'n4', 'r5', 'n0', 'EINVAL', '\0'],
      ...Object.values(XsType).map((t) => Uint8Array.from([t, 0, 0, 0])),
      Uint8Array.from([0, 0x10, 0, 0]),
      Uint8Array.from([1, 0x10, 0, 0]),
    ],
    generate: fc
      .array(fc.tuple(fc.integer({ min: 0, max: 255 }), arbReq), { minLength: 1, maxLength: 10 })
      .map((rs) => new Uint8Array(records(rs))),
    run(data) {
      const store = new ControlStore({ quotas: QUOTAS });
      try {
        store.introduceDomain(3);
        store.introduceDomain(4);
        store.introduceDomain(5);
        store.write(TOOLSTACK, '/local/domain/4/private/key', SECRET);
        store.setPerms(TOOLSTACK, '/local/domain/4/private/key', ['n4']);
        store.write(TOOLSTACK, '/tool/secret', SECRET);
        store.setPerms(TOOLSTACK, '/tool/secret', ['n0']);
        const before = JSON.stringify([
          store.exportSubtree('/local/domain/4'),
          store.exportSubtree('/tool'),
          store.getPerms(TOOLSTACK, '/local/domain/4/private/key'),
        ]);
        const server = new WireServer(store);
        const guests = [3, 5].map((domid) => {
          const out: Buffer[] = [];
          const g = {
            domid,
            out,
            closed: false,
            decoder: new FrameDecoder(),
            session: undefined as unknown as WireSession,
          };
          g.session = server.open(
            { domid, privileged: false },
            {
              send: (b) => {
                out.push(Buffer.from(b));
                return true;
              },
              close: () => {
                g.closed = true;
              },
            },
          );
          return g;
        });
        for (let off = 0; off + 3 <= data.length; ) {
          const g = guests[(data[off] as number) & 1] as (typeof guests)[number];
          const len = data.readUInt16LE(off + 1);
          const chunk = data.subarray(off + 3, off + 3 + len);
          off += 3 + len;
          if (g.closed) continue;
          g.decoder.push(Buffer.from(chunk));
          try {
            for (let m = g.decoder.next(); m && !g.closed; m = g.decoder.next()) g.session.handle(m);
          } catch (e) {
            if (!(e instanceof WireProtocolError)) throw e;
            g.session.close();
            g.closed = true;
          }
        }
        for (const g of guests) {
          const all = Buffer.concat(g.out);
          invariant(!all.includes(SECRET), `dom${g.domid} received another domain's or the toolstack's secret`);
          for (let o = 0; o < all.length; ) {
            invariant(all.length - o >= HEADER_SIZE, `dom${g.domid} got a torn frame`);
            const len = all.readUInt32LE(o + 12);
            invariant(len <= PAYLOAD_MAX, `dom${g.domid} got a ${len}-byte payload`);
            invariant(all.length - o >= HEADER_SIZE + len, `dom${g.domid} got a truncated frame`);
            o += HEADER_SIZE + len;
          }
          const u = store.usage(g.domid);
          invariant(u.nodes <= QUOTAS.nodes + 4, `dom${g.domid} owns ${u.nodes} nodes, quota ${QUOTAS.nodes}`);
          invariant(u.watches <= QUOTAS.watches, `dom${g.domid} holds ${u.watches} watches`);
          invariant(u.transactions <= QUOTAS.transactions, `dom${g.domid} holds ${u.transactions} transactions`);
          if (!g.closed) g.session.close();
        }
        const after = JSON.stringify([
          store.exportSubtree('/local/domain/4'),
          store.exportSubtree('/tool'),
          store.getPerms(TOOLSTACK, '/local/domain/4/private/key'),
        ]);
        invariant(before === after, 'a guest changed dom4 or the toolstack nodes');
      } finally {
        store.close();
      }
    },
  };
}
