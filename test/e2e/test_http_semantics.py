"""Validators, conditional requests and ranges as curl users meet them:
curl -z, curl -r, curl -C -, and Python's http.client revalidating."""

import http.client
import os
import subprocess

from uvhlib import Server, TempRoot, curl, parse_head


def test_curl_z_gives_304_when_unchanged():
    with TempRoot() as root:
        path = root.write("doc.txt", "document\n")
        with Server(root.path) as s:
            local = root.write("copy.txt", "document\n")
            os.utime(local, (os.path.getmtime(path) + 10,) * 2)  # newer than the file
            r = curl("-s", "-o", local, "-z", path, "-w", "%{http_code}", s.url + "doc.txt")
            assert r.stdout == "304", r.stdout
            # A local copy older than the file: the file comes.
            os.utime(local, (0, 0))
            r = curl("-s", "-o", local, "-z", local, "-w", "%{http_code}", s.url + "doc.txt")
            assert r.stdout == "200", r.stdout
            with open(local) as f:
                assert f.read() == "document\n"


def test_curl_r_gives_the_bytes_asked_for():
    with TempRoot() as root:
        data = os.urandom(5000)
        root.write("r.bin", data)
        with Server(root.path) as s:
            out = subprocess.run(["curl", "-s", "-r", "0-99", s.url + "r.bin"], capture_output=True,
                                        timeout=30).stdout
            assert out == data[:100]
            out = subprocess.run(["curl", "-s", "-r", "-100", s.url + "r.bin"], capture_output=True,
                                        timeout=30).stdout
            assert out == data[-100:]
            status, h = parse_head(curl("-sI", "-r", "0-99", s.url + "r.bin").stdout)
            assert status == 200  # HEAD ignores Range
            status, h = parse_head(curl("-si", "-r", "9000-", s.url + "r.bin").stdout)
            assert status == 416 and h["content-range"] == "bytes */5000"


def test_curl_C_resumes_an_interrupted_download():
    with TempRoot() as root:
        data = os.urandom(3 << 20)
        root.write("big.bin", data)
        with Server(root.path, "--inline-max", "16K") as s:
            local = os.path.join(root.path, "partial.bin")
            # An interrupted download: the first 1234567 bytes only.
            with open(local, "wb") as f:
                f.write(data[:1234567])
            r = curl("-s", "-C", "-", "-o", local, "-w", "%{http_code}", s.url + "big.bin")
            assert r.stdout == "206", r.stdout
            with open(local, "rb") as f:
                assert f.read() == data


def test_http_client_revalidates_with_304():
    with TempRoot() as root:
        root.write("page.html", "<p>cache me</p>")
        with Server(root.path, "--cache-control", "no-cache") as s:
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
            c.request("GET", "/page.html")
            r = c.getresponse()
            body = r.read()
            etag, lm = r.getheader("ETag"), r.getheader("Last-Modified")
            assert r.getheader("Cache-Control") == "no-cache"
            c.request("GET", "/page.html", headers={"If-None-Match": etag})
            r = c.getresponse()
            assert r.status == 304 and r.read() == b"" and r.getheader("ETag") == etag
            c.request("GET", "/page.html", headers={"If-Modified-Since": lm})
            r = c.getresponse()
            assert r.status == 304 and r.read() == b""
            c.request("GET", "/page.html")
            r = c.getresponse()
            assert r.status == 200 and r.read() == body
            c.close()
