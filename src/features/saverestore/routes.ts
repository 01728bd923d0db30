// Save, restore and migration routes. Each long operation is served twice:
// POST answers when it is done; a WebSocket on the same path takes the request
// as its first message and streams {progress} frames, then {result} or {error}.
// The target side of a live migration is a WebSocket of its own (migrate-protocol.ts),
// open to the host's admin only.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { ApiContext } from '../../api/context.ts';
import { type WireError, XenodeError } from '../../errors.ts';
import type { Principal } from '../../toolstack/principal.ts';
import { migrateDomain } from './migrate.ts';
import { MIGRATE_PATH } from './migrate-protocol.ts';
import { plainAddress } from './migrate-stream.ts';
import { mayReceiveMigrations, RECEIVE_REFUSAL, receiveMigration } from './migrate-target.ts';
import { type OpProgress, restoreFromFile, saveDomain } from './saverestore.ts';

interface OpCall {
  params: Record<string, string>;
  body: Record<string, unknown>;
  principal: Principal;
}

type OpHandler = (c: OpCall, progress: (p: OpProgress) => void) => Promise<unknown>;

/** Progress frames at most this often (the last one always goes out with the result). */
const PROGRESS_EVERY_MS = 200;

function wire(e: unknown): WireError {
  return e instanceof XenodeError
    ? e.toJSON()
    : { kind: 'internal', message: e instanceof Error ? e.message : String(e) };
}

function requireAdmin(p: Principal, what: string): void {
  // These name host files or make the daemon connect out: the host's admin only.
  if (!p.admin) throw new XenodeError('permission', `only the admin may ${what}`);
}

function opRoute(app: FastifyInstance, path: string, handler: OpHandler): void {
  app.post<{ Params: Record<string, string>; Body: Record<string, unknown> }>(path, async (req) =>
    handler({ params: req.params, body: req.body ?? {}, principal: req.principal }, () => {}),
  );
  app.get<{ Params: Record<string, string> }>(path, { websocket: true }, (socket: WebSocket, req) => {
    socket.once('message', (data: Buffer) => {
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
      } catch {
        socket.send(JSON.stringify({ error: { kind: 'usage', message: 'the first message must be a JSON request' } }));
        socket.close(1000);
        return;
      }
      let last = 0;
      const progress = (p: OpProgress) => {
        const now = Date.now();
        if (now - last < PROGRESS_EVERY_MS) return;
        last = now;
        if (socket.readyState === socket.OPEN) socket.send(JSON.stringify({ progress: p }));
      };
      handler({ params: req.params, body, principal: req.principal }, progress).then(
        (result) => {
          if (socket.readyState === socket.OPEN) socket.send(JSON.stringify({ result }));
          socket.close(1000);
        },
        (e: unknown) => {
          if (socket.readyState === socket.OPEN) socket.send(JSON.stringify({ error: wire(e) }));
          socket.close(1000);
        },
      );
    });
  });
}

function str(b: Record<string, unknown>, k: string, required = true): string | undefined {
  const v = b[k];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string' || v === '') throw new XenodeError('usage', `"${k}" must be a non-empty string`);
  return v;
}

function num(b: Record<string, unknown>, k: string): number | undefined {
  const v = b[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    throw new XenodeError('usage', `"${k}" must be a positive number`);
  return v;
}

function absolute(file: string): string {
  if (!file.startsWith('/')) throw new XenodeError('usage', `file '${file}' must be an absolute path`);
  return file;
}

/** The local address a request arrived on (the migration stream is taken there too). */
function localAddress(req: FastifyRequest): string {
  return plainAddress(req.socket.localAddress) ?? '127.0.0.1';
}

export function registerMigrateRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const ts = ctx.toolstack;

  opRoute(app, '/v1/domains/:dom/save', async (c, progress) => {
    requireAdmin(c.principal, 'save domains to host files');
    const d = ts.find(c.params.dom ?? '', c.principal);
    const file = absolute(str(c.body, 'file') as string);
    return saveDomain(
      ts,
      d,
      { file, checkpoint: c.body.checkpoint === true, leavePaused: c.body.paused === true },
      progress,
    );
  });

  opRoute(app, '/v1/restore', async (c, progress) => {
    requireAdmin(c.principal, 'restore domains from host files');
    const file = absolute(str(c.body, 'file') as string);
    const overrides = Array.isArray(c.body.overrides) ? c.body.overrides.map(String) : [];
    const cwd = str(c.body, 'cwd', false);
    return restoreFromFile(ts, c.principal, { file, paused: c.body.paused === true, overrides, cwd }, progress);
  });

  opRoute(app, '/v1/domains/:dom/migrate', async (c, progress) => {
    requireAdmin(c.principal, 'migrate domains');
    const d = ts.find(c.params.dom ?? '', c.principal);
    const host = str(c.body, 'host') as string;
    const port = num(c.body, 'port');
    if (port === undefined || !Number.isInteger(port) || port > 65535)
      throw new XenodeError('usage', '"port" must be a TCP port');
    return migrateDomain(
      ts,
      d,
      {
        host,
        port,
        token: str(c.body, 'token', false),
        downtimeMs: num(c.body, 'downtimeMs'),
        bandwidthMbps: num(c.body, 'bandwidthMbps'),
        paused: c.body.paused === true,
      },
      progress,
    );
  });

  app.get(
    MIGRATE_PATH,
    {
      websocket: true,
      // Refused before the upgrade (HTTP 403): a sponsor token starts nothing here.
      preValidation: async (req) => {
        if (!mayReceiveMigrations(req.principal)) {
          throw new XenodeError('permission', RECEIVE_REFUSAL, {
            hint: 'migrate with an admin token of this host (xenode token create NAME --admin)',
          });
        }
      },
    },
    (socket: WebSocket, req) => {
      receiveMigration(ts, req.principal, socket, {
        bindHost: localAddress(req),
        // The stream must come from where the control link came from.
        peerHost: plainAddress(req.socket.remoteAddress),
        qemuVersion: ctx.hostInfo().qemu_version,
      });
    },
  );
}
