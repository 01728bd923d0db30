// `xenode store read|write|ls|rm|watch|perms`, like xenstore-read/-write/-ls/-rm/-watch/-chmod.

import { XenodeError } from '../errors.ts';
import type { ApiClient } from './client.ts';
import type { CommandSpec } from './command-spec.ts';

const q = (path: string, as: unknown) =>
  `path=${encodeURIComponent(path)}${typeof as === 'string' ? `&as=${encodeURIComponent(as)}` : ''}`;

interface LsReply {
  children: Array<{ name: string; value?: string }>;
}

async function lsTree(
  c: ApiClient,
  path: string,
  as: unknown,
  indent: string,
  out: (s: string) => void,
): Promise<void> {
  const r = await c.get<LsReply>(`/v1/store/ls?${q(path, as)}`);
  for (const ch of r.children) {
    out(`${indent}${ch.name} = ${ch.value === undefined ? '(unreadable)' : JSON.stringify(ch.value)}\n`);
    await lsTree(c, path === '/' ? `/${ch.name}` : `${path}/${ch.name}`, as, `${indent} `, out);
  }
}

export const storeCommands: CommandSpec[] = [
  {
    name: 'store',
    example: 'xenode store watch /local/domain/3/memory',
    args: '<action> [path] [values...]',
    summary: 'Control store: store read|write|ls|rm|watch|perms PATH [VALUE|PERMS...]',
    help: `Actions (xenstore-* equivalents):
  read PATH            print the value (xenstore-read)
  write PATH VALUE     set a value, creating parents (xenstore-write)
  ls [PATH]            print the subtree (xenstore-ls)
  rm PATH              remove recursively (xenstore-rm)
  watch PATH           print each changed path; fires once at start (xenstore-watch)
  perms PATH [P...]    show or set permissions, e.g. n0 r3 (xenstore-chmod)
--as DOMID acts as that domain's connection (admin only), e.g. to test permissions.`,
    options: [
      { flags: '--as <domid>', help: 'act as this domain (admin only)' },
      { flags: '-n, --count <n>', help: 'with watch: exit after n events' },
    ],
    async run(ctx, [action, path, ...values], opts) {
      const c = ctx.client();
      const as = opts.as;
      switch (action) {
        case 'read': {
          if (!path) throw new XenodeError('usage', 'store read needs a path');
          const r = await c.get<{ value: string }>(`/v1/store/read?${q(path, as)}`);
          ctx.out(`${r.value}\n`);
          return 0;
        }
        case 'write': {
          if (!path || values.length !== 1) throw new XenodeError('usage', 'store write needs a path and one value');
          await c.put('/v1/store/write', { path, value: values[0], as });
          return 0;
        }
        case 'ls':
          await lsTree(c, path ?? '/', as, '', ctx.out);
          return 0;
        case 'rm':
          if (!path) throw new XenodeError('usage', 'store rm needs a path');
          await c.del(`/v1/store?${q(path, as)}`);
          return 0;
        case 'perms': {
          if (!path) throw new XenodeError('usage', 'store perms needs a path');
          if (values.length > 0) await c.post('/v1/store/perms', { path, perms: values, as });
          else {
            const r = await c.get<{ perms: Array<{ id: number; perm: string }> }>(`/v1/store/perms?${q(path, as)}`);
            ctx.out(`${r.perms.map((p) => `${p.perm}${p.id}`).join(' ')}\n`);
          }
          return 0;
        }
        case 'watch': {
          if (!path) throw new XenodeError('usage', 'store watch needs a path');
          const limit = opts.count ? Number(opts.count) : Number.POSITIVE_INFINITY;
          const ws = await c.websocket(`/v1/store/watch?${q(path, as)}`);
          return await new Promise<number>((resolve, reject) => {
            let n = 0;
            ws.on('message', (d: Buffer) => {
              const ev = JSON.parse(d.toString()) as { path: string };
              ctx.out(`${ev.path}\n`);
              if (++n >= limit) {
                ws.close();
                resolve(0);
              }
            });
            ws.on('close', (code, reason) => {
              if (code === 4003) reject(new XenodeError('permission', reason.toString()));
              else resolve(0);
            });
            ws.on('error', (e) => reject(new XenodeError('engine', e.message)));
          });
        }
        default:
          throw new XenodeError('usage', `unknown store action '${action}'`, {
            hint: 'use read, write, ls, rm, watch or perms',
          });
      }
    },
  },
];
