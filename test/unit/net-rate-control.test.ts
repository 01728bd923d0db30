// Rate limits over the switch's control socket, as xenoded sends them: with a
// port, changed at runtime, per sponsor, read back in stats; and control
// messages that are malformed, invalid or oversized, which must change nothing
// and must not take the switch down.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CONTROL_VERSION,
  type HelloResult,
  type RateSpec,
  type SwitchStats,
  type VifPortSpec,
} from '../../src/net/control-protocol.ts';
import { SwitchClient } from '../../src/net/switch-client.ts';

const dir = mkdtempSync(join(tmpdir(), 'xn-rc-'));
const MAIN = new URL('../../src/net/switch-main.ts', import.meta.url).pathname;
const ctl = join(dir, 'ctl.sock');
let child: ChildProcess;
let c: SwitchClient;
let qemu: Server;

const port = (n: number, rate?: unknown): VifPortSpec => ({
  id: `d${n}.0`,
  domid: n,
  devid: 0,
  sponsor: 'alice',
  mac: `00:16:3e:00:00:0${n}`,
  path: join(dir, 'q.sock'),
  ...(rate === undefined ? {} : { rate: rate as RateSpec }),
});

async function stats(): Promise<SwitchStats> {
  return c.call<SwitchStats>({ op: 'stats' });
}

/** Send raw bytes on a fresh control connection; resolves with what came back before it closed or went quiet. */
function raw(data: string | Buffer, quietMs = 300): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s: Socket = createConnection({ path: ctl });
    let text = '';
    let closed = false;
    let t: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(t);
      s.destroy();
      resolve({ text, closed });
    };
    const quiet = () => {
      clearTimeout(t);
      t = setTimeout(done, quietMs);
    };
    s.on('data', (d: Buffer) => {
      text += d.toString();
      quiet();
    });
    s.on('error', () => {});
    s.on('close', () => {
      closed = true;
      done();
    });
    s.on('connect', () => {
      s.write(data, () => quiet());
    });
  });
}

before(async () => {
  qemu = createServer(() => {});
  await new Promise<void>((r) => qemu.listen(join(dir, 'q.sock'), () => r()));
  child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--control', ctl, '--idle-exit', '600'], {
    stdio: 'ignore',
  });
  for (let i = 0; i < 400 && !c; i++) {
    const x = await SwitchClient.connect(ctl, 500).catch(() => undefined);
    if (x) c = x;
    else await new Promise((r) => setTimeout(r, 25));
  }
  assert.ok(c, 'switch control socket');
});

after(() => {
  c?.close();
  child?.kill('SIGKILL');
  qemu?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('rate limits over the control socket', () => {
  it('speaks control version 3 (rate limits) or later', async () => {
    assert.ok(CONTROL_VERSION >= 3);
    assert.equal((await c.call<HelloResult>({ op: 'hello' })).version, CONTROL_VERSION);
  });

  it('takes a port with its rate, changes and clears it at runtime, and reports the rate in force', async () => {
    await c.call({ op: 'add-port', port: port(1, { bytesPerSec: 1_000_000, intervalUs: 20_000 }) });
    let p = (await stats()).ports.find((x) => x.id === 'd1.0');
    assert.deepEqual(p?.rate, { bytesPerSec: 1_000_000, intervalUs: 20_000 });
    assert.equal(p?.counters.rateHolds, 0);
    await c.call({ op: 'set-rate', portId: 'd1.0', rate: { bytesPerSec: 125_000, intervalUs: 50_000 } });
    p = (await stats()).ports.find((x) => x.id === 'd1.0');
    assert.deepEqual(p?.rate, { bytesPerSec: 125_000, intervalUs: 50_000 });
    // A daemon re-adding the port (after its restart) states the rate again; none means none.
    await c.call({ op: 'add-port', port: port(1) });
    p = (await stats()).ports.find((x) => x.id === 'd1.0');
    assert.equal(p?.rate, undefined);
    await c.call({ op: 'set-rate', portId: 'd1.0', rate: { bytesPerSec: 5000, intervalUs: 50_000 } });
    await c.call({ op: 'set-rate', portId: 'd1.0', rate: null });
    assert.equal((await stats()).ports.find((x) => x.id === 'd1.0')?.rate, undefined);
  });

  it('refuses a rate for a port it does not have', async () => {
    await assert.rejects(
      c.call({ op: 'set-rate', portId: 'd9.0', rate: { bytesPerSec: 5000, intervalUs: 50_000 } }),
      /no port d9\.0/,
    );
  });

  it('keeps per-sponsor aggregates, replaced one sponsor at a time', async () => {
    await c.call({ op: 'sponsor-rate', sponsor: 'alice', rate: { bytesPerSec: 12_500_000, intervalUs: 50_000 } });
    await c.call({ op: 'sponsor-rate', sponsor: 'bob', rate: { bytesPerSec: 1000, intervalUs: 50_000 } });
    assert.deepEqual((await stats()).sponsorRates, [
      { sponsor: 'alice', rate: { bytesPerSec: 12_500_000, intervalUs: 50_000 } },
      { sponsor: 'bob', rate: { bytesPerSec: 1000, intervalUs: 50_000 } },
    ]);
    await c.call({ op: 'sponsor-rate', sponsor: 'bob', rate: null });
    assert.deepEqual(
      (await stats()).sponsorRates.map((r) => r.sponsor),
      ['alice'],
    );
  });

  it('refuses invalid rates and changes nothing', async () => {
    await c.call({ op: 'set-rate', portId: 'd1.0', rate: { bytesPerSec: 5000, intervalUs: 50_000 } });
    const bad: unknown[] = [
      { bytesPerSec: 0, intervalUs: 50_000 },
      { bytesPerSec: -5, intervalUs: 50_000 },
      { bytesPerSec: '5000', intervalUs: 50_000 },
      { bytesPerSec: 5000 },
      { bytesPerSec: 5000, intervalUs: 0 },
      { bytesPerSec: 2 ** 60, intervalUs: 1 },
      [],
      'fast',
    ];
    for (const rate of bad) {
      await assert.rejects(c.call({ op: 'set-rate', portId: 'd1.0', rate } as never), /rate/, JSON.stringify(rate));
      await assert.rejects(c.call({ op: 'sponsor-rate', sponsor: 'alice', rate } as never), /rate/);
      await assert.rejects(c.call({ op: 'add-port', port: port(2, rate) } as never), /rate/);
    }
    await assert.rejects(c.call({ op: 'sponsor-rate', sponsor: 7, rate: null } as never), /sponsor/);
    const st = await stats();
    assert.deepEqual(st.ports.find((x) => x.id === 'd1.0')?.rate, { bytesPerSec: 5000, intervalUs: 50_000 });
    assert.equal(
      st.ports.find((x) => x.id === 'd2.0'),
      undefined,
      'no port made from a bad request',
    );
    assert.deepEqual(st.sponsorRates, [{ sponsor: 'alice', rate: { bytesPerSec: 12_500_000, intervalUs: 50_000 } }]);
  });

  it('answers malformed lines and unknown or incomplete requests with an error', async () => {
    const r = await raw('this is not json\n{"id":5,"op":"launch-missiles"}\n{"id":6,"op":"set-rate"}\n[1,2]\n');
    const replies = r.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: number; ok: boolean; error?: string });
    assert.equal(replies.length, 4, r.text);
    assert.ok(replies.every((x) => x.ok === false));
    assert.match(replies.find((x) => x.id === 5)?.error ?? '', /unknown op/);
    assert.match(replies.find((x) => x.id === 6)?.error ?? '', /portId/);
    assert.equal(r.closed, false, 'the connection stays usable');
    assert.ok((await c.call<HelloResult>({ op: 'hello' })).pid, 'the switch is fine');
  });

  it('drops a client that sends an oversized line, and carries on for the others', async () => {
    const r = await raw(Buffer.alloc(2 * 1024 * 1024, 'x'), 2000);
    assert.equal(r.closed, true, 'closed by the switch');
    assert.match(r.text, /too long/);
    assert.equal((await c.call<HelloResult>({ op: 'hello' })).pid, child.pid);
    const st = await stats();
    assert.deepEqual(st.ports.find((x) => x.id === 'd1.0')?.rate, { bytesPerSec: 5000, intervalUs: 50_000 });
  });
});
