// Issue 19: the store channel into the guest (a virtio-serial port served as a
// guest connection of xenstored's wire protocol) and the default guest's agent:
// control/shutdown, addresses, and what a hostile guest can and cannot do.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import { type ConsoleSession, TestHost } from './helpers/host.ts';

let host: TestHost;
let con: ConsoleSession;
let domid: number;
let other: number;
const NET = '10.91.7';

interface ListLong {
  domid: number;
  guest?: { agent: boolean; ipv4: string[]; osName?: string };
}

function http(method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      { socketPath: host.socket, method, path, headers: payload ? { 'content-type': 'application/json' } : {} },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => {
          text += d.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  });
}

/** Reads a store key through the CLI; undefined when absent. */
async function storeRead(path: string): Promise<string | undefined> {
  const r = await host.xl(['store', 'read', path]);
  return r.code === 0 ? r.stdout.trim() : undefined;
}

/** Waits for the store to show `want` at `path`, through a store watch (no fixed sleep). */
async function untilKey(path: string, want: (v: string | undefined) => boolean, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (want(await storeRead(path))) return;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting on ${path}\n${host.logTail()}\n--- console ---\n${con?.output.slice(-1500)}`);
    // One event on the key (or its parent being made) before reading again.
    await host.xl(['store', 'watch', '-n', '2', path], { timeoutMs: 5_000 });
  }
}

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost();
  await host.ok([
    'create',
    host.writeConfig(
      'gc1.cfg',
      `name = "gc1"\nmemory = 160\non_reboot = "restart"\non_poweroff = "destroy"\nvif = ['ip=${NET}.5']\n`,
    ),
  ]);
  domid = Number((await host.ok(['domid', 'gc1'])).trim());
  // A second domain whose keys gc1 must not reach; it never needs to boot.
  await host.ok(['create', '-p', host.writeConfig('gc2.cfg', 'name = "gc2"\nmemory = 64\n')]);
  other = Number((await host.ok(['domid', 'gc2'])).trim());
  await host.ok(['store', 'write', `/local/domain/${other}/data/secret`, 'other-domains-secret']);
  con = await host.console('gc1');
  await con.expect(/XENODE-READY/);
  await con.expect(/gc1:\/# /);
});
after(async () => {
  con?.close();
  await host?.cleanup();
});

describe('the guest agent', () => {
  it('advertises control/feature-poweroff and -reboot, and reports its OS', async () => {
    await untilKey(`/local/domain/${domid}/control/feature-reboot`, (v) => v === '1');
    assert.equal(await storeRead(`/local/domain/${domid}/control/feature-poweroff`), '1');
    assert.match((await storeRead(`/local/domain/${domid}/data/os_uname`)) ?? '', /^\d+\.\d+/);
    assert.match((await storeRead(`/local/domain/${domid}/data/meminfo_total`)) ?? '', /^\d+$/);
  });

  it("shows the guest's IP address in list -l", async () => {
    await untilKey(`/local/domain/${domid}/attr/vif/0/ipv4/0`, (v) => v === `${NET}.5`);
    const list = JSON.parse(await host.ok(['list', '-l', 'gc1'])) as ListLong[];
    assert.deepEqual(list[0]?.guest?.ipv4, [`${NET}.5`]);
    assert.equal(list[0]?.guest?.agent, true);
  });
});

describe('the store channel from inside the guest', () => {
  it('reads and writes its own keys with relative paths', async () => {
    assert.equal(await con.run('xenode-store read name'), 'gc1');
    await con.run('xenode-store write data/hello from-guest');
    assert.equal(await storeRead(`/local/domain/${domid}/data/hello`), 'from-guest');
  });

  it('sees a key the host writes through a watch (latency reported, not asserted)', async () => {
    const from = con.output.length;
    con.send('xenode-store watch data/ping & wp=$!\n');
    // The watch fires once when registered (the key does not exist yet).
    // (The typed command echoes "data/ping &": a line ending there is the watch's.)
    await con.expect(/data\/ping\r?\n/, 60_000, from);
    const mark = con.output.length;
    const t0 = performance.now();
    const w = await http('PUT', '/v1/store/write', { path: `/local/domain/${domid}/data/ping/x`, value: 'pong' });
    assert.equal(w.status, 200, w.text);
    // The event names the node that changed: only the host's write can print this line.
    await con.expect(/data\/ping\/x\r?\n/, 30_000, mark);
    const latency = performance.now() - t0;
    console.log(`# host write -> the guest's watch line on its console: ${latency.toFixed(1)} ms`);
    // The port is the watcher's until it exits; then another xenode-store may open it.
    // (The shell reports the killed job: "Terminated".)
    assert.match(await con.run('kill -TERM $wp; wait $wp; xenode-store read data/ping/x'), /(^|\n)pong$/);
  });

  it("cannot read or write another domain's keys", async () => {
    const r = await con.run(`xenode-store read /local/domain/${other}/data/secret; echo rc=$?`);
    assert.match(r, /EACCES/);
    assert.match(r, /rc=1/);
    assert.doesNotMatch(r, /other-domains-secret/);
    const w = await con.run(`xenode-store write /local/domain/${other}/data/secret stolen; echo rc=$?`);
    assert.match(w, /EACCES/);
    assert.equal(await storeRead(`/local/domain/${other}/data/secret`), 'other-domains-secret');
    const t = await con.run(`xenode-store write /local/domain/${domid}/memory/target 1; echo rc=$?`);
    assert.match(t, /EACCES/);
  });

  it('cannot go beyond its quota for a node', async () => {
    // xenstored's quota-max-entry-size is 2048 bytes.
    const r = await con.run(
      'v=$(head -c 3000 /dev/zero | tr "\\0" x); xenode-store write data/big "$v"; echo rc=$?; xenode-store read data/big; echo rc2=$?',
    );
    assert.match(r, /rc=1/);
    assert.match(r, /ENOENT/);
    assert.equal(await storeRead(`/local/domain/${domid}/data/big`), undefined);
  });

  it('garbage on the channel drops only that session: the daemon lives, the channel comes back', async () => {
    const r = await con.run(
      'printf "\\377\\377\\377\\377\\377\\377\\377\\377\\377\\377\\377\\377\\377\\377\\377\\377" > /dev/virtio-ports/org.xenode.store; head -c 65536 /dev/urandom > /dev/virtio-ports/org.xenode.store; echo sent=$?',
    );
    assert.match(r, /sent=0/);
    assert.equal(await con.run('xenode-store read name'), 'gc1');
    assert.equal((await host.xl(['list', 'gc1'])).code, 0);
    // The agent's own port was not affected.
    await con.run('xenode-store write data/after-garbage ok');
    assert.equal(await storeRead(`/local/domain/${domid}/data/after-garbage`), 'ok');
  });
});

describe('shutdown and reboot through the channel', () => {
  it('a suspend request is refused: logged, left unacknowledged, the guest runs on', async () => {
    const mark = con.output.length;
    await host.ok(['store', 'write', `/local/domain/${domid}/control/shutdown`, 'suspend']);
    await con.expect(/xenode-agent: ignoring shutdown request 'suspend': not supported/, 60_000, mark);
    // As Linux's Xen driver does with a request it cannot carry out: not acknowledged.
    assert.equal(await storeRead(`/local/domain/${domid}/control/shutdown`), 'suspend');
    assert.equal(await con.run('echo still-$((40 + 2))'), 'still-42');
    assert.match((await host.ok(['list', 'gc1'])).split('\n')[1] ?? '', /\s[r-][b-]----\s/);
    await host.ok(['store', 'write', `/local/domain/${domid}/control/shutdown`, '']);
  });

  it("reboot -w runs the guest's own reboot and the domain comes back (on_reboot=restart)", async () => {
    const mark = con.output.length;
    const r = await host.xl(['reboot', '-w', 'gc1'], { timeoutMs: 180_000 });
    assert.equal(r.code, 0, r.stderr);
    await con.expect(/xenode-agent: control\/shutdown=reboot: syncing, then restarting/, 60_000, mark);
    await con.expect(/reboot: Restarting system/, 60_000, mark);
    await con.expect(/XENODE-READY/, 120_000, mark);
    assert.equal(Number((await host.ok(['domid', 'gc1'])).trim()), domid);
    // The agent of the new boot acknowledged the request by clearing the key.
    assert.equal(await storeRead(`/local/domain/${domid}/control/shutdown`), '');
    await untilKey(`/local/domain/${domid}/control/feature-poweroff`, (v) => v === '1');
  });

  it('after a daemon restart the agent is back on a new session, and shutdown -w goes through it', async () => {
    host.killDaemon('SIGKILL');
    await host.ok(['list']);
    // The agent registers again: its (re)written facts show it.
    await host.ok(['store', 'rm', `/local/domain/${domid}/data/meminfo_total`]);
    await host.ok(['store', 'write', `/local/domain/${domid}/memory/target`, '163840']);
    await untilKey(`/local/domain/${domid}/data/meminfo_total`, (v) => v !== undefined);
    const logBefore = readFileSync(join(host.dir, 'xenoded.log'), 'utf8').length;
    const r = await host.xl(['shutdown', '-w', 'gc1'], { timeoutMs: 180_000 });
    assert.equal(r.code, 0, r.stderr);
    // on_poweroff="destroy": the guest powered itself off, asked through its agent, no ACPI button.
    assert.notEqual((await host.xl(['domid', 'gc1'])).code, 0);
    const log = readFileSync(join(host.dir, 'xenoded.log'), 'utf8').slice(logBefore);
    assert.match(log, /asked the guest's agent to poweroff/);
    assert.doesNotMatch(log, /ACPI power button pressed/);
  });
});
