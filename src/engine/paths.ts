// Files of one domain's run directory. Only the engine knows what QEMU puts there.

import { join } from 'node:path';

export interface DomainRunPaths {
  runDir: string;
  qmpSock: string;
  serialSock: string;
  consoleLog: string;
  pidFile: string;
  qemuLog: string;
}

export function domainRunPaths(runDir: string): DomainRunPaths {
  return {
    runDir,
    qmpSock: join(runDir, 'qmp.sock'),
    serialSock: join(runDir, 'serial.sock'),
    consoleLog: join(runDir, 'console.log'),
    pidFile: join(runDir, 'qemu.pid'),
    qemuLog: join(runDir, 'qemu.log'),
  };
}
