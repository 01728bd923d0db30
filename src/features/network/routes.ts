// Network routes: a domain's vifs with counters (for the CLI and the web UI's
// charts), NIC hotplug, and the switch's status and sponsor policy (admin).

import { closeSync, openSync, readSync } from 'node:fs';
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../api/context.ts';
import { parseVifSpec } from '../../config/vif.ts';
import { XenodeError } from '../../errors.ts';
import { sponsorVif } from '../../toolstack/admission.ts';
import type { NetManager } from './manager.ts';

interface DomParams {
  dom: string;
}

export interface AttachBody {
  /** xl's vif spec, e.g. "mac=00:16:3e:00:00:01,bridge=br0,ip=10.200.0.5". */
  spec?: string;
}

export interface RateBody {
  /** xl's rate= (e.g. "10Mb/s@20ms"), or null / "none" for no limit. */
  rate?: unknown;
}

export interface PolicyBody {
  a?: string;
  b?: string;
  allow?: boolean;
}

function requireAdmin(admin: boolean): void {
  if (!admin) throw new XenodeError('permission', 'only the admin may do this');
}

/** A capture's bounds: what the caller asked for within the host's limits. */
const CAPTURE_MAX_BYTES = 256 * 1024 * 1024;
const CAPTURE_MAX_SECONDS = 3600;

function captureArg(v: string | undefined, what: string, max: number): number | undefined {
  if (v === undefined || v === '') return undefined;
  if (!/^\d{1,10}$/.test(v) || Number(v) < 1 || Number(v) > max)
    throw new XenodeError('usage', `${what} must be a number from 1 to ${max}`);
  return Number(v);
}

/**
 * The pcap file the switch is writing, as a stream: complete records only,
 * ending after `count` packets or `seconds`, when the file is full, or when the
 * domain is gone.
 */
function tailPcap(
  path: string,
  count: number | undefined,
  seconds: number | undefined,
  maxBytes: number,
  alive: () => boolean,
): Readable {
  const fd = openSync(path, 'r');
  let pos = 0;
  let pending = Buffer.alloc(0);
  let packets = 0;
  let headerSent = false;
  const until = seconds === undefined ? undefined : Date.now() + seconds * 1000;
  let timer: NodeJS.Timeout | undefined;
  const out = new Readable({ read() {} });
  let closed = false;
  const release = () => {
    clearInterval(timer);
    if (!closed) closeSync(fd);
    closed = true;
  };
  const finish = () => {
    release();
    out.push(null);
  };
  const poll = () => {
    const buf = Buffer.alloc(1 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n <= 0) break;
      pos += n;
      pending = Buffer.concat([pending, buf.subarray(0, n)]);
    }
    if (!headerSent && pending.length >= 24) {
      out.push(pending.subarray(0, 24));
      pending = pending.subarray(24);
      headerSent = true;
    }
    // Whole records only, so the file the client keeps is valid wherever it stops.
    let off = 0;
    while (headerSent && pending.length - off >= 16 && (count === undefined || packets < count)) {
      const len = pending.readUInt32LE(off + 8);
      if (pending.length - off < 16 + len) break;
      out.push(pending.subarray(off, off + 16 + len));
      off += 16 + len;
      packets++;
    }
    pending = pending.subarray(off);
    const full = pos > maxBytes - (16 + 65535);
    if ((count !== undefined && packets >= count) || (until !== undefined && Date.now() >= until) || full || !alive())
      finish();
  };
  timer = setInterval(poll, 100);
  out.on('close', release);
  return out;
}

export function registerNetRoutes(app: FastifyInstance, ctx: ApiContext, net: NetManager): void {
  const ts = ctx.toolstack;

  // net-capture: the vif's frames both ways as a pcap stream, until count, seconds or the client leaves.
  app.get<{ Params: DomParams; Querystring: Record<string, string | undefined> }>(
    '/v1/domains/:dom/capture',
    async (req, reply) => {
      const d = ts.find(req.params.dom, req.principal);
      const q = req.query ?? {};
      const count = captureArg(q.count, 'count', 10_000_000);
      const seconds = captureArg(q.seconds, 'seconds', CAPTURE_MAX_SECONDS);
      const maxBytes = captureArg(q.maxBytes, 'maxBytes', CAPTURE_MAX_BYTES) ?? CAPTURE_MAX_BYTES;
      const cap = await net.startCapture(d, q.vif ?? '0', maxBytes);
      const stream = tailPcap(
        cap.path,
        count,
        seconds ?? CAPTURE_MAX_SECONDS,
        maxBytes,
        () => d.machine?.alive === true,
      );
      let stopped = false;
      const stop = () => {
        if (stopped) return;
        stopped = true;
        stream.destroy();
        void cap.stop();
      };
      stream.on('end', stop);
      // The client went away (Ctrl-C): the capture ends.
      reply.raw.on('close', stop);
      return reply.type('application/vnd.tcpdump.pcap').send(stream);
    },
  );

  app.get<{ Params: DomParams }>('/v1/domains/:dom/net', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    return { domid: d.domid, name: d.name, vifs: await net.views(d) };
  });

  app.post<{ Params: DomParams; Body: AttachBody }>('/v1/domains/:dom/net', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    const spec = req.body?.spec ?? '';
    if (typeof spec !== 'string') throw new XenodeError('usage', 'network-attach needs {"spec": "key=value,..."}');
    const warnings: string[] = [];
    const parsed = parseVifSpec(spec, { warn: (w) => warnings.push(w) });
    const p = req.principal;
    const vif = p.admin ? parsed : sponsorVif(parsed, ctx.sponsors.limits(p.sponsor));
    return { ...(await net.attach(d, vif)), warnings };
  });

  app.delete<{ Params: DomParams & { dev: string } }>('/v1/domains/:dom/net/:dev', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    await net.detach(d, req.params.dev);
    return { ok: true };
  });

  // A sponsor changes its own domains' vifs: its aggregate (quota-set net-rate=) still bounds them all.
  app.put<{ Params: DomParams & { dev: string }; Body: RateBody }>('/v1/domains/:dom/net/:dev/rate', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    const rate = req.body?.rate;
    if (rate !== null && (typeof rate !== 'string' || rate.length === 0 || rate.length > 64)) {
      throw new XenodeError('usage', 'network-rate needs {"rate": "RATE/s[@INTERVAL]"} or {"rate": null}', {
        hint: "e.g. '10Mb/s', '1MB/s@20ms', or none",
      });
    }
    const none = rate === null || rate === 'none';
    return net.setRate(d, req.params.dev, none ? undefined : rate, () => ts.touch(d));
  });

  app.get('/v1/net', async (req) => {
    requireAdmin(req.principal.admin);
    return net.status();
  });

  app.post('/v1/net/start', async (req) => {
    requireAdmin(req.principal.admin);
    return net.startSwitch();
  });

  app.get('/v1/net/policy', async (req) => {
    requireAdmin(req.principal.admin);
    return { allow: net.policy() };
  });

  app.post<{ Body: PolicyBody }>('/v1/net/policy', async (req) => {
    requireAdmin(req.principal.admin);
    const { a, b, allow } = req.body ?? {};
    if (typeof a !== 'string' || typeof b !== 'string' || typeof allow !== 'boolean') {
      throw new XenodeError('usage', 'policy change needs {"a": SPONSOR, "b": SPONSOR, "allow": true|false}');
    }
    return { allow: await net.setAllowed(a, b, allow) };
  });
}
