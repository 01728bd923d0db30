// The domain table, live from /v1/events: state, memory, vCPUs, CPU% and
// uptime change without a reload.

import { useState } from 'preact/hooks';
import { api, enc, errorText } from '../api.ts';
import { StateBadge } from '../components/StateBadge.tsx';
import { formatMiB, formatPct, formatUptime } from '../format.ts';
import { domains, latestSamples, linkState, now } from '../live.ts';
import type { DomainView, HostInfo } from '../types.ts';
import { ListControls, SortHeader, viewOf } from './list-view.tsx';

function CpuCell({ pct, vcpus }: { pct: number | null | undefined; vcpus: number }) {
  const width = pct === null || pct === undefined ? 0 : Math.min(100, pct / vcpus);
  return (
    <div class="cpu-cell">
      <div class="meter">
        <div class="meter-fill" style={{ width: `${width}%` }} />
      </div>
      <span>{formatPct(pct)}</span>
    </div>
  );
}

function RowActions({ d, onError }: { d: DomainView; onError: (m: string) => void }) {
  const [busy, setBusy] = useState(false);
  // A row from before the daemon went away is a memory, not something to act on.
  const off = busy || linkState.value !== 'live';
  const act = async (action: string) => {
    setBusy(true);
    try {
      await api('POST', `/v1/domains/${d.domid}/${action}`, {});
    } catch (e) {
      onError(`${d.name}: ${errorText(e)}`);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="row-actions">
      {d.state === 'running' && (
        <button type="button" class="btn btn-small btn-act" disabled={off} onClick={() => act('pause')}>
          Pause
        </button>
      )}
      {d.state === 'paused' && (
        <button type="button" class="btn btn-small btn-act" disabled={off} onClick={() => act('unpause')}>
          Resume
        </button>
      )}
      <a class="btn btn-small" href={`/domains/${enc(String(d.domid))}/console`}>
        Console
      </a>
    </div>
  );
}

export function DomainList({ host }: { host: HostInfo | undefined }) {
  const [error, setError] = useState('');
  const list = [...domains.value.values()].sort((a, b) => a.domid - b.domid);
  const samples = latestSamples.value;
  const shown = viewOf(list, samples);
  const t = now.value;
  const running = list.filter((d) => d.state === 'running').length;
  const paused = list.filter((d) => d.state === 'paused').length;
  const memTotal = list.reduce((s, d) => s + d.memMiB, 0);
  return (
    <div class="page">
      <div class="page-head">
        <div>
          <h1>Domains</h1>
          <p class="muted">
            {list.length} domain{list.length === 1 ? '' : 's'} · {running} running · {paused} paused
          </p>
        </div>
        <a class="btn btn-primary" href="/create">
          + Create domain
        </a>
      </div>
      <div class="stats">
        <div class="stat">
          <span class="stat-label">Host</span>
          <span class="stat-value">{host?.host ?? '…'}</span>
          <span class="stat-sub">{host ? `${host.nr_cpus} CPUs · ${formatMiB(host.total_memory)}` : ''}</span>
        </div>
        <div class="stat">
          <span class="stat-label">Accelerator</span>
          <span class="stat-value">{host?.accel.toUpperCase() ?? '…'}</span>
          <span class="stat-sub" title={host?.accel_reason}>
            {host?.qemu_version.replace(/\(.*\)/, '').trim() ?? ''}
          </span>
        </div>
        <div class="stat">
          <span class="stat-label">Memory assigned</span>
          <span class="stat-value">{formatMiB(memTotal)}</span>
          <span class="stat-sub">{host ? `${formatMiB(host.free_memory)} free on host` : ''}</span>
        </div>
        <div class="stat">
          <span class="stat-label">Updates</span>
          <span class={`stat-value link-${linkState.value}`} data-link={linkState.value}>
            {linkState.value === 'live' ? 'Live' : linkState.value === 'connecting' ? 'Connecting…' : 'Offline'}
          </span>
          <span class="stat-sub">pushed by xenoded every 2 s</span>
        </div>
      </div>
      {error && (
        <div class="alert alert-error" role="alert">
          {error}
          <button type="button" class="alert-close" aria-label="dismiss" onClick={() => setError('')}>
            ×
          </button>
        </div>
      )}
      <ListControls shown={shown.length} total={list.length} />
      <div class="card table-card">
        <table class="domains">
          {/* Fixed column widths: a Pause that becomes Resume moves nothing. */}
          <colgroup>
            <col class="c-name" />
            <col class="c-id hide-sm" />
            <col class="c-state" />
            <col class="c-mem hide-xs" />
            <col class="c-vcpus hide-sm" />
            <col class="c-cpu hide-sm" />
            <col class="c-uptime hide-sm" />
            <col class="c-sponsor hide-sm" />
            <col class="c-actions" />
          </colgroup>
          <thead>
            <tr>
              <SortHeader k="name">Name</SortHeader>
              <SortHeader k="id" cls="num hide-sm">
                ID
              </SortHeader>
              <SortHeader k="state">State</SortHeader>
              <SortHeader k="memory" cls="num hide-xs">
                Memory
              </SortHeader>
              <SortHeader k="vcpus" cls="num hide-sm">
                vCPUs
              </SortHeader>
              <SortHeader k="cpu" cls="hide-sm">
                CPU
              </SortHeader>
              <SortHeader k="uptime" cls="num hide-sm">
                Uptime
              </SortHeader>
              <SortHeader k="sponsor" cls="hide-sm">
                Sponsor
              </SortHeader>
              <th>
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {shown.map((d) => (
              <tr key={d.domid} data-domain={d.name} data-domid={d.domid}>
                <td>
                  <a class="dom-name" href={`/domains/${d.domid}`}>
                    {d.name}
                  </a>
                </td>
                <td class="num mono hide-sm">{d.domid}</td>
                <td>
                  <StateBadge state={d.state} letters={d.stateLetters} />
                </td>
                <td class="num hide-xs">{formatMiB(d.memMiB)}</td>
                <td class="num hide-sm">{d.vcpus}</td>
                <td class="hide-sm">
                  <CpuCell pct={samples.get(d.domid)?.cpuPct} vcpus={d.vcpus} />
                </td>
                <td class="num mono hide-sm" data-uptime>
                  {d.state === 'running' || d.state === 'paused' ? formatUptime((t - d.startTime) / 1000) : '–'}
                </td>
                <td class="hide-sm">{d.sponsor}</td>
                <td>
                  <RowActions d={d} onError={setError} />
                </td>
              </tr>
            ))}
            {list.length > 0 && shown.length === 0 && (
              <tr>
                <td colSpan={9} class="empty" data-list-none>
                  No domain matches the search or filter.
                </td>
              </tr>
            )}
            {list.length === 0 && (
              <tr>
                <td colSpan={9} class="empty">
                  {linkState.value === 'live' ? (
                    <>
                      No domains yet. <a href="/create">Create one</a> from an xl.cfg file.
                    </>
                  ) : (
                    'Loading…'
                  )}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </div>
  );
}
