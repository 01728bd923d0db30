// The daemon's side of the pool: membership (a lease kept alive one request at a
// time, the heartbeat the fencer reads), the pool-wide index of domains, placing
// and forwarding creates, migration by host name, and failover of HA domains
// from hosts whose lease expired. docs/pool.md explains the design and timing.

import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { cpus, hostname, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import type { Etcd3 } from 'etcd3';
import type { ApiContext } from '../../api/context.ts';
import type { DomainConfig } from '../../config/types.ts';
import { type WireError, XenodeError } from '../../errors.ts';
import type { XenodeDirs } from '../../toolstack/dirs.ts';
import type { Domain } from '../../toolstack/domain.ts';
import type { DaemonLog } from '../../toolstack/log.ts';
import { LOCAL_ADMIN, type Principal } from '../../toolstack/principal.ts';
import type { Toolstack } from '../../toolstack/toolstack.ts';
import { connect, getJson, grantLease, keepAliveOnce, listJson, unreachable } from './etcd.ts';
import { Fencer, monoMs } from './fencer.ts';
import {
  HOST_NAME_RE,
  type HostRecord,
  type IndexEntry,
  K,
  type PeerRecord,
  POOL_NAME_RE,
  type PoolFile,
  type PoolMeta,
} from './model.ts';
import { type Placement, place } from './placement.ts';
import { checkSecretShape, newSecret, seal, secretHash, secretMatches, unseal } from './secret.ts';

/** Headers of a domain command forwarded to its host: from which host, on behalf of which sponsor ('' = admin). */
export const FORWARD_FROM = 'x-xenode-pool-from';
export const FORWARD_SPONSOR = 'x-xenode-pool-sponsor';

/** After a host's lease is seen gone, wait this long more before starting its HA domains elsewhere. */
const GRACE_MS = 1000;
/** The daemon stops trusting its lease this long before the fencer acts. */
const FRESH_MARGIN_MS = 200;
const MIN_TTL = 2;
const MAX_TTL = 60;

export interface JoinRequest {
  pool: string;
  etcd: string[];
  host?: string;
  secret?: string;
  address?: string;
  ttl?: number;
  shared?: string;
}

export interface PoolHostView {
  name: string;
  address: string;
  memTotalMiB: number;
  freeMiB: number;
  domains: number;
  load: number;
  version: string;
  cpus: number;
  health: 'ok' | 'down';
}

export interface PoolDomainView {
  name: string;
  uuid: string;
  host: string;
  state: string;
  ha: boolean;
  memory: number;
  sponsor: string;
}

function msg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class PoolService {
  private ts?: Toolstack;
  private ctx?: ApiContext;
  private file?: PoolFile;
  private meta?: PoolMeta;
  private etcd?: Etcd3;
  private leaseId?: string;
  /** monoMs at which the last keepalive etcd acknowledged was sent. */
  private lastOk = Number.NEGATIVE_INFINITY;
  private live = new Map<string, HostRecord>();
  private peers = new Map<string, PeerRecord>();
  private index = new Map<string, { e: IndexEntry; mod: string }>();
  private missingSince = new Map<string, number>();
  /** Names this host is starting (failover, restart after a fence). */
  private starting = new Set<string>();
  /** uuids of domains the pool itself is stopping (stale copies): their index entries stay. */
  private dropping = new Set<string>();
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private fencer?: Fencer;
  private etcdDown = false;
  private ticks = 0;

  constructor(
    private readonly dirs: XenodeDirs,
    private readonly log: DaemonLog,
  ) {}

  private get poolFilePath(): string {
    return join(this.dirs.base, 'pool.json');
  }

  private get poolDir(): string {
    return join(this.dirs.base, 'pool');
  }

  get member(): boolean {
    return this.file !== undefined;
  }

  get me(): string {
    return this.file?.host ?? '';
  }

  /** Called once the API is up (routes): the toolstack is known; rejoin a pool of an earlier run. */
  attach(ctx: ApiContext): void {
    if (this.ctx) return;
    this.ctx = ctx;
    this.ts = ctx.toolstack;
    if (!existsSync(this.poolFilePath)) return;
    const f = JSON.parse(readFileSync(this.poolFilePath, 'utf8')) as PoolFile;
    this.file = f;
    // Off the start-up path: the daemon answers while etcd is being reached.
    setImmediate(() => {
      this.begin().catch((e) => this.log.error(`pool ${f.pool}: ${msg(e)}; retrying`));
    });
  }

  private fenceMs(): number {
    return ((this.meta?.ttl ?? 10) * 1000) / 2;
  }

  /** This host may run HA domains now: etcd acknowledged its lease recently enough. */
  fresh(): boolean {
    return this.meta !== undefined && monoMs() - this.lastOk < this.fenceMs() - FRESH_MARGIN_MS;
  }

  // ---- membership ---------------------------------------------------------

  async create(req: JoinRequest): Promise<{ secret: string }> {
    this.refuseIfMember();
    checkPoolName(req.pool);
    const ttl = req.ttl ?? 10;
    if (!Number.isInteger(ttl) || ttl < MIN_TTL || ttl > MAX_TTL)
      throw new XenodeError('usage', `--ttl must be a whole number of seconds, ${MIN_TTL} to ${MAX_TTL}`);
    const shared = req.shared === undefined ? undefined : resolve(req.shared);
    if (shared !== undefined && !existsSync(shared))
      throw new XenodeError('not-found', `shared directory ${shared} does not exist`);
    const etcd = this.open(req.etcd);
    const secret = newSecret();
    const meta: PoolMeta = { secretHash: secretHash(secret), ttl, shared, created: new Date().toISOString() };
    try {
      const r = await etcd
        .if(K.meta(req.pool), 'Create', '==', 0)
        .then(etcd.put(K.meta(req.pool)).value(JSON.stringify(meta)))
        .commit();
      if (!r.succeeded)
        throw new XenodeError('conflict', `pool ${req.pool} already exists in this etcd`, {
          hint: 'join it with its secret',
        });
    } catch (e) {
      etcd.close();
      throw e instanceof XenodeError ? e : unreachable(req.etcd, e);
    }
    await this.joinWith(etcd, { ...req, secret }, meta);
    return { secret };
  }

  async join(req: JoinRequest): Promise<void> {
    this.refuseIfMember();
    checkPoolName(req.pool);
    checkSecretShape(req.secret ?? '');
    const etcd = this.open(req.etcd);
    let meta: PoolMeta | undefined;
    try {
      meta = await getJson<PoolMeta>(etcd, K.meta(req.pool));
    } catch (e) {
      etcd.close();
      throw unreachable(req.etcd, e);
    }
    if (!meta) {
      etcd.close();
      throw new XenodeError('not-found', `no pool ${req.pool} in this etcd`, { hint: 'xenode pool create it first' });
    }
    if (!secretMatches(req.secret ?? '', meta.secretHash)) {
      etcd.close();
      throw new XenodeError('permission', `the pool secret is not ${req.pool}'s`, {
        hint: 'give the secret `xenode pool create` printed',
      });
    }
    await this.joinWith(etcd, req, meta);
  }

  private open(endpoints: string[]): Etcd3 {
    if (!Array.isArray(endpoints) || endpoints.length === 0 || endpoints.length > 7)
      throw new XenodeError('usage', 'give 1 to 7 etcd client URLs with --etcd');
    for (const u of endpoints) {
      if (!/^https?:\/\/[A-Za-z0-9.:[\]-]+(:\d+)?\/?$/.test(u))
        throw new XenodeError('usage', `'${u.slice(0, 80)}' is not an etcd client URL`, {
          hint: 'e.g. http://10.0.0.1:2379',
        });
    }
    return connect(endpoints);
  }

  private refuseIfMember(): void {
    if (this.file)
      throw new XenodeError('state', `this host is already in pool ${this.file.pool}`, {
        hint: 'xenode pool leave first',
      });
  }

  private async joinWith(etcd: Etcd3, req: JoinRequest, meta: PoolMeta): Promise<void> {
    const host = req.host ?? hostname().split('.')[0] ?? 'host';
    if (!HOST_NAME_RE.test(host)) {
      etcd.close();
      throw new XenodeError('usage', `invalid host name '${host.slice(0, 80)}'`, {
        hint: 'letters, digits, ., _ and -',
      });
    }
    const ctx = this.ctx;
    if (!ctx) throw new XenodeError('internal', 'pool service not attached');
    const address = req.address ?? this.tcpAddress();
    if (!address) {
      etcd.close();
      throw new XenodeError('state', 'this daemon has no TCP API for the pool to reach it', {
        hint: 'start xenoded with XENODE_LISTEN=HOST:PORT',
      });
    }
    // An admin token of this host for the other members, sealed with the pool secret.
    const { token, info } = ctx.tokens.create('pool', { admin: true, label: `pool ${req.pool} peers` });
    const peer: PeerRecord = { address, token: seal(req.secret as string, token) };
    let ok = false;
    try {
      const r = await etcd
        .if(K.peer(req.pool, host), 'Create', '==', 0)
        .then(etcd.put(K.peer(req.pool, host)).value(JSON.stringify(peer)))
        .commit();
      ok = r.succeeded;
    } catch (e) {
      ctx.tokens.revoke(info.id);
      etcd.close();
      throw unreachable(req.etcd, e);
    }
    if (!ok) {
      ctx.tokens.revoke(info.id);
      etcd.close();
      throw new XenodeError('conflict', `host name ${host} is already in pool ${req.pool}`, {
        hint: 'join with another --host NAME',
      });
    }
    mkdirSync(this.poolDir, { recursive: true, mode: 0o700 });
    writeFileSync(join(this.poolDir, 'peer-token-id'), info.id, { mode: 0o600 });
    this.file = { pool: req.pool, etcd: req.etcd, host, secret: req.secret as string, address: req.address };
    writeFileSync(this.poolFilePath, JSON.stringify(this.file), { mode: 0o600 });
    this.etcd = etcd;
    this.meta = meta;
    await this.begin();
    // What already runs here joins the index.
    for (const d of this.localDomains()) await this.register(d).catch(() => undefined);
  }

  private tcpAddress(): string | undefined {
    try {
      const t = JSON.parse(readFileSync(this.dirs.tcpInfo, 'utf8')) as { host: string; port: number };
      return `${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;
    } catch {
      return undefined;
    }
  }

  private async begin(): Promise<void> {
    const f = this.file as PoolFile;
    this.etcd ??= connect(f.etcd);
    if (!this.meta) {
      for (;;) {
        try {
          this.meta = await getJson<PoolMeta>(this.etcd, K.meta(f.pool));
          if (!this.meta) throw new Error(`pool ${f.pool} is gone from etcd`);
          break;
        } catch (e) {
          if (this.stopped) return;
          this.log.warn(`pool ${f.pool}: ${msg(e)}; retrying`);
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    }
    mkdirSync(this.poolDir, { recursive: true, mode: 0o700 });
    this.fencer = new Fencer(this.poolDir, this.fenceMs());
    this.fencer.ensure();
    this.updateFencePids();
    // A restarted daemon keeps the lease of the one before if it still lives: its HA domains run on.
    const leaseFile = join(this.poolDir, 'lease');
    const old = existsSync(leaseFile) ? readFileSync(leaseFile, 'utf8').trim() : '';
    if (old) {
      const sent = monoMs();
      const ttl = await keepAliveOnce(this.etcd, old).catch(() => 0);
      if (ttl > 0) {
        this.leaseId = old;
        this.acknowledged(sent);
        this.log.info(`pool ${f.pool}: kept lease ${old}`);
      }
    }
    if (!this.leaseId) await this.newLease();
    await this.publishHost();
    await this.refresh().catch(() => undefined);
    this.log.info(`pool ${f.pool}: host ${f.host} is a member (lease TTL ${this.meta.ttl} s)`);
    this.schedule();
  }

  private async newLease(): Promise<void> {
    const sent = monoMs();
    this.leaseId = await grantLease(this.etcd as Etcd3, (this.meta as PoolMeta).ttl);
    writeFileSync(join(this.poolDir, 'lease'), this.leaseId);
    this.acknowledged(sent);
  }

  private acknowledged(sent: number): void {
    if (sent > this.lastOk) this.lastOk = sent;
    this.fencer?.beat(this.lastOk);
  }

  private async publishHost(): Promise<void> {
    const f = this.file as PoolFile;
    const rec: HostRecord = {
      name: f.host,
      address: f.address ?? this.tcpAddress() ?? '',
      memTotalMiB: Math.floor(totalmem() / 1048576),
      cpus: cpus().length,
      load: Math.round((loadavg()[0] ?? 0) * 100) / 100,
      version: this.ctx?.hostInfo().xenode_version ?? '?',
      at: new Date().toISOString(),
    };
    await (this.etcd as Etcd3)
      .put(K.host(f.pool, f.host))
      .value(JSON.stringify(rec))
      .lease(this.leaseId as string);
  }

  private schedule(): void {
    if (this.stopped || !this.file) return;
    const every = Math.max(250, ((this.meta?.ttl ?? 10) * 1000) / 8);
    this.timer = setTimeout(() => {
      this.tick()
        .catch((e) => this.log.error(`pool: ${msg(e)}`))
        .finally(() => this.schedule());
    }, every);
  }

  private async tick(): Promise<void> {
    const etcd = this.etcd as Etcd3;
    this.ticks++;
    const sent = monoMs();
    let ttl: number;
    try {
      ttl = await keepAliveOnce(etcd, this.leaseId as string);
    } catch (e) {
      if (!this.etcdDown) this.log.warn(`pool: cannot renew the lease: ${msg(e)}`);
      this.etcdDown = true;
      return;
    }
    if (this.etcdDown) this.log.info('pool: etcd answers again');
    this.etcdDown = false;
    if (ttl <= 0) {
      await this.leaseLost();
      return;
    }
    this.acknowledged(sent);
    if (this.ticks % 8 === 0) await this.publishHost();
    await this.refresh();
    if (this.fresh()) {
      await this.reconcile();
      await this.failover();
    }
  }

  /** etcd says our lease is gone: the others may be starting our HA domains. Stop ours, then rejoin. */
  private async leaseLost(): Promise<void> {
    this.lastOk = Number.NEGATIVE_INFINITY;
    this.log.warn('pool: this host lost its lease; stopping its HA domains (they run elsewhere)');
    for (const d of this.localDomains()) {
      if (!d.rec.config.ha) continue;
      this.dropping.add(d.rec.uuid);
      this.fencer?.note(JSON.stringify({ lost: d.name, at: Date.now() }));
      await this.ts?.destroy(d).catch(() => undefined);
    }
    this.updateFencePids();
    await this.newLease();
    await this.publishHost();
    this.log.info(`pool: rejoined with lease ${this.leaseId}`);
  }

  private async refresh(): Promise<void> {
    const f = this.file as PoolFile;
    const etcd = this.etcd as Etcd3;
    const [hosts, peers, doms] = await Promise.all([
      listJson<HostRecord>(etcd, K.hosts(f.pool)),
      listJson<PeerRecord>(etcd, K.peers(f.pool)),
      listJson<IndexEntry>(etcd, K.domains(f.pool)),
    ]);
    this.live = new Map(hosts.map((h) => [h.value.name, h.value]));
    this.peers = new Map(peers.map((p) => [p.key.slice(K.peers(f.pool).length), p.value]));
    this.index = new Map(doms.map((d) => [d.value.name, { e: d.value, mod: d.mod }]));
    const now = Date.now();
    const named = new Set([...this.peers.keys(), ...doms.map((d) => d.value.host)]);
    for (const h of named) {
      if (this.live.has(h)) this.missingSince.delete(h);
      else if (!this.missingSince.has(h)) this.missingSince.set(h, now);
    }
  }

  private localDomains(): Domain[] {
    return this.ts?.list(LOCAL_ADMIN) ?? [];
  }

  private updateFencePids(): void {
    const pids = this.localDomains()
      .filter((d) => d.rec.config.ha && d.rec.pid)
      .map((d) => d.rec.pid as number);
    this.fencer?.setPids(pids);
  }

  // ---- the index ----------------------------------------------------------

  private entryFor(d: Domain): IndexEntry {
    const cfg = d.rec.config;
    const e: IndexEntry = {
      name: d.name,
      uuid: d.rec.uuid,
      host: this.me,
      state: 'running',
      ha: cfg.ha === true,
      memory: cfg.memory,
      sponsor: d.rec.sponsor,
    };
    if (cfg.ha) e.config = { ...cfg, uuid: d.rec.uuid };
    return e;
  }

  /** A domain runs here: the index says so (new entry, or ours now after a migration or failover). */
  async register(d: Domain): Promise<void> {
    if (!this.file || d.name.includes('--')) return;
    const f = this.file;
    const etcd = this.etcd as Etcd3;
    const key = K.domain(f.pool, d.name);
    const r = await etcd.get(key).exec();
    const kv = r.kvs[0];
    const want = this.entryFor(d);
    if (!kv) {
      const t = await etcd
        .if(key, 'Create', '==', 0)
        .and(K.uuid(f.pool, d.rec.uuid), 'Create', '==', 0)
        .then(etcd.put(key).value(JSON.stringify(want)), etcd.put(K.uuid(f.pool, d.rec.uuid)).value(d.name))
        .commit();
      if (!t.succeeded) this.log.error(`pool: ${d.name} or its uuid is already in the pool index`, d.domid);
      return;
    }
    const cur = JSON.parse(kv.value.toString('utf8')) as IndexEntry;
    if (cur.uuid !== d.rec.uuid || (cur.host !== this.me && cur.migratingTo !== this.me)) {
      this.log.error(`pool: the index has ${d.name} on host ${cur.host}; this copy is not registered`, d.domid);
      return;
    }
    await etcd
      .if(key, 'Mod', '==', kv.mod_revision)
      .then(etcd.put(key).value(JSON.stringify(want)))
      .commit();
  }

  /** The domain is gone from this host: gone from the index, unless it now runs elsewhere. */
  async unregister(d: Domain): Promise<void> {
    if (!this.file) return;
    const uuid = d.rec.uuid;
    if (this.dropping.delete(uuid)) return;
    // A fenced HA domain (its QEMU killed while this host was not sure of its lease) stays indexed:
    // another host, or this one once its lease is confirmed, starts it again.
    if (d.rec.config.ha && (!this.fresh() || (d.rec.pid && this.fencer?.fencedLog().includes(`"pid":${d.rec.pid},`))))
      return;
    const f = this.file;
    const etcd = this.etcd as Etcd3;
    const name = await etcd.get(K.uuid(f.pool, uuid)).string();
    if (!name) return;
    const key = K.domain(f.pool, name);
    const r = await etcd.get(key).exec();
    const kv = r.kvs[0];
    if (!kv) return;
    const cur = JSON.parse(kv.value.toString('utf8')) as IndexEntry;
    if (cur.uuid !== uuid || cur.host !== this.me || cur.migratingTo || this.starting.has(name)) return;
    await etcd
      .if(key, 'Mod', '==', kv.mod_revision)
      .then(etcd.delete().key(key), etcd.delete().key(K.uuid(f.pool, uuid)))
      .commit();
  }

  onLaunched(d: Domain): void {
    this.updateFencePids();
    if (this.file && this.etcd) this.register(d).catch((e) => this.log.warn(`pool index: ${msg(e)}`, d.domid));
  }

  onGone(d: Domain): void {
    this.updateFencePids();
    if (this.file && this.etcd) this.unregister(d).catch((e) => this.log.warn(`pool index: ${msg(e)}`, d.domid));
  }

  /** admit(): names and uuids are the pool's; HA needs a pool and shared disks. */
  admit(cfg: DomainConfig, p: Principal = LOCAL_ADMIN): void {
    if (cfg.ha) {
      if (!this.file)
        throw new XenodeError('config', 'ha = 1 needs a pool: this host is in none', {
          hint: 'xenode pool create or join, or drop ha',
        });
      const shared = this.meta?.shared;
      for (const disk of cfg.disk) {
        if (!disk.target) continue;
        if (!shared || !(disk.target === shared || disk.target.startsWith(`${shared}/`)))
          throw new XenodeError('config', `ha = 1: disk ${disk.target} is not on the pool's shared storage`, {
            hint: shared ? `put HA domains' disks under ${shared}` : 'the pool was created without --shared DIR',
          });
      }
    }
    if (!this.file) return;
    const hit = this.index.get(cfg.name)?.e;
    if (hit && hit.host !== this.me && hit.migratingTo !== this.me && !this.starting.has(cfg.name))
      // A sponsor learns that the name is taken, not where.
      throw new XenodeError(
        'conflict',
        `domain name ${cfg.name} is already used in the pool${p.admin ? ` (on host ${hit.host})` : ''}`,
      );
    if (cfg.uuid) {
      for (const { e } of this.index.values()) {
        // An incoming migration's stand-in (NAME--incoming) carries the uuid of the entry it is coming for.
        if (e.uuid === cfg.uuid && e.name !== cfg.name && e.migratingTo !== this.me)
          throw new XenodeError(
            'conflict',
            `uuid ${cfg.uuid} is already used in the pool${p.admin ? ` (domain ${e.name})` : ''}`,
          );
      }
    }
  }

  /** beforeLaunch(): an HA domain starts only while this host is sure of its lease. */
  mayLaunch(d: Domain): void {
    if (d.rec.config.ha && !this.fresh())
      throw new XenodeError('state', `HA domain ${d.name} may not start: this host is not sure of its pool lease`, {
        hint: 'it runs again where the pool places it',
      });
  }

  // ---- reconcile and failover ----------------------------------------------

  private async reconcile(): Promise<void> {
    const local = this.localDomains();
    const byUuid = new Map(local.map((d) => [d.rec.uuid, d]));
    for (const d of local) {
      if (d.name.includes('--') || this.starting.has(d.name)) continue;
      const x = this.index.get(d.name)?.e;
      if (!x) {
        if (d.rec.state !== 'creating') await this.register(d).catch(() => undefined);
      } else if (x.uuid === d.rec.uuid && x.host !== this.me && x.migratingTo !== this.me && d.rec.config.ha) {
        // A stale copy: this host lost the domain while it could not renew its lease.
        this.log.warn(`pool: ${d.name} runs on ${x.host} now; stopping the copy here`, d.domid);
        this.dropping.add(d.rec.uuid);
        await this.ts?.destroy(d).catch(() => undefined);
      } else if (x.uuid === d.rec.uuid && x.host === this.me && x.state !== 'running' && d.rec.state === 'running') {
        await this.register(d).catch(() => undefined);
      }
    }
    for (const { e, mod } of this.index.values()) {
      if (e.host !== this.me || !e.ha || this.starting.has(e.name)) continue;
      if (e.state !== 'running' && e.state !== 'starting') continue;
      const d = byUuid.get(e.uuid);
      if (d && (d.rec.state === 'running' || d.rec.state === 'paused' || d.rec.state === 'creating')) continue;
      // Ours, with no guest: fenced while etcd was away, or killed with this daemon. Start it again here.
      void this.claimAndStart(e, mod, 'restarting here after a fence');
    }
    this.updateFencePids();
  }

  private async failover(): Promise<void> {
    const now = Date.now();
    const hosts = [...this.live.values()];
    const entries = [...this.index.values()].map((x) => x.e);
    for (const { e, mod } of this.index.values()) {
      if (!e.ha || e.host === this.me || this.live.has(e.host) || e.state === 'failed') continue;
      const since = this.missingSince.get(e.host);
      if (since === undefined || now - since < GRACE_MS) continue;
      let p: Placement;
      try {
        p = place(
          hosts,
          entries.filter((x) => x.name !== e.name),
          e.memory,
        );
      } catch {
        continue;
      }
      if (p.host.name !== this.me) continue;
      void this.claimAndStart(e, mod, `host ${e.host} lost its lease; placed here: ${p.reason}`);
    }
  }

  private async claimAndStart(e: IndexEntry, mod: string, why: string): Promise<void> {
    const f = this.file as PoolFile;
    const etcd = this.etcd as Etcd3;
    if (this.starting.has(e.name) || !e.config) return;
    this.starting.add(e.name);
    try {
      const key = K.domain(f.pool, e.name);
      const claimed: IndexEntry = { ...e, host: this.me, state: 'starting' };
      delete claimed.migratingTo;
      const t = await etcd
        .if(key, 'Mod', '==', mod)
        .then(etcd.put(key).value(JSON.stringify(claimed)))
        .commit();
      if (!t.succeeded) return;
      this.log.warn(`pool: starting HA domain ${e.name} (${why})`);
      const deadline = Date.now() + 60_000;
      for (;;) {
        if (Date.now() > deadline) throw new Error('this host was not sure of its lease for 60 s');
        if (!this.fresh()) {
          // Wait for the next acknowledged keepalive (a slow one leaves the window short).
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        // Still ours? (A lost lease in between may have let another host claim it.)
        const now = await getJson<IndexEntry>(etcd, key).catch(() => undefined);
        if (!now || now.uuid !== e.uuid || now.host !== this.me) return;
        const stale = this.localDomains().find((d) => d.rec.uuid === e.uuid || d.name === e.name);
        if (stale) {
          this.dropping.add(stale.rec.uuid);
          await this.ts?.destroy(stale).catch(() => undefined);
        }
        try {
          const sponsor = e.sponsor;
          await (this.ts as Toolstack).create(
            { ...e.config, name: e.name, uuid: e.uuid },
            { sponsor, admin: sponsor === 'admin' },
          );
          return;
        } catch (err) {
          // The disk's write lock: a copy elsewhere still holds it until that host's fencer acts.
          if (Date.now() > deadline) throw err;
          this.log.warn(`pool: ${e.name} did not start yet: ${msg(err)}`);
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    } catch (err) {
      this.log.error(`pool: could not start ${e.name}: ${msg(err)}`);
      const cur = await getJson<IndexEntry>(etcd, K.domain(f.pool, e.name)).catch(() => undefined);
      if (cur && cur.host === this.me && cur.state === 'starting')
        await etcd
          .put(K.domain(f.pool, e.name))
          .value(JSON.stringify({ ...cur, state: 'failed' }))
          .catch(() => undefined);
    } finally {
      this.starting.delete(e.name);
    }
  }

  async refreshNow(): Promise<void> {
    if (this.file && this.etcd) await this.refresh();
  }

  // ---- views --------------------------------------------------------------

  private need(): { f: PoolFile; etcd: Etcd3 } {
    if (!this.file || !this.etcd)
      throw new XenodeError('state', 'this host is in no pool', {
        hint: 'xenode pool create NAME --etcd URL, or pool join',
      });
    return { f: this.file, etcd: this.etcd };
  }

  async hosts(): Promise<{ pool: string; host: string; ttl: number; shared?: string; hosts: PoolHostView[] }> {
    const { f } = this.need();
    await this.refresh().catch((e) => {
      throw unreachable(f.etcd, e);
    });
    const names = [...new Set([...this.peers.keys(), ...this.live.keys()])].sort();
    const entries = [...this.index.values()].map((x) => x.e);
    const hosts = names.map((n): PoolHostView => {
      const h = this.live.get(n);
      const mine = entries.filter((e) => e.host === n);
      const used = mine.reduce((s, e) => s + e.memory, 0);
      return {
        name: n,
        address: h?.address ?? this.peers.get(n)?.address ?? '',
        memTotalMiB: h?.memTotalMiB ?? 0,
        freeMiB: h ? h.memTotalMiB - used : 0,
        domains: mine.length,
        load: h?.load ?? 0,
        version: h?.version ?? '-',
        cpus: h?.cpus ?? 0,
        health: h ? 'ok' : 'down',
      };
    });
    return { pool: f.pool, host: f.host, ttl: this.meta?.ttl ?? 0, shared: this.meta?.shared, hosts };
  }

  async domains(): Promise<PoolDomainView[]> {
    const { f } = this.need();
    await this.refresh().catch((e) => {
      throw unreachable(f.etcd, e);
    });
    return [...this.index.values()]
      .map(({ e }) => ({
        name: e.name,
        uuid: e.uuid,
        host: e.host,
        state: this.live.has(e.host) || e.state !== 'running' ? e.state : 'host-down',
        ha: e.ha,
        memory: e.memory,
        sponsor: e.sponsor,
      }))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  // ---- placement, forwarding, migration ----------------------------------------

  async createPlaced(
    cfg: DomainConfig,
    antiAffinity: string[],
  ): Promise<{ host: string; reason: string; domain: unknown }> {
    const { f, etcd } = this.need();
    await this.refresh();
    this.admit(cfg);
    const uuid = cfg.uuid ?? randomUUID();
    const config: DomainConfig = { ...cfg, uuid };
    const p = place(
      [...this.live.values()],
      [...this.index.values()].map((x) => x.e),
      cfg.memory,
      antiAffinity,
    );
    const entry: IndexEntry = {
      name: cfg.name,
      uuid,
      host: p.host.name,
      state: 'creating',
      ha: cfg.ha === true,
      memory: cfg.memory,
      sponsor: cfg.sponsor ?? 'admin',
    };
    const key = K.domain(f.pool, cfg.name);
    const t = await etcd
      .if(key, 'Create', '==', 0)
      .and(K.uuid(f.pool, uuid), 'Create', '==', 0)
      .then(etcd.put(key).value(JSON.stringify(entry)), etcd.put(K.uuid(f.pool, uuid)).value(cfg.name))
      .commit();
    if (!t.succeeded) {
      const by = await getJson<IndexEntry>(etcd, key);
      throw by
        ? new XenodeError('conflict', `domain name ${cfg.name} is already used in the pool (on host ${by.host})`)
        : new XenodeError('conflict', `uuid ${uuid} is already used in the pool`);
    }
    try {
      const domain = await this.call(p.host.name, 'POST', '/v1/domains', { config });
      return { host: p.host.name, reason: p.reason, domain };
    } catch (e) {
      await etcd
        .if(key, 'Value', '==', JSON.stringify(entry))
        .then(etcd.delete().key(key), etcd.delete().key(K.uuid(f.pool, uuid)))
        .commit()
        .catch(() => undefined);
      throw e;
    }
  }

  async migrate(dom: string, target: string, body: Record<string, unknown>): Promise<unknown> {
    const { f, etcd } = this.need();
    await this.refresh();
    const local = this.localDomains().find((d) => d.name === dom || String(d.domid) === dom);
    if (!local) {
      const x = this.index.get(dom)?.e;
      if (!x) throw new XenodeError('not-found', `no domain ${dom} in the pool`);
      // Forwarded to the host that runs it.
      return this.call(x.host, 'POST', `/v1/pool/domains/${encodeURIComponent(dom)}/migrate`, {
        ...body,
        host: target,
      });
    }
    if (!HOST_NAME_RE.test(target) || !this.peers.has(target))
      throw new XenodeError('not-found', `no host ${target.slice(0, 64)} in pool ${f.pool}`, {
        hint: 'xenode pool list shows its hosts',
      });
    if (target === this.me) throw new XenodeError('usage', `${local.name} already runs on ${target}`);
    if (!this.live.has(target)) throw new XenodeError('state', `pool host ${target} is down`);
    const peer = this.peers.get(target) as PeerRecord;
    const key = K.domain(f.pool, local.name);
    if (!this.index.has(local.name)) await this.register(local);
    const cur = await etcd.get(key).exec();
    const kv = cur.kvs[0];
    if (!kv) throw new XenodeError('state', `${local.name} is not in the pool index`);
    const e = JSON.parse(kv.value.toString('utf8')) as IndexEntry;
    const t = await etcd
      .if(key, 'Mod', '==', kv.mod_revision)
      .then(etcd.put(key).value(JSON.stringify({ ...e, migratingTo: target })))
      .commit();
    if (!t.succeeded) throw new XenodeError('conflict', `${local.name} changed in the pool index; try again`);
    const [h, port] = splitAddress(peer.address);
    try {
      // Its admit() must see the migratingTo just written.
      await this.call(target, 'POST', '/v1/pool/refresh');
      const r = await this.call(this.me, 'POST', `/v1/domains/${local.domid}/migrate`, {
        ...body,
        host: h,
        port,
        token: unseal(f.secret, peer.token),
      });
      await this.flip(local.name, e.uuid, target);
      return r;
    } catch (err) {
      const now = await getJson<IndexEntry>(etcd, key).catch(() => undefined);
      if (now && now.host === this.me && now.migratingTo === target) {
        const back: IndexEntry = { ...now };
        delete back.migratingTo;
        await etcd
          .put(key)
          .value(JSON.stringify(back))
          .catch(() => undefined);
      }
      throw err;
    }
  }

  /** The hand-over: host flips from here to the target in one write (unless the target already did). */
  private async flip(name: string, uuid: string, target: string): Promise<void> {
    const { f, etcd } = this.need();
    const key = K.domain(f.pool, name);
    for (let i = 0; i < 5; i++) {
      const r = await etcd.get(key).exec();
      const kv = r.kvs[0];
      if (!kv) return;
      const e = JSON.parse(kv.value.toString('utf8')) as IndexEntry;
      if (e.uuid !== uuid || e.host === target) return;
      const next: IndexEntry = { ...e, host: target, state: 'running' };
      delete next.migratingTo;
      const t = await etcd
        .if(key, 'Mod', '==', kv.mod_revision)
        .then(etcd.put(key).value(JSON.stringify(next)))
        .commit();
      if (t.succeeded) return;
    }
  }

  /** The index entry of a domain that runs on another pool host (by name or uuid), if any. */
  remoteEntry(ref: string): IndexEntry | undefined {
    if (!this.file) return undefined;
    let e = this.index.get(ref)?.e;
    if (!e && /^[0-9a-f-]{36}$/i.test(ref)) e = [...this.index.values()].find((x) => x.e.uuid === ref)?.e;
    return e && e.host !== this.me ? e : undefined;
  }

  /** Whether a token is the one this host gave the other members (its peer token). */
  isPeerToken(tokenId: string | undefined): boolean {
    if (!tokenId || !this.file) return false;
    try {
      return readFileSync(join(this.poolDir, 'peer-token-id'), 'utf8').trim() === tokenId;
    } catch {
      return false;
    }
  }

  /**
   * A domain command for another host, sent with that host's peer token and on
   * behalf of `p`: the owner applies its own sponsor rules to `p` (forward.ts).
   * Bounded in time: a host that stopped answering is an error, never a hang.
   */
  async forward(
    host: string,
    method: string,
    path: string,
    p: Principal,
    body: string | undefined,
    timeoutMs: number,
  ): Promise<{ status: number; text: string }> {
    const f = this.need().f;
    const peer = this.peers.get(host);
    if (!peer) throw new XenodeError('not-found', `no host ${host} in pool ${f.pool}`);
    if (!this.live.has(host))
      throw new XenodeError('state', `pool host ${host}, which runs this domain, is down`, {
        hint: 'an HA domain runs again elsewhere once its lease has expired (xenode list --pool)',
      });
    try {
      const r = await fetch(`http://${peer.address}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${unseal(f.secret, peer.token)}`,
          [FORWARD_FROM]: this.me,
          [FORWARD_SPONSOR]: p.admin ? '' : p.sponsor,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      return { status: r.status, text: await r.text() };
    } catch (e) {
      const why = (e as Error).name === 'TimeoutError' ? `no answer within ${Math.round(timeoutMs / 1000)} s` : msg(e);
      throw new XenodeError('engine', `pool host ${host}, which runs this domain, did not answer: ${why}`, {
        hint: 'xenode pool list shows its health',
      });
    }
  }

  /** A request to a pool host's API: this one over its Unix socket, the others with their peer token. */
  async call(host: string, method: string, path: string, body?: unknown): Promise<unknown> {
    const f = this.file as PoolFile;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    let status: number;
    let text: string;
    if (host === this.me) {
      ({ status, text } = await unixCall(this.dirs.socket, method, path, payload));
    } else {
      const peer = this.peers.get(host);
      if (!peer) throw new XenodeError('not-found', `no host ${host} in pool ${f.pool}`);
      let r: Response;
      try {
        r = await fetch(`http://${peer.address}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${unseal(f.secret, peer.token)}`,
            ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
          },
          body: payload,
        });
      } catch (e) {
        throw new XenodeError('engine', `cannot reach pool host ${host} at ${peer.address}: ${msg(e)}`);
      }
      status = r.status;
      text = await r.text();
    }
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (status >= 400) {
      const w = (parsed as { error?: WireError } | undefined)?.error;
      if (w) throw XenodeError.fromWire(w);
      throw new XenodeError('engine', `pool host ${host} answered HTTP ${status}`);
    }
    return parsed;
  }

  async leave(): Promise<void> {
    const { f, etcd } = this.need();
    await this.refresh();
    const mine = [...this.index.values()].filter((x) => x.e.host === this.me);
    if (mine.length > 0)
      throw new XenodeError('state', `this host still runs ${mine.map((x) => x.e.name).join(', ')} in pool ${f.pool}`, {
        hint: 'migrate them to another pool host or destroy them first',
      });
    if (this.timer) clearTimeout(this.timer);
    this.stopped = true;
    await etcd.delete().key(K.peer(f.pool, f.host));
    await etcd.delete().key(K.host(f.pool, f.host));
    if (this.leaseId) await etcd.leaseClient.leaseRevoke({ ID: this.leaseId }).catch(() => undefined);
    try {
      this.ctx?.tokens.revoke(readFileSync(join(this.poolDir, 'peer-token-id'), 'utf8').trim());
    } catch {
      /* already */
    }
    this.fencer?.stop();
    rmSync(this.poolDir, { recursive: true, force: true });
    rmSync(this.poolFilePath, { force: true });
    etcd.close();
    this.file = undefined;
    this.meta = undefined;
    this.etcd = undefined;
    this.leaseId = undefined;
    this.lastOk = Number.NEGATIVE_INFINITY;
    this.index.clear();
    this.live.clear();
    this.peers.clear();
    this.stopped = false;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.etcd?.close();
  }
}

function checkPoolName(p: string): void {
  if (typeof p !== 'string' || !POOL_NAME_RE.test(p))
    throw new XenodeError('usage', `invalid pool name '${String(p).slice(0, 40)}'`, {
      hint: 'lowercase letters, digits, _ and -, up to 32',
    });
}

function splitAddress(a: string): [string, number] {
  const i = a.lastIndexOf(':');
  return [a.slice(0, i).replace(/^\[|\]$/g, ''), Number(a.slice(i + 1))];
}

function unixCall(
  socketPath: string,
  method: string,
  path: string,
  body?: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = request(
      { socketPath, method, path, headers: body ? { 'content-type': 'application/json' } : {} },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          text += d;
        });
        res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
