#!/usr/bin/env python3
"""Open many idle HTTP/1.1 keep-alive connections and hold them open.

Used by bench/run for the `idle` workload.  Each connection sends one
`GET PATH HTTP/1.1` request, reads the whole response (Content-Length
framed), and then stays open without sending anything else.

Protocol on stdout/stdin (line based):
  helper prints  "READY opened=N failed=M elapsed=S"  once all connections
                 are established (or gave up),
  harness sends  "check"   -> helper prints "ALIVE n" (connections not yet
                              closed by the server),
  harness sends  "close"   -> helper closes everything, prints "CLOSED",
                              and exits.  EOF on stdin does the same.
The helper also exits by itself after --max-life seconds.

Standard library only.
"""
import argparse
import errno
import resource
import selectors
import socket
import sys
import time


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in (max(want, soft), hard):
        if hard != resource.RLIM_INFINITY:
            target = min(target, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            continue
    return soft


class Conn:
    __slots__ = ("sock", "state", "buf", "need", "tries")

    def __init__(self):
        self.sock = None
        self.state = "connecting"
        self.buf = b""
        self.need = None
        self.tries = 0


def parse_response(buf):
    """Return total expected bytes (headers+body) once headers are complete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1")
    lines = head.split("\r\n")
    if not lines[0].startswith("HTTP/1.1 2") and not lines[0].startswith("HTTP/1.0 2"):
        return -1
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return end + 4 + length


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--path", default="/index.html")
    ap.add_argument("--batch", type=int, default=256,
                    help="connections being set up at once (default 256)")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="give up setting up connections after this many seconds")
    ap.add_argument("--max-life", type=float, default=600.0,
                    help="exit on our own after this many seconds")
    args = ap.parse_args()

    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.host.startswith("127."):
        sys.exit("idle_conns: only loopback targets are allowed")

    limit = raise_nofile(args.conns + 64)
    if limit < args.conns + 16:
        sys.exit("idle_conns: RLIMIT_NOFILE %d too low for %d connections" % (limit, args.conns))

    request = ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % args.path).encode()
    sel = selectors.EpollSelector() if hasattr(selectors, "EpollSelector") else selectors.DefaultSelector()
    start = time.monotonic()
    deadline = start + args.timeout
    to_open = args.conns
    in_flight = 0
    established = []
    failed = 0
    retry = []

    def start_conn(c):
        c.tries += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        c.sock = s
        c.state = "connecting"
        c.buf = b""
        c.need = None
        rc = s.connect_ex((args.host, args.port))
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            return False
        sel.register(s, selectors.EVENT_WRITE, c)
        return True

    def fail(c):
        nonlocal failed, in_flight
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        in_flight -= 1
        if c.tries < 3:
            retry.append(c)
        else:
            failed += 1

    while (to_open > 0 or in_flight > 0 or retry) and time.monotonic() < deadline:
        while in_flight < args.batch and (retry or to_open > 0):
            if retry:
                c = retry.pop()
            else:
                c = Conn()
                to_open -= 1
            if start_conn(c):
                in_flight += 1
            elif c.tries < 3:
                retry.append(c)
                break
            else:
                failed += 1
        for key, _ in sel.select(timeout=0.5):
            c = key.data
            s = c.sock
            if c.state == "connecting":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(c)
                    continue
                try:
                    s.send(request)
                except OSError:
                    fail(c)
                    continue
                c.state = "reading"
                sel.modify(s, selectors.EVENT_READ, c)
            else:
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    fail(c)
                    continue
                if not data:
                    fail(c)
                    continue
                c.buf += data
                if c.need is None:
                    c.need = parse_response(c.buf)
                    if c.need == -1:
                        fail(c)
                        continue
                if c.need is not None and len(c.buf) >= c.need:
                    sel.unregister(s)
                    c.state = "idle"
                    c.buf = b""
                    in_flight -= 1
                    established.append(c)

    # Anything still pending at the deadline counts as failed.
    for key in list(sel.get_map().values()):
        sel.unregister(key.fileobj)
        key.fileobj.close()
        failed += 1
    failed += to_open + len(retry)

    elapsed = time.monotonic() - start
    print("READY opened=%d failed=%d elapsed=%.2f" % (len(established), failed, elapsed), flush=True)

    # Idle phase: watch stdin for commands.
    for c in established:
        sel.register(c.sock, selectors.EVENT_READ, c)
    stdin_sel = selectors.DefaultSelector()
    stdin_sel.register(sys.stdin, selectors.EVENT_READ)
    end_of_life = time.monotonic() + args.max_life
    closed_by_peer = 0
    while time.monotonic() < end_of_life:
        if not stdin_sel.select(timeout=1.0):
            continue
        line = sys.stdin.readline()
        cmd = line.strip()
        if cmd == "check":
            # A readable idle socket means the server closed it (or sent junk).
            for key, _ in sel.select(timeout=0):
                c = key.data
                try:
                    data = c.sock.recv(65536, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(c.sock)
                    c.sock.close()
                    c.state = "closed"
                    closed_by_peer += 1
            alive = sum(1 for c in established if c.state == "idle")
            print("ALIVE %d" % alive, flush=True)
            continue
        break  # "close" or EOF
    for c in established:
        if c.state == "idle":
            c.sock.close()
    print("CLOSED", flush=True)


if __name__ == "__main__":
    main()
