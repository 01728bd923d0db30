// Issue 23: Xenode as a Debian package. `npm run package`'s builder makes the
// .deb from the bundles; it is installed with dpkg into a clean Debian 12 root
// (mmdebstrap, cached; an overlay per run) holding only its dependencies; there
// `xenode --version`, `man -w xenode` and the completion of `xenode cr<TAB>` (bash;
// zsh with the host's zsh) work, /usr/sbin/xenoded runs Node with the daemon's V8 flags,
// the state directory exists, removal keeps it and purge deletes it. The unit
// passes `systemd-analyze verify` in that root. Lintian runs with XENODE_LINTIAN=1
// (two minutes here): no errors.

import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildDeb } from '../packaging/build-deb.ts';
import { COMMANDS } from '../src/cli/commands.ts';
import { serviceManages } from '../src/cli/service.ts';
import { CONFIG_KEYS } from '../src/config/schema.ts';
import { DAEMON_NODE_FLAGS } from '../src/toolstack/daemon-node-flags.ts';
import { baseRoot, type Overlay, overlayRoot } from './helpers/package-root.ts';

const work = mkdtempSync(join(tmpdir(), 'xenode-pkg-test-'));
let deb: string;
let version: string;
let listing: string[];
let root: Overlay | undefined;

/** Stop the daemon the test started in the root (by its pid), and wait until it is gone. */
function stopDaemon(pid: number): void {
  if (!Number.isInteger(pid) || pid <= 0) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const until = Date.now() + 20_000;
  while (Date.now() < until) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    execFileSync('sleep', ['0.1']);
  }
  process.kill(pid, 'SIGKILL');
}

/** Completion candidates bash offers for the words typed (the last one is being completed). */
function complete(o: Overlay, words: string[], env: Record<string, string> = {}): string[] {
  const script = `source /usr/share/bash-completion/completions/xenode
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}
_xenode; printf '%s\\n' "\${COMPREPLY[@]}"`;
  return o
    .chroot(['bash', '-c', script], env)
    .split('\n')
    .filter((l) => l !== '');
}

describe('the Debian package', { timeout: 30 * 60_000 }, () => {
  before(() => {
    const r = buildDeb({ outDir: work, build: false });
    deb = r.deb;
    version = r.version;
    listing = execFileSync('dpkg', ['-c', deb], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => (l.split(/\s+/)[5] ?? '').replace(/^\.\//, '/'));
    const base = baseRoot((m) => process.stderr.write(`package test: ${m}\n`));
    root = overlayRoot(base, join(work, 'root'));
    copyFileSync(deb, join(root.root, 'tmp', 'xenode.deb'));
  });

  after(() => {
    root?.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('is named xenode_<version>_amd64.deb and lists the CLI, daemon, unit, man pages, completion and modules', () => {
    assert.match(deb, new RegExp(`/xenode_${version.replace(/\./g, '\\.')}_amd64\\.deb$`));
    for (const f of [
      '/usr/bin/xenode',
      '/usr/sbin/xenoded',
      '/usr/lib/xenode/dist/xenode.cjs',
      '/usr/lib/xenode/dist/xenoded.mjs',
      '/usr/lib/xenode/dist/xenode-switch.mjs',
      '/usr/lib/xenode/dist/xenode-blk.mjs',
      '/usr/lib/xenode/web/dist/index.html',
      '/usr/lib/xenode/node_modules/better-sqlite3/build/Release/better_sqlite3.node',
      '/usr/lib/xenode/node_modules/koffi/package.json',
      '/usr/lib/xenode/node_modules/@node-rs/xxhash/package.json',
      '/lib/systemd/system/xenoded.service',
      '/usr/share/man/man1/xenode.1.gz',
      '/usr/share/man/man5/xenode.cfg.5.gz',
      '/usr/share/man/man8/xenoded.8.gz',
      '/usr/share/bash-completion/completions/xenode',
      '/usr/share/zsh/vendor-completions/_xenode',
      '/usr/share/doc/xenode/copyright',
    ]) {
      assert.ok(listing.includes(f), `${f} not in dpkg -c`);
    }
    // Only what runs: no sources, source maps, build trees or dev dependencies.
    const junk = listing.filter((f) =>
      /\.map$|better-sqlite3\/(src|deps)\/|\/typescript\/|\/esbuild\/|\/fastify\//.test(f),
    );
    assert.deepEqual(junk, []);
    const control = execFileSync('dpkg-deb', ['-f', deb, 'Depends'], { encoding: 'utf8' });
    for (const d of ['qemu-system-x86', 'nodejs (>= 20.19)', 'libc6'])
      assert.ok(control.includes(d), `Depends lacks ${d}`);
  });

  it('installs with dpkg into a clean Debian 12 root: state directory made, unit enabled', () => {
    const o = root as Overlay;
    assert.equal(existsSync(join(o.root, 'usr/bin/xenode')), false);
    o.chroot(['dpkg', '-i', '/tmp/xenode.deb']);
    const st = statSync(join(o.root, 'var/lib/xenode'));
    assert.ok(st.isDirectory());
    assert.equal(st.mode & 0o777, 0o700);
    const wants = join(o.root, 'etc/systemd/system/multi-user.target.wants/xenoded.service');
    assert.ok(lstatSync(wants).isSymbolicLink(), 'xenoded.service not enabled');
  });

  it('runs xenode --version there', () => {
    assert.equal((root as Overlay).chroot(['xenode', '--version']).trim(), version);
  });

  it('starts xenoded there: the bundles find their modules (natives included) in /usr/lib/xenode', () => {
    const o = root as Overlay;
    // No systemd in the root, so the CLI starts a daemon of its own, as on a host without the service running.
    try {
      let info: string;
      try {
        info = o.chroot(['xenode', 'info'], { XENODE_LISTEN: 'none' });
      } catch (e) {
        const out = join(o.root, 'var/lib/xenode/xenoded.out');
        throw new Error(`${String(e)}\n${existsSync(out) ? readFileSync(out, 'utf8').slice(-3000) : ''}`);
      }
      assert.match(info, new RegExp(`^xenode_version\\s*:\\s*${version.replace(/\./g, '\\.')}$`, 'm'));
      assert.match(info, /^device_model_version\s*:\s*QEMU emulator version/m);
    } finally {
      const pidFile = join(o.root, 'var/lib/xenode/xenoded.pid');
      if (existsSync(pidFile)) stopDaemon(Number(readFileSync(pidFile, 'utf8')));
    }
  });

  it('runs /usr/sbin/xenoded (what xenoded.service starts) with the flags the CLI gives its daemon', async () => {
    const o = root as Overlay;
    const launcher = readFileSync(join(o.root, 'usr/sbin/xenoded'), 'utf8');
    for (const f of DAEMON_NODE_FLAGS) assert.ok(launcher.includes(f), `launcher lacks ${f}`);
    // And the running daemon has them: its command line, read from /proc once it says it started
    // (in the foreground its log goes to stderr). chroot, env and the launcher exec: one process.
    const child = spawn(
      'chroot',
      [o.root, 'env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'XENODE_LISTEN=none', '/usr/sbin/xenoded'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    try {
      let err = '';
      await new Promise<void>((resolve, reject) => {
        child.stderr?.on('data', (c: Buffer) => {
          err += c.toString();
          if (/INFO {2}xenoded \S+ started \(pid \d+\)/.test(err)) resolve();
        });
        child.once('exit', (code) => reject(new Error(`xenoded exited (${code}): ${err}`)));
      });
      assert.match(err, new RegExp(`started \\(pid ${child.pid}\\)`));
      const argv = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
      assert.deepEqual(argv.slice(1, 1 + DAEMON_NODE_FLAGS.length), [...DAEMON_NODE_FLAGS]);
      assert.ok(argv.includes('/usr/lib/xenode/dist/xenoded.mjs'), argv.join(' '));
      child.kill('SIGTERM');
      await exited;
      assert.equal(
        existsSync(join(o.root, 'var/lib/xenode/xenoded.pid')),
        false,
        `stopped cleanly (exit ${child.exitCode} ${child.signalCode}): ${err}`,
      );
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('finds the man pages with man -w', () => {
    const o = root as Overlay;
    assert.equal(o.chroot(['man', '-w', 'xenode']).trim(), '/usr/share/man/man1/xenode.1.gz');
    assert.equal(o.chroot(['man', '-w', '5', 'xenode.cfg']).trim(), '/usr/share/man/man5/xenode.cfg.5.gz');
    // Every command and every key is in the installed pages (generated from the tables at package time).
    const page1 = o.chroot(['man', '-P', 'cat', 'xenode'], { MANWIDTH: '200', LANG: 'C.UTF-8' });
    for (const c of COMMANDS) assert.match(page1, new RegExp(`^ {7}${c.name.replace(/-/g, '[-‐]')}\\b`, 'm'), c.name);
    const page5 = o.chroot(['man', '-P', 'cat', '5', 'xenode.cfg'], { MANWIDTH: '200', LANG: 'C.UTF-8' });
    for (const k of CONFIG_KEYS) assert.match(page5, new RegExp(`^ {7}${k.name}\\b`, 'm'), k.name);
  });

  it('completes xenode cr<TAB> to create, and options per command', () => {
    const o = root as Overlay;
    assert.deepEqual(complete(o, ['xenode', 'cr']), ['create']);
    assert.deepEqual(complete(o, ['xenode', 'shutdown', '-']), ['-w', '--wait', '-F', '--help']);
  });

  it("completes xenode cr<TAB> in zsh with the installed _xenode (the host's zsh: the base root has none)", () => {
    const o = root as Overlay;
    const zsh = (line: string) =>
      execFileSync(
        'zsh',
        [
          '-f',
          new URL('./helpers/zsh-complete.zsh', import.meta.url).pathname,
          join(o.root, 'usr/share/zsh/vendor-completions'),
          line,
        ],
        { encoding: 'utf8', timeout: 60_000 },
      )
        .split('\n')
        .filter((l) => l !== '');
    assert.deepEqual(zsh('xenode cr'), ['create']);
    assert.deepEqual(zsh('xenode shutdown -').sort(), ['--help', '--wait', '-F', '-w']);
  });

  it('completing a domain name never starts a daemon', () => {
    const o = root as Overlay;
    assert.deepEqual(complete(o, ['xenode', 'destroy', '']), []);
    assert.equal(existsSync(join(o.root, 'var/lib/xenode/xenoded.sock')), false);
    assert.equal(existsSync(join(o.root, 'var/lib/xenode/xenoded.pid')), false);
  });

  it('has a unit that systemd-analyze verify accepts', () => {
    const o = root as Overlay;
    const unit = readFileSync(join(o.root, 'lib/systemd/system/xenoded.service'), 'utf8');
    assert.match(unit, /^KillMode=process$/m);
    assert.match(unit, /^Restart=on-failure$/m);
    // The base root has no systemd of its own (minbase), so the host's systemd-analyze checks the
    // installed unit as it is, its one command re-rooted into the package's root: exit status 0 and
    // no complaint (it reports unknown keys, bad values, a missing or non-executable command).
    const dir = join(work, 'verify');
    mkdirSync(dir);
    writeFileSync(join(dir, 'xenoded.service'), unit.replace(/^ExecStart=\//m, `ExecStart=${o.root}/`));
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', join(dir, 'xenoded.service')], { encoding: 'utf8' });
    assert.equal(`${r.stdout}${r.stderr}`.trim(), '');
    assert.equal(r.status, 0);
  });

  it('keeps /var/lib/xenode on removal and deletes it on purge', () => {
    const o = root as Overlay;
    writeFileSync(join(o.root, 'var/lib/xenode/domains.db'), 'state');
    o.chroot(['dpkg', '-r', 'xenode']);
    assert.equal(existsSync(join(o.root, 'usr/bin/xenode')), false);
    assert.equal(readFileSync(join(o.root, 'var/lib/xenode/domains.db'), 'utf8'), 'state');
    o.chroot(['dpkg', '-P', 'xenode']);
    assert.equal(existsSync(join(o.root, 'var/lib/xenode')), false);
  });

  it('has no lintian errors (XENODE_LINTIAN=1)', { skip: process.env.XENODE_LINTIAN !== '1' }, () => {
    let out = '';
    try {
      out = execFileSync('lintian', ['--tag-display-limit', '0', deb], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (e) {
      out = String((e as { stdout?: string }).stdout ?? e);
    }
    assert.deepEqual(
      out.split('\n').filter((l) => l.startsWith('E:')),
      [],
    );
  });
});

describe('which daemon the CLI starts', () => {
  const exists = (paths: string[]) => (p: string) => paths.includes(p);
  const unit = '/lib/systemd/system/xenoded.service';
  it("asks systemd for xenoded.service when the unit is installed, systemd runs, and the dir is the service's", () => {
    assert.equal(serviceManages('/var/lib/xenode', { uid: 0, exists: exists(['/run/systemd/system', unit]) }), true);
  });
  it('starts its own daemon otherwise', () => {
    assert.equal(serviceManages('/var/lib/xenode', { uid: 0, exists: exists([unit]) }), false, 'no systemd');
    assert.equal(
      serviceManages('/var/lib/xenode', { uid: 0, exists: exists(['/run/systemd/system']) }),
      false,
      'no unit',
    );
    assert.equal(
      serviceManages('/tmp/xn-1', { uid: 0, exists: exists(['/run/systemd/system', unit]) }),
      false,
      'XENODE_DIR',
    );
    assert.equal(
      serviceManages('/var/lib/xenode', { uid: 1000, exists: exists(['/run/systemd/system', unit]) }),
      false,
      'user',
    );
  });
});
