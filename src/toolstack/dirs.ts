// Where xenoded keeps its socket, database, logs and per-domain run directories.
// XENODE_DIR moves all of it (tests and a second daemon on one host use that).

import { homedir } from 'node:os';
import { join } from 'node:path';

export interface XenodeDirs {
  base: string;
  socket: string;
  pidFile: string;
  stateDb: string;
  storeDb: string;
  daemonLog: string;
  domainsDir: string;
  dumpDir: string;
  tcpInfo: string;
}

export function xenodeDirs(base = process.env.XENODE_DIR): XenodeDirs {
  const b = base ?? (process.getuid?.() === 0 ? '/var/lib/xenode' : join(homedir(), '.local', 'state', 'xenode'));
  return {
    base: b,
    socket: join(b, 'xenoded.sock'),
    pidFile: join(b, 'xenoded.pid'),
    stateDb: join(b, 'domains.db'),
    storeDb: join(b, 'store.db'),
    daemonLog: join(b, 'xenoded.log'),
    domainsDir: join(b, 'domains'),
    dumpDir: join(b, 'dump'),
    tcpInfo: join(b, 'tcp.json'),
  };
}
