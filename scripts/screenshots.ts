// `npm run screenshots`: the web console's pictures for docs/web.md, taken in
// headless Chromium against a private xenoded running real guests.

import { mkdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDefaultGuest } from '../guest/build.ts';
import { launchChromium, login, waitForTerminalLine } from '../test/helpers/browser.ts';
import { ROOT, TestHost } from '../test/helpers/host.ts';

const OUT = process.env.XENODE_SCREENSHOT_DIR ?? join(ROOT, 'docs', 'screenshots');
/** How long the charts collect history before they are photographed. */
const HISTORY_MS = Number(process.env.XENODE_SCREENSHOT_HISTORY_MS ?? 70_000);

async function main(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  await ensureDefaultGuest();
  const host = new TestHost({ XENODE_NET_HOSTPORT: 'none' });
  const browser = await launchChromium();
  try {
    await host.ok(['list']);
    const base = `http://127.0.0.1:${host.tcpPort()}`;
    const token = (await host.ok(['token', 'create', 'ops', '--admin'])).trim();
    const img = join(host.dir, 'web-frontend.img');
    writeFileSync(img, '');
    truncateSync(img, 64 << 20);
    const domains = [
      `name = "web-frontend"\nmemory = 256\nvcpus = 2\nsponsor = "alice"\ndisk = [ "${img},raw,xvda,rw", "vdev=xvdc,devtype=cdrom,target=" ]\nvif = [ "ip=10.237.0.5" ]\n`,
      'name = "db-primary"\nmemory = 384\nvcpus = 1\nsponsor = "alice"\n',
      'name = "ci-runner"\nmemory = 256\nvcpus = 1\nsponsor = "bob"\n',
    ];
    for (const [i, text] of domains.entries()) await host.ok(['create', host.writeConfig(`d${i}.cfg`, text)]);
    await host.ok(['pause', 'ci-runner']);

    const ctx = await browser.newContext({ viewport: { width: 1360, height: 860 } });
    const page = await ctx.newPage();
    await page.goto(`${base}/login`);
    await page.screenshot({ path: join(OUT, 'login.png') });
    await login(page, base, token);

    // A bursty CPU and disk load in one guest so its charts have a shape.
    await page.goto(`${base}/domains/web-frontend/console`);
    await waitForTerminalLine(page, /^web-frontend:\/#$/, 90_000);
    await page.click('.terminal-host');
    await page.keyboard.type(
      '(while :; do dd if=/dev/zero of=/dev/null bs=1M count=300; echo 3 >/proc/sys/vm/drop_caches; ' +
        'dd if=/dev/vda of=/dev/null bs=1M count=24; dd if=/dev/zero of=/dev/vda bs=1M count=6 conv=fsync; ' +
        'sleep 4; done) >/dev/null 2>&1 &',
    );
    await page.keyboard.press('Enter');
    await page.waitForTimeout(HISTORY_MS);

    await page.goto(`${base}/`);
    await page.waitForSelector('tr[data-domain="ci-runner"] [data-state="paused"]');
    await page.waitForTimeout(2500); // one sample round, so every CPU cell has a value
    await page.screenshot({ path: join(OUT, 'list.png') });

    await page.goto(`${base}/domains/web-frontend`);
    await page.waitForSelector('[data-chart="CPU"] canvas');
    await page.waitForTimeout(500);
    await page.screenshot({ path: join(OUT, 'charts.png') });

    await page.goto(`${base}/domains/web-frontend/console`);
    await waitForTerminalLine(page, /^web-frontend:\/#/, 30_000);
    await page.click('.terminal-host');
    for (const cmd of ['uname -sr', 'free -m', 'echo hello-from-browser']) {
      await page.keyboard.type(cmd);
      await page.keyboard.press('Enter');
    }
    await waitForTerminalLine(page, /^hello-from-browser$/, 30_000);
    await page.screenshot({ path: join(OUT, 'console.png') });

    await page.goto(`${base}/domains/web-frontend/devices`);
    await page.waitForSelector('tr[data-disk="xvda"] [data-rd-bytes]');
    await page.waitForTimeout(3500);
    await page.screenshot({ path: join(OUT, 'devices.png') });

    await page.click('.memset input', { clickCount: 3 });
    await page.keyboard.type('240');
    await page.click('.memset button[type=submit]');
    await page.waitForSelector('[data-mem-reached], [data-mem-unreached]', { timeout: 60_000 });
    await page.goto(`${base}/domains/web-frontend/history`);
    await page.waitForSelector('li[data-what="mem-set"]');
    await page.screenshot({ path: join(OUT, 'history.png') });

    await page.goto(`${base}/tokens`);
    await page.waitForSelector('tr[data-token]');
    await page.screenshot({ path: join(OUT, 'tokens.png') });

    await page.goto(`${base}/create`);
    await page.fill('textarea[aria-label="xl.cfg"]', 'name = "web2"\nmemory = 256\nvcpus = 2\nmemroy = 512\n');
    await page.click('form.create-form button[type=submit]');
    await page.waitForSelector('[data-create-error]');
    await page.screenshot({ path: join(OUT, 'create-error.png') });

    // The same screens in the dark colour scheme, and on a 390 px phone.
    for (const [suffix, opts] of [
      ['dark', { viewport: { width: 1360, height: 860 }, colorScheme: 'dark' as const }],
      ['390', { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 }],
    ] as const) {
      const c = await browser.newContext(opts);
      const p = await c.newPage();
      await login(p, base, token);
      await p.waitForSelector('tr[data-domain="ci-runner"] [data-state="paused"]');
      await p.waitForTimeout(2500);
      await p.screenshot({ path: join(OUT, `list-${suffix}.png`) });
      await p.goto(`${base}/domains/web-frontend`);
      await p.waitForSelector('[data-chart="CPU"] canvas');
      await p.waitForTimeout(500);
      await p.screenshot({ path: join(OUT, `charts-${suffix}.png`) });
      await p.goto(`${base}/domains/web-frontend/devices`);
      await p.waitForSelector('tr[data-disk="xvda"] [data-rd-bytes]');
      await p.waitForTimeout(500);
      await p.screenshot({ path: join(OUT, `devices-${suffix}.png`) });
      await p.goto(`${base}/domains/web-frontend/console`);
      await waitForTerminalLine(p, /^hello-from-browser$/, 30_000);
      await p.screenshot({ path: join(OUT, `console-${suffix}.png`) });
      await c.close();
    }
    process.stdout.write(`screenshots written to ${OUT}\n`);
  } finally {
    await browser.close();
    await host.cleanup();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`screenshots: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
