// CONTROL (xenstore-control): the commands xenstored answers that mean
// something for Xenode's store. Commands that would change the daemon
// (log files, live update, setting quotas) are not offered: `help` lists what is.

import { StoreError } from '../errors.ts';
import type { ControlStore } from '../store.ts';
import { atoi } from './codec.ts';

const OK = Buffer.from('OK\0');

interface Command {
  readonly name: string;
  readonly pars: string;
  run(store: ControlStore, args: readonly string[], log: (m: string) => void): Buffer;
}

function text(s: string): Buffer {
  return Buffer.from(`${s}\0`, 'utf8');
}

function invalid(): never {
  throw new StoreError('EINVAL', 'bad CONTROL command or arguments');
}

function quotaSettings(store: ControlStore): Buffer {
  const q = store.quotas;
  const rows: Array<[string, number, string]> = [
    ['nodes', q.nodes, 'Nodes per domain'],
    ['watches', q.watches, 'Watches per domain'],
    ['transactions', q.transactions, 'Transactions per domain'],
    ['transaction-nodes', q.transactionNodes, 'Max. number of accessed nodes per transaction'],
    ['node-size', q.nodeSize, 'Max. size of a node'],
    ['path-max', q.pathLength, 'Max. length of a node path'],
    ['permissions', q.perms, 'Max. number of permissions per node'],
  ];
  let out = 'Quota settings:\n';
  for (const [name, v, descr] of rows) out += `${name.padEnd(17)}: ${String(v).padStart(8)} ${descr}\n`;
  return text(out);
}

function domainQuota(store: ControlStore, domid: number): Buffer {
  if (domid !== 0 && !store.isDomainIntroduced(domid)) throw new StoreError('ENOENT', `no domain ${domid}`);
  const u = store.usage(domid);
  let out = `Domain ${domid}:\n`;
  for (const [name, v] of [
    ['nodes', u.nodes],
    ['watches', u.watches],
    ['transactions', u.transactions],
  ] as const)
    out += `${name.padEnd(16)}: ${String(v).padStart(8)}\n`;
  return text(out);
}

const COMMANDS: readonly Command[] = [
  {
    name: 'check',
    pars: '',
    run(_store, args) {
      if (args.length > 0) invalid();
      return OK;
    },
  },
  {
    name: 'print',
    pars: '<string>',
    run(_store, args, log) {
      if (args.length !== 1) invalid();
      log(`xenstored: control: ${args[0]}`);
      return OK;
    },
  },
  {
    name: 'quota',
    pars: '[<domid>]',
    run(store, args) {
      if (args.length === 0) return quotaSettings(store);
      // Xenode's quotas are set when the daemon starts; they are not changed over the wire.
      if (args[0] === 'set') throw new StoreError('EPERM', 'quotas are fixed while xenoded runs');
      if (args.length !== 1) invalid();
      return domainQuota(store, atoi(args[0] as string));
    },
  },
  {
    name: 'help',
    pars: '',
    run(_store, args) {
      if (args.length > 0) invalid();
      return text(COMMANDS.map((c) => `${c.name}\t${c.pars}\n`).join(''));
    },
  },
];

/** The reply to CONTROL `<command>|<args>|…`; throws a StoreError carrying the errno to answer. */
export function controlCommand(store: ControlStore, strings: readonly Buffer[], log: (m: string) => void): Buffer {
  const [cmd, ...rest] = strings.map((b) => b.toString('utf8'));
  const c = COMMANDS.find((x) => x.name === cmd);
  if (!c) invalid();
  return c.run(store, rest, log);
}
