// The shared raw client's parser (raw_http.h): response framing and chunked
// decoding, byte for byte, without a socket.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include "test/common/raw_http.h"

using namespace uvh::test;

namespace {

struct Parsed {
    Parse result;
    HttpResponse r;
    size_t used = 0;
    std::string error;
};

Parsed parse(std::string_view buf, bool head_only = false, bool eof = false) {
    Parsed p;
    p.result = parse_response(buf, head_only, eof, p.r, p.used, &p.error);
    return p;
}

}  // namespace

TEST_CASE("raw_http: Content-Length framing, and what follows stays unread") {
    std::string two = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  padded \r\n\r\nhelloHTTP/1.1 204 No Content\r\n\r\n";
    auto p = parse(two);
    REQUIRE(p.result == Parse::Complete);
    CHECK(p.r.status == 200);
    CHECK(p.r.reason == "OK");
    CHECK(p.r.version == "HTTP/1.1");
    CHECK(p.r.framing == Framing::Length);
    CHECK(p.r.body == "hello");
    CHECK(p.r.header("x-a") == "padded");
    CHECK(p.r.header("CONTENT-LENGTH") == "5");
    CHECK(p.used == two.find("HTTP/1.1 204"));
    CHECK(p.r.raw == two.substr(0, p.used));
    auto q = parse(std::string_view(two).substr(p.used));
    REQUIRE(q.result == Parse::Complete);
    CHECK(q.r.status == 204);
    CHECK(q.r.framing == Framing::None);
}

TEST_CASE("raw_http: every prefix of a response is incomplete") {
    std::string full = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    for (const std::string& s : {full, chunked}) {
        for (size_t n = 0; n < s.size(); ++n) {
            INFO(n);
            CHECK(parse(std::string_view(s).substr(0, n)).result == Parse::Incomplete);
        }
        CHECK(parse(s).result == Parse::Complete);
    }
}

TEST_CASE("raw_http: no body for HEAD, 1xx, 204 and 304, whatever the head says") {
    auto head = parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHTTP/1.1", true);
    REQUIRE(head.result == Parse::Complete);
    CHECK(head.r.body.empty());
    CHECK(head.used == head.r.raw.size());
    auto te_head = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true);
    REQUIRE(te_head.result == Parse::Complete);
    CHECK(te_head.r.framing == Framing::None);
    for (const char* s : {"HTTP/1.1 100 Continue\r\n\r\nx", "HTTP/1.1 304 Not Modified\r\nContent-Length: 4\r\n\r\nx",
                          "HTTP/1.1 204 No Content\r\n\r\nx"}) {
        auto p = parse(s);
        REQUIRE(p.result == Parse::Complete);
        CHECK(p.r.body.empty());
        CHECK(p.used == std::string_view(s).size() - 1);
    }
}

TEST_CASE("raw_http: close-delimited body needs the EOF") {
    std::string s = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end";
    CHECK(parse(s).result == Parse::Incomplete);
    auto p = parse(s, false, true);
    REQUIRE(p.result == Parse::Complete);
    CHECK(p.r.framing == Framing::Close);
    CHECK(p.r.body == "until the end");
    CHECK(p.used == s.size());
}

TEST_CASE("raw_http: chunked with extensions and trailers") {
    std::string s =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"
        "5;name=value\r\nhello\r\n"
        "1A ; a ; b=\"q\"\r\n" + std::string(26, 'x') + "\r\n"
        "000;last\r\nX-Checksum: abc\r\nX-Other:1\r\n\r\n"
        "NEXT";
    auto p = parse(s);
    REQUIRE(p.result == Parse::Complete);
    CHECK(p.r.framing == Framing::Chunked);
    CHECK(p.r.body == "hello" + std::string(26, 'x'));
    CHECK(p.r.chunk_sizes == std::vector<uint64_t>{5, 26});
    CHECK(p.r.trailers.size() == 2);
    CHECK(p.r.trailers.find("x-checksum")->second == "abc");
    CHECK(p.r.trailers.find("x-other")->second == "1");
    CHECK(p.used == s.size() - 4);
}

TEST_CASE("raw_http: chunked takes precedence over Content-Length, and an empty chunked body") {
    auto p = parse("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    REQUIRE(p.result == Parse::Complete);
    CHECK(p.r.framing == Framing::Chunked);
    CHECK(p.r.body.empty());
    CHECK(p.r.chunk_sizes.empty());
}

TEST_CASE("raw_http: malformed chunked framing is an error, not a guess") {
    const char* head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (const char* body : {
             "3\r\nabcX\r\n0\r\n\r\n",           // no CRLF after the data
             "3\r\nabc\r\n0\r\n\n",              // bare LF
             "3\nabc\r\n0\r\n\r\n",              // bare LF after the size
             "x\r\n\r\n",                        // no size
             "3 junk\r\nabc\r\n0\r\n\r\n",       // not an extension
             "10000000000000000\r\n",            // 2^64: overflows
             "0\r\nbad trailer\r\n\r\n",         // a trailer line without a colon
         }) {
        INFO(body);
        auto p = parse(std::string(head) + body);
        CHECK(p.result == Parse::Malformed);
        CHECK_FALSE(p.error.empty());
    }
}

TEST_CASE("raw_http: strict chunked decoding is what uvhttpd sends, nothing more") {
    ChunkedBody out;
    std::string ok = "1f\r\n" + std::string(31, 'a') + "\r\n1\r\nb\r\n0\r\n\r\n";
    REQUIRE(decode_chunked(ok, 0, true, out) == Parse::Complete);
    CHECK(out.data == std::string(31, 'a') + "b");
    CHECK(out.sizes == std::vector<uint64_t>{31, 1});
    CHECK(out.end == ok.size());
    for (const char* s : {"5;x\r\nhello\r\n0\r\n\r\n", "05\r\nhello\r\n0\r\n\r\n", "0\r\nX: y\r\n\r\n", "00\r\n\r\n"}) {
        INFO(s);
        CHECK(decode_chunked(s, 0, true, out) == Parse::Malformed);
        CHECK(decode_chunked(s, 0, false, out) == Parse::Complete);
    }
    // Incomplete, not malformed, while the data is still on its way.
    CHECK(decode_chunked("5\r\nhel", 0, true, out) == Parse::Incomplete);
    CHECK(decode_chunked("ffffffffffffffff\r\nx", 0, true, out) == Parse::Incomplete);
}

TEST_CASE("raw_http: a bad status line or field line is malformed") {
    for (const char* s : {"HTTP/1.1 2x0 OK\r\n\r\n", "garbage\r\n\r\n", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"}) {
        INFO(s);
        CHECK(parse(s).result == Parse::Malformed);
    }
    auto p = parse("HTTP/1.0 200\r\nContent-Length: 0\r\n\r\n");
    REQUIRE(p.result == Parse::Complete);
    CHECK(p.r.reason.empty());
    CHECK(p.r.version == "HTTP/1.0");
}
