"""The open-descriptor cache for large files (--open-file-cache,
handlers/fd_cache.h) keeps the server's coherence rules:

- a file replaced by rename while a long response from the cached
  descriptor is under way: that response completes with the old content;
- a file truncated in place while it is being sent: the response ends early
  and the connection closes, as without the cache;
- a change made by another program (a rename over the file, a file created
  where a name was missing) shows within --cache-revalidate;
- a PUT, DELETE or MOVE through the server shows at once, with one process and
  with --workers 3 (whichever worker cached the old file or the missing
  name).

No timing is asserted: "within the interval" is checked by polling with a
bound far above the interval."""
import os

from uvhlib import RawConn, Server, TempRoot, request, wait_until

MIB = 1 << 20
# Files above --inline-max go out with sendfile and are what the descriptor
# cache keeps; a short shutdown deadline so a stuck client cannot hold the
# exit for long.
ARGS = ("--inline-max", "16K", "--shutdown-timeout", "5")
LONG = ("--cache-revalidate", "60")  # the interval cannot explain what a test sees


def get(port, path="/big.bin"):
    return request(port, "GET", path)


def warm(s, path, body, times=3):
    for _ in range(times):
        r = get(s.port, path)
        assert r.status == 200 and r.body == body, f"GET {path}: {r!r}"


def start_download(port, path, first=MIB):
    """A GET read by a slow reader (a small receive window): after about
    `first` body bytes the transfer is still under way."""
    c = RawConn(port, rcvbuf=64 * 1024)
    c.send(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    r = c.read_head()
    assert r.status == 200, r
    length = int(r.get("content-length"))
    body, eof = c.read_some(first)
    assert not eof, "closed early"
    return c, length, body


def cached_fds(s, name):
    """How many of the server's descriptors name `name` in the root."""
    n = 0
    for fd in os.listdir(f"/proc/{s.proc.pid}/fd"):
        try:
            if os.readlink(f"/proc/{s.proc.pid}/fd/{fd}").endswith("/" + name):
                n += 1
        except OSError:
            pass
    return n


def test_descriptor_is_kept_between_requests_and_swept_after_the_interval():
    with TempRoot() as t:
        data = os.urandom(2 * MIB)
        t.write("big.bin", data)
        with Server(t.path, *ARGS, *LONG) as s:
            warm(s, "/big.bin", data)
            assert cached_fds(s, "big.bin") == 1, "the descriptor was not kept for the next request"
        with Server(t.path, *ARGS, "--cache-revalidate", "0.3") as s:
            warm(s, "/big.bin", data)
            # Nobody asks again: the sweep closes it.
            wait_until(lambda: cached_fds(s, "big.bin") == 0, 10, "the cached descriptor to be closed")
        with Server(t.path, *ARGS, "--open-file-cache", "0") as s:
            warm(s, "/big.bin", data)
            wait_until(lambda: cached_fds(s, "big.bin") == 0, 10, "the descriptor to be closed")


def test_rename_over_the_file_while_a_cached_response_is_sent():
    with TempRoot() as t:
        old = os.urandom(8 * MIB)
        new = os.urandom(5 * MIB)
        t.write("big.bin", old)
        with Server(t.path, *ARGS, *LONG) as s:
            warm(s, "/big.bin", old)  # the descriptor is in the cache now
            c, length, body = start_download(s.port, "/big.bin")
            assert length == len(old)
            t.write("big.new", new)
            os.rename(os.path.join(t.path, "big.new"), os.path.join(t.path, "big.bin"))
            rest, eof = c.read_some(length - len(body), timeout=30)
            c.close()
            body += rest
            assert not eof and len(body) == len(old), f"got {len(body)} of {len(old)} bytes, eof={eof}"
            assert body == old, "the response open before the rename must carry the old content whole"


def test_truncate_in_place_while_a_cached_response_is_sent():
    with TempRoot() as t:
        data = os.urandom(16 * MIB)
        path = t.write("big.bin", data)
        with Server(t.path, *ARGS, *LONG) as s:
            warm(s, "/big.bin", data, times=2)
            c, length, body = start_download(s.port, "/big.bin")
            before = len(body)
            os.truncate(path, 1000)
            rest, eof = c.read_some(length - len(body), timeout=30)
            c.close()
            body += rest
            assert eof and len(body) < length, f"expected a short body and a close, got {len(body)} of {length}"
            assert body[:before] == data[:before]
            assert s.proc.poll() is None


def test_change_by_another_program_shows_within_the_interval():
    with TempRoot() as t:
        old = os.urandom(MIB)
        new = os.urandom(MIB + 7)
        t.write("big.bin", old)
        with Server(t.path, *ARGS, "--cache-revalidate", "0.3") as s:
            warm(s, "/big.bin", old)
            t.write("big.new", new)
            os.rename(os.path.join(t.path, "big.new"), os.path.join(t.path, "big.bin"))
            wait_until(lambda: get(s.port).body == new, 10, "the renamed file to be served")
            # A name that was missing, created by another program.
            assert get(s.port, "/later.bin").status == 404
            assert get(s.port, "/later.bin").status == 404  # now from the cache
            t.write("later.bin", new)
            wait_until(lambda: get(s.port, "/later.bin").status == 200, 10, "the new file to be served")
            assert get(s.port, "/later.bin").body == new


def writes_show_at_once(extra):
    with TempRoot() as t:
        v1 = os.urandom(100 * 1024)
        v2 = os.urandom(120 * 1024)
        v3 = os.urandom(90 * 1024)
        t.write("f.bin", v1)
        with Server(t.path, *ARGS, *LONG, *extra) as s:
            # Each GET on a new connection: with --workers, every worker
            # gets some and caches the descriptor (or, later, the 404).
            warm(s, "/f.bin", v1, times=12)
            r = request(s.port, "PUT", "/f.bin", body=v2)
            assert r.status == 204, r
            for i in range(12):
                r = get(s.port, "/f.bin")
                assert r.status == 200 and r.body == v2, f"GET {i} after the PUT: {r.status}, old content"
            r = request(s.port, "DELETE", "/f.bin")
            assert r.status == 204, r
            for i in range(12):
                assert get(s.port, "/f.bin").status == 404, f"GET {i} after the DELETE"
            r = request(s.port, "PUT", "/f.bin", body=v3)
            assert r.status == 201, r
            for i in range(12):
                r = get(s.port, "/f.bin")
                assert r.status == 200 and r.body == v3, f"GET {i} after the create: {r.status}"
            # WebDAV MOVE: the new name shows where it was missing, the old
            # one is gone, on every worker.
            for i in range(12):
                assert get(s.port, "/g.bin").status == 404
            r = request(s.port, "MOVE", "/f.bin", headers={"Destination": "/g.bin"})
            assert r.status == 201, r
            for i in range(12):
                r = get(s.port, "/g.bin")
                assert r.status == 200 and r.body == v3, f"GET {i} of the MOVE's destination: {r.status}"
                assert get(s.port, "/f.bin").status == 404, f"GET {i} of the MOVE's source"


def test_put_delete_and_move_show_at_once():
    writes_show_at_once(())


def test_put_delete_and_move_show_at_once_with_workers():
    writes_show_at_once(("--workers", "3"))


def test_ranges_and_conditionals_from_a_cached_descriptor():
    with TempRoot() as t:
        data = os.urandom(MIB)
        t.write("big.bin", data)
        with Server(t.path, *ARGS, *LONG) as s:
            warm(s, "/big.bin", data, times=2)
            r = request(s.port, "GET", "/big.bin", headers={"Range": "bytes=100-199"})
            assert r.status == 206 and r.body == data[100:200]
            r = request(s.port, "GET", "/big.bin", headers={"Range": "bytes=0-9,1000-1009"})
            assert r.status == 206 and data[:10] in r.body and data[1000:1010] in r.body
            etag = get(s.port).get("etag")
            r = request(s.port, "GET", "/big.bin", headers={"If-None-Match": etag})
            assert r.status == 304 and r.body == b""
            r = request(s.port, "HEAD", "/big.bin")
            assert r.status == 200 and r.get("content-length") == str(len(data)) and r.body == b""


def test_a_client_that_takes_a_coding_is_not_served_the_cached_identity_file():
    import gzip
    with TempRoot() as t:
        data = os.urandom(MIB)
        t.write("big.bin", data)
        t.write("big.bin.gz", gzip.compress(data, 1))
        text = b"".join(b"line %d of a large text file\n" % i for i in range(80000))  # > 1M: streamed
        t.write("big.txt", text)
        with Server(t.path, *ARGS, *LONG) as s:
            for _ in range(2):  # the second one from the cached descriptor
                r = get(s.port)
                assert r.status == 200 and r.body == data and not r.get("content-encoding")
            r = request(s.port, "GET", "/big.bin", headers={"Accept-Encoding": "gzip"})
            assert r.status == 200 and r.get("content-encoding") == "gzip", r
            assert gzip.decompress(r.body) == data
            for _ in range(2):
                r = get(s.port, "/big.txt")
                assert r.status == 200 and r.body == text and not r.get("content-encoding")
            r = request(s.port, "GET", "/big.txt", headers={"Accept-Encoding": "gzip"})
            assert r.status == 200 and r.get("content-encoding") == "gzip", r
            assert gzip.decompress(r.body) == text
