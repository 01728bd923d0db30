// A layer of uncommitted changes over another view of the tree. Every store
// operation runs in its own overlay (so a failure half-way leaves nothing
// behind); a transaction is an overlay that lives across operations.

import type { StoredNode } from './node.ts';

export interface NodeReader {
  lookup(path: string): StoredNode | undefined;
}

export class Overlay implements NodeReader {
  /** path → new node, or null when removed. Insertion order = order of first change. */
  readonly changes = new Map<string, StoredNode | null>();

  constructor(readonly base: NodeReader) {}

  lookup(path: string): StoredNode | undefined {
    const changed = this.changes.get(path);
    if (changed !== undefined) return changed ?? undefined;
    return this.base.lookup(path);
  }

  /** The state below this overlay, i.e. before its own changes. */
  original(path: string): StoredNode | undefined {
    return this.base.lookup(path);
  }

  put(path: string, node: StoredNode): void {
    // Reading first makes a transaction record the node's base generation even
    // for a blind write, so concurrent changes to it are detected at commit.
    if (!this.changes.has(path)) this.base.lookup(path);
    this.changes.set(path, node);
  }

  remove(path: string): void {
    if (!this.changes.has(path)) this.base.lookup(path);
    this.changes.set(path, null);
  }

  /** Fold these changes into the layer below (an operation into its transaction). */
  mergeInto(target: Overlay): void {
    for (const [path, node] of this.changes) target.changes.set(path, node);
  }
}
