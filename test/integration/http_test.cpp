// HTTP/1.1 connection behaviour and the error statuses of the protocol
// layer, through a real socket (RFC 9112, RFC 9110).
#include <catch2/catch.hpp>

#include "test/integration/harness.h"

using namespace uvh::test;

TEST_CASE("keep-alive: HTTP/1.1 connections persist by default", "[http][keepalive]") {
    TestServer t;
    t.root().write("a.txt", "A");
    RawClient c(t);
    for (int i = 0; i < 5; ++i) {
        c.send("GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK_FALSE(r->has("connection"));
    }
}

TEST_CASE("keep-alive: Connection: close is honoured", "[http][keepalive]") {
    TestServer t;
    t.root().write("a.txt", "A");
    RawClient c(t);
    c.send("GET /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->header("connection") == "close");
    CHECK(c.wait_closed());
}

TEST_CASE("keep-alive: HTTP/1.0 closes unless the client asks", "[http][keepalive]") {
    TestServer t;
    t.root().write("a.txt", "A");
    {
        RawClient c(t);
        c.send("GET /a.txt HTTP/1.0\r\n\r\n");
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->version == "HTTP/1.1");
        CHECK(r->header("connection") == "close");
        CHECK(c.wait_closed());
    }
    {
        RawClient c(t);
        for (int i = 0; i < 3; ++i) {
            c.send("GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
            auto r = c.read_response();
            REQUIRE(r);
            CHECK(r->header("connection") == "keep-alive");
            CHECK(r->body == "A");
        }
    }
}

TEST_CASE("pipelined requests are answered in order", "[http][pipeline]") {
    TestServer t;
    t.root().write("1.txt", "one");
    t.root().write("2.txt", std::string(200000, '2'));  // sent with sendfile
    t.root().write("3.txt", "three");
    RawClient c(t);
    c.send("GET /1.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"
           "GET /2.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"
           "HEAD /3.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"
           "GET /missing HTTP/1.1\r\nHost: localhost\r\n\r\n"
           "GET /3.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    auto r1 = c.read_response();
    auto r2 = c.read_response();
    auto r3 = c.read_response(true);
    auto r4 = c.read_response();
    auto r5 = c.read_response();
    REQUIRE((r1 && r2 && r3 && r4 && r5));
    CHECK(r1->body == "one");
    CHECK(r2->body.size() == 200000);
    CHECK(r3->header("content-length") == "5");
    CHECK(r4->status == 404);
    CHECK(r5->body == "three");
}

TEST_CASE("a request split at every byte gives the same response", "[http][split]") {
    TestServer t;
    t.root().write("s.txt", "split");
    std::string req = "GET /s.txt HTTP/1.1\r\nHost: localhost\r\nUser-Agent: byte-by-byte\r\n\r\n";
    RawClient c(t);
    // Each byte is read by the server before the next is sent, so the
    // parser really sees the request one byte per read.
    for (char ch : req) c.send_and_wait_read(std::string_view(&ch, 1));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "split");
}

TEST_CASE("OPTIONS answers 204 with Allow, for a path and for *", "[http][options]") {
    TestServer t;
    for (const char* target : {"/", "*", "/anything"}) {
        HttpResponse r = t.request(std::string("OPTIONS ") + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        INFO(target);
        CHECK(r.status == 204);
        CHECK(r.header("allow").find("GET") != std::string::npos);
        CHECK(r.header("allow").find("HEAD") != std::string::npos);
        CHECK(r.header("allow").find("OPTIONS") != std::string::npos);
        CHECK_FALSE(r.has("content-length"));
        CHECK(r.body.empty());
    }
}

namespace {

struct ErrorCase {
    const char* name;
    std::string raw;
    int status;
};

}  // namespace

TEST_CASE("malformed and unsupported requests get the right status and close", "[http][errors]") {
    TestServer t;
    std::string long_target = "/" + std::string(9000, 'a');
    std::string big_headers;
    for (int i = 0; i < 20; ++i) big_headers += "X-Filler-" + std::to_string(i) + ": " + std::string(1000, 'v') + "\r\n";
    std::string many_headers;
    for (int i = 0; i < 120; ++i) many_headers += "X-" + std::to_string(i) + ": 1\r\n";
    std::vector<ErrorCase> cases = {
        {"garbage request line", "\x01\x02\x03 / HTTP/1.1\r\n\r\n", 400},
        {"missing Host on 1.1 (RFC 9112 3.2)", "GET / HTTP/1.1\r\n\r\n", 400},
        {"duplicate Host (RFC 9112 3.2)", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"malformed Host (RFC 9112 3.2)", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
        {"target over 8 KiB", "GET " + long_target + " HTTP/1.1\r\nHost: localhost\r\n\r\n", 414},
        {"header block over 16 KiB", "GET / HTTP/1.1\r\nHost: localhost\r\n" + big_headers + "\r\n", 431},
        {"more than 100 header fields", "GET / HTTP/1.1\r\nHost: localhost\r\n" + many_headers + "\r\n", 431},
        {"HTTP/2.0 in an HTTP/1 request line", "GET / HTTP/2.0\r\nHost: localhost\r\n\r\n", 505},
        {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: localhost\r\n\r\n", 505},
        {"unknown method", "FROB / HTTP/1.1\r\nHost: localhost\r\n\r\n", 501},
        {"asterisk with GET (RFC 9112 3.2.4)", "GET * HTTP/1.1\r\nHost: localhost\r\n\r\n", 400},
        {"unsupported expectation", "GET / HTTP/1.1\r\nHost: localhost\r\nExpect: tea\r\nContent-Length: 1\r\n\r\nx", 417},
        {"obs-fold (RFC 9112 5.2)", "GET / HTTP/1.1\r\nHost: localhost\r\nX: a\r\n b\r\n\r\n", 400},
        {"space before colon (RFC 9112 5.1)", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},
        {"CL and TE together (RFC 9112 6.3)",
         "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
        {"TE not ending in chunked (RFC 9112 6.3)", "POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
        {"unknown coding before chunked (RFC 9112 6.1)",
         "POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
        {"TE on HTTP/1.0 (RFC 9112 6.1)", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
        {"bad Content-Length", "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0x5\r\n\r\n", 400},
        {"path escaping the root", "GET /../x HTTP/1.1\r\nHost: localhost\r\n\r\n", 400},
        {"bare LF line endings", "GET / HTTP/1.1\nHost: x\n\n", 400},
    };
    for (const ErrorCase& c : cases) {
        INFO(c.name);
        RawClient client(t);
        client.send(c.raw);
        auto r = client.read_response();
        REQUIRE(r);
        CHECK(r->status == c.status);
        CHECK(r->header("connection") == "close");
        CHECK(r->header("content-type") == "text/plain; charset=utf-8");
        CHECK(r->body.find(std::to_string(c.status)) == 0);
        CHECK(r->body.find('\n') == r->body.size() - 1);  // one line
        CHECK(client.wait_closed());
    }
}

TEST_CASE("a known but unimplemented method is 501 and keeps the connection", "[http][errors]") {
    TestServer t;
    t.root().write("a.txt", "A");
    RawClient c(t);
    c.send("PURGE /a.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabc"
           "GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    auto r1 = c.read_response();
    auto r2 = c.read_response();
    REQUIRE((r1 && r2));
    CHECK(r1->status == 501);
    CHECK(r2->body == "A");
}

TEST_CASE("PATCH to a file is 405 with Allow (only upload resources take it) and keeps the connection",
          "[http][errors]") {
    TestServer t;
    t.root().write("a.txt", "A");
    RawClient c(t);
    c.send("PATCH /a.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabc"
           "GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    auto r1 = c.read_response();
    auto r2 = c.read_response();
    REQUIRE((r1 && r2));
    CHECK(r1->status == 405);
    CHECK(r1->header("allow").find("PUT") != std::string::npos);
    CHECK(r2->body == "A");
}

TEST_CASE("an unknown method sent a byte at a time is still 501", "[http][errors][split]") {
    TestServer t;
    RawClient c(t);
    for (char ch : std::string("FROB / HTTP/1.1\r\nHost: localhost\r\n\r\n")) c.send_and_wait_read(std::string_view(&ch, 1));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 501);
}

TEST_CASE("writes are open on loopback by default, and --read-only answers 405 with Allow", "[http][errors]") {
    // README: uploading and deleting are "open on loopback"; `--read-only`
    // makes "writes answer 405 with `Allow`" (RFC 9110 §15.5.6: a 405 must
    // list the methods the resource supports).
    const std::string del = "DELETE /f.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    {
        TestServer t;
        t.root().write("f.txt", "f");
        HttpResponse r = t.request(del);
        CHECK(r.status == 204);
        CHECK_FALSE(t.root().exists("f.txt"));
    }
    {
        TestServer t([](uvh::Config& c) { c.read_only = true; });
        t.root().write("f.txt", "f");
        HttpResponse r = t.request(del);
        CHECK(r.status == 405);
        CHECK(r.header("allow") == "GET, HEAD, OPTIONS, PROPFIND");
        CHECK(t.root().read("f.txt") == "f");
    }
}

TEST_CASE("a GET with a small body keeps the connection usable", "[http][body]") {
    TestServer t;
    t.root().write("a.txt", "A");
    RawClient c(t);
    c.send("GET /a.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello"
           "GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    auto r1 = c.read_response();
    auto r2 = c.read_response();
    REQUIRE((r1 && r2));
    CHECK(r1->body == "A");
    CHECK(r2->body == "A");
}

TEST_CASE("the header timeout answers 408 and closes", "[http][timeout]") {
    TestServer t([](uvh::Config& c) { c.header_timeout_ms = 300; });
    RawClient c(t);
    c.send("GET / HTTP/1.1\r\nHost: localhost\r\n");  // never finished
    auto r = c.read_response(false, std::chrono::seconds(5));
    REQUIRE(r);
    CHECK(r->status == 408);
    CHECK(c.wait_closed());
}

TEST_CASE("a head begun on a kept-alive connection is under the header timeout, not the idle one",
          "[http][timeout]") {
    // The connection falls idle (idle timeout: minutes), then a head starts
    // and stalls: the header timeout answers 408. A read holding only the
    // empty lines a client may send before a request starts it too (then
    // the connection just closes: nothing was asked).
    TestServer t([](uvh::Config& c) {
        c.header_timeout_ms = 300;
        c.idle_timeout_ms = 600'000;
    });
    t.root().write("a.txt", "A");
    auto kept_alive = [&](RawClient& c) {
        c.send("GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
        auto first = c.read_response();
        REQUIRE(first);
        CHECK(first->status == 200);
    };
    {
        RawClient c(t);
        kept_alive(c);
        c.send("GET /a.txt HTTP/1.1\r\nHo");
        auto r = c.read_response(false, std::chrono::seconds(5));
        REQUIRE(r);
        CHECK(r->status == 408);
        CHECK(c.wait_closed());
    }
    {
        RawClient c(t);
        kept_alive(c);
        c.send("\r\n");
        CHECK(c.wait_closed(std::chrono::seconds(5)));
    }
}

TEST_CASE("a connection that never sends is closed after the header timeout", "[http][timeout]") {
    TestServer t([](uvh::Config& c) { c.header_timeout_ms = 300; });
    RawClient c(t);
    CHECK(c.wait_closed(std::chrono::seconds(5)));
    CHECK(c.buffered().empty());
}

TEST_CASE("idle keep-alive connections close after the idle timeout", "[http][timeout]") {
    TestServer t([](uvh::Config& c) { c.idle_timeout_ms = 300; });
    t.root().write("a.txt", "A");
    RawClient c(t);
    c.send("GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    REQUIRE(c.read_response());
    CHECK(c.wait_closed(std::chrono::seconds(5)));
}

TEST_CASE("a half-closed client still gets its answers", "[http][eof]") {
    TestServer t;
    t.root().write("a.txt", "A");
    RawClient c(t);
    c.send("GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    c.shutdown_write();
    auto r1 = c.read_response();
    auto r2 = c.read_response();
    REQUIRE((r1 && r2));
    CHECK(r1->body == "A");
    CHECK(r2->body == "A");
    CHECK(c.wait_closed());
}
