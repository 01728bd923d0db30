// storage-add/-list/-remove/-grant/-revoke (the admin's pools) and
// volume create|list|delete|upload (a sponsor's disks), in libvirt's and
// Proxmox's vocabulary. `pool` is kept for a future pool of hosts.

import { accessSync, constants, statSync } from 'node:fs';
import type { CmdContext, CommandSpec } from '../../cli/command-spec.ts';
import { XenodeError } from '../../errors.ts';
import { checkFormat, formatSize, parseSize, splitVolumeRef } from './names.ts';
import type { PoolView, VolumeView } from './volumes.ts';

const enc = encodeURIComponent;

/** Columns padded to their widest cell; the last one is not padded. */
export function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cs: string[]) =>
    cs
      .map((c, i) => (i === cs.length - 1 ? c : c.padEnd(w[i] as number)))
      .join('  ')
      .trimEnd();
  return `${[line(head), ...rows.map(line)].join('\n')}\n`;
}

export function poolTable(pools: PoolView[]): string {
  const admin = pools.some((p) => p.sponsors !== undefined);
  const head = ['Name', 'Volumes', 'Size', 'Free', ...(admin ? ['Sponsors'] : []), 'Directory'];
  return table(
    head,
    pools.map((p) => [
      p.name,
      String(p.volumes),
      formatSize(p.bytes),
      formatSize(p.free),
      ...(admin ? [(p.sponsors ?? []).join(',') || '-'] : []),
      p.dir,
    ]),
  );
}

export function volumeTable(vols: VolumeView[], withSponsor: boolean): string {
  const head = ['Pool', ...(withSponsor ? ['Sponsor'] : []), 'Name', 'Format', 'Size', 'Used', 'Path'];
  return table(
    head,
    vols.map((v) => [
      v.pool,
      ...(withSponsor ? [v.sponsor] : []),
      v.name,
      v.format,
      formatSize(v.size),
      formatSize(v.used),
      v.path,
    ]),
  );
}

/** `--sponsor a --sponsor b,c` as a list (commander hands a variadic option over as an array). */
function sponsorList(v: unknown): string[] {
  const parts = Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
  return parts.flatMap((s) => String(s).split(',')).filter((s) => s !== '');
}

function optString(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function progress(ctx: CmdContext, quiet: boolean): (sent: number, total: number) => void {
  let shown = -1;
  return (sent, total) => {
    if (quiet) return;
    const pct = total === 0 ? 100 : Math.floor((sent * 100) / total);
    const step = Math.floor(pct / 10);
    if (step === shown) return;
    shown = step;
    ctx.err(`upload: ${pct}% (${formatSize(sent)} of ${formatSize(total)})\n`);
  };
}

export const storageCommands: CommandSpec[] = [
  {
    name: 'storage-add',
    example: 'xenode storage-add tenants /srv/xenode/tenants --sponsor alice --sponsor bob',
    args: '<name> <dir>',
    summary: 'Declare a storage pool: a directory whose volumes the granted sponsors may use (admin)',
    help: `DIR must exist; each sponsor's volumes live in DIR/<sponsor>/, made by xenoded.
Pools may not contain one another. --sponsor '*' grants every sponsor.`,
    options: [{ flags: '--sponsor <sponsor...>', help: 'grant this sponsor (repeat, or a comma list)' }],
    async run(ctx, [name, dir], opts) {
      if (!name || !dir) throw new XenodeError('usage', 'storage-add needs a pool name and a directory');
      const p = await ctx.client().post<PoolView>('/v1/storage', { name, dir, sponsors: sponsorList(opts.sponsor) });
      ctx.err(`storage pool ${p.name} at ${p.dir}\n`);
      return 0;
    },
  },
  {
    name: 'storage-list',
    example: 'xenode storage-list',
    args: '',
    summary: 'List storage pools (a sponsor sees the pools granted to it)',
    async run(ctx) {
      ctx.out(poolTable(await ctx.client().get<PoolView[]>('/v1/storage')));
      return 0;
    },
  },
  {
    name: 'storage-remove',
    example: 'xenode storage-remove tenants',
    args: '<name>',
    summary: 'Forget a storage pool (admin); refused while it has volumes, unless --force',
    help: '--force forgets the volumes too, but leaves their files on disk; a volume in use is never forgotten.',
    options: [{ flags: '-f, --force', help: "forget the pool's volumes as well (their files stay)" }],
    async run(ctx, [name], opts) {
      await ctx.client().del(`/v1/storage/${enc(name ?? '')}${opts.force ? '?force=1' : ''}`);
      return 0;
    },
  },
  {
    name: 'storage-grant',
    example: 'xenode storage-grant tenants carol',
    args: '<name> <sponsor>',
    summary: "Let a sponsor use a storage pool (admin); '*' for every sponsor",
    async run(ctx, [name, sponsor]) {
      await ctx.client().put(`/v1/storage/${enc(name ?? '')}/sponsors/${enc(sponsor ?? '')}`, {});
      return 0;
    },
  },
  {
    name: 'storage-revoke',
    example: 'xenode storage-revoke tenants carol',
    args: '<name> <sponsor>',
    summary: 'Take a storage pool away from a sponsor (admin); its volumes stay but cannot be used',
    async run(ctx, [name, sponsor]) {
      await ctx.client().del(`/v1/storage/${enc(name ?? '')}/sponsors/${enc(sponsor ?? '')}`);
      return 0;
    },
  },
  {
    name: 'volume',
    example: 'xenode volume create tenants/web1 1G',
    args: '<action> [args...]',
    summary: 'Volumes in storage pools: volume create|list|delete|upload',
    help: `Actions:
  create POOL/NAME SIZE    a new empty volume, SIZE like 1G or 512M (raw: sparse file; qcow2: qemu-img)
  list [POOL]              your volumes; Path is what goes in disk=
  delete POOL/NAME         remove a volume (refused while a domain uses it)
  upload POOL/NAME FILE    a new volume with FILE's contents (qcow2 detected; its backing file is checked)
A sponsor sees and uses only its own volumes, in the pools granted to it, within its
quota (xenode quota-set SPONSOR volumes=N disk=SIZE). The admin acts for a sponsor with --sponsor.
Example: xenode volume create tenants/data 1G && xenode create web.cfg 'disk=["<Path>,raw,xvdb,rw"]'`,
    options: [
      { flags: '--format <format>', help: 'raw (default) or qcow2, for create and upload' },
      { flags: '--sponsor <sponsor>', help: 'admin: whose volume (default: the admin)' },
      { flags: '-q, --quiet', help: 'with upload: no progress' },
    ],
    async run(ctx, [action, ...args], opts) {
      const c = ctx.client();
      const sponsor = optString(opts.sponsor);
      const format = optString(opts.format);
      if (format !== undefined) checkFormat(format);
      const sq = sponsor === undefined ? '' : `sponsor=${enc(sponsor)}`;
      switch (action) {
        case 'create': {
          const { pool, name } = splitVolumeRef(args[0]);
          if (!args[1]) throw new XenodeError('usage', 'volume create needs a size, e.g. 1G');
          const size = parseSize(args[1]);
          const v = await c.post<VolumeView>('/v1/volumes', { pool, name, size, format, sponsor });
          ctx.out(`${v.path}\n`);
          return 0;
        }
        case 'list': {
          const q = [args[0] ? `pool=${enc(args[0])}` : '', sq].filter((x) => x !== '').join('&');
          const vols = await c.get<VolumeView[]>(`/v1/volumes${q ? `?${q}` : ''}`);
          const who = await c.get<{ admin: boolean }>('/v1/whoami');
          ctx.out(volumeTable(vols, who.admin));
          return 0;
        }
        case 'delete': {
          const { pool, name } = splitVolumeRef(args[0]);
          await c.del(`/v1/volumes/${enc(pool)}/${enc(name)}${sq ? `?${sq}` : ''}`);
          return 0;
        }
        case 'upload': {
          const { pool, name } = splitVolumeRef(args[0]);
          const file = args[1];
          if (!file) throw new XenodeError('usage', 'volume upload needs a file');
          const q = [format ? `format=${enc(format)}` : '', sq].filter((x) => x !== '').join('&');
          try {
            accessSync(file, constants.R_OK);
            if (!statSync(file).isFile()) throw new Error('not a file');
          } catch {
            throw new XenodeError('not-found', `cannot read '${file}' as a file`);
          }
          const path = `/v1/volumes/${enc(pool)}/${enc(name)}/upload${q ? `?${q}` : ''}`;
          const v = await c.upload<VolumeView>(path, file, progress(ctx, opts.quiet === true));
          ctx.out(`${v.path}\n`);
          return 0;
        }
        default:
          throw new XenodeError('usage', `unknown volume action '${action ?? ''}'`, {
            hint: 'use create, list, delete or upload',
          });
      }
    },
  },
];
