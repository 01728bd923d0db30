// Issue 14, finding 2: the domain table and the store are trusted only when
// whole. A table lost under running domains is a loud refusal that names the
// file and `xenoded --recover`; recover brings every domain back with its domid;
// domids and run directories are never reused; a lost store is rebuilt.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import { type CliResult, type ConsoleSession, ROOT, TestHost } from './helpers/host.ts';

const XENODED_BIN = join(ROOT, 'bin', 'xenoded');

let host: TestHost;
/** name -> domid, uuid and QEMU pid as first created. */
const doms = new Map<string, { domid: number; uuid: string; pid: number; sponsor: string }>();

interface View {
  domid: number;
  name: string;
  uuid: string;
  sponsor: string;
  state: string;
  pid?: number;
}

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost();
});
after(async () => {
  // A daemon that refused to start left no process behind for cleanup to kill.
  const pid = host.daemonPid();
  if (pid && !running(pid)) rmSync(join(host.dir, 'xenoded.pid'), { force: true });
  await host.cleanup();
});

function xenoded(args: string[], timeoutMs = 30_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(XENODED_BIN, args, { env: host.env, timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function running(pid: number): boolean {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    return state !== undefined && state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** SIGTERM the daemon and wait until it is gone (its domains keep running). */
async function stopDaemon(): Promise<void> {
  const pid = host.daemonPid();
  if (!pid || !running(pid)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 1500 && running(pid); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(!running(pid), 'xenoded exits on SIGTERM');
}

/** The domains as the admin API shows them (after `xenode list`, which starts the daemon). */
async function views(): Promise<View[]> {
  await host.ok(['list']);
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: host.socket, path: '/v1/domains' }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => {
        text += d.toString();
      });
      res.on('end', () => resolve((JSON.parse(text) as View[]).filter((v) => v.domid !== 0)));
    });
    req.on('error', reject);
    req.end();
  });
}

async function ready(dom: string): Promise<ConsoleSession> {
  const con = await host.console(dom);
  await con.expect(/XENODE-READY/);
  await con.expect(new RegExp(`${dom}:/# `));
  return con;
}

/** Every domain is listed with its domid, uuid and sponsor, runs the same QEMU, and answers on its console. */
async function assertAllBack(): Promise<void> {
  const all = await views();
  for (const [name, want] of doms) {
    const v = all.find((x) => x.name === name);
    assert.ok(v, `${name} is listed again`);
    assert.equal(v.domid, want.domid, `${name} keeps its domid`);
    assert.equal(v.uuid, want.uuid, `${name} keeps its uuid`);
    assert.equal(v.pid, want.pid, `${name} keeps its QEMU`);
    assert.equal(v.sponsor, want.sponsor, `${name} keeps its sponsor`);
    assert.equal(v.state, 'running');
    assert.ok(running(want.pid), `${name}'s QEMU still runs`);
    assert.ok(host.qemuPids().includes(want.pid), `${name} is still run by QEMU pid ${want.pid}`);
  }
  assert.equal(all.length, doms.size, 'nothing else is listed');
  for (const name of doms.keys()) {
    const con = await host.console(name);
    assert.equal(
      await con.run(`echo back-$((${doms.get(name)?.domid}*7))`),
      `back-${(doms.get(name)?.domid ?? 0) * 7}`,
    );
    con.close();
  }
}

/** A start that must be refused: by the CLI's autostart and by xenoded itself. */
async function assertRefused(file: string): Promise<void> {
  const cli = await host.xl(['list']);
  assert.notEqual(cli.code, 0, `xenode list is refused: ${cli.stdout}`);
  assert.ok(cli.stderr.includes(file), `the CLI names ${file}: ${cli.stderr}`);
  assert.match(cli.stderr, /xenoded --recover/);
  assert.doesNotMatch(cli.stderr, /failed to start \(exit/, 'the refusal itself, not "failed to start"');
  assert.doesNotMatch(cli.stderr, /^\s+at /m, 'no stack trace');
  assert.equal(cli.stderr.trim().split('\n').length, 1, `one line: ${cli.stderr}`);
  const d = await xenoded([], 20_000);
  assert.equal(d.code, 1, `xenoded exits 1: ${d.stderr}`);
  assert.ok(d.stderr.includes(file), `xenoded names ${file}: ${d.stderr}`);
  assert.match(d.stderr, /xenoded --recover/);
  for (const { pid } of doms.values()) assert.ok(running(pid), 'a refused start leaves the QEMUs alone');
  const pid = host.daemonPid();
  assert.ok(!pid || !running(pid), 'no daemon was left running');
}

async function recover(): Promise<string> {
  const r = await xenoded(['--recover'], 60_000);
  assert.equal(r.code, 0, `xenoded --recover succeeds: ${r.stderr}`);
  return r.stdout + r.stderr;
}

describe('a lost domain table', () => {
  it('two running guests, one of them a sponsor’s', async () => {
    for (const [name, extra] of [
      ['alpha', 'sponsor = "alice"\n'],
      ['beta', ''],
    ] as const) {
      await host.ok(['create', host.writeConfig(`${name}.cfg`, `name = "${name}"\nmemory = 160\n${extra}`)]);
    }
    for (const name of ['alpha', 'beta']) (await ready(name)).close();
    const pids = host.qemuPids();
    for (const v of await views()) {
      const pid = Number(readFileSync(join(host.dir, 'domains', String(v.domid), 'qemu.pid'), 'utf8'));
      assert.ok(pids.includes(pid));
      assert.match(v.uuid, /^[0-9a-f-]{36}$/);
      doms.set(v.name, { domid: v.domid, uuid: v.uuid, pid, sponsor: v.sponsor });
    }
    assert.equal(doms.get('alpha')?.sponsor, 'alice');
    assert.equal(doms.size, 2);
  });

  it('a table truncated under running domains is refused and --recover brings every domain back with its domid', async () => {
    await stopDaemon();
    const db = join(host.dir, 'domains.db');
    writeFileSync(db, '');
    await assertRefused(db);
    const out = await recover();
    for (const [name, d] of doms) assert.match(out, new RegExp(`\\b${d.domid}\\b.*\\b${name}\\b`), out);
    await assertAllBack();
    // The store still knows them (it was not lost here).
    const alpha = doms.get('alpha');
    assert.equal((await host.ok(['store', 'read', `/local/domain/${alpha?.domid}/name`])).trim(), 'alpha');
  });

  it('garbage in the table file is refused naming the file; --recover sets it aside and rebuilds', async () => {
    await stopDaemon();
    const db = join(host.dir, 'domains.db');
    writeFileSync(db, Buffer.alloc(16384, 'garbage! '));
    await assertRefused(db);
    await recover();
    assert.ok(
      readdirSync(host.dir).some((f) => f.startsWith('domains.db.broken-')),
      'the unreadable file is kept for a post-mortem',
    );
    await assertAllBack();
  });

  it('new creates get fresh domids, and a failed create never removes a run directory it did not make', async () => {
    const used = [...doms.values()].map((d) => d.domid);
    // A run directory nobody lists (an orphan's) at the domid that would come next.
    const next = Math.max(...used) + 1;
    const orphan = join(host.dir, 'domains', String(next));
    mkdirSync(orphan, { recursive: true });
    writeFileSync(join(orphan, 'console.log'), 'an orphan still writes here\n');
    // QEMU "starts" and exits at once: the create fails after its run directory was made.
    const r = await host.xl([
      'create',
      host.writeConfig('failing.cfg', 'name = "failing"\nmemory = 128\ndevice_model_override = "/bin/false"\n'),
    ]);
    assert.notEqual(r.code, 0, 'the create fails');
    assert.ok(existsSync(join(orphan, 'console.log')), 'the failed create left the foreign run directory alone');
    await host.ok(['create', host.writeConfig('gamma.cfg', 'name = "gamma"\nmemory = 128\n')]);
    const gamma = (await views()).find((v) => v.name === 'gamma');
    assert.ok(gamma);
    assert.ok(gamma.domid > next, `gamma gets a fresh domid (${gamma.domid}), above every run directory`);
    await host.ok(['destroy', 'gamma']);
    rmSync(orphan, { recursive: true, force: true });
  });

  it('a lost store file is rebuilt for the domains that reattach', async () => {
    await stopDaemon();
    rmSync(join(host.dir, 'store.db'), { force: true });
    await assertAllBack();
    for (const [name, d] of doms) {
      const home = `/local/domain/${d.domid}`;
      assert.equal((await host.ok(['store', 'read', `${home}/name`])).trim(), name);
      assert.equal((await host.ok(['store', 'read', `${home}/sponsor`])).trim(), d.sponsor);
      assert.equal((await host.ok(['store', 'read', `${home}/state`])).trim(), 'running');
      assert.equal((await host.ok(['store', 'read', `${home}/vm`])).trim(), `/vm/${d.uuid}`);
      assert.equal((await host.ok(['store', 'read', `/vm/${d.uuid}/name`])).trim(), name);
    }
  });

  it('garbage in the store file is refused naming the file; --recover sets it aside and the store is rebuilt', async () => {
    await stopDaemon();
    const file = join(host.dir, 'store.db');
    writeFileSync(file, Buffer.alloc(16384, 'not a store '));
    await assertRefused(file);
    await recover();
    assert.ok(readdirSync(host.dir).some((f) => f.startsWith('store.db.broken-')));
    await assertAllBack();
    const beta = doms.get('beta');
    assert.equal((await host.ok(['store', 'read', `/local/domain/${beta?.domid}/name`])).trim(), 'beta');
  });
});
