// Issue 13, finding 8: a sponsor's store requests run as that sponsor (with the
// permissions of its domains and the store's quotas), never as the privileged
// toolstack; a transaction belongs to the principal that opened it. Driven over
// the real TCP API with sponsor tokens; the domains are created paused (the
// store needs their homes, not a running guest).

import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ensureDefaultGuest } from '../guest/build.ts';
import { type ApiReply, TestHost } from './helpers/host.ts';

let host: TestHost;

const http = (method: string, path: string, token?: string, body?: unknown) => host.api(method, path, token, body);
let port: number;
let admin: string;
let alice: string;
let bob: string;
/** alice's and bob's domids */
let a: number;
let b: number;
let aliceUuid: string;
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

const home = (domid: number) => `/local/domain/${domid}`;
const read = (token: string, path: string, tx?: number) =>
  http('GET', `/v1/store/read?path=${encodeURIComponent(path)}${tx === undefined ? '' : `&tx=${tx}`}`, token);
const write = (token: string, path: string, value: string, extra: Record<string, string> = {}) =>
  http('PUT', '/v1/store/write', token, { path, value, ...extra });
const setPerms = (token: string, path: string, perms: string[]) =>
  http('POST', '/v1/store/perms', token, { path, perms });
const getPerms = async (path: string) =>
  (
    (await http('GET', `/v1/store/perms?path=${encodeURIComponent(path)}`, admin)).json.perms as Array<{
      id: number;
      perm: string;
    }>
  )
    .map((p) => `${p.perm}${p.id}`)
    .join(' ');

/** The value as the admin sees it (undefined when absent). */
async function adminValue(path: string): Promise<string | undefined> {
  const r = await read(admin, path);
  return r.status === 200 ? (r.json.value as string) : undefined;
}

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost();
  await host.ok(['create', '-p', host.writeConfig('a.cfg', 'name = "alice1"\nmemory = 128\nsponsor = "alice"\n')]);
  await host.ok(['create', '-p', host.writeConfig('b.cfg', 'name = "bob1"\nmemory = 128\nsponsor = "bob"\n')]);
  a = Number((await host.ok(['domid', 'alice1'])).trim());
  b = Number((await host.ok(['domid', 'bob1'])).trim());
  port = host.tcpPort();
  admin = (await host.ok(['token', 'create', 'root', '--admin'])).trim();
  alice = (await host.ok(['token', 'create', 'alice'])).trim();
  bob = (await host.ok(['token', 'create', 'bob'])).trim();
  aliceUuid = String((await read(admin, `${home(a)}/vm`)).json.value ?? '').replace('/vm/', '');
  assert.match(aliceUuid, /^[0-9a-f-]{36}$/);
});

after(async () => {
  agent.destroy();
  await host?.cleanup();
});

describe('security: the store runs a sponsor as itself (finding 8)', () => {
  it("a sponsor cannot rewrite its domain's memory/target", async () => {
    const target = `${home(a)}/memory/target`;
    const before = await adminValue(target);
    assert.match(before ?? '', /^\d+$/);
    // It may read its domains' homes and /vm entries (as the guest may).
    assert.equal((await read(alice, target)).status, 200);
    assert.equal((await read(alice, `/vm/${aliceUuid}/name`)).json.value, 'alice1');
    // What the web UI's store tab lists for a sponsor.
    for (const root of [home(a), `/vm/${aliceUuid}`]) {
      const ls = await http('GET', `/v1/store/ls?path=${encodeURIComponent(root)}`, alice);
      assert.equal(ls.status, 200, `${root}: ${JSON.stringify(ls.json)}`);
      const names = (ls.json.children as Array<{ name: string; value?: string }>).map((c) => c.name);
      assert.ok(names.includes('name'), `${root}: ${names.join(' ')}`);
    }
    const w = await write(alice, target, '1');
    assert.equal(w.status, 403, JSON.stringify(w.json));
    assert.match(w.json.error?.message ?? '', /EACCES/);
    assert.equal((await http('DELETE', `/v1/store?path=${encodeURIComponent(target)}`, alice)).status, 403);
    assert.equal(
      (await http('DELETE', `/v1/store?path=${encodeURIComponent(`${home(a)}/memory`)}`, alice)).status,
      403,
    );
    assert.equal((await write(alice, `${home(a)}/memory/new-key`, '1')).status, 403);
    assert.equal(await adminValue(target), before);
    // Where the guest may write, the sponsor may too.
    assert.equal((await write(alice, `${home(a)}/data/app/status`, 'ok')).status, 200);
    assert.equal(await adminValue(`${home(a)}/data/app/status`), 'ok');
  });

  it("a sponsor cannot rewrite its domain's sponsor (nor name, state, vm, domid)", async () => {
    for (const key of ['sponsor', 'name', 'state', 'vm', 'domid']) {
      const path = `${home(a)}/${key}`;
      const was = await adminValue(path);
      assert.notEqual(was, undefined, key);
      const w = await write(alice, path, 'bob');
      assert.equal(w.status, 403, `${key}: ${JSON.stringify(w.json)}`);
      assert.equal((await http('DELETE', `/v1/store?path=${encodeURIComponent(path)}`, alice)).status, 403, key);
      assert.equal((await setPerms(alice, path, [`b${a}`])).status, 403, key);
      assert.equal(await adminValue(path), was, key);
    }
    assert.equal(await adminValue(`${home(a)}/sponsor`), 'alice');
    assert.equal((await write(alice, `/vm/${aliceUuid}/name`, 'evil')).status, 403);
    assert.equal((await setPerms(alice, home(a), [`b${a}`])).status, 403);
  });

  it("set-perms cannot hand a node to another sponsor's domain or open it to it", async () => {
    const gift = `${home(a)}/data/gift`;
    assert.equal((await write(alice, gift, 'x')).status, 200);
    const owned = await getPerms(gift);
    assert.equal(owned, `n${a}`);
    const refusals: string[][] = [
      [`n${b}`], // ownership to bob's domain
      [`b${b}`],
      [`n${a}`, `r${b}`], // access for bob's domain
      [`n${a}`, `b${b}`],
      [`n${a}`, 'b32757'], // DOMID_ANY: every domain
      [`b${a}`, 'n12345'], // a domain that is not alice's
    ];
    for (const perms of refusals) {
      const r = await setPerms(alice, gift, perms);
      assert.equal(r.status, 403, `${perms.join(' ')}: ${JSON.stringify(r.json)}`);
      assert.equal(await getPerms(gift), owned, perms.join(' '));
    }
    assert.equal((await setPerms(alice, `${home(a)}/data`, [`n${a}`, `b${b}`])).status, 403);
    // Its own domain (and the toolstack) may be named.
    assert.equal((await setPerms(alice, gift, [`n${a}`, 'r0'])).status, 200);
    assert.equal(await getPerms(gift), `n${a} r0`);
    // Bob still cannot reach it.
    assert.equal((await read(bob, gift)).status, 403);
  });

  it("a sponsor cannot act inside another principal's transaction", async () => {
    const intruder = `${home(a)}/data/intruder`;
    const txOf = async (token: string, body: Record<string, string>) => {
      const r = await http('POST', '/v1/store/transaction', token, body);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      return r.json.tx as number;
    };
    // The admin's (toolstack) transaction, the guest connection's (admin with as=a) and bob's.
    const tAdmin = await txOf(admin, {});
    assert.equal((await write(admin, `${home(a)}/data/by-admin`, '1', { tx: String(tAdmin) })).status, 200);
    const tGuest = await txOf(admin, { as: String(a) });
    const tBob = await txOf(bob, { as: String(b) });
    for (const [who, tx] of [
      ['admin', tAdmin],
      ['guest', tGuest],
      ['bob', tBob],
    ] as const) {
      const w = await write(alice, intruder, who, { tx: String(tx) });
      assert.equal(w.status, 404, `${who}: ${JSON.stringify(w.json)}`);
      assert.doesNotMatch(w.json.error?.message ?? '', /domain|privileged|sponsor/, 'does not say whose it is');
      const wAs = await write(alice, intruder, who, { tx: String(tx), as: String(a) });
      assert.equal(wAs.status, 404, `${who} with as: ${JSON.stringify(wAs.json)}`);
      assert.equal((await read(alice, `${home(a)}/name`, tx)).status, 404, who);
      const end = await http('POST', `/v1/store/transaction/${tx}`, alice, { commit: false });
      assert.equal(end.status, 404, `${who}: end ${JSON.stringify(end.json)}`);
      const endAs = await http('POST', `/v1/store/transaction/${tx}`, alice, { commit: true, as: String(a) });
      assert.equal(endAs.status, 404, `${who}: end as ${JSON.stringify(endAs.json)}`);
    }
    // The owners' transactions are untouched: each still commits, without alice's write.
    assert.equal((await http('POST', `/v1/store/transaction/${tAdmin}`, admin, { commit: true })).status, 200);
    assert.equal(
      (await http('POST', `/v1/store/transaction/${tGuest}`, admin, { commit: true, as: String(a) })).status,
      200,
    );
    assert.equal(
      (await http('POST', `/v1/store/transaction/${tBob}`, bob, { commit: true, as: String(b) })).status,
      200,
    );
    assert.equal(await adminValue(`${home(a)}/data/by-admin`), '1');
    assert.equal(await adminValue(intruder), undefined);
    // A sponsor's own transaction works, and others cannot use it either.
    const tAlice = await txOf(alice, {});
    assert.equal((await write(alice, `${home(a)}/data/tx`, 'mine', { tx: String(tAlice) })).status, 200);
    assert.equal((await write(bob, `${home(b)}/data/tx`, 'bob', { tx: String(tAlice) })).status, 404);
    assert.equal((await write(admin, `${home(a)}/data/tx2`, 'admin', { tx: String(tAlice) })).status, 404);
    assert.equal((await http('POST', `/v1/store/transaction/${tAlice}`, bob, { commit: false })).status, 404);
    assert.equal((await http('POST', `/v1/store/transaction/${tAlice}`, alice, { commit: true })).status, 200);
    assert.equal(await adminValue(`${home(a)}/data/tx`), 'mine');
    assert.equal(await adminValue(`${home(b)}/data/tx`), undefined);
  });

  it("a sponsor's store quotas are enforced with a clear error", async () => {
    // Node size (value plus child names): 2048 bytes.
    const big = await write(alice, `${home(a)}/data/big`, 'x'.repeat(3000));
    assert.equal(big.status, 507, JSON.stringify(big.json));
    assert.equal(big.json.error?.kind, 'quota');
    assert.match(big.json.error?.message ?? '', /3000 B exceeds .*2048 B/);
    assert.ok(big.json.error?.hint, 'the error says what to do');
    assert.equal(await adminValue(`${home(a)}/data/big`), undefined);
    assert.equal((await write(alice, `${home(a)}/data/small`, 'x'.repeat(2000))).status, 200);
    // Entries in one permission list: 5.
    const perms = await setPerms(alice, `${home(a)}/data/small`, [`n${a}`, 'r0', 'r0', 'r0', 'r0', 'r0']);
    assert.equal(perms.status, 507, JSON.stringify(perms.json));
    assert.match(perms.json.error?.message ?? '', /quota is 5/);
    // Open transactions per sponsor: 10, whichever domain each names.
    const open: number[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await http('POST', '/v1/store/transaction', alice, i % 2 === 0 ? {} : { as: String(a) });
      assert.equal(r.status, 200, `transaction ${i}: ${JSON.stringify(r.json)}`);
      open.push(r.json.tx as number);
    }
    const eleventh = await http('POST', '/v1/store/transaction', alice, {});
    assert.equal(eleventh.status, 507, JSON.stringify(eleventh.json));
    assert.match(eleventh.json.error?.message ?? '', /10 open transactions/);
    assert.equal((await http('POST', '/v1/store/transaction', bob, { as: String(b) })).status, 200, "bob's own");
    for (const tx of open)
      assert.equal((await http('POST', `/v1/store/transaction/${tx}`, alice, { commit: false })).status, 200);
    // Nodes owned by the sponsor's domain: 1000.
    let refused: ApiReply | undefined;
    let written = 0;
    for (let i = 0; i < 1100 && !refused; i++) {
      // Spread over small directories: a directory's child names count against its node size.
      const r = await write(alice, `${home(a)}/data/n/${Math.floor(i / 32)}/${i % 32}`, '');
      if (r.status === 200) written++;
      else refused = r;
    }
    assert.ok(refused, 'the node quota stops the sponsor');
    assert.equal(refused.status, 507, JSON.stringify(refused.json));
    assert.match(refused.json.error?.message ?? '', /more than 1000 nodes/);
    assert.ok(written > 900 && written < 1000, `wrote ${written} nodes before the refusal`);
    // Removing frees the quota again.
    assert.equal(
      (await http('DELETE', `/v1/store?path=${encodeURIComponent(`${home(a)}/data/n`)}`, alice)).status,
      200,
    );
    assert.equal((await write(alice, `${home(a)}/data/after`, '1')).status, 200);
  });

  it("a sponsor's watch fires only for paths it may read", async () => {
    // The admin keeps a private subtree under the domain's home.
    const secret = `${home(a)}/data/admin-only`;
    await host.ok(['store', 'write', `${secret}/v`, '0']);
    await host.ok(['store', 'perms', secret, 'n0']);
    await host.ok(['store', 'perms', `${secret}/v`, 'n0']);
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/store/watch?path=${encodeURIComponent(`${home(a)}/data`)}`, {
      headers: { authorization: `Bearer ${alice}` },
    });
    const events: string[] = [];
    const waiters: Array<() => void> = [];
    ws.on('message', (d: Buffer) => {
      events.push((JSON.parse(d.toString()) as { path: string }).path);
      for (const w of waiters.splice(0)) w();
    });
    const seen = async (path: string) => {
      while (!events.includes(path)) {
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error(`no watch event for ${path}; got ${events.join(', ')}`)), 10_000);
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    };
    try {
      await seen(`${home(a)}/data`); // fires once at registration
      await host.ok(['store', 'write', `${secret}/v`, '1']);
      await host.ok(['store', 'write', `${secret}/w`, '2']);
      await host.ok(['store', 'rm', `${secret}/w`]);
      // Events arrive in order, so once the marker is in nothing earlier is still on its way.
      await host.ok(['store', 'write', `${home(a)}/data/marker`, '1']);
      await seen(`${home(a)}/data/marker`);
      assert.deepEqual(events, [`${home(a)}/data`, `${home(a)}/data/marker`]);
      assert.equal((await read(alice, `${secret}/v`)).status, 403, 'nor may it read them');
    } finally {
      ws.close();
    }
  });
});
