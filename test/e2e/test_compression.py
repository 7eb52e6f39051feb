"""Compression (issue 12) as curl users meet it: gzip, br and zstd chosen by
Accept-Encoding, decoded by curl back to the exact file; q-values and
refusals; thresholds and types; an ETag per coding, 304, If-Match, HEAD;
Range from the stored bytes; precompressed siblings (.gz, .br, .zst) first
when at least as new; a change on disk and a PUT seen at once; one
compression for many concurrent first requests (the metric); a large file
streamed with flat memory; listings compressed.

curl 7.88 decodes all three codings (`curl -V`: libz, brotli, zstd)."""

import gzip
import hashlib
import os
import re
import subprocess
import threading
import time

import pytest

from uvhlib import Server, TempRoot, all_at_once, curl, parse_head, request, wait_until

FULL = os.environ.get("UVH_FULL") == "1"
JQUERY = "/usr/share/javascript/jquery/jquery.min.js"  # Debian's libjs-jquery
CODINGS = ("gzip", "br", "zstd")


def script_text():
    """A real ~90 KB script (libjs-jquery), or text like it."""
    if os.path.exists(JQUERY):
        with open(JQUERY, "rb") as f:
            return f.read()
    return b"".join(b"function f%d(a,b){return a*%d+b;}\n" % (i, i) for i in range(3000))


def get(s, path, ae=None, headers=None, method="GET"):
    h = dict(headers or {})
    if ae is not None:
        h["Accept-Encoding"] = ae
    return request(s.port, method, path, headers=h)


def decoded(s, path, ae):
    """curl --compressed with this Accept-Encoding: (headers, decoded body)."""
    r = subprocess.run(["curl", "-sS", "--max-time", "60", "--compressed", "-H", f"Accept-Encoding: {ae}",
                        "-D", "-", "-o", "/dev/stderr", s.url + path.lstrip("/")],
                       capture_output=True, timeout=70)
    assert r.returncode == 0, r
    status, h = parse_head(r.stdout.decode("latin-1"))
    assert status == 200, (status, h)
    return h, r.stderr


def metric(s, name, label=None):
    body = get(s, "/metrics").body.decode()
    want = name + ("{" + label + "}" if label else "")
    for line in body.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no metric {want} in\n{body}")


def test_curl_decodes_each_coding_to_the_exact_file():
    data = script_text()
    with TempRoot() as root:
        root.write("app.js", data)
        with Server(root.path) as s:
            ident = get(s, "/app.js")
            assert ident.get("content-encoding") is None and ident.body == data
            assert ident.get("vary") == "Accept-Encoding"
            tags = {ident.get("etag")}
            sizes = {}
            for coding in CODINGS:
                h, body = decoded(s, "/app.js", coding)
                assert h["content-encoding"] == coding
                assert h["vary"] == "Accept-Encoding"
                assert body == data, coding
                raw = get(s, "/app.js", coding)
                assert raw.get("content-encoding") == coding
                assert int(raw.get("content-length")) == len(raw.body) < len(data) / 2
                # The coded ETag is derived from the identity one.
                assert raw.get("etag").startswith(ident.get("etag")[:-1] + "-")
                assert raw.get("last-modified") == ident.get("last-modified")
                tags.add(raw.get("etag"))
                sizes[coding] = len(raw.body)
            assert len(tags) == 4  # one strong tag per representation
            assert sizes["br"] < sizes["gzip"] and sizes["zstd"] < sizes["gzip"], sizes
            # Python's gzip module agrees with curl.
            assert gzip.decompress(get(s, "/app.js", "gzip").body) == data


@pytest.mark.parametrize("ae,expected", [
    ("gzip", "gzip"),
    ("gzip, br", "br"),                       # a tie: br before gzip
    ("gzip, br, zstd", "zstd"),               # a tie: zstd first
    ("zstd;q=0.5, br;q=0.8, gzip;q=0.1", "br"),
    ("gzip;q=1.0, br;q=0.9, zstd;q=0.9", "gzip"),
    ("*", "zstd"),
    ("*, zstd;q=0", "br"),
    ("gzip;q=0, br;q=0, zstd;q=0", None),
    ("identity", None),
    ("", None),
    ("gzip;q=0.5, identity", None),           # identity named at q=1 wins
    ("identity;q=0, gzip", "gzip"),
    ("x-gzip", "gzip"),
    ("deflate, compress", None),              # codings the server does not make
])
def test_q_values_choose_the_coding(ae, expected):
    with TempRoot() as root:
        root.write("app.js", script_text())
        with Server(root.path) as s:
            r = get(s, "/app.js", ae)
            assert r.status == 200
            assert r.get("content-encoding") == expected
            assert r.get("vary") == "Accept-Encoding"


def test_no_accept_encoding_gets_identity():
    with TempRoot() as root:
        root.write("app.js", script_text())
        with Server(root.path) as s:
            r = subprocess.run(["curl", "-sS", "-D", "-", "-o", "/dev/null", s.url + "app.js"],
                               capture_output=True, text=True, timeout=30)
            status, h = parse_head(r.stdout)
            assert status == 200 and "content-encoding" not in h and h["vary"] == "Accept-Encoding"


def test_refusing_identity_with_nothing_acceptable_is_406():
    """RFC 9110 §12.5.3: a response without coding unless identity is refused;
    then, with no acceptable coding available, 406 (§15.5.7)."""
    with TempRoot() as root:
        root.write("pic.png", os.urandom(5000))
        root.write("tiny.txt", "tiny\n")
        with Server(root.path) as s:
            for ae in ("identity;q=0", "*;q=0", "identity;q=0, gzip"):
                r = get(s, "/pic.png", ae)
                assert r.status == 406, ae
                assert b"406 Not Acceptable" in r.body
            # A text body under the minimum size is compressed when identity is refused.
            r = get(s, "/tiny.txt", "identity;q=0, gzip")
            assert r.status == 200 and r.get("content-encoding") == "gzip"
            assert gzip.decompress(r.body) == b"tiny\n"
            assert get(s, "/tiny.txt", "identity;q=0").status == 406
            assert get(s, "/tiny.txt", "*;q=0, identity").status == 200


def test_threshold_types_and_off():
    with TempRoot() as root:
        root.write("small.css", "a{color:red}\n" * 50)       # 650 bytes: under 1 KiB
        root.write("big.css", "a{color:red}\n" * 500)
        root.write("pic.png", os.urandom(5000))
        root.write("data.json", '{"k": "value"}\n' * 200)
        root.write("page.svg", "<svg xmlns='http://www.w3.org/2000/svg'>" + "<g/>" * 500 + "</svg>")
        with Server(root.path) as s:
            r = get(s, "/small.css", "gzip")
            assert r.get("content-encoding") is None and r.get("vary") == "Accept-Encoding"
            assert get(s, "/big.css", "gzip").get("content-encoding") == "gzip"
            png = get(s, "/pic.png", "gzip, br, zstd")
            assert png.get("content-encoding") is None and png.get("vary") is None
            assert get(s, "/data.json", "br").get("content-encoding") == "br"
            assert get(s, "/page.svg", "zstd").get("content-encoding") == "zstd"
        with Server(root.path, "--compress-min-size", "100", "--compress-types", "application/json") as s:
            assert get(s, "/data.json", "gzip").get("content-encoding") == "gzip"
            assert get(s, "/big.css", "gzip").get("content-encoding") is None
            assert get(s, "/big.css", "gzip").get("vary") is None
        with Server(root.path, "--compress-min-size", "100") as s:
            assert get(s, "/small.css", "gzip").get("content-encoding") == "gzip"
        with Server(root.path, "--compress", "off") as s:
            r = get(s, "/big.css", "gzip, br, zstd")
            assert r.get("content-encoding") is None and r.get("vary") is None


def test_bad_compress_flags_are_refused():
    with TempRoot() as root:
        for args, words in ((("--compress", "maybe"), "on or off"),
                            (("--compress-level", "gzip=12"), "--compress-level"),
                            (("--compress-level", "lzma=3"), "gzip=N"),
                            (("--compress-types", "text"), "media types"),
                            (("--compress-stream-level", "zstd"), "zstd=N")):
            r = subprocess.run([s_binary(), "--root", root.path, *args], capture_output=True, text=True,
                               timeout=10)
            assert r.returncode == 2, args
            assert words in r.stderr, (args, r.stderr)


def s_binary():
    import uvhlib
    return uvhlib.BINARY


def test_etags_304_if_match_and_head_per_coding():
    data = script_text()
    with TempRoot() as root:
        root.write("app.js", data)
        with Server(root.path, "--cache-control", "max-age=60") as s:
            ident = get(s, "/app.js").get("etag")
            for coding in CODINGS:
                full = get(s, "/app.js", coding)
                tag = full.get("etag")
                nm = get(s, "/app.js", coding, {"If-None-Match": tag})
                assert nm.status == 304 and nm.body == b""
                assert nm.get("etag") == tag and nm.get("vary") == "Accept-Encoding"
                assert nm.get("cache-control") == "max-age=60"
                # The identity tag names another representation: a full answer.
                assert get(s, "/app.js", coding, {"If-None-Match": ident}).status == 200
                assert get(s, "/app.js", coding, {"If-Match": tag}).status == 200
                assert get(s, "/app.js", coding, {"If-Match": ident}).status == 412
                assert get(s, "/app.js", None, {"If-Match": tag}).status == 412
                head = get(s, "/app.js", coding, method="HEAD")
                assert head.status == 200 and head.body == b""
                for k in ("content-length", "etag", "content-encoding", "vary", "content-type", "last-modified"):
                    assert head.get(k) == full.get(k), k


def test_304_does_not_wait_for_a_compression():
    """A revalidation with the coded tag is answered from the tag alone."""
    with TempRoot() as root:
        root.write("app.js", script_text())
        with Server(root.path) as s:
            tag = get(s, "/app.js", "br").get("etag")
        with Server(root.path) as s2:  # a fresh cache: nothing compressed yet
            assert get(s2, "/app.js", "br", {"If-None-Match": tag}).status == 304
            assert metric(s2, "uvhttpd_compressions_total", 'coding="br"') == 0


def test_range_is_answered_from_the_identity_file():
    data = script_text()
    with TempRoot() as root:
        root.write("app.js", data)
        with Server(root.path) as s:
            ident = get(s, "/app.js").get("etag")
            r = get(s, "/app.js", "gzip, br", {"Range": "bytes=10-109"})
            assert r.status == 206 and r.body == data[10:110]
            assert r.get("content-encoding") is None and r.get("etag") == ident
            assert r.get("content-range") == f"bytes 10-109/{len(data)}"
            assert r.get("vary") == "Accept-Encoding"
            # If-Range with the identity tag: the range; a stale tag: the whole coded body.
            assert get(s, "/app.js", "gzip", {"Range": "bytes=0-9", "If-Range": ident}).status == 206
            full = get(s, "/app.js", "gzip", {"Range": "bytes=0-9", "If-Range": '"stale"'})
            assert full.status == 200 and full.get("content-encoding") == "gzip"
            # curl -C - resumes against the identity bytes.
            part = os.path.join(root.path, "..", os.path.basename(root.path) + "-part")
            with open(part, "wb") as f:
                f.write(data[:1000])
            try:
                r = curl("-s", "-C", "-", "-H", "Accept-Encoding: gzip", "-o", part, s.url + "app.js")
                assert r.returncode == 0
                with open(part, "rb") as f:
                    assert f.read() == data
            finally:
                os.unlink(part)


def test_precompressed_siblings_win_when_at_least_as_new():
    data = script_text()
    with TempRoot() as root:
        p = root.write("app.js", data)
        t = os.path.getmtime(p)
        for suffix, marker in ((".gz", b"GZ-SIBLING"), (".br", b"BR-SIBLING"), (".zst", b"ZST-SIBLING")):
            q = root.write("app.js" + suffix, marker)
            os.utime(q, (t + 5, t + 5))
        with Server(root.path) as s:
            assert get(s, "/app.js", "gzip").body == b"GZ-SIBLING"
            assert get(s, "/app.js", "br").body == b"BR-SIBLING"
            z = get(s, "/app.js", "zstd")
            assert z.body == b"ZST-SIBLING" and z.get("content-encoding") == "zstd"
            assert get(s, "/app.js", "gzip, br, zstd").body == b"ZST-SIBLING"
            # A sibling's Range is answered from its own bytes.
            r = get(s, "/app.js", "br", {"Range": "bytes=0-1"})
            assert r.status == 206 and r.body == b"BR"
            # An older sibling is left over from an earlier version: ignored.
            os.utime(os.path.join(root.path, "app.js.zst"), (t - 100, t - 100))
            deadline = time.monotonic() + 10
            while get(s, "/app.js", "zstd").body == b"ZST-SIBLING":
                assert time.monotonic() < deadline, "the stale .zst is still served"
                time.sleep(0.05)
            h, body = decoded(s, "/app.js", "zstd")
            assert body == data and h["content-encoding"] == "zstd"
            for c in ("gzip", "br"):
                assert metric(s, "uvhttpd_compressions_total", f'coding="{c}"') == 0


@pytest.mark.parametrize("size", [4000, 300_000])  # the small-file cache; sendfile and the descriptor cache
def test_a_type_not_compressed_with_a_sibling_varies_without_accept_encoding(size):
    """A PNG is never compressed by the server, but a newer pic.png.gz is
    sent to clients that take gzip: the PNG's response depends on
    Accept-Encoding, so a client that sent none is told so too (RFC 9110
    §12.5.5), or a shared cache would hand it to a gzip client as the only
    variant. Its first request, repeated ones (from the caches), HEAD and a
    304 all carry it; a PNG without a sibling gets no Vary."""
    data = os.urandom(size)
    with TempRoot() as root:
        p = root.write("pic.png", data)
        t = os.path.getmtime(p)
        q = root.write("pic.png.gz", gzip.compress(data))
        os.utime(q, (t + 5, t + 5))
        root.write("alone.png", data)
        with Server(root.path) as s:
            for _ in range(3):
                r = get(s, "/pic.png")
                assert r.status == 200 and r.body == data
                assert r.get("content-encoding") is None and r.get("vary") == "Accept-Encoding"
            head = get(s, "/pic.png", method="HEAD")
            assert head.status == 200 and head.get("vary") == "Accept-Encoding"
            nm = get(s, "/pic.png", headers={"If-None-Match": r.get("etag")})
            assert nm.status == 304 and nm.get("vary") == "Accept-Encoding"
            z = get(s, "/pic.png", "gzip")
            assert z.get("content-encoding") == "gzip" and z.get("vary") == "Accept-Encoding"
            assert gzip.decompress(z.body) == data
            for _ in range(2):
                alone = get(s, "/alone.png")
                assert alone.status == 200 and alone.body == data and alone.get("vary") is None


def test_change_on_disk_shows_within_the_revalidation_interval():
    a = script_text()
    b = a.replace(b"function", b"FUNCTION", 5)
    with TempRoot() as root:
        p = root.write("app.js", a)
        with Server(root.path, "--cache-revalidate", "0.3") as s:
            assert gzip.decompress(get(s, "/app.js", "gzip").body) == a
            with open(p, "r+b") as f:  # in place: same inode, a new mtime
                f.write(b)
            changed = time.monotonic()
            while True:
                body = gzip.decompress(get(s, "/app.js", "gzip").body)
                if body == b:
                    break
                assert body == a
                assert time.monotonic() - changed < 5, "the change did not show"
                time.sleep(0.02)


def test_put_through_the_server_invalidates_before_it_is_acknowledged():
    a = script_text()
    with TempRoot() as root:
        root.write("app.js", a)
        with Server(root.path, "--cache-revalidate", "3600") as s:
            for coding in CODINGS:
                h, body = decoded(s, "/app.js", coding)
                assert body == a
            for i in range(3):
                new = a + (b"\n// version %d\n" % i)
                assert request(s.port, "PUT", "/app.js", body=new).status == 204
                for coding in CODINGS:
                    h, body = decoded(s, "/app.js", coding)
                    assert body == new, (coding, i)


def test_many_concurrent_first_requests_make_one_compression():
    data = script_text()
    with TempRoot() as root:
        root.write("app.js", data)
        with Server(root.path) as s:
            def first_request():
                r = get(s, "/app.js", "br")
                return r.status, r.get("content-encoding"), r.body

            bodies = all_at_once(first_request, 24, timeout=60)
            assert all(st == 200 and enc == "br" for st, enc, _ in bodies)
            assert len({b for _, _, b in bodies}) == 1
            assert metric(s, "uvhttpd_compressions_total", 'coding="br"') == 1
            h, body = decoded(s, "/app.js", "br")
            assert body == data
            assert metric(s, "uvhttpd_compressions_total", 'coding="br"') == 1
            assert metric(s, "uvhttpd_coding_cache_hits_total") >= 1


def test_a_large_file_streams_compressed_with_flat_memory():
    size = (1 << 30) if FULL else (96 << 20)
    with TempRoot() as root:
        path = os.path.join(root.path, "big.log")
        digest = hashlib.sha256()
        line = b"2026-11-28T07:00:00Z GET /some/path 200 1234 \"curl/7.88\" request id %08d\n"
        with open(path, "wb") as f:
            n, written = 0, 0
            while written < size:
                chunk = b"".join(line % (n + i) for i in range(4096))
                n += 4096
                f.write(chunk)
                digest.update(chunk)
                written += len(chunk)
        with Server(root.path, "--compress-max-cached", "1M", "--compress-cache-size", "4M") as s:
            rss0 = s.rss_kib()
            for coding in CODINGS:
                peak = [0]
                done = threading.Event()

                def sample():
                    while not done.is_set():
                        peak[0] = max(peak[0], s.rss_kib())
                        done.wait(0.05)

                sampler = threading.Thread(target=sample)
                sampler.start()
                try:
                    r = subprocess.run(
                        f"curl -sS --max-time 600 --compressed -H 'Accept-Encoding: {coding}' -D /dev/stderr "
                        f"{s.url}big.log | sha256sum", shell=True, capture_output=True, text=True, timeout=620)
                finally:
                    done.set()
                    sampler.join()
                assert r.returncode == 0, r.stderr
                assert r.stdout.split()[0] == digest.hexdigest(), coding
                status, h = parse_head(r.stderr)
                assert h["content-encoding"] == coding and h["transfer-encoding"] == "chunked"
                assert "content-length" not in h
                print(f"  {coding}: {size >> 20} MiB streamed, RSS {rss0} KiB -> peak {peak[0]} KiB")
                # The encoder's state and a window or two, not the file.
                assert peak[0] - rss0 < 48 * 1024, f"{coding}: RSS grew from {rss0} to {peak[0]} KiB"
            head = get(s, "/big.log", "zstd", method="HEAD")
            assert head.get("transfer-encoding") == "chunked" and head.get("content-length") is None
            assert metric(s, "uvhttpd_compressions_total", 'coding="zstd"') == 0  # streamed, not cached


def test_listings_are_compressed():
    with TempRoot() as root:
        for i in range(300):
            root.write(f"dir/file-{i:04d}.txt", "x")
        with Server(root.path) as s:
            plain = get(s, "/dir/").body
            for coding in CODINGS:
                h, body = decoded(s, "/dir/", coding)
                assert h["content-encoding"] == coding and h["vary"] == "Accept, Accept-Encoding"
                assert body == plain
                h, body = decoded(s, "/dir/?format=json", coding)
                assert h["content-type"] == "application/json" and b'"file-0299.txt"' in body
            r = get(s, "/dir/", "gzip")
            assert r.framing == "chunked" and gzip.decompress(r.body) == plain


def test_clients_that_leave_while_a_compression_runs():
    """Waiters that go away (reset or close) are released when the job ends;
    the job's result still serves the next client, once."""
    import socket
    data = b"".join(b"var line%06d = 'some text to compress, %d';\n" % (i, i * 7) for i in range(20000))
    with TempRoot() as root:
        root.write("big.js", data)  # about 1 MiB: br 11 takes a while
        with Server(root.path) as s:
            socks = []
            for i in range(12):
                c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
                c.sendall(b"GET /big.js HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br\r\n\r\n")
                socks.append(c)
            for i, c in enumerate(socks):
                if i % 2:
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                c.close()  # half of them with a reset
            h, body = decoded(s, "/big.js", "br")
            assert body == data and h["content-encoding"] == "br"
            assert metric(s, "uvhttpd_compressions_total", 'coding="br"') == 1
            assert get(s, "/healthz").status == 200


# ---------------------------------------------------- --compress-cache-dir
#
# Files above --compress-max-cached compressed once per version and coding
# into a directory and sent from there with sendfile (docs/operations.md,
# "The coding cache on disk"). 3 MiB of log lines here; 64 MiB with UVH_FULL=1.

DISK_SIZE = (64 << 20) if FULL else (3 << 20)
DISK_FLAGS = ("--compress-max-cached", "1M")


def log_text(size, seed=0):
    line = b"2026-11-28T11:00:00Z GET /v%d/path 200 %08d \"curl/7.88\"\n"
    out, n = [], 0
    while n < size:
        chunk = b"".join(line % (seed, i) for i in range(n // 40, n // 40 + 2048))
        out.append(chunk)
        n += len(chunk)
    return b"".join(out)[:size]


ENTRY = re.compile(r"c-(?:[0-9a-f]{1,16}-){5}(?:gzip|br|zstd)[0-9]{1,2}")


def entries(cache):
    """The cache entries in the directory (their names are their keys)."""
    return sorted(n for n in os.listdir(cache) if ENTRY.fullmatch(n))


def raw_get(s, path, headers):
    """The bytes on the wire (not decoded) and the head, with curl."""
    args = []
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    r = subprocess.run(["curl", "-sS", "--max-time", "120", "-D", "/dev/stderr", "-o", "-", *args,
                        s.url + path.lstrip("/")], capture_output=True, timeout=130)
    assert r.returncode == 0, r
    status, h = parse_head(r.stderr.decode("latin-1"))
    return status, h, r.stdout


def test_disk_cache_sends_a_large_files_coding_from_the_directory_with_ranges():
    data = log_text(DISK_SIZE)
    with TempRoot() as root, TempRoot() as cache_parent:
        root.write("big.log", data)
        cache = os.path.join(cache_parent.path, "codings")  # made by the server
        with Server(root.path, *DISK_FLAGS) as plain, \
                Server(root.path, *DISK_FLAGS, "--compress-cache-dir", cache) as s:
            for n, coding in enumerate(CODINGS, 1):
                # The first request waits for the one compression and gets
                # the entry: a length, no chunks, the stream's ETag and bytes.
                st, h, first = raw_get(s, "/big.log", {"Accept-Encoding": coding})
                assert st == 200 and h["content-encoding"] == coding and "transfer-encoding" not in h
                assert int(h["content-length"]) == len(first) < len(data) / 4
                assert metric(s, "uvhttpd_coding_disk_compressions_total") == n
                st, sh, streamed = raw_get(plain, "/big.log", {"Accept-Encoding": coding})
                assert sh["transfer-encoding"] == "chunked" and sh["etag"] == h["etag"]
                assert streamed == first  # one strong ETag, one sequence of bytes
                hits = metric(s, "uvhttpd_coding_disk_hits_total")
                dh, body = decoded(s, "/big.log", coding)
                assert body == data and dh["etag"] == h["etag"]
                assert metric(s, "uvhttpd_coding_disk_hits_total") == hits + 1
                assert metric(s, "uvhttpd_coding_disk_compressions_total") == n
                etag = h["etag"]
                # Ranges of the coded bytes (curl -C - of a compressed download).
                st, rh, part = raw_get(s, "/big.log", {"Accept-Encoding": coding, "Range": "bytes=100-1123"})
                assert st == 206 and rh["content-range"] == f"bytes 100-1123/{len(first)}"
                assert rh["etag"] == etag and part == first[100:1124]
                st, rh, part = raw_get(s, "/big.log", {"Accept-Encoding": coding, "Range": "bytes=-10",
                                                       "If-Range": etag})
                assert st == 206 and part == first[-10:]
                st, _, _ = raw_get(s, "/big.log", {"Accept-Encoding": coding, "If-None-Match": etag})
                assert st == 304
                head = get(s, "/big.log", coding, method="HEAD")
                assert head.get("content-length") == str(len(first)) and head.get("etag") == etag
            names = entries(cache)
            assert len(names) == 3 and {n.rsplit("-", 1)[1] for n in names} == {"gzip6", "br5", "zstd3"}
            assert metric(s, "uvhttpd_coding_disk_bytes") == sum(
                os.path.getsize(os.path.join(cache, n)) for n in names)
            assert metric(s, "uvhttpd_coding_disk_misses_total") == 3
        # A restart finds the entries: no compression.
        with Server(root.path, *DISK_FLAGS, "--compress-cache-dir", cache) as s:
            _, body = decoded(s, "/big.log", "br")
            assert body == data
            assert metric(s, "uvhttpd_coding_disk_compressions_total") == 0
            assert metric(s, "uvhttpd_coding_disk_hits_total") == 1


@pytest.mark.parametrize("workers", [1, 3])
def test_disk_cache_concurrent_cold_requests_make_one_compression(workers):
    data = log_text(DISK_SIZE, seed=1)
    with TempRoot() as root, TempRoot() as cache:
        root.write("big.log", data)
        extra = ("--workers", str(workers)) if workers > 1 else ()
        with Server(root.path, *DISK_FLAGS, "--compress-cache-dir", cache.path, *extra) as s:
            bodies = all_at_once(lambda: raw_get(s, "/big.log", {"Accept-Encoding": "zstd"}), 12, timeout=120)
            assert all(st == 200 and h["content-encoding"] == "zstd" for st, h, _ in bodies)
            assert len({b for _, _, b in bodies}) == 1
            assert len(entries(cache.path)) == 1
            assert os.listdir(cache.path) == entries(cache.path)  # no temporary file left
            if workers == 1:
                assert metric(s, "uvhttpd_coding_disk_compressions_total") == 1
            _, body = decoded(s, "/big.log", "zstd")
            assert body == data


def test_disk_cache_a_new_version_gets_a_new_entry_and_readers_see_whole_ones():
    a, b = log_text(DISK_SIZE, seed=2), log_text(DISK_SIZE, seed=3)
    with TempRoot() as root, TempRoot() as cache:
        root.write("big.log", a)
        with Server(root.path, *DISK_FLAGS, "--compress-cache-dir", cache.path) as s:
            ha, body = decoded(s, "/big.log", "gzip")
            assert body == a
            stop, seen, errors = threading.Event(), [], []

            def reader():
                try:
                    while not stop.is_set():
                        _, got = decoded(s, "/big.log", "gzip")
                        seen.append(got)
                except Exception as e:  # reported below
                    errors.append(e)

            readers = [threading.Thread(target=reader) for _ in range(3)]
            for t in readers:
                t.start()
            try:
                for i in range(6):
                    r = request(s.port, "PUT", "/big.log", body=b if i % 2 == 0 else a)
                    assert r.status == 204
            finally:
                stop.set()
                for t in readers:
                    t.join(timeout=120)
            assert not errors, errors
            assert seen and all(got in (a, b) for got in seen)  # one whole version each, never a mix
            request(s.port, "PUT", "/big.log", body=b)
            hb, body = decoded(s, "/big.log", "gzip")
            assert body == b and hb["etag"] != ha["etag"]
            assert len(entries(cache.path)) >= 2  # the old versions' entries wait for eviction


def test_disk_cache_stays_within_its_size_least_recently_used_first():
    with TempRoot() as root, TempRoot() as cache:
        for name in ("a", "b", "c"):
            root.write(f"{name}.log", log_text(3 << 20, seed=ord(name)))
        with Server(root.path, *DISK_FLAGS, "--compress-cache-dir", cache.path) as s:
            _, h, one = raw_get(s, "/a.log", {"Accept-Encoding": "gzip"})
            entry = len(one) + 160
        # Room for two entries of this size: the third write evicts the oldest.
        limit = str(2 * entry + entry // 2)
        for n in entries(cache.path):
            os.unlink(os.path.join(cache.path, n))
        with Server(root.path, *DISK_FLAGS, "--compress-cache-dir", cache.path,
                    "--compress-cache-dir-size", limit) as s:
            for name in ("a", "b", "c"):
                assert raw_get(s, f"/{name}.log", {"Accept-Encoding": "gzip"})[0] == 200
                time.sleep(0.01)  # distinct mtimes on coarse-clock file systems, not synchronisation
            assert len(entries(cache.path)) == 2
            assert metric(s, "uvhttpd_coding_disk_evictions_total") == 1
            assert metric(s, "uvhttpd_coding_disk_bytes") <= int(limit)
            # a.log's entry went: a GET compresses it again; b and c stay hits.
            hits = metric(s, "uvhttpd_coding_disk_hits_total")
            assert raw_get(s, "/c.log", {"Accept-Encoding": "gzip"})[0] == 200
            assert metric(s, "uvhttpd_coding_disk_hits_total") == hits + 1
            assert raw_get(s, "/a.log", {"Accept-Encoding": "gzip"})[0] == 200
            assert metric(s, "uvhttpd_coding_disk_compressions_total") == 4


def test_disk_cache_ignores_truncated_hand_edited_and_foreign_files():
    data = log_text(DISK_SIZE, seed=4)
    with TempRoot() as root, TempRoot() as cache:
        root.write("big.log", data)
        foreign = {"notes.txt": b"mine", "c-not-an-entry": b"x" * 100}
        for n, content in foreign.items():
            cache.write(n, content)
        with Server(root.path, *DISK_FLAGS, "--compress-cache-dir", cache.path,
                    "--compress-cache-dir-size", "1") as s:  # every scan evicts what it may
            _, good = decoded(s, "/big.log", "br")
            assert good == data
            [name] = entries(cache.path)
            path = os.path.join(cache.path, name)
            with open(path, "rb") as f:
                whole = f.read()
            for damaged in (whole[: len(whole) // 2],                  # truncated
                            whole[:-160] + whole[-160:].replace(b"1 ", b"2 ", 1),  # trailer edited
                            whole[:-161] + b"X" + whole[-160:] + b"more"):  # grown
                with open(path, "wb") as f:
                    f.write(damaged)
                before = metric(s, "uvhttpd_coding_disk_compressions_total")
                _, body = decoded(s, "/big.log", "br")
                assert body == data
                assert metric(s, "uvhttpd_coding_disk_compressions_total") == before + 1
                with open(path, "rb") as f:
                    assert f.read() == whole  # replaced by a whole entry
        for n, content in foreign.items():  # never served, never removed
            with open(os.path.join(cache.path, n), "rb") as f:
                assert f.read() == content


def test_disk_cache_directory_is_outside_the_root_or_hidden_in_it():
    with TempRoot() as root:
        root.write("big.log", log_text(DISK_SIZE, seed=5))
        for args, words in ((("--compress-cache-dir", os.path.join(root.path, "codings")), "inside the served root"),
                            (("--compress-cache-dir", root.path), "inside the served root"),
                            (("--compress-cache-dir", os.path.join(root.path, ".codings"), "--read-only"),
                             "--read-only")):
            r = subprocess.run([s_binary(), "--root", root.path, *args], capture_output=True, text=True, timeout=10)
            assert r.returncode == 2, args
            assert words in r.stderr, (args, r.stderr)
        assert not os.path.exists(os.path.join(root.path, "codings")) or not os.listdir(
            os.path.join(root.path, "codings"))
        with TempRoot() as outside, Server(root.path, *DISK_FLAGS, "--read-only",
                                           "--compress-cache-dir", outside.path) as s:
            _, body = decoded(s, "/big.log", "zstd")  # a read-only root, a cache outside it
            assert len(entries(outside.path)) == 1
            assert metric(s, "uvhttpd_coding_disk_compressions_total") == 1
        hidden = os.path.join(root.path, ".codings")
        with Server(root.path, *DISK_FLAGS, "--compress-cache-dir", hidden) as s:
            _, body = decoded(s, "/big.log", "gzip")
            [name] = entries(hidden)
            for method in ("GET", "PROPFIND", "DELETE"):  # the dotfile rule hides it from every method
                assert request(s.port, method, f"/.codings/{name}").status == 404
            assert request(s.port, "GET", "/.codings/").status == 404


def test_disk_cache_on_a_full_disk_streams_and_leaves_nothing_behind():
    import uvhlib
    data = log_text(DISK_SIZE, seed=6)
    with TempRoot() as root, uvhlib.small_tmpfs("64k") as mnt:
        root.write("big.log", data)
        with Server(root.path, *DISK_FLAGS, "--compress-cache-dir", mnt) as s:
            for _ in range(2):  # the second within the retry pause: no new attempt
                h, body = decoded(s, "/big.log", "gzip")
                assert body == data and h["transfer-encoding"] == "chunked"  # streamed instead
            assert metric(s, "uvhttpd_coding_disk_compressions_total") == 0
            assert os.listdir(mnt) == []  # the temporary file went with the failure
