// The incoming side of a migration: control messages from the source (the
// WebSocket's text, through parseMessage and, for `prepare`, the checks the
// target applies), and the first bytes a connection sends to the stream gate.
// Input: [mode][bytes]; mode bit 0 set: the bytes go to a fresh StreamGate over
// loopback TCP, else they are one control message.
// Invariants: refusals are XenodeError/StoreError; the gate never lets through
// a connection that did not send its key.

import { connect } from 'node:net';
import fc from 'fast-check';
import { parseMessage, type ToTarget } from '../../src/features/saverestore/migrate-protocol.ts';
import { StreamGate } from '../../src/features/saverestore/migrate-stream.ts';
import { type FuzzTarget, invariant } from '../target.ts';
import { CONFIG, checkTransfer, cleanRefusal, importStore, META, STORE } from './transfer.ts';

async function gate(bytes: Buffer): Promise<void> {
  const g = await StreamGate.open({ bindHost: '127.0.0.1', peer: '127.0.0.1' });
  let accepted = false;
  g.accepted.then(
    () => {
      accepted = true;
    },
    () => undefined,
  );
  await new Promise<void>((resolve) => {
    const s = connect(g.port, '127.0.0.1', () => {
      s.end(bytes);
    });
    s.on('error', () => resolve());
    s.on('close', () => resolve());
    // The gate keeps a connection that sent a short key until its timeout: do not wait for that.
    setTimeout(() => {
      s.destroy();
      resolve();
    }, 30);
  });
  g.close();
  await new Promise((r) => setImmediate(r));
  invariant(!accepted, 'the stream gate let through a connection without the key');
}

export function target(): FuzzTarget {
  const prepare = (over: Record<string, unknown> = {}) =>
    JSON.stringify({ type: 'prepare', config: CONFIG, meta: META, paused: false, ...over });
  return {
    name: 'migrate',
    about: 'migration control messages (prepare/go/abort) through the target checks, and stream-gate keys',
    files: [
      'src/features/saverestore/migrate-protocol.ts',
      'src/features/saverestore/migrate-stream.ts',
      'src/features/saverestore/domain-transfer.ts',
      'src/store/snapshot.ts',
    ],
    maxLen: 4096,
    timeoutMs: 3000,
    dict: [
      '"type":"prepare"',
      '"type":"go"',
      '"type":"abort"',
      '"config":',
      '"meta":',
      '"store":',
      '"maxmem":4096',
      '"targetMiB":0',
      '"accel":"kvm"',
      '"cpu":"host,+x"',
      'null',
      '[]',
      '{}',
    ],
    generate: fc
      .oneof(
        fc.constantFrom(
          prepare(),
          JSON.stringify({ type: 'go', store: STORE, console: '' }),
          JSON.stringify({ type: 'abort', reason: 'x' }),
        ),
        fc.record({ k: fc.constantFrom('config', 'meta'), v: fc.jsonValue() }).map(({ k, v }) => prepare({ [k]: v })),
        fc
          .record({ k: fc.constantFrom(...Object.keys(META)), v: fc.jsonValue() })
          .map(({ k, v }) => prepare({ meta: { ...META, [k]: v } })),
      )
      .map((s) => new Uint8Array(Buffer.concat([Buffer.from([0]), Buffer.from(s)]))),
    async run(data) {
      const body = data.subarray(1);
      if ((data[0] ?? 0) & 1) {
        await gate(body);
        return;
      }
      const m = parseMessage<ToTarget>(body);
      if (!m) return;
      try {
        if (m.type === 'prepare') checkTransfer(m.config, m.meta);
        else if (m.type === 'go' && m.store !== undefined && m.store !== null) importStore(m.store);
      } catch (e) {
        if (!cleanRefusal(e)) throw e;
      }
    },
  };
}
