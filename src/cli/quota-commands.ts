// Per-sponsor limits: quota-set, quota-list, quota-unset (docs/security.md).

import type { QuotaView } from '../api/routes-quota.ts';
import { parseVifRate } from '../config/vif.ts';
import { XenodeError } from '../errors.ts';
import type { SponsorLimits } from '../toolstack/sponsors.ts';
import type { CommandSpec } from './command-spec.ts';
import { parseMemSizeMiB } from './format.ts';

const enc = encodeURIComponent;

/** `1G`, `512M`, `100` (bytes): a volume size in bytes. */
function parseBytes(s: string): number {
  const m = /^(\d+)([kKmMgGtT]?)$/.exec(s);
  if (!m) throw new XenodeError('usage', `invalid size: ${s}`, { hint: 'e.g. 20G, 512M' });
  const pow = ' kmgt'.indexOf((m[2] || ' ').toLowerCase());
  return Number(m[1]) * 1024 ** pow;
}

/** `key=value` words -> the API's limit object; `none` clears a limit. */
export function parseLimitWords(words: string[]): Record<string, number | string[] | number[] | null> {
  const out: Record<string, number | string[] | number[] | null> = {};
  for (const w of words) {
    const eq = w.indexOf('=');
    if (eq < 1) throw new XenodeError('usage', `'${w}' is not key=value`, { hint: 'e.g. domains=4 memory=4G' });
    const k = w.slice(0, eq);
    const v = w.slice(eq + 1);
    const none = v === 'none' || v === '';
    const int = (): number => {
      if (!/^\d+$/.test(v)) throw new XenodeError('usage', `${k} must be a whole number or none, not '${v}'`);
      return Number(v);
    };
    switch (k) {
      case 'domains':
      case 'vcpus':
      case 'volumes':
        out[k] = none ? null : int();
        break;
      case 'memory':
        out.memoryMiB = none ? null : parseMemSizeMiB(v);
        break;
      case 'disk':
        out.diskBytes = none ? null : parseBytes(v);
        break;
      case 'bridges':
        out.bridges = none ? null : v.split(',').filter((b) => b !== '');
        break;
      case 'vlans':
        if (!none && !/^\d+(,\d+)*$/.test(v))
          throw new XenodeError('usage', `vlans must be VLAN ids or none, not '${v}'`, { hint: 'e.g. vlans=10,20' });
        out.vlans = none ? null : v.split(',').map(Number);
        break;
      case 'cpu-weight':
        out.cpuWeight = none ? null : int();
        break;
      case 'cpu-cap':
        out.cpuCap = none ? null : int();
        break;
      case 'disk-bps':
        out.diskBps = none ? null : parseBytes(v.replace(/\/s$/, ''));
        break;
      case 'disk-iops':
        out.diskIops = none ? null : int();
        break;
      case 'net-rate':
        out.netBps = none ? null : parseVifRate(v).bytesPerSec;
        break;
      default:
        throw new XenodeError('usage', `unknown limit '${k}'`, {
          hint: 'limits: domains, memory, vcpus, disk, volumes, bridges, vlans, cpu-weight, cpu-cap, disk-bps, disk-iops, net-rate',
        });
    }
  }
  return out;
}

/** The rate limits in quota-set's own words, e.g. `cpu-cap=200,net-rate=100Mb/s`. */
export function rates(l: SponsorLimits): string {
  const mb = (b: number) => `${+(b / 1024 ** 2).toFixed(2)}M`;
  const parts = [
    l.cpuWeight === undefined ? '' : `cpu-weight=${l.cpuWeight}`,
    l.cpuCap === undefined ? '' : `cpu-cap=${l.cpuCap}`,
    l.diskBps === undefined ? '' : `disk-bps=${mb(l.diskBps)}`,
    l.diskIops === undefined ? '' : `disk-iops=${l.diskIops}`,
    l.netBps === undefined ? '' : `net-rate=${+((l.netBps * 8) / 1e6).toFixed(3)}Mb/s`,
  ];
  return parts.filter((p) => p !== '').join(',') || '-';
}

function row(q: QuotaView): string {
  const l = q.limits;
  const lim = (n: number | undefined) => (n === undefined ? '-' : String(n));
  const gib = (b: number | undefined) => (b === undefined ? '-' : `${+(b / 1024 ** 3).toFixed(2)}G`);
  const name = q.inherited && q.sponsor !== '*' ? `${q.sponsor} (*)` : q.sponsor;
  return [
    name.padEnd(20),
    `${q.usage.domains}/${lim(l.domains)}`.padStart(9),
    `${q.usage.memoryMiB}/${lim(l.memoryMiB)}`.padStart(13),
    `${q.usage.vcpus}/${lim(l.vcpus)}`.padStart(7),
    `${gib(q.usage.diskBytes)}/${gib(l.diskBytes)}`.padStart(13),
    `${q.usage.volumes}/${lim(l.volumes)}`.padStart(7),
    `  ${rates(l).padEnd(24)}`,
    `${(l.bridges ?? []).join(',') || '-'}${l.vlans ? ` vlans:${l.vlans.join(',')}` : ''}`,
  ].join(' ');
}

export const quotaCommands: CommandSpec[] = [
  {
    name: 'quota-set',
    example: 'xenode quota-set alice domains=4 memory=4G vcpus=8 disk=50G cpu-cap=200 net-rate=100Mb/s',
    args: '<sponsor> <limits...>',
    summary: "Set a sponsor's limits (admin); '*' sets them for every sponsor without limits of its own",
    help: `Limits: domains, memory (MiB, or with a k/m/g/t suffix; counted as maxmem),
vcpus (counted as maxvcpus), disk (bytes of volumes, e.g. 50G), volumes, and
bridges (Linux bridges the sponsor's vifs may name, comma-separated), and
vlans (VLAN ids its vifs may name with vlan=, comma-separated).
Rates over all the sponsor's domains, applied to running domains at once:
cpu-weight (the sponsor's CPU weight against other sponsors, credit's scale,
default 256), cpu-cap (percent of one host CPU), disk-bps (bytes/s, e.g. 20M),
disk-iops, net-rate (what its vifs send, in vif rate= syntax, e.g. 100Mb/s).
key=none removes one limit. Creates, restores, mem-max and volume creation
beyond a limit are refused with the limit named.`,
    async run(ctx, [sponsor, ...words]) {
      if (words.length === 0) throw new XenodeError('usage', 'quota-set needs at least one key=value');
      const q = await ctx.client().put<QuotaView>(`/v1/quotas/${enc(sponsor)}`, parseLimitWords(words));
      ctx.out(`${row(q)}\n`);
      return 0;
    },
  },
  {
    name: 'quota-list',
    example: 'xenode quota-list',
    args: '',
    summary: "List sponsors' limits and what they use (a sponsor sees its own)",
    async run(ctx) {
      const qs = await ctx.client().get<QuotaView[]>('/v1/quotas');
      const head = `${'Sponsor'.padEnd(20)} ${'Domains'.padStart(9)} ${'Memory(MiB)'.padStart(13)} ${'VCPUs'.padStart(7)} ${'Disk'.padStart(13)} ${'Volumes'.padStart(7)}  ${'Rates'.padEnd(24)} Bridges`;
      ctx.out(`${[head, ...qs.map(row)].join('\n')}\n`);
      return 0;
    },
  },
  {
    name: 'quota-unset',
    example: 'xenode quota-unset alice',
    args: '<sponsor>',
    summary: "Remove a sponsor's own limits (it then has the '*' limits, if any)",
    async run(ctx, [sponsor]) {
      await ctx.client().del(`/v1/quotas/${enc(sponsor)}`);
      return 0;
    },
  },
];
