// One node of the tree. Nodes are treated as immutable once committed: every
// change builds a new object, so a transaction can hold on to what it read and
// an uncommitted overlay never disturbs the live tree.

import type { PermList } from './types.ts';

export interface StoredNode {
  readonly value: string;
  readonly perms: PermList;
  /** Child names, sorted, so DIRECTORY needs no sorting. */
  readonly children: readonly string[];
  /**
   * Generation of the commit that produced this object. Assigned once, when the
   * node enters the live tree (0 until then); transactions compare it to detect
   * conflicts.
   */
  gen: number;
}

/** Generation recorded for a path that was absent when a transaction looked. */
export const ABSENT = -1;

export function makeNode(value: string, perms: PermList, children: readonly string[] = []): StoredNode {
  return { value, perms, children, gen: 0 };
}

export function withValue(node: StoredNode, value: string): StoredNode {
  return { value, perms: node.perms, children: node.children, gen: 0 };
}

export function withPerms(node: StoredNode, perms: PermList): StoredNode {
  return { value: node.value, perms, children: node.children, gen: 0 };
}

function search(sorted: readonly string[], name: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as string) < name) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function withChild(node: StoredNode, name: string): StoredNode {
  const i = search(node.children, name);
  if (node.children[i] === name) return node;
  const children = [...node.children];
  children.splice(i, 0, name);
  return { value: node.value, perms: node.perms, children, gen: 0 };
}

export function withoutChild(node: StoredNode, name: string): StoredNode {
  const i = search(node.children, name);
  if (node.children[i] !== name) return node;
  const children = [...node.children];
  children.splice(i, 1);
  return { value: node.value, perms: node.perms, children, gen: 0 };
}

/** Size counted against the node-size quota: value bytes plus child names with a NUL each. */
export function nodeSize(node: StoredNode): number {
  let size = Buffer.byteLength(node.value, 'utf8');
  for (const c of node.children) size += c.length + 1;
  return size;
}
