// xl's output layouts, reproduced column for column.

import type { DomainView, HostInfo } from '../api/views.ts';
import { XenodeError } from '../errors.ts';

export function listHeader(): string {
  return `${'Name'.padEnd(40)} ${'ID'.padStart(5)} ${'Mem'.padStart(5)} ${'VCPUs'.padStart(5)}\tState\tTime(s)`;
}

export function listRow(name: string, id: number, memMiB: number, vcpus: number, state: string, cpu: number): string {
  return `${name.padEnd(40)} ${String(id).padStart(5)} ${String(memMiB).padStart(5)} ${String(vcpus).padStart(5)}     ${state}  ${cpu.toFixed(1).padStart(8)}`;
}

export function dom0Row(info: HostInfo): string {
  return listRow('Domain-0', 0, info.total_memory, info.nr_cpus, 'r-----', 0);
}

export function formatList(info: HostInfo | undefined, doms: DomainView[]): string {
  const lines = [listHeader()];
  if (info) lines.push(dom0Row(info));
  for (const d of doms) lines.push(listRow(d.name, d.domid, d.memMiB, d.vcpus, d.stateLetters, d.cpuSeconds));
  return `${lines.join('\n')}\n`;
}

function two(n: number): string {
  return String(n).padStart(2, '0');
}

/** `[D day(s), ]HH:MM:SS` as in xl uptime. */
export function formatUptime(seconds: number): string {
  const s = Math.floor(seconds);
  const days = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const hms = `${two(h)}:${two(m)}:${two(sec)}`;
  return days > 0 ? `${days} day${days > 1 ? 's' : ''}, ${hms}` : hms;
}

/** `dom0Seconds`: the host's uptime, for a Domain-0 row first (as xl prints it). */
export function formatUptimeTable(doms: DomainView[], dom0Seconds?: number): string {
  const lines = [`${'Name'.padEnd(33)} ${'ID'.padStart(4)} Uptime`];
  if (dom0Seconds !== undefined) lines.push(`${'Domain-0'.padEnd(33)} ${'0'.padStart(4)} ${formatUptime(dom0Seconds)}`);
  for (const d of doms)
    lines.push(`${d.name.padEnd(33)} ${String(d.domid).padStart(4)} ${formatUptime(d.uptimeSeconds)}`);
  return `${lines.join('\n')}\n`;
}

export function formatInfo(info: HostInfo): string {
  const rows: Array<[string, string | number]> = [
    ['host', info.host],
    ['release', info.release],
    ['version', info.version],
    ['machine', 'x86_64'],
    ['nr_cpus', info.nr_cpus],
    ['total_memory', info.total_memory],
    ['free_memory', info.free_memory],
    ['virt_caps', info.accel === 'kvm' ? 'hvm' : 'hvm (emulated)'],
    ['accel', info.accel],
    ['accel_reason', info.accel_reason],
    ['device_model', info.qemu],
    ['device_model_version', info.qemu_version],
    ['xenode_version', info.xenode_version],
    ['xenoded_pid', info.daemon_pid],
    ['xenoded_uptime', formatUptime(info.daemon_uptime)],
    ['nr_domains', info.domains],
  ];
  return `${rows.map(([k, v]) => `${k.padEnd(23)}: ${v}`).join('\n')}\n`;
}

/** xl size syntax: integer + optional b/k/m/g/t; no suffix = MiB. Returns MiB. */
export function parseMemSizeMiB(s: string): number {
  const m = /^(\d+)([bBkKmMgGtT]?)$/.exec(s.trim());
  if (!m) throw new XenodeError('usage', `invalid memory size: ${s}`, { hint: 'e.g. 512, 512m, 2g', exitCode: 1 });
  const n = Number(m[1]);
  const unit = m[2].toLowerCase();
  const bytes =
    unit === 'b'
      ? n
      : unit === 'k'
        ? n * 1024
        : unit === 'g'
          ? n * 1024 ** 3
          : unit === 't'
            ? n * 1024 ** 4
            : n * 1024 ** 2;
  return Math.floor(bytes / 1024 ** 2);
}
