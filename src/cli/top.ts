// `xenode top`: a xentop-like live view of domains, CPU% from CPU-time deltas.

import { setTimeout as sleep } from 'node:timers/promises';
import type { DomainView, HostInfo } from '../api/views.ts';
import type { CommandSpec } from './command-spec.ts';

function header(info: HostInfo, doms: DomainView[]): string {
  const count = (pred: (d: DomainView) => boolean) => doms.filter(pred).length;
  const now = new Date().toTimeString().slice(0, 8);
  const used = info.total_memory - info.free_memory;
  return [
    `xentop - ${now}   Xenode ${info.xenode_version} (${info.accel})`,
    `${doms.length} domains: ${count((d) => d.stateLetters[0] === 'r')} running, ${count((d) => d.stateLetters[1] === 'b')} blocked, ${count((d) => d.stateLetters[2] === 'p')} paused, ${count((d) => d.stateLetters[4] === 'c')} crashed, ${count((d) => d.stateLetters[5] === 'd')} dying, ${count((d) => d.stateLetters[3] === 's')} shutdown `,
    `Mem: ${info.total_memory * 1024}k total, ${used * 1024}k used, ${info.free_memory * 1024}k free    CPUs: ${info.nr_cpus}`,
  ].join('\n');
}

export const topCommand: CommandSpec = {
  name: 'top',
  example: 'xenode top -b -i 2 -d 1',
  args: '',
  summary: 'Monitor domains live (xentop)',
  options: [
    { flags: '-d, --delay <s>', help: 'seconds between updates (default 3)' },
    { flags: '-b, --batch', help: 'batch mode: print plain frames, no screen clearing' },
    { flags: '-i, --iterations <n>', help: 'number of updates before exiting' },
  ],
  async run(ctx, _args, opts) {
    const c = ctx.client();
    const delay = Number(opts.delay ?? 3) * 1000;
    const iterations = opts.iterations ? Number(opts.iterations) : opts.batch ? 1 : Number.POSITIVE_INFINITY;
    let prev = new Map<number, { cpu: number; at: number }>();
    for (let i = 0; i < iterations; i++) {
      const [info, doms] = await Promise.all([c.get<HostInfo>('/v1/info'), c.get<DomainView[]>('/v1/domains')]);
      const now = Date.now();
      const next = new Map<number, { cpu: number; at: number }>();
      const lines = [
        header(info, doms),
        `      NAME  STATE   CPU(sec) CPU(%)     MEM(k) MEM(%)  MAXMEM(k) MAXMEM(%) VCPUS NETS NETTX(k) NETRX(k) VBDS   VBD_OO   VBD_RD   VBD_WR  VBD_RSECT  VBD_WSECT SSID`,
      ];
      for (const d of doms) {
        const p = prev.get(d.domid);
        const pct = p ? ((d.cpuSeconds - p.cpu) / ((now - p.at) / 1000)) * 100 : 0;
        next.set(d.domid, { cpu: d.cpuSeconds, at: now });
        const memK = d.memMiB * 1024;
        const maxK = d.maxMiB * 1024;
        const tot = info.total_memory * 1024;
        lines.push(
          `${d.name.padStart(10)} ${d.stateLetters.padStart(6)} ${d.cpuSeconds.toFixed(0).padStart(10)} ${pct.toFixed(1).padStart(6)} ${String(memK).padStart(10)} ${((memK / tot) * 100).toFixed(1).padStart(6)} ${String(maxK).padStart(10)} ${((maxK / tot) * 100).toFixed(1).padStart(9)} ${String(d.vcpus).padStart(5)} ${'0'.padStart(4)} ${'0'.padStart(8)} ${'0'.padStart(8)} ${'0'.padStart(4)} ${'0'.padStart(8)} ${'0'.padStart(8)} ${'0'.padStart(8)} ${'0'.padStart(10)} ${'0'.padStart(10)} ${'0'.padStart(4)}`,
        );
      }
      prev = next;
      if (!opts.batch) ctx.out('\x1b[H\x1b[2J');
      ctx.out(`${lines.join('\n')}\n`);
      if (i + 1 < iterations) await sleep(delay);
    }
    return 0;
  },
};
