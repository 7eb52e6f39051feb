"""Headless Chromium against the real binary: the directory listing (order,
escaping, links), the record form and its success page, revalidation
under --cache-control no-cache, and a page, script and listing that arrive
compressed (issue 12). The browser side is
test/e2e/browser/browser_test.mjs (Playwright driving Debian's chromium);
this file builds the site, starts the server, runs it and checks the
server's side: the record on disk and the 304s in the access log.

Needs /usr/bin/chromium (Debian's chromium package), node, and `npm ci` in
test/e2e/browser; `make test` installs them. Without them this test fails:
a browser test that silently passes proves nothing."""

import os

from browserlib import ARTIFACTS, require_browser, run_node
from uvhlib import Server, TempRoot

TIMEOUT = 180  # the script gives up by itself at 150 s

RECORD_LINE = "17 mis=17&name=Akshay&email=akshay%40gmail.com\n"

PAGE_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Sub page</title>
<link rel="stylesheet" href="../style.css">
</head>
<body>
<h1 id="h">Sub page</h1>
<p><a id="up" href="../">Up to the root</a></p>
</body>
</html>
"""


def build_site(root):
    root.write("sub/page.html", PAGE_HTML)
    root.write("hello.txt", "hello\n")
    root.write("style.css", "h1#h { color: rgb(0, 128, 0); }\n")
    root.write("a b&c.txt", "ampersand and space\n")
    root.write("<b>not bold<b>.txt", "tag\n")
    # Compressed on the fly (both above --compress-min-size).
    items = "".join(f"<li>item {i}</li>\n" for i in range(2000))
    root.write("zip/index.html", '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
               '<title>Compressed</title>\n<script src="app.js" defer></script>\n</head>\n<body>\n'
               f'<p id="out">script did not run</p>\n<ul id="list">\n{items}</ul>\n</body>\n</html>\n')
    filler = "".join(f"const unused{i} = {i} * 2; // padding so the script is worth compressing\n"
                     for i in range(100))
    root.write("zip/app.js", filler + "document.getElementById('out').textContent = "
               "'script ran: ' + document.querySelectorAll('#list li').length + ' items';\n")


def test_browser():
    require_browser()
    # The access log lives outside the served root so that it is not listed.
    with TempRoot() as root, TempRoot() as logs:
        build_site(root)
        log = os.path.join(logs.path, "access.log")
        with Server(root.path, "--cache-control", "no-cache", "--access-log", log) as s:
            try:
                run_node("browser_test.mjs", [s.url, ARTIFACTS], TIMEOUT)
            except AssertionError as e:
                if s.proc.poll() is None:
                    raise
                raise AssertionError(f"{e}\nthe server died (exit {s.proc.returncode}); its stderr:\n"
                                     + s.stderr()) from None
            s.finish()  # exit 0, no sanitizer report, before the log is read
        with open(os.path.join(root.path, "database.txt")) as f:
            stored = f.read()
        assert stored == RECORD_LINE, f"database.txt holds {stored!r}, want {RECORD_LINE!r}"
        with open(log) as f:
            lines = f.read().splitlines()

    def count(request, status):
        return sum(1 for l in lines if f'"{request} HTTP/1.1" {status} ' in l)

    # One POST, and the page and its stylesheet each revalidated with a 304
    # on the reload and on the second navigation (browser_test.mjs).
    assert count("POST /database.txt", 201) == 1, "\n".join(lines)
    assert count("GET /sub/page.html", 304) >= 2, "\n".join(lines)
    assert count("GET /style.css", 304) >= 2, "\n".join(lines)
