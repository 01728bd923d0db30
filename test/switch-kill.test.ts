// Restartable backends, the network half (issue 18): a TCP transfer between
// two real guests over Xenode's switch survives the switch process being
// SIGKILLed in the middle of it, more than once. The supervisor starts a new
// switch, which reconnects to every QEMU's stream netdev; TCP retransmits what
// was dropped meanwhile, and the receiver ends with every byte, checksum
// matching, on the connection it started with.
//
// The transfer is paced by the sender's vif rate= (enforced by the switch), so
// it lasts long enough to be cut at known points. The test kills the switch
// XENODE_SWITCH_KILLS times (default 2) in one transfer.

import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import type { NetStatus } from '../src/features/network/manager.ts';
import { type ConsoleSession, TestHost } from './helpers/host.ts';

const KILLS = Number(process.env.XENODE_SWITCH_KILLS ?? 2);
const NET = '10.234.0';
/** 2 MiB at the sender's 1 Mb/s: about 17 s on the wire, long enough to cut twice. */
const KIB = 2048;
const TOTAL = KIB * 1024;
const RATE = process.env.XENODE_SWITCH_KILL_RATE ?? '1Mb/s';

let host: TestHost;
const cons = new Map<string, ConsoleSession>();

function api<T>(path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: host.socket, path, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolve(JSON.parse(body) as T));
    });
    req.on('error', reject);
    req.end();
  });
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function con(name: string): ConsoleSession {
  const c = cons.get(name);
  assert.ok(c, `no console for ${name}`);
  return c;
}

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost();
  // k2 sends, paced by its vif's rate=; k1 receives.
  for (const [name, vif] of [
    ['k1', `ip=${NET}.11`],
    ['k2', `ip=${NET}.12,rate=${RATE}`],
  ] as const) {
    const cfg = host.writeConfig(`${name}.cfg`, `name = "${name}"\nmemory = 256\nvif = ['${vif}']\n`);
    const r = await host.xl(['create', cfg]);
    assert.equal(r.code, 0, r.stderr);
  }
  await Promise.all(
    ['k1', 'k2'].map(async (name) => {
      const c = await host.console(name);
      await c.expect(/XENODE-READY/, 180_000);
      await c.expect(new RegExp(`${name}:/# `), 60_000);
      cons.set(name, c);
    }),
  );
});

after(async () => {
  for (const c of cons.values()) c.close();
  await host?.cleanup();
});

describe('the switch killed during a TCP transfer between two guests', () => {
  it(`the transfer completes with the right bytes across ${KILLS} SIGKILL(s) of the switch`, async (t) => {
    const sum = await con('k2').run(`dd if=/dev/urandom of=/tmp/f bs=1k count=${KIB} 2>/dev/null; md5sum < /tmp/f`);
    assert.match(sum, /^[0-9a-f]{32}\s/);
    // The receiver is `nc -e dd`, the socket on dd's stdin: a backgrounded `nc -l > file` reads
    // the tty (and is stopped by SIGTTIN), or with </dev/null closes the connection at that EOF.
    const listen = await con('k1').run(
      'rm -f /tmp/r /tmp/done; (nc -l -p 7100 -e dd of=/tmp/r bs=64k; echo $? > /tmp/done) >/dev/null 2>&1 & ' +
        'for i in $(seq 300); do netstat -ltn | grep -q ":7100 " && break; sleep 0.1; done; ' +
        'netstat -ltn | grep -q ":7100 " && echo LISTENING',
      60_000,
    );
    assert.equal(listen, 'LISTENING', 'the receiver listens');
    // The file on nc's stdin, as network.test.ts does; nc backgrounded so the console stays free.
    await con('k2').run(`rm -f /tmp/sent; (nc ${NET}.11 7100 < /tmp/f; echo $? > /tmp/sent) >/dev/null 2>&1 & true`);
    const received = async () =>
      Number(/BYTES=(\d+)/.exec(await con('k1').run('echo BYTES=$(wc -c < /tmp/r 2>/dev/null || echo 0)'))?.[1] ?? -1);
    const atKill: number[] = [];
    let restarts = (await api<NetStatus>('/v1/net')).switch.restarts;
    for (let k = 0; k < KILLS; k++) {
      // Cut at (k+1)/(KILLS+2) of the bytes, so every kill falls inside the transfer.
      const mark = Math.floor((TOTAL * (k + 1)) / (KILLS + 2));
      let seen = 0;
      await until(
        `${mark} bytes received`,
        async () => {
          seen = await received();
          return seen >= mark ? true : undefined;
        },
        120_000,
      ).catch(async (e: unknown) => {
        const why = await con('k2').run('cat /tmp/sent 2>/dev/null; netstat -tn | grep 7100');
        throw new Error(`${(e as Error).message} (${seen} received; sender: ${why})`);
      });
      const before = await api<NetStatus>('/v1/net');
      assert.ok(before.switch.pid, 'the switch runs');
      process.kill(before.switch.pid, 'SIGKILL');
      atKill.push(seen);
      await until(
        `switch restart ${k + 1}`,
        async () => {
          const s = await api<NetStatus>('/v1/net');
          return s.switch.running && s.switch.pid !== before.switch.pid ? true : undefined;
        },
        30_000,
      );
      // Still short of the end after the new switch is up: the kill cut the transfer.
      const afterRestart = await received();
      assert.ok(afterRestart < TOTAL, `kill ${k + 1} fell inside the transfer (${afterRestart} of ${TOTAL} bytes)`);
      const now = (await api<NetStatus>('/v1/net')).switch.restarts;
      assert.equal(now, restarts + 1, 'the supervisor counted the restart');
      restarts = now;
    }
    // Job notices of the guest's shell may share the console's output: match the line itself.
    const status = async (name: string, file: string) =>
      /STATUS=(\d+)/.exec(await con(name).run(`test -e ${file} && echo STATUS=$(cat ${file})`))?.[1];
    const done = await until('the receiver to finish', () => status('k1', '/tmp/done'), 180_000).catch(
      async (e: unknown) => {
        throw new Error(`${(e as Error).message} (${await received()} of ${TOTAL} bytes received)`);
      },
    );
    assert.equal(done, '0', 'the receiver saw no error');
    assert.equal(await status('k2', '/tmp/sent'), '0', 'the sender saw no error');
    assert.equal(await received(), TOTAL, 'every byte arrived');
    assert.equal(/[0-9a-f]{32}/.exec(await con('k1').run('md5sum < /tmp/r'))?.[0], sum.slice(0, 32), 'the same bytes');
    t.diagnostic(`switch killed at ${atKill.join(', ')} of ${TOTAL} bytes; the transfer completed intact`);
  });
});
