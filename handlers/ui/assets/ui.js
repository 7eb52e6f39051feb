// The listing page as a file manager (handlers/listing.cpp renders the
// page; handlers/ui/README-contract.md is the DOM the tests rely on).
//
// Without this script the page is the plain listing with the record form.
// With it: sorting by name, size and date, a filter box, and, when the
// server says writes are open (<body data-writes="open">, or "token" once
// the user gave an accepted token), uploads with progress and resume
// (upload.js), New folder (MKCOL), Rename (MOVE) and Delete (DELETE).
//
// Names never become markup: every element is built with createElement,
// textContent and setAttribute, and every URL segment is percent-encoded
// (the server's own hrefs from its JSON listing, encodeURIComponent for new
// names). No window.alert/confirm/prompt: messages go to #status and #error
// (role="alert"), confirmations are <dialog>s.
'use strict';

(() => {
  const table = document.getElementById('listing');
  if (!table || !window.uvhUpload) return;
  const U = window.uvhUpload;
  const tbody = table.tBodies[0];
  const dirPath = location.pathname;
  const TOKEN_KEY = 'uvhttpd-write-token';

  const page = {
    writes: document.body.dataset.writes || 'closed',
    token: null,
    writable: false,
    sortKey: 'name',
    sortDir: 1,
  };

  // ------------------------------------------------------------- helpers

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === false || v === null || v === undefined) continue;
      e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  // The same text as the server's human_size (handlers/listing.cpp).
  function humanSize(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let v = bytes / 1024;
    let u = 0;
    while (v >= 1024 && u < units.length - 1) {
      v /= 1024;
      u++;
    }
    return `${v.toFixed(1)} ${units[u]}`;
  }

  function displayTime(seconds) {
    const d = new Date(seconds * 1000);
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} `
      + `${p(d.getUTCHours())}:${p(d.getUTCMinutes())} UTC`;
  }

  const statusEl = el('p', { id: 'status', role: 'status' });
  const errorEl = el('p', { id: 'error', role: 'alert' });

  function say(text) {
    errorEl.textContent = '';
    statusEl.textContent = text;
  }

  function fail(text) {
    statusEl.textContent = '';
    errorEl.textContent = text;
  }

  function authHeaders() {
    return page.token ? { Authorization: `Bearer ${page.token}` } : {};
  }

  // A write from the page: same-origin fetch, so the browser sends Origin
  // and Sec-Fetch-Site and the server's write guard sees a same-origin
  // request. Resolves to the response; a network failure becomes a
  // message. credentials: 'omit' because the token travels in its own
  // header: with credentials, a 401 (whose WWW-Authenticate offers Basic)
  // would make the browser open its own password prompt and hold the
  // request until someone answers it (Fetch standard, HTTP-network-or-
  // cache fetch, the 401 step).
  async function write(method, url, headers) {
    let resp;
    try {
      resp = await fetch(url, {
        method, cache: 'no-store', credentials: 'omit', headers: Object.assign({}, authHeaders(), headers || {}),
      });
    } catch (e) {
      fail(`${method} failed: the server could not be reached`);
      return null;
    }
    if (resp.status === 401 && page.writes === 'token') {
      // The token stopped working (the server restarted with another).
      forgetToken();
      fail(await U.responseText(resp));
      return null;
    }
    return resp;
  }

  // The URL path of a row's entry (its link is relative to this page).
  function rowUrl(tr) {
    const a = tr.cells[0].querySelector('a');
    return new URL(a.getAttribute('href'), location.href).pathname;
  }

  function rowIsDir(tr) {
    return tr.dataset.type === 'dir';
  }

  function entryRows() {
    return Array.from(tbody.rows).filter((tr) => tr.hasAttribute('data-name'));
  }

  // ------------------------------------------------ sorting and the filter

  const columns = [
    { key: 'name', th: table.tHead.rows[0].cells[0] },
    { key: 'size', th: table.tHead.rows[0].cells[1] },
    { key: 'mtime', th: table.tHead.rows[0].cells[2] },
  ];

  function setupSorting() {
    for (const col of columns) {
      const label = col.th.textContent;
      col.th.textContent = '';
      const b = el('button', { type: 'button' }, label);
      b.addEventListener('click', () => {
        if (page.sortKey === col.key) {
          page.sortDir = -page.sortDir;
        } else {
          page.sortKey = col.key;
          page.sortDir = 1;
        }
        sortRows();
      });
      col.th.append(b);
    }
    showSortState();
  }

  function showSortState() {
    for (const col of columns) {
      const active = col.key === page.sortKey;
      col.th.setAttribute('aria-sort', active ? (page.sortDir > 0 ? 'ascending' : 'descending') : 'none');
    }
  }

  // Directories stay before files, as the server lists them; names compare
  // by code unit, as the server's byte order does for them.
  function compareRows(a, b) {
    const ad = rowIsDir(a);
    const bd = rowIsDir(b);
    if (ad !== bd) return ad ? -1 : 1;
    const an = a.dataset.name;
    const bn = b.dataset.name;
    const byName = an < bn ? -1 : an > bn ? 1 : 0;
    let c = 0;
    if (page.sortKey === 'size') c = Number(a.dataset.size) - Number(b.dataset.size);
    if (page.sortKey === 'mtime') c = Number(a.dataset.mtime) - Number(b.dataset.mtime);
    return (c || byName) * page.sortDir;
  }

  function sortRows() {
    const rows = entryRows().sort(compareRows);
    for (const tr of rows) tbody.append(tr);
    showSortState();
  }

  const filterInput = el('input', { type: 'search', id: 'filter', autocomplete: 'off' });

  function applyFilter() {
    const q = filterInput.value.trim().toLowerCase();
    for (const tr of entryRows()) tr.hidden = q !== '' && !tr.dataset.name.toLowerCase().includes(q);
  }

  // --------------------------------------------- re-rendering the listing

  function buildRow(e) {
    const tr = el('tr', {
      'data-name': e.name, 'data-type': e.dir ? 'dir' : 'file', 'data-size': e.size, 'data-mtime': e.mtime,
    });
    tr.append(
      el('td', {}, el('a', { href: e.href }, e.dir ? `${e.name}/` : e.name)),
      el('td', { class: 'size' }, e.dir ? '-' : humanSize(e.size)),
      el('td', {}, displayTime(e.mtime)),
    );
    if (page.writable) addActions(tr);
    return tr;
  }

  // Fetches the JSON listing of this directory and replaces the rows.
  async function refresh() {
    let data;
    try {
      const resp = await fetch(`${dirPath}?format=json`, { cache: 'no-store', headers: { Accept: 'application/json' } });
      if (!resp.ok) throw new Error(await U.responseText(resp));
      data = await resp.json();
    } catch (e) {
      fail(`Could not reload the listing: ${e.message || e}`);
      return;
    }
    const focused = document.activeElement && tbody.contains(document.activeElement)
      ? document.activeElement.closest('tr').dataset.name : null;
    for (const tr of entryRows()) tr.remove();
    for (const x of data.entries || []) {
      const mtime = Math.floor(Date.parse(x.modified) / 1000) || 0;
      tbody.append(buildRow({ name: x.name, dir: x.type === 'directory', size: x.size, mtime, href: x.href }));
    }
    sortRows();
    applyFilter();
    if (focused !== null) focusRow(focused);
  }

  function focusRow(name) {
    const tr = entryRows().find((r) => r.dataset.name === name);
    if (tr) tr.cells[0].querySelector('a').focus();
  }

  // ------------------------------------------------------- the dialogs

  function dialog(id, title, fields, submitLabel) {
    const heading = el('h2', { id: `${id}-title` }, title);
    const form = el('form', { method: 'dialog' }, heading, ...fields);
    const cancel = el('button', { type: 'button' }, 'Cancel');
    const submit = el('button', { type: 'submit' }, submitLabel);
    form.append(el('div', { class: 'buttons' }, cancel, submit));
    const d = el('dialog', { id, 'aria-labelledby': `${id}-title` }, form);
    cancel.addEventListener('click', () => d.close());
    return { d, form, cancel, submit };
  }

  function nameProblem(name) {
    if (name === '' || name === '.' || name === '..') return 'Give a name.';
    if (name.includes('/')) return 'A name cannot contain "/".';
    if (name.startsWith('.')) return 'Names starting with "." are hidden by the server.';
    return null;
  }

  const folderInput = el('input', { id: 'folder-name', required: true, autocomplete: 'off' });
  const folder = dialog('folder-dialog', 'New folder',
    [el('label', { for: 'folder-name' }, 'Folder name'), folderInput], 'Create');
  folder.form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = folderInput.value;
    folder.d.close();
    const problem = nameProblem(name);
    if (problem) return fail(problem);
    const resp = await write('MKCOL', `${dirPath}${encodeURIComponent(name)}/`);
    if (!resp) return;
    if (resp.status === 201) {
      say(`Created the folder "${name}".`);
    } else if (resp.status === 405) {
      fail(`"${name}" already exists.`);
    } else {
      fail(await U.responseText(resp));
    }
    await refresh();
    focusRow(name);
  });

  const renameInput = el('input', { id: 'rename-name', required: true, autocomplete: 'off' });
  const rename = dialog('rename-dialog', 'Rename',
    [el('label', { for: 'rename-name' }, 'New name'), renameInput], 'Rename');
  let renaming = null;
  rename.form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const tr = renaming;
    const name = renameInput.value;
    rename.d.close();
    if (!tr) return;
    const old = tr.dataset.name;
    if (name === old) return;
    const problem = nameProblem(name);
    if (problem) return fail(problem);
    const dir = rowIsDir(tr);
    const dest = new URL(`${dirPath}${encodeURIComponent(name)}${dir ? '/' : ''}`, location.href).href;
    const resp = await write('MOVE', rowUrl(tr), { Destination: dest, Overwrite: 'F' });
    if (!resp) return;
    if (resp.status === 201 || resp.status === 204) {
      say(`Renamed "${old}" to "${name}".`);
    } else if (resp.status === 412) {
      fail(`"${name}" already exists.`);
    } else {
      fail(await U.responseText(resp));
    }
    await refresh();
    focusRow(resp.ok ? name : old);
  });

  const deleteText = el('p', { id: 'delete-text' });
  const del = dialog('delete-dialog', 'Delete', [deleteText], 'Delete');
  let deleting = null;
  del.form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const tr = deleting;
    del.d.close();
    if (!tr) return;
    const name = tr.dataset.name;
    const index = entryRows().indexOf(tr);
    const resp = await write('DELETE', rowUrl(tr));
    if (!resp) return;
    if (resp.status === 204 || resp.status === 200) {
      say(`Deleted "${name}".`);
    } else if (resp.status === 207) {
      fail(`"${name}" was deleted only in part: hidden files or the record store inside it stay.`);
    } else {
      fail(await U.responseText(resp));
    }
    await refresh();
    // The keyboard focus goes to the entry that took the deleted one's
    // place (or the one before it), not back to the top of the page.
    const rows = entryRows();
    const next = rows[Math.min(index, rows.length - 1)];
    if (next) focusRow(next.dataset.name);
    else filterInput.focus();
  });

  function openRename(tr) {
    renaming = tr;
    renameInput.value = tr.dataset.name;
    rename.d.showModal();
    renameInput.focus();
    renameInput.select();
  }

  function openDelete(tr) {
    deleting = tr;
    deleteText.textContent = rowIsDir(tr)
      ? `Delete the folder "${tr.dataset.name}" and everything in it?` : `Delete "${tr.dataset.name}"?`;
    del.d.showModal();
    del.cancel.focus();
  }

  // -------------------------------------------------- per-entry controls

  function addActions(tr) {
    const name = tr.dataset.name;
    const cell = el('td', { class: 'actions' });
    if (!rowIsDir(tr)) {
      cell.append(el('a', { href: tr.cells[0].querySelector('a').getAttribute('href'), download: name,
        'aria-label': `Download ${name}` }, 'Download'));
    }
    cell.append(
      el('button', { type: 'button', 'data-action': 'rename', 'aria-label': `Rename ${name}` }, 'Rename'),
      el('button', { type: 'button', 'data-action': 'delete', 'aria-label': `Delete ${name}` }, 'Delete'),
    );
    tr.append(cell);
  }

  tbody.addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-action]');
    if (!b || !page.writable) return;
    const tr = b.closest('tr');
    if (b.dataset.action === 'rename') openRename(tr);
    if (b.dataset.action === 'delete') openDelete(tr);
  });

  // ------------------------------------------------------------ uploads

  const uploadsUi = window.uvhUploadList({
    el, humanSize, say, fail, write, authHeaders, dirPath,
    status: (text) => { statusEl.textContent = text; },
    refresh: () => refresh(),
    unauthorized: () => { if (page.writes === 'token') forgetToken(); },
  });

  // ----------------------------------------------------- the manager region

  function buildManager() {
    const files = el('input', { type: 'file', id: 'upload-files', multiple: true });
    const folderPick = el('input', { type: 'file', id: 'upload-folder', webkitdirectory: true, multiple: true });
    const newFolder = el('button', { type: 'button', id: 'new-folder' }, 'New folder');
    const zone = el('div', { id: 'dropzone' },
      el('p', {}, 'Drop files or folders here, or choose them:'),
      el('div', { class: 'pick' }, el('label', { for: 'upload-files' }, 'Upload files'), files),
      el('div', { class: 'pick' }, el('label', { for: 'upload-folder' }, 'Upload a folder'), folderPick),
      newFolder);
    const section = el('section', { id: 'manager', 'aria-labelledby': 'manager-title' },
      el('h2', { id: 'manager-title' }, 'Manage files'),
      zone,
      uploadsUi.totalRow,
      uploadsUi.list, folder.d, rename.d, del.d);

    files.addEventListener('change', () => {
      uploadsUi.uploadSet(U.fromFileList(Array.from(files.files)));
      files.value = '';
    });
    folderPick.addEventListener('change', () => {
      uploadsUi.uploadSet(U.fromFileList(Array.from(folderPick.files)));
      folderPick.value = '';
    });
    newFolder.addEventListener('click', () => {
      folderInput.value = '';
      folder.d.showModal();
      folderInput.focus();
    });
    // A drop anywhere on the page uploads (a file dropped beside the zone
    // would otherwise replace the page with that file).
    const carriesFiles = (ev) => ev.dataTransfer && Array.from(ev.dataTransfer.types || []).includes('Files');
    document.addEventListener('dragover', (ev) => {
      if (!page.writable || !carriesFiles(ev)) return;
      ev.preventDefault();
      ev.dataTransfer.dropEffect = 'copy';
      zone.classList.add('over');
    });
    document.addEventListener('dragleave', (ev) => {
      if (!ev.relatedTarget) zone.classList.remove('over');
    });
    document.addEventListener('drop', async (ev) => {
      if (!page.writable || !carriesFiles(ev)) return;
      ev.preventDefault();
      zone.classList.remove('over');
      try {
        uploadsUi.uploadSet(await U.fromDataTransfer(ev.dataTransfer));
      } catch (e) {
        fail(`Could not read the dropped items: ${e.message || e}`);
      }
    });
    return section;
  }

  const manager = { section: null };

  function showManager() {
    page.writable = true;
    if (!manager.section) manager.section = buildManager();
    toolbar.after(manager.section);
    const th = el('th', { class: 'actions' }, el('span', { class: 'visually-hidden' }, 'Actions'));
    table.tHead.rows[0].append(th);
    for (const tr of Array.from(tbody.rows)) {
      if (tr.hasAttribute('data-name')) addActions(tr);
      else tr.append(el('td'));
    }
    uploadsUi.showPending();
  }

  function hideManager() {
    page.writable = false;
    if (manager.section) manager.section.remove();
    for (const c of table.querySelectorAll('.actions')) c.remove();
    for (const tr of Array.from(tbody.rows)) if (!tr.hasAttribute('data-name') && tr.cells.length > 3) tr.cells[3].remove();
  }

  // ------------------------------------------------------------ the token

  // Whether the server takes `token` for writes. The probe is a tus
  // termination of an upload id that cannot exist (all zeros: ids are 128
  // random bits): a write the router checks like any other (token, Host,
  // Origin), which changes nothing. 404 means the token passed.
  async function tokenAccepted(token) {
    const resp = await fetch('/.uvhttpd-uploads/00000000000000000000000000000000', {
      method: 'DELETE', cache: 'no-store', credentials: 'omit',
      headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}` },
    });
    if (resp.status === 404 || resp.status === 410 || resp.status === 204) return null;
    return U.responseText(resp);
  }

  const tokenInput = el('input', { type: 'password', id: 'token', required: true, autocomplete: 'current-password' });
  const tokenForm = el('form', { id: 'token-form' },
    el('label', { for: 'token' }, 'Write token'), tokenInput, el('button', { type: 'submit' }, 'Unlock'));

  tokenForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = tokenInput.value;
    let problem;
    try {
      problem = await tokenAccepted(token);
    } catch (e) {
      problem = 'The server could not be reached.';
    }
    if (problem) {
      fail(`Write token refused: ${problem}`);
      tokenInput.select();
      return;
    }
    tokenInput.value = '';
    unlock(token);
    say('Unlocked: writes are open for this tab.');
  });

  // With a token, a button in the manager forgets it for this tab.
  const lockButton = el('button', { type: 'button', id: 'forget-token' }, 'Forget the token');
  lockButton.addEventListener('click', () => {
    forgetToken();
    say('The token is forgotten: writes are locked again.');
    tokenInput.focus();
  });

  function unlock(token) {
    page.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    tokenForm.remove();
    showManager();
    manager.section.querySelector('h2').after(lockButton);
  }

  function forgetToken() {
    page.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    hideManager();
    toolbar.after(tokenForm);
  }

  // ------------------------------------------------------------- start

  const toolbar = el('div', { class: 'toolbar' },
    el('label', { for: 'filter' }, 'Filter'), filterInput);
  filterInput.addEventListener('input', applyFilter);
  document.querySelector('h1').after(toolbar);
  toolbar.after(statusEl, errorEl);
  setupSorting();

  if (page.writes === 'open') {
    showManager();
  } else if (page.writes === 'token') {
    const saved = sessionStorage.getItem(TOKEN_KEY);
    toolbar.after(tokenForm);
    if (saved) {
      tokenAccepted(saved).then((problem) => {
        if (problem) {
          sessionStorage.removeItem(TOKEN_KEY);
          fail(`The saved token was not accepted: ${problem}`);
        } else {
          unlock(saved);
        }
      }, () => fail('The server could not be reached.'));
    }
  }
})();
