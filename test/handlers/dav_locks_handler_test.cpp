// LOCK, UNLOCK and the lock check of PUT, DELETE and MKCOL
// (handlers/dav/lock_methods.cpp, dav_locks.cpp, lock_discovery.cpp)
// through the fake Exchange: lock scopes and
// depths, conflicts between a collection and its members, the If header's
// evaluation (tagged and untagged lists, Not, entity tags, OR and AND), the
// statuses and bodies of RFC 4918 §9.10, §9.11, §10.4 and §16, and no
// descriptor left behind (the fake checks every exchange).
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <regex>

#include "handlers/dav/dav_locks.h"
#include "handlers/dav/lock_discovery.h"
#include "handlers/dav/lock_methods.h"
#include "handlers/dav/lock_table.h"
#include "handlers/get_head.h"
#include "handlers/write_ops.h"
#include "test/handlers/fake_exchange.h"

using namespace uvh;
using namespace uvh::test;

namespace {

std::string lockinfo(const char* scope, const char* owner = "<D:href>mailto:me@example.com</D:href>") {
    return std::string("<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:") + scope +
           "/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>" + owner + "</D:owner></D:lockinfo>";
}

FakeResponse send(FakeSite& s, const char* method, std::string target, std::string fields, std::string body,
                  FakeExchange::HandlerFn h) {
    FakeRequest r;
    r.method = method;
    r.target = std::move(target);
    r.fields = std::move(fields);
    if (!body.empty()) r.body = {std::move(body)};
    return serve(s, std::move(r), h);
}

FakeResponse lock(FakeSite& s, std::string target, const char* scope = "exclusive", std::string fields = {}) {
    return send(s, "LOCK", std::move(target), std::move(fields), lockinfo(scope), handle_lock);
}

FakeResponse put(FakeSite& s, std::string target, std::string fields = {}) {
    return send(s, "PUT", std::move(target), std::move(fields), "data", handle_put);
}

std::string token(const FakeResponse& r) {
    std::string t = r.header("lock-token");
    REQUIRE(t.size() > 2);
    return t.substr(1, t.size() - 2);
}

std::string if_token(const std::string& tok) { return "If: (<" + tok + ">)\r\n"; }

}  // namespace

TEST_CASE("handler lock: 200 with Lock-Token and the lockdiscovery body, 201 for an unmapped URL",
          "[handler][dav_locks]") {
    FakeSite s;
    s.root().write("a.txt", "abc");
    FakeResponse r = lock(s, "/a.txt", "exclusive", "Depth: 0\r\nTimeout: Second-120\r\n");
    REQUIRE(r.status == 200);
    std::string tok = token(r);
    CHECK(std::regex_match(tok, std::regex("urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")));
    CHECK(r.header("content-type") == "application/xml; charset=utf-8");
    CHECK(r.body.find("<D:prop xmlns:D=\"DAV:\"><D:lockdiscovery><D:activelock>") != std::string::npos);
    CHECK(r.body.find("<D:lockscope><D:exclusive/></D:lockscope>") != std::string::npos);
    CHECK(r.body.find("<D:depth>0</D:depth>") != std::string::npos);
    CHECK(r.body.find("mailto:me@example.com") != std::string::npos);
    CHECK(std::regex_search(r.body, std::regex("<D:timeout>Second-1[12][0-9]</D:timeout>")));
    CHECK(r.body.find("<D:locktoken><D:href>" + tok + "</D:href></D:locktoken>") != std::string::npos);
    CHECK(r.body.find("<D:lockroot><D:href>/a.txt</D:href></D:lockroot>") != std::string::npos);

    FakeResponse created = lock(s, "/new%20file.txt");
    CHECK(created.status == 201);
    CHECK(s.root().exists("new file.txt"));
    CHECK(s.root().read("new file.txt").empty());
    CHECK(created.body.find("<D:lockroot><D:href>/new%20file.txt</D:href></D:lockroot>") != std::string::npos);
    CHECK(created.body.find("<D:depth>infinity</D:depth>") != std::string::npos);
}

TEST_CASE("handler lock: Timeout is bounded by the maximum, Infinite gets it", "[handler][dav_locks]") {
    Config c;
    c.dav_lock_timeout_max = 50;
    FakeSite s(c);
    s.root().write("a", "");
    s.root().write("b", "");
    s.root().write("c", "");
    CHECK(std::regex_search(lock(s, "/a", "shared", "Timeout: Second-9999\r\n").body, std::regex("Second-(50|49)<")));
    CHECK(std::regex_search(lock(s, "/b", "shared", "Timeout: Infinite, Second-10\r\n").body, std::regex("Second-(50|49)<")));
    CHECK(std::regex_search(lock(s, "/c", "shared", "Timeout: Bogus, Second-10\r\n").body, std::regex("Second-(10|9)<")));
}

TEST_CASE("handler lock: exclusive conflicts with everything, shared with exclusive only", "[handler][dav_locks]") {
    FakeSite s;
    s.root().write("f", "x");
    FakeResponse a = lock(s, "/f", "shared");
    FakeResponse b = lock(s, "/f", "shared");
    REQUIRE(a.status == 200);
    REQUIRE(b.status == 200);
    FakeResponse c = lock(s, "/f", "exclusive");
    CHECK(c.status == 423);
    CHECK(c.body.find("<D:no-conflicting-lock><D:href>/f</D:href></D:no-conflicting-lock>") != std::string::npos);
    s.root().write("g", "x");
    REQUIRE(lock(s, "/g", "exclusive").status == 200);
    CHECK(lock(s, "/g", "shared").status == 423);
    CHECK(lock(s, "/g", "exclusive").status == 423);
}

TEST_CASE("handler lock: a depth-infinity lock and a lock beneath it conflict both ways", "[handler][dav_locks]") {
    FakeSite s;
    s.root().write("d/e/f.txt", "x");
    s.root().write("t/u.txt", "x");
    // Ancestor first: members cannot be locked apart.
    REQUIRE(lock(s, "/t/", "exclusive", "Depth: infinity\r\n").status == 200);
    CHECK(lock(s, "/t/u.txt").status == 423);
    CHECK(lock(s, "/t/new.txt").status == 423);
    CHECK_FALSE(s.root().exists("t/new.txt"));
    // Descendant first: depth infinity on an ancestor is refused, depth 0 is not.
    REQUIRE(lock(s, "/d/e/f.txt").status == 200);
    FakeResponse r = lock(s, "/d/", "exclusive", "Depth: infinity\r\n");
    CHECK(r.status == 423);
    CHECK(r.body.find("<D:href>/d/e/f.txt</D:href>") != std::string::npos);
    CHECK(lock(s, "/d/", "exclusive", "Depth: 0\r\n").status == 200);
}

TEST_CASE("handler lock: bad requests", "[handler][dav_locks]") {
    FakeSite s;
    s.root().write("f", "x");
    CHECK(send(s, "LOCK", "/f", {}, "<D:lockinfo xmlns:D=\"DAV:\">", handle_lock).status == 400);
    CHECK(send(s, "LOCK", "/f", {}, "<lockinfo/>", handle_lock).status == 400);  // not in DAV:
    CHECK(send(s, "LOCK", "/f", {},
               "<D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:both/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>",
               handle_lock)
              .status == 400);
    CHECK(send(s, "LOCK", "/f", {},
               "<D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:shared/></D:lockscope><D:locktype><D:read/></D:locktype></D:lockinfo>",
               handle_lock)
              .status == 422);
    CHECK(lock(s, "/f", "shared", "Depth: 1\r\n").status == 400);
    CHECK(send(s, "LOCK", "/f", {}, {}, handle_lock).status == 400);  // a refresh without If
    CHECK(lock(s, "/nodir/f").status == 409);
    CHECK(lock(s, "/newdir/").status == 409);
    CHECK_FALSE(s.root().exists("newdir"));
    CHECK(send(s, "LOCK", "/f", {}, lockinfo("shared", std::string(1000, 'o').c_str()), handle_lock).status == 413);
    CHECK(send(s, "UNLOCK", "/f", {}, {}, handle_unlock).status == 400);
    CHECK(send(s, "UNLOCK", "/f", "Lock-Token: urn:uuid:x\r\n", {}, handle_unlock).status == 400);
}

TEST_CASE("handler lock: the record store's file cannot be locked through any URL", "[handler][dav_locks]") {
    FakeSite s;
    s.root().write("database.txt", "");
    FakeResponse r = lock(s, "/database.txt");
    CHECK(r.status == 403);
}

TEST_CASE("handler lock: refresh with the token, also through a member, 412 otherwise", "[handler][dav_locks]") {
    FakeSite s;
    s.root().write("c/m.txt", "x");
    std::string tok = token(lock(s, "/c/", "exclusive", "Depth: infinity\r\n"));
    FakeResponse r = send(s, "LOCK", "/c/m.txt", if_token(tok) + "Timeout: Second-30\r\n", {}, handle_lock);
    CHECK(r.status == 200);
    CHECK_FALSE(r.has("lock-token"));
    CHECK(r.body.find(tok) != std::string::npos);
    CHECK(std::regex_search(r.body, std::regex("Second-(30|29)<")));
    s.root().write("other", "x");
    CHECK(send(s, "LOCK", "/other", if_token(tok), {}, handle_lock).status == 412);
    CHECK(send(s, "LOCK", "/c/m.txt", "If: (<urn:uuid:00000000-0000-4000-8000-000000000000>)\r\n", {}, handle_lock)
              .status == 412);
}

TEST_CASE("handler unlock: 204 with the token, 409 with another or on a URL outside the lock", "[handler][dav_locks]") {
    FakeSite s;
    s.root().write("f", "x");
    std::string tok = token(lock(s, "/f"));
    FakeResponse wrong = send(s, "UNLOCK", "/g", "Lock-Token: <" + tok + ">\r\n", {}, handle_unlock);
    CHECK(wrong.status == 409);
    CHECK(wrong.body.find("<D:lock-token-matches-request-uri/>") != std::string::npos);
    CHECK(send(s, "UNLOCK", "/f", "Lock-Token: <urn:uuid:00000000-0000-4000-8000-000000000000>\r\n", {}, handle_unlock)
              .status == 409);
    CHECK(send(s, "UNLOCK", "/f", "Lock-Token: <" + tok + ">\r\n", {}, handle_unlock).status == 204);
    CHECK(send(s, "UNLOCK", "/f", "Lock-Token: <" + tok + ">\r\n", {}, handle_unlock).status == 409);
    CHECK(lock(s, "/f").status == 200);
}

TEST_CASE("handler write: PUT, DELETE and MKCOL need the token of a lock that applies", "[handler][dav_locks]") {
    FakeSite s;
    s.root().write("f", "orig");
    std::string tok = token(lock(s, "/f"));
    FakeResponse r = put(s, "/f");
    CHECK(r.status == 423);
    CHECK(r.header("content-type") == "application/xml; charset=utf-8");
    CHECK(r.body.find("<D:error xmlns:D=\"DAV:\"><D:lock-token-submitted><D:href>/f</D:href></D:lock-token-submitted></D:error>") !=
          std::string::npos);
    CHECK(send(s, "DELETE", "/f", {}, {}, handle_delete).status == 423);
    CHECK(s.root().read("f") == "orig");
    CHECK(put(s, "/f", if_token(tok)).status == 204);
    CHECK(s.root().read("f") == "data");

    s.root().mkdir("c");
    std::string ctok = token(lock(s, "/c/", "exclusive", "Depth: 0\r\n"));
    CHECK(send(s, "MKCOL", "/c/sub/", {}, {}, handle_mkcol).status == 423);  // membership of /c
    CHECK_FALSE(s.root().exists("c/sub"));
    CHECK(send(s, "MKCOL", "/c/sub/", "If: </c/> (<" + ctok + ">)\r\n", {}, handle_mkcol).status == 201);
    CHECK(put(s, "/c/sub/deeper.txt").status == 201);  // depth 0: the member's members are free
    CHECK(send(s, "DELETE", "/c/", {}, {}, handle_delete).status == 423);

    // DELETE with the token removes the lock with the resource.
    CHECK(send(s, "DELETE", "/f", if_token(tok), {}, handle_delete).status == 204);
    CHECK(put(s, "/f").status == 201);
}

TEST_CASE("handler write: the If header's lists are OR'ed, conditions AND'ed, Not negates", "[handler][dav_locks]") {
    FakeSite s;
    s.root().write("f", "x");
    s.root().write("g", "y");
    auto etag = [&](const char* t) {
        FakeRequest r;
        r.method = "HEAD";
        r.target = t;
        return serve(s, std::move(r), handle_get).header("etag");
    };
    std::string tok = token(lock(s, "/f"));
    std::string ef = etag("/f");
    struct Case {
        std::string if_value;
        int status;
    };
    for (const Case& c : std::vector<Case>{
             {"(<" + tok + "> [" + ef + "])", 204},                                // both true
             {"(<" + tok + "> [\"other\"])", 412},                                // AND: one false
             {"([\"other\"]) (<" + tok + ">)", 204},                              // OR: the second is true
             {"(Not <DAV:no-lock>)", 423},                                        // true, but no token: 423
             {"(<DAV:no-lock>)", 412},                                            // false
             {"(Not <" + tok + ">)", 412},                                        // the lock exists
             {"(<" + tok + "x>) (Not <DAV:no-lock>)", 423},                       // a corrupt token is not submitted
             {"</g> (<" + tok + ">)", 412},                                       // the token does not cover /g
             {"</f> (<" + tok + ">)", 204},                                       // tagged with the target
             {"<http://localhost/f> (<" + tok + ">)", 204},                      // as an absolute URI
             {"(<" + tok + ">", 400},                                             // malformed
         }) {
        INFO(c.if_value);
        FakeResponse r = put(s, "/f", "If: " + c.if_value + "\r\n");
        CHECK(r.status == c.status);
        ef = etag("/f");  // a successful PUT changed it
    }
    // Without locks, entity tags still count: the ETag GET sends.
    std::string eg = etag("/g");
    CHECK(put(s, "/g", "If: ([" + eg + "])\r\n").status == 204);
    CHECK(put(s, "/g", "If: ([" + eg + "])\r\n").status == 412);
    CHECK(put(s, "/g", "If: (Not [\"nope\"])\r\n").status == 204);
    CHECK(put(s, "/h", "If: (Not <DAV:no-lock>)\r\n").status == 201);
    CHECK(put(s, "/i", "If: </g> ([\"nope\"])\r\n").status == 412);
}

TEST_CASE("handler write: a 423 comes before the body is read", "[handler][dav_locks]") {
    FakeSite s;
    s.root().write("f", "x");
    REQUIRE(lock(s, "/f").status == 200);
    FakeRequest r;
    r.method = "PUT";
    r.target = "/f";
    r.fields = "Expect: 100-continue\r\n";
    r.body = {"some body"};
    FakeExchange ex(s, r);
    FakeResponse resp = ex.run(handle_put);
    CHECK(resp.status == 423);
    CHECK_FALSE(ex.continue_sent());
    CHECK(ex.pieces_delivered() == 0);
}

TEST_CASE("handler lock: PROPFIND's lock properties for a resource", "[handler][dav_locks]") {
    FakeSite s;
    s.root().write("c/m.txt", "x");
    std::string out;
    append_lock_properties_for(s.site(), "/c/m.txt", time(nullptr), true, out);
    CHECK(out == "<D:lockdiscovery/>");
    out.clear();
    append_lock_properties_for(s.site(), "/c/m.txt", time(nullptr), false, out);
    CHECK(out.find("<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>") !=
          std::string::npos);
    CHECK(out.find("<D:shared/>") != std::string::npos);
    std::string tok = token(lock(s, "/c/", "shared", "Depth: infinity\r\n"));
    out.clear();
    append_lock_properties_for(s.site(), "/c/m.txt", time(nullptr), true, out);
    CHECK(out.find("<D:locktoken><D:href>" + tok + "</D:href></D:locktoken>") != std::string::npos);
    CHECK(out.find("<D:lockroot><D:href>/c</D:href></D:lockroot>") != std::string::npos);
    CHECK(out.find("<D:shared/>") != std::string::npos);
    out.clear();
    append_lock_properties_for(s.site(), "/", time(nullptr), true, out);
    CHECK(out == "<D:lockdiscovery/>");
}
