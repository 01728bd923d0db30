// Guest crashes and QEMUs lost while no daemon watched (issue 14). Real guests:
// a kernel panic reaches on_crash within a second; on daemon start a QEMU found
// panicked or dead gets on_crash, one it can no longer control is killed, never
// left running untracked; a restart that cannot start QEMU ends in crashed.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ensureDefaultGuest } from '../guest/build.ts';
import { QmpClient } from '../src/engine/qmp.ts';
import { type ConsoleSession, TestHost } from './helpers/host.ts';

/** The bound the issue asks for: from the panic on the console to on_crash's outcome. */
const PANIC_TO_ACTION_MS = 1000;
const PANIC_LINE = /Kernel panic - not syncing/;
const PANIC_CMD = 'echo c > /proc/sysrq-trigger\n';

let host: TestHost;
before(async () => {
  await ensureDefaultGuest();
  host = new TestHost();
});
after(async () => {
  await host.cleanup();
});

interface ViewLite {
  domid: number;
  name: string;
  state: string;
  startTime: number;
  pid?: number;
}
type LiveMsg =
  | { type: 'snapshot'; domains: ViewLite[] }
  | { type: 'change'; domain: ViewLite }
  | { type: 'gone'; domid: number }
  | { type: 'sample' };

/** The daemon's /v1/events stream, each message stamped with when it arrived. */
class EventLog {
  readonly seen: Array<{ at: number; msg: LiveMsg }> = [];
  private waiters: Array<() => void> = [];

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => {
      this.seen.push({ at: performance.now(), msg: JSON.parse(d.toString()) as LiveMsg });
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Opened once the snapshot of the current domains is in. */
  static async open(h: TestHost): Promise<EventLog> {
    const ws = new WebSocket(`ws+unix://${h.socket}:/v1/events`);
    const log = new EventLog(ws);
    await new Promise((resolve, reject) => {
      ws.once('error', reject);
      ws.once('open', resolve);
    });
    await log.waitFor((m) => m.type === 'snapshot', 10_000);
    return log;
  }

  /** The first message from index `from` on that satisfies `pred`, with its arrival time. */
  async waitFor(pred: (m: LiveMsg) => boolean, timeoutMs: number, from = 0): Promise<{ at: number; msg: LiveMsg }> {
    const deadline = Date.now() + timeoutMs;
    for (let i = from; ; ) {
      for (; i < this.seen.length; i++) if (pred(this.seen[i].msg)) return this.seen[i];
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching event within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  view(domid: number): ViewLite | undefined {
    let v: ViewLite | undefined;
    for (const { msg } of this.seen) {
      if (msg.type === 'snapshot') v = msg.domains.find((d) => d.domid === domid) ?? v;
      else if (msg.type === 'change' && msg.domain.domid === domid) v = msg.domain;
    }
    return v;
  }

  close(): void {
    this.ws.close();
  }
}

async function row(name: string): Promise<string | undefined> {
  return (await host.ok(['list'])).split('\n').find((l) => l.startsWith(`${name} `));
}

async function domid(name: string): Promise<number> {
  return Number((await host.ok(['domid', name])).trim());
}

/** Alive and not a zombie. */
function running(pid: number): boolean {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    return state !== undefined && state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Every live QEMU started for domid `id` of this host, found by its command line. */
function qemusOf(id: number): number[] {
  const out: number[] = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const cmd = readFileSync(`/proc/${ent}/cmdline`, 'utf8');
      if (cmd.includes(`${host.dir}/domains/${id}/`) && running(Number(ent))) out.push(Number(ent));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Ready lines in a domain's console log, which every QEMU of its run directory appends to. */
function readyLines(id: number): number {
  try {
    return (
      readFileSync(join(host.dir, 'domains', String(id), 'console.log'), 'latin1').split('XENODE-READY').length - 1
    );
  } catch {
    return 0;
  }
}

async function until(pred: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function createReady(name: string, extra = ''): Promise<{ id: number; con: ConsoleSession }> {
  await host.ok(['create', host.writeConfig(`${name}.cfg`, `name="${name}"\nmemory=128\n${extra}`)]);
  const con = await host.console(name);
  await con.expect(new RegExp(`${name}:/# `));
  return { id: await domid(name), con };
}

/** Panic the guest from its console; resolves when the panic line arrives, with its time. */
async function panic(con: ConsoleSession): Promise<{ at: number; mark: number }> {
  const mark = con.output.length;
  con.send(PANIC_CMD);
  await con.expect(PANIC_LINE, 30_000, mark);
  return { at: performance.now(), mark };
}

async function killDaemon(): Promise<void> {
  const pid = host.daemonPid();
  assert.ok(pid);
  host.killDaemon('SIGKILL');
  await until(() => !running(pid), 'the daemon to die');
}

/** Talk to a guest's serial port directly, as no daemon holds it. */
function serialOf(id: number): Promise<{ sock: Socket; text: () => string }> {
  return new Promise((resolve, reject) => {
    let text = '';
    const sock = createConnection({ path: join(host.dir, 'domains', String(id), 'serial.sock') });
    sock.on('data', (d) => {
      text += d.toString('latin1');
    });
    sock.once('error', reject);
    sock.once('connect', () => resolve({ sock, text: () => text }));
  });
}

/** Panic a guest while no daemon runs; resolves once QEMU says the guest panicked. */
async function panicUnwatched(id: number): Promise<void> {
  const serial = await serialOf(id);
  serial.sock.write(PANIC_CMD);
  await until(() => PANIC_LINE.test(serial.text()), `domain ${id} to panic`);
  serial.sock.destroy();
  const qmp = new QmpClient(join(host.dir, 'domains', String(id), 'qmp.sock'));
  await qmp.connect({ timeoutMs: 5000 });
  try {
    await until(
      async () => (await qmp.execute<{ status: string }>('query-status')).status === 'guest-panicked',
      `QEMU of domain ${id} to report the panic`,
    );
  } finally {
    qmp.close();
  }
}

describe('a guest kernel panic applies on_crash', () => {
  it('on_crash="destroy": the domain is gone within a second of the panic', async (t) => {
    const { id, con } = await createReady('pd', 'on_crash="destroy"\n');
    const [qemu] = qemusOf(id);
    assert.ok(qemu);
    const events = await EventLog.open(host);
    const p = await panic(con);
    const gone = await events.waitFor((m) => m.type === 'gone' && m.domid === id, 15_000);
    t.diagnostic(`panic line -> gone: ${Math.round(gone.at - p.at)} ms`);
    assert.ok(gone.at - p.at < PANIC_TO_ACTION_MS, `gone ${Math.round(gone.at - p.at)} ms after the panic line`);
    assert.equal(await row('pd'), undefined);
    assert.ok(!running(qemu), 'its QEMU is gone');
    assert.match(await host.ok(['dmesg']), /guest crashed: guest panic/);
    events.close();
    con.close();
  });

  it('on_crash="restart": a fresh boot within a second of the panic, same domid, new start time', async (t) => {
    const { id, con } = await createReady('pr', 'on_crash="restart"\n');
    const events = await EventLog.open(host);
    const before = events.view(id);
    assert.ok(before);
    const panickedAt = Date.now();
    const p = await panic(con);
    const restarted = await events.waitFor(
      (m) =>
        m.type === 'change' &&
        m.domain.domid === id &&
        m.domain.state === 'running' &&
        m.domain.startTime > before.startTime,
      15_000,
    );
    t.diagnostic(`panic line -> running again: ${Math.round(restarted.at - p.at)} ms`);
    assert.ok(
      restarted.at - p.at < PANIC_TO_ACTION_MS,
      `running again ${Math.round(restarted.at - p.at)} ms after the panic line`,
    );
    await con.expect(/XENODE-READY/, 60_000, p.mark);
    assert.match((await row('pr')) ?? '', new RegExp(`^pr\\s+${id}\\s.*\\s(r-----|-b----)\\s`));
    // xl's uptime counts from the restart, not from the create.
    const hms = (await host.ok(['uptime', 'pr'])).match(/\s(\d+):(\d+):(\d+)\s*$/m);
    assert.ok(hms);
    const up = Number(hms[1]) * 3600 + Number(hms[2]) * 60 + Number(hms[3]);
    assert.ok(up <= (Date.now() - panickedAt) / 1000 + 1, `uptime ${up} s counts from the restart`);
    events.close();
    con.close();
  });

  it('on_crash="preserve": crashed, QEMU kept for inspection, destroy removes it', async (t) => {
    const { id, con } = await createReady('pp', 'on_crash="preserve"\n');
    const [qemu] = qemusOf(id);
    assert.ok(qemu);
    const events = await EventLog.open(host);
    const p = await panic(con);
    const crashed = await events.waitFor(
      (m) => m.type === 'change' && m.domain.domid === id && m.domain.state === 'crashed',
      15_000,
    );
    t.diagnostic(`panic line -> crashed: ${Math.round(crashed.at - p.at)} ms`);
    assert.ok(
      crashed.at - p.at < PANIC_TO_ACTION_MS,
      `crashed ${Math.round(crashed.at - p.at)} ms after the panic line`,
    );
    assert.match((await row('pp')) ?? '', /\s---sc-\s/);
    assert.equal((await host.ok(['store', 'read', `/local/domain/${id}/state`])).trim(), 'crashed');
    assert.ok(running(qemu), 'QEMU kept for inspection');
    await host.ok(['destroy', 'pp']);
    assert.equal(await row('pp'), undefined);
    await until(() => !running(qemu), 'the preserved QEMU to go');
    events.close();
    con.close();
  });

  it('on_crash="coredump-destroy": a core file in the dump directory, then the domain is gone', async () => {
    const { id, con } = await createReady('pcd', 'on_crash="coredump-destroy"\n');
    const events = await EventLog.open(host);
    await panic(con);
    await events.waitFor((m) => m.type === 'gone' && m.domid === id, 60_000);
    const dumpDir = join(host.dir, 'dump');
    const cores = existsSync(dumpDir) ? readdirSync(dumpDir).filter((f) => /^pcd-\d+\.core$/.test(f)) : [];
    assert.equal(cores.length, 1, `core files: ${cores.join(', ')}`);
    const core = join(dumpDir, cores[0]);
    assert.equal(readFileSync(core).subarray(0, 4).toString('latin1'), '\x7fELF');
    assert.ok(statSync(core).size >= 128 * 1024 * 1024 * 0.9, 'the guest memory is in it');
    rmSync(core);
    assert.equal(await row('pcd'), undefined);
    events.close();
    con.close();
  });

  for (const machine of ['pc', 'microvm']) {
    it(`machine="${machine}" reports a panic too (pvpanic on every machine)`, async (t) => {
      const name = `p${machine}`;
      const { id, con } = await createReady(name, `machine="${machine}"\non_crash="preserve"\n`);
      const events = await EventLog.open(host);
      const p = await panic(con);
      const crashed = await events.waitFor(
        (m) => m.type === 'change' && m.domain.domid === id && m.domain.state === 'crashed',
        15_000,
      );
      t.diagnostic(`panic line -> crashed: ${Math.round(crashed.at - p.at)} ms`);
      assert.ok(crashed.at - p.at < PANIC_TO_ACTION_MS);
      await host.ok(['destroy', name]);
      events.close();
      con.close();
    });
  }
});

describe('daemon start catches up on what happened while it was down', () => {
  it('a guest that panicked meanwhile gets on_crash: restart boots it again, destroy removes it', async () => {
    const r = await createReady('lr', 'on_crash="restart"\n');
    const d = await createReady('ld', 'on_crash="destroy"\n');
    r.con.close();
    d.con.close();
    const [dQemu] = qemusOf(d.id);
    await killDaemon();
    await panicUnwatched(r.id);
    await panicUnwatched(d.id);
    assert.equal((await host.xl(['list'])).code, 0);
    assert.equal(await row('ld'), undefined, 'destroyed on start');
    assert.ok(!running(dQemu), 'and its QEMU is gone');
    assert.match((await row('lr')) ?? '', new RegExp(`^lr\\s+${r.id}\\s.*\\s(r-----|-b----)\\s`));
    const con = await host.console('lr');
    // Booted again: its ready line before the panic, then the new boot's. (What the guest
    // printed while no daemon ran is not in the console log: docs/web.md, "Console log".)
    await con.expect(/XENODE-READY[\s\S]*XENODE-READY/, 60_000);
    con.close();
  });

  it('a QEMU that died meanwhile gets on_crash: restart relaunches it under its domid, destroy removes it', async () => {
    const r = await createReady('dr', 'on_crash="restart"\n');
    const d = await createReady('dd', 'on_crash="destroy"\n');
    r.con.close();
    d.con.close();
    const [rQemu] = qemusOf(r.id);
    const [dQemu] = qemusOf(d.id);
    assert.ok(rQemu && dQemu);
    assert.equal(readyLines(r.id), 1);
    await killDaemon();
    process.kill(rQemu, 'SIGKILL');
    process.kill(dQemu, 'SIGKILL');
    await until(() => !running(rQemu) && !running(dQemu), 'the QEMUs to die');
    assert.equal((await host.xl(['list'])).code, 0);
    assert.equal(await row('dd'), undefined);
    assert.match((await row('dr')) ?? '', new RegExp(`^dr\\s+${r.id}\\s`));
    const now = qemusOf(r.id);
    assert.equal(now.length, 1, 'one new QEMU');
    assert.notEqual(now[0], rQemu);
    await until(() => readyLines(r.id) === 2, 'the relaunched guest to boot', 60_000);
    assert.match(await host.ok(['dmesg']), /QEMU for dr .*gone/);
  });

  it('a live QEMU whose run directory or QMP socket is gone is killed, never left running untracked', async () => {
    const lost = await createReady('lostdir', 'on_crash="destroy"\n');
    const sock = await createReady('lostsock', 'on_crash="restart"\n');
    lost.con.close();
    sock.con.close();
    const [lostQemu] = qemusOf(lost.id);
    const [sockQemu] = qemusOf(sock.id);
    assert.ok(lostQemu && sockQemu);
    assert.equal(readyLines(sock.id), 1);
    await killDaemon();
    rmSync(join(host.dir, 'domains', String(lost.id)), { recursive: true, force: true });
    rmSync(join(host.dir, 'domains', String(sock.id), 'qmp.sock'));
    assert.equal((await host.xl(['list'])).code, 0);
    assert.ok(!running(lostQemu), 'the QEMU without a run directory is killed');
    assert.ok(!running(sockQemu), 'the QEMU without a QMP socket is killed');
    assert.deepEqual(qemusOf(lost.id), [], 'nothing runs for the destroyed domain');
    assert.equal(await row('lostdir'), undefined);
    // on_crash="restart": a new, controllable QEMU under the same domid.
    assert.match((await row('lostsock')) ?? '', new RegExp(`^lostsock\\s+${sock.id}\\s`));
    assert.equal(qemusOf(sock.id).length, 1, host.logTail());
    const log = await host.ok(['dmesg']);
    assert.match(log, new RegExp(`QEMU for lostdir \\(pid ${lostQemu}\\) .*killed`));
    assert.match(log, new RegExp(`QEMU for lostsock \\(pid ${sockQemu}\\) .*killed`));
    await until(() => readyLines(sock.id) === 2, 'the relaunched guest to boot', 60_000);
    await host.ok(['destroy', 'lostsock']);
  });
});

describe('a restart that fails or is cut short', () => {
  it('ends in crashed, not running without a QEMU; destroy removes it', async () => {
    // A QEMU that starts once, then fails while the flag file exists.
    const flag = join(host.dir, 'qemu-fails');
    const wrapper = join(host.dir, 'qemu-wrapper');
    writeFileSync(
      wrapper,
      `#!/bin/sh\nif [ -e '${flag}' ]; then echo 'qemu-system-x86_64: simulated start failure' >&2; exit 1; fi\nexec qemu-system-x86_64 "$@"\n`,
      { mode: 0o755 },
    );
    const { id, con } = await createReady('fr', `on_crash="restart"\ndevice_model_override="${wrapper}"\n`);
    con.close();
    const [qemu] = qemusOf(id);
    assert.ok(qemu);
    const events = await EventLog.open(host);
    writeFileSync(flag, '');
    process.kill(qemu, 'SIGKILL');
    await events.waitFor((m) => m.type === 'change' && m.domain.domid === id && m.domain.state === 'crashed', 30_000);
    assert.match((await row('fr')) ?? '', /\s---sc-\s/);
    assert.deepEqual(qemusOf(id), [], 'no QEMU');
    assert.equal((await host.ok(['store', 'read', `/local/domain/${id}/state`])).trim(), 'crashed');
    assert.match(await host.ok(['dmesg']), /restart failed/);
    await host.ok(['destroy', 'fr']);
    assert.equal(await row('fr'), undefined);
    events.close();
  });

  it('a restart cut short by the daemon dying (its new QEMU never ran the guest) is done over on start', async () => {
    // The second QEMU's start kills the daemon first, as a crash mid-restart would.
    const flag = join(host.dir, 'kill-daemon');
    const wrapper = join(host.dir, 'qemu-killer');
    writeFileSync(
      wrapper,
      `#!/bin/sh\nif [ -e '${flag}' ]; then rm -f '${flag}'; kill -9 $(cat '${join(host.dir, 'xenoded.pid')}'); fi\nexec qemu-system-x86_64 "$@"\n`,
      { mode: 0o755 },
    );
    const { id, con } = await createReady('cut', `on_crash="restart"\ndevice_model_override="${wrapper}"\n`);
    con.close();
    const [qemu] = qemusOf(id);
    assert.ok(qemu);
    const daemon = host.daemonPid();
    assert.ok(daemon);
    writeFileSync(flag, '');
    process.kill(qemu, 'SIGKILL');
    await until(() => !running(daemon), 'the daemon to die mid-restart');
    const qmpSock = join(host.dir, 'domains', String(id), 'qmp.sock');
    await until(() => existsSync(qmpSock) && qemusOf(id).some((p) => p !== qemu), 'the new QEMU to listen');
    assert.equal(readyLines(id), 1, 'the new QEMU waits at -S');
    assert.equal((await host.xl(['list'])).code, 0);
    await until(() => readyLines(id) === 2, 'the guest to boot again', 60_000);
    assert.equal(qemusOf(id).length, 1, 'one QEMU for the domain');
    assert.match((await row('cut')) ?? '', new RegExp(`^cut\\s+${id}\\s.*\\s(r-----|-b----)\\s`));
    assert.match(await host.ok(['dmesg']), /restart was cut short/);
    await host.ok(['destroy', 'cut']);
  });
});
