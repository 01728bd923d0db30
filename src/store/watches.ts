// Watch registration, matching and delivery. Matching happens synchronously
// at commit (so permission checks see the perms the change was made under);
// delivery is asynchronous, in order, from one queue, so a callback never runs
// inside the write that caused it and may itself write to the store.

import { StoreError } from './errors.ts';
import type { PendingEvent } from './ops.ts';
import { isAncestorOrSelf, parentOf } from './path.ts';
import { canRead } from './perms.ts';
import { type Caller, type PermList, principalOf, type WatchCallback, type WatchEvent } from './types.ts';

export type WatchErrorHandler = (error: unknown, event: WatchEvent) => void;

interface Watch {
  readonly caller: Caller;
  readonly path: string;
  readonly token: string;
  readonly callback: WatchCallback;
  active: boolean;
}

interface Delivery {
  readonly watch: Watch;
  readonly path: string;
}

function keyOf(caller: Caller, path: string, token: string): string {
  return JSON.stringify([principalOf(caller), path, token]);
}

/** The path a watch on `watchPath` is told about for `ev`, if any. */
function matchPath(watchPath: string, ev: PendingEvent): string | undefined {
  if (ev.exact) return watchPath === ev.path ? ev.path : undefined;
  if (isAncestorOrSelf(watchPath, ev.path)) return ev.path;
  // Below a removed node: the watched path itself went away (or never existed).
  if (ev.removed && isAncestorOrSelf(ev.path, watchPath)) return watchPath;
  return undefined;
}

function permitted(caller: Caller, ev: PendingEvent, path: string): boolean {
  let sets: readonly PermList[] = ev.permSets;
  if (path !== ev.path && ev.removed) {
    // Judge by the nearest removed node at or above the watched path, and its parent.
    let at: string | undefined = path;
    while (at !== undefined && !ev.removed.has(at)) at = parentOf(at);
    const own = at === undefined ? undefined : ev.removed.get(at);
    const up = at === undefined ? undefined : parentOf(at);
    const parent = up === undefined ? undefined : ev.removed.get(up);
    const found: PermList[] = [];
    if (own) found.push(own);
    if (parent) found.push(parent);
    sets = found.length > 0 ? found : ev.permSets;
  }
  return sets.some((perms) => canRead(caller, perms));
}

export class WatchRegistry {
  private readonly watches = new Map<string, Watch>();
  /** Watches per principal (a domain's connection, or a sponsor), for the quota. */
  private readonly perPrincipal = new Map<string, number>();
  private queue: Delivery[] = [];
  private scheduled = false;
  private idle: Array<() => void> = [];

  constructor(private readonly onError: WatchErrorHandler) {}

  count(principal: string): number {
    return this.perPrincipal.get(principal) ?? 0;
  }

  add(caller: Caller, path: string, token: string, callback: WatchCallback, quota: number): void {
    if (typeof token !== 'string' || token.includes('\0'))
      throw new StoreError('EINVAL', 'watch token must be a string');
    if (typeof callback !== 'function') throw new StoreError('EINVAL', 'watch callback must be a function');
    const key = keyOf(caller, path, token);
    const principal = principalOf(caller);
    if (this.watches.has(key)) {
      throw new StoreError('EEXIST', `watch ${path} with token ${JSON.stringify(token)} already set`);
    }
    if (!caller.privileged && quota > 0 && this.count(principal) >= quota) {
      throw new StoreError('ENOSPC', `${principal} already has ${quota} watches`, {
        hint: 'close watches it no longer needs',
      });
    }
    const watch: Watch = { caller, path, token, callback, active: true };
    this.watches.set(key, watch);
    this.perPrincipal.set(principal, this.count(principal) + 1);
    // Fires once up front, as xenstored does, so a client needs no separate initial read.
    this.enqueue({ watch, path });
  }

  remove(caller: Caller, path: string, token: string): void {
    const key = keyOf(caller, path, token);
    const watch = this.watches.get(key);
    if (!watch) throw new StoreError('ENOENT', `no watch on ${path} with token ${JSON.stringify(token)}`);
    this.drop(key, watch);
  }

  /**
   * Forgets every watch of a domain (release, reset), including a sponsor's that
   * act as it, so a later domain reusing the domid is not watched through them.
   */
  removeDomain(domid: number): void {
    for (const [key, watch] of this.watches) if (watch.caller.domid === domid) this.drop(key, watch);
  }

  private drop(key: string, watch: Watch): void {
    watch.active = false; // events already queued for it are discarded
    this.watches.delete(key);
    const principal = principalOf(watch.caller);
    const left = this.count(principal) - 1;
    if (left > 0) this.perPrincipal.set(principal, left);
    else this.perPrincipal.delete(principal);
  }

  /** Queues deliveries for committed changes, in change order then registration order. */
  fire(events: readonly PendingEvent[]): void {
    for (const ev of events) {
      for (const watch of this.watches.values()) {
        const path = matchPath(watch.path, ev);
        if (path !== undefined && permitted(watch.caller, ev, path)) this.enqueue({ watch, path });
      }
    }
  }

  /** Resolves once every queued event has been delivered. */
  settled(): Promise<void> {
    if (!this.scheduled) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private enqueue(delivery: Delivery): void {
    this.queue.push(delivery);
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => this.flush());
  }

  private flush(): void {
    // Callbacks may write and so append to the queue; the loop picks those up in order.
    for (let i = 0; i < this.queue.length; i++) {
      const { watch, path } = this.queue[i] as Delivery;
      if (!watch.active) continue;
      const event: WatchEvent = { path, token: watch.token };
      try {
        watch.callback(event);
      } catch (error) {
        try {
          this.onError(error, event);
        } catch {
          // An error handler that throws must not stop delivery to everyone else.
        }
      }
    }
    this.queue = [];
    this.scheduled = false;
    const idle = this.idle;
    this.idle = [];
    for (const resolve of idle) resolve();
  }
}
