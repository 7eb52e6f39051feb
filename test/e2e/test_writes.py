"""Writes end to end: litmus, a 1 GiB upload, kill -9 in the middle of an
upload, and 64 clients appending records to two server processes that
share one root."""

import http.client
import os
import re
import signal
import threading
import time

import uvhlib
from uvhlib import Server, TempRoot, curl, run


def litmus_suite(suite, tests_run, known_failures=()):
    """Runs one litmus suite and compares its summary line exactly: how many
    tests ran, how many passed, how many failed, and which ones failed (only
    the known, documented ones). A suite that stops early (litmus skips the
    rest when `begin` fails) shows as fewer tests run."""
    with TempRoot() as root:
        with Server(root.path) as s:
            r = run(["litmus", "-k", s.url], env={**os.environ, "TESTS": suite}, check=False, timeout=180,
                    cwd=root.path)
            summary = re.search(r"summary for `%s': of (\d+) tests run: (\d+) passed, (\d+) failed" % suite, r.stdout)
            assert summary, r.stdout
            ran, passed, failed = (int(summary.group(i)) for i in (1, 2, 3))
            failures = re.findall(r"\d+\. (\w+)\.+ FAIL", r.stdout)
            print(f"  litmus {suite}: {passed}/{ran} passed; failed: {failures or 'none'}")
            assert (ran, passed, failed) == (tests_run, tests_run - len(known_failures), len(known_failures)), \
                f"litmus {suite}: expected {tests_run} run, {len(known_failures)} failed; got:\n{r.stdout}"
            assert sorted(failures) == sorted(known_failures), r.stdout


def test_litmus_basic():
    # All 16, "options" included: OPTIONS says DAV: 1, 2 (issue 11). The
    # whole WebDAV run (all five suites, no warning) is test_dav_clients.py.
    litmus_suite("basic", 16)


def test_litmus_http():
    litmus_suite("http", 4)


def make_file(path, size, chunk=1 << 20):
    block = os.urandom(chunk)
    with open(path, "wb") as f:
        left = size
        i = 0
        while left > 0:
            # Vary each block a little so a misplaced block would show.
            b = i.to_bytes(8, "little") + block[8:]
            f.write(b[:min(chunk, left)])
            left -= chunk
            i += 1


def test_curl_T_of_1_GiB_is_byte_identical_in_bounded_memory():
    with TempRoot() as root:
        src = os.path.join(root.path, "..", os.path.basename(root.path) + "-upload.bin")
        make_file(src, 1 << 30)
        try:
            with Server(root.path) as s:
                before = s.rss_kib()
                peak = [before]
                done = threading.Event()

                def watch():
                    while not done.wait(0.05):  # a sampling period, not synchronisation
                        peak[0] = max(peak[0], s.rss_kib())

                t = threading.Thread(target=watch)
                t.start()
                r = curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "-T", src, s.url + "big.bin", timeout=300)
                done.set()
                t.join()
                assert r.stdout == "201", (r.stdout, r.stderr)
                growth = peak[0] - before
                print(f"  1 GiB PUT: RSS {before} KiB -> peak {peak[0]} KiB (+{growth} KiB)")
                assert growth < 32 * 1024
            assert run(["cmp", src, os.path.join(root.path, "big.bin")], check=False).returncode == 0
        finally:
            os.unlink(src)


def temp_files(root):
    found = []
    for d, _, files in os.walk(root):
        found += [os.path.join(d, f) for f in files if f.startswith(".uvhttpd-tmp-")]
    return found


def upload_bytes(pid, root):
    """Bytes in the server's open upload files under `root` (unnamed
    O_TMPFILE files, or named .uvhttpd-tmp- ones)."""
    total = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith(root) and ("(deleted)" in target or ".uvhttpd-tmp-" in target):
                total += os.stat(f"/proc/{pid}/fd/{fd}").st_size
        except OSError:
            pass
    return total


def test_kill_9_during_a_large_PUT_keeps_the_old_file():
    with TempRoot() as root:
        root.write("target.bin", b"old content\n")
        s = Server(root.path, expect_exit=-signal.SIGKILL)
        # Start a 512 MiB upload, then kill the server once part of it is in.
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        c.putrequest("PUT", "/target.bin")
        c.putheader("Content-Length", str(512 << 20))
        c.endheaders()
        block = b"n" * (1 << 20)
        for _ in range(64):
            c.send(block)
        # The condition, not a pause: the server's unnamed upload file (an
        # O_TMPFILE, "(deleted)" in /proc/PID/fd) holds part of the body.
        uvhlib.wait_until(lambda: upload_bytes(s.proc.pid, root.path) >= 16 << 20, 30,
                          "16 MiB of the upload on disk")
        s.proc.kill()
        s.proc.wait(timeout=10)
        c.close()
        with open(os.path.join(root.path, "target.bin"), "rb") as f:
            assert f.read() == b"old content\n"
        with Server(root.path) as s2:
            assert curl(s2.url + "target.bin").stdout == "old content\n"
        assert temp_files(root.path) == [], temp_files(root.path)


def post_records(urls, total, clients, stop_after=None):
    """`clients` threads POST `total` records round-robin over `urls`.
    Returns (ids answered 201, other statuses, errors)."""
    ids, others, errors = [], [], []
    lock = threading.Lock()
    counter = iter(range(total))

    def worker(n):
        url = urls[n % len(urls)]
        host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            body = f"client={n}&seq={i}&text=line%0Abreak"
            try:
                conn.request("POST", "/database.txt", body=body,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
                r = conn.getresponse()
                r.read()
                with lock:
                    if r.status == 201:
                        ids.append(r.getheader("Location").rsplit("/", 1)[1])
                    else:
                        others.append(r.status)
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    errors.append(repr(e))
                if stop_after is not None:
                    break
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    if stop_after:
        stop_after()
    for t in threads:
        t.join(timeout=300)
    return ids, others, errors


def read_records(store, root):
    lines = store.lines(root)
    return [line.split(" ", 1)[0] for line in lines], lines


def test_two_servers_64_clients_20000_records(record_store):
    """Two servers (sharing one root in file mode; two instances of one
    database with --records) take 20,000 POSTs from 64 clients: every 201's
    id stored exactly once, every line whole."""
    with TempRoot() as root:
        with record_store.server(root.path) as a, record_store.server(root.path) as b:
            start = time.monotonic()
            ids, others, errors = post_records([a.url, b.url], 20000, 64)
            took = time.monotonic() - start
            print(f"  {record_store.name}: 20000 POSTs over 2 servers by 64 clients in {took:.1f}s "
                  f"({20000 / took:.0f}/s)")
            assert errors == [] and others == [], (errors[:3], others[:10])
        file_ids, lines = read_records(record_store, root.path)
        assert len(lines) == 20000
        assert len(set(file_ids)) == 20000, "duplicate ids"
        assert set(ids) == set(file_ids), "a 201's id is missing"
        assert all(re.fullmatch(r"\d+ client=\d+&seq=\d+&text=line%0Abreak", l) for l in lines)


def test_kill_9_during_post_load_loses_no_acknowledged_record(record_store):
    with TempRoot() as root:
        s = record_store.server(root.path, expect_exit=-signal.SIGKILL)
        killed = threading.Event()

        def killer():
            # Kill once a good number of records is in (60 kB of lines).
            try:
                uvhlib.wait_until(lambda: record_store.count(root.path) > 1500, 60,
                                  "1500 records", interval=0.005 if record_store.cluster is None else 0.05)
                killed.set()
            finally:
                s.proc.kill()  # in any case, so that the clients end
                s.proc.wait(timeout=10)

        ids, others, errors = post_records([s.url], 100000, 64, stop_after=killer)
        assert killed.is_set(), "1500 records never arrived"
        print(f"  {record_store.name}: killed after {len(ids)} acknowledged records ({len(errors)} clients cut off)")
        if record_store.cluster is None:
            with Server(root.path):  # the restart cuts a torn final line
                pass
        file_ids, lines = read_records(record_store, root.path)
        assert set(ids) <= set(file_ids), "an acknowledged record was lost"
        assert len(set(file_ids)) == len(file_ids), "duplicate ids"
        assert all(re.fullmatch(r"\d+ client=\d+&seq=\d+&text=line%0Abreak", l) for l in lines), "torn line"
