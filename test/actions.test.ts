// on_poweroff / on_reboot / on_crash actions, as xl applies them.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import { TestHost } from './helpers/host.ts';

let host: TestHost;
before(async () => {
  await ensureDefaultGuest();
  host = new TestHost();
});
after(async () => {
  await host.cleanup();
});

async function row(name: string): Promise<string | undefined> {
  return (await host.ok(['list'])).split('\n').find((l) => l.startsWith(`${name} `));
}

async function waitFor(pred: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('condition not reached');
}

it('on_poweroff="preserve" keeps the domain in state s until destroyed', async () => {
  await host.ok(['create', host.writeConfig('p.cfg', 'name="keep"\nmemory=128\non_poweroff="preserve"\n')]);
  const con = await host.console('keep');
  await con.expect(/keep:\/# /);
  con.send('poweroff\n');
  await waitFor(async () => /\s---s--\s/.test((await row('keep')) ?? ''));
  assert.equal(
    (await host.ok(['store', 'read', `/local/domain/${(await host.ok(['domid', 'keep'])).trim()}/state`])).trim(),
    'shutdown',
  );
  const r = await host.xl(['pause', 'keep']);
  assert.equal(r.code, 1, 'a shut-down domain cannot be paused');
  await host.ok(['destroy', 'keep']);
  assert.equal(await row('keep'), undefined);
  con.close();
});

it('on_reboot="rename-restart" keeps the old domain renamed and starts a new one', async () => {
  await host.ok(['create', host.writeConfig('rr.cfg', 'name="rr"\nmemory=128\non_reboot="rename-restart"\n')]);
  const con = await host.console('rr');
  await con.expect(/rr:\/# /);
  const oldId = (await host.ok(['domid', 'rr'])).trim();
  con.send('reboot\n');
  await waitFor(async () => (await host.ok(['list'])).includes('rr-'));
  const list = await host.ok(['list']);
  const renamed = list.split('\n').find((l) => /^rr-\d{8}T\d{4}Z\s/.test(l));
  assert.ok(renamed, list);
  assert.equal(renamed.trim().split(/\s+/)[1], oldId);
  assert.match(renamed, /\s---sr-\s/);
  const newId = (await host.ok(['domid', 'rr'])).trim();
  assert.notEqual(newId, oldId);
  const con2 = await host.console('rr');
  await con2.expect(/XENODE-READY/);
  con.close();
  con2.close();
});

it('on_crash="restart" starts a new QEMU when the old one dies', async () => {
  await host.ok(['create', host.writeConfig('c.cfg', 'name="phoenix"\nmemory=128\non_crash="restart"\n')]);
  const id = (await host.ok(['domid', 'phoenix'])).trim();
  const pidOf = () => host.qemuPids().find((p) => p > 0 && isQemuOf(id, p));
  const before = pidOf();
  assert.ok(before);
  process.kill(before, 'SIGKILL');
  await waitFor(async () => {
    const p = pidOf();
    return p !== undefined && p !== before;
  });
  const con = await host.console('phoenix');
  await con.expect(/XENODE-READY/);
  assert.equal((await host.ok(['domid', 'phoenix'])).trim(), id, 'same domid');
  assert.match(await host.ok(['dmesg']), /QEMU exited unexpectedly/);
  con.close();
});

it('on_crash="destroy" (the default) removes the domain when QEMU dies', async () => {
  await host.ok(['create', host.writeConfig('c2.cfg', 'name="mortal"\nmemory=128\n')]);
  const id = (await host.ok(['domid', 'mortal'])).trim();
  const pid = host.qemuPids().find((p) => isQemuOf(id, p));
  assert.ok(pid);
  process.kill(pid, 'SIGKILL');
  await waitFor(async () => (await row('mortal')) === undefined);
});

function isQemuOf(domid: string, pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`/domains/${domid}/`);
  } catch {
    return false;
  }
}
