// network-attach / -detach / -list (xl's), plus Xenode's switch status and
// the sponsor isolation policy (network-allow / -deny / -policy).

import { readFileSync } from 'node:fs';
import type { ApiClient } from '../../cli/client.ts';
import type { CommandSpec } from '../../cli/command-spec.ts';
import { XenodeError } from '../../errors.ts';
import type { SponsorPair } from '../../net/policy.ts';
import type { NetStatus, VifView } from './manager.ts';
import { formatRate } from './rate.ts';

const enc = encodeURIComponent;

/** Records in a pcap file (what tcpdump would count). */
function pcapPackets(file: string): number {
  const b = readFileSync(file);
  let n = 0;
  for (let off = 24; off + 16 <= b.length; off += 16 + b.readUInt32LE(off + 8)) n++;
  return n;
}

interface DomainNet {
  domid: number;
  name: string;
  vifs: VifView[];
}

/** xl's network-list header (xl_nic.c: "%-3s %-2s %-17s %-6s %-5s %-6s %5s/%-5s %-30s"). */
export function networkListHeader(): string {
  return `${'Idx'.padEnd(3)} ${'BE'.padEnd(2)} ${'Mac Addr.'.padEnd(17)} ${'handle'.padEnd(6)} ${'state'.padEnd(5)} ${'evt-ch'.padEnd(6)} ${'tx-'.padStart(5)}/${'rx-ring-ref'.padEnd(5)} ${'BE-path'.padEnd(30)}`;
}

/** One row: "%-3d %-2d " MAC "%6d %5d %6d %5d/%-11d %-30s"; QEMU NICs have no event channel or rings (-1). */
export function networkListRow(v: VifView): string {
  return `${String(v.devid).padEnd(3)} ${'0'.padEnd(2)} ${v.mac}${String(v.devid).padStart(6)} ${String(v.state).padStart(5)} ${'-1'.padStart(6)} ${'-1'.padStart(5)}/${'-1'.padEnd(11)} ${v.backend_path.padEnd(30)}`;
}

function n(x: number | undefined): string {
  return x === undefined ? '-' : String(x);
}

export function networkStatsTable(doms: DomainNet[]): string {
  const head = [
    'Domain',
    'Idx',
    'Mac Addr.',
    'Backend',
    'Link',
    'IP',
    'RX bytes',
    'RX pkts',
    'TX bytes',
    'TX pkts',
    'RX drop',
    'Policy drop',
    'Spoof drop',
    'Rate',
    'Rate holds',
  ];
  const rows = doms.flatMap((d) =>
    d.vifs.map((v) => [
      d.name,
      String(v.devid),
      v.mac,
      v.backend === 'bridge' ? `bridge:${v.bridge}` : 'switch',
      v.link,
      v.ip ?? '-',
      n(v.counters?.rx_bytes),
      n(v.counters?.rx_packets),
      n(v.counters?.tx_bytes),
      n(v.counters?.tx_packets),
      n(v.counters?.rx_dropped),
      n(v.counters?.tx_policy_dropped),
      n(v.counters?.tx_spoof_dropped),
      v.rate_in_force ? formatRate(v.rate_in_force) : '-',
      n(v.counters?.tx_rate_holds),
    ]),
  );
  return table(head, rows);
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(w[i] as number))
      .join('  ')
      .trimEnd();
  return `${[line(head), ...rows.map(line)].join('\n')}\n`;
}

function formatPolicy(allow: SponsorPair[]): string {
  if (allow.length === 0) return 'Sponsors are isolated from each other; no pair is allowed.\n';
  return `${allow.map(([a, b]) => `${a} <-> ${b}`).join('\n')}\n`;
}

export function formatNetStatus(s: NetStatus): string {
  const lines = [
    `switch     : ${s.switch.running ? `running (pid ${s.switch.pid})` : 'not running (starts with the first vif)'}`,
    `restarts   : ${s.switch.restarts}`,
    `host port  : ${s.host_port ? `${s.host_port.name} ${s.host_port.address} mtu ${s.host_port.mtu} ${s.host_port.up ? 'up' : `down${s.host_port.error ? ` (${s.host_port.error})` : ''}`}` : 'none'}`,
    `allowed    : ${s.allow.length ? s.allow.map(([a, b]) => `${a}<->${b}`).join(' ') : 'none (sponsors isolated)'}`,
    `net-rate   : ${s.sponsor_rates?.length ? s.sponsor_rates.map((r) => `${r.sponsor}=${formatRate(r.rate)}`).join(' ') : 'none'}`,
    `log        : ${s.switch.log}`,
  ];
  let out = `${lines.join('\n')}\n`;
  if (s.ports.length) {
    out += `\n${table(
      [
        'Port',
        'Sponsor',
        'Mac Addr.',
        'Link',
        'In pkts',
        'In bytes',
        'Out pkts',
        'Out bytes',
        'Out drop',
        'Policy drop',
        'Spoof drop',
        'Rate',
        'Rate holds',
      ],
      s.ports.map((p) => [
        p.id,
        p.sponsor,
        p.mac ?? '-',
        p.connected ? 'up' : 'down',
        String(p.counters.rxPackets),
        String(p.counters.rxBytes),
        String(p.counters.txPackets),
        String(p.counters.txBytes),
        String(p.counters.txDrops),
        String(p.counters.policyDrops),
        String(p.counters.spoofDrops),
        p.rate ? formatRate(p.rate) : '-',
        String(p.counters.rateHolds ?? 0),
      ]),
    )}`;
  }
  return out;
}

async function domainNets(c: ApiClient, refs: string[]): Promise<DomainNet[]> {
  const out: DomainNet[] = [];
  for (const r of refs) out.push(await c.get<DomainNet>(`/v1/domains/${enc(r)}/net`));
  return out;
}

export const netCommands: CommandSpec[] = [
  {
    name: 'network-attach',
    args: '<domain> [spec...]',
    summary: 'Create a new virtual network device (hotplug)',
    help: `Spec items as in vif=[...]: mac= bridge= ip= model= rate= vifname= mtu=.
Without bridge= (or with bridge=xenbr0 and no Linux bridge of that name) the vif
is on Xenode's switch; bridge=NAME puts it on Linux bridge NAME through a TAP.`,
    example: 'xenode network-attach web1 ip=10.200.0.21 rate=10MB/s',
    async run(ctx, [dom, ...spec]) {
      const r = await ctx
        .client()
        .post<VifView & { warnings: string[] }>(`/v1/domains/${enc(dom)}/net`, { spec: spec.join(',') });
      for (const w of r.warnings) ctx.err(`warning: ${w}\n`);
      return 0;
    },
  },
  {
    name: 'network-detach',
    args: '<domain> <device>',
    summary: "Destroy a domain's virtual network device (devid or MAC)",
    example: 'xenode network-detach web1 1',
    async run(ctx, [dom, dev]) {
      await ctx.client().del(`/v1/domains/${enc(dom)}/net/${enc(dev)}`);
      return 0;
    },
  },
  {
    name: 'network-list',
    args: '<domains...>',
    summary: 'List virtual network interfaces for a domain',
    help: "With --stats: backend, link state, address and counters (the guest's view: RX = delivered to the guest).",
    options: [{ flags: '-s, --stats', help: 'show backend, link and traffic counters instead' }],
    example: 'xenode network-list web1',
    async run(ctx, refs, opts) {
      const doms = await domainNets(ctx.client(), refs);
      if (opts.stats) {
        ctx.out(networkStatsTable(doms));
        return 0;
      }
      ctx.out(`${networkListHeader()}\n`);
      for (const d of doms) for (const v of d.vifs) ctx.out(`${networkListRow(v)}\n`);
      return 0;
    },
  },
  {
    name: 'network-rate',
    args: '<domain> <device> [rate]',
    summary: "Show or change a vif's rate limit (rate=) on a running domain",
    help: `DEVICE is a devid or a MAC, as for network-detach. RATE is vif rate= syntax,
RATE/s[@INTERVAL] (e.g. 10Mb/s, 1MB/s@20ms; default interval 50ms), or none.
It limits what the guest sends, takes effect at once and is kept in the
domain's config (restart, save/restore, migration). Without RATE: the limit in
force, read back from the switch. Sponsors may change their own domains' vifs;
their aggregate limit (quota-set net-rate=) still applies on top.`,
    example: 'xenode network-rate web1 0 10Mb/s@20ms',
    async run(ctx, [dom, dev, rate]) {
      const c = ctx.client();
      if (rate !== undefined) {
        await c.put(`/v1/domains/${enc(dom)}/net/${enc(dev)}/rate`, { rate: rate === 'none' ? null : rate });
        return 0;
      }
      const d = await c.get<DomainNet>(`/v1/domains/${enc(dom)}/net`);
      const v = d.vifs.find((x) => (dev.includes(':') ? x.mac === dev.toLowerCase() : String(x.devid) === dev));
      if (!v) {
        ctx.err(`Unknown device ${dev}.\n`);
        return 1;
      }
      ctx.out(`${v.rate_in_force ? formatRate(v.rate_in_force) : 'none'}\n`);
      return 0;
    },
  },
  {
    name: 'network-status',
    args: '',
    summary: "Show Xenode's switch: process, host port, policy, ports and counters",
    options: [{ flags: '--start', help: 'start the switch (and the host port) now if it is not running' }],
    example: 'xenode network-status',
    async run(ctx, _a, opts) {
      const c = ctx.client();
      const s = opts.start ? await c.post<NetStatus>('/v1/net/start') : await c.get<NetStatus>('/v1/net');
      ctx.out(formatNetStatus(s));
      return 0;
    },
  },
  {
    name: 'network-allow',
    args: '<sponsor-a> <sponsor-b>',
    summary: 'Let domains of two sponsors exchange frames on the switch',
    example: 'xenode network-allow alice bob',
    async run(ctx, [a, b]) {
      const r = await ctx.client().post<{ allow: SponsorPair[] }>('/v1/net/policy', { a, b, allow: true });
      ctx.out(formatPolicy(r.allow));
      return 0;
    },
  },
  {
    name: 'network-deny',
    args: '<sponsor-a> <sponsor-b>',
    summary: 'Isolate two sponsors again (the default)',
    example: 'xenode network-deny alice bob',
    async run(ctx, [a, b]) {
      const r = await ctx.client().post<{ allow: SponsorPair[] }>('/v1/net/policy', { a, b, allow: false });
      ctx.out(formatPolicy(r.allow));
      return 0;
    },
  },
  {
    name: 'network-policy',
    args: '',
    summary: 'List the sponsor pairs allowed to reach each other',
    example: 'xenode network-policy',
    async run(ctx) {
      const r = await ctx.client().get<{ allow: SponsorPair[] }>('/v1/net/policy');
      ctx.out(formatPolicy(r.allow));
      return 0;
    },
  },
  {
    name: 'net-capture',
    args: '<domain>',
    summary: "Capture a vif's frames (both ways) into a pcap file that tcpdump reads",
    help:
      "Every frame the vif sends and receives on Xenode's switch, written to FILE as it passes, " +
      'until -c packets, --seconds, or Ctrl-C (the file stays valid). A sponsor captures its own domains.',
    example: 'xenode net-capture web -w /tmp/web.pcap -c 100',
    options: [
      { flags: '--vif <n>', help: 'the vif: devid or MAC (0)' },
      { flags: '-w, --write <file>', help: 'the pcap file to write' },
      { flags: '-c, --count <n>', help: 'stop after n packets' },
      { flags: '--seconds <n>', help: 'stop after n seconds (at most 3600)' },
    ],
    run: async (ctx, args, opts) => {
      const file = typeof opts.write === 'string' ? opts.write : undefined;
      if (!file)
        throw new XenodeError('usage', 'net-capture needs -w FILE', { hint: 'xenode net-capture DOM -w FILE' });
      const q = new URLSearchParams();
      for (const k of ['vif', 'count', 'seconds'] as const) {
        const v = opts[k];
        if (typeof v === 'string') q.set(k, v);
      }
      await ctx.client().download(`/v1/domains/${enc(args[0] ?? '')}/capture?${q}`, file);
      ctx.err(`${pcapPackets(file)} packets captured\n`);
      return 0;
    },
  },
];
