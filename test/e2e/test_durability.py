"""Durability order: an acknowledged write must survive a power cut, not
only kill -9 (which the page cache survives). No power can be cut here, so
this test proves the order of the system calls instead: the server runs
under `strace -f`, and for a record POST (201) and for PUTs (201 and 204)
the trace must show

  POST: the record written to database.txt, database.txt fdatasync'ed, the
        directory fsync'ed (database.txt is new), and only then the first
        byte of the 201 written to the client's socket;
  PUT:  the body written to the upload file, that file fdatasync'ed, the
        rename onto the target, the directory fsync'ed after the rename,
        and only then the 201/204 written to the socket.

"Before" means the sync call returned (its completion line in the trace,
which with -f may be a `<... resumed>` line) before the socket write
started. Requests are sent one at a time, so each one's calls lie between
the previous response and its own."""

import os
import re
import signal
import shutil

import uvhlib
from uvhlib import Server, TempRoot

SYSCALLS = "fdatasync,fsync,rename,renameat,renameat2,linkat,write,writev,sendmsg,sendto,pwrite64,pwritev"
SOCKET_WRITES = ("write", "writev", "sendmsg", "sendto")
FILE_WRITES = ("write", "writev", "pwrite64", "pwritev")
SYNCS = ("fdatasync", "fsync")


class Call:
    def __init__(self, pid, name, args, ret, start, end):
        self.pid, self.name, self.args, self.ret = pid, name, args, ret
        self.start, self.end = start, end  # line numbers of the call's start and completion

    def ok(self):
        return self.ret is not None and self.ret >= 0

    def fd(self):
        """(number, path) of the first argument when it is a descriptor
        decoded by -yy, e.g. 15</tmp/x/database.txt> or
        17</tmp/x/#123>(deleted) or 14<TCP:[127.0.0.1:1->127.0.0.1:2]>."""
        m = re.match(r"(\d+)<(.*?)>(\(deleted\))?(?=[,)]|$)", self.args)
        return (int(m.group(1)), m.group(2) + (" (deleted)" if m.group(3) else "")) if m else (None, "")

    def __repr__(self):
        return f"<{self.pid} {self.name}({self.args[:120]}) = {self.ret} @{self.start}-{self.end}>"


LINE = re.compile(r"^(\d+)\s+\d\d:\d\d:\d\d\.\d+\s+(.*)$")
CALL = re.compile(r"^(\w+)\((.*)\)\s+=\s+(-?\d+|\?)(.*)$", re.S)
UNFINISHED = " <unfinished ...>"
RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$", re.S)


def parse_trace(text):
    """The completed calls of an `strace -f -tt -yy` trace, in order. A call
    interrupted by another thread's line is printed as `name(args
    <unfinished ...>` and later `<... name resumed>rest`; the two halves are
    joined per pid. Signals, exits and calls that never completed are left
    out."""
    calls = []
    pending = {}  # pid -> (name, args so far, start line)
    for n, raw in enumerate(text.splitlines()):
        m = LINE.match(raw)
        if not m:
            continue
        pid, rest = int(m.group(1)), m.group(2)
        if rest.startswith(("---", "+++")):
            continue
        r = RESUMED.match(rest)
        if r:
            if pid not in pending or pending[pid][0] != r.group(1):
                continue  # resumed without its start (the trace began mid-call)
            name, head, start = pending.pop(pid)
            rest = f"{name}({head}{r.group(2)}"
        else:
            start = n
        if rest.endswith(UNFINISHED):
            name, _, head = rest[:-len(UNFINISHED)].partition("(")
            pending[pid] = (name, head, start)
            continue
        c = CALL.match(rest)
        if not c:
            continue
        ret = None if c.group(3) == "?" else int(c.group(3))
        calls.append(Call(pid, c.group(1), c.group(2), ret, start, n))
    return calls


def socket_calls(calls, client_port):
    """Writes to the server's side of the connection from client_port."""
    tail = f"->127.0.0.1:{client_port}]"
    return [c for c in calls if c.name in SOCKET_WRITES and tail in c.fd()[1]]


def response_write(calls, client_port, status, after):
    """The first socket write of the response with this status."""
    for c in socket_calls(calls, client_port):
        if c.start > after and f"HTTP/1.1 {status} " in c.args:
            return c
    raise AssertionError(f"no write of a {status} to the connection from port {client_port} in the trace")


def first(calls, what, pred):
    for c in calls:
        if pred(c):
            return c
    raise AssertionError(f"not in the trace: {what}")


def describe(calls, lo, hi):
    return "\n".join(f"    {c!r}" for c in calls if lo <= c.start <= hi)


def strace_or_skip():
    if not shutil.which("strace"):
        raise AssertionError("strace is not installed (make deps installs it)")
    r = uvhlib.run(["strace", "-f", "-o", "/dev/null", "true"], check=False, timeout=30)
    if r.returncode != 0:
        raise uvhlib.Skip(f"strace cannot trace here (ptrace refused?): {r.stderr.strip()}")


def request(port, method, path, body, headers=None):
    """One request on a fresh connection; returns (client port, status,
    response, body)."""
    r = uvhlib.request(port, method, path, body=body, headers={"Host": "localhost", **(headers or {})})
    return r.client_port, r.status, r, r.body


def stop_traced(s):
    """SIGTERM to uvhttpd itself (strace's child), not to strace: strace
    then exits with its child's exit status, which must be 0."""
    with open(f"/proc/{s.proc.pid}/task/{s.proc.pid}/children") as f:
        kids = [int(k) for k in f.read().split()]
    assert len(kids) == 1, f"strace's children: {kids}"
    os.kill(kids[0], signal.SIGTERM)
    s.proc.wait(timeout=30)
    s.finish()


def test_sync_calls_come_before_the_acknowledgement():
    strace_or_skip()
    with TempRoot() as t, TempRoot() as traces:
        root = os.path.realpath(t.path)
        trace = os.path.join(traces.path, "strace.txt")
        # LeakSanitizer cannot run under ptrace (it fails the exit under
        # `make test-asan`); leaks are checked by every other e2e test.
        env = {**os.environ, "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0"}
        s = Server(root, env=env,
                   wrap=["strace", "-f", "-tt", "-yy", "-s", "256", "-o", trace, "-e", f"trace={SYSCALLS}"])
        post_port, status, _, body = request(s.port, "POST", "/database.txt", b"name=durable&note=first",
                                             {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 201, (status, body)
        put1_port, status, _, body = request(s.port, "PUT", "/put.txt", b"PUT-BODY-ONE\n")
        assert status == 201, (status, body)
        put2_port, status, _, body = request(s.port, "PUT", "/put.txt", b"PUT-BODY-TWO\n")
        assert status == 204, (status, body)
        stop_traced(s)
        with open(trace) as f:
            calls = parse_trace(f.read())

        db = os.path.join(root, "database.txt")

        def on(c, names, path):
            return c.name in names and c.ok() and c.fd()[1] == path

        # POST: record written, database.txt synced, directory synced, 201.
        resp = response_write(calls, post_port, 201, -1)
        window = [c for c in calls if c.end < resp.start]
        try:
            w = first(window, "the record written to database.txt",
                      lambda c: on(c, FILE_WRITES, db) and "name=durable&note=first" in c.args)
            sync = first(window, "database.txt fdatasync'ed after the write and before the 201",
                         lambda c: on(c, SYNCS, db) and c.start > w.end)
            dsync = first(window, "the directory fsync'ed after the write and before the 201",
                          lambda c: on(c, SYNCS, root) and c.start > w.end)
        except AssertionError as e:
            raise AssertionError(f"POST: {e}; the calls before the 201:\n{describe(calls, 0, resp.start)}")
        print(f"  POST: write @{w.end}, {sync.name} @{sync.end}, directory {dsync.name} @{dsync.end}, "
              f"201 written @{resp.start}")

        # PUT (create, then replace): body written to the upload file, that
        # file synced, renamed onto put.txt, directory synced after the
        # rename, then the answer.
        previous = resp
        for port, status, text in ((put1_port, 201, "PUT-BODY-ONE"), (put2_port, 204, "PUT-BODY-TWO")):
            resp = response_write(calls, port, status, previous.start)
            window = [c for c in calls if c.start > previous.start and c.end < resp.start]
            try:
                w = first(window, "the body written to an upload file under the root",
                          lambda c: c.name in FILE_WRITES and c.ok() and c.fd()[1].startswith(root + "/")
                          and text in c.args)
                fd_num, fd_path = w.fd()
                sync = first(window, "the upload file fdatasync'ed after the write",
                             lambda c: c.name in SYNCS and c.ok() and c.fd() == (fd_num, fd_path)
                             and c.start > w.end)
                ren = first(window, "the rename onto put.txt after the sync",
                            lambda c: c.name in ("rename", "renameat", "renameat2") and c.ok()
                            and c.args.rstrip().endswith(('"put.txt"', '"put.txt", 0'))
                            and c.start > sync.end)
                dsync = first(window, "the directory fsync'ed after the rename",
                              lambda c: on(c, SYNCS, root) and c.start > ren.end)
            except AssertionError as e:
                raise AssertionError(f"PUT {status}: {e}; the calls before it:\n"
                                     f"{describe(calls, previous.start, resp.start)}")
            print(f"  PUT {status}: write @{w.end}, {sync.name} @{sync.end}, {ren.name} @{ren.end}, "
                  f"directory {dsync.name} @{dsync.end}, {status} written @{resp.start}")
            previous = resp

        with open(os.path.join(root, "put.txt"), "rb") as f:
            assert f.read() == b"PUT-BODY-TWO\n"


def test_trace_parser_joins_unfinished_and_resumed_lines():
    """The parser itself, on the shapes strace -f prints."""
    text = "\n".join([
        '100 04:46:15.1 write(14<TCP:[127.0.0.1:80->127.0.0.1:5000]>, "HTTP/1.1 201 Created\\r\\n", 22 <unfinished ...>',
        '101 04:46:15.2 fdatasync(15</r/database.txt> <unfinished ...>',
        '100 04:46:15.3 <... write resumed>) = 22',
        '101 04:46:15.4 <... fdatasync resumed>) = 0',
        '102 04:46:15.5 fsync(16</r>) = -1 EIO (Input/output error)',
        '102 04:46:15.6 --- SIGTERM {si_signo=SIGTERM} ---',
        '103 04:46:15.7 write(17</r/#1>(deleted), "x) = 1", 6) = 6',
        '104 04:46:15.8 +++ exited with 0 +++',
    ])
    calls = parse_trace(text)
    assert [(c.name, c.ret, c.start, c.end) for c in calls] == [
        ("write", 22, 0, 2), ("fdatasync", 0, 1, 3), ("fsync", -1, 4, 4), ("write", 6, 6, 6)], calls
    assert calls[0].fd() == (14, "TCP:[127.0.0.1:80->127.0.0.1:5000]")
    assert calls[1].fd() == (15, "/r/database.txt") and not calls[2].ok()
    assert calls[3].fd() == (17, "/r/#1 (deleted)")
    assert socket_calls(calls, 5000) == [calls[0]]
