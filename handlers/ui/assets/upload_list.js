// The page's list of uploads (ui.js puts it in #manager): one <li> per file
// with its progress, bytes, note and Cancel, the overall bar, the queue
// that runs a few uploads at a time (each a FileUpload of upload.js), the
// folders made first for a folder upload, and the uploads an earlier visit
// left unfinished, shown as paused until the same file is chosen again.
// handlers/ui/README-contract.md describes the DOM.
//
// Loaded after upload.js and before ui.js (all deferred); ui.js calls
// window.uvhUploadList(ctx) with the page's helpers: el, humanSize, say,
// fail, status (a status line that leaves #error alone), write,
// authHeaders, refresh, unauthorized (a write got 401), dirPath.
'use strict';

(() => {
  const CONCURRENT_UPLOADS = 3;

  window.uvhUploadList = (ctx) => {
    const U = window.uvhUpload;
    const {
      el, humanSize, say, fail, status, write, authHeaders, refresh, unauthorized, dirPath,
    } = ctx;

    const uploadList = el('ul', { id: 'uploads' });
    const total = el('progress', { id: 'upload-total', value: 0, max: 1 });
    const totalText = el('span', { id: 'upload-total-text' });
    const totalRow = el('div', { class: 'total', hidden: true },
      el('label', { for: 'upload-total' }, 'All uploads'), total, totalText);
    const uploads = [];  // every upload of this visit, for the total
    const queue = [];
    let running = 0;
    let refreshTimer = null;

    function scheduleRefresh() {
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(refresh, 200);
    }

    function updateTotal() {
      const live = uploads.filter((u) => u.state !== 'cancelled');
      const size = live.reduce((s, u) => s + u.size, 0);
      const sent = live.reduce((s, u) => s + u.sent, 0);
      const done = live.filter((u) => u.state === 'done').length;
      total.max = Math.max(size, 1);
      total.value = size === 0 ? (live.length && done === live.length ? 1 : 0) : sent;
      totalText.textContent = live.length
        ? `${done} of ${live.length} files, ${humanSize(sent)} of ${humanSize(size)}` : '';
      totalRow.hidden = uploads.length === 0;
    }

    // The list item of one upload: its path, progress, note and Cancel.
    function uploadItem(path, label, size) {
      const bar = el('progress', { value: 0, max: Math.max(size, 1), 'aria-label': `Upload of ${label}` });
      const cancel = el('button', { type: 'button', 'aria-label': `Cancel the upload of ${label}` }, 'Cancel');
      const note = el('span', { class: 'note' });
      const bytes = el('span', { class: 'bytes' });
      const li = el('li', { 'data-path': path, 'data-state': 'queued' },
        el('span', { class: 'path' }, label), cancel, bar, bytes, note);
      uploadList.append(li);
      const item = {
        li, bar, note, cancel, size, sent: 0, state: 'queued', upload: null, key: null,
        setState(state, text) {
          item.state = state;
          li.dataset.state = state;
          if (text !== undefined) note.textContent = text;
          if (state === 'done' || state === 'cancelled') cancel.hidden = true;
          updateTotal();
        },
        progress(sent) {
          item.sent = Math.min(sent, size);
          bar.value = size === 0 ? (item.state === 'done' ? 1 : 0) : item.sent;
          bytes.textContent = `${humanSize(item.sent)} of ${humanSize(size)}`;
          updateTotal();
        },
      };
      return item;
    }

    // Uploads a chosen or dropped set: the folders first (MKCOL; one that
    // exists is fine), then the files, a few at a time.
    async function uploadSet(set) {
      const hidden = (rel) => rel.split('/').some((s) => s.startsWith('.'));
      const files = set.files.filter((f) => !hidden(f.rel));
      const dirs = Array.from(set.dirs).filter((d) => !hidden(d));
      const skipped = set.files.length - files.length;
      dirs.sort((a, b) => a.split('/').length - b.split('/').length);
      for (const d of dirs) {
        const resp = await write('MKCOL', `${dirPath}${U.encodePath(d)}/`);
        if (!resp) return;
        if (resp.status !== 201 && resp.status !== 405) {
          fail(`Could not create the folder "${d}": ${await U.responseText(resp)}`);
          return;
        }
      }
      if (dirs.length) scheduleRefresh();
      const started = files.filter((f) => enqueue(f.file, `${dirPath}${U.encodePath(f.rel)}`, f.rel)).length;
      const notes = [];
      if (started) notes.push(`Uploading ${started} file${started === 1 ? '' : 's'}.`);
      if (files.length > started) notes.push(`${files.length - started} already being uploaded.`);
      if (skipped) notes.push(`Skipped ${skipped} hidden file(s): names starting with "." are never served.`);
      if (notes.length) say(notes.join(' '));
      pump();
    }

    function enqueue(file, path, label) {
      const key = U.storeKey(path, file.size, file.lastModified);
      // The same file chosen twice: a second upload would take the first
      // one's resource from it at every step.
      if (uploads.some((u) => u.upload && u.upload.key === key && ['queued', 'uploading', 'paused'].includes(u.state))) {
        return false;
      }
      let item = pending.get(key);
      if (item) {
        pending.delete(item.key);
      } else {
        item = uploadItem(path, label, file.size);
      }
      item.setState('queued', 'waiting');
      item.progress(0);
      item.upload = new U.FileUpload(file, path, authHeaders, {
        progress: (n) => item.progress(n),
        state: (s, text) => item.setState(s, text),
      });
      item.cancel.hidden = false;
      item.cancel.onclick = () => cancelItem(item);
      uploads.push(item);
      queue.push(item);
      updateTotal();
      return true;
    }

    async function cancelItem(item) {
      const i = queue.indexOf(item);
      if (i >= 0) queue.splice(i, 1);
      item.setState('cancelled', 'cancelled');
      // Taken off the queue with nothing running: no upload ends to say so.
      if (i >= 0 && running === 0 && queue.length === 0) summarize();
      if (item.upload) await item.upload.cancel();
      else if (item.url) await U.terminate(item.url, authHeaders());
      if (item.key) {
        localStorage.removeItem(item.key);
        pending.delete(item.key);
      }
    }

    function pump() {
      while (running < CONCURRENT_UPLOADS && queue.length) {
        const item = queue.shift();
        running++;
        run(item).finally(() => {
          running--;
          pump();
          if (running === 0 && queue.length === 0) summarize();
        });
      }
    }

    // One status line once every upload has ended, saying what became of
    // the uploads since the last such line (errors are in #error and on
    // their items, which the line leaves alone).
    function summarize() {
      const ended = uploads.filter((u) => !u.reported && ['done', 'error', 'cancelled'].includes(u.state));
      if (!ended.length) return;
      for (const u of ended) u.reported = true;
      const count = (state) => ended.filter((u) => u.state === state).length;
      const done = count('done'), failed = count('error'), cancelled = count('cancelled');
      const rest = [];
      if (failed) rest.push(`${failed} failed`);
      if (cancelled) rest.push(`${cancelled} cancelled`);
      const files = (n) => `${n} file${n === 1 ? '' : 's'}`;
      const line = done
        ? `Uploaded ${files(done)}${rest.map((r) => `, ${r}`).join('')}.`
        : `No file uploaded: ${rest.join(', ')}.`;
      if (failed) status(line);
      else say(line);
    }

    async function run(item) {
      item.setState('uploading', '');
      try {
        await item.upload.run();
        item.progress(item.size);
        item.setState('done', 'done');
        item.progress(item.size);
        scheduleRefresh();
      } catch (e) {
        if (item.state === 'cancelled') return;
        if (e instanceof U.HttpError && e.status === 401) unauthorized();
        item.setState('error', e.message || String(e));
        fail(`Upload of "${item.li.querySelector('.path').textContent}" failed: ${e.message || e}`);
      }
    }

    // Uploads left unfinished by an earlier visit (a reload, a crash): shown
    // as paused until the same file is chosen again.
    const pending = new Map();

    async function showPending() {
      for (const [key, v] of U.storedUploads()) {
        if (!v.path.startsWith(dirPath) || pending.has(key)) continue;
        let off = null;
        try {
          const resp = await fetch(v.url, {
            method: 'HEAD', cache: 'no-store', headers: Object.assign({ 'Tus-Resumable': '1.0.0' }, authHeaders()),
          });
          if (resp.ok) off = Number(resp.headers.get('upload-offset'));
          else if (resp.status === 404 || resp.status === 410) localStorage.removeItem(key);
        } catch (e) {
          off = null;
        }
        if (off === null || !Number.isFinite(off)) continue;
        let label = v.path.slice(dirPath.length);
        try {
          label = decodeURIComponent(label);
        } catch (e) {
          // keep it encoded
        }
        const item = uploadItem(v.path, label, v.size);
        item.key = key;
        item.url = v.url;
        item.progress(off);
        item.setState('paused', `Paused at ${humanSize(off)} of ${humanSize(v.size)}: choose "${v.name}" again to resume.`);
        item.cancel.onclick = () => cancelItem(item);
        pending.set(key, item);
      }
    }

    return { list: uploadList, totalRow, uploadSet, showPending };
  };
})();
