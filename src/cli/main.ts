// The xenode command: a tiny dispatcher over the command table.

import { Command, CommanderError } from 'commander';
import { errorMessage, XenodeError } from '../errors.ts';
import { ApiClient } from './client.ts';
import type { CmdContext } from './command-spec.ts';
import { COMMANDS } from './commands.ts';
import { missingCommandMessage } from './xl-commands.ts';

export async function runCli(argv: string[]): Promise<number> {
  let client: ApiClient | undefined;
  const ctx: CmdContext = {
    client: () => {
      client ??= new ApiClient();
      return client;
    },
    out: (s) => process.stdout.write(s),
    err: (s) => process.stderr.write(s),
  };
  let exitCode = 0;
  const program = new Command('xenode')
    .description('Xenode: a Xen-style toolstack for QEMU domains, with xl-compatible commands')
    .version('0.1.0')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), outputError: (s, write) => write(s) });
  for (const spec of COMMANDS) {
    const cmd = program.command(`${spec.name}${spec.args ? ` ${spec.args}` : ''}`).description(spec.summary);
    if (spec.help) cmd.addHelpText('after', `\n${spec.help}`);
    if (spec.example) cmd.addHelpText('after', `\nExample:\n  ${spec.example}`);
    for (const o of spec.options ?? []) cmd.option(o.flags, o.help);
    cmd.exitOverride();
    // Overrides like memory=512 look like arguments, never options.
    if (spec.name === 'create') cmd.allowUnknownOption(false);
    cmd.action(async (...a: unknown[]) => {
      const command = a[a.length - 1] as Command;
      const opts = command.opts() as Record<string, string | boolean | undefined>;
      const args = command.args;
      exitCode = (await spec.run(ctx, args, opts)) ?? 0;
    });
  }
  program
    .command('help [command]')
    .description('Show help for a command')
    .action((name?: string) => {
      const c = name ? program.commands.find((x) => x.name() === name) : undefined;
      if (name && !c) throw new XenodeError('usage', `command '${name}' not implemented`, { exitCode: 1 });
      (c ?? program).outputHelp();
    });
  // A command Xenode lacks: say whether it is Xen-only or not there yet (xl exits 1).
  const word = argv[0] ?? '';
  if (!program.commands.some((c) => c.name() === word)) {
    const missing = missingCommandMessage(word);
    if (missing) {
      process.stderr.write(`${missing}\n`);
      return 1;
    }
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help')
        return 0;
      if (e.code === 'commander.unknownCommand') return 1;
      return 2;
    }
    process.stderr.write(`${errorMessage(e)}\n`);
    return e instanceof XenodeError ? e.exitCode : 1;
  }
  return exitCode;
}

// A reader that stopped reading (`xenode list | head -1`) ends the command
// quietly with success, as ripgrep and git do. Any other failure to write
// output is one line, never a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    if (stream === process.stdout) process.stderr.write(`xenode: cannot write output: ${e.message}\n`);
    process.exit(1);
  });
}

// No top-level await: the bundle is CommonJS (bin/xenode-cli.cjs).
void runCli(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
