// The record store over HTTP: POST, GET/PUT/DELETE /database.txt/ID.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <fstream>
#include <string>
#include <vector>

#include "test/integration/harness.h"

using namespace uvh::test;

namespace {

std::string post(std::string_view path, std::string_view type, std::string_view body, std::string_view extra = {}) {
    return "POST " + std::string(path) + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: " + std::string(type) +
           "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + std::string(extra) +
           "Connection: close\r\n\r\n" + std::string(body);
}

std::string form_post(std::string_view body, std::string_view extra = {}) {
    return post("/database.txt", "application/x-www-form-urlencoded", body, extra);
}

// The store's lines: the file, or (PostgreSQL) GET /database.txt, which
// renders the same lines from the table.
std::string lines(TestServer& t) {
    if (records_in_postgres()) return t.get("/database.txt").body;
    return t.root().read("database.txt");
}

}  // namespace

TEST_CASE("records: POST a form appends one line and answers 201 with Location", "[records]") {
    TestServer t;
    HttpResponse r = t.request(form_post("mis=17&name=Akshay&email=akshay%40gmail.com"));
    CHECK(r.status == 201);
    CHECK(r.header("location") == "/database.txt/17");
    CHECK(r.header("content-type") == "text/plain; charset=utf-8");
    CHECK(r.body == "201 Created: record 17 saved at /database.txt/17\n");
    // On disk when 201 arrives (the append was synced before the answer).
    CHECK(lines(t) == "17 mis=17&name=Akshay&email=akshay%40gmail.com\n");
    HttpResponse auto1 = t.request(form_post("name=Bob"));
    CHECK(auto1.header("location") == "/database.txt/18");
    HttpResponse chosen = t.request(form_post("id=alice.b-1_x&name=Alice"));
    CHECK(chosen.header("location") == "/database.txt/alice.b-1_x");
    CHECK(lines(t) == "17 mis=17&name=Akshay&email=akshay%40gmail.com\n18 name=Bob\nalice.b-1_x name=Alice\n");
    HttpResponse dir = t.request(post("/", "application/x-www-form-urlencoded", "name=FromListing"));
    CHECK(dir.status == 201);
    CHECK(dir.header("location") == "/database.txt/19");
}

TEST_CASE("records: ids are unique and well-formed", "[records]") {
    TestServer t;
    CHECK(t.request(form_post("id=7&name=a")).status == 201);
    HttpResponse dup = t.request(form_post("id=7&name=b"));
    CHECK(dup.status == 409);
    CHECK(dup.body.find("409 Conflict") == 0);
    CHECK(t.request(form_post("mis=7&name=c")).status == 409);
    CHECK(t.request(form_post("id=a%2Fb&name=x")).status == 400);
    CHECK(t.request(form_post("id=" + std::string(65, 'x') + "&name=x")).status == 400);
    CHECK(t.request(form_post("id=" + std::string(64, 'x') + "&name=x")).status == 201);
    CHECK(t.request(form_post("mis=&name=blank")).header("location") == "/database.txt/8");
}

TEST_CASE("records: multipart and JSON bodies, bad bodies and types", "[records]") {
    TestServer t;
    std::string mp = "--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nCarol\r\n"
                     "--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\ntwo\r\nlines\r\n--XyZ--\r\n";
    HttpResponse m = t.request(post("/database.txt", "multipart/form-data; boundary=XyZ", mp));
    CHECK(m.status == 201);
    HttpResponse j = t.request(post("/database.txt", "application/json", R"({"name":"Dan","age":42,"ok":true})",
                                    "Accept: application/json\r\n"));
    CHECK(j.status == 201);
    CHECK(j.header("content-type") == "application/json");
    auto doc = nlohmann::json::parse(j.body);
    CHECK(doc["id"] == "2");
    CHECK(doc["name"] == "Dan");
    CHECK(doc["age"] == "42");
    CHECK(lines(t) == "1 name=Carol&note=two%0D%0Alines\n2 name=Dan&age=42&ok=true\n");

    struct Bad {
        std::string type, body;
        int status;
    };
    for (const Bad& b : {Bad{"text/plain", "name=x", 415}, Bad{"application/xml", "<a/>", 415},
                         Bad{"application/x-www-form-urlencoded", "", 400},
                         Bad{"application/x-www-form-urlencoded", "name=%zz", 400},
                         Bad{"application/json", "{not json", 400}, Bad{"application/json", "[1,2]", 400},
                         Bad{"application/json", R"({"a":{"b":1}})", 400},
                         Bad{"multipart/form-data", mp, 415},  // no boundary parameter
                         Bad{"multipart/form-data; boundary=XyZ", "--XyZ\r\nbroken", 400},
                         Bad{"multipart/form-data; boundary=F",
                             "--F\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nx\r\n--F--\r\n",
                             400}}) {
        INFO(b.type << " / " << b.body);
        HttpResponse r = t.request(post("/database.txt", b.type, b.body));
        CHECK(r.status == b.status);
        CHECK(r.body.find('\n') == r.body.size() - 1);
    }
    HttpResponse notype = t.request("POST /database.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nConnection: close\r\n\r\na=b");
    CHECK(notype.status == 415);
    CHECK(lines(t) == "1 name=Carol&note=two%0D%0Alines\n2 name=Dan&age=42&ok=true\n");
}

TEST_CASE("records: a browser gets the success page", "[records]") {
    TestServer t;
    HttpResponse r = t.request(form_post("name=Web", "Accept: text/html,application/xhtml+xml,*/*;q=0.8\r\n"));
    CHECK(r.status == 201);
    CHECK(r.header("content-type") == "text/html; charset=utf-8");
    CHECK(r.header("x-frame-options") == "DENY");
    CHECK(r.body.find("Your response was saved successfully") != std::string::npos);
    CHECK(r.body.find("href=\"/database.txt/1\"") != std::string::npos);
}

TEST_CASE("records: values round-trip exactly, newlines and all", "[records]") {
    TestServer t;
    std::string tricky = "line1\r\nline2\n&x=y%+ caf\xc3\xa9\t\"q\"";
    nlohmann::json body = {{"id", "rt"}, {"text", tricky}};
    REQUIRE(t.request(post("/database.txt", "application/json", body.dump())).status == 201);
    HttpResponse form = t.get("/database.txt/rt");
    CHECK(form.status == 200);
    CHECK(form.header("content-type") == "text/plain; charset=utf-8");
    CHECK(t.get("/database.txt/rt", "Accept: application/x-www-form-urlencoded\r\n").header("content-type") ==
          "application/x-www-form-urlencoded");
    CHECK(form.header("cache-control") == "no-cache");
    CHECK(form.body == "text=line1%0D%0Aline2%0A%26x%3Dy%25%2B+caf%C3%A9%09%22q%22\n");
    HttpResponse json = t.get("/database.txt/rt", "Accept: application/json\r\n");
    CHECK(nlohmann::json::parse(json.body)["text"] == tricky);
    CHECK(lines(t).find('\n') == lines(t).size() - 1);  // still one line
}

TEST_CASE("records: GET/PUT/DELETE of /database.txt/ID", "[records]") {
    TestServer t;
    REQUIRE(t.request(form_post("name=first")).status == 201);
    CHECK(t.get("/database.txt/1").body == "name=first\n");
    CHECK(t.get("/database.txt/999").status == 404);
    CHECK(t.get("/database.txt/bad%20id").status == 404);
    auto put = [&](std::string_view id, std::string_view body) {
        return t.request("PUT /database.txt/" + std::string(id) +
                         " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
                         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + std::string(body));
    };
    HttpResponse replaced = put("1", "name=changed");
    CHECK(replaced.status == 204);
    HttpResponse created = put("new", "name=made");
    CHECK(created.status == 201);
    CHECK(created.header("location") == "/database.txt/new");
    CHECK(lines(t) == "1 name=changed\nnew name=made\n");
    HttpResponse del = t.request("DELETE /database.txt/1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    CHECK(del.status == 204);
    CHECK(t.request("DELETE /database.txt/1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").status == 404);
    CHECK(lines(t) == "new name=made\n");
    HttpResponse all = t.get("/database.txt");
    CHECK(all.body == "new name=made\n");
    CHECK(all.header("cache-control") == "no-cache");

    HttpResponse bad_method = t.request("PUT /database.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx");
    CHECK(bad_method.status == 405);
    CHECK(bad_method.header("allow") == "GET, HEAD, POST, OPTIONS, PROPFIND");
    CHECK(t.request("DELETE /database.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").status == 405);
    HttpResponse post_record = t.request(post("/database.txt/new", "application/x-www-form-urlencoded", "a=b"));
    CHECK(post_record.status == 405);
    CHECK(post_record.header("allow") == "GET, HEAD, PUT, DELETE, OPTIONS");
    CHECK(t.request("OPTIONS /database.txt/new HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").header("allow") ==
          "GET, HEAD, PUT, DELETE, OPTIONS");
}

TEST_CASE("records: pipelined POSTs are answered in order", "[records][pipeline]") {
    TestServer t;
    RawClient c(t);
    std::string batch;
    for (int i = 0; i < 5; ++i) {
        std::string body = "n=" + std::to_string(i);
        batch += "POST /database.txt HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                 "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    }
    c.send(batch);
    for (int i = 0; i < 5; ++i) {
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->status == 201);
        CHECK(r->header("location") == "/database.txt/" + std::to_string(i + 1));
    }
    CHECK(lines(t) == "1 n=0\n2 n=1\n3 n=2\n4 n=3\n5 n=4\n");
}

TEST_CASE("records: limits, Expect, read-only and the token", "[records]") {
    SECTION("over 1 MiB is 413") {
        TestServer t;
        CHECK(t.request(form_post("a=" + std::string(1 << 20, 'x'))).status == 413);
    }
    SECTION("100-continue, then 201") {
        TestServer t;
        RawClient c(t);
        c.send("POST /database.txt HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
               "Content-Length: 6\r\nExpect: 100-continue\r\n\r\n");
        auto cont = c.read_response();
        REQUIRE(cont);
        CHECK(cont->status == 100);
        c.send("name=x");
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->status == 201);
    }
    SECTION("read-only: 405, reads still work") {
        if (records_in_postgres()) {
            // The table is filled by a writable server first.
            { TestServer w; REQUIRE(w.request(form_post("mis=1&a=b")).status == 201); }
            TestServer t([](uvh::Config& c) { c.read_only = true; });
            CHECK(t.request(form_post("name=x")).status == 405);
            CHECK(t.get("/database.txt/1").body == "mis=1&a=b\n");
        } else {
            TestServer t([](uvh::Config& c) { c.read_only = true; });
            t.root().write("database.txt", "1 a=b\n");
            CHECK(t.request(form_post("name=x")).status == 405);
            CHECK(t.get("/database.txt/1").body == "a=b\n");
        }
    }
    SECTION("token: 401 without, 201 with") {
        TestServer t([](uvh::Config& c) { c.write_token = "tok"; });
        CHECK(t.request(form_post("name=x")).status == 401);
        CHECK(t.request(form_post("name=x", "Authorization: Bearer tok\r\n")).status == 201);
    }
}

TEST_CASE("records: --database moves the file, still served at /database.txt", "[records][file-only]") {
    TempDir elsewhere;
    std::string db = elsewhere.path() + "/records.db";
    TestServer t([&](uvh::Config& c) { c.database = db; });
    REQUIRE(t.request(form_post("name=moved")).status == 201);
    CHECK(elsewhere.read("records.db") == "1 name=moved\n");
    CHECK_FALSE(t.root().exists("database.txt"));
    CHECK(t.get("/database.txt").body == "1 name=moved\n");
}

namespace {

// The hidden files a writable store moved an unterminated last line to.
std::vector<std::string> torn_names(TestServer& t) {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(t.root().path())) {
        std::string name = e.path().filename().string();
        if (name.rfind(".database.txt.torn-", 0) == 0) out.push_back(name);
    }
    return out;
}

}  // namespace

TEST_CASE("records: an unterminated last line is never lost", "[records][torn][file-only]") {
    SECTION("read-only: the file is not touched, the complete lines are served") {
        TestServer t([](uvh::Config& c) {
            c.read_only = true;
            std::ofstream(c.root + "/database.txt", std::ios::binary) << "1 name=a\n2 name=b";
        });
        CHECK(t.get("/database.txt/1").body == "name=a\n");
        CHECK(t.get("/database.txt/2").status == 404);
        CHECK(lines(t) == "1 name=a\n2 name=b");
        CHECK(torn_names(t).empty());
    }
    SECTION("writable: moved aside at start-up to a hidden dated file, not served") {
        TestServer t([](uvh::Config& c) {
            std::ofstream(c.root + "/database.txt", std::ios::binary) << "1 name=a\n2 name=b";
        });
        CHECK(lines(t) == "1 name=a\n");
        auto torn = torn_names(t);
        REQUIRE(torn.size() == 1);
        CHECK(t.root().read(torn[0]) == "2 name=b");
        CHECK(t.get("/" + torn[0]).status == 404);
        HttpResponse r = t.request(form_post("name=c"));
        CHECK(r.header("location") == "/database.txt/2");
    }
    SECTION("writable: a line appended by hand without a newline, then a POST") {
        TestServer t;
        REQUIRE(t.request(form_post("name=a")).status == 201);
        std::ofstream(t.root().path() + "/database.txt", std::ios::binary | std::ios::app) << "9 name=z";
        HttpResponse r = t.request(form_post("name=b"));
        CHECK(r.header("location") == "/database.txt/2");
        CHECK(lines(t) == "1 name=a\n2 name=b\n");
        auto torn = torn_names(t);
        REQUIRE(torn.size() == 1);
        CHECK(t.root().read(torn[0]) == "9 name=z");
    }
    SECTION("CRLF line endings") {
        TestServer t([](uvh::Config& c) {
            std::ofstream(c.root + "/database.txt", std::ios::binary) << "1 name=a\r\n2 name=b\r\n";
        });
        CHECK(t.get("/database.txt/1").body == "name=a\n");
        HttpResponse two = t.get("/database.txt/2");
        CHECK(two.status == 200);
        CHECK(two.body == "name=b\n");
        CHECK(t.request(form_post("name=c")).header("location") == "/database.txt/3");
    }
}

TEST_CASE("records: a POST with only an id and no fields is a 400", "[records][dups]") {
    TestServer t;
    for (std::string body : {"id=x", "mis=x", "id=x&mis=x", "mis=5&id="}) {
        INFO(body);
        HttpResponse r = t.request(form_post(body));
        CHECK(r.status == 400);
        CHECK(r.body == "400 Bad Request: no fields besides the id: send the record's fields\n");
    }
    CHECK(t.request(post("/database.txt", "application/json", R"({"id":"x"})")).status == 400);
    CHECK_FALSE(t.root().exists("database.txt"));
    CHECK(t.request(form_post("mis=x&name=a")).status == 201);
    CHECK(t.request(form_post("id=y&name=b")).status == 201);
    CHECK(lines(t) == "x mis=x&name=a\ny name=b\n");
}

TEST_CASE("records: a huge numeric id is a 400 and never stops auto ids", "[records][ids]") {
    TestServer t;
    HttpResponse big = t.request(form_post("id=" + std::string(64, '9') + "&name=x"));
    CHECK(big.status == 400);
    CHECK(big.body == "400 Bad Request: a numeric id must be below 10^18 (at most 18 digits)\n");
    CHECK(t.request(form_post("mis=1000000000000000000&name=x")).status == 400);
    HttpResponse put = t.request("PUT /database.txt/1000000000000000000 HTTP/1.1\r\nHost: localhost\r\n"
                                 "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n"
                                 "Connection: close\r\n\r\na=b");
    CHECK(put.status == 400);
    HttpResponse a = t.request(form_post("name=a"));
    CHECK(a.status == 201);
    CHECK(a.header("location") == "/database.txt/1");
    CHECK(t.request(form_post("id=999999999999999999&name=max")).status == 201);
    HttpResponse b = t.request(form_post("name=b"));
    CHECK(b.status == 201);
    CHECK(b.header("location") == "/database.txt/2");
}

TEST_CASE("records: a 64-digit id written by hand does not stop auto ids", "[records][ids][file-only]") {
    TestServer t([](uvh::Config& c) {
        std::ofstream(c.root + "/database.txt", std::ios::binary) << std::string(64, '9') << " a=1\n41 b=2\n";
    });
    HttpResponse r = t.request(form_post("name=c"));
    CHECK(r.status == 201);
    CHECK(r.header("location") == "/database.txt/42");
    CHECK(t.get("/database.txt/" + std::string(64, '9')).body == "a=1\n");
}

namespace {

// A configure step that parses real command-line flags.
std::function<void(uvh::Config&)> with_flags(std::vector<const char*> flags) {
    return [flags](uvh::Config& c) {
        std::vector<const char*> argv{"uvhttpd"};
        argv.insert(argv.end(), flags.begin(), flags.end());
        uvh::ParseOutcome out = uvh::parse_args(static_cast<int>(argv.size()), argv.data(), c);
        INFO(out.message);
        REQUIRE(out.kind == uvh::ParseOutcome::Kind::Run);
    };
}

std::string put_form(std::string_view id, std::string_view body) {
    return "PUT /database.txt/" + std::string(id) +
           " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + std::string(body);
}

}  // namespace

TEST_CASE("records: --max-record-size and --max-store-size", "[records][caps]") {
    CHECK(uvh::usage_text().find("--max-record-size SIZE") != std::string::npos);
    CHECK(uvh::usage_text().find("--max-store-size SIZE") != std::string::npos);
    CHECK(uvh::usage_text().find("a record's line (default 64K)") != std::string::npos);
    CHECK(uvh::usage_text().find("the record store file (default 1G") != std::string::npos);

    SECTION("a record over the cap is a 413") {
        TestServer t(with_flags({"--max-record-size", "100"}));
        HttpResponse big = t.request(form_post("name=" + std::string(200, 'x')));
        CHECK(big.status == 413);
        CHECK(big.body == "413 Content Too Large: a record is at most 100 bytes (--max-record-size)\n");
        // The limit is on the stored line: "1 name=" + 93 bytes + "\n" is 101.
        CHECK(t.request(form_post("name=" + std::string(93, 'x'))).status == 413);
        CHECK_FALSE(t.root().exists("database.txt"));
        CHECK(t.request(form_post("name=" + std::string(92, 'x'))).status == 201);
        CHECK(t.request(put_form("1", "name=" + std::string(200, 'y'))).status == 413);
        CHECK(lines(t) == "1 name=" + std::string(92, 'x') + "\n");
    }
    // The same cap in both stores: in PostgreSQL the size is the sum of the
    // lines the file store would hold, kept by triggers (pg_schema.h).
    SECTION("a store over the cap is a 507") {
        TestServer t(with_flags({"--max-store-size=64"}));
        for (int i = 1; i <= 3; ++i) {
            INFO(i);
            CHECK(t.request(form_post("name=xxxxxxxxxx")).status == 201);  // 18 bytes a line
        }
        HttpResponse full = t.request(form_post("name=xxxxxxxxxx"));
        CHECK(full.status == 507);
        CHECK(full.body == "507 Insufficient Storage: the record store is full (--max-store-size 64 bytes); nothing was stored\n");
        CHECK(t.request(put_form("1", "name=" + std::string(40, 'y'))).status == 507);
        CHECK(t.request(put_form("1", "name=short")).status == 204);  // not growing past the cap
        CHECK(t.request("DELETE /database.txt/2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").status == 204);
        CHECK(t.request(form_post("name=xxxxxxxxxx")).status == 201);
        CHECK(lines(t) == "1 name=short\n3 name=xxxxxxxxxx\n4 name=xxxxxxxxxx\n");
    }
}
