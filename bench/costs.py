#!/usr/bin/env python3
"""Per-request costs that survive a busy host: user-space instructions (valgrind
callgrind), system calls (strace -c) and threadpool hand-offs (calls of uv_queue_work),
over a fixed number of requests after a warm-up, for one server binary.

Wall-clock numbers on a machine shared with other work are noise; these counts are not
(they move by a fraction of a per cent from run to run). Python standard library only.

  bench/costs.py --server build/uvhttpd                 all workloads, instructions and syscalls
  bench/costs.py --server build/floor --workloads small,pipelined
  bench/costs.py --server /tmp/old-uvhttpd --what syscalls --workloads file1m

Workloads (one connection, so the numbers do not depend on how the client's requests
happen to batch): small (keep-alive GET of a 571-byte file, one request at a time),
pipelined (the same, 16 requests per write), file1m (keep-alive GET of 1 MiB).
The client reads every response whole and checks its status and length.
"""
import argparse
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from uvhbench.servers import make_docroot  # noqa: E402

WORKLOADS = {
    # name: (path, pipeline depth, requests measured, warm-up requests)
    "small": ("/index.html", 1, 10000, 200),
    "pipelined": ("/index.html", 16, 10000, 320),
    "file1m": ("/1m.bin", 1, 200, 10),
}


class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""

    def _response(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        m = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
        length = int(m.group(1)) if m else 0
        while len(rest) < length:
            self.buf = rest
            self._fill()
            rest = self.buf
        self.buf = rest[length:]
        return status, length

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        self.buf += chunk

    def run(self, path, depth, count):
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: costs\r\n\r\n" % path).encode()
        done = 0
        while done < count:
            n = min(depth, count - done)
            self.sock.sendall(req * n)
            for _ in range(n):
                status, length = self._response()
                if status != 200 or length == 0:
                    raise RuntimeError("GET %s answered %d with %d bytes" % (path, status, length))
            done += n

    def mark(self, path):
        """A request whose line marks a point in a trace; any status will do."""
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode())
        self._response()

    def close(self):
        self.sock.close()


def start(cmd, cwd=None):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         cwd=cwd)
    deadline = time.monotonic() + 120
    line = b""
    while time.monotonic() < deadline and b"\n" not in line:
        r, _, _ = select.select([p.stdout], [], [], 1.0)
        if r:
            c = os.read(p.stdout.fileno(), 1)
            if not c:
                break
            line += c
        elif p.poll() is not None:
            break
    m = re.search(rb"listening on http://127\.0\.0\.1:(\d+)/", line)
    if not m:
        p.kill()
        raise RuntimeError("server did not start: %r %s" % (line, p.stderr.read(2000)))
    return p, int(m.group(1))


def stop(p):
    # Under strace, the server is strace's child: it gets the signal.
    target = p.pid
    if os.path.basename(p.args[0]) == "strace":
        try:
            with open("/proc/%d/task/%d/children" % (p.pid, p.pid)) as f:
                target = int(f.read().split()[0])
        except (OSError, IndexError, ValueError):
            pass
    os.kill(target, signal.SIGTERM)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def server_cmd(binary, root):
    if "floor" in os.path.basename(binary):
        return [binary, "0"]
    return [binary, "--port", "0", "--root", root, "--access-log", "off"]


def callgrind_counts(binary, root, workload, tmp):
    path, depth, count, warm = WORKLOADS[workload]
    out = os.path.join(tmp, "callgrind.%s.out" % workload)
    p, port = start(["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=" + out,
                     "--trace-children=no"] + server_cmd(binary, root))
    try:
        c = Client(port)
        c.run(path, depth, warm)
        subprocess.run(["callgrind_control", "-i", "on", str(p.pid)], stdout=subprocess.DEVNULL, check=True)
        c.run(path, depth, count)
        subprocess.run(["callgrind_control", "-i", "off", str(p.pid)], stdout=subprocess.DEVNULL, check=True)
        c.close()
    finally:
        stop(p)
    total = 0
    queue_work = 0
    names = {}
    current_cfn = None
    with open(out) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                total = max(total, int(line.split()[1]))
            # Compressed names: "(id) name" the first time an id appears, on an
            # fn= line as well as a cfn= one, and "(id)" after that.
            m = re.match(r"fn=\((\d+)\) (.*)", line)
            if m:
                names[m.group(1)] = m.group(2).strip()
                continue
            m = re.match(r"cfn=\((\d+)\)(?: (.*))?", line)
            if m:
                if m.group(2):
                    names[m.group(1)] = m.group(2).strip()
                current_cfn = names.get(m.group(1), "")
                continue
            m = re.match(r"calls=(\d+)", line)
            # Work handed to the threadpool: uv_queue_work, and the uv_fs_*
            # requests with a callback (uvhttpd closes descriptors with one).
            if m and (current_cfn == "uv_queue_work" or
                      (current_cfn.startswith("uv_fs_") and current_cfn != "uv_fs_req_cleanup")):
                queue_work += int(m.group(1))
    return total / count, queue_work / count


def syscall_counts(binary, root, workload, tmp):
    """strace -f from the start (attaching to a running process needs ptrace rights that
    containers often withhold); the measured requests lie between two marker requests,
    whose request lines strace shows in the server's read()."""
    path, depth, count, warm = WORKLOADS[workload]
    if not shutil.which("strace"):
        raise RuntimeError("strace not found (apt-get install strace)")
    out = os.path.join(tmp, "strace.%s.out" % workload)
    p, port = start(["strace", "-f", "-qq", "-s", "40", "-o", out] + server_cmd(binary, root))
    try:
        c = Client(port)
        c.run(path, depth, warm)  # also starts the threadpool's threads
        c.mark("/__costs_start__")
        c.run(path, depth, count)
        c.mark("/__costs_end__")
        c.close()
    finally:
        stop(p)
    calls = {}
    inside = False
    with open(out, errors="replace") as f:
        for line in f:
            if "__costs_start__" in line:
                inside = True
                continue
            if "__costs_end__" in line:
                break
            if not inside:
                continue
            m = re.match(r"\d+\s+([a-z_0-9]+)\(", line)
            if m:  # "<... x resumed>" lines continue a call already counted
                calls[m.group(1)] = calls.get(m.group(1), 0) + 1
    if not inside:
        raise RuntimeError("the start marker is not in the trace")
    total = sum(calls.values())
    return total / count, {k: v / count for k, v in sorted(calls.items(), key=lambda kv: -kv[1])}


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True, help="uvhttpd binary, or bench/floor's build/floor")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--what", default="instructions,syscalls",
                    help="instructions (callgrind), syscalls (strace), or both")
    a = ap.parse_args(argv)
    binary = os.path.abspath(a.server)
    what = a.what.split(",")
    with tempfile.TemporaryDirectory(prefix="uvh-costs-") as tmp:
        if os.environ.get("COSTS_KEEP"):
            tmp = tempfile.mkdtemp(prefix="uvh-costs-")
        root = os.path.join(tmp, "root")
        make_docroot(root, with_100m=False)
        print("server: %s" % binary)
        for w in a.workloads.split(","):
            if "instructions" in what:
                ir, qw = callgrind_counts(binary, root, w, tmp)
                print("%-9s instructions/request %10.0f   threadpool hand-offs/request %.3f"
                      % (w, ir, qw))
            if "syscalls" in what:
                total, calls = syscall_counts(binary, root, w, tmp)
                detail = ", ".join("%s %.2f" % (k, v) for k, v in calls.items() if v >= 0.005)
                print("%-9s syscalls/request %.2f: %s" % (w, total, detail))
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
