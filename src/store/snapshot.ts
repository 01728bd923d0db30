// A subtree as plain JSON, for save/restore and migration. Paths are relative
// to the exported root so a domain's home can be restored under a new domid.

import { StoreError } from './errors.ts';
import { validatePerms } from './perms.ts';
import type { Perm } from './types.ts';

export const SNAPSHOT_FORMAT = 'xenode-store-snapshot';

export interface SnapshotNode {
  /** Relative to the snapshot's root: `''` for the root itself, else `a/b`. */
  path: string;
  value: string;
  perms: Perm[];
}

export interface StoreSnapshot {
  format: typeof SNAPSHOT_FORMAT;
  version: 1;
  /** Parents before children. */
  nodes: SnapshotNode[];
}

const REL_PATH = /^[A-Za-z0-9_@-]+(\/[A-Za-z0-9_@-]+)*$/;

function bad(why: string): StoreError {
  return new StoreError('EINVAL', `invalid store snapshot: ${why}`);
}

/** Validates untrusted snapshot input (object or JSON text). */
export function parseSnapshot(input: unknown): StoreSnapshot {
  let data = input;
  if (typeof input === 'string') {
    try {
      data = JSON.parse(input);
    } catch (e) {
      throw bad(`not JSON (${e instanceof Error ? e.message : String(e)})`);
    }
  }
  if (typeof data !== 'object' || data === null) throw bad('not an object');
  const { format, version, nodes } = data as { format?: unknown; version?: unknown; nodes?: unknown };
  if (format !== SNAPSHOT_FORMAT) throw bad(`format is not ${SNAPSHOT_FORMAT}`);
  if (version !== 1) throw bad(`unsupported version ${String(version)}`);
  if (!Array.isArray(nodes) || nodes.length === 0) throw bad('no nodes');
  const seen = new Set<string>();
  const out: SnapshotNode[] = [];
  for (const raw of nodes as unknown[]) {
    if (typeof raw !== 'object' || raw === null) throw bad('node is not an object');
    const { path, value, perms } = raw as { path?: unknown; value?: unknown; perms?: unknown };
    if (typeof path !== 'string' || (path !== '' && !REL_PATH.test(path))) throw bad(`bad path ${String(path)}`);
    if (typeof value !== 'string' || /\p{Cs}/u.test(value)) throw bad(`value of ${path} is not a well-formed string`);
    if (seen.has(path)) throw bad(`duplicate node ${path}`);
    if (out.length === 0 && path !== '') throw bad('the first node must be the root ("")');
    if (path !== '') {
      const i = path.lastIndexOf('/');
      const parent = i < 0 ? '' : path.slice(0, i);
      if (!seen.has(parent)) throw bad(`${path} comes before its parent`);
    }
    seen.add(path);
    out.push({ path, value, perms: validatePerms(perms).map((p) => ({ id: p.id, perm: p.perm })) });
  }
  return { format: SNAPSHOT_FORMAT, version: 1, nodes: out };
}
