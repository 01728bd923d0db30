// One domain: its state and actions, resource charts, serial console, config
// and control-store subtree.

import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, enc, errorText } from '../api.ts';
import { DomainAuditEvents } from '../components/AuditEvents.tsx';
import { confirmAction } from '../components/ConfirmDialog.tsx';
import { Console } from '../components/Console.tsx';
import { Icon } from '../components/Icon.tsx';
import { MemTargetWatch } from '../components/MemTargetWatch.tsx';
import { MetricChart, type SeriesSpec } from '../components/MetricChart.tsx';
import { StateBadge } from '../components/StateBadge.tsx';
import { StoreTree } from '../components/StoreTree.tsx';
import { formatMiB, formatPct, formatRate, formatUptime } from '../format.ts';
import { domains, latestSamples, linkState, now, onSample } from '../live.ts';
import { type DomainTab, navigate } from '../router.ts';
import type { DomainView, MetricsHistory, MetricsSample } from '../types.ts';
import { DevicesPanel } from './DevicesPanel.tsx';
import { HistoryPanel } from './HistoryPanel.tsx';
import { OpOutcome, TransferPanel } from './TransferPanel.tsx';

const KEEP = 300;

const CPU: SeriesSpec[] = [{ key: 'cpuPct', label: 'CPU', color: '#2f7de1' }];
const MEM: SeriesSpec[] = [
  { key: 'memTargetMiB', label: 'Target', color: '#8a63d2' },
  { key: 'rssMiB', label: 'QEMU RSS', color: '#e0823d' },
];
const DISK: SeriesSpec[] = [
  { key: 'diskReadBps', label: 'Read', color: '#1f9d74' },
  { key: 'diskWriteBps', label: 'Write', color: '#d9534f' },
];
const NET: SeriesSpec[] = [
  { key: 'netRxBps', label: 'RX', color: '#2f7de1' },
  { key: 'netTxBps', label: 'TX', color: '#e0823d' },
];

function useMetrics(domid: number | undefined): MetricsSample[] {
  const [samples, setSamples] = useState<MetricsSample[]>([]);
  useEffect(() => {
    if (domid === undefined) return;
    let live: MetricsSample[] = [];
    let loaded = false;
    setSamples([]);
    // Samples that arrive before the history are kept and merged after it.
    const off = onSample((id, s) => {
      if (id !== domid) return;
      if (!loaded) live.push(s);
      else setSamples((prev) => [...prev, s].slice(-KEEP));
    });
    api<MetricsHistory>('GET', `/v1/domains/${domid}/metrics`)
      .then((h) => {
        const last = h.samples.at(-1)?.t ?? 0;
        setSamples([...h.samples, ...live.filter((s) => s.t > last)].slice(-KEEP));
        live = [];
        loaded = true;
      })
      .catch(() => {
        loaded = true;
      });
    return off;
  }, [domid]);
  return samples;
}

function Overview({ d, detail }: { d: DomainView; detail: DomainView | undefined }) {
  const samples = useMetrics(d.domid);
  // CPU time is not in the event stream: read it again every 5 s while the domain runs.
  const [cpuSeconds, setCpuSeconds] = useState(d.cpuSeconds);
  useEffect(() => {
    setCpuSeconds(d.cpuSeconds);
    if (d.state !== 'running') return;
    const t = setInterval(() => {
      if (linkState.value !== 'live') return;
      api<DomainView>('GET', `/v1/domains/${d.domid}`).then(
        (v) => setCpuSeconds(v.cpuSeconds),
        () => undefined,
      );
    }, 5000);
    return () => clearInterval(t);
  }, [d.domid, d.state, d.cpuSeconds]);
  // The list shows what the guest has (as xl does); the sampler knows the target too.
  const target = latestSamples.value.get(d.domid)?.memTargetMiB ?? d.memMiB;
  const boot = detail?.boot ?? d.boot;
  return (
    <div class="overview">
      <div class="charts">
        <MetricChart
          title="CPU"
          series={CPU}
          samples={samples}
          fmt={formatPct}
          minTop={10}
          emptyText="Waiting for the first samples (every 2 s)…"
        />
        <MetricChart
          title="Memory"
          series={MEM}
          samples={samples}
          fmt={(v) => formatMiB(v)}
          minTop={64}
          emptyText="Waiting for the first samples (every 2 s)…"
        />
        <MetricChart
          title="Disk I/O"
          series={DISK}
          samples={samples}
          fmt={formatRate}
          minTop={1024}
          emptyText="No disk counters for this domain: it has no disks, or they report no I/O."
        />
        <MetricChart
          title="Network"
          series={NET}
          samples={samples}
          fmt={formatRate}
          minTop={1024}
          emptyText="No network counters for this domain: it has no interfaces, or they report no traffic."
        />
      </div>
      <section class="card details">
        <h3>Details</h3>
        <dl>
          <dt>Domain ID</dt>
          <dd class="mono">{d.domid}</dd>
          <dt>UUID</dt>
          <dd class="mono small">{d.uuid}</dd>
          <dt>Sponsor</dt>
          <dd>{d.sponsor}</dd>
          <dt>Memory</dt>
          <dd>
            {formatMiB(d.memMiB)}
            {target !== d.memMiB ? ` (target ${formatMiB(target)})` : ''} · max {formatMiB(d.maxMiB)}
          </dd>
          <dt>vCPUs</dt>
          <dd>{d.vcpus}</dd>
          <dt>CPU time</dt>
          <dd data-cpu-seconds>{cpuSeconds.toFixed(1)} s</dd>
          {detail?.guest && detail.guest.ipv4.length > 0 && (
            <>
              <dt>Guest IP</dt>
              <dd class="mono" data-guest-ip>
                {detail.guest.ipv4.join(', ')}
              </dd>
            </>
          )}
          {boot && (
            <>
              <dt>Machine</dt>
              <dd>
                {boot.machine} · {boot.accel.toUpperCase()}
              </dd>
              <dt>Kernel</dt>
              <dd class="mono small">{boot.kernel}</dd>
              <dt>Command line</dt>
              <dd class="mono small">{boot.cmdline}</dd>
            </>
          )}
          {d.pid !== undefined && (
            <>
              <dt>QEMU pid</dt>
              <dd class="mono">{d.pid}</dd>
            </>
          )}
        </dl>
      </section>
    </div>
  );
}

/** Seconds a guest gets to act on Shutdown before Force off is offered. */
const SHUTDOWN_GRACE_S = 20;

/** A Shutdown sent and not (yet) acted on: how long it has been, and a way out. */
function ShutdownPending({ d, since, onForce }: { d: DomainView; since: number; onForce: () => void }) {
  const secs = Math.max(0, Math.floor((now.value - since) / 1000));
  const late = secs >= SHUTDOWN_GRACE_S;
  return (
    <div class="alert alert-warn pending" role="status" data-shutdown-pending={late ? 'late' : 'waiting'}>
      {late
        ? `${d.name} has not shut down after ${secs} s: the guest may ignore the power button${d.state === 'paused' ? ' (it is paused)' : ''}.`
        : `Shutting down ${d.name}: waiting for the guest (${secs} s)…`}
      {late && (
        <button type="button" class="btn btn-small btn-danger-outline" data-force-off onClick={onForce}>
          Force off
        </button>
      )}
    </div>
  );
}

function Actions({ d, onError }: { d: DomainView; onError: (m: string) => void }) {
  const [busy, setBusy] = useState('');
  const [shutdownSince, setShutdownSince] = useState<number | undefined>(undefined);
  // The wait ends when the domain stops running (the guest acted, or someone destroyed it).
  // Not on paused -> running: Shutdown of a paused guest resumes it first, and that
  // state event may arrive after the request's reply.
  const stillUp = d.state === 'running' || d.state === 'paused';
  useEffect(() => {
    if (!stillUp) setShutdownSince(undefined);
  }, [stillUp]);
  useEffect(() => setShutdownSince(undefined), [d.domid]);
  const target = latestSamples.value.get(d.domid)?.memTargetMiB ?? d.memMiB;
  const [mem, setMem] = useState(String(target));
  useEffect(() => setMem(String(target)), [target]);
  // The last target set here, followed until the guest gets there (or says it cannot).
  const [memWatch, setMemWatch] = useState<{ mib: number; since: number } | undefined>(undefined);
  useEffect(() => setMemWatch(undefined), [d.domid]);
  // Nothing is offered while the daemon is unreachable: the state shown may be stale.
  const offline = linkState.value !== 'live';
  const live = !offline && (d.state === 'running' || d.state === 'paused');

  const run = async (action: string, body: unknown = {}, ask?: [string, string, string]) => {
    if (ask && !(await confirmAction(...ask))) return;
    setBusy(action);
    onError('');
    try {
      await api('POST', `/v1/domains/${d.domid}/${action}`, body);
      if (action === 'destroy') navigate('/');
      if (action === 'shutdown') setShutdownSince(Date.now());
      if (action === 'mem-set') setMemWatch({ mib: (body as { mib: number }).mib, since: Date.now() });
    } catch (e) {
      onError(errorText(e));
    } finally {
      setBusy('');
    }
  };

  return (
    <div class="actions">
      {d.state === 'paused' ? (
        <button type="button" class="btn btn-act" disabled={!!busy || offline} onClick={() => run('unpause')}>
          <Icon name="play" /> Resume
        </button>
      ) : (
        <button
          type="button"
          class="btn btn-act"
          disabled={!!busy || offline || d.state !== 'running'}
          onClick={() => run('pause')}
        >
          <Icon name="pause" /> Pause
        </button>
      )}
      <button
        type="button"
        class="btn"
        disabled={!!busy || !live}
        onClick={() =>
          run('shutdown', {}, [
            `Shut down ${d.name}?`,
            'The guest gets an ACPI power-button press and decides how to stop; on_poweroff then applies.',
            'Shut down',
          ])
        }
      >
        <Icon name="power" /> Shutdown
      </button>
      <button
        type="button"
        class="btn"
        disabled={!!busy || !live}
        onClick={() =>
          run('reboot', {}, [
            `Reboot ${d.name}?`,
            'The machine is reset at once (like pressing reset); unsaved guest data is lost. on_reboot then applies.',
            'Reboot',
          ])
        }
      >
        <Icon name="reboot" /> Reboot
      </button>
      <button
        type="button"
        class="btn btn-danger-outline"
        disabled={!!busy || offline}
        onClick={() =>
          run('destroy', {}, [
            `Destroy ${d.name}?`,
            'QEMU is killed immediately and the domain is gone; the guest gets no chance to shut down.',
            'Destroy',
          ])
        }
      >
        <Icon name="destroy" /> Destroy
      </button>
      <form
        class="memset"
        onSubmit={(e) => {
          e.preventDefault();
          void run('mem-set', { mib: Number(mem) });
        }}
      >
        <label>
          Memory target
          <input
            type="number"
            min={32}
            max={d.maxMiB}
            step={1}
            value={mem}
            onInput={(e) => setMem((e.currentTarget as HTMLInputElement).value)}
          />
          <span class="unit">MiB</span>
        </label>
        <button type="submit" class="btn" disabled={!!busy || !Number.isInteger(Number(mem))}>
          Set
        </button>
      </form>
      {memWatch && live && (
        <MemTargetWatch
          key={memWatch.since}
          dom={d.domid}
          name={d.name}
          targetMiB={memWatch.mib}
          since={memWatch.since}
        />
      )}
      {shutdownSince !== undefined && (
        <ShutdownPending
          d={d}
          since={shutdownSince}
          onForce={() =>
            void run('destroy', {}, [
              `Force ${d.name} off?`,
              'QEMU is killed at once, like pulling the plug; the guest gets no further chance to shut down.',
              'Force off',
            ])
          }
        />
      )}
    </div>
  );
}

const TAB_LABEL: Record<DomainTab, string> = {
  overview: 'Overview',
  console: 'Console',
  devices: 'Devices',
  transfer: 'Save / migrate',
  history: 'History',
  config: 'Config',
  store: 'Store',
  audit: 'Audit',
};

export function DomainPage({ dom, tab }: { dom: string; tab: DomainTab }) {
  const [detail, setDetail] = useState<DomainView | undefined>(undefined);
  const [loadError, setLoadError] = useState('');
  const [error, setError] = useState('');
  const all = domains.value;
  const d = useMemo(
    () => (/^\d+$/.test(dom) ? all.get(Number(dom)) : [...all.values()].find((x) => x.name === dom)),
    [all, dom],
  );
  const state = d?.state;
  const name = d?.name;
  // The name it had, so that a domain that goes away is named, not a raw API error.
  const seen = useRef<string | undefined>(undefined);
  if (name !== undefined) seen.current = name;

  useEffect(() => {
    api<DomainView>('GET', `/v1/domains/${enc(dom)}`)
      .then((v) => {
        setDetail(v);
        setLoadError('');
      })
      .catch((e: unknown) => setLoadError(errorText(e)));
  }, [dom, state, name]);

  useEffect(() => {
    document.title = `${name ?? dom} · ${TAB_LABEL[tab]} · Xenode`;
  }, [name, dom, tab]);

  if (!d) {
    return (
      <div class="page">
        <div class="alert alert-error" role="alert" data-domain-gone={seen.current ?? dom}>
          {seen.current !== undefined
            ? `Domain ${seen.current} no longer exists: it was destroyed or shut down.`
            : linkState.value === 'live'
              ? `There is no domain ${dom} that you may see.`
              : loadError || 'Loading…'}
        </div>
        <OpOutcome />
        <a href="/">← All domains</a>
      </div>
    );
  }
  const base = `/domains/${d.domid}`;
  return (
    <div class="page">
      <nav class="crumbs">
        <a href="/">Domains</a> <span>/</span> <span>{d.name}</span>
      </nav>
      <div class="page-head">
        <div>
          <h1 class="dom-title">
            {d.name} <StateBadge state={d.state} letters={d.stateLetters} />
          </h1>
          <p class="muted">
            domid {d.domid} · {formatMiB(d.memMiB)} · {d.vcpus} vCPU{d.vcpus === 1 ? '' : 's'} · up{' '}
            {formatUptime((now.value - d.startTime) / 1000)}
          </p>
        </div>
      </div>
      <Actions d={d} onError={setError} />
      {error && (
        <div class="alert alert-error" role="alert">
          {error}
        </div>
      )}
      <nav class="tabs" aria-label="domain views">
        {(Object.keys(TAB_LABEL) as DomainTab[]).map((t) => (
          <a
            key={t}
            aria-current={t === tab ? 'page' : undefined}
            class={t === tab ? 'tab active' : 'tab'}
            href={t === 'overview' ? base : `${base}/${t}`}
          >
            {TAB_LABEL[t]}
          </a>
        ))}
      </nav>
      {tab === 'overview' && <Overview d={d} detail={detail} />}
      {tab === 'console' && <Console dom={String(d.domid)} />}
      {tab === 'audit' && <DomainAuditEvents domid={d.domid} />}
      {tab === 'devices' && <DevicesPanel d={d} />}
      {tab === 'transfer' && <TransferPanel d={d} />}
      {tab === 'history' && <HistoryPanel d={d} />}
      {tab === 'config' && (
        <section class="card">
          <h3>Configuration (parsed from xl.cfg)</h3>
          {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must be reachable by keyboard (axe scrollable-region-focusable) */}
          <pre class="json" data-config tabIndex={0}>
            {detail?.config ? JSON.stringify(detail.config, null, 2) : 'Loading…'}
          </pre>
        </section>
      )}
      {tab === 'store' && (
        <section class="card">
          <h3>Control store</h3>
          <StoreTree roots={[`/local/domain/${d.domid}`, `/vm/${d.uuid}`]} />
        </section>
      )}
    </div>
  );
}
