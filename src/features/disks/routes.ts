// Disk routes: block-attach / block-detach / block-list, per-disk I/O
// counters (for the CLI and the web UI's charts), and disk limits.

import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../api/context.ts';
import { parseDiskSpec } from '../../config/disk.ts';
import { isThrottleKey, throttleProblem } from '../../config/disk-throttle.ts';
import type { DiskSpec, DiskThrottle } from '../../config/types.ts';
import { XenodeError } from '../../errors.ts';
import type { DiskOps } from './views.ts';

interface DomParams {
  dom: string;
}

export interface BlockAttachBody {
  /** xl's disk spec, e.g. "/srv/d.img,raw,xvdc,rw"; the target must be an absolute path. */
  spec?: unknown;
}

export interface BlockDetachBody {
  /** vdev (xvdc) or Xen device number (51744). */
  vdev?: unknown;
  force?: unknown;
}

export interface BlockThrottleBody {
  /** The disk's limits, e.g. {"bps": 4194304, "iops_wr": 50}; {} (or 0 values) = none. */
  throttle?: unknown;
}

/** A body's limits as typed data, by the same rules as a disk spec's; 0 means none, as in QEMU. */
export function throttleFromBody(v: unknown): DiskThrottle {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new XenodeError('usage', 'block throttle needs {"throttle": {"bps": N, "iops": N, ...}} ({} for none)');
  }
  const out: DiskThrottle = {};
  for (const [k, n] of Object.entries(v)) {
    if (!isThrottleKey(k)) throw new XenodeError('usage', `unknown limit '${k.slice(0, 24)}'`);
    if (typeof n !== 'number') throw new XenodeError('usage', `limit ${k} must be a number`);
    if (n !== 0) out[k] = n;
  }
  const problem = throttleProblem(out);
  if (problem) throw new XenodeError('usage', problem);
  return out;
}

/** Parse a spec from the API: there is no current directory to resolve a relative target against. */
export function parseApiDiskSpec(spec: string, warn: (w: string) => void): DiskSpec {
  const a = parseDiskSpec(spec, { baseDir: '/a', warn });
  // A relative target resolves differently against two bases; an absolute one does not.
  const b = parseDiskSpec(spec, { baseDir: '/b' });
  if (a.target !== b.target) {
    throw new XenodeError('usage', `disk target in '${spec}' must be an absolute path in an API request`);
  }
  return a;
}

export function registerBlockRoutes(app: FastifyInstance, ctx: ApiContext, disks: DiskOps): void {
  const ts = ctx.toolstack;

  app.get<{ Params: DomParams }>('/v1/domains/:dom/block', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    return { domid: d.domid, name: d.name, disks: disks.list(d) };
  });

  // Under `disk`, so a shared /stats view can take it over as is.
  app.get<{ Params: DomParams }>('/v1/domains/:dom/block/stats', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    return { domid: d.domid, name: d.name, disk: await disks.stats(d) };
  });

  app.get<{ Params: DomParams }>('/v1/domains/:dom/block/throttle', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    return disks.throttleList(d);
  });

  // A sponsor sets its own domains' limits: any value only slows its own disk, and
  // its share of the aggregate stays in force below it.
  app.put<{ Params: DomParams & { vdev: string }; Body: BlockThrottleBody }>(
    '/v1/domains/:dom/block/:vdev/throttle',
    async (req) => {
      const d = ts.find(req.params.dom, req.principal);
      return disks.setThrottle(d, req.params.vdev, throttleFromBody(req.body?.throttle));
    },
  );

  app.post<{ Params: DomParams; Body: BlockAttachBody }>('/v1/domains/:dom/block-attach', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    const spec = req.body?.spec;
    if (typeof spec !== 'string' || spec.trim() === '') {
      throw new XenodeError('usage', 'block-attach needs {"spec": "<target>,<format>,<vdev>,<access>"}');
    }
    const warnings: string[] = [];
    let disk = parseApiDiskSpec(spec, (w) => warnings.push(w));
    // A disk spec names a host file: a sponsor may name only what the storage gate vouches for.
    if (!req.principal.admin && disk.target !== '') {
      const gate = ts.plugins.find((x) => x.fileGate)?.fileGate;
      if (!gate) throw new XenodeError('permission', 'only the admin may attach host files as disks');
      const write = disk.access === 'rw' && disk.devtype === 'disk';
      const target = gate.sponsorFile(req.principal.sponsor, disk.target, { kind: 'disk', write, format: disk.format });
      disk = { ...disk, target };
    }
    return { ...(await disks.attach(d, disk)), warnings };
  });

  app.post<{ Params: DomParams; Body: BlockDetachBody }>('/v1/domains/:dom/block-detach', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    const vdev = req.body?.vdev;
    if (typeof vdev !== 'string' && typeof vdev !== 'number') {
      throw new XenodeError('usage', 'block-detach needs {"vdev": "xvdc"} (or a device number)');
    }
    await disks.detach(d, String(vdev), req.body?.force === true);
    return { ok: true };
  });
}
