// Finding a host's QEMUs without any table: the processes whose command line
// puts their sockets under one domains directory, and what each says of itself
// over QMP. `xenoded --recover` and the start-up check rebuild and verify the
// domain table from this.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DomainRunPaths } from './paths.ts';
import { type MachineRunState, QemuMachine } from './qemu-machine.ts';

/** A live QEMU started by Xenode for a domain of `domainsDir`, as its command line tells. */
export interface FoundQemu {
  pid: number;
  domid: number;
  /** `<domainsDir>/<domid>`: where its QMP and console sockets are. */
  runDir: string;
  name: string;
  uuid?: string;
  memoryMiB?: number;
  maxmemMiB?: number;
  vcpus?: number;
  maxvcpus?: number;
}

function optionAfter(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

function sizeMiB(v: string | undefined): number | undefined {
  const m = v ? /^(\d+)M$/.exec(v) : null;
  return m ? Number(m[1]) : undefined;
}

/** Parses one /proc cmdline; undefined unless it is a Xenode QEMU of `domainsDir`. */
export function parseQemuCmdline(pid: number, cmdline: string, domainsDir: string): FoundQemu | undefined {
  const args = cmdline.split('\0');
  // -name NAME,process=xenode-dN,...: a literal comma in NAME is doubled.
  const named = /^((?:[^,]|,,)*),process=xenode-d(\d+)(?:,|$)/.exec(optionAfter(args, '-name') ?? '');
  if (!named) return undefined;
  const domid = Number(named[2]);
  const runDir = join(domainsDir, String(domid));
  if (!args.some((a) => a.includes(`${runDir}/`))) return undefined;
  const mem = (optionAfter(args, '-m') ?? '').split(',');
  const smp = /^(\d+)(?:,maxcpus=(\d+))?/.exec(optionAfter(args, '-smp') ?? '');
  return {
    pid,
    domid,
    runDir,
    name: named[1].replaceAll(',,', ','),
    uuid: optionAfter(args, '-uuid'),
    memoryMiB: sizeMiB(mem[0]),
    maxmemMiB: sizeMiB(mem.find((x) => x.startsWith('maxmem='))?.slice('maxmem='.length)) ?? sizeMiB(mem[0]),
    vcpus: smp ? Number(smp[1]) : undefined,
    maxvcpus: smp ? Number(smp[2] ?? smp[1]) : undefined,
  };
}

/** Every live (not zombie) Xenode QEMU whose sockets live under `domainsDir`. */
export function findQemus(domainsDir: string): FoundQemu[] {
  const out: FoundQemu[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const ent of entries) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const cmdline = readFileSync(`/proc/${ent}/cmdline`, 'utf8');
      if (!cmdline.includes('process=xenode-d')) continue;
      const state = readFileSync(`/proc/${ent}/stat`, 'utf8').split(') ')[1]?.[0];
      if (state === undefined || state === 'Z' || state === 'X') continue;
      const found = parseQemuCmdline(Number(ent), cmdline, domainsDir);
      if (found) out.push(found);
    } catch {
      /* gone meanwhile */
    }
  }
  return out.sort((a, b) => a.domid - b.domid);
}

/** What a QEMU says of itself over QMP. */
export interface QemuSelf {
  state: MachineRunState;
  name?: string;
  uuid?: string;
}

/**
 * Asks a QEMU left running for its run state, name and uuid, then lets go of
 * its QMP socket (QEMU serves one client at a time). undefined when it does
 * not answer.
 */
export async function probeQemu(paths: DomainRunPaths, pid: number): Promise<QemuSelf | undefined> {
  const m = await QemuMachine.attach(paths, pid);
  if (!m) return undefined;
  const qmp = m.qmpClient;
  try {
    const state = await m.runState();
    const name = await qmp.execute<{ name?: string }>('query-name').then(
      (r) => r.name,
      () => undefined,
    );
    const uuid = await qmp.execute<{ UUID?: string }>('query-uuid').then(
      (r) => r.UUID,
      () => undefined,
    );
    return { state, name, uuid };
  } catch {
    return undefined;
  } finally {
    qmp.close();
  }
}
