// A sponsor's usage and limits: its quota-list limits (/v1/quotas) beside its
// account (/v1/account) over a chosen range, per sponsor and per domain. A
// sponsor's session sees its own; the admin's sees every sponsor.

import { useEffect, useState } from 'preact/hooks';
import { api, errorText } from '../api.ts';
import { SponsorBill } from '../components/SponsorBill.tsx';
import { formatMiB } from '../format.ts';
import type { Principal } from '../types.ts';

interface Usage {
  cpuSeconds: number;
  memTargetMiBSeconds: number;
  memRssMiBSeconds: number;
  diskReadBytes: number;
  diskWriteBytes: number;
  diskReadOps: number;
  diskWriteOps: number;
  netRxBytes: number;
  netTxBytes: number;
  netRxPackets: number;
  netTxPackets: number;
}

interface Account {
  sampledAt: number | null;
  domains: Array<{ sponsor: string; domid: number; name: string; destroyed: number | null; usage: Usage }>;
  sponsors: Array<{ sponsor: string; domains: number; usage: Usage }>;
}

interface Quota {
  sponsor: string;
  inherited: boolean;
  limits: Partial<Record<'domains' | 'memoryMiB' | 'vcpus' | 'volumes' | 'diskBytes', number>>;
  usage: { domains: number; memoryMiB: number; vcpus: number; volumes: number; diskBytes: number };
}

const RANGES = [
  { label: 'All time', since: '' },
  { label: 'Last 24 h', since: '-1d' },
  { label: 'Last hour', since: '-1h' },
];

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

const hours = (s: number) => `${(s / 3600).toFixed(3)} h`;
const gibHours = (mibSeconds: number) => `${(mibSeconds / 1024 / 3600).toFixed(3)} GiB-h`;
const count = (n: number) => Math.round(n).toLocaleString('en');

function Limit({
  label,
  used,
  limit,
  show,
}: {
  label: string;
  used: number;
  limit?: number;
  show: (n: number) => string;
}) {
  const pct = limit ? Math.min(100, (used / limit) * 100) : 0;
  return (
    <div class="stat" data-limit={label}>
      <span class="stat-label">{label}</span>
      <span class="stat-value">
        {show(used)} <span class="muted">/ {limit === undefined ? 'no limit' : show(limit)}</span>
      </span>
      {limit !== undefined && (
        <div class="meter">
          <div class="meter-fill" style={{ width: `${pct}%` }} />
        </div>
      )}
    </div>
  );
}

function UsageRow({ name, u, extra }: { name: string; u: Usage; extra?: string }) {
  return (
    <tr data-usage={name}>
      <td>
        {name}
        {extra && <span class="muted"> {extra}</span>}
      </td>
      <td class="num mono">{hours(u.cpuSeconds)}</td>
      <td class="num mono">{gibHours(u.memTargetMiBSeconds)}</td>
      <td class="num mono">{gibHours(u.memRssMiBSeconds)}</td>
      <td class="num mono">
        {bytes(u.diskReadBytes)} / {bytes(u.diskWriteBytes)}
      </td>
      <td class="num mono">
        {count(u.diskReadOps)} / {count(u.diskWriteOps)}
      </td>
      <td class="num mono">
        {bytes(u.netRxBytes)} / {bytes(u.netTxBytes)}
      </td>
      <td class="num mono">
        {count(u.netRxPackets)} / {count(u.netTxPackets)}
      </td>
    </tr>
  );
}

function UsageHead({ first }: { first: string }) {
  return (
    <thead>
      <tr>
        <th>{first}</th>
        <th class="num">CPU</th>
        <th class="num">Memory</th>
        <th class="num">Resident</th>
        <th class="num">Disk read / write</th>
        <th class="num">Disk ops r / w</th>
        <th class="num">Net rx / tx</th>
        <th class="num">Packets rx / tx</th>
      </tr>
    </thead>
  );
}

export function UsagePage({ who }: { who: Principal | undefined }) {
  const [range, setRange] = useState(RANGES[0]?.since ?? '');
  const [account, setAccount] = useState<Account | undefined>(undefined);
  const [quotas, setQuotas] = useState<Quota[]>([]);
  const [error, setError] = useState('');
  useEffect(() => {
    let stop = false;
    const load = () => {
      const q = range ? `?since=${encodeURIComponent(range)}` : '';
      Promise.all([api<Account>('GET', `/v1/account${q}`), api<Quota[]>('GET', '/v1/quotas')]).then(
        ([a, qs]) => {
          if (stop) return;
          setAccount(a);
          setQuotas(qs.filter((x) => x.sponsor !== '*'));
          setError('');
        },
        (e) => !stop && setError(errorText(e)),
      );
    };
    load();
    const t = setInterval(load, 10_000);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [range]);
  const sponsors = [
    ...new Set([...quotas.map((q) => q.sponsor), ...(account?.sponsors.map((s) => s.sponsor) ?? [])]),
  ].sort();
  return (
    <div class="page">
      <div class="page-head">
        <div>
          <h1>Usage</h1>
          <p class="muted">
            {who?.admin ? 'Every sponsor' : `Sponsor ${who?.sponsor ?? '…'}`}: limits and what was used
            {account?.sampledAt ? ` · sampled ${new Date(account.sampledAt).toLocaleTimeString()}` : ''}
          </p>
        </div>
        <select value={range} onChange={(e) => setRange((e.target as HTMLSelectElement).value)} aria-label="range">
          {RANGES.map((r) => (
            <option key={r.since} value={r.since}>
              {r.label}
            </option>
          ))}
        </select>
      </div>
      {error && (
        <div class="alert alert-error" role="alert">
          {error}
        </div>
      )}
      {sponsors.map((s) => {
        const q = quotas.find((x) => x.sponsor === s);
        const total = account?.sponsors.find((x) => x.sponsor === s);
        const doms = account?.domains.filter((d) => d.sponsor === s) ?? [];
        return (
          <section key={s} class="card usage-card" data-sponsor={s}>
            <h2>
              {s}
              {q?.inherited ? <span class="muted"> (limits of *)</span> : null}
            </h2>
            {q && (
              <div class="stats">
                <Limit label="Domains" used={q.usage.domains} limit={q.limits.domains} show={String} />
                <Limit label="Memory" used={q.usage.memoryMiB} limit={q.limits.memoryMiB} show={formatMiB} />
                <Limit label="vCPUs" used={q.usage.vcpus} limit={q.limits.vcpus} show={String} />
                <Limit label="Disk" used={q.usage.diskBytes} limit={q.limits.diskBytes} show={bytes} />
              </div>
            )}
            <table class="domains">
              <UsageHead first="Domain" />
              <tbody>
                {doms.map((d) => (
                  <UsageRow
                    key={`${d.domid}`}
                    name={d.name}
                    u={d.usage}
                    extra={d.destroyed === null ? `#${d.domid}` : `#${d.domid}, destroyed`}
                  />
                ))}
                {total && <UsageRow name="Total" u={total.usage} />}
                {!total && (
                  <tr>
                    <td colSpan={8} class="empty">
                      No usage in this range.
                    </td>
                  </tr>
                )}
              </tbody>
            </table>
            <SponsorBill sponsor={s} since={range} />
          </section>
        );
      })}
      {account && sponsors.length === 0 && <div class="card empty">Nothing accounted yet.</div>}
    </div>
  );
}
