// Range requests (RFC 9110 §14) and precompressed variants through a real
// socket, from the cache (small files) and from the disk with sendfile.
#include <catch2/catch.hpp>

#include "protocol/http_date.h"
#include "test/integration/harness.h"

using namespace uvh::test;

namespace {

std::string make_content(size_t n) {
    std::string s;
    for (size_t i = 0; s.size() < n; ++i) s += static_cast<char>('a' + i % 26);
    return s;
}

struct RangeCase {
    const char* range;
    int status;
    uint64_t first, last;  // for single-part 206
};

struct Part {
    std::string content_range;
    std::string body;
};

// Splits a multipart/byteranges body into its parts.
std::vector<Part> parse_multipart(const std::string& body, const std::string& boundary) {
    std::vector<Part> parts;
    std::string delim = "\r\n--" + boundary;
    size_t pos = body.find(delim);
    while (pos != std::string::npos) {
        pos += delim.size();
        if (body.compare(pos, 2, "--") == 0) break;
        size_t head_end = body.find("\r\n\r\n", pos);
        std::string head = body.substr(pos, head_end - pos);
        size_t next = body.find(delim, head_end + 4);
        Part p;
        size_t cr = head.find("Content-Range: ");
        p.content_range = head.substr(cr + 15, head.find("\r\n", cr) - cr - 15);
        p.body = body.substr(head_end + 4, next - head_end - 4);
        parts.push_back(p);
        pos = next;
    }
    return parts;
}

}  // namespace

TEST_CASE("single ranges: every form, clipping, and 416", "[range]") {
    size_t inline_max = GENERATE(size_t(64 * 1024), size_t(16));  // cache/memory vs sendfile
    TestServer t([&](uvh::Config& c) { c.inline_max = inline_max; });
    const std::string content = make_content(1000);
    t.root().write("r.bin", content);
    const std::vector<RangeCase> cases = {
        {"bytes=0-0", 206, 0, 0},          {"bytes=0-99", 206, 0, 99},
        {"bytes=-100", 206, 900, 999},     {"bytes=900-", 206, 900, 999},
        {"bytes=990-5000", 206, 990, 999}, {"bytes=-5000", 206, 0, 999},
        {"BYTES=10-19", 206, 10, 19},      {"bytes= 5-9 ", 206, 5, 9},
        {"bytes=0-499,100-599", 206, 0, 599},  // overlapping: coalesced
        {"bytes=-0", 416, 0, 0},           {"bytes=1000-", 416, 0, 0},
        {"bytes=1000-2000", 416, 0, 0},    {"bytes=5-1", 200, 0, 0},
        {"items=0-5", 200, 0, 0},          {"bytes=abc", 200, 0, 0},
        {"bytes=", 200, 0, 0},
    };
    for (const RangeCase& c : cases) {
        INFO(c.range << " inline_max=" << inline_max);
        HttpResponse r = t.get("/r.bin", std::string("Range: ") + c.range + "\r\n");
        CHECK(r.status == c.status);
        CHECK(r.header("accept-ranges") == "bytes");
        if (c.status == 206) {
            std::string expect = content.substr(c.first, c.last - c.first + 1);
            CHECK(r.body == expect);
            CHECK(r.header("content-length") == std::to_string(expect.size()));
            CHECK(r.header("content-range") ==
                  "bytes " + std::to_string(c.first) + "-" + std::to_string(c.last) + "/1000");
        } else if (c.status == 416) {
            CHECK(r.header("content-range") == "bytes */1000");
        } else {
            CHECK(r.body == content);
        }
    }
}

TEST_CASE("several ranges: multipart/byteranges streamed with an exact length", "[range]") {
    size_t inline_max = GENERATE(size_t(64 * 1024), size_t(16));
    TestServer t([&](uvh::Config& c) { c.inline_max = inline_max; });
    const std::string content = make_content(5000);
    t.root().write("m.txt", content);
    HttpResponse r = t.get("/m.txt", "Range: bytes=0-9,1000-1099,-10\r\n");
    REQUIRE(r.status == 206);
    std::string ct = r.header("content-type");
    REQUIRE(ct.rfind("multipart/byteranges; boundary=", 0) == 0);
    std::string boundary = ct.substr(ct.find('=') + 1);
    CHECK(r.header("content-length") == std::to_string(r.body.size()));
    auto parts = parse_multipart(r.body, boundary);
    REQUIRE(parts.size() == 3);
    CHECK(parts[0].content_range == "bytes 0-9/5000");
    CHECK(parts[0].body == content.substr(0, 10));
    CHECK(parts[1].content_range == "bytes 1000-1099/5000");
    CHECK(parts[1].body == content.substr(1000, 100));
    CHECK(parts[2].content_range == "bytes 4990-4999/5000");
    CHECK(parts[2].body == content.substr(4990));
    CHECK(r.body.find("Content-Type: text/plain; charset=utf-8") != std::string::npos);
}

TEST_CASE("excessive ranges: 16 are served, 17 get the whole file", "[range]") {
    TestServer t;
    const std::string content = make_content(10000);
    t.root().write("x.txt", content);
    auto ranges = [](int n) {
        std::string h = "Range: bytes=";
        for (int i = 0; i < n; ++i) h += (i ? "," : "") + std::to_string(i * 500) + "-" + std::to_string(i * 500 + 9);
        return h + "\r\n";
    };
    HttpResponse sixteen = t.get("/x.txt", ranges(16));
    CHECK(sixteen.status == 206);
    HttpResponse seventeen = t.get("/x.txt", ranges(17));
    CHECK(seventeen.status == 200);
    CHECK(seventeen.body == content);
    // Many overlapping ranges collapse into one part: no amplification.
    std::string overlapping = "Range: bytes=";
    for (int i = 0; i < 16; ++i) overlapping += (i ? "," : "") + std::string("0-9999");
    HttpResponse o = t.get("/x.txt", overlapping + "\r\n");
    CHECK(o.status == 206);
    CHECK(o.body == content);
    CHECK(o.header("content-range") == "bytes 0-9999/10000");
}

TEST_CASE("If-Range: current validators give 206, stale ones the full 200", "[range][conditional]") {
    TestServer t;
    const std::string content = make_content(300);
    t.root().write("i.txt", content);
    HttpResponse base = t.get("/i.txt");
    std::string etag = base.header("etag");
    std::string lm = base.header("last-modified");
    time_t lm_t = *uvh::parse_http_date(lm);
    struct Case {
        std::string if_range;
        int status;
    };
    for (const Case& c : {Case{etag, 206}, Case{"\"stale\"", 200}, Case{"W/" + etag, 200}, Case{lm, 206},
                          Case{uvh::http_date(lm_t - 10), 200}, Case{"garbage", 200}}) {
        INFO(c.if_range);
        HttpResponse r = t.get("/i.txt", "Range: bytes=0-9\r\nIf-Range: " + c.if_range + "\r\n");
        CHECK(r.status == c.status);
        CHECK(r.body == (c.status == 206 ? content.substr(0, 10) : content));
    }
}

TEST_CASE("Range is ignored for HEAD and for other methods", "[range]") {
    TestServer t;
    t.root().write("h.txt", make_content(100));
    HttpResponse h = t.request("HEAD /h.txt HTTP/1.1\r\nHost: localhost\r\nRange: bytes=0-9\r\nConnection: close\r\n\r\n", true);
    CHECK(h.status == 200);
    CHECK(h.header("content-length") == "100");
}

TEST_CASE("a 416 on an empty file, and a suffix range on it", "[range]") {
    TestServer t;
    t.root().write("empty.txt", "");
    CHECK(t.get("/empty.txt", "Range: bytes=0-0\r\n").status == 416);
    HttpResponse s = t.get("/empty.txt", "Range: bytes=-5\r\n");
    CHECK(s.status == 200);
    CHECK(s.body.empty());
}

TEST_CASE("precompressed variants: negotiation, Vary, own ETag, ranges on encoded bytes", "[variants]") {
    bool cached = GENERATE(true, false);
    TestServer t([&](uvh::Config& c) {
        if (!cached) c.cache_size = 0;
    });
    t.root().write("app.js", "console.log('plain');");
    t.root().write("app.js.gz", "GZIP-BYTES-0123456789");
    t.root().write("app.js.br", "BROTLI-BYTES");
    t.root().write("only.css", "body{}");
    t.root().write("only.css.gz", "GZ");
    t.root().write("plain.txt", "no variants");
    INFO((cached ? "cached" : "disk"));

    HttpResponse identity = t.get("/app.js");
    CHECK(identity.body == "console.log('plain');");
    CHECK_FALSE(identity.has("content-encoding"));
    CHECK(identity.header("vary") == "Accept-Encoding");

    HttpResponse gz = t.get("/app.js", "Accept-Encoding: gzip\r\n");
    CHECK(gz.body == "GZIP-BYTES-0123456789");
    CHECK(gz.header("content-encoding") == "gzip");
    CHECK(gz.header("content-type") == "text/javascript; charset=utf-8");
    CHECK(gz.header("vary") == "Accept-Encoding");
    CHECK(gz.header("etag") != identity.header("etag"));

    HttpResponse br = t.get("/app.js", "Accept-Encoding: gzip, deflate, br\r\n");
    CHECK(br.header("content-encoding") == "br");
    CHECK(br.body == "BROTLI-BYTES");
    CHECK(t.get("/app.js", "Accept-Encoding: br;q=0.4, gzip;q=0.8\r\n").header("content-encoding") == "gzip");
    CHECK(t.get("/app.js", "Accept-Encoding: gzip;q=0, br;q=0\r\n").body == "console.log('plain');");
    CHECK(t.get("/app.js", "Accept-Encoding: *\r\n").header("content-encoding") == "br");
    CHECK(t.get("/only.css", "Accept-Encoding: br\r\n").body == "body{}");
    CHECK(t.get("/only.css", "Accept-Encoding: br\r\n").header("vary") == "Accept-Encoding");
    // A text file may be compressed on the fly (issue 12): its responses
    // vary with Accept-Encoding even without siblings and under the
    // minimum size (identity;q=0 gets it compressed).
    CHECK(t.get("/plain.txt", "Accept-Encoding: gzip\r\n").header("vary") == "Accept-Encoding");

    // 304 for the variant carries Vary too; ranges apply to encoded bytes.
    HttpResponse nm = t.get("/app.js", "Accept-Encoding: gzip\r\nIf-None-Match: " + gz.header("etag") + "\r\n");
    CHECK(nm.status == 304);
    CHECK(nm.header("vary") == "Accept-Encoding");
    HttpResponse part = t.get("/app.js", "Accept-Encoding: gzip\r\nRange: bytes=0-3\r\n");
    CHECK(part.status == 206);
    CHECK(part.body == "GZIP");
    CHECK(part.header("content-range") == "bytes 0-3/21");
    // The variant files themselves are ordinary files too.
    CHECK(t.get("/app.js.gz").header("content-type") == "application/gzip");
}
