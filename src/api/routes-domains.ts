// Domain routes: list, create, lifecycle actions, vCPUs, console (WebSocket).

import type { FastifyInstance } from 'fastify';
import { configProblem } from '../config/config-check.ts';
import { checkKernel } from '../config/files.ts';
import { loadConfigText } from '../config/load.ts';
import type { DomainConfig } from '../config/types.ts';
import { XenodeError } from '../errors.ts';
import { sponsorFileCheck } from '../toolstack/admission.ts';
import type { SponsorFileGate } from '../toolstack/lifecycle-hooks.ts';
import { LOCAL_ADMIN, type Principal } from '../toolstack/principal.ts';
import type { ApiContext } from './context.ts';
import { domainView } from './views.ts';

/** Largest console input message (a paste); bigger ones close the socket with 1009. */
const CONSOLE_MAX_INPUT = 64 * 1024;

interface DomParams {
  dom: string;
}

/** Either a typed config (as the CLI sends) or xl.cfg text (as the web UI sends). */
export interface CreateBody {
  config?: DomainConfig;
  configText?: string;
  filename?: string;
  overrides?: string[];
  paused?: boolean;
}

/**
 * Check a config that arrived as JSON: the same rules as a config file
 * (configProblem), and for the admin its files as the parser would check them.
 * A sponsor's files are checked by admission, through its storage pools, so
 * that no answer here tells it whether a host file exists.
 */
export function checkConfigJson(config: unknown, p: Principal = LOCAL_ADMIN): DomainConfig {
  const problem = configProblem(config);
  if (problem) throw new XenodeError('config', `invalid domain config: ${problem}`);
  const cfg = config as DomainConfig;
  if (p.admin && cfg.kernel) checkKernel(cfg.kernel, { file: '<api>', line: 0, column: 0 });
  return cfg;
}

function configFromBody(
  body: CreateBody,
  p: Principal,
  gates: readonly SponsorFileGate[],
): { config: DomainConfig; warnings: string[] } {
  if (typeof body.configText === 'string') {
    return loadConfigText(body.configText, {
      file: body.filename ?? 'config',
      baseDir: '/',
      overrides: Array.isArray(body.overrides) ? body.overrides.map(String) : [],
      fileCheck: p.admin ? undefined : sponsorFileCheck(p.sponsor, gates),
    });
  }
  if (body.config !== undefined) return { config: checkConfigJson(body.config, p), warnings: [] };
  throw new XenodeError('usage', 'request body needs "config" (JSON) or "configText" (xl.cfg)');
}

export function registerDomainRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const ts = ctx.toolstack;

  app.get('/v1/domains', async (req) => ts.list(req.principal).map((d) => domainView(d)));

  app.get<{ Params: DomParams }>('/v1/domains/:dom', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    return { ...domainView(d, true), guest: ts.guestInfo(d) };
  });

  app.post<{ Body: CreateBody }>('/v1/domains', async (req) => {
    const body = req.body;
    if (!body || typeof body !== 'object') throw new XenodeError('usage', 'request body must be a JSON object');
    const { config, warnings } = configFromBody(body, req.principal, ts.fileGates);
    const d = await ts.create(config, req.principal, { paused: body.paused === true });
    return { ...domainView(d, true), warnings };
  });

  const action = (
    name: string,
    fn: (dom: string, req: { principal: Principal; body: unknown }) => Promise<unknown>,
  ) => {
    app.post<{ Params: DomParams; Body: unknown }>(`/v1/domains/:dom/${name}`, async (req) => {
      const r = await fn(req.params.dom, { principal: req.principal, body: req.body ?? {} });
      return r ?? { ok: true };
    });
  };

  action('pause', async (dom, r) => ts.pause(ts.find(dom, r.principal)));
  action('unpause', async (dom, r) => ts.unpause(ts.find(dom, r.principal)));
  action('destroy', async (dom, r) => ts.destroy(ts.find(dom, r.principal)));
  action('reboot', async (dom, r) => {
    const b = (r.body ?? {}) as { wait?: boolean; timeoutMs?: number; fallback?: boolean };
    const ok = await ts.reboot(ts.find(dom, r.principal), {
      wait: b.wait === true,
      timeoutMs: b.timeoutMs,
      acpiFallback: b.fallback === true,
    });
    if (!ok)
      throw new XenodeError('state', `domain ${dom} did not reboot in time`, { hint: 'use destroy to force it' });
    return { ok: true };
  });
  action('shutdown', async (dom, r) => {
    const b = r.body as { wait?: boolean; timeoutMs?: number; fallback?: boolean };
    const ok = await ts.shutdown(ts.find(dom, r.principal), {
      wait: b.wait === true,
      timeoutMs: b.timeoutMs,
      acpiFallback: b.fallback === true,
    });
    if (!ok)
      throw new XenodeError('state', `domain ${dom} did not shut down in time`, { hint: 'use destroy to force it' });
    return { ok: true };
  });
  action('rename', async (dom, r) => {
    const b = r.body as { name?: unknown };
    if (typeof b.name !== 'string') throw new XenodeError('usage', 'rename needs {"name": NEW}');
    ts.rename(ts.find(dom, r.principal), b.name);
  });
  action('mem-set', async (dom, r) => {
    const b = r.body as { mib?: unknown; deadlineMs?: unknown };
    if (typeof b.mib !== 'number' || !Number.isInteger(b.mib))
      throw new XenodeError('usage', 'mem-set needs {"mib": N}');
    if (b.deadlineMs !== undefined && typeof b.deadlineMs !== 'number')
      throw new XenodeError('usage', 'mem-set "deadlineMs" must be a number');
    // With a deadline the reply waits for the verdict.
    return ts.memSet(ts.find(dom, r.principal), b.mib, { deadlineMs: b.deadlineMs });
  });
  action('mem-max', async (dom, r) => {
    const b = r.body as { mib?: unknown };
    if (typeof b.mib !== 'number' || !Number.isInteger(b.mib))
      throw new XenodeError('usage', 'mem-max needs {"mib": N}');
    ts.memMax(ts.find(dom, r.principal), b.mib);
  });

  // Console: binary frames both ways; scroll-back first unless ?scrollback=0.
  // With ?mark=1 a text frame {"type":"scrollback-end"} follows the scroll-back,
  // so a terminal can replay it without answering the old queries in it.
  app.get<{ Params: DomParams; Querystring: { scrollback?: string; mark?: string } }>(
    '/v1/domains/:dom/console',
    { websocket: true },
    (socket, req) => {
      let d: ReturnType<typeof ts.find>;
      try {
        d = ts.find(req.params.dom, req.principal);
      } catch (e) {
        socket.close(4004, e instanceof Error ? e.message.slice(0, 100) : 'not found');
        return;
      }
      const detach = d.console.attach(
        {
          send: (data) => socket.send(data),
          backlog: () => socket.bufferedAmount,
          // A client that never reads would make the daemon buffer without end: cut it off.
          dropped: () => {
            ctx.log.warn(
              `console client of sponsor ${req.principal.sponsor} dropped: ${socket.bufferedAmount} bytes unread`,
              d.domid,
            );
            socket.terminate();
          },
        },
        req.query.scrollback !== '0',
      );
      if (req.query.mark === '1') socket.send(JSON.stringify({ type: 'scrollback-end' }));
      const onGone = () => socket.close(1000, 'domain destroyed');
      d.once('gone', onGone);
      socket.on('message', (data: Buffer) => {
        if (socket.readyState !== socket.OPEN) return;
        if (data.length > CONSOLE_MAX_INPUT) {
          socket.close(1009, 'console input over 64 KiB');
          return;
        }
        d.console.input(data);
      });
      socket.on('close', () => {
        detach();
        d.off('gone', onGone);
      });
    },
  );
}
