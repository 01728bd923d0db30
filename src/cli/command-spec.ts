// The contract of a CLI subcommand: what the core's table (commands.ts) and
// every feature's command group (src/features/<name>/commands.ts) are made of.
// Its own module so that command groups never import the table that lists them.

import type { ApiClient } from './client.ts';

export interface CmdContext {
  client: () => ApiClient;
  out: (s: string) => void;
  err: (s: string) => void;
}

export interface OptionSpec {
  flags: string; // commander syntax, e.g. '-c, --console'
  help: string;
  default?: string | boolean;
}

export interface CommandSpec {
  name: string;
  args: string; // commander syntax, e.g. '<domain> [size]'
  summary: string;
  help?: string;
  /** A typical invocation, shown in help and docs. */
  example?: string;
  options?: OptionSpec[];
  run: (
    ctx: CmdContext,
    args: string[],
    opts: Record<string, string | boolean | undefined>,
  ) => Promise<number | undefined>;
}
