// The etcd side of the pool: a client that fails fast (the pool's own loop
// retries, on its own clock, so nothing waits behind a circuit breaker after
// etcd comes back), JSON values, and a lease kept alive one request at a time so
// that the daemon knows exactly when etcd last acknowledged it.

import { noop } from 'cockatiel';
import { Etcd3 } from 'etcd3';
import { XenodeError } from '../../errors.ts';

const CALL_MS = 2000;

export function connect(endpoints: string[]): Etcd3 {
  return new Etcd3({
    hosts: endpoints,
    dialTimeout: CALL_MS,
    faultHandling: { host: () => noop, global: noop },
    defaultCallOptions: (c) => (c.isStream ? {} : { deadline: Date.now() + CALL_MS }),
  });
}

export async function getJson<T>(c: Etcd3, key: string): Promise<T | undefined> {
  const s = await c.get(key).string();
  return s === null ? undefined : (JSON.parse(s) as T);
}

/** Every key under a prefix with its value parsed and its mod revision. */
export async function listJson<T>(c: Etcd3, prefix: string): Promise<Array<{ key: string; value: T; mod: string }>> {
  const r = await c.getAll().prefix(prefix).exec();
  return r.kvs.map((kv) => ({
    key: kv.key.toString('utf8'),
    value: JSON.parse(kv.value.toString('utf8')) as T,
    mod: kv.mod_revision,
  }));
}

export async function grantLease(c: Etcd3, ttl: number): Promise<string> {
  const r = await c.leaseClient.leaseGrant({ TTL: ttl });
  return String(r.ID);
}

/** One keepalive; the lease's remaining TTL as etcd says it (<= 0: the lease is gone). */
export async function keepAliveOnce(c: Etcd3, id: string): Promise<number> {
  const stream = await c.leaseClient.leaseKeepAlive();
  return new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => {
      stream.end();
      reject(new XenodeError('engine', 'etcd did not answer the keepalive'));
    }, CALL_MS);
    stream.on('data', (r: { TTL?: string | number }) => {
      clearTimeout(t);
      stream.end();
      resolve(Number(r.TTL ?? 0));
    });
    stream.on('error', (e: Error) => {
      clearTimeout(t);
      reject(e);
    });
    stream.write({ ID: id });
  });
}

export function unreachable(endpoints: string[], e: unknown): XenodeError {
  return new XenodeError(
    'engine',
    `cannot reach etcd at ${endpoints.join(',')}: ${e instanceof Error ? e.message : String(e)}`,
    {
      hint: 'give the client URL of a running etcd (etcd --listen-client-urls)',
    },
  );
}
