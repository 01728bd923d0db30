import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { XenodeError } from '../../src/errors.ts';
import {
  type Caller,
  ControlStore,
  type ControlStoreOptions,
  GUEST_WRITABLE,
  guest,
  isStoreError,
  NO_DOMAIN,
  type StoreErrno,
  sponsorCaller,
  TOOLSTACK,
  type WatchEvent,
} from '../../src/store/index.ts';

const DOM3 = guest(3);
const DOM4 = guest(4);
const HOME3 = '/local/domain/3';
const HOME4 = '/local/domain/4';

function throwsErrno(fn: () => unknown, errno: StoreErrno): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isStoreError(e), `expected a StoreError, got ${String(e)}`);
    assert.equal(e.errno, errno, e.message);
    return true;
  });
}

async function rejectsErrno(p: Promise<unknown>, errno: StoreErrno): Promise<void> {
  await assert.rejects(p, (e: unknown) => isStoreError(e, errno));
}

function newStore(opts: ControlStoreOptions = {}): ControlStore {
  return new ControlStore({ dbPath: ':memory:', ...opts });
}

/** Records watch events; `take()` waits for delivery and returns what arrived since the last take. */
function recorder(store: ControlStore) {
  const events: WatchEvent[] = [];
  let seen = 0;
  return {
    cb: (ev: WatchEvent) => {
      events.push(ev);
    },
    events,
    async take(): Promise<string[]> {
      await store.settled();
      const out = events.slice(seen).map((e) => e.path);
      seen = events.length;
      return out;
    },
  };
}

const tmpDirs: string[] = [];
function tempDb(): string {
  const dir = mkdtempSync(join(tmpdir(), 'xenode-store-'));
  tmpDirs.push(dir);
  return join(dir, 'store.db');
}
after(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

describe('store: read/write/directory/rm', () => {
  it('write creates missing parents with empty values and directory lists children sorted', () => {
    const s = newStore();
    s.write(TOOLSTACK, '/vm/u1/name', 'guest');
    s.write(TOOLSTACK, '/vm/u1/a-key', '1');
    s.write(TOOLSTACK, '/vm/u1/Z_key', '2');
    assert.equal(s.read(TOOLSTACK, '/vm/u1/name'), 'guest');
    assert.equal(s.read(TOOLSTACK, '/vm'), '');
    assert.equal(s.read(TOOLSTACK, '/vm/u1'), '');
    assert.deepEqual(s.directory(TOOLSTACK, '/vm/u1'), ['Z_key', 'a-key', 'name']);
    assert.deepEqual(s.directory(TOOLSTACK, '/vm/u1/name'), []);
    s.write(TOOLSTACK, '/vm/u1/name', 'renamed');
    assert.equal(s.read(TOOLSTACK, '/vm/u1/name'), 'renamed');
  });

  it('reading or listing an absent node is ENOENT, a typed XenodeError with the errno', () => {
    const s = newStore();
    assert.throws(
      () => s.read(TOOLSTACK, '/nope'),
      (e: unknown) =>
        e instanceof XenodeError &&
        isStoreError(e, 'ENOENT') &&
        e.kind === 'not-found' &&
        (e.toJSON() as { errno?: string }).errno === 'ENOENT',
    );
    throwsErrno(() => s.directory(TOOLSTACK, '/nope/deeper'), 'ENOENT');
    assert.equal(s.tryRead(TOOLSTACK, '/nope'), undefined);
  });

  it('rm is recursive; an absent node is fine if its parent exists, else ENOENT; the root is EINVAL', () => {
    const s = newStore();
    s.write(TOOLSTACK, '/a/b/c', '1');
    s.write(TOOLSTACK, '/a/b2', '2');
    s.rm(TOOLSTACK, '/a/b');
    throwsErrno(() => s.read(TOOLSTACK, '/a/b/c'), 'ENOENT');
    throwsErrno(() => s.read(TOOLSTACK, '/a/b'), 'ENOENT');
    assert.deepEqual(s.directory(TOOLSTACK, '/a'), ['b2']);
    s.rm(TOOLSTACK, '/a/b'); // already gone, parent exists
    throwsErrno(() => s.rm(TOOLSTACK, '/a/b/c'), 'ENOENT');
    throwsErrno(() => s.rm(TOOLSTACK, '/'), 'EINVAL');
  });

  it('mkdir creates an empty node and leaves an existing one untouched', () => {
    const s = newStore();
    s.mkdir(TOOLSTACK, '/x/y');
    assert.equal(s.read(TOOLSTACK, '/x/y'), '');
    s.write(TOOLSTACK, '/x/y', 'v');
    s.mkdir(TOOLSTACK, '/x/y');
    assert.equal(s.read(TOOLSTACK, '/x/y'), 'v');
  });

  it('rejects malformed paths with EINVAL (kind usage)', () => {
    const s = newStore();
    for (const bad of ['relative', '/a//b', '/a/', '/a b', '/a/ü', '', `/${'x'.repeat(3072)}`, '@releaseDomain']) {
      assert.throws(
        () => s.write(TOOLSTACK, bad, 'v'),
        (e: unknown) => isStoreError(e, 'EINVAL') && e.kind === 'usage',
        bad,
      );
    }
    s.write(TOOLSTACK, '/A-z_0@9/ok', 'v');
    assert.equal(s.read(TOOLSTACK, '/A-z_0@9/ok'), 'v');
  });

  it('rejects a malformed caller', () => {
    const s = newStore();
    throwsErrno(() => s.read({ domid: -1, privileged: true }, '/'), 'EINVAL');
    throwsErrno(() => s.read({ domid: 1.5, privileged: false }, '/'), 'EINVAL');
  });
});

describe('store: permissions', () => {
  function twoDomains(): ControlStore {
    const s = newStore();
    s.introduceDomain(3, { name: 'three' });
    s.introduceDomain(4, { name: 'four' });
    s.write(TOOLSTACK, `${HOME4}/x`, 'secret');
    return s;
  }

  it('introduceDomain lays out ~ as n0 r<domid> with guest-owned writable nodes', () => {
    const s = twoDomains();
    assert.deepEqual(s.getPerms(TOOLSTACK, HOME3), [
      { id: 0, perm: 'n' },
      { id: 3, perm: 'r' },
    ]);
    assert.deepEqual(s.getPerms(TOOLSTACK, `${HOME3}/memory`), [
      { id: 0, perm: 'n' },
      { id: 3, perm: 'r' },
    ]);
    for (const rel of GUEST_WRITABLE) {
      assert.deepEqual(s.getPerms(TOOLSTACK, `${HOME3}/${rel}`), [{ id: 3, perm: 'n' }], rel);
    }
    assert.equal(s.read(DOM3, `${HOME3}/name`), 'three');
    assert.equal(s.read(DOM3, `${HOME3}/domid`), '3');
    assert.ok(s.isDomainIntroduced(3));
    throwsErrno(() => s.introduceDomain(3), 'EEXIST');
    throwsErrno(() => s.introduceDomain(0), 'EINVAL');
  });

  it("a domain cannot read another domain's keys, nor learn whether they exist", () => {
    const s = twoDomains();
    throwsErrno(() => s.read(DOM3, `${HOME4}/x`), 'EACCES');
    throwsErrno(() => s.read(DOM3, `${HOME4}/absent`), 'EACCES');
    throwsErrno(() => s.directory(DOM3, HOME4), 'EACCES');
    throwsErrno(() => s.directory(DOM3, '/local/domain'), 'EACCES');
    throwsErrno(() => s.write(DOM3, `${HOME4}/data/y`, 'v'), 'EACCES');
    assert.equal(s.read(DOM4, `${HOME4}/x`), 'secret');
  });

  it('an explicit r3 entry grants domain 3 read access and nobody else', () => {
    const s = twoDomains();
    s.setPerms(TOOLSTACK, `${HOME4}/x`, ['n0', 'r3']);
    assert.equal(s.read(DOM3, `${HOME4}/x`), 'secret');
    throwsErrno(() => s.write(DOM3, `${HOME4}/x`, 'mine'), 'EACCES');
    throwsErrno(() => s.read(guest(5), `${HOME4}/x`), 'EACCES');
    // The owner's letter is the default for unlisted domains.
    s.setPerms(TOOLSTACK, `${HOME4}/x`, [{ id: 0, perm: 'r' }]);
    assert.equal(s.read(guest(5), `${HOME4}/x`), 'secret');
    // 'w' is write-only.
    s.setPerms(TOOLSTACK, `${HOME4}/x`, ['n0', 'w5']);
    s.write(guest(5), `${HOME4}/x`, 'from5');
    throwsErrno(() => s.read(guest(5), `${HOME4}/x`), 'EACCES');
    assert.equal(s.read(TOOLSTACK, `${HOME4}/x`), 'from5');
  });

  it('a guest writes its ~/data and ~/control/shutdown but not ~/name or new keys under ~/control', () => {
    const s = twoDomains();
    s.write(DOM3, `${HOME3}/data/app/status`, 'ready');
    assert.equal(s.read(DOM3, `${HOME3}/data/app/status`), 'ready');
    // An unprivileged creator owns what it creates (parents included).
    assert.deepEqual(s.getPerms(DOM3, `${HOME3}/data/app`), [{ id: 3, perm: 'n' }]);
    s.write(DOM3, `${HOME3}/control/shutdown`, '');
    throwsErrno(() => s.write(DOM3, `${HOME3}/name`, 'evil'), 'EACCES');
    throwsErrno(() => s.write(DOM3, `${HOME3}/control/other`, 'x'), 'EACCES');
    throwsErrno(() => s.rm(DOM3, `${HOME3}/name`), 'EACCES');
    throwsErrno(() => s.mkdir(DOM3, `${HOME3}/memory`), 'EACCES');
    assert.equal(s.read(TOOLSTACK, `${HOME3}/name`), 'three');
  });

  it('new nodes copy the parent perms; the toolstack keeps the parent owner', () => {
    const s = twoDomains();
    s.write(TOOLSTACK, `${HOME3}/memory/target`, '1024');
    assert.deepEqual(s.getPerms(TOOLSTACK, `${HOME3}/memory/target`), [
      { id: 0, perm: 'n' },
      { id: 3, perm: 'r' },
    ]);
    assert.equal(s.read(DOM3, `${HOME3}/memory/target`), '1024');
  });

  it('only the owner may SET_PERMS, and only a privileged caller may change the owner', () => {
    const s = twoDomains();
    s.write(DOM3, `${HOME3}/data/shared`, 'hello');
    throwsErrno(() => s.setPerms(DOM3, `${HOME3}/name`, ['n0', 'r3', 'r4']), 'EACCES');
    throwsErrno(() => s.setPerms(DOM4, `${HOME3}/data/shared`, ['n3', 'r4']), 'EACCES');
    s.setPerms(DOM3, `${HOME3}/data/shared`, ['n3', 'r4']);
    assert.equal(s.read(DOM4, `${HOME3}/data/shared`), 'hello');
    throwsErrno(() => s.setPerms(DOM3, `${HOME3}/data/shared`, ['n4']), 'EPERM');
    assert.throws(
      () => s.setPerms(DOM3, `${HOME3}/data/shared`, ['n4']),
      (e: unknown) => e instanceof XenodeError && e.kind === 'permission',
    );
    s.setPerms(TOOLSTACK, `${HOME3}/data/shared`, ['n4']);
    assert.deepEqual(s.getPerms(DOM4, `${HOME3}/data/shared`), [{ id: 4, perm: 'n' }]);
    throwsErrno(() => s.read(DOM3, `${HOME3}/data/shared`), 'EACCES');
    throwsErrno(() => s.setPerms(TOOLSTACK, `${HOME3}/data`, ['x1']), 'EINVAL');
    throwsErrno(() => s.setPerms(TOOLSTACK, `${HOME3}/data`, []), 'EINVAL');
  });

  it('perms of the special nodes can be read and granted by the toolstack', () => {
    const s = newStore();
    assert.deepEqual(s.getPerms(TOOLSTACK, '@releaseDomain'), [{ id: 0, perm: 'n' }]);
    throwsErrno(() => s.getPerms(DOM3, '@releaseDomain'), 'EACCES');
    s.setPerms(TOOLSTACK, '@releaseDomain', ['n0', 'r3']);
    assert.deepEqual(s.getPerms(DOM3, '@releaseDomain'), [
      { id: 0, perm: 'n' },
      { id: 3, perm: 'r' },
    ]);
    throwsErrno(() => s.getPerms(TOOLSTACK, '@nonexistent'), 'ENOENT');
  });
});

describe('store: watches', () => {
  it('fires once on registration, then for the path and its descendants with the changed path', async () => {
    const s = newStore();
    const r = recorder(s);
    s.watch(TOOLSTACK, '/local/domain/7', 'tok', r.cb);
    assert.deepEqual(await r.take(), ['/local/domain/7']);
    assert.equal(r.events[0]?.token, 'tok');
    s.write(TOOLSTACK, '/local/domain/7/memory/target', '1');
    s.write(TOOLSTACK, '/local/domain/8/memory/target', '1');
    s.write(TOOLSTACK, '/local/domain/70', 'not a descendant');
    s.write(TOOLSTACK, '/local/domain', 'ancestor');
    s.setPerms(TOOLSTACK, '/local/domain/7', ['n0', 'r7']);
    s.rm(TOOLSTACK, '/local/domain/7/memory');
    assert.deepEqual(await r.take(), ['/local/domain/7/memory/target', '/local/domain/7', '/local/domain/7/memory']);
  });

  it('removing an ancestor fires the watch with the watched path', async () => {
    const s = newStore();
    s.write(TOOLSTACK, '/a/b/c/d', '1');
    const r = recorder(s);
    s.watch(TOOLSTACK, '/a/b/c', 't', r.cb);
    await r.take();
    s.rm(TOOLSTACK, '/a');
    assert.deepEqual(await r.take(), ['/a/b/c']);
  });

  it('delivers asynchronously and in order, never inside the write', async () => {
    const s = newStore();
    const seen: string[] = [];
    s.watch(TOOLSTACK, '/w', 't', (ev) => {
      seen.push(ev.path);
      // A callback may write; its own event is queued behind the current ones.
      if (ev.path === '/w/1') s.write(TOOLSTACK, '/w/3', 'from-callback');
    });
    s.write(TOOLSTACK, '/w/1', 'a');
    s.write(TOOLSTACK, '/w/2', 'b');
    assert.deepEqual(seen, [], 'no callback ran synchronously');
    await s.settled();
    assert.deepEqual(seen, ['/w', '/w/1', '/w/2', '/w/3']);
  });

  it('a watcher without read access does not get events (perms checked per watcher)', async () => {
    const s = newStore();
    s.introduceDomain(3);
    s.introduceDomain(4);
    const spy = recorder(s);
    const owner = recorder(s);
    s.watch(DOM3, HOME4, 'spy', spy.cb);
    s.watch(DOM4, HOME4, 'own', owner.cb);
    assert.deepEqual(await spy.take(), [HOME4], 'the initial event is always sent');
    await owner.take();
    s.write(TOOLSTACK, `${HOME4}/memory/target`, '512');
    assert.deepEqual(await spy.take(), []);
    assert.deepEqual(await owner.take(), [`${HOME4}/memory/target`]);
    // Once granted, domain 3 hears about that node.
    s.setPerms(TOOLSTACK, `${HOME4}/memory/target`, ['n0', 'r3']);
    s.write(TOOLSTACK, `${HOME4}/memory/target`, '256');
    assert.deepEqual(await spy.take(), [`${HOME4}/memory/target`, `${HOME4}/memory/target`]);
    // Losing access still produces the event of the perms change (old perms count).
    s.setPerms(TOOLSTACK, `${HOME4}/memory/target`, ['n0']);
    s.write(TOOLSTACK, `${HOME4}/memory/target`, '128');
    assert.deepEqual(await spy.take(), [`${HOME4}/memory/target`]);
  });

  it('same path+token twice is EEXIST; unwatch stops events; unknown unwatch is ENOENT', async () => {
    const s = newStore();
    const r = recorder(s);
    s.watch(TOOLSTACK, '/u', 't', r.cb);
    throwsErrno(() => s.watch(TOOLSTACK, '/u', 't', r.cb), 'EEXIST');
    s.watch(TOOLSTACK, '/u', 't2', r.cb);
    assert.deepEqual(await r.take(), ['/u', '/u']);
    s.write(TOOLSTACK, '/u/x', '1');
    s.unwatch(TOOLSTACK, '/u', 't');
    s.unwatch(TOOLSTACK, '/u', 't2');
    s.write(TOOLSTACK, '/u/y', '1');
    assert.deepEqual(await r.take(), [], 'events queued before unwatch are dropped too');
    throwsErrno(() => s.unwatch(TOOLSTACK, '/u', 't'), 'ENOENT');
    throwsErrno(() => s.watch(TOOLSTACK, 'rel', 't', r.cb), 'EINVAL');
  });

  it('@introduceDomain and @releaseDomain fire for privileged watchers only', async () => {
    const s = newStore();
    const intro = recorder(s);
    const rel = recorder(s);
    const relOne = recorder(s);
    const guestRel = recorder(s);
    s.watch(TOOLSTACK, '@introduceDomain', 'i', intro.cb);
    s.watch(TOOLSTACK, '@releaseDomain', 'r', rel.cb);
    s.watch(TOOLSTACK, '@releaseDomain/5', 'r5', relOne.cb);
    s.watch(guest(9), '@releaseDomain', 'g', guestRel.cb);
    await Promise.all([intro.take(), rel.take(), relOne.take(), guestRel.take()]);
    s.introduceDomain(5);
    s.introduceDomain(6);
    assert.deepEqual(await intro.take(), ['@introduceDomain', '@introduceDomain']);
    s.releaseDomain(6);
    s.releaseDomain(5);
    assert.deepEqual(await rel.take(), ['@releaseDomain', '@releaseDomain']);
    assert.deepEqual(await relOne.take(), ['@releaseDomain/5']);
    assert.deepEqual(await guestRel.take(), []);
  });

  it('a throwing callback is reported and does not stop other deliveries', async () => {
    const errors: unknown[] = [];
    const s = newStore({ onWatchError: (e) => errors.push(e) });
    const r = recorder(s);
    s.watch(TOOLSTACK, '/t', 'bad', () => {
      throw new Error('boom');
    });
    s.watch(TOOLSTACK, '/t', 'good', r.cb);
    s.write(TOOLSTACK, '/t', '1');
    assert.deepEqual(await r.take(), ['/t', '/t']);
    assert.equal(errors.length, 2);
  });
});

describe('store: transactions', () => {
  it('isolates writes until commit; abort discards', () => {
    const s = newStore();
    s.write(TOOLSTACK, '/t/a', 'old');
    const tx = s.transactionStart(TOOLSTACK);
    s.write(TOOLSTACK, '/t/a', 'new', tx);
    s.write(TOOLSTACK, '/t/b', 'made', tx);
    assert.equal(s.read(TOOLSTACK, '/t/a', tx), 'new');
    assert.deepEqual(s.directory(TOOLSTACK, '/t', tx), ['a', 'b']);
    assert.equal(s.read(TOOLSTACK, '/t/a'), 'old');
    assert.deepEqual(s.directory(TOOLSTACK, '/t'), ['a']);
    s.transactionEnd(TOOLSTACK, tx, false);
    assert.equal(s.read(TOOLSTACK, '/t/a'), 'old');
    throwsErrno(() => s.read(TOOLSTACK, '/t/b'), 'ENOENT');
    throwsErrno(() => s.transactionEnd(TOOLSTACK, tx, true), 'ENOENT');

    const tx2 = s.transactionStart(TOOLSTACK);
    s.rm(TOOLSTACK, '/t', tx2);
    throwsErrno(() => s.read(TOOLSTACK, '/t/a', tx2), 'ENOENT');
    assert.equal(s.read(TOOLSTACK, '/t/a'), 'old');
    s.transactionEnd(TOOLSTACK, tx2, true);
    throwsErrno(() => s.read(TOOLSTACK, '/t'), 'ENOENT');
  });

  it('two racing read-modify-write transactions: the second commit gets EAGAIN and a retry succeeds', () => {
    const s = newStore();
    s.write(TOOLSTACK, '/counter', '0');
    const incr = (tx: number): void => {
      const n = Number(s.read(TOOLSTACK, '/counter', tx));
      s.write(TOOLSTACK, '/counter', String(n + 1), tx);
    };
    const t1 = s.transactionStart(TOOLSTACK);
    const t2 = s.transactionStart(TOOLSTACK);
    incr(t1);
    incr(t2);
    s.transactionEnd(TOOLSTACK, t1, true);
    assert.throws(
      () => s.transactionEnd(TOOLSTACK, t2, true),
      (e: unknown) => isStoreError(e, 'EAGAIN') && e.kind === 'conflict',
    );
    assert.equal(s.read(TOOLSTACK, '/counter'), '1');
    const t3 = s.transactionStart(TOOLSTACK);
    incr(t3);
    s.transactionEnd(TOOLSTACK, t3, true);
    assert.equal(s.read(TOOLSTACK, '/counter'), '2');
  });

  it('reading an absent node conflicts with another writer creating it', () => {
    const s = newStore();
    s.mkdir(TOOLSTACK, '/locks');
    const tx = s.transactionStart(TOOLSTACK);
    assert.equal(s.tryRead(TOOLSTACK, '/locks/a', tx), undefined);
    s.write(TOOLSTACK, '/locks/a', 'me', tx);
    s.write(TOOLSTACK, '/locks/a', 'someone else');
    throwsErrno(() => s.transactionEnd(TOOLSTACK, tx, true), 'EAGAIN');
    assert.equal(s.read(TOOLSTACK, '/locks/a'), 'someone else');
  });

  it('a directory listing conflicts with a child being added; disjoint transactions both commit', () => {
    const s = newStore();
    s.mkdir(TOOLSTACK, '/dir');
    s.mkdir(TOOLSTACK, '/other');
    const tx = s.transactionStart(TOOLSTACK);
    assert.deepEqual(s.directory(TOOLSTACK, '/dir', tx), []);
    s.write(TOOLSTACK, '/other/x', '1', tx);
    s.write(TOOLSTACK, '/dir/new', '1');
    throwsErrno(() => s.transactionEnd(TOOLSTACK, tx, true), 'EAGAIN');

    const a = s.transactionStart(TOOLSTACK);
    const b = s.transactionStart(TOOLSTACK);
    s.write(TOOLSTACK, '/dir/new', 'a', a);
    s.write(TOOLSTACK, '/other/x', 'b', b);
    s.transactionEnd(TOOLSTACK, a, true);
    s.transactionEnd(TOOLSTACK, b, true);
    assert.equal(s.read(TOOLSTACK, '/dir/new'), 'a');
    assert.equal(s.read(TOOLSTACK, '/other/x'), 'b');
  });

  it('a blind write conflicts with a concurrent change of the same node', () => {
    const s = newStore();
    s.write(TOOLSTACK, '/k', '0');
    const tx = s.transactionStart(TOOLSTACK);
    s.write(TOOLSTACK, '/k', 'tx', tx);
    s.write(TOOLSTACK, '/k', 'direct');
    throwsErrno(() => s.transactionEnd(TOOLSTACK, tx, true), 'EAGAIN');
    assert.equal(s.read(TOOLSTACK, '/k'), 'direct');
  });

  it('watches fire only at commit, and not at all on abort', async () => {
    const s = newStore();
    const r = recorder(s);
    s.watch(TOOLSTACK, '/tw', 't', r.cb);
    await r.take();
    const tx = s.transactionStart(TOOLSTACK);
    s.write(TOOLSTACK, '/tw/a', '1', tx);
    s.write(TOOLSTACK, '/tw/a', '2', tx);
    assert.deepEqual(await r.take(), []);
    s.transactionEnd(TOOLSTACK, tx, true);
    assert.deepEqual(await r.take(), ['/tw/a'], 'two writes of one node give one event');
    const tx2 = s.transactionStart(TOOLSTACK);
    s.write(TOOLSTACK, '/tw/b', '1', tx2);
    s.transactionEnd(TOOLSTACK, tx2, false);
    assert.deepEqual(await r.take(), []);
  });

  it('transaction() retries on conflict and aborts on other errors', async () => {
    const s = newStore();
    s.write(TOOLSTACK, '/n', '0');
    let attempts = 0;
    const result = await s.transaction(TOOLSTACK, (tx) => {
      attempts++;
      const n = Number(tx.read('/n'));
      if (attempts === 1) s.write(TOOLSTACK, '/n', '10'); // a concurrent writer
      tx.write('/n', String(n + 1));
      return n + 1;
    });
    assert.equal(attempts, 2);
    assert.equal(result, 11);
    assert.equal(s.read(TOOLSTACK, '/n'), '11');

    await assert.rejects(
      s.transaction(TOOLSTACK, (tx) => {
        tx.write('/n', 'partial');
        throw new Error('caller failed');
      }),
      /caller failed/,
    );
    assert.equal(s.read(TOOLSTACK, '/n'), '11');
    assert.equal(s.usage(0).transactions, 0, 'the failed transaction was aborted');

    let tries = 0;
    await rejectsErrno(
      s.transaction(
        TOOLSTACK,
        (tx) => {
          tries++;
          tx.read('/n');
          s.write(TOOLSTACK, '/n', String(tries));
        },
        { retries: 2 },
      ),
      'EAGAIN',
    );
    assert.equal(tries, 3);
  });

  it('limits an unprivileged domain to 10 open transactions; ids are per domain', () => {
    const s = newStore();
    s.introduceDomain(3);
    const ids = Array.from({ length: 10 }, () => s.transactionStart(DOM3));
    throwsErrno(() => s.transactionStart(DOM3), 'ENOSPC');
    throwsErrno(() => s.read(DOM4, `${HOME3}/domid`, ids[0]), 'ENOENT');
    throwsErrno(() => s.transactionEnd(DOM4, ids[0] as number, false), 'ENOENT');
    s.transactionEnd(DOM3, ids[0] as number, false);
    s.transactionStart(DOM3);
    for (let i = 0; i < 20; i++) s.transactionStart(TOOLSTACK);
    assert.equal(s.usage(0).transactions, 20);
  });
});

describe('store: a sponsor is a principal of its own', () => {
  // alice sponsors domains 3 and 5; domain 4 is someone else's.
  const ALICE = [3, 5];
  const alice = (domid: number) => sponsorCaller('alice', domid, ALICE);
  const HOME5 = '/local/domain/5';
  function aliceStore(opts: ControlStoreOptions = {}): ControlStore {
    const s = newStore(opts);
    for (const d of [3, 4, 5]) s.introduceDomain(d);
    return s;
  }

  it("has its domain's permissions: toolstack keys read-only, guest areas writable", () => {
    const s = aliceStore();
    s.write(TOOLSTACK, `${HOME3}/memory/target`, '131072');
    assert.equal(s.read(alice(3), `${HOME3}/memory/target`), '131072');
    throwsErrno(() => s.write(alice(3), `${HOME3}/memory/target`, '1'), 'EACCES');
    throwsErrno(() => s.write(alice(3), `${HOME3}/name`, 'x'), 'EACCES');
    throwsErrno(() => s.read(alice(3), `${HOME4}/domid`), 'EACCES');
    s.write(alice(3), `${HOME3}/data/k`, 'v');
    assert.equal(s.getPerms(TOOLSTACK, `${HOME3}/data/k`)[0]?.id, 3, 'owned by the domain, counted to it');
    assert.match(
      (() => {
        try {
          s.write(alice(5), `${HOME3}/data/k`, 'x');
        } catch (e) {
          return (e as Error).message;
        }
        return '';
      })(),
      /sponsor alice \(as domain 5\)/,
    );
  });

  it('may name only its own domains (and 0) in permission lists, and never change the owner', () => {
    const s = aliceStore();
    s.write(alice(3), `${HOME3}/data/k`, 'v');
    throwsErrno(() => s.setPerms(alice(3), `${HOME3}/data/k`, ['n3', 'r4']), 'EACCES');
    throwsErrno(() => s.setPerms(alice(3), `${HOME3}/data/k`, ['n3', 'b32757']), 'EACCES');
    throwsErrno(() => s.setPerms(alice(3), `${HOME3}/data/k`, ['n5']), 'EPERM');
    s.setPerms(alice(3), `${HOME3}/data/k`, ['n3', 'r5', 'r0']);
    assert.equal(s.read(alice(5), `${HOME3}/data/k`), 'v');
    // The domain's own connection keeps xenstored's freedom to grant.
    s.setPerms(DOM3, `${HOME3}/data/k`, ['n3', 'r4']);
  });

  it('owns its transactions: no other principal may use or end them, nor it theirs', () => {
    const s = aliceStore();
    const mine = s.transactionStart(alice(NO_DOMAIN));
    s.write(alice(3), `${HOME3}/data/a`, '1', mine);
    s.write(alice(5), `${HOME5}/data/b`, '2', mine);
    for (const other of [DOM3, TOOLSTACK, sponsorCaller('bob', 4, [4])]) {
      throwsErrno(() => s.read(other, `${HOME3}/data/a`, mine), 'ENOENT');
      throwsErrno(() => s.transactionEnd(other, mine, false), 'ENOENT');
    }
    const guests = s.transactionStart(DOM3);
    const dom0 = s.transactionStart(TOOLSTACK);
    for (const tx of [guests, dom0]) {
      throwsErrno(() => s.write(alice(3), `${HOME3}/data/c`, 'x', tx), 'ENOENT');
      throwsErrno(() => s.transactionEnd(alice(3), tx, false), 'ENOENT');
    }
    assert.throws(
      () => s.read(alice(3), `${HOME3}/data/a`, dom0),
      (e: unknown) => isStoreError(e, 'ENOENT') && !/domain|privileged/.test(e.message),
      'the refusal does not say whose transaction it is',
    );
    s.transactionEnd(alice(3), mine, true);
    assert.equal(s.read(TOOLSTACK, `${HOME5}/data/b`), '2');
    s.transactionEnd(DOM3, guests, true);
    s.transactionEnd(TOOLSTACK, dom0, true);
  });

  it('has its own transaction and watch quotas, whichever domain it acts as', () => {
    const s = aliceStore({ quotas: { transactions: 3, watches: 2 } });
    for (const d of [3, 5, NO_DOMAIN]) s.transactionStart(alice(d));
    throwsErrno(() => s.transactionStart(alice(3)), 'ENOSPC');
    assert.equal(s.usage(alice(3)).transactions, 3);
    s.transactionStart(DOM3); // the guest's own connection is counted apart
    const cb = () => {};
    s.watch(alice(3), `${HOME3}/data`, 't1', cb);
    s.watch(alice(5), `${HOME5}/data`, 't1', cb);
    throwsErrno(() => s.watch(alice(3), `${HOME3}/data`, 't2', cb), 'ENOSPC');
    s.watch(DOM3, `${HOME3}/data`, 't1', cb);
    s.unwatch(alice(5), `${HOME5}/data`, 't1');
    s.watch(alice(3), `${HOME3}/data`, 't2', cb);
    assert.equal(s.usage(alice(3)).watches, 2);
  });

  it("checks every domain's node quota at commit", () => {
    const s = aliceStore({ quotas: { nodes: 16 } });
    const tx = s.transactionStart(alice(NO_DOMAIN));
    s.write(alice(5), `${HOME5}/data/x`, '1', tx);
    // Another writer fills domain 5 up meanwhile.
    for (let i = 0; s.usage(5).nodes < 16; i++) s.write(TOOLSTACK, `${HOME5}/attr/f${i}`, '');
    throwsErrno(() => s.transactionEnd(alice(NO_DOMAIN), tx, true), 'ENOSPC');
  });

  it("sees only the watch events of nodes its domain may read; a released domain's watches and transactions go", async () => {
    const s = aliceStore();
    s.write(TOOLSTACK, `${HOME3}/data/private/v`, '0');
    s.setPerms(TOOLSTACK, `${HOME3}/data/private`, ['n0']);
    s.setPerms(TOOLSTACK, `${HOME3}/data/private/v`, ['n0']);
    const rec = recorder(s);
    s.watch(alice(3), HOME3, 'w', rec.cb);
    assert.deepEqual(await rec.take(), [HOME3]);
    s.write(TOOLSTACK, `${HOME3}/data/private/v`, '1');
    s.write(TOOLSTACK, `${HOME3}/data/public`, '1');
    assert.deepEqual(await rec.take(), [`${HOME3}/data/public`]);
    const tx = s.transactionStart(alice(NO_DOMAIN));
    s.write(alice(3), `${HOME3}/data/t`, '1', tx);
    s.releaseDomain(3);
    assert.equal(s.usage(alice(3)).watches, 0);
    throwsErrno(() => s.transactionEnd(alice(NO_DOMAIN), tx, true), 'ENOENT');
    // A new domain 3 (someone else's) is not watched through alice's old watch.
    s.introduceDomain(3);
    await rec.take();
    s.write(TOOLSTACK, `${HOME3}/data/new`, '1');
    assert.deepEqual(await rec.take(), []);
  });
});

describe('store: quotas', () => {
  it('caps the nodes a domain owns, leaving no partial write behind', () => {
    const s = newStore({ quotas: { nodes: 20 } });
    s.introduceDomain(3);
    const start = s.usage(3).nodes;
    for (let i = start; i < 20; i++) s.write(DOM3, `${HOME3}/data/n${i}`, 'x');
    assert.equal(s.usage(3).nodes, 20);
    throwsErrno(() => s.write(DOM3, `${HOME3}/data/one-more`, 'x'), 'ENOSPC');
    throwsErrno(() => s.write(DOM3, `${HOME3}/data/deep/er`, 'x'), 'ENOSPC');
    throwsErrno(() => s.read(DOM3, `${HOME3}/data/deep`), 'ENOENT');
    assert.equal(s.usage(3).nodes, 20);
    // The toolstack is not limited, even when the node it creates is owned by the domain.
    s.write(TOOLSTACK, `${HOME3}/data/by-dom0`, 'x');
    assert.equal(s.usage(3).nodes, 21);
    s.rm(DOM3, `${HOME3}/data/n${start}`);
    throwsErrno(() => s.write(DOM3, `${HOME3}/data/one-more`, 'x'), 'ENOSPC');
    s.rm(DOM3, `${HOME3}/data/by-dom0`);
    s.write(DOM3, `${HOME3}/data/one-more`, 'x');
    assert.equal(s.usage(3).nodes, 20);
  });

  it('counts transaction creations against the quota', () => {
    const s = newStore({ quotas: { nodes: 15 } });
    s.introduceDomain(3);
    const tx = s.transactionStart(DOM3);
    s.write(DOM3, `${HOME3}/data/a`, 'x', tx);
    s.write(DOM3, `${HOME3}/data/b`, 'x', tx);
    throwsErrno(() => s.write(DOM3, `${HOME3}/data/c`, 'x', tx), 'ENOSPC');
    s.transactionEnd(DOM3, tx, true);
    assert.equal(s.usage(3).nodes, 15);
  });

  it('caps watches, node size, perms entries and path length for unprivileged domains only', () => {
    const s = newStore({ quotas: { watches: 2 } });
    s.introduceDomain(3);
    s.watch(DOM3, `${HOME3}/a`, 't', () => {});
    s.watch(DOM3, `${HOME3}/b`, 't', () => {});
    throwsErrno(() => s.watch(DOM3, `${HOME3}/c`, 't', () => {}), 'ENOSPC');
    for (let i = 0; i < 5; i++) s.watch(TOOLSTACK, '/', `t${i}`, () => {});

    s.write(DOM3, `${HOME3}/data/big`, 'x'.repeat(2048));
    throwsErrno(() => s.write(DOM3, `${HOME3}/data/big`, 'x'.repeat(2049)), 'ENOSPC');
    throwsErrno(() => s.write(DOM3, `${HOME3}/data/utf8`, 'é'.repeat(1025)), 'ENOSPC');
    s.write(TOOLSTACK, `${HOME3}/data/big`, 'x'.repeat(10000));
    assert.equal(s.read(DOM3, `${HOME3}/data/big`).length, 10000);

    throwsErrno(() => s.setPerms(DOM3, `${HOME3}/data/big`, ['n3', 'r1', 'r2', 'r4', 'r5', 'r6']), 'ENOSPC');
    s.setPerms(DOM3, `${HOME3}/data/big`, ['n3', 'r1', 'r2', 'r4', 'r5']);
    s.setPerms(TOOLSTACK, `${HOME3}/data/big`, ['n3', 'r1', 'r2', 'r4', 'r5', 'r6', 'r7']);

    const long = `${HOME3}/data/${'p'.repeat(2048 - 'data/'.length)}`;
    s.write(DOM3, long, 'ok');
    throwsErrno(() => s.write(DOM3, `${long}q`, 'too long'), 'EINVAL');
  });

  it('rejects bad quota settings', () => {
    assert.throws(
      () => newStore({ quotas: { nodes: -1 } }),
      (e: unknown) => isStoreError(e, 'EINVAL'),
    );
  });
});

describe('store: releaseDomain', () => {
  it('removes the home and orphans, strips perms, drops watches and transactions', async () => {
    const s = newStore();
    s.introduceDomain(3);
    s.introduceDomain(4);
    s.setPerms(TOOLSTACK, `${HOME4}/data`, ['n4', 'r3']);
    s.write(TOOLSTACK, '/local/domain/0/backend/vbd/3/51712/state', '4');
    s.setPerms(TOOLSTACK, '/local/domain/0/backend/vbd/3', ['n3']);
    const tx = s.transactionStart(DOM3);
    const spy = recorder(s);
    s.watch(DOM3, HOME3, 'mine', spy.cb);
    await spy.take();
    const dom0 = recorder(s);
    s.watch(TOOLSTACK, '/local/domain/0/backend/vbd/3/51712', 'b', dom0.cb);
    await dom0.take();

    s.releaseDomain(3);
    assert.equal(s.isDomainIntroduced(3), false);
    throwsErrno(() => s.read(TOOLSTACK, HOME3), 'ENOENT');
    throwsErrno(() => s.read(TOOLSTACK, '/local/domain/0/backend/vbd/3'), 'ENOENT');
    assert.deepEqual(s.getPerms(TOOLSTACK, `${HOME4}/data`), [{ id: 4, perm: 'n' }]);
    assert.deepEqual(s.usage(3), { nodes: 0, watches: 0, transactions: 0 });
    throwsErrno(() => s.transactionEnd(DOM3, tx, true), 'ENOENT');
    assert.deepEqual(await spy.take(), []);
    assert.deepEqual(await dom0.take(), ['/local/domain/0/backend/vbd/3/51712']);
    throwsErrno(() => s.releaseDomain(3), 'ENOENT');
    // The domid can be reused from scratch.
    s.introduceDomain(3);
    throwsErrno(() => s.read(DOM3, `${HOME4}/data`), 'EACCES');
  });
});

describe('store: snapshots', () => {
  it('exports a subtree and imports it elsewhere, remapping domids', () => {
    const s = newStore();
    s.introduceDomain(3, { name: 'vm' });
    s.write(DOM3, `${HOME3}/data/k`, 'v');
    s.write(TOOLSTACK, `${HOME3}/memory/target`, '2048');
    const snap = s.exportSubtree(HOME3);
    assert.equal(snap.nodes[0]?.path, '');
    s.releaseDomain(3);
    s.importSubtree('/local/domain/9', JSON.stringify(snap), { domidMap: new Map([[3, 9]]) });
    const DOM9: Caller = guest(9);
    assert.equal(s.read(DOM9, '/local/domain/9/data/k'), 'v');
    assert.equal(s.read(DOM9, '/local/domain/9/memory/target'), '2048');
    assert.deepEqual(s.getPerms(TOOLSTACK, '/local/domain/9'), [
      { id: 0, perm: 'n' },
      { id: 9, perm: 'r' },
    ]);
    throwsErrno(() => s.write(DOM9, '/local/domain/9/name', 'x'), 'EACCES');
    const again = s.exportSubtree('/local/domain/9');
    assert.deepEqual(
      again.nodes.map((n) => n.path),
      snap.nodes.map((n) => n.path),
    );
    const ownedBy3 = snap.nodes.filter((n) => n.perms[0]?.id === 3).length;
    assert.ok(ownedBy3 > 0);
    assert.equal(s.usage(9).nodes, ownedBy3);
  });

  it('rejects malformed snapshots with EINVAL', () => {
    const s = newStore();
    const good = { format: 'xenode-store-snapshot', version: 1, nodes: [{ path: '', value: '', perms: ['n0'] }] };
    s.importSubtree('/ok', JSON.stringify(good));
    assert.equal(s.read(TOOLSTACK, '/ok'), '');
    const bad: unknown[] = [
      '{not json',
      { ...good, version: 2 },
      { ...good, nodes: [] },
      { ...good, nodes: [{ path: 'a', value: '', perms: ['n0'] }] },
      { ...good, nodes: [...good.nodes, { path: 'x/y', value: '', perms: ['n0'] }] },
      { ...good, nodes: [...good.nodes, { path: 'x//y', value: '', perms: ['n0'] }] },
      { ...good, nodes: [{ path: '', value: 3, perms: ['n0'] }] },
      { ...good, nodes: [{ path: '', value: '', perms: [] }] },
    ];
    for (const b of bad) {
      throwsErrno(() => s.importSubtree('/bad', (typeof b === 'string' ? b : JSON.stringify(b)) as string), 'EINVAL');
    }
    throwsErrno(() => s.read(TOOLSTACK, '/bad'), 'ENOENT');
  });
});

describe('store: persistence', () => {
  it('reopening the same file gives the same tree, perms and working transactions', async () => {
    const file = tempDb();
    const s1 = new ControlStore({ dbPath: file });
    s1.introduceDomain(3, { name: 'vm3' });
    s1.write(DOM3, `${HOME3}/data/x`, 'persisted');
    s1.setPerms(DOM3, `${HOME3}/data/x`, ['n3', 'r4']);
    s1.write(TOOLSTACK, '/vm/abc/name', 'vm3');
    s1.rm(TOOLSTACK, `${HOME3}/error`);
    await s1.transaction(TOOLSTACK, (tx) => tx.write('/vm/abc/uuid', 'abc'));
    const before = s1.exportSubtree('/');
    const usage = s1.usage(3);
    s1.close();
    throwsErrno(() => s1.read(TOOLSTACK, '/'), 'EINVAL');

    const s2 = new ControlStore({ dbPath: file });
    assert.deepEqual(s2.exportSubtree('/'), before);
    assert.deepEqual(s2.usage(3), usage);
    assert.equal(s2.read(DOM4, `${HOME3}/data/x`), 'persisted');
    assert.deepEqual(s2.getPerms(TOOLSTACK, '@releaseDomain'), [{ id: 0, perm: 'n' }]);
    const t1 = s2.transactionStart(TOOLSTACK);
    s2.read(TOOLSTACK, '/vm/abc/name', t1);
    s2.write(TOOLSTACK, '/vm/abc/name', 'changed');
    throwsErrno(() => s2.transactionEnd(TOOLSTACK, t1, true), 'EAGAIN');
    s2.close();
  });

  it('survives kill -9 of the process right after a write', () => {
    const file = tempDb();
    const storeUrl = new URL('../../src/store/index.ts', import.meta.url).href;
    const script = `
      import { ControlStore, TOOLSTACK } from ${JSON.stringify(storeUrl)};
      const s = new ControlStore({ dbPath: ${JSON.stringify(file)} });
      s.introduceDomain(5);
      for (let i = 0; i < 50; i++) s.write(TOOLSTACK, '/local/domain/5/data/k' + i, 'v' + i);
      process.kill(process.pid, 'SIGKILL');
    `;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(child.signal, 'SIGKILL', child.stderr);
    const s = new ControlStore({ dbPath: file });
    assert.ok(s.isDomainIntroduced(5));
    assert.equal(s.directory(TOOLSTACK, '/local/domain/5/data').length, 50);
    assert.equal(s.read(TOOLSTACK, '/local/domain/5/data/k49'), 'v49');
    s.close();
  });

  it('refuses a database file another store holds open', () => {
    const file = tempDb();
    const first = new ControlStore({ dbPath: file });
    first.write(TOOLSTACK, '/held', '1');
    assert.throws(
      () => new ControlStore({ dbPath: file }),
      (e: unknown) => e instanceof XenodeError && e.kind === 'state' && /in use/.test(e.message),
    );
    first.close();
    const second = new ControlStore({ dbPath: file });
    assert.equal(second.read(TOOLSTACK, '/held'), '1');
    second.close();
  });

  it('refuses an unusable database path with a typed error', () => {
    assert.throws(
      () => new ControlStore({ dbPath: '/nonexistent-dir/sub/store.db' }),
      (e: unknown) => e instanceof XenodeError && e.kind === 'config',
    );
  });
});
