// The domain table and lifecycle: create, supervise, apply on_* actions,
// reattach after a restart. Every transition is written to the control store.

import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { checkKernel } from '../config/files.ts';
import type { DomainConfig, OnEventAction } from '../config/types.ts';
import type { AccelChoice } from '../engine/accel.ts';
import { firmwareArgs } from '../engine/firmware.ts';
import { incomingArgs } from '../engine/migration.ts';
import { domainRunPaths } from '../engine/paths.ts';
import { killQemu, readPidFile } from '../engine/process.ts';
import { buildQemuCommand } from '../engine/qemu-args.ts';
import { type GuestEvent, QemuMachine } from '../engine/qemu-machine.ts';
import { XenodeError } from '../errors.ts';
import { admit, checkHostRoom, type Holder, hostMemory, shmMiB } from './admission.ts';
import { resolveBoot } from './boot-plan.ts';
import { Cgroups, cgroupTopName, setHostCgroups } from './cgroups.ts';
import type { XenodeDirs } from './dirs.ts';
import { Domain } from './domain.ts';
import type { DomainRecord, DomainState, DomainTable, ShutdownReason } from './domain-table.ts';
import { collectIntents, keptUnfinished, resolveIntents } from './intent-recovery.ts';
import { crashPoint, type IntentHost } from './intents.ts';
import type { LifecycleHooks, SponsorFileGate, StartPoint } from './lifecycle-hooks.ts';
import type { DaemonLog } from './log.ts';
import type { MemSetOptions, MemSetResult } from './memory-types.ts';
import { canSeeSponsor, type Principal } from './principal.ts';
import { checkLimit, type SponsorPolicy } from './sponsors.ts';
import type { DomainStoreSink } from './store-sink.ts';

export interface ToolstackOptions {
  dirs: XenodeDirs;
  table: DomainTable;
  log: DaemonLog;
  store: DomainStoreSink;
  hostAccel: AccelChoice;
  qemuBinary: string;
  tcgTbSizeMiB?: number;
  plugins?: LifecycleHooks[];
  /** The admin's per-sponsor limits; none means no limits (unit tests). */
  sponsors?: SponsorPolicy;
  /** Domains' cgroups; probed from the host when not given. */
  cgroups?: Cgroups;
}

export interface CreateOptions {
  paused?: boolean;
  onProgress?: (msg: string) => void;
  /**
   * Restore/migration: QEMU starts with `-incoming defer` and this loads the
   * machine state into it; then `cont` (unless paused), then plugins' afterLaunch.
   * It answers `{ running: true }` when QEMU already started the guest itself
   * (a `cont` sent while the state was still loading).
   */
  incoming?: (d: Domain, m: QemuMachine) => Promise<{ running: boolean } | undefined>;
  /** Restore/migration: the CPU model the saved state was running on. */
  cpu?: string;
  /** Open descriptors the QEMU inherits as its fds 3, 4, … (a save file to load from). */
  passFds?: number[];
  /**
   * Restore/migration: called the moment the loaded guest runs, before the
   * plugins' set-up (a migration target confirms the hand-over from here).
   */
  onRunning?: (d: Domain) => void;
  /**
   * Migration target: the name QEMU runs under (-name, fixed for its life) when
   * the table holds a stand-in for the hand-over (NAME--incoming).
   */
  machineName?: string;
  /** Guest RAM from a file (a template's, mapped privately) instead of a fresh memfd. */
  ram?: { path: string; shared: boolean };
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** How long a guest agent has to acknowledge control/shutdown before xl's -F fallback. */
const GUEST_ACK_MS = 10_000;

/** What a domain's guest agent reports through the store channel. */
export interface GuestInfo {
  /** The agent offers control/shutdown (control/feature-poweroff). */
  agent: boolean;
  ipv4: string[];
  osName?: string;
}

export interface PowerRequestOptions {
  wait?: boolean;
  timeoutMs?: number;
  /** xl's -F: fall back to ACPI if the guest's agent does not acknowledge. */
  acpiFallback?: boolean;
}

/** Every domain's changes in one stream (the web UI's live list). */
export interface ToolstackEvents {
  change: [Domain];
  gone: [Domain];
}

export class Toolstack {
  private domains = new Map<number, Domain>();
  /** Retired domains (retire()) whose QEMU is still being torn down. */
  private readonly retiring = new Map<Domain, Promise<void>>();
  private readonly o: ToolstackOptions;
  readonly events = new EventEmitter<ToolstackEvents>().setMaxListeners(0);
  /** Each domain's QEMU in a group of its own (cgroups.ts); unavailable without writable cgroups. */
  readonly cgroups: Cgroups;

  constructor(o: ToolstackOptions) {
    this.o = o;
    mkdirSync(o.dirs.domainsDir, { recursive: true });
    this.cgroups = o.cgroups ?? Cgroups.probe(cgroupTopName(o.dirs.base));
    setHostCgroups(this.cgroups);
    for (const g of this.cgroups.sweepStale()) o.log.info(`removed cgroup ${g} left by a daemon that is gone`);
  }

  /** Put the domain's QEMU and vCPU threads in its cgroups (after a start, a reattach, a vCPU hot-plug). */
  placeInCgroups(d: Domain): void {
    if (!this.cgroups.available || !d.rec.pid) return;
    try {
      this.cgroups.attach(d.rec.sponsor, d.domid, d.rec.pid, d.vcpuTids);
    } catch (e) {
      this.o.log.warn(`cgroups: ${e instanceof Error ? e.message : String(e)}`, d.domid);
    }
  }

  /** Remove the domain's cgroups once its QEMU is gone (last: accounting reads them in onTeardown). */
  private async removeCgroups(d: Domain): Promise<void> {
    if (!this.cgroups.available) return;
    // The kernel lets go of a dead QEMU's threads a moment after it exits.
    for (let i = 0; ; i++) {
      try {
        this.cgroups.remove(d.rec.sponsor, d.domid);
        return;
      } catch (e) {
        if (i >= 40) {
          this.o.log.warn(`cgroups: ${e instanceof Error ? e.message : String(e)}`, d.domid);
          return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  get plugins(): LifecycleHooks[] {
    return this.o.plugins ?? [];
  }

  /** The gates through which sponsors reach host files (storage pools). */
  get fileGates(): SponsorFileGate[] {
    return this.plugins.flatMap((x) => (x.fileGate ? [x.fileGate] : []));
  }

  get log(): DaemonLog {
    return this.o.log;
  }

  get store(): DomainStoreSink {
    return this.o.store;
  }

  get dirs(): XenodeDirs {
    return this.o.dirs;
  }

  /** Record a change made by a plugin (persist + notify watchers). */
  touch(d: Domain): void {
    this.save(d);
  }

  get hostAccel(): AccelChoice {
    return this.o.hostAccel;
  }

  /** The QEMU binary domains run unless their config overrides it. */
  get qemuBinary(): string {
    return this.o.qemuBinary;
  }

  // ---- lookup -------------------------------------------------------------

  list(p: Principal): Domain[] {
    return [...this.domains.values()].filter((d) => canSeeSponsor(p, d.rec.sponsor)).sort((a, b) => a.domid - b.domid);
  }

  /** Resolve an xl `<Domain>` argument (domid or name) visible to `p`. */
  /**
   * What the guest's agent reports (attr/vif/<n>/ipv4/<i>, data/os_name). The
   * guest writes these keys: only well-formed addresses and a short printable
   * name are passed on.
   */
  guestInfo(d: Domain): GuestInfo | undefined {
    const read = (rel: string) => this.o.store.readDomainKey?.(d.domid, rel);
    const agent = read('control/feature-poweroff') === '1';
    const ipv4: string[] = [];
    for (let n = 0; n < 8; n++) {
      for (let i = 0; i < 8; i++) {
        const a = read(`attr/vif/${n}/ipv4/${i}`);
        if (a === undefined) break;
        if (/^(\d{1,3}\.){3}\d{1,3}$/.test(a) && !ipv4.includes(a)) ipv4.push(a);
      }
    }
    const os = read('data/os_name');
    if (!agent && ipv4.length === 0 && os === undefined) return undefined;
    const osName = os !== undefined && /^[\x20-\x7e]{1,128}$/.test(os) ? os : undefined;
    return { agent, ipv4, osName };
  }

  /** Name and sponsor of a live domain, for the daemon log's fields (admin-side only). */
  labelOf(domid: number): { name: string; sponsor: string } | undefined {
    const d = this.domains.get(domid);
    return d && { name: d.name, sponsor: d.rec.sponsor };
  }

  find(ref: string, p: Principal): Domain {
    let d: Domain | undefined;
    if (/^\d+$/.test(ref)) d = this.domains.get(Number(ref));
    else d = [...this.domains.values()].find((x) => x.name === ref);
    // Another sponsor's domain is answered as one that does not exist: a sponsor
    // learns nothing of the others' domains, not even that a name is in use.
    if (!d || !canSeeSponsor(p, d.rec.sponsor)) {
      throw /^\d+$/.test(ref)
        ? new XenodeError('not-found', `Domain '${ref}' does not exist.`)
        : new XenodeError('not-found', `${ref} is an invalid domain identifier (rc=-6)`);
    }
    return d;
  }

  // ---- persistence helpers -----------------------------------------------

  private save(d: Domain): void {
    this.o.table.put(d.rec);
    d.emit('change', d.rec);
    this.events.emit('change', d);
  }

  private setState(d: Domain, state: DomainState, reason?: ShutdownReason): void {
    if (d.rec.state !== state && !d.canTransition(state)) {
      throw new XenodeError('state', `domain ${d.name} cannot go from ${d.rec.state} to ${state}`);
    }
    d.rec.state = state;
    d.rec.shutdownReason = reason;
    this.o.store.setState(d.domid, state, reason);
    this.save(d);
  }

  // ---- create -------------------------------------------------------------

  async create(cfg: DomainConfig, p: Principal, opts: CreateOptions = {}): Promise<Domain> {
    // A domain just saved or migrated away keeps its name in the table until its teardown ends.
    if ([...this.retiring.keys()].some((r) => r.name === cfg.name)) await this.finishRetiring();
    // A plain create may start from a saved machine (a template) instead of a boot.
    const start = opts.incoming ? undefined : await this.startPoint(cfg, p);
    try {
      return await this.createDomain(cfg, p, opts, start);
    } finally {
      start?.release();
    }
  }

  /** The first start point a plugin offers for this config; a plugin that fails is skipped. */
  private async startPoint(cfg: DomainConfig, p: Principal): Promise<StartPoint | undefined> {
    for (const x of this.plugins) {
      try {
        const s = await x.startFrom?.(cfg, p);
        if (s) return s;
      } catch (e) {
        this.o.log.warn(`${x.name}: no start point for ${cfg.name}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    return undefined;
  }

  private async createDomain(
    cfg: DomainConfig,
    p: Principal,
    opts: CreateOptions,
    start: StartPoint | undefined,
  ): Promise<Domain> {
    // A sponsor's config without sponsor= is its own (the key defaults to admin).
    if (!p.admin && cfg.sponsor === 'admin') cfg = { ...cfg, sponsor: p.sponsor };
    if (!NAME_RE.test(cfg.name)) throw new XenodeError('config', `invalid domain name '${cfg.name}'`);
    if ([...this.domains.values()].some((d) => d.name === cfg.name)) {
      throw new XenodeError('conflict', `domain with name '${cfg.name}' already exists`, {
        hint: 'pick another name= or destroy the old domain',
      });
    }
    if (cfg.uuid && [...this.domains.values()].some((d) => d.rec.uuid === cfg.uuid)) {
      throw new XenodeError('conflict', `domain with uuid ${cfg.uuid} already exists`);
    }
    cfg = this.admit(cfg, p);
    const domid = this.o.table.nextDomid();
    try {
      this.cgroups.clearLeftover(cfg.sponsor, domid);
    } catch (e) {
      this.o.log.warn(`cgroups: leftover group of domid ${domid}: ${e instanceof Error ? e.message : String(e)}`);
    }
    const uuid = cfg.uuid ?? randomUUID();
    const rec: DomainRecord = {
      domid,
      uuid,
      name: cfg.name,
      sponsor: cfg.sponsor,
      config: cfg,
      state: 'creating',
      runDir: join(this.o.dirs.domainsDir, String(domid)),
      startTime: Date.now(),
      targetMiB: cfg.memory,
      maxMiB: cfg.maxmem,
    };
    // A failed create removes the run directory, so it must be one this create makes.
    if (existsSync(rec.runDir)) throw new XenodeError('internal', `run directory of domid ${domid} already exists`);
    const d = new Domain(rec);
    this.domains.set(domid, d);
    this.save(d);
    this.o.store.introduce(rec);
    crashPoint('create.recorded');
    try {
      if (start) {
        try {
          await this.launch(d, {
            ...opts,
            incoming: (dd, m) => start.incoming(dd, m),
            passFds: start.passFds,
            cpu: start.cpu,
            ram: start.ram,
            template: start.label,
          });
        } catch (e) {
          // A start point that does not load is no reason to fail the create: boot instead.
          this.o.log.warn(
            `starting from ${start.label} failed (${e instanceof Error ? e.message : String(e)}); booting instead`,
            domid,
          );
          rmSync(rec.runDir, { recursive: true, force: true });
          await this.launch(d, opts);
        }
      } else await this.launch(d, opts);
      crashPoint('create.running');
    } catch (e) {
      this.domains.delete(domid);
      this.events.emit('gone', d);
      this.o.table.remove(domid);
      this.o.store.release(rec);
      await this.removeCgroups(d);
      rmSync(rec.runDir, { recursive: true, force: true });
      this.o.log.error(`create ${cfg.name} failed: ${e instanceof Error ? e.message : String(e)}`, domid);
      throw e;
    }
    this.o.log.info(
      `created ${cfg.name} (sponsor ${rec.sponsor}, ${rec.boot?.accel}: ${rec.boot?.accelReason}, machine ${rec.boot?.machine})`,
      domid,
    );
    return d;
  }

  /** What every domain (retiring ones too: their QEMU still runs) holds of the host. */
  private holders(): Holder[] {
    return [...this.domains.values(), ...this.retiring.keys()].map((d) => ({
      sponsor: d.rec.sponsor,
      shmMiB: shmMiB(d.rec.config),
      targetMiB: d.rec.targetMiB,
      maxMiB: d.rec.maxMiB,
      maxvcpus: d.rec.config.maxvcpus,
    }));
  }

  /** Quotas, sponsors' keys and files, host memory: synchronous, so racing creates see each other. */
  private admit(cfg: DomainConfig, p: Principal): DomainConfig {
    const admitted = admit({
      cfg,
      principal: p,
      holders: this.holders(),
      sponsors: this.o.sponsors,
      fileGates: this.fileGates,
    });
    for (const x of this.plugins) x.admit?.(admitted, p);
    // A sponsor's kernel passed the gate; only now may an answer depend on its content.
    if (!p.admin && admitted.kernel) checkKernel(admitted.kernel, { file: '<config>', line: 0, column: 0 });
    return admitted;
  }

  /**
   * A new domain whose machine state comes from a save file or a live
   * migration rather than a boot: same checks and lifecycle as create.
   */
  restoreDomain(
    cfg: DomainConfig,
    p: Principal,
    incoming: NonNullable<CreateOptions['incoming']>,
    opts: Omit<CreateOptions, 'incoming'> = {},
  ): Promise<Domain> {
    return this.create(cfg, p, { ...opts, incoming });
  }

  /** Start a QEMU for the domain and bring it to running (or paused). */
  private async launch(d: Domain, opts: CreateOptions & { template?: string }): Promise<void> {
    const rec = d.rec;
    // The guest's kernel command line (xenode.name=) and QEMU's -name, both fixed for the QEMU's life.
    const named = opts.machineName ? { ...rec.config, name: opts.machineName } : rec.config;
    const { plan, accelReason } = await resolveBoot(named, this.o.hostAccel, opts.onProgress);
    if (opts.cpu) plan.cpu = opts.cpu;
    const qemuBinary = rec.config.device_model_override ?? this.o.qemuBinary;
    const paths = domainRunPaths(rec.runDir);
    mkdirSync(rec.runDir, { recursive: true });
    const extraArgs: string[] = opts.incoming ? incomingArgs() : [];
    if (plan.firmware) extraArgs.push(...firmwareArgs(plan.firmware, rec.runDir));
    const launched: LifecycleHooks[] = [];
    try {
      for (const p of this.plugins) {
        const c = await p.beforeLaunch?.(d);
        launched.push(p);
        if (c?.qemuArgs) extraArgs.push(...c.qemuArgs);
        if (c?.cmdline?.length) plan.cmdline = `${plan.cmdline} ${c.cmdline.join(' ')}`;
      }
    } catch (e) {
      for (const p of launched) await p.onTeardown?.(d);
      throw e;
    }
    const cmd = buildQemuCommand(named, plan, paths, {
      domid: rec.domid,
      uuid: rec.uuid,
      startPaused: true,
      qemuBinary,
      tcgTbSizeMiB: plan.accel === 'tcg' ? this.o.tcgTbSizeMiB : undefined,
      extraArgs,
      ram: opts.ram,
    });
    if (opts.passFds?.length) cmd.passFds = opts.passFds;
    rec.boot = {
      accel: plan.accel,
      accelReason,
      machine: plan.machine,
      cpu: plan.cpu,
      kernel: plan.kernel ?? `firmware:${plan.firmware}`,
      initrd: plan.initrd,
      cmdline: plan.cmdline,
      qemuBinary,
      ...(opts.template ? { template: opts.template } : {}),
    };
    opts.onProgress?.(`starting QEMU (${plan.machine}, ${plan.accel})`);
    let m: QemuMachine;
    try {
      m = await QemuMachine.start(cmd, paths);
    } catch (e) {
      for (const p of this.plugins) await p.onTeardown?.(d);
      throw e;
    }
    crashPoint('create.started');
    try {
      const [, vcpus] = await Promise.all([
        d.console.attachSerial(paths.serialSock, paths.consoleLog),
        m.vcpuThreads(),
      ]);
      d.vcpuTids = vcpus.map((v) => v.tid);
      this.bindMachine(d, m);
      rec.pid = m.pid;
      this.placeInCgroups(d);
      rec.startTime = Date.now();
      const loaded = opts.incoming ? await opts.incoming(d, m) : undefined;
      if (opts.incoming && !opts.paused) {
        // A loaded guest runs at once: its downtime (a migration's, a restore's)
        // should not include the plugins' set-up. They only attach to state the
        // guest already has, so one that fails now costs that plugin, not the guest.
        if (!loaded?.running) await m.resume();
        this.setState(d, 'running');
        opts.onRunning?.(d);
        for (const p of this.plugins) {
          try {
            await p.afterLaunch?.(d, m);
          } catch (e) {
            this.o.log.warn(`${p.name} set-up: ${e instanceof Error ? e.message : String(e)}`, d.domid);
          }
        }
        return;
      }
      for (const p of this.plugins) await p.afterLaunch?.(d, m);
      if (!opts.paused) await m.resume();
      this.setState(d, opts.paused ? 'paused' : 'running');
    } catch (e) {
      d.expectingExit = true;
      await m.destroy();
      d.console.close();
      // A restart that fails here leaves the domain without a QEMU, not with a dead one.
      if (d.machine === m) d.machine = undefined;
      rec.pid = undefined;
      for (const p of this.plugins) await p.onTeardown?.(d);
      throw e;
    }
  }

  private bindMachine(d: Domain, m: QemuMachine): void {
    m.rebootAction = d.rec.config.on_reboot === 'restart' ? 'reset' : 'shutdown';
    d.machine = m;
    d.expectingExit = false;
    m.on('guest', (e) => {
      void d
        .serial(() => this.onGuestEvent(d, m, e))
        .catch((err: unknown) => {
          this.o.log.error(`handling ${e.type}: ${err instanceof Error ? err.message : String(err)}`, d.domid);
        });
    });
  }

  private async onGuestEvent(d: Domain, m: QemuMachine, e: GuestEvent): Promise<void> {
    if (d.machine !== m || d.rec.state === 'dying') return;
    switch (e.type) {
      case 'poweroff':
        this.o.log.info('guest powered off', d.domid);
        return this.applyAction(d, d.rec.config.on_poweroff, 'poweroff');
      case 'reboot':
        this.o.log.info('guest rebooted', d.domid);
        return this.applyAction(d, d.rec.config.on_reboot, 'reboot');
      case 'reset':
        // One reboot shows as several resets (kernel, then firmware): count it once.
        if (Date.now() - d.lastReset > 3000) {
          this.o.log.info('guest rebooted; restarted in place (on_reboot=restart)', d.domid);
          d.rec.startTime = Date.now();
          d.rec.restarts = (d.rec.restarts ?? 0) + 1;
          this.save(d);
        }
        d.lastReset = Date.now();
        return;
      case 'crash':
        this.o.log.warn(`guest crashed: ${e.detail}`, d.domid);
        return this.applyAction(d, d.rec.config.on_crash, 'crash');
      case 'exited':
        if (d.expectingExit) return;
        this.o.log.warn(`QEMU exited unexpectedly (${e.detail})`, d.domid);
        d.machine = undefined;
        d.rec.pid = undefined;
        d.console.close();
        // A preserved domain's guest had stopped already: it stays as it was, until destroyed.
        if (d.rec.state === 'shutdown' || d.rec.state === 'crashed') return this.save(d);
        return this.applyAction(d, d.rec.config.on_crash, 'crash');
      default:
        return;
    }
  }

  /** xl's on_poweroff / on_reboot / on_crash semantics. */
  private async applyAction(d: Domain, action: OnEventAction, reason: ShutdownReason): Promise<void> {
    if (action.startsWith('coredump-')) {
      await this.coredump(d);
      action = action === 'coredump-restart' ? 'restart' : 'destroy';
    }
    switch (action) {
      case 'destroy':
        await this.teardown(d);
        return;
      case 'restart':
        await this.restartInPlace(d);
        return;
      case 'preserve':
        this.setState(d, reason === 'crash' ? 'crashed' : 'shutdown', reason);
        return;
      case 'rename-restart': {
        const stamp = new Date().toISOString().replace(/[-:]/g, '').slice(0, 13);
        const oldName = d.name;
        this.renameInternal(d, `${oldName}-${stamp}Z`);
        this.setState(d, reason === 'crash' ? 'crashed' : 'shutdown', reason);
        const cfg = { ...d.rec.config, name: oldName, uuid: undefined };
        // Re-admitted as its sponsor: a revoked bridge or volume, or a full quota, stops the copy.
        await this.create(cfg, { sponsor: d.rec.sponsor, admin: d.rec.sponsor === 'admin' });
        return;
      }
    }
  }

  private async restartInPlace(d: Domain): Promise<void> {
    try {
      if (d.machine?.alive) {
        d.lastReset = Date.now();
        await d.machine.resetAndRun();
        d.rec.startTime = Date.now();
        this.setState(d, 'running');
        this.o.log.info('restarted', d.domid);
        return;
      }
      // QEMU itself is gone: start a fresh one under the same domid.
      d.console.close();
      await this.launch(d, {});
      this.o.log.info('restarted with a new QEMU process', d.domid);
    } catch (e) {
      // Never listed as running without a guest: crashed, kept for `destroy`
      // (with whatever QEMU is left, for inspection).
      this.o.log.error(`restart failed: ${e instanceof Error ? e.message : String(e)}`, d.domid);
      if (!d.machine?.alive) {
        d.machine = undefined;
        d.rec.pid = undefined;
      }
      if (d.canTransition('crashed')) this.setState(d, 'crashed', 'crash');
    }
  }

  private async coredump(d: Domain): Promise<void> {
    const m = d.machine;
    if (!m?.alive) return;
    mkdirSync(this.o.dirs.dumpDir, { recursive: true });
    const file = join(this.o.dirs.dumpDir, `${d.name}-${Date.now()}.core`);
    try {
      await m.dumpGuestMemory(file);
      this.o.log.info(`core dumped to ${file}`, d.domid);
    } catch (e) {
      this.o.log.warn(`core dump failed: ${e instanceof Error ? e.message : String(e)}`, d.domid);
    }
  }

  /** Kill QEMU and forget the domain. Idempotent. */
  private async teardown(d: Domain): Promise<void> {
    if (!this.domains.has(d.domid) && !this.retiring.has(d)) return;
    // Recorded even for a retired domain: a daemon that dies now finds it dying, not running.
    if (d.rec.state !== 'dying') this.setState(d, 'dying');
    crashPoint('teardown.dying');
    d.expectingExit = true;
    await d.machine?.destroy();
    crashPoint('teardown.stopped');
    d.console.close();
    d.machine = undefined;
    this.domains.delete(d.domid);
    for (const p of this.plugins) {
      try {
        await p.onTeardown?.(d);
      } catch (e) {
        this.o.log.warn(`${p.name} teardown: ${e instanceof Error ? e.message : String(e)}`, d.domid);
      }
    }
    await this.removeCgroups(d);
    // A retired domain left the store already (its uuid may be back here since).
    if (!this.retiring.has(d)) this.o.store.release(d.rec);
    crashPoint('teardown.released');
    // Keep the console log for post-mortems; drop the rest of the run directory.
    const logs = join(this.o.dirs.base, 'logs');
    mkdirSync(logs, { recursive: true });
    try {
      renameSync(join(d.rec.runDir, 'console.log'), join(logs, `console-${d.name}-${d.domid}.log`));
    } catch {
      /* never booted far enough to log */
    }
    rmSync(d.rec.runDir, { recursive: true, force: true });
    // Last: a daemon killed before this finds the domain dying, and finishes what is left.
    this.o.table.remove(d.domid);
    this.o.log.info(`destroyed ${d.name}`, d.domid);
    d.emit('gone');
    this.events.emit('gone', d);
  }

  // ---- user actions -------------------------------------------------------

  destroy(d: Domain): Promise<void> {
    return d.serial(() => this.teardown(d));
  }

  /**
   * Destroy a domain whose guest now runs elsewhere (a completed migration): it
   * leaves the list, and its name and uuid are free, at once; the store entries,
   * its paused QEMU and run directory go right after the caller's turn (the
   * migration's answer is out first). Its record stays in the table until QEMU
   * is gone, as with destroy.
   */
  retire(d: Domain): void {
    if (!this.domains.has(d.domid)) return;
    d.expectingExit = true;
    this.domains.delete(d.domid);
    const done = new Promise<void>((r) => setImmediate(r))
      .then(() => {
        this.o.store.release(d.rec);
        return d.serial(() => this.teardown(d));
      })
      .catch((e: unknown) =>
        this.o.log.error(`tearing down ${d.name}: ${e instanceof Error ? e.message : String(e)}`, d.domid),
      )
      .finally(() => this.retiring.delete(d));
    this.retiring.set(d, done);
  }

  /** Wait for retired domains' teardown (the daemon does before it stops). */
  async finishRetiring(): Promise<void> {
    await Promise.all(this.retiring.values());
  }

  async pause(d: Domain): Promise<void> {
    await d.serial(async () => {
      if (d.rec.state === 'paused') return;
      if (d.rec.state !== 'running' || !d.machine) throw new XenodeError('state', `domain ${d.name} is not running`);
      await d.machine.pause();
      this.setState(d, 'paused');
    });
  }

  async unpause(d: Domain): Promise<void> {
    await d.serial(async () => {
      if (d.rec.state === 'running') return;
      if (d.rec.state !== 'paused' || !d.machine) throw new XenodeError('state', `domain ${d.name} is not paused`);
      await d.machine.resume();
      this.setState(d, 'running');
    });
  }

  /**
   * As xl: through the guest's control/shutdown key when its agent offers it
   * (control/feature-poweroff), else the ACPI power button; the guest decides.
   * `acpiFallback` (xl's -F) presses the button too if the agent has not
   * acknowledged in time. `wait` resolves on shutdown or death.
   */
  async shutdown(d: Domain, opts: PowerRequestOptions = {}): Promise<boolean> {
    await d.serial(async () => {
      if (!d.machine || (d.rec.state !== 'running' && d.rec.state !== 'paused')) {
        throw new XenodeError('state', `domain ${d.name} is not running`);
      }
      if (d.rec.state === 'paused') {
        await d.machine.resume();
        this.setState(d, 'running');
      }
      if (await this.askGuestAgent(d, 'poweroff', opts.acpiFallback === true)) return;
      if (await this.askGuestPlugins(d, 'poweroff')) return;
      await d.machine.powerButton();
      this.o.log.info('ACPI power button pressed', d.domid);
    });
    if (!opts.wait) return true;
    return d.waitFor((r) => !r || r.state === 'shutdown' || r.state === 'crashed', opts.timeoutMs ?? 120_000);
  }

  /**
   * Through the guest's agent (control/shutdown=reboot) when it offers it, so the
   * guest syncs and restarts itself; else a hard reset. Either way on_reboot
   * applies. `wait` resolves once the domain has started again, or is gone.
   */
  async reboot(d: Domain, opts: PowerRequestOptions = {}): Promise<boolean> {
    const started = d.rec.startTime;
    await d.serial(async () => {
      if (!d.machine || (d.rec.state !== 'running' && d.rec.state !== 'paused')) {
        throw new XenodeError('state', `domain ${d.name} is not running`);
      }
      if (d.rec.state === 'paused') {
        await d.machine.resume();
        this.setState(d, 'running');
      }
      if (await this.askGuestAgent(d, 'reboot', opts.acpiFallback === true)) return;
      if (await this.askGuestPlugins(d, 'reboot')) return;
      this.o.log.info('reboot requested', d.domid);
      await this.applyAction(d, d.rec.config.on_reboot, 'reboot');
    });
    if (!opts.wait) return true;
    return d.waitFor(
      (r) => !r || r.startTime !== started || r.state === 'shutdown' || r.state === 'crashed',
      opts.timeoutMs ?? 120_000,
    );
  }

  /** The QEMU guest agent (a plugin's requestGuestPower), when the guest runs one. */
  private async askGuestPlugins(d: Domain, req: 'poweroff' | 'reboot'): Promise<boolean> {
    for (const p of this.plugins) {
      if (await p.requestGuestPower?.(d, req)) {
        this.o.log.info(`asked the guest to ${req} through ${p.name}`, d.domid);
        return true;
      }
    }
    return false;
  }

  /**
   * Writes control/shutdown if the guest's store-channel agent advertised `req`
   * (control/feature-<req>), as libxl does for a PV guest; false when it did not.
   * With `fallback`, a request still
   * unacknowledged (the agent clears the key) after GUEST_ACK_MS gets the
   * ACPI button (poweroff) or a hard reset (reboot).
   */
  private async askGuestAgent(d: Domain, req: 'poweroff' | 'reboot', fallback: boolean): Promise<boolean> {
    const store = this.o.store;
    if (store.readDomainKey?.(d.domid, `control/feature-${req}`) !== '1') return false;
    store.writeDomainKey(d.domid, 'control/shutdown', req);
    this.o.log.info(`asked the guest's agent to ${req} (control/shutdown)`, d.domid);
    if (fallback) {
      const m = d.machine;
      setTimeout(() => {
        void d
          .serial(async () => {
            if (d.machine !== m || !m || d.rec.state !== 'running') return;
            if (store.readDomainKey?.(d.domid, 'control/shutdown') !== req) return;
            this.o.log.warn(`the guest's agent did not acknowledge ${req}; falling back to ACPI`, d.domid);
            if (req === 'poweroff') await m.powerButton();
            else await this.applyAction(d, d.rec.config.on_reboot, 'reboot');
          })
          .catch((e: unknown) => this.o.log.error(`${req} fallback: ${e instanceof Error ? e.message : String(e)}`));
      }, GUEST_ACK_MS).unref();
    }
    return true;
  }

  private renameInternal(d: Domain, name: string): void {
    d.rec.name = name;
    d.rec.config = { ...d.rec.config, name };
    this.o.store.setName(d.rec);
    this.save(d);
  }

  rename(d: Domain, name: string): void {
    if (!NAME_RE.test(name)) throw new XenodeError('usage', `invalid domain name '${name}'`);
    if (name === d.name) return;
    // Domain-0 is the host's own name in xl's tables (list, uptime, domid).
    if (name === 'Domain-0' || [...this.domains.values()].some((x) => x.name === name)) {
      throw new XenodeError('conflict', `Can't rename domain '${d.name}': '${name}' is taken.`);
    }
    this.renameInternal(d, name);
    this.o.log.info(`renamed to ${name}`, d.domid);
  }

  /** Record a new memory target; the memory controller drives balloon and virtio-mem towards it. */
  async memSet(d: Domain, mib: number, opts: MemSetOptions = {}): Promise<MemSetResult> {
    if (mib > d.rec.maxMiB) {
      throw new XenodeError('usage', `cannot set domid ${d.domid} dynamic max memory to : ${mib}M`, {
        hint: `above the domain's maximum of ${d.rec.maxMiB} MiB; raise it with mem-max`,
        exitCode: 1,
      });
    }
    if (mib < 32)
      throw new XenodeError('usage', `memory target ${mib} MiB is too small`, { hint: 'use at least 32 MiB' });
    if (opts.deadlineMs !== undefined && !(opts.deadlineMs >= 1 && opts.deadlineMs <= 3_600_000))
      throw new XenodeError('usage', `invalid deadline ${opts.deadlineMs} ms`, { hint: 'give 1 ms to 1 h, e.g. 1s' });
    const mem = this.plugins.find((p) => p.memoryController)?.memoryController;
    if (mem && d.rec.state !== 'running' && d.rec.state !== 'paused')
      throw new XenodeError('state', `domain ${d.name} is not running`, { hint: 'memory targets need a live guest' });
    // Growing takes host memory like a create: refused when the host cannot back it.
    if (mib > d.rec.targetMiB) checkHostRoom(d.name, mib - d.rec.targetMiB, this.holders(), hostMemory(), true);
    d.rec.targetMiB = mib;
    this.o.store.setMemory(d.rec);
    this.save(d);
    if (!mem) return { domid: d.domid, targetKiB: mib * 1024, actualKiB: d.rec.actualKiB ?? mib * 1024 };
    return mem.apply(d, this, opts);
  }

  memMax(d: Domain, mib: number): void {
    if (d.rec.sponsor !== 'admin' && this.o.sponsors && mib > d.rec.maxMiB) {
      const others = [...this.domains.values()].filter((x) => x !== d && x.rec.sponsor === d.rec.sponsor);
      const used = others.reduce((n, x) => n + x.rec.maxMiB, 0);
      checkLimit(d.rec.sponsor, this.o.sponsors.limits(d.rec.sponsor), 'memoryMiB', used, mib);
    }
    if (mib < d.rec.targetMiB) {
      throw new XenodeError('usage', `cannot set domid ${d.domid} static max memory to : ${mib}M`, {
        hint: `below the current target of ${d.rec.targetMiB} MiB`,
        exitCode: 1,
      });
    }
    this.plugins.find((p) => p.memoryController)?.memoryController?.checkMax(d, mib);
    d.rec.maxMiB = mib;
    this.o.store.setMemory(d.rec);
    this.save(d);
  }

  // ---- daemon restart -----------------------------------------------------

  /** Reattach to every QEMU an earlier daemon left running. */
  async reattachAll(): Promise<void> {
    // Operations an earlier daemon left unfinished, read before a teardown below takes its run directory.
    const intents = collectIntents(this.o.table.all(), (msg, domid) => this.o.log.warn(msg, domid));
    for (const rec of this.o.table.all()) {
      const d = new Domain(rec);
      this.domains.set(rec.domid, d);
      const paths = domainRunPaths(rec.runDir);
      const found = await QemuMachine.reattach(paths, [readPidFile(paths), rec.pid]);
      if (found.kind === 'unreachable') {
        // Ours but beyond control: never left running untracked. Then it counts as gone.
        const killed = await killQemu(found.pid, rec.runDir);
        const what = `QEMU for ${rec.name} (pid ${found.pid}) is unreachable: ${found.why}`;
        if (!killed) {
          // Still running: a second QEMU for the domain (restart) must not join it.
          this.o.log.error(`${what}; could not kill it, so nothing is restarted`, rec.domid);
          if (d.canTransition('crashed')) this.setState(d, 'crashed', 'crash');
          continue;
        }
        this.o.log.warn(`${what}; killed it`, rec.domid);
      }
      const m = found.kind === 'attached' ? found.machine : undefined;
      // A create or incoming migration the old daemon never finished: nobody waits for it
      // (but an incoming state that loaded was handed over: kept, taken over below).
      // A teardown cut short is finished.
      if (m && (rec.state === 'dying' || (rec.state === 'creating' && !(await keptUnfinished(this.plugins, d, m))))) {
        const what = rec.state === 'creating' ? 'being created' : 'being destroyed';
        this.o.log.warn(`${rec.name} was still ${what} when the daemon stopped; destroying it`, rec.domid);
        d.machine = m;
        await this.teardown(d);
        continue;
      }
      if (!m) {
        await this.lostWhileDown(
          d,
          found.kind === 'unreachable' ? 'killed as unreachable' : 'it died while no daemon ran',
        );
        continue;
      }
      d.console.preloadFromLog(paths.consoleLog);
      try {
        await d.console.attachSerial(paths.serialSock, paths.consoleLog);
      } catch {
        this.o.log.warn('console socket unavailable after restart', rec.domid);
      }
      d.vcpuTids = (await m.vcpuThreads()).map((v) => v.tid);
      this.bindMachine(d, m);
      rec.pid = m.pid;
      this.placeInCgroups(d);
      // A lost store was made anew: put the domain back before the plugins write under it.
      if (this.o.store.adopt?.(d.rec)) this.o.log.warn('store entries were missing; rebuilt them', d.domid);
      for (const p of this.plugins) {
        try {
          await p.afterReattach?.(d, m);
        } catch (e) {
          this.o.log.warn(`${p.name} reattach: ${e instanceof Error ? e.message : String(e)}`, d.domid);
        }
      }
      // Catch up on what happened while no daemon was watching. In the domain's
      // queue: a panic reported from now on is handled once, before or after this.
      await d
        .serial(async () => {
          if (d.machine !== m) return;
          const actual = await m.runState();
          const stopped = rec.state === 'shutdown' || rec.state === 'crashed';
          if (actual === 'shutdown' && !stopped) {
            await this.applyAction(d, rec.config.on_poweroff, 'poweroff');
          } else if (actual === 'crashed' && !stopped) {
            this.o.log.warn('guest crashed while no daemon was running', d.domid);
            await this.applyAction(d, rec.config.on_crash, 'crash');
          } else if (actual === 'prelaunch' && rec.state === 'running') {
            // A restart with a new QEMU, cut short before the guest ran: start it over.
            this.o.log.warn('a restart was cut short by the daemon stopping; restarting again', d.domid);
            d.expectingExit = true;
            await m.destroy();
            d.machine = undefined;
            await this.restartInPlace(d);
          } else if (actual === 'running' && rec.state !== 'running') {
            this.setState(d, 'running');
          } else if (actual === 'paused' && rec.state === 'running') {
            this.setState(d, 'paused');
          }
        })
        .catch((e: unknown) =>
          this.o.log.error(`catching up after restart: ${e instanceof Error ? e.message : String(e)}`, d.domid),
        );
      // Not for a domain the catch-up just destroyed.
      if (this.domains.get(rec.domid) === d)
        this.o.log.info(`reattached ${rec.name} (pid ${m.pid}, ${rec.state})`, rec.domid);
    }
    await resolveIntents(this.plugins, this.intentHost(), intents, (id) => this.domains.get(id));
  }

  /** What the features need to settle the operations an earlier daemon left (intent-recovery.ts). */
  private intentHost(): IntentHost {
    return {
      log: this.o.log,
      store: this.o.store,
      destroy: (d) => this.destroy(d),
      pause: (d) => this.pause(d),
      rename: (d, name) => this.rename(d, name),
      touch: (d) => this.touch(d),
      setState: (d, state) => this.setState(d, state),
      resume: (d) =>
        d.serial(async () => {
          const m = d.machine;
          if (!m?.alive) return;
          if ((await m.runState()) !== 'running') await m.resume();
          if (d.rec.state !== 'running') this.setState(d, 'running');
        }),
    };
  }

  /**
   * Reattach found no QEMU (or killed one it could not control). A create or
   * teardown cut short is finished; a preserved domain stays as it was; a guest
   * that was running died unwatched, which is a crash: on_crash applies.
   */
  private async lostWhileDown(d: Domain, cause: string): Promise<void> {
    const rec = d.rec;
    d.rec.pid = undefined;
    if (rec.state === 'creating' || rec.state === 'dying') {
      this.o.log.warn(`QEMU for ${rec.name} is gone; removing the domain`, rec.domid);
      await this.teardown(d);
      return;
    }
    if (rec.state === 'shutdown' || rec.state === 'crashed') {
      this.o.log.warn(`QEMU for ${rec.name} is gone; keeping the ${rec.state} domain until it is destroyed`, rec.domid);
      this.save(d);
      return;
    }
    this.o.log.warn(`QEMU for ${rec.name} is gone (${cause}); on_crash="${rec.config.on_crash}"`, rec.domid);
    if (this.o.store.adopt?.(d.rec)) this.o.log.warn('store entries were missing; rebuilt them', d.domid);
    await d
      .serial(() => this.applyAction(d, rec.config.on_crash, 'crash'))
      .catch((e: unknown) =>
        this.o.log.error(`on_crash after restart: ${e instanceof Error ? e.message : String(e)}`, d.domid),
      );
  }

  /** Stop supervising without touching QEMU (daemon exit). */
  detachAll(): void {
    for (const d of this.domains.values()) {
      d.expectingExit = true;
      d.machine?.detach();
      d.console.close();
    }
  }
}
