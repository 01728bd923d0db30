// `xenode pool create|join|leave|list` (docs/pool.md). `create --pool`, `list
// --pool` and `migrate DOM HOSTNAME` are the core's and save/restore's commands,
// calling this feature's routes.

import { resolve } from 'node:path';
import type { CommandSpec } from '../../cli/command-spec.ts';
import { XenodeError } from '../../errors.ts';
import type { PoolHostView } from './service.ts';

function urls(v: string | boolean | undefined): string[] {
  if (typeof v !== 'string' || v === '')
    throw new XenodeError('usage', 'give etcd with --etcd URL[,URL...]', { hint: 'e.g. --etcd http://10.0.0.1:2379' });
  return v.split(',').map((s) => s.trim());
}

function opt(v: string | boolean | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function hostTable(hosts: PoolHostView[]): string {
  const rows = [['Host', 'Address', 'Memory(MiB)', 'Free(MiB)', 'Domains', 'Load', 'Version', 'Health']];
  for (const h of hosts)
    rows.push([
      h.name,
      h.address,
      String(h.memTotalMiB),
      String(h.freeMiB),
      String(h.domains),
      h.load.toFixed(2),
      h.version,
      h.health,
    ]);
  const w = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd((w[i] ?? 0) + 2))).join('')).join('\n');
}

const pool: CommandSpec = {
  name: 'pool',
  example: 'xenode pool create lab --etcd http://10.0.0.1:2379 --shared /srv/pool',
  args: '<action> [name]',
  summary: 'A pool of hosts on etcd: pool create NAME | pool join NAME --secret S | pool leave | pool list',
  help: `pool create NAME --etcd URL[,URL] [--host H] [--ttl S] [--shared DIR]
    makes the pool and joins this host; prints the pool secret (keep it: joining needs it)
pool join NAME --etcd URL[,URL] --secret S [--host H]
pool leave            (this host must run no domain of the pool)
pool list             the hosts: capacity, free memory, domains, load, version, health
Each host holds an etcd lease it renews; HA domains (ha = 1) of a host whose
lease expires run again on another host (docs/pool.md).`,
  options: [
    { flags: '--etcd <urls>', help: 'etcd client URLs, comma-separated' },
    { flags: '--host <name>', help: "this host's name in the pool (default: its hostname)" },
    { flags: '--secret <secret>', help: 'with join: the pool secret pool create printed' },
    { flags: '--ttl <seconds>', help: "with create: the hosts' lease TTL (default 10)" },
    { flags: '--shared <dir>', help: "with create: the directory every host sees (HA domains' disks)" },
    { flags: '--address <host:port>', help: "this host's API address for the others (default: its TCP listener)" },
    { flags: '--json', help: 'with list: JSON' },
  ],
  async run(ctx, [action, name], opts) {
    const c = ctx.client();
    if (action === 'create' || action === 'join') {
      if (!name) throw new XenodeError('usage', `pool ${action} needs the pool's name`);
      const body = {
        pool: name,
        etcd: urls(opts.etcd),
        host: opt(opts.host),
        address: opt(opts.address),
        secret: action === 'join' ? opt(opts.secret) : undefined,
        ttl: action === 'create' && opts.ttl !== undefined ? Number(opts.ttl) : undefined,
        shared: action === 'create' && typeof opts.shared === 'string' ? resolve(opts.shared) : undefined,
      };
      if (action === 'join' && !body.secret) throw new XenodeError('usage', 'pool join needs --secret');
      if (action === 'create') {
        const r = await c.post<{ secret: string }>('/v1/pool/create', body);
        ctx.err(
          `pool ${name} created; join other hosts with: xenode pool join ${name} --etcd ${body.etcd.join(',')} --secret <secret>\n`,
        );
        ctx.out(`${r.secret}\n`);
      } else {
        await c.post('/v1/pool/join', body);
        ctx.err(`joined pool ${name}\n`);
      }
      return 0;
    }
    if (action === 'leave') {
      await c.post('/v1/pool/leave', {});
      ctx.err('left the pool\n');
      return 0;
    }
    if (action === 'list') {
      const r = await c.get<{ pool: string; host: string; ttl: number; shared?: string; hosts: PoolHostView[] }>(
        '/v1/pool',
      );
      if (opts.json) {
        ctx.out(`${JSON.stringify(r, null, 2)}\n`);
        return 0;
      }
      ctx.err(
        `pool ${r.pool}: this host is ${r.host}; lease TTL ${r.ttl} s${r.shared ? `; shared ${r.shared}` : ''}\n`,
      );
      ctx.out(`${hostTable(r.hosts)}\n`);
      return 0;
    }
    throw new XenodeError('usage', `unknown pool action '${action}'`, { hint: 'use create, join, leave or list' });
  },
};

export const poolCommands: CommandSpec[] = [pool];
