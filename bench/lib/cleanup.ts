// Cleanup that runs on normal exit and on Ctrl-C / SIGTERM: domains destroyed,
// QEMUs killed, daemons stopped, temp dirs removed. Later registrations run first.

type Action = () => Promise<void> | void;

export class Cleanup {
  private actions = new Map<number, { what: string; fn: Action }>();
  private next = 1;
  private running?: Promise<void>;

  /** Register an action; the returned function unregisters it without running it. */
  add(what: string, fn: Action): () => void {
    const id = this.next++;
    this.actions.set(id, { what, fn });
    return () => this.actions.delete(id);
  }

  /** Run and forget every registered action, newest first; errors are reported, never thrown. */
  runAll(log: (s: string) => void = (s) => process.stderr.write(`${s}\n`)): Promise<void> {
    this.running ??= (async () => {
      const list = [...this.actions.entries()].reverse();
      this.actions.clear();
      for (const [, a] of list) {
        try {
          await a.fn();
        } catch (e) {
          log(`cleanup: ${a.what}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** On SIGINT/SIGTERM: clean up and exit (130/143). A second signal exits at once. */
  installSignalHandlers(onSignal: (sig: NodeJS.Signals) => void = () => {}): void {
    let seen = false;
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(sig, () => {
        if (seen) process.exit(sig === 'SIGINT' ? 130 : 143);
        seen = true;
        onSignal(sig);
        process.stderr.write(`\n${sig}: cleaning up (again to exit at once)...\n`);
        void this.runAll().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
      });
    }
  }
}
