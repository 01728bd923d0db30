// Storage pools and volumes as a toolstack plugin: its file gate vouches for the
// host files a sponsor's config names, its routes manage pools and volumes
// (docs/storage.md).

import { realpathSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../api/context.ts';
import { XenodeError } from '../../errors.ts';
import type { Domain } from '../../toolstack/domain.ts';
import type { PluginHost, ToolstackPlugin } from '../../toolstack/plugin.ts';
import { LOCAL_ADMIN } from '../../toolstack/principal.ts';
import type { Toolstack } from '../../toolstack/toolstack.ts';
import { imageFiles, StorageGate } from './gate.ts';
import type { VolumeFormat } from './names.ts';
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
   * A sponsor's files are checked again whenever a new QEMU is about to open
   * them (restart with a new QEMU, restore): a volume whose grant was revoked
   * or whose record is gone is refused, not skipped, so the restart fails
   * with that message. Files outside every pool are the admin's doing and stay
   * free. (The disk plugin asks the gate again for each disk's chain, to hand
   * it to QEMU.)
   */
  async beforeLaunch(d: Domain): Promise<undefined> {
    const sponsor = d.rec.sponsor;
    if (sponsor === 'admin') return undefined;
    const cfg = d.rec.config;
    if (cfg.kernel) this.fileGate.atLaunch(sponsor, cfg.kernel, { kind: 'kernel', write: false });
    if (cfg.ramdisk) this.fileGate.atLaunch(sponsor, cfg.ramdisk, { kind: 'ramdisk', write: false });
    for (const spec of cfg.disk) {
      if (spec.target === '') continue;
      const write = spec.access === 'rw' && spec.devtype === 'disk';
      this.fileGate.atLaunch(sponsor, spec.target, { kind: 'disk', write, format: spec.format });
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
      const files: Array<[string, VolumeFormat]> = [
        ...[cfg.kernel, cfg.ramdisk].map((f): [string | undefined, VolumeFormat] => [f, 'raw']),
        ...cfg.disk.map((s): [string, VolumeFormat] => [s.target, s.format]),
      ].filter((x): x is [string, VolumeFormat] => x[0] !== undefined && x[0] !== '');
      const open = new Set<string>();
      for (const [f, format] of files) {
        const real = realOrSelf(f);
        open.add(real);
        for (const g of imageFiles(real, format)) open.add(realOrSelf(g));
      }
      if (open.has(path)) out.push({ name: d.name, sponsor: d.rec.sponsor });
    }
    return out;
  }
}

export function storagePlugin(): StoragePlugin {
  return new StoragePlugin();
}
