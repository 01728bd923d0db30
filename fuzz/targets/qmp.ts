// QMP replies and events (what a QEMU process, possibly one a guest took over,
// writes on its monitor socket) into the real QmpClient over a Unix socket: the
// input is everything the "QEMU" side sends after accepting, then it hangs up.
// Invariants: connect/execute end in QmpError or QmpConnectionError, never an
// exception thrown out of the socket's data handler (it would kill xenoded).

import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import fc from 'fast-check';
import { QmpClient, QmpConnectionError, QmpError } from '../../src/engine/qmp.ts';
import type { FuzzTarget } from '../target.ts';

export const GREETING =
  '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}\n';

export function target(): FuzzTarget {
  const dir = mkdtempSync(join('/dev/shm', 'xenode-fuzz-qmp-'));
  const path = join(dir, 'qmp.sock');
  let next = Buffer.alloc(0);
  let server: Server | undefined;
  const listening = new Promise<void>((resolve) => {
    server = createServer((s) => {
      s.on('error', () => undefined);
      s.end(next);
    });
    server.listen(path, () => resolve());
  });
  const clean = (e: unknown) => e instanceof QmpError || e instanceof QmpConnectionError;
  const line = (v: unknown) => `${JSON.stringify(v)}\n`;
  return {
    name: 'qmp',
    about:
      'QMP greeting, replies and events into QmpClient: only QmpError/QmpConnectionError, nothing thrown from the socket handler',
    files: ['src/engine/qmp.ts'],
    maxLen: 4096,
    timeoutMs: 2000,
    dict: [
      GREETING,
      '{"return": {}, "id": 1}\n',
      '{"return": {"status": "running"}, "id": 2}\n',
      '{"error": {"class": "GenericError", "desc": "x"}, "id": 2}\n',
      '{"event": "SHUTDOWN", "data": {"guest": true}}\n',
      '{"QMP": null}\n',
      'null\n',
      '\n',
      '"id"',
      '"return"',
      '"error"',
      '"event"',
      '[]',
      '{}',
      '2',
    ],
    generate: fc
      .array(
        fc.oneof(
          fc.constant(GREETING),
          fc.jsonValue().map(line),
          fc.record({ id: fc.oneof(fc.constant(1), fc.constant(2), fc.jsonValue()), return: fc.jsonValue() }).map(line),
          fc.record({ id: fc.constantFrom(1, 2), error: fc.jsonValue() }).map(line),
          fc
            .record({
              event: fc.oneof(fc.constantFrom('SHUTDOWN', 'RESET', 'STOP'), fc.jsonValue()),
              data: fc.jsonValue(),
            })
            .map(line),
        ),
        { maxLength: 6 },
      )
      .map((ls) => new Uint8Array(Buffer.from(ls.join('')))),
    async run(data) {
      await listening;
      next = Buffer.from(data);
      const c = new QmpClient(path, 100);
      c.on('event', () => undefined);
      try {
        await c.connect({ timeoutMs: 100 });
        await c.execute('query-status', undefined, 100);
      } catch (e) {
        if (!clean(e)) throw e;
      } finally {
        c.close();
      }
    },
    close() {
      server?.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
