// The xenstored wire codec against hostile input: split, merged, truncated,
// oversized and random byte streams. Frames are built by hand (test/helpers/xs-wire.ts),
// not with the codec under test.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  encodeFrame,
  FrameDecoder,
  HEADER_SIZE,
  PAYLOAD_MAX,
  payloadStrings,
  singleArg,
  WireProtocolError,
} from '../../src/store/wire/index.ts';
import { frame } from '../helpers/xs-wire.ts';

function drain(d: FrameDecoder) {
  const out = [];
  for (let m = d.next(); m; m = d.next()) out.push({ ...m, payload: Buffer.from(m.payload) });
  return out;
}

describe('FrameDecoder', () => {
  it('decodes a message fed one byte at a time', () => {
    const bytes = frame(2, 7, 9, '/local/domain/0/x\0');
    const d = new FrameDecoder();
    const got = [];
    for (const b of bytes) {
      d.push(Buffer.from([b]));
      got.push(...drain(d));
    }
    assert.equal(got.length, 1);
    assert.deepEqual(
      { type: got[0]?.type, reqId: got[0]?.reqId, txId: got[0]?.txId, p: got[0]?.payload.toString() },
      { type: 2, reqId: 7, txId: 9, p: '/local/domain/0/x\0' },
    );
    assert.equal(d.buffered, 0);
  });

  it('decodes several messages from one chunk, in order, including empty payloads', () => {
    const d = new FrameDecoder();
    d.push(Buffer.concat([frame(6, 1, 0, ''), frame(2, 2, 0, '/a\0'), frame(13, 3, 5, '/b\0')]));
    const got = drain(d);
    assert.deepEqual(
      got.map((m) => [m.type, m.reqId, m.txId, m.payload.toString()]),
      [
        [6, 1, 0, ''],
        [2, 2, 0, '/a\0'],
        [13, 3, 5, '/b\0'],
      ],
    );
  });

  it('accepts a payload of exactly 4096 bytes and refuses 4097 before reading it (fatal, as xenstored)', () => {
    const d = new FrameDecoder();
    d.push(frame(11, 1, 0, Buffer.alloc(PAYLOAD_MAX, 0x61)));
    const ok = drain(d);
    assert.equal(ok[0]?.payload.length, PAYLOAD_MAX);

    const bad = new FrameDecoder();
    // Only the header: the decoder must refuse on the length alone, never wait for (or allocate) 4 GiB.
    bad.push(frame(11, 1, 0, '', 0xffffffff));
    assert.throws(() => bad.next(), WireProtocolError);
    const bad2 = new FrameDecoder();
    bad2.push(frame(11, 1, 0, '', PAYLOAD_MAX + 1));
    assert.throws(() => bad2.next(), /4097/);
    // Once broken it stays broken: a stream that lost sync cannot be trusted again.
    bad2.push(frame(2, 1, 0, '/a\0'));
    assert.throws(() => bad2.next(), WireProtocolError);
  });

  it('holds a truncated message without producing it, and buffers at most what it was given', () => {
    const d = new FrameDecoder();
    const whole = frame(2, 1, 0, '/local/domain/0/abc\0');
    d.push(whole.subarray(0, 10));
    assert.equal(d.next(), undefined);
    d.push(whole.subarray(10, 20));
    assert.equal(d.next(), undefined);
    assert.ok(d.buffered <= 20);
    d.push(whole.subarray(20));
    assert.equal(drain(d).length, 1);
  });

  it('property: any chunking of any valid message sequence decodes to the same messages', () => {
    const msg = fc.record({
      type: fc.integer({ min: 0, max: 0xffffffff }),
      reqId: fc.integer({ min: 0, max: 0xffffffff }),
      txId: fc.integer({ min: 0, max: 0xffffffff }),
      payload: fc.uint8Array({ maxLength: 300 }),
    });
    fc.assert(
      fc.property(fc.array(msg, { maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 50 })), (msgs, cuts) => {
        const bytes = Buffer.concat(msgs.map((m) => frame(m.type, m.reqId, m.txId, Buffer.from(m.payload))));
        const d = new FrameDecoder();
        const got = [];
        let at = 0;
        for (const c of cuts) {
          if (at >= bytes.length) break;
          d.push(bytes.subarray(at, at + c));
          at += c;
          got.push(...drain(d));
        }
        if (at < bytes.length) d.push(bytes.subarray(at));
        got.push(...drain(d));
        assert.deepEqual(
          got.map((m) => [m.type, m.reqId, m.txId, m.payload.toString('hex')]),
          msgs.map((m) => [m.type, m.reqId, m.txId, Buffer.from(m.payload).toString('hex')]),
        );
      }),
      { numRuns: 300 },
    );
  });

  it('property: random bytes either decode or raise WireProtocolError, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        const d = new FrameDecoder();
        d.push(Buffer.from(bytes));
        try {
          drain(d);
        } catch (e) {
          assert.ok(e instanceof WireProtocolError, String(e));
        }
        assert.ok(d.buffered <= bytes.length);
      }),
      { numRuns: 500 },
    );
  });
});

describe('encodeFrame', () => {
  it('writes the little-endian header and copies type, req_id and tx_id', () => {
    const b = encodeFrame(16, 0xdeadbeef, 42, Buffer.from('ENOENT\0'));
    assert.equal(b.length, HEADER_SIZE + 7);
    assert.equal(b.readUInt32LE(0), 16);
    assert.equal(b.readUInt32LE(4), 0xdeadbeef);
    assert.equal(b.readUInt32LE(8), 42);
    assert.equal(b.readUInt32LE(12), 7);
    assert.equal(b.subarray(16).toString(), 'ENOENT\0');
  });
});

describe('payload parsing (xenstored get_string/onearg rules)', () => {
  it('singleArg wants exactly one NUL, at the end', () => {
    assert.equal(singleArg(Buffer.from('/a\0')), '/a');
    assert.equal(singleArg(Buffer.from('\0')), '');
    assert.equal(singleArg(Buffer.from('/a')), undefined);
    assert.equal(singleArg(Buffer.from('')), undefined);
    assert.equal(singleArg(Buffer.from('/a\0/b\0')), undefined);
    assert.equal(singleArg(Buffer.from('/a\0junk')), undefined);
  });

  it('payloadStrings returns only NUL-terminated strings; a tail without NUL is not one', () => {
    assert.deepEqual(
      payloadStrings(Buffer.from('p\0t\0')).map((b) => b.toString()),
      ['p', 't'],
    );
    assert.deepEqual(
      payloadStrings(Buffer.from('p\0t\0tail')).map((b) => b.toString()),
      ['p', 't'],
    );
    assert.deepEqual(payloadStrings(Buffer.from('no-nul')), []);
    assert.deepEqual(
      payloadStrings(Buffer.from('\0\0')).map((b) => b.toString()),
      ['', ''],
    );
  });
});
