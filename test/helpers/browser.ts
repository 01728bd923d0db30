// Headless Chromium (Debian's, never a downloaded build) driven by
// playwright-core, for the web UI's tests and screenshots.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { ROOT } from './host.ts';

export const CHROMIUM = process.env.XENODE_CHROMIUM ?? '/usr/bin/chromium';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** The built asset file names of a page entry ('index.html' or 'login.html'). */
export function entryAssets(entry: string): string[] {
  const m = JSON.parse(readFileSync(join(ROOT, 'web', 'dist', '.vite', 'manifest.json'), 'utf8')) as Record<
    string,
    { file: string; css?: string[] }
  >;
  const c = m[entry];
  return [c.file, ...(c.css ?? [])];
}

/** The terminal's visible lines (xterm's DOM renderer), spaces normalised. */
export function terminalLines(page: Page): Promise<string[]> {
  return page.evaluate(() =>
    [...document.querySelectorAll('.xterm-rows > div')].map((r) =>
      (r.textContent ?? '').replace(/\u00a0/g, ' ').trimEnd(),
    ),
  );
}

/** Wait until some visible terminal line satisfies `pred`. */
export async function waitForTerminalLine(page: Page, re: RegExp, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hit = (await terminalLines(page)).find((l) => re.test(l));
    if (hit !== undefined) return hit;
    if (Date.now() > deadline) {
      throw new Error(`terminal never showed ${re}; screen:\n${(await terminalLines(page)).join('\n')}`);
    }
    // xterm renders on animation frames; wait for the next DOM mutation of its rows.
    await page
      .waitForFunction(
        (n) => (document.querySelector('.xterm-rows')?.textContent ?? '').length !== n,
        (await page.evaluate(() => document.querySelector('.xterm-rows')?.textContent ?? '')).length,
        { timeout: Math.max(100, Math.min(5000, deadline - Date.now())) },
      )
      .catch(() => undefined);
  }
}

/** Log in through the login page as a user would. */
export async function login(page: Page, base: string, token: string): Promise<void> {
  await page.goto(`${base}/login`);
  await page.fill('#token', token);
  await page.click('#login button[type=submit]');
  await page.waitForURL(`${base}/`);
}
