// PUT, DELETE and MKCOL, and who may write (issue: write methods).
#include <dirent.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "protocol/auth.h"
#include "test/integration/harness.h"

using namespace uvh::test;

namespace {

std::string put(std::string_view path, std::string_view body, std::string_view extra = {}) {
    std::string r = "PUT " + std::string(path) + " HTTP/1.1\r\nHost: localhost\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n" + std::string(extra) + "\r\n" + std::string(body);
    return r;
}

std::string req(std::string_view method, std::string_view path, std::string_view extra = {}) {
    return std::string(method) + " " + std::string(path) + " HTTP/1.1\r\nHost: localhost\r\n" + std::string(extra) + "\r\n";
}

// Names in a directory that look like our temporary files.
int temp_files(const std::string& dir) {
    int n = 0;
    if (DIR* d = opendir(dir.c_str())) {
        while (struct dirent* e = readdir(d))
            if (std::string_view(e->d_name).starts_with(".uvhttpd-tmp-")) ++n;
        closedir(d);
    }
    return n;
}

HttpResponse one(TestServer& t, const std::string& raw) {
    RawClient c(t);
    c.send(raw);
    auto r = c.read_response();
    REQUIRE(r);
    return *r;
}

}  // namespace

TEST_CASE("PUT creates (201 + Location) then replaces (204)", "[put]") {
    TestServer t;
    HttpResponse created = one(t, put("/new.txt", "first"));
    CHECK(created.status == 201);
    CHECK(created.header("location") == "/new.txt");
    CHECK(created.has("etag"));
    CHECK(created.has("last-modified"));
    CHECK(t.root().read("new.txt") == "first");
    HttpResponse got = t.get("/new.txt");
    CHECK(got.header("etag") == created.header("etag"));

    HttpResponse replaced = one(t, put("/new.txt", "second, longer"));
    CHECK(replaced.status == 204);
    CHECK_FALSE(replaced.has("content-length"));
    CHECK(t.root().read("new.txt") == "second, longer");
    CHECK(t.get("/new.txt").header("etag") == replaced.header("etag"));
    CHECK(replaced.header("etag") != created.header("etag"));
    CHECK(temp_files(t.root().path()) == 0);
}

TEST_CASE("the Location of a created file is a path on this server", "[put]") {
    TestServer t;
    HttpResponse created = one(t, put("//new.txt", "x"));
    CHECK(created.status == 201);
    CHECK(created.header("location") == "/new.txt");
}

TEST_CASE("PUT with a chunked body", "[put]") {
    TestServer t;
    HttpResponse r = one(t, "PUT /c.txt HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    CHECK(r.status == 201);
    CHECK(t.root().read("c.txt") == "hello world");
}

TEST_CASE("PUT of a large body streams and arrives intact", "[put]") {
    TestServer t;
    std::string data;
    for (int i = 0; data.size() < (3u << 20); ++i) data += std::to_string(i) + ",";
    RawClient c(t);
    c.send(put("/big.dat", data));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 201);
    CHECK(t.root().read("big.dat") == data);
}

TEST_CASE("Expect: 100-continue gets 100 only after the checks pass", "[put][expect]") {
    TestServer t([](uvh::Config& c) { c.max_body_size = 1000; });
    t.root().write("exists.txt", "old");
    SECTION("checks pass: 100, then the body, then 201") {
        RawClient c(t);
        c.send("PUT /e.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
        auto cont = c.read_response();
        REQUIRE(cont);
        CHECK(cont->status == 100);
        c.send("body");
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->status == 201);
        CHECK(t.root().read("e.txt") == "body");
    }
    SECTION("a failing precondition answers at once, without 100") {
        RawClient c(t);
        c.send("PUT /exists.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nExpect: 100-continue\r\n"
               "If-None-Match: *\r\n\r\n");
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->status == 412);
        CHECK(r->header("connection") == "close");
        CHECK(c.wait_closed());
        CHECK(t.root().read("exists.txt") == "old");
    }
    SECTION("too large: 413 at once, without 100") {
        RawClient c(t);
        c.send("PUT /big.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n");
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->status == 413);
        CHECK(c.wait_closed());
        CHECK_FALSE(t.root().exists("big.txt"));
    }
    SECTION("HTTP/1.0 never gets a 100 (RFC 9110 10.1.1)") {
        RawClient c(t);
        c.send("PUT /ten.txt HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc");
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->status == 201);
        CHECK(r->raw.find("100 Continue") == std::string::npos);
    }
}

TEST_CASE("413 for bodies over --max-body-size, declared or chunked", "[put][limits]") {
    TestServer t([](uvh::Config& c) { c.max_body_size = 10; });
    HttpResponse declared = one(t, put("/x.txt", std::string(11, 'a')));
    CHECK(declared.status == 413);
    RawClient c(t);
    c.send("PUT /y.txt HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n8\r\naaaaaaaa\r\n8\r\nbbbbbbbb\r\n0\r\n\r\n");
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 413);
    CHECK(c.wait_closed());
    CHECK_FALSE(t.root().exists("y.txt"));
    CHECK(temp_files(t.root().path()) == 0);
}

TEST_CASE("PUT conflicts: missing parent 409, directory 409, trailing slash 405, Content-Range 400", "[put]") {
    TestServer t;
    t.root().mkdir("adir");
    CHECK(one(t, put("/no/such/dir/f.txt", "x")).status == 409);
    CHECK(one(t, put("/adir", "x")).status == 409);
    HttpResponse slash = one(t, put("/adir/", "x"));
    CHECK(slash.status == 405);
    CHECK(slash.has("allow"));
    CHECK(one(t, put("/r.txt", "x", "Content-Range: bytes 0-0/10\r\n")).status == 400);
    CHECK(one(t, put("/.hidden", "x")).status == 404);
    CHECK_FALSE(t.root().exists(".hidden"));
}

TEST_CASE("create-dirs: PUT creates missing parents", "[put]") {
    TestServer t([](uvh::Config& c) { c.create_dirs = true; });
    CHECK(one(t, put("/a/b/c/f.txt", "deep")).status == 201);
    CHECK(t.root().read("a/b/c/f.txt") == "deep");
}

TEST_CASE("PUT preconditions: If-Match, If-None-Match: *, If-Unmodified-Since", "[put][conditional]") {
    TestServer t;
    t.root().write("doc.txt", "v1");
    std::string etag = t.get("/doc.txt").header("etag");
    CHECK(one(t, put("/doc.txt", "v2", "If-Match: \"nope\"\r\n")).status == 412);
    CHECK(t.root().read("doc.txt") == "v1");
    CHECK(one(t, put("/doc.txt", "v2", "If-Match: " + etag + "\r\n")).status == 204);
    CHECK(t.root().read("doc.txt") == "v2");
    CHECK(one(t, put("/doc.txt", "v3", "If-Match: " + etag + "\r\n")).status == 412);  // stale tag
    CHECK(one(t, put("/doc.txt", "v3", "If-None-Match: *\r\n")).status == 412);
    CHECK(one(t, put("/fresh.txt", "new", "If-None-Match: *\r\n")).status == 201);
    CHECK(one(t, put("/doc.txt", "v3", "If-Unmodified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n")).status == 412);
    CHECK(one(t, put("/doc.txt", "v3", "If-Unmodified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n")).status == 204);
    CHECK(one(t, put("/missing.txt", "x", "If-Match: *\r\n")).status == 412);
    CHECK_FALSE(t.root().exists("missing.txt"));
}

TEST_CASE("an aborted upload leaves the old file and no temporary file", "[put][faults]") {
    TestServer t;
    t.root().write("keep.txt", "original");
    for (int i = 0; i < 5; ++i) {
        RawClient c(t);
        // The reset comes only after the server has read the head and the
        // 300,000 bytes: the upload is under way when the peer goes away.
        c.send_and_wait_read("PUT /keep.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n" +
                             std::string(300000, 'n'));
        REQUIRE(t.server().metrics().uploads_in_flight == 1);
        c.reset();
    }
    CHECK(t.spin_until([&] { return t.server().metrics().open_connections == 0; }));
    CHECK(t.root().read("keep.txt") == "original");
    CHECK(temp_files(t.root().path()) == 0);
    CHECK(t.get("/keep.txt").body == "original");
}

TEST_CASE("DELETE: 204, 404, a directory goes whole (207 when a hidden file stays), preconditions", "[delete]") {
    TestServer t;
    t.root().write("gone.txt", "x");
    t.root().write("full/a.txt", "a");
    t.root().mkdir("empty");
    t.root().write("guarded.txt", "g");
    HttpResponse d = one(t, req("DELETE", "/gone.txt"));
    CHECK(d.status == 204);
    CHECK_FALSE(t.root().exists("gone.txt"));
    CHECK(one(t, req("DELETE", "/gone.txt")).status == 404);
    // RFC 4918 §9.6.1: a collection is removed with its members.
    CHECK(one(t, req("DELETE", "/full/")).status == 204);
    CHECK_FALSE(t.root().exists("full"));
    // A hidden file is not the client's to delete: it stays, so does its
    // directory, and the 207 names it.
    t.root().write("keep/.hidden", "h");
    t.root().write("keep/b.txt", "b");
    HttpResponse partial = one(t, req("DELETE", "/keep/"));
    CHECK(partial.status == 207);
    CHECK(partial.body.find("<D:href>/keep/.hidden</D:href><D:status>HTTP/1.1 403 Forbidden</D:status>") !=
          std::string::npos);
    CHECK(t.root().exists("keep/.hidden"));
    CHECK_FALSE(t.root().exists("keep/b.txt"));
    CHECK(one(t, req("DELETE", "/empty/")).status == 204);
    CHECK(one(t, req("DELETE", "/guarded.txt", "If-Match: \"other\"\r\n")).status == 412);
    CHECK(t.root().exists("guarded.txt"));
    std::string etag = t.get("/guarded.txt").header("etag");
    CHECK(one(t, req("DELETE", "/guarded.txt", "If-Match: " + etag + "\r\n")).status == 204);
    CHECK(one(t, req("DELETE", "/")).status == 403);
    CHECK(one(t, req("DELETE", "/.secret")).status == 404);
}

TEST_CASE("MKCOL: 201, 405 when it exists, 409 without parent, 415 with a body", "[mkcol]") {
    TestServer t;
    HttpResponse r = one(t, req("MKCOL", "/coll/"));
    CHECK(r.status == 201);
    CHECK(r.header("location") == "/coll/");
    struct stat st {};
    CHECK(stat((t.root().path() + "/coll").c_str(), &st) == 0);
    CHECK(S_ISDIR(st.st_mode));
    HttpResponse again = one(t, req("MKCOL", "/coll/"));
    CHECK(again.status == 405);
    CHECK(again.has("allow"));
    CHECK(one(t, req("MKCOL", "/no/parent/")).status == 409);
    CHECK(one(t, "MKCOL /withbody/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabc").status == 415);
    CHECK_FALSE(t.root().exists("withbody"));
}

TEST_CASE("read-only: writes answer writes with 405 and Allow", "[auth]") {
    TestServer t([](uvh::Config& c) { c.read_only = true; });
    t.root().write("f.txt", "f");
    for (const std::string& raw : {put("/f.txt", "x"), req("DELETE", "/f.txt"), req("MKCOL", "/d/"),
                                   std::string("POST /database.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n"
                                               "Content-Type: application/x-www-form-urlencoded\r\n\r\na=b")}) {
        HttpResponse r = one(t, raw);
        INFO(raw);
        CHECK(r.status == 405);
        CHECK(r.header("allow") == "GET, HEAD, OPTIONS, PROPFIND");
    }
    CHECK(t.root().read("f.txt") == "f");
    CHECK(one(t, req("OPTIONS", "/")).header("allow") == "GET, HEAD, OPTIONS, PROPFIND");
}

TEST_CASE("write-token: 401 without it, Bearer and Basic with it", "[auth]") {
    TestServer t([](uvh::Config& c) { c.write_token = "s3cret"; });
    HttpResponse denied = one(t, put("/a.txt", "x"));
    CHECK(denied.status == 401);
    CHECK(denied.count("www-authenticate") == 2);
    CHECK(denied.header("www-authenticate").find("Basic realm=") == 0);
    // A wrong Bearer token gets only the Bearer challenge (RFC 6750 §3.1):
    // a Basic one would open a browser's login prompt over the listing
    // page's own token form.
    HttpResponse wrong = one(t, put("/a.txt", "x", "Authorization: Bearer wrong\r\n"));
    CHECK(wrong.status == 401);
    CHECK(wrong.count("www-authenticate") == 1);
    CHECK(wrong.header("www-authenticate") == "Bearer realm=\"uvhttpd\", error=\"invalid_token\"");
    HttpResponse wrong_basic = one(t, put("/a.txt", "x", "Authorization: Basic dXNlcjp3cm9uZw==\r\n"));
    CHECK(wrong_basic.count("www-authenticate") == 2);
    CHECK(one(t, put("/a.txt", "x", "Authorization: Bearer s3cre\r\n")).status == 401);
    CHECK(one(t, put("/a.txt", "x", "Authorization: Bearer s3cret\r\n")).status == 201);
    // curl -u :s3cret sends Basic base64(":s3cret").
    CHECK(one(t, put("/b.txt", "x", "Authorization: Basic OnMzY3JldA==\r\n")).status == 201);
    CHECK(one(t, req("DELETE", "/b.txt", "Authorization: Basic dXNlcjp3cm9uZw==\r\n")).status == 401);
    CHECK(t.get("/a.txt").status == 200);  // reads stay open
    CHECK_FALSE(t.root().exists("c.txt"));
}

TEST_CASE("OPTIONS lists the write methods when writes are enabled", "[http][options]") {
    TestServer t;
    std::string allow = one(t, req("OPTIONS", "/")).header("allow");
    for (const char* m : {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "MKCOL", "POST"}) CHECK(allow.find(m) != std::string::npos);
}
