"""WebDAV class 2 (issue 11): LOCK and UNLOCK, the If header and the 423
check on every write method, with the real binary on port 0.

Every status the lock code can send is provoked here (LOCK 200/201, 400,
403, 404, 405, 409, 412, 413, 414, 421, 422, 423, 401, 507; UNLOCK 204, 400,
409; a write's 423 and 412), locks hold across --workers 3 and across a
kill -9 of the server (a new server on the same root still sees them until
they expire), and they expire by themselves (short timeouts through
--dav-lock-timeout-max; the waits are bounded polls)."""

import os
import re
import signal
import threading
import time

import uvhlib
from uvhlib import Server, TempRoot, request, wait_until

LOCKINFO = ('<?xml version="1.0" encoding="utf-8"?>'
            '<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:{scope}/></D:lockscope>'
            '<D:locktype><D:write/></D:locktype><D:owner>{owner}</D:owner></D:lockinfo>')


def lock(port, path, scope="exclusive", depth=None, timeout=None, owner="tester", headers=None, body=None):
    h = {"Content-Type": "application/xml"}
    if depth is not None:
        h["Depth"] = depth
    if timeout is not None:
        h["Timeout"] = timeout
    h.update(headers or {})
    if body is None:
        body = LOCKINFO.format(scope=scope, owner=owner)
    return request(port, "LOCK", path, body=body, headers=h)


def token_of(r):
    t = r.get("lock-token")
    assert t and re.fullmatch(r"<urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}>", t), t
    return t[1:-1]


def put(port, path, body=b"x", headers=None):
    return request(port, "PUT", path, body=body, headers=headers)


def assert_locked(r, href):
    assert r.status == 423, (r.status, r.body)
    assert r.get("content-type").startswith("application/xml")
    body = r.body.decode()
    assert "<D:lock-token-submitted>" in body and f"<D:href>{href}</D:href>" in body, body


def test_lock_put_unlock():
    with TempRoot() as root, Server(root.path) as s:
        assert put(s.port, "/f.txt", b"one").status == 201
        r = lock(s.port, "/f.txt", timeout="Second-600")
        assert r.status == 200, r.body
        tok = token_of(r)
        body = r.body.decode()
        assert r.get("content-type").startswith("application/xml")
        assert "<D:lockdiscovery>" in body and f"<D:href>{tok}</D:href>" in body
        assert "<D:exclusive/>" in body and "<D:depth>infinity</D:depth>" in body  # Depth absent: infinity
        assert "tester" in body and "<D:lockroot><D:href>/f.txt</D:href></D:lockroot>" in body
        m = re.search(r"<D:timeout>Second-(\d+)</D:timeout>", body)
        assert m and 590 <= int(m.group(1)) <= 600, body

        # Without the token: 423 with the lock root; the file is unchanged.
        assert_locked(put(s.port, "/f.txt", b"two"), "/f.txt")
        assert_locked(request(s.port, "DELETE", "/f.txt"), "/f.txt")
        assert open(os.path.join(root.path, "f.txt"), "rb").read() == b"one"
        # With it, untagged and tagged.
        assert put(s.port, "/f.txt", b"two", {"If": f"(<{tok}>)"}).status == 204
        assert put(s.port, "/f.txt", b"three", {"If": f"<http://127.0.0.1:{s.port}/f.txt> (<{tok}>)"}).status == 204
        assert open(os.path.join(root.path, "f.txt"), "rb").read() == b"three"
        # A token that is not the lock's (litmus cond_put_corrupt_token): 423.
        assert_locked(put(s.port, "/f.txt", b"x", {"If": f"(<{tok}x>) (Not <DAV:no-lock>)"}), "/f.txt")

        # UNLOCK: a wrong token is 409 with the precondition; the right one 204.
        r = request(s.port, "UNLOCK", "/f.txt", headers={"Lock-Token": "<urn:uuid:00000000-0000-4000-8000-000000000000>"})
        assert r.status == 409 and "<D:lock-token-matches-request-uri/>" in r.body.decode(), r.body
        r = request(s.port, "UNLOCK", "/other", headers={"Lock-Token": f"<{tok}>"})
        assert r.status == 409  # the token's lock does not cover that URL
        assert request(s.port, "UNLOCK", "/f.txt", headers={"Lock-Token": f"<{tok}>"}).status == 204
        assert request(s.port, "UNLOCK", "/f.txt", headers={"Lock-Token": f"<{tok}>"}).status == 409
        assert put(s.port, "/f.txt", b"free").status == 204


def test_lock_statuses():
    with TempRoot() as root, Server(root.path) as s:
        p = s.port
        # Lock-null (RFC 4918 §7.3): an unmapped URL becomes an empty, locked file.
        r = lock(p, "/new.txt", depth="0")
        assert r.status == 201, r.body
        tok = token_of(r)
        assert os.path.getsize(os.path.join(root.path, "new.txt")) == 0
        assert request(p, "GET", "/new.txt").status == 200
        # A second exclusive lock conflicts: 423 no-conflicting-lock.
        r = lock(p, "/new.txt", depth="0")
        assert r.status == 423 and "<D:no-conflicting-lock>" in r.body.decode(), r.body
        assert lock(p, "/new.txt", scope="shared", depth="0").status == 423
        # Shared locks share.
        assert put(p, "/s.txt").status == 201
        s1 = lock(p, "/s.txt", scope="shared", depth="0")
        s2 = lock(p, "/s.txt", scope="shared", depth="0")
        assert s1.status == 200 and s2.status == 200
        assert token_of(s1) != token_of(s2)
        assert lock(p, "/s.txt", scope="exclusive", depth="0").status == 423
        # Either shared token lets a write through; none does not.
        assert_locked(put(p, "/s.txt"), "/s.txt")
        assert put(p, "/s.txt", headers={"If": f"(<{token_of(s2)}>)"}).status == 204

        # 409: no parent collection; a lock-null collection URL.
        assert lock(p, "/missing/x.txt").status == 409
        assert lock(p, "/newdir/").status == 409
        # 400: malformed XML, the wrong element, a missing scope, a bad Depth, a bad If.
        assert lock(p, "/s.txt", body="<D:lockinfo xmlns:D='DAV:'>").status == 400
        assert lock(p, "/s.txt", body="<D:propfind xmlns:D='DAV:'/>").status == 400
        assert lock(p, "/s.txt", body="<D:lockinfo xmlns:D='DAV:'><D:locktype><D:write/></D:locktype></D:lockinfo>").status == 400
        assert lock(p, "/s.txt", depth="1").status == 400
        assert put(p, "/s.txt", headers={"If": "(<no-scheme>)"}).status == 400
        assert put(p, "/s.txt", headers={"If": "garbage"}).status == 400
        # 422: only write locks exist.
        bad_type = ("<D:lockinfo xmlns:D='DAV:'><D:lockscope><D:exclusive/></D:lockscope>"
                    "<D:locktype><D:read/></D:locktype></D:lockinfo>")
        assert lock(p, "/s.txt", body=bad_type).status == 422
        # 413: a body past 64 KiB, an owner past its room.
        assert lock(p, "/s.txt", body="<a/>" + " " * 70000).status == 413
        assert lock(p, "/s.txt", scope="shared", owner="o" * 2000).status == 413
        # 414: a path longer than a lock root may be.
        deep = "/".join(["d" * 250] * 5)
        os.makedirs(os.path.join(root.path, deep))
        assert lock(p, "/" + deep + "/f").status == 414
        # Refresh (no body): 400 without If, 412 with a token that applies to nothing here.
        assert request(p, "LOCK", "/new.txt").status == 400
        assert request(p, "LOCK", "/new.txt", headers={"If": "(<urn:uuid:00000000-0000-4000-8000-000000000000>)"}).status == 412
        assert request(p, "LOCK", "/s.txt", headers={"If": f"(<{tok}>)"}).status == 412  # tok locks /new.txt
        r = request(p, "LOCK", "/new.txt", headers={"If": f"(<{tok}>)", "Timeout": "Second-100"})
        assert r.status == 200 and f"<D:href>{tok}</D:href>" in r.body.decode()
        m = re.search(r"Second-(\d+)", r.body.decode())
        assert m and 90 <= int(m.group(1)) <= 100
        # UNLOCK without a Lock-Token: 400.
        assert request(p, "UNLOCK", "/new.txt").status == 400
        assert request(p, "UNLOCK", "/new.txt", headers={"Lock-Token": "urn:uuid:x"}).status == 400
        # The record store's file takes no LOCK; dotfiles do not exist.
        assert lock(p, "/database.txt").status == 405
        assert lock(p, "/.hidden").status == 404
        assert not os.path.exists(os.path.join(root.path, ".hidden"))


def test_if_header_conditions():
    with TempRoot() as root, Server(root.path) as s:
        p = s.port
        assert put(p, "/e.txt", b"abc").status == 201
        etag = request(p, "GET", "/e.txt").get("etag")
        # An ETag in If compares with the one GET sends.
        assert put(p, "/e.txt", b"abcd", {"If": f"([{etag}])"}).status == 204
        assert put(p, "/e.txt", b"x", {"If": f"([{etag}])"}).status == 412  # it changed
        etag = request(p, "GET", "/e.txt").get("etag")
        assert put(p, "/e.txt", b"y", {"If": f"(Not [{etag}])"}).status == 412
        assert put(p, "/e.txt", b"y", {"If": "(<DAV:no-lock>)"}).status == 412
        assert put(p, "/e.txt", b"y", {"If": "(<DAV:no-lock>) (Not <DAV:no-lock>)"}).status == 204
        assert open(os.path.join(root.path, "e.txt"), "rb").read() == b"y"
        etag = request(p, "GET", "/e.txt").get("etag")
        # Tagged lists apply to the resource they name.
        assert put(p, "/other.txt", b"z", {"If": f"</e.txt> ([{etag}])"}).status == 201
        assert request(p, "DELETE", "/other.txt", headers={"If": "</e.txt> ([\"nope\"])"}).status == 412
        assert request(p, "MKCOL", "/dir/", headers={"If": "(<DAV:no-lock>)"}).status == 412
        assert not os.path.exists(os.path.join(root.path, "dir"))
        # On a locked resource a false If is 412, not 423 (litmus fail_cond_put).
        tok = token_of(lock(p, "/e.txt"))
        assert put(p, "/e.txt", b"q", {"If": f"(<DAV:no-lock> [{etag}])"}).status == 412
        assert put(p, "/e.txt", b"q", {"If": f"(<{tok}> [{etag}]) (Not <DAV:no-lock> [{etag}])"}).status == 204


def test_collection_locks():
    with TempRoot() as root, Server(root.path) as s:
        p = s.port
        assert request(p, "MKCOL", "/c/").status == 201
        r = lock(p, "/c/", depth="infinity")
        assert r.status == 200
        tok = token_of(r)
        # Members are covered: new ones, MKCOL, DELETE, a member's own LOCK.
        assert_locked(put(p, "/c/new.txt"), "/c")
        assert_locked(request(p, "MKCOL", "/c/d/"), "/c")
        assert lock(p, "/c/new.txt").status == 423
        assert put(p, "/c/new.txt", headers={"If": f"<http://127.0.0.1:{p}/c/> (<{tok}>)"}).status == 201
        assert put(p, "/c/new.txt", headers={"If": f"(<{tok}>)"}).status == 204
        assert_locked(request(p, "DELETE", "/c/new.txt"), "/c")
        assert_locked(request(p, "DELETE", "/c/"), "/c")
        # Refresh through a member (litmus indirect_refresh).
        assert request(p, "LOCK", "/c/new.txt", headers={"If": f"(<{tok}>)"}).status == 200
        assert request(p, "UNLOCK", "/c/new.txt", headers={"Lock-Token": f"<{tok}>"}).status == 204
        assert put(p, "/c/new.txt").status == 204

        # A depth-0 lock on a collection protects its membership, not its members' content.
        assert request(p, "MKCOL", "/z/").status == 201
        assert put(p, "/z/in.txt").status == 201
        ztok = token_of(lock(p, "/z/", depth="0"))
        assert put(p, "/z/in.txt").status == 204
        assert_locked(put(p, "/z/more.txt"), "/z")
        assert_locked(request(p, "DELETE", "/z/in.txt"), "/z")
        assert put(p, "/z/more.txt", headers={"If": f"</z> (<{ztok}>)"}).status == 201

        # A lock on a member conflicts with a depth-infinity lock of an ancestor.
        assert request(p, "MKCOL", "/d/").status == 201
        assert put(p, "/d/f.txt").status == 201
        ftok = token_of(lock(p, "/d/f.txt"))
        r = lock(p, "/d/", depth="infinity")
        assert r.status == 423 and "/d/f.txt" in r.body.decode()
        dtok = token_of(lock(p, "/d/", depth="0"))  # depth 0 does not cover members
        # Deleting the collection needs every token below it, and takes the locks with it.
        assert_locked(request(p, "DELETE", "/d/", headers={"If": f"(<{dtok}>)"}), "/d/f.txt")
        r = request(p, "DELETE", "/d/", headers={"If": f"</d/> (<{dtok}>) </d/f.txt> (<{ftok}>)"})
        assert r.status == 204, r.body
        assert not os.path.exists(os.path.join(root.path, "d"))
        assert request(p, "MKCOL", "/d/").status == 201
        assert put(p, "/d/f.txt").status == 201  # the old locks went with the resource


PROPFIND_LOCKS = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>'
                  '<D:lockdiscovery/><D:supportedlock/></D:prop></D:propfind>')


def test_propfind_shows_the_locks():
    with TempRoot() as root, Server(root.path) as s:
        p = s.port
        assert request(p, "MKCOL", "/c/").status == 201
        assert put(p, "/c/f.txt").status == 201
        r = request(p, "PROPFIND", "/c/f.txt", body=PROPFIND_LOCKS, headers={"Depth": "0"})
        assert r.status == 207
        body = r.body.decode()
        assert "<D:lockdiscovery/>" in body
        assert body.count("<D:lockentry>") == 2 and "<D:exclusive/>" in body and "<D:shared/>" in body
        tok = token_of(lock(p, "/c/", scope="shared", depth="infinity", owner="<D:href>http://me.example/</D:href>"))
        # Depth 1 of the collection: the lock shows on it and on its member.
        r = request(p, "PROPFIND", "/c/", body=PROPFIND_LOCKS, headers={"Depth": "1"})
        body = r.body.decode()
        assert r.status == 207
        assert body.count(f"<D:href>{tok}</D:href>") == 2, body
        assert "http://me.example/" in body and "<D:depth>infinity</D:depth>" in body
        assert "<D:lockroot><D:href>/c</D:href></D:lockroot>" in body


def test_dav_writes_need_the_token():
    with TempRoot() as root, Server(root.path) as s:
        p = s.port
        assert put(p, "/src.txt", b"source").status == 201
        assert put(p, "/dst.txt", b"dest").status == 201
        tok = token_of(lock(p, "/dst.txt"))
        dest = {"Destination": f"http://127.0.0.1:{p}/dst.txt", "Overwrite": "T"}
        proppatch = ('<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x"><D:set><D:prop>'
                     '<Z:color>red</Z:color></D:prop></D:set></D:propertyupdate>')
        # COPY or MOVE onto the locked resource, MOVE of it, PROPPATCH of it: 423.
        assert_locked(request(p, "COPY", "/src.txt", headers=dest), "/dst.txt")
        assert_locked(request(p, "MOVE", "/src.txt", headers=dest), "/dst.txt")
        assert_locked(request(p, "MOVE", "/dst.txt", headers={"Destination": f"http://127.0.0.1:{p}/else.txt"}),
                      "/dst.txt")
        assert_locked(request(p, "PROPPATCH", "/dst.txt", body=proppatch), "/dst.txt")
        assert open(os.path.join(root.path, "dst.txt"), "rb").read() == b"dest"
        assert os.path.exists(os.path.join(root.path, "src.txt"))
        # With the token they go through.
        r = request(p, "PROPPATCH", "/dst.txt", body=proppatch, headers={"If": f"(<{tok}>)"})
        assert r.status == 207, r.body
        r = request(p, "COPY", "/src.txt", headers={**dest, "If": f"</dst.txt> (<{tok}>)"})
        assert r.status == 204, r.body
        assert open(os.path.join(root.path, "dst.txt"), "rb").read() == b"source"
        # MOVE of the locked resource with its token: the lock does not follow it (RFC 4918 §9.9.1).
        r = request(p, "MOVE", "/dst.txt", headers={"Destination": f"http://127.0.0.1:{p}/moved.txt",
                                                    "If": f"(<{tok}>)"})
        assert r.status == 201, r.body
        assert put(p, "/moved.txt").status == 204
        assert put(p, "/dst.txt").status == 201
        assert request(p, "UNLOCK", "/dst.txt", headers={"Lock-Token": f"<{tok}>"}).status == 409


def test_delete_takes_the_lock_along():
    with TempRoot() as root, Server(root.path) as s:
        p = s.port
        tok = token_of(lock(p, "/gone.txt"))
        assert request(p, "DELETE", "/gone.txt", headers={"If": f"(<{tok}>)"}).status == 204
        assert put(p, "/gone.txt").status == 201
        assert request(p, "UNLOCK", "/gone.txt", headers={"Lock-Token": f"<{tok}>"}).status == 409


def test_partial_delete_keeps_only_the_locks_of_what_stayed():
    with TempRoot() as root, Server(root.path) as s:
        p = s.port
        assert request(p, "MKCOL", "/p/").status == 201
        assert request(p, "MKCOL", "/p/keep/").status == 201
        assert put(p, "/p/a.txt").status == 201
        root.write("p/keep/.hidden", "stays")  # a dotfile is never deleted through DAV
        atok = token_of(lock(p, "/p/a.txt"))
        ktok = token_of(lock(p, "/p/keep/", depth="0"))
        r = request(p, "DELETE", "/p/", headers={"If": f"</p/a.txt> (<{atok}>) </p/keep/> (<{ktok}>)"})
        assert r.status == 207, r.body
        assert not os.path.exists(os.path.join(root.path, "p", "a.txt"))
        assert os.path.exists(os.path.join(root.path, "p", "keep", ".hidden"))
        assert put(p, "/p/a.txt").status == 201  # its lock went with it
        assert_locked(put(p, "/p/keep/new.txt"), "/p/keep")  # the lock of what stayed remains


def test_lock_write_policy():
    with TempRoot() as root:
        root.write("f.txt", "x")
        with Server(root.path, "--read-only") as s:
            assert lock(s.port, "/f.txt").status == 405
            assert request(s.port, "UNLOCK", "/f.txt", headers={"Lock-Token": "<urn:uuid:x>"}).status == 405
        with Server(root.path, "--write-token", "sesame") as s:
            assert lock(s.port, "/f.txt").status == 401
            assert request(s.port, "UNLOCK", "/f.txt", headers={"Lock-Token": "<urn:uuid:x>"}).status == 401
            r = lock(s.port, "/f.txt", headers={"Authorization": "Bearer sesame"})
            assert r.status == 200
            tok = token_of(r)
            r = request(s.port, "UNLOCK", "/f.txt", headers={"Lock-Token": f"<{tok}>", "Authorization": "Bearer sesame"})
            assert r.status == 204
        with Server(root.path) as s:
            assert lock(s.port, "/f.txt", headers={"Host": "evil.example"}).status == 421
            assert lock(s.port, "/f.txt", headers={"Origin": "http://evil.example"}).status == 403
            assert request(s.port, "UNLOCK", "/f.txt", headers={"Lock-Token": "<urn:uuid:x>",
                                                                  "Origin": "http://evil.example"}).status == 403
            # Dotfiles do not exist, whatever the method; the lock table is one.
            assert lock(s.port, "/.uvhttpd-davlocks").status == 404
            assert lock(s.port, "/sub/.x").status == 404
            # Beneath the root: a symlink out of it is refused, nothing is created outside.
            with TempRoot() as outside:
                os.symlink(outside.path, os.path.join(root.path, "out"))
                r = lock(s.port, "/out/escape.txt")
                assert r.status == 403, r.body
                assert os.listdir(outside.path) == []
            # The record store's file is refused through any URL (403), not only its own (405).
            os.symlink(".", os.path.join(root.path, "loop"))
            assert lock(s.port, "/database.txt").status == 405
            r = lock(s.port, "/loop/database.txt")
            assert r.status == 403, r.body
            assert not os.path.exists(os.path.join(root.path, "database.txt"))
            # A symlinked alias of a locked file's directory names the same lock.
            os.mkdir(os.path.join(root.path, "real"))
            os.symlink("real", os.path.join(root.path, "alias"))
            assert put(s.port, "/real/a.txt").status == 201
            tok = token_of(lock(s.port, "/real/a.txt"))
            assert_locked(put(s.port, "/alias/a.txt"), "/real/a.txt")
            assert put(s.port, "/alias/a.txt", headers={"If": f"(<{tok}>)"}).status == 204


def test_locks_across_workers():
    with TempRoot() as root, Server(root.path, "--workers", "3") as s:
        p = s.port
        assert put(p, "/w.txt", b"orig").status == 201
        tok = token_of(lock(p, "/w.txt"))
        statuses = [put(p, "/w.txt", b"nope").status for _ in range(30)]
        assert statuses == [423] * 30
        assert open(os.path.join(root.path, "w.txt"), "rb").read() == b"orig"
        assert all(put(p, "/w.txt", b"ok", {"If": f"(<{tok}>)"}).status == 204 for _ in range(10))

        # Concurrent LOCKs of one name through many connections: exactly one wins.
        results = []

        def grab():
            results.append(lock(p, "/race.txt", depth="0").status)
        threads = [threading.Thread(target=grab) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(results) == [201] + [423] * 11, results


def test_lock_table_full():
    with TempRoot() as root, Server(root.path) as s:
        p = s.port
        assert put(p, "/many.txt").status == 201
        for i in range(1024):
            r = lock(p, "/many.txt", scope="shared", depth="0")
            assert r.status == 200, (i, r.status, r.body)
        r = lock(p, "/many.txt", scope="shared", depth="0")
        assert r.status == 507, r.body


def test_lock_expires_by_itself():
    with TempRoot() as root, Server(root.path, "--dav-lock-timeout-max", "2") as s:
        p = s.port
        assert put(p, "/t.txt").status == 201
        r = lock(p, "/t.txt", timeout="Infinite, Second-4100000000")
        body = r.body.decode()
        m = re.search(r"Second-(\d+)", body)
        assert m and int(m.group(1)) <= 2, body
        assert put(p, "/t.txt").status == 423
        wait_until(lambda: put(p, "/t.txt").status == 204, 15, "the lock to expire", interval=0.2)
        # An expired lock's slot is free again for a new lock.
        assert lock(p, "/t.txt").status == 200


def test_lock_survives_kill9_until_it_expires():
    with TempRoot() as root:
        first = Server(root.path, "--dav-lock-timeout-max", "4", expect_exit=None)
        assert put(first.port, "/k.txt").status == 201
        tok = token_of(lock(first.port, "/k.txt"))
        first.stop(signal.SIGKILL)
        with Server(root.path, "--dav-lock-timeout-max", "4") as second:
            assert put(second.port, "/k.txt").status == 423
            assert put(second.port, "/k.txt", headers={"If": f"(<{tok}>)"}).status == 204
            wait_until(lambda: put(second.port, "/k.txt").status == 204, 20, "the lock to expire", interval=0.2)


def test_no_write_lands_after_a_lock_is_granted():
    """Writers through many connections and --workers 3 while a LOCK is
    granted: once the LOCK has answered, the file no longer changes (a PUT
    that checked before the lock existed must have committed before it was
    granted: the check and the commit hold the table lock shared)."""
    with TempRoot() as root, Server(root.path, "--workers", "3") as s:
        p = s.port
        assert put(p, "/hot.txt", b"start").status == 201
        stop = threading.Event()
        counts = {"ok": 0, "locked": 0, "other": []}

        def writer(n):
            i = 0
            while not stop.is_set() and i < 400:
                st = put(p, "/hot.txt", f"writer {n} put {i}".encode()).status
                if st == 204:
                    counts["ok"] += 1
                elif st == 423:
                    counts["locked"] += 1
                else:
                    counts["other"].append(st)
                i += 1
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        wait_until(lambda: counts["ok"] >= 20, 30, "writers to get going", interval=0.01)
        r = lock(p, "/hot.txt")
        assert r.status == 200
        after_lock = open(os.path.join(root.path, "hot.txt"), "rb").read()
        wait_until(lambda: counts["locked"] >= 20, 30, "writers to meet the lock", interval=0.01)
        stop.set()
        for t in threads:
            t.join(60)
        assert counts["other"] == []
        assert open(os.path.join(root.path, "hot.txt"), "rb").read() == after_lock


def test_two_servers_on_one_root_share_locks():
    with TempRoot() as root, Server(root.path) as a, Server(root.path) as b:
        assert put(a.port, "/both.txt").status == 201
        tok = token_of(lock(a.port, "/both.txt"))
        assert put(b.port, "/both.txt").status == 423
        assert lock(b.port, "/both.txt").status == 423
        r = request(b.port, "UNLOCK", "/both.txt", headers={"Lock-Token": f"<{tok}>"})
        assert r.status == 204
        assert put(a.port, "/both.txt").status == 204
