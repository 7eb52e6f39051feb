"""Shared helpers for the process-level tests: start the real binary on
port 0, read its "listening on" line, stop it, and small assertions.
Every wait is bounded; nothing sleeps to synchronise."""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

BINARY = None


def parse_args():
    global BINARY
    p = argparse.ArgumentParser()
    p.add_argument("--binary", default="build/uvhttpd")
    p.add_argument("-k", dest="only", default=None, help="run tests whose name contains this")
    a = p.parse_args()
    BINARY = os.path.abspath(a.binary)
    return a


class Skip(Exception):
    """Raised by a test that cannot run here (a missing kernel feature, no
    privileges). It is reported as skipped, never as passed: the script
    exits 77 (CTest's SKIP_RETURN_CODE) when something was skipped and
    nothing failed, and UVH_REQUIRE_ALL=1 (set by `make test`) turns it into
    a failure."""


class Deselected(Exception):
    """Raised by a test whose every case was filtered out (UVH_CASE): it did
    not run, and it did not pass either."""


# Sanitizer reports that must fail a test even when the exit code is 0
# (a report without halt_on_error, or one printed from a forked worker).
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer", "ERROR: UndefinedBehaviorSanitizer")


class Server:
    """A running uvhttpd. Use as a context manager: leaving the block stops
    it with SIGTERM and asserts that it exited with `expect_exit` (0 unless
    the test says otherwise; None: not checked, for a test that kills it on
    purpose) and that its stderr holds no sanitizer report. A server that a
    test starts without a with-block is checked the same way when the test
    ends (uvhlib.main), so no test can drop an exit status.

    `port` is 0 (the kernel picks) unless a test needs it in advance
    (HAProxy's configuration); `args_only` passes `args` without adding
    --port/--host/--root (the positional-port and default-root tests);
    `wrap` prefixes the command (prlimit, strace, a shell that sets
    LISTEN_PID); `popen` holds extra subprocess.Popen arguments."""

    started = []  # every Server of the running test, for uvhlib.main

    def __init__(self, root, *args, host="127.0.0.1", env=None, prlimit=None, expect_exit=0, port=0,
                 args_only=False, wrap=None, popen=None, access_log_off=True):
        self.root = root
        self.expect_exit = expect_exit
        self.checked = False
        # Nobody reads the server's stdout after the first line, so the
        # access log goes nowhere unless a test asks for it.
        if access_log_off and not any(a == "--access-log" for a in args):
            args = ("--access-log", "off") + tuple(args)
        if args_only:
            cmd = [BINARY, *args]
        else:
            cmd = [BINARY, "--port", str(port), "--host", host, "--root", root, *args]
        if prlimit:
            cmd = ["prlimit", prlimit, "--"] + cmd
        if wrap:
            cmd = list(wrap) + cmd
        # stderr goes to a file, not a pipe: a long sanitizer report must not
        # block the server on a pipe nobody reads.
        self.stderr_file = tempfile.TemporaryFile(mode="w+", prefix="uvh-stderr-")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr_file,
                                     env=env, text=True, **(popen or {}))
        # proc.stderr reads the same file from its start, like the pipe it
        # used to be (tests read it after the server exited).
        self.proc.stderr = open(f"/proc/self/fd/{self.stderr_file.fileno()}", "r")
        Server.started.append(self)
        try:
            line = read_line(self.proc.stdout, timeout=10)
        except AssertionError as e:
            self.proc.kill()
            self.proc.wait()
            self.checked = True
            raise AssertionError(f"{e}; stderr: {self.stderr()}") from None
        if not line.startswith("listening on http://"):
            self.proc.kill()
            self.proc.wait()
            self.checked = True
            raise AssertionError(f"unexpected first line {line!r}; stderr: {self.stderr()}")
        self.url = line.strip()[len("listening on "):]
        self.port = int(self.url.rstrip("/").rsplit(":", 1)[1])
        self.host = host

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:
            # The test already failed: stop the server, show its stderr with
            # the failure, and let the original exception through.
            self.stop()
            self.checked = True
            err = self.stderr().strip()
            if err:
                print(f"  server stderr (exit {self.proc.returncode}):\n{err}", flush=True)
            return False
        self.finish()
        return False

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"server did not stop within the timeout; stderr: {self.stderr()}")
        return self.proc.returncode

    def finish(self, sig=signal.SIGTERM, timeout=30):
        """Stops the server (if it still runs) and asserts its exit status
        and a clean stderr. Returns the exit status."""
        code = self.stop(sig, timeout)
        self.checked = True
        self.check_exit()
        return code

    def check_exit(self):
        code = self.proc.returncode
        err = self.stderr()
        if self.expect_exit is not None and code != self.expect_exit:
            raise AssertionError(f"the server exited {code}, expected {self.expect_exit}; stderr:\n{err}")
        marks = [m for m in SANITIZER_MARKS if m in err]
        if marks:
            raise AssertionError(f"sanitizer report in the server's stderr ({marks}):\n{err}")

    def stderr(self):
        """Everything the server wrote to stderr so far."""
        try:
            self.stderr_file.flush()
            self.stderr_file.seek(0)
            return self.stderr_file.read()
        except (OSError, ValueError):
            return ""

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


def finish_servers(test_failed):
    """After a test: every server it started and did not check yet is
    stopped and checked (exit status, sanitizer reports). When the test
    already failed, the servers are only stopped and their stderr shown."""
    servers, Server.started = Server.started, []
    problems = []
    for s in servers:
        if s.checked:
            continue
        try:
            if test_failed:
                s.stop()
                err = s.stderr().strip()
                if err:
                    print(f"  server stderr (exit {s.proc.returncode}):\n{err}", flush=True)
            else:
                s.finish()
        except AssertionError as e:
            problems.append(str(e))
        finally:
            s.checked = True
    if problems:
        raise AssertionError("\n".join(problems))


def read_line(stream, timeout):
    """Reads one line from a pipe with a deadline."""
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = ""
    fd = stream.fileno()
    while "\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not sel.select(left):
            raise AssertionError(f"no line within {timeout}s (got {buf!r})")
        chunk = os.read(fd, 1)
        if not chunk:
            break
        buf += chunk.decode()
    return buf


def wait_until(cond, timeout, what, interval=0.01):
    """Polls cond() until it returns something true (which it returns) or
    the deadline passes (then fails, naming `what`). The interval is a poll
    period, never a synchronisation."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(interval)


def tcp_queues(local_port, remote_port):
    """(tx_queue, rx_queue) of the IPv4 TCP socket local_port -> remote_port
    from /proc/net/tcp, or None. rx_queue is what the kernel holds that the
    process has not read yet; tx_queue what was sent and not yet acknowledged."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, queues = fields[1], fields[2], fields[4]
            if int(local.split(":")[1], 16) == local_port and int(remote.split(":")[1], 16) == remote_port:
                tx, rx = queues.split(":")
                return int(tx, 16), int(rx, 16)
    return None


def wait_server_read(sock, timeout=10):
    """Waits until everything sent on the client socket `sock` has been read
    by the server process: nothing unacknowledged on the client's side and
    nothing unread in the server's receive queue (/proc/net/tcp)."""
    client_port = sock.getsockname()[1]
    server_port = sock.getpeername()[1]

    def drained():
        mine = tcp_queues(client_port, server_port)
        theirs = tcp_queues(server_port, client_port)
        return mine is not None and theirs is not None and mine[0] == 0 and theirs[1] == 0

    wait_until(drained, timeout, "the server to read what the client sent", interval=0.005)


def recv_to_eof(sock, timeout=30):
    """Everything the peer sends until it closes (bounded by timeout)."""
    deadline = time.monotonic() + timeout
    parts = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no EOF within {timeout}s")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


def run(cmd, timeout=120, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
    return r


def curl(*args, timeout=60):
    return run(["curl", "-sS", "--max-time", str(timeout), *args], timeout=timeout + 10, check=False)


def parse_head(text):
    """Status and lower-case headers from `curl -sI` / `curl -i` output
    (the last response, after any 100 Continue)."""
    blocks = [b for b in text.replace("\r\n", "\n").split("\n\n") if b.startswith("HTTP/")]
    head = blocks[-1].split("\n")
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return status, headers


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class TempRoot:
    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="uvh-e2e-")
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)

    def write(self, rel, data):
        p = os.path.join(self.path, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        mode = "wb" if isinstance(data, bytes) else "w"
        with open(p, mode) as f:
            f.write(data)
        return p


def main(tests, select=None):
    """Runs the given test functions and prints one line per test and a
    summary. Exit status: 1 if any test failed or none ran (a filter that
    matches nothing is not a pass), 77 if some were skipped and none failed,
    else 0. With UVH_REQUIRE_ALL=1 (set by `make test`) a skip is a failure:
    on a CI machine every test must run.

    `select(test)` false, or `-k` not matching, leaves a test out: counted
    as "not run (filtered)", never as passed."""
    args = parse_args()
    require_all = os.environ.get("UVH_REQUIRE_ALL") == "1"
    passed = failed = skipped = filtered = 0
    for t in tests:
        if (args.only and args.only not in t.__name__) or (select and not select(t)):
            filtered += 1
            continue
        start = time.monotonic()
        Server.started = []
        outcome = "ok"
        try:
            try:
                t()
            except (Skip, Deselected):
                finish_servers(test_failed=False)
                raise
            except BaseException:
                finish_servers(test_failed=True)
                raise
            finish_servers(test_failed=False)
        except Deselected as e:
            outcome = f"not run ({e})"
        except Skip as e:
            outcome = f"skip ({e})"
        except Exception:
            outcome = "FAIL"
            traceback.print_exc(file=sys.stdout)
        took = f"({time.monotonic() - start:.1f}s)"
        if outcome == "ok":
            passed += 1
            print(f"ok   {t.__name__} {took}", flush=True)
        elif outcome == "FAIL":
            failed += 1
            print(f"FAIL {t.__name__} {took}", flush=True)
        elif outcome.startswith("not run"):
            filtered += 1
            print(f"--   {t.__name__}: {outcome}", flush=True)
        elif require_all:
            failed += 1
            print(f"FAIL {t.__name__}: {outcome}, and UVH_REQUIRE_ALL=1 says every test must run here",
                  flush=True)
        else:
            skipped += 1
            print(f"SKIP {t.__name__}: {outcome[6:-1]}", flush=True)
    print(f"{passed} passed, {failed} failed, {skipped} skipped, {filtered} not run (filtered)")
    if failed:
        sys.exit(1)
    if passed == 0 and skipped == 0:
        print("no test ran")
        sys.exit(1)
    sys.exit(77 if skipped else 0)
