// The cgroup layer without a kernel: mount detection, xl-to-cgroup units, and
// the files a domain's groups get, in a fake v1 and a fake v2 tree.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  Cgroups,
  cgroupTopName,
  detectCgroupMounts,
  formatCpuSet,
  parseCpuSet,
  quotaForCap,
  sharesForWeight,
  v2WeightForWeight,
} from '../../src/toolstack/cgroups.ts';

const V1_MOUNTS = `tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup /sys/fs/cgroup/cpuset cgroup rw,relatime,cpuset 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
`;

const tmp = mkdtempSync(join(tmpdir(), 'sched-cg-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const read = (...p: string[]) => readFileSync(join(...p), 'utf8');

describe('cgroup mounts', () => {
  it('finds separate v1 mounts, combined ones, v2 with cpu, and nothing else', () => {
    assert.deepEqual(
      detectCgroupMounts(V1_MOUNTS, () => ''),
      {
        mode: 'v1',
        cpu: '/sys/fs/cgroup/cpu',
        cpuacct: '/sys/fs/cgroup/cpuacct',
        cpuset: '/sys/fs/cgroup/cpuset',
      },
    );
    const combined = 'cgroup /c/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\ncgroup /c/cpuset cgroup rw,cpuset 0 0\n';
    assert.equal(detectCgroupMounts(combined, () => '')?.cpuacct, '/c/cpu,cpuacct');
    const v2 = 'cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n';
    assert.deepEqual(
      detectCgroupMounts(v2, () => 'cpuset cpu io memory pids\n'),
      {
        mode: 'v2',
        cpu: '/sys/fs/cgroup',
        cpuacct: '/sys/fs/cgroup',
        cpuset: '/sys/fs/cgroup',
      },
    );
    // This machine's unified tree has no cpu controller; a read-only v1 mount does not count.
    assert.equal(
      detectCgroupMounts(v2, () => 'memory pids'),
      undefined,
    );
    assert.equal(
      detectCgroupMounts(V1_MOUNTS.replaceAll('rw,relatime,cpu ', 'ro,relatime,cpu '), () => ''),
      undefined,
    );
  });

  it('each daemon directory gets its own top group; XENODE_CGROUP names it', () => {
    assert.equal(cgroupTopName('/var/lib/xenode', {}), 'xenode');
    assert.match(cgroupTopName('/tmp/xn-abc', {}), /^xenode-[0-9a-f]{8}$/);
    assert.notEqual(cgroupTopName('/tmp/xn-abc', {}), cgroupTopName('/tmp/xn-abd', {}));
    assert.equal(cgroupTopName('/tmp/xn-abc', { XENODE_CGROUP: 'off' }), 'off');
    assert.equal(Cgroups.probe('off').available, false);
    assert.match(Cgroups.probe('off').why ?? '', /turned off/);
    assert.equal(Cgroups.probe('../etc').available, false);
  });
});

describe("xl's units in cgroup files", () => {
  it('weight: 4 shares per unit (v1), proportional cpu.weight (v2)', () => {
    assert.equal(sharesForWeight(256), 1024);
    assert.equal(sharesForWeight(1), 4);
    assert.equal(sharesForWeight(65535), 262140);
    assert.equal(v2WeightForWeight(256), 100);
    assert.equal(v2WeightForWeight(512), 200);
    assert.equal(v2WeightForWeight(1), 1);
    assert.equal(v2WeightForWeight(65535), 10000);
  });

  it('cap: percent of one CPU per 100 ms period; 0 = none', () => {
    assert.equal(quotaForCap(25), 25_000);
    assert.equal(quotaForCap(150), 150_000);
    assert.equal(quotaForCap(0), undefined);
  });

  it('CPU sets print and parse in the kernel format', () => {
    assert.equal(formatCpuSet([3, 0, 1, 2, 5, 7, 8]), '0-3,5,7-8');
    assert.deepEqual(parseCpuSet('0-3,5\n'), [0, 1, 2, 3, 5]);
    assert.deepEqual(parseCpuSet(''), []);
  });
});

function fakeV1(): { c: Cgroups; root: string } {
  const root = join(tmp, `v1-${Math.random().toString(36).slice(2)}`);
  for (const ctl of ['cpu', 'cpuacct', 'cpuset']) mkdirSync(join(root, ctl), { recursive: true });
  writeFileSync(join(root, 'cpuset', 'cpuset.cpus'), '0-3');
  writeFileSync(join(root, 'cpuset', 'cpuset.mems'), '0');
  const c = Cgroups.at(
    { mode: 'v1', cpu: join(root, 'cpu'), cpuacct: join(root, 'cpuacct'), cpuset: join(root, 'cpuset') },
    'xenode',
  );
  return { c, root };
}

describe('the layout in a fake v1 tree', () => {
  it('attach makes <top>/<sponsor>/dom<N>/vcpuK in each hierarchy, cpusets copied down, threads placed', () => {
    const { c, root } = fakeV1();
    c.attach('alice', 7, 1000, [1001, 1002]);
    for (const ctl of ['cpu', 'cpuacct', 'cpuset']) {
      assert.equal(read(root, ctl, 'xenode/alice/dom7/cgroup.procs'), '1000');
      assert.equal(read(root, ctl, 'xenode/alice/dom7/vcpu0/tasks'), '1001');
      assert.equal(read(root, ctl, 'xenode/alice/dom7/vcpu1/tasks'), '1002');
    }
    // A new v1 cpuset group starts empty: each gets its parent's CPUs and memory nodes.
    for (const g of ['xenode', 'xenode/alice', 'xenode/alice/dom7', 'xenode/alice/dom7/vcpu1']) {
      assert.equal(read(root, 'cpuset', g, 'cpuset.cpus'), '0-3');
      assert.equal(read(root, 'cpuset', g, 'cpuset.mems'), '0');
    }
    assert.equal(c.domainGroup('alice', 7), 'xenode/alice/dom7');
    assert.deepEqual(c.vcpuGroupsOf('alice', 7), [0, 1]);
  });

  it('a new domain never inherits the CPU time of a group an earlier domain with its domid left', () => {
    const { c, root } = fakeV1();
    c.attach('alice', 7, 1000, [1001]);
    writeFileSync(join(root, 'cpuacct', 'xenode/alice/dom7/cpuacct.usage'), '5000000000');
    // The fake tree's groups hold files, so rmdir fails as it does while threads linger.
    c.clearLeftover('alice', 7);
    assert.equal(read(root, 'cpuacct', 'xenode/alice/dom7/cpuacct.usage'), '0');
    // No leftover: nothing to do, nothing made.
    c.clearLeftover('bob', 9);
    assert.equal(existsSync(join(root, 'cpu', 'xenode/bob')), false);
  });

  it('weight, cap and CPUs go to the right files; a domain with fewer vCPUs loses its vcpuN group', () => {
    const { c, root } = fakeV1();
    c.attach('admin', 3, 10, [11, 12]);
    const g = c.domainGroup('admin', 3);
    c.setWeight(g, 512);
    c.setCap(g, 50);
    c.setCpus(c.vcpuGroup('admin', 3, 1), [1, 2, 3]);
    assert.equal(read(root, 'cpu', g, 'cpu.shares'), '2048');
    assert.equal(read(root, 'cpu', g, 'cpu.cfs_quota_us'), '50000');
    assert.equal(read(root, 'cpu', g, 'cpu.cfs_period_us'), '100000');
    assert.equal(c.capOf(g), 50);
    assert.equal(read(root, 'cpuset', g, 'vcpu1', 'cpuset.cpus'), '1-3');
    c.setCap(g, 0);
    assert.equal(read(root, 'cpu', g, 'cpu.cfs_quota_us'), '-1');
    assert.equal(c.capOf(g), 0);
    writeFileSync(join(root, 'cpuacct', g, 'cpuacct.usage'), '123456789\n');
    assert.equal(c.usageNs(g), 123456789);
  });
});

describe('the layout in a fake v2 tree', () => {
  it('one tree: vCPU groups threaded, cpu.weight and cpu.max', () => {
    const root = join(tmp, 'v2');
    mkdirSync(root, { recursive: true });
    const c = Cgroups.at({ mode: 'v2', cpu: root, cpuacct: root, cpuset: root }, 'xenode');
    c.attach('bob', 2, 50, [51]);
    assert.equal(read(root, 'xenode/bob/dom2/cgroup.procs'), '50');
    assert.equal(read(root, 'xenode/bob/dom2/vcpu0/cgroup.type'), 'threaded');
    assert.equal(read(root, 'xenode/bob/dom2/vcpu0/cgroup.threads'), '51');
    const g = c.domainGroup('bob', 2);
    c.setWeight(g, 512);
    c.setCap(g, 25);
    assert.equal(read(root, g, 'cpu.weight'), '200');
    assert.equal(read(root, g, 'cpu.max'), '25000 100000');
    assert.equal(c.capOf(g), 25);
    c.setCap(g, 0);
    assert.equal(read(root, g, 'cpu.max'), 'max 100000');
    writeFileSync(join(root, g, 'cpu.stat'), 'usage_usec 2500\nuser_usec 2000\n');
    assert.equal(c.usageNs(g), 2_500_000);
  });
});

describe('stale groups', () => {
  it("never sweeps its own top, a fresh group, or another daemon's group with threads", () => {
    const { c, root } = fakeV1();
    const mounts = {
      mode: 'v1' as const,
      cpu: join(root, 'cpu'),
      cpuacct: join(root, 'cpuacct'),
      cpuset: join(root, 'cpuset'),
    };
    Cgroups.at(mounts, 'xenode-0000bbbb').attach('admin', 1, 6, [7]);
    c.attach('admin', 1, 8, []);
    assert.deepEqual(c.sweepStale(), [], 'too fresh');
    // An hour later: bbbb still has a vCPU thread (its tasks file), xenode is our own.
    assert.deepEqual(c.sweepStale(Date.now() + 3_600_000), []);
    assert.equal(read(root, 'cpu', 'xenode-0000bbbb/admin/dom1/vcpu0/tasks'), '7');
  });
});
