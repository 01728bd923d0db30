// The tree operations themselves, written once against an Overlay so the same
// code serves direct calls, transactions and the toolstack helpers. Error
// choice follows xenstored: a missing node is reported as ENOENT only to a
// caller that could have seen it (errno_from_parents), otherwise EACCES.

import { StoreError } from './errors.ts';
import { makeNode, nodeSize, type StoredNode, withChild, withoutChild, withPerms, withValue } from './node.ts';
import type { Overlay } from './overlay.ts';
import { baseName, childPath, parentOf } from './path.ts';
import { accessFor, formatPerms, OWNER, ownerOf, READ, WRITE, withOwner } from './perms.ts';
import { type Caller, type PermList, principalOf, type Quotas } from './types.ts';

/** A change waiting to be turned into watch events once it is committed. */
export interface PendingEvent {
  readonly path: string;
  /**
   * A watcher receives the event only if it may read under one of these lists:
   * the node's, its parent's, and (for SET_PERMS) the old ones — xenstored's
   * watch_permitted, so a domain losing access still hears about it.
   */
  readonly permSets: readonly PermList[];
  /** For RM: every removed node and its perms, so watches below `path` fire too. */
  readonly removed?: ReadonlyMap<string, PermList>;
  /** Special events (`@releaseDomain/3`) match only a watch on exactly that path. */
  readonly exact?: boolean;
}

export interface OpContext {
  readonly caller: Caller;
  readonly view: Overlay;
  readonly events: PendingEvent[];
  readonly quotas: Readonly<Quotas>;
}

function who(caller: Caller): string {
  if (caller.privileged) return `privileged domain ${caller.domid}`;
  return caller.principal === undefined ? `domain ${caller.domid}` : `${caller.principal} (as domain ${caller.domid})`;
}

function denied(ctx: OpContext, op: string, path: string): StoreError {
  return new StoreError('EACCES', `${op} ${path}: permission denied for ${who(ctx.caller)}`);
}

/** ENOENT if the caller may `need` on the nearest existing ancestor, else EACCES (hide existence). */
function missing(ctx: OpContext, op: string, path: string, need: number): StoreError {
  let ancestor = parentOf(path);
  while (ancestor !== undefined) {
    const node = ctx.view.lookup(ancestor);
    if (node) {
      if ((accessFor(ctx.caller, node.perms) & need) === 0) return denied(ctx, op, path);
      break;
    }
    ancestor = parentOf(ancestor);
  }
  return new StoreError('ENOENT', `${op} ${path}: no such node`);
}

function requireNode(ctx: OpContext, op: string, path: string, need: number): StoredNode {
  const node = ctx.view.lookup(path);
  if (!node) throw missing(ctx, op, path, need);
  if ((accessFor(ctx.caller, node.perms) & need) !== need) throw denied(ctx, op, path);
  return node;
}

function parentPerms(ctx: OpContext, path: string): PermList[] {
  const parent = parentOf(path);
  const node = parent === undefined ? undefined : ctx.view.lookup(parent);
  return node ? [node.perms] : [];
}

export function readOp(ctx: OpContext, path: string): string {
  return requireNode(ctx, 'read', path, READ).value;
}

export function directoryOp(ctx: OpContext, path: string): string[] {
  return [...requireNode(ctx, 'directory', path, READ).children];
}

export function getPermsOp(ctx: OpContext, path: string): PermList {
  return requireNode(ctx, 'get-perms', path, READ).perms;
}

/** Creates `path` and any missing ancestors; needs WRITE on the nearest existing ancestor. */
function create(ctx: OpContext, op: string, path: string, value: string): StoredNode {
  const { view, caller } = ctx;
  const names: string[] = [];
  let at = path;
  let node: StoredNode | undefined;
  while (node === undefined) {
    const parent = parentOf(at);
    if (parent === undefined) throw new StoreError('ENOENT', `${op} ${path}: no such node`);
    names.push(baseName(at));
    at = parent;
    node = view.lookup(at);
  }
  if ((accessFor(caller, node.perms) & WRITE) === 0) throw denied(ctx, op, path);
  for (let i = names.length - 1; i >= 0; i--) {
    const name = names[i] as string;
    const perms = caller.privileged ? node.perms : withOwner(node.perms, caller.domid);
    const child = makeNode(i === 0 ? value : '', perms);
    view.put(at, withChild(node, name));
    at = childPath(at, name);
    view.put(at, child);
    node = child;
  }
  return node;
}

export function writeOp(ctx: OpContext, path: string, value: string): void {
  const existing = ctx.view.lookup(path);
  let node: StoredNode;
  if (existing) {
    if ((accessFor(ctx.caller, existing.perms) & WRITE) === 0) throw denied(ctx, 'write', path);
    node = withValue(existing, value);
    ctx.view.put(path, node);
  } else {
    node = create(ctx, 'write', path, value);
  }
  ctx.events.push({ path, permSets: [node.perms, ...parentPerms(ctx, path)] });
}

export function mkdirOp(ctx: OpContext, path: string): void {
  const existing = ctx.view.lookup(path);
  if (existing) {
    // Already there is fine, but only for someone who could have created it.
    if ((accessFor(ctx.caller, existing.perms) & WRITE) === 0) throw denied(ctx, 'mkdir', path);
    return;
  }
  const node = create(ctx, 'mkdir', path, '');
  ctx.events.push({ path, permSets: [node.perms, ...parentPerms(ctx, path)] });
}

export function rmOp(ctx: OpContext, path: string): void {
  const { view } = ctx;
  const node = view.lookup(path);
  if (!node) {
    const err = missing(ctx, 'rm', path, WRITE);
    // Removing something already gone is fine as long as its parent exists.
    const parent = parentOf(path);
    if (err.errno === 'ENOENT' && parent !== undefined && view.lookup(parent)) return;
    throw err;
  }
  if ((accessFor(ctx.caller, node.perms) & WRITE) === 0) throw denied(ctx, 'rm', path);
  const parentPath = parentOf(path);
  const parent = parentPath === undefined ? undefined : view.lookup(parentPath);
  if (parentPath === undefined || !parent) throw new StoreError('EINVAL', `rm ${path}: cannot remove the root`);
  const removed = new Map<string, PermList>();
  const stack = [path];
  for (let p = stack.pop(); p !== undefined; p = stack.pop()) {
    const n = view.lookup(p);
    if (!n) continue;
    removed.set(p, n.perms);
    for (const c of n.children) stack.push(childPath(p, c));
    view.remove(p);
  }
  view.put(parentPath, withoutChild(parent, baseName(path)));
  ctx.events.push({ path, permSets: [node.perms, parent.perms], removed });
}

export function setPermsOp(ctx: OpContext, path: string, perms: PermList): void {
  const { caller, quotas } = ctx;
  if (!caller.privileged && quotas.perms > 0 && perms.length > quotas.perms) {
    throw new StoreError('ENOSPC', `set-perms ${path}: ${perms.length} entries, quota is ${quotas.perms}`, {
      hint: 'the control store limits the entries of one permission list',
    });
  }
  const node = requireNode(ctx, 'set-perms', path, WRITE | OWNER);
  if (!caller.privileged && perms[0]?.id !== ownerOf(node.perms)) {
    throw new StoreError('EPERM', `set-perms ${path}: only a privileged domain may change the owner`, {
      hint: `keep ${ownerOf(node.perms)} as the first entry (was: ${formatPerms(node.perms)})`,
    });
  }
  const grantable = caller.privileged ? undefined : caller.grantable;
  if (grantable !== undefined && perms.some((p) => p.id !== 0 && !grantable.includes(p.id))) {
    // A sponsor must not open its nodes to (or watch events through) another tenant's domain.
    throw new StoreError('EACCES', `set-perms ${path}: ${principalOf(caller)} may name only its own domains and 0`);
  }
  ctx.view.put(path, withPerms(node, perms));
  ctx.events.push({ path, permSets: [node.perms, perms, ...parentPerms(ctx, path)] });
}

export function nodeQuotaError(domid: number, limit: number): StoreError {
  return new StoreError('ENOSPC', `domain ${domid} would own more than ${limit} nodes`, {
    hint: 'remove nodes it no longer needs; the node quota counts every node a domain owns',
  });
}

function bump(delta: Map<number, number>, domid: number, by: number): void {
  const v = (delta.get(domid) ?? 0) + by;
  if (v === 0) delta.delete(domid);
  else delta.set(domid, v);
}

/**
 * Checks the node-count and node-size quotas over everything an operation
 * changed and returns the change in nodes owned per domain.
 */
export function settleQuotas(ctx: OpContext, owned: (domid: number) => number): Map<number, number> {
  const { caller, quotas, view } = ctx;
  const delta = new Map<number, number>();
  for (const [path, node] of view.changes) {
    const before = view.original(path);
    if (before) bump(delta, ownerOf(before.perms), -1);
    if (!node) continue;
    bump(delta, ownerOf(node.perms), 1);
    if (caller.privileged || quotas.nodeSize <= 0) continue;
    // Only growth is refused, so a domain can always shrink an oversized node.
    const size = nodeSize(node);
    if (size > quotas.nodeSize && size > (before ? nodeSize(before) : 0)) {
      throw new StoreError('ENOSPC', `${path}: node size ${size} B exceeds quota ${quotas.nodeSize} B`, {
        hint: 'a value and its child names must fit the node-size quota; split it over several nodes',
      });
    }
  }
  const grown = delta.get(caller.domid) ?? 0;
  if (!caller.privileged && quotas.nodes > 0 && grown > 0 && owned(caller.domid) + grown > quotas.nodes) {
    throw nodeQuotaError(caller.domid, quotas.nodes);
  }
  return delta;
}
