// sched-credit, sched-credit2, vcpu-list, vcpu-pin and vcpu-set with xl's
// options, layouts and exit codes (xl_sched.c, xl_vcpu.c).

import type { DomainView } from '../../api/views.ts';
import type { ApiClient } from '../../cli/client.ts';
import type { CommandSpec } from '../../cli/command-spec.ts';
import { XenodeError } from '../../errors.ts';
import type { SchedView, VcpuView } from './sched.ts';

const enc = encodeURIComponent;
/** Xenode has one pool, named as Xen's first. */
const POOL = 'Pool-0';

function fail(msg: string): XenodeError {
  return new XenodeError('usage', msg, { exitCode: 1 });
}

/** xl's sched-credit header and rows (`%-33s %4d %6d %4d`). */
export function formatSchedRows(rows: SchedView[], header = true): string {
  const lines = header ? [`${'Name'.padEnd(33)} ${'ID'.padStart(4)} ${'Weight'.padStart(6)} ${'Cap'.padStart(4)}`] : [];
  for (const r of rows)
    lines.push(
      `${r.name.padEnd(33)} ${String(r.domid).padStart(4)} ${String(r.weight).padStart(6)} ${String(r.cap).padStart(4)}`,
    );
  return `${lines.join('\n')}\n`;
}

/** The pool line: Xenode's pool has no credit parameters (Linux's CFS schedules), which xl prints so. */
export function poolLine(): string {
  return `Cpupool ${POOL}: [sched params unavailable]\n`;
}

export const VCPU_HEADER = `${'Name'.padEnd(32)} ${'ID'.padStart(5)} ${'VCPU'.padStart(5)} ${'CPU'.padStart(5)} ${'State'.padStart(5)} ${'Time(s)'.padStart(9)} Affinity (Hard / Soft)`;

/** One vcpu-list row exactly as xl prints it (print_vcpuinfo). */
export function formatVcpuRow(name: string, domid: number, v: VcpuView): string {
  const head = `${name.padEnd(32)} ${String(domid).padStart(5)} ${String(v.vcpu).padStart(5)}`;
  const cpuState = !v.online
    ? `${'-'.padStart(5)} ${'-'.padStart(3)}-p `
    : `${String(v.cpu ?? '-').padStart(5)} ${(v.running ? 'r' : '-').padStart(3)}${v.blocked ? 'b' : '-'}- `;
  return `${head}${cpuState}${v.seconds.toFixed(1).padStart(9)}  ${v.hard} / ${v.soft}`;
}

async function domainsOf(c: ApiClient, refs: string[]): Promise<DomainView[]> {
  if (refs.length === 0) return c.get<DomainView[]>('/v1/domains');
  const out: DomainView[] = [];
  for (const r of refs) out.push(await c.get<DomainView>(`/v1/domains/${enc(r)}`));
  return out;
}

/** A whole number as xl's options take it; anything else fails like an out-of-range value. */
function intArg(v: string, err: string): number {
  if (!/^-?\d{1,9}$/.test(v)) throw fail(err);
  return Number(v);
}

function schedCommand(name: 'sched-credit' | 'sched-credit2'): CommandSpec {
  const credit1 = name === 'sched-credit';
  return {
    name,
    example: `xenode ${name} -d web1 -w 512 -c 50`,
    args: '',
    summary: credit1
      ? "Get/set a domain's credit weight and cap (cgroup cpu.shares / CFS quota)"
      : "Get/set a domain's credit2 weight and cap (the same cgroup settings as sched-credit)",
    help: `Without -d: every domain's weight and cap. -d D: that domain's. -d D -w W -c CAP:
set them (weight 1-65535, default 256; cap in percent of one host CPU, 0 = none,
at most 100 x maxvcpus). Applied at once and kept in the domain's config.
Pool parameters (-s) are Xen scheduler settings that Linux's CFS does not have:
shown as unavailable, refused when set. See docs/sched.md.`,
    options: [
      { flags: '-d, --domain <domain>', help: 'the domain' },
      { flags: '-w, --weight <weight>', help: 'weight, 1-65535 (256 = default)' },
      { flags: '-c, --cap <cap>', help: 'cap, percent of one host CPU (0 = none)' },
      { flags: '-s, --schedparam', help: 'pool parameters (shown as unavailable)' },
      ...(credit1
        ? [
            { flags: '-t, --tslice_ms <ms>', help: 'time slice (not settable: Linux CFS)' },
            { flags: '-m, --migration_delay_us <us>', help: 'migration delay (not settable: Linux CFS)' },
          ]
        : []),
      { flags: '-r, --ratelimit_us <us>', help: 'rate limit (not settable: Linux CFS)' },
      { flags: '-p, --cpupool <pool>', help: `the pool (only ${POOL})` },
    ],
    async run(ctx, _args, o) {
      const dom = typeof o.domain === 'string' ? o.domain : undefined;
      const setW = typeof o.weight === 'string';
      const setC = typeof o.cap === 'string';
      const poolSet = o.tslice_ms !== undefined || o.ratelimit_us !== undefined || o.migration_delay_us !== undefined;
      if ((o.cpupool !== undefined || o.schedparam) && (dom || setW || setC)) {
        throw fail(
          credit1
            ? 'Specifying a cpupool or schedparam is not allowed with domain options.'
            : 'Specifying a cpupool is not allowed with other options.',
        );
      }
      if (!dom && (setW || setC)) throw fail('Must specify a domain.');
      if (credit1 && !o.schedparam && poolSet) throw fail('Must specify schedparam to set schedule parameter values.');
      if (typeof o.cpupool === 'string' && o.cpupool !== POOL) throw fail(`unknown cpupool '${o.cpupool}'`);
      const c = ctx.client();
      if (o.schedparam) {
        if (poolSet) {
          throw new XenodeError(
            'usage',
            `${name}: pool parameters cannot be set: Xenode's vCPUs are scheduled by Linux's CFS`,
            {
              exitCode: 1,
              hint: 'weights, caps and pinning are per domain: -d D -w W -c CAP, vcpu-pin',
            },
          );
        }
        ctx.out(poolLine());
        return 0;
      }
      if (!dom) {
        const r = await c.get<{ domains: SchedView[] }>('/v1/sched');
        ctx.out(poolLine());
        ctx.out(formatSchedRows(r.domains));
        return 0;
      }
      if (!setW && !setC) {
        ctx.out(formatSchedRows([await c.get<SchedView>(`/v1/domains/${enc(dom)}/sched`)]));
        return 0;
      }
      const body: { weight?: number; cap?: number } = {};
      if (setW)
        body.weight = intArg(
          o.weight as string,
          'Cpu weight out of range, valid values are within range from 1 to 65535',
        );
      if (setC) body.cap = intArg(o.cap as string, `Cpu cap out of range: '${o.cap}' is not a number`);
      await c.post(`/v1/domains/${enc(dom)}/sched`, body);
      return 0;
    },
  };
}

const vcpuList: CommandSpec = {
  name: 'vcpu-list',
  example: 'xenode vcpu-list web1',
  args: '[domains...]',
  summary: 'List the vCPUs of all/some domains: host CPU, state, time and the affinity in force',
  help: `Hard affinity is what the kernel reports for each vCPU thread (sched_getaffinity);
soft affinity is the recorded cpus_soft= (Linux has none to apply). Offline vCPUs
(up to maxvcpus) show CPU - and state --p.`,
  async run(ctx, args) {
    const c = ctx.client();
    const lines = [VCPU_HEADER];
    for (const d of await domainsOf(c, args)) {
      const v = await c.get<{ name: string; domid: number; vcpus: VcpuView[] }>(`/v1/domains/${d.domid}/vcpus`);
      for (const row of v.vcpus) lines.push(formatVcpuRow(v.name, v.domid, row));
    }
    ctx.out(`${lines.join('\n')}\n`);
    return 0;
  },
};

const vcpuPin: CommandSpec = {
  name: 'vcpu-pin',
  example: 'xenode vcpu-pin web1 all 0-1',
  args: '<domain> <vcpu> <hard> [soft]',
  summary: "Set a vCPU's hard (and soft) affinity: <vcpu|all> <cpus|-> [<cpus|->]",
  help: `CPU lists as cpus=: "all", "0-3,^1", "nodes:0". "-" leaves that affinity as it is.
Hard affinity is enforced (the vCPU thread's cpuset cgroup); soft affinity is
recorded and shown by vcpu-list only (Linux has no soft affinity). Kept in the
domain's config: it survives a daemon restart, save/restore and migration.`,
  options: [{ flags: '-f, --force', help: "accepted for xl compatibility (not with 'all')" }],
  async run(ctx, [dom, vcpuArg, hard, soft], o) {
    let vcpu: number | 'all';
    if (vcpuArg === 'all') vcpu = 'all';
    else if (/^\d{1,9}$/.test(vcpuArg)) vcpu = Number(vcpuArg);
    else throw fail(`Error: Invalid argument ${vcpuArg} as VCPU.`);
    if (vcpu === 'all' && o.force) throw fail("Error: --force and 'all' as VCPU not allowed.");
    await ctx.client().post(`/v1/domains/${enc(dom)}/vcpu-pin`, { vcpu, hard, soft, force: o.force === true });
    return 0;
  },
};

const vcpuSet: CommandSpec = {
  name: 'vcpu-set',
  example: 'xenode vcpu-set web1 2',
  args: '<domain> <vcpus>',
  summary: 'Set the number of online vCPUs (CPU hot-plug up to maxvcpus)',
  help: `vCPUs 0..N-1 are online: new ones are hot-plugged (ACPI; the default guest
brings them online), the highest are unplugged first, which waits until the
guest has given each back. More vCPUs than host CPUs needs -i.`,
  options: [{ flags: '-i, --ignore-host', help: 'allow more vCPUs than the host has CPUs' }],
  async run(ctx, [dom, n], o) {
    if (!/^\d{1,9}$/.test(n)) throw fail('Error: Invalid argument.');
    await ctx
      .client()
      .post(`/v1/domains/${enc(dom)}/vcpu-set`, { vcpus: Number(n), ignoreHost: o.ignoreHost === true });
    return 0;
  },
};

export const schedCommands: CommandSpec[] = [
  schedCommand('sched-credit'),
  schedCommand('sched-credit2'),
  vcpuList,
  vcpuPin,
  vcpuSet,
];
