// The control store: a xenstore-style tree with permissions, watches,
// transactions and quotas, persisted to SQLite. Everything runs synchronously
// on the caller's turn of the event loop, so a direct operation is atomic; only
// watch delivery is deferred. Changes are written through to SQLite before the
// call returns, except inside deferCommits() (the xenstored wire protocol):
// those are group-committed, many per SQLite transaction, within
// groupCommitMs, so a daemon crash loses at most that window of them.

import {
  DOMID_GUEST_MAX,
  domainPath,
  GUEST_WRITABLE,
  guestOwnedPerms,
  READ_ONLY_DIRS,
  readOnlyPerms,
} from './domain-layout.ts';
import { isStoreError, StoreError } from './errors.ts';
import { makeNode, type StoredNode, withPerms } from './node.ts';
import {
  directoryOp,
  getPermsOp,
  mkdirOp,
  nodeQuotaError,
  type OpContext,
  type PendingEvent,
  readOp,
  rmOp,
  setPermsOp,
  settleQuotas,
  writeOp,
} from './ops.ts';
import { type NodeReader, Overlay } from './overlay.ts';
import { checkPath, checkPathQuota, checkWatchPath, childPath, isSpecial, parentOf } from './path.ts';
import { accessFor, DOMID_MAX, ownerOf, READ, validatePerms, withOwner } from './perms.ts';
import { parseSnapshot, SNAPSHOT_FORMAT, type SnapshotNode, type StoreSnapshot } from './snapshot.ts';
import { SqliteBackend } from './sqlite-backend.ts';
import { Transaction } from './transaction.ts';
import {
  type Caller,
  DEFAULT_QUOTAS,
  type Perm,
  type PermList,
  principalOf,
  type Quotas,
  TOOLSTACK,
  type WatchCallback,
  type WatchEvent,
} from './types.ts';
import { WatchRegistry } from './watches.ts';

export interface ControlStoreOptions {
  /** SQLite file; `:memory:` (the default) keeps nothing across restarts. */
  dbPath?: string;
  /** Overrides of xenstored's default quotas for unprivileged domains; 0 = unlimited. */
  quotas?: Partial<Quotas>;
  /** Called when a watch callback throws; the default logs to stderr. */
  onWatchError?: (error: unknown, event: WatchEvent) => void;
  /**
   * How long a change made inside deferCommits() may wait before it is in
   * SQLite (ms; default 2). 0 makes those changes write-through like the rest.
   */
  groupCommitMs?: number;
  /** Called when a group commit fails (it is retried); the default logs to stderr. */
  onCommitError?: (error: unknown) => void;
}

/** One caller's view of the store, optionally inside a transaction. */
export interface StoreView {
  readonly caller: Caller;
  /** 0 = not in a transaction. */
  readonly txid: number;
  read(path: string): string;
  tryRead(path: string): string | undefined;
  write(path: string, value: string): void;
  mkdir(path: string): void;
  directory(path: string): string[];
  rm(path: string): void;
  getPerms(path: string): Perm[];
  setPerms(path: string, perms: readonly (Perm | string)[]): void;
}

export interface TransactionOptions {
  /** How many times to retry after EAGAIN before giving up (default 10). */
  retries?: number;
}

export interface DomainUsage {
  nodes: number;
  /** Watches and open transactions of the principal (a domain's own connection, or a sponsor). */
  watches: number;
  transactions: number;
}

/** Special nodes that exist from the start; only privileged callers may read (hence watch) them by default. */
const SPECIAL_NODES = ['@introduceDomain', '@releaseDomain'];
const LONE_SURROGATE = /\p{Cs}/u;
const TOOLSTACK_ONLY: PermList = Object.freeze([Object.freeze({ id: 0, perm: 'n' })]);

/** Deferred changes beyond which a group commit is written at once rather than at the end of its window. */
const GROUP_COMMIT_MAX = 4096;
/** Longest wait between retries of a failing group commit. */
const GROUP_COMMIT_RETRY_MAX_MS = 1000;

function defaultCommitError(error: unknown): void {
  console.error('control store: group commit to SQLite failed (will retry):', error);
}

function defaultWatchError(error: unknown, event: WatchEvent): void {
  console.error(`control store: watch callback for ${event.path} (${event.token}) threw:`, error);
}

function checkCaller(caller: Caller): void {
  const ok =
    typeof caller === 'object' &&
    caller !== null &&
    Number.isInteger(caller.domid) &&
    caller.domid >= 0 &&
    caller.domid <= DOMID_MAX &&
    typeof caller.privileged === 'boolean' &&
    (caller.principal === undefined || (typeof caller.principal === 'string' && caller.principal !== '')) &&
    (caller.grantable === undefined || Array.isArray(caller.grantable));
  if (!ok) {
    throw new StoreError('EINVAL', 'caller must be { domid: 0..65535, privileged: boolean, principal?, grantable? }');
  }
}

function checkGuestDomid(domid: number): void {
  if (!Number.isInteger(domid) || domid < 1 || domid > DOMID_GUEST_MAX) {
    throw new StoreError('EINVAL', `${String(domid)} is not a guest domid (1..${DOMID_GUEST_MAX})`);
  }
}

function checkQuotas(q: Quotas): void {
  for (const [name, v] of Object.entries(q)) {
    if (!Number.isInteger(v) || v < 0) throw new StoreError('EINVAL', `quota ${name} must be a non-negative integer`);
  }
}

/** Merges repeated events for one path (a transaction or helper touching a node twice) into one. */
function coalesce(events: readonly PendingEvent[]): PendingEvent[] {
  const out: PendingEvent[] = [];
  const byPath = new Map<string, number>();
  for (const ev of events) {
    const at = ev.removed || ev.exact ? undefined : byPath.get(ev.path);
    if (at === undefined) {
      if (!ev.removed && !ev.exact) byPath.set(ev.path, out.length);
      out.push(ev);
      continue;
    }
    const prev = out[at] as PendingEvent;
    out[at] = { path: ev.path, permSets: [...prev.permSets, ...ev.permSets] };
  }
  return out;
}

export class ControlStore {
  readonly quotas: Readonly<Quotas>;
  private readonly nodes = new Map<string, StoredNode>();
  private readonly live: NodeReader = { lookup: (path) => this.nodes.get(path) };
  private readonly owned = new Map<number, number>();
  private readonly transactions = new Map<number, Transaction>();
  private readonly watches: WatchRegistry;
  private readonly backend: SqliteBackend;
  private generation = 0;
  private nextTxid = 1;
  private closed = false;
  private readonly groupCommitMs: number;
  private readonly onCommitError: (error: unknown) => void;
  /** Changes live in memory (and acknowledged) but not yet in SQLite: path → final state. */
  private readonly unflushed = new Map<string, StoredNode | null>();
  private flushTimer: NodeJS.Timeout | undefined;
  private flushRetryMs = 0;
  private deferDepth = 0;

  constructor(opts: ControlStoreOptions = {}) {
    const quotas = { ...DEFAULT_QUOTAS, ...opts.quotas };
    checkQuotas(quotas);
    this.quotas = Object.freeze(quotas);
    this.watches = new WatchRegistry(opts.onWatchError ?? defaultWatchError);
    const window = opts.groupCommitMs ?? 2;
    if (!Number.isFinite(window) || window < 0) throw new StoreError('EINVAL', 'groupCommitMs must be >= 0');
    this.groupCommitMs = window;
    this.onCommitError = opts.onCommitError ?? defaultCommitError;
    this.backend = new SqliteBackend(opts.dbPath ?? ':memory:');
    try {
      this.load();
    } catch (e) {
      this.backend.close();
      throw e;
    }
  }

  // ---- basic operations ------------------------------------------------------

  read(caller: Caller, path: string, txid = 0): string {
    this.checkPathFor(caller, path);
    // Fast path: a plain read of a node the caller may read needs no overlay.
    const node = txid === 0 ? this.readable(caller, path) : undefined;
    if (node) return node.value;
    return this.run(caller, txid, (ctx) => readOp(ctx, path));
  }

  /** Like read, but an absent node gives undefined (other errors still throw). */
  tryRead(caller: Caller, path: string, txid = 0): string | undefined {
    try {
      return this.read(caller, path, txid);
    } catch (e) {
      if (isStoreError(e, 'ENOENT')) return undefined;
      throw e;
    }
  }

  /** Sets a value, creating missing parents (which get an empty value and inherit perms). */
  write(caller: Caller, path: string, value: string, txid = 0): void {
    this.checkPathFor(caller, path);
    if (typeof value !== 'string' || LONE_SURROGATE.test(value)) {
      // Values travel as UTF-8 (SQLite, the wire); a lone surrogate would not survive the trip.
      throw new StoreError('EINVAL', `write ${path}: value must be a well-formed string`);
    }
    this.run(caller, txid, (ctx) => writeOp(ctx, path, value));
  }

  mkdir(caller: Caller, path: string, txid = 0): void {
    this.checkPathFor(caller, path);
    this.run(caller, txid, (ctx) => mkdirOp(ctx, path));
  }

  /** Child names, sorted. */
  directory(caller: Caller, path: string, txid = 0): string[] {
    this.checkPathFor(caller, path);
    const node = txid === 0 ? this.readable(caller, path) : undefined;
    if (node) return [...node.children];
    return this.run(caller, txid, (ctx) => directoryOp(ctx, path));
  }

  /** Removes a node and everything below it; an absent node is fine if its parent exists. */
  rm(caller: Caller, path: string, txid = 0): void {
    this.checkPathFor(caller, path);
    this.run(caller, txid, (ctx) => rmOp(ctx, path));
  }

  getPerms(caller: Caller, path: string, txid = 0): Perm[] {
    checkWatchPath(path);
    if (!isSpecial(path)) this.checkPathFor(caller, path);
    const perms = this.run(caller, txid, (ctx) => getPermsOp(ctx, path));
    return perms.map((p) => ({ id: p.id, perm: p.perm }));
  }

  /** Entries as objects or in xenstore's text form (`'r3'`). First entry = owner. */
  setPerms(caller: Caller, path: string, perms: readonly (Perm | string)[], txid = 0): void {
    checkWatchPath(path);
    if (!isSpecial(path)) this.checkPathFor(caller, path);
    const list = validatePerms(perms);
    this.run(caller, txid, (ctx) => setPermsOp(ctx, path, list));
  }

  /** A view bound to one caller (and transaction), for code that does many operations. */
  as(caller: Caller, txid = 0): StoreView {
    return {
      caller,
      txid,
      read: (path) => this.read(caller, path, txid),
      tryRead: (path) => this.tryRead(caller, path, txid),
      write: (path, value) => this.write(caller, path, value, txid),
      mkdir: (path) => this.mkdir(caller, path, txid),
      directory: (path) => this.directory(caller, path, txid),
      rm: (path) => this.rm(caller, path, txid),
      getPerms: (path) => this.getPerms(caller, path, txid),
      setPerms: (path, perms) => this.setPerms(caller, path, perms, txid),
    };
  }

  // ---- watches ----------------------------------------------------------------

  /**
   * Calls `cb` (asynchronously, in order) whenever `path` or anything below it
   * is created, changed, removed or has its perms changed, and once right away.
   * Watches are keyed by (caller domid, path, token).
   */
  watch(caller: Caller, path: string, token: string, cb: WatchCallback): void {
    this.checkOpen();
    checkCaller(caller);
    checkWatchPath(path);
    this.watches.add(caller, path, token, cb, this.quotas.watches);
  }

  unwatch(caller: Caller, path: string, token: string): void {
    this.checkOpen();
    checkCaller(caller);
    checkWatchPath(path);
    this.watches.remove(caller, path, token);
  }

  /** Resolves once every watch event queued so far has been delivered. */
  settled(): Promise<void> {
    return this.watches.settled();
  }

  // ---- transactions -----------------------------------------------------------

  /** The transaction belongs to the caller's principal: only it may use or end it. */
  transactionStart(caller: Caller): number {
    this.checkOpen();
    checkCaller(caller);
    const open = this.openTransactions(principalOf(caller));
    if (!caller.privileged && this.quotas.transactions > 0 && open >= this.quotas.transactions) {
      throw new StoreError('ENOSPC', `${principalOf(caller)} already has ${open} open transactions`, {
        hint: 'commit or abort one first',
      });
    }
    const id = this.nextTxid++;
    this.transactions.set(id, new Transaction(id, caller, this.live));
    return id;
  }

  /** Ends a transaction; a commit throws EAGAIN if anything it read or wrote changed meanwhile. */
  transactionEnd(caller: Caller, txid: number, commit: boolean): void {
    this.checkOpen();
    checkCaller(caller);
    const tx = this.transactionOf(caller, txid);
    this.transactions.delete(txid);
    if (!commit) return;
    const changed = tx.conflict(this.live);
    if (changed !== undefined) {
      throw new StoreError('EAGAIN', `transaction ${txid}: ${changed} changed since the transaction read it`, {
        hint: 'retry the whole transaction',
      });
    }
    // Rechecked at commit: other writers may have grown the same domains meanwhile.
    const limit = this.quotas.nodes;
    for (const domid of tx.actedAs) {
      const grown = tx.ownerDelta.get(domid) ?? 0;
      if (limit > 0 && grown > 0 && this.ownedBy(domid) + grown > limit) throw nodeQuotaError(domid, limit);
    }
    this.commit(tx.view.changes, tx.ownerDelta, coalesce(tx.events));
  }

  /**
   * Runs `fn` in a transaction and commits it, starting over on EAGAIN. Any
   * other error (from `fn` or the commit) aborts and propagates.
   */
  async transaction<T>(
    caller: Caller,
    fn: (tx: StoreView) => T | Promise<T>,
    opts: TransactionOptions = {},
  ): Promise<T> {
    const retries = opts.retries ?? 10;
    for (let attempt = 0; ; attempt++) {
      const txid = this.transactionStart(caller);
      let result: T;
      try {
        result = await fn(this.as(caller, txid));
      } catch (e) {
        if (this.transactions.has(txid)) this.transactionEnd(caller, txid, false);
        throw e;
      }
      try {
        this.transactionEnd(caller, txid, true);
        return result;
      } catch (e) {
        if (!isStoreError(e, 'EAGAIN') || attempt >= retries) throw e;
      }
    }
  }

  // ---- domains ----------------------------------------------------------------

  /**
   * Creates `/local/domain/<domid>` with libxl's layout and permissions and
   * fires `@introduceDomain`. Toolstack-only (the API layer must not expose it
   * to guests). EEXIST if the domain's home already exists.
   */
  introduceDomain(domid: number, opts: { name?: string } = {}): void {
    this.checkOpen();
    checkGuestDomid(domid);
    const home = domainPath(domid);
    if (opts.name !== undefined && (typeof opts.name !== 'string' || LONE_SURROGATE.test(opts.name))) {
      throw new StoreError('EINVAL', `introduce ${domid}: name must be a well-formed string`);
    }
    if (this.nodes.has(home)) throw new StoreError('EEXIST', `domain ${domid} is already introduced`);
    const ro = readOnlyPerms(domid);
    const rw = guestOwnedPerms(domid);
    this.run(TOOLSTACK, 0, (ctx) => {
      mkdirOp(ctx, home);
      setPermsOp(ctx, home, ro);
      for (const rel of READ_ONLY_DIRS) {
        mkdirOp(ctx, `${home}/${rel}`);
        setPermsOp(ctx, `${home}/${rel}`, ro);
      }
      for (const rel of GUEST_WRITABLE) {
        mkdirOp(ctx, `${home}/${rel}`);
        setPermsOp(ctx, `${home}/${rel}`, rw);
      }
      writeOp(ctx, `${home}/domid`, String(domid));
      if (opts.name !== undefined) writeOp(ctx, `${home}/name`, opts.name);
    });
    this.fireSpecial('@introduceDomain', domid);
  }

  isDomainIntroduced(domid: number): boolean {
    return this.nodes.has(domainPath(domid));
  }

  /**
   * Forgets a domain, as xenstored does on release: removes its home and every
   * node it owns elsewhere, strips it from other nodes' perms (so a later domain
   * reusing the domid inherits nothing), drops its watches and transactions,
   * and fires `@releaseDomain` and `@releaseDomain/<domid>`.
   */
  releaseDomain(domid: number): void {
    this.checkOpen();
    checkGuestDomid(domid);
    const home = domainPath(domid);
    if (!this.nodes.has(home)) throw new StoreError('ENOENT', `domain ${domid} is not introduced`);
    const paths = [...this.nodes.keys()];
    this.run(TOOLSTACK, 0, (ctx) => {
      rmOp(ctx, home);
      for (const path of paths) {
        const node = ctx.view.lookup(path);
        if (!node) continue;
        const owner = ownerOf(node.perms);
        if (owner === domid && path !== '/' && !isSpecial(path)) {
          rmOp(ctx, path);
          continue;
        }
        let perms: PermList = node.perms.filter((p, i) => i === 0 || p.id !== domid);
        if (owner === domid) perms = withOwner(perms, 0);
        if (perms.length !== node.perms.length || owner === domid) ctx.view.put(path, withPerms(node, perms));
      }
    });
    this.watches.removeDomain(domid);
    // Also a sponsor's that acted as the domain: a later domain reusing the domid must not inherit them.
    for (const [id, tx] of this.transactions) {
      if (tx.caller.domid === domid || tx.actedAs.has(domid)) this.transactions.delete(id);
    }
    this.fireSpecial('@releaseDomain', domid);
  }

  /**
   * What the quotas count: nodes owned by the domain (the caller's domid), and
   * watches and open transactions of the principal (a domid means its own connection).
   */
  usage(who: number | Caller): DomainUsage {
    const caller = typeof who === 'number' ? { domid: who, privileged: false } : who;
    const principal = principalOf(caller);
    return {
      nodes: this.ownedBy(caller.domid),
      watches: this.watches.count(principal),
      transactions: this.openTransactions(principal),
    };
  }

  // ---- snapshots --------------------------------------------------------------

  /** The subtree at `path` (toolstack view: everything, with perms). */
  exportSubtree(path: string): StoreSnapshot {
    this.checkOpen();
    checkPath(path);
    if (!this.nodes.has(path)) throw new StoreError('ENOENT', `export ${path}: no such node`);
    const nodes: SnapshotNode[] = [];
    const strip = path === '/' ? 1 : path.length + 1;
    const visit = (at: string): void => {
      const node = this.nodes.get(at);
      if (!node) return;
      nodes.push({
        path: at === path ? '' : at.slice(strip),
        value: node.value,
        perms: node.perms.map((p) => ({ id: p.id, perm: p.perm })),
      });
      for (const c of node.children) visit(childPath(at, c));
    };
    visit(path);
    return { format: SNAPSHOT_FORMAT, version: 1, nodes };
  }

  /**
   * Replaces the subtree at `path` with a snapshot, atomically, as the toolstack.
   * `domidMap` rewrites domids in perms (restoring a domain under a new domid).
   */
  importSubtree(
    path: string,
    snapshot: StoreSnapshot | string,
    opts: { domidMap?: ReadonlyMap<number, number> } = {},
  ): void {
    this.checkOpen();
    checkPath(path);
    const snap = parseSnapshot(snapshot);
    const map = opts.domidMap;
    const targets = snap.nodes.map((n) => {
      const full = n.path === '' ? path : path === '/' ? `/${n.path}` : `${path}/${n.path}`;
      checkPath(full);
      const perms = validatePerms(map ? n.perms.map((p) => ({ id: map.get(p.id) ?? p.id, perm: p.perm })) : n.perms);
      return { full, value: n.value, perms };
    });
    this.run(TOOLSTACK, 0, (ctx) => {
      const existing = ctx.view.lookup(path);
      if (path === '/' && existing) for (const c of existing.children) rmOp(ctx, childPath('/', c));
      else if (existing) rmOp(ctx, path);
      for (const t of targets) {
        writeOp(ctx, t.full, t.value);
        setPermsOp(ctx, t.full, t.perms);
      }
    });
  }

  // ---- group commit ---------------------------------------------------------------

  /**
   * Runs `fn` with the changes it makes group-committed: they are live (read,
   * watched, acknowledged) at once and written to SQLite, together with the
   * others of the window, within groupCommitMs. A crash of the process loses
   * at most that window's changes; a transaction's changes stay all-or-nothing.
   */
  deferCommits<T>(fn: () => T): T {
    this.deferDepth++;
    try {
      return fn();
    } finally {
      this.deferDepth--;
    }
  }

  /** Changes acknowledged but not yet written to SQLite. */
  get unflushedChanges(): number {
    return this.unflushed.size;
  }

  /** Writes every group-committed change now. Throws if SQLite refuses (they stay queued). */
  flush(): void {
    this.checkOpen();
    this.writeUnflushed();
  }

  // ---- lifecycle ----------------------------------------------------------------

  /** Writes what is still queued and closes the database; pending watch events are still delivered. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.transactions.clear();
    try {
      this.writeUnflushed();
    } catch (e) {
      this.onCommitError(e);
    }
    this.backend.close();
  }

  // ---- internals ----------------------------------------------------------------

  private load(): void {
    const rows = this.backend.load();
    // Parents before children; a row whose parent is missing (only possible if
    // the file was edited by hand) is skipped together with its descendants.
    const depth = (p: string): number => (p === '/' ? 0 : p.split('/').length - 1);
    rows.sort((a, b) => depth(a.path) - depth(b.path) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const children = new Map<string, string[]>();
    for (const row of rows) {
      const special = isSpecial(row.path);
      const parent = parentOf(row.path);
      if (!special && row.path !== '/' && (parent === undefined || !this.nodes.has(parent))) continue;
      this.nodes.set(row.path, { value: row.value, perms: row.perms, children: [], gen: row.generation });
      if (parent !== undefined && !special) {
        const list = children.get(parent) ?? [];
        list.push(row.path.slice(parent === '/' ? 1 : parent.length + 1));
        children.set(parent, list);
      }
      this.generation = Math.max(this.generation, row.generation);
    }
    for (const [path, names] of children) {
      const node = this.nodes.get(path) as StoredNode;
      this.nodes.set(path, { ...node, children: names.sort() });
    }
    for (const node of this.nodes.values()) this.bumpOwned(ownerOf(node.perms), 1);
    const seed = new Map<string, StoredNode | null>();
    if (!this.nodes.has('/')) seed.set('/', makeNode('', TOOLSTACK_ONLY));
    for (const special of SPECIAL_NODES) if (!this.nodes.has(special)) seed.set(special, makeNode('', TOOLSTACK_ONLY));
    if (seed.size > 0) this.commit(seed, new Map([[0, seed.size]]), []);
  }

  /** The live node at `path` if the caller may read it; undefined sends the caller down the full path (errors). */
  private readable(caller: Caller, path: string): StoredNode | undefined {
    this.checkOpen();
    checkCaller(caller);
    const node = this.nodes.get(path);
    return node && (accessFor(caller, node.perms) & READ) !== 0 ? node : undefined;
  }

  private checkOpen(): void {
    if (this.closed) throw new StoreError('EINVAL', 'the control store is closed', { kind: 'state' });
  }

  private checkPathFor(caller: Caller, path: string): void {
    checkPath(path);
    if (typeof caller === 'object' && caller !== null && !caller.privileged) {
      checkPathQuota(path, this.quotas.pathLength);
    }
  }

  private transactionOf(caller: Caller, txid: number): Transaction {
    const tx = this.transactions.get(txid);
    // Another principal's transaction is reported exactly like a missing one, so its existence is not revealed.
    if (!tx || principalOf(tx.caller) !== principalOf(caller)) {
      throw new StoreError('ENOENT', `no open transaction ${String(txid)}`, {
        hint: 'start a new transaction: one that has ended, or belongs to another caller, cannot be used',
      });
    }
    return tx;
  }

  private openTransactions(principal: string): number {
    let n = 0;
    for (const tx of this.transactions.values()) if (principalOf(tx.caller) === principal) n++;
    return n;
  }

  private ownedBy(domid: number): number {
    return this.owned.get(domid) ?? 0;
  }

  private bumpOwned(domid: number, by: number): void {
    const v = this.ownedBy(domid) + by;
    if (v === 0) this.owned.delete(domid);
    else this.owned.set(domid, v);
  }

  /**
   * Runs one operation in its own overlay — over the transaction's view when
   * `txid` is set, else over the live tree — and only if it succeeds (quotas
   * included) folds it into the transaction or commits it.
   */
  private run<T>(caller: Caller, txid: number, fn: (ctx: OpContext) => T): T {
    this.checkOpen();
    checkCaller(caller);
    if (txid !== 0) {
      const tx = this.transactionOf(caller, txid);
      const ctx: OpContext = { caller, view: new Overlay(tx.view), events: [], quotas: this.quotas };
      const result = fn(ctx);
      const delta = settleQuotas(ctx, (d) => this.ownedBy(d) + (tx.ownerDelta.get(d) ?? 0));
      const limit = this.quotas.transactionNodes;
      if (!caller.privileged && limit > 0) {
        let touched = tx.view.changes.size;
        for (const path of ctx.view.changes.keys()) if (!tx.view.changes.has(path)) touched++;
        if (touched > limit) {
          throw new StoreError('ENOSPC', `transaction ${txid} would change more than ${limit} nodes`);
        }
      }
      ctx.view.mergeInto(tx.view);
      tx.events.push(...ctx.events);
      tx.addDelta(delta);
      if (!caller.privileged) tx.actedAs.add(caller.domid);
      return result;
    }
    const ctx: OpContext = { caller, view: new Overlay(this.live), events: [], quotas: this.quotas };
    const result = fn(ctx);
    const delta = settleQuotas(ctx, (d) => this.ownedBy(d));
    this.commit(ctx.view.changes, delta, coalesce(ctx.events));
    return result;
  }

  /**
   * Makes a change set live: durable first (or queued for the group commit
   * inside deferCommits), then in memory, then watch events.
   */
  private commit(
    changes: ReadonlyMap<string, StoredNode | null>,
    ownerDelta: ReadonlyMap<number, number>,
    events: readonly PendingEvent[],
  ): void {
    if (changes.size === 0) return;
    const gen = ++this.generation;
    // Fresh objects: a node object, once live, never changes (transactions hold on to them).
    const stamped: Array<readonly [string, StoredNode | null]> = [];
    for (const [path, node] of changes) stamped.push([path, node ? { ...node, gen } : null]);
    if (this.deferDepth > 0 && this.groupCommitMs > 0) {
      for (const [path, node] of stamped) this.unflushed.set(path, node);
      if (this.unflushed.size >= GROUP_COMMIT_MAX) this.flushSoon(0);
      else this.flushSoon(this.groupCommitMs);
    } else if (this.unflushed.size > 0) {
      // Write-through, after (and with) what is queued: SQLite never holds a newer state under an older one.
      const all = new Map(this.unflushed);
      for (const [path, node] of stamped) all.set(path, node);
      this.backend.apply([...all]);
      this.unflushed.clear();
      this.cancelFlush();
    } else {
      this.backend.apply(stamped);
    }
    for (const [path, node] of stamped) {
      if (node) this.nodes.set(path, node);
      else this.nodes.delete(path);
    }
    for (const [domid, by] of ownerDelta) this.bumpOwned(domid, by);
    this.watches.fire(events);
  }

  /** Arms the group commit's timer; the window runs from the first queued change, so later ones do not stretch it. */
  private flushSoon(ms: number): void {
    if (this.flushTimer !== undefined) {
      if (ms > 0) return;
      clearTimeout(this.flushTimer);
    }
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      if (this.closed) return;
      try {
        this.writeUnflushed();
        this.flushRetryMs = 0;
      } catch (e) {
        this.onCommitError(e);
        this.flushRetryMs = Math.min(GROUP_COMMIT_RETRY_MAX_MS, Math.max(this.groupCommitMs, this.flushRetryMs * 2));
        this.flushSoon(this.flushRetryMs);
      }
    }, ms);
  }

  private cancelFlush(): void {
    if (this.flushTimer === undefined) return;
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
  }

  private writeUnflushed(): void {
    if (this.unflushed.size === 0) return;
    this.backend.apply([...this.unflushed]);
    this.unflushed.clear();
    this.cancelFlush();
  }

  private fireSpecial(name: string, domid: number): void {
    const perms = this.nodes.get(name)?.perms ?? TOOLSTACK_ONLY;
    this.watches.fire([
      { path: name, permSets: [perms], exact: true },
      { path: `${name}/${domid}`, permSets: [perms], exact: true },
    ]);
  }
}
