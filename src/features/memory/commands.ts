// Memory commands: mem-set with deadlines, mem-list (targets, devices, guest
// and host view), shm-list (static_shm regions). mem-max stays in commands.ts.

import type { CommandSpec } from '../../cli/command-spec.ts';
import { parseMemSizeMiB } from '../../cli/format.ts';
import { XenodeError } from '../../errors.ts';
import type { MemoryStatus, MemSetResult } from './control.ts';
import { type MemoryVerdict, parseDeadlineMs } from './policy.ts';
import type { ShmRegionView } from './static-shm.ts';

const enc = encodeURIComponent;
const mib = (kib: number) => Math.round(kib / 1024);
const secs = (ms: number) => `${+(ms / 1000).toFixed(2)} s`;

export function verdictLine(domid: number, v: MemoryVerdict): string {
  if (v.complied) {
    return `Domain ${domid}: memory at ${mib(v.actualKiB)} MiB (target ${mib(v.targetKiB)} MiB) after ${secs(v.elapsedMs)}, within its ${secs(v.deadlineMs)} deadline`;
  }
  if (v.note) return `Domain ${domid}: no verdict for target ${mib(v.targetKiB)} MiB: ${v.note}`;
  return `Domain ${domid} missed its ${secs(v.deadlineMs)} memory deadline: ${mib(v.actualKiB)} MiB, target ${mib(v.targetKiB)} MiB (tolerance ${mib(v.toleranceKiB)} MiB); on_memory_noncompliance=${v.action}`;
}

const memSet: CommandSpec = {
  name: 'mem-set',
  example: 'xenode mem-set web1 768m --deadline 2s',
  args: '<domain> <size>',
  summary: "Set a domain's memory target (no suffix = MiB): balloon below boot size, virtio-mem above",
  help: `Returns at once, as xl does. With --deadline the command waits for the verdict:
exit 0 once the domain is within tolerance of the target (2 %, at least 8 MiB),
exit 1 if it is not by the deadline; the domain's on_memory_noncompliance
(report | pause | destroy) has then been applied.`,
  options: [{ flags: '--deadline <time>', help: 'time the domain has to comply, e.g. 1s, 500ms, 2m' }],
  async run(ctx, [dom, size], opts) {
    const mibTarget = parseMemSizeMiB(size);
    let deadlineMs: number | undefined;
    if (typeof opts.deadline === 'string') {
      deadlineMs = parseDeadlineMs(opts.deadline);
      if (deadlineMs === undefined)
        throw new XenodeError('usage', `invalid deadline: ${opts.deadline}`, { hint: 'e.g. 1s, 500ms, 2m' });
    }
    const r = await ctx.client().post<MemSetResult>(`/v1/domains/${enc(dom)}/mem-set`, { mib: mibTarget, deadlineMs });
    if (!r.verdict) return 0;
    const line = verdictLine(r.domid, r.verdict);
    if (r.verdict.complied) {
      ctx.out(`${line}\n`);
      return 0;
    }
    ctx.err(`${line}\n`);
    return 1;
  },
};

function cell(v: number | undefined, w: number): string {
  return (v === undefined ? '-' : String(v)).padStart(w);
}

export function formatMemList(rows: MemoryStatus[]): string {
  const head = `${'Name'.padEnd(32)} ${'ID'.padStart(5)} ${'Boot'.padStart(6)} ${'Max'.padStart(6)} ${'Target'.padStart(6)} ${'Actual'.padStart(6)} ${'Balloon'.padStart(7)} ${'Hotplug'.padStart(7)} ${'Free'.padStart(6)} ${'Avail'.padStart(6)} ${'QemuRSS'.padStart(7)}`;
  const lines = [head];
  const b = (x: number | undefined) => (x === undefined ? undefined : Math.round(x / 1048576));
  for (const s of rows) {
    lines.push(
      `${s.name.padEnd(32)} ${cell(s.domid, 5)} ${cell(s.bootMiB, 6)} ${cell(s.maxMiB, 6)} ${cell(mib(s.targetKiB), 6)} ${cell(mib(s.actualKiB), 6)} ${cell(mib(s.balloonKiB), 7)} ${cell(mib(s.hotplugKiB), 7)} ${cell(b(s.guest?.freeBytes), 6)} ${cell(b(s.guest?.availableBytes), 6)} ${cell(s.qemu && mib(s.qemu.rssKiB), 7)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

const memList: CommandSpec = {
  name: 'mem-list',
  example: 'xenode mem-list web1',
  args: '[domains...]',
  summary: 'Show memory per domain (MiB): target, actual, balloon, hot-plugged, guest free/available, QEMU RSS',
  options: [{ flags: '-l, --long', help: 'JSON, with guest statistics and the last deadline verdict' }],
  async run(ctx, args, opts) {
    const c = ctx.client();
    const refs = args.length
      ? args
      : (await c.get<Array<{ domid: number }>>('/v1/domains')).map((d) => String(d.domid));
    const rows: MemoryStatus[] = [];
    for (const r of refs) rows.push(await c.get<MemoryStatus>(`/v1/domains/${enc(r)}/memory`));
    ctx.out(opts.long ? `${JSON.stringify(rows, null, 2)}\n` : formatMemList(rows));
    return 0;
  },
};

const shmList: CommandSpec = {
  name: 'shm-list',
  example: 'xenode shm-list',
  args: '',
  summary: 'List static_shm regions: id, size, owner, domains using it, host file',
  async run(ctx) {
    const regions = await ctx.client().get<ShmRegionView[]>('/v1/shm');
    const lines = [
      `${'Sponsor'.padEnd(12)} ${'ID'.padEnd(24)} ${'Size'.padStart(12)} ${'Owner'.padStart(5)}  ${'Users'.padEnd(16)} Path`,
    ];
    for (const r of regions) {
      lines.push(
        `${r.sponsor.padEnd(12)} ${r.id.padEnd(24)} ${`0x${r.size.toString(16)}`.padStart(12)} ${(r.owner === undefined ? '-' : String(r.owner)).padStart(5)}  ${r.users.join(',').padEnd(16)} ${r.path}`,
      );
    }
    ctx.out(`${lines.join('\n')}\n`);
    return 0;
  },
};

const shmGrant: CommandSpec = {
  name: 'shm-grant',
  example: 'xenode shm-grant alice/r1 bob',
  args: '<owner/id> <sponsor>',
  summary: "Let a sponsor's domains borrow another sponsor's static_shm region by its id (admin)",
  help: `static_shm ids are per sponsor: bob's role=borrower for id r1 means bob's own
region r1, unless the admin grants him alice/r1. --revoke takes the grant back
(domains already mapping the region keep it until they are destroyed).`,
  options: [{ flags: '--revoke', help: 'remove the grant' }],
  async run(ctx, [region, sponsor], opts) {
    await ctx.client().post('/v1/shm/grants', { region, sponsor, revoke: opts.revoke === true });
    return 0;
  },
};

export const memoryCommands: CommandSpec[] = [memSet, memList, shmList, shmGrant];
