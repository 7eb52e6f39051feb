// Drives tus-js-client 4.3.1 in Node against uvhttpd for test/e2e/test_uploads.py.
//
//   node upload.mjs --endpoint URL --file PATH --protocol tus-v1|ietf-draft-03|ietf-draft-05
//                   [--chunk BYTES] [--stop-after BYTES] [--upload-url URL]
//
// --stop-after: abort once the server has acknowledged at least BYTES (the
// client's onChunkComplete), as a user closing the tab would; the upload
// URL is printed so a later run can resume it.
// --upload-url: resume that upload (tus-js-client asks the server for the
// offset with HEAD, then sends only the rest).
// Prints one JSON line: {"url", "offset", "done", "error"}. Exits 0 when the
// run did what it was asked (finished, or stopped where asked), 1 otherwise.
import fs from 'node:fs';
import { Upload } from 'tus-js-client';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const data = fs.readFileSync(args.file);
const chunkSize = Number(args.chunk || 4 * 1024 * 1024);
const stopAfter = args['stop-after'] ? Number(args['stop-after']) : null;

let acknowledged = 0;
const deadline = setTimeout(() => finish({ error: 'timed out after 100 s' }, 1), 100_000);

function finish(result, code) {
  clearTimeout(deadline);
  process.stdout.write(JSON.stringify({ url: upload.url, offset: acknowledged, ...result }) + '\n');
  process.exit(code);
}

const upload = new Upload(data, {
  endpoint: args.endpoint,
  uploadUrl: args['upload-url'] || null,
  protocol: args.protocol,
  chunkSize,
  retryDelays: null,  // a failure is reported, not hidden by retries
  storeFingerprintForResuming: false,
  metadata: { filename: 'video.bin' },
  onChunkComplete(chunk, accepted) {
    acknowledged = accepted;
    if (stopAfter !== null && accepted >= stopAfter) {
      upload.abort(false).then(() => finish({ done: false }, 0));
    }
  },
  onSuccess() {
    acknowledged = data.length;
    finish({ done: true }, stopAfter === null ? 0 : 1);
  },
  onError(err) {
    finish({ done: false, error: String(err && err.message || err) }, 1);
  },
});
upload.start();
