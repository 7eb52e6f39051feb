// PUT, DELETE and MKCOL (handlers/put.cpp, handlers/delete_mkcol.cpp and
// their shared steps, handlers/write_step.cpp) through the fake Exchange:
// the body is fed in pieces, every job step runs on the test thread, and the
// fake checks that every descriptor is handed back and closed. The outcomes
// are README.md's ("Uploading and deleting files", "What it answers") and
// RFC 9110 §9.3.4-§9.3.5, RFC 4918 §9.3.
#include <dirent.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "handlers/get_head.h"
#include "handlers/write_ops.h"
#include "test/handlers/fake_exchange.h"

using namespace uvh;
using namespace uvh::test;

namespace {

FakeResponse put(FakeSite& s, std::string target, std::vector<std::string> pieces, std::string fields = {}) {
    FakeRequest r;
    r.method = "PUT";
    r.target = std::move(target);
    r.fields = std::move(fields);
    r.body = std::move(pieces);
    return serve(s, std::move(r), handle_put);
}

FakeResponse del(FakeSite& s, std::string target, std::string fields = {}) {
    FakeRequest r;
    r.method = "DELETE";
    r.target = std::move(target);
    r.fields = std::move(fields);
    return serve(s, std::move(r), handle_delete);
}

FakeResponse mkcol(FakeSite& s, std::string target, std::vector<std::string> body = {}) {
    FakeRequest r;
    r.method = "MKCOL";
    r.target = std::move(target);
    r.body = std::move(body);
    return serve(s, std::move(r), handle_mkcol);
}

std::string etag_of(FakeSite& s, std::string target) {
    FakeRequest r;
    r.method = "HEAD";
    r.target = std::move(target);
    return serve(s, std::move(r), handle_get).header("etag");
}

// Temporary files of uploads left anywhere under `dir`.
size_t temp_files(const std::string& dir) {
    size_t n = 0;
    DIR* d = opendir(dir.c_str());
    if (!d) return 0;
    while (struct dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        if (name.rfind(kTempPrefix, 0) == 0) ++n;
        if (e->d_type == DT_DIR) n += temp_files(dir + "/" + name);
    }
    closedir(d);
    return n;
}

mode_t mode_of(const std::string& path) {
    struct stat st {};
    REQUIRE(stat(path.c_str(), &st) == 0);
    return st.st_mode;
}

}  // namespace

TEST_CASE("handler put: 201 with Location for a new file, 204 for a replacement, body in pieces",
          "[handler][put]") {
    FakeSite s;
    FakeRequest first{"PUT", "/new.txt", {}, {"fir", "st ", "piece"}};
    FakeExchange ex(s, first);
    FakeResponse created = ex.run(handle_put);
    CHECK(created.status == 201);
    CHECK(created.header("location") == "/new.txt");
    CHECK(created.body == "201 Created: /new.txt\n");
    CHECK(created.has("etag"));
    CHECK(created.has("last-modified"));
    CHECK(s.root().read("new.txt") == "first piece");
    CHECK(ex.body_read());
    CHECK(ex.pieces_delivered() == 3);
    CHECK(ex.body_ended());
    CHECK(ex.offloads() == 5);  // prepare, three writes, commit
    CHECK_FALSE(ex.job_released_at_end());  // a committed upload hands everything back
    CHECK(etag_of(s, "/new.txt") == created.header("etag"));

    FakeResponse replaced = put(s, "/new.txt", {"second, ", "longer"});
    CHECK(replaced.status == 204);
    CHECK(replaced.body.empty());
    CHECK_FALSE(replaced.has("content-length"));
    CHECK(replaced.header("etag") != created.header("etag"));
    CHECK(etag_of(s, "/new.txt") == replaced.header("etag"));
    CHECK(s.root().read("new.txt") == "second, longer");
    CHECK(temp_files(s.root().path()) == 0);
}

TEST_CASE("handler put: an empty body, and a chunked one", "[handler][put]") {
    FakeSite s;
    CHECK(put(s, "/empty.txt", {}).status == 201);
    CHECK(s.root().exists("empty.txt"));
    CHECK(s.root().read("empty.txt").empty());
    FakeResponse chunked = put(s, "/chunked.txt", {"a", "bc", "def"}, "Transfer-Encoding: chunked\r\n");
    CHECK(chunked.status == 201);
    CHECK(s.root().read("chunked.txt") == "abcdef");
}

TEST_CASE("handler put: a large body in pieces larger than the reader's chunk arrives intact", "[handler][put]") {
    FakeSite s;
    std::string data;
    for (size_t i = 0; data.size() < 700 * 1024; ++i) data += std::to_string(i) + ",";
    FakeExchange ex(s, {"PUT", "/big.bin", {}, {data.substr(0, 300000), data.substr(300000)}});
    FakeResponse r = ex.run(handle_put);
    CHECK(r.status == 201);
    CHECK(s.root().read("big.bin") == data);
    CHECK(ex.pieces_delivered() >= 3);  // cut to the reader's 256 KiB chunk
}

TEST_CASE("handler put: If-Match and If-None-Match: * give 412 and change nothing", "[handler][put][conditional]") {
    FakeSite s;
    s.root().write("doc.txt", "v1");
    std::string etag = etag_of(s, "/doc.txt");
    REQUIRE(!etag.empty());

    FakeExchange wrong(s, {"PUT", "/doc.txt", "If-Match: \"nope\"\r\nExpect: 100-continue\r\n", {"v2"}});
    FakeResponse r = wrong.run(handle_put);
    CHECK(r.status == 412);
    CHECK(r.body.rfind("412 Precondition Failed", 0) == 0);
    CHECK_FALSE(wrong.body_read());       // answered before the body
    CHECK_FALSE(wrong.continue_sent());   // so no 100 Continue (RFC 9110 §10.1.1)
    CHECK(s.root().read("doc.txt") == "v1");

    CHECK(put(s, "/doc.txt", {"v2"}, "If-Match: " + etag + "\r\n").status == 204);
    CHECK(s.root().read("doc.txt") == "v2");
    CHECK(put(s, "/doc.txt", {"v3"}, "If-Match: " + etag + "\r\n").status == 412);  // now stale
    CHECK(put(s, "/doc.txt", {"v3"}, "If-None-Match: *\r\n").status == 412);
    CHECK(s.root().read("doc.txt") == "v2");
    CHECK(put(s, "/missing.txt", {"x"}, "If-Match: *\r\n").status == 412);
    CHECK_FALSE(s.root().exists("missing.txt"));

    FakeExchange create_only(s, {"PUT", "/fresh.txt", "If-None-Match: *\r\nExpect: 100-continue\r\n", {"new"}});
    CHECK(create_only.run(handle_put).status == 201);
    CHECK(create_only.continue_sent());
    CHECK(s.root().read("fresh.txt") == "new");
    CHECK(temp_files(s.root().path()) == 0);
}

TEST_CASE("handler put: 409 without a parent or onto a directory, 405 for a slash, 400 for Content-Range",
          "[handler][put]") {
    FakeSite s;
    s.root().mkdir("adir");
    FakeResponse no_parent = put(s, "/no/such/dir/f.txt", {"x"});
    CHECK(no_parent.status == 409);
    CHECK(no_parent.body == "409 Conflict: the parent directory does not exist\n");
    CHECK(put(s, "/adir", {"x"}).status == 409);
    FakeResponse slash = put(s, "/adir/", {"x"});
    CHECK(slash.status == 405);
    CHECK(slash.has("allow"));
    CHECK(put(s, "/r.txt", {"x"}, "Content-Range: bytes 0-0/10\r\n").status == 400);
    CHECK_FALSE(s.root().exists("r.txt"));
    CHECK_FALSE(s.root().exists("no"));
}

TEST_CASE("handler put: --create-dirs makes the parents", "[handler][put]") {
    Config c;
    c.create_dirs = true;
    FakeSite s(c);
    CHECK(put(s, "/a/b/c/f.txt", {"deep"}).status == 201);
    CHECK(s.root().read("a/b/c/f.txt") == "deep");
}

TEST_CASE("handler put: 413 for a declared body over --max-body-size, before reading it", "[handler][put][limits]") {
    Config c;
    c.max_body_size = 4;
    FakeSite s(c);
    FakeExchange ex(s, {"PUT", "/f.txt", {}, {"12345"}});
    CHECK(ex.run(handle_put).status == 413);
    CHECK(ex.offloads() == 0);
    CHECK_FALSE(s.root().exists("f.txt"));
}

TEST_CASE("handler put: a replacement drops setuid, setgid and sticky but keeps the permissions",
          "[handler][put][security]") {
    FakeSite s;
    s.root().write("tool", "old");
    REQUIRE(chmod(s.root().at("tool").c_str(), 07754) == 0);
    REQUIRE((mode_of(s.root().at("tool")) & 07777) == 07754);
    CHECK(put(s, "/tool", {"new"}).status == 204);
    CHECK((mode_of(s.root().at("tool")) & 07777) == 0754);
    CHECK(s.root().read("tool") == "new");
}

TEST_CASE("handler writes: the record store's file is refused with 403 under any name", "[handler][put][security]") {
    FakeSite s;
    s.root().write("database.txt", "1 name=a\n");
    REQUIRE(symlink(".", s.root().at("alias").c_str()) == 0);
    for (const char* target : {"/database.txt", "/alias/database.txt"}) {
        INFO(target);
        FakeResponse p = put(s, target, {"evil"});
        CHECK(p.status == 403);
        CHECK(p.body == "403 Forbidden: that name is the record store's file; records live at /database.txt/ID\n");
        CHECK(del(s, target).status == 403);
    }
    CHECK(mkcol(s, "/database.txt/").status == 403);
    CHECK(s.root().read("database.txt") == "1 name=a\n");
}

TEST_CASE("handler delete: 204, 404, a directory whole or 207, 412, 403 for the root", "[handler][delete]") {
    FakeSite s;
    s.root().write("gone.txt", "x");
    s.root().write("full/a.txt", "a");
    s.root().mkdir("empty");
    s.root().write("guarded.txt", "g");

    FakeResponse d = del(s, "/gone.txt");
    CHECK(d.status == 204);
    CHECK(d.body.empty());
    CHECK_FALSE(s.root().exists("gone.txt"));
    FakeResponse again = del(s, "/gone.txt");
    CHECK(again.status == 404);
    CHECK(again.body.rfind("404 Not Found", 0) == 0);
    CHECK(del(s, "/no/such/file").status == 404);
    s.root().write("full/sub/deep.txt", "d");
    FakeResponse full = del(s, "/full/");
    CHECK(full.status == 204);  // RFC 4918 §9.6.1: with its members
    CHECK_FALSE(s.root().exists("full"));
    s.root().write("kept/.dot", "h");
    s.root().write("kept/in/x.txt", "x");
    s.root().write("kept/database.txt", "not the store");
    FakeResponse partial = del(s, "/kept/");
    CHECK(partial.status == 207);
    CHECK(partial.body.find("<D:href>/kept/.dot</D:href><D:status>HTTP/1.1 403 Forbidden</D:status>") !=
          std::string::npos);
    CHECK(s.root().exists("kept/.dot"));
    CHECK_FALSE(s.root().exists("kept/in"));
    CHECK_FALSE(s.root().exists("kept/database.txt"));  // only the store's own file is protected
    CHECK(del(s, "/empty/").status == 204);
    CHECK_FALSE(s.root().exists("empty"));
    CHECK(del(s, "/guarded.txt", "If-Match: \"other\"\r\n").status == 412);
    CHECK(s.root().exists("guarded.txt"));
    CHECK(del(s, "/guarded.txt", "If-Match: " + etag_of(s, "/guarded.txt") + "\r\n").status == 204);
    CHECK(del(s, "/").status == 403);
}

TEST_CASE("handler mkcol: 201, 405 when something exists, 409 without parent, 415 with a body", "[handler][mkcol]") {
    FakeSite s;
    FakeResponse r = mkcol(s, "/coll/");
    CHECK(r.status == 201);
    CHECK(r.header("location") == "/coll/");
    CHECK(S_ISDIR(mode_of(s.root().at("coll"))));
    CHECK(mkcol(s, "/coll2").header("location") == "/coll2/");

    FakeResponse again = mkcol(s, "/coll/");
    CHECK(again.status == 405);
    CHECK(again.has("allow"));
    s.root().write("file.txt", "x");
    CHECK(mkcol(s, "/file.txt/").status == 405);
    CHECK(mkcol(s, "/").status == 405);

    FakeResponse orphan = mkcol(s, "/no/parent/");
    CHECK(orphan.status == 409);
    CHECK(orphan.body == "409 Conflict: the parent directory does not exist\n");

    FakeResponse body = mkcol(s, "/withbody/", {"abc"});
    CHECK(body.status == 415);
    CHECK_FALSE(s.root().exists("withbody"));
}
