// Domains' network devices: vif records (MAC, backend), QEMU arguments at
// launch, switch ports, TAPs on Linux bridges, hotplug, counters and the
// sponsor policy. The net plugin calls into this; the API routes too.

import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { join } from 'node:path';
import type { VifSpec } from '../../config/types.ts';
import { parseMac } from '../../config/vif.ts';
import { chooseMachine } from '../../engine/machine.ts';
import { NIC_BRIDGE_SLOTS, type NicDevice, nicArgs, nicBridgeArgs, vifSocketPath } from '../../engine/net-args.ts';
import { plugNic, unplugNic } from '../../engine/net-hotplug.ts';
import { entropyDeviceArgs } from '../../engine/rng-args.ts';
import { XenodeError } from '../../errors.ts';
import { type AuditRules, parseRules, RulesError } from '../../net/audit/rules.ts';
import type { HostPortSpec, PortStatus, RateSpec, SwitchStats, VifPortSpec } from '../../net/control-protocol.ts';
import {
  createBridgeTap,
  deleteLink,
  HostLinkError,
  isBridge,
  linkCounters,
  linkExists,
  setTapIngressRate,
  tapIngressPoliced,
} from '../../net/host-links.ts';
import { generateMac } from '../../net/mac.ts';
import type { SponsorPair } from '../../net/policy.ts';
import type { Domain } from '../../toolstack/domain.ts';
import type { NetAuditSink } from '../../toolstack/lifecycle-hooks.ts';
import type { DaemonLog } from '../../toolstack/log.ts';
import { loadVifs, saveVifs, type VifRecord } from '../../toolstack/net-vifs.ts';
import type { LaunchContribution, PluginHost } from '../../toolstack/plugin.ts';
import type { SponsorLimits, SponsorPolicy } from '../../toolstack/sponsors.ts';
import { ControlStoreSink } from '../../toolstack/store-factory.ts';
import { guestIpCmdline, hostPortFromEnv } from './addressing.ts';
import { sponsorRateSpec, vifRateSpec } from './rate.ts';
import { backendPath, NetStore } from './store.ts';
import { SwitchSupervisor } from './switch.ts';

/** xl's default bridge name: Xenode's switch, unless a Linux bridge is really called that. */
export const DEFAULT_BRIDGE = 'xenbr0';
const SPONSOR_RE = /^[a-z0-9_-]{1,64}$/;
const LINK_WAIT_MS = 3000;

/** Counters from the guest's point of view: rx = delivered to the guest. */
export interface VifCounters {
  rx_bytes: number;
  rx_packets: number;
  tx_bytes: number;
  tx_packets: number;
  /** Frames for the guest the switch could not deliver (link down, guest not keeping up). */
  rx_dropped: number;
  /** Frames from the guest the sponsor policy refused (once per destination port). */
  tx_policy_dropped: number;
  /** Frames from the guest the switch dropped for a source (or ARP sender) MAC not the vif's own. */
  tx_spoof_dropped: number;
  /** Times the switch stopped taking the guest's frames for lack of rate credit (the vif's or its sponsor's). */
  tx_rate_holds: number;
  /** Frames the audit rules refused (connection limits, throttle, quarantine). */
  tx_audit_dropped: number;
}

export interface VifView {
  devid: number;
  mac: string;
  backend: 'switch' | 'bridge';
  bridge?: string;
  ifname: string;
  ip?: string;
  model: string;
  /** rate= as configured (xl syntax). */
  rate?: string;
  /** The limit in force, read back from the switch (or, for a bridge vif, rate= while tc's policer is on its TAP). */
  rate_in_force?: RateSpec;
  mtu?: number;
  /** vlan=: the VLAN the vif is an access port of. */
  vlan?: number;
  hotplugged: boolean;
  /** XenbusState: 4 = Connected. */
  state: number;
  link: 'up' | 'down' | 'unknown';
  backend_path: string;
  counters?: VifCounters;
}

export interface NetStatus {
  switch: { running: boolean; pid?: number; restarts: number; log: string; control: string };
  host_port?: HostPortSpec & { up: boolean; error?: string };
  allow: SponsorPair[];
  ports: PortStatus[];
  /** Per-sponsor aggregate limits in force in the switch. */
  sponsor_rates: Array<{ sponsor: string; rate: RateSpec }>;
}

interface DomainNet {
  d: Domain;
  vifs: VifRecord[];
}

function hostLinkError(e: unknown): XenodeError {
  if (e instanceof HostLinkError) return new XenodeError('engine', e.message, { hint: e.hint });
  return e instanceof XenodeError ? e : new XenodeError('engine', e instanceof Error ? e.message : String(e));
}

export class NetManager {
  private sup?: SwitchSupervisor;
  private store?: NetStore;
  private log?: DaemonLog;
  private readonly domains = new Map<number, DomainNet>();
  private allowPairs: SponsorPair[] = [];
  private sponsors?: SponsorPolicy;

  private get supervisor(): SwitchSupervisor {
    if (!this.sup) throw new XenodeError('internal', 'network plugin not started');
    return this.sup;
  }

  async start(host: PluginHost): Promise<void> {
    this.log = host.log;
    this.sponsors = host.sponsors;
    const cs = host.store instanceof ControlStoreSink ? host.store.store : undefined;
    this.store = new NetStore(cs, host.log);
    this.sup = new SwitchSupervisor({ base: host.dirs.base, log: host.log, hostPort: hostPortFromEnv() });
    this.allowPairs = this.store.readAllow();
    await this.sup.setPolicy(this.allowPairs);
    this.store.watchAllow((pairs) => {
      this.allowPairs = pairs;
      this.sup?.setPolicy(pairs).catch(() => undefined);
    });
    // A switch left running by an earlier daemon keeps serving its domains: adopt it now.
    if (existsSync(this.sup.controlPath)) {
      await this.sup.ensure().catch((e: unknown) => this.warn(`switch: ${(e as Error).message}`));
    }
  }

  private warn(msg: string, domid?: number): void {
    this.log?.warn(msg, domid);
  }

  // ---- records --------------------------------------------------------------

  private macOwners(exceptDomid?: number): Map<string, Domain> {
    const out = new Map<string, Domain>();
    for (const [domid, e] of this.domains) {
      if (domid === exceptDomid) continue;
      for (const v of e.vifs) out.set(v.mac, e.d);
    }
    return out;
  }

  private makeRecord(d: Domain, spec: VifSpec, devid: number, inUse: Map<string, Domain>): VifRecord {
    let backend: VifRecord['backend'] = 'switch';
    if (spec.bridge && !(spec.bridge === DEFAULT_BRIDGE && !isBridge(spec.bridge))) {
      // One answer whether no interface has that name or one has and is not a bridge,
      // so the error tells a sponsor nothing about which host interfaces exist.
      if (!isBridge(spec.bridge)) {
        throw new XenodeError('not-found', `bridge '${spec.bridge}' does not exist`, {
          hint: "name an existing Linux bridge, or leave bridge= out to use Xenode's switch",
        });
      }
      backend = 'bridge';
      // Only Xenode's switch separates VLANs; a Linux bridge would take the vif untagged into all of them.
      if (spec.vlan) {
        throw new XenodeError('config', `vlan= needs Xenode's switch, not bridge '${spec.bridge}'`, {
          hint: "leave bridge= out (Xenode's switch tags and separates VLANs), or leave vlan= out",
        });
      }
    }
    let mac = spec.mac;
    if (mac) {
      const owner = inUse.get(mac);
      if (owner !== undefined) {
        // Another sponsor's domain is not named: a sponsor learns nothing of the others.
        const by = owner.rec.sponsor === d.rec.sponsor ? `by domain ${owner.name}` : 'on this host';
        throw new XenodeError('conflict', `MAC address ${mac} is already used ${by}`, {
          hint: 'leave mac= out to get a generated one',
        });
      }
    } else mac = generateMac(d.name, devid, new Set(inUse.keys()));
    inUse.set(mac, d);
    const ifname = backend === 'bridge' ? (spec.vifname ?? `vif${d.domid}.${devid}`) : `d${d.domid}.${devid}`;
    const v: VifRecord = { devid, mac, backend, ifname };
    if (spec.bridge) v.bridge = spec.bridge;
    if (spec.ip) v.ip = spec.ip;
    if (spec.model) v.model = spec.model;
    if (spec.rate) v.rate = spec.rate;
    if (spec.mtu) v.mtu = spec.mtu;
    if (spec.vifname) v.vifname = spec.vifname;
    if (spec.vlan) v.vlan = spec.vlan;
    return v;
  }

  /** Create the TAP of a bridge vif; false when it already exists and is ours (QEMU restart). */
  private prepareTap(d: Domain, v: VifRecord, ours: boolean): boolean {
    if (linkExists(v.ifname)) {
      if (ours) return false;
      throw new XenodeError('conflict', `network interface ${v.ifname} already exists`, {
        hint: 'name the vif with vifname=',
      });
    }
    try {
      createBridgeTap(v.ifname, v.bridge as string, v.mtu);
    } catch (e) {
      // ip's own complaint names host interfaces: it goes to the admin's log, not to the caller.
      const err = hostLinkError(e);
      this.warn(
        `vif ${v.devid}: TAP ${v.ifname} on bridge ${v.bridge}: ${err.message}${err.hint ? ` (${err.hint})` : ''}`,
        d.domid,
      );
      throw new XenodeError('engine', `cannot connect vif ${v.devid} to bridge '${v.bridge}'`, {
        hint: 'the admin finds the reason in xenode dmesg',
      });
    }
    return true;
  }

  /** q35 domains keep their NICs behind a bridge (see NIC_BRIDGE_ID). */
  private bridged(d: Domain): boolean {
    return (d.rec.boot?.machine ?? chooseMachine(d.rec.config)) === 'q35';
  }

  private nic(d: Domain, v: VifRecord): NicDevice {
    return {
      devid: v.devid,
      bridged: this.bridged(d),
      mac: v.mac,
      model: v.model,
      mtu: v.mtu,
      backend:
        v.backend === 'bridge'
          ? { kind: 'tap', ifname: v.ifname }
          : { kind: 'stream', path: vifSocketPath(d.rec.runDir, v.devid) },
    };
  }

  private portSpec(d: Domain, v: VifRecord): VifPortSpec {
    return {
      id: v.ifname,
      domid: d.domid,
      devid: v.devid,
      sponsor: d.rec.sponsor,
      mac: v.mac,
      path: vifSocketPath(d.rec.runDir, v.devid),
      domain: d.name,
      ...(vifIps(v.ip).length ? { ips: vifIps(v.ip) } : {}),
      ...(vifIps(v.ip, isIPv6).length ? { ips6: vifIps(v.ip, isIPv6) } : {}),
      ...(v.rate ? { rate: vifRateSpec(v.rate) } : {}),
      ...(v.vlan ? { vlan: v.vlan } : {}),
    };
  }

  /** The sponsor's aggregate (quota-set net-rate=); the admin is never limited. */
  private sponsorRate(sponsor: string, limits?: SponsorLimits): RateSpec | undefined {
    if (sponsor === 'admin') return undefined;
    return sponsorRateSpec((limits ?? this.sponsors?.limits(sponsor))?.netBps);
  }

  /** A bridge vif's rate= through tc on its TAP; refused (never ignored) where tc cannot. */
  private applyTapRate(d: Domain, v: VifRecord, rate: string | undefined): void {
    try {
      setTapIngressRate(v.ifname, rate === undefined ? undefined : vifRateSpec(rate));
    } catch (e) {
      // tc's complaint names the TAP: it goes to the admin's log, not to the caller.
      const err = hostLinkError(e);
      this.warn(`vif ${v.devid}: rate ${rate} on TAP ${v.ifname}: ${err.message}`, d.domid);
      throw new XenodeError('config', `rate= cannot be enforced on vif ${v.devid} (bridge '${v.bridge}')`, {
        hint: "this host's tc cannot police the TAP (xenode dmesg says why); leave bridge= out to use Xenode's switch, which enforces rate=, or leave rate= out",
      });
    }
  }

  private storeEntry(v: VifRecord) {
    return {
      devid: v.devid,
      mac: v.mac,
      type: v.backend,
      bridge: v.backend === 'bridge' ? (v.bridge as string) : (v.bridge ?? DEFAULT_BRIDGE),
      ifname: v.ifname,
      model: v.model ?? 'virtio',
      ip: v.ip,
      rate: v.rate,
      mtu: v.mtu,
    };
  }

  private persist(e: DomainNet): void {
    saveVifs(e.d.rec.runDir, e.vifs);
  }

  private entry(d: Domain): DomainNet {
    let e = this.domains.get(d.domid);
    if (!e || e.d !== d) {
      e = { d, vifs: loadVifs(d.rec.runDir) ?? [] };
      this.domains.set(d.domid, e);
    }
    return e;
  }

  // ---- lifecycle ------------------------------------------------------------

  beforeLaunch(d: Domain): LaunchContribution {
    const saved = loadVifs(d.rec.runDir);
    const inUse = this.macOwners(d.domid);
    if (this.bridged(d) && d.rec.config.vif.length > NIC_BRIDGE_SLOTS) {
      throw new XenodeError(
        'config',
        `${d.rec.config.vif.length} vifs: a q35 domain has ${NIC_BRIDGE_SLOTS} NIC slots`,
        {
          hint: `give it at most ${NIC_BRIDGE_SLOTS} vifs`,
        },
      );
    }
    const vifs = saved ?? d.rec.config.vif.map((s, devid) => this.makeRecord(d, s, devid, inUse));
    const created: string[] = [];
    try {
      for (const v of vifs) {
        if (v.backend !== 'bridge') continue;
        if (this.prepareTap(d, v, saved !== undefined)) created.push(v.ifname);
        if (v.rate) this.applyTapRate(d, v, v.rate);
      }
      const e: DomainNet = { d, vifs };
      this.persist(e);
      this.domains.set(d.domid, e);
    } catch (err) {
      for (const t of created) deleteLink(t);
      throw err;
    }
    for (const v of vifs) this.store?.writeVif(d.domid, this.storeEntry(v));
    const first = vifs[0];
    return {
      qemuArgs: [
        ...(this.bridged(d) ? nicBridgeArgs() : []),
        ...vifs.flatMap((v) => nicArgs(this.nic(d, v))),
        ...(d.rec.config.rng ? entropyDeviceArgs() : []),
      ],
      cmdline: first ? guestIpCmdline(first.ip, first.backend === 'switch', this.sup?.hostPort) : [],
    };
  }

  /** QEMU listens now: connect its vifs to the switch before the guest runs. */
  async afterLaunch(d: Domain): Promise<void> {
    const e = this.domains.get(d.domid);
    if (!e) return;
    await Promise.all(e.vifs.filter((v) => v.backend === 'switch').map((v) => this.connectPort(d, v, LINK_WAIT_MS)));
  }

  async afterReattach(d: Domain): Promise<void> {
    const e = this.entry(d);
    await Promise.all(e.vifs.filter((v) => v.backend === 'switch').map((v) => this.connectPort(d, v, 0)));
  }

  private async connectPort(d: Domain, v: VifRecord, waitMs: number): Promise<void> {
    try {
      await this.supervisor.setSponsorRate(d.rec.sponsor, this.sponsorRate(d.rec.sponsor));
      const r = await this.supervisor.addPort(this.portSpec(d, v), waitMs);
      if (waitMs && !r.connected) this.warn(`vif ${v.devid}: switch link not up yet`, d.domid);
    } catch (err) {
      this.log?.error(`vif ${v.devid}: cannot reach the switch: ${(err as Error).message}`, d.domid);
    }
  }

  async teardown(d: Domain): Promise<void> {
    const e = this.domains.get(d.domid);
    if (e && e.d !== d) return;
    this.domains.delete(d.domid);
    // A domain whose QEMU died while no daemon ran is torn down without a reattach: read its file.
    const vifs = e?.vifs ?? loadVifs(d.rec.runDir) ?? [];
    for (const v of vifs) {
      if (v.backend === 'switch') await this.sup?.removePort(v.ifname).catch(() => undefined);
      else deleteLink(v.ifname);
    }
    this.store?.removeDomain(d.domid);
  }

  // ---- hotplug ----------------------------------------------------------------

  private running(d: Domain) {
    const m = d.machine;
    if (!m?.alive || (d.rec.state !== 'running' && d.rec.state !== 'paused')) {
      throw new XenodeError('state', `domain ${d.name} is not running`);
    }
    return m;
  }

  attach(d: Domain, spec: VifSpec): Promise<VifView> {
    return d.serial(async () => {
      const m = this.running(d);
      const e = this.entry(d);
      const devid = e.vifs.reduce((mx, v) => Math.max(mx, v.devid + 1), 0);
      if (this.bridged(d) && devid >= NIC_BRIDGE_SLOTS) {
        throw new XenodeError('state', `domain ${d.name} has no free NIC slot (a q35 domain has ${NIC_BRIDGE_SLOTS})`, {
          hint: 'detach a vif first',
        });
      }
      const v = this.makeRecord(d, spec, devid, this.macOwners());
      v.hotplugged = true;
      const tap = v.backend === 'bridge' && this.prepareTap(d, v, false);
      try {
        if (tap && v.rate) this.applyTapRate(d, v, v.rate);
        await plugNic(m, this.nic(d, v));
      } catch (err) {
        if (tap) deleteLink(v.ifname);
        throw err;
      }
      e.vifs.push(v);
      this.persist(e);
      this.store?.writeVif(d.domid, this.storeEntry(v));
      if (v.backend === 'switch') await this.connectPort(d, v, LINK_WAIT_MS);
      this.log?.info(
        `vif ${devid} attached (${v.mac}, ${v.backend === 'bridge' ? `bridge ${v.bridge}` : 'switch'})`,
        d.domid,
      );
      return (await this.views(d)).find((x) => x.devid === devid) as VifView;
    });
  }

  /** xl network-detach: `ref` is a devid, or a MAC when it has a colon. */
  detach(d: Domain, ref: string): Promise<void> {
    return d.serial(async () => {
      const e = this.entry(d);
      const v = findVif(e.vifs, ref);
      const m = this.running(d);
      await unplugNic(m, v.devid);
      if (v.backend === 'switch') await this.sup?.removePort(v.ifname).catch(() => undefined);
      else deleteLink(v.ifname);
      e.vifs = e.vifs.filter((x) => x !== v);
      this.persist(e);
      this.store?.removeVif(d.domid, v.devid);
      this.log?.info(`vif ${v.devid} detached (${v.mac})`, d.domid);
    });
  }

  // ---- rate limits -------------------------------------------------------------

  /**
   * network-rate: change vif `ref`'s rate= on a running domain (undefined: no
   * limit). In force at once, and kept where every later launch reads it: the
   * vif record (restart, save, migration), the domain's config and the store.
   */
  setRate(d: Domain, ref: string, rate: string | undefined, configChanged: () => void): Promise<VifView> {
    return d.serial(async () => {
      const e = this.entry(d);
      const v = findVif(e.vifs, ref);
      this.running(d);
      const spec = rate === undefined ? undefined : vifRateSpec(rate);
      if (v.backend === 'bridge') this.applyTapRate(d, v, rate);
      else {
        try {
          await this.supervisor.setPortRate(v.ifname, spec);
        } catch (err) {
          // Kept as desired state: the switch gets it when it is back.
          this.warn(`vif ${v.devid}: rate not sent to the switch yet: ${(err as Error).message}`, d.domid);
        }
      }
      if (rate === undefined) delete v.rate;
      else v.rate = rate;
      this.persist(e);
      this.store?.writeVif(d.domid, this.storeEntry(v));
      const cv = v.hotplugged ? undefined : d.rec.config.vif[v.devid];
      if (cv) {
        if (rate === undefined) delete cv.rate;
        else cv.rate = rate;
        configChanged();
      }
      this.log?.info(`vif ${v.devid}: rate ${rate ?? 'none'}`, d.domid);
      return (await this.views(d)).find((x) => x.devid === v.devid) as VifView;
    });
  }

  /** quota-set changed a sponsor's limits: its aggregate net-rate applies at once. */
  async applySponsorLimits(sponsor: string, limits: SponsorLimits): Promise<void> {
    const rate = this.sponsorRate(sponsor, limits);
    await this.sup?.setSponsorRate(sponsor, rate);
    const bridged = [...this.domains.values()].some(
      (e) => e.d.rec.sponsor === sponsor && e.vifs.some((v) => v.backend === 'bridge'),
    );
    if (rate && bridged)
      this.warn(`sponsor ${sponsor}: net-rate covers its vifs on Xenode's switch, not those on Linux bridges`);
  }

  // ---- views ------------------------------------------------------------------

  async views(d: Domain): Promise<VifView[]> {
    const e = this.entry(d);
    const stats = e.vifs.some((v) => v.backend === 'switch') ? await this.switchStats() : undefined;
    return e.vifs.map((v) => {
      const view: VifView = {
        devid: v.devid,
        mac: v.mac,
        backend: v.backend,
        bridge: v.backend === 'bridge' ? v.bridge : (v.bridge ?? DEFAULT_BRIDGE),
        ifname: v.ifname,
        ip: v.ip,
        model: v.model ?? 'virtio',
        rate: v.rate,
        mtu: v.mtu,
        ...(v.vlan ? { vlan: v.vlan } : {}),
        hotplugged: v.hotplugged === true,
        state: 4,
        link: 'unknown',
        backend_path: backendPath(d.domid, v.devid),
      };
      if (v.backend === 'switch') {
        const port = stats?.ports.find((p) => p.id === v.ifname);
        if (port) {
          const c = port.counters;
          view.link = port.connected ? 'up' : 'down';
          if (port.rate) view.rate_in_force = port.rate;
          view.counters = {
            rx_bytes: c.txBytes,
            rx_packets: c.txPackets,
            tx_bytes: c.rxBytes,
            tx_packets: c.rxPackets,
            rx_dropped: c.txDrops,
            tx_policy_dropped: c.policyDrops,
            tx_spoof_dropped: c.spoofDrops,
            tx_rate_holds: c.rateHolds ?? 0,
            tx_audit_dropped: c.auditDrops ?? 0,
          };
        } else view.link = 'down';
      } else {
        // The TAP's counters are the host's: what it transmits, the guest receives.
        const c = linkCounters(v.ifname);
        view.link = c ? 'up' : 'down';
        if (v.rate && tapIngressPoliced(v.ifname)) view.rate_in_force = vifRateSpec(v.rate);
        if (c) {
          view.counters = {
            rx_bytes: c.txBytes,
            rx_packets: c.txPackets,
            tx_bytes: c.rxBytes,
            tx_packets: c.rxPackets,
            rx_dropped: c.txDropped,
            tx_policy_dropped: 0,
            tx_spoof_dropped: 0,
            tx_rate_holds: 0,
            tx_audit_dropped: 0,
          };
        }
      }
      return view;
    });
  }

  private async switchStats(): Promise<SwitchStats | undefined> {
    try {
      return await this.sup?.stats();
    } catch {
      return undefined;
    }
  }

  async status(): Promise<NetStatus> {
    const sup = this.supervisor;
    const stats = await this.switchStats();
    const hp = sup.hostPort;
    return {
      switch: {
        running: stats !== undefined,
        pid: stats?.pid,
        restarts: sup.restarts,
        log: sup.logPath,
        control: sup.controlPath,
      },
      host_port: hp
        ? { ...hp, up: stats?.hostPort?.up ?? false, error: stats?.hostPort?.error ?? sup.hostPortError }
        : undefined,
      allow: this.allowPairs,
      ports: stats?.ports ?? [],
      sponsor_rates: stats?.sponsorRates ?? [],
    };
  }

  /** Start the switch now (the host port comes up with it). */
  async startSwitch(): Promise<NetStatus> {
    try {
      await this.supervisor.ensure();
    } catch (e) {
      throw new XenodeError('engine', (e as Error).message);
    }
    return this.status();
  }

  // ---- policy -----------------------------------------------------------------

  policy(): SponsorPair[] {
    return this.allowPairs;
  }

  async setAllowed(a: string, b: string, allowed: boolean): Promise<SponsorPair[]> {
    for (const s of [a, b]) {
      if (!SPONSOR_RE.test(s)) {
        throw new XenodeError('usage', `invalid sponsor name '${s}'`, { hint: 'a sponsor is 1-64 of a-z 0-9 _ -' });
      }
    }
    if (a === b) throw new XenodeError('usage', `sponsor '${a}' always reaches its own domains`);
    const store = this.store;
    if (store?.persistent) {
      store.setAllowed(a, b, allowed);
      this.allowPairs = store.readAllow();
    } else {
      const key = (x: string, y: string) => (x < y ? `${x} ${y}` : `${y} ${x}`);
      const rest = this.allowPairs.filter(([x, y]) => key(x, y) !== key(a, b));
      this.allowPairs = allowed ? [...rest, a < b ? [a, b] : [b, a]] : rest;
    }
    // Applied now, not on the store watch's later turn, so the caller's next packet sees it.
    await this.supervisor.setPolicy(this.allowPairs);
    this.log?.info(`network policy: ${a} <-> ${b} ${allowed ? 'allowed' : 'denied'}`);
    return this.allowPairs;
  }

  // ---- capture ----------------------------------------------------------------------

  /**
   * net-capture: start capturing vif `ref` of running domain `d` into a new
   * file in its run directory; returns the file and the function that stops it.
   */
  async startCapture(d: Domain, ref: string, maxBytes: number): Promise<{ path: string; stop: () => Promise<void> }> {
    const v = findVif(this.entry(d).vifs, ref);
    this.running(d);
    if (v.backend !== 'switch')
      throw new XenodeError('state', `vif ${v.devid} is on bridge ${v.bridge}, outside Xenode's switch`, {
        hint: 'capture on the bridge with tcpdump -i',
      });
    const path = join(d.rec.runDir, `capture-${v.devid}-${randomBytes(6).toString('hex')}.pcap`);
    await this.supervisor.capture(v.ifname, path, maxBytes);
    this.log?.info(`capture of vif ${v.devid} started`, d.domid);
    return {
      path,
      stop: async () => {
        await this.sup?.stopCapture(v.ifname).catch(() => undefined);
        rmSync(path, { force: true });
      },
    };
  }

  // ---- audit (the audit feature's NetAuditLink) ----------------------------------

  setAuditSink(sink: NetAuditSink): void {
    this.supervisor.setAuditSink(sink);
  }

  /** Check rules in the switch's grammar, put them in force; the normalized rules back. */
  async setAuditRules(raw: unknown): Promise<AuditRules> {
    let rules: AuditRules;
    try {
      rules = parseRules(raw);
    } catch (e) {
      if (e instanceof RulesError)
        throw new XenodeError('config', `audit rules: ${e.message}`, { hint: 'see docs/audit.md' });
      throw e;
    }
    await this.supervisor.setAuditRules(rules as unknown as Record<string, unknown>);
    return rules;
  }

  stop(): void {
    this.sup?.stop();
  }
}

/** The IPv4 addresses of a vif's ip= (each may carry a /prefix): the ones it may send from. */
function vifIps(ip: string | undefined, family: (a: string) => boolean = isIPv4): string[] {
  return (ip ?? '')
    .split(/\s+/)
    .map((a) => a.split('/')[0] as string)
    .filter((a) => family(a))
    .slice(0, 16);
}

/** xl's device reference: a devid, or a MAC when it has a colon. */
function findVif(vifs: VifRecord[], ref: string): VifRecord {
  let v: VifRecord | undefined;
  if (ref.includes(':')) {
    let mac: string | undefined;
    try {
      mac = parseMac(ref);
    } catch {
      mac = undefined;
    }
    v = vifs.find((x) => x.mac === mac);
  } else if (/^\d+$/.test(ref)) v = vifs.find((x) => x.devid === Number(ref));
  if (!v) throw new XenodeError('not-found', `Unknown device ${ref}.`);
  return v;
}
