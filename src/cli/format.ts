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

export function formatList(info: HostInfo | undefined, doms: DomainView[], cols: ListColumns = {}): string {
  const lines = [listHeader() + extraHeader(cols)];
  if (info) lines.push(dom0Row(info) + extraCells(cols, '00000000-0000-0000-0000-000000000000', 'r-----'));
  for (const d of doms)
    lines.push(
      listRow(d.name, d.domid, d.memMiB, d.vcpus, d.stateLetters, d.cpuSeconds) +
        extraCells(cols, d.uuid, d.stateLetters),
    );
  return `${lines.join('\n')}\n`;
}

function two(n: number): string {
  return String(n).padStart(2, '0');
}

/** `[D day(s), ]H:MM:SS` as in xl uptime (the hour space-padded to two, `%2d`); `short`: no seconds. */
export function formatUptime(seconds: number, short = false): string {
  const s = Math.floor(seconds);
  const days = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const hms = `${String(h).padStart(2)}:${two(m)}${short ? '' : `:${two(sec)}`}`;
  return days > 0 ? `${days} day${days > 1 ? 's' : ''}, ${hms}` : hms;
}

/** `dom0Seconds`: the host's uptime, for a Domain-0 row first (as xl prints it); `short`: xl uptime -s. */
export function formatUptimeTable(doms: DomainView[], dom0Seconds?: number, short = false): string {
  const rows: Array<[string, number, number]> = [];
  if (dom0Seconds !== undefined) rows.push(['Domain-0', 0, dom0Seconds]);
  for (const d of doms) rows.push([d.name, d.domid, d.uptimeSeconds]);
  if (short) {
    const now = new Date();
    const clock = `${two(now.getHours())}:${two(now.getMinutes())}:${two(now.getSeconds())}`;
    return rows.map(([name, id, up]) => ` ${clock} up ${formatUptime(up, true)}, ${name} (${id})\n`).join('');
  }
  const lines = [`${'Name'.padEnd(33)} ${'ID'.padStart(4)} Uptime`];
  for (const [name, id, up] of rows) lines.push(`${name.padEnd(33)} ${String(id).padStart(4)} ${formatUptime(up)}`);
  return `${lines.join('\n')}\n`;
}

/** xl list's shutdown reason codes (libxl_shutdown_reason), by the fifth state letter. */
const REASON_CODE: Record<string, number> = { '-': 0, r: 1, s: 2, c: 3, w: 4, S: 5 };

export interface ListColumns {
  verbose?: boolean;
  context?: boolean;
  cpupool?: boolean;
  numa?: boolean;
}

/** The columns xl list -v / -Z / -c / -n add after Time(s), header and rows. */
function extraHeader(c: ListColumns): string {
  let h = '';
  if (c.verbose) h += '   UUID                            Reason-Code\tSecurity Label';
  else if (c.context) h += '   Security Label';
  if (c.cpupool) h += '         Cpupool';
  if (c.numa) h += ' NODE Affinity';
  return h;
}

function extraCells(c: ListColumns, uuid: string, letters: string): string {
  let s = '';
  if (c.verbose) {
    const reason = letters[3] === 's' ? (REASON_CODE[letters[4] ?? '-'] ?? 0).toString(16) : '-';
    s += ` ${uuid} ${reason.padStart(8)}`;
  }
  // No XSM/FLASK here: every domain's label is '-'; one pool; one NUMA node set.
  if (c.verbose || c.context) s += ` ${'-'.padStart(16)}`;
  if (c.cpupool) s += 'Pool-0'.padStart(16);
  if (c.numa) s += ' all';
  return s;
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
