"""docs/benchmarks.md: machine and tool versions, the method, the commands and the results."""
import os
import re
import shutil
import sys

from . import processes
from .common import (ALL_SERVERS, APACHE_BIN, H2O_BIN, NGINX_BIN, PROPFIND_CONNS, PROPFIND_DIR,
                     PROPFIND_LUA, REPO, SLOW_CLOSE_SLACK, SLOW_CLOSE_WAIT, STEAL_LIMIT_PCT, STEAL_RERUNS,
                     SLOW_CONNS, SLOW_MIN_HELD, SLOW_MODES, SLOW_RATE, SLOW_TARGET_PCT, SLOW_WAIT,
                     SLOW_WRK_CONNS, SLOWHTTPTEST, log)
from .loadtools import slow_length, slowhttptest_cmd, splice_cmd, wrk_cmd
from .plot import make_plot
from .processes import CLIENT_CPU, SERVER_CPU, run_simple
from .workloads import SPLICE_WORKLOADS, wrk_spec


def first_line(text):
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return "unknown"


def tool_versions(args):
    v = {}
    rc, out = run_simple(["wrk", "-v"])
    v["wrk"] = first_line(out)
    if os.path.exists(NGINX_BIN):
        v["nginx"] = first_line(run_simple([NGINX_BIN, "-v"])[1])
    if os.path.exists(H2O_BIN):
        v["h2o"] = first_line(run_simple([H2O_BIN, "--version"])[1])
    if "propfind" in args.workloads and os.path.exists(APACHE_BIN):
        v["apache"] = first_line(run_simple([APACHE_BIN, "-v"])[1])
    if os.path.exists(args.server_bin):
        rc, out = run_simple([args.server_bin, "--version"], timeout=5)
        v["uvhttpd"] = first_line(out) if rc == 0 else "unknown (--version exited %d)" % rc
    else:
        v["uvhttpd"] = "not built"
    if os.path.exists(getattr(args, "floor_bin", "")):
        v["floor"] = "bench/floor.c, libuv %s" % run_simple(["pkg-config", "--modversion", "libuv"])[1].strip()
    if "slowclients" in args.workloads and shutil.which(SLOWHTTPTEST):
        m = re.search(r"version ([\w.]+)", run_simple([SLOWHTTPTEST, "-h"])[1])
        v["slowhttptest"] = m.group(1) if m else "unknown"
    v["python"] = sys.version.split()[0]
    return v


def machine_info():
    info = {"nproc": str(os.cpu_count()), "kernel": os.uname().release, "model": "unknown",
            "memory": "unknown"}
    rc, out = run_simple(["nproc"])
    if rc == 0:
        info["nproc"] = out.strip()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["memory"] = "%.1f GiB" % (int(line.split()[1]) / 1024 ** 2)
                    break
    except OSError:
        pass
    # The TCP settings the large-file rows depend on: the congestion control decides how
    # much of a response the kernel sends in the server's own system call and how much in
    # the softirq of the client's ACKs (on the client's core), and the buffers bound both.
    for key, name in (("cc", "net/ipv4/tcp_congestion_control"), ("wmem", "net/ipv4/tcp_wmem"),
                      ("rmem", "net/ipv4/tcp_rmem")):
        try:
            with open("/proc/sys/" + name) as f:
                info[key] = " ".join(f.read().split())
        except OSError:
            info[key] = "unknown"
    return info


def commands_section(ctx, server_objs_cmds):
    a = ctx.args
    c = []
    c.append("Servers (ROOT is the generated document root, TMPDIR a per-server temp dir, "
             "PORT a free port picked by the script; uvhttpd picks its own with `--port 0` and "
             "prints it):")
    c.append("")
    c.append("```")
    c.extend(server_objs_cmds)
    c.append("```")
    c.append("")
    c.append("Load (all with `taskset -c %s`):" % CLIENT_CPU if processes.PIN else "Load:")
    c.append("")
    c.append("```")
    for w in ctx.workloads:
        if w == "idle":
            c.append("# idle: %d idle keep-alive connections, then a connection storm"
                     % a.idle_conns)
            c.append(" ".join(["python3", "bench/idle_conns.py", "--host", "127.0.0.1", "--port",
                               "PORT", "--conns", str(a.idle_conns), "--path", "/index.html"]))
            c.append(" ".join(wrk_cmd(a.idle_conns, a.idle_duration, "/index.html")))
            continue
        if w == "slowclients":
            c.append("# slowclients, per server and attack: the normal client (warm-up: same "
                     "command with -d%ds), alone and then with the attack in progress"
                     % a.warmup)
            c.append(" ".join(wrk_cmd(SLOW_WRK_CONNS, a.duration, "/index.html")))
            if "uvhttpd" in ctx.servers:
                c.append("# uvhttpd's flags in this workload: %s"
                         % (" ".join(ctx.uvhttpd_slow_flags) or "none beyond the others "
                            "(its default timeouts)"))
            c.append("# the attack, also on CPU %s but in the idle scheduling class:" % CLIENT_CPU if processes.PIN
                     else "# the attack, in the idle scheduling class:")
            for mode, _label, _path, _extra in SLOW_MODES:
                c.append(" ".join(["chrt", "--idle", "0"] + slowhttptest_cmd(mode, slow_length(a))))
            continue
        if w == "compressed":
            from .common import COMPRESS_CODINGS, COMPRESS_CONNS, COMPRESS_PATH
            c.append("# compressed, once per coding (warm-up: same command with -d%ds)" % a.warmup)
            for coding in COMPRESS_CODINGS:
                c.append(" ".join(wrk_cmd(COMPRESS_CONNS, a.duration, COMPRESS_PATH,
                                          headers=("'Accept-Encoding: %s'" % coding,))))
            continue
        if w == "propfind":
            c.append("# propfind (uvhttpd and apache; warm-up: same command with -d%ds)" % a.warmup)
            c.append(" ".join(wrk_cmd(PROPFIND_CONNS, a.duration, PROPFIND_DIR,
                                      os.path.relpath(PROPFIND_LUA, REPO), 30)))
            continue
        conns, path, script, tmo = wrk_spec(w, a)
        if w in SPLICE_WORKLOADS:
            c.append("# %s, bench/splice_get.py instead of wrk, which saturates its core first "
                     "(warm-up: same command with --duration %d)" % (w, a.warmup))
            c.append(" ".join(["python3", "bench/splice_get.py"] + splice_cmd(conns, a.duration, path)[2:]))
            continue
        if script:
            script = os.path.relpath(script, REPO)
        c.append("# %s (warm-up: same command with -d%ds)" % (w, a.warmup))
        c.append(" ".join(wrk_cmd(conns, a.duration, path, script, tmo)))
    c.append("```")
    return "\n".join(c)


def write_docs(ctx, agg, table, table_notes, ratios, versions, machine, started, elapsed, cmds,
               slow_table=None, slow_notes=(), dav_table=None, dav_notes=(), comp_table=None,
               comp_notes=(), pg_table=None, pg_notes=()):
    a = ctx.args
    docs = os.path.join(REPO, "docs")
    os.makedirs(docs, exist_ok=True)
    plot = make_plot(ctx, agg, os.path.join(docs, "benchmarks"))
    out = []
    out.append("# uvhttpd benchmarks")
    out.append("")
    out.append("Generated by `bench/run` on %s (UTC), run took %.0f s. "
               "Every number on this page comes from that script; rerun it to refresh the page."
               % (started.strftime("%Y-%m-%d %H:%M"), elapsed))
    out.append("")
    if a.quick:
        out.append("> **Quick run** (`--quick`): %d round(s) of %d s, %d idle connections. "
                   "The numbers are indicative only; a full run (`bench/run`) uses more rounds "
                   "and longer runs." % (a.rounds, a.duration, a.idle_conns))
        out.append("")
    disturbed = sum(1 for v in agg.values() if v.get("disturbed"))
    if ctx.busy_at_start or disturbed:
        out.append("> **Disturbed run**: other processes were using the benchmark CPUs%s "
                   "(%d of %d rows are marked ⁴). Treat the numbers as rough and rerun "
                   "`bench/run` on an idle machine."
                   % (" when the run started" if ctx.busy_at_start else "", disturbed, len(agg)))
        out.append("")
    missing = [n for n in ALL_SERVERS if n not in ctx.servers]
    if missing:
        out.append("> Servers not in this run: %s." % ", ".join(
            "%s (%s)" % (n, ctx.missing_reason.get(n, "not selected")) for n in missing))
        out.append("")
    for w, why in ctx.skipped.items():
        out.append("> Workload `%s` skipped: %s." % (w, why))
        out.append("")
    out.append("## Machine")
    out.append("")
    out.append("| | |")
    out.append("|---|---|")
    out.append("| CPUs (`nproc`) | %s |" % machine["nproc"])
    out.append("| CPU model | %s |" % machine["model"])
    out.append("| kernel (`uname -r`) | %s |" % machine["kernel"])
    out.append("| memory | %s |" % machine["memory"])
    out.append("| TCP congestion control (`net.ipv4.tcp_congestion_control`) | %s |" % machine.get("cc", "unknown"))
    out.append("| `net.ipv4.tcp_wmem` / `tcp_rmem` | %s / %s |" % (machine.get("wmem", "unknown"),
                                                                 machine.get("rmem", "unknown")))
    out.append("")
    out.append("## Tool versions")
    out.append("")
    out.append("| tool | version |")
    out.append("|---|---|")
    for k in ("uvhttpd", "floor", "nginx", "h2o", "apache", "wrk", "slowhttptest", "python"):
        if k in versions:
            out.append("| %s | %s |" % (k, versions[k].replace("|", "\\|")))
    out.append("")
    out.append("## Method")
    out.append("")
    pinning = ("The server runs on CPU %s (`taskset -c %s`) and the load generator on CPU %s "
               "(`taskset -c %s`), so each has one core to itself."
               % (SERVER_CPU, SERVER_CPU, CLIENT_CPU, CLIENT_CPU)) if processes.PIN else \
        "This machine has a single CPU, so nothing was pinned and the numbers are not comparable with pinned runs."
    out.append("- " + pinning)
    out.append("- Servers are configured alike: one worker process / one thread, access log off, "
               "keep-alive on with no request limit and a 300 s idle timeout, sendfile on for nginx, "
               "the same document root, listening on 127.0.0.1 on a free port. "
               "Open-file limit for servers and load tools: %d. nginx also gets "
               "`open_file_cache`, because h2o keeps files it opened within one event-loop "
               "pass (its file cache, not configurable in 2.2) and nginx would otherwise pay "
               "open+fstat+close per request; full configurations are below." % processes.NOFILE)
    out.append("- Document root (generated): `index.html` (571 bytes of HTML), `1m.bin` "
               "(1 MiB random), `100m.bin` (100 MiB random).")
    out.append("- Each workload starts fresh servers, then runs them in interleaved rounds "
               "(floor, uvhttpd, nginx, h2o, then again; %d round(s) for small and pipelined, "
               "%d for the others); every measured run of %d s is preceded by an "
               "unmeasured %d s wrk warm-up against the same server. The tables show the median "
               "of each metric over the rounds; ratios are the median of the per-round ratios "
               "(the two runs of a ratio were taken in the same round, so the host's noise moves "
               "both), not the ratio of the medians. A round in which the hypervisor stole more "
               "than %.0f %% of the server's or the client's CPU (/proc/stat) is run again, at "
               "most %d times, and then kept and marked." % (a.small_rounds, a.rounds, a.duration,
                                                              a.warmup, STEAL_LIMIT_PCT, STEAL_RERUNS))
    out.append("- The floor (`bench/floor.c`, built with the server as `build/floor`) is one "
               "libuv loop, llhttp parsing every request, and a canned 200 with a 571-byte body, "
               "all answers to one read sent with one `uv_try_write`: what the architecture costs "
               "before any real work. It runs in the small and pipelined workloads, and their "
               "rows carry the server's CPU per request as a multiple of the floor's (× floor).")
    out.append("- *CPU µs/req* is the server's user+system CPU time (utime+stime from "
               "`/proc/PID/stat`, all threads, all worker processes) over the measured run, "
               "divided by the requests wrk completed. *server CPU* is that CPU time over the "
               "wall time of the run (100 % = one core); *client CPU* is the load tool's own "
               "CPU time (from `wait4` rusage) over the same wall time: wrk's, and for the "
               "100 MiB file `bench/splice_get.py`'s (wrk reads 8 KiB per `read()` into its own "
               "buffer and its core runs out before the servers do on that file; splice_get.py "
               "moves each body from the socket to /dev/null with `splice`, never copying it, "
               "so its core has room to spare and the row measures the server). *file 1 MiB, "
               "splice client* is the 1 MiB file again with splice_get.py: with wrk, nginx is "
               "client-bound on that file (wrk near 100 % of its core, nginx near 15 % of its "
               "own), and the kernel's transmit work then runs in the softirq of the client's "
               "ACKs, on the client's core, so wrk's row charges part of serving the file to "
               "the client for the server that keeps the client busier; the splice row, where "
               "the servers saturate first, is the one that compares what serving the file "
               "costs each server. The *(core N %)* figure is how busy "
               "that whole CPU was (user, system, irq and softirq time from `/proc/stat`): "
               "loopback network work done in softirq context is charged to no process, so "
               "a core can be full while the process on it shows less.")
    out.append("- Footnote marks: ¹ client-bound (server process below 90 % of its core while "
               "the client above 95 % of its own, so the server could have gone faster); ² server "
               "core saturated although the server process was below 90 %; ³ nothing saturated; "
               "⁴ other processes used more than 10 % of a benchmark core (disturbed run).")
    out.append("- *MB/s* is wrk's Transfer/sec (wrk's MB are 2^20 bytes), or splice_get.py's "
               "body bytes over its wall time (also in 2^20). p50/p99 come from "
               "`wrk --latency`; wrk 4.1.0 sometimes prints an impossible `99% 0.00us` "
               "(seen with pipelining), such values are dropped and shown as – when no round "
               "had a valid one.")
    out.append("- *pipelined*: each wrk write carries 16 `GET /index.html` requests "
               "(`bench/lua/pipeline16.lua`); wrk counts every response.")
    out.append("- *idle*: `bench/idle_conns.py` opens %d keep-alive connections, each sends one "
               "`GET /index.html` and reads the full response, then stays idle. The server's "
               "VmRSS (`/proc/PID/status`, summed over its processes) is read before and 1 s "
               "after all connections are up; *RSS* shows the growth per connection still open. "
               "The helper then closes them and `wrk -c%d` hits the server with that many "
               "connections at once; its requests/s, latency and socket errors fill the rest "
               "of the row. Each round of this workload uses a freshly started server."
               % (a.idle_conns, a.idle_conns))
    out.append("- *records* (uvhttpd only): `wrk -c64` POSTs `name=…&email=…` forms to "
               "`/database.txt` (`bench/lua/post_form.lua`); requests/s counts only 2xx "
               "answers (records/s), and non-2xx answers are listed under errors.")
    if "slowclients" in ctx.workloads:
        uv = ("uvhttpd gets `%s` (--slow-uvhttpd-flags; not its defaults, so not the number "
              "the target is about)" % " ".join(ctx.uvhttpd_slow_flags)
              if ctx.uvhttpd_slow_flags else "uvhttpd runs with its default timeouts "
              "(`--header-timeout 10 --idle-timeout 75 --body-timeout 60 --send-timeout 60`), "
              "as a user would")
        out.append(
            "- *slowclients*: for each `slowhttptest` attack and each server, a freshly started "
            "server first gets the normal client alone, `wrk -t1 -c%d` on `/index.html` for "
            "%d s after the warm-up (*usual req/s*). Then slowhttptest opens %d connections at "
            "%d per second: "
            "`-H` slow headers to `/index.html`, one more header line every 2 s (`-i 2`); "
            "`-B` slow body, a `POST` announcing a 64 KiB "
            "body to `/database.txt`, one more piece every second (`-i 1`; an empty file is put "
            "there if no earlier workload made "
            "one, so that the URL exists on every server); `-X` slow read of `/1m.bin`, three "
            "pipelined requests per connection, a 1–2 byte receive window and 1 byte read "
            "every second (`-k 3 -n 1 -w 1 -y 2 -z 1`). Once the server holds more than %d connections (waiting at most %d s) "
            "the same wrk run is repeated, without another warm-up (*req/s under attack*; *ratio* is under attack / "
            "usual, the median of the per-round ratios; *server / wrk CPU* as above, during "
            "that run). slowhttptest does not reopen connections the server closed, so a "
            "server that times them out faces a shrinking attack."
            % (SLOW_WRK_CONNS, a.duration, SLOW_CONNS, SLOW_RATE, SLOW_MIN_HELD, SLOW_WAIT))
        out.append(
            "- slowhttptest runs on the load CPU too, in the idle scheduling class "
            "(`chrt --idle 0`, so it runs only when wrk does not want the CPU) and in the "
            "harness's own session: it busy-polls its sockets and would otherwise take half "
            "of wrk's CPU. What is measured is whether the server lets a normal client "
            "through, not how two clients share one core.")
        out.append(
            "- *server sockets* counts the TCP connections on the server's port that the "
            "server processes still hold open (descriptors in `/proc/PID/fd` matched with "
            "`/proc/net/tcp`, listener excluded; a connection the client closed but the server "
            "did not still counts), when the measured run started and when it ended: the "
            "latter shows how many attack connections the server had not closed by itself. "
            "⁵ marks an attack that never got past %d connections, ⁶ a run at whose end the "
            "kernel's TCP memory (`/proc/net/sockstat`) was above `net.ipv4.tcp_mem`'s "
            "pressure threshold, which slows every TCP connection on the machine. Then "
            "slowhttptest is stopped (SIGTERM, SIGKILL after 5 s) and the harness waits up to "
            "%d s for that count to fall back to at most %d above what it was before the "
            "attack. *target met*: ratio at least %.0f %% and the attack connections closed, "
            "in every round."
            % (SLOW_MIN_HELD, SLOW_CLOSE_WAIT, SLOW_CLOSE_SLACK, SLOW_TARGET_PCT))
        out.append(
            "- slowclients timeouts: %s. nginx and h2o run with the configurations below "
            "unchanged: nginx's sets no timeout besides `keepalive_timeout 300s`, so its "
            "defaults apply (`client_header_timeout`, `client_body_timeout` and "
            "`send_timeout` 60 s; after answering before it has read a body it goes on "
            "reading and dropping the body for up to `lingering_time`, 30 s); h2o's has "
            "`http1-request-timeout: 300` (set for the 300 s keep-alive timeout) and no other "
            "timeout setting." % uv)
    out.append("- Other workloads' RSS column is the server's VmRSS right after the run.")
    out.append("")
    out.append("## Commands")
    out.append("")
    out.append(cmds)
    out.append("")
    for n in ("nginx", "h2o", "apache"):
        if n in ctx.servers:
            obj = ctx.new_server(n)
            out.append("<details><summary>%s configuration</summary>" % n)
            out.append("")
            out.append("```")
            out.append(obj.config_text().rstrip())
            out.append("```")
            out.append("")
            out.append("</details>")
            out.append("")
    out.append("## Results")
    out.append("")
    if agg:
        out.append(table)
        out.append("")
    for n in table_notes:
        out.append(n)
        out.append("")
    if agg and ratios:
        out.append("### Ratios")
        out.append("")
        out.append("Above 1× means uvhttpd has more requests/s (better) or more CPU µs per "
                   "request (worse) than the other server.")
        out.append("")
        out.append(ratios)
        out.append("")
    elif agg:
        out.append("No uvhttpd/nginx or uvhttpd/h2o ratios: uvhttpd or both reference servers "
                   "were not part of this run.")
        out.append("")
    if slow_table:
        out.append("### Slow clients")
        out.append("")
        out.append("Target: with %d slow connections of each kind in progress, a normal client "
                   "(`wrk -t1 -c%d`) still gets at least %.0f %% of its usual requests/s, and "
                   "every attack connection is eventually closed (method above)."
                   % (SLOW_CONNS, SLOW_WRK_CONNS, SLOW_TARGET_PCT))
        out.append("")
        out.append(slow_table)
        out.append("")
        for n in slow_notes:
            out.append(n)
            out.append("")
    if dav_table:
        out.append("### WebDAV: PROPFIND Depth: 1 of a 10,000-entry directory")
        out.append("")
        out.append("uvhttpd against Apache httpd 2.4 with mod_dav and mod_dav_fs (configuration "
                   "above); nginx and h2o have no PROPFIND.")
        out.append("")
        out.append(dav_table)
        out.append("")
        for n in dav_notes:
            out.append(n)
            out.append("")
    if comp_table:
        out.append("### Compressed: a 90 KB script per Accept-Encoding")
        out.append("")
        out.append(comp_table)
        out.append("")
        for n in comp_notes:
            out.append(n)
            out.append("")
    if pg_table or pg_notes:
        out.append("### Records: the file store and PostgreSQL")
        out.append("")
        out.append("The records workload's wrk POST load (64 connections) against uvhttpd with the file "
                   "store and with `--records` on a PostgreSQL cluster the run starts, next to PostgreSQL's "
                   "own ceiling for single-row INSERTs from 64 pgbench clients.")
        out.append("")
        if pg_table:
            out.append(pg_table)
            out.append("")
        for n in pg_notes:
            out.append(n)
            out.append("")
    if ctx.notes:
        out.append("### Notes")
        out.append("")
        for n in ctx.notes:
            out.append("- " + n)
        out.append("")
    if plot:
        out.append("## Plot")
        out.append("")
        out.append("![requests/s and throughput per server](%s)" % plot)
        out.append("")
    path = os.path.join(docs, "benchmarks.md")
    with open(path, "w") as f:
        f.write("\n".join(out))
    log("wrote %s%s" % (os.path.relpath(path, os.getcwd()),
                        (" and docs/" + plot) if plot else ""))
