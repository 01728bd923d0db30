// The switch process's state and control server: ports by id, the host port,
// the policy, and the JSON-lines requests that change them.

import { chmodSync, existsSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { AuditEngine } from './audit/engine.ts';
import { parseRules, RulesError } from './audit/rules.ts';
import { PcapWriter } from './capture.ts';
import {
  type AddPortResult,
  CONTROL_VERSION,
  ControlError,
  type ControlRequest,
  type ControlResponse,
  type HelloResult,
  type HostPortSpec,
  MAX_CONTROL_LINE,
  type PortStatus,
  parseControlRequest,
  type SwitchStats,
} from './control-protocol.ts';
import type { RateSpec } from './credit.ts';
import { HostLinkError } from './host-links.ts';
import { SponsorIsolation, type SponsorPair } from './policy.ts';
import { StreamPort } from './stream-port.ts';
import { SwitchCore } from './switch-core.ts';
import type { TapPort } from './tap-port.ts';

export interface SwitchServerOptions {
  controlPath: string;
  /** Exit after this long with no control client and no connected domain port. */
  idleExitMs: number;
  log: (msg: string) => void;
}

export class SwitchServer {
  readonly policy = new SponsorIsolation();
  readonly core = new SwitchCore(this.policy);
  /** Flow log and audit rules (default rules until the daemon sends the admin's). */
  readonly audit = new AuditEngine();
  private auditTimer?: NodeJS.Timeout;
  private readonly caps = new Map<string, PcapWriter>();
  private readonly vifs = new Map<string, StreamPort>();
  private tap?: TapPort;
  private tapError?: string;
  private tapSpec?: HostPortSpec;
  private allow: SponsorPair[] = [];
  private server?: Server;
  private clients = new Set<Socket>();
  private idleSince = Date.now();
  private readonly startedAt = Date.now();
  private timer?: NodeJS.Timeout;
  private socketIno = 0;

  constructor(private readonly o: SwitchServerOptions) {
    this.core.audit = this.audit;
  }

  async listen(): Promise<void> {
    rmSync(this.o.controlPath, { force: true });
    const server = createServer((c) => this.onClient(c));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.controlPath, () => resolve());
    });
    chmodSync(this.o.controlPath, 0o600);
    this.socketIno = statSync(this.o.controlPath).ino;
    this.timer = setInterval(() => this.checkIdle(), 1000);
    this.auditTimer = setInterval(() => this.audit.tick(), 1000);
  }

  private checkIdle(): void {
    // The daemon's directory went away, or another switch took over the socket.
    if (!this.ownsSocket()) {
      this.exit('control socket removed');
      return;
    }
    // A domain torn down while no daemon was around: its run directory is gone.
    for (const [id, p] of this.vifs) {
      if (!p.connected && !existsSync(dirname(p.path))) this.dropPort(id, 'its domain is gone');
    }
    const busy = this.clients.size > 0 || [...this.vifs.values()].some((p) => p.connected);
    if (busy) this.idleSince = Date.now();
    else if (Date.now() - this.idleSince > this.o.idleExitMs) this.exit('idle: no daemon and no domain links');
  }

  private ownsSocket(): boolean {
    try {
      return statSync(this.o.controlPath).ino === this.socketIno;
    } catch {
      return false;
    }
  }

  private exit(why: string): void {
    this.o.log(`exiting: ${why}`);
    clearInterval(this.timer);
    clearInterval(this.auditTimer);
    for (const p of this.vifs.values()) p.stop();
    this.server?.close();
    if (this.ownsSocket()) rmSync(this.o.controlPath, { force: true });
    process.exit(0);
  }

  private onClient(c: Socket): void {
    this.clients.add(c);
    let buf = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.length > MAX_CONTROL_LINE) break;
        if (line.trim()) void this.handleLine(c, line);
      }
      // Not xenoded talking: answer once and hang up rather than buffer without end.
      if (buf.length > MAX_CONTROL_LINE) {
        this.o.log('control client dropped: request line too long');
        const r: ControlResponse = {
          id: 0,
          ok: false,
          error: `request line too long (over ${MAX_CONTROL_LINE} bytes)`,
        };
        c.end(`${JSON.stringify(r)}\n`);
        c.destroySoon?.();
        buf = '';
        c.removeAllListeners('data');
        c.pause();
      }
    });
    c.on('error', () => {});
    c.on('close', () => {
      this.clients.delete(c);
      this.idleSince = Date.now();
    });
  }

  private async handleLine(c: Socket, line: string): Promise<void> {
    let req: ControlRequest;
    try {
      req = parseControlRequest(line);
    } catch (e) {
      const id = e instanceof ControlError ? e.id : 0;
      const r: ControlResponse = { id, ok: false, error: (e as Error).message };
      if (!c.destroyed) c.write(`${JSON.stringify(r)}\n`);
      return;
    }
    let resp: ControlResponse;
    try {
      resp = { id: req.id, ok: true, result: await this.handle(req) };
    } catch (e) {
      resp = { id: req.id, ok: false, error: e instanceof Error ? e.message : String(e) };
    }
    if (!c.destroyed) c.write(`${JSON.stringify(resp)}\n`);
  }

  /** One control request, as a line on the socket carries it (unit tests call it directly). */
  async handle(req: ControlRequest): Promise<unknown> {
    switch (req.op) {
      case 'hello': {
        const r: HelloResult = {
          pid: process.pid,
          startedAt: this.startedAt,
          version: CONTROL_VERSION,
          ports: [...this.vifs.keys()],
        };
        return r;
      }
      case 'ping':
        return {};
      case 'add-port':
        return this.addPort(req);
      case 'remove-port':
        this.dropPort(req.portId, 'removed');
        return {};
      case 'set-policy':
        this.allow = req.allow.map(([a, b]) => [a, b] as const);
        this.policy.setAllowed(this.allow);
        return {};
      case 'set-rate':
        if (!this.vifs.has(req.portId)) throw new Error(`no port ${req.portId}`);
        this.core.setPortRate(req.portId, req.rate ?? undefined);
        this.o.log(`port ${req.portId}: rate ${rateText(req.rate)}`);
        return {};
      case 'sponsor-rate':
        this.core.setSponsorRate(req.sponsor, req.rate ?? undefined);
        this.o.log(`sponsor ${req.sponsor}: aggregate rate ${rateText(req.rate)}`);
        return {};
      case 'host-port':
        return this.hostPort(req.spec);
      case 'stats':
        return this.stats();
      case 'audit-rules':
        try {
          const rules = parseRules(req.rules);
          this.audit.setRules(rules);
          // Off: frames skip the audit altogether, so the switch runs as it would without one.
          this.core.audit = rules.enabled ? this.audit : undefined;
        } catch (e) {
          if (e instanceof RulesError) throw new Error(`audit rules: ${e.message}`);
          throw e;
        }
        this.o.log(this.core.audit ? 'audit rules set' : 'audit off (rules: enabled false)');
        return {};
      case 'audit-drain':
        return this.audit.drain(req.max);
      case 'capture-start': {
        if (!this.vifs.has(req.portId)) throw new Error(`no port ${req.portId}`);
        this.stopCapture(req.portId);
        const w = new PcapWriter(req.path, req.maxBytes);
        this.caps.set(req.portId, w);
        this.core.captures.set(req.portId, (f) => w.write(f));
        this.o.log(`port ${req.portId}: capture to ${req.path}`);
        return {};
      }
      case 'capture-stop':
        return { packets: this.stopCapture(req.portId) };
    }
  }

  /** Stop a port's capture; the packets it wrote. */
  private stopCapture(id: string): number {
    const w = this.caps.get(id);
    if (!w) return 0;
    w.close();
    this.caps.delete(id);
    this.core.captures.delete(id);
    return w.packets;
  }

  private dropPort(id: string, why: string): void {
    const p = this.vifs.get(id);
    if (!p) return;
    p.stop();
    this.vifs.delete(id);
    this.core.removePort(id);
    this.audit.removePort(id);
    this.stopCapture(id);
    this.o.log(`port ${id} ${why}`);
  }

  private async addPort(req: Extract<ControlRequest, { op: 'add-port' }>): Promise<AddPortResult> {
    const spec = req.port;
    let p = this.vifs.get(spec.id);
    // (A renamed domain keeps its port and the name it had: a new port would drop the link.)
    if (
      p &&
      (p.path !== spec.path || p.info.sponsor !== spec.sponsor || p.info.mac !== spec.mac || p.info.vlan !== spec.vlan)
    ) {
      p.stop();
      this.core.removePort(spec.id);
      this.audit.removePort(spec.id);
      p = undefined;
    }
    if (!p) {
      p = new StreamPort(
        {
          id: spec.id,
          kind: 'vif',
          sponsor: spec.sponsor,
          domid: spec.domid,
          devid: spec.devid,
          mac: spec.mac,
          domain: spec.domain,
          ips: spec.ips,
          ips6: spec.ips6,
          vlan: spec.vlan,
        },
        spec.path,
        this.core,
        this.o.log,
      );
      this.vifs.set(spec.id, p);
      this.core.addPort(p);
      this.core.setPortRate(spec.id, spec.rate);
      p.start();
      this.o.log(`port ${spec.id} added (sponsor ${spec.sponsor}, ${spec.mac}, rate ${rateText(spec.rate)})`);
    } else this.core.setPortRate(spec.id, spec.rate);
    const connected = req.waitMs ? await p.whenConnected(req.waitMs) : p.connected;
    return { connected };
  }

  private async hostPort(spec: HostPortSpec): Promise<{ up: boolean; error?: string }> {
    if (this.tapSpec) {
      const same = JSON.stringify(this.tapSpec) === JSON.stringify(spec);
      if (!same) throw new Error(`the host port is already ${this.tapSpec.name} ${this.tapSpec.address}`);
      return { up: this.tap !== undefined, error: this.tapError };
    }
    this.tapSpec = spec;
    try {
      // Loaded on demand: koffi is only needed for the host port.
      const { TapPort } = await import('./tap-port.ts');
      // A switch that is on its way out may hold the TAP for another second (EBUSY).
      for (let attempt = 0; ; attempt++) {
        try {
          this.tap = TapPort.open(spec, this.core, this.o.log);
          break;
        } catch (e) {
          if (attempt >= 20 || !(e instanceof HostLinkError && /in use/.test(e.message))) throw e;
          await new Promise((r) => setTimeout(r, 150));
        }
      }
      this.core.addPort(this.tap);
      this.o.log(`host port ${spec.name} up with ${spec.address}`);
      return { up: true };
    } catch (e) {
      const msg = e instanceof HostLinkError && e.hint ? `${e.message} (${e.hint})` : (e as Error).message;
      this.tapError = msg;
      this.o.log(`host port ${spec.name} unavailable: ${msg}`);
      return { up: false, error: msg };
    }
  }

  private stats(): SwitchStats {
    const ports: PortStatus[] = [];
    for (const p of this.vifs.values()) {
      ports.push({
        id: p.info.id,
        kind: 'vif',
        sponsor: p.info.sponsor,
        domid: p.info.domid,
        devid: p.info.devid,
        mac: p.info.mac,
        connected: p.connected,
        connects: p.connects,
        counters: { ...p.counters },
        rate: this.core.portRate(p.info.id),
      });
    }
    if (this.tap) {
      ports.push({
        id: 'host',
        kind: 'host',
        sponsor: this.tap.info.sponsor,
        connected: true,
        connects: 1,
        counters: { ...this.tap.counters },
      });
    }
    return {
      pid: process.pid,
      startedAt: this.startedAt,
      ports,
      hostPort: this.tapSpec ? { spec: this.tapSpec, up: this.tap !== undefined, error: this.tapError } : undefined,
      macs: this.core.macTable().length,
      allow: this.allow,
      sponsorRates: this.core.sponsorRates(),
      audit: { flows: this.audit.flowCount, enforced: this.audit.status() },
    };
  }
}

function rateText(r: RateSpec | null | undefined): string {
  return r ? `${r.bytesPerSec} B/s per ${r.intervalUs} us` : 'none';
}
