"""Processes: start/stop bookkeeping, CPU pinning, resource limits, and accounting from /proc.

PIN and NOFILE change at run time (bench/run clears PIN on a single CPU;
raise_own_nofile() sets NOFILE): other modules read them as processes.PIN and
processes.NOFILE, never import them by name.
"""
import atexit
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from .common import log


SERVER_CPU = "0"
CLIENT_CPU = "1"
PIN = True            # turned off on single-CPU machines
NOFILE = 20000        # set by raise_own_nofile()


# --------------------------------------------------------------------------
# process bookkeeping: everything we start is tracked and killed on exit

_LIVE = []            # list of (Popen, is_group_leader)
_LIVE_LOCK = threading.Lock()
_TEMP_DIRS = []


def _track(p, group):
    with _LIVE_LOCK:
        _LIVE.append((p, group))


def _untrack(p):
    with _LIVE_LOCK:
        _LIVE[:] = [(q, g) for (q, g) in _LIVE if q is not p]


def _signal_tree(p, group, sig):
    try:
        if group:
            os.killpg(p.pid, sig)
        else:
            os.kill(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_process(p, group, timeout=5.0):
    """SIGTERM, wait, then SIGKILL; for group leaders the whole group."""
    if p.poll() is None:
        _signal_tree(p, group, signal.SIGTERM)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_tree(p, group, signal.SIGKILL)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    if group:
        # stragglers in the group (e.g. nginx workers whose master died)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                os.killpg(p.pid, 0)
            except (ProcessLookupError, PermissionError):
                break
            _signal_tree(p, group, signal.SIGKILL)
            time.sleep(0.05)
    _untrack(p)


def cleanup():
    with _LIVE_LOCK:
        live = list(_LIVE)
    for p, group in reversed(live):
        try:
            stop_process(p, group, timeout=3)
        except Exception:
            pass
    while _TEMP_DIRS:
        shutil.rmtree(_TEMP_DIRS.pop(), ignore_errors=True)


def _on_signal(signum, frame):
    signal.signal(signum, signal.SIG_IGN)     # one cleanup is enough
    log("interrupted by signal %d: stopping servers" % signum)
    raise SystemExit(128 + signum)


def install_cleanup():
    atexit.register(cleanup)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)


def make_tempdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    _TEMP_DIRS.append(d)
    return d


def raise_own_nofile():
    """Raise our RLIMIT_NOFILE to 65536 if allowed, else to the hard limit.

    Children (servers, wrk, the idle helper) inherit it."""
    global NOFILE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    inf = resource.RLIM_INFINITY
    want = 65536
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard if hard == inf else max(want, hard)))
        NOFILE = want
        return
    except (ValueError, OSError):
        pass
    target = want if hard == inf else min(want, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        NOFILE = target
    except (ValueError, OSError):
        NOFILE = soft


def pdeathsig_prefix():
    # Servers get SIGTERM if the harness dies without running its cleanup.
    if shutil.which("setpriv"):
        return ["setpriv", "--pdeathsig", "TERM", "--"]
    return []


def pin(cpu):
    return ["taskset", "-c", cpu] if PIN else []


def run_simple(cmd, timeout=10, **kw):
    """Run a short command; returns (rc, stdout+stderr text)."""
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=timeout, **kw)
        return r.returncode, r.stdout.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        return -1, "timeout"
    except OSError as e:
        return -1, str(e)


def run_with_rusage(cmd, timeout):
    """Run cmd to completion with a hard timeout.

    Returns (rc, stdout, stderr, child_cpu_seconds, wall_seconds, timed_out).
    The CPU time comes from wait4()'s rusage of the child itself.
    """
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    _track(p, False)
    timed_out = False
    reaped = False
    try:
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                reaped = True
                break
            if time.monotonic() - t0 > timeout:
                timed_out = True
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                reaped = True
                break
            time.sleep(0.01)
    finally:
        if not reaped:           # interrupted: do not leave the tool running
            try:
                p.kill()
                os.wait4(p.pid, 0)
            except (OSError, ChildProcessError):
                pass
            p.returncode = -9
        _untrack(p)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    so = out.read().decode("utf-8", "replace")
    se = err.read().decode("utf-8", "replace")
    out.close()
    err.close()
    return p.returncode, so, se, ru.ru_utime + ru.ru_stime, wall, timed_out


# --------------------------------------------------------------------------
# /proc helpers

def proc_tree(root):
    """root pid plus all descendants."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                data = f.read()
        except OSError:
            continue
        ppid = int(data[data.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def proc_comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def cpu_ticks(pid):
    """utime+stime of a process (all of its threads, live and exited)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return 0
    fields = data[data.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15
    return int(fields[11]) + int(fields[12])


def cpu_times():
    """Per-CPU jiffies from /proc/stat: (user+nice+system, irq+softirq, total, steal).

    Kernel network work done in softirq context is charged to no process, so
    a core can be saturated while the process on it shows less than 100 %."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+)\s+(.*)", line)
            if not m:
                continue
            v = [int(x) for x in m.group(2).split()[:8]]
            v += [0] * (8 - len(v))
            user, nice, system, idle, iowait, irq, softirq, steal = v
            out[m.group(1)] = (user + nice + system, irq + softirq, sum(v), steal)
    return out


def core_usage(before, after, cpu):
    """dict of busy/proc/softirq/steal percentages of one CPU between two samples."""
    if cpu not in before or cpu not in after:
        return None
    d = [a - b for a, b in zip(after[cpu], before[cpu])]
    if d[2] <= 0:
        return None
    pct = [100.0 * x / d[2] for x in d]
    return {"busy": pct[0] + pct[1], "proc": pct[0], "softirq": pct[1], "steal": pct[3]}


def rss_kib(pid, field="VmRSS:"):
    """VmRSS (or another KiB field of /proc/PID/status, e.g. the peak VmHWM:) of one process."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def held_sockets(server):
    """TCP connections on the server's port that the server processes still hold open.

    Sockets are matched by inode between /proc/PID/fd and /proc/net/tcp{,6}; the
    listener is left out.  A connection the client closed but the server did not
    (CLOSE_WAIT) still counts: only the server closing its descriptor removes it."""
    inodes = set()
    for pid in server.pids():
        d = "/proc/%d/fd" % pid
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for fd in names:
            try:
                link = os.readlink(os.path.join(d, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    port = ":%04X" % server.port
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            f = open(table)
        except OSError:
            continue
        with f:
            next(f, None)
            for line in f:
                fields = line.split()
                # fields: sl local rem st ... inode (index 9); st 0A is LISTEN
                if (len(fields) > 9 and fields[1].endswith(port) and fields[3] != "0A" and
                        fields[9] in inodes):
                    n += 1
    return n


def tcp_mem_pages():
    """(pages the kernel's TCP sockets use now, tcp_mem pressure threshold, tcp_mem max)."""
    try:
        with open("/proc/net/sockstat") as f:
            m = re.search(r"^TCP:.*\bmem (\d+)", f.read(), re.M)
        with open("/proc/sys/net/ipv4/tcp_mem") as f:
            _low, pressure, high = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        return None, None, None
    return (int(m.group(1)) if m else None), pressure, high
