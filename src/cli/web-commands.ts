// `xenode web`: where the browser console is, and optionally a token to log in with.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { XenodeError } from '../errors.ts';
import type { CommandSpec } from './command-spec.ts';

function webUrl(tcpInfoFile: string): string {
  if (process.env.XENODE_URL) return new URL('/', process.env.XENODE_URL).href;
  let info: { host: string; port: number };
  try {
    info = JSON.parse(readFileSync(tcpInfoFile, 'utf8')) as { host: string; port: number };
  } catch {
    throw new XenodeError('not-found', 'xenoded has no TCP listener, so no web console', {
      hint: 'restart it with XENODE_LISTEN=127.0.0.1:8080 (or xenoded --listen HOST:PORT)',
    });
  }
  // A wildcard address is not somewhere a browser can go.
  const host = info.host === '0.0.0.0' || info.host === '::' ? hostname() : info.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${info.port}/`;
}

export const webCommands: CommandSpec[] = [
  {
    name: 'web',
    example: 'xenode web --token alice',
    args: '',
    summary: 'Print the web console URL; with --token SPONSOR also create a login token',
    help: `Prints the URL of the daemon's web console (its token-protected TCP listener;
set the address with XENODE_LISTEN=HOST:PORT). With --token SPONSOR a new token for
that sponsor is created and printed on the next line: paste it on the login page.`,
    options: [
      { flags: '--token <sponsor>', help: 'also create a token for this sponsor' },
      { flags: '--admin', help: 'with --token: the token has admin rights' },
    ],
    async run(ctx, _args, opts) {
      const c = ctx.client();
      await c.get('/v1/whoami'); // starts xenoded if needed, so its listener exists
      const url = webUrl(c.dirs.tcpInfo);
      ctx.out(`${url}\n`);
      if (typeof opts.token === 'string') {
        const r = await c.post<{ token: string; info: { id: string } }>('/v1/tokens', {
          sponsor: opts.token,
          admin: opts.admin === true,
          label: 'web',
        });
        ctx.out(`${r.token}\n`);
        ctx.err(`token ${r.info.id} for sponsor ${opts.token}: paste it on the login page (shown once)\n`);
      }
      return 0;
    },
  },
];
