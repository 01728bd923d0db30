// xl's trigger, button-press, sysrq, cd-insert/cd-eject, dump-core and qemu-monitor-command as domain routes.
// The domain is looked up for the caller first, so another sponsor's domain is
// a 404 like a missing one; the monitor is the admin's alone (it can do anything to QEMU).

import type { FastifyInstance } from 'fastify';
import { XenodeError } from '../errors.ts';
import { cdEject, cdInsert } from '../toolstack/xl-cdrom.ts';
import { dumpCore, isTriggerKind, monitorCommand, sysrq, TRIGGER_KINDS, trigger } from '../toolstack/xl-triggers.ts';
import type { ApiContext } from './context.ts';

interface DomParams {
  dom: string;
}

function body(b: unknown): Record<string, unknown> {
  return b && typeof b === 'object' && !Array.isArray(b) ? (b as Record<string, unknown>) : {};
}

export function registerXlRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const ts = ctx.toolstack;

  app.post<{ Params: DomParams; Body: unknown }>('/v1/domains/:dom/trigger', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    const kind = body(req.body).kind;
    if (!isTriggerKind(kind))
      throw new XenodeError('usage', 'trigger needs {"kind": K}', { hint: `K is one of ${TRIGGER_KINDS.join(', ')}` });
    await trigger(ts, d, kind);
    ctx.log.info(`trigger ${kind} by sponsor ${req.principal.sponsor}`, d.domid);
    return { ok: true };
  });

  app.post<{ Params: DomParams; Body: unknown }>('/v1/domains/:dom/sysrq', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    const key = body(req.body).key;
    if (typeof key !== 'string') throw new XenodeError('usage', 'sysrq needs {"key": "h"}');
    await sysrq(d, key);
    return { ok: true };
  });

  app.post<{ Params: DomParams; Body: unknown }>('/v1/domains/:dom/cd-insert', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    const { vdev, file } = body(req.body);
    if (typeof vdev !== 'string' || typeof file !== 'string' || file.length > 4096)
      throw new XenodeError('usage', 'cd-insert needs {"vdev": "xvdc", "file": PATH}');
    await cdInsert(ts, d, req.principal, vdev, file);
    ctx.log.info(`cd-insert ${vdev.slice(0, 32)} by sponsor ${req.principal.sponsor}`, d.domid);
    return { ok: true };
  });

  app.post<{ Params: DomParams; Body: unknown }>('/v1/domains/:dom/cd-eject', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    const { vdev } = body(req.body);
    if (typeof vdev !== 'string') throw new XenodeError('usage', 'cd-eject needs {"vdev": "xvdc"}');
    await cdEject(ts, d, vdev);
    return { ok: true };
  });

  // The core is a host file written by the daemon: the admin's alone, refused before the lookup.
  app.post<{ Params: DomParams; Body: unknown }>('/v1/domains/:dom/dump-core', async (req) => {
    if (!req.principal.admin)
      throw new XenodeError('permission', 'only the admin may dump a domain core (it is written to a host file)');
    const d = ts.find(req.params.dom, req.principal);
    const { file } = body(req.body);
    if (typeof file !== 'string') throw new XenodeError('usage', 'dump-core needs {"file": PATH}');
    await dumpCore(d, file);
    ctx.log.info(`core dumped to ${file}`, d.domid);
    return { ok: true };
  });

  app.post<{ Params: DomParams; Body: unknown }>('/v1/domains/:dom/monitor', async (req) => {
    // Refused before the lookup: a sponsor learns nothing of which domains exist.
    if (!req.principal.admin)
      throw new XenodeError('permission', 'only the admin may use the QEMU monitor', {
        hint: 'a sponsor uses trigger, sysrq and the other domain commands',
      });
    const d = ts.find(req.params.dom, req.principal);
    const command = body(req.body).command;
    if (typeof command !== 'string') throw new XenodeError('usage', 'monitor needs {"command": "info status"}');
    ctx.log.info(`qemu-monitor-command: ${command.slice(0, 200)}`, d.domid);
    return { output: await monitorCommand(d, command) };
  });
}
