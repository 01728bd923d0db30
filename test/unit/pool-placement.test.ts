// The pool's placement rule and its secret handling, without etcd.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HostRecord, IndexEntry } from '../../src/features/pool/model.ts';
import { place } from '../../src/features/pool/placement.ts';
import { newSecret, seal, secretHash, secretMatches, unseal } from '../../src/features/pool/secret.ts';

function host(name: string, memTotalMiB = 4096, load = 0): HostRecord {
  return { name, address: '127.0.0.1:1', memTotalMiB, cpus: 2, load, version: '0', at: '' };
}

function dom(name: string, on: string, memory = 1024): IndexEntry {
  return { name, uuid: `u-${name}`, host: on, state: 'running', ha: false, memory, sponsor: 'admin' };
}

describe('pool placement', () => {
  it('takes the host with fewest domains, then most free memory, and says why', () => {
    const p = place([host('a'), host('b'), host('c')], [dom('x', 'a'), dom('y', 'b')], 512);
    assert.equal(p.host.name, 'c');
    assert.match(p.reason, /^0 domains, 4096 MiB free of 4096/);
    assert.match(p.reason, /a: 1 domain, 3072 MiB free/);
  });

  it('skips hosts without the memory, and refuses when none has it', () => {
    const p = place(
      [host('a', 2048), host('b', 8192)],
      [dom('x', 'a', 1800), dom('y', 'b', 1000), dom('z', 'b', 1000)],
      512,
    );
    assert.equal(p.host.name, 'b');
    assert.match(p.reason, /a: 248 MiB free < 512/);
    assert.throws(() => place([host('a', 1024)], [], 2048), /no pool host can take a 2048 MiB domain/);
  });

  it('anti-affinity keeps off the hosts of the named domains; refused when nothing is left', () => {
    const hosts = [host('a'), host('b')];
    const idx = [dom('web1', 'a')];
    assert.equal(place(hosts, idx, 256, ['web1']).host.name, 'b');
    assert.throws(() => place(hosts, [...idx, dom('web2', 'b')], 256, ['web1', 'web2']), /anti-affinity/);
  });

  it('is the same on every host: ties broken by load, then name', () => {
    assert.equal(place([host('b'), host('a')], [], 256).host.name, 'a');
    assert.equal(place([host('a', 4096, 3), host('b', 4096, 1)], [], 256).host.name, 'b');
  });
});

describe('pool secret', () => {
  it('matches only itself; sealed peer tokens open only with it', () => {
    const s = newSecret();
    assert.match(s, /^xnpool_[0-9a-f]{64}$/);
    assert.ok(secretMatches(s, secretHash(s)));
    assert.ok(!secretMatches(newSecret(), secretHash(s)));
    const sealed = seal(s, 'xn_abc_token');
    assert.equal(unseal(s, sealed), 'xn_abc_token');
    assert.throws(() => unseal(newSecret(), sealed), /not sealed with this pool secret/);
    const raw = Buffer.from(sealed, 'base64');
    raw[raw.length - 1] = (raw[raw.length - 1] ?? 0) ^ 1;
    assert.throws(() => unseal(s, raw.toString('base64')), /not sealed/);
    assert.throws(() => unseal(s, 'AAAA'), /damaged/);
  });
});
