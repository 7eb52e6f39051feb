// Headless Chromium drives the listing page's file manager (issue 17,
// handlers/ui/) against a running uvhttpd, and checks each step on disk:
// three files and a two-level folder uploaded through the file pickers
// (resumable uploads: a POST, then PATCH pieces of at most 8 MiB), their
// progress at 100 % and the listing refreshed; odd names; Cancel mid-way
// (the upload terminated on the server); New folder (MKCOL); Rename
// (MOVE), also onto a name that exists (412: "already exists"); Delete
// (DELETE after the confirmation dialog) of a file and of a folder. Any
// window.alert/confirm/prompt fails the test. Started by
// test/e2e/test_file_manager.py, which makes the files and the site, starts
// the server and checks the final state on disk again.
//
//   node file_manager.mjs URL ROOT SOURCE ARTIFACT_DIR
//
// ROOT is the served directory, SOURCE holds the files to upload (one.txt,
// two.bin, three.bin and the folder tree/). Exits 0 when every check
// passed, 1 otherwise, 2 on bad arguments. Every wait is bounded.

import fs from 'node:fs';
import path from 'node:path';
import { CheckFailed, STEP_MS, check, eq, guardPage, runWithBrowser } from './lib.mjs';

const OVERALL_MS = 100_000; // test_file_manager.py kills us at 130 s
const CHUNK = 8 * 1024 * 1024; // upload.js's piece size

function sameBytes(a, b) {
  return fs.existsSync(a) && fs.existsSync(b) && Buffer.compare(fs.readFileSync(a), fs.readFileSync(b)) === 0;
}

// Waits until #status says `want` (a string, or a RegExp) and #error is empty.
async function waitStatus(page, want, what) {
  const exact = typeof want === 'string';
  try {
    await page.waitForFunction(([w, src, flags]) => {
      const text = document.querySelector('#status').textContent;
      return (w !== null ? text === w : new RegExp(src, flags).test(text))
        && document.querySelector('#error').textContent === '';
    }, exact ? [want, '', ''] : [null, want.source, want.flags], { timeout: STEP_MS });
  } catch (e) {
    throw new CheckFailed(`${what}: #status says ${JSON.stringify(await page.locator('#status').textContent())}, `
      + `#error ${JSON.stringify(await page.locator('#error').textContent())}, want ${want}`);
  }
  console.log(`  ok  ${what}`);
}

// The names the table lists, from its rows' data-name.
function listed(page) {
  return page.locator('#listing tbody tr[data-name]').evaluateAll((rows) => rows.map((r) => r.dataset.name));
}

async function waitListed(page, name, present) {
  try {
    await page.waitForFunction(([n, p]) => {
      const names = Array.from(document.querySelectorAll('#listing tbody tr[data-name]'), (r) => r.dataset.name);
      return names.includes(n) === p;
    }, [name, present], { timeout: STEP_MS });
  } catch (e) {
    throw new CheckFailed(`${JSON.stringify(name)} ${present ? 'not' : 'still'} listed: `
      + `${JSON.stringify(await listed(page))}; #error says ${JSON.stringify(await page.locator('#error').textContent())}`);
  }
}

async function testUpload(page, root, source) {
  console.log('upload: three files and a two-level folder');
  const patches = [];
  page.on('request', (r) => {
    if (r.method() === 'PATCH') patches.push(Number(r.headers()['upload-offset']));
  });
  const files = ['one.txt', 'two.bin', 'three.bin'];
  const inFolder = ['tree/a.txt', 'tree/inner/b.bin'];
  await page.setInputFiles('#upload-files', files.map((f) => path.join(source, f)), { timeout: STEP_MS });
  await page.setInputFiles('#upload-folder', path.join(source, 'tree'), { timeout: STEP_MS });

  const all = [...files, ...inFolder];
  await page.waitForFunction((n) => {
    const items = document.querySelectorAll('#uploads li');
    return items.length === n && Array.from(items).every((li) => li.dataset.state === 'done');
  }, all.length, { timeout: STEP_MS });
  const items = await page.locator('#uploads li').evaluateAll((lis) => lis.map((li) => {
    const p = li.querySelector('progress');
    return { path: li.dataset.path, state: li.dataset.state, value: p.value, max: p.max };
  }));
  const paths = items.map((i) => i.path).sort();
  eq(JSON.stringify(paths), JSON.stringify(all.map((f) => `/${f}`).sort()), 'one list item per file, by URL path');
  for (const i of items) {
    const size = fs.statSync(path.join(source, i.path.slice(1))).size;
    check(i.value === i.max && i.max === Math.max(size, 1), `${i.path}: progress at 100 %`, JSON.stringify(i));
  }
  const total = await page.locator('#upload-total').evaluate((p) => ({ value: p.value, max: p.max }));
  const bytes = all.reduce((s, f) => s + fs.statSync(path.join(source, f)).size, 0);
  check(total.value === total.max && total.max === bytes, 'overall progress at 100 %', JSON.stringify(total));

  // The files and the folder are two sets; the folder's MKCOLs may let the
  // files end first, and then each set gets its own line.
  await waitStatus(page, /^Uploaded (5 files|2 files)\.$/, 'the status line says the uploads ended');
  check(!/Uploading/.test(await page.locator('#status').textContent()), 'no "Uploading" line left');
  for (const f of all) check(sameBytes(path.join(root, f), path.join(source, f)), `${f} arrived byte-identical`);
  check(fs.statSync(path.join(root, 'tree/inner')).isDirectory(), 'the folders were made');
  // three.bin is above one piece: two PATCHes, at 0 and at 8 MiB.
  check(patches.includes(CHUNK), 'a file above 8 MiB went in pieces', JSON.stringify(patches));
  check(fs.readdirSync(path.join(root, '.uvhttpd-uploads')).filter((n) => n.endsWith('.part')).length === 0,
    'no unfinished upload left on the server');

  for (const name of ['one.txt', 'two.bin', 'three.bin', 'tree']) await waitListed(page, name, true);
  const names = await listed(page);
  check(['one.txt', 'two.bin', 'three.bin', 'tree'].every((n) => names.includes(n)), 'the listing refreshed',
    JSON.stringify(names));
  eq(await page.locator('#listing tr[data-name="tree"]').getAttribute('data-type'), 'dir', 'tree is listed as a folder');
  eq(await page.locator('#listing tr[data-name="three.bin"]').getAttribute('data-size'),
    String(fs.statSync(path.join(source, 'three.bin')).size), 'the new row has the size in bytes');
}

// Names that HTML or a URL would misread, and one with a line break,
// which goes up in one PUT (the server cannot resume such a name).
async function testOddNames(page, root) {
  console.log('upload: names with markup, quotes, spaces and a line break');
  const odd = ['<b>x<b> & "q" \'s\'.txt', 'new\nline.txt', 'ünï cödé #1?.txt'];
  const before = await page.locator('#uploads li').count();
  await page.setInputFiles('#upload-files', odd.map((name, i) => ({
    name, mimeType: 'text/plain', buffer: Buffer.from(`odd ${i}\n`),
  })), { timeout: STEP_MS });
  await page.waitForFunction((n) => {
    const items = Array.from(document.querySelectorAll('#uploads li'));
    return items.length === n && items.every((li) => li.dataset.state === 'done');
  }, before + odd.length, { timeout: STEP_MS });
  for (const [i, name] of odd.entries()) {
    eq(fs.readFileSync(path.join(root, name), 'utf8'), `odd ${i}\n`, `${JSON.stringify(name)} arrived under its name`);
    await waitListed(page, name, true);
  }
  await waitStatus(page, 'Uploaded 3 files.', 'the status line counts the three uploads');
  eq(await page.locator('#listing b').count(), 0, 'no name became markup');
}

// Cancel mid-way: the second piece is held back (page.route) until the
// Cancel button was pressed; the page then terminates the upload (tus
// DELETE), and nothing of it stays on the server or in localStorage.
async function testCancel(page, root) {
  console.log('cancel an upload mid-way');
  let patches = 0;
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  await page.route('**/.uvhttpd-uploads/*', async (route) => {
    if (route.request().method() !== 'PATCH' || ++patches === 1) return route.continue();
    release(route);
    return undefined;
  });
  const terminated = page.waitForResponse((r) => r.request().method() === 'DELETE'
    && r.url().includes('/.uvhttpd-uploads/'), { timeout: STEP_MS });
  terminated.catch(() => {});
  await page.setInputFiles('#upload-files', path.join(page.source, 'big.bin'), { timeout: STEP_MS });
  const route = await held;
  const item = page.locator('#uploads li[data-path="/big.bin"]');
  eq(await item.getAttribute('data-state'), 'uploading', 'the upload is under way');
  check(fs.readdirSync(path.join(root, '.uvhttpd-uploads')).some((n) => n.endsWith('.part')),
    'its unfinished part is on the server');
  await item.getByRole('button', { name: /Cancel/ }).click();
  await page.waitForFunction(() => document.querySelector('#uploads li[data-path="/big.bin"]').dataset.state
    === 'cancelled', null, { timeout: STEP_MS });
  eq((await terminated).status(), 204, 'Cancel terminated the upload on the server (DELETE 204)');
  await route.abort().catch(() => {});
  await page.unroute('**/.uvhttpd-uploads/*');
  await waitStatus(page, 'No file uploaded: 1 cancelled.', 'the status line says the upload was cancelled');
  check(!fs.existsSync(path.join(root, 'big.bin')), 'nothing arrived under the name');
  check(!fs.readdirSync(path.join(root, '.uvhttpd-uploads')).some((n) => n.endsWith('.part')),
    'no unfinished part left on the server');
  const kept = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('uvhttpd-upload')));
  eq(JSON.stringify(kept), '[]', 'nothing kept for a resume');
  check(await item.getByRole('button', { name: /Cancel/ }).isHidden(), 'its Cancel button is gone');
}

async function testNewFolder(page, root) {
  console.log('new folder');
  await page.click('#new-folder', { timeout: STEP_MS });
  const dialog = page.locator('#folder-dialog');
  check(await dialog.evaluate((d) => d.open), 'the folder dialog is open');
  eq(await page.evaluate(() => document.activeElement.id), 'folder-name', 'the focus is in the name field');
  await page.getByLabel('Folder name').fill('New folder 1');
  await page.keyboard.press('Enter');
  await waitListed(page, 'New folder 1', true);
  check(fs.statSync(path.join(root, 'New folder 1')).isDirectory(), 'MKCOL made the folder on disk');
  check((await page.locator('#status').textContent()).includes('New folder 1'), 'a status line says so');
  check(!(await dialog.evaluate((d) => d.open)), 'the dialog closed');
}

async function testRename(page, root, source) {
  console.log('rename');
  await page.click('button[aria-label="Rename two.bin"]', { timeout: STEP_MS });
  eq(await page.locator('#rename-name').inputValue(), 'two.bin', 'the field holds the old name');
  await page.locator('#rename-name').fill('two renamed.bin');
  await page.locator('#rename-dialog button[type="submit"]').click();
  await waitListed(page, 'two renamed.bin', true);
  await waitListed(page, 'two.bin', false);
  check(sameBytes(path.join(root, 'two renamed.bin'), path.join(source, 'two.bin')), 'MOVE renamed it on disk');
  check(!fs.existsSync(path.join(root, 'two.bin')), 'the old name is gone from disk');
  const href = await page.locator('#listing tr[data-name="two renamed.bin"] td:first-child a').getAttribute('href');
  eq(href, 'two%20renamed.bin', 'the new row links the encoded name');

  // Onto a name that exists: Overwrite: F, so 412 and nothing changes.
  await page.click('button[aria-label="Rename three.bin"]', { timeout: STEP_MS });
  await page.locator('#rename-name').fill('existing.txt');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.getElementById('error').textContent.includes('already exists'),
    null, { timeout: STEP_MS });
  check(true, 'renaming onto an existing name says "already exists"');
  check(sameBytes(path.join(root, 'three.bin'), path.join(source, 'three.bin')), 'three.bin is unchanged');
  eq(fs.readFileSync(path.join(root, 'existing.txt'), 'utf8'), 'keep me\n', 'existing.txt is unchanged');
}

async function testDelete(page, root) {
  console.log('delete');
  // Cancel first: nothing happens.
  await page.click('button[aria-label="Delete one.txt"]', { timeout: STEP_MS });
  const dialog = page.locator('#delete-dialog');
  check(await dialog.evaluate((d) => d.open), 'the delete dialog asks first');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  check(!(await dialog.evaluate((d) => d.open)), 'Cancel closes it');
  check(fs.existsSync(path.join(root, 'one.txt')), 'Cancel deleted nothing');

  await page.click('button[aria-label="Delete one.txt"]', { timeout: STEP_MS });
  await dialog.getByRole('button', { name: 'Delete' }).click();
  await waitListed(page, 'one.txt', false);
  check(!fs.existsSync(path.join(root, 'one.txt')), 'DELETE removed the file from disk');

  await page.click('button[aria-label="Delete old-dir"]', { timeout: STEP_MS });
  await dialog.getByRole('button', { name: 'Delete' }).click();
  await waitListed(page, 'old-dir', false);
  check(!fs.existsSync(path.join(root, 'old-dir')), 'DELETE removed the folder and its file from disk');
}

async function main() {
  const [base, root, source, artifacts] = process.argv.slice(2);
  if (!base || !root || !source || !artifacts || !/^http:\/\/[^/]+\/$/.test(base)) {
    console.error('usage: node file_manager.mjs http://HOST:PORT/ ROOT SOURCE ARTIFACT_DIR');
    process.exit(2);
  }
  fs.mkdirSync(artifacts, { recursive: true });
  const problems = [];
  await runWithBrowser('file manager', OVERALL_MS, async (browser) => {
    const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
    context.setDefaultTimeout(STEP_MS);
    const page = guardPage(await context.newPage(), problems, { scriptErrorsFail: true });
    page.source = source;
    await page.goto(base, { timeout: STEP_MS, waitUntil: 'load' });
    eq(await page.locator('body').getAttribute('data-writes'), 'open', 'writes are open on loopback');
    await page.locator('#manager').waitFor({ timeout: STEP_MS });

    await testUpload(page, root, source);
    await testOddNames(page, root);
    await testCancel(page, root);
    await testNewFolder(page, root);
    await testRename(page, root, source);
    await testDelete(page, root);
    await page.screenshot({ path: path.join(artifacts, 'file-manager-test.png'), fullPage: true });
    check(problems.length === 0, 'no alert/confirm/prompt and no script error', problems.join('; '));
    console.log('all file manager checks passed');
  }, () => {
    if (problems.length) console.error(`  also: ${problems.join('; ')}`);
  });
}

main();
