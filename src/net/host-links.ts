// Host network interfaces through iproute2: the TAPs of `bridge=` vifs (as
// Xen's vif-bridge script does), their rate limits (tc), and the host port's
// address. sysfs answers the questions, `ip` and `tc` make the changes.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

export class HostLinkError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'HostLinkError';
  }
}

/** Run `ip ARGS`; its own one-line complaint becomes the error message. */
export function runIp(args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim();
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new HostLinkError('the ip command is missing', 'install iproute2');
    throw new HostLinkError(`ip ${args.join(' ')}: ${stderr || (e as Error).message}`);
  }
}

/**
 * A name Linux could give an interface. Names reach sysfs paths below: a name
 * like `..` or `a/b` would ask about files outside /sys/class/net instead.
 */
export function validIfname(name: string): boolean {
  return /^[A-Za-z0-9_.:-]{1,15}$/.test(name) && name !== '.' && name !== '..';
}

export function linkExists(name: string): boolean {
  return validIfname(name) && existsSync(`/sys/class/net/${name}`);
}

export function isBridge(name: string): boolean {
  return validIfname(name) && existsSync(`/sys/class/net/${name}/bridge`);
}

/** Can this process create TAP interfaces? undefined = yes, else why not. */
export function tapUnsupportedReason(): { message: string; hint: string } | undefined {
  if (!existsSync('/dev/net/tun')) {
    return { message: '/dev/net/tun does not exist', hint: 'load the tun module (modprobe tun) or create the node' };
  }
  if (process.getuid?.() !== 0) {
    return { message: 'creating TAP interfaces needs root (CAP_NET_ADMIN)', hint: 'run xenoded as root' };
  }
  return undefined;
}

/** A persistent TAP for a `bridge=` vif, enslaved to `bridge` and up; QEMU opens it by name. */
export function createBridgeTap(tap: string, bridge: string, mtu?: number): void {
  const why = tapUnsupportedReason();
  if (why) throw new HostLinkError(why.message, why.hint);
  runIp(['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  try {
    runIp(['link', 'set', 'dev', tap, 'master', bridge]);
    runIp(['link', 'set', 'dev', tap, ...(mtu ? ['mtu', String(mtu)] : []), 'up']);
  } catch (e) {
    deleteLink(tap);
    throw e;
  }
}

/** Remove an interface; already gone is fine. */
export function deleteLink(name: string): void {
  if (!linkExists(name)) return;
  try {
    runIp(['link', 'del', 'dev', name]);
  } catch {
    /* raced with its removal */
  }
}

export interface LinkCounters {
  rxBytes: number;
  rxPackets: number;
  txBytes: number;
  txPackets: number;
  rxDropped: number;
  txDropped: number;
}

/** Kernel counters of an interface (host's view: rx = received from the wire). */
export function linkCounters(name: string): LinkCounters | undefined {
  if (!validIfname(name)) return undefined;
  const read = (k: string) => Number(readFileSync(`/sys/class/net/${name}/statistics/${k}`, 'utf8'));
  try {
    return {
      rxBytes: read('rx_bytes'),
      rxPackets: read('rx_packets'),
      txBytes: read('tx_bytes'),
      txPackets: read('tx_packets'),
      rxDropped: read('rx_dropped'),
      txDropped: read('tx_dropped'),
    };
  } catch {
    return undefined;
  }
}

function runTc(args: string[]): string {
  try {
    return execFileSync('tc', args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 }).toString();
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim();
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new HostLinkError('the tc command is missing', 'install iproute2');
    throw new HostLinkError(`tc ${args.join(' ')}: ${stderr || (e as Error).message}`);
  }
}

/** Burst allowed by a TAP's policer: one interval's credit, at least netback's 128 KiB (a GSO frame). */
const TAP_MIN_BURST = 131072;

/**
 * Limit what a guest sends through the TAP of a `bridge=` vif (the switch does
 * not read those): a policer on the TAP's ingress, where the guest's frames
 * enter the host. Unlike the switch it drops what exceeds the rate, so TCP
 * backs off from loss. undefined removes the limit. Throws HostLinkError when
 * tc cannot (no `tc`, or a kernel without the u32 classifier or police action).
 */
export function setTapIngressRate(tap: string, rate: { bytesPerSec: number; intervalUs: number } | undefined): void {
  if (!validIfname(tap)) throw new HostLinkError(`invalid interface name '${tap}'`);
  if (rate === undefined) {
    try {
      runTc(['qdisc', 'del', 'dev', tap, 'ingress']);
    } catch {
      /* none there */
    }
    return;
  }
  const burst = Math.max(TAP_MIN_BURST, Math.ceil((rate.bytesPerSec * rate.intervalUs) / 1e6));
  runTc(['qdisc', 'replace', 'dev', tap, 'handle', 'ffff:', 'ingress']);
  try {
    runTc([
      'filter',
      'replace',
      'dev',
      tap,
      'parent',
      'ffff:',
      'prio',
      '1',
      'protocol',
      'all',
      'u32',
      'match',
      'u32',
      '0',
      '0',
      'action',
      'police',
      'rate',
      `${rate.bytesPerSec * 8}bit`,
      'burst',
      String(burst),
      'mtu',
      '65536',
      'drop',
    ]);
  } catch (e) {
    setTapIngressRate(tap, undefined);
    throw e;
  }
}

/** Is a policer on the TAP's ingress (set by setTapIngressRate)? */
export function tapIngressPoliced(tap: string): boolean {
  if (!validIfname(tap)) return false;
  try {
    return /police/.test(runTc(['filter', 'show', 'dev', tap, 'parent', 'ffff:']));
  } catch {
    return false;
  }
}
