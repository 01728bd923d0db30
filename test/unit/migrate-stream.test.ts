// The migration stream's gate on its own: only the source's address with the
// key gets through, one connection only, and strangers do not stop the source.

import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import {
  openStream,
  plainAddress,
  STREAM_KEY_BYTES,
  StreamGate,
} from '../../src/features/saverestore/migrate-stream.ts';

function dial(port: number, from = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, localAddress: from });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

function closed(s: Socket): Promise<void> {
  s.on('error', () => undefined);
  return new Promise((r) => {
    if (s.destroyed) r();
    else s.once('close', () => r());
  });
}

describe('migration stream gate', () => {
  it('lets through the source with the key, after strangers, and then no one', async () => {
    const refused: string[] = [];
    const gate = await StreamGate.open({ bindHost: '127.0.0.1', peer: '127.0.0.1', onRefused: (w) => refused.push(w) });
    try {
      const elsewhere = await dial(gate.port, '127.0.0.2');
      await closed(elsewhere);
      const wrong = await dial(gate.port);
      wrong.write(Buffer.alloc(STREAM_KEY_BYTES, 1));
      await closed(wrong);
      const silent = await dial(gate.port);

      const source = await openStream('127.0.0.1', gate.port, gate.key);
      const inside = await gate.accepted;
      assert.equal(plainAddress(inside.remoteAddress), '127.0.0.1');
      assert.equal(inside.remotePort, source.localPort, 'the accepted connection is the source');
      await closed(silent);
      await assert.rejects(dial(gate.port), /ECONNREFUSED/, 'the gate stops listening');
      assert.deepEqual(refused, [
        "refused a migration stream connection from 127.0.0.2: not the source's address",
        'refused a migration stream connection from 127.0.0.1: wrong key',
      ]);
      // The accepted connection carries what the source sends next, untouched.
      source.write('state');
      const got = await new Promise<string>((r) => {
        inside.once('data', (d: Buffer) => r(d.toString()));
        inside.resume();
      });
      assert.equal(got, 'state');
      source.destroy();
      inside.destroy();
    } finally {
      gate.close();
    }
  });

  it("the source sees the gate drop a connection that is not from the control link's address", async () => {
    const gate = await StreamGate.open({ bindHost: '127.0.0.1', peer: '127.0.0.2' });
    try {
      const source = await openStream('127.0.0.1', gate.port, gate.key);
      await closed(source);
    } finally {
      gate.close();
    }
  });

  it('close() rejects a wait that never got its source', async () => {
    const gate = await StreamGate.open({ bindHost: '127.0.0.1' });
    const waiting = gate.accepted;
    gate.close(new Error('source gone'));
    await assert.rejects(waiting, /source gone/);
    await assert.rejects(dial(gate.port), /ECONNREFUSED/);
  });

  it('plainAddress unwraps IPv4-mapped addresses only', () => {
    assert.equal(plainAddress('::ffff:10.0.0.2'), '10.0.0.2');
    assert.equal(plainAddress('::1'), '::1');
    assert.equal(plainAddress(undefined), undefined);
  });
});
