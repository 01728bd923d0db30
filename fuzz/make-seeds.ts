// Writes the committed seed corpus (fuzz/corpus/<target>/): a few well-formed
// inputs per target, so fuzzing starts past the first checks. Re-run after a
// format changes: node --import tsx fuzz/make-seeds.ts

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
} from '../src/backends/vhost-blk/blk-request.ts';
import { XsType } from '../src/store/wire/protocol.ts';
import { ROOT } from './engine.ts';
import { apiInput, ROUTES } from './targets/api.ts';
import { ipBytes, MACS, macBytes } from './targets/frames.ts';
import { GREETING } from './targets/qmp.ts';
import { typicalSave } from './targets/save-file.ts';
import { encode } from './targets/switch.ts';
import { CONFIG, META, STORE } from './targets/transfer.ts';
import { blkInput } from './targets/vhost-blk.ts';
import { handshake } from './targets/vhost-user.ts';
import { records, xsFrame } from './targets/xenstore.ts';

function put(target: string, name: string, data: Uint8Array | string): void {
  const d = join(ROOT, 'fuzz/corpus', target);
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, name), data);
}

// switch: a TCP SYN to port 25 and its answer, an ARP request, a UDP packet to the uplink.
const tcp = (src: number, dst: number, sip: string, dip: string, dport: number, flags: number) => {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(40, 2);
  ip[8] = 64;
  ip[9] = 6;
  Buffer.from(ipBytes(sip)).copy(ip, 12);
  Buffer.from(ipBytes(dip)).copy(ip, 16);
  const t = Buffer.alloc(20);
  t.writeUInt16BE(40000, 0);
  t.writeUInt16BE(dport, 2);
  t[12] = 0x50;
  t[13] = flags;
  return Buffer.concat([
    Buffer.from([...macBytes(MACS[dst] as string), ...macBytes(MACS[src] as string), 8, 0]),
    ip,
    t,
  ]);
};
const arp = Buffer.from([
  ...macBytes('ff:ff:ff:ff:ff:ff'),
  ...macBytes(MACS[0] as string),
  8,
  6,
  0,
  1,
  8,
  0,
  6,
  4,
  0,
  1,
  ...macBytes(MACS[0] as string),
  10,
  0,
  0,
  1,
  0,
  0,
  0,
  0,
  0,
  0,
  10,
  0,
  0,
  2,
]);
put(
  'switch',
  'smtp-syn',
  encode([
    [0, tcp(0, 1, '10.0.0.1', '10.0.0.2', 25, 2)],
    [1, tcp(1, 0, '10.0.0.2', '10.0.0.1', 40000, 0x12)],
    [0x80, tcp(0, 2, '10.0.0.1', '10.0.0.3', 25, 2)],
  ]),
);
put(
  'switch',
  'arp',
  encode([
    [0, arp],
    [3, tcp(3, 0, '192.168.1.1', '10.0.0.1', 80, 2)],
  ]),
);

// vhost-blk: a read, a write, a flush, GET_ID, a discard (one of them indirect).
put(
  'vhost-blk',
  'read-write',
  blkInput(0, [
    { type: VIRTIO_BLK_T_IN, sector: 1, len: 512, write: true, indirect: false },
    { type: VIRTIO_BLK_T_OUT, sector: 2, len: 512, write: false, indirect: true },
  ]),
);
put(
  'vhost-blk',
  'flush-id',
  blkInput(1, [
    { type: VIRTIO_BLK_T_FLUSH, sector: 0, len: 0, write: false, indirect: false },
    { type: VIRTIO_BLK_T_GET_ID, sector: 0, len: 20, write: true, indirect: false },
  ]),
);
put(
  'vhost-blk',
  'discard',
  blkInput(0, [{ type: VIRTIO_BLK_T_DISCARD, sector: 0, len: 16, write: false, indirect: false }]),
);

// vhost-user: QEMU's handshake.
put('vhost-user', 'handshake', Buffer.concat(handshake()));

// xenstore: what a guest's xenbus driver does first.
const xs = (type: number, payload: string, tx = 0) => xsFrame(type, 1, tx, payload);
put(
  'xenstore',
  'session',
  records([
    [0, xs(XsType.GET_DOMAIN_PATH, '3\0')],
    [0, xs(XsType.WRITE, 'data/x\0hello')],
    [0, xs(XsType.READ, 'data/x\0')],
    [0, xs(XsType.DIRECTORY, '/local/domain/3\0')],
    [0, xs(XsType.WATCH, 'data\0tok\0')],
    [0, xs(XsType.TRANSACTION_START, '\0')],
    [0, xs(XsType.WRITE, 'data/y\0v', 1)],
    [0, xs(XsType.TRANSACTION_END, 'T\0', 1)],
    [1, xs(XsType.READ, '/local/domain/4/private/key\0')],
    [0, xs(XsType.SET_PERMS, 'data/x\0n3\0r5\0')],
    [1, xs(XsType.READ, '/local/domain/3/data/x\0')],
    [0, xs(XsType.GET_PERMS, 'data/x\0')],
    [0, xs(XsType.RM, 'data\0')],
  ]),
);

// save-file: a complete file as save writes it.
put('save-file', 'typical', typicalSave());

// migrate: prepare, go, abort, and a short key.
put(
  'migrate',
  'prepare',
  Buffer.concat([
    Buffer.from([0]),
    Buffer.from(JSON.stringify({ type: 'prepare', config: CONFIG, meta: META, paused: false })),
  ]),
);
put(
  'migrate',
  'go',
  Buffer.concat([Buffer.from([0]), Buffer.from(JSON.stringify({ type: 'go', store: STORE, console: '' }))]),
);
put('migrate', 'key', Buffer.concat([Buffer.from([1]), Buffer.alloc(32, 7)]));

// xlcfg: the example guest.
put('xlcfg', 'debian.cfg', readFileSync(join(ROOT, 'examples/debian.cfg')));

// qmp: a greeting, the capabilities reply, an event and the command's reply.
put(
  'qmp',
  'session',
  `${GREETING}{"return": {}, "id": 1}\n{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}}\n{"return": {"status": "running", "running": true}, "id": 2}\n`,
);
put(
  'qmp',
  'error',
  `${GREETING}{"return": {}, "id": 1}\n{"error": {"class": "CommandNotFound", "desc": "nope"}, "id": 2}\n`,
);

// api: listing, a create, a store read, a token creation.
const r = (p: string) => ROUTES.indexOf(p);
put('api', 'list', apiInput(0, r('/v1/domains'), '', ''));
put('api', 'create', apiInput(1, r('/v1/domains'), '', JSON.stringify({ config: "name = 'web1'\nmemory = 128\n" })));
put('api', 'store-read', apiInput(0, r('/v1/store/read'), 'path=/local/domain/1/x', ''));
put(
  'api',
  'store-write',
  apiInput(2, r('/v1/store/write'), '', JSON.stringify({ path: '/local/domain/1/x', value: 'v' })),
);
put('api', 'token', apiInput(1, r('/v1/tokens'), '', JSON.stringify({ sponsor: 'bob' })));
put('api', 'ws-watch', apiInput(0x80, 0, 'path=/local/domain/1', 'hello\nworld'));
put('api', 'ws-events', apiInput(0x80, 1, '', '{}'));
console.log('seeds written');
