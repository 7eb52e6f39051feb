#!/usr/bin/env python3
"""A large-file client that is not the bottleneck: N keep-alive connections each GET one
path again and again for a duration; every response body moves from the socket into a
pipe and from the pipe to /dev/null with splice(2), so its bytes are never copied into
this process (wrk reads 8 KiB per read() into its own buffer, and on one core it runs out
of CPU before the servers do on a 100 MiB file). Only the heads are read. Python standard
library only (os.splice, Python 3.10+).

  bench/splice_get.py --port 8080 --path /100m.bin --conns 4 --duration 10

Prints one line: `requests=N bytes=B elapsed=S non2xx=N errors=N`, counting only
responses received whole; exits 1 if no response arrived.
"""
import argparse
import fcntl
import os
import re
import selectors
import socket
import sys
import time

PIPE_SIZE = 1 << 20   # F_SETPIPE_SZ: one splice moves up to this much
HEAD_MAX = 64 * 1024
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class Conn:
    def __init__(self, port, request):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setblocking(False)
        self.request = request
        self.r, self.w = os.pipe()
        try:
            fcntl.fcntl(self.w, F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # the default 64 KiB pipe still works, in more calls
        self.head = b""
        self.left = 0          # body bytes still to come
        self.in_pipe = 0       # spliced in, not yet out to /dev/null
        self.length = 0

    def send_request(self):
        self.sock.sendall(self.request)  # small: fits the empty send buffer
        self.head = b""
        self.left = -1

    def close(self):
        self.sock.close()
        os.close(self.r)
        os.close(self.w)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--timeout", type=float, default=30, help="no progress for this long: give up")
    a = ap.parse_args(argv)
    request = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % a.path).encode()
    devnull = os.open(os.devnull, os.O_WRONLY)
    sel = selectors.DefaultSelector()
    conns = [Conn(a.port, request) for _ in range(a.conns)]
    requests = body_bytes = non2xx = errors = 0
    t0 = time.monotonic()
    end = t0 + a.duration
    last_progress = t0
    for c in conns:
        c.send_request()
        sel.register(c.sock, selectors.EVENT_READ, c)
    while sel.get_map():
        now = time.monotonic()
        if now - last_progress > a.timeout:
            errors += len(sel.get_map())
            break
        for key, _ in sel.select(timeout=1.0):
            c = key.data
            try:
                if c.left < 0:
                    data = c.sock.recv(HEAD_MAX)
                    if not data:
                        raise ConnectionError("closed before the head")
                    c.head += data
                    if b"\r\n\r\n" not in c.head:
                        if len(c.head) > HEAD_MAX:
                            raise ConnectionError("head too large")
                        continue
                    head, _, rest = c.head.partition(b"\r\n\r\n")
                    status = int(head.split(b" ", 2)[1])
                    m = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
                    if not m:
                        raise ConnectionError("no Content-Length")
                    c.length = int(m.group(1))
                    if status >= 400:
                        non2xx += 1
                    c.left = c.length - len(rest)  # a head read may hold the first body bytes
                else:
                    n = os.splice(c.sock.fileno(), c.w, min(c.left, PIPE_SIZE), flags=os.SPLICE_F_MOVE |
                                  os.SPLICE_F_NONBLOCK)
                    if n == 0:
                        raise ConnectionError("closed in the body")
                    c.left -= n
                    c.in_pipe += n
                    while c.in_pipe:
                        c.in_pipe -= os.splice(c.r, devnull, c.in_pipe, flags=os.SPLICE_F_MOVE)
            except BlockingIOError:
                continue
            except (OSError, ValueError, IndexError) as e:
                errors += 1
                print("connection error: %s" % e, file=sys.stderr)
                sel.unregister(c.sock)
                continue
            last_progress = time.monotonic()
            if c.left == 0:
                requests += 1
                body_bytes += c.length
                if time.monotonic() >= end:
                    sel.unregister(c.sock)
                else:
                    c.send_request()
    elapsed = time.monotonic() - t0
    for c in conns:
        c.close()
    print("requests=%d bytes=%d elapsed=%.3f non2xx=%d errors=%d" % (requests, body_bytes, elapsed, non2xx,
                                                                      errors))
    return 0 if requests else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
