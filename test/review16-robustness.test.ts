// Review of issue 16 from the hostile side: a corrupt accounting database must
// not take the whole toolstack down with it (domains stay manageable, the
// account routes say what is wrong in one line), and an admin setting a
// sponsor's CPU limits while it runs nothing gets no spurious warning.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestHost } from './helpers/host.ts';

let host: TestHost;

async function daemonGone(pid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`daemon ${pid} still runs`);
}

before(async () => {
  host = new TestHost();
  await host.ok(['list']);
});
after(async () => {
  await host.cleanup();
});

describe('review 16: robustness of accounting and sponsor limits', () => {
  it('quota-set of CPU limits for a sponsor with no running domain logs no warning', async () => {
    await host.ok(['quota-set', 'idle', 'cpu-cap=50', 'cpu-weight=300']);
    const log = await host.ok(['dmesg']);
    assert.doesNotMatch(log, /sched: sponsor idle/, 'no cgroup write for a sponsor without a group');
  });

  it('a corrupt accounting.db leaves the daemon running; account answers one line naming the file', async () => {
    const pid = host.daemonPid();
    assert.ok(pid, 'daemon runs');
    host.killDaemon('SIGKILL');
    await daemonGone(pid);
    const db = join(host.dir, 'accounting.db');
    writeFileSync(db, Buffer.alloc(8192, 'garbage '));
    for (const f of ['-wal', '-shm']) writeFileSync(`${db}${f}`, '');
    // The toolstack comes back: domains can be listed and managed.
    const list = await host.xl(['list']);
    assert.equal(list.code, 0, `list after corrupt accounting.db: ${list.stderr}`);
    assert.match(list.stdout, /Domain-0/);
    const acc = await host.xl(['account']);
    assert.equal(acc.code, 1, 'account fails');
    assert.match(acc.stderr, /accounting\.db/, 'the error names the file');
    assert.equal(acc.stderr.trim().split('\n').length <= 2, true, `one line (and a hint): ${acc.stderr}`);
    assert.doesNotMatch(acc.stderr, /\n\s+at /, 'no stack trace');
    const log = await host.ok(['dmesg']);
    assert.match(log, /accounting.*accounting\.db/, 'the daemon log says why');
  });
});
