// The memory controller: every domain gets a balloon, domains with maxmem >
// memory also a virtio-mem region; one target drives both. Targets may carry a
// deadline; a domain that misses it gets its on_memory_noncompliance action.
// The target and what the domain really has are kept in the store
// (~/memory/target, ~/memory/actual, KiB) so anything can watch them.

import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../api/context.ts';
import { balloonArgs, hotplugArgs, hotplugRegionMiB } from '../../engine/memory-args.ts';
import { type GuestMemoryStats, MemoryDevicesQmp } from '../../engine/memory-qmp.ts';
import type { QemuMachine } from '../../engine/qemu-machine.ts';
import { XenodeError } from '../../errors.ts';
import type { Domain } from '../../toolstack/domain.ts';
import {
  clearIntent,
  type Intent,
  type IntentHost,
  type IntentOp,
  type MemSetIntent,
  recordStep,
} from '../../toolstack/intents.ts';
import type { DaemonLog } from '../../toolstack/log.ts';
import type { MemoryActions, MemoryController, MemSetOptions, MemSetResult } from '../../toolstack/memory-types.ts';
import type { LaunchContribution, PluginHost, ToolstackPlugin } from '../../toolstack/plugin.ts';
import type { DomainStoreSink } from '../../toolstack/store-sink.ts';
import { type ProcessMemory, processMemory } from './host-memory.ts';
import {
  complies,
  type Direction,
  directionOf,
  type MemoryLayout,
  type MemoryVerdict,
  planTarget,
  toleranceKiB,
} from './policy.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
/** How often sizes are read while a change is under way (events are rate-limited to 1/s). */
const POLL_MS = 100;
/** A change with no progress for this long stops being polled (events still update it). */
const STALL_MS = 10_000;
/** virtio-mem unplug first, then the balloon; give the unplug this long without progress. */
const UNPLUG_GRACE_MS = 1000;
/** Guest statistics interval, s (the guest wakes up this often to report). */
const STATS_INTERVAL_S = 2;

/** What the controller needs from the toolstack: consequences, and publishing a changed record. */
export type { MemoryActions, MemSetOptions, MemSetResult } from '../../toolstack/memory-types.ts';

export interface MemoryStatus {
  domid: number;
  name: string;
  bootMiB: number;
  maxMiB: number;
  hotplugRegionMiB: number;
  targetKiB: number;
  actualKiB: number;
  balloonKiB: number;
  hotplugKiB: number;
  guest?: GuestMemoryStats;
  qemu?: ProcessMemory;
  pending?: { targetKiB: number; deadlineMs: number; remainingMs: number };
  lastVerdict?: MemoryVerdict;
}

interface Pending {
  targetKiB: number;
  direction: Direction;
  deadlineMs: number;
  started: number;
  timer: NodeJS.Timeout;
  actions: MemoryActions;
  resolve: (v: MemoryVerdict) => void;
}

/** Runtime state of one domain's memory devices. */
interface DomainMemory {
  d: Domain;
  dev: MemoryDevicesQmp;
  layout: MemoryLayout;
  balloon: number;
  hotplug: number;
  /** Last virtio-mem size and balloon target sent (undefined: unknown, e.g. after a daemon restart). */
  requestedHotplug?: number;
  requestedBalloon?: number;
  /** Balloon target held back until virtio-mem has unplugged what it can. */
  stagedBalloon?: number;
  lastProgress: number;
  poll?: NodeJS.Timeout;
  polling: boolean;
  pending?: Pending;
  lastVerdict?: MemoryVerdict;
  unsubscribe: () => void;
}

export function layoutOf(d: Domain): MemoryLayout {
  const c = d.rec.config;
  return { bootMiB: c.memory, hotplugMiB: hotplugRegionMiB(c.memory, c.maxmem) };
}

export class MemoryControl implements ToolstackPlugin, MemoryController {
  /** The core finds the controller here (see LifecycleHooks.memoryController). */
  readonly memoryController: MemoryController = this;
  readonly name = 'memory';
  readonly intentOps: readonly IntentOp[] = ['mem-set'];
  private log?: DaemonLog;
  private store?: DomainStoreSink;
  private doms = new Map<number, DomainMemory>();
  /** Known from the first route registration or mem-set (not yet while reattaching). */
  private toolstack?: MemoryActions;

  async start(host: PluginHost): Promise<void> {
    this.log = host.log;
    this.store = host.store;
  }

  async beforeLaunch(d: Domain): Promise<LaunchContribution> {
    const { hotplugMiB } = layoutOf(d);
    if (hotplugMiB === 0) return { qemuArgs: balloonArgs() };
    return {
      qemuArgs: [...balloonArgs(), ...hotplugArgs(hotplugMiB)],
      // Plugged blocks come online by themselves, and movable where the ratio allows,
      // so they can be unplugged again. With a hot-plug region above 4 GiB the kernel
      // would also reserve 64 MiB of bounce buffers no virtio device uses: keep 4 MiB.
      cmdline: ['memhp_default_state=online', 'memory_hotplug.online_policy=auto-movable', 'swiotlb=2048'],
    };
  }

  async afterLaunch(d: Domain, m: QemuMachine): Promise<void> {
    const st = this.attach(d, m);
    // As started by memory-args: nothing plugged, balloon empty.
    st.requestedHotplug = 0;
    st.requestedBalloon = st.layout.bootMiB * MiB;
    await st.dev.pollGuestStats(STATS_INTERVAL_S);
    await this.refresh(st);
    // A domain relaunched with a new QEMU keeps the target it had.
    if (d.rec.targetMiB !== d.rec.config.memory) await this.drive(st, d.rec.targetMiB);
  }

  async afterReattach(d: Domain, m: QemuMachine): Promise<void> {
    const st = this.attach(d, m);
    await this.refresh(st);
    // A daemon killed between recording a target and driving the devices there (or
    // while a shrink waited for virtio-mem to unplug before the balloon) left the
    // domain short of its target: drive it there again. What was last sent is
    // unknown after a restart, so both devices are told.
    if (!this.settled(st)) await this.drive(st, d.rec.targetMiB);
  }

  async onTeardown(d: Domain): Promise<void> {
    const st = this.doms.get(d.domid);
    if (!st) return;
    this.doms.delete(d.domid);
    st.unsubscribe();
    this.stopPolling(st);
    if (st.pending) this.finish(st, { complied: false, action: 'none', note: 'the domain went away' });
  }

  routes(app: FastifyInstance, ctx: ApiContext): void {
    this.toolstack ??= ctx.toolstack;
    app.get<{ Params: { dom: string } }>('/v1/domains/:dom/memory', async (req) =>
      this.status(ctx.toolstack.find(req.params.dom, req.principal)),
    );
  }

  // ---- targets ---------------------------------------------------------------

  /**
   * Drive the devices towards the domain's (already recorded) target. Without a
   * deadline this returns at once; with one it resolves with the verdict.
   */
  async apply(d: Domain, actions: MemoryActions, o: MemSetOptions = {}): Promise<MemSetResult> {
    const st = this.doms.get(d.domid);
    if (!st || d.machine === undefined) {
      throw new XenodeError('state', `domain ${d.name} has no running machine`, { hint: 'start it first' });
    }
    this.toolstack ??= actions;
    const started = Date.now();
    const targetKiB = d.rec.targetMiB * KiB;
    if (st.pending) this.finish(st, { complied: false, action: 'none', note: 'superseded by a later mem-set' });
    this.store?.writeDomainKey(d.domid, 'memory/noncompliance', undefined);
    // Only a deadline needs a journal entry: the target itself is in the domain's record.
    const actualAtStart = this.actualKiB(st);
    let intent: MemSetIntent | undefined;
    if (o.deadlineMs !== undefined) {
      intent = recordStep<MemSetIntent>(
        d.rec.runDir,
        {
          op: 'mem-set',
          targetKiB,
          direction: directionOf(targetKiB, actualAtStart),
          deadlineMs: o.deadlineMs,
          started,
        },
        'recorded',
      );
    } else clearIntent(d.rec.runDir, 'mem-set');
    // Sizes are kept current by QEMU's events and polling: command the devices
    // first, so the guest starts at once.
    await this.drive(st, d.rec.targetMiB);
    const result: MemSetResult = { domid: d.domid, targetKiB, actualKiB: this.actualKiB(st) };
    if (!intent) return result;
    intent = recordStep(d.rec.runDir, intent, 'driven');
    const verdict = await this.awaitDeadline(st, intent, actions);
    return { ...result, actualKiB: verdict.actualKiB, verdict };
  }

  /** Wait for the deadline of a recorded mem-set (early compliance ends it at once). */
  private awaitDeadline(st: DomainMemory, it: MemSetIntent, actions: MemoryActions): Promise<MemoryVerdict> {
    return new Promise<MemoryVerdict>((resolve) => {
      const pending: Pending = {
        targetKiB: it.targetKiB,
        direction: it.direction,
        deadlineMs: it.deadlineMs,
        started: it.started,
        actions,
        resolve,
        // The deadline counts from the mem-set, not from when the devices were told.
        timer: setTimeout(
          () => void this.atDeadline(st, pending),
          Math.max(0, it.started + it.deadlineMs - Date.now()),
        ),
      };
      st.pending = pending;
      this.checkEarly(st);
    });
  }

  /**
   * A mem-set with a deadline the daemon was killed in: the devices were driven
   * to the target again at reattach, and the deadline counts on from the
   * original mem-set; a deadline that passed meanwhile is judged at once.
   */
  async resumeDeadline(d: Domain, actions: MemoryActions, it: MemSetIntent): Promise<string | undefined> {
    const st = this.doms.get(d.domid);
    this.toolstack ??= actions;
    // A later mem-set replaced the target: this deadline is moot.
    if (!st || d.rec.targetMiB * KiB !== it.targetKiB) {
      clearIntent(d.rec.runDir, 'mem-set');
      return undefined;
    }
    const left = it.started + it.deadlineMs - Date.now();
    // Not awaited: the verdict has no caller any more; it is logged and recorded as any other.
    void this.awaitDeadline(st, it, actions);
    return `mem-set to ${mib(it.targetKiB)} MiB was cut short; its deadline ${left > 0 ? `runs on (${(left / 1000).toFixed(1)} s left)` : 'has passed: judged now'}`;
  }

  /** A mem-set with a deadline an earlier daemon was killed in (intents.ts). */
  async settleIntent(host: IntentHost, d: Domain | undefined, it: Intent): Promise<string | undefined> {
    if (!d || it.op !== 'mem-set') return undefined;
    return this.resumeDeadline(d, host, it);
  }

  /** Check a new maximum against what the domain's devices can hold. */
  checkMax(d: Domain, mib: number): void {
    const { bootMiB, hotplugMiB } = layoutOf(d);
    if (mib > bootMiB + hotplugMiB) {
      throw new XenodeError('usage', `cannot set domid ${d.domid} static max memory to : ${mib}M`, {
        hint: `the domain was started with room for ${bootMiB + hotplugMiB} MiB (maxmem=); a larger maximum needs a restart with a larger maxmem`,
        exitCode: 1,
      });
    }
  }

  async status(d: Domain): Promise<MemoryStatus> {
    const st = this.doms.get(d.domid);
    const { bootMiB, hotplugMiB } = layoutOf(d);
    const base: MemoryStatus = {
      domid: d.domid,
      name: d.name,
      bootMiB,
      maxMiB: d.rec.maxMiB,
      hotplugRegionMiB: hotplugMiB,
      targetKiB: d.rec.targetMiB * KiB,
      actualKiB: d.rec.actualKiB ?? d.rec.targetMiB * KiB,
      balloonKiB: 0,
      hotplugKiB: 0,
      qemu: d.rec.pid ? processMemory(d.rec.pid) : undefined,
    };
    if (!st) return base;
    try {
      await this.refresh(st);
      base.guest = await st.dev.guestStats();
    } catch {
      /* QMP busy or gone: report what we last saw */
    }
    const p = st.pending;
    return {
      ...base,
      actualKiB: this.actualKiB(st),
      balloonKiB: Math.floor(st.balloon / KiB),
      hotplugKiB: Math.floor(st.hotplug / KiB),
      pending: p && {
        targetKiB: p.targetKiB,
        deadlineMs: p.deadlineMs,
        remainingMs: Math.max(0, p.started + p.deadlineMs - Date.now()),
      },
      lastVerdict: st.lastVerdict,
    };
  }

  // ---- devices ---------------------------------------------------------------

  private attach(d: Domain, m: QemuMachine): DomainMemory {
    const old = this.doms.get(d.domid);
    if (old) {
      old.unsubscribe();
      this.stopPolling(old);
      if (old.pending) this.finish(old, { complied: false, action: 'none', note: 'the domain was restarted' });
    }
    const layout = layoutOf(d);
    const dev = new MemoryDevicesQmp(m);
    const st: DomainMemory = {
      d,
      dev,
      layout,
      balloon: layout.bootMiB * MiB,
      hotplug: 0,
      lastProgress: Date.now(),
      polling: false,
      unsubscribe: () => {},
    };
    st.unsubscribe = dev.onChange((what, bytes) => {
      if (what === 'balloon') st.balloon = bytes;
      else st.hotplug = bytes;
      st.lastProgress = Date.now();
      this.publish(st);
      this.checkEarly(st);
    });
    this.doms.set(d.domid, st);
    return st;
  }

  private actualKiB(st: DomainMemory): number {
    return Math.floor((st.balloon + st.hotplug) / KiB);
  }

  private async refresh(st: DomainMemory): Promise<void> {
    const s = await st.dev.sizes();
    if (s.balloonActual !== st.balloon || s.hotplugSize !== st.hotplug) st.lastProgress = Date.now();
    st.balloon = s.balloonActual;
    st.hotplug = s.hotplugSize;
    this.publish(st);
  }

  /** Record the actual size where `list` and store watchers see it. */
  private publish(st: DomainMemory): void {
    const kib = this.actualKiB(st);
    if (st.d.rec.actualKiB === kib || this.doms.get(st.d.domid) !== st || st.d.rec.state === 'dying') return;
    st.d.rec.actualKiB = kib;
    this.store?.writeDomainKey(st.d.domid, 'memory/actual', String(kib));
    if (this.toolstack) this.toolstack.touch(st.d);
    else st.d.emit('change', st.d.rec);
  }

  private async drive(st: DomainMemory, targetMiB: number): Promise<void> {
    const plan = planTarget(st.layout, targetMiB);
    st.stagedBalloon = undefined;
    if (st.layout.hotplugMiB > 0 && plan.hotplugBytes !== st.requestedHotplug) {
      await st.dev.setHotplugRequested(plan.hotplugBytes);
      st.requestedHotplug = plan.hotplugBytes;
    }
    // Unplugged blocks must be emptied into boot RAM first; a balloon inflating at
    // the same time would take that room, so it waits until virtio-mem is done.
    if (st.hotplug > plan.hotplugBytes && plan.balloonBytes < st.balloon) st.stagedBalloon = plan.balloonBytes;
    else await this.setBalloon(st, plan.balloonBytes);
    st.lastProgress = Date.now();
    this.startPolling(st);
  }

  private async setBalloon(st: DomainMemory, bytes: number): Promise<void> {
    if (bytes === st.requestedBalloon) return;
    await st.dev.setBalloonTarget(bytes);
    st.requestedBalloon = bytes;
  }

  private startPolling(st: DomainMemory): void {
    if (st.polling) return;
    st.polling = true;
    const tick = async () => {
      st.poll = undefined;
      if (!st.polling) return;
      try {
        await this.refresh(st);
        if (st.stagedBalloon !== undefined) {
          const unplugged = st.hotplug <= (st.requestedHotplug ?? 0);
          if (unplugged || Date.now() - st.lastProgress > UNPLUG_GRACE_MS) {
            const bytes = st.stagedBalloon;
            st.stagedBalloon = undefined;
            await this.setBalloon(st, bytes);
            st.lastProgress = Date.now();
          }
        }
        this.checkEarly(st);
      } catch {
        // QMP gone: the domain is going away and teardown cleans up.
        st.polling = false;
        return;
      }
      const settled = st.stagedBalloon === undefined && this.settled(st);
      const stalled = Date.now() - st.lastProgress > STALL_MS;
      if ((settled || stalled) && !st.pending) {
        st.polling = false;
        return;
      }
      if (st.polling) st.poll = setTimeout(() => void tick(), POLL_MS);
    };
    st.poll = setTimeout(() => void tick(), POLL_MS);
  }

  private settled(st: DomainMemory): boolean {
    const plan = planTarget(st.layout, st.d.rec.targetMiB);
    return st.balloon === plan.balloonBytes && st.hotplug === plan.hotplugBytes;
  }

  private stopPolling(st: DomainMemory): void {
    st.polling = false;
    if (st.poll) clearTimeout(st.poll);
    st.poll = undefined;
  }

  // ---- deadlines -------------------------------------------------------------

  /** A guest cannot undo a balloon or virtio-mem change by itself, so meeting the target early is final. */
  private checkEarly(st: DomainMemory): void {
    const p = st.pending;
    if (p && complies(p.direction, p.targetKiB, this.actualKiB(st)))
      this.finish(st, { complied: true, action: 'none' });
  }

  private async atDeadline(st: DomainMemory, p: Pending): Promise<void> {
    if (st.pending !== p) return;
    try {
      await this.refresh(st);
    } catch {
      /* judge by the last sizes seen */
    }
    if (st.pending !== p) return;
    if (complies(p.direction, p.targetKiB, this.actualKiB(st))) {
      this.finish(st, { complied: true, action: 'none' });
      return;
    }
    const d = st.d;
    const action = d.rec.config.on_memory_noncompliance;
    const verdict = this.settle(st, { complied: false, action });
    const record = {
      target: verdict.targetKiB,
      actual: verdict.actualKiB,
      tolerance: verdict.toleranceKiB,
      deadline: verdict.deadlineMs,
      action,
      time: new Date().toISOString(),
    };
    this.store?.writeDomainKey(d.domid, 'memory/noncompliance', JSON.stringify(record));
    this.log?.warn(
      `memory target ${mib(verdict.targetKiB)} MiB not met within ${verdict.deadlineMs / 1000} s: actual ${mib(verdict.actualKiB)} MiB; on_memory_noncompliance=${action}`,
      d.domid,
    );
    // The consequence is in place before the caller hears the verdict.
    try {
      if (action === 'pause' && d.rec.state === 'running') await p.actions.pause(d);
      else if (action === 'destroy') await p.actions.destroy(d);
    } catch (e) {
      this.log?.error(
        `on_memory_noncompliance=${action} failed: ${e instanceof Error ? e.message : String(e)}`,
        d.domid,
      );
    }
    // Only now: a daemon killed before the consequence is in place judges the deadline again.
    clearIntent(d.rec.runDir, 'mem-set');
    p.resolve(verdict);
  }

  /** End the pending deadline and tell the caller at once. */
  private finish(st: DomainMemory, v: Pick<MemoryVerdict, 'complied' | 'action' | 'note'>): void {
    const p = st.pending;
    if (!p) return;
    const verdict = this.settle(st, v);
    clearIntent(st.d.rec.runDir, 'mem-set');
    if (v.complied)
      this.log?.info(
        `memory target ${mib(p.targetKiB)} MiB met after ${(verdict.elapsedMs / 1000).toFixed(2)} s (deadline ${p.deadlineMs / 1000} s)`,
        st.d.domid,
      );
    p.resolve(verdict);
  }

  /** End the pending deadline and build its verdict (the caller delivers it). */
  private settle(st: DomainMemory, v: Pick<MemoryVerdict, 'complied' | 'action' | 'note'>): MemoryVerdict {
    const p = st.pending as Pending;
    st.pending = undefined;
    clearTimeout(p.timer);
    const verdict: MemoryVerdict = {
      ...v,
      targetKiB: p.targetKiB,
      actualKiB: this.actualKiB(st),
      toleranceKiB: toleranceKiB(p.targetKiB),
      deadlineMs: p.deadlineMs,
      elapsedMs: Date.now() - p.started,
    };
    if (!v.note) st.lastVerdict = verdict;
    return verdict;
  }
}

function mib(kib: number): number {
  return Math.round(kib / KiB);
}
