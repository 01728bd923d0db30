// xl's trigger, button-press, sysrq, dump-core and qemu-monitor-command on a running domain.
// Power goes through the toolstack's shutdown (ACPI button, on_poweroff then
// applies); the rest acts on the machine directly, one action at a time per domain.

import { existsSync, statSync } from 'node:fs';
import { dirname, isAbsolute } from 'node:path';
import { HMP_MAX_CHARS, isSysrqKey, MachineTriggers } from '../engine/triggers.ts';
import { XenodeError } from '../errors.ts';
import type { Domain } from './domain.ts';
import type { Toolstack } from './toolstack.ts';

/** xl's trigger kinds; init and s3resume name Xen vCPU operations with no QEMU equivalent. */
export const TRIGGER_KINDS = ['nmi', 'reset', 'init', 'power', 'sleep', 's3resume'] as const;
export type TriggerKind = (typeof TRIGGER_KINDS)[number];

export function isTriggerKind(k: unknown): k is TriggerKind {
  return typeof k === 'string' && (TRIGGER_KINDS as readonly string[]).includes(k);
}

function liveMachine(d: Domain) {
  if (!d.machine?.alive || (d.rec.state !== 'running' && d.rec.state !== 'paused'))
    throw new XenodeError('state', `domain ${d.name} is not running`);
  return d.machine;
}

export async function trigger(ts: Toolstack, d: Domain, kind: TriggerKind): Promise<void> {
  switch (kind) {
    case 'power':
      await ts.shutdown(d);
      return;
    case 'nmi':
      await d.serial(() => new MachineTriggers(liveMachine(d)).injectNmi());
      return;
    case 'reset':
      // A hardware reset: the guest boots again in place, as xl's trigger reset on HVM (on_reboot does not apply).
      await d.serial(() => liveMachine(d).resetAndRun());
      return;
    default:
      throw new XenodeError('state', `trigger ${kind} is not available on a QEMU domain`, {
        hint:
          kind === 'sleep'
            ? 'QEMU has no ACPI sleep button; suspend from inside the guest (echo mem > /sys/power/state)'
            : `'${kind}' is a Xen hypervisor vCPU operation`,
        exitCode: 1,
      });
  }
}

export async function sysrq(d: Domain, key: string): Promise<void> {
  if (!isSysrqKey(key))
    throw new XenodeError('usage', `invalid sysrq key '${key.slice(0, 16)}'`, { hint: 'one letter a-z or digit 0-9' });
  await d.serial(() => new MachineTriggers(liveMachine(d)).sysrq(key));
}

export async function monitorCommand(d: Domain, line: string): Promise<string> {
  if (line.length === 0 || line.length > HMP_MAX_CHARS)
    throw new XenodeError('usage', `monitor command must be 1 to ${HMP_MAX_CHARS} characters`);
  return d.serial(() => new MachineTriggers(liveMachine(d)).humanMonitor(line));
}

/** Longest a core dump may take: a large guest's RAM written to a slow disk. */
const DUMP_TIMEOUT_MS = 30 * 60_000;

/** The guest's memory as an ELF core at `file`, a host path (the admin's alone: the route checks). */
export async function dumpCore(d: Domain, file: string): Promise<void> {
  if (!isAbsolute(file) || file.length > 4096) throw new XenodeError('usage', 'dump-core needs an absolute file path');
  if (!existsSync(dirname(file)) || !statSync(dirname(file)).isDirectory())
    throw new XenodeError('not-found', `no such directory: ${dirname(file)}`);
  if (existsSync(file) && !statSync(file).isFile())
    throw new XenodeError('usage', `${file} exists and is not a regular file`, { exitCode: 1 });
  await d.serial(() => liveMachine(d).dumpGuestMemory(file, DUMP_TIMEOUT_MS));
}
