"""Workloads: small, pipelined, file1m, file100m, records (wrk), idle, slowclients, propfind,
compressed."""
import http.client
import os
import re
import selectors
import shlex
import socket
import subprocess
import sys
import time

from . import processes
from .common import (COMPRESS_CODINGS, COMPRESS_CONNS, COMPRESS_PATH, COMPRESS_SOURCE, DAV_SERVERS,
                     FLOOR_WORKLOADS, IDLE_HELPER, PIPELINE_LUA, POST_LUA, PROPFIND_CONNS, PROPFIND_DIR,
                     PROPFIND_ENTRIES, PROPFIND_LUA, SLOW_CLOSE_SLACK, SLOW_CLOSE_WAIT,
                     STEAL_LIMIT_PCT, STEAL_RERUNS,
                     SLOW_MIN_HELD, SLOW_MODES, SLOW_WAIT, SLOW_WRK_CONNS, BenchError, log)
from .loadtools import _ANSI, parse_slowhttptest, run_splice, run_wrk, slow_length, slowhttptest_cmd
from .processes import (CLIENT_CPU, SERVER_CPU, _track, core_usage, cpu_times, held_sockets, pdeathsig_prefix, pin, proc_tree,
                        stop_process, tcp_mem_pages)
from .report import fmt_pct
from .servers import Apache, Floor, H2o, Nginx, Uvhttpd, make_dav_dir


class Ctx:
    def __init__(self, args, root, workdir, servers):
        self.args = args
        self.root = root
        self.workdir = workdir
        self.servers = servers          # names, in order
        self.results = {}               # (workload, server) -> list of per-round dicts
        self.notes = []                 # strings for the doc
        self.skipped = {}               # workload -> reason
        self.busy_at_start = False
        self.slow = {}                  # (slowhttptest mode, server) -> list of per-round dicts
        self.slow_skipped = {}          # (mode, server) -> reason
        self.slow_notes = []            # strings for the slowclients table
        self.uvhttpd_slow_flags = []    # the timeout flags uvhttpd got in slowclients
        self.slow_probe = {}            # server -> answer to a POST head without its body
        self.propfind = {}              # server -> list of per-round dicts (propfind workload)
        self.propfind_skipped = {}      # server -> reason
        self.compressed = {}            # (coding, server) -> list of per-round dicts
        self.compressed_sizes = {}      # (coding, server) -> (body bytes, head bytes)
        self.compressed_skipped = {}    # (coding, server) -> reason
        self.round_info = {}            # workload -> [{round, steal, marked, attempts}]

    def new_server(self, name, uvhttpd_extra=()):
        if name == "uvhttpd":
            return Uvhttpd(self.root, self.workdir, self.args.server_bin, uvhttpd_extra)
        if name == "floor":
            return Floor(self.root, self.workdir, self.args.floor_bin)
        if name == "nginx":
            return Nginx(self.root, self.workdir)
        if name == "apache":
            return Apache(self.root, self.workdir)
        return H2o(self.root, self.workdir)


# Workloads whose client is bench/splice_get.py instead of wrk: wrk reads a body 8 KiB per
# read() into its own memory and, on its one core, saturates before the servers do on a
# 100 MiB file; splice_get.py splices the bodies to /dev/null and uses a fraction of its core.
# file1m-splice is file1m again with that client: with wrk the 1 MiB file is client-bound
# for nginx (wrk at 100 % of its core, nginx near 15 % of its own), and then the kernel's
# transmit work follows the client's ACKs onto the client's core, so nginx's CPU per
# request there is not what serving the file costs it.
SPLICE_WORKLOADS = ("file1m-splice", "file100m")


def wrk_spec(workload, args):
    """(conns, path, script, timeout) for the plain wrk workloads."""
    return {
        "small": (50, "/index.html", None, None),
        "pipelined": (50, "/index.html", PIPELINE_LUA, None),
        "file1m": (4, "/1m.bin", None, 10),
        "file1m-splice": (4, "/1m.bin", None, 10),
        "file100m": (4, "/100m.bin", None, 10),
        "records": (64, "/database.txt", POST_LUA, None),
    }[workload]


def start_all(ctx, names, uvhttpd_extra=()):
    servers = {}
    for n in names:
        s = ctx.new_server(n, uvhttpd_extra)
        try:
            s.start()
            check_serving(s)
        except BenchError as e:
            s.stop()
            log("%s: %s" % (n, e))
            ctx.notes.append("%s failed to start: %s" % (n, str(e).splitlines()[0]))
            continue
        log("%s listening on %s (pids %s)" % (n, s.base, s.pids()))
        servers[n] = s
    return servers


def check_serving(s):
    """GET /index.html must answer 200 with 571 bytes; also wait for worker processes."""
    deadline = time.monotonic() + 5
    if s.name == "nginx":
        while len(proc_tree(s.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    try:
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
        c.request("GET", "/index.html")
        resp = c.getresponse()
        body = resp.read()
        c.close()
    except (OSError, http.client.HTTPException) as e:
        raise BenchError("%s: GET /index.html failed: %s" % (s.name, e))
    if resp.status != 200 or len(body) != 571:
        raise BenchError("%s: GET /index.html gave %d with %d bytes" % (s.name, resp.status, len(body)))
    s._pids = None


def stop_all(servers):
    for s in servers.values():
        s.stop()


def failed_run(ctx, workload, name, rnd, err):
    first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
    log("%s: %s failed in round %d: %s" % (workload, name, rnd + 1, err))
    ctx.notes.append("%s: %s failed in round %d and was dropped from this workload: %s"
                     % (workload, name, rnd + 1, first))


def record(ctx, workload, name, r):
    ctx.results.setdefault((workload, name), []).append(r)


def rounds_for(ctx, workload):
    return ctx.args.small_rounds if workload in FLOOR_WORKLOADS else ctx.args.rounds


def round_steal(c0, c1):
    """Host steal (% of a CPU, /proc/stat) on the server's or the client's CPU, the larger."""
    vals = []
    for cpu in ((SERVER_CPU, CLIENT_CPU) if processes.PIN else ()):
        u = core_usage(c0, c1, cpu)
        if u is not None:
            vals.append(u["steal"])
    if not vals:
        # not pinned: the whole machine's steal
        tot = [sum(v[i] for v in c1.values()) - sum(v[i] for v in c0.values()) for i in range(4)]
        return 100.0 * tot[3] / tot[2] if tot[2] > 0 else None
    return max(vals)


def run_wrk_workload(ctx, workload, names):
    """Interleaved rounds: every server runs once per round, one after the other (uvhttpd
    right after the floor and right before nginx, so the per-round ratios compare runs taken
    back to back). A round with more than STEAL_LIMIT_PCT host steal is run again, at most
    STEAL_RERUNS times, and then kept with its steal marked."""
    args = ctx.args
    conns, path, script, tmo = wrk_spec(workload, args)
    if workload not in FLOOR_WORKLOADS:
        names = [n for n in names if n != "floor"]
    order = [n for n in ("floor", "uvhttpd", "nginx", "h2o") if n in names]
    servers = start_all(ctx, order)
    rounds = rounds_for(ctx, workload)
    try:
        for rnd in range(rounds):
            for attempt in range(STEAL_RERUNS + 1):
                got = {}
                c0 = cpu_times()
                for n in [n for n in order if n in servers]:
                    s = servers[n]
                    try:
                        if workload in SPLICE_WORKLOADS:
                            if args.warmup > 0:
                                run_splice(s, conns, args.warmup, path, measure=False)
                            r = run_splice(s, conns, args.duration, path)
                        else:
                            if args.warmup > 0:
                                run_wrk(s, conns, args.warmup, path, script, tmo, measure=False)
                            r = run_wrk(s, conns, args.duration, path, script, tmo)
                    except BenchError as e:
                        failed_run(ctx, workload, n, rnd, e)
                        s.stop()
                        del servers[n]
                        continue
                    if workload == "records":
                        dur = r["duration"] or args.duration
                        r["rps"] = max(0, r["requests"] - r["non2xx"]) / dur
                    got[n] = r
                    log("%-9s round %d/%d %-7s %10.0f req/s  cpu %5.1f%% (core %s)  client %5.1f%% (core %s)"
                        "  %6.2f us/req%s"
                        % (workload, rnd + 1, rounds, n, r["rps"], r["server_cpu_pct"],
                           fmt_pct(r.get("server_core_pct")), r["wrk_cpu_pct"],
                           fmt_pct(r.get("client_core_pct")), r["cpu_us"] or 0,
                           ("  %.0f MB/s" % r["mbps"]) if workload.startswith("file") else ""))
                steal = round_steal(c0, cpu_times())
                marked = steal is not None and steal > STEAL_LIMIT_PCT
                if marked and attempt < STEAL_RERUNS and got:
                    log("%s round %d/%d: host steal %.0f %% > %.0f %%: running the round again"
                        % (workload, rnd + 1, rounds, steal, STEAL_LIMIT_PCT))
                    continue
                break
            ctx.round_info.setdefault(workload, []).append(
                {"round": rnd, "steal": steal, "marked": marked, "attempts": attempt + 1})
            for n, r in got.items():
                r["round"] = rnd
                r["round_steal"] = steal
                r["steal_marked"] = marked
                record(ctx, workload, n, r)
    finally:
        stop_all(servers)


def records_supported(ctx):
    s = ctx.new_server("uvhttpd")
    try:
        s.start()
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
        c.request("POST", "/database.txt", body="name=Bench+Probe&email=probe%40example.com",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        resp = c.getresponse()
        resp.read()
        c.close()
        return resp.status == 201, "first POST answered %d" % resp.status
    except (OSError, http.client.HTTPException) as e:
        return False, "first POST failed: %s" % e
    except BenchError as e:
        return False, str(e)
    finally:
        s.stop()


def idle_helper_cmd(port, conns):
    return pin(CLIENT_CPU) + [sys.executable, IDLE_HELPER, "--host", "127.0.0.1",
                              "--port", str(port), "--conns", str(conns), "--path", "/index.html",
                              "--timeout", str(max(30, conns // 100))]


def _read_line(p, timeout):
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    try:
        if sel.select(timeout=timeout):
            return p.stdout.readline().decode().strip()
        return None
    finally:
        sel.close()


def run_idle_once(ctx, s):
    args = ctx.args
    n = args.idle_conns
    if args.warmup > 0:
        run_wrk(s, 50, args.warmup, "/index.html", measure=False)
    time.sleep(0.5)
    before = s.rss_kib()
    helper = subprocess.Popen(pdeathsig_prefix() + idle_helper_cmd(s.port, n), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _track(helper, False)
    try:
        line = _read_line(helper, max(60, n / 100) + 10)
        if not line or not line.startswith("READY"):
            err = helper.stderr.read1(4000).decode("utf-8", "replace") if helper.poll() is not None else ""
            raise BenchError("idle helper against %s did not get ready: %r %s" % (s.name, line, err))
        opened = int(re.search(r"opened=(\d+)", line).group(1))
        failed = int(re.search(r"failed=(\d+)", line).group(1))
        setup_s = float(re.search(r"elapsed=([\d.]+)", line).group(1))
        time.sleep(1.0)
        after = s.rss_kib()
        helper.stdin.write(b"check\n")
        helper.stdin.flush()
        line = _read_line(helper, 30) or ""
        m = re.match(r"ALIVE (\d+)", line)
        alive = int(m.group(1)) if m else opened
        helper.stdin.write(b"close\n")
        helper.stdin.flush()
        _read_line(helper, 30)
        helper.wait(timeout=30)
    finally:
        stop_process(helper, False)
    time.sleep(1.0)   # let the server reap the closed connections
    r = run_wrk(s, n, args.idle_duration, "/index.html", timeout=None)
    r["idle_opened"] = opened
    r["idle_failed"] = failed
    r["idle_alive"] = alive
    r["idle_setup_s"] = setup_s
    r["rss_before"] = before
    r["rss_after"] = after
    r["kib_per_conn"] = (after - before) / alive if alive else None
    return r


def run_idle_workload(ctx, names):
    args = ctx.args
    dropped = set()
    for rnd in range(args.rounds):
        for n in names:
            # fresh server per round: clean RSS baseline and a fresh port
            if n in dropped:
                continue
            servers = start_all(ctx, [n])
            try:
                if n not in servers:
                    dropped.add(n)
                    continue
                r = run_idle_once(ctx, servers[n])
            except BenchError as e:
                failed_run(ctx, "idle", n, rnd, e)
                dropped.add(n)
                continue
            finally:
                stop_all(servers)
            record(ctx, "idle", n, r)
            e = r["errors"]
            log("idle      round %d/%d %-7s %d/%d conns alive (setup %.1fs), RSS %d -> %d KiB, "
                "%.2f KiB/conn; wrk -c%d: %.0f req/s, errors c%d r%d w%d t%d"
                % (rnd + 1, args.rounds, n, r["idle_alive"], args.idle_conns, r["idle_setup_s"],
                   r["rss_before"], r["rss_after"], r["kib_per_conn"] or 0, args.idle_conns,
                   r["rps"], e["connect"], e["read"], e["write"], e["timeout"]))


# --------------------------------------------------------------------------
# slowclients: a normal wrk client while slowhttptest holds 800 slow connections


def uvhttpd_slow_flags(args):
    """The extra uvhttpd flags of --slow-uvhttpd-flags (none by default: the defaults)."""
    return shlex.split(args.slow_uvhttpd_flags or "")


def probe_early_answer(server, path, timeout=2.0):
    """Send a POST head announcing a 64 KiB body, and no body.

    Returns the status code if the server answers within `timeout` s, "closed" if it
    closes without an answer, None if it waits for the body."""
    head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
            "application/x-www-form-urlencoded\r\nContent-Length: 65536\r\n\r\n" % path)
    data = b""
    closed = False
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as c:
            c.sendall(head.encode())
            deadline = time.monotonic() + timeout
            while b"\r\n" not in data and time.monotonic() < deadline:
                c.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = c.recv(4096)
                if not chunk:
                    closed = True
                    break
                data += chunk
    except socket.timeout:
        pass
    except OSError as e:
        return "error (%s)" % e
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    if m:
        return m.group(1).decode()
    return "closed" if closed or data else None


def run_slow_once(ctx, s, mode):
    args = ctx.args
    r = {}
    if args.warmup > 0:
        run_wrk(s, SLOW_WRK_CONNS, args.warmup, "/index.html", measure=False)
    base = run_wrk(s, SLOW_WRK_CONNS, args.duration, "/index.html")
    time.sleep(0.5)                  # let the server close wrk's connections
    held_before = held_sockets(s)
    length = slow_length(args)
    outpath = os.path.join(ctx.workdir, "slowhttptest-%s%s.out" % (s.name, mode))
    outf = open(outpath, "wb")
    cmd = (pdeathsig_prefix() + pin(CLIENT_CPU) + ["chrt", "--idle", "0"] +
           slowhttptest_cmd(mode, length, s.port))
    # Idle scheduling class, and the same session as wrk, not a new one: with autogroup
    # scheduling (/proc/sys/kernel/sched_autogroup_enabled) every session gets its own
    # fair share of a CPU, and slowhttptest would then take half of wrk's.
    # slowhttptest busy-polls its 1000 sockets and uses a whole CPU all the time.
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=outf, stderr=subprocess.STDOUT)
    outf.close()
    _track(p, False)
    try:
        t0 = time.monotonic()
        held = peak = 0
        while time.monotonic() - t0 < SLOW_WAIT:
            held = held_sockets(s)
            peak = max(peak, held)
            if held > SLOW_MIN_HELD or p.poll() is not None:
                break
            time.sleep(0.1)
        r["wait_s"] = time.monotonic() - t0
        if peak <= SLOW_MIN_HELD and p.poll() is not None:
            with open(outpath, "rb") as f:
                tail = _ANSI.sub("", f.read().decode("utf-8", "replace")).strip()[-300:]
            raise BenchError("slowhttptest %s exited (%s) before the server held more than %d "
                             "sockets (peak %d): %s" % (mode, p.returncode, SLOW_MIN_HELD, peak,
                                                       tail))
        if not s.alive():
            raise BenchError("%s exited under slowhttptest %s (exit %s)"
                             % (s.name, mode, s.proc.poll()))
        r["held_start"] = held       # when the measured run starts
        r["held_peak"] = peak        # most seen while waiting (the attack may still grow)
        attack = run_wrk(s, SLOW_WRK_CONNS, args.duration, "/index.html", expect_other=True)
        r["held_end"] = held_sockets(s)
        r["tcp_mem"], r["tcp_mem_pressure"], r["tcp_mem_max"] = tcp_mem_pages()
        r["sh_exited"] = p.poll() is not None     # it stops once it has no connection left
    finally:
        stop_process(p, False, timeout=5)
    with open(outpath, "rb") as f:
        r["sh"] = parse_slowhttptest(f.read().decode("utf-8", "replace"))
    # every attack connection closed? slowhttptest's exit closed the client side; the
    # server must notice and close its descriptors
    t0 = time.monotonic()
    r["close_s"] = None
    left = held_sockets(s)
    while True:
        if left <= held_before + SLOW_CLOSE_SLACK:
            r["close_s"] = time.monotonic() - t0
            break
        if time.monotonic() - t0 >= SLOW_CLOSE_WAIT:
            break
        time.sleep(0.2)
        left = held_sockets(s)
    r["held_before"] = held_before
    r["held_left"] = left
    r["base_rps"] = base["rps"]
    r["rps"] = attack["rps"]
    r["ratio_pct"] = 100.0 * attack["rps"] / base["rps"] if base["rps"] else None
    r["errors"] = attack["errors"]
    r["non2xx"] = attack["non2xx"]
    r["base_errors"] = sum(base["errors"].values()) + base["non2xx"]
    r["p99"] = attack["p99"]
    r["base_p99"] = base["p99"]
    for k in ("server_cpu_pct", "server_core_pct", "wrk_cpu_pct", "client_core_pct",
              "server_steal_pct", "client_steal_pct", "server_other_pct", "client_other_pct"):
        r[k] = attack.get(k)
        r["base_" + k] = base.get(k)
    return r


def run_slowclients_workload(ctx, names):
    args = ctx.args
    flags = []
    if "uvhttpd" in names:
        flags = uvhttpd_slow_flags(args)
        ctx.uvhttpd_slow_flags = flags
        if flags:
            msg = ("slowclients: uvhttpd got `%s` (--slow-uvhttpd-flags), not its defaults: "
                   "this is not the number the target is about" % " ".join(flags))
            log(msg)
            ctx.slow_notes.append(msg)
    # the same URL must exist on every server: -B posts to /database.txt, which a
    # static-file server would otherwise answer with 404
    db = os.path.join(ctx.root, "database.txt")
    if not os.path.exists(db):
        open(db, "ab").close()
    dropped = set()
    probed = set()
    for rnd in range(args.rounds):
        for mode, label, _path, _extra in SLOW_MODES:
            for n in names:
                if (mode, n) in dropped:
                    continue
                # fresh server per attack: nothing left over from the previous one
                servers = start_all(ctx, [n], flags if n == "uvhttpd" else ())
                try:
                    if n not in servers:
                        dropped.add((mode, n))
                        ctx.slow_skipped[(mode, n)] = "did not start"
                        continue
                    s = servers[n]
                    if mode == "-B" and n not in probed:
                        probed.add(n)
                        ans = probe_early_answer(s, "/database.txt")
                        ctx.slow_probe[n] = ans
                        log("slowclients: %s, POST /database.txt head with Content-Length 65536 "
                            "and no body: %s"
                            % (n, "answers %s without waiting for the body" % ans
                               if ans and ans.isdigit() else
                               ans or "no answer within 2 s (waits for the body)"))
                    r = run_slow_once(ctx, s, mode)
                except BenchError as e:
                    first = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
                    log("slowclients %s: %s failed in round %d: %s" % (mode, n, rnd + 1, e))
                    ctx.slow_skipped[(mode, n)] = "failed in round %d: %s" % (rnd + 1, first)
                    dropped.add((mode, n))
                    continue
                finally:
                    stop_all(servers)
                ctx.slow.setdefault((mode, n), []).append(r)
                e = r["errors"]
                log("slowclients round %d/%d %-7s %s %s: %.0f -> %.0f req/s (%.0f %%), errors c%d "
                    "r%d w%d t%d; server sockets %d at start (after %.1f s), %d at end, TCP mem "
                    "%s pages; slowhttptest %s; attack sockets closed %s; CPU usual -> under "
                    "attack: server %s -> %s, wrk %s -> %s, other processes on the server's "
                    "core %s -> %s, on wrk's %s -> %s, steal %s -> %s"
                    % (rnd + 1, args.rounds, n, mode, label, r["base_rps"], r["rps"],
                       r["ratio_pct"] or 0, e["connect"], e["read"], e["write"], e["timeout"],
                       r["held_start"], r["wait_s"], r["held_end"], r["tcp_mem"],
                       ("had exited: " + (r["sh"]["exit"] or "?")) if r["sh_exited"]
                       else "was still running (stopped)",
                       ("in %.1f s" % r["close_s"]) if r["close_s"] is not None else
                       "NO (%d left after %d s)" % (r["held_left"], SLOW_CLOSE_WAIT),
                       fmt_pct(r["base_server_cpu_pct"]), fmt_pct(r["server_cpu_pct"]),
                       fmt_pct(r["base_wrk_cpu_pct"]), fmt_pct(r["wrk_cpu_pct"]),
                       fmt_pct(r["base_server_other_pct"]), fmt_pct(r["server_other_pct"]),
                       fmt_pct(r["base_client_other_pct"]), fmt_pct(r["client_other_pct"]),
                       fmt_pct(max(r["base_server_steal_pct"] or 0, r["base_client_steal_pct"] or 0)),
                       fmt_pct(max(r["server_steal_pct"] or 0, r["client_steal_pct"] or 0))))


# --------------------------------------------------------------------------
# propfind: PROPFIND Depth: 1 of a 10,000-entry directory (uvhttpd against Apache mod_dav)

PROPFIND_BODY = ('<?xml version="1.0" encoding="utf-8"?>\n'
                 '<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>\n')   # as lua/propfind.lua


def propfind_probe(s):
    """One PROPFIND Depth: 1 of PROPFIND_DIR, checked: a 207 with one response per entry plus
    the directory's own, each with its live properties. Returns the body's size in bytes."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
        c.request("PROPFIND", PROPFIND_DIR, body=PROPFIND_BODY,
                  headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"})
        resp = c.getresponse()
        body = resp.read()
        c.close()
    except (OSError, http.client.HTTPException) as e:
        raise BenchError("PROPFIND %s failed: %s" % (PROPFIND_DIR, e))
    if resp.status != 207:
        raise BenchError("PROPFIND %s answered %d, not 207 (%s)"
                         % (PROPFIND_DIR, resp.status, body[:120].decode("utf-8", "replace").strip()))
    responses = len(re.findall(rb"<(?:[A-Za-z_][\w.-]*:)?response[\s>]", body))
    lengths = len(re.findall(rb"<(?:[A-Za-z_][\w.-]*:)?getcontentlength[\s>]", body))
    if responses != PROPFIND_ENTRIES + 1 or lengths < PROPFIND_ENTRIES:
        raise BenchError("PROPFIND %s: 207 with %d responses and %d getcontentlength, expected "
                         "%d and at least %d" % (PROPFIND_DIR, responses, lengths,
                                                 PROPFIND_ENTRIES + 1, PROPFIND_ENTRIES))
    return len(body)


def run_propfind_once(ctx, s):
    args = ctx.args
    r_start = s.rss_kib()              # fresh server, before any PROPFIND
    size = propfind_probe(s)
    r_one = s.rss_kib()                # after one
    if args.warmup > 0:
        run_wrk(s, PROPFIND_CONNS, args.warmup, PROPFIND_DIR, PROPFIND_LUA, 30, measure=False)
    r = run_wrk(s, PROPFIND_CONNS, args.duration, PROPFIND_DIR, PROPFIND_LUA, 30)
    r["rss_start"] = r_start
    r["rss_one"] = r_one
    r["rss_after"] = s.rss_kib()       # after all of them
    r["rss_peak"] = s.peak_rss_kib()
    r["body_bytes"] = size
    r["ms_per_req"] = 1000.0 * r["duration"] / r["requests"] if r["requests"] else None
    return r


def run_propfind_workload(ctx, names):
    """uvhttpd and Apache only: each round on a freshly started server (a clean RSS baseline)."""
    args = ctx.args
    names = [n for n in names if n in DAV_SERVERS]
    if not names:
        ctx.skipped["propfind"] = "neither uvhttpd nor apache in this run"
        return
    log("propfind: creating %d files in %s" % (PROPFIND_ENTRIES, PROPFIND_DIR))
    make_dav_dir(ctx.root)
    dropped = set()
    for rnd in range(args.rounds):
        for n in names:
            if n in dropped:
                continue
            servers = start_all(ctx, [n])
            try:
                if n not in servers:
                    dropped.add(n)
                    ctx.propfind_skipped[n] = "did not start"
                    continue
                r = run_propfind_once(ctx, servers[n])
            except BenchError as e:
                log("propfind: %s failed in round %d: %s" % (n, rnd + 1, e))
                ctx.propfind_skipped[n] = "round %d: %s" % (rnd + 1, str(e).splitlines()[0])
                dropped.add(n)
                continue
            finally:
                stop_all(servers)
            ctx.propfind.setdefault(n, []).append(r)
            e = r["errors"]
            log("propfind  round %d/%d %-7s %7.1f req/s  %7.2f ms/req (p50 %s)  CPU %.2f ms/req  "
                "RSS %d -> %d -> %d KiB (peak %d)  %d-byte 207  errors c%d r%d w%d t%d non-2xx %d"
                % (rnd + 1, args.rounds, n, r["rps"], r["ms_per_req"] or 0, r["p50"],
                   (r["cpu_us"] or 0) / 1000, r["rss_start"], r["rss_one"], r["rss_after"],
                   r["rss_peak"], r["body_bytes"], e["connect"], e["read"], e["write"],
                   e["timeout"], r["non2xx"]))


def compressed_probe(s, coding):
    """(Content-Encoding, body bytes, head bytes) of one GET of the script with this
    Accept-Encoding, read raw (not decoded)."""
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
        sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: %s\r\n"
                      "Connection: close\r\n\r\n" % (COMPRESS_PATH, coding)).encode())
        data = b""
        while True:
            b = sock.recv(65536)
            if not b:
                break
            data += b
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if " 200 " not in lines[0] + " ":
        raise BenchError("%s: GET %s gave %s" % (s.name, COMPRESS_PATH, lines[0]))
    h = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
    if h.get("transfer-encoding", "").lower() == "chunked":
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            n = int(size_line.split(b";")[0], 16)
            if n == 0:
                break
            out += rest[:n]
            rest = rest[n + 2:]
        body = out
    return h.get("content-encoding"), len(body), len(head) + 4


def run_compressed_workload(ctx, names):
    """The ~90 KB script with Accept-Encoding: gzip, br, zstd in turn; a server that does not
    produce a coding sits that coding out (nginx has gzip only, h2o gzip and br)."""
    args = ctx.args
    if not os.path.exists(os.path.join(ctx.root, COMPRESS_PATH.lstrip("/"))):
        ctx.skipped["compressed"] = "%s not found (apt-get install libjs-jquery)" % COMPRESS_SOURCE
        return
    servers = start_all(ctx, names)
    try:
        # The first request of each coding makes uvhttpd compress (once); the warm-up
        # below is what every server gets anyway.
        for coding in COMPRESS_CODINGS:
            for n, s in list(servers.items()):
                try:
                    enc, body, head = compressed_probe(s, coding)
                except (OSError, BenchError) as e:
                    ctx.compressed_skipped[(coding, n)] = str(e).splitlines()[0]
                    continue
                if enc != coding:
                    ctx.compressed_skipped[(coding, n)] = "does not produce %s (sent %s)" % (
                        coding, enc or "identity")
                    continue
                ctx.compressed_sizes[(coding, n)] = (body, head)
        for rnd in range(args.rounds):
            for coding in COMPRESS_CODINGS:
                hdr = ("Accept-Encoding: %s" % coding,)
                for n, s in list(servers.items()):
                    if (coding, n) not in ctx.compressed_sizes:
                        continue
                    try:
                        if args.warmup > 0:
                            run_wrk(s, COMPRESS_CONNS, args.warmup, COMPRESS_PATH, measure=False,
                                    headers=hdr)
                        r = run_wrk(s, COMPRESS_CONNS, args.duration, COMPRESS_PATH, headers=hdr)
                    except BenchError as e:
                        failed_run(ctx, "compressed", n, rnd, e)
                        ctx.compressed_skipped[(coding, n)] = "failed in round %d" % (rnd + 1)
                        ctx.compressed_sizes.pop((coding, n), None)
                        continue
                    r["wire_per_req"] = r["bytes"] / r["requests"] if r["requests"] else None
                    ctx.compressed.setdefault((coding, n), []).append(r)
                    log("compressed round %d/%d %-4s %-7s %10.0f req/s  cpu %5.1f%% (core %s)  "
                        "%6.2f us/req  %.0f B/response on the wire"
                        % (rnd + 1, args.rounds, coding, n, r["rps"], r["server_cpu_pct"],
                           fmt_pct(r.get("server_core_pct")), r["cpu_us"] or 0,
                           r["wire_per_req"] or 0))
    finally:
        stop_all(servers)
