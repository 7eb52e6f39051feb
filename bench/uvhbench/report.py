"""Results: medians over the rounds and the markdown tables (results, ratios, slow clients)."""
import statistics

from .common import (PAGE_KIB, SLOW_CLOSE_WAIT, SLOW_MIN_HELD, SLOW_MODES, SLOW_TARGET_PCT,
                     SLOW_WAIT)


def med(rs, key, sub=None):
    vals = []
    for r in rs:
        v = r.get(key)
        if sub is not None and isinstance(v, dict):
            v = v.get(sub)
        if v is not None:
            vals.append(v)
    return statistics.median(vals) if vals else None


def round_ratio(ctx, workload, a, b, key):
    """Median over the rounds of a's value / b's value in the same round (runs taken back to
    back), not the ratio of the medians: the host's noise moves both runs of a round alike."""
    by_round = {r.get("round"): r for r in ctx.results.get((workload, b), [])}
    vals = []
    for r in ctx.results.get((workload, a), []):
        o = by_round.get(r.get("round"))
        if o is None or r.get(key) is None or not o.get(key):
            continue
        vals.append(r[key] / o[key])
    return statistics.median(vals) if vals else None


def aggregate(ctx):
    agg = {}
    for (w, n), rs in ctx.results.items():
        a = {k: med(rs, k) for k in ("rps", "p50", "p99", "cpu_us", "server_cpu_pct", "wrk_cpu_pct",
                                     "server_core_pct", "client_core_pct", "server_steal_pct",
                                     "client_steal_pct", "server_other_pct", "client_other_pct",
                                     "mbps", "rss_kib", "non2xx", "kib_per_conn", "rss_before",
                                     "rss_after", "idle_alive", "idle_failed")}
        a["errors"] = {k: med(rs, "errors", k) for k in ("connect", "read", "write", "timeout")}
        a["rounds"] = len(rs)
        a["floor_ratio"] = (round_ratio(ctx, w, n, "floor", "cpu_us")
                            if n != "floor" and (w, "floor") in ctx.results else None)
        a["client_bound"] = (a["server_cpu_pct"] is not None and a["wrk_cpu_pct"] is not None and
                             a["server_cpu_pct"] < 90 and a["wrk_cpu_pct"] > 95)
        other = max(a["server_other_pct"] or 0, a["client_other_pct"] or 0)
        a["disturbed"] = other > 10
        # not client-bound by the rule above, but the server's core was saturated,
        # largely by kernel (softirq) network work that no process is charged for
        a["core_bound"] = (not a["client_bound"] and not a["disturbed"] and
                           a["server_cpu_pct"] is not None and
                           a["server_cpu_pct"] < 90 and (a["server_core_pct"] or 0) > 95)
        # neither the server nor the client had a full core: something else limited it
        a["unsaturated"] = (not a["client_bound"] and not a["core_bound"] and not a["disturbed"] and
                            a["server_cpu_pct"] is not None and a["server_cpu_pct"] < 90 and
                            (a["server_core_pct"] is None or a["server_core_pct"] < 90) and
                            (a["client_core_pct"] is None or a["client_core_pct"] < 90) and
                            (a["wrk_cpu_pct"] or 0) <= 95)
        agg[(w, n)] = a
    return agg


def fmt_num(v, digits=0):
    if v is None:
        return "–"
    if digits == 0:
        return "{:,.0f}".format(v)
    return "{:,.{d}f}".format(v, d=digits)


def fmt_pct(v):
    return "–" if v is None else "%.0f %%" % v


def fmt_ms(v):
    if v is None:
        return "–"
    if v < 1:
        return "%.0f µs" % (v * 1000)
    if v < 100:
        return "%.2f ms" % v
    return "%.0f ms" % v


def fmt_errors(a, workload):
    e = a["errors"]
    parts = []
    tot = sum(v for v in e.values() if v)
    if tot:
        parts.append("connect %g, read %g, write %g, timeout %g"
                     % (e["connect"], e["read"], e["write"], e["timeout"]))
    if a.get("non2xx"):
        parts.append("non-2xx %g" % a["non2xx"])
    if workload == "idle" and a.get("idle_failed"):
        parts.append("idle setup failed %g" % a["idle_failed"])
    return "; ".join(parts) if parts else "0"


WORKLOAD_LABEL = {
    "small": "small",
    "pipelined": "pipelined ×16",
    "file1m": "file 1 MiB",
    "file1m-splice": "file 1 MiB, splice client",
    "file100m": "file 100 MiB",
    "idle": "idle",
    "records": "records (POST)",
}


FOOTNOTES = {
    "client_bound": ("¹", "client-bound: the server process used less than 90 % of its core while "
                          "the client (wrk, or splice_get.py) used more than 95 % of its own; the "
                          "server's requests/s is a lower "
                          "bound."),
    "core_bound": ("²", "the server process used less than 90 % of its core, but that core was "
                        "more than 95 % busy: the rest is kernel network work (softirq) that "
                        "Linux charges to no process; the server's core was the limit."),
    "unsaturated": ("³", "neither the server process nor its core nor wrk reached 90–95 %: the "
                         "run was limited by something else (latency, scheduling, steal); treat "
                         "the row with care."),
    "disturbed": ("⁴", "other processes used more than 10 % of the server's or the client's "
                       "core during this run (user+system time in /proc/stat beyond what the "
                       "pinned process used): the numbers are disturbed; rerun on an idle "
                       "machine."),
}


def cpu_cell(proc_pct, core_pct):
    cell = fmt_pct(proc_pct)
    if core_pct is not None:
        cell += " (core %s)" % fmt_pct(core_pct)
    return cell


def results_table(ctx, agg):
    lines = ["| workload | server | requests/s | p50 | p99 | CPU µs/req | × floor | server CPU "
             "| client CPU | MB/s | RSS | errors |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"]
    used = []
    for w in ctx.workloads:
        for n in ctx.servers:
            a = agg.get((w, n))
            if a is None:
                continue
            mark = ""
            for key in ("client_bound", "core_bound", "unsaturated", "disturbed"):
                if a.get(key):
                    mark += " " + FOOTNOTES[key][0]
                    if key not in used:
                        used.append(key)
            if w == "idle":
                rss = "%s KiB/conn (%s → %s MiB)" % (
                    fmt_num(a["kib_per_conn"], 2), fmt_num((a["rss_before"] or 0) / 1024, 1),
                    fmt_num((a["rss_after"] or 0) / 1024, 1))
                if a["idle_alive"] is not None and a["idle_alive"] < ctx.args.idle_conns:
                    rss += ", %d of %d idle conns kept" % (a["idle_alive"], ctx.args.idle_conns)
            else:
                rss = "%s MiB" % fmt_num((a["rss_kib"] or 0) / 1024, 1)
            mbps = fmt_num(a["mbps"], 0 if (a["mbps"] or 0) >= 100 else 1)
            floor = ("%.2f×" % a["floor_ratio"]) if a.get("floor_ratio") else "–"
            lines.append("| %s | %s%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                WORKLOAD_LABEL[w], n, mark, fmt_num(a["rps"]), fmt_ms(a["p50"]), fmt_ms(a["p99"]),
                fmt_num(a["cpu_us"], 2 if (a["cpu_us"] or 0) < 100 else 0), floor,
                cpu_cell(a["server_cpu_pct"], a["server_core_pct"]),
                cpu_cell(a["wrk_cpu_pct"], a["client_core_pct"]), mbps, rss, fmt_errors(a, w)))
    notes = ["%s %s" % FOOTNOTES[k] for k in used]
    if any(a.get("floor_ratio") for a in agg.values()):
        notes.append("× floor: the server's CPU µs per request divided by the floor's "
                     "(bench/floor.c: libuv + llhttp + a canned 571-byte answer), per round, "
                     "median over the rounds.")
    steal = [a["server_steal_pct"] for a in agg.values() if a.get("server_steal_pct")]
    steal += [a["client_steal_pct"] for a in agg.values() if a.get("client_steal_pct")]
    if steal and max(steal) > 5:
        notes.append("Note: the hypervisor stole up to %.0f %% of a CPU during some runs "
                     "(steal time in /proc/stat); those numbers are noisy." % max(steal))
    return "\n".join(lines), notes


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return "%.2f×" % (a / b)


def ratio_table(ctx, agg):
    """uvhttpd against each anchor: the median of the per-round ratios (round_ratio)."""
    anchors = [n for n in ("floor", "nginx", "h2o") if n in ctx.servers]
    if "uvhttpd" not in ctx.servers or not anchors:
        return None
    head = "| workload | metric | " + " | ".join("uvhttpd/%s" % o for o in anchors) + " |"
    lines = [head, "|---|---|" + "--:|" * len(anchors)]
    for w in ctx.workloads:
        u = agg.get((w, "uvhttpd"))
        if u is None or not any((w, o) in agg for o in anchors):
            continue
        metrics = [("requests/s", "rps"), ("CPU µs/req", "cpu_us")]
        if w.startswith("file"):
            metrics.append(("MB/s", "mbps"))
        if w == "idle":
            metrics.append(("KiB/conn", "kib_per_conn"))
        for label, key in metrics:
            cells = []
            for o in anchors:
                v = round_ratio(ctx, w, "uvhttpd", o, key) if (w, o) in agg else None
                cells.append("–" if v is None else "%.2f×" % v)
            lines.append("| %s | %s | %s |" % (WORKLOAD_LABEL[w], label, " | ".join(cells)))
    if len(lines) == 2:
        return None
    return "\n".join(lines)


def steal_notes(ctx):
    """One line per workload: each round's host steal, marked where it stayed above the limit."""
    from .common import STEAL_LIMIT_PCT
    out = []
    for w in ctx.workloads:
        info = ctx.round_info.get(w)
        if not info:
            continue
        cells = []
        for i in info:
            c = "–" if i["steal"] is None else "%.0f %%" % i["steal"]
            if i["marked"]:
                c += " (marked: above %.0f %% after %d runs)" % (STEAL_LIMIT_PCT, i["attempts"])
            elif i["attempts"] > 1:
                c += " (run %d times)" % i["attempts"]
            cells.append(c)
        out.append("%s: host steal per round: %s" % (WORKLOAD_LABEL.get(w, w), ", ".join(cells)))
    return out


def slow_close_cell(rs):
    closed = [r["close_s"] for r in rs if r["close_s"] is not None]
    if len(closed) == len(rs):
        return "yes, in %.1f s" % statistics.median(closed)
    left = statistics.median([r["held_left"] for r in rs if r["close_s"] is None])
    return "**no**: %g still open after %d s%s" % (
        left, SLOW_CLOSE_WAIT, (" (%d of %d rounds)" % (len(rs) - len(closed), len(rs)))
        if len(rs) > 1 else "")


def slowclients_table(ctx):
    """(markdown table, notes) for the slowclients workload, or (None, []) if it did not run."""
    if "slowclients" not in ctx.workloads or "slowclients" in ctx.skipped:
        return None, []
    lines = ["| attack | server | usual req/s | req/s under attack | ratio "
             "| wrk errors under attack | server / wrk CPU under attack | server sockets: start / end "
             "| attack sockets closed after slowhttptest stopped | target met |",
             "|---|---|--:|--:|--:|---|--:|--:|---|---|"]
    weak = False
    mem_hot = []
    pressure = tcp_mem_max = None
    for mode, label, _path, _extra in SLOW_MODES:
        for n in ctx.servers:
            rs = ctx.slow.get((mode, n))
            if not rs:
                why = ctx.slow_skipped.get((mode, n))
                if why:
                    lines.append("| `%s` %s | %s | skipped: %s | | | | | | | |"
                                 % (mode, label, n, why.replace("|", "\\|")))
                continue
            a = {k: med(rs, k) for k in ("base_rps", "rps", "ratio_pct", "non2xx", "held_start",
                                         "held_end", "held_peak", "tcp_mem", "server_cpu_pct",
                                         "wrk_cpu_pct")}
            a["errors"] = {k: med(rs, "errors", k) for k in ("connect", "read", "write", "timeout")}
            a["non2xx"] = a["non2xx"] or 0
            start = fmt_num(a["held_start"])
            if a["held_peak"] is not None and a["held_peak"] <= SLOW_MIN_HELD:
                start += " ⁵"
                weak = True
            end = fmt_num(a["held_end"])
            pressure = med(rs, "tcp_mem_pressure")
            if a["tcp_mem"] is not None and pressure and a["tcp_mem"] > pressure:
                end += " ⁶"
                tcp_mem_max = med(rs, "tcp_mem_max")
                mem_hot.append("%s `%s` %.0f MiB" % (n, mode, a["tcp_mem"] * PAGE_KIB / 1024))
            closed_all = all(r["close_s"] is not None for r in rs)
            met = (a["ratio_pct"] is not None and a["ratio_pct"] >= SLOW_TARGET_PCT and closed_all)
            met_cell = "yes" if met else "**no**"
            if len(rs) < ctx.args.rounds:
                met_cell += " (%d of %d rounds)" % (len(rs), ctx.args.rounds)
            lines.append("| `%s` %s | %s | %s | %s | %s | %s | %s / %s | %s / %s | %s | %s |" % (
                mode, label, n, fmt_num(a["base_rps"]), fmt_num(a["rps"]),
                fmt_pct(a["ratio_pct"]), fmt_errors(a, "slowclients"),
                fmt_pct(a["server_cpu_pct"]), fmt_pct(a["wrk_cpu_pct"]), start, end,
                slow_close_cell(rs), met_cell))
    if len(lines) == 2:
        return None, []
    notes = []
    if weak:
        notes.append("⁵ the server never held more than %d connections within %d s of "
                     "slowhttptest starting: the attack did not take hold (or the server refused "
                     "or closed the connections at once)." % (SLOW_MIN_HELD, SLOW_WAIT))
    if mem_hot:
        notes.append("⁶ at the end of the measured run the kernel's TCP sockets used more memory "
                     "than `net.ipv4.tcp_mem`'s pressure threshold (%.0f MiB; its maximum is %.0f "
                     "MiB): %s. Under that pressure Linux trims the buffers of every TCP socket "
                     "on the machine, and at the maximum it refuses more, so the normal client "
                     "also suffers from the socket memory the attack connections tie up (with "
                     "`-X`: data the server queued for clients that do not read it), not only "
                     "from the server's own work."
                     % (pressure * PAGE_KIB / 1024, (tcp_mem_max or 0) * PAGE_KIB / 1024,
                        "; ".join(mem_hot)))
    probe = []
    for n in ctx.servers:
        if n in ctx.slow_probe:
            ans = ctx.slow_probe[n]
            if ans and ans.isdigit():
                probe.append("%s answers %s at once (without reading the body)" % (n, ans))
            elif ans:
                probe.append("%s: %s" % (n, ans))
            else:
                probe.append("%s waits for the body" % n)
    if probe:
        notes.append("`-B`: to a `POST /database.txt` head announcing a 64 KiB body, " +
                     "; ".join(probe) + ". An early answer does not end the connection: the "
                     "server still has to read and drop the rest of the body%s or close the "
                     "connection." % (" (nginx does so for up to `lingering_time`)"
                                      if "nginx" in ctx.slow_probe else ""))
    notes.extend(ctx.slow_notes)
    return "\n".join(lines), notes


# The propfind workload's target (issue 11): uvhttpd at least 2x faster than Apache's mod_dav,
# with flat memory. "Flat": after all the measured requests uvhttpd's RSS is within
# PROPFIND_FLAT_KIB of what it was after the first one, and its peak stayed below half of one
# 207 body above its starting RSS (the body is streamed, never built whole).
PROPFIND_TARGET = 2.0
PROPFIND_FLAT_KIB = 2048


def propfind_table(ctx):
    """(markdown table, notes) for the propfind workload, or (None, []) if it did not run."""
    from .common import PROPFIND_CONNS, PROPFIND_DIR, PROPFIND_ENTRIES
    if "propfind" not in ctx.workloads or "propfind" in ctx.skipped:
        return None, []
    lines = ["| server | requests/s | time per request (mean) | p50 | p99 | server CPU per request "
             "| server CPU | RSS: start → after 1 → after all (peak) | 207 body | errors |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|"]
    agg = {}
    for n in ctx.servers:
        rs = ctx.propfind.get(n)
        if not rs:
            why = ctx.propfind_skipped.get(n)
            if why:
                lines.append("| %s | skipped: %s | | | | | | | | |" % (n, why.replace("|", "\\|")))
            continue
        a = {k: med(rs, k) for k in ("rps", "ms_per_req", "p50", "p99", "cpu_us", "server_cpu_pct",
                                     "rss_start", "rss_one", "rss_after", "rss_peak", "body_bytes",
                                     "non2xx")}
        a["errors"] = {k: med(rs, "errors", k) for k in ("connect", "read", "write", "timeout")}
        agg[n] = a
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s → %s → %s (%s) MiB | %s MB | %s |" % (
            n, fmt_num(a["rps"], 1), fmt_ms(a["ms_per_req"]), fmt_ms(a["p50"]), fmt_ms(a["p99"]),
            fmt_ms((a["cpu_us"] or 0) / 1000), fmt_pct(a["server_cpu_pct"]),
            fmt_num(a["rss_start"] / 1024, 1), fmt_num(a["rss_one"] / 1024, 1),
            fmt_num(a["rss_after"] / 1024, 1), fmt_num(a["rss_peak"] / 1024, 1),
            fmt_num(a["body_bytes"] / 1e6, 2), fmt_errors(a, "propfind")))
    if len(lines) == 2:
        return None, []
    notes = ["`PROPFIND %s` with `Depth: 1` and an allprop body, %d files, wrk -c%d (one request "
             "at a time: the mean time per request is 1/requests-per-second); each round on a "
             "freshly started server. RSS is the server processes' VmRSS when started, after one "
             "PROPFIND, after the measured run, and their peak (VmHWM)."
             % (PROPFIND_DIR, PROPFIND_ENTRIES, PROPFIND_CONNS)]
    u, ap = agg.get("uvhttpd"), agg.get("apache")
    if u and ap and u["ms_per_req"] and ap["ms_per_req"]:
        speed = ap["ms_per_req"] / u["ms_per_req"]
        cpu = (ap["cpu_us"] / u["cpu_us"]) if u["cpu_us"] and ap["cpu_us"] else None
        growth = u["rss_after"] - u["rss_one"]
        peak_rise = u["rss_peak"] - u["rss_start"]
        flat = growth <= PROPFIND_FLAT_KIB and peak_rise * 1024 < u["body_bytes"] / 2
        met = speed >= PROPFIND_TARGET and flat
        notes.append("Target (uvhttpd at least %.0f× faster than Apache mod_dav, flat memory): "
                     "**%s**. Apache's time per request is %.2f× uvhttpd's%s; uvhttpd's RSS grew "
                     "%s KiB from the first PROPFIND to the last (flat: at most %d KiB) and its "
                     "peak rose %s KiB above its start, against a %s KB body."
                     % (PROPFIND_TARGET, "met" if met else "not met", speed,
                        (", its CPU per request %.2f× uvhttpd's" % cpu) if cpu else "",
                        fmt_num(growth), PROPFIND_FLAT_KIB, fmt_num(peak_rise),
                        fmt_num(u["body_bytes"] / 1e3)))
    return "\n".join(lines), notes


def compressed_table(ctx):
    """(markdown table, notes) for the compressed workload, or (None, [])."""
    from .common import COMPRESS_CODINGS, COMPRESS_CONNS, COMPRESS_PATH
    if "compressed" not in ctx.workloads or "compressed" in ctx.skipped:
        return None, []
    lines = ["| coding | server | requests/s | server CPU per request | server CPU | body bytes "
             "| bytes per response on the wire | requests/s vs nginx gzip |",
             "|---|---|--:|--:|--:|--:|--:|--:|"]
    agg = {}
    skipped = []
    for coding in COMPRESS_CODINGS:
        for n in ctx.servers:
            rs = ctx.compressed.get((coding, n))
            if not rs:
                why = ctx.compressed_skipped.get((coding, n))
                if why:
                    skipped.append("| %s | %s | %s | | | | | |" % (coding, n, why.replace("|", "\\|")))
                continue
            agg[(coding, n)] = {k: med(rs, k) for k in ("rps", "cpu_us", "server_cpu_pct", "wire_per_req")}
    base = agg.get(("gzip", "nginx"), {}).get("rps")
    for (coding, n), a in agg.items():
        body, _head = ctx.compressed_sizes.get((coding, n), (None, None))
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            coding, n, fmt_num(a["rps"]), fmt_ms((a["cpu_us"] or 0) / 1000), fmt_pct(a["server_cpu_pct"]),
            fmt_num(body), fmt_num(a["wire_per_req"]),
            ("%.1fx" % (a["rps"] / base)) if base and a["rps"] else "-"))
    lines += skipped
    notes = ["`GET %s` (Debian libjs-jquery's jquery.min.js, 89,037 bytes) with one "
             "`Accept-Encoding` per row, wrk -t1 -c%d, server pinned as in the other workloads. "
             "nginx: `gzip on; gzip_comp_level 6` (compresses every response); h2o 2.2: "
             "`compress: ON` (its defaults, per response); uvhttpd: its defaults (compressed "
             "once per file version: gzip 9, br 11, zstd 19, then served from memory). Bytes on "
             "the wire are wrk's bytes read divided by its requests (head and body)."
             % (COMPRESS_PATH, COMPRESS_CONNS)]
    u, g = agg.get(("gzip", "uvhttpd")), agg.get(("gzip", "nginx"))
    if u and g:
        ub = ctx.compressed_sizes[("gzip", "uvhttpd")][0]
        nb = ctx.compressed_sizes[("gzip", "nginx")][0]
        notes.append("Targets (issue 12): uvhttpd's gzip requests/s %.1fx nginx's (target >= 20x): %s; "
                     "its gzip body %d bytes vs nginx level 6's %d (%+.1f %%, target <= +2 %%): %s."
                     % (u["rps"] / g["rps"], "met" if u["rps"] >= 20 * g["rps"] else "NOT met",
                        ub, nb, 100.0 * (ub - nb) / nb, "met" if ub <= nb * 1.02 else "NOT met"))
    sizes = {c: ctx.compressed_sizes.get((c, "uvhttpd"), (None,))[0] for c in COMPRESS_CODINGS}
    if all(sizes.values()):
        notes.append("uvhttpd's bodies: gzip %d, br %d, zstd %d bytes (br and zstd smaller than "
                     "gzip: %s)." % (sizes["gzip"], sizes["br"], sizes["zstd"],
                                     "yes" if sizes["br"] < sizes["gzip"] and sizes["zstd"] < sizes["gzip"]
                                     else "no"))
    return "\n".join(lines), notes
