// static_shm spec strings, after the (unmerged upstream) xl static_shm patch
// series: `id=ID, begin=0x100000, size=0x100000, role=owner, cache_policy=…, prot=rw`.
// The owner backs the region; borrowers map it (from `offset` into it).
// Xenode runs x86 machines, so the default cache policy is `x86_normal` (the
// Arm-only patch defaults to `ARM_normal`; both mean ordinary cacheable RAM here).
// The patch's older spelling `role=master|slave` is accepted; its `end=` is not,
// because whether it was inclusive is unclear — `size=` says what it means.

import { configError } from './location.ts';
import { didYouMean } from './suggest.ts';
import type { StaticShmSpec } from './types.ts';

export const PAGE_SIZE = 4096;
export const CACHE_POLICIES = ['x86_normal', 'ARM_normal'] as const;

const KEYS = ['id', 'begin', 'size', 'offset', 'role', 'prot', 'cache_policy'] as const;
const HINT = "e.g. 'id=shm1, begin=0x100000, size=0x100000, role=owner'";

function parseAddr(key: string, value: string): number {
  let n: number;
  if (/^[0-9]+$/.test(value)) n = Number(value);
  else if (/^0x[0-9a-fA-F]+$/.test(value)) n = Number.parseInt(value.slice(2), 16);
  else throw configError(`static_shm ${key} '${value}' is not a number`, undefined, 'give it in decimal or 0x hex');
  if (!Number.isSafeInteger(n)) throw configError(`static_shm ${key} '${value}' is too large`);
  if (n % PAGE_SIZE !== 0) {
    throw configError(`static_shm ${key} '${value}' is not a multiple of 4 KiB`, undefined, 'use a multiple of 0x1000');
  }
  return n;
}

export function parseStaticShmSpec(spec: string): StaticShmSpec {
  const fields = new Map<string, string>();
  for (const raw of spec.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq < 0) throw configError(`static_shm item '${item}' needs a value`, undefined, HINT);
    const key = item.slice(0, eq).trim();
    const value = item.slice(eq + 1).trim();
    if (key === 'end') throw configError("static_shm 'end=' is not supported", undefined, 'give the length with size=');
    if (!(KEYS as readonly string[]).includes(key)) {
      throw configError(
        `unknown static_shm parameter '${key}'`,
        undefined,
        didYouMean(key, KEYS) ?? `known: ${KEYS.join(', ')}`,
      );
    }
    if (fields.has(key)) throw configError(`static_shm parameter '${key}' given twice`);
    fields.set(key, value);
  }

  const id = fields.get('id');
  if (id === undefined || id === '') throw configError('static_shm region has no id', undefined, HINT);
  if (!/^[A-Za-z0-9_]{1,128}$/.test(id)) {
    throw configError(`invalid static_shm id '${id}'`, undefined, 'an id is 1-128 of A-Z a-z 0-9 _');
  }
  const beginText = fields.get('begin');
  const sizeText = fields.get('size');
  if (beginText === undefined) throw configError(`static_shm '${id}' has no begin`, undefined, HINT);
  if (sizeText === undefined) throw configError(`static_shm '${id}' has no size`, undefined, HINT);
  const begin = parseAddr('begin', beginText);
  const size = parseAddr('size', sizeText);
  if (size === 0) throw configError(`static_shm '${id}' has size 0`, undefined, 'size is at least 0x1000');

  const roleText = fields.get('role') ?? 'borrower';
  let role: StaticShmSpec['role'];
  if (roleText === 'owner' || roleText === 'master') role = 'owner';
  else if (roleText === 'borrower' || roleText === 'slave') role = 'borrower';
  else throw configError(`invalid static_shm role '${roleText}'`, undefined, 'role is owner or borrower');

  const offsetText = fields.get('offset');
  if (offsetText !== undefined && role === 'owner') {
    throw configError(
      `static_shm '${id}': offset is for borrowers only`,
      undefined,
      'the owner always maps its region from 0',
    );
  }
  const offset = offsetText === undefined ? 0 : parseAddr('offset', offsetText);

  const prot = fields.get('prot') ?? 'rw';
  if (prot !== 'rw') throw configError(`invalid static_shm prot '${prot}'`, undefined, 'only prot=rw is supported');

  const policyText = fields.get('cache_policy');
  if (policyText !== undefined && role === 'borrower') {
    throw configError(
      `static_shm '${id}': cache_policy is for the owner only`,
      undefined,
      'borrowers use the owner’s policy',
    );
  }
  const cachePolicy = policyText ?? 'x86_normal';
  if (!(CACHE_POLICIES as readonly string[]).includes(cachePolicy)) {
    throw configError(
      `invalid static_shm cache_policy '${cachePolicy}'`,
      undefined,
      `policies: ${CACHE_POLICIES.join(', ')}`,
    );
  }
  return { id, begin, size, offset, role, prot: 'rw', cachePolicy };
}
