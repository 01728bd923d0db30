// Issue 25: xenoded speaks xenstored's wire protocol. Driven with Debian's
// unmodified Xen tools (xenstore-utils, and test-xenstore from xen-utils-4.17)
// pointed at the daemon through XENSTORED_PATH; no guest is needed.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestHost } from './helpers/host.ts';
import { XS, XsClient } from './helpers/xs-wire.ts';

/** scripts/setup.sh installs it, or unpacks it here when the package cannot be installed. */
const TEST_XENSTORE = [
  '/usr/lib/xen-4.17/bin/test-xenstore',
  join(homedir(), '.cache', 'xenode', 'xen-utils', 'usr', 'lib', 'xen-4.17', 'bin', 'test-xenstore'),
].find((p) => existsSync(p));

let host: TestHost;
let sock: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], socket = sock): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, XENSTORED_PATH: socket }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function ok(cmd: string, args: string[], socket = sock): Promise<string> {
  const r = await run(cmd, args, socket);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const domainSocket = (domid: number) => join(host.dir, 'xenstored.d', `${domid}.sock`);

async function until(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

before(async () => {
  host = new TestHost();
  await host.ok(['list']);
  sock = join(host.dir, 'xenstored.sock');
});

after(async () => {
  await host?.cleanup();
});

describe('xenstored socket', () => {
  it('is in the daemon directory, a socket of mode 0600', () => {
    const st = statSync(sock);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(statSync(join(host.dir, 'xenstored.d')).mode & 0o777, 0o700);
  });

  it('xenstore-write, -read, -exists, -list, -ls and -rm work against it', async () => {
    await ok('xenstore-write', ['/tool/xs/a', '1', '/tool/xs/b', 'two words']);
    assert.equal(await ok('xenstore-read', ['/tool/xs/a']), '1\n');
    assert.equal(await ok('xenstore-read', ['/tool/xs/b']), 'two words\n');
    assert.equal((await run('xenstore-exists', ['/tool/xs/a'])).code, 0);
    assert.notEqual((await run('xenstore-exists', ['/tool/xs/none'])).code, 0);
    assert.equal(await ok('xenstore-list', ['/tool/xs']), 'a\nb\n');
    const ls = await ok('xenstore-ls', ['-p', '/tool']);
    assert.match(ls, /^xs = "" [. ]*\(n0\)$/m);
    assert.match(ls, /^ a = "1" [. ]*\(n0\)$/m);
    // The same store as Xenode's own CLI and API.
    assert.equal(await host.ok(['store', 'read', '/tool/xs/b']), 'two words\n');
    await ok('xenstore-rm', ['/tool/xs/a']);
    const gone = await run('xenstore-read', ['/tool/xs/a']);
    assert.notEqual(gone.code, 0);
    assert.equal(await ok('xenstore-list', ['/tool/xs']), 'b\n');
    // Relative paths on a dom0 socket are below /local/domain/0, as with xenstored.
    await ok('xenstore-write', ['rel/k', 'v']);
    assert.equal(await host.ok(['store', 'read', '/local/domain/0/rel/k']), 'v\n');
  });

  it('xenstore-watch sees a write made through `xenode store write`', async () => {
    const watcher = spawn('xenstore-watch', ['-n', '2', '/tool/w'], {
      env: { ...process.env, XENSTORED_PATH: sock },
    });
    let out = '';
    const lines = () => out.split('\n').filter((l) => l !== '');
    watcher.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const exited = new Promise<number>((r) => watcher.on('exit', (code) => r(code ?? -1)));
    // The first event comes at registration: the watch is in place.
    await until(() => lines().length >= 1, 'the registration event');
    await host.ok(['store', 'write', '/tool/w/x', 'hello']);
    assert.equal(await exited, 0);
    assert.deepEqual(lines(), ['/tool/w', '/tool/w/x']);
  });

  it('test-xenstore passes all its tests', async () => {
    assert.ok(TEST_XENSTORE, 'test-xenstore is installed (scripts/setup.sh)');
    const r = await run(TEST_XENSTORE, ['-i', '5']);
    assert.equal(r.code, 0, `test-xenstore: ${r.stdout}${r.stderr}`);
    const results = r.stdout.split('\n').filter((l) => /^\S.*: /.test(l));
    assert.equal(results.length, 12, r.stdout);
    for (const l of results) assert.match(l, /avg: \d+ ns/, l);
    assert.doesNotMatch(r.stdout, /failed|Exhaustive/);
  });
});

describe('a domain’s connection', () => {
  let admin: XsClient;

  before(async () => {
    admin = await XsClient.open(sock);
    assert.equal(await admin.text(XS.INTRODUCE, '5\x000\x001\0'), 'OK');
    assert.equal(await admin.text(XS.INTRODUCE, '6\x000\x001\0'), 'OK');
    await until(() => existsSync(domainSocket(5)) && existsSync(domainSocket(6)), 'the domains’ sockets');
  });

  after(() => admin?.close());

  it('has a socket of mode 0600 per introduced domain', () => {
    assert.equal(statSync(domainSocket(5)).mode & 0o777, 0o600);
  });

  it('acts with that domain’s permissions, and xenstore-chmod by its owner takes effect', async () => {
    const s5 = domainSocket(5);
    const s6 = domainSocket(6);
    await ok('xenstore-write', ['/local/domain/5/data/secret', 's3cr3t'], s5);
    // Relative paths are below the domain's home.
    assert.equal(await ok('xenstore-read', ['data/secret'], s5), 's3cr3t\n');
    // The other domain may not read it, list the home, nor chmod it.
    assert.notEqual((await run('xenstore-read', ['/local/domain/5/data/secret'], s6)).code, 0);
    assert.notEqual((await run('xenstore-ls', ['/local/domain/5'], s6)).code, 0);
    assert.notEqual((await run('xenstore-chmod', ['/local/domain/5/data/secret', 'n6'], s6)).code, 0);
    assert.notEqual((await run('xenstore-write', ['/tool/x', 'y'], s5)).code, 0, 'dom0’s nodes are not a domain’s');
    // The owner grants read to domain 6: then, and only then, it reads; it still cannot write.
    await ok('xenstore-chmod', ['/local/domain/5/data/secret', 'n5', 'r6'], s5);
    assert.equal(await host.ok(['store', 'perms', '/local/domain/5/data/secret']), 'n5 r6\n');
    assert.equal(await ok('xenstore-read', ['/local/domain/5/data/secret'], s6), 's3cr3t\n');
    assert.notEqual((await run('xenstore-write', ['/local/domain/5/data/secret', 'x'], s6)).code, 0);
    // Only dom0 may change the owner.
    assert.notEqual((await run('xenstore-chmod', ['/local/domain/5/data/secret', 'n6'], s5)).code, 0);
    await ok('xenstore-chmod', ['/local/domain/5/data/secret', 'n5'], s5);
    assert.notEqual((await run('xenstore-read', ['/local/domain/5/data/secret'], s6)).code, 0);
  });

  it('RELEASE ends the domain’s connections and removes its socket', async () => {
    const g = await XsClient.open(domainSocket(6));
    assert.equal(await g.text(XS.GET_DOMAIN_PATH, '6\0'), '/local/domain/6');
    assert.equal(await admin.text(XS.RELEASE, '6\0'), 'OK');
    await g.waitClosed();
    await until(() => !existsSync(domainSocket(6)), 'the socket to go');
    assert.equal(await admin.text(XS.IS_DOMAIN_INTRODUCED, '6\0'), 'F');
  });
});

describe('after a daemon restart', () => {
  it('the sockets are back and serve the same store', async () => {
    // Wire writes are group-committed; a write-through one (the CLI's) writes the queued ones with it.
    await ok('xenstore-write', ['/tool/xs/late', 'acknowledged']);
    await host.ok(['store', 'write', '/tool/w/through', 'yes']);
    host.killDaemon('SIGKILL');
    await host.ok(['list']);
    assert.equal(await ok('xenstore-read', ['/tool/xs/b']), 'two words\n');
    assert.equal(await ok('xenstore-read', ['/tool/xs/late']), 'acknowledged\n');
    assert.equal(await host.ok(['store', 'read', '/tool/w/through']), 'yes\n');
    await until(() => existsSync(domainSocket(5)), 'domain 5’s socket');
    assert.equal(await ok('xenstore-read', ['data/secret'], domainSocket(5)), 's3cr3t\n');
    assert.ok(!existsSync(domainSocket(6)));
  });
});
