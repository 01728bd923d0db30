// `npm run bench:web`: what the web console costs and how quickly it answers,
// next to plain QEMU in the same run.
//  - console keystroke echo: plain QEMU's serial socket, xenoded's console
//    WebSocket, and xterm.js in Chromium through the web UI;
//  - state-change latency: QMP stop -> STOP event on plain QEMU, and
//    POST /pause -> 'change' on xenoded's /v1/events;
//  - xenoded's own CPU use with one idle domain (sampler included), with and
//    without a browser watching; the UI's bundle size and time to first row.
// Results replace the "## Web console (bench:web)" section of docs/benchmarks.md.

import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Page } from 'playwright-core';
import WebSocket from 'ws';
import { ensureDefaultGuest } from '../guest/build.ts';
import { QmpClient } from '../src/engine/qmp.ts';
import { launchChromium, login, terminalLines } from '../test/helpers/browser.ts';
import { ROOT, TestHost } from '../test/helpers/host.ts';
import { replaceSection } from './lib/doc.ts';
import { hostFacts, loadAvg1 } from './lib/host.ts';
import { connectWhenReady, stopPid } from './lib/proc.ts';
import { fmt, markdownTable, max, median, min } from './lib/stats.ts';

const N_ECHO = Number(process.env.BENCH_WEB_ECHO ?? 100);
const N_BROWSER = Number(process.env.BENCH_WEB_BROWSER_ECHO ?? 40);
const N_EVENTS = Number(process.env.BENCH_WEB_EVENTS ?? 20);
const IDLE_MS = Number(process.env.BENCH_WEB_IDLE_MS ?? 30_000);
const NAME = 'webbench';

interface Wire {
  send(b: Buffer): void;
  close(): void;
}

/** Collects what a console sends and lets the caller wait for a condition on it. */
class Screen {
  text = '';
  private wake?: () => void;
  feed(d: Buffer): void {
    this.text += d.toString('latin1');
    this.wake?.();
  }
  async until(pred: (t: string) => boolean, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.text)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`console timeout; got ${JSON.stringify(this.text.slice(-200))}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }
}

/** Milliseconds from sending one character to the guest's echo of it. */
async function echoLatency(wire: Wire, screen: Screen, n: number): Promise<number[]> {
  wire.send(Buffer.from('\n'));
  // ash may follow its prompt with a cursor-position query (ESC[6n), which it does not need answered.
  await screen.until((t) => t.endsWith('# ') || t.endsWith('# \x1b[6n'), 60_000);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    screen.text = '';
    const t0 = performance.now();
    wire.send(Buffer.from('a'));
    await screen.until((t) => t.includes('a'));
    out.push(performance.now() - t0);
    screen.text = '';
    wire.send(Buffer.from('\x7f')); // erase it again, so the line never grows
    await screen.until((t) => t.length > 0);
  }
  return out;
}

/** The same keystroke typed into xterm.js in the browser, until it shows on the screen. */
async function browserEchoLatency(page: Page, n: number): Promise<number[]> {
  const promptLine = async () => (await terminalLines(page)).filter((l) => /^webbench:\/#/.test(l)).at(-1) ?? '';
  await page.click('.terminal-host');
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await page.keyboard.press('a');
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll('.xterm-rows > div')].some((r) =>
          /^webbench:\/# a$/.test((r.textContent ?? '').replace(/\u00a0/g, ' ').trimEnd()),
        ),
      undefined,
      { polling: 'raf', timeout: 20_000 },
    );
    out.push(performance.now() - t0);
    await page.keyboard.press('Backspace');
    for (let k = 0; k < 200 && (await promptLine()).endsWith('a'); k++) await page.waitForTimeout(5);
  }
  return out;
}

function httpUnix(socketPath: string, method: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end('{}');
  });
}

function cpuSecondsOf(pid: number): number {
  const rest = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(rest[11]) + Number(rest[12])) / 100;
}

async function daemonCpuMsPerSec(pid: number, ms: number): Promise<number> {
  const c0 = cpuSecondsOf(pid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  return ((cpuSecondsOf(pid) - c0) * 1000) / ((performance.now() - t0) / 1000);
}

function row(label: string, xs: number[], note = ''): string[] {
  return [label, String(xs.length), fmt(median(xs)), fmt(min(xs)), fmt(max(xs)), note];
}

async function main(): Promise<void> {
  const facts = hostFacts();
  const load0 = loadAvg1();
  await ensureDefaultGuest();
  const host = new TestHost();
  const browser = await launchChromium();
  const tmp = mkdtempSync('/tmp/xn-webbench-');
  let plainPid: number | undefined;
  const log = (s: string) => process.stderr.write(`bench:web: ${s}\n`);
  try {
    await host.ok(['list']);
    await host.ok(['create', host.writeConfig('b.cfg', `name = "${NAME}"\nmemory = 256\nvcpus = 1\n`)]);
    await host.ok(['wait-ready', NAME]);
    const daemonPid = host.daemonPid();
    if (!daemonPid) throw new Error('no xenoded pid');

    // Plain QEMU: Xenode's own command line for this domain, run directly.
    const runDir = join(host.dir, 'domains', readdirSync(join(host.dir, 'domains'))[0] ?? '');
    const qemuPid = host.qemuPids()[0];
    if (!qemuPid) throw new Error('no QEMU pid');
    const argv = readFileSync(`/proc/${qemuPid}/cmdline`, 'utf8')
      .split('\0')
      .filter((a) => a !== '' && a !== '-S')
      .map((a) => a.replaceAll(runDir, tmp));
    const [bin, ...args] = argv;
    if (!bin) throw new Error('empty QEMU command line');
    const qlog = openSync(join(tmp, 'qemu.log'), 'a');
    const child = spawn(bin, args, { detached: true, stdio: ['ignore', qlog, qlog] });
    closeSync(qlog);
    plainPid = child.pid;
    log(`plain QEMU pid ${plainPid}`);
    const plainScreen = new Screen();
    const serial: Socket = await connectWhenReady(join(tmp, 'serial.sock'), (d) => plainScreen.feed(d), {
      until: Date.now() + 30_000,
    });
    await plainScreen.until((t) => /XENODE-READY/.test(t), 90_000);
    const plainWire: Wire = { send: (b) => serial.write(b), close: () => serial.destroy() };

    log('console echo: plain QEMU serial socket');
    const echoPlain = await echoLatency(plainWire, plainScreen, N_ECHO);
    log("console echo: xenoded's WebSocket");
    const wsScreen = new Screen();
    const ws = new WebSocket(`ws+unix://${host.socket}:/v1/domains/${NAME}/console?scrollback=0`);
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    ws.on('message', (d: Buffer) => wsScreen.feed(d));
    const echoWs = await echoLatency({ send: (b) => ws.send(b), close: () => ws.close() }, wsScreen, N_ECHO);
    ws.close();

    log('console echo: xterm.js in Chromium');
    const base = `http://127.0.0.1:${host.tcpPort()}`;
    const token = (await host.ok(['token', 'create', 'bench', '--admin'])).trim();
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    await login(page, base, token);
    await page.goto(`${base}/domains/${NAME}/console`);
    await page.waitForSelector('[data-console-state="connected"]');
    await page.click('.terminal-host');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() =>
      [...document.querySelectorAll('.xterm-rows > div')].some(
        (r) => (r.textContent ?? '').replace(/\u00a0/g, ' ').trimEnd() === 'webbench:/#',
      ),
    );
    const echoBrowser = await browserEchoLatency(page, N_BROWSER);

    log('state changes: QMP stop/cont on plain QEMU');
    const qmp = new QmpClient(join(tmp, 'qmp.sock'));
    await qmp.connect({ retryUntil: Date.now() + 10_000 });
    const qmpEvent = (name: string) =>
      new Promise<void>((r) => {
        const on = (e: { event: string }) => {
          if (e.event === name) {
            qmp.off('event', on);
            r();
          }
        };
        qmp.on('event', on);
      });
    const stopPlain: number[] = [];
    for (let i = 0; i < N_EVENTS; i++) {
      for (const [cmd, ev] of [
        ['stop', 'STOP'],
        ['cont', 'RESUME'],
      ] as const) {
        const seen = qmpEvent(ev);
        const t0 = performance.now();
        await qmp.execute(cmd);
        await seen;
        stopPlain.push(performance.now() - t0);
      }
    }
    qmp.close();

    log('state changes: POST pause/unpause -> /v1/events');
    const events = new WebSocket(`ws+unix://${host.socket}:/v1/events`);
    const waiters: Array<{ state: string; done: () => void }> = [];
    events.on('message', (d: Buffer) => {
      const e = JSON.parse(d.toString()) as { type: string; domain?: { name: string; state: string } };
      if (e.type !== 'change' || e.domain?.name !== NAME) return;
      const i = waiters.findIndex((w) => w.state === e.domain?.state);
      if (i >= 0) waiters.splice(i, 1)[0]?.done();
    });
    await new Promise((r, j) => events.once('open', r).once('error', j));
    const pushXenode: number[] = [];
    const httpXenode: number[] = [];
    for (let i = 0; i < N_EVENTS; i++) {
      for (const [action, state] of [
        ['pause', 'paused'],
        ['unpause', 'running'],
      ] as const) {
        const seen = new Promise<void>((done) => waiters.push({ state, done }));
        const t0 = performance.now();
        const status = await httpUnix(host.socket, 'POST', `/v1/domains/${NAME}/${action}`);
        if (status !== 200) throw new Error(`${action}: HTTP ${status}`);
        httpXenode.push(performance.now() - t0);
        await seen;
        pushXenode.push(performance.now() - t0);
      }
    }
    events.close();

    log('xenoded CPU use, idle, then with the domain list open in the browser');
    await page.goto('about:blank');
    const cpuIdle = await daemonCpuMsPerSec(daemonPid, IDLE_MS);
    await page.goto(`${base}/`);
    await page.waitForSelector(`tr[data-domain="${NAME}"]`);
    const cpuWatched = await daemonCpuMsPerSec(daemonPid, IDLE_MS);

    log('UI: time to the first domain row');
    const firstRow: number[] = [];
    for (let i = 0; i < 6; i++) {
      await page.goto('about:blank');
      const t0 = performance.now();
      await page.goto(`${base}/`);
      await page.waitForSelector(`tr[data-domain="${NAME}"] [data-state="running"]`);
      if (i > 0) firstRow.push(performance.now() - t0); // the first load fills the cache
    }
    const assets = join(ROOT, 'web', 'dist', 'assets');
    const size = (prefix: string) => {
      let raw = 0;
      let gz = 0;
      for (const f of readdirSync(assets).filter((x) => x.startsWith(prefix))) {
        const b = readFileSync(join(assets, f));
        raw += b.length;
        gz += gzipSync(b).length;
      }
      return `${fmt(raw / 1024, 0)} KiB (${fmt(gz / 1024, 0)} KiB gzip)`;
    };

    const date = new Date().toISOString().slice(0, 10);
    const body = `Run ${date} on ${facts.nproc} × ${facts.cpuModel}, ${fmt(facts.ramGiB, 1)} GiB RAM, Linux ${facts.kernel},
${facts.qemuVersion}, Node ${facts.nodeVersion}. Accelerator: ${facts.accelNote}. Load average before the run: ${fmt(load0)}.
One domain (default guest, 256 MiB, 1 vCPU); the peer is the same QEMU command line run directly, in the same run.

Console keystroke echo (ms from sending one character to the guest's echo of it):

${markdownTable(
  ['path', 'n', 'median', 'min', 'max', 'note'],
  [
    row('plain QEMU: serial Unix socket', echoPlain, 'peer'),
    row('xenoded: console WebSocket (Unix socket)', echoWs, 'ring buffer + fan-out in between'),
    row('browser: xterm.js over the web UI', echoBrowser, 'includes Playwright driving and xterm rendering'),
  ],
)}

State-change notification (ms from issuing the command to the event):

${markdownTable(
  ['path', 'n', 'median', 'min', 'max', 'note'],
  [
    row('plain QEMU: QMP stop/cont -> STOP/RESUME event', stopPlain, 'peer'),
    row('xenoded: POST pause/unpause -> HTTP reply', httpXenode, ''),
    row('xenoded: POST pause/unpause -> /v1/events change', pushXenode, 'what the live list waits for'),
  ],
)}

xenoded's CPU use with this one domain (sampler every 2 s, QMP, console): ${fmt(cpuIdle, 1)} ms/s with no client,
${fmt(cpuWatched, 1)} ms/s with the domain list open in a browser (events pushed every 2 s).
Web UI: app ${size('index-')}, login page ${size('login-')}; time from navigation to the first domain row
(warm cache, n=${firstRow.length}): median ${fmt(median(firstRow), 0)} ms (min ${fmt(min(firstRow), 0)}, max ${fmt(max(firstRow), 0)}).
`;
    replaceSection(join(ROOT, 'docs', 'benchmarks.md'), '## Web console (bench:web)', body);
    process.stdout.write(`${body}\n`);
  } finally {
    await browser.close();
    if (plainPid) await stopPid(plainPid);
    await host.cleanup();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:web: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
