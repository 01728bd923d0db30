// Issue 23: shell completion against a running daemon. The bash and zsh scripts
// generated from the command table complete domain names from `xenode list` of the
// daemon that runs: the admin sees every domain, a sponsor only its own (the list
// the API gives it), and a sponsor without domains gets none. zsh runs its real
// completion system in a pseudo-terminal (test/helpers/zsh-complete.zsh).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import { renderBashCompletion, renderZshCompletion } from '../scripts/gen-completion.ts';
import { ROOT, TestHost, XENODE_BIN } from './helpers/host.ts';

const work = mkdtempSync(join(tmpdir(), 'xenode-compl-'));
const bashScript = join(work, 'xenode.bash');
const zshDir = join(work, 'zsh');
const binDir = join(work, 'bin');
let host: TestHost;
let alice: string;
let bob: string;

function env(token?: string): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...host.env, PATH: `${binDir}:${process.env.PATH}` };
  if (token) Object.assign(e, { XENODE_URL: `http://127.0.0.1:${host.tcpPort()}`, XENODE_TOKEN: token });
  return e;
}

function bash(words: string[], token?: string): string[] {
  const script = `source ${bashScript}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}
_xenode; printf '%s\\n' "\${COMPREPLY[@]}"`;
  return execFileSync('bash', ['-c', script], { env: env(token), encoding: 'utf8', timeout: 60_000 })
    .split('\n')
    .filter((l) => l !== '')
    .sort();
}

function zsh(line: string, token?: string): string[] {
  return execFileSync('zsh', ['-f', join(ROOT, 'test/helpers/zsh-complete.zsh'), zshDir, line], {
    env: env(token),
    encoding: 'utf8',
    timeout: 60_000,
  })
    .split('\n')
    .filter((l) => l !== '')
    .sort();
}

describe('completion of domain names from a running daemon', { timeout: 10 * 60_000 }, () => {
  before(async () => {
    await ensureDefaultGuest();
    writeFileSync(bashScript, renderBashCompletion());
    mkdirSync(zshDir);
    writeFileSync(join(zshDir, '_xenode'), renderZshCompletion());
    mkdirSync(binDir);
    symlinkSync(XENODE_BIN, join(binDir, 'xenode'));
    host = new TestHost();
    await host.ok(['create', '-p', 'name=web-admin', 'memory=64']);
    alice = (await host.ok(['token', 'create', 'alice'])).trim();
    bob = (await host.ok(['token', 'create', 'bob'])).trim();
    // Throws (and says why) if the sponsor's create fails.
    execFileSync(XENODE_BIN, ['create', '-p', 'name=web-alice', 'memory=64'], { env: env(alice), stdio: 'pipe' });
  });

  after(async () => {
    await host?.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('bash: the admin gets every domain, after the command and after a domain option', () => {
    assert.deepEqual(bash(['xenode', 'destroy', '']), ['web-admin', 'web-alice']);
    assert.deepEqual(bash(['xenode', 'console', 'web-al']), ['web-alice']);
    assert.deepEqual(bash(['xenode', 'list', '']), ['web-admin', 'web-alice']);
  });

  it('zsh: the same, through compinit; commands with their summaries, options', () => {
    assert.deepEqual(zsh('xenode cr'), ['create']);
    assert.deepEqual(zsh('xenode shutdown -'), ['--help', '--wait', '-F', '-w']);
    assert.deepEqual(zsh('xenode destroy '), ['web-admin', 'web-alice']);
    assert.deepEqual(zsh('xenode console web-al'), ['web-alice']);
  });

  it("a sponsor's completion offers its own domains only; one without domains gets none", () => {
    assert.deepEqual(bash(['xenode', 'destroy', ''], alice), ['web-alice']);
    assert.deepEqual(zsh('xenode destroy ', alice), ['web-alice']);
    assert.deepEqual(bash(['xenode', 'destroy', ''], bob), []);
    assert.deepEqual(zsh('xenode destroy ', bob), []);
    assert.deepEqual(bash(['xenode', 'destroy', ''], 'not-a-token'), [], 'a bad token: nothing, no error text');
  });
});
