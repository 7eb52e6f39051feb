"""Regression tests for the adversarial findings against 0.1 (the hardening
issue): lost updates under If-Match, DNS rebinding and cross-site writes,
the record store reached through other URLs, setuid bits kept by PUT,
stale reads across workers and through alias paths, and a descriptor limit
lower than --max-connections. Each test failed before its fix."""

import fcntl
import json
import os
import re
import stat
import threading
import time

import uvhlib
from uvhlib import RawConn, Server, TempRoot


def request(port, method, path, body=None, headers=None, timeout=30):
    """(status, {lower-case header: value}, body): uvhlib.request, which
    sends what Python's http.client sends."""
    return uvhlib.status_of(uvhlib.request(port, method, path, body=body, headers=headers, timeout=timeout))


def stopped_cleanly(s):
    code = s.stop()
    assert code == 0, f"server exited {code}: {s.proc.stderr.read()}"


# ----------------------------------------------------- 1. If-Match races

def race_round(port, path, etag, writers, body_size):
    """`writers` connections send PUT path with If-Match: etag, all but the
    last byte; once every one has sent its head, all release the last byte
    together. Returns the statuses."""
    socks = []
    body = b"r" * body_size
    for i in range(writers):
        c = RawConn(port, timeout=30)
        head = (f"PUT {path} HTTP/1.1\r\nHost: localhost\r\nIf-Match: {etag}\r\n"
                f"Content-Length: {body_size}\r\nConnection: close\r\n\r\n").encode()
        c.send(head + body[:-1])
        socks.append(c)
    # Whether or not every writer's first check has run by now, the
    # outcome must be the same: one wins, the others see its new ETag.
    for c in socks:
        c.send(body[-1:])
    statuses = []
    for c in socks:
        statuses.append(c.read_response("PUT", timeout=30).status)
        _, closed = c.read_to_eof(timeout=30)
        assert closed, "no EOF within 30s after a Connection: close answer"
        c.close()
    return statuses


def if_match_race(extra_args, rounds):
    with TempRoot() as root:
        root.write("race.txt", "initial\n")
        with Server(root.path, *extra_args) as s:
            for n in range(rounds):
                st, h, _ = request(s.port, "HEAD", "/race.txt")
                assert st == 200, st
                statuses = race_round(s.port, "/race.txt", h["etag"], 8, 2000)
                wins = [x for x in statuses if 200 <= x < 300]
                assert len(wins) == 1 and sorted(statuses) == [204] + [412] * 7, \
                    f"round {n}: {statuses} (exactly one 204, the rest 412)"
            # DELETE with If-Match: of 8 at once, exactly one removes it.
            st, h, _ = request(s.port, "HEAD", "/race.txt")
            results = []
            lock = threading.Lock()

            def delete():
                r = request(s.port, "DELETE", "/race.txt", headers={"If-Match": h["etag"]})[0]
                with lock:
                    results.append(r)
            threads = [threading.Thread(target=delete) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert sorted(results) == [204] + [412] * 7, results
            stopped_cleanly(s)


def test_if_match_race_one_process():
    if_match_race((), 40)


def test_if_match_race_workers():
    if_match_race(("--workers", "3"), 25)


def test_create_only_race():
    """If-None-Match: * from 8 writers at once: exactly one creates."""
    with TempRoot() as root:
        with Server(root.path) as s:
            for n in range(10):
                results = []
                lock = threading.Lock()

                def create(i, n=n):
                    r = request(s.port, "PUT", f"/c{n}.txt", body=f"writer {i}\n".encode(),
                                headers={"If-None-Match": "*"})[0]
                    with lock:
                        results.append(r)
                threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(60)
                assert sorted(results) == [201] + [412] * 7, results
            stopped_cleanly(s)


# ------------------------------------------ 2. Host and Origin on writes

def test_foreign_host_cannot_write(record_store):
    with TempRoot() as root:
        root.write("keep.txt", "keep\n")
        with record_store.server(root.path) as s:
            p = s.port
            foreign = {"Host": "rebind.attacker.example"}
            st, _, body = request(p, "PUT", "/planted.html", body=b"<script>", headers=foreign)
            assert st == 421, (st, body)
            assert body.count(b"\n") == 1 and b"--allowed-host" in body, body
            assert not os.path.exists(os.path.join(root.path, "planted.html"))
            st, _, _ = request(p, "DELETE", "/keep.txt", headers=foreign)
            assert st == 421
            assert os.path.exists(os.path.join(root.path, "keep.txt"))
            st, _, _ = request(p, "MKCOL", "/d/", headers=foreign)
            assert st == 421
            st, _, _ = request(p, "POST", "/database.txt", body=b"name=x",
                               headers={**foreign, "Content-Type": "application/x-www-form-urlencoded"})
            assert st == 421
            # Reads stay open whatever the Host.
            st, _, body = request(p, "GET", "/keep.txt", headers=foreign)
            assert st == 200 and body == b"keep\n"
            # Loopback names and addresses, any port: allowed.
            for host in ("localhost", f"localhost:{p}", f"127.0.0.1:{p}", "127.9.9.9", f"[::1]:{p}",
                         "LOCALHOST", "app.localhost"):
                st, _, body = request(p, "PUT", "/ok.txt", body=host.encode(), headers={"Host": host})
                assert st in (201, 204), (host, st, body)
            stopped_cleanly(s)


def test_allowed_host_flag():
    with TempRoot() as root:
        with Server(root.path, "--allowed-host", "files.example", "--allowed-host", ".lan.example") as s:
            for host, want in (("files.example", 201), ("FILES.EXAMPLE:8080", 204), ("a.lan.example", 204),
                               ("lan.example", 204), ("evil-files.example", 421), ("files.example.evil", 421)):
                st, _, body = request(s.port, "PUT", "/f.txt", body=b"x", headers={"Host": host})
                assert st == want, (host, st, body)
            stopped_cleanly(s)


def test_cross_site_writes_refused(record_store):
    with TempRoot() as root:
        with record_store.server(root.path) as s:
            p = s.port
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            evil = {**form, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
            st, _, body = request(p, "POST", "/database.txt", body=b"name=csrf", headers=evil)
            assert st == 403, (st, body)
            assert b"cross-site" in body and body.count(b"\n") == 1, body
            st, _, body = request(p, "GET", "/database.txt")
            assert b"csrf" not in body
            # Origin alone (older browsers send no Sec-Fetch-Site).
            st, _, _ = request(p, "PUT", "/x.txt", body=b"x", headers={"Origin": "http://localhost:1"})
            assert st == 403
            st, _, _ = request(p, "PUT", "/x.txt", body=b"x", headers={"Origin": "null"})
            assert st == 403
            # same-site is another origin too (another local web app).
            st, _, _ = request(p, "PUT", "/x.txt", body=b"x", headers={"Sec-Fetch-Site": "same-site"})
            assert st == 403
            # The listing page's own form: same origin.
            st, _, _ = request(p, "POST", "/database.txt", body=b"name=ok",
                               headers={**form, "Origin": f"http://127.0.0.1:{p}", "Sec-Fetch-Site": "same-origin"})
            assert st == 201
            st, _, _ = request(p, "POST", "/database.txt", body=b"name=ok2",
                               headers={**form, "Origin": f"http://127.0.0.1:{p}"})
            assert st == 201
            # A user typing the URL or a bookmark: none.
            st, _, _ = request(p, "PUT", "/y.txt", body=b"y", headers={"Sec-Fetch-Site": "none"})
            assert st == 201
            # Reads from anywhere.
            st, _, _ = request(p, "GET", "/y.txt", headers={"Origin": "https://evil.example",
                                                           "Sec-Fetch-Site": "cross-site"})
            assert st == 200
            stopped_cleanly(s)
        with record_store.server(root.path, "--allowed-origin", "https://app.example") as s:
            st, _, body = request(s.port, "PUT", "/z.txt", body=b"z",
                                  headers={"Origin": "https://app.example", "Sec-Fetch-Site": "cross-site"})
            assert st == 201, (st, body)
            st, _, _ = request(s.port, "PUT", "/z.txt", body=b"z",
                               headers={"Origin": "https://app.example.evil", "Sec-Fetch-Site": "cross-site"})
            assert st == 403
            stopped_cleanly(s)


def test_token_writes_skip_host_check_but_not_origin():
    """With --write-token the server is meant to be reached by its public
    name, so the Host check is off; a cross-site request could still carry
    cached Basic credentials, so the Origin check stays."""
    with TempRoot() as root:
        with Server(root.path, "--write-token", "s3cret") as s:
            auth = {"Authorization": "Bearer s3cret"}
            st, _, _ = request(s.port, "PUT", "/t.txt", body=b"t", headers={**auth, "Host": "files.example.org"})
            assert st == 201
            st, _, _ = request(s.port, "PUT", "/t.txt", body=b"t",
                               headers={**auth, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
            assert st == 403
            stopped_cleanly(s)


# ------------------------------------- 4. the record store on disk, by any URL

def test_store_name_cannot_become_a_directory():
    with TempRoot() as root:
        with Server(root.path, "--create-dirs") as s:
            p = s.port
            st, _, body = request(p, "MKCOL", "/database.txt/")
            assert st == 403, (st, body)
            st, _, body = request(p, "PUT", "/database.txt/a/b", body=b"x")
            assert st == 403, (st, body)
            assert not os.path.isdir(os.path.join(root.path, "database.txt"))
            st, _, body = request(p, "POST", "/database.txt", body=b"name=a",
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert st == 201, (st, body)
            stopped_cleanly(s)


def test_store_under_another_url():
    with TempRoot() as root:
        os.mkdir(os.path.join(root.path, "data"))
        with Server(root.path, "--database", "data/records.txt") as s:
            p = s.port
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            assert request(p, "POST", "/database.txt", body=b"name=a", headers=form)[0] == 201
            store = os.path.join(root.path, "data", "records.txt")
            before = open(store, "rb").read()
            st, _, body = request(p, "PUT", "/data/records.txt", body=b"overwritten\n")
            assert st == 403, (st, body)
            st, _, body = request(p, "DELETE", "/data/records.txt")
            assert st == 403, (st, body)
            assert open(store, "rb").read() == before
            stopped_cleanly(s)


def test_store_through_a_symlink_loop():
    with TempRoot() as root:
        os.symlink(".", os.path.join(root.path, "loop"))
        with Server(root.path) as s:
            p = s.port
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            assert request(p, "POST", "/database.txt", body=b"name=a", headers=form)[0] == 201
            store = os.path.join(root.path, "database.txt")
            before = open(store, "rb").read()
            for method, body in (("PUT", b"1 name=evil\n"), ("DELETE", None)):
                st, _, text = request(p, method, "/loop/database.txt", body=body)
                assert st == 403, (method, st, text)
                st, _, text = request(p, method, "/loop/loop/database.txt", body=body)
                assert st == 403, (method, st, text)
            assert open(store, "rb").read() == before
            stopped_cleanly(s)


# ------------------------------------------------ 6. PUT drops setuid/setgid

def test_put_drops_setuid_setgid_sticky():
    with TempRoot() as root:
        tool = root.write("tool", "#!/bin/sh\necho old\n")
        os.chmod(tool, 0o6755)
        with Server(root.path) as s:
            st, _, _ = request(s.port, "PUT", "/tool", body=b"#!/bin/sh\necho evil\n")
            assert st == 204
            mode = stat.S_IMODE(os.stat(tool).st_mode)
            assert mode == 0o755, oct(mode)
            stopped_cleanly(s)


# ------------------------------- 8. read-after-write across workers and aliases

def test_read_after_write_across_workers():
    with TempRoot() as root:
        root.write("w.txt", "version 0\n")
        with Server(root.path, "--workers", "3") as s:
            stale = 0
            for n in range(1, 61):
                # Warm every worker's cache: many fresh connections.
                for _ in range(6):
                    assert request(s.port, "GET", "/w.txt")[0] == 200
                st, h, _ = request(s.port, "PUT", "/w.txt", body=f"version {n}\n".encode())
                assert st == 204
                for _ in range(3):
                    st, gh, body = request(s.port, "GET", "/w.txt")
                    if body != f"version {n}\n".encode() or gh.get("etag") != h.get("etag"):
                        stale += 1
            assert stale == 0, f"{stale} stale reads after an acknowledged PUT"
            stopped_cleanly(s)


def test_read_after_write_through_alias():
    with TempRoot() as root:
        root.write("sub/c.txt", "old\n")
        os.symlink("sub", os.path.join(root.path, "subl"))
        with Server(root.path) as s:
            for n in range(20):
                assert request(s.port, "GET", "/sub/c.txt")[0] == 200
                assert request(s.port, "GET", "/sub/c.txt")[0] == 200
                assert request(s.port, "PUT", "/subl/c.txt", body=f"new {n}\n".encode())[0] == 204
                st, _, body = request(s.port, "GET", "/sub/c.txt")
                assert body == f"new {n}\n".encode(), (n, body)
                # And the other way round, DELETE through the alias.
            assert request(s.port, "DELETE", "/subl/c.txt")[0] == 204
            assert request(s.port, "GET", "/sub/c.txt")[0] == 404
            stopped_cleanly(s)


# --------------------------------------- 12. descriptors vs --max-connections

def test_max_connections_fits_the_descriptor_limit():
    with TempRoot() as root:
        root.write("big.bin", os.urandom(1 << 20))  # sent from a descriptor, never cached
        with Server(root.path, prlimit="--nofile=128") as s:
            idle = []
            for _ in range(200):
                idle.append(RawConn(s.port, timeout=30))
            results = []
            lock = threading.Lock()

            def get(sock):
                # Connections past the cap are refused: a short 503, or a
                # reset when the refusal closes a socket with our unread
                # request in it. Both are the documented refusal.
                try:
                    sock.send(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    data = uvhlib.recv_to_eof(sock.sock, timeout=120)
                except ConnectionResetError:
                    data = b""
                with lock:
                    results.append(data)
            threads = [threading.Thread(target=get, args=(c,)) for c in idle]
            for t in threads:
                t.start()
            for t in threads:
                t.join(150)
            for c in idle:
                c.close()
            statuses = [int(r.split()[1]) if r else 0 for r in results]
            assert all(b"open files" not in r[:400] for r in results), \
                [r[:200] for r in results if b"open files" in r[:400]][:3]
            served = statuses.count(200)
            # About 86 connections fit under 128 descriptors (one each, plus
            # the reserve); their downloads take turns for descriptors, and
            # the rest wait in the backlog: all are served.
            assert served >= 25, statuses
            assert set(statuses) <= {200, 503, 0}, statuses
            for r in results:
                if r.startswith(b"HTTP/1.1 200"):
                    assert len(r) > (1 << 20), len(r)
            err = s.proc.stderr
            stopped_cleanly(s)
            log = err.read()
            assert "--max-connections" in log and "128" in log, log


# ------------------------------------------------ 7. pool starvation

def metric(port, name):
    st, _, body = request(port, "GET", "/metrics")
    assert st == 200
    m = re.search(rf"^{re.escape(name)} (\S+)$", body.decode(), re.M)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


def wait_metric(port, name, pred, what, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        v = metric(port, name)
        if pred(v):
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: {name} is {v} after {timeout}s")
        time.sleep(0.02)  # polling a condition, bounded by the deadline


def test_abandoned_work_is_cancelled_and_listings_are_capped():
    """The threadpool is held busy deterministically: the test takes a POSIX
    lock on the whole state file, which conflicts with the server's OFD
    locks, so every PUT commit waits on a pool thread. Then: queued jobs of
    connections that reset are cancelled, listings beyond their cap wait
    outside the pool, and /readyz says the server is saturated."""
    with TempRoot() as root:
        for i in range(300):
            root.write(f"big/{i:04d}.txt", "x")
        for i in range(6):
            root.write(f"f{i}.txt", "file %d\n" % i)
            root.write(f"g{i}.txt", "file %d\n" % i)
        env = {**os.environ, "UV_THREADPOOL_SIZE": "4"}
        with Server(root.path, "--max-listing-jobs", "1", "--ready-max-queue", "8", "--cache-size", "0",
                    env=env) as s:
            p = s.port
            assert request(p, "GET", "/readyz")[0] == 200
            state = os.open(os.path.join(root.path, ".uvhttpd-state"), os.O_RDWR)
            fcntl.lockf(state, fcntl.LOCK_EX, 0, 0)
            try:
                deletes = []
                for i in range(4):  # libuv's default pool has 4 threads: each DELETE's one job waits on the lock
                    c = RawConn(p, timeout=60)
                    c.send(f"DELETE /f{i}.txt HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
                    deletes.append(c)
                wait_metric(p, "uvhttpd_threadpool_queue_depth", lambda v: v >= 4, "DELETEs waiting on the lock")
                gets = []
                for i in range(6):
                    c = RawConn(p, timeout=60)
                    c.send(f"GET /g{i}.txt HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
                    gets.append(c)
                listings = []
                for i in range(10):
                    c = RawConn(p, timeout=60)
                    c.send(b"GET /big/?format=json HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    listings.append(c)
                # One listing holds the single slot (its job queued in the pool);
                # the other nine wait outside it.
                wait_metric(p, "uvhttpd_listings_waiting", lambda v: v == 9, "listings past the cap")
                assert metric(p, "uvhttpd_listings_running") == 1
                st, _, body = request(p, "GET", "/readyz")
                assert st == 503 and body == b"saturated\n", (st, body)
                cancelled0 = metric(p, "uvhttpd_jobs_cancelled_total")
                for c in gets[:4] + listings[5:]:
                    c.reset()
                wait_metric(p, "uvhttpd_jobs_cancelled_total", lambda v: v == cancelled0 + 9,
                            "jobs of reset connections cancelled")
                assert metric(p, "uvhttpd_listings_waiting") == 4
            finally:
                fcntl.lockf(state, fcntl.LOCK_UN, 0, 0)
                os.close(state)
            for c in deletes:
                assert c.read_response("DELETE", timeout=60).status == 204, "DELETE after the lock"
            for c in gets[4:]:
                assert c.read_response(timeout=60).status == 200
            for c in listings[:5]:
                r = c.read_response(timeout=60)
                assert r.status == 200, r
            for c in deletes + gets[4:] + listings[:5]:
                c.close()
            wait_metric(p, "uvhttpd_listings_running", lambda v: v == 0, "listings done")
            assert request(p, "GET", "/readyz")[0] == 200
            stopped_cleanly(s)


# ------------------------------------------ 9. listings stream (chunked)

def make_big_dir(root, n):
    d = os.path.join(root.path, "big")
    os.makedirs(d, exist_ok=True)
    for i in range(n):
        open(os.path.join(d, f"entry-{i:06d}-with-a-longer-name.txt"), "w").close()
    return d


def test_listings_stream_in_chunks_over_http11_and_close_over_http10():
    with TempRoot() as root:
        make_big_dir(root, 3000)
        root.write("small/b.txt", "b")
        root.write("small/a.txt", "a")
        os.mkdir(os.path.join(root.path, "small", "z-dir"))
        with Server(root.path) as s:
            # HTTP/1.1: chunked, the connection stays usable.
            with RawConn(s.port) as c:
                c.send(b"GET /big/?format=json HTTP/1.1\r\nHost: localhost\r\n\r\n")
                r = c.read_final()
                assert r.status == 200 and r.framing == "chunked", r
                assert r.get("content-length") is None
                doc = json.loads(r.body)
                names = [e["name"] for e in doc["entries"]]
                assert len(names) == 3000 and len(set(names)) == 3000
                assert names == sorted(names)  # up to the sort limit: sorted
                c.send(b"GET /small/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
                r = c.read_final()
                assert r.status == 200 and r.framing == "chunked"
                html = r.body.decode()
                # Directories first, then files by name; the record form stays.
                assert html.index("z-dir/") < html.index("a.txt") < html.index("b.txt")
                assert 'action="/database.txt"' in html and html.rstrip().endswith("</html>")
            # HTTP/1.0: no chunked framing; the body ends with the connection.
            with RawConn(s.port) as c:
                c.send(b"GET /small/?format=json HTTP/1.0\r\n\r\n")
                r = c.read_final()
                assert r.status == 200 and r.framing == "close", r
                assert r.get("transfer-encoding") is None and r.get("content-length") is None
                assert [e["name"] for e in json.loads(r.body)["entries"]] == ["z-dir", "a.txt", "b.txt"]
            # HEAD: GET's head, no body, and the connection goes on.
            with RawConn(s.port) as c:
                c.send(b"HEAD /small/ HTTP/1.1\r\nHost: localhost\r\n\r\n"
                       b"GET /small/a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
                h = c.read_final("HEAD")
                assert h.status == 200 and h.body == b"" and h.get("transfer-encoding") == "chunked"
                g = c.read_final()
                assert g.status == 200 and g.body == b"a"
            stopped_cleanly(s)


def test_listings_do_not_hold_memory_per_reader():
    """40 clients ask for a 20,000-entry listing and do not read: the server
    keeps a bounded amount per connection, not the whole rendered page
    (each page is about 2 MiB of JSON, plus its entries)."""
    with TempRoot() as root:
        make_big_dir(root, 20000)
        with Server(root.path) as s:
            st, _, body = request(s.port, "GET", "/big/?format=json")
            assert st == 200 and len(body) > (2 << 20), len(body)
            rss0 = s.rss_kib()
            conns = []
            for _ in range(40):
                c = RawConn(s.port, rcvbuf=4096)
                c.send(b"GET /big/?format=json HTTP/1.1\r\nHost: localhost\r\n\r\n")
                conns.append(c)
            # Every listing has started (its head is here) and stalls on its
            # reader, with no listing work left on the pool.
            for c in conns:
                assert c.read_head().status == 200
            uvhlib.wait_until(lambda: metric(s.port, "uvhttpd_threadpool_queue_depth") == 0 and
                              metric(s.port, "uvhttpd_listings_running") == 0, 60, "listings to stall")
            grown = s.rss_kib() - rss0
            for c in conns:
                c.close()
            print(f"  RSS grew {grown} KiB for 40 stalled listings")
            # Bounded per connection by the sort limit (at most 10,000 entries
            # read ahead, about 1 MiB) plus one 64 KiB window, whatever the
            # directory's size; before streaming it was the whole page and
            # its entries (262 MiB here).
            assert grown < 40 * 2048, f"RSS grew {grown} KiB for 40 stalled listings"
            stopped_cleanly(s)


def test_head_of_a_streamed_body_keeps_no_descriptor():
    """HEAD of a file sent with sendfile and of a listing: the body source is
    dropped unsent, and its descriptor with it (the fuzz target's descriptor
    invariant found this leak)."""
    with TempRoot() as root:
        root.write("big.bin", os.urandom(200_000))
        root.write("list/a.txt", "a")
        with Server(root.path) as s:
            assert request(s.port, "GET", "/big.bin")[0] == 200
            base = s.fd_count()
            for _ in range(5):
                assert request(s.port, "HEAD", "/big.bin")[0] == 200
                assert request(s.port, "HEAD", "/list/")[0] == 200
            uvhlib.wait_until(lambda: s.fd_count() <= base, 10, "descriptors of HEAD responses to be closed")
            stopped_cleanly(s)
