// The feature contract. Each feature (disks, networks, memory, shared memory,
// save/restore and migration, metrics, storage) is a plugin: lifecycle hooks
// the core calls (lifecycle-hooks.ts) plus the API routes it adds. The
// lifecycle core stays small and feature-agnostic; the one list of plugins is
// plugins.ts.

import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../api/context.ts';
import type { LifecycleHooks } from './lifecycle-hooks.ts';

export type { FileUse, LaunchContribution, PluginHost, SponsorFileGate } from './lifecycle-hooks.ts';

export interface ToolstackPlugin extends LifecycleHooks {
  /** API routes of the feature, mounted on both listeners (Unix socket and TCP). */
  routes?(app: FastifyInstance, ctx: ApiContext): void;
}
