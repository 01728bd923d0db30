// Extension points for features that add devices or host resources to a
// domain (disks, networks, memory devices, shared memory, migration). Each
// feature is a plugin; the lifecycle core stays small and feature-agnostic.

import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../api/server.ts';
import type { QemuMachine } from '../engine/qemu-machine.ts';
import type { XenodeDirs } from './dirs.ts';
import type { Domain } from './domain.ts';
import type { DaemonLog } from './log.ts';
import type { DomainStoreSink } from './store-sink.ts';

export interface LaunchContribution {
  /** Extra QEMU arguments (built by src/engine helpers, never by string here). */
  qemuArgs?: string[];
  /** Extra kernel command-line words for the guest. */
  cmdline?: string[];
}

export interface PluginHost {
  dirs: XenodeDirs;
  log: DaemonLog;
  store: DomainStoreSink;
}

export interface ToolstackPlugin {
  readonly name: string;
  /** Once at daemon start (start helper processes, open files). */
  start?(host: PluginHost): Promise<void>;
  /** Before QEMU starts for a domain (create, restart with a new QEMU, restore). Throw to refuse. */
  beforeLaunch?(d: Domain): Promise<LaunchContribution | undefined>;
  /**
   * After QEMU is up and attached: before the guest runs on create; after it
   * runs again on restore and migration (failures there are only logged).
   */
  afterLaunch?(d: Domain, m: QemuMachine): Promise<void>;
  /** After a restarted daemon reattached to a running QEMU. */
  afterReattach?(d: Domain, m: QemuMachine): Promise<void>;
  /** When the domain is destroyed (QEMU already gone). Must not throw. */
  onTeardown?(d: Domain): Promise<void>;
  /** API routes of the feature. */
  routes?(app: FastifyInstance, ctx: ApiContext): void;
  /** Daemon exit (domains keep running). */
  stop?(): Promise<void>;
}
