// cpus= / cpus_soft= per vCPU, vcpu-pin's rewrite of the config, and the
// layouts of vcpu-list and sched-credit, against xl's printf formats.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DomainConfig } from '../../src/config/types.ts';
import { XenodeError } from '../../src/errors.ts';
import { cpusOf, type HostCpus, hardSpec, pinConfig, showCpus, softSpec } from '../../src/features/sched/affinity.ts';
import { formatSchedRows, formatVcpuRow, VCPU_HEADER } from '../../src/features/sched/commands.ts';

const HOST: HostCpus = {
  online: [0, 1, 2, 3, 4, 5, 6, 7],
  nodes: new Map([
    [0, [0, 1, 2, 3]],
    [1, [4, 5, 6, 7]],
  ]),
};

const base = { maxvcpus: 3, vcpus: 1 } as DomainConfig;

describe('CPU lists', () => {
  it('every form xl accepts', () => {
    assert.deepEqual(cpusOf('all', HOST), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(cpusOf('0-3,^1', HOST), [0, 2, 3]);
    assert.deepEqual(cpusOf('all,^7', HOST), [0, 1, 2, 3, 4, 5, 6]);
    assert.deepEqual(cpusOf('nodes:1', HOST), [4, 5, 6, 7]);
    assert.deepEqual(cpusOf('nodes:0-1,^node:1', HOST), [0, 1, 2, 3]);
    assert.deepEqual(cpusOf('6-9', HOST), [6, 7]);
  });

  it('refuses malformed, oversized and empty-on-this-host lists with exit 1', () => {
    for (const bad of ['1-x', '^all', '3-1', '', '0,'.repeat(600), '9-12']) {
      assert.throws(
        () => cpusOf(bad, HOST),
        (e: unknown) => e instanceof XenodeError && e.exitCode === 1,
        JSON.stringify(bad.slice(0, 20)),
      );
    }
  });

  it('the list-per-vCPU form: entries beyond the list mean all', () => {
    const cfg = { ...base, cpus_per_vcpu: ['2', '3'] };
    assert.deepEqual(
      [0, 1, 2].map((i) => hardSpec(cfg, i)),
      ['2', '3', 'all'],
    );
    assert.equal(hardSpec({ ...base, cpus: '0-1' }, 2), '0-1');
    assert.equal(softSpec(base, 0), 'all');
  });

  it('xl prints "all" for every CPU', () => {
    assert.equal(showCpus([0, 1, 2, 3, 4, 5, 6, 7], HOST), 'all');
    assert.equal(showCpus([0, 2, 3], HOST), '0,2-3');
  });
});

describe("vcpu-pin's config", () => {
  it('all vCPUs: one string ("all" = no pinning); one vCPU: the per-vCPU list, folded back when equal', () => {
    const a = pinConfig(base, 'hard', 'all', '0-1');
    assert.equal(a.cpus, '0-1');
    assert.equal(a.cpus_per_vcpu, undefined);
    const b = pinConfig(a, 'hard', 1, '3');
    assert.equal(b.cpus, undefined);
    assert.deepEqual(b.cpus_per_vcpu, ['0-1', '3', '0-1']);
    const c = pinConfig(b, 'hard', 1, '0-1');
    assert.equal(c.cpus, '0-1');
    assert.equal(c.cpus_per_vcpu, undefined);
    assert.equal(pinConfig(c, 'hard', 'all', 'all').cpus, undefined);
    const s = pinConfig(base, 'soft', 0, '4');
    assert.deepEqual(s.cpus_soft_per_vcpu, ['4', 'all', 'all']);
    assert.equal(s.cpus, undefined);
  });
});

describe('layouts', () => {
  it("vcpu-list as xl's print_vcpuinfo", () => {
    assert.equal(
      VCPU_HEADER,
      'Name                                ID  VCPU   CPU State   Time(s) Affinity (Hard / Soft)',
    );
    const on = {
      vcpu: 0,
      online: true,
      cpu: 1,
      running: false,
      blocked: true,
      paused: false,
      seconds: 5.24,
      hard: 'all',
      soft: '0-3',
    };
    // printf("%-32s %5u %5u", ...) then ("%5u %3c%c- ") then ("%9.1f  ") then "hard / soft".
    assert.equal(formatVcpuRow('vm1', 3, on), `${'vm1'.padEnd(32)}     3     0    1   -b-       5.2  all / 0-3`);
    const off = { ...on, vcpu: 1, online: false, cpu: undefined, blocked: false, seconds: 0 };
    assert.equal(formatVcpuRow('vm1', 3, off), `${'vm1'.padEnd(32)}     3     1    -   --p       0.0  all / 0-3`);
  });

  it("sched-credit as xl's %-33s %4d %6d %4d", () => {
    assert.equal(
      formatSchedRows([{ name: 'Domain-0', domid: 0, weight: 256, cap: 0 }]),
      'Name                                ID Weight  Cap\nDomain-0                             0    256    0\n',
    );
  });
});
