"""Load from real clients (ab, h2load, wrk) against the real binary, and
bounded memory for a slow reader of a large file. These are correctness
checks under load (no failures, no socket errors); speed is measured by
bench/run, never asserted here."""

import os
import re
import socket
import time

from uvhlib import RawConn, Server, TempRoot, run

INDEX = ("<!DOCTYPE html>\n<html><head><title>uvhttpd</title></head><body>\n"
         + "<p>" + "x" * 480 + "</p>\n</body></html>\n")
INDEX = INDEX + " " * (571 - len(INDEX))
assert len(INDEX) == 571


def site():
    root = TempRoot().__enter__()
    root.write("index.html", INDEX)
    return root


def test_ab_keepalive_200k():
    root = site()
    with Server(root.path) as s:
        r = run(["ab", "-q", "-k", "-n", "200000", "-c", "50", s.url + "index.html"], timeout=300)
        failed = int(re.search(r"Failed requests:\s+(\d+)", r.stdout).group(1))
        keepalive = int(re.search(r"Keep-Alive requests:\s+(\d+)", r.stdout).group(1))
        complete = int(re.search(r"Complete requests:\s+(\d+)", r.stdout).group(1))
        assert complete == 200000 and failed == 0 and keepalive == 200000, r.stdout
    root.__exit__()


def test_ab_http10_without_keepalive():
    root = site()
    with Server(root.path) as s:
        r = run(["ab", "-q", "-n", "5000", "-c", "20", s.url + "index.html"], timeout=300)
        failed = int(re.search(r"Failed requests:\s+(\d+)", r.stdout).group(1))
        assert failed == 0, r.stdout
    root.__exit__()


def test_h2load_pipelined_200k():
    root = site()
    with Server(root.path) as s:
        r = run(["h2load", "--h1", "-n", "200000", "-c", "50", "-m", "16", s.url + "index.html"], timeout=300)
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored",
                      r.stdout)
        assert m, r.stdout
        assert m.group(4) == "200000" and m.group(5) == "0" and m.group(6) == "0", r.stdout
    root.__exit__()


def test_wrk_1000_connections_no_socket_errors():
    root = site()
    with Server(root.path) as s:
        r = run(["wrk", "-t2", "-c1000", "-d5s", s.url + "index.html"], timeout=120)
        assert "Socket errors" not in r.stdout, r.stdout
        assert "Non-2xx" not in r.stdout, r.stdout
        assert int(re.search(r"(\d+) requests in", r.stdout).group(1)) > 1000, r.stdout
    root.__exit__()


def test_slow_reader_of_a_1gib_file_stays_small():
    root = site()
    path = os.path.join(root.path, "huge.bin")
    with open(path, "wb") as f:
        f.truncate(1 << 30)  # sparse: reads as zeros, costs no disk
    with Server(root.path) as s:
        before = s.rss_kib()
        c = RawConn(s.port, timeout=10)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.send(b"GET /huge.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        got = 0
        peak = before
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            got += len(c.sock.recv(16384))
            time.sleep(0.002)  # pacing the reader, not synchronisation
            peak = max(peak, s.rss_kib())
        c.close()
        assert got > 0
        growth = peak - before
        print(f"  read {got} bytes slowly; server RSS {before} KiB -> peak {peak} KiB (+{growth})")
        assert growth < 8 * 1024, f"RSS grew by {growth} KiB"
    root.__exit__()
