// Network state in the control store, in Xen's layout so xenstore tools and
// watchers find it where they expect:
//   /local/domain/<domid>/device/vif/<devid>/{backend,backend-id,handle,mac,state}
//   /local/domain/0/backend/vif/<domid>/<devid>/{frontend,frontend-id,online,state,handle,mac,bridge,ip,rate,...}
// plus Xenode's sponsor policy: /xenode/net/allow/<sponsorA>/<sponsorB> = "1"
// (A < B), which the admin may edit directly; the daemon watches it.

import { parseVifRate } from '../../config/vif.ts';
import type { SponsorPair } from '../../net/policy.ts';
import { type ControlStore, domainPath, TOOLSTACK } from '../../store/index.ts';
import type { DaemonLog } from '../../toolstack/log.ts';

export const POLICY_PATH = '/xenode/net/allow';
const XENBUS_CONNECTED = 4;

export interface VifStoreEntry {
  devid: number;
  mac: string;
  type: 'switch' | 'bridge';
  bridge: string;
  ifname: string;
  model: string;
  ip?: string;
  rate?: string;
  mtu?: number;
}

export function backendPath(domid: number, devid: number): string {
  return `/local/domain/0/backend/vif/${domid}/${devid}`;
}

export class NetStore {
  constructor(
    private readonly store: ControlStore | undefined,
    private readonly log: DaemonLog,
  ) {}

  // The store is a mirror others watch: failing to write it never fails a device operation.
  private guard(what: string, fn: (s: ControlStore) => void, domid?: number): void {
    if (!this.store) return;
    try {
      fn(this.store);
    } catch (e) {
      this.log.warn(`store: ${what}: ${e instanceof Error ? e.message : String(e)}`, domid);
    }
  }

  writeVif(domid: number, v: VifStoreEntry): void {
    this.guard(
      `vif ${v.devid}`,
      (s) => {
        const be = backendPath(domid, v.devid);
        const fe = `${domainPath(domid)}/device/vif/${v.devid}`;
        const w = (p: string, val: string) => s.write(TOOLSTACK, p, val);
        w(`${be}/frontend`, fe);
        w(`${be}/frontend-id`, String(domid));
        w(`${be}/online`, '1');
        w(`${be}/handle`, String(v.devid));
        w(`${be}/mac`, v.mac);
        w(`${be}/bridge`, v.bridge);
        w(`${be}/type`, v.type);
        w(`${be}/vifname`, v.ifname);
        w(`${be}/model`, v.model);
        w(`${be}/script`, '');
        if (v.ip) w(`${be}/ip`, v.ip);
        if (v.rate) {
          // Xen's backend form: bytes per interval, interval in µs.
          const r = parseVifRate(v.rate);
          w(`${be}/rate`, `${r.bytesPerInterval},${r.intervalUs}`);
        } else if (s.tryRead(TOOLSTACK, `${be}/rate`) !== undefined) s.rm(TOOLSTACK, `${be}/rate`);
        if (v.mtu) w(`${be}/mtu`, String(v.mtu));
        w(`${be}/hotplug-status`, 'connected');
        w(`${be}/state`, String(XENBUS_CONNECTED));
        if (s.isDomainIntroduced(domid)) {
          w(`${fe}/backend`, be);
          w(`${fe}/backend-id`, '0');
          w(`${fe}/handle`, String(v.devid));
          w(`${fe}/mac`, v.mac);
          w(`${fe}/state`, String(XENBUS_CONNECTED));
        }
      },
      domid,
    );
  }

  removeVif(domid: number, devid: number): void {
    this.guard(
      `vif ${devid}`,
      (s) => {
        const fe = `${domainPath(domid)}/device/vif/${devid}`;
        if (s.tryRead(TOOLSTACK, fe) !== undefined) s.rm(TOOLSTACK, fe);
        const be = backendPath(domid, devid);
        if (s.tryRead(TOOLSTACK, be) !== undefined) s.rm(TOOLSTACK, be);
      },
      domid,
    );
  }

  /** The domain is gone: its frontend went with its home; drop the backend directory. */
  removeDomain(domid: number): void {
    this.guard(
      'vifs',
      (s) => {
        const be = `/local/domain/0/backend/vif/${domid}`;
        if (s.tryRead(TOOLSTACK, be) !== undefined) s.rm(TOOLSTACK, be);
      },
      domid,
    );
  }

  get persistent(): boolean {
    return this.store !== undefined;
  }

  readAllow(): SponsorPair[] {
    const s = this.store;
    if (!s || s.tryRead(TOOLSTACK, POLICY_PATH) === undefined) return [];
    const out: SponsorPair[] = [];
    for (const a of s.directory(TOOLSTACK, POLICY_PATH)) {
      for (const b of s.directory(TOOLSTACK, `${POLICY_PATH}/${a}`)) out.push([a, b]);
    }
    return out;
  }

  /** Calls `cb` with the allowed pairs now and after every change. */
  watchAllow(cb: (pairs: SponsorPair[]) => void): void {
    this.guard('policy watch', (s) => s.watch(TOOLSTACK, POLICY_PATH, 'xenode-net-policy', () => cb(this.readAllow())));
  }

  setAllowed(a: string, b: string, allowed: boolean): void {
    const s = this.store;
    if (!s) return;
    const [x, y] = a < b ? [a, b] : [b, a];
    const p = `${POLICY_PATH}/${x}/${y}`;
    if (allowed) s.write(TOOLSTACK, p, '1');
    else if (s.tryRead(TOOLSTACK, p) !== undefined) {
      s.rm(TOOLSTACK, p);
      if (s.directory(TOOLSTACK, `${POLICY_PATH}/${x}`).length === 0) s.rm(TOOLSTACK, `${POLICY_PATH}/${x}`);
    }
  }
}
