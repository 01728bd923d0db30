// The pool secret: made at pool create, given at join. It proves membership
// (etcd keeps only its hash) and seals each host's peer token (an admin token
// of that host) so that only members can call one another's APIs.

import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { XenodeError } from '../../errors.ts';

const SECRET_RE = /^xnpool_[0-9a-f]{64}$/;

export function newSecret(): string {
  return `xnpool_${randomBytes(32).toString('hex')}`;
}

export function checkSecretShape(s: string): void {
  if (!SECRET_RE.test(s))
    throw new XenodeError('usage', 'the pool secret is malformed', {
      hint: 'give the secret `xenode pool create` printed',
    });
}

export function secretHash(secret: string): string {
  return createHash('sha256').update(`xenode-pool-hash:${secret}`).digest('hex');
}

export function secretMatches(secret: string, hash: string): boolean {
  const a = Buffer.from(secretHash(secret), 'hex');
  const b = Buffer.from(hash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

function key(secret: string): Buffer {
  return createHash('sha256').update(`xenode-pool-seal:${secret}`).digest();
}

export function seal(secret: string, plain: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key(secret), iv);
  const body = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), body]).toString('base64');
}

export function unseal(secret: string, sealed: string): string {
  const raw = Buffer.from(sealed, 'base64');
  if (raw.length < 29) throw new XenodeError('engine', 'a pool peer record is damaged');
  const d = createDecipheriv('aes-256-gcm', key(secret), raw.subarray(0, 12));
  d.setAuthTag(raw.subarray(12, 28));
  try {
    return Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString('utf8');
  } catch {
    throw new XenodeError('engine', 'a pool peer record was not sealed with this pool secret');
  }
}
