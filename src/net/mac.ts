// MAC addresses: text <-> 48-bit integer, and generated vif MACs. Generated
// MACs use Xen's OUI 00:16:3e with the top bit of the fourth octet clear, as
// libxl does, derived from the domain name and device index so a domain gets
// the same MAC every time it is created, and re-derived on a clash so every
// MAC on the host is different.

import { createHash } from 'node:crypto';
import type { MacInt } from './frame.ts';

export const XEN_OUI = '00:16:3e';

export function macToString(mac: MacInt): string {
  return mac
    .toString(16)
    .padStart(12, '0')
    .replace(/(..)(?!$)/g, '$1:');
}

/** Canonical `aa:bb:cc:dd:ee:ff` (as the config parser produces) to an integer. */
export function macFromString(mac: string): MacInt {
  const hex = mac.replaceAll(':', '').replaceAll('-', '');
  if (!/^[0-9a-fA-F]{12}$/.test(hex)) throw new RangeError(`not a MAC address: ${mac}`);
  return Number.parseInt(hex, 16);
}

/**
 * A MAC for vif `devid` of domain `name`, not in `inUse` (canonical strings).
 * Stable: the same name and devid give the same MAC unless that one is taken.
 */
export function generateMac(name: string, devid: number, inUse: ReadonlySet<string>): string {
  for (let attempt = 0; ; attempt++) {
    const seed = attempt === 0 ? `${name}/${devid}` : `${name}/${devid}/${attempt}`;
    const h = createHash('sha256').update(`xenode-vif:${seed}`).digest();
    const tail = [(h[0] as number) & 0x7f, h[1] as number, h[2] as number];
    const mac = `${XEN_OUI}:${tail.map((o) => o.toString(16).padStart(2, '0')).join(':')}`;
    if (!inUse.has(mac)) return mac;
  }
}

/**
 * The host port's MAC: locally administered and derived from its name, so a
 * restarted switch recreates the TAP with the MAC the guests' ARP caches hold.
 */
export function hostPortMac(name: string): string {
  const h = createHash('sha256').update(`xenode-hostport:${name}`).digest();
  const octets = [0x02, h[0] as number, h[1] as number, h[2] as number, h[3] as number, h[4] as number];
  return octets.map((o) => o.toString(16).padStart(2, '0')).join(':');
}
