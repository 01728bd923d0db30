// xl's trigger, button-press, sysrq, cd-insert/cd-eject and qemu-monitor-command, and the answer
// for the xl subcommands Xenode does not have.

import { constants } from 'node:fs';
import { resolve } from 'node:path';
import { checkKernel, checkReadableFile } from '../config/files.ts';
import type { FileCheck } from '../config/validate.ts';
import { XenodeError } from '../errors.ts';
import type { CommandSpec } from './command-spec.ts';

const enc = encodeURIComponent;

const TRIGGERS = ['nmi', 'reset', 'init', 'power', 'sleep', 's3resume'];

export const xlCommands: CommandSpec[] = [
  {
    name: 'trigger',
    example: 'xenode trigger web1 nmi',
    args: '<domain> <kind> [vcpu]',
    summary: 'Send a trigger to a domain: nmi, reset, power (sleep, init and s3resume are Xen-only)',
    help: `nmi     a non-maskable interrupt on every vCPU
reset   a hardware reset: the guest boots again in place (on_reboot does not apply)
power   the ACPI power button (as shutdown; on_poweroff applies)
The vcpu argument is accepted for xl compatibility; an NMI goes to every vCPU.`,
    async run(ctx, [dom, kind]) {
      if (!TRIGGERS.includes(kind))
        throw new XenodeError('usage', `Invalid trigger "${kind}"`, { hint: `use one of ${TRIGGERS.join(', ')}` });
      await ctx.client().post(`/v1/domains/${enc(dom)}/trigger`, { kind });
      return 0;
    },
  },
  {
    name: 'button-press',
    example: 'xenode button-press web1 power',
    args: '<domain> <button>',
    summary: 'Press a virtual button on a domain: power (deprecated in xl: use trigger)',
    async run(ctx, [dom, button]) {
      ctx.err('WARNING: "button-press" is deprecated. Please use "trigger" instead.\n');
      if (button !== 'power' && button !== 'sleep')
        throw new XenodeError('usage', `${button} is an invalid button identifier`, { hint: 'use power or sleep' });
      await ctx.client().post(`/v1/domains/${enc(dom)}/trigger`, { kind: button });
      return 0;
    },
  },
  {
    name: 'sysrq',
    example: 'xenode sysrq web1 s',
    args: '<domain> <letter>',
    summary: "Send a SysRq key to a domain's kernel (Alt+SysRq+letter on its keyboard)",
    async run(ctx, [dom, key]) {
      if (!/^[a-z0-9]$/.test(key))
        throw new XenodeError('usage', 'Only one letter or digit is allowed for sysrq', { hint: 'e.g. s, u, h' });
      await ctx.client().post(`/v1/domains/${enc(dom)}/sysrq`, { key });
      return 0;
    },
  },
  {
    name: 'cd-insert',
    example: 'xenode cd-insert web1 xvdc /srv/iso/debian.iso',
    args: '<domain> <vdev> <file>',
    summary: 'Insert a disc image into a CD-ROM drive of a domain (devtype=cdrom)',
    help: 'The image is opened raw and read-only. A sponsor may insert only its own volumes.',
    async run(ctx, [dom, vdev, file]) {
      // xl's TARGET may carry a format prefix; raw is the one format a disc image has here.
      const path = file.startsWith('raw:') ? file.slice(4) : file;
      await ctx.client().post(`/v1/domains/${enc(dom)}/cd-insert`, { vdev, file: resolve(path) });
      return 0;
    },
  },
  {
    name: 'cd-eject',
    example: 'xenode cd-eject web1 xvdc',
    args: '<domain> <vdev>',
    summary: 'Eject the disc from a CD-ROM drive of a domain',
    async run(ctx, [dom, vdev]) {
      await ctx.client().post(`/v1/domains/${enc(dom)}/cd-eject`, { vdev });
      return 0;
    },
  },
  {
    name: 'dump-core',
    example: 'xenode dump-core web1 /var/tmp/web1.core',
    args: '<domain> <file>',
    summary: "Write a domain's memory to a file as an ELF core (admin only; the guest pauses meanwhile)",
    async run(ctx, [dom, file]) {
      await ctx.client().post(`/v1/domains/${enc(dom)}/dump-core`, { file: resolve(file) });
      return 0;
    },
  },
  {
    name: 'qemu-monitor-command',
    example: "xenode qemu-monitor-command web1 'info status'",
    args: '<domain> <command>',
    summary: "Run a command in the domain's QEMU human monitor (admin only)",
    async run(ctx, [dom, command]) {
      const r = await ctx.client().post<{ output: string }>(`/v1/domains/${enc(dom)}/monitor`, { command });
      ctx.out(r.output.replace(/\r\n/g, '\n'));
      return 0;
    },
  },
];

/** xl subcommands that act on the Xen hypervisor itself, with no meaning on a QEMU host. */
const HYPERVISOR_ONLY: RegExp[] = [
  /^cpupool-/,
  /^tmem-/,
  /^psr-/,
  /^pci-assignable-/,
  /^(debug-keys|set-parameters|getenforce|setenforce|loadpolicy|claims|sharing|sched-credit2|sched-rtds|devd)$/,
  /^(vdispl|vsnd|vkb|vtpm|usbctrl|usbdev|channel)-/,
];

/** xl subcommands that could exist on a QEMU host and that Xenode does not have yet. */
const NOT_YET: RegExp[] = [/^pci-(attach|detach|list)$/, /^(vncviewer|vm-list|config-update|remus|migrate-receive)$/];

/**
 * The message for a command not in the table, or undefined when `name` is not
 * a command word at all (an option, or empty).
 */
export function missingCommandMessage(name: string): string | undefined {
  if (!name || name.startsWith('-')) return undefined;
  if (HYPERVISOR_ONLY.some((r) => r.test(name)))
    return `${name}: needs the Xen hypervisor; Xenode runs domains under QEMU and has no equivalent`;
  if (NOT_YET.some((r) => r.test(name))) return `${name}: an xl command not implemented in Xenode yet`;
  return 'command not implemented';
}

/** The host's own entry in xl's tables: id 0, name Domain-0. */
export function isDom0Ref(ref: string): boolean {
  return ref === '0' || ref === 'Domain-0';
}

/**
 * `create -n` as xl's: the host's file checks, each failure a warning, so a
 * config can be checked on a machine that does not hold its files.
 */
export function dryRunFileCheck(warn: (m: string) => void): FileCheck {
  const loc = { file: '<dry-run>', line: 0, column: 0 };
  return (kind, path, write) => {
    try {
      if (kind === 'kernel') checkKernel(path, loc);
      else if (kind === 'device_model_override') checkReadableFile('device model', path, loc, constants.X_OK);
      else
        checkReadableFile(
          kind === 'disk' ? 'disk target' : 'ramdisk file',
          path,
          loc,
          write ? constants.R_OK | constants.W_OK : constants.R_OK,
        );
    } catch (e) {
      warn(`${kind} ${path}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
}
