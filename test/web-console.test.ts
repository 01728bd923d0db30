// Issue 24: the web console must not damage what a user types or reads.
// Headless Chromium against a private xenoded (on a fixed port, so that it can
// be restarted under the page) and one real guest: the console log on disk is
// byte-exact, reopening the console types nothing into the guest (checked from
// inside it), `_` is drawn, the console reconnects by itself, the page fits the
// window, focus can leave the terminal, and the guest can learn its size.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { ensureDefaultGuest } from '../guest/build.ts';
import { launchChromium, login, terminalLines, waitForTerminalLine } from './helpers/browser.ts';
import { type ConsoleSession, TestHost } from './helpers/host.ts';
import { brightPixels, decodePng } from './helpers/png.ts';

let host: TestHost;
let browser: Browser;
let page: Page;
let base: string;
let con: ConsoleSession;
let domid: number;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

before(async () => {
  await ensureDefaultGuest();
  const port = await freePort();
  host = new TestHost({ XENODE_LISTEN: `127.0.0.1:${port}` });
  await host.ok(['create', host.writeConfig('con1.cfg', 'name = "con1"\nmemory = 192\nsponsor = "alice"\n')]);
  domid = Number((await host.ok(['domid', 'con1'])).trim());
  con = await host.console('con1');
  await con.expect(/con1:\/# /, 120_000);
  base = `http://127.0.0.1:${host.tcpPort()}`;
  const token = (await host.ok(['token', 'create', 'alice'])).trim();
  browser = await launchChromium();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  await login(page, base, token);
});

after(async () => {
  con?.close();
  await browser?.close();
  await host?.cleanup();
});

async function openConsole(): Promise<void> {
  await page.goto(`${base}/domains/${domid}/console`);
  await page.waitForSelector('[data-console-state="connected"]');
}

/** Type a command in the browser's terminal and wait for an output line. */
async function typeAndSee(cmd: string, out: RegExp): Promise<string> {
  await page.click('.terminal-host');
  await page.keyboard.type(cmd);
  await page.keyboard.press('Enter');
  return waitForTerminalLine(page, out, 30_000);
}

describe('web console (issue 24)', () => {
  it('the console log on disk is byte-identical to what the guest printed, with the daemon stalled meanwhile', async () => {
    const from = con.output.length;
    // The quotes split the markers in the echoed command line.
    con.send('echo S""TART; seq 1 100000; echo E""ND\n');
    await con.expect(/\r\n5000\r\n/, 60_000, from);
    // A daemon that stops reading for a while (busy, swapped out): QEMU's
    // socket fills and its writes fail with EAGAIN.
    const pid = host.daemonPid();
    assert.ok(pid);
    process.kill(pid, 'SIGSTOP');
    await new Promise((r) => setTimeout(r, 3000));
    process.kill(pid, 'SIGCONT');
    await con.expect(/\r\nEND\r\n/, 300_000, from);
    const expected = `START\r\n${Array.from({ length: 100000 }, (_, i) => String(i + 1)).join('\r\n')}\r\nEND\r\n`;
    const got = con.output.slice(con.output.indexOf('START\r\n', from));
    assert.ok(got.startsWith(expected), 'the stream the client read is exact');
    const log = readFileSync(join(host.dir, 'domains', String(domid), 'console.log'), 'latin1');
    const start = log.lastIndexOf('START\r\n');
    const section = log.slice(start, start + expected.length);
    if (section !== expected) {
      let i = 0;
      while (i < section.length && section[i] === expected[i]) i++;
      assert.fail(
        `console.log differs at byte ${i} of the run: ${JSON.stringify(section.slice(i - 20, i + 20))} vs ${JSON.stringify(expected.slice(i - 20, i + 20))}`,
      );
    }
  });

  it('reopening the console sends nothing to the guest (checked inside the guest)', async () => {
    // An old cursor-position query in the scroll-back, printed while no browser listened.
    await page.goto(`${base}/domains/${domid}`);
    await page.waitForSelector('h1.dom-title');
    const from = con.output.length;
    con.send('printf \'old-query\\033[6n\\n\'; stty -echo; echo C""AT-ON; head -n 1 > /tmp/leak; stty echo\n');
    await con.expect(/\r\nCAT-ON\r\n/, 30_000, from);
    await openConsole();
    await waitForTerminalLine(page, /^CAT-ON$/, 30_000);
    // Whatever the replay made xterm.js answer went out before this line.
    await page.click('.terminal-host');
    await page.keyboard.type('Z');
    await page.keyboard.press('Enter');
    const hex = await con.run('od -An -tx1 /tmp/leak');
    assert.equal(hex.replace(/\s+/g, ' ').trim(), '5a 0a', 'the guest read only the typed line');
  });

  it('a typed _ shows as _ at 1x', async () => {
    await typeAndSee('echo foo_bar', /^foo_bar$/);
    const clip = await page.evaluate(() => {
      const row = [...document.querySelectorAll('.xterm-rows > div')].find(
        (r) => (r.textContent ?? '').replace(/\u00a0/g, ' ').trimEnd() === 'foo_bar',
      );
      if (!row) return undefined;
      const walker = document.createTreeWalker(row, NodeFilter.SHOW_TEXT);
      for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        const i = (n.textContent ?? '').indexOf('_');
        if (i < 0) continue;
        const range = document.createRange();
        range.setStart(n, i);
        range.setEnd(n, i + 1);
        const g = range.getBoundingClientRect();
        const r = row.getBoundingClientRect();
        return { x: g.left, y: r.top, width: g.width, height: r.height };
      }
      return undefined;
    });
    assert.ok(clip && clip.width > 0 && clip.height > 0, 'found the _ cell');
    const ink = brightPixels(decodePng(await page.screenshot({ clip })));
    assert.ok(ink >= 3, `the _ cell has ${ink} lit pixels`);
  });

  it('the console page fits an 800 px window and the panel stays put when clicked', async () => {
    const tooTall = await page.evaluate(() => document.documentElement.scrollHeight - window.innerHeight);
    assert.ok(tooTall <= 0, `page is ${tooTall} px taller than the window`);
    const before = await page.locator('.console-panel').boundingBox();
    await page.click('.terminal-host');
    await page.click('.console-bar');
    await page.click('.terminal-host');
    const after = await page.locator('.console-panel').boundingBox();
    assert.deepEqual(after, before);
    assert.equal(await page.evaluate(() => window.scrollY), 0);
  });

  it('Tab stays in the terminal; Escape then Tab leaves it', async () => {
    await page.click('.terminal-host');
    const inTerminal = () =>
      page.evaluate(() => document.querySelector('.terminal-host')?.contains(document.activeElement) ?? false);
    await page.keyboard.press('Tab');
    assert.equal(await inTerminal(), true, 'a single Tab is for the guest (completion)');
    await page.keyboard.press('Escape');
    await page.keyboard.press('Tab');
    assert.equal(await inTerminal(), false, 'Escape, Tab moves focus on');
    await page.click('.terminal-host');
    await page.keyboard.press('Escape');
    await page.keyboard.press('Shift+Tab');
    assert.equal(await inTerminal(), false, 'Escape, Shift+Tab moves focus back');
    // What the Tab and Escape sent to the guest's line editor is cleared.
    await page.click('.terminal-host');
    await page.keyboard.press('Control+C');
    await page.keyboard.press('Enter');
  });

  it('the guest learns the terminal size', async () => {
    const rows = await page.evaluate(() => document.querySelectorAll('.xterm-rows > div').length);
    await page.click('[data-console-size]');
    const label = (await page.getAttribute('[data-console-size]', 'data-console-size')) ?? '';
    const [cols, rowsLabel] = label.split('x').map(Number);
    assert.equal(rowsLabel, rows);
    assert.ok((cols ?? 0) > 80, `cols ${cols}`);
    assert.equal(await con.run('stty size'), `${rows} ${cols}`);
  });

  it('reconnects by itself after a daemon restart, with a readable status', async () => {
    await page.waitForSelector('[data-console-state="connected"]');
    host.killDaemon('SIGKILL');
    const status = await page.waitForSelector('[data-console-state="reconnecting"]', { timeout: 15_000 });
    const text = (await status.textContent()) ?? '';
    assert.match(text, /lost|reconnect/i);
    assert.doesNotMatch(text, /\b1\d{3}\b|\(\d+\)/, 'no raw WebSocket code');
    await host.ok(['list']); // starts the daemon again, on the same port
    await page.waitForSelector('[data-console-state="connected"]', { timeout: 60_000 });
    const lines = await terminalLines(page);
    assert.ok(lines.length > 0);
    assert.equal(await typeAndSee('echo back-again', /^back-again$/), 'back-again');
  });

  it('a destroyed domain is named as gone, not shown as an API error', async () => {
    con.close();
    await host.ok(['destroy', 'con1']);
    const el = await page.waitForSelector('[data-domain-gone]', { timeout: 15_000 });
    const text = (await el.textContent()) ?? '';
    assert.match(text, /con1 no longer exists/);
    assert.doesNotMatch(text, /rc=|invalid domain identifier/);
    assert.equal(await page.locator('.console-panel').count(), 0, 'no console left trying to reconnect');
  });

  it('every page has a title of its own', async () => {
    const titles = new Set<string>();
    for (const p of ['/', '/create', '/usage']) {
      await page.goto(`${base}${p}`);
      await page.waitForSelector('main');
      titles.add(await page.title());
    }
    assert.equal(titles.size, 3, [...titles].join(' | '));
    for (const t of titles) assert.match(t, /\S · Xenode$/);
  });
});
