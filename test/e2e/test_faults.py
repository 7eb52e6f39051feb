"""Fault injection against the real binary: a full disk during PUT, files
deleted or truncated while they are being sent, peers that reset, half-close
or never read, and EOF in the middle of a request. After each fault the
server must still serve, and its descriptor count and memory must come back.

Every wait is bounded: a socket timeout, or a poll loop on a condition (the
server's /proc/PID/fd count, a file system's free space) with a deadline."""

import hashlib
import os
import socket
import threading
import time

import uvhlib
from uvhlib import RawConn, Server, TempRoot, wait_until
from test_conformance import H, OK_BODY, req

MIB = 1 << 20
# No small-file cache (it would hide descriptor and memory effects), and a
# short shutdown deadline so that a leaked connection cannot hold the
# server's exit (and the suite) for the default 30 s.
QUIET = ("--cache-size", "0", "--shutdown-timeout", "5")
RSS_SLACK_KIB = 8 * 1024  # "a few MiB"


# ------------------------------------------------------------------ helpers

def settle_fds(s, target, timeout=10, what="descriptors"):
    """Waits for the server's descriptor count to come back to `target`."""
    try:
        wait_until(lambda: s.fd_count() <= target, timeout, what)
    except AssertionError:
        fds = {}
        for fd in os.listdir(f"/proc/{s.proc.pid}/fd"):
            try:
                fds[fd] = os.readlink(f"/proc/{s.proc.pid}/fd/{fd}")
            except OSError:
                pass
        raise AssertionError(f"{what}: {s.fd_count()} descriptors open, expected {target}: {fds}")
    return s.fd_count()


def baseline(s):
    """The server's descriptor count and RSS once it has served a request
    (lazy allocations done) and closed that connection."""
    start = s.fd_count()
    get_ok(s)
    settle_fds(s, start, what="after the warm-up")
    return s.fd_count(), s.rss_kib()


def get_ok(s, path="/ok.txt", body=OK_BODY):
    with RawConn(s.port) as c:
        c.send(req(f"GET {path} HTTP/1.1", H, "Connection: close"))
        r = c.read_final()
        assert r.status == 200 and r.body == body, f"GET {path}: {r!r}"


def check_recovered(s, fds0, rss0, what):
    """Descriptors back to the baseline, RSS within a few MiB, GET works.
    The GET comes first: once it is answered, the listener has accepted
    every earlier connection (the backlog is FIFO), so a count at the
    baseline cannot just mean "not accepted yet"."""
    get_ok(s)
    fds = settle_fds(s, fds0, what=f"{what}: descriptors")
    rss = s.rss_kib()
    print(f"  {what}: fds {fds0} -> {fds}, RSS {rss0} KiB -> {rss} KiB")
    assert rss - rss0 < RSS_SLACK_KIB, f"{what}: RSS grew from {rss0} to {rss} KiB"
    get_ok(s)
    assert s.proc.poll() is None, f"{what}: the server died"


def small_rcvbuf_conn(port, size=64 * 1024):
    """A slow reader: a small receive window (SO_RCVBUF before connect)."""
    return RawConn(port, rcvbuf=size)


def temp_files(root):
    found = []
    for d, _, files in os.walk(root):
        found += [os.path.join(d, f) for f in files if f.startswith(".uvhttpd-tmp")]
    return found


def put_big(port, path, size, chunk=64 * 1024):
    """PUTs `size` bytes while reading the answer: the server may answer
    (507, 413) before the body is all sent, and then close. Returns the
    first final response."""
    with RawConn(port, timeout=20) as c:
        c.send(req(f"PUT {path} HTTP/1.1", H, f"Content-Length: {size}"))
        errors = []

        def sender():
            try:
                block = b"x" * chunk
                left = size
                while left > 0:
                    n = min(left, chunk)
                    c.sock.sendall(block[:n])
                    left -= n
            except OSError as e:
                errors.append(e)  # the server answered and closed: expected

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        r = c.read_final("PUT")
        c.sock.shutdown(socket.SHUT_RDWR)
        t.join(20)
        assert not t.is_alive(), "the sender thread did not finish"
        return r


# ----------------------------------------------------------- a full disk

def test_disk_full_during_put():
    with uvhlib.small_tmpfs("256k") as mnt:
        disk_full_checks(mnt)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def disk_full_checks(mnt):
    keep = b"keep this content\n" * 10
    with open(os.path.join(mnt, "keep.txt"), "wb") as f:
        f.write(keep)
    with open(os.path.join(mnt, "ok.txt"), "wb") as f:
        f.write(OK_BODY)
    with Server(mnt, *QUIET) as s:
        fds0, rss0 = baseline(s)
        free0 = free_bytes(mnt)
        print(f"  tmpfs: {free0 // 1024} KiB free before the PUT")

        r = put_big(s.port, "/keep.txt", MIB)
        assert r.status == 507, f"PUT 1 MiB on a 256 KiB file system: {r!r}"
        with open(os.path.join(mnt, "keep.txt"), "rb") as f:
            assert f.read() == keep, "keep.txt changed after a failed PUT"
        assert temp_files(mnt) == [], f"temporary files left: {temp_files(mnt)}"
        get_ok(s, "/keep.txt", keep)
        # The unfinished upload gives its blocks back (its descriptor closed).
        wait_until(lambda: free_bytes(mnt) >= free0, 10, "the failed upload's space to come back")
        check_recovered(s, fds0, rss0, "after 507")

        # Fill the disk from outside, see a small PUT fail, free it, see it work.
        filler = os.path.join(mnt, "filler.bin")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass  # ENOSPC: full
        finally:
            os.close(fd)
        r = put_big(s.port, "/small.txt", 8192)
        assert r.status == 507, f"PUT on a full file system: {r!r}"
        assert not os.path.exists(os.path.join(mnt, "small.txt"))
        os.unlink(filler)
        r = put_big(s.port, "/small.txt", 8192)
        assert r.status == 201, f"PUT after freeing space: {r!r}"
        with open(os.path.join(mnt, "small.txt"), "rb") as f:
            assert f.read() == b"x" * 8192
        get_ok(s, "/small.txt", b"x" * 8192)
        assert temp_files(mnt) == [], f"temporary files left: {temp_files(mnt)}"
        check_recovered(s, fds0, rss0, "after the full disk")


# -------------------------------------------- files that change while sent

BIG = 64 * MIB


def big_file(root):
    """A 64 MiB file of random bytes (kept in memory for the comparison)."""
    data = os.urandom(BIG)
    path = os.path.join(root, "big.bin")
    with open(path, "wb") as f:
        f.write(data)
    return path, data


def start_download(port, path="/big.bin", first=MIB):
    """Starts a GET with a small receive window, reads the head and about
    `first` body bytes: the transfer is then under way, not finished."""
    c = small_rcvbuf_conn(port)
    c.send(req(f"GET {path} HTTP/1.1", H))
    r = c.read_head()
    assert r.status == 200, r
    length = int(r.get("content-length"))
    body, eof = c.read_some(min(first, length))
    assert not eof, "closed early"
    return c, length, body


def test_file_deleted_while_being_sent():
    with TempRoot() as t:
        t.write("ok.txt", OK_BODY)
        path, data = big_file(t.path)
        with Server(t.path, "--inline-max", "16K", *QUIET) as s:
            fds0, rss0 = baseline(s)
            c, length, body = start_download(s.port)
            assert length == BIG
            os.unlink(path)
            rest, eof = c.read_some(length - len(body), timeout=30)
            body += rest
            c.close()
            # An unlinked file stays readable through the descriptor the
            # server holds (POSIX unlink), so the transfer completes with
            # every byte of the old content (docs/reliability.md).
            print(f"  deleted mid-transfer: got {len(body)} of {length} bytes, eof={eof}")
            assert len(body) == length and not eof, \
                f"deleted mid-transfer: {len(body)} of {length} bytes, eof={eof}; the docs say it completes"
            assert body == data, "bytes differ from the file's"
            check_recovered(s, fds0, rss0, "after the delete")


def test_file_truncated_while_being_sent():
    with TempRoot() as t:
        t.write("ok.txt", OK_BODY)
        path, data = big_file(t.path)
        with Server(t.path, "--inline-max", "16K", *QUIET) as s:
            fds0, rss0 = baseline(s)
            c, length, body = start_download(s.port)
            before = len(body)
            os.truncate(path, 1000)
            rest, eof = c.read_some(length - len(body), timeout=30)
            body += rest
            c.close()
            wrong = sum(1 for i in range(before, len(body), 4096) if body[i:i + 4096] != data[i:i + 4096])
            print(f"  truncated mid-transfer: got {len(body)} of {length} bytes, eof={eof}; "
                  f"{wrong} pages after the truncation differ from the original")
            assert eof and len(body) < length, \
                f"expected a short body and EOF, got {len(body)} of {length} bytes"
            assert body[:before] == data[:before], "bytes read before the truncation differ"
            # Not asserted: the bytes already queued by sendfile when the file
            # shrank are read from the page cache at transmission time, and
            # may arrive changed (zeros); the short body tells the client the
            # response is incomplete.
            check_recovered(s, fds0, rss0, "after the truncation")


# ------------------------------------------------------------ bad peers

def test_peer_resets_mid_request():
    with TempRoot() as t:
        t.write("ok.txt", OK_BODY)
        with Server(t.path, *QUIET) as s:
            fds0, rss0 = baseline(s)
            for i in range(50):
                c = RawConn(s.port)
                c.send(b"GET /ok.txt HTTP/1.1\r\nHost: localhost\r\nX-Half: " + b"v" * i)
                c.reset()
            check_recovered(s, fds0, rss0, "50 resets mid-head")


def test_peer_resets_mid_upload():
    """An upload cut by an RST: no temporary file, no target, no descriptor
    left behind."""
    with TempRoot() as t:
        t.write("ok.txt", OK_BODY)
        with Server(t.path, *QUIET) as s:
            fds0, rss0 = baseline(s)
            for i in range(30):
                c = RawConn(s.port)
                c.send(req(f"PUT /cut{i}.txt HTTP/1.1", H, f"Content-Length: {4 * MIB}"))
                c.send(b"y" * (1000, 100 * 1024, 300 * 1024)[i % 3])
                c.reset()
            check_recovered(s, fds0, rss0, "30 resets mid-upload")
            wait_until(lambda: temp_files(t.path) == [], 10, "temporary files to go")
            left = [f for f in os.listdir(t.path) if f.startswith("cut")]
            assert left == [], f"half uploads became files: {left}"


def test_peer_resets_mid_response():
    with TempRoot() as t:
        t.write("ok.txt", OK_BODY)
        t.write("big.bin", os.urandom(16 * MIB))
        t.write("mid.bin", os.urandom(200 * 1024))
        with Server(t.path, "--inline-max", "16K", *QUIET) as s:
            fds0, rss0 = baseline(s)
            for i in range(10):
                c, _, _ = start_download(s.port, "/big.bin", first=256 * 1024)
                c.reset()
            for i in range(10):
                # Pipelined: one response under way, more queued behind it.
                c = small_rcvbuf_conn(s.port)
                c.send(req("GET /mid.bin HTTP/1.1", H) * 5 + req("GET /big.bin HTTP/1.1", H))
                c.read_head()
                c.reset()
            check_recovered(s, fds0, rss0, "20 resets mid-response")


def test_half_closed_client_gets_its_answers():
    """shutdown(SHUT_WR) after the requests: every response, then EOF."""
    with TempRoot() as t:
        t.write("ok.txt", OK_BODY)
        data = os.urandom(3 * MIB)
        t.write("big.bin", data)
        with Server(t.path, "--inline-max", "16K", *QUIET) as s:
            fds0, rss0 = baseline(s)
            for n in (1, 3):
                with RawConn(s.port, timeout=20) as c:
                    c.send((req("GET /ok.txt HTTP/1.1", H) + req("GET /big.bin HTTP/1.1", H)) * n)
                    c.shutdown_write()
                    for _ in range(n):
                        r = c.read_final()
                        assert r.status == 200 and r.body == OK_BODY, r
                        r = c.read_final()
                        assert r.status == 200 and hashlib.sha256(r.body).digest() == \
                            hashlib.sha256(data).digest(), r.status
                    rest, closed = c.read_to_eof()
                    assert closed and rest == b"", (closed, rest[:100])
            # Whole uploads followed at once by the half-close: the EOF comes
            # while the PUT still waits for its handler, and must not cost
            # the request (whatever closes uploads cut by EOF).
            upload = os.urandom(600 * 1024)
            for name, framed in (("cl.bin", req("PUT /cl.bin HTTP/1.1", H, f"Content-Length: {len(upload)}",
                                                body=upload)),
                                 ("te.bin", req("PUT /te.bin HTTP/1.1", H, "Transfer-Encoding: chunked",
                                                body=b"%x\r\n" % len(upload) + upload + b"\r\n0\r\n\r\n"))):
                with RawConn(s.port, timeout=20) as c:
                    c.send(framed)
                    c.shutdown_write()
                    r = c.read_final("PUT")
                    assert r.status == 201, (name, r)
                    rest, closed = c.read_to_eof()
                    assert closed and rest == b"", (closed, rest[:100])
                with open(os.path.join(t.path, name), "rb") as f:
                    assert f.read() == upload, name
            check_recovered(s, fds0, rss0, "half-closed clients")


def test_clients_that_never_read():
    """50 pipelined GETs of a 1 MiB file, never read: the send timeout (2 s)
    frees the server's side while the client still holds its socket."""
    with TempRoot() as t:
        t.write("ok.txt", OK_BODY)
        t.write("one.bin", os.urandom(MIB))
        with Server(t.path, "--send-timeout", "2", *QUIET) as s:
            fds0, rss0 = baseline(s)
            socks = []
            for _ in range(3):
                c = small_rcvbuf_conn(s.port)
                c.send(req("GET /one.bin HTTP/1.1", H) * 50)
                socks.append(c)
            try:
                wait_until(lambda: s.fd_count() > fds0, 10, "the connections to open")
                print(f"  never-read clients connected: {s.fd_count()} descriptors")
                get_ok(s)  # others are served meanwhile
                # The condition: the server gave up on them (its descriptors
                # are back) although the clients never read or closed.
                settle_fds(s, fds0, timeout=20, what="the send timeout to close non-readers")
            finally:
                for sock in socks:
                    sock.close()
            check_recovered(s, fds0, rss0, "never-reading clients")


def test_readers_that_stop_after_a_fast_start_do_not_hold_the_threadpool():
    """A sendfile step may wait on its worker for a fast reader's socket
    (core/sender.cpp), bounded by how fast the reader takes the bytes. Six
    readers on a two-thread pool take 2 MiB of a 16 MiB file at full speed
    and then stop reading: every worker must come back, so 20 GETs of files
    that are not cached (each one a threadpool job) are all answered while
    the six stand still; when the six read again, each gets the whole file,
    byte for byte."""
    data = os.urandom(16 * MIB)
    digest = hashlib.sha256(data).hexdigest()
    with TempRoot() as t:
        t.write("ok.txt", OK_BODY)
        t.write("big.bin", data)
        for i in range(20):
            t.write(f"small{i}.txt", f"file {i}\n" * 50)
        with Server(t.path, *QUIET, "--open-file-cache", "0", env={**os.environ, "UV_THREADPOOL_SIZE": "2"}) as s:
            readers = []
            try:
                for _ in range(6):
                    c = RawConn(s.port, timeout=30)
                    c.send(req("GET /big.bin HTTP/1.1", H))
                    got = b""
                    while len(got) < 2 * MIB:
                        chunk = c.sock.recv(1 << 20)
                        assert chunk, "the server closed a reader"
                        got += chunk
                    readers.append((c, got))
                for i in range(20):
                    with RawConn(s.port, timeout=20) as c:
                        c.send(req(f"GET /small{i}.txt HTTP/1.1", H, "Connection: close"))
                        r = c.read_final()
                        assert r.status == 200 and r.body == (f"file {i}\n" * 50).encode(), r
                for c, got in readers:
                    head, _, body = got.partition(b"\r\n\r\n")
                    assert head.startswith(b"HTTP/1.1 200"), head[:100]
                    h = hashlib.sha256(body)
                    left = len(data) - len(body)
                    while left > 0:
                        chunk = c.sock.recv(min(left, 1 << 20))
                        assert chunk, "the server closed a reader mid-body"
                        h.update(chunk)
                        left -= len(chunk)
                    assert h.hexdigest() == digest
            finally:
                for c, _ in readers:
                    c.close()


def test_never_reading_client_that_closes():
    """Without a short send timeout: the client gives up first (RST after a
    bounded wait for the server to block on it)."""
    with TempRoot() as t:
        t.write("ok.txt", OK_BODY)
        t.write("one.bin", os.urandom(MIB))
        with Server(t.path, *QUIET) as s:
            fds0, rss0 = baseline(s)
            c = small_rcvbuf_conn(s.port)
            c.send(req("GET /one.bin HTTP/1.1", H) * 50)
            wait_until(lambda: s.fd_count() > fds0, 10, "the connection to open")
            c.reset()
            check_recovered(s, fds0, rss0, "a never-reading client that resets")


# --------------------------------------------------------- EOF mid-request

def test_eof_in_the_middle_of_a_head():
    with TempRoot() as t:
        t.write("ok.txt", OK_BODY)
        with Server(t.path, *QUIET) as s:
            fds0, rss0 = baseline(s)
            for part in (b"G", b"GET /ok.txt HTT", b"GET /ok.txt HTTP/1.1\r\nHost: localhost\r\n",
                         b"GET /ok.txt HTTP/1.1\r\nHost: localhost\r\nX-A: b\r\n\r"):
                with RawConn(s.port) as c:
                    c.send(part)
                    c.shutdown_write()
                    assert c.expect_eof(), f"{part!r} then EOF: the server did not close"
            check_recovered(s, fds0, rss0, "EOF mid-head")


def test_eof_in_the_middle_of_a_body():
    """A request body cut by EOF can never complete: the server closes
    (RFC 9112 §8: an incomplete message; it MAY answer first) instead of
    holding the connection and the temporary file until --body-timeout."""
    with TempRoot() as t:
        t.write("ok.txt", OK_BODY)
        with Server(t.path, *QUIET, "--body-timeout", "60") as s:
            fds0, rss0 = baseline(s)
            for body in (req("PUT /eof.txt HTTP/1.1", H, "Content-Length: 100", body=b"z" * 10),
                         req("PUT /eof.txt HTTP/1.1", H, "Transfer-Encoding: chunked", body=b"5\r\nhello\r\n")):
                with RawConn(s.port) as c:
                    c.send(body)
                    c.shutdown_write()
                    data, closed = c.read_to_eof(timeout=5)
                    assert closed, f"EOF mid-body: still open after 5 s ({body[:40]!r})"
                    assert data == b"" or data.startswith(b"HTTP/1.1 4"), data[:200]
            check_recovered(s, fds0, rss0, "EOF mid-body")
            assert temp_files(t.path) == [] and not os.path.exists(os.path.join(t.path, "eof.txt"))
            start = time.monotonic()
            assert s.finish() == 0
            print(f"  SIGTERM after the cut uploads: exited in {time.monotonic() - start:.1f}s")
