// static_shm: memory regions shared between domains. The owner's domain
// creates one host file per region id (/dev/shm, sparse); every domain naming
// the id maps it as an ivshmem-plain PCI device. The region lives as long as
// one domain using it does.

import { createHash } from 'node:crypto';
import { closeSync, ftruncateSync, openSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { StaticShmSpec } from '../config/types.ts';
import { isValidBarSize, ivshmemArgs, SHM_MAX_REGIONS, shmSlot } from '../engine/shm-args.ts';
import { XenodeError } from '../errors.ts';
import type { Domain } from './domain.ts';
import type { DaemonLog } from './log.ts';
import type { LaunchContribution, PluginHost, ToolstackPlugin } from './plugin.ts';
import type { DomainStoreSink } from './store-sink.ts';

export interface ShmRegionView {
  id: string;
  path: string;
  size: number;
  /** Domid of the owner, if it is still there. */
  owner?: number;
  users: number[];
}

interface Region {
  id: string;
  path: string;
  size: number;
  owner?: number;
  users: Set<number>;
}

const hex = (n: number) => `0x${n.toString(16)}`;

export class StaticShmPlugin implements ToolstackPlugin {
  readonly name = 'static-shm';
  private regions = new Map<string, Region>();
  private dir = '/dev/shm';
  private prefix = 'xenode-';
  private log?: DaemonLog;
  private store?: DomainStoreSink;
  private swept = false;

  constructor(dir?: string) {
    if (dir) this.dir = dir;
  }

  async start(host: PluginHost): Promise<void> {
    this.log = host.log;
    this.store = host.store;
    // Several daemons (tests, a second XENODE_DIR) share /dev/shm: ids are per daemon.
    this.prefix = `xenode-${createHash('sha256').update(host.dirs.base).digest('hex').slice(0, 8)}-`;
  }

  pathOf(id: string): string {
    return join(this.dir, `${this.prefix}${id}`);
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
      const r = this.regions.get(s.id) ?? this.newRegion(s.id, s.role === 'owner' ? s.size : s.offset + s.size);
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
      this.regions.delete(r.id);
      rmSync(r.path, { force: true });
      this.log?.info(`static_shm ${r.id}: last user gone, ${r.path} removed`, d.domid);
    }
  }

  routes(app: FastifyInstance): void {
    // Routes are registered once reattachment is over: a region file no live domain
    // uses is left from domains that died while no daemon was watching.
    this.sweep();
    app.get('/v1/shm', async () => this.list());
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
      .map((r) => ({ id: r.id, path: r.path, size: r.size, owner: r.owner, users: [...r.users].sort((a, b) => a - b) }))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  private check(d: Domain, s: StaticShmSpec): void {
    const r = this.regions.get(s.id);
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
    let r = this.regions.get(s.id);
    if (!r) {
      // Only an owner gets here (check() refused borrowers): start from zeroed memory.
      r = this.newRegion(s.id, s.size);
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

  private newRegion(id: string, size: number): Region {
    const r: Region = { id, path: this.pathOf(id), size, users: new Set() };
    this.regions.set(id, r);
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
