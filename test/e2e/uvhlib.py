"""Shared helpers for the process-level tests: start the real binary on
port 0, read its "listening on" line, stop it; the one raw HTTP client of
the Python tests (RawConn, request); and small assertions. Every wait is
bounded; nothing sleeps to synchronise.

The tests run under pytest (test/e2e/conftest.py sets BINARY from
--binary, checks the servers a test left running, and maps skips to exit
77 for CTest); test/soak/soak.py uses Server without pytest."""

import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

BINARY = None


try:
    import pytest
except ImportError:  # test/soak/soak.py runs without pytest
    pytest = None

if pytest is not None:
    # A test that cannot run here (a missing kernel feature, no privileges)
    # raises uvhlib.Skip("why"), which is pytest's skip: reported as
    # skipped, never as passed; conftest.py makes a file with skips and no
    # failure exit 77 (CTest's SKIP_RETURN_CODE), and UVH_REQUIRE_ALL=1 (set
    # by `make test`) turns every skip into a failure.
    Skip = pytest.skip.Exception
else:
    class Skip(Exception):
        """A test that cannot run here (without pytest: soak.py)."""


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
    ends (finish_servers, from conftest.py), so no test can drop an exit
    status.

    `port` is 0 (the kernel picks) unless a test needs it in advance
    (HAProxy's configuration); `args_only` passes `args` without adding
    --port/--host/--root (the positional-port and default-root tests);
    `wrap` prefixes the command (prlimit, strace, a shell that sets
    LISTEN_PID); `popen` holds extra subprocess.Popen arguments."""

    started = []  # every Server of the running test, for finish_servers

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
    already failed, the servers are only stopped, and what they wrote to
    stderr is returned, to be shown with the failure."""
    servers, Server.started = Server.started, []
    problems = []
    shown = []
    for s in servers:
        if s.checked:
            continue
        try:
            if test_failed:
                s.stop()
                err = s.stderr().strip()
                if err:
                    shown.append(f"server stderr (exit {s.proc.returncode}):\n{err}")
            else:
                s.finish()
        except AssertionError as e:
            problems.append(str(e))
        finally:
            s.checked = True
    if problems:
        raise AssertionError("\n".join(problems))
    return "\n".join(shown)


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


def all_at_once(fn, n, timeout):
    """Runs fn() in n threads released together (a barrier), each joined
    within `timeout` seconds; fails if any raised or did not finish, and
    returns their n results."""
    start = threading.Barrier(n)
    results, errors = [], []

    def worker():
        try:
            start.wait(timeout=10)
            results.append(fn())
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    assert not errors, errors
    assert len(results) == n, f"{n - len(results)} of {n} did not finish within {timeout}s"
    return results


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
    """Everything the peer sends on a plain socket until it closes (any
    stream: HAProxy's stats socket too); fails when the timeout comes first.
    A reset raises ConnectionResetError. On a RawConn: read_to_eof."""
    deadline = time.monotonic() + timeout
    parts = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no EOF within {timeout}s")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise AssertionError(f"no EOF within {timeout}s") from None
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


class Haproxy:
    """HAProxy (Debian's) in the foreground with a configuration the caller
    writes: config(port) returns the whole haproxy.cfg text for the free
    front port it is given. Started here, waited for with a bound
    (`ready(port)`, polled until true, or the front port accepting a
    connection), and
    stopped by its own PID in close()."""

    def __init__(self, config, ready=None, timeout=15):
        self.dir = tempfile.mkdtemp(prefix="uvh-haproxy-")
        self.port = free_port()
        self.cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write(config(self.port))
        self.log = open(os.path.join(self.dir, "haproxy.log"), "w+")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.cfg], stdout=subprocess.DEVNULL,
                                     stderr=self.log)
        try:
            wait_until(lambda: self._up(ready), timeout, "haproxy to serve")
        except BaseException:
            self.close()
            raise

    def _up(self, ready):
        assert self.proc.poll() is None, "haproxy exited: " + self.log_text()
        if ready:
            return ready(self.port)
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
            return True
        except OSError:
            return False

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def small_tmpfs(size):
    """A tmpfs of `size` (mount's syntax: "256k", "2m") mounted on a fresh
    directory, for disk-full tests; unmounted (lazily if busy) and removed
    afterwards. Skips, visibly, where mounting needs a privilege we lack."""
    mnt = tempfile.mkdtemp(prefix="uvh-tmpfs-")
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise Skip(f"cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): {r.stderr.strip() or r.returncode}")
        try:
            yield mnt
        finally:
            r = subprocess.run(["umount", mnt], capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", mnt], capture_output=True, timeout=30)
    finally:
        try:
            os.rmdir(mnt)
        except OSError:
            pass


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


# ------------------------------------------------------------ raw HTTP client
#
# The one way the Python tests talk HTTP byte by byte: RawConn sends exact
# bytes and reads responses with their own framing (Content-Length, chunked,
# or close-delimited), every read bounded by a deadline. request() is the
# one-call form for a test that just needs status, headers and body.

TIMEOUT = 10.0  # generous: the suites must pass on a loaded 2-core machine


class Response:
    """One response: version ("HTTP/1.1"), status, reason, headers as
    [(lower-case name, value)] in order, body (decoded from its framing),
    raw_head (the bytes before the blank line), framing ("length",
    "chunked", "close" or "none"), trailers (of a chunked body), interim
    (the 1xx responses read_final skipped over)."""

    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.raw_head = raw_head
        self.framing = "none"
        self.trailers = []
        self.interim = []

    def get(self, name):
        """The first value of header `name` (lower case), or None."""
        vals = [v for k, v in self.headers if k == name]
        return vals[0] if vals else None

    def all(self, name):
        return [v for k, v in self.headers if k == name]

    def header_dict(self):
        """{lower-case name: value}, the last value of a repeated name
        winning (http.client's getheaders() turned into a dict)."""
        return dict(self.headers)

    def wants_close(self):
        return any("close" in [t.strip().lower() for t in v.split(",")] for v in self.all("connection"))

    def comparable(self, volatile=("date", "x-request-id")):
        """Status line, headers except the volatile ones, and body."""
        return (self.version, self.status, self.reason,
                [(k, v) for k, v in self.headers if k not in volatile], self.body)

    def __repr__(self):
        return f"<{self.version} {self.status} {self.reason} {self.headers} body={self.body[:80]!r}>"


class PeerClosed(AssertionError):
    """The server closed (or reset) the connection before a whole response
    (or the part of it asked for) arrived."""


def bodiless(method, status):
    """RFC 9112 §6.3: no content after the head of a response to HEAD, of
    a 1xx, 204 or 304, or of a 2xx to CONNECT."""
    return method in ("HEAD",) or status < 200 or status in (204, 304) or \
        (method == "CONNECT" and 200 <= status < 300)


class RawConn:
    """One client socket with its own input buffer. Use as a context
    manager. `rcvbuf` sets SO_RCVBUF before connecting (a small receive
    window: a slow reader); `nodelay` sets TCP_NODELAY (one send, one
    segment)."""

    def __init__(self, port, timeout=TIMEOUT, nodelay=False, rcvbuf=None, host="127.0.0.1"):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if nodelay:
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        except BaseException:
            self.sock.close()
            raise
        self.buf = b""
        self.timeout = timeout

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self):
        """Closes with an RST instead of a FIN (SO_LINGER with a zero
        timeout), as a client that gave up does."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def send(self, data):
        self.sock.sendall(data.encode("latin-1") if isinstance(data, str) else data)

    def send_bytewise(self, data):
        for i in range(len(data)):
            self.sock.sendall(data[i:i + 1])

    def shutdown_write(self):
        """Half-close: the server reads EOF after what was sent."""
        self.sock.shutdown(socket.SHUT_WR)

    # -- reading -------------------------------------------------------------

    def _deadline(self, timeout):
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def _recv(self, deadline, size=65536):
        """One recv() bounded by the deadline: bytes, or b"" at EOF or a
        reset. socket.timeout when the deadline passes first."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline passed")
        self.sock.settimeout(left)
        try:
            return self.sock.recv(size)
        except ConnectionResetError:
            return b""
        finally:
            self.sock.settimeout(self.timeout)

    def _fill(self, deadline):
        chunk = self._recv(deadline)
        if not chunk:
            raise PeerClosed(f"connection closed; unread bytes {self.buf[:200]!r}")
        self.buf += chunk

    def _take(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self, deadline, limit=65536):
        while b"\r\n" not in self.buf:
            if len(self.buf) > limit:
                raise AssertionError(f"line longer than {limit}: {self.buf[:200]!r}")
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_head(self, method="GET", timeout=None):
        """The next response's head (status line and fields), its body left
        unread: read_body() reads it, or a test reads the raw stream on
        (read_some). .framing says how the body is delimited."""
        deadline = self._deadline(timeout)
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise AssertionError(f"response head too long: {self.buf[:200]!r}")
            self._fill(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        parts = lines[0].decode("latin-1").split(" ", 2)
        assert len(parts) >= 2 and parts[0].startswith("HTTP/") and parts[1].isdigit() and \
            len(parts[1]) == 3, f"bad status line {lines[0]!r}"
        version, status, reason = parts[0], int(parts[1]), parts[2] if len(parts) > 2 else ""
        headers = []
        for raw in lines[1:]:
            assert b":" in raw and raw[:1] not in (b" ", b"\t"), f"bad response header line {raw!r}"
            k, v = raw.split(b":", 1)
            assert k == k.strip(), f"whitespace in a response field name {raw!r}"
            headers.append((k.decode("latin-1").lower(), v.decode("latin-1").strip(" \t")))
        r = Response(version, status, reason, headers, b"", head)
        if bodiless(method, status):
            r.framing = "none"
            return r
        te = r.all("transfer-encoding")
        cl = r.all("content-length")
        if te:
            # RFC 9112 §6.1: chunked is the last coding, and a response
            # never carries both framings (§6.3 would make TE win).
            codings = [c.strip().lower() for v in te for c in v.split(",")]
            assert codings[-1] == "chunked", f"Transfer-Encoding {te} does not end in chunked"
            assert not cl, f"a response with both Transfer-Encoding and Content-Length: {r!r}"
            r.framing = "chunked"
        elif cl:
            assert len(set(cl)) == 1 and cl[0].isdigit(), f"bad Content-Length in response: {cl}"
            r.framing = "length"
        else:
            r.framing = "close"
        return r

    def read_body(self, r, timeout=None):
        """Reads the body of the response whose head read_head returned,
        by its framing; sets and returns r.body."""
        deadline = self._deadline(timeout)
        if r.framing == "length":
            r.body = self._take(int(r.get("content-length")), deadline)
        elif r.framing == "chunked":
            r.body, r.trailers = self._read_chunked(deadline)
        elif r.framing == "close":
            data, closed = self.read_to_eof(timeout=max(0.0, deadline - time.monotonic()))
            if not closed:
                raise socket.timeout(f"close-delimited body: no EOF in time ({len(data)} bytes)")
            r.body = data
        else:
            r.body = b""
        return r.body

    def _read_chunked(self, deadline):
        """RFC 9112 §7.1: chunk-size [; ext] CRLF data CRLF ... 0 CRLF,
        trailer fields, CRLF. Strict: hex digits only, the CRLF after each
        chunk's data required. (body, [(name, value)] trailers)."""
        parts = []
        while True:
            line = self._line(deadline)
            size_text = line.split(b";", 1)[0].rstrip(b" \t")
            assert size_text and all(c in b"0123456789abcdefABCDEF" for c in size_text), \
                f"bad chunk size line {line!r}"
            size = int(size_text, 16)
            if size == 0:
                break
            parts.append(self._take(size, deadline))
            crlf = self._take(2, deadline)
            assert crlf == b"\r\n", f"chunk data not followed by CRLF: {crlf!r}"
        trailers = []
        while True:
            line = self._line(deadline)
            if line == b"":
                break
            assert b":" in line and line[:1] not in (b" ", b"\t"), f"bad trailer line {line!r}"
            k, v = line.split(b":", 1)
            trailers.append((k.decode("latin-1").strip().lower(), v.decode("latin-1").strip(" \t")))
        return b"".join(parts), trailers

    def read_response(self, method="GET", timeout=None):
        """The next response, interim (1xx) ones included, body and all:
        none for HEAD, 1xx, 204 and 304 (RFC 9112 §6.3); chunked or
        Content-Length framing otherwise, else read to EOF."""
        deadline = self._deadline(timeout)
        r = self.read_head(method, timeout)
        self.read_body(r, max(0.0, deadline - time.monotonic()))
        return r

    def read_final(self, method="GET", timeout=None):
        """The final response; interim 1xx responses are collected in
        .interim on it."""
        interim = []
        while True:
            r = self.read_response(method, timeout)
            if r.status >= 200:
                r.interim = interim
                return r
            interim.append(r)

    def read_some(self, total, timeout=None):
        """The raw stream (what is buffered, then more) until `total` bytes
        or EOF/reset, whichever first: (bytes, eof_seen). For a test that
        watches a transfer in progress. Fails when the deadline passes
        first."""
        deadline = self._deadline(timeout)
        parts, n = [self.buf], len(self.buf)
        self.buf = b""
        while n < total:
            try:
                chunk = self._recv(deadline, 1 << 20)
            except socket.timeout:
                raise AssertionError(f"stalled at {n} of {total} bytes") from None
            if not chunk:
                return b"".join(parts), True
            parts.append(chunk)
            n += len(chunk)
        data = b"".join(parts)
        self.buf = data[total:]
        return data[:total], False

    def read_to_eof(self, timeout=None):
        """(bytes, closed): everything until EOF or a reset; closed is False
        when the timeout came first."""
        deadline = self._deadline(timeout)
        data, self.buf = self.buf, b""
        while True:
            try:
                chunk = self._recv(deadline)
            except socket.timeout:
                return data, False
            if not chunk:
                return data, True
            data += chunk

    def expect_eof(self, timeout=None):
        """True when the server closes (FIN or RST) within the timeout with
        nothing more sent; False when it stays open; fails on bytes."""
        extra, closed = self.read_to_eof(timeout)
        assert extra == b"", f"unexpected bytes {extra[:200]!r}"
        return closed


def request(port, method, path, body=None, headers=None, timeout=30, host="127.0.0.1"):
    """One request on a new connection, as Python's http.client sends it
    (Host: 127.0.0.1:PORT unless `headers` has one, Accept-Encoding:
    identity, Content-Length when
    there is a body, and 0 for a POST or PUT without one); the response
    read by its framing, then the connection closed. Returns the Response
    (r.status, r.header_dict(), r.body; r.client_port, the local port the
    request went from)."""
    headers = dict(headers or {})
    names = {k.lower() for k in headers}
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {path} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {host}:{port}" if ":" not in host else f"Host: [{host}]:{port}")
    if "content-length" not in names and "transfer-encoding" not in names:
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        elif method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: 0")
    if "accept-encoding" not in names:
        lines.append("Accept-Encoding: identity")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
    with RawConn(port, timeout=timeout, host=host) as c:
        c.send(data)
        r = c.read_final(method)
        r.client_port = c.sock.getsockname()[1]
        return r


def status_of(r):
    """(status, {lower-case header: value}, body) of a Response."""
    return r.status, r.header_dict(), r.body
