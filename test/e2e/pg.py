"""A real PostgreSQL for the record-store tests (--records): a cluster made
with Debian's initdb in a temporary directory, started with pg_ctl on a free
port with a unix socket directory of its own, as an unprivileged user
(PostgreSQL refuses to run as root: as root the cluster belongs to the
`postgres` user Debian's package creates), waited for with pg_isready under
a deadline, stopped by its own postmaster PID (pg_ctl stop -m fast, then the
PID is checked gone) and removed.

    with PgCluster() as pg:
        pg.url                      # postgresql://uvh@127.0.0.1:PORT/postgres
        pg.reset()                  # drops uvhttpd's tables: a fresh store
        pg.sql("SELECT 1")          # psql -Atc, as the superuser uvh
        pg.stop(); pg.start()       # an outage

As a command, for the C++ integration tests (test/integration/CMakeLists.txt):

    python3 test/e2e/pg.py -- CMD ARGS...   # runs CMD with UVH_TEST_RECORDS=URL

A machine without the postgresql package makes PgCluster raise
uvhlib.Skip with the reason (reported as skipped; `make test` installs it)."""

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import uvhlib  # noqa: E402

PG_BIN_DIRS = ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"]


def pg_bin():
    for d in PG_BIN_DIRS:
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    return None


class PgCluster:
    def __init__(self, settings=None):
        self.bin = pg_bin()
        if self.bin is None:
            raise uvhlib.Skip("PostgreSQL (Debian package postgresql) is not installed: "
                              "no initdb in " + ", ".join(PG_BIN_DIRS))
        if shutil.which("psql") is None:
            raise uvhlib.Skip("psql (postgresql-client) is not installed")
        self.settings = settings or {}
        self.user = None  # run as this system user (when we are root)
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam("postgres")
            except KeyError:
                raise uvhlib.Skip("running as root and there is no 'postgres' user to run PostgreSQL as")
        self.dir = None
        self.port = None
        self.pid = None

    # ----------------------------------------------------------- plumbing

    def _as_user(self, cmd, timeout=120, check=True):
        kw = {}
        if self.user is not None:
            kw = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.dir, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    @property
    def url(self):
        return f"postgresql://uvh@127.0.0.1:{self.port}/postgres"

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="uvh-pg-")
        os.chmod(self.dir, 0o755)
        if self.user is not None:
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self._as_user([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "uvh", "--auth=trust",
                       "-E", "UTF8", "--locale=C", "--no-instructions"], timeout=180)
        self.port = uvhlib.free_port()
        conf = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.dir}'",
            "max_connections": "200",
            "shared_buffers": "'32MB'",
            # The defaults, said out loud: a commit is flushed before it is
            # acknowledged, which is what a 201 from uvhttpd promises.
            "fsync": "on",
            "synchronous_commit": "on",
            "log_min_messages": "warning",
        }
        conf.update(self.settings)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")
        try:
            self.start()
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc):
        try:
            if self.pid is not None:
                self.stop()
        finally:
            self._remove()

    def _remove(self):
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # ------------------------------------------------------ start and stop

    def start(self, timeout=60):
        log = os.path.join(self.dir, "server.log")
        # -W: pg_ctl does not wait; the wait is ours, bounded, on pg_isready.
        self._as_user([os.path.join(self.bin, "pg_ctl"), "start", "-W", "-D", self.data, "-l", log])
        deadline = time.monotonic() + timeout
        while True:
            r = subprocess.run([os.path.join(self.bin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                                str(self.port)], timeout=30)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"PostgreSQL did not become ready in {timeout}s:\n" + self.log_tail())
            time.sleep(0.05)  # polling a condition, bounded by the deadline
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            self.pid = int(f.readline())

    def stop(self, timeout=60):
        """pg_ctl stop -m fast (connections are cut, nothing committed is
        lost), then the postmaster's PID must be gone."""
        pid = self.pid
        self._as_user([os.path.join(self.bin, "pg_ctl"), "stop", "-D", self.data, "-m", "fast", "-w", "-t",
                       str(timeout)], timeout=timeout + 10)
        deadline = time.monotonic() + 10
        while self._alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                raise AssertionError(f"postmaster {pid} still running after pg_ctl stop")
            time.sleep(0.02)  # polling a condition, bounded by the deadline
        self.pid = None

    @staticmethod
    def _alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # A zombie is gone for our purposes (not our child: pg_ctl's).
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().split(") ", 1)[1][0] != "Z"
        except OSError:
            return False

    def log_tail(self, n=40):
        try:
            with open(os.path.join(self.dir, "server.log")) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    # --------------------------------------------------------------- SQL

    def sql(self, query, db="postgres", timeout=60):
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
                            "-U", "uvh", "-d", db, "-Atc", query], capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise AssertionError(f"psql failed: {r.stderr}")
        return r.stdout

    def reset(self):
        """A fresh record store: uvhttpd creates the schema again."""
        self.sql("DROP TABLE IF EXISTS uvhttpd_records, uvhttpd_schema, uvhttpd_records_size; "
                 "DROP SEQUENCE IF EXISTS uvhttpd_records_auto; "
                 "DROP FUNCTION IF EXISTS uvhttpd_records_append(text), uvhttpd_records_append(text, bigint), "
                 "uvhttpd_records_put(text, text), uvhttpd_records_put(text, text, bigint), uvhttpd_records_bump, "
                 "uvhttpd_records_count, uvhttpd_records_next_auto")

    def lines(self):
        """The store as GET /database.txt renders it, read with psql."""
        out = self.sql("SELECT id || ' ' || fields FROM uvhttpd_records ORDER BY seq")
        return [l for l in out.split("\n") if l]


def main(argv):
    if "--" not in argv:
        print("usage: pg.py -- CMD ARGS...", file=sys.stderr)
        return 2
    cmd = argv[argv.index("--") + 1:]
    try:
        cluster = PgCluster()
    except uvhlib.Skip as e:
        print(f"SKIPPED: {e}", file=sys.stderr)
        return 77
    with cluster as pg:
        print(f"pg.py: PostgreSQL on port {pg.port} (pid {pg.pid}); running {' '.join(cmd)}", flush=True)
        return subprocess.run(cmd, env={**os.environ, "UVH_TEST_RECORDS": pg.url}).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
