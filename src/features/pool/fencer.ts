// Self-fencing that works while the daemon cannot: a small process of its own,
// started detached beside the daemon, reads the heartbeat file (the monotonic
// time at which the daemon SENT the last keepalive etcd acknowledged) and, once it
// is older than TTL/2, SIGKILLs the QEMUs of this host's HA domains (their pids
// are in a file the daemon keeps). A daemon that is stopped (SIGSTOP), stuck or
// cut off from etcd so has its HA domains dead before etcd can expire its lease
// (docs/pool.md has the timing argument). It exits once the pool directory is gone.

import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const FENCER_MARK = 'xenode-pool-fencer';

// CommonJS run by `node -e`: argv is [node, mark, dir, fenceMs].
const SOURCE = `
const fs = require('fs');
const [, , dir, ms] = process.argv;
const fenceMs = Number(ms);
const now = () => Number(process.hrtime.bigint() / 1000000n);
setInterval(() => {
  if (!fs.existsSync(dir)) process.exit(0);
  let last;
  try { last = Number(fs.readFileSync(dir + '/heartbeat', 'utf8')); } catch { return; }
  if (!Number.isFinite(last) || now() - last <= fenceMs) return;
  let pids = [];
  try { pids = JSON.parse(fs.readFileSync(dir + '/fence-pids.json', 'utf8')); } catch {}
  for (const p of pids) {
    try {
      if (!fs.readFileSync('/proc/' + p + '/cmdline', 'utf8').includes('qemu-system')) continue;
      process.kill(p, 'SIGKILL');
      fs.appendFileSync(dir + '/fenced.log', JSON.stringify({ pid: p, at: Date.now(), staleMs: now() - last }) + '\\n');
    } catch {}
  }
}, 100);
`;

/** The monotonic clock the fencer reads (CLOCK_MONOTONIC, shared by every process of the host). */
export function monoMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}

export class Fencer {
  constructor(
    private readonly dir: string,
    private readonly fenceMs: number,
  ) {}

  /** Start it unless one for this directory runs (a daemon restart keeps the old one). */
  ensure(): void {
    const pidFile = join(this.dir, 'fencer.pid');
    try {
      const pid = Number(readFileSync(pidFile, 'utf8'));
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (cmd.includes(FENCER_MARK) && cmd.includes(this.dir) && cmd.includes(String(this.fenceMs))) return;
      if (cmd.includes(FENCER_MARK)) process.kill(pid, 'SIGKILL');
    } catch {
      /* none running */
    }
    const child = spawn(process.execPath, ['-e', SOURCE, FENCER_MARK, this.dir, String(this.fenceMs)], {
      detached: true,
      stdio: 'ignore',
    });
    child.unref();
    writeFileSync(pidFile, String(child.pid));
  }

  /** The daemon's keepalive sent at `sentAt` (monoMs) was acknowledged. */
  beat(sentAt: number): void {
    // Renamed into place: the reader never sees a half-written number.
    writeFileSync(join(this.dir, 'heartbeat.tmp'), String(sentAt));
    renameSync(join(this.dir, 'heartbeat.tmp'), join(this.dir, 'heartbeat'));
  }

  setPids(pids: number[]): void {
    writeFileSync(join(this.dir, 'fence-pids.json.tmp'), JSON.stringify(pids));
    renameSync(join(this.dir, 'fence-pids.json.tmp'), join(this.dir, 'fence-pids.json'));
  }

  fencedLog(): string {
    const f = join(this.dir, 'fenced.log');
    return existsSync(f) ? readFileSync(f, 'utf8') : '';
  }

  note(line: string): void {
    appendFileSync(join(this.dir, 'fenced.log'), `${line}\n`);
  }

  stop(): void {
    try {
      const pid = Number(readFileSync(join(this.dir, 'fencer.pid'), 'utf8'));
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(FENCER_MARK)) process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}
