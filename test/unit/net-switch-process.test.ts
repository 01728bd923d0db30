// The switch as a process, driven over its control socket as xenoded does,
// with fake QEMUs (Unix stream servers) as its ports.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SwitchSupervisor } from '../../src/features/network/switch.ts';
import {
  type AddPortResult,
  CONTROL_VERSION,
  type HelloResult,
  type SwitchStats,
} from '../../src/net/control-protocol.ts';
import { SwitchClient } from '../../src/net/switch-client.ts';
import { DaemonLog } from '../../src/toolstack/log.ts';
import { ethernet } from '../helpers/frames.ts';

const dir = mkdtempSync(join(tmpdir(), 'xn-sw-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const MAIN = new URL('../../src/net/switch-main.ts', import.meta.url).pathname;

function startSwitch(ctl: string, idleSeconds: number): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', MAIN, '--control', ctl, '--idle-exit', String(idleSeconds)], {
    stdio: 'ignore',
  });
}

async function connect(ctl: string): Promise<SwitchClient> {
  for (let i = 0; i < 400; i++) {
    const c = await SwitchClient.connect(ctl, 500).catch(() => undefined);
    if (c) return c;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('switch control socket did not appear');
}

function fakeQemu(path: string): Promise<{ server: Server; conns: Socket[]; data: Buffer[] }> {
  const conns: Socket[] = [];
  const data: Buffer[] = [];
  const server = createServer((s) => {
    conns.push(s);
    s.on('data', (d: Buffer) => data.push(d));
  });
  return new Promise((r) => server.listen(path, () => r({ server, conns, data })));
}

function wire(f: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(f.length);
  return Buffer.concat([h, f]);
}

describe('switch process', () => {
  it('takes ports, policy and stats over its control socket, then exits when idle', async () => {
    const ctl = join(dir, 'ctl.sock');
    const child = startSwitch(ctl, 1);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const c = await connect(ctl);
    const hello = await c.call<HelloResult>({ op: 'hello' });
    assert.equal(hello.pid, child.pid);
    assert.deepEqual(hello.ports, []);

    const q1 = await fakeQemu(join(dir, 'q1.sock'));
    const q2 = await fakeQemu(join(dir, 'q2.sock'));
    const port = (n: number, sponsor: string) => ({
      id: `d${n}.0`,
      domid: n,
      devid: 0,
      sponsor,
      mac: `00:16:3e:00:00:0${n}`,
      path: join(dir, `q${n}.sock`),
    });
    const r1 = await c.call<AddPortResult>({ op: 'add-port', port: port(1, 'a'), waitMs: 5000 }, 10_000);
    const r2 = await c.call<AddPortResult>({ op: 'add-port', port: port(2, 'b'), waitMs: 5000 }, 10_000);
    assert.ok(r1.connected && r2.connected);

    // Different sponsors: dropped and counted.
    (q1.conns[0] as Socket).write(wire(ethernet('ff:ff:ff:ff:ff:ff', '00:16:3e:00:00:01', 0x0806, [1])));
    let st = await c.call<SwitchStats>({ op: 'stats' });
    for (let i = 0; i < 100 && st.ports.find((p) => p.id === 'd1.0')?.counters.policyDrops !== 1; i++) {
      await new Promise((r) => setTimeout(r, 10));
      st = await c.call<SwitchStats>({ op: 'stats' });
    }
    assert.equal(st.ports.find((p) => p.id === 'd1.0')?.counters.policyDrops, 1);
    assert.equal(q2.data.length, 0);

    // Allowed: delivered with QEMU's framing.
    await c.call({ op: 'set-policy', allow: [['a', 'b']] });
    const f = ethernet('ff:ff:ff:ff:ff:ff', '00:16:3e:00:00:01', 0x0806, [2]);
    (q1.conns[0] as Socket).write(wire(f));
    for (let i = 0; i < 100 && q2.data.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(Buffer.concat(q2.data), wire(f));
    st = await c.call<SwitchStats>({ op: 'stats' });
    assert.deepEqual(st.allow, [['a', 'b']]);
    assert.equal(st.ports.find((p) => p.id === 'd2.0')?.counters.txPackets, 1);

    // A frame from d1.0 with d2.0's MAC as its source: dropped and counted on d1.0.
    (q1.conns[0] as Socket).write(wire(ethernet('ff:ff:ff:ff:ff:ff', '00:16:3e:00:00:02', 0x0800, [3])));
    for (let i = 0; i < 100 && st.ports.find((p) => p.id === 'd1.0')?.counters.spoofDrops !== 1; i++) {
      await new Promise((r) => setTimeout(r, 10));
      st = await c.call<SwitchStats>({ op: 'stats' });
    }
    assert.equal(st.ports.find((p) => p.id === 'd1.0')?.counters.spoofDrops, 1);
    assert.equal(Buffer.concat(q2.data).length, wire(f).length, 'd2.0 got nothing more');

    // Re-adding the same port (a reattaching daemon) keeps the link as it is.
    await c.call({ op: 'add-port', port: port(1, 'a') });
    assert.equal(q1.conns.length, 1);

    await c.call({ op: 'remove-port', portId: 'd1.0' });
    await c.call({ op: 'remove-port', portId: 'd2.0' });
    assert.deepEqual((await c.call<HelloResult>({ op: 'hello' })).ports, []);
    c.close();
    for (const q of [q1, q2]) {
      for (const s of q.conns) s.destroy();
      q.server.close();
    }
    // No daemon, no domain links: it goes away by itself and takes its socket with it.
    assert.equal(await exited, 0);
    assert.ok(!existsSync(ctl));
  });

  it('exits at once when its control socket is removed (the daemon directory was cleaned up)', async () => {
    const ctl = join(dir, 'ctl2.sock');
    const child = startSwitch(ctl, 600);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const c = await connect(ctl);
    c.close();
    rmSync(ctl);
    assert.equal(await exited, 0);
  });

  it('a daemon replaces a switch of an older version (no anti-spoofing) instead of adopting it', async () => {
    const base = mkdtempSync(join(dir, 'old-'));
    // The "old switch": a process to kill, and a control socket that says version 1.
    const old = spawn('sleep', ['600'], { stdio: 'ignore' });
    const killed = new Promise<NodeJS.Signals | null>((r) => old.once('exit', (_c, sig) => r(sig)));
    const fake = createServer((s) => {
      s.on('data', (d: Buffer) => {
        const req = JSON.parse(d.toString().split('\n')[0] as string) as { id: number };
        const hello = { pid: old.pid, startedAt: 0, version: 1, ports: [] };
        s.write(`${JSON.stringify({ id: req.id, ok: true, result: hello })}\n`);
      });
    });
    await new Promise<void>((r) => fake.listen(join(base, 'switch.sock'), () => r()));
    const log = new DaemonLog(undefined);
    const sup = new SwitchSupervisor({ base, log });
    try {
      const c = await sup.ensure();
      const hello = await c.call<HelloResult>({ op: 'hello' });
      assert.equal(hello.version, CONTROL_VERSION, 'a current switch runs now');
      assert.notEqual(hello.pid, old.pid);
      assert.equal(await killed, 'SIGKILL', 'the old one was killed');
      assert.ok(log.entries().some((e) => /older version \(1\); replacing it/.test(e.msg)));
      process.kill(hello.pid, 'SIGKILL');
    } finally {
      sup.stop();
      old.kill('SIGKILL');
      fake.close();
    }
  });
});
