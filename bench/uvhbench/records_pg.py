"""The records workload on PostgreSQL (--records), next to the file store:
a throwaway cluster (test/e2e/pg.py: initdb, pg_ctl, its own port and
socket directory, as the postgres user when run as root), PostgreSQL's own
ceiling measured in the same run with pgbench (a single-row INSERT script,
64 clients, into a table shaped like uvhttpd's), then uvhttpd with
--records under the same wrk POST load as the file store. The target:
uvhttpd on PostgreSQL reaches at least 70 % of the pgbench ceiling, durably
(fsync and synchronous_commit on, printed with the results)."""
import http.client
import os
import re
import subprocess
import sys
import time

from .common import POST_LUA, REPO, BenchError, log
from .loadtools import run_wrk
from .report import fmt_ms, fmt_num, fmt_pct

TARGET_PCT = 70.0
CLIENTS = 64

CEILING_TABLE = """
DROP TABLE IF EXISTS bench_ceiling;
DROP SEQUENCE IF EXISTS bench_ceiling_ids;
CREATE SEQUENCE bench_ceiling_ids;
CREATE TABLE bench_ceiling (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    fields text NOT NULL
);
"""
CEILING_SCRIPT = ("INSERT INTO bench_ceiling (id, fields) "
                  "VALUES (nextval('bench_ceiling_ids')::text, 'name=Bench+User&email=bench%40example.com');\n")


def _cluster_class():
    sys.path.insert(0, os.path.join(REPO, "test", "e2e"))
    try:
        import pg  # test/e2e/pg.py
    finally:
        sys.path.pop(0)
    return pg.PgCluster, pg.uvhlib.Skip


def pgbench_ceiling(cluster, workdir, duration):
    cluster.sql(CEILING_TABLE)
    script = os.path.join(workdir, "insert_one.sql")
    with open(script, "w") as f:
        f.write(CEILING_SCRIPT)
    cmd = ["pgbench", "-n", "-c", str(CLIENTS), "-j", "2", "-T", str(duration), "-f", script,
           "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "uvh", "postgres"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", r.stdout)
    if r.returncode != 0 or not m:
        raise BenchError("pgbench failed (%d):\n%s\n%s" % (r.returncode, r.stdout, r.stderr))
    lat = re.search(r"latency average = ([\d.]+) ms", r.stdout)
    return {"tps": float(m.group(1)), "latency_ms": float(lat.group(1)) if lat else None,
            "cmd": "pgbench -n -c %d -j 2 -T %d -f insert_one.sql" % (CLIENTS, duration)}


def wait_records_ready(s, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
            c.request("GET", "/readyz")
            st = c.getresponse().status
            c.close()
            if st == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.05)  # polling a condition, bounded by the deadline
    raise BenchError("uvhttpd --records: the store did not connect in %d s" % timeout)


def run_records_pg(ctx):
    """Fills ctx.records_pg: settings, pgbench rounds and uvhttpd rounds."""
    args = ctx.args
    try:
        PgCluster, Skip = _cluster_class()
        cluster = PgCluster()
    except Exception as e:  # Skip, or pg.py missing
        ctx.records_pg = {"skipped": str(e)}
        log("records on PostgreSQL: skipped: %s" % e)
        return
    out = {"ceiling": [], "uvhttpd": [], "settings": {}}
    ctx.records_pg = out
    with cluster:
        for name in ("fsync", "synchronous_commit", "wal_sync_method", "commit_delay", "shared_buffers"):
            out["settings"][name] = cluster.sql("SHOW %s" % name).strip()
        out["version"] = cluster.sql("SHOW server_version").strip()
        log("records on PostgreSQL %s: %s" % (out["version"], out["settings"]))
        for rnd in range(args.rounds):
            c = pgbench_ceiling(cluster, ctx.workdir, args.duration)
            out["ceiling"].append(c)
            out["pgbench_cmd"] = c["cmd"]
            log("records-pg round %d/%d pgbench   %10.0f tx/s" % (rnd + 1, args.rounds, c["tps"]))
            cluster.reset()
            s = ctx.new_server("uvhttpd", ["--records", cluster.url, "--records-required"])
            try:
                s.start()
                wait_records_ready(s)
                if args.warmup > 0:
                    run_wrk(s, CLIENTS, args.warmup, "/database.txt", POST_LUA, None, measure=False)
                r = run_wrk(s, CLIENTS, args.duration, "/database.txt", POST_LUA, None)
            finally:
                s.stop()
            dur = r["duration"] or args.duration
            r["rps"] = max(0, r["requests"] - r["non2xx"]) / dur
            out["uvhttpd"].append(r)
            log("records-pg round %d/%d uvhttpd   %10.0f rec/s  cpu %5.1f%%  non-2xx %d"
                % (rnd + 1, args.rounds, r["rps"], r["server_cpu_pct"], r["non2xx"]))
            rows = int(cluster.sql("SELECT count(*) FROM uvhttpd_records").strip() or 0)
            r["rows"] = rows


def _median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def records_pg_table(ctx, agg):
    """(markdown, notes) comparing the file store, uvhttpd on PostgreSQL and
    pgbench's ceiling, or (None, []) when the workload did not run."""
    rp = getattr(ctx, "records_pg", None)
    if rp is None:
        return None, []
    if "skipped" in rp:
        return None, ["records on PostgreSQL: skipped: %s" % rp["skipped"]]
    if not rp["uvhttpd"] or not rp["ceiling"]:
        return None, ["records on PostgreSQL: no complete round"]
    f = agg.get(("records", "uvhttpd"))
    ceiling = _median([c["tps"] for c in rp["ceiling"]])
    u_rps = _median([r["rps"] for r in rp["uvhttpd"]])
    u_p50 = _median([r.get("p50") for r in rp["uvhttpd"]])
    u_p99 = _median([r.get("p99") for r in rp["uvhttpd"]])
    u_cpu = _median([r["server_cpu_pct"] for r in rp["uvhttpd"]])
    non2xx = sum(r["non2xx"] for r in rp["uvhttpd"])
    lines = ["| store | records/s (64 clients) | p50 | p99 | uvhttpd CPU | of the pgbench ceiling | errors |",
             "|---|--:|--:|--:|--:|--:|---|"]
    if f:
        lines.append("| file (database.txt, fdatasync per batch) | %s | %s | %s | %s | – | %s |"
                     % (fmt_num(f["rps"]), fmt_ms(f["p50"]), fmt_ms(f["p99"]), fmt_pct(f["server_cpu_pct"]),
                        "non-2xx %g" % f["non2xx"] if f.get("non2xx") else "0"))
    pct = 100.0 * u_rps / ceiling if ceiling else None
    lines.append("| PostgreSQL (`--records`) | %s | %s | %s | %s | %s | %s |"
                 % (fmt_num(u_rps), fmt_ms(u_p50), fmt_ms(u_p99), fmt_pct(u_cpu),
                    "%.0f %%" % pct if pct is not None else "–", "non-2xx %d" % non2xx if non2xx else "0"))
    lines.append("| pgbench ceiling (single-row INSERT, 64 clients) | %s tx/s | – | – | – | 100 %% | – |"
                 % fmt_num(ceiling))
    st = rp["settings"]
    notes = ["PostgreSQL %s on this machine, started by the run: fsync = %s, synchronous_commit = %s, "
             "wal_sync_method = %s, commit_delay = %s, shared_buffers = %s. Ceiling: `%s`."
             % (rp["version"], st["fsync"], st["synchronous_commit"], st["wal_sync_method"], st["commit_delay"],
                st["shared_buffers"], rp.get("pgbench_cmd", "pgbench"))]
    if pct is not None:
        notes.append("Target: uvhttpd on PostgreSQL at least %.0f %% of the pgbench ceiling: %s (%.0f %%)."
                     % (TARGET_PCT, "met" if pct >= TARGET_PCT else "**not met**", pct))
    notes.append("PostgreSQL and pgbench are not pinned (the database's backends run on any core); "
                 "uvhttpd and wrk are pinned as in the other workloads.")
    return "\n".join(lines), notes
