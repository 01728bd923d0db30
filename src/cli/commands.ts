// Every xenode subcommand in one table, as xl_cmdtable.c does for xl.

import { setTimeout as sleep } from 'node:timers/promises';
import type { DomainView, HostInfo } from '../api/views.ts';
import { loadConfigFile } from '../config/load.ts';
import { configToJson } from '../config/validate.ts';
import { XenodeError } from '../errors.ts';
import type { LogEntry } from '../toolstack/log.ts';
import { formatLogEntry } from '../toolstack/log.ts';
import type { ApiClient } from './client.ts';
import type { CommandSpec } from './command-spec.ts';
import { attachConsole } from './console-attach.ts';
import { FEATURE_COMMANDS } from './feature-commands.ts';
import { formatInfo, formatList, formatUptimeTable, parseMemSizeMiB } from './format.ts';
import { storeCommands } from './store-commands.ts';
import { topCommand } from './top.ts';
import { dryRunFileCheck, isDom0Ref, xlCommands } from './xl-commands.ts';

const enc = encodeURIComponent;

async function domainViews(c: ApiClient, refs: string[]): Promise<DomainView[]> {
  if (refs.length === 0) return c.get<DomainView[]>('/v1/domains');
  // Domain-0 is the host, answered from /v1/info by the callers that show it.
  const out: DomainView[] = [];
  for (const r of refs.filter((x) => !isDom0Ref(x))) out.push(await c.get<DomainView>(`/v1/domains/${enc(r)}`));
  return out;
}

export const COMMANDS: CommandSpec[] = [
  {
    name: 'create',
    example: 'xenode create examples/debian.cfg -c memory=512',
    args: '[args...]',
    summary: 'Create a domain from a config file',
    help: `Usage: xenode create [<cfg>] [-c] [-p] [-n] [key=value ...]
The first argument that is not key=value is the xl.cfg file. Each key=value
overrides the file (last wins), e.g. xenode create web.cfg memory=512 'vcpus=2'.
A config without kernel= boots the default guest (built on first use).`,
    options: [
      { flags: '-c, --console', help: 'connect to the console after creation' },
      { flags: '-p, --paused', help: 'leave the domain paused after creation' },
      { flags: '-n, --dry-run', help: 'print the resulting config as JSON and create nothing' },
      { flags: '-q, --quiet', help: 'quiet' },
      { flags: '--pool', help: 'let the pool pick the host (memory, load), and say why (docs/pool.md)' },
      {
        flags: '--anti-affinity <domains>',
        help: 'with --pool: not on the host of any of these domains (comma-separated)',
      },
    ],
    async run(ctx, args, opts) {
      const file = args.find((a) => !/^[A-Za-z_][A-Za-z0-9_.]*\s*\+?=/.test(a));
      const overrides = args.filter((a) => a !== file);
      if (!file && overrides.length === 0)
        throw new XenodeError('usage', "'xenode create' requires a config file or key=value arguments");
      if (file && !opts.quiet) ctx.err(`Parsing config from ${file}\n`);
      const fileWarnings: string[] = [];
      // A dry run needs no host file: what is missing is a warning, as with xl create -n.
      const fileCheck = opts.dryRun ? dryRunFileCheck((m) => fileWarnings.push(m)) : undefined;
      const { config, warnings } = loadConfigFile(file ?? '/dev/null', overrides, { fileCheck });
      for (const w of [...warnings, ...fileWarnings]) ctx.err(`warning: ${w}\n`);
      if (opts.dryRun) {
        ctx.out(`${configToJson(config)}\n`);
        return 0;
      }
      const c = ctx.client();
      if (!config.kernel) {
        // Build the default guest here so its progress shows on this terminal.
        const { ensureDefaultGuest } = await import('../../guest/build.ts');
        await ensureDefaultGuest({ onProgress: opts.quiet ? undefined : (m) => ctx.err(`default guest: ${m}\n`) });
      }
      if (opts.pool) {
        const aa = typeof opts.antiAffinity === 'string' ? opts.antiAffinity.split(',').filter(Boolean) : [];
        const r = await c.post<{ host: string; reason: string; domain: DomainView }>('/v1/pool/domains', {
          config,
          antiAffinity: aa,
        });
        if (!opts.quiet) ctx.err(`Domain ${r.domain.name} placed on host ${r.host}: ${r.reason}\n`);
        return 0;
      }
      const d = await c.post<DomainView>('/v1/domains', { config, paused: opts.paused === true });
      if (!opts.quiet && d.boot) {
        ctx.err(
          d.boot.template
            ? `Domain ${d.name} (domid ${d.domid}) started from template ${d.boot.template} (no boot) on ${d.boot.machine}/${d.boot.accel}\n`
            : `Domain ${d.name} (domid ${d.domid}) started on ${d.boot.machine}/${d.boot.accel}: ${d.boot.accelReason}\n`,
        );
      }
      if (opts.console) return attachConsole(c, String(d.domid));
      return 0;
    },
  },
  {
    name: 'list',
    example: 'xenode list',
    args: '[domains...]',
    summary: 'List information about all/some domains',
    options: [
      { flags: '-l, --long', help: 'output all domain details as JSON' },
      { flags: '-v, --verbose', help: 'also the UUID, shutdown reason code and security label' },
      { flags: '-Z, --context', help: 'also the security label (always - : no XSM here)' },
      { flags: '-c, --cpupool', help: 'also the CPU pool (one pool, Pool-0)' },
      { flags: '-n, --numa', help: 'also the NUMA node affinity' },
      { flags: '--pool', help: 'every domain of the pool, with its host (with -l: JSON)' },
    ],
    async run(ctx, args, opts) {
      const c = ctx.client();
      if (opts.pool) {
        const all =
          await c.get<Array<{ name: string; host: string; state: string; memory: number; ha: boolean; uuid: string }>>(
            '/v1/pool/domains',
          );
        if (opts.long) ctx.out(`${JSON.stringify(all, null, 2)}\n`);
        else {
          const w = Math.max(4, ...all.map((d) => d.name.length)) + 2;
          const hw = Math.max(4, ...all.map((d) => d.host.length)) + 2;
          ctx.out(`${'Name'.padEnd(w)}${'Host'.padEnd(hw)}${'State'.padEnd(11)}${'Mem'.padStart(6)}  HA   UUID\n`);
          for (const d of all)
            ctx.out(
              `${d.name.padEnd(w)}${d.host.padEnd(hw)}${d.state.padEnd(11)}${String(d.memory).padStart(6)}  ${(d.ha ? 'yes' : 'no').padEnd(5)}${d.uuid}\n`,
            );
        }
        return 0;
      }
      const doms = await domainViews(c, args);
      if (opts.long) {
        const full = await Promise.all(doms.map((d) => c.get<DomainView>(`/v1/domains/${d.domid}`)));
        ctx.out(
          `${JSON.stringify(
            full.map((d) => ({ domid: d.domid, sponsor: d.sponsor, state: d.state, guest: d.guest, config: d.config })),
            null,
            4,
          )}\n`,
        );
        return 0;
      }
      let info: HostInfo | undefined;
      if (args.length === 0) {
        const who = await c.get<{ admin: boolean }>('/v1/whoami');
        if (who.admin) info = await c.get<HostInfo>('/v1/info');
      } else if (args.some(isDom0Ref)) info = await c.get<HostInfo>('/v1/info');
      ctx.out(
        formatList(info, doms, {
          verbose: opts.verbose === true,
          context: opts.context === true,
          cpupool: opts.cpupool === true,
          numa: opts.numa === true,
        }),
      );
      return 0;
    },
  },
  {
    name: 'destroy',
    example: 'xenode destroy web1',
    args: '<domain>',
    summary: 'Terminate a domain immediately',
    async run(ctx, [dom]) {
      await ctx.client().post(`/v1/domains/${enc(dom)}/destroy`);
      return 0;
    },
  },
  {
    name: 'shutdown',
    example: 'xenode shutdown -w web1',
    args: '<domain>',
    summary: "Issue a shutdown signal to a domain (its agent's control/shutdown, else the ACPI power button)",
    options: [
      { flags: '-w, --wait', help: 'wait for the domain to complete shutdown' },
      { flags: '-F', help: "fall back to the ACPI power button if the guest's agent does not acknowledge" },
    ],
    async run(ctx, [dom], opts) {
      const c = ctx.client();
      const d = await c.get<DomainView>(`/v1/domains/${enc(dom)}`);
      ctx.err(`Shutting down domain ${d.domid}\n`);
      await c.post(`/v1/domains/${d.domid}/shutdown`, { wait: opts.wait === true, fallback: opts.F === true });
      if (opts.wait) ctx.err(`Domain ${d.domid} has been shut down.\n`);
      return 0;
    },
  },
  {
    name: 'reboot',
    example: 'xenode reboot web1',
    args: '<domain>',
    summary: "Reboot a domain (its agent's control/shutdown, else a hard reset; then on_reboot applies)",
    options: [
      { flags: '-w, --wait', help: 'wait for the domain to complete the reboot' },
      { flags: '-F', help: "fall back to a hard reset if the guest's agent does not acknowledge" },
    ],
    async run(ctx, [dom], opts) {
      const c = ctx.client();
      const d = await c.get<DomainView>(`/v1/domains/${enc(dom)}`);
      ctx.err(`Rebooting domain ${d.domid}\n`);
      await c.post(`/v1/domains/${d.domid}/reboot`, { wait: opts.wait === true, fallback: opts.F === true });
      if (opts.wait) ctx.err(`Domain ${d.domid} has been rebooted.\n`);
      return 0;
    },
  },
  {
    name: 'pause',
    example: 'xenode pause web1',
    args: '<domain>',
    summary: 'Pause execution of a domain',
    async run(ctx, [dom]) {
      await ctx.client().post(`/v1/domains/${enc(dom)}/pause`);
      return 0;
    },
  },
  {
    name: 'unpause',
    example: 'xenode unpause web1',
    args: '<domain>',
    summary: 'Unpause a paused domain',
    async run(ctx, [dom]) {
      await ctx.client().post(`/v1/domains/${enc(dom)}/unpause`);
      return 0;
    },
  },
  {
    name: 'console',
    example: 'xenode console web1',
    args: '<domain>',
    summary: 'Attach to a domain console (Ctrl-] detaches)',
    options: [
      { flags: '-t, --type <type>', help: 'console type: serial (the only one)' },
      { flags: '--no-scrollback', help: 'do not replay the console history first' },
    ],
    async run(ctx, [dom], opts) {
      if (opts.type && opts.type !== 'serial')
        throw new XenodeError('usage', `console type '${opts.type}' not supported`, { hint: 'use -t serial' });
      const c = ctx.client();
      const d = await c.get<DomainView & { host?: string }>(`/v1/domains/${enc(dom)}`);
      // A pool forwards the view of a domain of another host; its console is not forwarded (docs/pool.md).
      if (d.host)
        throw new XenodeError('state', `${d.name} runs on pool host ${d.host}`, {
          hint: `attach its console on ${d.host}`,
        });
      return attachConsole(c, String(d.domid), { scrollback: opts.scrollback !== false });
    },
  },
  {
    name: 'rename',
    example: 'xenode rename web1 web2',
    args: '<domain> <newname>',
    summary: 'Rename a domain',
    async run(ctx, [dom, name]) {
      if (isDom0Ref(dom)) throw new XenodeError('permission', 'Domain-0 is the host and cannot be renamed');
      await ctx.client().post(`/v1/domains/${enc(dom)}/rename`, { name });
      return 0;
    },
  },
  {
    name: 'domid',
    example: 'xenode domid web1',
    args: '<name>',
    summary: 'Convert a domain name to domain id',
    async run(ctx, [name]) {
      if (name === 'Domain-0') {
        ctx.out('0\n');
        return 0;
      }
      const doms = await ctx.client().get<DomainView[]>('/v1/domains');
      const d = doms.find((x) => x.name === name);
      if (!d)
        throw new XenodeError(
          'not-found',
          `Can't get domid of domain name '${name}', maybe this domain does not exist.`,
        );
      ctx.out(`${d.domid}\n`);
      return 0;
    },
  },
  {
    name: 'domname',
    example: 'xenode domname 3',
    args: '<domid>',
    summary: 'Convert a domain id to domain name',
    async run(ctx, [id]) {
      if (id === '0') {
        ctx.out('Domain-0\n');
        return 0;
      }
      const doms = await ctx.client().get<DomainView[]>('/v1/domains');
      const d = doms.find((x) => String(x.domid) === id);
      if (!d)
        throw new XenodeError(
          'not-found',
          `Can't get domain name of domain id '${id}', maybe this domain does not exist.`,
        );
      ctx.out(`${d.name}\n`);
      return 0;
    },
  },
  {
    name: 'uptime',
    example: 'xenode uptime',
    args: '[domains...]',
    summary: 'Print uptime for all/some domains',
    options: [{ flags: '-s, --short', help: "short lines, as uptime(1): ' HH:MM:SS up H:MM, name (id)'" }],
    async run(ctx, args, opts) {
      const c = ctx.client();
      const showDom0 = args.length === 0 ? (await c.get<{ admin: boolean }>('/v1/whoami')).admin : args.some(isDom0Ref);
      const dom0 = showDom0 ? (await c.get<HostInfo>('/v1/info')).host_uptime : undefined;
      ctx.out(formatUptimeTable(await domainViews(c, args), dom0, opts.short === true));
      return 0;
    },
  },
  {
    name: 'info',
    example: 'xenode info accel_reason',
    args: '[field]',
    summary: 'Get information about the host (accelerator and why)',
    async run(ctx, [field]) {
      const info = await ctx.client().get<HostInfo>('/v1/info');
      const text = formatInfo(info);
      if (field) {
        const line = text.split('\n').find((l) => l.split(':')[0].trim() === field);
        if (!line) throw new XenodeError('usage', `unknown info field '${field}'`);
        ctx.out(`${line.slice(line.indexOf(':') + 1).trim()}\n`);
      } else ctx.out(text);
      return 0;
    },
  },
  {
    name: 'dmesg',
    example: 'xenode dmesg -c',
    args: '',
    summary: "Read the daemon's log (the toolstack's dmesg)",
    options: [{ flags: '-c, --clear', help: 'clear the log after reading (DELETE /v1/log; admin only)' }],
    async run(ctx, _a, opts) {
      // Clearing is a DELETE (answered with what it cleared), so a GET never changes the log.
      const c = ctx.client();
      const entries = opts.clear ? await c.del<LogEntry[]>('/v1/log') : await c.get<LogEntry[]>('/v1/log');
      for (const e of entries) ctx.out(`${formatLogEntry(e)}\n`);
      return 0;
    },
  },
  // vcpu-list, vcpu-pin, vcpu-set and sched-credit are in src/features/sched.
  // mem-set (with --deadline) is in memory-commands.ts.
  {
    name: 'mem-max',
    example: 'xenode mem-max web1 1g',
    args: '<domain> <size>',
    summary: "Set a domain's maximum memory (no suffix = MiB)",
    async run(ctx, [dom, size]) {
      await ctx.client().post(`/v1/domains/${enc(dom)}/mem-max`, { mib: parseMemSizeMiB(size) });
      return 0;
    },
  },
  topCommand,
  ...xlCommands,
  ...storeCommands,
  ...FEATURE_COMMANDS,
  {
    name: 'token',
    example: 'xenode token create alice',
    args: '<action> [arg]',
    summary: 'Manage API tokens: token create SPONSOR [--admin] | token list | token revoke ID',
    options: [
      { flags: '--admin', help: 'with create: the token has admin rights' },
      { flags: '--label <text>', help: 'with create: a label to recognise the token by' },
    ],
    async run(ctx, [action, arg], opts) {
      const c = ctx.client();
      if (action === 'create') {
        if (!arg) throw new XenodeError('usage', 'token create needs a sponsor name');
        const r = await c.post<{ token: string; info: { id: string } }>('/v1/tokens', {
          sponsor: arg,
          admin: opts.admin === true,
          label: opts.label,
        });
        ctx.out(`${r.token}\n`);
        ctx.err(`token ${r.info.id} for sponsor ${arg} (shown once; keep it safe)\n`);
      } else if (action === 'list') {
        const list =
          await c.get<Array<{ id: string; sponsor: string; admin: boolean; created: number; label: string }>>(
            '/v1/tokens',
          );
        ctx.out(`${'ID'.padEnd(10)}${'Sponsor'.padEnd(20)}${'Admin'.padEnd(7)}${'Created'.padEnd(21)}Label\n`);
        for (const t of list) {
          ctx.out(
            `${t.id.padEnd(10)}${t.sponsor.padEnd(20)}${(t.admin ? 'yes' : 'no').padEnd(7)}${new Date(t.created).toISOString().slice(0, 19).padEnd(21)}${t.label}\n`,
          );
        }
      } else if (action === 'revoke') {
        if (!arg) throw new XenodeError('usage', 'token revoke needs a token id');
        await c.del(`/v1/tokens/${enc(arg)}`);
      } else throw new XenodeError('usage', `unknown token action '${action}'`, { hint: 'use create, list or revoke' });
      return 0;
    },
  },
  {
    name: 'wait-ready',
    example: 'xenode wait-ready web1 --timeout 30',
    args: '<domain>',
    summary: 'Wait until the guest prints its ready line on the console (scripts, benchmarks)',
    options: [{ flags: '--timeout <s>', help: 'seconds to wait (default 60)' }],
    async run(ctx, [dom], opts) {
      const c = ctx.client();
      const ws = await c.websocket(`/v1/domains/${enc(dom)}/console`);
      const limit = Number(opts.timeout ?? 60) * 1000;
      const found = await new Promise<boolean>((resolve) => {
        let text = '';
        const t = setTimeout(() => resolve(false), limit);
        ws.on('message', (d: Buffer) => {
          text += d.toString('latin1');
          const m = /XENODE-READY uptime=([\d.]+)/.exec(text);
          if (m) {
            clearTimeout(t);
            ctx.out(`${m[0]}\n`);
            resolve(true);
          }
        });
        ws.on('close', () => resolve(false));
        ws.on('error', () => resolve(false));
      });
      ws.terminate();
      await sleep(0);
      if (!found) throw new XenodeError('state', `domain ${dom} did not print its ready line`);
      return 0;
    },
  },
];
