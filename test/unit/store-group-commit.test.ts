// The control store's group commit (ControlStore.deferCommits, used by the
// xenstored wire protocol): changes are live and acknowledged at once and
// reach SQLite within the window; a process killed after the window has them
// back, one killed inside it loses only that window, and a transaction is
// never half there. Write-through callers still get durable-on-return.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ControlStore, isStoreError, TOOLSTACK } from '../../src/store/index.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDb(): string {
  const d = mkdtempSync(join(tmpdir(), 'xenode-gc-'));
  dirs.push(d);
  return join(d, 'store.db');
}

const storeUrl = new URL('../../src/store/index.ts', import.meta.url).href;

/** Runs `body` in a child process with `s`, a ControlStore on `file`; the body ends by killing the process. */
function inChild(file: string, body: string, opts = ''): void {
  const script = `
    import { ControlStore, TOOLSTACK } from ${JSON.stringify(storeUrl)};
    const s = new ControlStore({ dbPath: ${JSON.stringify(file)} ${opts} });
    const until = (cond) => new Promise((resolve) => {
      const poll = () => (cond() ? resolve() : setImmediate(poll));
      poll();
    });
    ${body}
  `;
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(child.signal, 'SIGKILL', `child: ${child.stdout}${child.stderr}`);
}

function reopen(file: string): ControlStore {
  return new ControlStore({ dbPath: file });
}

describe('store: group commit', () => {
  it('a deferred change is live and acknowledged at once, and queued for SQLite', () => {
    const s = new ControlStore({ dbPath: tempDb() });
    s.deferCommits(() => s.write(TOOLSTACK, '/gc/a', '1'));
    assert.equal(s.read(TOOLSTACK, '/gc/a'), '1');
    assert.ok(s.unflushedChanges > 0);
    s.flush();
    assert.equal(s.unflushedChanges, 0);
    s.close();
  });

  it('acknowledged, then killed after the window: the changes are back', () => {
    const file = tempDb();
    inChild(
      file,
      `
      s.deferCommits(() => {
        for (let i = 0; i < 20; i++) s.write(TOOLSTACK, '/gc/k' + i, 'v' + i);
        s.rm(TOOLSTACK, '/gc/k3');
      });
      // Nothing else calls the store: only the group commit's timer can write them.
      await until(() => s.unflushedChanges === 0);
      process.kill(process.pid, 'SIGKILL');
      `,
    );
    const s = reopen(file);
    assert.equal(s.read(TOOLSTACK, '/gc/k19'), 'v19');
    assert.equal(s.tryRead(TOOLSTACK, '/gc/k3'), undefined);
    assert.equal(s.directory(TOOLSTACK, '/gc').length, 19);
    s.close();
  });

  it('killed inside the window: only that window is lost, never part of a transaction', () => {
    const file = tempDb();
    inChild(
      file,
      `
      s.write(TOOLSTACK, '/gc/durable', 'yes');
      s.deferCommits(() => {
        const tx = s.transactionStart(TOOLSTACK);
        for (let i = 0; i < 10; i++) s.write(TOOLSTACK, '/gc/tx/n' + i, String(i), tx);
        s.transactionEnd(TOOLSTACK, tx, true);
      });
      if (s.read(TOOLSTACK, '/gc/tx/n9') !== '9') throw new Error('not live');
      process.kill(process.pid, 'SIGKILL');
      `,
    );
    const s = reopen(file);
    assert.equal(s.read(TOOLSTACK, '/gc/durable'), 'yes');
    assert.equal(s.tryRead(TOOLSTACK, '/gc/tx'), undefined, 'a transaction inside the lost window is absent whole');
    s.close();
  });

  it('a committed transaction comes back whole after the window', () => {
    const file = tempDb();
    inChild(
      file,
      `
      s.deferCommits(() => {
        const tx = s.transactionStart(TOOLSTACK);
        for (let i = 0; i < 10; i++) s.write(TOOLSTACK, '/gc/tx/n' + i, String(i), tx);
        s.transactionEnd(TOOLSTACK, tx, true);
      });
      await until(() => s.unflushedChanges === 0);
      process.kill(process.pid, 'SIGKILL');
      `,
    );
    const s = reopen(file);
    assert.deepEqual(
      s.directory(TOOLSTACK, '/gc/tx'),
      Array.from({ length: 10 }, (_, i) => `n${i}`),
    );
    s.close();
  });

  it('a write-through change writes the queued ones with it, in order', () => {
    const file = tempDb();
    inChild(
      file,
      `
      s.deferCommits(() => {
        s.write(TOOLSTACK, '/gc/order', 'deferred');
        s.write(TOOLSTACK, '/gc/only-deferred', 'x');
      });
      s.write(TOOLSTACK, '/gc/order', 'through');
      if (s.unflushedChanges !== 0) throw new Error('queue not written');
      process.kill(process.pid, 'SIGKILL');
      `,
    );
    const s = reopen(file);
    assert.equal(s.read(TOOLSTACK, '/gc/order'), 'through');
    assert.equal(s.read(TOOLSTACK, '/gc/only-deferred'), 'x');
    s.close();
  });

  it('groupCommitMs: 0 makes deferred changes write-through', () => {
    const file = tempDb();
    inChild(
      file,
      `
      s.deferCommits(() => s.write(TOOLSTACK, '/gc/now', '1'));
      process.kill(process.pid, 'SIGKILL');
      `,
      ', groupCommitMs: 0',
    );
    const s = reopen(file);
    assert.equal(s.read(TOOLSTACK, '/gc/now'), '1');
    s.close();
  });

  it('close() writes what is queued', () => {
    const file = tempDb();
    const s1 = new ControlStore({ dbPath: file, groupCommitMs: 60_000 });
    s1.deferCommits(() => s1.write(TOOLSTACK, '/gc/closed', 'kept'));
    assert.ok(s1.unflushedChanges > 0);
    s1.close();
    const s2 = reopen(file);
    assert.equal(s2.read(TOOLSTACK, '/gc/closed'), 'kept');
    s2.close();
  });

  it('conflicting transactions still fail with EAGAIN, and the winner is what is kept', () => {
    const file = tempDb();
    const s = new ControlStore({ dbPath: file });
    s.write(TOOLSTACK, '/gc/c', 'base');
    const t1 = s.transactionStart(TOOLSTACK);
    const t2 = s.transactionStart(TOOLSTACK);
    s.deferCommits(() => {
      s.read(TOOLSTACK, '/gc/c', t1);
      s.read(TOOLSTACK, '/gc/c', t2);
      s.write(TOOLSTACK, '/gc/c', 'one', t1);
      s.write(TOOLSTACK, '/gc/c', 'two', t2);
      s.transactionEnd(TOOLSTACK, t1, true);
    });
    assert.throws(
      () => s.deferCommits(() => s.transactionEnd(TOOLSTACK, t2, true)),
      (e: unknown) => isStoreError(e, 'EAGAIN'),
    );
    assert.equal(s.read(TOOLSTACK, '/gc/c'), 'one');
    s.close();
    const again = reopen(file);
    assert.equal(again.read(TOOLSTACK, '/gc/c'), 'one');
    again.close();
  });

  it('the WAL is checkpointed once the store is idle, not left to grow', () => {
    const file = tempDb();
    inChild(
      file,
      `
      s.deferCommits(() => {
        for (let i = 0; i < 200; i++) s.write(TOOLSTACK, '/gc/w/n' + i, 'x'.repeat(100));
      });
      const { statSync } = await import('node:fs');
      await until(() => s.unflushedChanges === 0 && statSync(${JSON.stringify(`${file}-wal`)}).size === 0);
      process.kill(process.pid, 'SIGKILL');
      `,
    );
    assert.equal(statSync(`${file}-wal`).size, 0, 'the WAL was emptied into the database while idle');
    const s = reopen(file);
    assert.equal(s.directory(TOOLSTACK, '/gc/w').length, 200);
    s.close();
  });
});
