// GET /metrics in Prometheus' text format, written by prom-client: the same
// counters as `xenode account`, per domain (labels domain, domid, sponsor) and
// per sponsor, from one store report. A fresh registry per scrape, holding only
// what the caller may see.

import { Counter, Gauge, Registry } from 'prom-client';
import type { AccountReport } from './store.ts';
import type { UsageKey } from './usage.ts';

/** Metric name suffixes (after xenode_domain_ / xenode_sponsor_) for each quantity. */
export const METRIC_NAMES: ReadonlyArray<{ key: UsageKey; name: string; help: string }> = [
  { key: 'cpuSeconds', name: 'cpu_seconds_total', help: 'CPU time used by the QEMU process, seconds' },
  {
    key: 'memTargetMiBSeconds',
    name: 'memory_target_mib_seconds_total',
    help: 'memory target held over time, MiB-seconds',
  },
  {
    key: 'memRssMiBSeconds',
    name: 'memory_resident_mib_seconds_total',
    help: "QEMU's resident memory over time, MiB-seconds",
  },
  { key: 'diskReadBytes', name: 'disk_read_bytes_total', help: 'bytes read from disks' },
  { key: 'diskWriteBytes', name: 'disk_write_bytes_total', help: 'bytes written to disks' },
  { key: 'diskReadOps', name: 'disk_read_ops_total', help: 'disk read operations' },
  { key: 'diskWriteOps', name: 'disk_write_ops_total', help: 'disk write operations' },
  { key: 'netRxBytes', name: 'net_rx_bytes_total', help: 'bytes the guest received' },
  { key: 'netTxBytes', name: 'net_tx_bytes_total', help: 'bytes the guest sent' },
  { key: 'netRxPackets', name: 'net_rx_packets_total', help: 'packets the guest received' },
  { key: 'netTxPackets', name: 'net_tx_packets_total', help: 'packets the guest sent' },
];

/** Destroyed domains keep their own series this long, so a scrape sees their last values. */
export const DESTROYED_SERIES_MS = 15 * 60_000;

export async function renderMetrics(rep: AccountReport, now: number): Promise<{ contentType: string; body: string }> {
  const reg = new Registry();
  const domains = rep.domains.filter((d) => d.destroyed === null || now - d.destroyed < DESTROYED_SERIES_MS);
  for (const m of METRIC_NAMES) {
    const dom = new Counter({
      name: `xenode_domain_${m.name}`,
      help: `Per domain: ${m.help}`,
      labelNames: ['domain', 'domid', 'sponsor'],
      registers: [reg],
    });
    for (const d of domains) dom.inc({ domain: d.name, domid: String(d.domid), sponsor: d.sponsor }, d.usage[m.key]);
    const sp = new Counter({
      name: `xenode_sponsor_${m.name}`,
      help: `Per sponsor, its destroyed domains included: ${m.help}`,
      labelNames: ['sponsor'],
      registers: [reg],
    });
    for (const s of rep.sponsors) sp.inc({ sponsor: s.sponsor }, s.usage[m.key]);
  }
  const at = new Gauge({
    name: 'xenode_account_sampled_at_seconds',
    help: 'When the counters were last sampled (Unix time)',
    registers: [reg],
  });
  if (rep.sampledAt !== null) at.set(rep.sampledAt / 1000);
  return { contentType: reg.contentType, body: await reg.metrics() };
}
