"""File bodies and the kernel's send queue: --send-buffer-fast, the larger
TCP_NOTSENT_LOWAT a reader gets once one sendfile step took 1 MiB, bounded
by --send-buffer-fast-total over all connections and taken back from a
reader that falls behind (core/sender.cpp, update_send_boost); and the
response head corked (MSG_MORE) in front of its file body."""

import os
import re
import threading
import time

import pytest

import uvhlib
from uvhlib import RawConn, Server, TempRoot, curl, request, run

FAST = "uvhttpd_send_buffer_fast_connections"
FAST_TOTAL = "uvhttpd_send_buffer_fast_total"


def metric(port, name):
    r = request(port, "GET", "/metrics")
    assert r.status == 200
    m = re.search(rf"^{re.escape(name)} (\S+)$", r.body.decode(), re.M)
    assert m, f"{name} not in /metrics"
    return int(float(m.group(1)))


def sparse(root, name, size):
    """A file of `size` zero bytes that costs no disk and reads fast."""
    with open(os.path.join(root.path, name), "wb") as f:
        f.truncate(size)


def download(port, path):
    """curl's byte count and status for one GET, body to /dev/null."""
    r = curl("-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", f"http://127.0.0.1:{port}{path}",
             timeout=120)
    code, size = r.stdout.split()
    return int(code), int(size)


def fast_downloads(port, path, size, tries=5):
    """Downloads `path` with curl until the server has given a connection
    the larger buffer: curl reads as fast as loopback goes, so one sendfile
    step takes 1 MiB, unless a loaded machine kept curl off its CPU for the
    whole download (then the next try, on a new connection)."""
    for _ in range(tries):
        assert download(port, path) == (200, size)
        if metric(port, FAST_TOTAL) >= 1:
            return
    raise AssertionError(f"no fast send buffer after {tries} downloads of {size} bytes")


def test_fast_reader_gets_the_larger_buffer_and_gives_it_back_at_close():
    with TempRoot() as root:
        sparse(root, "big.bin", 64 << 20)
        with Server(root.path) as s:
            assert metric(s.port, FAST_TOTAL) == 0
            fast_downloads(s.port, "/big.bin", 64 << 20)
            uvhlib.wait_until(lambda: metric(s.port, FAST) == 0, 10, "the closed connection's slot to come back")


@pytest.mark.parametrize("flags", [("--send-buffer-fast", "0"), ("--send-buffer-fast", "256K"),
                                   ("--send-buffer-fast-total", "1M"), ("--send-buffer", "0")],
                         ids=["fast-0", "fast-not-above-send-buffer", "total-below-one", "send-buffer-0"])
def test_no_larger_buffer_when_turned_off(flags):
    with TempRoot() as root:
        sparse(root, "big.bin", 32 << 20)
        with Server(root.path, *flags) as s:
            assert download(s.port, "/big.bin") == (200, 32 << 20)
            assert metric(s.port, FAST_TOTAL) == 0
            assert metric(s.port, FAST) == 0


def test_slots_bound_the_fast_readers_at_once():
    """--send-buffer-fast-total 8M with 4M each: two slots, whatever the
    number of fast downloads; every download still completes whole."""
    with TempRoot() as root:
        sparse(root, "big.bin", 256 << 20)
        with Server(root.path, "--send-buffer-fast", "4M", "--send-buffer-fast-total", "8M") as s:
            results, errors = [], []

            def one():
                try:
                    results.append(download(s.port, "/big.bin"))
                except Exception as e:  # reported below, with the others
                    errors.append(repr(e))

            threads = [threading.Thread(target=one) for _ in range(4)]
            for t in threads:
                t.start()
            peak = 0
            while any(t.is_alive() for t in threads):
                peak = max(peak, metric(s.port, FAST))
            for t in threads:
                t.join(timeout=120)
            assert not errors, errors
            assert results == [(200, 256 << 20)] * 4, results
            assert peak <= 2, peak
            fast_downloads(s.port, "/big.bin", 256 << 20)
            uvhlib.wait_until(lambda: metric(s.port, FAST) == 0, 10, "every slot to come back")


def test_reader_that_stops_after_a_fast_start_is_bounded_and_resumes():
    """The slow-read attack after a fast start: a reader takes 16 MiB at
    full speed (and gets the larger buffer), then stops reading. What the
    server has queued for it stays within --send-buffer-fast plus the
    reader's window; when it reads again it gets the rest, byte for byte."""
    size = 96 << 20
    with TempRoot() as root:
        with open(os.path.join(root.path, "big.bin"), "wb") as f:
            block = bytes(range(256)) * 4096  # 1 MiB with a pattern, so order shows
            for _ in range(size >> 20):
                f.write(block)
        with Server(root.path, "--send-buffer-fast", "4M") as s:
            with RawConn(s.port, rcvbuf=256 << 10) as c:
                c.send(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
                r = c.read_head()
                assert r.status == 200 and int(r.get("content-length")) == size
                got = bytearray(c.buf)
                c.buf = b""
                deadline = time.monotonic() + 60
                while len(got) < (16 << 20):
                    got += c._recv(deadline, 1 << 20)
                boosted = metric(s.port, FAST_TOTAL) >= 1
                print(f"  reader got the larger buffer: {boosted}")
                # Stalled: the server's queue for it stops growing.
                server_port, client_port = s.port, c.sock.getsockname()[1]
                last = [-1]

                def settled():
                    tx = uvhlib.tcp_queues(server_port, client_port)[0]
                    same = tx == last[0]
                    last[0] = tx
                    return same

                uvhlib.wait_until(settled, 30, "the server's send queue to settle", interval=0.5)
                queued = last[0]
                print(f"  stalled reader: {queued} bytes queued by the server")
                # --send-buffer-fast unsent, plus what is in flight inside the
                # reader's 256 KiB window (doubled by the kernel), plus one
                # sendfile step's last pages.
                assert queued <= (4 << 20) + (1 << 20), queued
                while len(got) < size:
                    chunk = c._recv(deadline, 1 << 20)
                    assert chunk, f"connection closed after {len(got)} bytes"
                    got += chunk
                assert len(got) == size
                assert bytes(got[:1 << 20]) == block and bytes(got[-(1 << 20):]) == block
                assert got == block * (size >> 20)
            uvhlib.wait_until(lambda: metric(s.port, FAST) == 0, 10, "the slot to come back at close")


def test_flag_limits():
    for args in (["--send-buffer-fast", "65M"], ["--send-buffer-fast", "x"], ["--send-buffer-fast-total", "-1"]):
        r = run([uvhlib.BINARY, *args], check=False, timeout=10)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        lines = r.stderr.strip().split("\n")
        assert len(lines) == 1 and lines[0].startswith("uvhttpd: "), (args, r.stderr)


def test_corked_head_leaves_with_its_body():
    """The head of a file response waits (MSG_MORE) for the body's first
    bytes; every kind of file body still arrives whole and at once: a whole
    file, one range, several ranges (part heads between file pieces), an
    empty file, and the same on one keep-alive connection in a row."""
    with TempRoot() as root:
        data = os.urandom(300_000)
        root.write("f.bin", data)
        root.write("empty.bin", b"")
        with Server(root.path, "--inline-max", "0", "--cache-size", "0") as s:
            with RawConn(s.port, nodelay=True) as c:
                for _ in range(3):
                    c.send(b"GET /f.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    r = c.read_head()
                    assert r.status == 200
                    assert c.read_body(r, timeout=10) == data
                    c.send(b"GET /f.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes=1000-1999\r\n\r\n")
                    r = c.read_head()
                    assert r.status == 206
                    assert c.read_body(r, timeout=10) == data[1000:2000]
                    c.send(b"GET /empty.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    r = c.read_head()
                    assert r.status == 200
                    assert c.read_body(r, timeout=10) == b""
            r = request(s.port, "GET", "/f.bin", headers={"Range": "bytes=0-9,100000-100009"})
            assert r.status == 206
            assert data[0:10] in r.body and data[100000:100010] in r.body
            assert r.get("content-type").startswith("multipart/byteranges")
