// Whether xenoded runs as a systemd service here (the Debian package's
// xenoded.service): then the CLI asks systemd to start it rather than starting
// a daemon of its own, which the service could not then replace.

import { existsSync } from 'node:fs';

/** The unit the Debian package installs. */
export const SERVICE_UNIT = 'xenoded.service';
/** The state directory xenoded.service uses (XENODE_DIR in the unit). */
export const SERVICE_DIR = '/var/lib/xenode';

export interface ServiceProbe {
  /** Does this path exist? (tests pass their own) */
  exists?: (path: string) => boolean;
  uid?: number;
}

/**
 * True when systemd runs this machine, the unit is installed, the caller is
 * root and the CLI's state directory is the service's: a daemon for this
 * directory should be the service.
 */
export function serviceManages(base: string, probe: ServiceProbe = {}): boolean {
  const exists = probe.exists ?? existsSync;
  const uid = probe.uid ?? process.getuid?.();
  if (uid !== 0 || base !== SERVICE_DIR) return false;
  if (!exists('/run/systemd/system')) return false;
  return ['/etc/systemd/system', '/lib/systemd/system', '/usr/lib/systemd/system'].some((d) =>
    exists(`${d}/${SERVICE_UNIT}`),
  );
}
