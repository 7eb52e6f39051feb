// Headless Chromium against the listing page as a file manager (issue 17):
// the heavier cases. Started by test/e2e/test_file_manager_more.py, which
// builds the site, starts the server (on port 0, stopped by its PID) and
// checks the disk afterwards.
//
//   node file_manager_more.mjs SECTION URL ROOT ARTIFACT_DIR [JSON]
//
// SECTION is one of the functions in SECTIONS below; URL the server's root
// ("http://127.0.0.1:PORT/"); ROOT the served directory (the resume section
// reads the upload's state there); JSON the section's parameters. Prints an
// "ok" line per check and, last, one line "RESULT {json}" with what the
// Python side checks, also written to the parameter resultFile if given. Exits 0 when every check passed, 1 otherwise, 2 on bad arguments.
// Every wait is bounded; nothing sleeps to synchronise.
//
// The page's DOM contract (the ids, data-* attributes and labels used here)
// is the one handlers/ui/README-contract.md describes.

import fs from 'node:fs';
import path from 'node:path';
import { startProxy } from './cut_proxy.mjs';
import { CheckFailed, STEP_MS, check, eq, guardPage, runWithBrowser } from './lib.mjs';

const OVERALL_MS = 150_000; // test_file_manager_more.py kills us at 180 s

// ------------------------------------------------------------ page helpers

// A page whose every dialog (alert, confirm, prompt, beforeunload) is a
// failure: the page must never open one, and an injected name would.
async function newPage(context, dialogs) {
  return guardPage(await context.newPage(), dialogs);
}

async function goto(page, url) {
  const resp = await page.goto(url, { timeout: STEP_MS, waitUntil: 'load' });
  eq(resp.status(), 200, `GET ${new URL(url).pathname} is 200`);
  return resp;
}

// The entry rows the page shows, in order: [{name, type, text, href}].
async function rows(page, { visibleOnly = true } = {}) {
  return page.locator('#listing tr[data-name]').evaluateAll((trs, vis) => trs
    .filter((tr) => !vis || (tr.offsetParent !== null && getComputedStyle(tr).visibility !== 'hidden'))
    .map((tr) => {
      const a = tr.querySelector('td a[href]');
      const dl = tr.querySelector('a[download]');
      return {
        name: tr.dataset.name, type: tr.dataset.type, size: Number(tr.dataset.size),
        mtime: Number(tr.dataset.mtime), text: a ? a.textContent : null, href: a ? a.getAttribute('href') : null,
        download: dl ? [dl.getAttribute('href'), dl.getAttribute('download')] : null,
      };
    }), visibleOnly);
}

async function waitForRow(page, name, present = true) {
  await page.waitForFunction(([n, p]) => [...document.querySelectorAll('#listing tr[data-name]')]
    .some((tr) => tr.dataset.name === n) === p, [name, present], { timeout: STEP_MS });
}

// Waits until every entry of #uploads is done (at least `n` of them); an
// entry in "error" or "cancelled" fails at once with the page's #error.
async function waitUploadsDone(page, n) {
  const handle = await page.waitForFunction((want) => {
    const lis = [...document.querySelectorAll('#uploads li[data-state]')];
    const bad = lis.find((li) => li.dataset.state === 'error' || li.dataset.state === 'cancelled');
    if (bad) return { bad: `${bad.dataset.path}: ${bad.dataset.state}`, error: document.querySelector('#error')?.textContent };
    return lis.length >= want && lis.every((li) => li.dataset.state === 'done') ? { done: lis.length } : false;
  }, n, { timeout: STEP_MS * 2, polling: 100 });
  const r = await handle.jsonValue();
  check(!r.bad, `${n} upload(s) done`, JSON.stringify(r));
}

// What the controls of the manager look like now: which are in the DOM
// and visible.
async function controls(page) {
  return page.evaluate(() => {
    const shown = (el) => !!el && el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
    const q = (s) => document.querySelector(s);
    return {
      writes: document.body.dataset.writes,
      manager: shown(q('#manager')),
      uploadFiles: shown(q('#upload-files')) || shown(q('label[for="upload-files"]')),
      uploadFolder: shown(q('#upload-folder')) || shown(q('label[for="upload-folder"]')),
      newFolder: shown(q('#new-folder')),
      rowButtons: [...document.querySelectorAll('#listing [data-action]')].filter(shown).length,
      recordForm: !!q('form[action="/database.txt"]'),
      tokenForm: shown(q('#token-form')),
    };
  });
}

function controlsAbsent(c, why) {
  eq([c.manager, c.uploadFiles, c.uploadFolder, c.newFolder, c.rowButtons], [false, false, false, false, 0],
    `${why}: no manager, upload inputs, New folder, Rename or Delete`);
}

// The Rename or Delete button of the row `name` (found by its row's
// data-name: a CSS attribute selector cannot spell every name).
async function rowButton(page, action, name) {
  const all = page.locator('#listing tr[data-name]');
  const i = await all.evaluateAll((trs, n) => trs.findIndex((tr) => tr.dataset.name === n), name);
  check(i >= 0, `a row for ${JSON.stringify(name)}`);
  const b = all.nth(i).locator(`button[data-action="${action}"]`);
  const label = `${action === 'rename' ? 'Rename' : 'Delete'} ${name}`;
  eq(await b.getAttribute('aria-label'), label, `the ${action} button's label names the entry`);
  return b;
}

async function openRename(page, name, newName) {
  await (await rowButton(page, 'rename', name)).click({ timeout: STEP_MS });
  const dlg = page.locator('#rename-dialog');
  await dlg.waitFor({ state: 'visible', timeout: STEP_MS });
  eq(await page.locator('#rename-name').inputValue(), name, `the rename box is prefilled with ${JSON.stringify(name)}`);
  await page.locator('#rename-name').fill(newName);
  await dlg.getByRole('button', { name: 'Rename', exact: true }).click({ timeout: STEP_MS });
  await waitForRow(page, newName);
  await waitForRow(page, name, false);
}

// The page fetches `href` (as the link would) and returns the bytes as text.
async function download(page, href) {
  return page.evaluate(async (h) => {
    const r = await fetch(h, { cache: 'no-store' });
    return { status: r.status, text: await r.text() };
  }, href);
}

// --------------------------------------------------------------- sections

// 1. A 64 MiB upload cut mid-way, the page reloaded, the same file chosen
// again. The browser talks to the server through a small proxy in this
// process (startProxy) that cuts the upload's connection once half the
// file went through and holds every later upload request, so the page's
// own retries cannot finish it before the reload. The acknowledged offset
// is then the server's answer to a HEAD of the upload (which also takes the
// upload over, so it cannot move until the page resumes it).
async function resume(browser, { base, root, params, dialogs, result }) {
  const { file, size, target } = params;
  const server = new URL(base);
  const proxy = await startProxy(Number(server.port));
  try {
    const front = `http://127.0.0.1:${proxy.port}`;
    const dirUrl = `${front}${path.posix.dirname(target)}/`.replace(/\/+$/, '/');
    const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
    const page = await newPage(context, dialogs);
    await goto(page, dirUrl);
    eq((await controls(page)).manager, true, 'the manager is shown');

    // Every request the browser sends: method, URL, and from the headers
    // that went on the wire its body's length (Content-Length) and
    // Upload-Offset.
    const cdp = await context.newCDPSession(page);
    const bodies = new Map();  // requestId -> {method, url, length}
    cdp.on('Network.requestWillBeSent', (e) => {
      const b = bodies.get(e.requestId) || {};
      bodies.set(e.requestId, { ...b, method: e.request.method, url: e.request.url });
    });
    cdp.on('Network.requestWillBeSentExtraInfo', (e) => {
      const b = bodies.get(e.requestId) || {};
      const h = Object.fromEntries(Object.entries(e.headers).map(([k, v]) => [k.toLowerCase(), v]));
      bodies.set(e.requestId, { ...b, length: Number(h['content-length'] || 0), offset: h['upload-offset'] });
    });
    await cdp.send('Network.enable');

    const metrics0 = await uploadMetrics(base);
    proxy.cutAfter(Math.floor(size / 2));
    await page.setInputFiles('#upload-files', file, { timeout: STEP_MS });
    await proxy.cut;
    console.log(`      the proxy cut the upload after ${proxy.cutAt} bytes from the browser`);
    const li = page.locator('#uploads li[data-state]');
    check((await li.count()) === 1, 'one upload entry');
    const stateBefore = await li.first().getAttribute('data-state');
    check(stateBefore !== 'done', 'the upload did not finish before the reload', stateBefore);

    // Once the server has seen the cut (no request body in flight), a HEAD
    // reads the acknowledged offset and takes the upload over: nothing
    // older can move it after this.
    await until(async () => (await gauge(base, 'uvhttpd_uploads_in_flight')) === 0, 'the server to end the cut request');
    // The page retries after a network error (upload.js: a HEAD after a
    // delay); once that retry is held, the old page can no longer move.
    await until(async () => proxy.held >= 1, 'the page to retry (held by the proxy)');
    const id = await uploadId(root);
    const acked = await headOffset(base, id, root);
    console.log(`      the server acknowledged ${acked} of ${size} bytes before the reload`);
    check(acked > 0 && acked < size, 'the acknowledged offset is inside the file', `${acked} of ${size}`);

    // The reload: new connections pass again; the old page's held retry
    // goes with it.
    const mark = new Set(bodies.keys());
    const wire0 = proxy.fromBrowser;
    proxy.pass();
    await page.reload({ timeout: STEP_MS, waitUntil: 'load' });
    const paused = page.locator('#uploads li[data-state="paused"]');
    await paused.waitFor({ state: 'visible', timeout: STEP_MS });
    console.log(`      after the reload the page shows: ${JSON.stringify((await paused.innerText()).trim())}`);
    eq(await paused.getAttribute('data-path'), target, 'the reloaded page lists the upload as paused');
    const metrics1 = await uploadMetrics(base);
    const before = metrics1.upload_bytes_total - metrics0.upload_bytes_total;
    check(before >= acked, 'the server appended at least the acknowledged bytes before the reload', `${before} < ${acked}`);

    await page.setInputFiles('#upload-files', file, { timeout: STEP_MS });
    await waitUploadsDone(page, 1);
    await waitForRow(page, path.posix.basename(target));
    eq(await page.locator('#upload-total').evaluate((p) => p.value >= p.max && p.max > 0), true,
      'the overall progress reached 100%');

    const after = [...bodies].filter(([id]) => !mark.has(id)).map(([, b]) => b);
    const patches = after.filter((b) => b.method === 'PATCH');
    const sentBodies = after.reduce((n, b) => n + (b.length || 0), 0);
    const piece = Math.max(0, ...[...bodies].filter(([id]) => mark.has(id)).map(([, b]) => b.method === 'PATCH' ? b.length || 0 : 0));
    console.log(`      after the reload: ${patches.length} PATCH(es), ${sentBodies} body bytes sent, `
      + `${proxy.fromBrowser - wire0} bytes on the wire; largest piece before: ${piece}`);
    check(patches.length >= 1, 'the page resumed with PATCH');
    const firstOffset = patches[0] && Number(patches[0].offset);
    eq(firstOffset, acked, 'the first PATCH after the reload starts at the acknowledged offset');
    check(sentBodies >= size - acked, 'the rest of the file was sent after the reload', `${sentBodies} < ${size - acked}`);
    const metrics2 = await uploadMetrics(base);
    eq(metrics2.upload_bytes_total - metrics1.upload_bytes_total, size - acked,
      'the server appended exactly the rest after the reload');
    result.acked = acked;
    result.sent_after = sentBodies;
    result.wire_after = proxy.fromBrowser - wire0;
    result.piece = piece;
    result.first_offset = firstOffset;
    await context.close();
  } finally {
    proxy.close();
  }
}

// The upload resource of the only upload in ROOT/.uvhttpd-uploads.
async function uploadId(root) {
  const dir = path.join(root, '.uvhttpd-uploads');
  const ids = fs.readdirSync(dir).filter((n) => /^[0-9a-f]{32}\.state$/.test(n)).map((n) => n.slice(0, 32));
  eq(ids.length, 1, 'one upload in the uploads directory');
  return ids[0];
}

// HEAD of the upload in the dialect it was created in: its offset.
async function headOffset(base, id, root) {
  const state = fs.readFileSync(path.join(root, '.uvhttpd-uploads', `${id}.state`), 'utf8');
  const protocol = /^protocol=(.*)$/m.exec(state)?.[1];
  const headers = protocol === 'tus' ? { 'Tus-Resumable': '1.0.0' }
    : { 'Upload-Draft-Interop-Version': String(protocol).replace(/^ietf-?/, '') };
  const r = await fetch(`${base}.uvhttpd-uploads/${id}`, { method: 'HEAD', headers });
  check(r.status === 200 || r.status === 204, `HEAD of the upload (${protocol}) answers`, r.status);
  return Number(r.headers.get('upload-offset'));
}

async function gauge(base, name) {
  const text = await (await fetch(`${base}metrics`)).text();
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  if (!m) throw new CheckFailed(`the server does not report ${name}`);
  return Number(m[1]);
}

// Polls cond() (every 50 ms, a poll period, not a synchronisation) until it
// is true or STEP_MS pass.
async function until(cond, what) {
  const deadline = Date.now() + STEP_MS;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new CheckFailed(`waited ${STEP_MS / 1000} s for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function uploadMetrics(base) {
  const text = await (await fetch(`${base}metrics`)).text();
  const out = {};
  for (const m of text.matchAll(/^uvhttpd_resumable_(\w+) (\d+)$/gm)) out[m[1]] = Number(m[2]);
  check('upload_bytes_total' in out, 'the server counts upload bytes');
  return out;
}

// 2a. --read-only: the plain listing and the record form, no controls.
async function readOnly(browser, { base, dialogs }) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await newPage(context, dialogs);
  await goto(page, base);
  const c = await controls(page);
  eq(c.writes, 'closed', 'body data-writes is closed');
  controlsAbsent(c, '--read-only');
  eq(c.tokenForm, false, '--read-only: no token form');
  eq(c.recordForm, true, '--read-only: the record form is there');
  check((await rows(page)).some((r) => r.name === 'hello.txt'), '--read-only: the listing lists hello.txt');
  await context.close();
}

// 2b. --write-token: no controls until the right token is given; a wrong
// one (params.wrong) is a readable error first.
async function writeToken(browser, { base, params, dialogs }) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await newPage(context, dialogs);
  const auth = [];
  page.on('request', (r) => {
    if (!['GET', 'HEAD'].includes(r.method()) || r.url().includes('/.uvhttpd-uploads/')) {
      auth.push({ method: r.method(), url: r.url(), authorization: r.headers().authorization });
    }
  });
  await goto(page, base);
  let c = await controls(page);
  eq(c.writes, 'token', 'body data-writes is token');
  controlsAbsent(c, 'before the token');
  eq(c.tokenForm, true, 'the token form is shown');
  eq(c.recordForm, true, 'the record form is there');
  eq(await page.getByLabel('Write token').getAttribute('type'), 'password', 'the token box is a labelled password input');

  if (params.wrong) {
    // The server answers a wrong token 401 at once; ten seconds is plenty.
    await page.getByLabel('Write token').fill(`${params.token}-wrong`);
    await page.locator('#token-form').getByRole('button', { name: 'Unlock' }).click();
    const err = page.locator('#error[role="alert"]');
    const shown = await page.waitForFunction(() => (document.querySelector('#error')?.textContent || '').trim().length > 0,
      null, { timeout: 10_000 }).then(() => true, () => false);
    check(shown, 'a wrong token shows #error within 10 s',
      'nothing in #error (a fetch answered 401 with WWW-Authenticate: Basic waits for the browser\'s own login prompt)');
    check(await err.isVisible(), 'the #error is visible');
    const text = (await err.textContent()).trim();
    console.log(`      #error says: ${JSON.stringify(text)}`);
    check(text.length >= 8 && !/[<>{}]/.test(text), 'the error is a readable sentence', text);
    controlsAbsent(await controls(page), 'after a wrong token');
  }

  await page.getByLabel('Write token').fill(params.token);
  await page.locator('#token-form').getByRole('button', { name: 'Unlock' }).click();
  await page.locator('#manager').waitFor({ state: 'visible', timeout: STEP_MS });
  c = await controls(page);
  eq([c.manager, c.uploadFiles, c.newFolder, c.rowButtons > 0], [true, true, true, true],
    'the right token shows the manager and the row buttons');
  eq(await page.evaluate(() => (document.querySelector('#error')?.textContent || '').trim()), '',
    'the error is gone');
  auth.length = 0;
  await page.setInputFiles('#upload-files', params.file, { timeout: STEP_MS });
  await waitUploadsDone(page, 1);
  await waitForRow(page, path.basename(params.file));
  const writes = auth.filter((a) => a.method !== 'GET');
  check(writes.length >= 1, 'the upload made write requests', JSON.stringify(auth));
  check(writes.every((a) => a.authorization === `Bearer ${params.token}`),
    'every upload request carried Authorization: Bearer', JSON.stringify(writes));
  // The token is kept for the session: a reload keeps the manager.
  await page.reload({ timeout: STEP_MS, waitUntil: 'load' });
  await page.locator('#manager').waitFor({ state: 'visible', timeout: STEP_MS });
  console.log('  ok  the token survives a reload (sessionStorage)');
  await context.close();
}

// 3. Hostile names render as text, their links download their own bytes;
// the same after a rename through the page and with the filter typed.
async function hostile(browser, { base, params, dialogs }) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await newPage(context, dialogs);
  const dir = `${base}hostile/`;
  await goto(page, dir);
  const files = { ...params.files };
  const checkNames = async (names, when) => {
    const rs = await rows(page);
    for (const name of names) {
      const r = rs.find((x) => x.name === name);
      check(r, `${when}: a row for ${JSON.stringify(name)}`, JSON.stringify(rs.map((x) => x.name)));
      eq(r.text, name, `${when}: the row of ${JSON.stringify(name)} shows the name as text`);
      check(!/[<>"\s]/.test(r.href), `${when}: its href is percent-encoded`, JSON.stringify(r.href));
      const got = await download(page, r.href);
      eq([got.status, got.text], [200, files[name]], `${when}: its link downloads its own bytes`);
      if (r.download) eq(r.download, [r.href, name], `${when}: its Download link has the same href and the name`);
    }
    eq(await page.locator('#listing img, #listing svg, #listing script, #listing iframe').count(), 0,
      `${when}: no element made from a name`);
  };
  await checkNames(Object.keys(params.files), 'listing');

  await openRename(page, params.renameFrom, params.renameTo);
  files[params.renameTo] = files[params.renameFrom];
  delete files[params.renameFrom];
  await checkNames([params.renameTo], 'after a rename to a hostile name');

  // Delete through the page: the DELETE's URL must name this file.
  const del = params.deleteName;
  await (await rowButton(page, 'delete', del)).click({ timeout: STEP_MS });
  const dd = page.locator('#delete-dialog');
  await dd.waitFor({ state: 'visible', timeout: STEP_MS });
  await dd.getByRole('button', { name: 'Delete', exact: true }).click();
  await waitForRow(page, del, false);
  console.log(`  ok  ${JSON.stringify(del)} deleted through the page`);
  delete files[del];

  for (const [typed, expect] of params.filters) {
    await page.locator('#filter').fill(typed);
    await page.waitForFunction((want) => {
      const vis = [...document.querySelectorAll('#listing tr[data-name]')].filter((tr) => tr.offsetParent !== null);
      return vis.length === want;
    }, expect.length, { timeout: STEP_MS });
    const shown = (await rows(page)).map((r) => r.name).sort();
    eq(shown, [...expect].sort(), `filter ${JSON.stringify(typed)} shows exactly the matching names`);
    await checkNames(expect, `filtered by ${JSON.stringify(typed)}`);
  }
  await page.locator('#filter').fill('');
  eq(dialogs.length, 0, 'no dialog opened');
  await context.close();
}

// 4. Keyboard only: one upload and one rename.
async function keyboard(browser, { base, params, dialogs }) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await newPage(context, dialogs);
  // Any mouse event on the page is a failure of this section.
  await page.addInitScript(() => {
    window.__mouse = 0;
    for (const t of ['mousedown', 'mouseup', 'pointerdown']) {
      addEventListener(t, (e) => { if (e.isTrusted) window.__mouse += 1; }, true);
    }
  });
  // The chooser a key opens (Playwright intercepts it: a native dialog
  // cannot be driven); listening from the start turns the interception on
  // before any key is pressed.
  let chosen;
  const chooser = new Promise((resolve) => { chosen = resolve; });
  page.on('filechooser', (fc) => chosen(fc));
  const dir = `${base}kbd/`;
  await goto(page, dir);
  const tabTo = async (what, pred, arg) => {
    for (let i = 0; i < 80; i++) {
      await page.keyboard.press('Tab');
      if (await page.evaluate(pred, arg)) {
        console.log(`  ok  ${what} reached with ${i + 1} Tab(s)`);
        return;
      }
    }
    throw new CheckFailed(`${what} not reached with 80 Tabs`);
  };
  await tabTo('the "Upload files" input', () => document.activeElement?.id === 'upload-files');
  await page.keyboard.press('Space');
  const fc = await Promise.race([chooser, new Promise((r) => setTimeout(() => r(null), STEP_MS))]);
  check(fc, 'Space on the focused input opens the file chooser');
  await fc.setFiles(params.file);
  await waitUploadsDone(page, 1);
  await waitForRow(page, path.basename(params.file));

  await tabTo(`the Rename button of ${params.renameFrom}`,
    (n) => document.activeElement?.matches?.('button[data-action="rename"]')
      && document.activeElement.getAttribute('aria-label') === `Rename ${n}`, params.renameFrom);
  await page.keyboard.press('Enter');
  await page.locator('#rename-dialog').waitFor({ state: 'visible', timeout: STEP_MS });
  const focused = await page.evaluate(() => document.activeElement?.id);
  if (focused !== 'rename-name') {
    await tabTo('the New name box', () => document.activeElement?.id === 'rename-name');
  } else {
    console.log('  ok  the rename dialog focuses the New name box');
  }
  await page.keyboard.press('Control+A');
  await page.keyboard.type(params.renameTo);
  await page.keyboard.press('Enter');
  await waitForRow(page, params.renameTo);
  eq(await page.evaluate(() => window.__mouse), 0, 'no mouse event reached the page');
  await context.close();
}

// 5. JavaScript off: a plain listing whose links work, the record form, no
// manager.
async function noScript(browser, { base, params, dialogs }) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 }, javaScriptEnabled: false });
  const page = await newPage(context, dialogs);
  await goto(page, base);
  const names = await page.locator('#listing tr[data-name]').evaluateAll((trs) => trs.map((tr) => tr.dataset.name));
  eq([...names].sort(), [...params.names].sort(), 'every entry is listed');
  const manager = page.locator('#manager');
  check((await manager.count()) === 0 || !(await manager.isVisible()), 'no manager without JavaScript');
  eq(await page.locator('#listing [data-action]:visible').count(), 0, 'no Rename or Delete without JavaScript');
  eq(await page.locator('form[action="/database.txt"] [type="submit"]').count(), 1, 'the record form is there');
  const link = page.locator('#listing tr[data-name="hello.txt"] a[href]');
  await Promise.all([
    page.waitForURL(`${base}hello.txt`, { timeout: STEP_MS, waitUntil: 'load' }),
    link.click({ timeout: STEP_MS }),
  ]);
  eq((await page.locator('body').innerText()).trim(), params.hello.trim(), 'the link opens the file');
  await context.close();
}

// 6. Desktop, phone width and 200 % zoom: no horizontal overflow, the
// buttons visible; screenshots.
async function responsive(browser, { base, artifacts, params, dialogs, result }) {
  const shots = [];
  const views = [
    ['desktop', { viewport: { width: 1000, height: 640 } }],
    ['phone', { viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 }],
    // A 1280-pixel-wide window at 200 % zoom lays out 640 CSS pixels.
    ['zoom200', { viewport: { width: 640, height: 400 }, deviceScaleFactor: 2 }],
  ];
  for (const [name, opts] of views) {
    const context = await browser.newContext(opts);
    const page = await newPage(context, dialogs);
    await goto(page, base);
    await page.locator('#manager').waitFor({ state: 'visible', timeout: STEP_MS });
    const m = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
    }));
    check(m.scroll <= m.client, `${name}: no horizontal overflow`, JSON.stringify(m));
    const offscreen = await page.evaluate(() => {
      const w = document.documentElement.clientWidth;
      return [...document.querySelectorAll('#manager button, #manager label, #listing button, #listing th button, #filter')]
        .filter((el) => el.getClientRects().length > 0)
        .map((el) => [el.getAttribute('aria-label') || el.textContent.trim() || el.id, el.getBoundingClientRect()])
        .filter(([, r]) => r.left < 0 || r.right > w + 0.5 || r.width < 1 || r.height < 1)
        .map(([n, r]) => `${n} ${Math.round(r.left)}..${Math.round(r.right)}`);
    });
    eq(offscreen, [], `${name}: every button lies inside the width`);
    const visibleButtons = await page.locator('#listing button[data-action]:visible').count();
    const entries = await page.locator('#listing tr[data-name]').count();
    check(entries >= params.entries && visibleButtons === 2 * entries, `${name}: Rename and Delete shown for every entry`,
      `${visibleButtons} buttons, ${entries} entries`);
    check(await page.locator('#new-folder').isVisible(), `${name}: New folder shown`);
    if (name === 'desktop' && params.upload) {
      // The desktop picture shows a finished upload in the list.
      await page.setInputFiles('#upload-files', params.upload, { timeout: STEP_MS });
      await waitUploadsDone(page, 1);
      await waitForRow(page, path.basename(params.upload));
      await page.waitForFunction(() => document.querySelector('#status').textContent === 'Uploaded 1 file.', null, { timeout: STEP_MS });
      console.log('  ok  desktop: the status line says "Uploaded 1 file."');
    }
    const shot = path.join(artifacts, `file-manager-${name}.png`);
    await page.screenshot({ path: shot, fullPage: true, timeout: STEP_MS });
    shots.push(shot);
    if (name === 'desktop' && params.docs) {
      await page.screenshot({ path: params.docs, fullPage: true, timeout: STEP_MS });
      shots.push(params.docs);
    }
    await context.close();
  }
  result.screenshots = shots;
}

// 8. Sorting by name, size and date, and the filter.
async function sorting(browser, { base, params, dialogs }) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await newPage(context, dialogs);
  await goto(page, `${base}sort/`);
  const files = async () => (await rows(page)).filter((r) => r.type === 'file').map((r) => r.name);
  const dirsFirst = async (when) => {
    const types = (await rows(page)).map((r) => r.type);
    check(types.lastIndexOf('dir') < types.indexOf('file'), `${when}: directories before files`, JSON.stringify(types));
  };
  for (const [label, key] of [['Name', 'name'], ['Size', 'size'], ['Last modified', 'mtime']]) {
    const button = page.locator('#listing thead th > button').filter({ hasText: new RegExp(`^\\s*${label}\\s*$`) });
    const th = page.locator('#listing thead th:has(> button)').filter({ hasText: new RegExp(`^\\s*${label}\\s*$`) });
    for (const dir of ['ascending', 'descending']) {
      // Click until this column sorts in this direction (a column may start
      // either way); at most three clicks.
      for (let i = 0; i < 3 && (await th.getAttribute('aria-sort')) !== dir; i++) await button.click();
      eq(await th.getAttribute('aria-sort'), dir, `${label}: aria-sort ${dir}`);
      // aria-sort carries the state: the drawn arrow stays out of the name.
      eq(await page.locator('#listing thead').getByRole('button', { name: label, exact: true }).count(), 1,
        `${label} ${dir}: the sort button's accessible name is ${JSON.stringify(label)}`);
      const arrow = await button.evaluate((b) => getComputedStyle(b, '::after').content);
      check(arrow.includes(dir === 'ascending' ? '\u25B2' : '\u25BC'), `${label} ${dir}: the arrow is still drawn`, arrow);
      const want = params.order[key][dir];
      eq(await files(), want, `${label} ${dir}: the files in order`);
      await dirsFirst(`${label} ${dir}`);
      const others = await page.locator('#listing th[aria-sort]').evaluateAll((ths, me) =>
        ths.filter((t) => t.textContent.trim() !== me).map((t) => t.getAttribute('aria-sort')), label);
      check(others.every((s) => s === 'none'), `${label} ${dir}: the other columns say aria-sort none`, JSON.stringify(others));
    }
  }
  const sizes = await page.locator('#listing tr[data-name]').evaluateAll((trs) =>
    Object.fromEntries(trs.map((tr) => [tr.dataset.name, tr.cells[1].textContent.trim()])));
  for (const [name, text] of Object.entries(params.sizes)) eq(sizes[name], text, `the size of ${name} reads ${text}`);
  for (const [typed, expect] of params.filters) {
    await page.getByLabel('Filter').fill(typed);
    await page.waitForFunction((n) => [...document.querySelectorAll('#listing tr[data-name]')]
      .filter((tr) => tr.offsetParent !== null).length === n, expect.length, { timeout: STEP_MS });
    eq((await rows(page)).map((r) => r.name).sort(), [...expect].sort(), `filter ${JSON.stringify(typed)}`);
  }
  await page.getByLabel('Filter').fill('');
  await page.waitForFunction((n) => [...document.querySelectorAll('#listing tr[data-name]')]
    .filter((tr) => tr.offsetParent !== null).length === n, params.all, { timeout: STEP_MS });
  console.log('  ok  an empty filter shows every entry again');
  await context.close();
}

const SECTIONS = { resume, readOnly, writeToken, hostile, keyboard, noScript, responsive, sorting };

async function main() {
  const [section, base, root, artifacts, json] = process.argv.slice(2);
  if (!SECTIONS[section] || !/^http:\/\/[^/]+\/$/.test(base || '') || !root || !artifacts) {
    console.error(`usage: node file_manager_more.mjs ${Object.keys(SECTIONS).join('|')} URL ROOT ARTIFACT_DIR [JSON]`);
    process.exit(2);
  }
  fs.mkdirSync(artifacts, { recursive: true });
  const params = json ? JSON.parse(json) : {};
  const dialogs = [];
  const result = {};
  await runWithBrowser(section, OVERALL_MS, async (browser) => {
    await SECTIONS[section](browser, { base, root, artifacts, params, dialogs, result });
    if (dialogs.length) throw new CheckFailed(`dialogs opened: ${JSON.stringify(dialogs)}`);
    console.log(`${section}: all checks passed`);
  }, () => {
    console.log(`RESULT ${JSON.stringify(result)}`);
    if (params.resultFile) fs.writeFileSync(params.resultFile, JSON.stringify(result));
  });
}

main();
