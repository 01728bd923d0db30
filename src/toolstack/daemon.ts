// xenoded: owns the domain table, the store, the consoles and the API.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, freemem, hostname, release, totalmem, uptime, version } from 'node:os';
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../api/context.ts';
import { stickyPort } from '../api/listen-port.ts';
import { buildApi } from '../api/server.ts';
import type { HostInfo } from '../api/views.ts';
import { warmConfigCheck } from '../config/config-check.ts';
import { type AccelChoice, probeAccelerator } from '../engine/accel.ts';
import { processRunning } from '../engine/process.ts';
import { XenodeError } from '../errors.ts';
import { type XenodeDirs, xenodeDirs } from './dirs.ts';
import { DomainTable } from './domain-table.ts';
import { DaemonLog } from './log.ts';
import { createPlugins } from './plugins.ts';
import { checkStateFiles } from './recover.ts';
import { SponsorPolicy } from './sponsors.ts';
import type { StoreFactory } from './store-factory.ts';
import { TokenStore } from './tokens.ts';
import { Toolstack } from './toolstack.ts';

export const XENODE_VERSION = '0.1.0';

export interface DaemonOptions {
  dirs?: XenodeDirs;
  foreground?: boolean;
  /** host:port for the token-protected TCP API; port 0 picks one. */
  listen?: string;
  qemuBinary?: string;
}

export interface RunningDaemon {
  dirs: XenodeDirs;
  toolstack: Toolstack;
  stop(): Promise<void>;
}

function isXenoded(pid: number): boolean {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmd.includes('xenoded') || cmd.includes('daemon-main');
  } catch {
    return false;
  }
}

function qemuVersion(bin: string): string {
  try {
    return execFileSync(bin, ['--version'], { encoding: 'utf8' }).split('\n')[0];
  } catch {
    return 'not found';
  }
}

export async function startDaemon(o: DaemonOptions, storeFactory?: StoreFactory): Promise<RunningDaemon> {
  const dirs = o.dirs ?? xenodeDirs();
  mkdirSync(dirs.base, { recursive: true, mode: 0o700 });
  if (existsSync(dirs.pidFile)) {
    const other = Number(readFileSync(dirs.pidFile, 'utf8'));
    if (other && other !== process.pid && processRunning(other) && isXenoded(other)) {
      throw new XenodeError('conflict', `xenoded is already running (pid ${other}) in ${dirs.base}`);
    }
  }
  // Before anything opens them: a table or store that is not whole is refused, never started empty.
  checkStateFiles(dirs);
  writeFileSync(dirs.pidFile, String(process.pid));
  const log = new DaemonLog(dirs.daemonLog, 2000, o.foreground === true);
  const started = Date.now();
  const hostAccel: AccelChoice = await probeAccelerator();
  log.info(`accelerator: ${hostAccel.accel} (${hostAccel.reason})`);
  const qemuBinary = o.qemuBinary ?? process.env.XENODE_QEMU ?? 'qemu-system-x86_64';
  const qemuVer = qemuVersion(qemuBinary);
  const table = new DomainTable(dirs.stateDb, { domainsDir: dirs.domainsDir });
  const tokens = new TokenStore(dirs.stateDb);
  const sponsors = new SponsorPolicy(dirs.stateDb);
  const store = storeFactory?.open(dirs, log);
  const storeSink = store?.sink ?? (await import('./store-sink.ts')).NULL_STORE_SINK;
  const plugins = createPlugins();
  for (const p of plugins) await p.start?.({ dirs, log, store: storeSink, sponsors });
  const toolstack = new Toolstack({
    dirs,
    table,
    log,
    store: storeSink,
    hostAccel,
    plugins,
    sponsors,
    qemuBinary,
    tcgTbSizeMiB: process.env.XENODE_TCG_TB_MIB ? Number(process.env.XENODE_TCG_TB_MIB) : undefined,
  });
  // Events that name a domain by domid carry its name and sponsor as fields too.
  log.setDomainLabeler((domid) => toolstack.labelOf(domid));
  await toolstack.reattachAll();

  const hostInfo = (): HostInfo => ({
    host: hostname(),
    release: release(),
    version: version(),
    nr_cpus: cpus().length,
    total_memory: Math.floor(totalmem() / 1048576),
    free_memory: Math.floor(freemem() / 1048576),
    accel: hostAccel.accel,
    accel_reason: hostAccel.reason,
    qemu: qemuBinary,
    qemu_version: qemuVer,
    xenode_version: XENODE_VERSION,
    daemon_pid: process.pid,
    daemon_uptime: (Date.now() - started) / 1000,
    host_uptime: uptime(),
    domains: toolstack.list({ sponsor: 'admin', admin: true }).length,
  });
  const extraRoutes: NonNullable<ApiContext['extraRoutes']> = [...(store?.routes ?? [])];
  for (const p of plugins) if (p.routes) extraRoutes.push((app, c) => p.routes?.(app, c));
  const ctx: ApiContext = { toolstack, tokens, sponsors, log, hostInfo, extraRoutes };
  const servers: FastifyInstance[] = [];
  const local = await buildApi(ctx, 'local');
  rmSync(dirs.socket, { force: true });
  await local.listen({ path: dirs.socket });
  servers.push(local);
  const listen = o.listen ?? process.env.XENODE_LISTEN ?? '127.0.0.1:0';
  if (listen !== 'none') {
    const [host, port] = listen.includes(':')
      ? [listen.slice(0, listen.lastIndexOf(':')), listen.slice(listen.lastIndexOf(':') + 1)]
      : ['127.0.0.1', listen];
    const tcp = await buildApi(ctx, 'tcp');
    await tcp.listen({ host, port: await stickyPort(dirs.tcpInfo, host, Number(port)) });
    const addr = tcp.server.address();
    const realPort = typeof addr === 'object' && addr ? addr.port : Number(port);
    writeFileSync(dirs.tcpInfo, JSON.stringify({ host, port: realPort }));
    log.info(`API on ${dirs.socket} (local admin) and http://${host}:${realPort} (token)`);
    servers.push(tcp);
  }
  log.info(`xenoded ${XENODE_VERSION} started (pid ${process.pid})`);
  // Off the start-up path, before the first request needs it.
  setImmediate(warmConfigCheck);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log.info('xenoded stopping; domains keep running');
    for (const s of servers) await s.close();
    await toolstack.finishRetiring();
    toolstack.detachAll();
    for (const p of plugins) await p.stop?.();
    store?.close();
    table.close();
    tokens.close();
    sponsors.close();
    rmSync(dirs.pidFile, { force: true });
  };
  return { dirs, toolstack, stop };
}
