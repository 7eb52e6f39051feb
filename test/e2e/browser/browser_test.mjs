// Headless Chromium against a running uvhttpd: the directory listing, its
// record form and the success page, revalidation under --cache-control
// no-cache, and a compressed page, script and listing. Started by test/e2e/test_browser.py, which
// builds the site, starts the server and checks its side afterwards.
//
//   node browser_test.mjs URL ARTIFACT_DIR
//
// URL is the server's root ("http://127.0.0.1:PORT/"). Screenshots go to
// ARTIFACT_DIR. Exits 0 when every check passed, 1 with a line for each
// failed check (a failure ends its own section, the other sections still
// run), 2 on bad arguments. Every wait is bounded; nothing sleeps.

import fs from 'node:fs';
import path from 'node:path';
import { CheckFailed, STEP_MS, check, eq, guardPage, runWithBrowser } from './lib.mjs';

const OVERALL_MS = 150_000; // test_browser.py kills us at 180 s

const MIS = '17';
const NAME = 'Akshay';
const EMAIL = 'akshay@gmail.com';
const RECORD = 'mis=17&name=Akshay&email=akshay%40gmail.com';
const ESCAPED_NAME = 'a b&c.txt';
const ESCAPED_BODY = 'ampersand and space\n';
const TAG_NAME_FILE = '<b>not bold<b>.txt'; // a file name cannot hold '/'
const RECORD_FORM = 'form[action="/database.txt"]';

// Runs fn; a failure is reported and collected, and the caller goes on.
async function soft(failures, fn) {
  try {
    await fn();
  } catch (e) {
    const msg = e instanceof CheckFailed ? e.message : String(e.stack || e);
    console.error(`  FAIL ${msg}`);
    failures.push(msg);
  }
}

// Clicks something that navigates and waits until the new document has
// loaded at `expectedUrl`.
async function clickAndWait(page, locator, expectedUrl) {
  await Promise.all([
    page.waitForURL(expectedUrl, { timeout: STEP_MS, waitUntil: 'load' }),
    locator.click({ timeout: STEP_MS }),
  ]);
  eq(page.url(), expectedUrl, `navigated to ${expectedUrl}`);
}

// The links of a listing's table, in order, as [visible text, raw href].
// (The first cell's: with writes open, the page's script adds a Download
// link per file in the last cell.)
async function listingLinks(page) {
  return page.locator('table tbody td:first-child a').evaluateAll(
    (as) => as.map((a) => [a.textContent, a.getAttribute('href')]));
}

async function testListing(page, base, artifacts, shots) {
  console.log('listing');
  const resp = await page.goto(base, { timeout: STEP_MS, waitUntil: 'load' });
  eq(resp.status(), 200, 'GET / is 200');
  check((resp.headers()['content-type'] || '').startsWith('text/html'), 'GET / is text/html',
    resp.headers()['content-type']);
  eq(await page.title(), 'Index of /', 'title');
  eq(await page.locator('h1').innerText({ timeout: STEP_MS }), 'Index of /', 'heading');

  const links = await listingLinks(page);
  const names = links.map(([text]) => text);
  console.log(`      entries: ${JSON.stringify(names)}`);
  eq(names[0], 'sub/', 'the directory is listed first');
  const firstFile = names.findIndex((n) => !n.endsWith('/'));
  const lastDir = names.map((n) => n.endsWith('/')).lastIndexOf(true);
  check(firstFile > lastDir, 'directories before files', JSON.stringify(names));
  for (const n of ['hello.txt', 'style.css', ESCAPED_NAME, TAG_NAME_FILE]) {
    check(names.includes(n), `"${n}" is listed as text`, JSON.stringify(names));
  }
  check(!names.includes('../'), 'no ../ at the root', JSON.stringify(names));
  // Had the name not been escaped, its <b> would be an element.
  eq(await page.locator('table b').count(), 0, 'a name with <b> stays text');

  const escaped = links.find(([text]) => text === ESCAPED_NAME);
  check(!/[ &]/.test(escaped[1]), `the href of "${ESCAPED_NAME}" is percent-encoded`, escaped[1]);
  eq(decodeURIComponent(escaped[1]), ESCAPED_NAME, `the href of "${ESCAPED_NAME}" decodes to the name`);
  const tag = links.find(([text]) => text === TAG_NAME_FILE);
  check(!/[<>" ]/.test(tag[1]), `the href of "${TAG_NAME_FILE}" is percent-encoded`, tag[1]);

  // The form the seed had, with the browser's own validation. (The page's
  // script adds forms of its own: the file manager's dialogs.)
  const form = page.locator(RECORD_FORM);
  eq(await form.getAttribute('method'), 'post', 'form method');
  eq(await form.getAttribute('action'), '/database.txt', 'form action');
  eq(await page.locator(`${RECORD_FORM} input[name="mis"]`).getAttribute('type'), 'number', 'mis is a number input');
  eq(await page.locator(`${RECORD_FORM} input[name="name"]`).getAttribute('type'), 'text', 'name is a text input');
  eq(await page.locator(`${RECORD_FORM} input[name="email"]`).getAttribute('type'), 'email', 'email is an email input');
  check(await page.locator(`${RECORD_FORM} input[name="name"]`).evaluate((e) => e.required), 'name is required');
  check(await page.locator(`${RECORD_FORM} input[name="email"]`).evaluate((e) => e.required), 'email is required');
  eq(await page.locator(`${RECORD_FORM} [type="submit"]`).count(), 1, 'one submit button');
  check(!(await form.evaluate((f) => f.checkValidity())), 'the empty form does not validate');

  const shot = path.join(artifacts, 'browser-listing.png');
  await page.screenshot({ path: shot, fullPage: true, timeout: STEP_MS });
  shots.push(shot);

  // Follow the escaped link and read the file.
  await clickAndWait(page, page.locator('table tbody a', { hasText: ESCAPED_NAME }),
    new URL(escaped[1], base).href);
  eq((await page.locator('body').innerText({ timeout: STEP_MS })).trim(), ESCAPED_BODY.trim(),
    `the text of "${ESCAPED_NAME}"`);
  await page.goBack({ timeout: STEP_MS, waitUntil: 'load' });
  eq(page.url(), base, 'back at the root');

  await clickAndWait(page, page.locator('table tbody a', { hasText: 'not bold' }),
    new URL(tag[1], base).href);
  eq((await page.locator('body').innerText({ timeout: STEP_MS })).trim(), 'tag', `the text of "${TAG_NAME_FILE}"`);
  await page.goBack({ timeout: STEP_MS, waitUntil: 'load' });
  eq(page.url(), base, 'back at the root');
}

async function testNavigation(page, base) {
  console.log('navigation');
  await page.goto(base, { timeout: STEP_MS, waitUntil: 'load' });
  await clickAndWait(page, page.getByRole('link', { name: 'sub/', exact: true }), `${base}sub/`);
  eq(await page.title(), 'Index of /sub/', 'title of sub/');
  const links = await listingLinks(page);
  eq(JSON.stringify(links), JSON.stringify([['../', '../'], ['page.html', 'page.html']]), 'sub/ lists ../ and page.html');

  await clickAndWait(page, page.getByRole('link', { name: 'page.html', exact: true }), `${base}sub/page.html`);
  eq(await page.title(), 'Sub page', 'title of page.html');
  // The stylesheet is served as text/css (with nosniff, anything else would
  // be refused) and applied.
  eq(await page.locator('#h').evaluate((e) => getComputedStyle(e).color), 'rgb(0, 128, 0)',
    'style.css is applied');

  await clickAndWait(page, page.locator('#up'), base);
  eq(await page.title(), 'Index of /', 'the page\'s ../ leads back to the root');

  // And the listing's own ../ from sub/.
  await clickAndWait(page, page.getByRole('link', { name: 'sub/', exact: true }), `${base}sub/`);
  await clickAndWait(page, page.getByRole('link', { name: '../', exact: true }), base);
  eq(await page.title(), 'Index of /', 'the listing\'s ../ leads back to the root');
}

async function testForm(page, base, artifacts, shots, failures) {
  console.log('form');
  await page.goto(base, { timeout: STEP_MS, waitUntil: 'load' });
  await page.fill(`${RECORD_FORM} input[name="mis"]`, MIS, { timeout: STEP_MS });
  await page.fill(`${RECORD_FORM} input[name="name"]`, NAME, { timeout: STEP_MS });
  await page.fill(`${RECORD_FORM} input[name="email"]`, EMAIL, { timeout: STEP_MS });
  check(await page.locator(RECORD_FORM).evaluate((f) => f.checkValidity()), 'the filled form validates');

  const posted = page.waitForResponse(
    (r) => r.request().method() === 'POST' && r.url() === `${base}database.txt`, { timeout: STEP_MS });
  posted.catch(() => {}); // awaited below; if the click fails first, not an unhandled rejection
  await clickAndWait(page, page.locator(`${RECORD_FORM} [type="submit"]`), `${base}database.txt`);
  const resp = await posted;
  eq(resp.status(), 201, 'POST /database.txt is 201');
  eq(resp.headers()['location'], `/database.txt/${MIS}`, 'Location of the record');
  eq(resp.request().postData(), RECORD, 'the browser sent the form encoded');
  eq(await page.locator('h1').innerText({ timeout: STEP_MS }), 'Your response was saved successfully',
    'success message');
  const shot = path.join(artifacts, 'browser-saved.png');
  await page.screenshot({ path: shot, fullPage: true, timeout: STEP_MS });
  shots.push(shot);

  const back = await page.locator('a', { hasText: 'Back' }).getAttribute('href');
  eq(new URL(back, page.url()).href, base, 'the success page\'s Back link leads to the root');

  // Following the record link is a check of its own: when it fails, the
  // checks of database.txt below still run.
  await soft(failures, () => followRecordLink(page, base));

  const db = await page.goto(`${base}database.txt`, { timeout: STEP_MS, waitUntil: 'load' });
  eq(db.status(), 200, 'GET /database.txt is 200');
  const lines = (await page.locator('body').innerText({ timeout: STEP_MS })).split('\n');
  check(lines.includes(`${MIS} ${RECORD}`), 'database.txt holds the record line', JSON.stringify(lines));
}

// From the success page, the link to the record shows the record: a browser
// must display it, not offer it as a download.
async function followRecordLink(page, base) {
  const recordUrl = `${base}database.txt/${MIS}`;
  const link = page.locator(`a[href="/database.txt/${MIS}"]`);
  eq(await link.count(), 1, 'the success page links the record');
  try {
    await clickAndWait(page, link, recordUrl);
  } catch (e) {
    if (!String(e.message).includes('ERR_ABORTED')) throw e;
    // Chromium aborts a navigation whose response it downloads instead.
    const r = await page.request.get(recordUrl, {
      headers: { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' }, timeout: STEP_MS });
    throw new CheckFailed('the record link downloads the record instead of showing it: '
      + `GET ${recordUrl} with a browser's Accept answers ${r.status()} with Content-Type `
      + `${r.headers()['content-type']}, which Chromium does not display`);
  }
  eq((await page.locator('body').innerText({ timeout: STEP_MS })).trim(), RECORD, 'the record\'s text');
}

// With --cache-control no-cache the browser may keep a copy but must ask
// before using it: a reload and a fresh navigation to the same page each send
// If-None-Match with the ETag, and the server answers 304.
//
// Playwright's response event is not enough to see that: Chromium reports a
// revalidated subresource as 304 but a revalidated document as 200 (the
// cached one). So this listens to the DevTools protocol's ExtraInfo events,
// which carry the headers that went on the wire and the status that came
// back. test_browser.py also finds the 304s in the server's access log.
async function testRevalidation(browser, base) {
  console.log('revalidation');
  const pageUrl = `${base}sub/page.html`;
  const cssUrl = `${base}style.css`;
  // A context of its own starts with an empty cache, so the first load is
  // a plain 200.
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  context.setDefaultTimeout(STEP_MS);
  context.setDefaultNavigationTimeout(STEP_MS);
  try {
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    const url = new Map();     // requestId -> URL
    const sent = new Map();    // requestId -> request headers on the wire
    const status = new Map();  // requestId -> status on the wire
    let changed = () => {};
    const note = (map, id, v) => { map.set(id, v); changed(); };
    cdp.on('Network.requestWillBeSent', (e) => note(url, e.requestId, e.request.url));
    cdp.on('Network.requestWillBeSentExtraInfo', (e) => note(sent, e.requestId, e.headers));
    cdp.on('Network.responseReceivedExtraInfo', (e) => note(status, e.requestId, e.statusCode));
    await cdp.send('Network.enable');

    // What went over the wire for `u` since `since` (a set of request ids
    // already seen): resolves once its request headers and status are both
    // known (the ExtraInfo events come in any order, sometimes after 'load').
    const exchangeOf = (u, since) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        changed = () => {};
        reject(new CheckFailed(`no request for ${u} seen on the wire`));
      }, STEP_MS);
      changed = () => {
        for (const [id, v] of url) {
          if (v === u && !since.has(id) && sent.has(id) && status.has(id)) {
            // Done: later events are for the next waiter.
            changed = () => {};
            clearTimeout(timer);
            since.add(id);
            const h = Object.fromEntries(Object.entries(sent.get(id)).map(([k, x]) => [k.toLowerCase(), x]));
            resolve({ status: status.get(id), ifNoneMatch: h['if-none-match'] });
            return;
          }
        }
      };
      changed();
    });
    const seen = new Set();
    const load = async (how, fn) => {
      const resp = await fn();
      eq(await page.locator('#h').evaluate((e) => getComputedStyle(e).color), 'rgb(0, 128, 0)',
        `${how}: style.css applied`);
      const doc = await exchangeOf(pageUrl, seen);
      const css = await exchangeOf(cssUrl, seen);
      console.log(`      ${how}: page.html ${JSON.stringify(doc)}, style.css ${JSON.stringify(css)}`);
      return { resp, doc, css };
    };

    const first = await load('first load', () => page.goto(pageUrl, { timeout: STEP_MS, waitUntil: 'load' }));
    eq(first.doc.status, 200, 'first load: page.html is 200');
    eq(first.css.status, 200, 'first load: style.css is 200');
    const etag = first.resp.headers()['etag'];
    check(etag, 'page.html has an ETag');
    check(first.resp.headers()['last-modified'], 'page.html has a Last-Modified');
    eq(first.resp.headers()['cache-control'], 'no-cache', 'page.html has Cache-Control: no-cache');

    for (const [how, fn] of [
      ['reload', () => page.reload({ timeout: STEP_MS, waitUntil: 'load' })],
      ['navigation', () => page.goto(pageUrl, { timeout: STEP_MS, waitUntil: 'load' })],
    ]) {
      const { doc, css } = await load(how, fn);
      eq(doc.ifNoneMatch, etag, `${how}: page.html sent If-None-Match with its ETag`);
      eq(doc.status, 304, `${how}: page.html answered 304`);
      check(css.ifNoneMatch, `${how}: style.css sent If-None-Match`);
      eq(css.status, 304, `${how}: style.css answered 304`);
    }
  } finally {
    await context.close();
  }
}

// A page and its script arrive compressed (issue 12): Chromium sends
// Accept-Encoding with gzip and br (and zstd from Chromium 123); the server
// picks one, Chromium decodes it, the script runs and renders its line.
async function testCompressed(page, base, artifacts, shots) {
  console.log('compressed page and script');
  const codings = ['zstd', 'br', 'gzip'];
  const scriptUrl = `${base}zip/app.js`;
  const scriptResp = page.waitForResponse(scriptUrl, { timeout: STEP_MS });
  const resp = await page.goto(`${base}zip/`, { timeout: STEP_MS, waitUntil: 'load' });
  eq(resp.status(), 200, 'GET /zip/ is 200');
  const h = await resp.allHeaders();
  const sent = (await resp.request().allHeaders())['accept-encoding'] || '';
  check(codings.includes(h['content-encoding']), 'the page came compressed',
    `content-encoding ${h['content-encoding']}, Chromium sent Accept-Encoding: ${sent}`);
  eq(h['vary'], 'Accept-Encoding', 'the page says Vary: Accept-Encoding');
  check(/-(gz|br|zst)\d+"$/.test(h['etag'] || ''), 'the page has its coding\'s ETag', h['etag']);
  const js = await scriptResp;
  eq(js.status(), 200, 'app.js is 200');
  const jh = await js.allHeaders();
  check(codings.includes(jh['content-encoding']), 'the script came compressed', jh['content-encoding']);
  const text = await page.locator('#out').textContent({ timeout: STEP_MS });
  eq(text, 'script ran: 2000 items', 'the decoded script ran and rendered');
  const items = await page.locator('#list li').count();
  eq(items, 2000, 'the decoded page has all its items');
  const shot = path.join(artifacts, 'compressed.png');
  await page.screenshot({ path: shot });
  shots.push(shot);
  // The listing is compressed as it is streamed.
  const listing = await page.goto(base, { timeout: STEP_MS, waitUntil: 'load' });
  const lh = await listing.allHeaders();
  check(codings.includes(lh['content-encoding']), 'the listing came compressed', lh['content-encoding']);
  check(await page.locator('a[href="zip/"]').count() === 1, 'the decoded listing links zip/');
}

async function main() {
  const [base, artifacts] = process.argv.slice(2);
  if (!base || !artifacts || !/^http:\/\/[^/]+\/$/.test(base)) {
    console.error('usage: node browser_test.mjs http://HOST:PORT/ ARTIFACT_DIR');
    process.exit(2);
  }
  fs.mkdirSync(artifacts, { recursive: true });
  const shots = [];
  const failures = [];
  const problems = [];
  await runWithBrowser('browser test', OVERALL_MS, async (browser) => {
    const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
    context.setDefaultTimeout(STEP_MS);
    context.setDefaultNavigationTimeout(STEP_MS);
    const page = guardPage(await context.newPage(), problems);

    // Each section starts from a fresh navigation, so one that fails does
    // not hide the others' results.
    await soft(failures, () => testListing(page, base, artifacts, shots));
    await soft(failures, () => testNavigation(page, base));
    await soft(failures, () => testForm(page, base, artifacts, shots, failures));
    await soft(failures, () => testRevalidation(browser, base));
    await soft(failures, () => testCompressed(page, base, artifacts, shots));
    await soft(failures, async () => check(problems.length === 0, 'no alert/confirm/prompt opened', problems.join('; ')));
    if (failures.length) throw new CheckFailed(`${failures.length} check(s) failed:\n  ${failures.join('\n  ')}`);
    console.log('all browser checks passed');
  }, () => {
    for (const s of shots) console.log(`screenshot: ${s}`);
  });
}

main();
