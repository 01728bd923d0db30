// Issue 24: the web console's pages around the console. Headless Chromium
// against a private xenoded with the default listener (port chosen by the
// system), one small domain: a restarted daemon is found again, a daemon that
// is down is shown as down, Pause/Resume keep the table still, the editor fits
// its box, the store view refreshes, the page works at 390 px and in dark mode.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { ensureDefaultGuest } from '../guest/build.ts';
import { launchChromium, login } from './helpers/browser.ts';
import { TestHost } from './helpers/host.ts';

let host: TestHost;
let browser: Browser;
let page: Page;
let base: string;
let token: string;

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost(); // XENODE_LISTEN=127.0.0.1:0
  await host.ok(['create', '-p', host.writeConfig('p1.cfg', 'name = "p1"\nmemory = 128\nsponsor = "alice"\n')]);
  base = `http://127.0.0.1:${host.tcpPort()}`;
  token = (await host.ok(['token', 'create', 'alice'])).trim();
  browser = await launchChromium();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  await login(page, base, token);
});

after(async () => {
  await browser?.close();
  await host?.cleanup();
});

async function newPage(opts: Parameters<Browser['newContext']>[0]): Promise<[BrowserContext, Page]> {
  const c = await browser.newContext(opts);
  const p = await c.newPage();
  await login(p, base, token);
  return [c, p];
}

describe('web panel (issue 24)', () => {
  it('Pause and Resume keep the table columns where they are', async () => {
    await page.waitForSelector('tr[data-domain="p1"] [data-state="paused"]');
    const widths = () =>
      page.evaluate(() => [...document.querySelectorAll('table.domains thead th')].map((th) => th.clientWidth));
    const before = await widths();
    await page.click('tr[data-domain="p1"] button:has-text("Resume")');
    await page.waitForSelector('tr[data-domain="p1"] [data-state="running"]');
    assert.deepEqual(await widths(), before);
    await page.click('tr[data-domain="p1"] button:has-text("Pause")');
    await page.waitForSelector('tr[data-domain="p1"] [data-state="paused"]');
    assert.deepEqual(await widths(), before);
  });

  it('a daemon that is down is shown as down; a restarted one is found on the same port', async () => {
    const port = host.tcpPort();
    host.killDaemon('SIGKILL');
    try {
      await page.waitForSelector('[data-offline-banner]', { timeout: 15_000 });
      assert.equal(
        await page.locator('tr[data-domain="p1"] button:not([disabled])').count(),
        0,
        'no action offered on a stale row',
      );
    } finally {
      await host.ok(['list']);
      base = `http://127.0.0.1:${host.tcpPort()}`; // the later tests go on either way
    }
    assert.equal(host.tcpPort(), port, 'same port as before the restart');
    await page.waitForSelector('[data-offline-banner]', { state: 'detached', timeout: 30_000 });
    await page.waitForSelector('tr[data-domain="p1"] button:has-text("Resume"):not([disabled])');
  });

  it('the xl.cfg editor fits its box: no line starts under the line numbers', async () => {
    await page.goto(`${base}/create`);
    await page.click('textarea[aria-label="xl.cfg"]');
    await page.keyboard.press('Control+End');
    await page.keyboard.type('extra = 1');
    const m = await page.evaluate(() => {
      const ed = document.querySelector('.editor') as HTMLElement;
      const gutter = document.querySelector('.gutter') as HTMLElement;
      const ta = document.querySelector('.editor textarea') as HTMLElement;
      return {
        overflow: ed.scrollWidth - ed.clientWidth,
        scrollLeft: ed.scrollLeft,
        gap: ta.getBoundingClientRect().left - gutter.getBoundingClientRect().right,
      };
    });
    assert.ok(m.overflow <= 0, `editor is ${m.overflow} px wider than its box`);
    assert.equal(m.scrollLeft, 0);
    assert.ok(m.gap >= 0, `text starts ${-m.gap} px under the gutter`);
  });

  it('the create form has disk, network and on_* fields, written as xl.cfg', async () => {
    await page.goto(`${base}/create`);
    await page.click('.tabs button:has-text("Form")');
    await page.fill('input[name="name"]', 'f2');
    await page.fill('input[name="disk"]', '/pool/f2.img');
    await page.selectOption('select[name="vif"]', 'default');
    await page.fill('input[name="vifIp"]', '10.0.0.7');
    await page.selectOption('select[name="on_crash"]', 'preserve');
    assert.equal(
      await page.inputValue('textarea[aria-label="generated xl.cfg"]'),
      'name = "f2"\nmemory = 256\nvcpus = 1\ndisk = [ "/pool/f2.img,raw,xvda,rw" ]\nvif = [ "ip=10.0.0.7" ]\non_crash = "preserve"\n',
    );
  });

  it('the store view refreshes, and a node opens by its name', async () => {
    await page.goto(`${base}/domains/p1/store`);
    await page.waitForSelector('.store-tree .store-name:text-is("name")');
    const id = (await host.ok(['domid', 'p1'])).trim();
    await host.ok(['store', 'write', `/local/domain/${id}/data/fresh`, 'yes']);
    await page.click('[data-store-refresh]');
    await page.click('.store-tree .store-name:text-is("data")');
    await page.waitForSelector('.store-tree .store-name:text-is("fresh")');
  });

  it('at 390 px nothing needs sideways scrolling and the signed-in user is shown', async () => {
    const [c, p] = await newPage({ viewport: { width: 390, height: 800 } });
    try {
      await p.waitForSelector('tr[data-domain="p1"]');
      const over = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(over <= 0, `page is ${over} px wider than the window`);
      assert.ok(await p.isVisible('[data-sponsor="alice"]'), 'who is signed in');
      const btn = await p.locator('tr[data-domain="p1"] button').first().boundingBox();
      assert.ok(btn && btn.x >= 0 && btn.x + btn.width <= 390, 'row actions on screen');
    } finally {
      await c.close();
    }
  });

  it('follows a dark colour scheme', async () => {
    const [c, p] = await newPage({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark' });
    try {
      await p.waitForSelector('tr[data-domain="p1"]');
      // Plain expressions only: the page gets this function's source as it is.
      const colours = await p.evaluate(() =>
        [document.body, document.querySelector('.card')].map((el) => (el ? getComputedStyle(el).backgroundColor : '')),
      );
      const [body, card] = colours.map((c) => {
        const m = /rgba?\((\d+), (\d+), (\d+)/.exec(c);
        return m ? (Number(m[1]) + Number(m[2]) + Number(m[3])) / 3 : -1;
      });
      const lum = { body: body ?? -1, card: card ?? -1 };
      assert.ok(lum.body >= 0 && lum.body < 60, `body background ${lum.body}`);
      assert.ok(lum.card >= 0 && lum.card < 70, `card background ${lum.card}`);
    } finally {
      await c.close();
    }
  });

  it("a new domain's charts span the last 10 minutes and its CPU time counts up", async () => {
    await host.ok(['unpause', 'p1']);
    await page.goto(`${base}/domains/p1`);
    await page.waitForSelector('[data-chart="CPU"] [data-x-span]', { timeout: 30_000 });
    // The chart first renders with no samples (a span of 0) and sets its axis once they come.
    await page.waitForFunction(
      () => Number(document.querySelector('[data-chart="CPU"] [data-x-span]')?.getAttribute('data-x-span')) > 0,
      undefined,
      { timeout: 30_000 },
    );
    const s = Number(await page.getAttribute('[data-chart="CPU"] [data-x-span]', 'data-x-span'));
    assert.ok(s >= 590 && s <= 610, `time axis spans ${s} s`);
    const first = await page.textContent('[data-cpu-seconds]');
    await page.waitForFunction((t) => document.querySelector('[data-cpu-seconds]')?.textContent !== t, first, {
      timeout: 30_000,
    });
  });

  it('a Shutdown the guest ignores shows as pending, then offers Force off', async () => {
    // A guest that ignores Shutdown: its agent still advertises control/feature-poweroff
    // but is stopped (SIGSTOP), so the request is never acted on. Paused too, so the
    // request also resumes it first (a paused -> running event that must not end the wait).
    const id = (await host.ok(['domid', 'p1'])).trim();
    const feature = `/local/domain/${id}/control/feature-poweroff`;
    for (let i = 0; (await host.xl(['store', 'read', feature])).stdout.trim() !== '1'; i++) {
      assert.ok(i < 120, 'the guest agent never registered');
      await new Promise((r) => setTimeout(r, 500));
    }
    const con = await host.console('p1');
    assert.match(
      await con.run(
        `p=$(ps | awk '/[x]enode-agent/ {print $1}'); [ -n "$p" ] && kill -STOP $p && echo stopped`,
        60_000,
      ),
      /stopped/,
    );
    con.close();
    await host.ok(['pause', 'p1']);
    await page.goto(`${base}/domains/p1`);
    await page.waitForSelector('h1.dom-title [data-state="paused"]');
    await page.click('.actions button:has-text("Shutdown")');
    await page.click('dialog.confirm [data-confirm]');
    await page.waitForSelector('[data-shutdown-pending="waiting"]');
    // 20 s of grace, counted by the page's clock; a loaded CI host can stretch it.
    await page.waitForSelector('[data-shutdown-pending="late"]', { timeout: 120_000 });
    await page.click('[data-force-off]');
    await page.click('dialog.confirm [data-confirm]');
    await page.waitForURL(`${base}/`);
    await page.waitForSelector('tr[data-domain="p1"]', { state: 'detached' });
  });
});
