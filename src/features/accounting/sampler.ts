// The accountant: samples every domain's counters every few seconds and at its
// end, and records the usage they add (store.ts). It learns of domains from the
// lifecycle hooks (afterLaunch, afterReattach, onTeardown), so it needs no
// toolstack to run; the plugins that count devices' I/O are given to it when
// the API is built. Readings of one domain start in order and are applied in
// that order, so a slow reading never lands after a newer one (which would look
// like a counter reset and count twice).

import { statSync } from 'node:fs';
import { cpuUsageNs, hostCgroups } from '../../toolstack/cgroups.ts';
import type { Domain } from '../../toolstack/domain.ts';
import type { DomainRecord } from '../../toolstack/domain-record.ts';
import type { IoCounterSource, IoCounters } from '../../toolstack/lifecycle-hooks.ts';
import type { DaemonLog } from '../../toolstack/log.ts';
import { processRssKiB } from '../../toolstack/proc-stats.ts';
import type { SeriesReading } from './delta.ts';
import { type ProcessInstance, processCpuSeconds, processInstance } from './proc.ts';
import type { AccountStore, Reading } from './store.ts';

/** What the accountant reads of the host; tests give their own. */
export interface HostReaders {
  instance(pid: number): ProcessInstance | undefined;
  procCpuSeconds(pid: number): number | undefined;
  /** CPU time of the domain's cgroup and the group's identity, while the group exists. */
  cgroupCpu(rec: DomainRecord): { epoch: string; seconds: number } | undefined;
  rssMiB(pid: number): number | undefined;
}

export const HOST_READERS: HostReaders = {
  instance: processInstance,
  procCpuSeconds: processCpuSeconds,
  cgroupCpu(rec) {
    const ns = cpuUsageNs(rec);
    if (ns === undefined || !Number.isFinite(ns)) return undefined;
    const c = hostCgroups();
    const group = c.domainGroup(rec.sponsor, rec.domid);
    let ino = 0;
    try {
      ino = statSync(c.dir('cpuacct', group)).ino;
    } catch {
      return undefined;
    }
    // The group lives as long as the domain (across its QEMU restarts); a group made again is a new counter.
    return { epoch: `cgroup:${group}:${ino}`, seconds: ns / 1e9 };
  },
  rssMiB(pid) {
    const kib = processRssKiB(pid);
    return kib === undefined ? undefined : kib / 1024;
  },
};

export interface NamedIoSource extends IoCounterSource {
  readonly name: string;
}

export function isIoSource(p: object): p is NamedIoSource {
  return (
    typeof (p as Partial<IoCounterSource>).ioCounters === 'function' &&
    typeof (p as { name?: unknown }).name === 'string'
  );
}

interface Track {
  d: Domain;
  row?: number;
  /** Applies of this domain, in the order their readings started. */
  chain: Promise<void>;
  /** The CPU counter this domain is accounted from (cgroup or one QEMU's /proc): never mixed. */
  cpuEpoch?: string;
  onChange: (rec: DomainRecord) => void;
  dyingSampled: boolean;
}

const IO_KEYS = [
  'diskReadBytes',
  'diskWriteBytes',
  'diskReadOps',
  'diskWriteOps',
  'netRxBytes',
  'netTxBytes',
  'netRxPackets',
  'netTxPackets',
] as const;

function ioValues(c: IoCounters): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of IO_KEYS) {
    const v = c[k];
    if (typeof v === 'number' && Number.isFinite(v) && v >= 0) out[k] = v;
  }
  return out;
}

export interface AccountantOptions {
  intervalMs?: number;
  readers?: HostReaders;
  now?: () => number;
  log?: DaemonLog;
}

export class Accountant {
  readonly intervalMs: number;
  private readonly tracks = new Map<Domain, Track>();
  private sources: readonly NamedIoSource[] = [];
  private timer?: NodeJS.Timeout;
  private busy?: Promise<void>;
  private readonly readers: HostReaders;
  private readonly now: () => number;
  log?: DaemonLog;

  constructor(
    readonly store: AccountStore,
    o: AccountantOptions = {},
  ) {
    this.intervalMs = o.intervalMs ?? 2000;
    this.readers = o.readers ?? HOST_READERS;
    this.now = o.now ?? Date.now;
    this.log = o.log;
  }

  /** The plugins whose devices count I/O (disks, network). */
  setSources(plugins: readonly object[]): void {
    this.sources = plugins.filter(isIoSource);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    // Sampling must never keep a stopping daemon alive.
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.busy;
    await Promise.all([...this.tracks.values()].map((t) => t.chain));
  }

  /** A domain whose QEMU runs (launched, restarted, reattached). Idempotent. */
  track(d: Domain): void {
    if (this.tracks.has(d)) return;
    const tr: Track = {
      d,
      chain: Promise.resolve(),
      dyingSampled: false,
      // A restarted daemon goes on with the counter the last one used.
      row: this.store.liveRow(d.rec.uuid, d.domid),
      onChange: (rec) => {
        // Teardown begins: read the devices now, while QEMU can still answer (it is stopped next).
        if (rec.state === 'dying' && !tr.dyingSampled) {
          tr.dyingSampled = true;
          void this.sample(tr);
        }
      },
    };
    if (tr.row !== undefined) tr.cpuEpoch = this.store.seriesEpoch(tr.row, 'cpu');
    d.on('change', tr.onChange);
    this.tracks.set(d, tr);
  }

  tracked(): Domain[] {
    return [...this.tracks.keys()];
  }

  /**
   * The domain's QEMU is gone (onTeardown): a last reading of what stays
   * readable (the cgroup's CPU time); when the domain itself is being
   * destroyed, its account is closed. A failed launch of a domain that stays
   * (a restart) keeps it open.
   */
  async final(d: Domain): Promise<void> {
    let tr = this.tracks.get(d);
    if (!tr) {
      // Never sampled by this daemon (torn down while reattaching): only a domain it already accounts.
      const row = this.store.liveRow(d.rec.uuid, d.domid);
      if (row === undefined) return;
      tr = { d, row, chain: Promise.resolve(), dyingSampled: true, onChange: () => undefined };
      tr.cpuEpoch = this.store.seriesEpoch(row, 'cpu');
    }
    await this.sample(tr);
    if (d.rec.state === 'dying') this.closeAccount(d, tr);
  }

  /** The domain left the toolstack (destroyed, or a create that failed). */
  gone(d: Domain): void {
    const tr = this.tracks.get(d);
    if (!tr) return;
    void tr.chain.then(() => this.closeAccount(d, tr));
  }

  private closeAccount(d: Domain, tr: Track): void {
    d.off('change', tr.onChange);
    this.tracks.delete(d);
    if (tr.row !== undefined) this.store.destroyed(tr.row, this.now());
  }

  /** Sample every domain now (the timer calls it; tests too). */
  tick(): Promise<void> {
    if (this.busy) return this.busy;
    this.busy = (async () => {
      try {
        const pending: Promise<void>[] = [];
        for (const tr of this.tracks.values()) {
          const rec = tr.d.rec;
          if (rec.state === 'dying') continue;
          // Without a QEMU only a cgroup has anything to read (the CPU time up to its end).
          if (!rec.pid && !tr.cpuEpoch?.startsWith('cgroup:')) continue;
          pending.push(this.sample(tr));
        }
        await Promise.all(pending);
      } finally {
        this.busy = undefined;
      }
    })();
    return this.busy;
  }

  /** Start reading now; apply after every earlier reading of the domain. */
  private sample(tr: Track): Promise<void> {
    const reading = this.read(tr);
    tr.chain = tr.chain
      .then(async () => this.apply(tr, await reading))
      .catch((e: unknown) => this.log?.warn(`accounting: ${e instanceof Error ? e.message : String(e)}`, tr.d.domid));
    return tr.chain;
  }

  private cpu(tr: Track, inst: ProcessInstance | undefined): SeriesReading | undefined {
    const rec = tr.d.rec;
    const cur = tr.cpuEpoch;
    // Accounted from one QEMU's /proc while that QEMU lives: a switch now would count its past again.
    const onProc = cur?.startsWith('qemu:') === true && cur === inst?.id;
    if (!onProc) {
      const cg = this.readers.cgroupCpu(rec);
      if (cg) {
        tr.cpuEpoch = cg.epoch;
        return { key: 'cpu', epoch: cg.epoch, values: { cpuSeconds: cg.seconds } };
      }
      // Accounted from a group that is gone now: /proc would count the domain's past again.
      if (cur?.startsWith('cgroup:')) return undefined;
    }
    if (!inst || !rec.pid) return undefined;
    const s = this.readers.procCpuSeconds(rec.pid);
    if (s === undefined) return undefined;
    tr.cpuEpoch = inst.id;
    return { key: 'cpu', epoch: inst.id, values: { cpuSeconds: s } };
  }

  private async read(tr: Track): Promise<Reading> {
    const d = tr.d;
    const t = this.now();
    const pid = d.rec.pid;
    const inst = pid ? this.readers.instance(pid) : undefined;
    const series: SeriesReading[] = [];
    const cpu = this.cpu(tr, inst);
    if (cpu) series.push(cpu);
    const reading: Reading = { t, series };
    if (pid && inst?.alive) {
      reading.memory = {
        instance: inst.id,
        start: inst.start,
        t,
        targetMiB: d.rec.targetMiB,
        rssMiB: this.readers.rssMiB(pid),
      };
    }
    // Every device is asked now, before anything else can happen to it.
    const asked = this.sources.map((p) => {
      try {
        return Promise.resolve(p.ioCounters(d)).catch(() => undefined);
      } catch {
        return Promise.resolve(undefined);
      }
    });
    const answers = await Promise.all(asked);
    answers.forEach((c, i) => {
      const p = this.sources[i] as NamedIoSource;
      if (!c) return;
      if (c.devices) {
        for (const [dev, v] of Object.entries(c.devices))
          series.push({ key: `io/${p.name}/${dev}`, epoch: dev, values: ioValues(v) });
      } else if (inst) {
        // A source without devices counts since its QEMU started.
        series.push({ key: `io/${p.name}`, epoch: inst.id, values: ioValues(c) });
      }
    });
    return reading;
  }

  private apply(tr: Track, r: Reading): void {
    const d = tr.d;
    tr.row ??= this.store.domainRow({ uuid: d.rec.uuid, domid: d.domid, name: d.name, sponsor: d.rec.sponsor }, r.t);
    this.store.apply(tr.row, r, d.name);
  }
}
