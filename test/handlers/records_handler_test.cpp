// The record store over HTTP (handlers/records.cpp) through the fake
// Exchange. A record request holds its exchange (hold()) while the real
// RecordStore works on the libuv threadpool; the fake runs the site's real
// loop until release() comes back, bounded at 10 s. Outcomes are README.md's
// (the record store section and "What it answers").
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "handlers/records.h"
#include "test/handlers/fake_exchange.h"

using namespace uvh;
using namespace uvh::test;

namespace {

constexpr const char* kForm = "Content-Type: application/x-www-form-urlencoded\r\n";

FakeResponse post(FakeSite& s, std::vector<std::string> body, std::string fields = kForm,
                  std::string target = "/database.txt") {
    FakeRequest r;
    r.method = "POST";
    r.target = std::move(target);
    r.fields = std::move(fields);
    r.body = std::move(body);
    return serve(s, std::move(r), handle_record_post);
}

FakeResponse record(FakeSite& s, std::string method, std::string id, std::vector<std::string> body = {},
                    std::string fields = {}) {
    FakeRequest r;
    r.method = std::move(method);
    r.target = "/database.txt/";
    for (char c : id) r.target += c == ' ' ? std::string("%20") : std::string(1, c);
    r.fields = std::move(fields);
    r.body = std::move(body);
    FakeExchange ex(s, std::move(r));
    return ex.run_with([&](Exchange& e) { handle_record(e, id); });
}

std::string lines(FakeSite& s) { return s.root().read("database.txt"); }

}  // namespace

TEST_CASE("handler records: POST a form, 201 with Location, the line on disk", "[handler][records]") {
    FakeSite s;
    FakeExchange ex(s, {"POST", "/database.txt", kForm, {"mis=17&name=Ak", "shay&email=akshay%40gmail.com"}});
    FakeResponse r = ex.run(handle_record_post);
    CHECK(r.status == 201);
    CHECK(r.header("location") == "/database.txt/17");
    CHECK(r.header("content-type") == "text/plain; charset=utf-8");
    CHECK(r.header("cache-control") == "no-store");
    CHECK(r.body == "201 Created: record 17 saved at /database.txt/17\n");
    CHECK(ex.pieces_delivered() == 2);
    CHECK(ex.offloads() == 0);  // the store has its own threadpool work; the exchange was held
    // On disk when 201 is given (the append was synced before the answer).
    CHECK(lines(s) == "17 mis=17&name=Akshay&email=akshay%40gmail.com\n");

    CHECK(post(s, {"name=Bob"}).header("location") == "/database.txt/18");
    CHECK(post(s, {"id=alice.b-1_x&name=Alice"}).header("location") == "/database.txt/alice.b-1_x");
    CHECK(lines(s) == "17 mis=17&name=Akshay&email=akshay%40gmail.com\n18 name=Bob\nalice.b-1_x name=Alice\n");
    CHECK(s.metrics().records_appended == 3);
}

TEST_CASE("handler records: JSON and multipart bodies, JSON and HTML answers", "[handler][records]") {
    FakeSite s;
    FakeResponse j = post(s, {R"({"name":"Dan","age":42,"ok":true})"},
                          "Content-Type: application/json\r\nAccept: application/json\r\n");
    CHECK(j.status == 201);
    CHECK(j.header("content-type") == "application/json");
    auto doc = nlohmann::json::parse(j.body);
    CHECK(doc["id"] == "1");
    CHECK(doc["name"] == "Dan");
    CHECK(doc["age"] == "42");

    std::string mp = "--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nCarol\r\n--XyZ--\r\n";
    FakeResponse m = post(s, {mp.substr(0, 10), mp.substr(10)},
                          "Content-Type: multipart/form-data; boundary=XyZ\r\nAccept: text/html\r\n");
    CHECK(m.status == 201);
    CHECK(m.header("content-type") == "text/html; charset=utf-8");
    CHECK(m.header("x-frame-options") == "DENY");
    CHECK(m.body.find("Your response was saved successfully") != std::string::npos);
    CHECK(m.body.find("href=\"/database.txt/2\"") != std::string::npos);
    CHECK(lines(s) == "1 name=Dan&age=42&ok=true\n2 name=Carol\n");
}

TEST_CASE("handler records: 400 for bad bodies and ids, 415 for other types", "[handler][records]") {
    FakeSite s;
    struct Bad {
        std::string type, body;
        int status;
    };
    for (const Bad& b : {Bad{"text/plain", "name=x", 415}, Bad{"application/x-www-form-urlencoded", "", 400},
                         Bad{"application/x-www-form-urlencoded", "name=%zz", 400},
                         Bad{"application/json", "{not json", 400}, Bad{"application/json", "[1,2]", 400},
                         Bad{"multipart/form-data", "x", 415},  // no boundary
                         Bad{"application/x-www-form-urlencoded", "id=x", 400},
                         Bad{"application/x-www-form-urlencoded", "id=a%2Fb&name=x", 400},
                         Bad{"application/x-www-form-urlencoded", "id=" + std::string(19, '9') + "&name=x", 400}}) {
        INFO(b.type << " / " << b.body);
        std::vector<std::string> body;
        if (!b.body.empty()) body.push_back(b.body);
        FakeResponse r = post(s, body, "Content-Type: " + b.type + "\r\n");
        CHECK(r.status == b.status);
        CHECK(r.header("content-type") == "text/plain; charset=utf-8");
        CHECK(r.body.find('\n') == r.body.size() - 1);
    }
    FakeResponse only_id = post(s, {"mis=5"});
    CHECK(only_id.body == "400 Bad Request: no fields besides the id: send the record's fields\n");
    FakeResponse huge = post(s, {"id=1000000000000000000&name=x"});
    CHECK(huge.body == "400 Bad Request: a numeric id must be below 10^18 (at most 18 digits)\n");
    FakeRequest untyped{"POST", "/database.txt", {}, {"a=b"}};
    CHECK(serve(s, untyped, handle_record_post).status == 415);
    CHECK_FALSE(s.root().exists("database.txt"));
}

TEST_CASE("handler records: 409 for an id that exists", "[handler][records]") {
    FakeSite s;
    CHECK(post(s, {"id=7&name=a"}).status == 201);
    FakeResponse dup = post(s, {"id=7&name=b"});
    CHECK(dup.status == 409);
    CHECK(dup.body == "409 Conflict: a record with this id exists\n");
    CHECK(post(s, {"mis=7&name=c"}).status == 409);
    CHECK(lines(s) == "7 name=a\n");
}

TEST_CASE("handler records: 413 over --max-record-size, declared or not", "[handler][records][limits]") {
    Config c;
    c.max_record_size = 100;
    FakeSite s(c);
    FakeResponse big = post(s, {"name=" + std::string(200, 'x')});
    CHECK(big.status == 413);
    CHECK(big.body == "413 Content Too Large: a record is at most 100 bytes (--max-record-size)\n");
    // The stored line "1 name=" + 93 bytes + "\n" is 101 bytes.
    CHECK(post(s, {"name=" + std::string(93, 'x')}).status == 413);
    CHECK_FALSE(s.root().exists("database.txt"));

    // A chunked body larger than the cap plus its slack is refused while it
    // is read, without waiting for the rest.
    std::vector<std::string> pieces(4, std::string(40 * 1024, 'y'));
    pieces.front() = "name=" + pieces.front();
    FakeExchange ex(s, {"POST", "/database.txt", std::string(kForm) + "Transfer-Encoding: chunked\r\n", pieces});
    FakeResponse streamed = ex.run(handle_record_post);
    CHECK(streamed.status == 413);
    CHECK(ex.pieces_delivered() < 4);
    CHECK_FALSE(ex.body_ended());

    CHECK(post(s, {"name=" + std::string(92, 'x')}).status == 201);
    CHECK(lines(s) == "1 name=" + std::string(92, 'x') + "\n");
}

TEST_CASE("handler records: GET, PUT and DELETE of /database.txt/ID", "[handler][records]") {
    FakeSite s;
    REQUIRE(post(s, {"name=first&note=a%26b"}).status == 201);

    FakeResponse got = record(s, "GET", "1");
    CHECK(got.status == 200);
    CHECK(got.body == "name=first&note=a%26b\n");
    CHECK(got.header("content-type") == "text/plain; charset=utf-8");
    CHECK(got.header("cache-control") == "no-cache");
    CHECK(got.header("vary") == "Accept");
    FakeResponse json = record(s, "GET", "1", {}, "Accept: application/json\r\n");
    CHECK(json.header("content-type") == "application/json");
    CHECK(nlohmann::json::parse(json.body) == nlohmann::json{{"id", "1"}, {"name", "first"}, {"note", "a&b"}});
    FakeResponse head = record(s, "HEAD", "1");
    CHECK(head.status == 200);
    CHECK(head.body.empty());
    CHECK(head.header("content-length") == got.header("content-length"));

    CHECK(record(s, "GET", "999").status == 404);
    FakeResponse bad_id = record(s, "GET", "bad id");
    CHECK(bad_id.status == 404);
    CHECK(bad_id.body == "404 Not Found: no such record\n");

    FakeResponse replaced = record(s, "PUT", "1", {"name=chan", "ged"}, kForm);
    CHECK(replaced.status == 204);
    CHECK(replaced.body.empty());
    FakeResponse created = record(s, "PUT", "new", {"name=made"}, kForm);
    CHECK(created.status == 201);
    CHECK(created.header("location") == "/database.txt/new");
    CHECK(lines(s) == "1 name=changed\nnew name=made\n");
    CHECK(record(s, "PUT", "1", {"name=x"}, "Content-Type: text/plain\r\n").status == 415);
    CHECK(record(s, "PUT", "1", {"id=1"}, kForm).status == 400);
    CHECK(record(s, "PUT", "1000000000000000000", {"a=b"}, kForm).status == 400);

    FakeResponse del = record(s, "DELETE", "1");
    CHECK(del.status == 204);
    CHECK(del.body.empty());
    CHECK(record(s, "DELETE", "1").status == 404);
    CHECK(record(s, "GET", "1").status == 404);
    CHECK(lines(s) == "new name=made\n");
}

TEST_CASE("handler records: POST to a directory URL, as the listing's form does", "[handler][records]") {
    FakeSite s;
    FakeResponse r = post(s, {"name=FromListing"}, kForm, "/");
    CHECK(r.status == 201);
    CHECK(r.header("location") == "/database.txt/1");
    CHECK(lines(s) == "1 name=FromListing\n");
}
