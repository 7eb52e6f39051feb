// What the browser tests (browser_test.mjs, file_manager.mjs,
// file_manager_more.mjs) share: the assertion helpers, Debian's Chromium
// launched with no calls home, the dialog/script-error guard on a page, and
// the run-one-test frame (an overall bound, exit code 0/1, the browser
// closed at the end).

import { chromium } from 'playwright-core';

export const STEP_MS = 30_000; // one navigation, selector or upload step on a loaded 2-core machine

// Without the background-networking flags Chromium dials Google's hosts at
// every start and this machine's closed network refuses them
// (/work/.library/env/machines/cpp.md). Playwright adds a fresh
// --user-data-dir of its own.
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

export class CheckFailed extends Error {}

export function check(cond, what, detail) {
  if (!cond) throw new CheckFailed(detail === undefined ? what : `${what}: ${detail}`);
  console.log(`  ok  ${what}`);
}

// Strict equality for primitives; objects and arrays compare by their JSON.
export function eq(actual, expected, what) {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  const same = actual === expected
    || (typeof actual === 'object' && actual !== null && typeof expected === 'object' && expected !== null && a === e);
  check(same, what, `got ${a}, want ${e}`);
}

// Every dialog (alert, confirm, prompt, beforeunload) the page opens is
// recorded in `problems` and dismissed: the pages must never open one, and an
// injected name would. A script error is recorded too when `scriptErrorsFail`,
// else only logged.
export function guardPage(page, problems, { scriptErrorsFail = false } = {}) {
  page.on('dialog', (d) => {
    problems.push(`a ${d.type()} dialog opened: ${d.message()}`);
    console.error(`  FAIL a ${d.type()} dialog opened: ${JSON.stringify(d.message())}`);
    d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => {
    if (scriptErrorsFail) problems.push(`page error: ${e.message}`);
    console.log(`      page error: ${e.message}`);
  });
  return page;
}

// Runs `body(browser)` against a freshly launched Chromium within
// `overallMs` (the Python side kills the process a little later), prints
// FAIL and the reason when it throws, calls `after()` either way, closes the
// browser and exits 0 (passed) or 1.
export async function runWithBrowser(label, overallMs, body, after = () => {}) {
  const timer = setTimeout(() => {
    console.error(`FAIL: ${label} did not finish within ${overallMs / 1000} s`);
    // Playwright kills the browser it launched when this process exits.
    process.exit(1);
  }, overallMs);
  let browser;
  let code = 0;
  try {
    browser = await chromium.launch({
      executablePath: process.env.UVH_CHROMIUM || '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS,
      timeout: 60_000,
    });
    console.log(`chromium ${browser.version()}: ${label}`);
    await body(browser);
  } catch (e) {
    code = 1;
    console.error(e instanceof CheckFailed ? `FAIL: ${e.message}` : `FAIL: ${e.stack || e}`);
  } finally {
    try { after(); } catch (e) { console.error(`after ${label}: ${e}`); }
    if (browser) await browser.close().catch((e) => console.error(`closing the browser: ${e}`));
    clearTimeout(timer);
  }
  process.exit(code);
}
