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


class Server:
    """A running uvhttpd. Use as a context manager."""

    def __init__(self, root, *args, host="127.0.0.1", env=None, prlimit=None):
        self.root = root
        # Nobody reads the server's stdout after the first line, so the
        # access log goes nowhere unless a test asks for it.
        if not any(a == "--access-log" for a in args):
            args = ("--access-log", "off") + tuple(args)
        cmd = [BINARY, "--port", "0", "--host", host, "--root", root, *args]
        if prlimit:
            cmd = ["prlimit", prlimit, "--"] + cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, text=True)
        line = read_line(self.proc.stdout, timeout=10)
        if not line.startswith("listening on http://"):
            self.proc.kill()
            raise AssertionError(f"unexpected first line {line!r}; stderr: {self.proc.stderr.read()}")
        self.url = line.strip()[len("listening on "):]
        self.port = int(self.url.rstrip("/").rsplit(":", 1)[1])
        self.host = host

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("server did not stop within the timeout")
        return self.proc.returncode

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


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


def main(tests):
    """Runs the given test functions, prints a summary, exits non-zero on
    any failure."""
    args = parse_args()
    failed = 0
    for t in tests:
        if args.only and args.only not in t.__name__:
            continue
        start = time.monotonic()
        try:
            t()
            print(f"ok   {t.__name__} ({time.monotonic() - start:.1f}s)", flush=True)
        except Exception:
            failed += 1
            print(f"FAIL {t.__name__}", flush=True)
            traceback.print_exc()
    print(f"{len(tests) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
