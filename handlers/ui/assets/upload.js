// Resumable uploads for the listing page (ui.js), over the tus 1.0.0
// protocol the server speaks (handlers/uploads/): a POST to the file's own
// path creates the upload and answers 201 with its Location; PATCHes of at
// most 8 MiB append at Upload-Offset; HEAD tells the offset the server
// acknowledged; DELETE terminates. tus rather than the IETF draft: a page
// cannot see the draft's 104, and tus says the same with a plain 201.
//
// Resume: after a network error the upload retries with a growing delay
// (1 s up to 30 s, at once when the browser comes back online), asking the
// server for its offset with HEAD first. The upload's URL is kept in
// localStorage under the target path, size and lastModified, so after a
// reload (or a closed laptop lid) choosing the same file again continues
// where the server stopped. A page cannot reopen a file by itself, so the
// pending uploads are listed as "paused" until then.
//
// Vanilla ES2020, no build step; loaded before ui.js (both deferred), it
// publishes window.uvhUpload.
'use strict';

(() => {
  const CHUNK = 8 * 1024 * 1024;
  const STORE_PREFIX = 'uvhttpd-upload:';
  const TUS = { 'Tus-Resumable': '1.0.0' };
  const MAX_DELAY_MS = 30000;

  function storeKey(path, size, lastModified) {
    return STORE_PREFIX + JSON.stringify([path, size, lastModified]);
  }

  function readStore(key) {
    try {
      const v = JSON.parse(localStorage.getItem(key) || 'null');
      return v && typeof v.url === 'string' ? v : null;
    } catch (e) {
      return null;
    }
  }

  // Every stored upload: [key, {url, path, name, size, lastModified}].
  function storedUploads() {
    const out = [];
    for (let i = 0; i < localStorage.length; i++) {
      const key = localStorage.key(i);
      if (!key || !key.startsWith(STORE_PREFIX)) continue;
      const v = readStore(key);
      if (v && typeof v.path === 'string') out.push([key, v]);
    }
    return out;
  }

  class NetworkError extends Error {}

  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // One readable line for a failed response: the server's own text (its
  // error bodies are one line; the draft's problem+json has a title).
  async function responseText(resp) {
    let text = '';
    try {
      text = await resp.text();
    } catch (e) {
      text = '';
    }
    const type = resp.headers.get('content-type') || '';
    if (type.includes('json')) {
      try {
        const j = JSON.parse(text);
        text = j.detail || j.title || text;
      } catch (e) {
        // keep the text
      }
    }
    const line = text.trim().split('\n')[0];
    return line || `${resp.status} ${resp.statusText}`.trim();
  }

  // Waits about `ms` (0.5 to 1.5 times, so two tabs resuming one upload
  // do not keep taking it from each other in step), or until the browser
  // is back online or the upload is cancelled.
  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms * (0.5 + Math.random()));
      function done() {
        clearTimeout(t);
        window.removeEventListener('online', done);
        if (signal) signal.removeEventListener('abort', done);
        resolve();
      }
      window.addEventListener('online', done);
      if (signal) signal.addEventListener('abort', done);
    });
  }

  // One file's upload. `ui` gets the progress: ui.progress(sent),
  // ui.state(state, note). `auth()` gives the write headers (the token).
  class FileUpload {
    constructor(file, path, auth, ui) {
      this.file = file;
      this.path = path;  // the target's URL path, percent-encoded
      this.size = file.size;
      this.auth = auth;
      this.ui = ui;
      this.key = storeKey(path, file.size, file.lastModified);
      this.url = null;
      this.offset = 0;
      this.xhr = null;
      this.abort = new AbortController();
      this.cancelled = false;
    }

    headers(extra) {
      return Object.assign({}, TUS, this.auth(), extra || {});
    }

    async fetch(url, init) {
      let resp;
      try {
        // No credentials: see write() in ui.js (a 401 would open the
        // browser's own password prompt).
        resp = await fetch(url, Object.assign({ cache: 'no-store', credentials: 'omit', signal: this.abort.signal },
          init));
      } catch (e) {
        if (this.cancelled) throw e;
        throw new NetworkError(String(e.message || e));
      }
      return resp;
    }

    // The server's offset for the stored upload, or null if it is gone.
    async probe(url) {
      const resp = await this.fetch(url, { method: 'HEAD', headers: this.headers() });
      if (resp.status === 404 || resp.status === 410) return null;
      if (!resp.ok) throw new HttpError(resp.status, `${resp.status} ${resp.statusText}`.trim());
      const off = Number(resp.headers.get('upload-offset'));
      if (!Number.isSafeInteger(off) || off < 0 || off > this.size) return null;
      return off;
    }

    async create() {
      const resp = await this.fetch(this.path, {
        method: 'POST',
        headers: this.headers({ 'Upload-Length': String(this.size) }),
      });
      if (resp.status !== 201) throw new HttpError(resp.status, await responseText(resp));
      const loc = resp.headers.get('location');
      if (!loc) throw new HttpError(resp.status, 'the server gave no upload URL');
      this.url = new URL(loc, location.href).href;
      this.offset = Number(resp.headers.get('upload-offset')) || 0;
      localStorage.setItem(this.key, JSON.stringify({
        url: this.url, path: this.path, name: this.file.name, size: this.size,
        lastModified: this.file.lastModified,
      }));
    }

    // Sends `body` through XMLHttpRequest, the one browser API that
    // reports upload progress (`sent(bytes)`). Resolves with the request
    // when it answers one of `ok`; rejects with HttpError (the server's
    // line) for another status, NetworkError when the connection fails.
    send(method, url, headers, body, ok, sent) {
      return new Promise((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        this.xhr = xhr;
        xhr.open(method, url);
        for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
        xhr.upload.onprogress = (e) => sent(e.loaded);
        xhr.onload = () => {
          this.xhr = null;
          if (ok.includes(xhr.status)) return resolve(xhr);
          const line = (xhr.responseText || '').trim().split('\n')[0];
          return reject(new HttpError(xhr.status, line || `${xhr.status} ${xhr.statusText}`.trim()));
        };
        xhr.onerror = () => {
          this.xhr = null;
          reject(new NetworkError('the connection failed'));
        };
        xhr.onabort = () => {
          this.xhr = null;
          reject(new NetworkError('aborted'));
        };
        xhr.ontimeout = xhr.onerror;
        xhr.send(body);
      });
    }

    // One PATCH of up to CHUNK bytes.
    async patch() {
      const start = this.offset;
      const piece = this.file.slice(start, Math.min(this.size, start + CHUNK));
      const headers = this.headers({
        'Upload-Offset': String(start),
        'Content-Type': 'application/offset+octet-stream',
      });
      const xhr = await this.send('PATCH', this.url, headers, piece, [204], (n) => this.ui.progress(start + n));
      const off = Number(xhr.getResponseHeader('upload-offset'));
      if (!Number.isSafeInteger(off) || off < start) {
        throw new HttpError(xhr.status, 'the server answered without a valid Upload-Offset');
      }
      this.offset = off;
      this.ui.progress(off);
    }

    // A name with a line break cannot be uploaded in pieces (the server's
    // upload state is line-based and refuses it with 400), so such a file
    // goes up whole in one PUT: progress still shows, but a broken
    // connection starts it again from the beginning.
    async putWhole() {
      await this.send('PUT', this.path, this.auth(), this.file, [201, 204], (n) => this.ui.progress(n));
      this.offset = this.size;
    }

    // Runs to completion; resolves when the file is on the server, rejects
    // with HttpError on a refusal (and on cancel).
    async run() {
      if (/%0[ad]/i.test(this.path)) return this.runWhole();
      let delay = 1000;
      let fresh = true;
      for (;;) {
        if (this.cancelled) throw new HttpError(0, 'cancelled');
        try {
          if (!this.url) {
            const saved = readStore(this.key);
            if (saved) {
              const off = await this.probe(saved.url);
              if (off === null) {
                localStorage.removeItem(this.key);
              } else {
                this.url = saved.url;
                this.offset = off;
                this.ui.state('uploading', off > 0 ? `resumed at ${off} bytes` : '');
              }
            }
            if (!this.url) await this.create();
          } else if (!fresh) {
            // After a failure: where did the server stop? (This also makes
            // the server end a request of ours it still thinks is alive.)
            const off = await this.probe(this.url);
            if (off === null) {
              this.url = null;
              localStorage.removeItem(this.key);
              this.offset = 0;
              continue;
            }
            this.offset = off;
            this.ui.state('uploading', `resumed at ${off} bytes`);
          }
          fresh = true;
          this.ui.state('uploading');
          this.ui.progress(this.offset);
          while (this.offset < this.size) {
            await this.patch();
            delay = 1000;
          }
          localStorage.removeItem(this.key);
          return;
        } catch (e) {
          if (this.cancelled) throw new HttpError(0, 'cancelled');
          if (e instanceof HttpError) {
            // 409: the offset moved (another tab, a cut-back after an
            // interruption); 5xx: the server may recover. Both retry.
            if (e.status !== 409 && e.status < 500) throw e;
          } else if (!(e instanceof NetworkError)) {
            throw e;
          }
          fresh = false;
          this.ui.state('paused', `${e.message}; retrying in ${Math.round(delay / 1000)} s`);
          await sleep(delay, this.abort.signal);
          delay = Math.min(delay * 2, MAX_DELAY_MS);
        }
      }
    }

    async runWhole() {
      let delay = 1000;
      for (;;) {
        if (this.cancelled) throw new HttpError(0, 'cancelled');
        try {
          this.ui.state('uploading', 'in one piece (a name with a line break cannot be resumed)');
          await this.putWhole();
          return;
        } catch (e) {
          if (this.cancelled) throw new HttpError(0, 'cancelled');
          if (!(e instanceof NetworkError) && !(e instanceof HttpError && e.status >= 500)) throw e;
          this.ui.state('paused', `${e.message}; retrying in ${Math.round(delay / 1000)} s`);
          await sleep(delay, this.abort.signal);
          delay = Math.min(delay * 2, MAX_DELAY_MS);
        }
      }
    }

    // Stops and terminates the upload on the server (tus termination).
    async cancel() {
      this.cancelled = true;
      this.abort.abort();
      if (this.xhr) this.xhr.abort();
      // Not started yet, it may still have one from an earlier visit.
      const url = this.url || (readStore(this.key) || {}).url;
      localStorage.removeItem(this.key);
      if (url) await terminate(url, this.auth());
    }
  }

  async function terminate(url, auth) {
    try {
      await fetch(url, { method: 'DELETE', headers: Object.assign({}, TUS, auth), cache: 'no-store', credentials: 'omit' });
    } catch (e) {
      // Unreachable: the server removes it at --upload-expiry.
    }
  }

  // ---------------------------------------------------- choosing files

  // What a drop or a folder picker brings: files with their path relative
  // to the listed directory, and the directories to create first.
  function fromFileList(files) {
    const out = { files: [], dirs: new Set() };
    for (const f of files) {
      const rel = f.webkitRelativePath || f.name;
      out.files.push({ file: f, rel });
      addParents(out.dirs, rel);
    }
    return out;
  }

  function addParents(dirs, rel) {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }

  function readAllEntries(reader) {
    return new Promise((resolve, reject) => {
      const all = [];
      const step = () => reader.readEntries((batch) => {
        if (!batch.length) {
          resolve(all);
          return;
        }
        all.push(...batch);
        step();
      }, reject);
      step();
    });
  }

  function entryFile(entry) {
    return new Promise((resolve, reject) => entry.file(resolve, reject));
  }

  // A drop: DataTransferItem.webkitGetAsEntry gives whole folders.
  async function fromDataTransfer(dt) {
    const out = { files: [], dirs: new Set() };
    const entries = [];
    for (const item of dt.items || []) {
      if (item.kind !== 'file') continue;
      const entry = item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
      if (entry) {
        entries.push(entry);
      } else {
        const f = item.getAsFile();
        if (f) out.files.push({ file: f, rel: f.name });
      }
    }
    const walk = async (entry, prefix) => {
      const rel = prefix + entry.name;
      if (entry.isFile) {
        out.files.push({ file: await entryFile(entry), rel });
      } else if (entry.isDirectory) {
        out.dirs.add(rel);
        for (const child of await readAllEntries(entry.createReader())) await walk(child, rel + '/');
      }
    };
    for (const entry of entries) await walk(entry, '');
    return out;
  }

  function encodePath(rel) {
    return rel.split('/').map(encodeURIComponent).join('/');
  }

  window.uvhUpload = {
    FileUpload, HttpError, NetworkError, responseText, storedUploads, readStore, terminate,
    fromFileList, fromDataTransfer, encodePath, storeKey, CHUNK,
  };
})();
