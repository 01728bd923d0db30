// Disks for domains as a toolstack plugin: disk=[...] becomes QEMU devices at
// launch, block-attach/-detach hot-plug them, the control store mirrors them in
// xl's layout, and their I/O counters feed the charts (docs/disks.md). Each disk
// carries its own limits (its spec's throttle keys, block-set-throttle) and a
// share of its sponsor's aggregate (sponsor-share.ts).

import {
  closeSync,
  constants,
  accessSync as fsAccess,
  openSync,
  readSync,
  realpathSync,
  rmSync,
  statSync,
} from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../api/context.ts';
import { vdevNumber } from '../../config/disk.ts';
import type { DiskSpec, DiskThrottle } from '../../config/types.ts';
import {
  DEFAULT_DISK_IO,
  DISK_BRIDGE_ID,
  devnumOf,
  diskArgs,
  guestDeviceName,
  type PlacedDisk,
  placeDisks,
} from '../../engine/disk-args.ts';
import {
  type DiskStats,
  diskStats,
  freeDiskSlot,
  freeScsiTarget,
  onDiskDeleted,
  peripheralIds,
  plugDisk,
  presentDisks,
  releaseDiskBackend,
  requestUnplug,
} from '../../engine/disk-hotplug.ts';
import { readThrottle, type ShareLimits, setOwnThrottle } from '../../engine/disk-throttle.ts';
import type { QemuMachine } from '../../engine/qemu-machine.ts';
import { vhostBlkArgs } from '../../engine/vhost-blk-args.ts';
import { plugVhostBlk, releaseVhostBlk } from '../../engine/vhost-blk-hotplug.ts';
import { errorMessage, XenodeError } from '../../errors.ts';
import type { Domain } from '../../toolstack/domain.ts';
import type { DiskChainSource, IoCounters } from '../../toolstack/lifecycle-hooks.ts';
import type { DaemonLog } from '../../toolstack/log.ts';
import type { LaunchContribution, PluginHost, ToolstackPlugin } from '../../toolstack/plugin.ts';
import type { SponsorLimits, SponsorPolicy } from '../../toolstack/sponsors.ts';
import { ControlStoreSink } from '../../toolstack/store-factory.ts';
import type { Toolstack } from '../../toolstack/toolstack.ts';
import { type BackendCounters, readBackendCounters } from './backend-stats.ts';
import { type BackendSpec, BlkBackendSupervisor, backendPaths } from './backend-supervisor.ts';
import { registerBlockRoutes } from './routes.ts';
import { type ShareDisk, SponsorShares } from './sponsor-share.ts';
import { DiskStore, vbdBackendPath, XENBUS } from './store.ts';
import type { BlockEntry, DiskOps, DiskStatsView, DomainThrottleView, ThrottleView } from './views.ts';

/** How long block-detach waits for the guest to eject a disk. */
export const DETACH_TIMEOUT_MS = 30_000;
const XVDB = vdevNumber('xvdb') as number;
const NULL_LOG: Pick<DaemonLog, 'info' | 'warn'> = { info() {}, warn() {} };
const QCOW2_MAGIC = Buffer.from('QFI\xfb', 'latin1');

interface OpenImages {
  d: Domain;
  /** devnum -> spec of every image this domain's QEMU has open. */
  disks: Map<number, DiskSpec>;
}

interface Detaching {
  forced: boolean;
  waiters: Array<() => void>;
}

function realTarget(t: string): string {
  try {
    return realpathSync(t);
  } catch {
    return t;
  }
}

/** Served by Xenode's backend process rather than by QEMU (`backendtype=xenode`). */
export function servedByBackend(spec: DiskSpec): boolean {
  return spec.backendtype === 'xenode';
}

/** The image exists, is usable as asked, and is the format the spec says. */
export function checkImage(spec: DiskSpec): void {
  const t = spec.target;
  if (t === '') return;
  let isFile: boolean;
  try {
    const st = statSync(t);
    if (st.isDirectory()) throw new XenodeError('config', `disk image '${t}' for ${spec.vdev} is a directory`);
    isFile = st.isFile();
    if (!isFile && servedByBackend(spec)) {
      throw new XenodeError('config', `${spec.vdev}: backendtype=xenode serves image files only ('${t}' is not one)`, {
        hint: 'serve a block device with QEMU (drop backendtype=)',
      });
    }
  } catch (e) {
    if (e instanceof XenodeError) throw e;
    throw new XenodeError('not-found', `disk image '${t}' for ${spec.vdev} not found`, {
      hint: 'create it first, e.g. qemu-img create -f raw IMAGE 1G',
    });
  }
  try {
    fsAccess(t, spec.access === 'rw' ? constants.R_OK | constants.W_OK : constants.R_OK);
  } catch {
    throw new XenodeError('permission', `cannot ${spec.access === 'rw' ? 'write' : 'read'} disk image '${t}'`, {
      hint: spec.access === 'rw' ? 'fix its permissions or attach it read-only (access=ro)' : 'fix its permissions',
    });
  }
  if (spec.format === 'qcow2' && isFile) {
    const head = Buffer.alloc(4);
    const fd = openSync(t, 'r');
    try {
      readSync(fd, head, 0, 4, 0);
    } finally {
      closeSync(fd);
    }
    if (!head.equals(QCOW2_MAGIC)) {
      throw new XenodeError('config', `disk image '${t}' for ${spec.vdev} is not a qcow2 image`, {
        hint: 'give its real format (raw) or convert it: qemu-img convert -O qcow2',
      });
    }
  }
}

/**
 * The default guest mounts the disk named by xenode.data= at /mnt/data. Point it
 * at xvdb's guest name (vdb only when xvda exists), or at nothing without xvdb.
 */
function dataDiskWords(d: Domain, placed: readonly PlacedDisk[]): string[] {
  const cfg = d.rec.config;
  if (cfg.kernel || placed.length === 0 || /(^|\s)xenode\.data=/.test(cfg.cmdline)) return [];
  const p = placed.find((x) => x.devnum === XVDB && x.kind === 'virtio-blk');
  return [`xenode.data=${p ? guestDeviceName(p) : ''}`];
}

export class DiskPlugin implements ToolstackPlugin, DiskOps {
  readonly name = 'disk';
  private store = new DiskStore(undefined, NULL_LOG);
  private log: Pick<DaemonLog, 'info' | 'warn'> = NULL_LOG;
  private ts?: Toolstack;
  private open = new Map<number, OpenImages>();
  private subs = new Map<number, () => void>();
  private detaching = new Map<number, Map<number, Detaching>>();
  /** Domains whose config changed before the toolstack was reachable (daemon restart). */
  private dirty = new Set<Domain>();
  private sponsors?: SponsorPolicy;
  private readonly shares = new SponsorShares(
    () => this.openDisks(),
    () => this.sponsors,
    { warn: (m, domid) => this.log.warn(m, domid) },
  );
  private hostLog?: DaemonLog;
  /** The backend processes of `backendtype=xenode` disks. */
  readonly backends = new BlkBackendSupervisor({
    log: {
      info: (m, domid) => this.hostLog?.info(m, domid),
      warn: (m, domid) => this.hostLog?.warn(m, domid),
      error: (m, domid) => this.hostLog?.error(m, domid),
    },
    report: (spec, r) => this.store.writeBackend(spec.domid, spec.devnum, r),
  });

  constructor(private readonly chains?: DiskChainSource) {}

  /** Every open disk with an image, for the sponsor shares. */
  private openDisks(): ShareDisk[] {
    const out: ShareDisk[] = [];
    for (const o of this.open.values()) {
      // A backend-served disk has no throttle group in QEMU to hold a share.
      for (const [devnum, spec] of o.disks) {
        if (spec.target !== '' && !servedByBackend(spec)) out.push({ d: o.d, devnum, spec });
      }
    }
    return out;
  }

  /** A disk with its checked chain where its domain's sponsor has one. */
  private pin(d: Domain, p: PlacedDisk): PlacedDisk {
    if (!this.chains || p.spec.target === '') return p;
    const chain = this.chains.diskChain(d.rec.sponsor, p.spec.target, p.spec.format);
    return chain ? { ...p, chain } : p;
  }

  async start(host: PluginHost): Promise<void> {
    this.log = host.log;
    this.hostLog = host.log;
    this.store = new DiskStore(host.store instanceof ControlStoreSink ? host.store.store : undefined, host.log);
    this.sponsors = host.sponsors;
    this.shares.start();
  }

  async stop(): Promise<void> {
    this.shares.stop();
    this.backends.close();
  }

  /** quota-set changed the sponsor's disk-bps / disk-iops: split them again now. */
  async onSponsorLimits(sponsor: string, limits: SponsorLimits): Promise<void> {
    if (limits.diskBps !== undefined || limits.diskIops !== undefined) {
      for (const o of this.open.values()) {
        if (o.d.rec.sponsor !== sponsor) continue;
        for (const spec of o.disks.values()) {
          if (servedByBackend(spec)) {
            this.log.warn(
              `${spec.vdev} (backendtype=xenode) is not limited by sponsor ${sponsor}'s aggregate`,
              o.d.domid,
            );
          }
        }
      }
    }
    await this.shares.apply(sponsor, limits);
  }

  routes(app: FastifyInstance, ctx: ApiContext): void {
    this.ts = ctx.toolstack;
    for (const d of this.dirty) this.ts.touch(d);
    this.dirty.clear();
    registerBlockRoutes(app, ctx, this);
  }

  // ---- lifecycle ------------------------------------------------------------

  async beforeLaunch(d: Domain): Promise<LaunchContribution | undefined> {
    const disks = d.rec.config.disk;
    for (const spec of disks) checkImage(spec);
    const pinned = placeDisks(disks).map((p) => this.pin(d, p));
    this.checkSharing(d, disks);
    this.open.set(d.domid, { d, disks: new Map(pinned.map((p) => [p.devnum, p.spec])) });
    this.detaching.delete(d.domid);
    // Every image gets its throttle filters, limited or not, so limits can be set later at runtime.
    const viaBackend = pinned.filter((p) => servedByBackend(p.spec));
    if (viaBackend.length > 0) {
      const agg = this.aggregateOf(d.rec.sponsor);
      if (agg.bps !== undefined || agg.iops !== undefined) {
        throw new XenodeError(
          'config',
          `${viaBackend[0]?.spec.vdev}: backendtype=xenode cannot be limited, and sponsor ${d.rec.sponsor}'s disks are (quota-set disk-bps/disk-iops)`,
          { hint: 'serve the disk with QEMU (drop backendtype=xenode)' },
        );
      }
    }
    const shares = await this.shares.reserve(
      d,
      pinned
        .filter((p) => p.spec.target !== '' && !servedByBackend(p.spec))
        .map((p) => ({ d, devnum: p.devnum, spec: p.spec })),
      false,
    );
    const placed = pinned.map((p) => ({
      ...p,
      throttle: { own: p.spec.throttle ?? {}, share: shares.get(p.devnum) ?? {} },
    }));
    // Backends first: QEMU waits for each vhost-user socket when it starts.
    const vhost: Array<{ placed: PlacedDisk; socketPath: string }> = [];
    try {
      for (const p of placed.filter((x) => servedByBackend(x.spec))) {
        await this.backends.ensure(this.backendSpec(d, p.devnum, p.spec));
        vhost.push({ placed: p, socketPath: backendPaths(d.rec.runDir, p.devnum).socket });
      }
    } catch (e) {
      this.backends.stop(d.domid);
      throw new XenodeError('engine', errorMessage(e));
    }
    return {
      qemuArgs: [
        ...diskArgs(
          placed.filter((p) => !servedByBackend(p.spec)),
          () => DEFAULT_DISK_IO,
        ),
        ...vhostBlkArgs(vhost),
      ],
      cmdline: dataDiskWords(d, placed),
    };
  }

  async afterLaunch(d: Domain, m: QemuMachine): Promise<void> {
    this.watch(d, m);
    for (const spec of d.rec.config.disk) this.store.write(d.domid, devnumOf(spec), spec, XENBUS.connected);
    this.writeBackendReports(d);
  }

  /** The store learns of each backend once the disk's nodes exist (afterwards the supervisor reports). */
  private writeBackendReports(d: Domain): void {
    for (const spec of d.rec.config.disk) {
      const r = servedByBackend(spec) ? this.backends.report(d.domid, devnumOf(spec)) : undefined;
      if (r) this.store.writeBackend(d.domid, devnumOf(spec), r);
    }
  }

  private backendSpec(d: Domain, devnum: number, spec: DiskSpec): BackendSpec {
    return {
      domid: d.domid,
      devnum,
      vdev: spec.vdev,
      image: spec.target,
      readOnly: spec.access === 'ro',
      runDir: d.rec.runDir,
    };
  }

  async afterReattach(d: Domain, m: QemuMachine): Promise<void> {
    this.watch(d, m);
    // Backends outlive a daemon: find each again, or start it if it died meanwhile (QEMU reconnects).
    for (const spec of d.rec.config.disk) {
      if (!servedByBackend(spec)) continue;
      await this.backends.ensure(this.backendSpec(d, devnumOf(spec), spec)).catch((e: unknown) => {
        this.log.warn(`disk backend of ${spec.vdev}: ${errorMessage(e)}`, d.domid);
      });
    }
    const open = new Map(d.rec.config.disk.map((s) => [devnumOf(s), s]));
    const ids = await peripheralIds(m);
    if (ids.has(DISK_BRIDGE_ID)) {
      const present = await presentDisks(m);
      // Guest released a disk while no daemon watched: finish the detach now.
      for (const [devnum] of open) {
        if (!present.has(devnum)) {
          await releaseDiskBackend(m, devnum);
          open.delete(devnum);
          this.dropFromConfig(d, devnum);
          this.store.remove(d.domid, devnum);
        }
      }
      // Force-detached disks the guest still holds: release them when it lets go.
      for (const devnum of present) {
        if (!open.has(devnum)) this.pending(d.domid).set(devnum, { forced: true, waiters: [] });
      }
    }
    this.open.set(d.domid, { d, disks: open });
    for (const [devnum, spec] of open) this.store.write(d.domid, devnum, spec, XENBUS.connected);
    this.writeBackendReports(d);
    // The config is the truth: a daemon killed between writing it and telling QEMU tells QEMU now.
    for (const [devnum, spec] of open) {
      if (spec.target === '' || servedByBackend(spec)) continue;
      await setOwnThrottle(m, devnum, spec.vdev, spec.throttle ?? {}).catch((e: unknown) => {
        if (!(e instanceof XenodeError && e.kind === 'state')) this.log.warn(errorMessage(e), d.domid);
      });
    }
    await this.shares.adopt(d, m, [...open.keys()]);
  }

  async onTeardown(d: Domain): Promise<void> {
    this.backends.stop(d.domid);
    this.shares.forget(d.domid);
    this.subs.get(d.domid)?.();
    this.subs.delete(d.domid);
    this.open.delete(d.domid);
    for (const p of this.detaching.get(d.domid)?.values() ?? []) for (const w of p.waiters) w();
    this.detaching.delete(d.domid);
    this.store.removeDomain(d.domid);
  }

  private watch(d: Domain, m: QemuMachine): void {
    this.subs.get(d.domid)?.();
    this.subs.set(
      d.domid,
      onDiskDeleted(m, (devnum) => {
        void this.released(d, m, devnum).catch((e: unknown) =>
          this.log.warn(`releasing disk ${devnum}: ${e instanceof Error ? e.message : String(e)}`, d.domid),
        );
      }),
    );
  }

  /** The guest gave a disk back (DEVICE_DELETED): close the image and forget the disk. */
  private async released(d: Domain, m: QemuMachine, devnum: number): Promise<void> {
    const known = this.open.get(d.domid)?.disks.get(devnum);
    if (known && servedByBackend(known)) {
      // Its chardev, then its backend process: nothing of QEMU uses them any more.
      await releaseVhostBlk(m, devnum);
      this.backends.stop(d.domid, devnum);
    } else await releaseDiskBackend(m, devnum);
    const vdev = known?.vdev ?? String(devnum);
    this.open.get(d.domid)?.disks.delete(devnum);
    this.shares.forget(d.domid, devnum);
    this.dropFromConfig(d, devnum);
    this.store.remove(d.domid, devnum);
    const p = this.detaching.get(d.domid)?.get(devnum);
    this.detaching.get(d.domid)?.delete(devnum);
    for (const w of p?.waiters ?? []) w();
    this.log.info(`disk ${vdev} detached`, d.domid);
  }

  private dropFromConfig(d: Domain, devnum: number): void {
    const cfg = d.rec.config;
    const disk = cfg.disk.filter((s) => devnumOf(s) !== devnum);
    if (disk.length === cfg.disk.length) return;
    d.rec.config = { ...cfg, disk };
    this.persist(d);
  }

  private persist(d: Domain): void {
    if (this.ts) this.ts.touch(d);
    else this.dirty.add(d);
  }

  private pending(domid: number): Map<number, Detaching> {
    let m = this.detaching.get(domid);
    if (!m) {
      m = new Map();
      this.detaching.set(domid, m);
    }
    return m;
  }

  /** An image may be open in several places only if every one of them is read-only (QEMU's locks agree). */
  private checkSharing(d: Domain, disks: readonly DiskSpec[]): void {
    const seen = new Map<string, { owner: string; spec: DiskSpec }>();
    for (const [domid, o] of this.open) {
      if (domid === d.domid) continue;
      for (const spec of o.disks.values()) {
        if (spec.target !== '') seen.set(realTarget(spec.target), { owner: `domain ${o.d.name}`, spec });
      }
    }
    for (const spec of disks) {
      if (spec.target === '') continue;
      const key = realTarget(spec.target);
      const other = seen.get(key);
      if (other && (other.spec.access === 'rw' || spec.access === 'rw')) {
        throw new XenodeError(
          'conflict',
          `disk image '${spec.target}' is already in use by ${other.owner} (${other.spec.vdev}, ${other.spec.access})`,
          { hint: 'an image can be shared only if every domain attaches it read-only (access=ro)' },
        );
      }
      if (!other || spec.access === 'rw') seen.set(key, { owner: `this domain`, spec });
    }
  }

  // ---- hotplug ----------------------------------------------------------------

  private liveMachine(d: Domain): QemuMachine {
    const m = d.machine;
    if (!m?.alive || (d.rec.state !== 'running' && d.rec.state !== 'paused')) {
      throw new XenodeError('state', `domain ${d.name} is not running`, { hint: 'disks hot-plug into a live domain' });
    }
    return m;
  }

  /** block-attach: plug the disk and keep it in the domain's config for later restarts. */
  attach(d: Domain, spec: DiskSpec): Promise<BlockEntry> {
    return d.serial(async () => {
      const m = this.liveMachine(d);
      const devnum = devnumOf(spec);
      const clash = d.rec.config.disk.find((s) => devnumOf(s) === devnum);
      if (clash) {
        throw new XenodeError('conflict', `device ${spec.vdev} is already connected to ${d.name}`, {
          hint:
            clash.vdev === spec.vdev
              ? 'detach it first or pick another vdev'
              : `it is the same device as ${clash.vdev}`,
        });
      }
      if (this.detaching.get(d.domid)?.has(devnum)) {
        throw new XenodeError('state', `device ${spec.vdev} is still being released by the guest`, {
          hint: 'wait for the guest to let go of it, or pick another vdev',
        });
      }
      checkImage(spec);
      this.checkSharing(d, [...(this.open.get(d.domid)?.disks.values() ?? []), spec]);
      const kind = spec.devtype === 'cdrom' ? 'scsi-cd' : 'virtio-blk';
      const slot = kind === 'scsi-cd' ? await freeScsiTarget(m) : await freeDiskSlot(m);
      if (servedByBackend(spec)) await this.plugViaBackend(d, m, { spec, devnum, kind, slot });
      else {
        const share =
          spec.target === '' ? undefined : (await this.shares.reserve(d, [{ d, devnum, spec }], true)).get(devnum);
        const throttle = share && { own: spec.throttle ?? {}, share };
        try {
          await plugDisk(
            m,
            this.pin(d, { spec, devnum, kind, slot, ...(throttle ? { throttle } : {}) }),
            DEFAULT_DISK_IO,
          );
        } catch (e) {
          this.shares.settle(d.domid, devnum, false);
          throw e;
        }
      }
      let o = this.open.get(d.domid);
      if (!o) {
        o = { d, disks: new Map() };
        this.open.set(d.domid, o);
      }
      o.disks.set(devnum, spec);
      this.shares.settle(d.domid, devnum, true);
      d.rec.config = { ...d.rec.config, disk: [...d.rec.config.disk, spec] };
      this.persist(d);
      this.store.write(d.domid, devnum, spec, XENBUS.connected);
      this.writeBackendReports(d);
      this.log.info(`disk ${spec.vdev} attached (${spec.target || 'empty'}, ${spec.format}, ${spec.access})`, d.domid);
      return this.entry(d, spec);
    });
  }

  /** block-attach of a backendtype=xenode disk: its backend first (QEMU connects while it adds the device). */
  private async plugViaBackend(d: Domain, m: QemuMachine, p: PlacedDisk): Promise<void> {
    const agg = this.aggregateOf(d.rec.sponsor);
    if (agg.bps !== undefined || agg.iops !== undefined) {
      throw new XenodeError(
        'config',
        `${p.spec.vdev}: backendtype=xenode cannot be limited, and sponsor ${d.rec.sponsor}'s disks are (quota-set disk-bps/disk-iops)`,
        { hint: 'serve the disk with QEMU (drop backendtype=xenode)' },
      );
    }
    // A stats file left by an earlier disk of this number would be counted on: this is a new disk.
    rmSync(backendPaths(d.rec.runDir, p.devnum).stats, { force: true });
    try {
      await this.backends.ensure(this.backendSpec(d, p.devnum, p.spec));
    } catch (e) {
      this.backends.stop(d.domid, p.devnum);
      throw new XenodeError('engine', errorMessage(e));
    }
    try {
      await plugVhostBlk(m, p, backendPaths(d.rec.runDir, p.devnum).socket);
    } catch (e) {
      this.backends.stop(d.domid, p.devnum);
      throw e;
    }
  }

  /**
   * block-detach: ask the guest to eject the disk and wait until it did. With
   * force the disk leaves the config at once; QEMU closes the image whenever the
   * guest lets go (a guest that never does keeps it until the domain ends).
   */
  async detach(d: Domain, ref: string, force: boolean, timeoutMs = DETACH_TIMEOUT_MS): Promise<void> {
    const devnum = vdevNumber(ref);
    const spec = devnum === undefined ? undefined : d.rec.config.disk.find((s) => devnumOf(s) === devnum);
    if (devnum === undefined || !spec) throw new XenodeError('not-found', `Error: Device ${ref} not connected.`);
    const done = await d.serial(async () => {
      const m = this.liveMachine(d);
      if (!force && d.rec.state === 'paused') {
        throw new XenodeError('state', `domain ${d.name} is paused: its guest cannot release ${spec.vdev}`, {
          hint: 'unpause it first, or use block-detach -f',
        });
      }
      const pend = this.pending(d.domid);
      const known = pend.get(devnum);
      const entry = known ?? { forced: force, waiters: [] };
      entry.forced ||= force;
      pend.set(devnum, entry);
      const released = new Promise<void>((r) => entry.waiters.push(r));
      this.store.setState(d.domid, devnum, XENBUS.closing);
      let present: boolean;
      try {
        present = await requestUnplug(m, devnum);
      } catch (e) {
        // QEMU refused: the disk stays as it was.
        if (!known) pend.delete(devnum);
        this.store.setState(d.domid, devnum, XENBUS.connected);
        throw e;
      }
      if (!present) {
        await this.released(d, m, devnum);
        return { released };
      }
      if (force) {
        this.dropFromConfig(d, devnum);
        this.store.remove(d.domid, devnum);
        this.log.info(`disk ${spec.vdev} detached by force`, d.domid);
      }
      // Wrapped: returning the promise itself would make serial() wait for the guest.
      return { released };
    });
    if (force) return;
    let timer: NodeJS.Timeout | undefined;
    const ok = await Promise.race([
      done.released.then(() => true),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (!ok) {
      throw new XenodeError('state', `the guest did not release ${spec.vdev} within ${timeoutMs / 1000} s`, {
        hint: 'it is detached as soon as the guest lets go; block-detach -f drops it from the domain now',
      });
    }
  }

  // ---- views ------------------------------------------------------------------

  private entry(d: Domain, spec: DiskSpec): BlockEntry {
    const devid = devnumOf(spec);
    const closing = this.detaching.get(d.domid)?.has(devid);
    const live = d.machine?.alive && d.rec.state !== 'creating';
    return {
      vdev: spec.vdev,
      devid,
      backendId: 0,
      handle: d.domid,
      state: closing ? XENBUS.closing : live ? XENBUS.connected : XENBUS.initialising,
      evtch: -1,
      ringRef: -1,
      backendPath: vbdBackendPath(d.domid, devid),
      target: spec.target,
      format: spec.format,
      access: spec.access,
      devtype: spec.devtype,
    };
  }

  list(d: Domain): BlockEntry[] {
    return d.rec.config.disk.map((s) => this.entry(d, s)).sort((a, b) => a.devid - b.devid);
  }

  async stats(d: Domain): Promise<DiskStatsView[]> {
    const m = d.machine;
    if (!m?.alive) return [];
    const all = await diskStats(m);
    const out: DiskStatsView[] = [];
    for (const spec of d.rec.config.disk) {
      const devid = devnumOf(spec);
      // QEMU does not see the I/O of a disk it hands to a backend: the backend counts it.
      const s = servedByBackend(spec) ? this.backendCounters(d, devid)?.stats : all.get(devid);
      if (s) out.push({ vdev: spec.vdev, devid, ...s });
    }
    return out.sort((a, b) => a.devid - b.devid);
  }

  // ---- limits -------------------------------------------------------------------

  private aggregateOf(sponsor: string): ShareLimits {
    const l = sponsor === 'admin' ? {} : (this.sponsors?.limits(sponsor) ?? {});
    const out: ShareLimits = {};
    if (l.diskBps !== undefined) out.bps = l.diskBps;
    if (l.diskIops !== undefined) out.iops = l.diskIops;
    return out;
  }

  private async throttleEntry(d: Domain, spec: DiskSpec): Promise<ThrottleView> {
    const devid = devnumOf(spec);
    const m = d.machine?.alive && spec.target !== '' ? d.machine : undefined;
    const q = m ? await readThrottle(m, devid) : undefined;
    return { vdev: spec.vdev, devid, config: spec.throttle ?? {}, inForce: q?.own ?? null, share: q?.share ?? null };
  }

  async throttleList(d: Domain): Promise<DomainThrottleView> {
    const disks: ThrottleView[] = [];
    for (const spec of d.rec.config.disk) disks.push(await this.throttleEntry(d, spec));
    disks.sort((a, b) => a.devid - b.devid);
    return { domid: d.domid, name: d.name, aggregate: this.aggregateOf(d.rec.sponsor), disks };
  }

  /**
   * block-set-throttle: the disk's own limits, all of them, now and for every
   * later QEMU of the domain (restart, restore, migration). The config is
   * written first: a daemon killed before QEMU heard applies it at reattach.
   */
  setThrottle(d: Domain, ref: string, t: DiskThrottle): Promise<ThrottleView> {
    return d.serial(async () => {
      const devnum = vdevNumber(ref);
      const spec = devnum === undefined ? undefined : d.rec.config.disk.find((s) => devnumOf(s) === devnum);
      if (devnum === undefined || !spec) throw new XenodeError('not-found', `Error: Device ${ref} not connected.`);
      if (spec.target === '') {
        throw new XenodeError('state', `${spec.vdev} is an empty CD-ROM: there is no image to limit`);
      }
      if (servedByBackend(spec)) {
        throw new XenodeError(
          'state',
          `${spec.vdev} is served by Xenode's backend (backendtype=xenode), which has no limits`,
          {
            hint: 'serve the disk with QEMU (drop backendtype=) to limit it',
          },
        );
      }
      const m = this.liveMachine(d);
      const { throttle: _old, ...rest } = spec;
      const next: DiskSpec = Object.keys(t).length ? { ...rest, throttle: t } : rest;
      const put = (s: DiskSpec) => {
        d.rec.config = { ...d.rec.config, disk: d.rec.config.disk.map((x) => (devnumOf(x) === devnum ? s : x)) };
        this.open.get(d.domid)?.disks.set(devnum, s);
        this.persist(d);
      };
      put(next);
      try {
        await setOwnThrottle(m, devnum, spec.vdev, t);
      } catch (e) {
        put(spec);
        throw e;
      }
      this.log.info(`disk ${spec.vdev} limits set: ${JSON.stringify(t)}`, d.domid);
      return this.throttleEntry(d, next);
    });
  }

  /** I/O counters for the metrics sampler and accounting (found by duck typing). */
  async ioCounters(d: Domain): Promise<IoCounters | undefined> {
    const m = d.machine;
    if (!m?.alive || d.rec.config.disk.length === 0) return undefined;
    const sum = { diskReadBytes: 0, diskWriteBytes: 0, diskReadOps: 0, diskWriteOps: 0 };
    const devices: Record<string, IoCounters> = {};
    const add = (name: string, s: DiskStats) => {
      const c = { diskReadBytes: s.rdBytes, diskWriteBytes: s.wrBytes, diskReadOps: s.rdOps, diskWriteOps: s.wrOps };
      devices[name] = c;
      for (const k of Object.keys(sum) as Array<keyof typeof sum>) sum[k] += c[k];
    };
    // QEMU's counters start at zero with each QEMU (and each re-plug: accounting sees those go back).
    for (const [devnum, s] of await diskStats(m)) add(`vbd-${devnum}@${m.pid}`, s);
    // A backend's go on across its restarts, and start again with a new stats file (a new epoch).
    for (const spec of d.rec.config.disk) {
      if (!servedByBackend(spec)) continue;
      const c = this.backendCounters(d, devnumOf(spec));
      if (c) add(`vbd-${devnumOf(spec)}@blk-${c.epoch}`, c.stats);
    }
    return { ...sum, devices };
  }

  private backendCounters(d: Domain, devnum: number): BackendCounters | undefined {
    return readBackendCounters(backendPaths(d.rec.runDir, devnum).stats);
  }
}

export function diskPlugin(chains?: DiskChainSource): DiskPlugin {
  return new DiskPlugin(chains);
}
