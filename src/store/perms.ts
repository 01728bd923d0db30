// Permission arithmetic, exactly as xenstored's perm_for_conn: privileged
// callers and the owner get everything; otherwise the first later entry naming
// the caller decides; otherwise the owner entry's letter is the default.

import { StoreError } from './errors.ts';
import type { Caller, Perm, PermLetter, PermList } from './types.ts';

export const READ = 1;
export const WRITE = 2;
/** Only owners (and privileged callers) may SET_PERMS. */
export const OWNER = 4;

/** An entry naming DOMID_ANY applies to every domain (xenstored feature 8). */
export const DOMID_ANY = 0x7ff5;
export const DOMID_MAX = 0xffff;

const LETTER_BITS: Record<PermLetter, number> = { n: 0, r: READ, w: WRITE, b: READ | WRITE };

function names(entry: Perm, caller: Caller): boolean {
  return entry.id === caller.domid || entry.id === DOMID_ANY || entry.id === caller.target;
}

export function accessFor(caller: Caller, perms: PermList): number {
  const owner = perms[0];
  if (caller.privileged || (owner !== undefined && names(owner, caller))) return READ | WRITE | OWNER;
  for (let i = 1; i < perms.length; i++) {
    const entry = perms[i];
    if (entry !== undefined && names(entry, caller)) return LETTER_BITS[entry.perm];
  }
  return owner === undefined ? 0 : LETTER_BITS[owner.perm];
}

export function canRead(caller: Caller, perms: PermList): boolean {
  return (accessFor(caller, perms) & READ) !== 0;
}

export function ownerOf(perms: PermList): number {
  return perms[0]?.id ?? 0;
}

/** `r3` → `{ id: 3, perm: 'r' }`, the form xenstore-ls and the wire protocol use. */
export function parsePerm(text: string): Perm {
  const m = /^([nrwb])(\d{1,5})$/.exec(text);
  const id = m ? Number(m[2]) : Number.NaN;
  if (!m || id > DOMID_MAX) throw new StoreError('EINVAL', `bad permission ${JSON.stringify(text)}`);
  return { id, perm: m[1] as PermLetter };
}

export function formatPerm(p: Perm): string {
  return `${p.perm}${p.id}`;
}

export function formatPerms(perms: PermList): string {
  return perms.map(formatPerm).join(' ');
}

/** Checks untrusted input (API, snapshot) and returns a frozen copy. */
export function validatePerms(input: unknown): PermList {
  if (!Array.isArray(input) || input.length === 0) {
    throw new StoreError('EINVAL', 'a permission list needs at least the owner entry');
  }
  const out: Perm[] = [];
  for (const raw of input as unknown[]) {
    const entry = typeof raw === 'string' ? parsePerm(raw) : raw;
    if (typeof entry !== 'object' || entry === null) throw new StoreError('EINVAL', 'bad permission entry');
    const { id, perm } = entry as { id?: unknown; perm?: unknown };
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > DOMID_MAX) {
      throw new StoreError('EINVAL', `bad domid in permission entry: ${String(id)}`);
    }
    if (perm !== 'n' && perm !== 'r' && perm !== 'w' && perm !== 'b') {
      throw new StoreError('EINVAL', `bad permission letter: ${String(perm)}`);
    }
    out.push(Object.freeze({ id, perm }));
  }
  return Object.freeze(out);
}

/** A copy with the owner replaced (an unprivileged creator owns what it creates). */
export function withOwner(perms: PermList, domid: number): PermList {
  const [first, ...rest] = perms;
  if (first?.id === domid) return perms;
  return Object.freeze([Object.freeze({ id: domid, perm: first?.perm ?? 'n' }), ...rest]);
}
