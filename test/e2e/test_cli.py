"""The command line and the process: flags, exit codes, the listening
line, signals, and GET/HEAD through curl and Python's http.client."""

import http.client
import os
import signal
import socket

import uvhlib
from uvhlib import Server, TempRoot, curl, parse_head, run


def test_help_and_version():
    r = run([uvhlib.BINARY, "--help"])
    assert "usage: uvhttpd [PORT]" in r.stdout
    for flag in ("--port", "--host", "--root", "--help", "--version"):
        assert flag in r.stdout, flag
    r = run([uvhlib.BINARY, "--version"])
    assert r.stdout.startswith("uvhttpd "), r.stdout


def test_bad_flags_exit_2_with_one_line():
    for args in (["--bogus"], ["--port", "70000"], ["--port", "x"], ["--port"],
                 ["--root", "/nonexistent/dir"], ["--host", "not-an-address"],
                 ["1", "2"], ["--header-timeout", "-1"]):
        r = run([uvhlib.BINARY, *args], check=False, timeout=10)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        lines = r.stderr.strip().split("\n")
        assert len(lines) == 1 and lines[0].startswith("uvhttpd: "), (args, r.stderr)
        assert r.stdout == "", (args, r.stdout)


def test_root_that_is_a_file_exits_2():
    with TempRoot() as root:
        f = root.write("file.txt", "x")
        r = run([uvhlib.BINARY, "--port", "0", "--root", f], check=False, timeout=10)
        assert r.returncode == 2 and "Not a directory" in r.stderr, r.stderr


def test_port_in_use_exits_2():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        with TempRoot() as root:
            r = run([uvhlib.BINARY, "--port", str(port), "--root", root.path], check=False, timeout=10)
            assert r.returncode == 2, r
            assert "address already in use" in r.stderr, r.stderr
    finally:
        s.close()


def test_positional_port_like_the_seed():
    with TempRoot() as root:
        root.write("a.txt", "A")
        port = uvhlib.free_port()
        with Server(root.path, str(port), "--root", root.path, args_only=True, access_log_off=False) as s:
            assert s.url == f"http://127.0.0.1:{port}/", s.url
            assert curl(f"http://127.0.0.1:{port}/a.txt").stdout == "A"
            assert s.finish(signal.SIGINT) == 0


def test_default_root_is_the_working_directory():
    with TempRoot() as root:
        root.write("cwd.txt", "here")
        with Server(None, "--port", "0", args_only=True, access_log_off=False,
                    popen={"cwd": root.path}) as s:
            assert curl(s.url + "cwd.txt").stdout == "here"


def test_curl_file_directory_missing():
    with TempRoot() as root:
        root.write("index.txt", "plain text\n")
        root.write("sub/page.html", "<p>x</p>")
        root.write("empty/.keep", "")
        with Server(root.path) as s:
            r = curl("-sI", s.url + "index.txt")
            status, h = parse_head(r.stdout)
            assert status == 200
            assert h["content-type"] == "text/plain; charset=utf-8"
            assert h["content-length"] == "11"
            for k in ("date", "server", "last-modified", "etag", "x-content-type-options"):
                assert k in h, k
            assert curl(s.url + "index.txt").stdout == "plain text\n"

            status, h = parse_head(curl("-sI", s.url + "sub").stdout)
            assert status == 301 and h["location"] == "/sub/"
            status, h = parse_head(curl("-sI", s.url + "sub/").stdout)
            assert status == 200 and h["content-type"].startswith("text/html")
            assert h["x-frame-options"] == "DENY"
            listing = curl(s.url + "sub/").stdout
            assert 'href="page.html"' in listing and "Index of /sub/" in listing
            assert curl("-L", s.url + "sub").stdout == listing

            status, h = parse_head(curl("-sI", s.url + "missing").stdout)
            assert status == 404 and h["content-type"] == "text/plain; charset=utf-8"
            assert curl(s.url + "missing").stdout.startswith("404 Not Found")


def test_http_client_keepalive_and_head():
    with TempRoot() as root:
        root.write("a.txt", "A" * 1000)
        root.write("big.bin", os.urandom(2 << 20))
        with Server(root.path) as s:
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
            for _ in range(3):
                c.request("GET", "/a.txt")
                r = c.getresponse()
                assert r.status == 200 and r.read() == b"A" * 1000
            c.request("HEAD", "/big.bin")
            r = c.getresponse()
            assert r.status == 200 and r.getheader("Content-Length") == str(2 << 20)
            assert r.read() == b""
            c.request("GET", "/big.bin")
            r = c.getresponse()
            with open(os.path.join(root.path, "big.bin"), "rb") as f:
                assert r.read() == f.read()
            c.close()


def test_ipv6_loopback():
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        raise uvhlib.Skip("no IPv6 loopback here")
    with TempRoot() as root:
        root.write("six.txt", "6")
        with Server(root.path, host="::1") as s:
            assert s.url.startswith("http://[::1]:"), s.url
            assert curl("-g", s.url + "six.txt").stdout == "6"


def test_sigterm_and_sigint_exit_0():
    with TempRoot() as root:
        for sig in (signal.SIGTERM, signal.SIGINT):
            s = Server(root.path)
            assert s.finish(sig) == 0
