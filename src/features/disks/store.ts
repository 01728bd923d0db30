// Disks in the control store, in xl's layout so xenstore tools and watchers find
// them where they expect:
//   /local/domain/<domid>/device/vbd/<devnum>/{backend,backend-id,state,virtual-device,device-type}
//   /local/domain/0/backend/vbd/<domid>/<devnum>/{frontend,frontend-id,params,mode,type,format,dev,device-type,online,state}

import type { DiskSpec } from '../../config/types.ts';
import { type ControlStore, domainPath, readOnlyPerms, TOOLSTACK } from '../../store/index.ts';
import type { DaemonLog } from '../../toolstack/log.ts';

/** XenbusState values the disk states map onto. */
export const XENBUS = { initialising: 1, connected: 4, closing: 5, closed: 6 } as const;

export function vbdBackendPath(domid: number, devnum: number): string {
  return `/local/domain/0/backend/vbd/${domid}/${devnum}`;
}

export function vbdFrontendPath(domid: number, devnum: number): string {
  return `${domainPath(domid)}/device/vbd/${devnum}`;
}

export class DiskStore {
  constructor(
    private readonly store: ControlStore | undefined,
    private readonly log: Pick<DaemonLog, 'warn'>,
  ) {}

  // The store mirrors the disks for watchers: a failure there never fails a disk operation.
  private guard(what: string, domid: number, fn: (s: ControlStore) => void): void {
    if (!this.store) return;
    try {
      fn(this.store);
    } catch (e) {
      this.log.warn(`store: ${what}: ${e instanceof Error ? e.message : String(e)}`, domid);
    }
  }

  write(domid: number, devnum: number, spec: DiskSpec, state: number): void {
    this.guard(`vbd ${devnum}`, domid, (s) => {
      if (!s.isDomainIntroduced(domid)) return;
      const fe = vbdFrontendPath(domid, devnum);
      const be = vbdBackendPath(domid, devnum);
      const w = (p: string, v: string) => s.write(TOOLSTACK, p, v);
      w(`${fe}/backend`, be);
      w(`${fe}/backend-id`, '0');
      w(`${fe}/virtual-device`, String(devnum));
      w(`${fe}/device-type`, spec.devtype);
      w(`${fe}/state`, String(state));
      w(`${be}/frontend`, fe);
      w(`${be}/frontend-id`, String(domid));
      w(`${be}/params`, spec.target);
      w(`${be}/mode`, spec.access === 'ro' ? 'r' : 'w');
      // libxl's name for a backend served by QEMU; Xenode's own for its backend process.
      w(`${be}/type`, spec.backendtype === 'xenode' ? 'xenode' : 'qdisk');
      w(`${be}/format`, spec.format);
      w(`${be}/dev`, spec.vdev);
      w(`${be}/device-type`, spec.devtype);
      w(`${be}/online`, '1');
      w(`${be}/state`, String(state));
      // As in Xen, the frontend domain may read its backend's nodes.
      s.setPerms(TOOLSTACK, be, readOnlyPerms(domid));
    });
  }

  /** A backend-served disk's process (backendtype=xenode): `xenode-backend/{state,pid,restarts}` under its backend node. */
  writeBackend(domid: number, devnum: number, r: { state: string; pid?: number; restarts: number }): void {
    this.guard(`vbd ${devnum} backend`, domid, (s) => {
      const be = vbdBackendPath(domid, devnum);
      if (s.tryRead(TOOLSTACK, be) === undefined) return;
      s.write(TOOLSTACK, `${be}/xenode-backend/state`, r.state);
      s.write(TOOLSTACK, `${be}/xenode-backend/pid`, r.pid === undefined ? '' : String(r.pid));
      s.write(TOOLSTACK, `${be}/xenode-backend/restarts`, String(r.restarts));
    });
  }

  setState(domid: number, devnum: number, state: number): void {
    this.guard(`vbd ${devnum} state`, domid, (s) => {
      const fe = vbdFrontendPath(domid, devnum);
      if (s.tryRead(TOOLSTACK, fe) === undefined) return;
      s.write(TOOLSTACK, `${fe}/state`, String(state));
      s.write(TOOLSTACK, `${vbdBackendPath(domid, devnum)}/state`, String(state));
    });
  }

  remove(domid: number, devnum: number): void {
    this.guard(`vbd ${devnum} removal`, domid, (s) => {
      for (const p of [vbdFrontendPath(domid, devnum), vbdBackendPath(domid, devnum)]) {
        if (s.tryRead(TOOLSTACK, p) !== undefined) s.rm(TOOLSTACK, p);
      }
    });
  }

  /** Drop the domain's backend directory (its home goes with the domain's release). */
  removeDomain(domid: number): void {
    this.guard('vbd removal', domid, (s) => {
      const dir = `/local/domain/0/backend/vbd/${domid}`;
      if (s.tryRead(TOOLSTACK, dir) !== undefined) s.rm(TOOLSTACK, dir);
    });
  }
}
