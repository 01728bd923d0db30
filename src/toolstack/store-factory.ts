// Opens the control store for xenoded and maps lifecycle changes onto the
// xenstore layout: ~/name, ~/memory/{target,static-max} (KiB), /vm/<uuid>/...,
// plus Xenode's ~/state and ~/sponsor so anything can watch them.

import type { RouteGroup } from '../api/context.ts';
import { registerStoreRoutes } from '../api/routes-store.ts';
import { ControlStore, domainPath, readOnlyPerms, TOOLSTACK } from '../store/index.ts';
import type { XenodeDirs } from './dirs.ts';
import type { DomainRecord, DomainState, ShutdownReason } from './domain-table.ts';
import type { DaemonLog } from './log.ts';
import type { DomainStoreSink } from './store-sink.ts';

export class ControlStoreSink implements DomainStoreSink {
  constructor(
    readonly store: ControlStore,
    private readonly log: DaemonLog,
  ) {}

  // The store is the record others watch; a failure there is logged, never fatal to a domain.
  private guard(what: string, domid: number, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.log.warn(`store: ${what}: ${e instanceof Error ? e.message : String(e)}`, domid);
    }
  }

  introduce(rec: DomainRecord): void {
    this.guard('introduce', rec.domid, () => {
      if (!this.store.isDomainIntroduced(rec.domid)) this.store.introduceDomain(rec.domid, { name: rec.name });
      const home = domainPath(rec.domid);
      const w = (p: string, v: string) => this.store.write(TOOLSTACK, p, v);
      w(`${home}/vm`, `/vm/${rec.uuid}`);
      w(`${home}/sponsor`, rec.sponsor);
      w(`${home}/state`, rec.state);
      w(`${home}/memory/static-max`, String(rec.maxMiB * 1024));
      w(`${home}/memory/target`, String(rec.targetMiB * 1024));
      w(`${home}/cpu/count`, String(rec.config.vcpus));
      for (let i = 0; i < rec.config.maxvcpus; i++)
        w(`${home}/cpu/${i}/availability`, i < rec.config.vcpus ? 'online' : 'offline');
      // As libxl does: /vm/<uuid> is the toolstack's, readable by the domain (and so by its sponsor).
      const vm = `/vm/${rec.uuid}`;
      const ro = readOnlyPerms(rec.domid);
      // New nodes inherit the perms; setting them again fixes stores written before /vm was readable.
      const wro = (p: string, v: string) => {
        w(p, v);
        this.store.setPerms(TOOLSTACK, p, ro);
      };
      this.store.mkdir(TOOLSTACK, vm);
      this.store.setPerms(TOOLSTACK, vm, ro);
      wro(`${vm}/uuid`, rec.uuid);
      wro(`${vm}/name`, rec.name);
      wro(`${vm}/memory`, String(rec.targetMiB));
      wro(`${vm}/start_time`, (rec.startTime / 1000).toFixed(2));
    });
  }

  adopt(rec: DomainRecord): boolean {
    if (this.store.isDomainIntroduced(rec.domid)) return false;
    this.introduce(rec);
    return this.store.isDomainIntroduced(rec.domid);
  }

  setState(domid: number, state: DomainState, reason?: ShutdownReason): void {
    this.guard('state', domid, () => {
      if (!this.store.isDomainIntroduced(domid)) return;
      this.store
        .transaction(TOOLSTACK, (tx) => {
          tx.write(`${domainPath(domid)}/state`, state);
          if (reason) tx.write(`${domainPath(domid)}/shutdown-reason`, reason);
          else if (tx.tryRead(`${domainPath(domid)}/shutdown-reason`) !== undefined)
            tx.rm(`${domainPath(domid)}/shutdown-reason`);
        })
        .catch((e: unknown) => this.log.warn(`store: state: ${e instanceof Error ? e.message : String(e)}`, domid));
    });
  }

  setName(rec: DomainRecord): void {
    this.guard('rename', rec.domid, () => {
      void this.store.transaction(TOOLSTACK, (tx) => {
        tx.write(`${domainPath(rec.domid)}/name`, rec.name);
        tx.write(`/vm/${rec.uuid}/name`, rec.name);
      });
    });
  }

  setMemory(rec: DomainRecord): void {
    this.guard('memory', rec.domid, () => {
      void this.store.transaction(TOOLSTACK, (tx) => {
        tx.write(`${domainPath(rec.domid)}/memory/target`, String(rec.targetMiB * 1024));
        tx.write(`${domainPath(rec.domid)}/memory/static-max`, String(rec.maxMiB * 1024));
        tx.write(`/vm/${rec.uuid}/memory`, String(rec.targetMiB));
      });
    });
  }

  writeDomainKey(domid: number, rel: string, value: string | undefined): void {
    this.guard(rel, domid, () => {
      if (!this.store.isDomainIntroduced(domid)) return;
      const path = `${domainPath(domid)}/${rel}`;
      if (value !== undefined) this.store.write(TOOLSTACK, path, value);
      else if (this.store.tryRead(TOOLSTACK, path) !== undefined) this.store.rm(TOOLSTACK, path);
    });
  }

  readDomainKey(domid: number, rel: string): string | undefined {
    try {
      return this.store.tryRead(TOOLSTACK, `${domainPath(domid)}/${rel}`);
    } catch {
      return undefined;
    }
  }

  release(rec: DomainRecord): void {
    this.guard('release', rec.domid, () => {
      if (this.store.isDomainIntroduced(rec.domid)) this.store.releaseDomain(rec.domid);
      if (this.store.tryRead(TOOLSTACK, `/vm/${rec.uuid}`) !== undefined) this.store.rm(TOOLSTACK, `/vm/${rec.uuid}`);
    });
  }
}

/** Opens the daemon's store: the sink the lifecycle writes to, and the store's API routes. */
export interface StoreFactory {
  open(dirs: XenodeDirs, log: DaemonLog): { sink: DomainStoreSink; routes?: RouteGroup[]; close(): void };
}

export const controlStoreFactory: StoreFactory = {
  open(dirs, log: DaemonLog) {
    const store = new ControlStore({
      dbPath: dirs.storeDb,
      onWatchError: (e) => log.warn(`store watch callback failed: ${e instanceof Error ? e.message : String(e)}`),
    });
    return {
      sink: new ControlStoreSink(store, log),
      routes: [(app, ctx) => registerStoreRoutes(app, ctx, store)],
      close: () => store.close(),
    };
  },
};
