// Per-domain resource history for the web UI's charts: every 2 s, CPU% from
// vCPU thread time, memory target and QEMU's RSS, and disk/network byte rates
// from any plugin that can count them. About 10 minutes are kept per domain.

import { EventEmitter } from 'node:events';
import type { Domain } from '../../toolstack/domain.ts';
import type { IoCounterSource, IoCounters } from '../../toolstack/lifecycle-hooks.ts';
import { LOCAL_ADMIN, type Principal } from '../../toolstack/principal.ts';
import { processRssKiB } from '../../toolstack/proc-stats.ts';
import { HistoryFile } from './history-file.ts';

/** What the sampler needs of the toolstack (Toolstack has it all). */
export interface SampledDomains {
  list(p: Principal): Domain[];
  readonly plugins: readonly object[];
  readonly events: { on(ev: 'gone', fn: (d: Domain) => void): unknown };
}

export function isIoCounterSource(p: object): p is IoCounterSource {
  return typeof (p as Partial<IoCounterSource>).ioCounters === 'function';
}

/** One point of a domain's history. Rates are per second; null = not measured. */
export interface MetricsSample {
  /** ms since epoch */
  t: number;
  cpuPct: number | null;
  memTargetMiB: number;
  rssMiB: number | null;
  diskReadBps: number | null;
  diskWriteBps: number | null;
  netRxBps: number | null;
  netTxBps: number | null;
}

export interface MetricsHistory {
  domid: number;
  intervalMs: number;
  samples: MetricsSample[];
}

interface DomainTrack {
  /** The QEMU process the counters belong to; a new one restarts them. */
  pid: number | undefined;
  last?: { t: number; cpu: number; io: IoCounters };
  samples: MetricsSample[];
  /** The same samples on disk, for the next daemon. */
  file?: HistoryFile<MetricsSample>;
}

const NUM_OR_NULL = ['cpuPct', 'rssMiB', 'diskReadBps', 'diskWriteBps', 'netRxBps', 'netTxBps'] as const;

/** A sample read back from disk has the right shape (the file may be damaged). */
function isSample(v: unknown): v is MetricsSample {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  if (typeof o.t !== 'number' || typeof o.memTargetMiB !== 'number') return false;
  return NUM_OR_NULL.every((k) => o[k] === null || typeof o[k] === 'number');
}

const IO_KEYS = ['diskReadBytes', 'diskWriteBytes', 'netRxBytes', 'netTxBytes'] as const;

function rate(now: number | undefined, before: number | undefined, dtSec: number): number | null {
  if (now === undefined || before === undefined || dtSec <= 0) return null;
  // Counters that went backwards were reset (device replugged): no rate for this step.
  return now >= before ? (now - before) / dtSec : null;
}

export interface SamplerEvents {
  sample: [Domain, MetricsSample];
}

export class MetricsSampler extends EventEmitter<SamplerEvents> {
  private tracks = new Map<number, DomainTrack>();
  private timer?: NodeJS.Timeout;
  private toolstack?: SampledDomains;
  private busy = false;

  constructor(
    readonly intervalMs = 2000,
    readonly keep = 300,
  ) {
    super();
    this.setMaxListeners(0);
  }

  /** Sample the toolstack's domains, every interval unless `timer` is false (tests call tick()). Idempotent. */
  bind(ts: SampledDomains, timer = true): void {
    if (this.toolstack === ts) return;
    this.toolstack = ts;
    ts.events.on('gone', (d) => this.tracks.delete(d.domid));
    if (!timer) return;
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    // Sampling must never keep a stopping daemon alive.
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  history(domid: number): MetricsHistory {
    let tr = this.tracks.get(domid);
    if (!tr) {
      // Asked before this daemon's first sample of the domain: what the last daemon kept.
      const d = this.toolstack?.list(LOCAL_ADMIN).find((x) => x.domid === domid);
      if (d?.rec.pid) tr = this.firstSight(d);
    }
    return { domid, intervalMs: this.intervalMs, samples: [...(tr?.samples ?? [])] };
  }

  /** A new track for a domain (or a new QEMU of it), starting from its history file. */
  private firstSight(d: Domain, prev?: DomainTrack): DomainTrack {
    const file = prev?.file ?? (d.rec.runDir ? new HistoryFile(d.rec.runDir, this.keep, isSample) : undefined);
    const tr: DomainTrack = { pid: d.rec.pid, samples: prev?.samples ?? file?.load() ?? [], file };
    this.tracks.set(d.domid, tr);
    return tr;
  }

  latest(domid: number): MetricsSample | undefined {
    return this.tracks.get(domid)?.samples.at(-1);
  }

  /** Take one sample of every domain now. */
  async tick(): Promise<void> {
    const ts = this.toolstack;
    if (!ts || this.busy) return;
    this.busy = true;
    try {
      for (const d of ts.list(LOCAL_ADMIN)) {
        if (!d.rec.pid || d.rec.state === 'creating' || d.rec.state === 'dying') continue;
        const s = await this.sampleOne(ts, d);
        if (s) this.emit('sample', d, s);
      }
    } finally {
      this.busy = false;
    }
  }

  private async ioCounters(ts: SampledDomains, d: Domain): Promise<IoCounters> {
    const sum: IoCounters = {};
    for (const p of ts.plugins) {
      if (!isIoCounterSource(p)) continue;
      let c: IoCounters | undefined;
      try {
        c = await p.ioCounters(d);
      } catch {
        continue; // a device that cannot answer right now leaves a gap, not an error
      }
      for (const k of IO_KEYS) {
        const v = c?.[k];
        if (typeof v === 'number' && Number.isFinite(v)) sum[k] = (sum[k] ?? 0) + v;
      }
    }
    return sum;
  }

  private async sampleOne(ts: SampledDomains, d: Domain): Promise<MetricsSample | undefined> {
    let tr = this.tracks.get(d.domid);
    // First sight of the domain in this daemon: pick up what the last one kept.
    if (!tr || tr.pid !== d.rec.pid) tr = this.firstSight(d, tr);
    const t = Date.now();
    const cpu = d.cpuSeconds();
    const io = await this.ioCounters(ts, d);
    if (!this.tracks.has(d.domid)) return undefined; // destroyed while asking the devices
    const rssKiB = d.rec.pid ? processRssKiB(d.rec.pid) : undefined;
    const last = tr.last;
    const dt = last ? (t - last.t) / 1000 : 0;
    const sample: MetricsSample = {
      t,
      cpuPct: last && dt > 0 ? Math.max(0, ((cpu - last.cpu) / dt) * 100) : null,
      memTargetMiB: d.rec.targetMiB,
      rssMiB: rssKiB === undefined ? null : rssKiB / 1024,
      diskReadBps: rate(io.diskReadBytes, last?.io.diskReadBytes, dt),
      diskWriteBps: rate(io.diskWriteBytes, last?.io.diskWriteBytes, dt),
      netRxBps: rate(io.netRxBytes, last?.io.netRxBytes, dt),
      netTxBps: rate(io.netTxBytes, last?.io.netTxBytes, dt),
    };
    tr.last = { t, cpu, io };
    tr.samples.push(sample);
    if (tr.samples.length > this.keep) tr.samples.splice(0, tr.samples.length - this.keep);
    tr.file?.append(sample, tr.samples);
    return sample;
  }
}
