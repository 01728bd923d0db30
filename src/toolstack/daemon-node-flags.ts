// How Node runs xenoded, wherever it is started from: the CLI's own spawn
// (src/cli/client.ts) and the packaged launcher /usr/sbin/xenoded that
// xenoded.service runs (packaging/build-deb.ts) take the flags from here.

/**
 * V8 flags for the daemon: a 1 MiB young generation and one V8 worker thread cut
 * its resident memory at idle by about 15 MiB (docs/benchmarks.md, "Daemon memory");
 * the daemon allocates little per request, so the extra scavenges are short.
 */
export const DAEMON_NODE_FLAGS = ['--max-semi-space-size=1', '--v8-pool-size=1'] as const;
