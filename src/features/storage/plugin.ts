// Storage pools and volumes as a toolstack plugin: its file gate vouches for the
// host files a sponsor's config names, its routes manage pools and volumes
// (docs/storage.md).

import { realpathSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../api/server.ts';
import { XenodeError } from '../../errors.ts';
import type { Domain } from '../../toolstack/domain.ts';
import type { PluginHost, ToolstackPlugin } from '../../toolstack/plugin.ts';
import { LOCAL_ADMIN } from '../../toolstack/principal.ts';
import type { Toolstack } from '../../toolstack/toolstack.ts';
import { imageFiles, StorageGate } from './gate.ts';
import { registerStorageRoutes } from './routes.ts';
import { StorageDb } from './storage-db.ts';
import { VolumeService } from './volumes.ts';

function realOrSelf(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

export class StoragePlugin implements ToolstackPlugin {
  readonly name = 'storage';
  private db?: StorageDb;
  private svc?: VolumeService;
  private ts?: Toolstack;
  readonly fileGate = new StorageGate(() => this.db);

  async start(host: PluginHost): Promise<void> {
    this.db = new StorageDb(host.dirs.stateDb);
    this.svc = new VolumeService(this.db, this.fileGate, host.sponsors, (p) => this.users(p));
  }

  routes(app: FastifyInstance, ctx: ApiContext): void {
    this.ts = ctx.toolstack;
    registerStorageRoutes(app, () => this.service);
  }

  /**
   * A sponsor's qcow2 volume is checked again whenever a QEMU is about to open it
   * (a restart with a new QEMU, rename-restart): a backing file may have been
   * rewritten since admission, by a guest that had it as a raw disk meanwhile.
   * Files that are not the sponsor's volumes are the admin's doing and stay free.
   */
  async beforeLaunch(d: Domain): Promise<undefined> {
    const sponsor = d.rec.sponsor;
    if (sponsor === 'admin') return undefined;
    for (const spec of d.rec.config.disk) {
      if (spec.target === '' || spec.format !== 'qcow2') continue;
      const v = this.fileGate.lookup(sponsor, spec.target);
      if (v) this.fileGate.checkVolume(v, { kind: 'disk', write: spec.access === 'rw', format: spec.format });
    }
    return undefined;
  }

  async stop(): Promise<void> {
    this.db?.close();
    this.db = undefined;
  }

  get service(): VolumeService {
    if (!this.svc) throw new XenodeError('internal', 'storage is not started');
    return this.svc;
  }

  /** Volumes and bytes a sponsor holds (for quota listings). */
  usage(sponsor: string): { volumes: number; diskBytes: number } {
    return this.svc?.usage(sponsor) ?? { volumes: 0, diskBytes: 0 };
  }

  /** Domains that have `path` open: as a disk, kernel or ramdisk, or somewhere in a disk's qcow2 chain. */
  private users(path: string): Array<{ name: string; sponsor: string }> {
    const out: Array<{ name: string; sponsor: string }> = [];
    for (const d of this.ts?.list(LOCAL_ADMIN) ?? []) {
      const cfg = d.rec.config;
      const files = [cfg.kernel, cfg.ramdisk, ...cfg.disk.map((s) => s.target)].filter(
        (f): f is string => f !== undefined && f !== '',
      );
      const open = new Set<string>();
      for (const f of files) {
        const real = realOrSelf(f);
        open.add(real);
        for (const g of imageFiles(real)) open.add(realOrSelf(g));
      }
      if (open.has(path)) out.push({ name: d.name, sponsor: d.rec.sponsor });
    }
    return out;
  }
}

export function storagePlugin(): StoragePlugin {
  return new StoragePlugin();
}
