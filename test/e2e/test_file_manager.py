"""The listing page as a file manager (issue 17), in headless Chromium:
test/e2e/browser/file_manager.mjs uploads three files and a two-level
folder through the page's file pickers (resumable uploads in 8 MiB
PATCHes) and three files with names HTML and URLs misread (one with a line
break, which goes up in one PUT), cancels one mid-way, makes a folder, renames (also onto an existing name: "already
exists") and deletes (after the confirmation dialog, a file and a folder),
checking each step on disk as it goes. This file makes the files, starts
the server, runs the script and checks the end state on disk again: every
upload byte-identical, nothing unfinished left in .uvhttpd-uploads, and in
the access log the writes the page made.

Needs what test_browser.py needs (browserlib.require_browser)."""

import os
import re
import subprocess

from browserlib import ARTIFACTS, require_browser, run_node
from uvhlib import Server, TempRoot, request

TIMEOUT = 130  # the script gives up by itself at 100 s


def make_sources(src):
    rnd = os.urandom
    src.write("one.txt", "one\n")
    src.write("two.bin", rnd(200 * 1024))
    src.write("three.bin", rnd(9 * 1024 * 1024 + 12345))  # two PATCH pieces of at most 8 MiB
    src.write("tree/a.txt", "a in tree\n")
    src.write("tree/inner/b.bin", rnd(70 * 1024))
    src.write("big.bin", rnd(20 * 1024 * 1024))  # cancelled during its second piece


def same(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def test_file_manager():
    require_browser()
    with TempRoot() as root, TempRoot() as src, TempRoot() as logs:
        make_sources(src)
        root.write("existing.txt", "keep me\n")
        root.write("old-dir/inside.txt", "goes with its folder\n")
        log = os.path.join(logs.path, "access.log")
        with Server(root.path, "--access-log", log) as s:
            try:
                run_node("file_manager.mjs", [s.url, root.path, src.path, ARTIFACTS], TIMEOUT)
            except AssertionError as e:
                if s.proc.poll() is None:
                    raise
                raise AssertionError(f"{e}\nthe server died (exit {s.proc.returncode}); its stderr:\n"
                                     + s.stderr()) from None
            s.finish()
        r, p = root.path, src.path
        for rel in ["three.bin", "tree/a.txt", "tree/inner/b.bin"]:
            assert same(os.path.join(r, rel), os.path.join(p, rel)), f"{rel} differs from what was uploaded"
        assert same(os.path.join(r, "two renamed.bin"), os.path.join(p, "two.bin"))
        assert not os.path.exists(os.path.join(r, "two.bin"))
        assert not os.path.exists(os.path.join(r, "one.txt"))
        assert not os.path.exists(os.path.join(r, "old-dir"))
        assert not os.path.exists(os.path.join(r, "big.bin"))
        assert os.path.isdir(os.path.join(r, "New folder 1"))
        with open(os.path.join(r, "existing.txt")) as f:
            assert f.read() == "keep me\n"
        for i, name in enumerate(['<b>x<b> & "q" \'s\'.txt', "new\nline.txt", "ünï cödé #1?.txt"]):
            with open(os.path.join(r, name)) as f:
                assert f.read() == f"odd {i}\n", name
        leftovers = [n for n in os.listdir(os.path.join(r, ".uvhttpd-uploads")) if n.endswith(".part")]
        assert leftovers == [], f"unfinished uploads left: {leftovers}"
        with open(log) as f:
            lines = f.read().splitlines()

    def count(method, status):
        return sum(1 for l in lines if f'"{method} ' in l and f'" {status} ' in l)

    text = "\n".join(lines)
    assert count("POST", 201) == 8, text          # one upload creation per file...
    assert count("PUT", 201) == 1, text           # ...but the one with a line break in its name
    assert count("PATCH", 204) >= 6, text         # three.bin in two pieces
    assert count("MKCOL", 201) == 3, text         # tree/, tree/inner/, New folder 1/
    assert count("MOVE", 201) == 1 and count("MOVE", 412) == 1, text
    assert count("DELETE", 204) == 3, text        # a file, a folder, the cancelled upload


# ------------------------------------------------------------------ serving
# The page's headers and assets, without a browser (curl-level checks).

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def asset_urls(html):
    return re.findall(r'(?:href|src)="(/\.uvhttpd-ui/[^"]+)"', html)


def test_listing_headers_and_assets():
    with TempRoot() as root:
        root.write("a.txt", "a\n")
        with Server(root.path) as s:
            r = request(s.port, "GET", "/")
            assert r.status == 200
            assert r.get("content-security-policy") == CSP
            assert r.get("x-content-type-options") == "nosniff"
            html = r.body.decode()
            assert '<body data-writes="open">' in html
            assert "<style" not in html and "<script>" not in html and " style=" not in html
            assert 'data-name="a.txt" data-type="file" data-size="2"' in html
            urls = asset_urls(html)
            assert sorted(re.sub(r"\.[0-9a-f]{16}\.", ".", u) for u in urls) == sorted(
                ["/.uvhttpd-ui/ui.css", "/.uvhttpd-ui/upload.js", "/.uvhttpd-ui/upload_list.js", "/.uvhttpd-ui/ui.js"]), urls
            for u in urls:
                digest = re.search(r"\.([0-9a-f]{16})\.", u).group(1)
                a = request(s.port, "GET", u)
                assert a.status == 200, u
                assert a.get("etag") == f'"{digest}"'
                assert a.get("cache-control") == "public, max-age=31536000, immutable"
                want = "text/css" if u.endswith(".css") else "text/javascript"
                assert a.get("content-type").startswith(want)
                assert int(a.get("content-length")) == len(a.body) > 1000
                assert request(s.port, "GET", u, headers={"If-None-Match": f'"{digest}"'}).status == 304
                head = request(s.port, "HEAD", u)
                assert head.status == 200 and head.body == b"" and head.get("etag") == f'"{digest}"'
                assert request(s.port, "PUT", u, body="x").status == 405
                assert a.get("vary") == "Accept-Encoding" and a.get("content-encoding") is None
                # gzip and zstd, made at build time, each with its own ETag.
                for coding in ("gzip", "zstd"):
                    z = request(s.port, "GET", u, headers={"Accept-Encoding": coding})
                    assert z.status == 200 and z.get("content-encoding") == coding, coding
                    assert z.get("etag") not in (None, a.get("etag")) and len(z.body) < len(a.body) / 2
                    assert request(s.port, "GET", u, headers={"Accept-Encoding": coding,
                                                               "If-None-Match": z.get("etag")}).status == 304
                    curl = subprocess.run(["curl", "-sS", "--max-time", "30", "--compressed", "-H",
                                           f"Accept-Encoding: {coding}", s.url + u[1:]],
                                          capture_output=True, check=True)
                    assert curl.stdout == a.body, f"{u} in {coding} does not decode to the asset"
                with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "handlers",
                                       "ui", "assets", u.split("/")[-1].split(".")[0]
                                       + "." + u.rsplit(".", 1)[1]), "rb") as f:
                    assert a.body == f.read(), f"{u} is not the repository's file"
            assert request(s.port, "GET", "/.uvhttpd-ui/ui.0123456789abcdef.js").status == 404
            assert request(s.port, "GET", "/.uvhttpd-ui/").status == 404
            j = request(s.port, "GET", "/?format=json")
            assert j.status == 200 and j.get("content-security-policy") is None
            # A Host writes are refused for: the page offers no writes.
            r = request(s.port, "GET", "/", headers={"Host": "files.example"})
            assert '<body data-writes="closed">' in r.body.decode()
        with Server(root.path, "--read-only") as s:
            assert '<body data-writes="closed">' in request(s.port, "GET", "/").body.decode()
        with Server(root.path, "--write-token", "s3cret") as s:
            assert '<body data-writes="token">' in request(s.port, "GET", "/").body.decode()
            # The page's token probe: a write that changes nothing.
            probe = "/.uvhttpd-uploads/00000000000000000000000000000000"
            h = {"Tus-Resumable": "1.0.0"}
            assert request(s.port, "DELETE", probe, headers=h).status == 401
            wrong = request(s.port, "DELETE", probe, headers={**h, "Authorization": "Bearer wrong"})
            assert wrong.status == 401
            # Only the Bearer challenge: a Basic one would open the browser's
            # login prompt over the page's token form.
            assert wrong.all("www-authenticate") == ['Bearer realm="uvhttpd", error="invalid_token"']
            assert request(s.port, "DELETE", probe, headers={**h, "Authorization": "Bearer s3cret"}).status == 404
