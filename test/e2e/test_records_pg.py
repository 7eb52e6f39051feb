"""The record store on PostgreSQL (--records), end to end: two uvhttpd
instances with separate roots (two "machines") behind HAProxy, one
PostgreSQL started by the test (test/e2e/pg.py). Every acknowledged record
present exactly once; GET /database.txt the same from both; kill -9 of an
instance and a 5 s database outage under load lose nothing acknowledged;
503 + Retry-After while the database is down; a unique-id race between the
two instances ends in one 201 and one 409. The record-store cases
themselves run against PostgreSQL as the CTest test
integration.records_on_postgresql (test/integration/records_test.cpp)."""

import http.client
import os
import signal
import subprocess
import threading
import time

import pytest

import uvhlib
from pg import PgCluster
from uvhlib import Haproxy, Server, TempRoot, free_port, request

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def pg():
    with PgCluster() as cluster:
        yield cluster


@pytest.fixture
def db(pg):
    pg.reset()
    return pg


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)  # polling a condition, bounded by the deadline
    raise AssertionError(f"timed out waiting for {what}")


def status(port, path, timeout=5):
    try:
        return request(port, "GET", path, timeout=timeout).status
    except (OSError, uvhlib.PeerClosed):
        return None


def pg_server(root, url, *flags, **kw):
    """A uvhttpd on PostgreSQL, returned once its store is up (/readyz
    with --records-required)."""
    s = Server(root, "--records", url, "--records-required", *flags, **kw)
    wait_for(lambda: status(s.port, "/readyz") == 200, 30, "the record store to connect")
    return s


def haproxy(ports):
    """HAProxy in front of `ports`, health-checking /readyz every 100 ms (the
    configuration docs/operations.md shows), retrying only connection
    failures."""
    servers = "\n".join(f"    server s{i} 127.0.0.1:{p} check" for i, p in enumerate(ports))

    def config(port):
        return f"""
global
    maxconn 4096
    log stderr format raw local0
defaults
    mode http
    log global
    option httplog
    option dontlog-normal
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retry-on conn-failure empty-response
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 100ms fall 1 rise 2
{servers}
"""
    return Haproxy(config, ready=lambda port: status(port, "/readyz") == 200)


class Load:
    """`clients` threads POSTing records to `port` until `total` are sent or
    stop() is called. Keeps every answer: ids of the 201s, the other
    statuses with their Retry-After, and connection errors."""

    def __init__(self, port, clients, total=None, prefix="c"):
        self.port, self.total, self.prefix = port, total, prefix
        self.lock = threading.Lock()
        self.sent = 0
        self.acked = []          # ids answered 201
        self.statuses = {}       # status -> count
        self.retry_after = []    # Retry-After values of the 503s
        self.errors = 0
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.worker, args=(n,)) for n in range(clients)]
        for t in self.threads:
            t.start()

    def next_seq(self):
        with self.lock:
            if self.stopping.is_set() or (self.total is not None and self.sent >= self.total):
                return None
            self.sent += 1
            return self.sent

    def worker(self, n):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while True:
            seq = self.next_seq()
            if seq is None:
                break
            try:
                conn.request("POST", "/database.txt", body=f"client={self.prefix}{n}&seq={seq}", headers=FORM)
                r = conn.getresponse()
                r.read()
                with self.lock:
                    self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
                    if r.status == 201:
                        self.acked.append(r.getheader("Location").rsplit("/", 1)[1])
                    elif r.status == 503:
                        self.retry_after.append(r.getheader("Retry-After"))
                if r.status == 503:
                    time.sleep(0.02)  # a client backing off, not synchronisation
            except (OSError, http.client.HTTPException):
                with self.lock:
                    self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                time.sleep(0.02)  # a client backing off after a cut connection
        conn.close()

    def count(self, st):
        with self.lock:
            return self.statuses.get(st, 0)

    def acks(self):
        with self.lock:
            return len(self.acked)

    def stop(self):
        self.stopping.set()
        self.join()

    def join(self):
        for t in self.threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in self.threads), "a client thread hung"


def metric(text, series):
    """The value of one series (name with its labels) in /metrics text."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no {series} in /metrics")


def stored_ids(pg):
    return [l.split(" ", 1)[0] for l in pg.lines()]


def assert_acked_once(pg, acked):
    ids = stored_ids(pg)
    assert len(ids) == len(set(ids)), "duplicate ids in the table"
    missing = set(acked) - set(ids)
    assert not missing, f"{len(missing)} acknowledged records missing, e.g. {sorted(missing)[:5]}"
    assert len(acked) == len(set(acked)), "one id acknowledged twice"
    return ids


def test_two_instances_behind_haproxy_4000_posts_64_clients(db):
    with TempRoot() as ra, TempRoot() as rb:
        a, b = pg_server(ra.path, db.url), pg_server(rb.path, db.url)
        ha = haproxy([a.port, b.port])
        try:
            start = time.monotonic()
            load = Load(ha.port, 64, total=4000)
            load.join()
            took = time.monotonic() - start
            print(f"  4000 POSTs through HAProxy to 2 instances, 64 clients: {took:.1f}s ({4000 / took:.0f}/s), "
                  f"statuses {load.statuses}, {load.errors} errors")
            assert load.statuses == {201: 4000} and load.errors == 0
            ids = assert_acked_once(db, load.acked)
            assert len(ids) == 4000
            # Both instances served a share.
            for s in (a, b):
                m = request(s.port, "GET", "/metrics").body.decode()
                assert metric(m, 'uvhttpd_record_operations_total{op="append",status="201"}') > 0, \
                    "an instance took no records"
                assert metric(m, "uvhttpd_records_db_roundtrip_seconds_count") > 0
                assert metric(m, "uvhttpd_records_db_pool_size") == 4
            # The same listing from both, in creation order, streamed
            # (chunked: 4,000 records are more than one page).
            ra_list = request(a.port, "GET", "/database.txt")
            rb_list = request(b.port, "GET", "/database.txt")
            assert ra_list.status == rb_list.status == 200
            assert ra_list.framing == "chunked", ra_list.framing
            assert ra_list.body == rb_list.body
            assert ra_list.body.decode() == "".join(l + "\n" for l in db.lines())
            assert ra_list.get("content-type") == "text/plain; charset=utf-8"
        finally:
            ha.close()
        a.finish()
        b.finish()


def test_kill_9_of_one_instance_under_load_loses_no_acknowledged_record(db):
    with TempRoot() as ra, TempRoot() as rb:
        a = pg_server(ra.path, db.url)
        b = pg_server(rb.path, db.url, expect_exit=-signal.SIGKILL)
        ha = haproxy([a.port, b.port])
        try:
            load = Load(ha.port, 64, total=100000)
            wait_for(lambda: load.acks() >= 1000, 60, "1000 acknowledged records")
            b.proc.kill()
            b.proc.wait(timeout=10)
            at_kill = load.acks()
            # Service goes on through the other instance.
            wait_for(lambda: load.acks() >= at_kill + 1000, 60, "1000 more records after the kill")
            load.stop()
            print(f"  killed b after {at_kill} acknowledged; {load.acks()} in all; statuses {load.statuses}, "
                  f"{load.errors} connection errors")
            assert set(load.statuses) <= {201, 502, 503}, load.statuses
            assert_acked_once(db, load.acked)
        finally:
            ha.close()
        a.finish()


def test_database_outage_under_load_503_with_retry_after_then_full_service(db):
    with TempRoot() as ra, TempRoot() as rb, TempRoot() as tmp:
        ra.write("index.html", "<!DOCTYPE html><title>x</title>")
        # Not --records-required: HAProxy keeps both in rotation, so the
        # clients see uvhttpd's own 503s.
        a = Server(ra.path, "--records", db.url)
        b = Server(rb.path, "--records", db.url)
        watcher = pg_server(tmp.path, db.url)  # --records-required: /readyz follows the database
        for s in (a, b):
            wait_for(lambda: status(s.port, "/database.txt/none") == 404, 30, "the store to connect")
        ha = haproxy([a.port, b.port])
        try:
            load = Load(ha.port, 64)
            wait_for(lambda: load.acks() >= 500, 60, "500 acknowledged records")
            db.stop()
            stopped_at = time.monotonic()
            wait_for(lambda: load.count(503) >= 50, 30, "503s while the database is down")
            # During the outage: files, liveness and the probe.
            assert request(a.port, "GET", "/index.html").status == 200
            assert request(a.port, "GET", "/healthz").status == 200
            assert request(a.port, "GET", "/readyz").status == 200  # not --records-required
            r = request(watcher.port, "GET", "/readyz")
            assert r.status == 503 and r.body == b"records database unreachable\n"
            r = request(a.port, "GET", "/database.txt")
            assert r.status == 503 and r.get("retry-after") is not None, r
            r = request(a.port, "POST", "/database.txt", body="name=x", headers=FORM)
            assert r.status == 503 and int(r.get("retry-after")) >= 1, r
            assert r.body == b"503 Service Unavailable: the record database is unreachable; nothing was stored, " \
                             b"try again\n", r.body
            # PostgreSQL stays down for 5 s under load.
            time.sleep(max(0.0, 5 - (time.monotonic() - stopped_at)))  # the outage's length, not a wait
            during = load.acks()
            db.start()
            wait_for(lambda: load.acks() >= during + 1000, 60, "1000 records after the database came back")
            wait_for(lambda: status(watcher.port, "/readyz") == 200, 30, "/readyz ready again")
            load.stop()
            print(f"  outage: {load.count(503)} answers 503 (Retry-After {sorted(set(load.retry_after))}), "
                  f"{load.acks()} acknowledged; statuses {load.statuses}, {load.errors} connection errors")
            assert set(load.statuses) <= {201, 503}, load.statuses
            assert all(v is not None and int(v) >= 1 for v in load.retry_after), "a 503 without Retry-After"
            assert_acked_once(db, load.acked)
            # HAProxy sends to both, so the 1000 records above may all have
            # gone through b while a was still in its reconnect backoff: a's
            # pool is waited for before its reconnections are counted.
            wait_for(lambda: metric(request(a.port, "GET", "/metrics").body.decode(),
                                    "uvhttpd_records_db_connections_up") == 4, 30, "the whole pool back")
            m = request(a.port, "GET", "/metrics").body.decode()
            assert metric(m, "uvhttpd_records_db_reconnects_total") >= 1, "the reconnections were not counted"
            assert metric(m, 'uvhttpd_record_operations_total{op="append",status="503"}') > 0
        finally:
            ha.close()
            if db.pid is None:
                db.start()
        a.finish()
        b.finish()
        watcher.finish()


def test_unique_id_race_between_two_instances_one_201_one_409(db):
    with TempRoot() as ra, TempRoot() as rb:
        a, b = pg_server(ra.path, db.url), pg_server(rb.path, db.url)
        for i in range(40):
            barrier = threading.Barrier(2)
            results = {}

            def post(name, port):
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                c.connect()
                barrier.wait(timeout=10)
                c.request("POST", "/database.txt", body=f"id=race{i}&from={name}", headers=FORM)
                results[name] = c.getresponse().status
                c.close()

            ts = [threading.Thread(target=post, args=(n, p)) for n, p in (("a", a.port), ("b", b.port))]
            for t in ts:
                t.start()
            for t in ts:
                t.join(timeout=30)
            assert sorted(results.values()) == [201, 409], (i, results)
        ids = stored_ids(db)
        assert sorted(ids) == sorted(f"race{i}" for i in range(40))
        a.finish()
        b.finish()


def test_starts_without_the_database_and_connects_when_it_comes(db):
    """Started while PostgreSQL is down: records 503 + Retry-After, files
    and /healthz served, /readyz 503 with --records-required; once the
    database is up the store connects by itself and creates its schema."""
    with TempRoot() as root:
        root.write("a.txt", "file\n")
        db.sql("DROP TABLE IF EXISTS uvhttpd_records, uvhttpd_schema")
        db.stop()
        try:
            s = Server(root.path, "--records", db.url, "--records-required")
            r = request(s.port, "POST", "/database.txt", body="name=x", headers=FORM)
            assert r.status == 503 and r.get("retry-after"), r
            assert request(s.port, "GET", "/database.txt/1").status == 503
            assert request(s.port, "GET", "/a.txt").body == b"file\n"
            assert request(s.port, "GET", "/healthz").status == 200
            assert request(s.port, "GET", "/readyz").status == 503
        finally:
            db.start()
        wait_for(lambda: status(s.port, "/readyz") == 200, 30, "the store to connect")
        r = request(s.port, "POST", "/database.txt", body="name=x", headers=FORM)
        assert r.status == 201, r
        assert db.sql("SELECT version FROM uvhttpd_schema").strip() == "1"
        s.finish()
        assert "unreachable" in s.stderr() and "reachable again" not in s.stderr()


def test_a_stale_database_txt_is_not_served_and_writes_obey_the_rules(db):
    with TempRoot() as root:
        root.write("database.txt", "1 old=file\n")
        s = pg_server(root.path, db.url, "--write-token", "tok")
        assert "is not served or read" in s.stderr()
        assert request(s.port, "GET", "/database.txt").body == b""
        auth = {**FORM, "Authorization": "Bearer tok"}
        assert request(s.port, "POST", "/database.txt", body="name=x", headers=FORM).status == 401
        assert request(s.port, "POST", "/database.txt", body="name=x", headers=auth).status == 201
        assert request(s.port, "GET", "/database.txt").body == b"1 name=x\n"
        # The file stays as it was; writes to it by name are still refused.
        assert request(s.port, "PUT", "/database.txt", body="x", headers=auth).status == 405
        with open(os.path.join(root.path, "database.txt")) as f:
            assert f.read() == "1 old=file\n"
        s.finish()
        with Server(root.path, "--records", db.url, "--read-only") as ro:
            wait_for(lambda: status(ro.port, "/database.txt/1") == 200, 30, "the store to connect")
            assert request(ro.port, "POST", "/database.txt", body="name=y", headers=FORM).status == 405
            assert request(ro.port, "DELETE", "/database.txt/1").status == 405


def test_bad_connection_string_is_a_start_up_error(tmp_path):
    r = subprocess.run([uvhlib.BINARY, "--port", "0", "--root", str(tmp_path), "--records", "host=x port=1 bogus=1"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "cannot use --records" in r.stderr and "bogus" in r.stderr, r.stderr


def test_a_statement_the_database_refuses_is_a_500_with_one_line(db):
    """A schema broken by hand (the append function renamed): POST is a 500
    with one readable line and PostgreSQL's words on stderr; reads still
    work; nothing is half-stored."""
    with TempRoot() as root:
        s = pg_server(root.path, db.url)
        assert request(s.port, "POST", "/database.txt", body="id=a&name=x", headers=FORM).status == 201
        db.sql("ALTER FUNCTION uvhttpd_records_append(text, bigint) RENAME TO uvhttpd_records_append_gone")
        r = request(s.port, "POST", "/database.txt", body="name=y", headers=FORM)
        assert r.status == 500 and r.body == b"500 Internal Server Error: the record store failed\n", r
        assert request(s.port, "GET", "/database.txt/a").body == b"name=x\n"
        assert stored_ids(db) == ["a"]
        s.finish()
        assert "uvhttpd_records_append(unknown) does not exist" in s.stderr() or \
            "does not exist" in s.stderr(), s.stderr()


def test_a_schema_version_it_does_not_know_is_refused(db):
    """A schema a newer uvhttpd migrated (version 2): this one does not touch
    it, answers 503 and says why on stderr."""
    with TempRoot() as root:
        s0 = pg_server(root.path, db.url)
        s0.finish()
        # What a migration might have done: a new version, a function gone.
        db.sql("UPDATE uvhttpd_schema SET version = 2; "
               "DROP FUNCTION uvhttpd_records_put(text, text), uvhttpd_records_put(text, text, bigint)")
        s = Server(root.path, "--records", db.url, "--records-required")
        wait_for(lambda: "knows version 1" in s.stderr(), 30, "the version complaint")
        r = request(s.port, "POST", "/database.txt", body="name=y", headers=FORM)
        assert r.status == 503 and r.get("retry-after"), r
        assert request(s.port, "GET", "/readyz").status == 503
        s.finish()
        assert "the schema is version 2; this uvhttpd knows version 1" in s.stderr()
        # Left as it was found.
        assert db.sql("SELECT count(*) FROM pg_proc WHERE proname = 'uvhttpd_records_put'").strip() == "0"
        assert db.sql("SELECT version FROM uvhttpd_schema").strip() == "2"


def store_bytes(db):
    """The store's size as the file store would measure it (its lines), and
    the size the triggers keep (the slots' sum)."""
    actual = int(db.sql("SELECT coalesce(sum(octet_length(id) + octet_length(fields) + 2), 0) "
                        "FROM uvhttpd_records").strip())
    kept = int(db.sql("SELECT sum(bytes) FROM uvhttpd_records_size").strip())
    return actual, kept


def test_max_store_size_on_postgresql_two_instances(db):
    """--max-store-size in PostgreSQL mode, with the file store's status and
    message: two instances, 16 clients each, post past a 20,000-byte cap.
    Every answer is 201 or 507; every 201 is stored once; the store ends
    within the records in flight of the cap (each transaction checks the
    committed size; at most 32 records are in flight); the size the
    triggers keep equals the table's. A row deleted by hand with psql makes
    room again; a PUT that would grow the store is 507, one that shrinks a
    record passes."""
    cap = 20000
    msg = f"507 Insufficient Storage: the record store is full (--max-store-size {cap} bytes); nothing was stored\n"
    with TempRoot() as r1, TempRoot() as r2:
        s1 = pg_server(r1.path, db.url, "--max-store-size", str(cap))
        s2 = pg_server(r2.path, db.url, "--max-store-size", str(cap))
        loads = [Load(s.port, 16, total=900, prefix=p) for s, p in ((s1, "a"), (s2, "b"))]
        for load in loads:
            load.join()
        statuses = {}
        for load in loads:
            for st, n in load.statuses.items():
                statuses[st] = statuses.get(st, 0) + n
            assert load.errors == 0
        assert set(statuses) == {201, 507}, statuses
        acked = [i for load in loads for i in load.acked]
        ids = stored_ids(db)
        assert sorted(ids) == sorted(acked) and len(set(ids)) == len(ids)
        actual, kept = store_bytes(db)
        longest = max(len(l) + 1 for l in db.lines())
        assert cap - longest < actual <= cap + 32 * longest, (actual, cap)
        assert kept == actual
        r = request(s1.port, "POST", "/database.txt", body="name=more", headers=FORM)
        assert r.status == 507 and r.body.decode() == msg
        # A DBA's hand edit is counted too.
        db.sql("DELETE FROM uvhttpd_records WHERE seq IN (SELECT seq FROM uvhttpd_records ORDER BY seq LIMIT 100)")
        actual, kept = store_bytes(db)
        assert kept == actual
        r = request(s2.port, "POST", "/database.txt", body="name=more", headers=FORM)
        assert r.status == 201
        rid = r.get("location").rsplit("/", 1)[1]
        # PUT: growing past the cap is 507, shrinking passes.
        put = {"Content-Type": "application/x-www-form-urlencoded"}
        r = request(s1.port, "PUT", f"/database.txt/{rid}", body="name=" + "y" * cap, headers=put)
        assert r.status == 507 and r.body.decode() == msg
        r = request(s1.port, "PUT", f"/database.txt/{rid}", body="n=1", headers=put)
        assert r.status == 204
        assert store_bytes(db)[0] == store_bytes(db)[1]
        s1.finish()
        s2.finish()


def test_store_size_is_set_up_from_an_existing_table(db):
    """A store made by an uvhttpd without the size table (its rows there,
    no triggers): the first start counts the rows once, then keeps up."""
    with TempRoot() as root:
        s = pg_server(root.path, db.url)
        for i in range(20):
            assert request(s.port, "POST", "/database.txt", body=f"n={i}", headers=FORM).status == 201
        s.finish()
        db.sql("DROP TABLE uvhttpd_records_size; DROP FUNCTION uvhttpd_records_count CASCADE")
        s = pg_server(root.path, db.url, "--max-store-size", "1000")
        actual, kept = store_bytes(db)
        assert kept == actual and actual > 0
        assert request(s.port, "DELETE", "/database.txt/1").status == 204
        assert store_bytes(db)[0] == store_bytes(db)[1]
        # What an older uvhttpd on the same database calls: still there,
        # uncapped, and counted.
        out = db.sql("SELECT o_n, o_id FROM uvhttpd_records_append(' n=old')").strip()
        assert out.startswith("1|") and out.split("|")[1].isdigit(), out
        assert store_bytes(db)[0] == store_bytes(db)[1]
        s.finish()


def propfind(port, path, depth, body=None):
    import xml.etree.ElementTree as ET
    headers = {"Depth": depth}
    if body:
        headers["Content-Type"] = "application/xml"
    r = request(port, "PROPFIND", path, body=body, headers=headers)
    assert r.status == 207, (r.status, r.body)
    ns = {"D": "DAV:"}
    out = {}
    for resp in ET.fromstring(r.body).findall("D:response", ns):
        href = resp.find("D:href", ns).text
        props = {}
        for ps in resp.findall("D:propstat", ns):
            code = int(ps.find("D:status", ns).text.split()[1])
            for p in ps.find("D:prop", ns):
                props[p.tag.replace("{DAV:}", "")] = (code, p.text, list(p))
        out[href] = props
    return out


def test_propfind_database_txt_describes_the_table(db):
    """PROPFIND /database.txt on PostgreSQL describes what GET serves (the
    rendered table), not a stale file of that name on disk: the
    content type is GET's; GET sends no ETag and no Last-Modified and
    knows the length only after reading, so getetag, getlastmodified,
    creationdate and getcontentlength are absent (404 when asked by name);
    Depth 1 of the root describes its /database.txt member the same way.
    With no file on disk it is 207 too (GET is 200), not 404."""
    with TempRoot() as root:
        s = pg_server(root.path, db.url)
        assert request(s.port, "POST", "/database.txt", body="name=x", headers=FORM).status == 201
        get = request(s.port, "GET", "/database.txt")
        assert get.status == 200 and get.get("etag") is None and get.get("last-modified") is None
        r = propfind(s.port, "/database.txt", "0")
        props = r["/database.txt"]
        assert props["getcontenttype"][:2] == (200, get.get("content-type"))
        assert props["resourcetype"][0] == 200 and props["resourcetype"][2] == []
        assert props["displayname"][:2] == (200, "database.txt")
        for absent in ("getetag", "getlastmodified", "getcontentlength", "creationdate"):
            assert absent not in props, absent
        named = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:getlastmodified/>'
                 '<D:getcontenttype/></D:prop></D:propfind>')
        props = propfind(s.port, "/database.txt", "0", named)["/database.txt"]
        assert props["getetag"][0] == 404 and props["getlastmodified"][0] == 404
        assert props["getcontenttype"][:2] == (200, get.get("content-type"))
        s.finish()
        # A file of that name left from file mode: not what GET serves.
        with open(os.path.join(root.path, "database.txt"), "w") as f:
            f.write("1 stale=yes\n" * 100)
        s = pg_server(root.path, db.url)
        props = propfind(s.port, "/database.txt", "0")["/database.txt"]
        assert "getcontentlength" not in props and "getetag" not in props
        assert props["getcontenttype"][1] == get.get("content-type")
        member = propfind(s.port, "/", "1")["/database.txt"]
        assert "getcontentlength" not in member and "getetag" not in member and "getlastmodified" not in member
        assert member["getcontenttype"][1] == get.get("content-type")
        s.finish()
