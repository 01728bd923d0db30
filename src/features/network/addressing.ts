// Addresses on Xenode's switch: the host port's (XENODE_NET_HOSTPORT) and the
// kernel command-line words that give the default guest its eth0 address.

import { isIPv4 } from 'node:net';
import { XenodeError } from '../../errors.ts';
import type { HostPortSpec } from '../../net/control-protocol.ts';

export const DEFAULT_HOST_PORT: HostPortSpec = { name: 'xn0', address: '10.200.0.1/24', mtu: 1500 };
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const HINT = "XENODE_NET_HOSTPORT is NAME[,ADDRESS/PREFIX][,mtu=N] or 'none', e.g. xn0,10.200.0.1/24";

function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

/** `a.b.c.d/p` → address and prefix, or undefined. */
export function parseCidr(s: string): { ip: string; prefix: number } | undefined {
  const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(s);
  if (!m || !isIPv4(m[1] as string) || Number(m[2]) > 32) return undefined;
  return { ip: m[1] as string, prefix: Number(m[2]) };
}

/** The host port from the daemon's environment; undefined = no host port. */
export function hostPortFromEnv(value = process.env.XENODE_NET_HOSTPORT): HostPortSpec | undefined {
  if (value === undefined || value === '') return { ...DEFAULT_HOST_PORT };
  if (value === 'none') return undefined;
  const [name, ...rest] = value.split(',').map((x) => x.trim());
  const spec: HostPortSpec = { ...DEFAULT_HOST_PORT, name: name ?? '' };
  if (!IFNAME.test(spec.name)) {
    throw new XenodeError('config', `invalid host port name '${spec.name}'`, { hint: HINT });
  }
  for (const r of rest) {
    if (r.startsWith('mtu=')) {
      const mtu = Number(r.slice(4));
      if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65521)
        throw new XenodeError('config', `invalid host port mtu '${r}'`, { hint: HINT });
      spec.mtu = mtu;
    } else if (parseCidr(r)) spec.address = r;
    else throw new XenodeError('config', `invalid host port address '${r}'`, { hint: HINT });
  }
  return spec;
}

/**
 * `xenode.ip=ADDR/PREFIX` (prefix /24 unless given) for the guest's eth0, and
 * `xenode.gw=` the host port when the address is on the host port's subnet.
 */
export function guestIpCmdline(ip: string | undefined, onSwitch: boolean, hostPort?: HostPortSpec): string[] {
  const first = ip?.split(/\s+/).find((a) => isIPv4(a.split('/')[0] as string));
  if (!first) return [];
  const addr = first.includes('/') ? first : `${first}/24`;
  const words = [`xenode.ip=${addr}`];
  const host = hostPort ? parseCidr(hostPort.address) : undefined;
  const guest = parseCidr(addr);
  if (onSwitch && host && guest && guest.ip !== host.ip) {
    const net = (x: string) => Math.floor(ipToInt(x) / 2 ** (32 - host.prefix));
    if (net(host.ip) === net(guest.ip)) words.push(`xenode.gw=${host.ip}`);
  }
  return words;
}
