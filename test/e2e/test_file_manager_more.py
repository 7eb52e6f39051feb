"""The listing page as a file manager (issue 17), the heavier cases, in
headless Chromium (test/e2e/browser/file_manager_more.mjs, Playwright
driving Debian's chromium, as test_browser.py) and with curl-like raw
requests:

- a 64 MiB upload cut mid-way and resumed after a reload: byte-identical,
  and only the rest sent again;
- --read-only and --write-token: no controls until the right token;
- hostile names (markup, quotes, a newline, spaces, non-ASCII) render as
  text and download their own bytes, also after a rename and filtered;
- one upload and one rename by keyboard only;
- JavaScript off: a plain listing;
- desktop, phone width and 200 % zoom: no horizontal overflow; screenshots
  under the build folder (UVH_UPDATE_SCREENSHOT=1 also rewrites
  docs/file-manager.png);
- the listing's Content-Security-Policy, no inline script or style, the
  page's assets cached (strong ETag, long max-age, 304) and the foreign
  Origin refused;
- sorting by name, size and date, and the filter.

Each browser case starts its own server on port 0 and checks the disk
after; every server exits 0 (conftest.py). Needs /usr/bin/chromium, node
and `npm ci` in test/e2e/browser; `make test` installs them."""

import html.parser
import json
import os
import re
import tempfile

import uvhlib
from browserlib import require_browser, run_node
from test_uploads import random_file, sha256_of
from uvhlib import Server, TempRoot, request

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = "file_manager_more.mjs"  # in test/e2e/browser
REPO = os.path.dirname(os.path.dirname(HERE))
DOCS_SHOT = os.path.join(REPO, "docs", "file-manager.png")
TIMEOUT = 180  # the script gives up by itself at 150 s
MIB = 1 << 20
BIG = 64 * MIB  # the size, in make test too (about 10 s here)
# The page sends an upload in PATCH pieces of at most this many bytes
# (CHUNK in handlers/ui/assets/upload.js); the bytes sent after a resume may
# exceed the rest of the file by at most one of them.
PIECE = 8 * MIB
TOKEN = "s3cret-token"


def artifacts():
    """Screenshots go under the build folder of the binary under test
    (build/test-results/screenshots), or UVH_ARTIFACTS."""
    d = os.environ.get("UVH_ARTIFACTS") or \
        os.path.join(os.path.dirname(uvhlib.BINARY), "test-results", "screenshots")
    os.makedirs(d, exist_ok=True)
    return d


def run_section(section, server, params=None):
    """Runs one section of file_manager_more.mjs (browserlib.run_node: its
    own process group, bounded) and returns what it reports (RESULT)."""
    require_browser()
    with tempfile.TemporaryDirectory(prefix="uvh-fm-") as tmp:
        result = os.path.join(tmp, "result.json")
        run_node(SCRIPT, [section, server.url, server.root, artifacts(),
                          json.dumps({**(params or {}), "resultFile": result})], TIMEOUT)
        with open(result) as f:
            return json.load(f)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def parts_left(root):
    d = os.path.join(root, ".uvhttpd-uploads")
    return [n for n in os.listdir(d) if n.endswith(".part")] if os.path.isdir(d) else []


# ------------------------------------------------------------------ resume

def test_resume_64_mib_after_a_cut_and_a_reload():
    """64 MiB of random bytes through the page; the connection cut once
    half went through (a proxy in the browser script), the page's retries
    held, the page reloaded and the same file chosen again. The file
    arrives byte-identical; the acknowledged offset was inside the file;
    after the reload the page sent at most the rest plus one piece, and the
    server appended exactly the rest."""
    require_browser()
    with TempRoot() as root, TempRoot() as work:
        os.mkdir(os.path.join(root.path, "big"))
        src = os.path.join(work.path, "video.bin")
        digest = random_file(src, BIG)
        with Server(root.path) as s:
            r = run_section("resume", s, {"file": src, "size": BIG, "target": "/big/video.bin"})
            s.finish()
        acked, sent = r["acked"], r["sent_after"]
        assert 0 < acked < BIG, r
        assert 0 < r["piece"] <= PIECE, f"the page sent a PATCH of {r['piece']} bytes, over its {PIECE}-byte piece"
        assert BIG - acked <= sent <= BIG - acked + PIECE, \
            f"sent {sent} body bytes after the reload; the rest was {BIG - acked} (+ one piece of {PIECE})"
        assert sha256_of(os.path.join(root.path, "big", "video.bin")) == digest
        assert parts_left(root.path) == []


# ------------------------------------------------------- write policy in the page

def test_read_only_shows_no_controls():
    with TempRoot() as root:
        root.write("hello.txt", "hello\n")
        with Server(root.path, "--read-only") as s:
            run_section("readOnly", s)
            s.finish()


def write_token_case(wrong):
    with TempRoot() as root, TempRoot() as work:
        root.write("hello.txt", "hello\n")
        src = os.path.join(work.path, "with-token.bin")
        random_file(src, 300_000)
        with Server(root.path, "--write-token", TOKEN) as s:
            run_section("writeToken", s, {"token": TOKEN, "file": src, "wrong": wrong})
            s.finish()
        assert read(os.path.join(root.path, "with-token.bin")) == read(src)


def test_write_token_controls_appear_with_the_right_token():
    """No controls until the token; the right one shows them (and stays for
    the tab's session), and an upload carries Authorization: Bearer and
    arrives."""
    write_token_case(wrong=False)


def test_write_token_wrong_token_is_a_readable_error():
    """A wrong token first: a readable #error (role=alert), the controls
    stay absent; then the right one works as above."""
    write_token_case(wrong=True)


# ---------------------------------------------------------------- hostile names

HOSTILE = {
    "<img src=x onerror=alert(1)>.txt": "img payload\n",
    "a\"b'c.txt": "quotes\n",
    "x\ny.txt": "newline in the name\n",
    "with space.txt": "space\n",
    "naïve café ☃.txt": "non-ASCII\n",
    "plain.txt": "renamed to a hostile name\n",
    "100% &amp; #1?.txt": "percent, entity, hash, question mark\n",
    "del\n<b>ete<b> me%2F.txt": "deleted through the page\n",
}
RENAME_TO = "<svg onload=alert(2)> & \"q\".txt"
DELETED = "del\n<b>ete<b> me%2F.txt"  # a newline, markup and an encoded slash


def test_hostile_names_render_as_text_and_download():
    with TempRoot() as root:
        for name, body in HOSTILE.items():
            root.write(os.path.join("hostile", name), body)
        filters = [
            ["onerror", ["<img src=x onerror=alert(1)>.txt"]],
            ["\"", ["a\"b'c.txt", RENAME_TO]],
            ["café", ["naïve café ☃.txt"]],
            ["&amp;", ["100% &amp; #1?.txt"]],
        ]
        with Server(root.path) as s:
            run_section("hostile", s, {"files": HOSTILE, "renameFrom": "plain.txt", "renameTo": RENAME_TO,
                                       "deleteName": DELETED, "filters": filters})
            s.finish()
        d = os.path.join(root.path, "hostile")
        assert not os.path.exists(os.path.join(d, "plain.txt"))
        assert read(os.path.join(d, RENAME_TO)) == HOSTILE["plain.txt"].encode()
        assert not os.path.exists(os.path.join(d, DELETED))
        for name, body in HOSTILE.items():
            if name not in ("plain.txt", DELETED):
                assert read(os.path.join(d, name)) == body.encode(), name


# ----------------------------------------------------------------- keyboard

def test_keyboard_only_upload_and_rename():
    with TempRoot() as root, TempRoot() as work:
        root.write("kbd/old name.txt", "before the rename\n")
        src = os.path.join(work.path, "typed.bin")
        random_file(src, 100_000)
        with Server(root.path) as s:
            run_section("keyboard", s, {"file": src, "renameFrom": "old name.txt", "renameTo": "new name.txt"})
            s.finish()
        d = os.path.join(root.path, "kbd")
        assert read(os.path.join(d, "typed.bin")) == read(src)
        assert read(os.path.join(d, "new name.txt")) == b"before the rename\n"
        assert not os.path.exists(os.path.join(d, "old name.txt"))


# ------------------------------------------------------- JavaScript off, layout

def test_without_javascript_a_plain_listing():
    with TempRoot() as root:
        root.write("hello.txt", "hello without script\n")
        root.write("a b.txt", "x\n")
        os.mkdir(os.path.join(root.path, "docs"))
        with Server(root.path) as s:
            run_section("noScript", s, {"names": ["hello.txt", "a b.txt", "docs"],
                                        "hello": "hello without script\n"})
            s.finish()


def test_phone_width_and_200_percent_zoom_and_screenshots():
    with TempRoot() as root, TempRoot() as work:
        upload = os.path.join(work.path, "slides.odp")
        random_file(upload, 1_300_000)
        root.write("report-2026.pdf", os.urandom(180_000))
        root.write("notes.txt", "notes\n" * 400)
        root.write("holiday photo.jpg", os.urandom(2_400_000))
        root.write("photos/a.jpg", os.urandom(10))
        root.write("music/b.ogg", os.urandom(10))
        docs = DOCS_SHOT if os.environ.get("UVH_UPDATE_SCREENSHOT") == "1" else None
        with Server(root.path) as s:
            r = run_section("responsive", s, {"entries": 5, "docs": docs, "upload": upload})
            s.finish()
        assert read(os.path.join(root.path, "slides.odp")) == read(upload)
        for shot in r["screenshots"]:
            assert os.path.getsize(shot) > 1000, shot
        if docs:
            assert os.path.getsize(docs) < 200_000, "docs/file-manager.png must stay under 200 KB"


# ------------------------------------------------------------- sort, filter

def test_sort_by_name_size_date_and_filter():
    with TempRoot() as root:
        t0 = 1_700_000_000
        files = {"alpha.txt": (300, 100), "bravo.txt": (20, 300), "charlie.txt": (1000, 200), "delta.log": (5, 50),
                 "foxtrot.bin": (3_500_000, 250), "golf.bin": (1536, 150)}
        for name, (size, dt) in files.items():
            p = root.write(f"sort/{name}", b"x" * size)
            os.utime(p, (t0 + dt, t0 + dt))
        for name, dt in (("zeta", 10), ("echo", 400)):
            os.mkdir(os.path.join(root.path, "sort", name))
            os.utime(os.path.join(root.path, "sort", name), (t0 + dt, t0 + dt))

        def order(key):
            asc = sorted(files, key=key)
            return {"ascending": asc, "descending": asc[::-1]}

        params = {
            "order": {"name": order(lambda n: n), "size": order(lambda n: files[n][0]),
                      "mtime": order(lambda n: files[n][1])},
            "filters": [[".log", ["delta.log"]], ["HA", ["alpha.txt", "charlie.txt"]], ["ech", ["echo"]],
                        ["nothing-matches", []]],
            "all": 8,
            # Human-readable sizes, as the server's listing writes them.
            "sizes": {"delta.log": "5 B", "charlie.txt": "1000 B", "golf.bin": "1.5 KiB", "foxtrot.bin": "3.3 MiB"},
        }
        with Server(root.path) as s:
            run_section("sorting", s, params)
            s.finish()


# ------------------------------------------------ headers and markup, no browser

class _Markup(html.parser.HTMLParser):
    """The page's scripts (src and inline text), stylesheets, and any
    inline style or event-handler attribute."""

    def __init__(self):
        super().__init__()
        self.scripts, self.styles, self.inline = [], [], []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in a:
            if k == "style" or k.startswith("on"):
                self.inline.append(f"<{tag} {k}=...>")
        if tag == "script":
            self._in_script = True
            self.scripts.append({"src": a.get("src"), "text": ""})
        elif tag == "style":
            self.inline.append("<style>")
        elif tag == "link" and "stylesheet" in (a.get("rel") or "").split():
            self.styles.append(a.get("href"))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1]["text"] += data


def csp_directives(value):
    out = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


def test_csp_assets_and_foreign_origin():
    with TempRoot() as root:
        root.write("hello.txt", "hello\n")
        os.mkdir(os.path.join(root.path, "sub"))
        with Server(root.path) as s:
            r = request(s.port, "GET", "/", headers={"Accept": "text/html"})
            assert r.status == 200
            csp = r.get("content-security-policy")
            assert csp, f"no Content-Security-Policy on the listing: {r.headers}"
            d = csp_directives(csp)
            script_src = d.get("script-src", d.get("default-src"))
            assert script_src is not None and "'self'" in script_src, csp
            assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"} & set(script_src), csp
            page = r.body.decode()
            m = _Markup()
            m.feed(page)
            assert m.scripts, "the listing loads no script"
            for sc in m.scripts:
                assert sc["src"], f"an inline <script>: {sc}"
                assert sc["text"].strip() == "", f"a <script src> with content: {sc}"
            assert m.inline == [], f"inline style or handlers in the listing: {m.inline}"
            assets = [sc["src"] for sc in m.scripts] + m.styles
            assert m.styles, "the listing links no stylesheet"
            for url in assets:
                assert url.startswith("/") and not url.startswith("//"), f"asset {url} is not on this server"
                a = request(s.port, "GET", url)
                assert a.status == 200, (url, a.status)
                etag = a.get("etag")
                assert etag and etag.startswith('"'), f"{url}: no strong ETag ({etag})"
                cc = a.get("cache-control") or ""
                age = re.search(r"max-age=(\d+)", cc)
                assert age and int(age.group(1)) >= 30 * 86400, f"{url}: Cache-Control {cc!r}"
                ctype = a.get("content-type") or ""
                assert ctype.startswith("text/javascript" if url in [sc["src"] for sc in m.scripts] else "text/css"), \
                    (url, ctype)
                again = request(s.port, "GET", url, headers={"If-None-Match": etag})
                assert again.status == 304 and again.body == b"", (url, again.status)
                assert again.get("etag") == etag
                # The gzip copy has its own strong ETag and revalidates too.
                gz = request(s.port, "GET", url, headers={"Accept-Encoding": "gzip"})
                gz_etag = gz.get("etag") or ""
                assert gz.status == 200 and gz.get("content-encoding") == "gzip", (url, gz.headers)
                assert gz_etag.startswith('"') and gz_etag != etag, (url, gz_etag, etag)
                assert "max-age=31536000" in (gz.get("cache-control") or "")
                gz304 = request(s.port, "GET", url, headers={"Accept-Encoding": "gzip", "If-None-Match": gz_etag})
                assert gz304.status == 304, (url, gz304.status)
            # The same listing in a subdirectory loads the same assets.
            sub = _Markup()
            sub.feed(request(s.port, "GET", "/sub/", headers={"Accept": "text/html"}).body.decode())
            assert [sc["src"] for sc in sub.scripts] + sub.styles == assets
            # A write from a foreign origin: 403, as for any write.
            evil = {"Origin": "http://evil.example"}
            for method, path, extra in (
                ("MKCOL", "/made-by-evil/", {}),
                ("DELETE", "/hello.txt", {}),
                ("MOVE", "/hello.txt", {"Destination": f"http://127.0.0.1:{s.port}/moved.txt"}),
                ("POST", "/up.bin", {"Tus-Resumable": "1.0.0", "Upload-Length": "5"}),
                ("PUT", "/put.txt", {}),
            ):
                w = request(s.port, method, path, body=b"x" if method == "PUT" else None, headers={**evil, **extra})
                assert w.status == 403, (method, w.status, w.body)
            assert os.path.exists(os.path.join(root.path, "hello.txt"))
            assert not os.path.exists(os.path.join(root.path, "made-by-evil"))
            assert not os.path.exists(os.path.join(root.path, "put.txt"))
            s.finish()
