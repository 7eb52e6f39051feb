#!/usr/bin/env python3
"""Soak: mixed GET/HEAD/PUT/POST/DELETE from many clients for a long time,
with wrk adding GET load and a SIGHUP log rotation every 30 s. Passes when
no unexpected status was seen, the server's RSS at the end of the load is
within 5% of its value after the first minute, and once the load stops its
descriptor count is back within 5% of what it held before the load.

    test/soak/soak.py --binary build/uvhttpd [--seconds 600] [--clients 16]
"""

import argparse
import http.client
import os
import random
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="build/uvhttpd")
    ap.add_argument("--seconds", type=int, default=600)
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

    server = uvhlib.Server(root, "--access-log", log, "--shutdown-timeout", "10")
    pid = server.proc.pid
    probe = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    probe.request("HEAD", "/f1.txt")
    f1_etag = probe.getresponse().getheader("ETag")
    probe.close()
    assert f1_etag, "no ETag on /f1.txt"
    stop = threading.Event()
    lock = threading.Lock()
    counts = {}
    unexpected = []

    def note(op, status, allowed):
        with lock:
            counts[op] = counts.get(op, 0) + 1
            if status not in allowed:
                unexpected.append((op, status))

    def client(n):
        rng = random.Random(n)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        mine = []
        while not stop.is_set():
            op = rng.choice(["get", "get", "get", "head", "range", "cond", "missing", "listing", "big",
                             "put", "post", "delete_record", "delete_file"])
            try:
                if op in ("get", "head"):
                    conn.request(op.upper(), f"/f{rng.randrange(50)}.txt")
                    allowed = {200}
                elif op == "range":
                    conn.request("GET", f"/f{rng.randrange(50)}.txt", headers={"Range": "bytes=0-9,20-29"})
                    allowed = {206}
                elif op == "cond":
                    # A list with the current tag matches (RFC 9110 §13.1.2);
                    # f1.txt is never written during the soak.
                    conn.request("GET", "/f1.txt", headers={"If-None-Match": f"\"nope\", {f1_etag}"})
                    allowed = {304}
                elif op == "missing":
                    conn.request("GET", f"/nope{rng.randrange(1000)}")
                    allowed = {404}
                elif op == "listing":
                    conn.request("GET", "/")
                    allowed = {200}
                elif op == "big":
                    conn.request("GET", "/big.bin")
                    allowed = {200}
                elif op == "put":
                    name = f"/up/c{n}-{rng.randrange(20)}.txt"
                    conn.request("PUT", name, body=os.urandom(rng.randrange(1, 200000)))
                    allowed = {201, 204}
                elif op == "post":
                    conn.request("POST", "/database.txt", body=f"client={n}&t={time.time()}",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
                    allowed = {201}
                elif op == "delete_record":
                    if not mine:
                        continue
                    conn.request("DELETE", "/database.txt/" + mine.pop(rng.randrange(len(mine))))
                    allowed = {204}
                else:
                    conn.request("DELETE", f"/up/c{n}-{rng.randrange(20)}.txt")
                    allowed = {204, 404}
                r = conn.getresponse()
                r.read()
                if op == "post" and r.status == 201:
                    mine.append(r.getheader("Location").rsplit("/", 1)[1])
                note(op, r.status, allowed)
            except (OSError, http.client.HTTPException) as e:
                note(op, repr(e), allowed)
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

    idle_fds = fds(pid)  # before any client: what a quiet server holds
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
    for t in threads:
        t.start()
    wrk = subprocess.Popen(["wrk", "-t1", "-c50", f"-d{args.seconds}s", server.url + "f3.txt"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    start = time.monotonic()
    samples = []
    rotations = 0
    next_hup = start + 30
    baseline = None
    while time.monotonic() - start < args.seconds:
        time.sleep(1)  # the sampling period of the soak, not synchronisation
        now = time.monotonic()
        if now >= next_hup:
            os.rename(log, f"{log}.{rotations}")
            server.proc.send_signal(signal.SIGHUP)
            rotations += 1
            next_hup += 30
        if int(now - start) % 10 == 0:
            samples.append((int(now - start), rss_kib(pid), fds(pid)))
            if baseline is None and now - start >= 60:
                baseline = samples[-1]
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
    lines = sum(open(os.path.join(logdir, f)).read().count("\n") for f in os.listdir(logdir))

    base = baseline or samples[0]
    rss_change = (end[1] - base[1]) / base[1]
    # Two descriptors of slack: the record store's file and directory stay
    # open once the first record was written.
    fd_change = max(0, quiet_fds - idle_fds - 2) / max(idle_fds, 1)
    wrk_summary = " | ".join(l.strip() for l in wrk_out.splitlines() if "requests in" in l or "Socket errors" in l
                             or "Non-2xx" in l)
    print(f"\nsoak: {args.seconds}s, {args.clients} clients + wrk -c50; {sum(counts.values())} mixed operations; "
          f"{rotations} log rotations, {lines} log lines")
    print(f"  operations: {dict(sorted(counts.items()))}")
    print(f"  wrk: {wrk_summary}")
    print(f"  under load: after the first minute rss {base[1]} KiB, fds {base[2]}; at the end (t={end[0]}s) "
          f"rss {end[1]} KiB, fds {end[2]} (rss {rss_change:+.1%})")
    print(f"  quiet: fds {idle_fds} before the load, {quiet_fds} after it ({fd_change:+.1%})")
    print(f"  unexpected statuses: {len(unexpected)} {unexpected[:10]}")
    print(f"  exit code after SIGTERM: {code}")
    ok = (not unexpected and abs(rss_change) <= 0.05 and abs(fd_change) <= 0.05 and code == 0
          and "Socket errors" not in wrk_out and "Non-2xx" not in wrk_out)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(logdir, ignore_errors=True)
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
