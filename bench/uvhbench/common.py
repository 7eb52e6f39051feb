"""Paths, tool locations, the slowclients parameters, logging and the harness's error."""
import os
import sys


HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # bench/
REPO = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

ALL_SERVERS = ["uvhttpd", "floor", "nginx", "h2o", "apache"]
ALL_WORKLOADS = ["small", "pipelined", "file1m", "file1m-splice", "file100m", "idle", "records", "slowclients",
                 "propfind", "compressed"]
# Apache httpd 2.4 takes part in the WebDAV workload only (nginx's dav module and h2o have no
# PROPFIND); nginx and h2o in all the others.
DAV_WORKLOADS = ("propfind",)
DAV_SERVERS = ("uvhttpd", "apache")
# The floor (bench/floor.c) answers one canned small file: it runs in these workloads only,
# and their rows are reported as ratios to it.
FLOOR_WORKLOADS = ("small", "pipelined")
# Rounds of the small-file workloads unless --rounds says otherwise: their differences are a
# few per cent, so they get more rounds than the file and idle workloads.
SMALL_ROUNDS = 5
# A round whose host steal (/proc/stat, the server's or the client's CPU) is above this is
# run again, at most STEAL_RERUNS times; then it is kept and marked.
STEAL_LIMIT_PCT = 10.0
STEAL_RERUNS = 2
NGINX_BIN = "/usr/sbin/nginx"
H2O_BIN = "/usr/bin/h2o"
APACHE_BIN = "/usr/sbin/apache2"
APACHE_MODULES = "/usr/lib/apache2/modules"
PIPELINE_LUA = os.path.join(HERE, "lua", "pipeline16.lua")
PROPFIND_LUA = os.path.join(HERE, "lua", "propfind.lua")
# propfind: PROPFIND Depth: 1 (allprop) of one directory of this many files, one request at
# a time (wrk -c1), so the latency is the time per request.
PROPFIND_DIR = "/dav10k/"
PROPFIND_ENTRIES = 10000
PROPFIND_CONNS = 1
POST_LUA = os.path.join(HERE, "lua", "post_form.lua")
# compressed: a real ~90 KB script (Debian's libjs-jquery) requested with one Accept-Encoding
# at a time; nginx compresses with gzip level 6 per request, h2o with its compress handler,
# uvhttpd from its coding cache.
COMPRESS_SOURCE = "/usr/share/javascript/jquery/jquery.min.js"
COMPRESS_PATH = "/jquery.min.js"
COMPRESS_CONNS = 50
COMPRESS_CODINGS = ("gzip", "br", "zstd")
IDLE_HELPER = os.path.join(HERE, "idle_conns.py")
# The file100m client (bench/splice_get.py): bodies spliced to /dev/null, never copied.
SPLICE_CLIENT = os.path.join(HERE, "splice_get.py")
SLOWHTTPTEST = "slowhttptest"

# slowclients: (slowhttptest mode, label, path, mode-specific options). The -H and -X
# parameters are those of hardening issue item 11 (slow headers every 2 s; slow read of
# three pipelined 1 MiB responses through a 1-2 byte window, 1 byte a second).
SLOW_MODES = [
    ("-H", "slow headers", "/index.html", ["-i", "2"]),
    ("-B", "slow body", "/database.txt", ["-i", "1", "-s", "65536"]),
    ("-X", "slow read", "/1m.bin", ["-k", "3", "-n", "1", "-w", "1", "-y", "2", "-z", "1"]),
]
SLOW_CONNS = 800          # slowhttptest -c
SLOW_RATE = 200           # slowhttptest -r (connections per second)
SLOW_WRK_CONNS = 10       # the normal client: wrk -t1 -c10
SLOW_MIN_HELD = 200       # the attack counts as in progress above this many server sockets
SLOW_WAIT = 15            # seconds to wait for that
SLOW_CLOSE_WAIT = 60      # seconds to wait for the attack sockets to go after slowhttptest stops
SLOW_CLOSE_SLACK = 10     # "closed": at most this many sockets above the count before the attack
SLOW_TARGET_PCT = 80.0    # the operations target: >= 80 % of the usual requests/s
# uvhttpd runs slowclients with its default timeouts, as a user would: the target is for
# the defaults. --slow-uvhttpd-flags adds flags for experiments; the tables then say so.


def log(msg):
    print("[bench] " + msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass
