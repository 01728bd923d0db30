// The xenode contender: `bin/xenode create <cfg> -c` against a private daemon,
// timed from spawning the CLI to XENODE-READY on its stdout.

import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchContext, BootSample, Contender } from './contender.ts';
import {
  bootClock,
  cpuSeconds,
  FileFollower,
  peakRssMiB,
  pidAlive,
  qemuFacts,
  ReadyScanner,
  type RunResult,
  readPid,
  rejectOnExit,
  run,
  stopPid,
  withTimeout,
} from './proc.ts';

/** A xenoded with its own XENODE_DIR (and its own environment, e.g. XENODE_TCG_TB_MIB). */
export class XenodeDaemon {
  readonly env: NodeJS.ProcessEnv;
  readonly bin: string;
  /** Once stopped, no more CLI calls: any call would autostart a fresh daemon. */
  private stopped = false;

  constructor(
    readonly ctx: BenchContext,
    readonly dir: string,
    extraEnv: Record<string, string> = {},
  ) {
    const env: NodeJS.ProcessEnv = { ...process.env, XENODE_DIR: dir, ...extraEnv };
    // Talk to this daemon over its Unix socket, with only the settings we chose.
    delete env.XENODE_URL;
    delete env.XENODE_TOKEN;
    if (!('XENODE_TCG_TB_MIB' in extraEnv)) delete env.XENODE_TCG_TB_MIB;
    this.env = env;
    this.bin = join(ctx.root, 'bin', 'xenode');
  }

  cli(args: string[], timeoutMs = 30_000): Promise<RunResult> {
    if (this.stopped) return Promise.resolve({ code: -1, stdout: '', stderr: 'bench daemon already stopped' });
    return run(this.bin, args, { env: this.env, timeoutMs });
  }

  get pid(): number | undefined {
    return readPid(join(this.dir, 'xenoded.pid'));
  }

  /** Start the daemon (any command autostarts it) so its start-up is not timed. */
  async start(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    this.ctx.cleanup.add(`stop xenoded in ${this.dir}`, () => this.stop());
    const r = await this.cli(['list']);
    if (r.code !== 0) throw new Error(`xenode list failed (${r.code}): ${r.stderr.trim()}`);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    const pid = this.pid;
    if (pid && pidAlive(pid)) {
      // Domains first (a stopping daemon leaves them running), then the daemon.
      const list = await this.cli(['list'], 10_000);
      for (const line of list.stdout.split('\n').slice(2)) {
        const name = line.split(/\s+/)[0];
        if (name) await this.cli(['destroy', name], 20_000);
      }
    }
    this.stopped = true;
    if (pid) await stopPid(pid, 5000);
  }
}

export interface XenodeContenderOptions {
  id: string;
  daemon: XenodeDaemon;
  /** key=value overrides after the cfg file, e.g. machine=q35. */
  overrides?: string[];
  informational?: boolean;
}

export class XenodeContender implements Contender {
  readonly id: string;
  readonly informational: boolean;
  private readonly daemon: XenodeDaemon;
  private readonly overrides: string[];
  /** argv of the last QEMU this contender started, and its run directory. */
  lastQemu?: { argv: string[]; runDir: string };

  constructor(
    private readonly ctx: BenchContext,
    o: XenodeContenderOptions,
  ) {
    this.id = o.id;
    this.daemon = o.daemon;
    this.overrides = o.overrides ?? [];
    this.informational = o.informational ?? false;
  }

  describe(): string {
    const env = this.daemon.env.XENODE_TCG_TB_MIB
      ? `XENODE_TCG_TB_MIB=${this.daemon.env.XENODE_TCG_TB_MIB} daemon; `
      : '';
    return `${env}\`bin/xenode create bench.cfg -c${this.overrides.map((o) => ` ${o}`).join('')}\` (cfg: memory=${this.ctx.memoryMiB}, vcpus=${this.ctx.vcpus}, no kernel= → default guest)`;
  }

  async run(tag: string): Promise<BootSample> {
    const { ctx, daemon } = this;
    const name = `bench${tag}`;
    const cfg = join(ctx.tmp, `${name}.cfg`);
    writeFileSync(cfg, `name="${name}"\nmemory=${ctx.memoryMiB}\nvcpus=${ctx.vcpus}\n`);
    const scanner = new ReadyScanner();
    // QEMU's own copy of the console (logfile=), to time the console path.
    const logScanner = new ReadyScanner();
    let follower: FileFollower | undefined;
    let stderr = '';
    let domid: number | undefined;
    let created: number | undefined;
    let qemuPid: number | undefined;

    const daemonPid = daemon.pid;
    const daemonCpu0 = cpuSeconds(daemonPid);
    const u0 = bootClock();
    const t0 = performance.now();
    const child = spawn(daemon.bin, ['create', cfg, '-c', ...this.overrides], {
      env: daemon.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (d: Buffer) => scanner.feed(d));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /\(domid (\d+)\) started/.exec(stderr);
      if (m && domid === undefined) {
        domid = Number(m[1]);
        created = (performance.now() - t0) / 1000;
        follower = new FileFollower(join(daemon.dir, 'domains', String(domid), 'console.log'), (d) =>
          logScanner.feed(d),
        ).start();
      }
    });
    const childGone = new Promise<void>((r) => child.once('close', () => r()));
    const undo = ctx.cleanup.add(`destroy xenode domain ${name}`, async () => {
      await daemon.cli(['destroy', name], 20_000);
      if (qemuPid) await stopPid(qemuPid);
      child.kill('SIGKILL');
    });
    try {
      const hit = await withTimeout(
        Promise.race([scanner.ready, rejectOnExit(child, 'xenode create', () => `${stderr.trim()} ${scanner.tail()}`)]),
        ctx.timeoutMs,
        `XENODE-READY from ${name}`,
      );
      if (domid === undefined) {
        const r = await daemon.cli(['domid', name]);
        domid = Number(r.stdout.trim());
      }
      // Read before anything else moves: the CLI is still attached to the console here.
      const toolCpu = cpuSeconds(child.pid) + cpuSeconds(daemonPid) - daemonCpu0;
      const runDir = join(daemon.dir, 'domains', String(domid));
      qemuPid = readPid(join(runDir, 'qemu.pid'));
      const rssMiB = qemuPid ? peakRssMiB(qemuPid) : undefined;
      if (qemuPid) {
        ctx.ourPids.add(qemuPid);
        try {
          const argv = readFileSync(`/proc/${qemuPid}/cmdline`, 'utf8').split('\0');
          if (argv.at(-1) === '') argv.pop();
          this.lastQemu = { argv, runDir };
        } catch {
          /* gone already */
        }
      }
      const facts = qemuFacts(qemuPid, u0);
      const logHit = await Promise.race([logScanner.ready, sleep(1000).then(() => undefined)]);
      return {
        wall: (hit.at - t0) / 1000,
        uptime: hit.uptime,
        rssMiB,
        ...facts,
        created,
        toolCpu,
        consoleLag: logHit ? (hit.at - logHit.at) / 1000 : undefined,
      };
    } finally {
      follower?.stop();
      const r = await daemon.cli(['destroy', name], 20_000);
      if (r.code !== 0 && !/does not exist|invalid domain/.test(r.stderr)) {
        ctx.log(`  xenode destroy ${name}: ${r.stderr.trim()}`);
      }
      if (qemuPid) await stopPid(qemuPid);
      // The console client exits when the domain is gone.
      const exited = await Promise.race([
        childGone.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), 5000)),
      ]);
      if (!exited) {
        child.kill('SIGKILL');
        await childGone;
      }
      undo();
    }
  }
}
