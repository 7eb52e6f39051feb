"""Unit tests of uvhlib's raw HTTP client (RawConn, request): the framing
it decodes (Content-Length, chunked with extensions and trailers,
close-delimited, bodiless), what it refuses, and its deadlines. No
uvhttpd: a scripted peer feeds the bytes, either in-process (every split
point, deterministic) or over a real loopback socket (EOF, resets,
timeouts, the bytes request() sends)."""

import socket
import threading
import time

import pytest

import uvhlib
from uvhlib import PeerClosed, RawConn


# -------------------------------------------------------------- scripted peers

class Fed(RawConn):
    """A RawConn whose recv() returns the given pieces in turn, then EOF
    (or a timeout, with hang=True)."""

    def __init__(self, pieces, hang=False):  # no socket
        self.pieces = list(pieces)
        self.hang = hang
        self.buf = b""
        self.timeout = 1.0

    def _recv(self, deadline, size=65536):
        if self.pieces:
            return self.pieces.pop(0)[:size]
        if self.hang:
            raise socket.timeout("deadline passed")
        return b""

    def close(self):
        pass


def splits(data):
    """The stream whole, one byte at a time, and cut in two at every
    offset."""
    yield [data]
    yield [data[i:i + 1] for i in range(len(data))]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]


class Peer:
    """A loopback server for one connection: reads what the client sends
    (kept in .received, up to the blank line and `body` more bytes), sends
    `reply`, then closes (FIN), resets, or holds the connection open until
    the test ends."""

    def __init__(self, reply=b"", then="close", read_request=True):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.port = self.lsock.getsockname()[1]
        self.reply, self.then, self.read_request = reply, then, read_request
        self.received = b""
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.lsock.accept()
        conn.settimeout(10)
        try:
            if self.read_request:
                while b"\r\n\r\n" not in self.received:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    self.received += chunk
                head = self.received.split(b"\r\n\r\n", 1)[0].lower()
                for line in head.split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        want = len(head) + 4 + int(line.split(b":")[1])
                        while len(self.received) < want:
                            self.received += conn.recv(65536)
            conn.sendall(self.reply)
            if self.then == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            elif self.then == "hold":
                self.done.wait(30)
        finally:
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(10)
        self.lsock.close()


# ---------------------------------------------------------------- framing

def test_content_length_body_at_every_split():
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  b \r\n\r\nhello"
    for pieces in splits(data):
        r = Fed(pieces).read_response()
        assert (r.version, r.status, r.reason, r.body, r.framing) == ("HTTP/1.1", 200, "OK", b"hello", "length")
        assert r.headers == [("content-length", "5"), ("x-a", "b")]


def test_pipelined_responses_stay_apart():
    c = Fed([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab"
             b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
             b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n"])
    assert c.read_response().body == b"ab"
    assert c.read_response().status == 404
    assert c.read_response().body == b"z"
    assert c.buf == b""


CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;name=value;q=\"a b\"\r\nhello\r\n"
           b"1 \r\n \r\n"
           b"A\r\n0123456789\r\n"
           b"0\r\nX-Checksum: abc\r\nX-More:1\r\n\r\n"
           b"HTTP/1.1 204 No Content\r\n\r\n")


def test_chunked_with_extensions_and_trailers_at_every_split():
    for pieces in splits(CHUNKED):
        c = Fed(pieces)
        r = c.read_response()
        assert r.framing == "chunked"
        assert r.body == b"hello 0123456789", (pieces, r.body)
        assert r.trailers == [("x-checksum", "abc"), ("x-more", "1")]
        assert c.read_response().status == 204  # the next response starts right after


def test_chunked_large_and_uppercase_sizes():
    blob = bytes(range(256)) * 300
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    data += b"%X\r\n" % len(blob) + blob + b"\r\n" + b"0000\r\n\r\n"
    assert Fed([data[i:i + 1000] for i in range(0, len(data), 1000)]).read_response().body == blob


@pytest.mark.parametrize("bad", [
    b"zz\r\nab\r\n0\r\n\r\n",               # not hex
    b"-1\r\nab\r\n0\r\n\r\n",               # sign
    b"\r\nab\r\n0\r\n\r\n",                 # empty size
    b"0x2\r\nab\r\n0\r\n\r\n",              # prefix
    b"2\r\nabX\r\n0\r\n\r\n",               # data longer than the size: no CRLF after it
    b"2\r\nab\r\n0\r\n bad trailer\r\n\r\n",  # folded trailer line
])
def test_bad_chunked_framing_fails(bad):
    c = Fed([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + bad])
    with pytest.raises(AssertionError):
        c.read_response()


def test_chunked_cut_short_is_peer_closed():
    for cut in (b"5\r\nhel", b"5\r\nhello", b"5\r\nhello\r\n", b"5\r\nhello\r\n0\r\n"):
        with pytest.raises(PeerClosed):
            Fed([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + cut]).read_response()


def test_close_delimited_body():
    r = Fed([b"HTTP/1.0 200 OK\r\n\r\nall ", b"until ", b"EOF"]).read_response()
    assert r.framing == "close" and r.body == b"all until EOF" and r.version == "HTTP/1.0"


def test_close_delimited_body_without_eof_times_out():
    with pytest.raises(socket.timeout):
        Fed([b"HTTP/1.1 200 OK\r\n\r\npart"], hang=True).read_response()


@pytest.mark.parametrize("method,status", [("HEAD", 200), ("GET", 204), ("GET", 304), ("GET", 100),
                                           ("HEAD", 404)])
def test_bodiless_responses(method, status):
    # The headers announce a body that must not be read: the next bytes
    # are the next response.
    c = Fed([b"HTTP/1.1 %d X\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n" % status +
             b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"])
    r = c.read_response(method)
    assert r.status == status and r.body == b"" and r.framing == "none"
    assert c.read_response().body == b"x"


def test_read_final_collects_interim_responses():
    c = Fed([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
             b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"])
    r = c.read_final("PUT")
    assert r.status == 201 and [i.status for i in r.interim] == [100, 103]


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTX/1.1 200 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-A : b\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n folded\r\n\r\n",
])
def test_malformed_heads_fail(head):
    with pytest.raises(AssertionError):
        Fed([head + b"xx"]).read_response()


def test_repeated_identical_content_length_is_one_length():
    assert Fed([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab"]).read_response().body == b"ab"


def test_head_then_raw_stream():
    c = Fed([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123", b"456", b"789"])
    r = c.read_head()
    assert r.status == 200 and r.framing == "length" and r.body == b""
    assert c.read_some(5) == (b"01234", False)
    assert c.read_some(100) == (b"56789", True)


def test_response_helpers():
    r = Fed([b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nX-A: 1\r\nX-A: 2\r\n"
             b"Date: now\r\nContent-Length: 0\r\n\r\n"]).read_response()
    assert r.wants_close() and r.get("x-a") == "1" and r.all("x-a") == ["1", "2"]
    assert r.header_dict()["x-a"] == "2" and r.get("nope") is None
    assert ("date", "now") not in r.comparable()[3]


# ------------------------------------------------------------ a real socket

def test_request_sends_what_http_client_sends():
    with Peer(b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nnew") as p:
        r = uvhlib.request(p.port, "PUT", "/a.txt", body=b"abc", headers={"If-None-Match": "*"})
    assert (r.status, r.body) == (201, b"new")
    assert p.received == (f"PUT /a.txt HTTP/1.1\r\nHost: 127.0.0.1:{p.port}\r\nContent-Length: 3\r\n"
                          f"Accept-Encoding: identity\r\nIf-None-Match: *\r\n\r\nabc").encode()


def test_request_own_host_and_empty_put():
    with Peer(b"HTTP/1.1 204 No Content\r\n\r\n") as p:
        assert uvhlib.request(p.port, "PUT", "/x", headers={"Host": "evil.example"}).status == 204
    assert p.received.startswith(b"PUT /x HTTP/1.1\r\nContent-Length: 0\r\n")
    assert b"\r\nHost: evil.example\r\n" in p.received and b"127.0.0.1" not in p.received
    with Peer(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody") as p:
        r = uvhlib.request(p.port, "HEAD", "/x")
    assert r.status == 200 and r.body == b"" and b"Content-Length" not in p.received


def test_eof_and_reset_end_the_stream():
    with Peer(b"bye", then="close", read_request=False) as p, RawConn(p.port) as c:
        assert c.read_to_eof() == (b"bye", True)
    with Peer(b"", then="reset") as p, RawConn(p.port) as c:
        c.send(b"GET / HTTP/1.1\r\n\r\n")
        assert c.expect_eof()
    with Peer(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", then="close",
              read_request=False) as p, RawConn(p.port) as c:
        with pytest.raises(PeerClosed):
            c.read_response()
    with Peer(b"x", then="close", read_request=False) as p, RawConn(p.port) as c:
        with pytest.raises(AssertionError):
            c.expect_eof()


def test_deadlines_bound_every_read():
    with Peer(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome", then="hold",
              read_request=False) as p, RawConn(p.port, timeout=5) as c:
        start = time.monotonic()
        with pytest.raises(socket.timeout):
            c.read_response(timeout=0.3)
        assert time.monotonic() - start < 3
        start = time.monotonic()
        # The part of the body that came stays readable; still open.
        assert c.read_to_eof(timeout=0.2) == (b"some", False)
        assert not c.expect_eof(timeout=0.2)
        with pytest.raises(AssertionError, match="stalled"):
            c.read_some(10, timeout=0.2)
        assert time.monotonic() - start < 3


def test_recv_to_eof_on_a_plain_socket():
    with Peer(b"all of it", then="close", read_request=False) as p:
        with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
            assert uvhlib.recv_to_eof(s) == b"all of it"
    with Peer(b"", then="hold", read_request=False) as p:
        with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
            with pytest.raises(AssertionError, match="no EOF"):
                uvhlib.recv_to_eof(s, timeout=0.2)
