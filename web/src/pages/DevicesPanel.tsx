// A domain's Devices tab: its disks (with QEMU's counters) and network
// interfaces (with the switch's), hot-plug and unplug of both, CD-ROM insert
// and eject, and per-device limits. Everything goes through the routes the CLI
// uses (block-attach/-detach, network-attach/-detach, cd-insert/-eject,
// block throttle, network-rate), so the same checks apply to a sponsor.

import { useEffect, useState } from 'preact/hooks';
import { api, errorText } from '../api.ts';
import { confirmAction } from '../components/ConfirmDialog.tsx';
import { linkState } from '../live.ts';
import type { DomainView } from '../types.ts';

interface BlockEntry {
  vdev: string;
  devid: number;
  state: number;
  target: string;
  format: string;
  access: string;
  devtype: 'disk' | 'cdrom';
}

interface DiskStats {
  vdev: string;
  rdBytes: number;
  wrBytes: number;
  rdOps: number;
  wrOps: number;
}

interface ThrottleView {
  vdev: string;
  inForce: Record<string, number> | null;
  config: Record<string, number>;
}

interface VifView {
  devid: number;
  mac: string;
  backend: 'switch' | 'bridge';
  bridge?: string;
  ifname: string;
  ip?: string;
  model: string;
  rate?: string;
  hotplugged: boolean;
  link: 'up' | 'down' | 'unknown';
  vlan?: number;
  counters?: { rx_bytes: number; tx_bytes: number; rx_packets: number; tx_packets: number };
}

interface Devices {
  disks: BlockEntry[];
  stats: Map<string, DiskStats>;
  limits: Map<string, ThrottleView>;
  vifs: VifView[];
}

function bytes(n: number | undefined): string {
  if (n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** A disk's limits as one short text: "bps 4 MiB/s, iops 50". */
function limitText(t: Record<string, number> | null | undefined): string {
  if (!t) return '–';
  const parts = Object.entries(t).map(([k, v]) => (k.startsWith('bps') ? `${k} ${bytes(v)}/s` : `${k} ${v}`));
  return parts.length ? parts.join(', ') : 'none';
}

/** Read a domain's devices. Stats and limits may be missing (paused QEMU busy, no counters): shown as –. */
async function readDevices(dom: number): Promise<Devices> {
  const [block, stats, limits, net] = await Promise.all([
    api<{ disks: BlockEntry[] }>('GET', `/v1/domains/${dom}/block`),
    api<{ disk: DiskStats[] }>('GET', `/v1/domains/${dom}/block/stats`).catch(() => ({ disk: [] as DiskStats[] })),
    api<{ disks: ThrottleView[] }>('GET', `/v1/domains/${dom}/block/throttle`).catch(() => ({
      disks: [] as ThrottleView[],
    })),
    api<{ vifs: VifView[] }>('GET', `/v1/domains/${dom}/net`),
  ]);
  return {
    disks: block.disks,
    stats: new Map(stats.disk.map((s) => [s.vdev, s])),
    limits: new Map(limits.disks.map((l) => [l.vdev, l])),
    vifs: net.vifs,
  };
}

function CdControls({ disk, busy, act }: { disk: BlockEntry; busy: boolean; act: Act }) {
  const [file, setFile] = useState('');
  if (disk.target) {
    return (
      <button
        type="button"
        class="btn btn-small"
        disabled={busy}
        onClick={() => act(`eject the CD from ${disk.vdev}`, 'POST', 'cd-eject', { vdev: disk.vdev })}
      >
        Eject
      </button>
    );
  }
  return (
    <form
      class="cd-form"
      onSubmit={(e) => {
        e.preventDefault();
        void act(`insert ${file} into ${disk.vdev}`, 'POST', 'cd-insert', { vdev: disk.vdev, file }).then(
          (ok) => ok && setFile(''),
        );
      }}
    >
      <input
        data-cd-file
        aria-label={`Image for ${disk.vdev}`}
        placeholder="/path/to/image.iso"
        value={file}
        onInput={(e) => setFile((e.currentTarget as HTMLInputElement).value)}
      />
      <button type="submit" class="btn btn-small" disabled={busy || !file.trim()}>
        Insert
      </button>
    </form>
  );
}

type Act = (what: string, method: string, path: string, body?: unknown) => Promise<boolean>;

function AttachForm({
  kind,
  label,
  placeholder,
  busy,
  onAttach,
}: {
  kind: 'disk' | 'vif';
  label: string;
  placeholder: string;
  busy: boolean;
  onAttach: (spec: string) => Promise<boolean>;
}) {
  const [spec, setSpec] = useState('');
  const attr = kind === 'disk' ? { 'data-disk-attach': true } : { 'data-vif-attach': true };
  return (
    <form
      class="device-form"
      {...attr}
      onSubmit={(e) => {
        e.preventDefault();
        void onAttach(spec.trim()).then((ok) => ok && setSpec(''));
      }}
    >
      <input
        aria-label={label}
        placeholder={placeholder}
        value={spec}
        onInput={(e) => setSpec((e.currentTarget as HTMLInputElement).value)}
      />
      <button type="submit" class="btn" disabled={busy || (kind === 'disk' && !spec.trim())}>
        {label}
      </button>
    </form>
  );
}

export function DevicesPanel({ d }: { d: DomainView }) {
  const [dev, setDev] = useState<Devices | undefined>(undefined);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const [tick, setTick] = useState(0);
  const live = linkState.value === 'live' && (d.state === 'running' || d.state === 'paused');

  useEffect(() => {
    let stop = false;
    const load = () =>
      readDevices(d.domid).then(
        (x) => !stop && setDev(x),
        (e: unknown) => !stop && setError(errorText(e)),
      );
    void load();
    // Counters move: read them again every 3 s while the stream is live.
    const t = setInterval(() => {
      if (linkState.value === 'live') void load();
    }, 3000);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [d.domid, d.state, tick]);

  const act: Act = async (what, method, path, body) => {
    setBusy(true);
    setError('');
    try {
      await api(method, `/v1/domains/${d.domid}/${path}`, body);
      setTick((n) => n + 1);
      return true;
    } catch (e) {
      setError(`Could not ${what}: ${errorText(e)}`);
      return false;
    } finally {
      setBusy(false);
    }
  };

  const detachDisk = async (x: BlockEntry) => {
    if (
      !(await confirmAction(
        `Detach ${x.vdev} from ${d.name}?`,
        'The guest is asked to let go of the disk first; unsaved writes in the guest may be lost.',
        'Detach',
      ))
    )
      return;
    await act(`detach ${x.vdev}`, 'POST', 'block-detach', { vdev: x.vdev });
  };
  const detachVif = async (v: VifView) => {
    if (
      !(await confirmAction(
        `Detach interface ${v.devid} (${v.mac}) from ${d.name}?`,
        'The guest loses this network interface at once.',
        'Detach',
      ))
    )
      return;
    await act(`detach interface ${v.devid}`, 'DELETE', `net/${v.devid}`);
  };
  const limitDisk = async (x: BlockEntry, mib: string) => {
    const n = mib.trim() === '' ? 0 : Math.round(Number(mib) * 1024 * 1024);
    if (!Number.isFinite(n) || n < 0) {
      setError(`Limit for ${x.vdev}: give MiB/s as a number (empty for none)`);
      return;
    }
    await act(`limit ${x.vdev}`, 'PUT', `block/${encodeURIComponent(x.vdev)}/throttle`, {
      throttle: n ? { bps: n } : {},
    });
  };
  const limitVif = async (v: VifView, rate: string) => {
    await act(`limit interface ${v.devid}`, 'PUT', `net/${v.devid}/rate`, {
      rate: rate.trim() === '' ? null : rate.trim(),
    });
  };

  return (
    <div class="devices">
      {error && (
        <div class="alert alert-error" role="alert" data-device-error>
          {error}
          <button type="button" class="alert-close" aria-label="dismiss" onClick={() => setError('')}>
            ×
          </button>
        </div>
      )}
      <section class="card" aria-labelledby="disks-h">
        <h3 id="disks-h">Disks</h3>
        {!dev ? (
          <p class="muted">Loading…</p>
        ) : (
          <table class="dev">
            <thead>
              <tr>
                <th>Device</th>
                <th>Image</th>
                <th>Format</th>
                <th>Access</th>
                <th class="num">Read</th>
                <th class="num">Written</th>
                <th class="num">Ops r / w</th>
                <th>Limit</th>
                <th>
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {dev.disks.map((x) => {
                const s = dev.stats.get(x.vdev);
                const l = dev.limits.get(x.vdev);
                return (
                  <tr key={x.vdev} data-disk={x.vdev}>
                    <td class="mono">
                      {x.vdev}
                      {x.devtype === 'cdrom' ? ' (cdrom)' : ''}
                    </td>
                    <td class="mono target" title={x.target}>
                      {x.target || (x.devtype === 'cdrom' ? 'empty' : '–')}
                    </td>
                    <td>{x.format}</td>
                    <td>{x.access}</td>
                    <td class="num mono" data-rd-bytes={s?.rdBytes}>
                      {bytes(s?.rdBytes)}
                    </td>
                    <td class="num mono" data-wr-bytes={s?.wrBytes}>
                      {bytes(s?.wrBytes)}
                    </td>
                    <td class="num mono">{s ? `${s.rdOps} / ${s.wrOps}` : '–'}</td>
                    <td>
                      {x.devtype === 'disk' ? (
                        <LimitField
                          label={`Read+write limit of ${x.vdev} in MiB/s`}
                          shown={limitText(l?.inForce ?? l?.config)}
                          placeholder="MiB/s"
                          busy={busy || !live}
                          onSet={(v) => void limitDisk(x, v)}
                        />
                      ) : (
                        '–'
                      )}
                    </td>
                    <td class="dev-actions">
                      {x.devtype === 'cdrom' && <CdControls disk={x} busy={busy || !live} act={act} />}
                      <button
                        type="button"
                        class="btn btn-small"
                        disabled={busy || !live}
                        onClick={() => void detachDisk(x)}
                      >
                        Detach
                      </button>
                    </td>
                  </tr>
                );
              })}
              {dev.disks.length === 0 && (
                <tr>
                  <td colSpan={9} class="muted">
                    No disks.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        )}
        <AttachForm
          kind="disk"
          label="Attach disk"
          placeholder="/srv/data.img,raw,xvdb,rw  (xl disk spec; a sponsor names its volumes)"
          busy={busy || !live}
          onAttach={(spec) => act('attach the disk', 'POST', 'block-attach', { spec })}
        />
      </section>
      <section class="card" aria-labelledby="vifs-h">
        <h3 id="vifs-h">Network interfaces</h3>
        {!dev ? (
          <p class="muted">Loading…</p>
        ) : (
          <table class="dev">
            <thead>
              <tr>
                <th class="num">#</th>
                <th>MAC</th>
                <th>IP</th>
                <th>On</th>
                <th>Link</th>
                <th class="num">Received</th>
                <th class="num">Sent</th>
                <th>Limit</th>
                <th>
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {dev.vifs.map((v) => (
                <tr key={v.devid} data-vif={v.devid}>
                  <td class="num mono">{v.devid}</td>
                  <td class="mono">{v.mac}</td>
                  <td class="mono">{v.ip ?? '–'}</td>
                  <td>
                    {v.backend === 'bridge' ? `bridge ${v.bridge ?? ''}` : 'switch'}
                    {v.vlan !== undefined ? ` · vlan ${v.vlan}` : ''}
                  </td>
                  <td>{v.link}</td>
                  <td class="num mono" data-rx-bytes={v.counters?.rx_bytes}>
                    {bytes(v.counters?.rx_bytes)}
                  </td>
                  <td class="num mono" data-tx-bytes={v.counters?.tx_bytes}>
                    {bytes(v.counters?.tx_bytes)}
                  </td>
                  <td>
                    <LimitField
                      label={`Rate limit of interface ${v.devid} (xl rate=)`}
                      shown={v.rate ?? 'none'}
                      placeholder="10Mb/s"
                      busy={busy || !live}
                      onSet={(r) => void limitVif(v, r)}
                    />
                  </td>
                  <td class="dev-actions">
                    <button
                      type="button"
                      class="btn btn-small"
                      disabled={busy || !live}
                      onClick={() => void detachVif(v)}
                    >
                      Detach
                    </button>
                  </td>
                </tr>
              ))}
              {dev.vifs.length === 0 && (
                <tr>
                  <td colSpan={9} class="muted">
                    No network interfaces.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        )}
        <AttachForm
          kind="vif"
          label="Attach interface"
          placeholder="ip=10.200.0.5  (xl vif spec; empty for defaults)"
          busy={busy || !live}
          onAttach={(spec) => act('attach the interface', 'POST', 'net', { spec })}
        />
      </section>
      {!live && <p class="muted device-note">Devices change only while the domain runs and xenoded answers.</p>}
    </div>
  );
}

/** The limit in force, and a small field to change it (empty = none). */
function LimitField({
  label,
  shown,
  placeholder,
  busy,
  onSet,
}: {
  label: string;
  shown: string;
  placeholder: string;
  busy: boolean;
  onSet: (v: string) => void;
}) {
  const [v, setV] = useState('');
  return (
    <form
      class="cd-form"
      onSubmit={(e) => {
        e.preventDefault();
        onSet(v);
        setV('');
      }}
    >
      <span class="mono small" data-limit-now>
        {shown}
      </span>
      <input
        aria-label={label}
        placeholder={placeholder}
        value={v}
        style={{ width: '80px' }}
        onInput={(e) => setV((e.currentTarget as HTMLInputElement).value)}
      />
      <button type="submit" class="btn btn-small" disabled={busy}>
        Set
      </button>
    </form>
  );
}
