"""Operations end to end: a rolling restart behind HAProxy with zero failed
requests, slow-client attacks, running out of descriptors, signals (drain,
log reopen), workers, socket activation."""

import os
import re
import signal
import socket
import subprocess
import threading
import time

import uvhlib
from uvhlib import PeerClosed, RawConn, Server, TempRoot, curl, free_port, recv_to_eof, run

INDEX = "<!DOCTYPE html><title>x</title>" + "x" * 540


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)  # polling a condition, bounded by the deadline
    raise AssertionError(f"timed out waiting for {what}")


def start_on(root, port, *flags):
    """A server on a chosen port (HAProxy needs to know it in advance). A
    Server: it must exit 0 on SIGTERM like every other (uvhlib)."""
    return Server(root, *flags, port=port)


def http_status(port, path, timeout=2):
    try:
        return uvhlib.request(port, "GET", path, timeout=timeout).status
    except (OSError, PeerClosed):
        return None


def haproxy_stats(sock_path):
    """HAProxy's `show stat` CSV from its stats socket, as
    {(proxy, server): {column: value}}."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sock_path)
    s.sendall(b"show stat\n")
    data = recv_to_eof(s, timeout=5).decode()
    s.close()
    lines = [l for l in data.splitlines() if l]
    cols = lines[0].lstrip("# ").split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(cols, line.split(",")))
        out[(row["pxname"], row["svname"])] = row
    return out


def num(row, col):
    return int(row.get(col) or 0)


def test_rolling_restart_behind_haproxy_loses_no_request():
    """Both backends restarted in turn under wrk load, behind HAProxy set
    up the way a careful operator would: health checks on /readyz, and
    retries only for the keep-alive races a proxy cannot avoid (a
    connection refused, or a reused idle connection that the server closed
    as the request went out: `retry-on conn-failure empty-response`, with
    HAProxy's default of 3 retries to the same server). No redispatch, no
    retry of a 503 or of a reset mid-response, so it is uvhttpd's drain
    (/readyz at 503 for --drain-delay, in-flight requests finished, then the
    listener closed) that keeps every request whole. Zero non-2xx, zero
    socket errors, zero 4xx/5xx at HAProxy; the retries it made are counted
    from its stats socket and printed."""
    with TempRoot() as root, TempRoot() as ha_dir:
        root.write("index.html", INDEX)
        pa, pb, front = free_port(), free_port(), free_port()
        flags = ("--drain-delay", "1", "--shutdown-timeout", "10")
        servers = {"a": start_on(root.path, pa, *flags), "b": start_on(root.path, pb, *flags)}
        ports = {"a": pa, "b": pb}
        stats_sock = os.path.join(ha_dir.path, "stats.sock")
        cfg = ha_dir.write("haproxy.cfg", f"""
global
    maxconn 4096
    stats socket {stats_sock} mode 600 level admin
    log stderr format raw local0
defaults
    mode http
    log global
    option httplog
    option dontlog-normal
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retry-on conn-failure empty-response
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
        # HAProxy's log (abnormal requests only: errors, retries) and its
        # warnings go to a file, shown with the counters.
        ha_log = open(os.path.join(ha_dir.path, "haproxy.log"), "w+")
        ha = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=subprocess.DEVNULL, stderr=ha_log)
        wrk = None
        try:
            wait_for(lambda: http_status(front, "/index.html") == 200, 10, "haproxy to serve")

            def stat(sv):
                return haproxy_stats(stats_sock)[("be", sv)]

            def served_by(sv):
                return num(stat(sv), "stot")

            def up_and_served(sv, n):
                row = stat(sv)
                return row["status"] == "UP" and num(row, "stot") >= n

            # The load runs for at most 120 s; it is stopped (SIGINT makes
            # wrk print its summary) once both restarts are done.
            wrk = subprocess.Popen(["wrk", "-t2", "-c100", "-d120s", f"http://127.0.0.1:{front}/index.html"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            # Both backends carry load before the first restart.
            start = {sv: served_by(sv) for sv in ports}
            wait_for(lambda: all(served_by(sv) >= start[sv] + 5000 for sv in ports), 60,
                     "both backends to serve 5000 requests under load")
            for name in ("a", "b"):
                servers[name].finish()  # SIGTERM: drains, and must exit 0
                servers[name] = start_on(root.path, ports[name], *flags)
                # Back in rotation and carrying load before the next step.
                base = served_by(name)
                wait_for(lambda: up_and_served(name, base + 5000), 60,
                         f"backend {name} UP in HAProxy and serving 5000 requests")
            assert wrk.poll() is None, "wrk finished before the restarts were done"
            # HAProxy's counters before wrk stops: stopping cuts wrk's
            # requests in flight, which HAProxy counts as client errors.
            stats = haproxy_stats(stats_sock)
            wrk.send_signal(signal.SIGINT)
            out, err = wrk.communicate(timeout=60)
            fe, be = stats[("fe", "FRONTEND")], stats[("be", "BACKEND")]
            print("  " + " | ".join(l.strip() for l in out.splitlines() if "requests in" in l or "Requests/sec" in l))
            ha_log.seek(0)
            log = [l.rstrip() for l in ha_log if "[WARNING]" not in l and l.strip()]
            print(f"  HAProxy: {num(fe, 'req_tot')} requests, {num(be, 'wretr')} retries, "
                  f"{num(be, 'wredis')} redispatches, {num(be, 'econ')} connection errors, "
                  f"{num(be, 'eresp')} response errors; from the backends {num(be, 'hrsp_4xx')} 4xx and "
                  f"{num(be, 'hrsp_5xx')} 5xx, {num(fe, 'hrsp_5xx')} 5xx to clients")
            for line in log[:20]:
                print("    " + line)
            assert "Non-2xx" not in out, out
            assert "Socket errors" not in out, out
            assert int(re.search(r"(\d+) requests in", out).group(1)) > 1000, out
            # The frontend's own 400s are not counted: wrk opens and closes
            # one connection to test the address before its load (HAProxy
            # logs it as <BADREQ>, CR--).
            assert num(fe, "hrsp_5xx") == 0, fe
            assert num(be, "hrsp_4xx") == 0 and num(be, "hrsp_5xx") == 0, be
            assert num(be, "wredis") == 0, be
        finally:
            if wrk and wrk.poll() is None:
                wrk.kill()
                wrk.wait(timeout=10)
            ha.terminate()
            ha.wait(timeout=10)


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
                # Not under `chrt --idle` as bench/run does: with both cores
                # busy (ctest runs two files at once) an idle-class attacker
                # may not get to open its connections within the bound.
                args = ["slowhttptest", mode, "-c", "1000", "-r", "500", "-i", "1", "-l", "10",
                        "-p", "3"] + extra
                _, baseline = wrk_run(url)
                attack = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    wait_for(lambda: s.fd_count() > 200, 30, f"slowhttptest {mode} to connect")
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
                    with RawConn(s.port, timeout=30) as c:
                        c.send(b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                        data = recv_to_eof(c.sock)
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
            # docs/reliability.md: "all served". Accepts wait while the
            # process is out of descriptors; no client may be refused.
            assert served == 200, [r for r in results if r is not True][:5]
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
        c = RawConn(s.port, timeout=10)
        # The 100 Continue proves the server has the request in hand.
        c.send(b"PUT /up.bin HTTP/1.1\r\nHost: localhost\r\nContent-Length: 200000\r\nExpect: 100-continue\r\n\r\n")
        r = c.read_response("PUT")
        assert (r.version, r.status, r.reason) == ("HTTP/1.1", 100, "Continue"), r
        c.send(b"u" * 100000)
        s.proc.send_signal(signal.SIGTERM)
        c.send(b"u" * 100000)
        r = c.read_response("PUT", timeout=30)
        assert r.version == "HTTP/1.1" and r.status == 201, r
        assert r.get("connection") == "close", r
        rest, closed = c.read_to_eof(timeout=30)
        assert closed and rest == b"", (closed, rest[:200])
        c.close()
        s.proc.wait(timeout=20)  # exits by itself after the upload
        assert s.finish() == 0
        assert os.path.getsize(os.path.join(root.path, "up.bin")) == 200000


def test_a_blocked_stdout_log_does_not_hold_the_exit():
    with TempRoot() as root:
        root.write("a.txt", "A")
        # Default access log on stdout, which nobody reads after the first line.
        with Server(root.path, access_log_off=False) as s:
            run(["ab", "-q", "-k", "-n", "3000", "-c", "4", s.url + "a.txt"], timeout=60)  # >64 KiB of log
            start = time.monotonic()
            code = s.finish()
            print(f"  exited {code} after {time.monotonic() - start:.1f}s with a full stdout pipe")


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
        # The with-block asserted the exit status 0.
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

        with Server(root.path, "--root", root.path, "--access-log", "off", args_only=True,
                    wrap=["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"'],
                    popen={"preexec_fn": as_fd_3, "close_fds": False}) as s:
            assert s.url == f"http://127.0.0.1:{port}/", s.url
            sock.close()  # the server has its own copy
            assert curl(f"http://127.0.0.1:{port}/a.txt").stdout == "A"
