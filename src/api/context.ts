// The contract between the API server and everything that adds routes to it
// (core route groups, the store, features' plugins): what a route handler gets.
// Its own module so that route groups never import the server that mounts them.

import type { FastifyInstance } from 'fastify';
import type { DaemonLog } from '../toolstack/log.ts';
import type { Principal } from '../toolstack/principal.ts';
import type { SponsorPolicy } from '../toolstack/sponsors.ts';
import type { TokenStore } from '../toolstack/tokens.ts';
import type { Toolstack } from '../toolstack/toolstack.ts';
import type { HostInfo } from './views.ts';

export interface ApiContext {
  toolstack: Toolstack;
  tokens: TokenStore;
  sponsors: SponsorPolicy;
  log: DaemonLog;
  hostInfo: () => HostInfo;
  /** Extra route groups (store, ...) registered by the daemon. */
  extraRoutes?: Array<RouteGroup>;
}

/** A group of routes a feature or the store adds to both listeners. */
export type RouteGroup = (app: FastifyInstance, ctx: ApiContext) => void;

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling: set by the server's onRequest hook on every request. */
    principal: Principal;
  }
}
