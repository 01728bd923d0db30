// static_shm: memory regions shared between domains. The owner's domain
// creates one host file per region id (/dev/shm, sparse); every domain naming
// the id maps it as an ivshmem-plain PCI device. The region lives as long as
// one domain using it does.
//
// Ids are per sponsor: alice's region 'r1' and bob's 'r1' are two regions, and
// a domain reaches another sponsor's region only where the admin granted it
// (`xenode shm-grant OWNER/ID SPONSOR`), which persists in shm-grants.json.

import { createHash } from 'node:crypto';
import { closeSync, ftruncateSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { StaticShmSpec } from '../../config/types.ts';
import { isValidBarSize, ivshmemArgs, SHM_MAX_REGIONS, shmSlot } from '../../engine/shm-args.ts';
import { XenodeError } from '../../errors.ts';
import type { Domain } from '../../toolstack/domain.ts';
import type { DaemonLog } from '../../toolstack/log.ts';
import type { LaunchContribution, PluginHost, ToolstackPlugin } from '../../toolstack/plugin.ts';
import type { DomainStoreSink } from '../../toolstack/store-sink.ts';

export interface ShmRegionView {
  id: string;
  /** The sponsor whose namespace holds the id. */
  sponsor: string;
  path: string;
  size: number;
  /** Domid of the owner, if it is still there. */
  owner?: number;
  users: number[];
}

interface Region {
  /** `sponsor/id`. */
  key: string;
  sponsor: string;
  id: string;
  path: string;
  size: number;
  owner?: number;
  users: Set<number>;
}

const hex = (n: number) => `0x${n.toString(16)}`;
const SPONSOR_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** `sponsor/id`, as a region is named across sponsors. */
const GRANT_KEY = /^([a-z0-9][a-z0-9_-]{0,63})\/([A-Za-z0-9_]{1,128})$/;

export class StaticShmPlugin implements ToolstackPlugin {
  readonly name = 'static-shm';
  private regions = new Map<string, Region>();
  private dir = '/dev/shm';
  private prefix = 'xenode-';
  private log?: DaemonLog;
  private store?: DomainStoreSink;
  private swept = false;
  /** `borrowerSponsor/id` -> `ownerSponsor/id`, set by the admin. */
  private grants = new Map<string, string>();
  private grantsFile?: string;

  constructor(dir?: string) {
    if (dir) this.dir = dir;
  }

  async start(host: PluginHost): Promise<void> {
    this.log = host.log;
    this.store = host.store;
    // Several daemons (tests, a second XENODE_DIR) share /dev/shm: ids are per daemon.
    this.prefix = `xenode-${createHash('sha256').update(host.dirs.base).digest('hex').slice(0, 8)}-`;
    this.grantsFile = join(host.dirs.base, 'shm-grants.json');
    try {
      const saved = JSON.parse(readFileSync(this.grantsFile, 'utf8')) as Record<string, string>;
      for (const [k, v] of Object.entries(saved)) if (GRANT_KEY.test(k) && GRANT_KEY.test(v)) this.grants.set(k, v);
    } catch {
      /* no grants yet */
    }
  }

  /** The host file of region `key` (`sponsor/id`: both halves are file-name safe). */
  pathOf(key: string): string {
    return join(this.dir, `${this.prefix}${key.replace('/', '.')}`);
  }

  /** The region a domain of `sponsor` means by `id`: its own, or one the admin granted it to borrow. */
  private keyOf(sponsor: string, s: StaticShmSpec): string {
    const own = `${sponsor}/${s.id}`;
    return s.role === 'borrower' ? (this.grants.get(own) ?? own) : own;
  }

  /** Let `borrower`'s domains borrow `owner`'s region `id` under the same id (admin only, via the API). */
  grant(region: string, borrower: string): void {
    const m = GRANT_KEY.exec(region);
    if (!m || !SPONSOR_RE.test(borrower))
      throw new XenodeError('usage', `invalid grant '${region}' to '${borrower}'`, {
        hint: 'e.g. xenode shm-grant alice/r1 bob',
      });
    const key = `${borrower}/${m[2]}`;
    if (key === region) throw new XenodeError('usage', 'a sponsor always reaches its own regions');
    this.grants.set(key, region);
    this.saveGrants();
  }

  ungrant(region: string, borrower: string): void {
    const m = GRANT_KEY.exec(region);
    const key = m ? `${borrower}/${m[2]}` : '';
    if (this.grants.get(key) !== region) throw new XenodeError('not-found', `no grant of ${region} to ${borrower}`);
    this.grants.delete(key);
    this.saveGrants();
  }

  private saveGrants(): void {
    if (this.grantsFile) writeFileSync(this.grantsFile, JSON.stringify(Object.fromEntries(this.grants)));
  }

  async beforeLaunch(d: Domain): Promise<LaunchContribution | undefined> {
    const specs = d.rec.config.static_shm;
    if (specs.length === 0) return undefined;
    if (specs.length > SHM_MAX_REGIONS) {
      throw new XenodeError('config', `static_shm: ${specs.length} regions, at most ${SHM_MAX_REGIONS} per domain`);
    }
    // Check every region before touching any, so a refusal leaves nothing behind.
    for (const s of specs) this.check(d, s);
    const qemuArgs: string[] = [];
    const cmdline: string[] = [];
    try {
      specs.forEach((s, i) => {
        const r = this.enter(d, s);
        const slot = shmSlot(i);
        qemuArgs.push(...ivshmemArgs(s.id, r.path, r.size, slot));
        // The guest finds each region by id: xenode.shm=ID:SLOT:OFFSET:SIZE (xenode-shm reads it).
        cmdline.push(`xenode.shm=${s.id}:${slot.toString(16)}:${hex(s.offset)}:${hex(s.size)}`);
        this.record(d, s, slot, r.path);
      });
    } catch (e) {
      await this.onTeardown(d);
      throw e instanceof XenodeError
        ? e
        : new XenodeError('engine', `static_shm: ${e instanceof Error ? e.message : String(e)}`);
    }
    return { qemuArgs, cmdline };
  }

  async afterReattach(d: Domain): Promise<void> {
    for (const s of d.rec.config.static_shm) {
      const key = this.keyOf(d.rec.sponsor, s);
      const r = this.regions.get(key) ?? this.newRegion(key, s.role === 'owner' ? s.size : s.offset + s.size);
      r.users.add(d.domid);
      if (s.role === 'owner') {
        r.owner = d.domid;
        r.size = s.size;
      }
    }
  }

  async onTeardown(d: Domain): Promise<void> {
    for (const r of [...this.regions.values()]) {
      if (!r.users.delete(d.domid)) continue;
      if (r.owner === d.domid) r.owner = undefined;
      if (r.users.size > 0) continue;
      this.regions.delete(r.key);
      rmSync(r.path, { force: true });
      this.log?.info(`static_shm ${r.key}: last user gone, ${r.path} removed`, d.domid);
    }
  }

  routes(app: FastifyInstance): void {
    // Routes are registered once reattachment is over: a region file no live domain
    // uses is left from domains that died while no daemon was watching.
    this.sweep();
    app.get('/v1/shm', async (req) => {
      const p = req.principal;
      const mine = (r: ShmRegionView) =>
        r.sponsor === p.sponsor || this.grants.get(`${p.sponsor}/${r.id}`) === `${r.sponsor}/${r.id}`;
      return this.list().filter((r) => p.admin || mine(r));
    });
    app.get('/v1/shm/grants', async (req) => {
      if (!req.principal.admin) throw new XenodeError('permission', 'only the admin may list shm grants');
      return [...this.grants].map(([to, region]) => ({ region, sponsor: to.slice(0, to.indexOf('/')) }));
    });
    app.post<{ Body: { region?: unknown; sponsor?: unknown; revoke?: unknown } }>('/v1/shm/grants', async (req) => {
      if (!req.principal.admin) throw new XenodeError('permission', 'only the admin may grant shared memory');
      const { region, sponsor, revoke } = req.body ?? {};
      if (typeof region !== 'string' || typeof sponsor !== 'string')
        throw new XenodeError('usage', 'shm grants need {"region": "OWNER/ID", "sponsor": S}');
      if (revoke === true) this.ungrant(region, sponsor);
      else this.grant(region, sponsor);
      return { ok: true };
    });
  }

  private sweep(): void {
    if (this.swept) return;
    this.swept = true;
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return;
    }
    const live = new Set([...this.regions.values()].map((r) => r.path));
    for (const n of names) {
      const path = join(this.dir, n);
      if (!n.startsWith(this.prefix) || live.has(path)) continue;
      rmSync(path, { force: true });
      this.log?.info(`static_shm: removed ${path}, left by domains that are gone`);
    }
  }

  list(): ShmRegionView[] {
    return [...this.regions.values()]
      .map((r) => ({
        id: r.id,
        sponsor: r.sponsor,
        path: r.path,
        size: r.size,
        owner: r.owner,
        users: [...r.users].sort((a, b) => a - b),
      }))
      .sort((a, b) => a.sponsor.localeCompare(b.sponsor) || a.id.localeCompare(b.id));
  }

  private check(d: Domain, s: StaticShmSpec): void {
    const r = this.regions.get(this.keyOf(d.rec.sponsor, s));
    if (s.role === 'owner') {
      if (!isValidBarSize(s.size)) {
        throw new XenodeError('config', `static_shm '${s.id}': size ${hex(s.size)} is not a power of two`, {
          hint: 'the region is a PCI BAR, whose size must be a power of two (e.g. 0x100000)',
        });
      }
      if (r?.owner !== undefined && r.owner !== d.domid) {
        throw new XenodeError('conflict', `static_shm '${s.id}' already has an owner (domain ${r.owner})`, {
          hint: 'only one domain may say role=owner for an id',
        });
      }
      if (r && r.size !== s.size) {
        throw new XenodeError(
          'config',
          `static_shm '${s.id}': size ${hex(s.size)} differs from the live region's ${hex(r.size)}`,
          {
            hint: 'give the size its borrowers use, or destroy them first',
          },
        );
      }
      return;
    }
    if (r?.owner === undefined) {
      throw new XenodeError('not-found', `static_shm '${s.id}' has no owner`, {
        hint: `create the domain with role=owner for '${s.id}' first`,
      });
    }
    if (s.offset + s.size > r.size) {
      throw new XenodeError(
        'config',
        `static_shm '${s.id}': offset ${hex(s.offset)} + size ${hex(s.size)} exceeds the owner's size ${hex(r.size)}`,
        { hint: `the owner (domain ${r.owner}) shares ${hex(r.size)} bytes` },
      );
    }
  }

  /** Add the domain to the region, creating the owner's file on first use. */
  private enter(d: Domain, s: StaticShmSpec): Region {
    const key = this.keyOf(d.rec.sponsor, s);
    let r = this.regions.get(key);
    if (!r) {
      // Only an owner gets here (check() refused borrowers): start from zeroed memory.
      r = this.newRegion(key, s.size);
      rmSync(r.path, { force: true });
      const fd = openSync(r.path, 'wx', 0o600);
      try {
        ftruncateSync(fd, s.size);
      } finally {
        closeSync(fd);
      }
      this.log?.info(`static_shm ${s.id}: created ${r.path} (${hex(s.size)} bytes)`, d.domid);
    }
    if (s.role === 'owner') r.owner = d.domid;
    r.users.add(d.domid);
    return r;
  }

  private newRegion(key: string, size: number): Region {
    const slash = key.indexOf('/');
    const r: Region = {
      key,
      sponsor: key.slice(0, slash),
      id: key.slice(slash + 1),
      path: this.pathOf(key),
      size,
      users: new Set(),
    };
    this.regions.set(key, r);
    return r;
  }

  /** Bookkeeping under ~/static_shm/<id>, as the xl patch series keeps it. */
  private record(d: Domain, s: StaticShmSpec, slot: number, path: string): void {
    const w = (k: string, v: string) => this.store?.writeDomainKey(d.domid, `static_shm/${s.id}/${k}`, v);
    w('role', s.role);
    w('begin', hex(s.begin));
    w('size', hex(s.size));
    w('offset', hex(s.offset));
    w('prot', s.prot);
    w('cache_policy', s.cachePolicy);
    w('pci', `0000:00:${slot.toString(16).padStart(2, '0')}.0`);
    w('path', path);
  }
}
