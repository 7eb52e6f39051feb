"""Load tools: wrk and slowhttptest command lines, runs and output parsing; the ab + wrk smoke check."""
import os
import re
import shutil
import sys

from . import processes
from .common import (CLK_TCK, SLOW_CONNS, SLOW_MODES, SLOW_RATE, SLOW_WAIT, SLOWHTTPTEST, SPLICE_CLIENT,
                     BenchError, log)
from .processes import (CLIENT_CPU, SERVER_CPU, core_usage, cpu_times, pdeathsig_prefix, pin,
                        run_simple, run_with_rusage)


# --------------------------------------------------------------------------
# wrk

_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}


def _ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m|h)$", text)
    return float(m.group(1)) * _TIME_UNITS[m.group(2)] if m else None


def _bytes(text):
    m = re.match(r"([\d.]+)([KMGT]?B)$", text)
    return float(m.group(1)) * _SIZE_UNITS[m.group(2)] if m else None


def empty_result():
    """A load run's result before its output is parsed (parse_wrk, parse_splice)."""
    return {"rps": None, "p50": None, "p90": None, "p99": None, "mbps": None, "requests": None,
            "duration": None, "bytes": None, "non2xx": 0,
            "errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0}}


def parse_wrk(out):
    r = empty_result()
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+[KMGT]?B)", out)
    if m:
        r["mbps"] = _bytes(m.group(1)) / 1024 ** 2
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h), ([\d.]+[KMGT]?B) read", out)
    if m:
        r["requests"] = int(m.group(1))
        r["duration"] = _ms(m.group(2) + m.group(3)) / 1e3
        r["bytes"] = _bytes(m.group(4))
    for pct, key in (("50", "p50"), ("90", "p90"), ("99", "p99")):
        m = re.search(r"^\s+%s(?:\.0+)?%%\s+([\d.]+(?:us|ms|s|m|h))" % pct, out, re.M)
        if m:
            r[key] = _ms(m.group(1))
    # wrk 4.1.0 sometimes prints "99%  0.00us" (histogram glitch, seen with
    # pipelining); a p99 below p90 is impossible, so drop it.
    if r["p99"] is not None and (r["p99"] <= 0 or r["p99"] < (r["p90"] or 0) or
                                 r["p99"] < (r["p50"] or 0)):
        r["p99"] = None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    return r


def wrk_cmd(conns, duration, path, script=None, timeout=None, port="PORT", headers=()):
    cmd = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % duration, "--latency"]
    for h in headers:
        cmd += ["-H", h]
    if timeout:
        cmd += ["--timeout", "%ds" % timeout]
    if script:
        cmd += ["-s", script]
    cmd.append("http://127.0.0.1:%s%s" % (port, path))
    return cmd


def run_wrk(server, conns, duration, path, script=None, timeout=None, measure=True,
            expect_other=False, headers=()):
    cmd = pdeathsig_prefix() + pin(CLIENT_CPU) + wrk_cmd(conns, duration, path, script, timeout,
                                                         server.port, headers)
    return measured_run(server, cmd, duration + 30 + conns / 500, parse_wrk, "wrk", measure, expect_other)


def splice_cmd(conns, duration, path, port="PORT"):
    return [sys.executable, SPLICE_CLIENT, "--port", str(port), "--path", path, "--conns", str(conns),
            "--duration", str(duration)]


def parse_splice(out):
    """bench/splice_get.py's line, as the keys parse_wrk gives (no latencies)."""
    r = empty_result()
    m = re.search(r"requests=(\d+) bytes=(\d+) elapsed=([\d.]+) non2xx=(\d+) errors=(\d+)", out)
    if m:
        r["requests"], r["bytes"], r["non2xx"] = int(m.group(1)), int(m.group(2)), int(m.group(4))
        r["duration"] = float(m.group(3))
        r["errors"]["read"] = int(m.group(5))
        if r["duration"] > 0:
            r["rps"] = r["requests"] / r["duration"]
            r["mbps"] = r["bytes"] / r["duration"] / 1024 ** 2
    return r


def run_splice(server, conns, duration, path, measure=True):
    """The large-file client that is not the bottleneck (bench/splice_get.py), pinned where
    wrk would be."""
    cmd = pdeathsig_prefix() + pin(CLIENT_CPU) + splice_cmd(conns, duration, path, server.port)
    return measured_run(server, cmd, duration + 60, parse_splice, "splice_get", measure)


def measured_run(server, cmd, limit, parse, tool, measure=True, expect_other=False):
    """Runs a load tool to completion and measures the server (its CPU, its core's and the
    client's core's usage from /proc/stat) and the tool (its rusage); "wrk_cpu_pct" is the
    tool's CPU, whichever tool it is."""
    if not server.alive():
        raise BenchError("%s is not running (exit %s)" % (server.name, server.proc.poll()
                                                          if server.proc else "?"))
    t0_ticks = server.cpu_ticks()
    t0_cores = cpu_times()
    rc, out, err, wrk_cpu, wall, timed_out = run_with_rusage(cmd, limit)
    t1_ticks = server.cpu_ticks()
    t1_cores = cpu_times()
    if not server.alive():
        raise BenchError("%s exited during the run (exit %s)" % (server.name, server.proc.poll()))
    if not measure:
        return None
    if timed_out:
        raise BenchError("%s timed out against %s" % (tool, server.name))
    r = parse(out)
    if r["rps"] is None or r["requests"] is None:
        raise BenchError("could not parse %s output (rc %d) against %s:\n%s\n%s"
                         % (tool, rc, server.name, out, err))
    cpu_s = (t1_ticks - t0_ticks) / CLK_TCK
    r["server_cpu_s"] = cpu_s
    r["server_cpu_pct"] = 100.0 * cpu_s / wall if wall > 0 else None
    r["wrk_cpu_pct"] = 100.0 * wrk_cpu / wall if wall > 0 else None
    if processes.PIN:
        for side, cpu, own in (("server", SERVER_CPU, r["server_cpu_pct"]),
                               ("client", CLIENT_CPU, r["wrk_cpu_pct"])):
            u = core_usage(t0_cores, t1_cores, cpu)
            if u is None or own is None:
                continue
            r[side + "_core_pct"] = u["busy"]
            r[side + "_steal_pct"] = u["steal"]
            # user+system time on that core not spent by the process we pinned
            # there: other processes (e.g. a compiler) disturbing the run
            r[side + "_other_pct"] = max(0.0, u["proc"] - own)
    r["cpu_us"] = cpu_s * 1e6 / r["requests"] if r["requests"] else None
    r["rss_kib"] = server.rss_kib()
    r["raw"] = out
    other = max(r.get("server_other_pct") or 0, r.get("client_other_pct") or 0)
    if other > 10 and not expect_other:    # expect_other: slowclients' attack shares the CPU
        log("warning: other processes used %.0f %% of a benchmark core during this %s run"
            % (other, server.name))
    if os.environ.get("BENCH_DEBUG"):
        log("%s: %s\n%s" % (server.name, " ".join(cmd), out))
    return r


def slow_mode(mode):
    for m in SLOW_MODES:
        if m[0] == mode:
            return m
    raise KeyError(mode)


def slow_length(args):
    """slowhttptest -l: covers the wait for the attack, the measured run and a margin
    (the harness stops slowhttptest itself as soon as the measured run is over)."""
    return SLOW_WAIT + args.duration + 15


def slowhttptest_cmd(mode, length, port="PORT"):
    _mode, _label, path, extra = slow_mode(mode)
    return ([SLOWHTTPTEST, mode, "-c", str(SLOW_CONNS), "-r", str(SLOW_RATE),
             "-l", str(length), "-p", "3", "-u", "http://127.0.0.1:%s%s" % (port, path)] + extra)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def parse_slowhttptest(text):
    """slowhttptest's last status block: its own connected/closed/error counts and exit status."""
    text = _ANSI.sub("", text)
    r = {}
    for key in ("connected", "closed", "error"):
        vals = re.findall(r"^%s:\s+(\d+)" % key, text, re.M)
        r[key] = int(vals[-1]) if vals else None
    m = re.search(r"Exit status:\s*(.*)", text)
    r["exit"] = m.group(1).strip() if m else None
    return r


# --------------------------------------------------------------------------
# smoke mode

def smoke(url):
    """ab + wrk against an already running server; non-zero exit on failures."""
    for tool in ("ab", "wrk"):
        if not shutil.which(tool):
            print("smoke: %s not found (apt-get install %s)" % (tool, "apache2-utils" if tool == "ab" else "wrk"),
                  file=sys.stderr)
            return 2
    if re.match(r"^https?://[^/]+$", url):
        url += "/"
    ok = True
    rc, out = run_simple(["ab", "-k", "-q", "-s", "5", "-n", "2000", "-c", "10", url], timeout=20)
    m_rps = re.search(r"Requests per second:\s+([\d.]+)", out)
    m_failed = re.search(r"Failed requests:\s+(\d+)", out)
    m_non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    if rc != 0 or not m_rps or not m_failed:
        print("smoke: ab failed (exit %d):\n%s" % (rc, out.strip()[-1500:]), file=sys.stderr)
        ok = False
    else:
        failed = int(m_failed.group(1))
        print("ab  -k -n 2000 -c 10: %s requests/s, failed requests %d%s"
              % (m_rps.group(1), failed,
                 (", non-2xx %s" % m_non2xx.group(1)) if m_non2xx else ""))
        if failed:
            ok = False
    rc, out, err, _, _, timed_out = run_with_rusage(["wrk", "-t1", "-c10", "-d1s", url], 15)
    r = parse_wrk(out)
    if timed_out or r["rps"] is None:
        print("smoke: wrk failed (exit %d):\n%s%s" % (rc, out.strip()[-1500:], err.strip()[-500:]),
              file=sys.stderr)
        ok = False
    else:
        e = r["errors"]
        errs = sum(e.values())
        print("wrk -t1 -c10 -d1s:    %.2f requests/s, socket errors connect %d read %d write %d "
              "timeout %d%s" % (r["rps"], e["connect"], e["read"], e["write"], e["timeout"],
                                (", non-2xx %d" % r["non2xx"]) if r["non2xx"] else ""))
        if errs:
            ok = False
    print("smoke: %s" % ("ok" if ok else "FAILED"))
    return 0 if ok else 1
