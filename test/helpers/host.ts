// Test harness: a private xenoded (own XENODE_DIR) driven through the real CLI,
// and a console session over the daemon's WebSocket, as a user would.

import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import WebSocket from 'ws';

export const ROOT = new URL('../..', import.meta.url).pathname;
export const XENODE_BIN = join(ROOT, 'bin', 'xenode');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A reply of the daemon's TCP API. */
export interface ApiReply {
  status: number;
  text: string;
  /** The body parsed (`{}` when empty or not JSON): an error's fields typed, the rest for the test to narrow. */
  json: { error?: { kind?: string; message?: string; hint?: string; errno?: string } } & Record<string, unknown>;
}

export class TestHost {
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;

  constructor(extraEnv: NodeJS.ProcessEnv = {}) {
    // Short path: Unix socket paths are limited to 108 bytes.
    this.dir = mkdtempSync('/tmp/xn-');
    this.env = { ...process.env, XENODE_DIR: this.dir, XENODE_LISTEN: '127.0.0.1:0', ...extraEnv };
  }

  xl(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
    return new Promise((resolve) => {
      const child = execFile(
        XENODE_BIN,
        args,
        { env: this.env, timeout: opts.timeoutMs ?? 120_000 },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
          resolve({ code, stdout, stderr });
        },
      );
      if (opts.input !== undefined) child.stdin?.end(opts.input);
      else child.stdin?.end();
    });
  }

  /** The CLI as a tenant runs it: through the TCP API with `token` (undefined: the admin's local socket). */
  xlAs(
    token: string | undefined,
    args: string[],
    opts: { input?: string; timeoutMs?: number } = {},
  ): Promise<CliResult> {
    if (token === undefined) return this.xl(args, opts);
    const env = { ...this.env, XENODE_URL: `http://127.0.0.1:${this.tcpPort()}`, XENODE_TOKEN: token };
    return new Promise((resolve) => {
      const child = execFile(XENODE_BIN, args, { env, timeout: opts.timeoutMs ?? 180_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      });
      if (opts.input !== undefined) child.stdin?.end(opts.input);
      else child.stdin?.end();
    });
  }

  /** One request to the TCP API, with `token` as the bearer (none: anonymous). */
  api(method: string, path: string, token?: string, body?: unknown): Promise<ApiReply> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = {};
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    if (payload !== undefined) headers['content-type'] = 'application/json';
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: this.tcpPort(), path, method, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: ApiReply['json'] = {};
          try {
            if (text) json = JSON.parse(text) as ApiReply['json'];
          } catch {
            /* not JSON: the text is there */
          }
          resolve({ status: res.statusCode ?? 0, text, json });
        });
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Run a CLI command that must succeed; returns stdout. */
  async ok(args: string[]): Promise<string> {
    const r = await this.xl(args);
    if (r.code !== 0) {
      throw new Error(`xenode ${args.join(' ')} failed (${r.code}): ${r.stderr}\n${this.logTail()}`);
    }
    return r.stdout;
  }

  /** The last lines of the daemon's log: what a failed step leaves to read in CI's output. */
  logTail(lines = 25): string {
    try {
      const all = readFileSync(join(this.dir, 'xenoded.log'), 'utf8').trimEnd().split('\n');
      return `--- last ${Math.min(lines, all.length)} lines of ${this.dir}/xenoded.log ---\n${all.slice(-lines).join('\n')}`;
    } catch {
      return '(no daemon log)';
    }
  }

  writeConfig(name: string, text: string): string {
    const p = join(this.dir, name);
    writeFileSync(p, text);
    return p;
  }

  get socket(): string {
    return join(this.dir, 'xenoded.sock');
  }

  daemonPid(): number | undefined {
    try {
      return Number(readFileSync(join(this.dir, 'xenoded.pid'), 'utf8'));
    } catch {
      return undefined;
    }
  }

  tcpPort(): number {
    return (JSON.parse(readFileSync(join(this.dir, 'tcp.json'), 'utf8')) as { port: number }).port;
  }

  console(dom: string | number): Promise<ConsoleSession> {
    return ConsoleSession.open(`ws+unix://${this.socket}:/v1/domains/${dom}/console`);
  }

  /** PIDs of QEMUs this host started (from their pid files). */
  qemuPids(): number[] {
    const out: number[] = [];
    try {
      for (const d of readdirSync(join(this.dir, 'domains'))) {
        try {
          out.push(Number(readFileSync(join(this.dir, 'domains', d, 'qemu.pid'), 'utf8')));
        } catch {
          /* none */
        }
      }
    } catch {
      /* no domains dir */
    }
    return out.filter((p) => p > 0);
  }

  killDaemon(signal: NodeJS.Signals = 'SIGKILL'): void {
    const pid = this.daemonPid();
    try {
      if (pid) process.kill(pid, signal);
    } catch (e) {
      // A pid file left by a daemon that is already gone.
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
    }
  }

  /** Every QEMU whose command line names this host's directory (pid file written or not). */
  private strayQemus(): number[] {
    const out = new Set(this.qemuPids());
    for (const ent of readdirSync('/proc')) {
      if (!/^\d+$/.test(ent)) continue;
      try {
        const cmd = readFileSync(`/proc/${ent}/cmdline`, 'utf8');
        if (cmd.includes('qemu-system') && cmd.includes(`${this.dir}/`)) out.add(Number(ent));
      } catch {
        /* gone */
      }
    }
    return [...out];
  }

  async cleanup(): Promise<void> {
    // The daemon goes first: killed QEMUs of on_crash="restart" domains would
    // otherwise be relaunched by it, and a relaunch cut short by its exit left a
    // QEMU waiting at -S after the test.
    this.killDaemon('SIGKILL');
    await new Promise((r) => setTimeout(r, 50));
    for (const pid of this.strayQemus()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A console attached like `xenode console`, with expect-style helpers. */
export class ConsoleSession {
  private text = '';
  private waiters: Array<() => void> = [];
  private seq = 0;
  private readonly tag = Math.random().toString(36).slice(2, 8);
  closed = false;

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => {
      this.text += d.toString('latin1');
      for (const w of this.waiters.splice(0)) w();
    });
    ws.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static open(url: string): Promise<ConsoleSession> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const s = new ConsoleSession(ws);
      ws.once('open', () => resolve(s));
      ws.once('error', reject);
    });
  }

  get output(): string {
    return this.text;
  }

  /** Wait until `re` matches the output received after `from`. */
  async expect(re: RegExp, timeoutMs = 60_000, from = 0): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(this.text.slice(from));
      if (m) return m;
      if (this.closed) throw new Error(`console closed while waiting for ${re}; got: ${this.text.slice(-500)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${re}; got: ${this.text.slice(-500)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  send(s: string): void {
    this.ws.send(Buffer.from(s));
  }

  /** Run a shell command in the guest and return its output (between markers). */
  async run(cmd: string, timeoutMs = 30_000): Promise<string> {
    // The session's own tag: a console opened later replays earlier sessions' output, markers included.
    const n = `${this.tag}${++this.seq}`;
    const from = this.text.length;
    // The quotes split the marker in the echoed input, so only real output matches.
    this.send(`echo "__S""${n}__"; ${cmd}; echo "__E""${n}__"\n`);
    const m = await this.expect(new RegExp(`__S${n}__\\r?\\n([\\s\\S]*?)__E${n}__`), timeoutMs, from);
    return m[1].replace(/\r/g, '').trim();
  }

  close(): void {
    this.ws.close();
  }
}

export function spawnCli(host: TestHost, args: string[]) {
  return spawn(XENODE_BIN, args, { env: host.env, stdio: ['pipe', 'pipe', 'pipe'] });
}
