// Issue: manage domains from a browser, with a live terminal and resource
// charts. Headless Chromium against a private xenoded and a real guest: log
// in, create from pasted xl.cfg, type in the console, pause/unpause, charts,
// destroy with confirmation; bad config, no token, other sponsors' domains.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { ensureDefaultGuest } from '../guest/build.ts';
import { CHROMIUM, entryAssets, launchChromium, login, waitForTerminalLine } from './helpers/browser.ts';
import { TestHost } from './helpers/host.ts';

let host: TestHost;
let browser: Browser;
let ctx: BrowserContext;
let page: Page;
let base: string;
let alice: string;

const TOKEN_RE = /xn_[0-9a-f]{8}_[A-Za-z0-9_-]{10,}/;

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost();
  await host.ok(['list']); // starts xenoded
  base = `http://127.0.0.1:${host.tcpPort()}`;
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: run scripts/setup.sh (it installs chromium)`);
  browser = await launchChromium();
  ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await ctx.newPage();
});

after(async () => {
  await browser?.close();
  await host?.cleanup();
});

/** fetch() from inside the page: same origin, with whatever cookie the page has. */
function pageFetch(p: Page, path: string, method = 'GET'): Promise<{ status: number; body: string; url: string }> {
  return p.evaluate(
    async ([u, m]) => {
      const r = await fetch(u, { method: m, credentials: 'same-origin' });
      return { status: r.status, body: await r.text(), url: r.url };
    },
    [path, method] as const,
  );
}

/** Can the page open a WebSocket to `path`? (false = refused before opening) */
function pageWsOpens(p: Page, path: string): Promise<boolean> {
  return p.evaluate(
    (u) =>
      new Promise<boolean>((resolve) => {
        const ws = new WebSocket(`ws://${location.host}${u}`);
        ws.onopen = () => {
          ws.close();
          resolve(true);
        };
        ws.onerror = () => resolve(false);
      }),
    path,
  );
}

function listRow(out: string, name: string): string | undefined {
  return out.split('\n').find((l) => l.split(/\s+/)[0] === name);
}

describe('web console', () => {
  it('`xenode web --token` prints the console URL and a token to log in with', async () => {
    const r = await host.xl(['web', '--token', 'alice']);
    assert.equal(r.code, 0, r.stderr);
    const [url, token, ...rest] = r.stdout.trim().split('\n');
    assert.equal(url, `${base}/`);
    assert.match(token ?? '', TOKEN_RE);
    assert.deepEqual(rest, []);
    assert.match(r.stderr, /for sponsor alice/);
    alice = token ?? '';
  });

  it('without a session, the pages send the browser to /login and the API answers 401', async () => {
    await page.goto(`${base}/`);
    assert.equal(new URL(page.url()).pathname, '/login');
    assert.equal((await pageFetch(page, '/v1/domains')).status, 401);
    assert.equal((await pageFetch(page, '/v1/info')).status, 401);
    assert.equal((await pageFetch(page, '/v1/domains/1/console')).status, 401);
    assert.equal(await pageWsOpens(page, '/v1/events'), false, 'event stream refused');
    // The app's code is not served before login; the login page's own files are.
    for (const f of entryAssets('index.html')) assert.equal((await pageFetch(page, `/${f}`)).status, 401, f);
    for (const f of entryAssets('login.html')) assert.equal((await pageFetch(page, `/${f}`)).status, 200, f);
    const deep = await pageFetch(page, '/domains/1/console');
    assert.equal(new URL(deep.url).pathname, '/login');
  });

  it('a wrong token is refused with a message', async () => {
    await page.fill('#token', 'xn_00000000_notarealtokenatall');
    await page.click('#login button[type=submit]');
    await page.waitForSelector('#login-error:not([hidden])');
    assert.match((await page.textContent('#login-error')) ?? '', /invalid token/);
    assert.equal(new URL(page.url()).pathname, '/login');
  });

  it('logs in with a token: HttpOnly SameSite=Strict cookie, token nowhere else', async () => {
    await login(page, base, alice);
    await page.waitForSelector('.who[data-sponsor="alice"]');
    const cookie = (await ctx.cookies()).find((c) => c.name === 'xenode_session');
    assert.ok(cookie, 'session cookie set');
    assert.ok(!cookie.value.includes(alice) && !cookie.value.includes('xn_'), 'a session id, not the token');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.equal(await page.evaluate(() => document.cookie.includes('xn_')), false, 'scripts cannot read it');
    assert.doesNotMatch(page.url(), TOKEN_RE);
    assert.equal(await page.evaluate(() => document.documentElement.outerHTML.includes('xn_')), false);
    const dmesg = await host.ok(['dmesg']);
    assert.match(dmesg, /web login: sponsor alice/);
    assert.doesNotMatch(dmesg, TOKEN_RE, 'token never logged');
    assert.equal((await pageFetch(page, '/v1/domains')).status, 200);
  });

  it('refuses cookie-authenticated requests from another site', async () => {
    const session = (await ctx.cookies()).find((c) => c.name === 'xenode_session');
    assert.ok(session);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        `${base}/v1/domains`,
        { headers: { cookie: `xenode_session=${session.value}`, origin: 'http://evil.example' } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 403);
  });

  it('a bad config shows the error at its line and creates nothing', async () => {
    await page.click('.topnav a[href="/create"]');
    await page.fill('textarea[aria-label="xl.cfg"]', 'name = "bad1"\nmemory = 256\nmemroy = 512\nvcpus = 1\n');
    await page.click('form.create-form button[type=submit]');
    const err = await page.waitForSelector('[data-create-error]');
    const text = (await err.textContent()) ?? '';
    assert.match(text, /Line 3, column 1/);
    assert.match(text, /unknown config key 'memroy'/);
    assert.equal(await page.textContent('.editor .gl.err'), '3', 'gutter marks line 3');
    assert.equal(await page.locator('.editor .bl.err').count(), 1);
    assert.equal(listRow(await host.ok(['list']), 'bad1'), undefined);
    // The form writes xl.cfg too, and its errors point into that text.
    await page.click('.tabs button:has-text("Form")');
    await page.fill('input[name="name"]', 'form1');
    await page.fill('input[name="kernel"]', '/nonexistent/vmlinuz');
    const generated = await page.inputValue('textarea[aria-label="generated xl.cfg"]');
    assert.equal(generated, 'name = "form1"\nmemory = 256\nvcpus = 1\nkernel = "/nonexistent/vmlinuz"\n');
    await page.click('form.create-form button[type=submit]');
    const formErr = await page.waitForSelector('[data-create-error]');
    assert.match((await formErr.textContent()) ?? '', /Line 4.*not a volume of yours/);
    assert.equal(await page.textContent('.editor .gl.err'), '4');
    await page.click('.tabs button:has-text("xl.cfg")');
  });

  it('creates a domain from pasted xl.cfg; it appears running', async () => {
    // A blank raw disk, so the disk chart has counters to show: a volume of the
    // sponsor's (a sponsor may name no other host file).
    const poolDir = join(host.dir, 'pool');
    mkdirSync(poolDir);
    await host.ok(['storage-add', 'web', poolDir, '--sponsor', 'alice']);
    const img = (await host.ok(['volume', 'create', 'web/web1', '32M', '--sponsor', 'alice'])).trim();
    await page.fill(
      'textarea[aria-label="xl.cfg"]',
      `name = "web1"\nmemory = 256\nvcpus = 1\ndisk = [ "${img},raw,xvda,rw" ]\n`,
    );
    await page.click('form.create-form button[type=submit]');
    await page.waitForURL(/\/domains\/\d+$/, { timeout: 120_000 });
    await page.waitForSelector('h1.dom-title [data-state="running"]');
    assert.equal((await page.textContent('h1.dom-title'))?.startsWith('web1'), true);
    const row = listRow(await host.ok(['list']), 'web1');
    assert.ok(row, 'the CLI sees it');
    const view = JSON.parse((await pageFetch(page, '/v1/domains/web1')).body) as { sponsor: string };
    assert.equal(view.sponsor, 'alice', "created under the token's sponsor");
  });

  it('the console runs `echo hello-from-browser` in the guest', async () => {
    await page.click('.tabs a:has-text("Console")');
    await page.waitForSelector('[data-console-state="connected"]');
    await waitForTerminalLine(page, /^web1:\/#$/, 90_000);
    await page.click('.terminal-host');
    await page.keyboard.type('echo hello-from-browser');
    await page.keyboard.press('Enter');
    // The echoed command line contains more; the output line is exactly the word.
    assert.equal(await waitForTerminalLine(page, /^hello-from-browser$/, 30_000), 'hello-from-browser');
    // Read the whole disk once, for the disk chart below.
    await page.keyboard.type('dd if=/dev/vda of=/dev/null bs=1M && echo dd-done');
    await page.keyboard.press('Enter');
    await waitForTerminalLine(page, /^dd-done$/, 30_000);
  });

  it('pause and unpause show in the list live, without a reload', async () => {
    const listPage = await ctx.newPage();
    try {
      await listPage.goto(`${base}/`);
      await listPage.waitForSelector('tr[data-domain="web1"] [data-state="running"]');
      await listPage.evaluate(() => {
        (window as unknown as { marker: number }).marker = 42;
      });
      await page.click('.actions button:has-text("Pause")');
      await listPage.waitForSelector('tr[data-domain="web1"] [data-state="paused"]');
      assert.match(listRow(await host.ok(['list']), 'web1') ?? '', /--p---/);
      await page.click('.actions button:has-text("Resume")');
      await listPage.waitForSelector('tr[data-domain="web1"] [data-state="running"]');
      assert.doesNotMatch(listRow(await host.ok(['list']), 'web1') ?? '', /--p---/);
      assert.equal(await listPage.evaluate(() => (window as unknown as { marker?: number }).marker), 42, 'no reload');
    } finally {
      await listPage.close();
    }
  });

  it('charts show CPU and memory sampled by the daemon, mem-set included', async () => {
    await page.click('.tabs a:has-text("Overview")');
    await page.fill('.memset input', '200');
    await page.click('.memset button[type=submit]');
    await page.waitForSelector('[data-chart="CPU"] canvas');
    await page.waitForSelector('[data-chart="Memory"] canvas');
    // The sample after the mem-set reaches the chart through the event stream.
    await page.waitForSelector('[data-chart="Memory"] .chart-now:has-text("Target 200 MiB")', { timeout: 15_000 });
    const m = JSON.parse((await pageFetch(page, '/v1/domains/web1/metrics')).body) as {
      intervalMs: number;
      samples: Array<{
        t: number;
        cpuPct: number | null;
        memTargetMiB: number;
        rssMiB: number | null;
        diskReadBps: number | null;
      }>;
    };
    assert.equal(m.intervalMs, 2000);
    assert.ok(m.samples.length >= 2, `samples: ${m.samples.length}`);
    const last = m.samples.at(-1);
    assert.ok(last);
    assert.equal(last.memTargetMiB, 200);
    assert.ok((last.rssMiB ?? 0) > 32, `QEMU RSS ${last.rssMiB}`);
    assert.ok(m.samples.some((s) => typeof s.cpuPct === 'number' && s.cpuPct >= 0));
    assert.match((await page.textContent('[data-chart="CPU"] .chart-now')) ?? '', /CPU \d+\.\d %/);
    // The disk plugin's counters (QMP query-blockstats) feed the disk chart: the dd read 32 MiB.
    await page.waitForSelector('[data-chart="Disk I/O"] canvas');
    const readBytes = m.samples.reduce(
      (sum, s, i) => sum + (i > 0 ? ((s.diskReadBps ?? 0) * (s.t - (m.samples[i - 1]?.t ?? s.t))) / 1000 : 0),
      0,
    );
    assert.ok(readBytes >= 16 << 20, `disk reads seen: ${readBytes} bytes`);
    // No network interface: that chart says so rather than drawing nothing.
    assert.match((await page.textContent('[data-chart="Network"]')) ?? '', /No network counters/);
    await page.click('.tabs a:has-text("Store")');
    await page.waitForSelector('.store-tree .store-name:text-is("name")');
    assert.match((await page.textContent('.store-tree')) ?? '', /web1/);
  });

  it("a sponsor's session shows only that sponsor's domains", async () => {
    const cfg = host.writeConfig('bob.cfg', 'name = "bobvm"\nmemory = 128\nsponsor = "bob"\n');
    await host.ok(['create', '-p', cfg]);
    try {
      assert.equal((await pageFetch(page, '/v1/domains/bobvm')).status, 404);
      const names = (JSON.parse((await pageFetch(page, '/v1/domains')).body) as Array<{ name: string }>).map(
        (d) => d.name,
      );
      assert.deepEqual(names, ['web1']);
      // Events arrive in order: once a later change to web1 shows, bobvm's would have too.
      await page.goto(`${base}/`);
      await page.waitForSelector('tr[data-domain="web1"] [data-state="running"]');
      await host.ok(['pause', 'web1']);
      await page.waitForSelector('tr[data-domain="web1"] [data-state="paused"]');
      assert.equal(await page.locator('tr[data-domain="bobvm"]').count(), 0);
      await host.ok(['unpause', 'web1']);
    } finally {
      await host.ok(['destroy', 'bobvm']);
    }
  });

  it('destroy asks for confirmation; cancel keeps the domain, confirm removes it', async () => {
    await page.click('tr[data-domain="web1"] a.dom-name');
    await page.waitForSelector('h1.dom-title');
    await page.click('.actions button:has-text("Destroy")');
    await page.waitForSelector('dialog.confirm[open]');
    await page.click('dialog.confirm button:has-text("Cancel")');
    await page.waitForSelector('dialog.confirm', { state: 'detached' });
    assert.ok(listRow(await host.ok(['list']), 'web1'), 'still there after cancel');
    await page.click('.actions button:has-text("Destroy")');
    await page.click('dialog.confirm [data-confirm]');
    await page.waitForURL(`${base}/`);
    await page.waitForSelector('tr[data-domain="web1"]', { state: 'detached' });
    assert.equal(listRow(await host.ok(['list']), 'web1'), undefined);
    assert.equal(host.qemuPids().length, 0, 'QEMU gone');
  });

  it('log out clears the session', async () => {
    await page.click('.topbar button:has-text("Log out")');
    await page.waitForURL(`${base}/login`);
    assert.equal(
      (await ctx.cookies()).find((c) => c.name === 'xenode_session'),
      undefined,
    );
    assert.equal((await pageFetch(page, '/v1/domains')).status, 401);
  });
});
