// xenoded's supervision of the switch process. The daemon keeps the desired
// state (host port, policy, one port per switch vif) and replays it whenever it
// connects to a switch: a fresh one after a crash, or one that outlived an
// earlier daemon. That state includes the rate limits (each port's, and the
// per-sponsor aggregates), so a switch never runs a domain unlimited for long. A closed control channel means the switch died; it is
// restarted at once, and QEMU, which listens on each vif socket, takes the new
// connection. A switch that stops answering pings is killed and restarted.

import { spawn } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type AddPortResult,
  type AuditDrain,
  CONTROL_VERSION,
  type HelloResult,
  type HostPortSpec,
  type RateSpec,
  type SwitchStats,
  type VifPortSpec,
} from '../../net/control-protocol.ts';
import type { SponsorPair } from '../../net/policy.ts';
import { SwitchClient } from '../../net/switch-client.ts';
import type { NetAuditSink } from '../../toolstack/lifecycle-hooks.ts';
import type { DaemonLog } from '../../toolstack/log.ts';

const PING_EVERY_MS = 2000;
const PING_TIMEOUT_MS = 5000;
const START_TIMEOUT_MS = 15_000;
/** How often flow records and audit events are fetched from the switch. */
const AUDIT_DRAIN_MS = 1000;

export interface SwitchSupervisorOptions {
  base: string;
  log: DaemonLog;
  hostPort?: HostPortSpec;
}

export class SwitchSupervisor {
  readonly controlPath: string;
  readonly logPath: string;
  private client?: SwitchClient;
  private connecting?: Promise<SwitchClient>;
  private readonly ports = new Map<string, VifPortSpec>();
  private allow: SponsorPair[] = [];
  /** Per-sponsor aggregates, null = none (sent too: a switch that outlived a daemon may hold an old one). */
  private readonly sponsorRates = new Map<string, RateSpec | null>();
  /** The admin's audit rules (as the switch's grammar has them), for every switch started. */
  private auditRules?: Record<string, unknown>;
  private auditSink?: NetAuditSink;
  private drainTimer?: NodeJS.Timeout;
  private draining = false;
  private pid?: number;
  private stopping = false;
  private pingTimer?: NodeJS.Timeout;
  private pingInFlight = false;
  /** Times the switch had to be started again after it died or hung. */
  restarts = 0;
  private recentDeaths: number[] = [];
  hostPortError?: string;

  constructor(private readonly o: SwitchSupervisorOptions) {
    this.controlPath = join(o.base, 'switch.sock');
    this.logPath = join(o.base, 'switch.log');
  }

  get hostPort(): HostPortSpec | undefined {
    return this.o.hostPort;
  }

  get switchPid(): number | undefined {
    return this.client && !this.client.isClosed ? this.pid : undefined;
  }

  /** Connected to a switch, starting one if none runs. */
  ensure(): Promise<SwitchClient> {
    if (this.client && !this.client.isClosed) return Promise.resolve(this.client);
    if (!this.connecting) {
      this.connecting = this.connect().finally(() => {
        this.connecting = undefined;
      });
    }
    return this.connecting;
  }

  private async connect(): Promise<SwitchClient> {
    try {
      const c = await SwitchClient.connect(this.controlPath, 1000);
      return await this.adopt(c, false);
    } catch {
      /* none running: start one */
    }
    const child = this.spawnSwitch();
    const deadline = Date.now() + START_TIMEOUT_MS;
    let exited = false;
    child.once('exit', () => {
      exited = true;
    });
    for (;;) {
      try {
        const c = await SwitchClient.connect(this.controlPath, 1000);
        return await this.adopt(c, true);
      } catch (e) {
        if (exited || Date.now() > deadline) {
          throw new Error(`the switch did not start: ${(e as Error).message} (see ${this.logPath})`);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  }

  private spawnSwitch(): ReturnType<typeof spawn> {
    const here = dirname(fileURLToPath(import.meta.url));
    const bundled = join(here, 'xenode-switch.mjs');
    const args = existsSync(bundled) ? [bundled] : ['--import', 'tsx', join(here, '..', '..', 'net', 'switch-main.ts')];
    const out = openSync(this.logPath, 'a');
    const child = spawn(process.execPath, [...args, '--control', this.controlPath], {
      detached: true,
      stdio: ['ignore', out, out],
    });
    child.unref();
    return child;
  }

  /** Take over a connected switch: learn its pid, replay the desired state, watch it. */
  private async adopt(c: SwitchClient, fresh: boolean): Promise<SwitchClient> {
    const hello = await c.call<HelloResult>({ op: 'hello' });
    if (!(hello.version >= CONTROL_VERSION)) {
      // Left running by an older Xenode: it would keep forwarding what the current one
      // refuses (spoofed source MACs). Replace it; QEMU listens again for the new one.
      // (Checked on every connect: one being killed may still answer once.)
      this.o.log.warn(`switch (pid ${hello.pid}) is of an older version (${hello.version}); replacing it`);
      c.close();
      try {
        process.kill(hello.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      throw new Error('outdated switch');
    }
    this.pid = hello.pid;
    this.client = c;
    c.on('close', () => this.onClosed(c));
    this.o.log.info(`switch ${fresh ? 'started' : 'reattached'} (pid ${hello.pid})`);
    if (this.o.hostPort) {
      try {
        const r = await c.call<{ up: boolean; error?: string }>({ op: 'host-port', spec: this.o.hostPort }, 10_000);
        this.hostPortError = r.error;
      } catch (e) {
        this.hostPortError = (e as Error).message;
      }
      if (this.hostPortError && fresh) {
        this.o.log.warn(`host port ${this.o.hostPort.name} unavailable: ${this.hostPortError}`);
      }
    }
    await c.call({ op: 'set-policy', allow: this.allow });
    if (this.auditRules) await c.call({ op: 'audit-rules', rules: this.auditRules });
    // Limits before ports, so no port runs unlimited in between.
    for (const [sponsor, rate] of this.sponsorRates) await c.call({ op: 'sponsor-rate', sponsor, rate });
    // Ports it already has are kept as they are (a reattaching daemon re-adds the same ones);
    // the switch itself drops ports whose domain's run directory is gone.
    for (const p of this.ports.values()) await c.call({ op: 'add-port', port: p });
    this.startPings(c);
    this.startDrains(c);
    return c;
  }

  /** Flow records and rule events from the switch to the audit log, once a second. */
  private startDrains(c: SwitchClient): void {
    clearInterval(this.drainTimer);
    this.drainTimer = setInterval(() => {
      if (this.draining || c.isClosed || !this.auditSink) return;
      this.draining = true;
      c.call<AuditDrain>({ op: 'audit-drain' })
        .then((d) => {
          if (d.lost > 0) this.o.log.warn(`switch: ${d.lost} flow records or audit events lost (outbox full)`);
          if (d.events.length > 0) this.auditSink?.events(d.events);
          if (d.flows.length > 0) this.auditSink?.flows(d.flows);
        })
        .catch(() => undefined)
        .finally(() => {
          this.draining = false;
        });
    }, AUDIT_DRAIN_MS);
    this.drainTimer.unref();
  }

  setAuditSink(sink: NetAuditSink): void {
    this.auditSink = sink;
  }

  /** Capture a port's frames into `path` (pcap) until stopCapture() or `maxBytes`. */
  async capture(portId: string, path: string, maxBytes: number): Promise<void> {
    const c = await this.ensure();
    await c.call({ op: 'capture-start', portId, path, maxBytes });
  }

  async stopCapture(portId: string): Promise<void> {
    const c = this.client;
    if (c && !c.isClosed) await c.call({ op: 'capture-stop', portId });
  }

  /** Put audit rules (already checked) in force now and in every switch started later. */
  async setAuditRules(rules: Record<string, unknown>): Promise<void> {
    this.auditRules = rules;
    const c = this.client;
    if (c && !c.isClosed) await c.call({ op: 'audit-rules', rules });
  }

  private startPings(c: SwitchClient): void {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (this.pingInFlight || c.isClosed) return;
      this.pingInFlight = true;
      c.call({ op: 'ping' }, PING_TIMEOUT_MS)
        .catch(() => {
          if (c.isClosed || this.stopping) return;
          this.o.log.warn(`switch (pid ${this.pid}) stopped answering; killing it`);
          this.killSwitch();
          c.close();
        })
        .finally(() => {
          this.pingInFlight = false;
        });
    }, PING_EVERY_MS);
    this.pingTimer.unref();
  }

  private killSwitch(): void {
    if (!this.pid) return;
    try {
      process.kill(this.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }

  private onClosed(c: SwitchClient): void {
    if (this.client !== c) return;
    this.client = undefined;
    clearInterval(this.pingTimer);
    clearInterval(this.drainTimer);
    if (this.stopping) return;
    const now = Date.now();
    this.recentDeaths = [...this.recentDeaths.filter((t) => now - t < 60_000), now];
    this.restarts++;
    // A switch that keeps dying is restarted more slowly, never abandoned.
    const delay = this.recentDeaths.length > 5 ? Math.min(10_000, 500 * 2 ** (this.recentDeaths.length - 5)) : 0;
    this.o.log.warn(`switch (pid ${this.pid}) exited; restarting${delay ? ` in ${delay} ms` : ''}`);
    setTimeout(() => {
      if (this.stopping) return;
      this.ensure().catch((e: unknown) => {
        this.o.log.error(`switch restart failed: ${e instanceof Error ? e.message : String(e)}`);
        this.onRestartFailed();
      });
    }, delay);
  }

  private onRestartFailed(): void {
    if (this.stopping) return;
    setTimeout(() => {
      if (this.stopping || (this.client && !this.client.isClosed)) return;
      this.ensure().catch(() => this.onRestartFailed());
    }, 2000);
  }

  // ---- desired state ------------------------------------------------------

  /** Add or update a domain port; with waitMs, wait for the link to come up. */
  async addPort(spec: VifPortSpec, waitMs = 0): Promise<AddPortResult> {
    this.ports.set(spec.id, spec);
    const c = await this.ensure();
    return c.call<AddPortResult>({ op: 'add-port', port: spec, waitMs }, waitMs + 5000);
  }

  /** Change a port's rate limit (undefined: none); kept for a restarted switch. */
  async setPortRate(id: string, rate: RateSpec | undefined): Promise<void> {
    const spec = this.ports.get(id);
    if (!spec) return;
    if (rate) spec.rate = rate;
    else delete spec.rate;
    const c = this.client;
    if (c && !c.isClosed) await c.call({ op: 'set-rate', portId: id, rate: rate ?? null });
  }

  /** Set a sponsor's aggregate limit (undefined: none); kept for a restarted switch. */
  async setSponsorRate(sponsor: string, rate: RateSpec | undefined): Promise<void> {
    const known = this.sponsorRates.has(sponsor);
    const old = this.sponsorRates.get(sponsor) ?? undefined;
    this.sponsorRates.set(sponsor, rate ?? null);
    if (known && old?.bytesPerSec === rate?.bytesPerSec && old?.intervalUs === rate?.intervalUs) return;
    const c = this.client;
    if (c && !c.isClosed) await c.call({ op: 'sponsor-rate', sponsor, rate: rate ?? null });
  }

  async removePort(id: string): Promise<void> {
    this.ports.delete(id);
    const c = this.client;
    if (c && !c.isClosed) await c.call({ op: 'remove-port', portId: id });
  }

  hasPorts(): boolean {
    return this.ports.size > 0;
  }

  async setPolicy(allow: SponsorPair[]): Promise<void> {
    this.allow = allow;
    const c = this.client;
    if (c && !c.isClosed) await c.call({ op: 'set-policy', allow });
  }

  /** Live counters; undefined when no switch runs (nothing to count). */
  async stats(): Promise<SwitchStats | undefined> {
    const c = this.client;
    if (!c || c.isClosed) return undefined;
    return c.call<SwitchStats>({ op: 'stats' });
  }

  /** Daemon exit: stop watching; the switch stays for the running domains. */
  stop(): void {
    this.stopping = true;
    clearInterval(this.pingTimer);
    clearInterval(this.drainTimer);
    this.client?.close();
  }
}
