// block-attach / block-detach / block-list (xl's), plus block-stats for the
// per-disk I/O counters, and block-set-throttle / block-throttle for disk limits.

import type { CommandSpec } from '../../cli/command-spec.ts';
import { parseDiskSpec } from '../../config/disk.ts';
import { formatThrottle, parseThrottleWords } from '../../config/disk-throttle.ts';
import type { DiskSpec, DiskThrottle } from '../../config/types.ts';
import { errorMessage, XenodeError } from '../../errors.ts';
import type { BlockEntry, DiskStatsView, DomainThrottleView, ThrottleView } from './views.ts';

const enc = encodeURIComponent;

/** xl's block-list header (xl_block.c: "%-5s %-3s %-6s %-5s %-6s %-8s %-30s"). */
export function blockListHeader(): string {
  return `${'Vdev'.padEnd(5)} ${'BE'.padEnd(3)} ${'handle'.padEnd(6)} ${'state'.padEnd(5)} ${'evt-ch'.padEnd(6)} ${'ring-ref'.padEnd(8)} ${'BE-path'.padEnd(30)}`;
}

/** One row, "%-5d %-3d %-6d %-5d %-6d %-8d %-30s" as xl prints it. */
export function blockListRow(e: BlockEntry): string {
  const c = (v: number, w: number) => String(v).padEnd(w);
  return `${c(e.devid, 5)} ${c(e.backendId, 3)} ${c(e.handle, 6)} ${c(e.state, 5)} ${c(e.evtch, 6)} ${c(e.ringRef, 8)} ${e.backendPath.padEnd(30)}`;
}

/** A spec the daemon parses to exactly `d` (target= last: it takes the rest, commas included). */
export function canonicalDiskSpec(d: DiskSpec): string {
  const limits = d.throttle && Object.keys(d.throttle).length ? `${formatThrottle(d.throttle)},` : '';
  // backendtype=xenode is the one backendtype that changes what serves the disk: it must reach the daemon.
  const backend = d.backendtype === 'xenode' ? 'backendtype=xenode,' : '';
  return `format=${d.format},vdev=${d.vdev},access=${d.access},devtype=${d.devtype},${limits}${backend}target=${d.target}`;
}

/** A share in the spec's words: `bps=10M,iops=250`, or `-`. */
function shareWords(s: { bps?: number; iops?: number } | null): string {
  if (s === null) return 'n/a';
  const t: DiskThrottle = {};
  if (s.bps !== undefined) t.bps = s.bps;
  if (s.iops !== undefined) t.iops = s.iops;
  return formatThrottle(t);
}

/** block-throttle's table: each disk's limits as configured and as in force in QEMU. */
export function blockThrottleTable(views: DomainThrottleView[]): string {
  const head = ['Domain', 'Vdev', 'Devid', 'Config', 'In force (QEMU)', 'Share (QEMU)', 'Sponsor aggregate'];
  const cells = views.flatMap((v) =>
    v.disks.map((x: ThrottleView) => [
      v.name,
      x.vdev,
      String(x.devid),
      formatThrottle(x.config),
      x.inForce === null ? 'n/a' : formatThrottle(x.inForce),
      shareWords(x.share),
      shareWords(v.aggregate),
    ]),
  );
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (cs: string[]) =>
    cs
      .map((c, i) => c.padEnd(w[i] as number))
      .join('  ')
      .trimEnd();
  return `${[line(head), ...cells.map(line)].join('\n')}\n`;
}

export function blockStatsTable(rows: Array<DiskStatsView & { domain: string }>): string {
  const head = ['Domain', 'Vdev', 'Devid', 'RD bytes', 'WR bytes', 'RD ops', 'WR ops', 'Flush ops', 'RD ms', 'WR ms'];
  const cells = rows.map((r) => [
    r.domain,
    r.vdev,
    String(r.devid),
    String(r.rdBytes),
    String(r.wrBytes),
    String(r.rdOps),
    String(r.wrOps),
    String(r.flushOps),
    (r.rdTotalTimeNs / 1e6).toFixed(1),
    (r.wrTotalTimeNs / 1e6).toFixed(1),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (cs: string[]) =>
    cs
      .map((c, i) => (i < 2 ? c.padEnd(w[i] as number) : c.padStart(w[i] as number)))
      .join('  ')
      .trimEnd();
  return `${[line(head), ...cells.map(line)].join('\n')}\n`;
}

export const blockCommands: CommandSpec[] = [
  {
    name: 'block-attach',
    example: 'xenode block-attach web1 /srv/data.img,raw,xvdc,rw',
    args: '<domain> <disk-spec...>',
    summary: 'Hot-plug a disk into a running domain (xl disk syntax)',
    help: `The disk spec is xl's (xl-disk-configuration(5)): target, format, vdev, access,
or key=value items, e.g. /srv/d.img,qcow2,xvdc,ro or 'vdev=xvdd, devtype=cdrom, target=/srv/cd.iso'.
Several arguments are joined with commas. The disk stays in the domain's config.`,
    async run(ctx, [dom, ...parts]) {
      const disk = parseDiskSpec(parts.join(','), {
        baseDir: process.cwd(),
        warn: (w) => ctx.err(`warning: ${w}\n`),
      });
      await ctx.client().post(`/v1/domains/${enc(dom)}/block-attach`, { spec: canonicalDiskSpec(disk) });
      return 0;
    },
  },
  {
    name: 'block-detach',
    example: 'xenode block-detach web1 xvdc',
    args: '<domain> <vdev>',
    summary: 'Hot-unplug a disk; waits until the guest released it',
    help: 'The disk is named by its vdev (xvdc) or Xen device number (51744).',
    options: [{ flags: '-f, --force', help: 'do not wait for the guest: drop the disk from the domain now' }],
    async run(ctx, [dom, vdev], opts) {
      await ctx.client().post(`/v1/domains/${enc(dom)}/block-detach`, { vdev, force: opts.force === true });
      return 0;
    },
  },
  {
    name: 'block-list',
    example: 'xenode block-list web1',
    args: '<domains...>',
    summary: 'List the disks of domains (xl columns; Vdev is the Xen device number)',
    async run(ctx, doms) {
      const c = ctx.client();
      ctx.out(`${blockListHeader()}\n`);
      // As xl: an unknown domain is reported and the others are still listed.
      for (const dom of doms) {
        try {
          const r = await c.get<{ disks: BlockEntry[] }>(`/v1/domains/${enc(dom)}/block`);
          for (const e of r.disks) ctx.out(`${blockListRow(e)}\n`);
        } catch (e) {
          if (!(e instanceof XenodeError) || e.kind !== 'not-found') throw e;
          ctx.err(`${errorMessage(e)}\n`);
        }
      }
      return 0;
    },
  },
  {
    name: 'block-set-throttle',
    example: 'xenode block-set-throttle web1 xvdb bps=10M iops=500',
    args: '<domain> <vdev> <limits...>',
    summary: "Set a disk's I/O limits at runtime (bytes/s, operations/s, burst); none clears them",
    help: `The limits are the disk spec's (docs/disks.md): bps, bps_rd, bps_wr, iops, iops_rd,
iops_wr, each with _max (burst rate) and _max_length (burst seconds), and iops_size.
Bytes take K/M/G/T (1024^n), e.g. bps=10M. The words given become the disk's whole
set of limits (as in its disk= spec); 'none' removes them. They take effect at once,
stay in the domain's config (restart, save/restore, migration), and apply under the
sponsor's aggregate share, which a disk's own limit never raises.`,
    async run(ctx, [dom, vdev, ...words]) {
      const throttle = parseThrottleWords(words);
      const v = await ctx
        .client()
        .put<ThrottleView>(`/v1/domains/${enc(dom)}/block/${enc(vdev ?? '')}/throttle`, { throttle });
      ctx.out(`${v.vdev}: ${v.inForce === null ? 'n/a' : formatThrottle(v.inForce)}\n`);
      return 0;
    },
  },
  {
    name: 'block-throttle',
    example: 'xenode block-throttle web1',
    args: '<domains...>',
    summary: "Disks' I/O limits: configured, in force in QEMU, and each disk's share of the sponsor aggregate",
    help: `Config is the disk's own limits in the domain's config; In force is what its QEMU
applies now (read back from it); Share is the disk's part of its sponsor's aggregate
(quota-set disk-bps / disk-iops), moved every second towards the disks that use it.
A disk moves at most the lower of the two.`,
    options: [{ flags: '--json', help: 'print the API objects' }],
    async run(ctx, doms, opts) {
      const c = ctx.client();
      const views: DomainThrottleView[] = [];
      for (const dom of doms) views.push(await c.get<DomainThrottleView>(`/v1/domains/${enc(dom)}/block/throttle`));
      ctx.out(opts.json === true ? `${JSON.stringify(views, null, 2)}\n` : blockThrottleTable(views));
      return 0;
    },
  },
  {
    name: 'block-stats',
    example: 'xenode block-stats web1',
    args: '<domains...>',
    summary: 'Per-disk I/O counters of domains (bytes, operations, time) since each disk was attached',
    async run(ctx, doms) {
      const c = ctx.client();
      const rows: Array<DiskStatsView & { domain: string }> = [];
      for (const dom of doms) {
        const r = await c.get<{ name: string; disk: DiskStatsView[] }>(`/v1/domains/${enc(dom)}/block/stats`);
        for (const s of r.disk) rows.push({ ...s, domain: r.name });
      }
      ctx.out(blockStatsTable(rows));
      return 0;
    },
  },
];
