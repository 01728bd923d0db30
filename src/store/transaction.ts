// A transaction is an overlay whose reads of the live tree are pinned: the
// first time it sees a path it remembers that node object (or its absence), and
// later reads return the same thing. Commit succeeds only if every pinned path
// still has the generation it had — covering values, child lists (directory
// listings and creations both change the parent's generation), perms, and
// nodes that were absent and have since been created.

import { ABSENT, type StoredNode } from './node.ts';
import type { PendingEvent } from './ops.ts';
import { type NodeReader, Overlay } from './overlay.ts';
import type { Caller } from './types.ts';

export class Transaction {
  /** path → what the live tree held when this transaction first looked. */
  private readonly pinned = new Map<string, StoredNode | undefined>();
  readonly view: Overlay;
  readonly events: PendingEvent[] = [];
  /** Change in nodes owned per domain, relative to the pinned state. */
  readonly ownerDelta = new Map<number, number>();
  /** Unprivileged domids the operations ran as (a sponsor's may span its domains): whose node quota a commit checks. */
  readonly actedAs = new Set<number>();

  constructor(
    readonly id: number,
    readonly caller: Caller,
    live: NodeReader,
  ) {
    this.view = new Overlay({
      lookup: (path) => {
        if (this.pinned.has(path)) return this.pinned.get(path);
        const node = live.lookup(path);
        this.pinned.set(path, node);
        return node;
      },
    });
  }

  /** The first path whose live state moved on since this transaction read it. */
  conflict(live: NodeReader): string | undefined {
    for (const [path, seen] of this.pinned) {
      if ((live.lookup(path)?.gen ?? ABSENT) !== (seen?.gen ?? ABSENT)) return path;
    }
    return undefined;
  }

  addDelta(delta: ReadonlyMap<number, number>): void {
    for (const [domid, by] of delta) {
      const v = (this.ownerDelta.get(domid) ?? 0) + by;
      if (v === 0) this.ownerDelta.delete(domid);
      else this.ownerDelta.set(domid, v);
    }
  }
}
