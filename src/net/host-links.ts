// Host network interfaces through iproute2: the TAPs of `bridge=` vifs (as
// Xen's vif-bridge script does) and the host port's address. sysfs answers
// the questions, `ip` makes the changes.

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
