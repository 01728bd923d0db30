// `flows` (the flow log; `flows verify`, `flows events`) and `audit-rules`.

import { readFileSync } from 'node:fs';
import type { CommandSpec } from '../../cli/command-spec.ts';
import { XenodeError } from '../../errors.ts';
import type { AuditEvent, FlowRecord } from '../../toolstack/lifecycle-hooks.ts';
import type { VerifyReport } from './flow-log.ts';

const PROTO: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp' };
const FLAG_LETTERS: Array<[number, string]> = [
  [0x02, 'S'],
  [0x10, 'A'],
  [0x08, 'P'],
  [0x01, 'F'],
  [0x04, 'R'],
  [0x20, 'U'],
];

/** TCP flags as letters (S SYN, A ACK, P PSH, F FIN, R RST, U URG); '-' for none. */
export function flagText(f: number): string {
  return (
    FLAG_LETTERS.filter(([b]) => f & b)
      .map(([, l]) => l)
      .join('') || '-'
  );
}

function when(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

function endpoint(ip: string, port: number, proto: number): string {
  if (!ip) return '-';
  return proto === 6 || proto === 17 ? `${ip}:${port}` : ip;
}

function table(head: string[], rows: string[][], right: Set<number>): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cs: string[]) =>
    cs
      .map((c, i) => (right.has(i) ? c.padStart(w[i] as number) : c.padEnd(w[i] as number)))
      .join('  ')
      .trimEnd();
  return `${[line(head), ...rows.map(line)].join('\n')}\n`;
}

export function flowTable(flows: FlowRecord[]): string {
  const head = [
    'Start (UTC)',
    'Secs',
    'Domain',
    'Vif',
    'Sponsor',
    'Proto',
    'Source',
    'Destination',
    'Pkts out',
    'Bytes out',
    'Pkts in',
    'Bytes in',
    'Flags out/in',
    'Action',
    'Rule',
  ];
  const rows = flows.map((f) => [
    when(f.start),
    ((f.end - f.start) / 1000).toFixed(1),
    f.domain || String(f.domid),
    `${f.domid}.${f.devid}`,
    f.sponsor,
    PROTO[f.proto] ?? String(f.proto),
    endpoint(f.src, f.sport, f.proto),
    endpoint(f.dst, f.dport, f.proto),
    String(f.pktsOut),
    String(f.bytesOut),
    String(f.pktsIn),
    String(f.bytesIn),
    f.proto === 6 ? `${flagText(f.flagsOut)}/${flagText(f.flagsIn)}` : '-',
    f.action,
    f.rule || '-',
  ]);
  return table(head, rows, new Set([1, 8, 9, 10, 11]));
}

export function verifyText(r: VerifyReport): string {
  const head = `flow log: ${r.segments} segment${r.segments === 1 ? '' : 's'}, ${r.records} records, ${r.bytes} bytes`;
  if (r.ok) return `${head}: intact (head ${r.head || '-'})\n`;
  const lines = r.problems.map((p) => {
    const where = [`segment ${p.segment}`];
    if (p.offset !== undefined) where.push(`offset ${p.offset}`);
    if (p.records) where.push(`records ${p.records[0]}-${p.records[1]}`);
    return `  ${where.join(', ')}: ${p.problem}`;
  });
  return `${head}: ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}\n${lines.join('\n')}\n`;
}

function eventText(events: AuditEvent[]): string {
  if (events.length === 0) return 'No audit events.\n';
  return table(
    ['Time (UTC)', 'Vif', 'Sponsor', 'Rule', 'Action', 'What'],
    events.map((e) => [when(e.time), `${e.domid}.${e.devid}`, e.sponsor, e.rule, e.action, e.detail]),
    new Set(),
  );
}

function opt(v: string | boolean | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export const auditCommands: CommandSpec[] = [
  {
    name: 'flows',
    args: '[action]',
    summary:
      'List the flow log (verify: check it for tampering; events: what the audit rules did; rotate: close the segment)',
    help:
      'One record per flow (5-tuple) per vif per window, newest last: packets and bytes each way, TCP flags, ' +
      'and the action a rule took. A sponsor sees only its own flows and events; `flows verify` (the admin) ' +
      'walks the hash chain of every segment and reports edited, removed or reordered records. ' +
      'Times: -10m, -2h, -1d (ago), an ISO time, or ms since the epoch.',
    example: 'xenode flows --domain web --port 25 --since -1h',
    options: [
      { flags: '--sponsor <name>', help: "only this sponsor's flows (the admin)" },
      { flags: '--domain <dom>', help: 'only this domain (name or domid)' },
      { flags: '--port <port>', help: 'only flows with this source or destination port' },
      { flags: '--since <time>', help: 'only flows active at or after this time' },
      { flags: '--until <time>', help: 'only flows active at or before this time' },
      { flags: '--limit <n>', help: 'the newest n flows (1000; at most 100000)' },
      { flags: '--json', help: 'JSON instead of a table' },
    ],
    run: async (ctx, args, opts) => {
      const action = args[0];
      const json = opts.json === true;
      const c = ctx.client();
      if (action === 'verify') {
        const r = await c.get<VerifyReport>('/v1/flows/verify');
        ctx.out(json ? `${JSON.stringify(r, null, 2)}\n` : verifyText(r));
        return r.ok ? 0 : 1;
      }
      if (action === 'rotate') {
        const r = await c.post<{ segment?: number }>('/v1/flows/rotate');
        ctx.out(r.segment === undefined ? 'No open segment.\n' : `Closed segment ${r.segment}.\n`);
        return 0;
      }
      if (action === 'events') {
        const limit = opt(opts.limit);
        const r = await c.get<{ events: AuditEvent[] }>(
          `/v1/audit/events${limit ? `?limit=${encodeURIComponent(limit)}` : ''}`,
        );
        ctx.out(json ? `${JSON.stringify(r.events, null, 2)}\n` : eventText(r.events));
        return 0;
      }
      if (action !== undefined)
        throw new XenodeError('usage', `unknown flows action '${action}'`, {
          hint: 'xenode flows [verify|events|rotate]',
        });
      const q = new URLSearchParams();
      for (const k of ['sponsor', 'domain', 'port', 'since', 'until', 'limit']) {
        const v = opt(opts[k]);
        if (v !== undefined) q.set(k, v);
      }
      const qs = q.toString();
      const r = await c.get<{ flows: FlowRecord[] }>(`/v1/flows${qs ? `?${qs}` : ''}`);
      if (json) ctx.out(`${JSON.stringify(r.flows, null, 2)}\n`);
      else ctx.out(r.flows.length === 0 ? 'No flows.\n' : flowTable(r.flows));
      return 0;
    },
  },
  {
    name: 'audit-rules',
    args: '[file]',
    summary: "Show the switch's audit rules, or set them from a JSON file (the admin)",
    help:
      'Rules: new-connection limits per destination port (default: SMTP 25/465/587, 1 per 10 s per sponsor), ' +
      'ACK symmetry, SYN-flood and port-scan detection, throttle and quarantine (docs/audit.md). ' +
      'A file may give only some fields; the rest take their defaults. `-` reads standard input. ' +
      'They apply at once and are kept in $XENODE_DIR/audit-rules.json.',
    example: 'xenode audit-rules rules.json',
    run: async (ctx, args) => {
      const c = ctx.client();
      const file = args[0];
      if (file === undefined) {
        const r = await c.get<{ rules: unknown }>('/v1/audit/rules');
        ctx.out(`${JSON.stringify(r.rules, null, 2)}\n`);
        return 0;
      }
      let text: string;
      try {
        text = readFileSync(file === '-' ? 0 : file, 'utf8');
      } catch (e) {
        throw new XenodeError('not-found', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
      }
      let rules: unknown;
      try {
        rules = JSON.parse(text);
      } catch (e) {
        throw new XenodeError('config', `${file} is not JSON: ${(e as Error).message}`);
      }
      const r = await c.put<{ rules: unknown }>('/v1/audit/rules', { rules });
      ctx.out(`${JSON.stringify(r.rules, null, 2)}\n`);
      return 0;
    },
  },
];
