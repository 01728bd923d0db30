// A QEMU that never ends a QMP line must not grow the daemon without end: the
// client drops the connection (pending commands fail) instead of buffering on.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { QmpClient } from '../../src/engine/qmp.ts';

const dir = mkdtempSync(join(tmpdir(), 'xn-qmp-'));
after(() => rmSync(dir, { recursive: true, force: true }));

it('a QMP reply that never ends its line closes the connection and fails the command', async () => {
  const path = join(dir, 'qmp.sock');
  let peer: Socket | undefined;
  const server = createServer((s) => {
    peer = s;
    s.write('{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": []}}\n');
    s.once('data', () => {
      s.write('{"return": {}, "id": 1}\n');
      s.once('data', () => {
        // 70 MiB of one unfinished line, in chunks.
        const chunk = Buffer.alloc(1 << 20, 0x61);
        let n = 0;
        const more = (): void => {
          while (n < 70 && !s.destroyed) {
            n++;
            if (!s.write(chunk)) return void s.once('drain', more);
          }
        };
        s.on('error', () => undefined);
        s.write('{"return": "');
        more();
      });
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  const q = new QmpClient(path, 60_000);
  await q.connect();
  const closed = new Promise<void>((r) => q.once('close', () => r()));
  await assert.rejects(q.execute('query-status'), /closed/);
  await closed;
  peer?.destroy();
  server.close();
});
