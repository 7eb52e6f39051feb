"""Operations end to end: a rolling restart behind HAProxy with zero failed
requests, slow-client attacks, running out of descriptors, signals (drain,
log reopen), workers, socket activation."""

import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import http.client

import uvhlib
from uvhlib import Server, TempRoot, curl, free_port, recv_to_eof, run

INDEX = "<!DOCTYPE html><title>x</title>" + "x" * 540


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)  # polling a condition, bounded by the deadline
    raise AssertionError(f"timed out waiting for {what}")


def start_on(root, port, *flags):
    """A server on a chosen port (HAProxy needs to know it in advance)."""
    p = subprocess.Popen([uvhlib.BINARY, "--port", str(port), "--root", root, "--access-log", "off", *flags],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = uvhlib.read_line(p.stdout, 10)
    assert line.startswith("listening on"), line
    return p


def http_status(port, path, timeout=2):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        c.close()
        return r.status
    except OSError:
        return None


def test_rolling_restart_behind_haproxy_loses_no_request():
    with TempRoot() as root:
        root.write("index.html", INDEX)
        pa, pb, front = free_port(), free_port(), free_port()
        flags = ("--drain-delay", "1", "--shutdown-timeout", "10")
        a = start_on(root.path, pa, *flags)
        b = start_on(root.path, pb, *flags)
        cfg = tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False)
        cfg.write(f"""
global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch
    retry-on all-retryable-errors
frontend fe
    bind 127.0.0.1:{front}
    default_backend be
backend be
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 100ms fall 1 rise 2
    server a 127.0.0.1:{pa} check
    server b 127.0.0.1:{pb} check
""")
        cfg.close()
        ha = subprocess.Popen(["haproxy", "-db", "-f", cfg.name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
        try:
            wait_for(lambda: http_status(front, "/index.html") == 200, 10, "haproxy to serve")
            wrk = subprocess.Popen(["wrk", "-t2", "-c100", "-d14s", f"http://127.0.0.1:{front}/index.html"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(2)  # let the load run before the first restart (part of the scenario, not a sync)
            for name, port in (("a", pa), ("b", pb)):
                proc = a if name == "a" else b
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=20) == 0, f"backend {name} did not exit 0"
                new = start_on(root.path, port, *flags)
                if name == "a":
                    a = new
                else:
                    b = new
                wait_for(lambda: http_status(port, "/readyz") == 200, 10, f"backend {name} back")
                time.sleep(2)  # keep both in rotation a while before the next restart
            out, err = wrk.communicate(timeout=60)
            print("  " + " | ".join(l.strip() for l in out.splitlines() if "requests in" in l or "Requests/sec" in l))
            assert "Non-2xx" not in out, out
            assert "Socket errors" not in out, out
            assert int(re.search(r"(\d+) requests in", out).group(1)) > 1000, out
        finally:
            ha.terminate()
            ha.wait(timeout=10)
            for p in (a, b):
                if p.poll() is None:
                    p.terminate()
                    p.wait(timeout=20)
            os.unlink(cfg.name)


def wrk_run(url, seconds=2):
    r = run(["wrk", "-t1", "-c10", f"-d{seconds}s", url], timeout=60)
    assert "Socket errors" not in r.stdout, r.stdout
    assert "Non-2xx" not in r.stdout, r.stdout
    return int(re.search(r"(\d+) requests in", r.stdout).group(1)), float(
        re.search(r"Requests/sec:\s+([\d.]+)", r.stdout).group(1))


def test_slow_clients_do_not_starve_normal_ones():
    # What this test proves on any machine: while each slowhttptest attack
    # holds hundreds of connections, a normal client's requests all succeed
    # (no socket error, no non-2xx), and every attack connection is closed
    # afterwards. The rate ratio (target: at least 80 % of the usual rate)
    # is a performance number, measured on pinned cores by the `slowclients`
    # workload of bench/run and reported in docs/benchmarks.md; here it is
    # only printed, since a loaded 2-core CI machine cannot time it fairly.
    with TempRoot() as root:
        root.write("index.html", INDEX)
        root.write("big.bin", os.urandom(4 << 20))
        flags = ("--header-timeout", "3", "--body-timeout", "3", "--send-timeout", "5")
        with Server(root.path, *flags) as s:
            url = s.url + "index.html"
            # Slow headers against a file; slow body against the record
            # store (which reads bodies); slow read of a large file.
            for mode, extra in (("-H", ["-u", url]), ("-B", ["-u", s.url + "database.txt", "-s", "65536"]),
                                ("-X", ["-u", s.url + "big.bin", "-k", "3", "-n", "3", "-w", "10", "-y", "20",
                                        "-z", "32"])):
                args = ["chrt", "--idle", "0", "slowhttptest", mode, "-c", "1000", "-r", "500", "-i", "1", "-l", "10",
                        "-p", "3"] + extra
                _, baseline = wrk_run(url)
                attack = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    wait_for(lambda: s.fd_count() > 200, 15, f"slowhttptest {mode} to connect")
                    held = s.fd_count()
                    served, during = wrk_run(url)
                finally:
                    attack.wait(timeout=60)
                assert served > 0, f"{mode}: no request served during the attack"
                print(f"  slowhttptest {mode}: {held} descriptors held; {served} requests served, none failed; "
                      f"{during:.0f} req/s vs {baseline:.0f} before ({during / baseline:.0%}, informational)")
                # Every attack connection ends (timeouts or the attacker's close).
                wait_for(lambda: s.fd_count() < 40, 30, f"{mode} connections to close")


def test_out_of_descriptors_neither_spins_nor_crashes():
    with TempRoot() as root:
        root.write("a.txt", "A")
        with Server(root.path, prlimit="--nofile=64") as s:
            results = []
            lock = threading.Lock()

            def client():
                try:
                    c = socket.create_connection(("127.0.0.1", s.port), timeout=30)
                    c.sendall(b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    data = recv_to_eof(c)
                    c.close()
                    ok = data.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\nA")
                except OSError as e:
                    ok = repr(e)
                with lock:
                    results.append(ok)

            cpu_before = sum(int(x) for x in open(f"/proc/{s.proc.pid}/stat").read().split()[13:15])
            threads = [threading.Thread(target=client) for _ in range(200)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            cpu_after = sum(int(x) for x in open(f"/proc/{s.proc.pid}/stat").read().split()[13:15])
            served = sum(1 for r in results if r is True)
            print(f"  200 clients under RLIMIT_NOFILE=64: {served} served, "
                  f"{len(results) - served} refused or reset; server CPU {cpu_after - cpu_before} ticks")
            assert s.proc.poll() is None, "the server died"
            assert served >= 150, results[:5]
            assert cpu_after - cpu_before < 500, "the server spun"  # 5 s of CPU at most
            assert curl(s.url + "a.txt").stdout == "A"


def test_sighup_reopens_the_access_log_without_losing_lines():
    with TempRoot() as root:
        root.write("a.txt", "A")
        log = os.path.join(root.path, "..", os.path.basename(root.path) + "-access.log")
        try:
            with Server(root.path, "--access-log", log) as s:
                for _ in range(50):
                    assert curl(s.url + "a.txt").stdout == "A"
                os.rename(log, log + ".1")
                s.proc.send_signal(signal.SIGHUP)
                for _ in range(50):
                    assert curl(s.url + "a.txt").stdout == "A"
                wait_for(lambda: os.path.exists(log), 5, "the new log file")
            old = open(log + ".1").read().count("\n")
            new = open(log).read().count("\n")
            print(f"  lines before the rotation: {old}, after: {new}")
            assert old + new == 100
            assert new > 0
        finally:
            for p in (log, log + ".1"):
                if os.path.exists(p):
                    os.unlink(p)


def test_sigterm_finishes_an_inflight_upload_then_exits_0():
    with TempRoot() as root:
        s = Server(root.path, "--drain-delay", "0")
        c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        # The 100 Continue proves the server has the request in hand.
        c.sendall(b"PUT /up.bin HTTP/1.1\r\nHost: localhost\r\nContent-Length: 200000\r\nExpect: 100-continue\r\n\r\n")
        assert c.recv(100).startswith(b"HTTP/1.1 100 Continue")
        c.sendall(b"u" * 100000)
        s.proc.send_signal(signal.SIGTERM)
        c.sendall(b"u" * 100000)
        resp = recv_to_eof(c)
        assert resp.startswith(b"HTTP/1.1 201"), resp[:200]
        assert b"Connection: close" in resp
        assert s.proc.wait(timeout=20) == 0
        assert os.path.getsize(os.path.join(root.path, "up.bin")) == 200000


def test_a_blocked_stdout_log_does_not_hold_the_exit():
    with TempRoot() as root:
        root.write("a.txt", "A")
        # Default access log on stdout, which nobody reads after the first line.
        p = subprocess.Popen([uvhlib.BINARY, "--port", "0", "--root", root.path], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        url = uvhlib.read_line(p.stdout, 10).strip().split(" ")[-1]
        run(["ab", "-q", "-k", "-n", "3000", "-c", "4", url + "a.txt"], timeout=60)  # >64 KiB of log
        start = time.monotonic()
        p.send_signal(signal.SIGTERM)
        code = p.wait(timeout=30)
        print(f"  exited {code} after {time.monotonic() - start:.1f}s with a full stdout pipe")
        assert code == 0


def test_workers_restart_a_crashed_worker():
    with TempRoot() as root:
        root.write("a.txt", "A")
        with Server(root.path, "--workers", "2") as s:
            def workers():
                out = run(["pgrep", "-P", str(s.proc.pid)], check=False).stdout.split()
                return [int(x) for x in out]
            wait_for(lambda: len(workers()) == 2, 10, "two workers")
            for _ in range(20):
                assert curl(s.url + "a.txt").stdout == "A"
            victim = workers()[0]
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: len(workers()) == 2 and victim not in workers(), 10, "a replacement worker")
            for _ in range(20):
                assert curl(s.url + "a.txt").stdout == "A"
            kids = workers()
        assert s.proc.returncode == 0
        for k in kids:
            assert not os.path.exists(f"/proc/{k}") or open(f"/proc/{k}/stat").read().split()[2] == "Z"


def test_systemd_socket_activation():
    with TempRoot() as root:
        root.write("a.txt", "A")
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        port = sock.getsockname()[1]
        fd = sock.fileno()
        # systemd passes the socket as fd 3 and names the process in LISTEN_PID.
        def as_fd_3():
            if fd != 3:
                os.dup2(fd, 3)
            os.set_inheritable(3, True)  # dup2 onto itself would keep close-on-exec

        p = subprocess.Popen(["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"', uvhlib.BINARY,
                              "--root", root.path, "--access-log", "off"],
                             preexec_fn=as_fd_3, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             close_fds=False)
        try:
            line = uvhlib.read_line(p.stdout, 10)
            assert line.strip() == f"listening on http://127.0.0.1:{port}/", line
            sock.close()  # the server has its own copy
            assert curl(f"http://127.0.0.1:{port}/a.txt").stdout == "A"
        finally:
            p.terminate()
            assert p.wait(timeout=20) == 0


if __name__ == "__main__":
    uvhlib.main([v for k, v in sorted(globals().items()) if k.startswith("test_")])
