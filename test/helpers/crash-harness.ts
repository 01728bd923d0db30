// The crash-consistency harness (issue 14): kill -9 a daemon in the middle of
// an operation, start it again, wait until it has settled what it found, and
// check the invariants that must hold whatever the moment of the kill:
//
//   - every QEMU of the host belongs to exactly one listed domain;
//   - no listed domain lacks its QEMU;
//   - no guest is listed twice or runs twice (both migration sides together);
//   - nothing is left creating, dying or paused that the operation did not
//     leave so, and every running guest answers on its console;
//   - no leaked files: run directories, store homes, journal entries and save
//     files' leftovers (.partial, .status, .replaced-*) match the listed domains.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { ConsoleSession, TestHost } from './host.ts';

export interface DomainView {
  domid: number;
  name: string;
  uuid: string;
  state: string;
  pid?: number;
  memMiB: number;
  maxMiB: number;
}

export interface ApiAnswer {
  status: number;
  body: unknown;
}

/** One HTTP call on a daemon's local (admin) socket; rejects when the daemon goes away mid-call. */
export function api(
  h: TestHost,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 300_000,
): Promise<ApiAnswer> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      {
        socketPath: h.socket,
        path,
        method,
        timeout: timeoutMs,
        headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => {
          text += d.toString();
        });
        res.on('end', () => {
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(data);
  });
}

export function alive(pid: number): boolean {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    return state !== undefined && state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export async function until(what: string, ms: number, cond: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A daemon of the harness: a TestHost plus its kill and restart. */
export class CrashHost extends TestHost {
  constructor(
    readonly label: string,
    extraEnv: NodeJS.ProcessEnv = {},
  ) {
    super({ XENODE_NET_HOSTPORT: 'none', ...extraEnv });
  }

  /** Kill -9 the daemon (if it runs) and wait until it is gone. */
  async kill9(): Promise<void> {
    const pid = this.daemonPid();
    if (!pid || !alive(pid)) return;
    process.kill(pid, 'SIGKILL');
    await until(`xenoded ${pid} is gone`, 10_000, () => !alive(pid));
  }

  /** Start the daemon again (as the CLI does on first use), optionally armed to kill itself at a step. */
  async start(crashAt?: string): Promise<void> {
    if (crashAt) this.env.XENODE_CRASH_AT = crashAt;
    else delete this.env.XENODE_CRASH_AT;
    const r = await this.xl(['list']);
    if (r.code !== 0) throw new Error(`xenoded on ${this.label} did not start: ${r.stderr}`);
  }

  /** Stop the daemon gently (SIGTERM), its domains keep running. */
  async stop(): Promise<void> {
    const pid = this.daemonPid();
    if (!pid || !alive(pid)) return;
    process.kill(pid, 'SIGTERM');
    await until(`xenoded ${pid} stopped`, 30_000, () => !alive(pid));
  }

  /** Restart with (or without) a crash step armed. */
  async rearm(crashAt?: string): Promise<void> {
    await this.stop();
    await this.start(crashAt);
  }

  daemonAlive(): boolean {
    const pid = this.daemonPid();
    return pid !== undefined && alive(pid);
  }

  async domains(): Promise<DomainView[]> {
    const r = await api(this, 'GET', '/v1/domains', undefined, 30_000);
    if (r.status !== 200) throw new Error(`list on ${this.label}: HTTP ${r.status}`);
    return (r.body as DomainView[]).filter((d) => d.domid !== 0);
  }

  /** QEMUs whose command line names this host's directory, with the domid of their run directory. */
  qemus(): Array<{ pid: number; domid?: number }> {
    const out: Array<{ pid: number; domid?: number }> = [];
    for (const ent of readdirSync('/proc')) {
      if (!/^\d+$/.test(ent)) continue;
      try {
        const cmd = readFileSync(`/proc/${ent}/cmdline`, 'utf8');
        if (!cmd.includes('qemu-system') || !cmd.includes(`${this.dir}/`)) continue;
        if (!alive(Number(ent))) continue;
        const m = new RegExp(`${this.dir}/domains/(\\d+)/`).exec(cmd);
        out.push({ pid: Number(ent), domid: m ? Number(m[1]) : undefined });
      } catch {
        /* gone */
      }
    }
    return out;
  }

  runDirs(): number[] {
    const dir = join(this.dir, 'domains');
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((n) => /^\d+$/.test(n))
      .map(Number)
      .sort((a, b) => a - b);
  }

  /** Journal entries (intent files) left in run directories. */
  intentFiles(): string[] {
    const out: string[] = [];
    for (const id of this.runDirs()) {
      const dir = join(this.dir, 'domains', String(id));
      try {
        for (const f of readdirSync(dir)) if (f.startsWith('intent')) out.push(`${id}/${f}`);
      } catch {
        /* removed meanwhile */
      }
    }
    return out;
  }

  async storeHomes(): Promise<number[] | undefined> {
    const r = await api(this, 'GET', `/v1/store/ls?path=${encodeURIComponent('/local/domain')}`, undefined, 30_000);
    if (r.status === 404) return undefined;
    if (r.status !== 200) return undefined;
    return (r.body as { children: Array<{ name: string }> }).children
      .map((c) => Number(c.name))
      .filter((n) => n !== 0)
      .sort((a, b) => a - b);
  }

  /** Leftovers of saves next to the save files (in the host's own directory). */
  saveLeftovers(): string[] {
    return readdirSync(this.dir).filter((f) => /\.partial|\.status$|\.replaced-/.test(f));
  }
}

/**
 * Wait until every daemon has settled what it found: nothing creating or
 * dying, no journal entry left. A daemon that never settles is a violation.
 */
export async function settle(hosts: CrashHost[], ms = 90_000): Promise<string[]> {
  const deadline = Date.now() + ms;
  let last = '';
  for (;;) {
    const busy: string[] = [];
    for (const h of hosts) {
      let doms: DomainView[];
      try {
        doms = await h.domains();
      } catch (e) {
        busy.push(`${h.label}: ${(e as Error).message}`);
        continue;
      }
      for (const d of doms)
        if (d.state === 'creating' || d.state === 'dying') busy.push(`${h.label}: ${d.name} is ${d.state}`);
      for (const f of h.intentFiles()) busy.push(`${h.label}: journal entry ${f} is left`);
    }
    if (busy.length === 0) return [];
    last = busy.join('; ');
    if (Date.now() > deadline) return [`did not settle within ${ms / 1000} s: ${last}`];
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Run a command in a guest's console and expect its answer. */
export async function answers(h: CrashHost, dom: string, timeoutMs = 30_000): Promise<boolean> {
  let con: ConsoleSession | undefined;
  try {
    // No scroll-back: earlier sessions' answers must not match this one's.
    con = await ConsoleSession.open(`ws+unix://${h.socket}:/v1/domains/${dom}/console?scrollback=0`);
    const n = Math.floor(Math.random() * 1e6);
    return (await con.run(`echo alive-$((${n}+1))`, timeoutMs)) === `alive-${n + 1}`;
  } catch {
    return false;
  } finally {
    con?.close();
  }
}

/** The invariants that hold on every host whatever the operation was. */
export async function hostInvariants(h: CrashHost, opts: { console?: boolean } = {}): Promise<string[]> {
  const v: string[] = [];
  const doms = await h.domains();
  const qemus = h.qemus();
  for (const q of qemus) {
    const owners = doms.filter((d) => d.pid === q.pid);
    if (owners.length !== 1)
      v.push(
        `${h.label}: QEMU ${q.pid} (run dir ${q.domid ?? '?'}) belongs to ${owners.length} listed domains${owners.length ? ` (${owners.map((d) => d.name).join(', ')})` : ''}`,
      );
    else if (owners[0] && q.domid !== owners[0].domid)
      v.push(`${h.label}: QEMU ${q.pid} runs from run dir ${q.domid} but is listed as domid ${owners[0].domid}`);
  }
  for (const d of doms) {
    if (d.state === 'running' || d.state === 'paused') {
      if (!d.pid || !qemus.some((q) => q.pid === d.pid)) v.push(`${h.label}: ${d.name} is ${d.state} without a QEMU`);
    }
    if (d.state === 'creating' || d.state === 'dying') v.push(`${h.label}: ${d.name} stays ${d.state}`);
  }
  const names = doms.map((d) => d.name);
  if (new Set(names).size !== names.length) v.push(`${h.label}: a name is listed twice: ${names.join(', ')}`);
  const listed = doms.map((d) => d.domid).sort((a, b) => a - b);
  const dirs = h.runDirs();
  const extraDirs = dirs.filter((id) => !listed.includes(id));
  if (extraDirs.length) v.push(`${h.label}: run directories of unlisted domids ${extraDirs.join(', ')} are left`);
  const homes = await h.storeHomes();
  if (homes) {
    const extra = homes.filter((id) => !listed.includes(id));
    const missing = listed.filter((id) => !homes.includes(id));
    if (extra.length) v.push(`${h.label}: store homes of unlisted domids ${extra.join(', ')} are left`);
    if (missing.length) v.push(`${h.label}: listed domids ${missing.join(', ')} have no store home`);
  }
  for (const f of h.intentFiles()) v.push(`${h.label}: journal entry ${f} is left`);
  for (const f of h.saveLeftovers()) v.push(`${h.label}: save leftover ${f}`);
  if (opts.console !== false) {
    for (const d of doms) {
      if (d.state === 'running' && !(await answers(h, d.name)))
        v.push(`${h.label}: ${d.name} is listed running but its guest does not answer`);
    }
  }
  return v;
}

/** Small seeded PRNG (mulberry32) so a run's kill offsets can be replayed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
