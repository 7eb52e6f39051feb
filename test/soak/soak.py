#!/usr/bin/env python3
"""Soak: mixed GET/HEAD/PUT/POST/DELETE from many clients for a long time,
with wrk adding GET load and a SIGHUP log rotation every 30 s. Some paths
are shared: every client PUTs, conditionally PUTs (If-Match), DELETEs and
reads the same few files, so writers contend with each other and with
readers, and every body read must be one whole version (self-checking
content). Passes when no unexpected status or torn body was seen, the
access log (all rotations) holds exactly one line per request the clients
sent (and for wrk between its completed count and that plus its
connections, which may be cut mid-request when it stops), the server's RSS
at the end of the load is within 5% of its value after the first minute
(judged only for runs of at least 60 s), and once the load stops its
descriptor count is back within 5% of what it held before the load.

    test/soak/soak.py --binary build/uvhttpd [--seconds 600] [--clients 16]
"""

import argparse
import hashlib
import http.client
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import uvhlib  # noqa: E402


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


SHARED = [f"/shared/s{i}.txt" for i in range(4)]
UA = "uvhttpd-soak"  # tells the clients' log lines from wrk's
WRK_CONNECTIONS = 50


def versioned_body(client, seq, size):
    """A body that says who wrote it and checks itself: a header line, then
    bytes derived from the header. A reader that gets a mix of two versions
    (a torn read) sees a mismatch."""
    head = f"v {client} {seq} {size}\n".encode()
    fill = hashlib.sha256(head).hexdigest().encode()
    return head + (fill * (size // len(fill) + 1))[:size]


def body_is_whole(data):
    head, sep, _ = data.partition(b"\n")
    try:
        _, client, seq, size = head.decode().split(" ")
        return sep == b"\n" and data == versioned_body(int(client), int(seq), int(size))
    except ValueError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="build/uvhttpd")
    ap.add_argument("--seconds", type=int, default=600, help="at least 1")
    ap.add_argument("--clients", type=int, default=16)
    args = ap.parse_args()
    uvhlib.BINARY = os.path.abspath(args.binary)

    root = tempfile.mkdtemp(prefix="uvh-soak-")
    logdir = tempfile.mkdtemp(prefix="uvh-soak-log-")
    log = os.path.join(logdir, "access.log")
    for i in range(50):
        with open(os.path.join(root, f"f{i}.txt"), "w") as f:
            f.write(f"file {i}\n" * (1 + i * 37))
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(os.urandom(3 << 20))
    os.makedirs(os.path.join(root, "up"))
    os.makedirs(os.path.join(root, "shared"))

    server = uvhlib.Server(root, "--access-log", log, "--shutdown-timeout", "10")
    pid = server.proc.pid
    probe = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    probe.request("HEAD", "/f1.txt", headers={"User-Agent": UA})
    f1_etag = probe.getresponse().getheader("ETag")
    probe.close()
    assert f1_etag, "no ETag on /f1.txt"
    stop = threading.Event()
    lock = threading.Lock()
    counts = {}
    unexpected = []
    requests_sent = [1]  # the probe; every request a client sends and gets an answer to

    def note(op, status, allowed):
        with lock:
            counts[op] = counts.get(op, 0) + 1
            if status not in allowed:
                unexpected.append((op, status))

    def client(n):
        rng = random.Random(n)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        mine = []
        seq = 0

        def ask(method, path, body=None, headers=None):
            """One request and its whole answer; counts it as sent."""
            conn.request(method, path, body=body, headers={"User-Agent": UA, **(headers or {})})
            r = conn.getresponse()
            data = r.read()
            with lock:
                requests_sent[0] += 1
            return r, data

        while not stop.is_set():
            op = rng.choice(["get", "get", "get", "head", "range", "cond", "missing", "listing", "big",
                             "put", "post", "delete_record", "delete_file",
                             "shared_get", "shared_get", "shared_put", "shared_if_match", "shared_delete"])
            try:
                if op in ("get", "head"):
                    r, _ = ask(op.upper(), f"/f{rng.randrange(50)}.txt")
                    allowed = {200}
                elif op == "range":
                    r, _ = ask("GET", f"/f{rng.randrange(50)}.txt", headers={"Range": "bytes=0-9,20-29"})
                    allowed = {206}
                elif op == "cond":
                    # A list with the current tag matches (RFC 9110 §13.1.2);
                    # f1.txt is never written during the soak.
                    r, _ = ask("GET", "/f1.txt", headers={"If-None-Match": f"\"nope\", {f1_etag}"})
                    allowed = {304}
                elif op == "missing":
                    r, _ = ask("GET", f"/nope{rng.randrange(1000)}")
                    allowed = {404}
                elif op == "listing":
                    r, _ = ask("GET", "/")
                    allowed = {200}
                elif op == "big":
                    r, _ = ask("GET", "/big.bin")
                    allowed = {200}
                elif op == "put":
                    r, _ = ask("PUT", f"/up/c{n}-{rng.randrange(20)}.txt", body=os.urandom(rng.randrange(1, 200000)))
                    allowed = {201, 204}
                elif op == "post":
                    r, _ = ask("POST", "/database.txt", body=f"client={n}&t={time.time()}",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
                    allowed = {201}
                    if r.status == 201:
                        mine.append(r.getheader("Location").rsplit("/", 1)[1])
                elif op == "delete_record":
                    if not mine:
                        continue
                    r, _ = ask("DELETE", "/database.txt/" + mine.pop(rng.randrange(len(mine))))
                    allowed = {204}
                elif op == "delete_file":
                    r, _ = ask("DELETE", f"/up/c{n}-{rng.randrange(20)}.txt")
                    allowed = {204, 404}
                elif op == "shared_get":
                    # Readers of the files every writer replaces: one whole
                    # version or none (deleted), never a mix.
                    r, data = ask("GET", rng.choice(SHARED))
                    allowed = {200, 404}
                    if r.status == 200 and not body_is_whole(data):
                        note("shared_get", "torn body", allowed)
                        continue
                elif op == "shared_put":
                    seq += 1
                    r, _ = ask("PUT", rng.choice(SHARED), body=versioned_body(n, seq, rng.randrange(1, 300000)))
                    allowed = {201, 204}
                elif op == "shared_if_match":
                    # Read, then replace only that version: another writer
                    # may have come first (412), or deleted it (GET 404).
                    path = rng.choice(SHARED)
                    r, data = ask("GET", path)
                    if r.status == 404:
                        note("shared_if_match", r.status, {404})
                        continue
                    if r.status != 200 or not body_is_whole(data):
                        note("shared_if_match", "GET " + str(r.status) + ("" if r.status != 200 else " torn"),
                             set())
                        continue
                    seq += 1
                    r, _ = ask("PUT", path, body=versioned_body(n, seq, rng.randrange(1, 100000)),
                               headers={"If-Match": r.getheader("ETag")})
                    allowed = {204, 412}
                else:  # shared_delete
                    r, _ = ask("DELETE", rng.choice(SHARED))
                    allowed = {204, 404}
                note(op, r.status, allowed)
            except (OSError, http.client.HTTPException) as e:
                note(op, repr(e), set())
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

    idle_fds = fds(pid)  # before any client: what a quiet server holds
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
    for t in threads:
        t.start()
    wrk = subprocess.Popen(["wrk", "-t1", f"-c{WRK_CONNECTIONS}", f"-d{args.seconds}s", server.url + "f3.txt"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    start = time.monotonic()
    samples = []
    rotations = 0
    # Every 30 s, and at least once in a short run.
    rotate_every = min(30, max(1, args.seconds // 2))
    next_hup = start + rotate_every
    # RSS after the first minute (or half of a shorter run) is the baseline.
    baseline_at = min(60, args.seconds / 2)
    print_every = 10 if args.seconds >= 20 else 1
    baseline = None
    while time.monotonic() - start < args.seconds:
        time.sleep(1)  # the sampling period of the soak, not synchronisation
        now = time.monotonic()
        if now >= next_hup:
            os.rename(log, f"{log}.{rotations}")
            server.proc.send_signal(signal.SIGHUP)
            rotations += 1
            next_hup += rotate_every
        samples.append((int(now - start), rss_kib(pid), fds(pid)))
        if baseline is None and now - start >= baseline_at:
            baseline = samples[-1]
        if samples[-1][0] % print_every == 0:
            print(f"  t={samples[-1][0]:4d}s rss={samples[-1][1]} KiB fds={samples[-1][2]} ops={sum(counts.values())}",
                  flush=True)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    wrk_out, _ = wrk.communicate(timeout=120)
    # RSS: the last sample under load against the one after the first
    # minute. Descriptors: a quiet server against itself before the load (the
    # count under load moves with the requests in flight); a leak shows as
    # growth. The last connections may take a moment to close.
    end = samples[-1]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and fds(pid) > idle_fds:
        time.sleep(0.2)  # polling, bounded
    quiet_fds = fds(pid)
    code = server.stop()
    stderr = server.stderr()
    lines = mine_lines = 0
    for f in os.listdir(logdir):
        with open(os.path.join(logdir, f), errors="replace") as fh:
            for line in fh:
                lines += 1
                if line.rstrip("\n").endswith(f'"{UA}"'):
                    mine_lines += 1
    m = re.search(r"(\d+) requests in", wrk_out)
    wrk_done = int(m.group(1)) if m else -1
    wrk_lines = lines - mine_lines
    # The clients' requests are counted exactly; wrk's are what it completed
    # plus at most one cut request per connection when it stopped.
    log_ok = mine_lines == requests_sent[0] and wrk_done <= wrk_lines <= wrk_done + WRK_CONNECTIONS

    base = baseline or samples[0]
    rss_change = (end[1] - base[1]) / base[1]
    rss_judged = args.seconds >= 60
    # Two descriptors of slack: the record store's file and directory stay
    # open once the first record was written.
    fd_change = max(0, quiet_fds - idle_fds - 2) / max(idle_fds, 1)
    wrk_summary = " | ".join(l.strip() for l in wrk_out.splitlines() if "requests in" in l or "Socket errors" in l
                             or "Non-2xx" in l)
    print(f"\nsoak: {args.seconds}s, {args.clients} clients + wrk -c{WRK_CONNECTIONS}; {sum(counts.values())} mixed "
          f"operations; {rotations} log rotations, {lines} log lines")
    print(f"  access log: {mine_lines} lines for the {requests_sent[0]} requests the clients sent, "
          f"{wrk_lines} for wrk's {wrk_done} completed (at most +{WRK_CONNECTIONS}): {'ok' if log_ok else 'WRONG'}")
    print(f"  operations: {dict(sorted(counts.items()))}")
    print(f"  wrk: {wrk_summary}")
    print(f"  under load: at t={base[0]}s (the baseline) rss {base[1]} KiB, fds {base[2]}; at the end (t={end[0]}s) "
          f"rss {end[1]} KiB, fds {end[2]} (rss {rss_change:+.1%}"
          f"{'' if rss_judged else ', not judged: a run under 60 s is all warm-up'})")
    print(f"  quiet: fds {idle_fds} before the load, {quiet_fds} after it ({fd_change:+.1%})")
    print(f"  unexpected statuses: {len(unexpected)} {unexpected[:10]}")
    print(f"  exit code after SIGTERM: {code}")
    sanitizer = [mark for mark in uvhlib.SANITIZER_MARKS if mark in stderr]
    if sanitizer:
        print(f"  sanitizer report on stderr: {sanitizer}\n{stderr}")
    ok = (not unexpected and (abs(rss_change) <= 0.05 or not rss_judged) and abs(fd_change) <= 0.05 and code == 0
          and log_ok and not sanitizer and wrk_done >= 0
          and "Socket errors" not in wrk_out and "Non-2xx" not in wrk_out)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(logdir, ignore_errors=True)
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
