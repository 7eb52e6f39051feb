// Conditional requests through a real socket (RFC 9110 §13), for GET, HEAD,
// PUT and DELETE, from the cache and from the disk.
#include <catch2/catch.hpp>

#include "protocol/http_date.h"
#include "test/integration/harness.h"

using namespace uvh::test;

namespace {

struct Case {
    const char* name;
    std::string header;  // full field line(s) without CRLF; "{E}" = current ETag, "{W}" = W/ETag,
                         // "{LM}" = Last-Modified, "{LM-1}", "{FUTURE}"
    int get_status;      // GET and HEAD
    int put_status;      // PUT (replacing an existing file)
    int delete_status;   // DELETE
};

std::string expand(std::string s, const std::string& etag, time_t lm) {
    auto repl = [&](const std::string& from, const std::string& to) {
        for (size_t p; (p = s.find(from)) != std::string::npos;) s.replace(p, from.size(), to);
    };
    repl("{E}", etag);
    repl("{W}", "W/" + etag);
    repl("{LM-1}", uvh::http_date(lm - 1));
    repl("{LM}", uvh::http_date(lm));
    repl("{FUTURE}", uvh::http_date(time(nullptr) + 86400));
    return s;
}

const std::vector<Case> kCases = {
    // If-Match: strong comparison (RFC 9110 §13.1.1)
    {"If-Match matching", "If-Match: {E}", 200, 204, 204},
    {"If-Match not matching", "If-Match: \"nope\"", 412, 412, 412},
    {"If-Match *", "If-Match: *", 200, 204, 204},
    {"If-Match list containing the tag", "If-Match: \"a\", {E}, \"b\"", 200, 204, 204},
    {"If-Match weak tag never matches", "If-Match: {W}", 412, 412, 412},
    {"If-Match garbage", "If-Match: garbage", 412, 412, 412},
    // If-None-Match: weak comparison (§13.1.2)
    {"If-None-Match matching", "If-None-Match: {E}", 304, 412, 412},
    {"If-None-Match weak tag matches weakly", "If-None-Match: {W}", 304, 412, 412},
    {"If-None-Match not matching", "If-None-Match: \"nope\"", 200, 204, 204},
    {"If-None-Match *", "If-None-Match: *", 304, 412, 412},
    {"If-None-Match list", "If-None-Match: \"x\", \"y\", {E}", 304, 412, 412},
    {"If-None-Match garbage", "If-None-Match: garbage", 200, 204, 204},
    // If-Modified-Since: GET/HEAD only (§13.1.3)
    {"If-Modified-Since at Last-Modified", "If-Modified-Since: {LM}", 304, 204, 204},
    {"If-Modified-Since before Last-Modified", "If-Modified-Since: {LM-1}", 200, 204, 204},
    {"If-Modified-Since in the future is ignored", "If-Modified-Since: {FUTURE}", 200, 204, 204},
    {"If-Modified-Since invalid is ignored", "If-Modified-Since: yesterday", 200, 204, 204},
    {"If-None-Match overrides If-Modified-Since",
     "If-None-Match: \"nope\"\r\nIf-Modified-Since: {LM}", 200, 204, 204},
    // If-Unmodified-Since (§13.1.4)
    {"If-Unmodified-Since at Last-Modified", "If-Unmodified-Since: {LM}", 200, 204, 204},
    {"If-Unmodified-Since before Last-Modified", "If-Unmodified-Since: {LM-1}", 412, 412, 412},
    {"If-Unmodified-Since invalid is ignored", "If-Unmodified-Since: soon", 200, 204, 204},
    {"If-Match wins over a failing If-Unmodified-Since",
     "If-Match: {E}\r\nIf-Unmodified-Since: {LM-1}", 200, 204, 204},
};

}  // namespace

TEST_CASE("conditional GET/HEAD/PUT/DELETE table", "[conditional]") {
    bool cached = GENERATE(true, false);
    TestServer t([&](uvh::Config& c) {
        if (!cached) c.cache_size = 0;
        c.cache_control = "max-age=60";
    });
    const std::string content = "conditional content\n";
    // Through the server, so the cache drops the old version at once.
    auto reset = [&] {
        // README: PUT answers 201 when it creates the file, 204 when it
        // replaces one (RFC 9110 §9.3.4).
        int expected = t.root().exists("c.txt") ? 204 : 201;
        HttpResponse r = t.request("PUT /c.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: " +
                                   std::to_string(content.size()) + "\r\nConnection: close\r\n\r\n" + content);
        REQUIRE(r.status == expected);
    };
    for (const Case& c : kCases) {
        reset();
        HttpResponse base = t.get("/c.txt");
        std::string etag = base.header("etag");
        time_t lm = *uvh::parse_http_date(base.header("last-modified"));
        std::string field = expand(c.header, etag, lm) + "\r\n";
        INFO(c.name << (cached ? " (cached)" : " (disk)") << ": " << field);

        HttpResponse g = t.get("/c.txt", field);
        CHECK(g.status == c.get_status);
        if (g.status == 304) {
            // RFC 9110 §15.4.5: same ETag and caching fields, no body.
            CHECK(g.header("etag") == etag);
            CHECK(g.header("cache-control") == "max-age=60");
            CHECK(g.body.empty());
            CHECK_FALSE(g.has("content-length"));
        } else if (g.status == 200) {
            CHECK(g.body == content);
        }
        HttpResponse h = t.request("HEAD /c.txt HTTP/1.1\r\nHost: localhost\r\n" + field + "Connection: close\r\n\r\n", true);
        CHECK(h.status == c.get_status);

        HttpResponse p = t.request("PUT /c.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n" + field +
                                   "Connection: close\r\n\r\nnew");
        CHECK(p.status == c.put_status);
        CHECK(t.root().read("c.txt") == (p.status == 204 ? "new" : content));

        reset();
        base = t.get("/c.txt");
        field = expand(c.header, base.header("etag"), *uvh::parse_http_date(base.header("last-modified"))) + "\r\n";
        HttpResponse d = t.request("DELETE /c.txt HTTP/1.1\r\nHost: localhost\r\n" + field + "Connection: close\r\n\r\n");
        CHECK(d.status == c.delete_status);
        CHECK(t.root().exists("c.txt") == (d.status != 204));
    }
}

TEST_CASE("preconditions on a missing resource", "[conditional]") {
    TestServer t;
    // GET of a missing file is a 404 whatever the conditions (RFC 9110 §13.2.1).
    CHECK(t.get("/none.txt", "If-Match: *\r\n").status == 404);
    HttpResponse put_star = t.request("PUT /none.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nIf-Match: *\r\n"
                                      "Connection: close\r\n\r\nx");
    CHECK(put_star.status == 412);
    HttpResponse create = t.request("PUT /none.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nIf-None-Match: *\r\n"
                                    "Connection: close\r\n\r\nx");
    CHECK(create.status == 201);
    HttpResponse del = t.request("DELETE /missing.txt HTTP/1.1\r\nHost: localhost\r\nIf-Match: *\r\nConnection: close\r\n\r\n");
    CHECK(del.status == 412);
}

TEST_CASE("Cache-Control: --cache-control on files, no-cache on listings and database.txt", "[cache-control]") {
    TestServer t([](uvh::Config& c) { c.cache_control = "public, max-age=300"; });
    t.root().write("f.txt", "f");
    t.root().write("database.txt", "1 a=b\n");
    CHECK(t.get("/f.txt").header("cache-control") == "public, max-age=300");
    CHECK(t.get("/").header("cache-control") == "no-cache");
    CHECK(t.get("/database.txt").header("cache-control") == "no-cache");
    TestServer none;
    none.root().write("f.txt", "f");
    CHECK_FALSE(none.get("/f.txt").has("cache-control"));
}

TEST_CASE("ETag and Last-Modified agree across GET, HEAD, 206, 304 and PUT", "[conditional]") {
    TestServer t;
    HttpResponse put = t.request("PUT /v.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789");
    REQUIRE(put.status == 201);
    std::string etag = put.header("etag");
    std::string lm = put.header("last-modified");
    HttpResponse get = t.get("/v.txt");
    HttpResponse head = t.request("HEAD /v.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", true);
    HttpResponse part = t.get("/v.txt", "Range: bytes=0-1\r\n");
    HttpResponse nm = t.get("/v.txt", "If-None-Match: " + etag + "\r\n");
    for (const HttpResponse* r : {&get, &head, &part, &nm}) CHECK(r->header("etag") == etag);
    for (const HttpResponse* r : {&get, &head, &part}) CHECK(r->header("last-modified") == lm);
    CHECK(part.status == 206);
    CHECK(nm.status == 304);
}
