"""Resumable uploads (handlers/uploads/): tus 1.0.0 and the IETF draft
(interop versions 5, 6 and 8), with real clients.

- tus-js-client 4.3.1 in Node (test/e2e/uploads/upload.mjs, `npm ci` in
  test/e2e/uploads; make test does it) speaking each of its protocols
  (tus-v1; ietf-draft-03, which sends Upload-Draft-Interop-Version 5;
  ietf-draft-05, which sends 6) through HAProxy configured to refuse bodies
  over 8 MiB, with 4 MiB chunks: aborted half-way, resumed with the same
  upload URL (the server's byte counter shows only the rest was sent),
  across a restart and after kill -9 mid-PATCH; the file arrives
  byte-identical at its path.
- curl for the raw IETF flow (104 in `curl -v`) and for tus; every status
  the upload code sends; --read-only, --write-token, the Host guard, the
  dotfile and beneath-the-root rules; two writers on one upload; two
  uploads to one path; --workers 3; expiry; a full disk (507).
- Raw sockets for the IETF flow across --workers 3 (which worker holds a
  connection is read from /proc), progress 104s during a long append, and
  what an iOS 17 (interop 3) client sends.

UVH_FULL=1 runs the tus-js-client cases with 256 MiB instead of 64 MiB."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import socket
import tempfile
import threading
import time

import pytest

import uvhlib
from uvhlib import Haproxy, RawConn, Server, TempRoot, curl, free_port, request, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_DIR = os.path.join(HERE, "uploads")
SCRIPT = os.path.join(CLIENT_DIR, "upload.mjs")
MIB = 1 << 20
SIZE = (256 if os.environ.get("UVH_FULL") == "1" else 64) * MIB
CHUNK = 4 * MIB
CAP = 8 * MIB
PREFIX = "/.uvhttpd-uploads/"


# ---------------------------------------------------------------- helpers

def require_client():
    missing = []
    if not shutil.which("node"):
        missing.append("node (Debian's nodejs)")
    if not shutil.which("haproxy"):
        missing.append("haproxy")
    if not os.path.isfile(os.path.join(CLIENT_DIR, "node_modules", "tus-js-client", "package.json")):
        missing.append("test/e2e/uploads/node_modules (npm ci in test/e2e/uploads)")
    if missing:
        raise AssertionError("the tus-js-client tests cannot run: missing " + ", ".join(missing)
                             + ". Run `make test`, which installs them.")


def random_file(path, size):
    # Incompressible, and different in every 4 MiB chunk.
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, MIB)
            f.write(os.urandom(n))
            left -= n
    return sha256_of(path)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            h.update(block)
    return h.hexdigest()


def metrics(port):
    r = request(port, "GET", "/metrics")
    assert r.status == 200
    out = {}
    for line in r.body.decode().splitlines():
        m = re.match(r"^(uvhttpd_resumable_\w+) (\d+)$", line)
        if m:
            out[m.group(1)[len("uvhttpd_resumable_"):]] = int(m.group(2))
    return out


def capped_proxy(backend_port):
    """HAProxy in front of one backend port, refusing request bodies over
    8 MiB the way a capped proxy does."""
    return Haproxy(lambda port: f"""
global
    maxconn 256
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:{port}
    http-request deny deny_status 413 if {{ req.hdr_val(content-length) gt {CAP} }}
    default_backend be
backend be
    server s 127.0.0.1:{backend_port}
""")


def tus_js(endpoint, path, protocol, stop_after=None, upload_url=None, expect_ok=True):
    cmd = ["node", SCRIPT, "--endpoint", endpoint, "--file", path, "--protocol", protocol, "--chunk", str(CHUNK)]
    if stop_after is not None:
        cmd += ["--stop-after", str(stop_after)]
    if upload_url:
        cmd += ["--upload-url", upload_url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=CLIENT_DIR)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no result from upload.mjs (exit {r.returncode}): {r.stdout} {r.stderr}"
    out = json.loads(lines[-1])
    if expect_ok:
        assert r.returncode == 0, f"upload.mjs failed: {out} {r.stderr}"
    return out


def uploads_on_disk(root):
    d = os.path.join(root, ".uvhttpd-uploads")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def ietf(version="6", **extra):
    h = {"Upload-Draft-Interop-Version": version}
    h.update(extra)
    return h


TUS = {"Tus-Resumable": "1.0.0"}


def create_tus(port, path, length, headers=None):
    h = dict(TUS)
    h["Upload-Length"] = str(length)
    h.update(headers or {})
    r = request(port, "POST", path, headers=h)
    assert r.status == 201, (r.status, r.body)
    loc = r.get("location")
    assert loc.startswith(PREFIX)
    return loc


def patch_tus(port, loc, offset, body, headers=None):
    h = dict(TUS)
    h.update({"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
    h.update(headers or {})
    return request(port, "PATCH", loc, body=body, headers=h)


def patch_while_reading(port, loc, offset, body):
    """A tus PATCH whose body is sent from a thread while the answer is read:
    the server may answer (507, 413) before the body is all sent, then
    close. Returns the final response."""
    with RawConn(port, timeout=20) as c:
        c.send(f"PATCH {loc} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\n"
               f"Content-Type: application/offset+octet-stream\r\nContent-Length: {len(body)}\r\n\r\n")

        def sender():
            try:
                c.sock.sendall(body)
            except OSError:
                pass  # the server answered and closed: expected

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        r = c.read_final("PATCH")
        try:
            c.sock.shutdown(socket.SHUT_RDWR)  # ends the sender if it still sends
        except OSError:
            pass  # already reset by the server's close
        t.join(20)
        assert not t.is_alive(), "the sender thread did not finish"
        return r


# ------------------------------------------------- tus-js-client via HAProxy

@pytest.mark.parametrize("protocol", ["tus-v1", "ietf-draft-03", "ietf-draft-05"])
def test_tus_js_client_through_capped_proxy_abort_and_resume(protocol):
    """The whole file in 4 MiB PATCHes through a proxy that refuses 8 MiB
    bodies (a plain PUT of it gets the proxy's 413); the client aborts once
    half is acknowledged and resumes with the same URL: the server counts
    exactly the file's size of appended bytes, so the resumed run sent only
    the rest. GET shows 404 until the last byte, then the identical file."""
    require_client()
    with TempRoot() as root, TempRoot() as work:
        os.mkdir(os.path.join(root.path, "up"))
        src = os.path.join(work.path, "video.bin")
        digest = random_file(src, SIZE)
        with Server(root.path) as s:
            ha = capped_proxy(s.port)
            try:
                endpoint = f"http://127.0.0.1:{ha.port}/up/video.bin"
                with RawConn(ha.port) as c:  # the cap holds: a plain PUT of the file is refused
                    c.send(f"PUT /up/whole.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {SIZE}\r\n\r\n")
                    assert c.read_final("PUT").status == 413
                half = tus_js(endpoint, src, protocol, stop_after=SIZE // 2)
                assert half["done"] is False and half["url"]
                assert half["url"].split(str(ha.port), 1)[1].startswith(PREFIX)
                assert request(s.port, "GET", "/up/video.bin").status == 404  # nothing partial is visible
                m = metrics(s.port)
                assert m["uploads_started_total"] == 1
                sent_first = m["upload_bytes_total"]
                assert SIZE // 2 <= sent_first < SIZE
                done = tus_js(endpoint, src, protocol, upload_url=half["url"])
                assert done["done"] is True
                m = metrics(s.port)
                assert m["upload_bytes_total"] == SIZE, m  # the rest only, nothing twice
                assert m["uploads_completed_total"] == 1
                assert sha256_of(os.path.join(root.path, "up", "video.bin")) == digest
                assert [n for n in uploads_on_disk(root.path) if n.endswith(".part")] == []
            finally:
                ha.close()


def test_tus_js_client_resumes_across_a_restart():
    """Aborted half-way, the server restarted (SIGTERM, a new process on the
    same port behind the same proxy): the new process reports the offset
    the old one acknowledged and receives only the rest."""
    require_client()
    with TempRoot() as root, TempRoot() as work:
        src = os.path.join(work.path, "v.bin")
        size = SIZE // 2
        digest = random_file(src, size)
        port = free_port()
        s = Server(root.path, port=port)
        ha = capped_proxy(port)
        try:
            endpoint = f"http://127.0.0.1:{ha.port}/v.bin"
            half = tus_js(endpoint, src, "ietf-draft-05", stop_after=size // 2)
            sent_first = metrics(port)["upload_bytes_total"]
            s.finish()
            s = Server(root.path, port=port)
            done = tus_js(endpoint, src, "ietf-draft-05", upload_url=half["url"])
            assert done["done"] is True
            m = metrics(port)
            assert m["upload_bytes_total"] == size - sent_first, m
            assert m["uploads_completed_total"] == 1
            assert sha256_of(os.path.join(root.path, "v.bin")) == digest
            s.finish()
        finally:
            ha.close()


def test_resume_after_kill_9_mid_patch():
    """A PATCH is half-way through its body when the server is killed with
    SIGKILL. A new server reports an offset it had synced (a multiple of
    at least the second 8 MiB checkpoint, never more than arrived), and tus-js-client
    resumes from it through the proxy: the file is byte-identical."""
    require_client()
    with TempRoot() as root, TempRoot() as work:
        src = os.path.join(work.path, "k.bin")
        size = 32 * MIB
        digest = random_file(src, size)
        port = free_port()
        s = Server(root.path, port=port, expect_exit=None)
        loc = create_tus(port, "/k.bin", size)
        with open(src, "rb") as f:
            data = f.read()
        sent = 20 * MIB
        part = os.path.join(root.path, ".uvhttpd-uploads", loc[len(PREFIX):] + ".part")
        c = RawConn(port)
        c.send((f"PATCH {loc} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTus-Resumable: 1.0.0\r\n"
                f"Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
                f"Content-Length: {size}\r\n\r\n").encode() + data[:sent])
        wait_until(lambda: os.path.getsize(part) >= sent - 256 * 1024, 30, "the server to write 20 MiB")
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait(timeout=10)
        s.checked = True
        c.close()
        s = Server(root.path, port=port)
        r = request(port, "HEAD", loc, headers=TUS)
        offset = int(r.get("upload-offset"))
        # The last checkpoint before the kill: one every 8 MiB received.
        assert 16 * MIB <= offset <= sent, offset
        ha = capped_proxy(port)
        try:
            done = tus_js(f"http://127.0.0.1:{ha.port}/k.bin", src, "tus-v1", upload_url=f"http://127.0.0.1:{ha.port}{loc}")
            assert done["done"] is True
            assert metrics(port)["upload_bytes_total"] == size - offset
            assert sha256_of(os.path.join(root.path, "k.bin")) == digest
        finally:
            ha.close()
        s.finish()


# ------------------------------------------------------------ raw IETF flow

def test_ietf_flow_with_curl():
    """Creation with Upload-Complete: ?0 shows the 104 in curl -v, HEAD
    reports the offset, a wrong offset is a 409 problem with the current
    offset, the completing PATCH answers like the PUT would (201), a PATCH
    after that is 400 completed-upload, DELETE cancels another upload."""
    with TempRoot() as root, Server(root.path) as s:
        base = f"http://127.0.0.1:{s.port}"
        r = curl("-v", "-X", "POST", "-H", "Upload-Draft-Interop-Version: 6", "-H", "Upload-Complete: ?0",
                 "-H", "Upload-Length: 10", "--data-binary", "hello", f"{base}/doc.txt")
        assert "< HTTP/1.1 104 Upload Resumption Supported" in r.stderr, r.stderr
        assert "< Upload-Draft-Interop-Version: 6" in r.stderr
        loc = re.search(r"< Location: (\S+)", r.stderr).group(1)
        assert loc.startswith(PREFIX)
        assert "< HTTP/1.1 201 Created" in r.stderr
        assert request(s.port, "GET", "/doc.txt").status == 404
        head = request(s.port, "HEAD", loc, headers=ietf())
        assert head.status == 204
        assert head.get("upload-offset") == "5" and head.get("upload-complete") == "?0"
        assert head.get("upload-length") == "10" and head.get("cache-control") == "no-store"
        assert "max-age=" in head.get("upload-limit")
        bad = request(s.port, "PATCH", loc, body=b"xx", headers=ietf(**{
            "Upload-Offset": "3", "Upload-Complete": "?0", "Content-Type": "application/partial-upload"}))
        assert bad.status == 409 and bad.get("content-type") == "application/problem+json"
        problem = json.loads(bad.body)
        assert problem["type"].endswith("#mismatching-upload-offset")
        assert problem["expected-offset"] == 5 and problem["provided-offset"] == 3
        assert bad.get("upload-offset") == "5"
        r = curl("-i", "-X", "PATCH", "-H", "Upload-Draft-Interop-Version: 6", "-H", "Upload-Offset: 5",
                 "-H", "Upload-Complete: ?1", "-H", "Content-Type: application/partial-upload",
                 "--data-binary", "world", base + loc)
        status, h = uvhlib.parse_head(r.stdout)
        assert status == 201 and h["location"] == "/doc.txt" and h["upload-complete"] == "?1", r.stdout
        assert request(s.port, "GET", "/doc.txt").body == b"helloworld"
        again = request(s.port, "PATCH", loc, body=b"!", headers=ietf(**{
            "Upload-Offset": "10", "Upload-Complete": "?1", "Content-Type": "application/partial-upload"}))
        assert again.status == 400 and json.loads(again.body)["type"].endswith("#completed-upload")
        done = request(s.port, "HEAD", loc, headers=ietf())
        assert done.get("upload-complete") == "?1" and done.get("upload-offset") == "10"
        # Interop 8 (the current draft), a PUT creation, then cancelled.
        r = request(s.port, "PUT", "/c.txt", body=b"abc", headers=ietf("8", **{"Upload-Complete": "?0"}))
        assert r.status == 201 and r.interim and r.interim[0].status == 104
        loc2 = r.get("location")
        assert request(s.port, "DELETE", loc2, headers=ietf("8")).status == 204
        assert request(s.port, "HEAD", loc2, headers=ietf("8")).status == 404
        assert not os.path.exists(os.path.join(root.path, "c.txt"))
        # One request with the whole file: 104, then PUT's own answer.
        r = request(s.port, "POST", "/one.txt", body=b"whole", headers=ietf("5", **{"Upload-Complete": "?1"}))
        assert r.status == 201 and r.interim[0].status == 104
        assert request(s.port, "GET", "/one.txt").body == b"whole"


def test_ietf_errors_and_versions():
    with TempRoot() as root, Server(root.path) as s:
        # Inconsistent lengths: Upload-Length against Content-Length + ?1.
        r = request(s.port, "POST", "/x", body=b"abc", headers=ietf(**{"Upload-Complete": "?1", "Upload-Length": "9"}))
        assert r.status == 400 and json.loads(r.body)["type"].endswith("#inconsistent-upload-length")
        r = request(s.port, "POST", "/x", body=b"abc", headers=ietf(**{"Upload-Complete": "?0", "Upload-Length": "4"}))
        loc = r.get("location")
        r = request(s.port, "PATCH", loc, body=b"de", headers=ietf(**{
            "Upload-Offset": "3", "Upload-Complete": "?1", "Content-Type": "application/partial-upload"}))
        assert r.status == 400 and json.loads(r.body)["type"].endswith("#inconsistent-upload-length")
        # Interop 6 needs application/partial-upload; 5 sends none.
        r = request(s.port, "PATCH", loc, body=b"d", headers=ietf(**{"Upload-Offset": "3", "Upload-Complete": "?1"}))
        assert r.status == 415
        r = request(s.port, "PATCH", loc, body=b"d", headers=ietf("5", **{"Upload-Offset": "3", "Upload-Complete": "?1"}))
        assert r.status == 201 and request(s.port, "GET", "/x").body == b"abcd"
        # Missing fields.
        r = request(s.port, "POST", "/y", headers=ietf(**{"Upload-Complete": "?0"}))
        loc = r.get("location")
        assert request(s.port, "PATCH", loc, body=b"a", headers=ietf(**{
            "Upload-Complete": "?0", "Content-Type": "application/partial-upload"})).status == 400
        assert request(s.port, "PATCH", loc, body=b"a", headers=ietf(**{
            "Upload-Offset": "0", "Content-Type": "application/partial-upload"})).status == 400
        assert request(s.port, "PATCH", loc, body=b"a", headers=ietf(**{
            "Upload-Offset": "x", "Upload-Complete": "?0", "Content-Type": "application/partial-upload"})).status == 400
        # An unknown id, a malformed one, GET of an upload.
        assert request(s.port, "HEAD", PREFIX + "0" * 32, headers=ietf()).status == 404
        assert request(s.port, "PATCH", PREFIX + "0" * 32, body=b"a", headers=ietf(**{
            "Upload-Offset": "0", "Upload-Complete": "?0", "Content-Type": "application/partial-upload"})).status == 404
        assert request(s.port, "HEAD", PREFIX + "nothex").status == 404
        assert request(s.port, "GET", loc).status == 405
        # iOS 17 (draft 01, interop 3): no 104; Upload-Incomplete: ?1 is not a whole file.
        r = request(s.port, "PUT", "/ios.txt", body=b"part", headers={
            "Upload-Draft-Interop-Version": "3", "Upload-Incomplete": "?1"})
        assert r.status == 400 and not r.interim
        r = request(s.port, "PUT", "/ios.txt", body=b"whole", headers={
            "Upload-Draft-Interop-Version": "3", "Upload-Incomplete": "?0"})
        assert r.status == 201 and not r.interim
        r = request(s.port, "POST", "/ios2.txt", body=b"whole", headers={
            "Upload-Draft-Interop-Version": "3", "Upload-Incomplete": "?0"})
        assert r.status == 405  # a plain POST to a file
        # OPTIONS announces the limits.
        r = request(s.port, "OPTIONS", "/any.bin")
        assert r.status == 204 and "max-size=1073741824" in r.get("upload-limit")
        # A plain POST keeps its meaning.
        assert request(s.port, "POST", "/f.txt", body=b"a=1").status == 405


# --------------------------------------------------------------------- tus

def test_tus_flow_with_curl():
    with TempRoot() as root, Server(root.path) as s:
        base = f"http://127.0.0.1:{s.port}"
        r = curl("-i", "-X", "OPTIONS", "-H", "Tus-Resumable: 1.0.0", base + "/")
        status, h = uvhlib.parse_head(r.stdout)
        assert status == 204 and h["tus-version"] == "1.0.0" and "checksum" in h["tus-extension"]
        assert h["tus-max-size"] == str(1 << 30) and "sha1" in h["tus-checksum-algorithm"]
        r = curl("-i", "-X", "POST", "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Length: 11",
                 "-H", "Upload-Metadata: filename aGVsbG8=", base + "/t.txt")
        status, h = uvhlib.parse_head(r.stdout)
        assert status == 201 and h["tus-resumable"] == "1.0.0" and "upload-expires" in h
        loc = h["location"]
        head = request(s.port, "HEAD", loc, headers=TUS)
        assert head.status == 200 and head.get("upload-offset") == "0" and head.get("upload-length") == "11"
        assert head.get("upload-metadata") == "filename aGVsbG8=" and head.get("cache-control") == "no-store"
        import base64
        good = base64.b64encode(hashlib.sha1(b"hello ").digest()).decode()
        bad = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
        assert patch_tus(s.port, loc, 0, b"hello ", {"Upload-Checksum": f"sha1 {bad}"}).status == 460
        assert request(s.port, "HEAD", loc, headers=TUS).get("upload-offset") == "0"
        assert patch_tus(s.port, loc, 0, b"hello ", {"Upload-Checksum": "crc32 AAAA"}).status == 400
        r = patch_tus(s.port, loc, 0, b"hello ", {"Upload-Checksum": f"sha1 {good}"})
        assert r.status == 204 and r.get("upload-offset") == "6"
        assert patch_tus(s.port, loc, 2, b"world").status == 409
        assert patch_tus(s.port, loc, 6, b"world", {"Content-Type": "text/plain"}).status == 415
        assert patch_tus(s.port, loc, 6, b"world", {"Tus-Resumable": "0.2.2"}).status == 412
        assert patch_tus(s.port, loc, 6, b"world and more").status == 413  # past Upload-Length
        r = patch_tus(s.port, loc, 6, b"world")
        assert r.status == 204 and r.get("upload-offset") == "11"
        assert request(s.port, "GET", "/t.txt").body == b"hello world"
        assert patch_tus(s.port, loc, 11, b"x").status == 409  # complete
        # creation-with-upload and creation-defer-length.
        r = request(s.port, "POST", "/w.txt", body=b"abc", headers={
            **TUS, "Upload-Length": "3", "Content-Type": "application/offset+octet-stream"})
        assert r.status == 201 and r.get("upload-offset") == "3"
        assert request(s.port, "GET", "/w.txt").body == b"abc"
        r = request(s.port, "POST", "/d.txt", headers={**TUS, "Upload-Defer-Length": "1"})
        loc = r.get("location")
        assert request(s.port, "HEAD", loc, headers=TUS).get("upload-defer-length") == "1"
        assert patch_tus(s.port, loc, 0, b"ab").status == 204
        assert patch_tus(s.port, loc, 2, b"c", {"Upload-Length": "3"}).status == 204
        assert request(s.port, "GET", "/d.txt").body == b"abc"
        # termination
        loc = create_tus(s.port, "/gone.txt", 5)
        r = request(s.port, "DELETE", loc, headers=TUS)
        assert r.status == 204 and r.get("tus-resumable") == "1.0.0"
        assert request(s.port, "HEAD", loc, headers=TUS).status == 404
        # bad creation requests
        assert request(s.port, "POST", "/e", headers={**TUS, "Upload-Length": "-1"}).status == 400
        assert request(s.port, "POST", "/e", headers={**TUS, "Upload-Defer-Length": "2"}).status == 400
        assert request(s.port, "POST", "/e", headers={**TUS, "Upload-Length": str(2 << 30)}).status == 413
        assert request(s.port, "POST", "/dir/", headers={**TUS, "Upload-Length": "1"}).status == 405
        assert request(s.port, "POST", "/nodir/e", headers={**TUS, "Upload-Length": "1"}).status == 409
        assert request(s.port, "POST", "/e", headers={"Tus-Resumable": "0.2", "Upload-Length": "1"}).status == 412
        assert request(s.port, "PATCH", "/t.txt", body=b"x", headers=TUS).status == 405


# ------------------------------------------------------------------ policy

def test_write_policy_covers_uploads():
    with TempRoot() as root:
        with Server(root.path, "--read-only") as s:
            assert request(s.port, "POST", "/a", headers={**TUS, "Upload-Length": "1"}).status == 405
            assert patch_tus(s.port, PREFIX + "0" * 32, 0, b"x").status == 405
            assert request(s.port, "DELETE", PREFIX + "0" * 32).status == 405
        with Server(root.path, "--write-token", "s3cret") as s:
            assert request(s.port, "POST", "/a", headers={**TUS, "Upload-Length": "2"}).status == 401
            auth = {"Authorization": "Bearer s3cret"}
            loc = create_tus(s.port, "/a", 2, auth)
            assert patch_tus(s.port, loc, 0, b"xy").status == 401
            assert request(s.port, "DELETE", loc, headers=TUS).status == 401
            assert patch_tus(s.port, loc, 0, b"xy", auth).status == 204
        with Server(root.path) as s:
            loc = create_tus(s.port, "/b", 2)
            assert patch_tus(s.port, loc, 0, b"xy", {"Host": "evil.example"}).status == 421
            assert patch_tus(s.port, loc, 0, b"xy", {"Origin": "https://evil.example"}).status == 403
            assert request(s.port, "POST", "/.hidden/x", headers={**TUS, "Upload-Length": "1"}).status == 404
            assert request(s.port, "POST", "/.uvhttpd-uploads/x", headers={**TUS, "Upload-Length": "1"}).status == 404
            outside = tempfile.mkdtemp(prefix="uvh-outside-")
            try:
                os.symlink(outside, os.path.join(root.path, "out"))
                r = request(s.port, "POST", "/out/x", headers={**TUS, "Upload-Length": "1"})
                assert r.status in (403, 404, 409), r.status
                assert os.listdir(outside) == []
            finally:
                shutil.rmtree(outside)


def test_preconditions_at_creation_and_completion():
    """If-None-Match: * is checked when the upload is created and again
    when its last byte arrives: a file created meanwhile wins (412) and is
    left as it is. GET shows the old version until completion."""
    with TempRoot() as root, Server(root.path) as s:
        root.write("old.txt", "old")
        assert request(s.port, "POST", "/old.txt", headers={
            **TUS, "Upload-Length": "1", "If-None-Match": "*"}).status == 412
        loc = create_tus(s.port, "/new.txt", 4, {"If-None-Match": "*"})
        assert patch_tus(s.port, loc, 0, b"ab").status == 204
        assert request(s.port, "PUT", "/new.txt", body=b"theirs").status == 201
        assert patch_tus(s.port, loc, 2, b"cd").status == 412
        assert request(s.port, "GET", "/new.txt").body == b"theirs"
        # If-Match: replaced only if still that version; old version visible until then.
        etag = request(s.port, "HEAD", "/old.txt").get("etag")
        loc = create_tus(s.port, "/old.txt", 3, {"If-Match": etag})
        assert patch_tus(s.port, loc, 0, b"ne").status == 204
        assert request(s.port, "GET", "/old.txt").body == b"old"
        assert patch_tus(s.port, loc, 2, b"w").status == 204
        assert request(s.port, "GET", "/old.txt").body == b"new"


@pytest.mark.parametrize("workers", [1, 3])
def test_a_new_request_takes_over_an_open_one(workers):
    """Two writers on one upload: a PATCH is open with part of its body;
    a HEAD from the resuming client answers at once with the acknowledged
    offset, and a PATCH from that offset wins; the old request is told
    409 when it sends more. Also across --workers 3."""
    with TempRoot() as root, Server(root.path, "--workers", str(workers)) as s:
        size = 2 * MIB
        loc = create_tus(s.port, "/two.bin", size)
        first = RawConn(s.port)
        first.send((f"PATCH {loc} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
                    f"Content-Type: application/offset+octet-stream\r\nContent-Length: {size}\r\n\r\n").encode()
                   + b"A" * MIB)
        part = os.path.join(root.path, ".uvhttpd-uploads", loc[len(PREFIX):] + ".part")
        wait_until(lambda: os.path.getsize(part) >= MIB - 256 * 1024, 10, "the first writer to write")
        t0 = time.monotonic()
        head = request(s.port, "HEAD", loc, headers=TUS)
        assert head.status == 200 and head.get("upload-offset") == "0"
        assert time.monotonic() - t0 < 5
        assert os.path.getsize(part) == 0  # the unacknowledged tail is gone
        r = patch_tus(s.port, loc, 0, b"B" * size)
        assert r.status == 204
        try:
            first.send(b"A" * (size - MIB))
            late = first.read_final("PATCH")
            assert late.status == 409
        except (uvhlib.PeerClosed, OSError):
            pass  # the server may close before the rest is read
        first.close()
        with open(os.path.join(root.path, "two.bin"), "rb") as f:
            assert f.read() == b"B" * size


def test_two_uploads_to_one_path():
    with TempRoot() as root, Server(root.path, "--workers", "3") as s:
        a = create_tus(s.port, "/same.bin", 3)
        b = create_tus(s.port, "/same.bin", 3)
        assert a != b
        assert patch_tus(s.port, a, 0, b"aa").status == 204
        assert patch_tus(s.port, b, 0, b"bbb").status == 204
        assert request(s.port, "GET", "/same.bin").body == b"bbb"
        assert patch_tus(s.port, a, 2, b"a").status == 204
        assert request(s.port, "GET", "/same.bin").body == b"aaa"
        # the other upload's URL never writes elsewhere
        assert patch_tus(s.port, b, 3, b"x").status == 409


# ------------------------------------------------------------------ limits

def test_limits_cap_expiry_and_body_size():
    with TempRoot() as root, Server(root.path, "--max-uploads", "2", "--max-body-size", "1K",
                                    "--upload-expiry", "2") as s:
        a = create_tus(s.port, "/a", 10)
        create_tus(s.port, "/b", 10)
        assert request(s.port, "POST", "/c", headers={**TUS, "Upload-Length": "10"}).status == 503
        assert request(s.port, "POST", "/c", headers={**TUS, "Upload-Length": "2000"}).status == 413
        # Abandoned uploads go within the expiry plus the sweep period.
        wait_until(lambda: not [n for n in uploads_on_disk(root.path) if n.endswith(".part")], 15,
                   "the sweep to remove expired uploads")
        assert request(s.port, "HEAD", a, headers=TUS).status == 404
        # The count is added on the loop once the sweep's job is back.
        wait_until(lambda: metrics(s.port)["uploads_expired_total"] == 2, 10, "the sweep to be counted")
        # --max-body-size covers the whole upload, appended in pieces.
        d = create_tus(s.port, "/d", 1024)
        assert patch_tus(s.port, d, 0, b"x" * 600).status == 204
        e = request(s.port, "POST", "/e", headers={**TUS, "Upload-Defer-Length": "1"}).get("location")
        assert patch_tus(s.port, e, 0, b"x" * 600).status == 204
        assert patch_tus(s.port, e, 600, b"x" * 600).status == 413


def test_disk_full_is_507_and_keeps_what_was_acknowledged():
    with uvhlib.small_tmpfs("2m") as mnt:
        with Server(mnt) as s:
            loc = create_tus(s.port, "/big.bin", 8 * MIB)
            assert patch_tus(s.port, loc, 0, b"a" * (512 * 1024)).status == 204
            r = patch_while_reading(s.port, loc, 512 * 1024, b"b" * (4 * MIB))
            assert r.status == 507, r.status
            off = int(request(s.port, "HEAD", loc, headers=TUS).get("upload-offset"))
            assert 512 * 1024 <= off < 8 * MIB
            assert request(s.port, "DELETE", loc, headers=TUS).status == 204


LOCKINFO = ('<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
            '</D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>')


def test_webdav_locks_cover_uploads():
    """A WebDAV lock on the target refuses the upload's creation (423), and
    a lock taken while an upload runs refuses its completion unless the
    completing request submits the token (a tagged If list naming the
    target); the upload stays
    resumable meanwhile."""
    with TempRoot() as root, Server(root.path) as s:
        r = request(s.port, "LOCK", "/locked.txt", body=LOCKINFO, headers={"Content-Type": "application/xml"})
        assert r.status in (200, 201), (r.status, r.body)
        assert request(s.port, "POST", "/locked.txt", headers={**TUS, "Upload-Length": "1"}).status == 423
        loc = create_tus(s.port, "/later.txt", 4)
        assert patch_tus(s.port, loc, 0, b"ab").status == 204
        r = request(s.port, "LOCK", "/later.txt", body=LOCKINFO, headers={"Content-Type": "application/xml"})
        token = r.get("lock-token")
        assert token, r.header_dict()
        assert patch_tus(s.port, loc, 2, b"cd").status == 423
        assert not os.path.exists(os.path.join(root.path, "later.txt")) or \
            open(os.path.join(root.path, "later.txt"), "rb").read() != b"abcd"
        assert request(s.port, "HEAD", loc, headers=TUS).get("upload-offset") == "4"
        # The token goes in a tagged list naming the target: an untagged one
        # would apply to the upload's own URL (RFC 4918 §10.4.2).
        r = patch_tus(s.port, loc, 4, b"", {"If": f"<http://127.0.0.1:{s.port}/later.txt> ({token})"})
        assert r.status == 204, (r.status, r.body)
        assert request(s.port, "GET", "/later.txt").body == b"abcd"


# ------------------------------------------------------- hand-edited state

def state_path(root, loc):
    return os.path.join(root, ".uvhttpd-uploads", loc[len(PREFIX):] + ".state")


def set_state_field(path, key, value):
    with open(path) as f:
        lines = f.read().splitlines()
    lines = [f"{key}={value}" if ln.startswith(key + "=") else ln for ln in lines]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def test_expired_before_the_sweep_is_410_and_a_damaged_state_is_404():
    """tus: an upload past its expiry that the sweep has not removed yet is
    410 Gone (the IETF flow says 404). The expiry is set in the past by
    editing the state file, right after the first sweep ran (seen in the
    expired count), so the next sweep (a minute later at the default 24 h
    expiry) cannot get there first. A state file edited into garbage is
    404, and the sweep removes it; other uploads are untouched."""
    with TempRoot() as root, Server(root.path) as s:
        first = create_tus(s.port, "/first", 10)
        set_state_field(state_path(root.path, first), "expires", 1)
        wait_until(lambda: metrics(s.port)["uploads_expired_total"] == 1, 15, "the first sweep")

        gone = create_tus(s.port, "/gone", 10)
        set_state_field(state_path(root.path, gone), "expires", 1)
        r = request(s.port, "HEAD", gone, headers=TUS)
        assert r.status == 410, r.status
        r = patch_tus(s.port, gone, 0, b"0123456789")
        assert r.status == 410 and b"expired" in r.body, (r.status, r.body)
        ietf_loc = request(s.port, "POST", "/ietf-gone", body=b"ab",
                           headers=ietf("6", **{"Upload-Complete": "?0"})).get("location")
        set_state_field(state_path(root.path, ietf_loc), "expires", 1)
        assert request(s.port, "HEAD", ietf_loc, headers=ietf("6")).status == 404

        damaged = create_tus(s.port, "/damaged", 10)
        with open(state_path(root.path, damaged), "w") as f:
            f.write("offset=banana\n\x00\x01not a state file\n")
        assert request(s.port, "HEAD", damaged, headers=TUS).status == 404
        assert patch_tus(s.port, damaged, 0, b"0123456789").status == 404

        ok = create_tus(s.port, "/ok", 3)
        assert patch_tus(s.port, ok, 0, b"abc").status == 204
        with open(os.path.join(root.path, "ok"), "rb") as f:
            assert f.read() == b"abc"
        for name in ("gone", "damaged", "ietf-gone"):
            assert not os.path.exists(os.path.join(root.path, name)), name


# ------------------------------------------------ iOS 17 (interop version 3)

def test_ios17_interop_3_client():
    """What iOS 17's URLSession sends (draft 01, interop version 3:
    Upload-Draft-Interop-Version: 3 with Upload-Incomplete) is not a
    dialect this server speaks (README): no 104 is ever sent to it; its
    whole-file request (Upload-Incomplete: ?0) is an ordinary PUT (201,
    then 204 over the file, the bytes exactly); a partial body
    (Upload-Incomplete: ?1, or Upload-Complete: ?0 at interop 3) is 400 and
    stores nothing, neither at the target nor as an upload."""
    ios = {"Upload-Draft-Interop-Version": "3"}
    with TempRoot() as root, Server(root.path) as s:
        base = f"http://127.0.0.1:{s.port}"
        r = curl("-v", "-X", "PUT", "-H", "Upload-Draft-Interop-Version: 3", "-H", "Upload-Incomplete: ?0",
                 "--data-binary", "whole file", f"{base}/photo.heic")
        assert " 104 " not in r.stderr and "Upload Resumption" not in r.stderr, r.stderr
        assert "< HTTP/1.1 201 Created" in r.stderr, r.stderr
        assert request(s.port, "GET", "/photo.heic").body == b"whole file"
        # The same again over the file: PUT's 204, never a 104.
        r = request(s.port, "PUT", "/photo.heic", body=b"second", headers=dict(ios, **{"Upload-Incomplete": "?0"}))
        assert r.status == 204 and not r.interim and r.get("location") is None
        assert request(s.port, "GET", "/photo.heic").body == b"second"
        # Partial bodies: 400, one readable line, nothing kept.
        for extra in ({"Upload-Incomplete": "?1"}, {"Upload-Complete": "?0"}):
            r = request(s.port, "PUT", "/part.heic", body=b"first half", headers=dict(ios, **extra))
            assert r.status == 400 and not r.interim, (extra, r.status)
            assert r.body.count(b"\n") == 1 and r.get("content-type").startswith("text/plain")
            r = request(s.port, "PUT", "/photo.heic", body=b"half", headers=dict(ios, **extra))
            assert r.status == 400 and not r.interim
        assert not os.path.exists(os.path.join(root.path, "part.heic"))
        assert request(s.port, "GET", "/photo.heic").body == b"second"
        assert uploads_on_disk(root.path) == []
        # Its HEAD of an upload URL is not a resumption either.
        assert request(s.port, "HEAD", PREFIX + "0" * 32, headers=ios).status == 404


# ------------------------------------------------- the IETF flow, --workers 3

def worker_pids(server):
    """The worker processes of a --workers server (its supervisor's
    children)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == server.proc.pid:
            pids.append(int(name))
    return pids


def serving_pid(conn, server_port, pids):
    """Which worker holds the server side of `conn` (a RawConn with at least
    one exchange done, so the worker has accepted it): its socket inode in
    /proc/net/tcp, found among the workers' descriptors."""
    client_port = conn.sock.getsockname()[1]
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if cols[1] == local and cols[2] == remote:
                inode = cols[9]
    assert inode, "the server side of the connection is not in /proc/net/tcp"
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError("no worker holds the connection")


def conns_on_distinct_workers(s, want):
    """`want` keep-alive connections, each held by a different worker: new
    connections are opened (a GET / on each shows who accepted it) until
    enough workers are covered; at most 60 tries."""
    pids = worker_pids(s)
    assert len(pids) == 3, pids
    found, spare = {}, []
    for _ in range(60):
        c = RawConn(s.port)
        c.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert c.read_final().status == 200
        pid = serving_pid(c, s.port, pids)
        if pid in found:
            spare.append(c)
        else:
            found[pid] = c
        if len(found) == want:
            break
    for c in spare:
        c.close()
    assert len(found) == want, f"connections reached only {len(found)} of the 3 workers in 60 tries"
    return list(found.values())


def ietf_patch(conn, loc, offset, body, complete, version="8"):
    conn.send((f"PATCH {loc} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpload-Draft-Interop-Version: {version}\r\n"
               f"Upload-Offset: {offset}\r\nUpload-Complete: {'?1' if complete else '?0'}\r\n"
               f"Content-Type: application/partial-upload\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body)
    return conn.read_final("PATCH")


def test_ietf_flow_across_three_workers():
    """--workers 3, the IETF draft (interop 8): the upload is created on one
    worker and appended to on connections held by the other two (seen
    through /proc: which worker holds each connection's socket); HEAD on
    any worker reports the offset each append acknowledged; the upload
    completes once (201 with the target's Location, then 400
    completed-upload from another worker) and the file is every byte in
    order. Then two appenders on one upload, on different workers: the
    newer one wins, the older is told 409 (or its connection is closed
    when it sends the rest), and the file has the winner's bytes, none lost
    or doubled."""
    piece = 512 * 1024
    with TempRoot() as root, Server(root.path, "--workers", "3") as s:
        a, b, c = conns_on_distinct_workers(s, 3)
        data = os.urandom(6 * piece)
        a.send((f"POST /spread.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nUpload-Draft-Interop-Version: 8\r\n"
                f"Upload-Complete: ?0\r\nUpload-Length: {len(data)}\r\nContent-Length: {piece}\r\n\r\n").encode()
               + data[:piece])
        r = a.read_final("POST")
        assert r.status == 201 and r.interim[0].status == 104, r.status
        loc = r.get("location")
        assert r.interim[0].get("location") == loc
        conns = [b, c, a]
        for i in range(1, 6):
            conn = conns[(i - 1) % 3]
            r = ietf_patch(conn, loc, i * piece, data[i * piece:(i + 1) * piece], complete=(i == 5))
            if i < 5:
                assert r.status == 204 and r.get("upload-offset") == str((i + 1) * piece), (i, r.status)
                for other in conns:
                    other.send(f"HEAD {loc} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpload-Draft-Interop-Version: 8\r\n\r\n")
                    h = other.read_final("HEAD")
                    assert h.status == 204 and h.get("upload-offset") == str((i + 1) * piece)
                    assert h.get("upload-complete") == "?0"
            else:
                assert r.status == 201 and r.get("upload-complete") == "?1" and r.get("location") == "/spread.bin"
        with open(os.path.join(root.path, "spread.bin"), "rb") as f:
            assert f.read() == data
        for other in (b, c):
            r = ietf_patch(other, loc, len(data), b"x", complete=True)
            assert r.status == 400 and json.loads(r.body)["type"].endswith("#completed-upload")
        assert [n for n in uploads_on_disk(root.path) if n.endswith(".part")] == []
        for conn in (a, b, c):
            conn.close()

        # Two appenders on one upload, on two workers.
        old, new = conns_on_distinct_workers(s, 2)
        size = 2 * MIB
        r = request(s.port, "POST", "/race.bin", headers=ietf("8", **{"Upload-Complete": "?0",
                                                                      "Upload-Length": str(size)}))
        loc = r.get("location")
        old.send((f"PATCH {loc} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpload-Draft-Interop-Version: 8\r\n"
                  f"Upload-Offset: 0\r\nUpload-Complete: ?1\r\nContent-Type: application/partial-upload\r\n"
                  f"Content-Length: {size}\r\n\r\n").encode() + b"A" * MIB)
        part = os.path.join(root.path, ".uvhttpd-uploads", loc[len(PREFIX):] + ".part")
        wait_until(lambda: os.path.getsize(part) >= MIB - 256 * 1024, 10, "the first appender to write")
        r = ietf_patch(new, loc, 0, b"B" * size, complete=True)
        assert r.status == 201 and r.get("upload-complete") == "?1"
        try:
            old.send(b"A" * MIB)
            late = old.read_final("PATCH")
            assert late.status == 409, late.status
        except (uvhlib.PeerClosed, OSError):
            pass  # the server may close before it reads the rest
        old.close()
        new.close()
        with open(os.path.join(root.path, "race.bin"), "rb") as f:
            assert f.read() == b"B" * size
        h = request(s.port, "HEAD", loc, headers=ietf("8"))
        assert h.get("upload-offset") == str(size) and h.get("upload-complete") == "?1"


# ------------------------------------------------------- progress 104s

def test_progress_104_during_a_long_append():
    """Interop 8 (the draft text that defines them): a long append gets a
    104 (Upload Resumption Supported) with Upload-Offset, no Location,
    each time a checkpoint (after every 8 MiB) has made that offset durable; the
    state file already says at least that offset when the 104 arrives,
    while the rest of the body has not even been sent. Interop 6, tus and
    HTTP/1.0 get none."""
    size = 20 * MIB
    data = os.urandom(size)
    with TempRoot() as root, Server(root.path) as s:
        r = request(s.port, "POST", "/long.bin", headers=ietf("8", **{"Upload-Complete": "?0",
                                                                      "Upload-Length": str(size)}))
        loc = r.get("location")
        with RawConn(s.port, timeout=30) as c:
            c.send((f"PATCH {loc} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpload-Draft-Interop-Version: 8\r\n"
                    f"Upload-Offset: 0\r\nUpload-Complete: ?1\r\nContent-Type: application/partial-upload\r\n"
                    f"Content-Length: {size}\r\n\r\n").encode())
            c.sock.sendall(data[:9 * MIB])
            first = c.read_response("PATCH")
            assert first.status == 104 and first.get("location") is None
            offset = int(first.get("upload-offset"))
            # A checkpoint comes after the piece that crosses 8 MiB; only
            # 9 MiB have been sent.
            assert 8 * MIB <= offset <= 9 * MIB
            with open(state_path(root.path, loc)) as f:
                durable = int(re.search(r"^offset=(\d+)$", f.read(), re.M).group(1))
            assert durable >= offset
            c.sock.sendall(data[9 * MIB:])
            final = c.read_final("PATCH")
            assert final.status == 201 and final.get("upload-complete") == "?1"
            progress = [int(i.get("upload-offset")) for i in final.interim]
            assert all(i.status == 104 and i.get("location") is None for i in final.interim)
            # One more checkpoint (past 8 MiB beyond the first) before
            # the end; the end itself is the final response.
            assert len(progress) == 1 and offset + 8 * MIB <= progress[0] < size, (offset, progress)
        with open(os.path.join(root.path, "long.bin"), "rb") as f:
            assert f.read() == data

        # No progress reports to interop 6, tus or HTTP/1.0.
        r = request(s.port, "POST", "/six.bin", headers=ietf("6", **{"Upload-Complete": "?0"}))
        loc6 = r.get("location")
        r = request(s.port, "PATCH", loc6, body=data[:9 * MIB], headers=ietf("6", **{
            "Upload-Offset": "0", "Upload-Complete": "?1", "Content-Type": "application/partial-upload"}))
        assert r.status == 201 and not r.interim
        loc_t = create_tus(s.port, "/tus.bin", 9 * MIB)
        r = patch_tus(s.port, loc_t, 0, data[:9 * MIB])
        assert r.status == 204 and not r.interim
        r = request(s.port, "POST", "/ten.bin", headers=ietf("8", **{"Upload-Complete": "?0"}))
        loc10 = r.get("location")
        with RawConn(s.port, timeout=30) as c:
            c.send((f"PATCH {loc10} HTTP/1.0\r\nHost: 127.0.0.1\r\nUpload-Draft-Interop-Version: 8\r\n"
                    f"Upload-Offset: 0\r\nUpload-Complete: ?1\r\nContent-Type: application/partial-upload\r\n"
                    f"Content-Length: {9 * MIB}\r\n\r\n").encode() + data[:9 * MIB])
            r = c.read_final("PATCH")
            assert r.status == 201 and not r.interim
