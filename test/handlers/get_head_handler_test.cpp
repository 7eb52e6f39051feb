// handle_get (handlers/get_head.cpp) driven through the fake Exchange: no
// socket, the real Site over a temporary root, jobs run on the test thread.
// The outcomes are those README.md documents ("curl cookbook", "What it
// answers") and RFC 9110 §13-§15 require.
#include <catch2/catch.hpp>

#include "handlers/get_head.h"
#include "handlers/listing.h"
#include "test/handlers/fake_exchange.h"

using namespace uvh;
using namespace uvh::test;

namespace {

// No small-file cache: every request reaches the disk path (the cache has
// a case of its own below).
Config no_cache() {
    Config c;
    c.cache_size = 0;
    c.open_file_cache = 0;  // descriptors are the exchange's alone
    return c;
}

FakeResponse get(FakeSite& s, std::string target, std::string fields = {}, std::string method = "GET") {
    FakeRequest r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.fields = std::move(fields);
    return serve(s, std::move(r), handle_get);
}

// A file larger than --inline-max (64 KiB): sent from its descriptor
// through a body source, not from memory.
std::string big_content() {
    std::string data;
    for (size_t i = 0; data.size() < 200 * 1024; ++i) data += std::to_string(i * 2654435761u) + "\n";
    return data;
}

// The parts of a multipart/byteranges body (RFC 9110 §14.6): each part's
// Content-Range and bytes.
std::vector<std::pair<std::string, std::string>> byteranges(const std::string& body, const std::string& boundary) {
    std::vector<std::pair<std::string, std::string>> parts;
    std::string delim = "--" + boundary;
    size_t pos = body.find(delim);
    while (pos != std::string::npos) {
        pos += delim.size();
        if (body.compare(pos, 2, "--") == 0) break;  // the closing delimiter
        size_t head_end = body.find("\r\n\r\n", pos);
        if (head_end == std::string::npos) break;
        std::string head = body.substr(pos, head_end - pos);
        size_t cr = head.find("Content-Range: ");
        std::string range = cr == std::string::npos ? "" : head.substr(cr + 15, head.find("\r\n", cr) - cr - 15);
        size_t next = body.find("\r\n" + delim, head_end + 4);
        if (next == std::string::npos) break;
        parts.emplace_back(range, body.substr(head_end + 4, next - head_end - 4));
        pos = next + 2;
    }
    return parts;
}

}  // namespace

TEST_CASE("handler get: 200 with validators, type and the whole body", "[handler][get]") {
    FakeSite s(no_cache());
    s.root().write("hello.txt", "hello world\n");
    FakeExchange ex(s, {"GET", "/hello.txt"});
    FakeResponse r = ex.run(handle_get);
    CHECK(r.status == 200);
    CHECK(r.body == "hello world\n");
    CHECK(r.header("content-type") == "text/plain; charset=utf-8");
    CHECK(r.header("content-length") == "12");
    CHECK(r.header("etag").size() > 2);
    CHECK(r.header("etag").front() == '"');
    CHECK(r.has("last-modified"));
    CHECK(r.header("accept-ranges") == "bytes");
    CHECK_FALSE(r.has("x-frame-options"));
    CHECK(ex.offloads() == 1);
    CHECK(ex.job_classes() == std::vector<JobClass>{JobClass::Quick});
    CHECK_FALSE(ex.job_released_at_end());  // the descriptor was handed on, not left to core
}

TEST_CASE("handler get: a file over --inline-max goes out through a source, whole", "[handler][get]") {
    FakeSite s(no_cache());
    std::string data = big_content();
    s.root().write("big.txt", data);
    FakeExchange ex(s, {"GET", "/big.txt"});
    FakeResponse r = ex.run(handle_get);
    CHECK(r.status == 200);
    CHECK(r.header("content-length") == std::to_string(data.size()));
    CHECK(r.body == data);
    CHECK(ex.source_descriptors().size() == 1);  // the source owned the descriptor and gave it back
    CHECK_FALSE(ex.job_released_at_end());
}

TEST_CASE("handler get: a large file's descriptor is kept, and the next GET needs no job before sendfile", "[handler][get]") {
    Config c;
    c.cache_size = 0;
    FakeSite s(c);
    std::string data = big_content();
    s.root().write("big.txt", data);
    // The descriptor stays open in the site's cache after the first
    // exchange: that is the point, so the fake's leak check is not run.
    FakeExchange first(s, {"GET", "/big.txt"});
    FakeResponse r1 = first.run_unchecked(handle_get);
    CHECK(r1.status == 200);
    CHECK(r1.body == data);
    CHECK(first.offloads() == 1);
    CHECK(first.source_descriptors().empty());  // shared: not the exchange's to close
    FakeExchange second(s, {"GET", "/big.txt"});
    FakeResponse r2 = second.run_unchecked(handle_get);
    CHECK(r2.status == 200);
    CHECK(r2.body == data);
    CHECK(r2.header("etag") == r1.header("etag"));
    CHECK(second.offloads() == 0);
    FakeExchange missing(s, {"GET", "/nope.txt"});
    CHECK(missing.run_unchecked(handle_get).status == 404);
    CHECK(missing.offloads() == 1);
    FakeExchange again(s, {"GET", "/nope.txt"});
    CHECK(again.run_unchecked(handle_get).status == 404);
    CHECK(again.offloads() == 0);  // the failed open is remembered
}

TEST_CASE("handler get: HTML gets X-Frame-Options", "[handler][get]") {
    FakeSite s(no_cache());
    s.root().write("page.html", "<p>hi</p>");
    FakeResponse r = get(s, "/page.html");
    CHECK(r.status == 200);
    CHECK(r.header("content-type") == "text/html; charset=utf-8");
    CHECK(r.header("x-frame-options") == "DENY");
}

TEST_CASE("handler get: 304 for a matching If-None-Match, 200 for another tag", "[handler][get][conditional]") {
    FakeSite s(no_cache());
    s.root().write("a.txt", "abc");
    std::string etag = get(s, "/a.txt").header("etag");
    REQUIRE(!etag.empty());

    FakeResponse r = get(s, "/a.txt", "If-None-Match: " + etag + "\r\n");
    CHECK(r.status == 304);
    CHECK(r.body.empty());
    CHECK(r.header("etag") == etag);  // RFC 9110 §15.4.5: the validators a 200 would carry
    CHECK_FALSE(r.has("content-length"));

    FakeResponse other = get(s, "/a.txt", "If-None-Match: \"nope\"\r\n");
    CHECK(other.status == 200);
    CHECK(other.body == "abc");
}

TEST_CASE("handler get: 412 when If-Match fails", "[handler][get][conditional]") {
    FakeSite s(no_cache());
    s.root().write("a.txt", "abc");
    FakeResponse r = get(s, "/a.txt", "If-Match: \"other\"\r\n");
    CHECK(r.status == 412);
    CHECK(r.body.rfind("412 Precondition Failed", 0) == 0);
}

TEST_CASE("handler get: one range is a 206 with Content-Range", "[handler][get][range]") {
    SECTION("a small file, from memory") {
        FakeSite s(no_cache());
        s.root().write("digits.txt", "0123456789");
        FakeResponse r = get(s, "/digits.txt", "Range: bytes=2-5\r\n");
        CHECK(r.status == 206);
        CHECK(r.header("content-range") == "bytes 2-5/10");
        CHECK(r.header("content-length") == "4");
        CHECK(r.body == "2345");
    }
    SECTION("a large file, from its descriptor") {
        FakeSite s(no_cache());
        std::string data = big_content();
        s.root().write("big.txt", data);
        FakeExchange ex(s, {"GET", "/big.txt", "Range: bytes=100000-100099\r\n"});
        FakeResponse r = ex.run(handle_get);
        CHECK(r.status == 206);
        CHECK(r.header("content-range") == "bytes 100000-100099/" + std::to_string(data.size()));
        CHECK(r.body == data.substr(100000, 100));
        CHECK(ex.source_descriptors().size() == 1);
    }
    SECTION("a suffix range") {
        FakeSite s(no_cache());
        s.root().write("digits.txt", "0123456789");
        FakeResponse r = get(s, "/digits.txt", "Range: bytes=-3\r\n");
        CHECK(r.status == 206);
        CHECK(r.header("content-range") == "bytes 7-9/10");
        CHECK(r.body == "789");
    }
}

TEST_CASE("handler get: several ranges are multipart/byteranges", "[handler][get][range]") {
    auto check_parts = [](const FakeResponse& r, const std::string& data, const std::string& type) {
        CHECK(r.status == 206);
        std::string ct = r.header("content-type");
        REQUIRE(ct.rfind("multipart/byteranges; boundary=", 0) == 0);
        std::string boundary = ct.substr(std::string("multipart/byteranges; boundary=").size());
        CHECK(r.header("content-length") == std::to_string(r.body.size()));
        CHECK_FALSE(r.has("content-range"));
        auto parts = byteranges(r.body, boundary);
        REQUIRE(parts.size() == 2);
        CHECK(parts[0].first == "bytes 0-9/" + std::to_string(data.size()));
        CHECK(parts[0].second == data.substr(0, 10));
        CHECK(parts[1].first == "bytes 100-109/" + std::to_string(data.size()));
        CHECK(parts[1].second == data.substr(100, 10));
        CHECK(r.body.find("Content-Type: " + type) != std::string::npos);
        CHECK(r.body.size() >= 2 + boundary.size() + 2);
        CHECK(r.body.substr(r.body.size() - boundary.size() - 6) == "--" + boundary + "--\r\n");
    };
    SECTION("from a source over the descriptor") {
        FakeSite s(no_cache());
        std::string data = big_content();
        s.root().write("big.txt", data);
        FakeExchange ex(s, {"GET", "/big.txt", "Range: bytes=0-9,100-109\r\n"});
        FakeResponse r = ex.run(handle_get);
        check_parts(r, data, "text/plain; charset=utf-8");
        CHECK(ex.source_descriptors().size() == 1);
    }
    SECTION("from memory") {
        FakeSite s(no_cache());
        std::string data(1000, 'x');
        for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 26);
        s.root().write("small.txt", data);
        check_parts(get(s, "/small.txt", "Range: bytes=0-9,100-109\r\n"), data, "text/plain; charset=utf-8");
    }
}

TEST_CASE("handler get: an unsatisfiable range is a 416 with bytes */length", "[handler][get][range]") {
    FakeSite s(no_cache());
    s.root().write("digits.txt", "0123456789");
    FakeResponse r = get(s, "/digits.txt", "Range: bytes=100-\r\n");
    CHECK(r.status == 416);
    CHECK(r.header("content-range") == "bytes */10");
    CHECK(r.header("content-type") == "text/plain; charset=utf-8");
    CHECK(r.body.rfind("416 Range Not Satisfiable", 0) == 0);
}

TEST_CASE("handler get: If-Range with another tag gives the whole file", "[handler][get][range]") {
    FakeSite s(no_cache());
    s.root().write("digits.txt", "0123456789");
    FakeResponse r = get(s, "/digits.txt", "Range: bytes=2-5\r\nIf-Range: \"stale\"\r\n");
    CHECK(r.status == 200);
    CHECK(r.body == "0123456789");
}

TEST_CASE("handler head: GET's head, no body", "[handler][head]") {
    FakeSite s(no_cache());
    std::string data = big_content();
    s.root().write("big.txt", data);
    s.root().write("small.txt", "tiny");
    for (const char* path : {"/big.txt", "/small.txt"}) {
        INFO(path);
        FakeResponse g = get(s, path);
        FakeExchange ex(s, {"HEAD", path});
        FakeResponse h = ex.run(handle_get);
        CHECK(h.status == 200);
        CHECK(h.body.empty());
        CHECK(h.header("content-length") == g.header("content-length"));
        CHECK(h.header("etag") == g.header("etag"));
        CHECK(h.header("last-modified") == g.header("last-modified"));
        CHECK(h.header("content-type") == g.header("content-type"));
    }
}

TEST_CASE("handler get: a directory without its slash is a 301 to the slash form", "[handler][get][dir]") {
    FakeSite s(no_cache());
    s.root().mkdir("docs");
    FakeResponse r = get(s, "/docs?x=1");
    CHECK(r.status == 301);
    CHECK(r.header("location") == "/docs/?x=1");
    FakeResponse enc = get(s, "/d%6fcs");
    CHECK(enc.status == 301);
    CHECK(enc.header("location") == "/d%6fcs/");
    FakeResponse evil = get(s, "//docs");
    CHECK(evil.status == 301);
    CHECK(evil.header("location") == "/docs/");
}

TEST_CASE("handler get: a directory serves its index.html", "[handler][get][dir]") {
    FakeSite s(no_cache());
    s.root().write("site/index.html", "<h1>home</h1>");
    FakeResponse r = get(s, "/site/");
    CHECK(r.status == 200);
    CHECK(r.body == "<h1>home</h1>");
    CHECK(r.header("content-type") == "text/html; charset=utf-8");
}

TEST_CASE("handler get: 404 for what is not there", "[handler][get][errors]") {
    FakeSite s(no_cache());
    s.root().write("file.txt", "x");
    for (const char* p : {"/nope", "/nope/", "/dir/nope.txt", "/file.txt/"}) {
        INFO(p);
        FakeResponse r = get(s, p);
        CHECK(r.status == 404);
        CHECK(r.header("content-type") == "text/plain; charset=utf-8");
        CHECK(r.body.rfind("404 Not Found", 0) == 0);
        CHECK(r.body.back() == '\n');
        CHECK(r.body.find('\n') == r.body.size() - 1);  // one line
    }
}

TEST_CASE("handler get: precompressed variants by Accept-Encoding", "[handler][get][encoding]") {
    FakeSite s(no_cache());
    s.root().write("app.js", "IDENTITY");
    s.root().write("app.js.gz", "GZIPPED");
    s.root().write("app.js.br", "BROTLI");
    s.root().write("only.css", "IDENTITY");
    s.root().write("only.css.gz", "GZIPPED");

    FakeResponse none = get(s, "/app.js");
    CHECK(none.body == "IDENTITY");
    CHECK_FALSE(none.has("content-encoding"));
    CHECK(none.header("vary") == "Accept-Encoding");
    CHECK(none.header("content-type") == "text/javascript; charset=utf-8");

    FakeResponse gz = get(s, "/app.js", "Accept-Encoding: gzip\r\n");
    CHECK(gz.body == "GZIPPED");
    CHECK(gz.header("content-encoding") == "gzip");
    CHECK(gz.header("content-type") == "text/javascript; charset=utf-8");  // the type of app.js, not of .gz
    CHECK(gz.header("vary") == "Accept-Encoding");
    CHECK(gz.header("content-length") == "7");

    FakeResponse br = get(s, "/app.js", "Accept-Encoding: gzip, br\r\n");
    CHECK(br.body == "BROTLI");
    CHECK(br.header("content-encoding") == "br");

    FakeResponse prefer_gz = get(s, "/app.js", "Accept-Encoding: gzip;q=1, br;q=0.5\r\n");
    CHECK(prefer_gz.body == "GZIPPED");

    FakeResponse refused = get(s, "/app.js", "Accept-Encoding: br;q=0, gzip;q=0\r\n");
    CHECK(refused.body == "IDENTITY");

    FakeResponse only_gz = get(s, "/only.css", "Accept-Encoding: br\r\n");
    CHECK(only_gz.body == "IDENTITY");
    CHECK(only_gz.header("vary") == "Accept-Encoding");

    // The variants have validators of their own.
    CHECK(gz.header("etag") != none.header("etag"));
    CHECK(br.header("etag") != gz.header("etag"));
}

TEST_CASE("handler get: a cached file is answered at once, without a job", "[handler][get][cache]") {
    FakeSite s;  // the default configuration: the small-file cache is on
    s.root().write("c.txt", "cached");
    FakeExchange first(s, {"GET", "/c.txt"});
    FakeResponse a = first.run(handle_get);
    CHECK(first.offloads() == 1);
    FakeExchange second(s, {"GET", "/c.txt"});
    FakeResponse b = second.run(handle_get);
    CHECK(second.offloads() == 0);
    CHECK(b.status == 200);
    CHECK(b.body == "cached");
    CHECK(b.header("etag") == a.header("etag"));
    CHECK(b.header("content-length") == "6");
    FakeExchange cond(s, {"GET", "/c.txt", "If-None-Match: " + a.header("etag") + "\r\n"});
    CHECK(cond.run(handle_get).status == 304);
    CHECK(cond.offloads() == 0);
}

TEST_CASE("handler get: the record store's file is served at its URL with no-cache", "[handler][get][records]") {
    FakeSite s(no_cache());
    s.root().write("database.txt", "1 name=a\n");
    FakeResponse r = get(s, "/database.txt");
    CHECK(r.status == 200);
    CHECK(r.body == "1 name=a\n");
    CHECK(r.header("cache-control") == "no-cache");
}
