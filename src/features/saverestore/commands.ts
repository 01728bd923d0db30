// save, restore and migrate: long operations that stream progress from the
// daemon over a WebSocket (routes-migrate.ts) and print it on stderr, as xl does.

import { resolve } from 'node:path';
import type { DomainView } from '../../api/views.ts';
import type { ApiClient } from '../../cli/client.ts';
import type { CmdContext, CommandSpec } from '../../cli/command-spec.ts';
import { type WireError, XenodeError } from '../../errors.ts';
import type { MigrateResult } from './migrate.ts';
import type { OpProgress, RestoreResult, SaveResult } from './saverestore.ts';
import { templateCommand } from './template-commands.ts';

const enc = encodeURIComponent;
const MiB = 1048576;
const mib = (b: number) => (b / MiB).toFixed(1);
const secs = (ms: number) => (ms / 1000).toFixed(2);

/** Progress on one line that rewrites itself on a terminal, and a line a second otherwise. */
class ProgressLine {
  private last = 0;
  private shown = false;
  private readonly tty = process.stderr.isTTY === true;

  constructor(private readonly ctx: CmdContext) {}

  show(text: string): void {
    const now = Date.now();
    if (this.tty) {
      this.ctx.err(`\r${text}\x1b[K`);
      this.shown = true;
    } else if (now - this.last >= 1000) {
      this.ctx.err(`${text}\n`);
      this.last = now;
    }
  }

  done(): void {
    if (this.shown) this.ctx.err('\n');
    this.shown = false;
  }
}

/** Run a daemon operation over its WebSocket: request out, progress and result in. */
async function runOp<T>(c: ApiClient, path: string, body: unknown, onProgress: (p: OpProgress) => void): Promise<T> {
  const ws = await c.websocket(path);
  return new Promise<T>((resolvePromise, reject) => {
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      fn();
    };
    ws.on('open', () => ws.send(JSON.stringify(body)));
    ws.on('message', (data: Buffer) => {
      let m: { progress?: OpProgress; result?: T; error?: WireError };
      try {
        m = JSON.parse(data.toString('utf8')) as typeof m;
      } catch {
        return;
      }
      if (m.progress) onProgress(m.progress);
      else if (m.error) settle(() => reject(XenodeError.fromWire(m.error as WireError)));
      else if ('result' in m) settle(() => resolvePromise(m.result as T));
    });
    ws.on('error', (e) => settle(() => reject(new XenodeError('engine', `lost the daemon: ${e.message}`))));
    ws.on('close', () => settle(() => reject(new XenodeError('engine', 'the daemon closed the connection'))));
  });
}

function progressText(p: OpProgress): string {
  switch (p.phase) {
    case 'save':
      return `Saving: ${mib(p.bytes)} MiB written`;
    case 'verify':
      return `Checking save file: ${mib(p.bytes)} of ${mib(p.totalBytes ?? 0)} MiB`;
    case 'restore':
      return `Restoring: loading ${mib(p.totalBytes ?? 0)} MiB of machine state`;
    case 'migrate': {
      const parts = [`${mib(p.bytes)} MiB sent`];
      if (p.passes) parts.push(`pass ${p.passes}`);
      if (p.mbps) parts.push(`${p.mbps.toFixed(0)} Mbit/s`);
      parts.push(`dirty ${mib(p.dirtyBytesPerSec ?? 0)} MiB/s`);
      if (p.expectedDowntimeMs !== undefined) parts.push(`expected downtime ${p.expectedDowntimeMs} ms`);
      return `migration sender: ${parts.join(', ')}`;
    }
  }
}

function positive(v: string | boolean | undefined, what: string): number | undefined {
  if (v === undefined || typeof v === 'boolean') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0)
    throw new XenodeError('usage', `invalid ${what} '${v}'`, { hint: 'give a positive number' });
  return n;
}

const save: CommandSpec = {
  name: 'save',
  example: 'xenode save web1 /var/lib/xenode/save/web1.save',
  args: '<domain> <file> [cfg]',
  summary: 'Save a domain to a file (then destroy it, unless -c or -p)',
  help: `The guest is stopped while its state is written, so the file is consistent.
The file holds the config, the control-store subtree, metadata, the console
tail and QEMU's machine state, each checksummed. Disk images are not copied.`,
  options: [
    { flags: '-c, --checkpoint', help: 'leave the domain running after saving (checkpoint)' },
    { flags: '-p, --paused', help: 'leave the domain paused after saving' },
  ],
  async run(ctx, [dom, file, cfg], opts) {
    if (cfg !== undefined) throw configFileRefusal('save');
    const c = ctx.client();
    const d = await c.get<DomainView>(`/v1/domains/${enc(dom)}`);
    const path = resolve(file);
    // The format version is the daemon's to say: it writes the file.
    ctx.err(`Saving domain ${d.domid} (${d.name}) to ${path}\n`);
    const line = new ProgressLine(ctx);
    const r = await runOp<SaveResult>(
      c,
      `/v1/domains/${d.domid}/save`,
      { file: path, checkpoint: opts.checkpoint === true, paused: opts.paused === true },
      (p) => line.show(progressText(p)),
    ).finally(() => line.done());
    ctx.err(
      `Saved ${mib(r.bytes)} MiB in ${secs(r.ms)} s; domain ${d.name} ${r.domain === 'destroyed' ? 'destroyed' : `left ${r.domain}`} (xenode save format ${r.format})\n`,
    );
    return 0;
  },
};

const KEY_VALUE = /^[A-Za-z_][A-Za-z0-9_.]*\s*\+?=/;

/**
 * xl's `save D FILE CFG` / `restore CFG FILE` replace the saved config by CFG;
 * here the saved machine state fixes most keys, so a config file is refused
 * rather than half applied.
 */
function configFileRefusal(cmd: 'save' | 'restore'): XenodeError {
  return new XenodeError('usage', `${cmd} with a config file is not supported`, {
    hint: 'restore takes key=value overrides instead: name, uuid, on_*, cpus, cpu_weight, cap, disk, vif',
    exitCode: 1,
  });
}

const restore: CommandSpec = {
  name: 'restore',
  example: 'xenode restore /var/lib/xenode/save/web1.save name=web1-copy',
  args: '[args...]',
  summary: 'Restore a domain from a save file',
  help: `Usage: xenode restore [-p] <file> [key=value ...]
xl's restore [CFG] FILE is recognised; a config file (CFG) is refused: use key=value.
Every section's checksum, the format version and the disk images are checked
before QEMU starts. key=value overrides the saved config: name, uuid, on_*,
cpus, cpu_weight, cap, and disk=/vif= with the same devices.`,
  options: [{ flags: '-p, --paused', help: 'leave the domain paused after restoring' }],
  async run(ctx, args, opts) {
    const bare = args.filter((a) => !KEY_VALUE.test(a));
    // xl's order is [CFG] FILE: two bare arguments are a config file and then the save file.
    if (bare.length > 1) throw configFileRefusal('restore');
    const file = bare[0];
    if (!file) throw new XenodeError('usage', "'xenode restore' requires a save file");
    const overrides = args.filter((a) => a !== file);
    const path = resolve(file);
    const c = ctx.client();
    await c.get('/v1/info');
    ctx.err(`Loading new save file ${path}\n`);
    const line = new ProgressLine(ctx);
    const r = await runOp<RestoreResult>(
      c,
      '/v1/restore',
      { file: path, paused: opts.paused === true, overrides, cwd: process.cwd() },
      (p) => line.show(progressText(p)),
    ).finally(() => line.done());
    ctx.err(
      `Restored domain ${r.name} (domid ${r.domid}) in ${secs(r.ms)} s: saved on ${r.meta.sourceHost} at ${r.meta.savedAt} (xenode save format ${r.format})\n`,
    );
    return 0;
  },
};

/** host[:port], [v6]:port */
function parseTarget(s: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  if (!m) {
    throw new XenodeError('usage', `'${s}' is not HOST:PORT`, {
      hint: "give the target xenoded's TCP API address, e.g. 10.0.0.2:8420 (its XENODE_LISTEN)",
    });
  }
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new XenodeError('usage', `invalid port in '${s}'`);
  return { host: m[1] as string, port };
}

const migrate: CommandSpec = {
  name: 'migrate',
  example: 'xenode migrate web1 10.0.0.2:8420 --token xn_… --downtime-ms 100',
  args: '<domain> <host>',
  summary: 'Live-migrate a domain to another xenoded (HOST:PORT of its TCP API, or a pool host name)',
  help: `The target checks it can host the domain (name, memory, disk images, bridges)
before anything moves; QEMU then copies memory live, straight to the target's
QEMU. The domain keeps its name, store subtree, sponsor and console log. On any
failure the domain keeps running here. Disk images are not copied: the target
must see them at the same paths (shared storage).`,
  options: [
    { flags: '--token <token>', help: "the target's API token (default: $XENODE_MIGRATE_TOKEN)" },
    { flags: '--downtime-ms <ms>', help: 'longest pause of the guest to aim for at switch-over (QEMU default 300)' },
    { flags: '--bandwidth-mbps <mbps>', help: 'limit the migration stream to this many Mbit/s (default: no limit)' },
    { flags: '-p, --paused', help: 'leave the domain paused on the target' },
  ],
  async run(ctx, [dom, target], opts) {
    // A bare name is a pool host (docs/pool.md): the pool resolves it and authenticates to it.
    if (target && /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(target) && !/^[\d.]+$/.test(target)) {
      const c = ctx.client();
      ctx.err(`migration sender: Domain ${dom} to pool host ${target}\n`);
      const r = await c.post<MigrateResult>(`/v1/pool/domains/${enc(dom)}/migrate`, {
        host: target,
        downtimeMs: positive(opts.downtimeMs, 'downtime'),
        bandwidthMbps: positive(opts.bandwidthMbps, 'bandwidth'),
        paused: opts.paused === true,
      });
      ctx.err(
        `migration sender: ${mib(r.transferredBytes)} MiB in ${secs(r.migrationMs)} s; guest paused ${r.downtimeMs ?? '?'} ms; target domid ${r.targetDomid}\n`,
      );
      ctx.err('Migration successful.\n');
      return 0;
    }
    const { host, port } = parseTarget(target ?? '');
    const token = typeof opts.token === 'string' ? opts.token : process.env.XENODE_MIGRATE_TOKEN;
    const c = ctx.client();
    const d = await c.get<DomainView>(`/v1/domains/${enc(dom)}`);
    ctx.err(`migration sender: Domain ${d.name} (domid ${d.domid}) to ${host}:${port}\n`);
    const line = new ProgressLine(ctx);
    const r = await runOp<MigrateResult>(
      c,
      `/v1/domains/${d.domid}/migrate`,
      {
        host,
        port,
        token,
        downtimeMs: positive(opts.downtimeMs, 'downtime'),
        bandwidthMbps: positive(opts.bandwidthMbps, 'bandwidth'),
        paused: opts.paused === true,
      },
      (p) => line.show(progressText(p)),
    ).finally(() => line.done());
    ctx.err(
      `migration sender: ${mib(r.transferredBytes)} MiB in ${secs(r.migrationMs)} s; guest paused ${r.downtimeMs ?? '?'} ms (QEMU stop-and-copy ${r.qemuDowntimeMs} ms, hand-over ${r.switchoverMs} ms); target domid ${r.targetDomid}\n`,
    );
    ctx.err('Migration successful.\n');
    return 0;
  },
};

export const saveRestoreCommands: CommandSpec[] = [save, restore, migrate, templateCommand];
