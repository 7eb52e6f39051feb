// The route table (handlers/routes.cpp) and the router that walks it
// (handlers/router.cpp): Allow derived from the table with and without
// writes, which route a path matches, and what dispatch answers before any
// handler touches the disk. The router runs against a fake Exchange that
// records the response; nothing here reaches a file.
#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

#include "handlers/router.h"
#include "handlers/routes.h"
#include "handlers/ui/ui_assets.h"
#include "handlers/ui/ui_route.h"

using namespace uvh;

namespace {

// Just enough of an Exchange for answers the router gives itself: it
// records the response and the body decision, and fails the test if a
// handler asks for the threadpool or the record store.
class FakeExchange : public Exchange {
public:
    FakeExchange(const Site& site, Method m, std::string path) : site_(site), path_(std::move(path)) {
        req_.method = m;
        req_.method_name = method_token(m);
        req_.parsed.form = TargetForm::Origin;
        req_.host = "localhost";
    }

    Request& req() { return req_; }

    const Request& request() const override { return req_; }
    const Site& site() const override { return site_; }
    time_t now() const override { return 0; }
    uint64_t now_ms() const override { return 0; }
    std::string_view path() const override { return path_; }
    const PeerAddress& client() const override { return client_; }
    std::string& text() override { return text_; }
    MultipartLayout& multipart() override { return layout_; }
    void offload(Job&, JobClass) override { FAIL("the router offloaded work"); }
    void close_later(int) override {}
    void respond(const ResponseHead& head, const Body& body) override {
        REQUIRE_FALSE(status.has_value());
        status = head.status;
        allow = std::string(head.allow);
        etag = std::string(head.etag);
        cache_control = std::string(head.cache_control);
        if (body.kind == Body::Kind::Memory) body_text = std::string(body.memory);
    }
    void read_body(const BodyReader&) override { body_mode = "read"; }
    void body_consumed() override {}
    void discard_body() override {
        if (body_mode.empty()) body_mode = "discarded";
    }
    void hold() override { FAIL("the router held the exchange"); }
    void release(DoneFn) override {}

    std::optional<int> status;
    std::string allow;
    std::string etag;
    std::string cache_control;
    std::string body_text;
    std::string body_mode;  // "", "read" or "discarded"

protected:
    JobSlot& job_slot() override { return jobs_; }
    SourceSlot& source_slot() override { return sources_; }

private:
    const Site& site_;
    Request req_;
    std::string path_;
    PeerAddress client_;
    std::string text_;
    MultipartLayout layout_;
    JobSlot jobs_;
    SourceSlot sources_;
};

const std::vector<Method> kMethods = {Method::Get,     Method::Head,  Method::Post, Method::Put,
                                      Method::Delete, Method::Options, Method::Mkcol, Method::Patch};

std::string_view route_name(const Site& site, std::string_view path) {
    Request req;
    req.parsed.form = TargetForm::Origin;
    return find_route(site, req, path).name;
}

Site read_only() {
    Site s;
    s.writes_enabled = false;
    return s;
}

}  // namespace

TEST_CASE("routes: Allow is derived from the table, in the table's order", "[routes]") {
    Site site;
    CHECK(allowed_methods(site) == "GET, HEAD, OPTIONS, PUT, DELETE, MKCOL, POST, LOCK, UNLOCK, PROPFIND, PROPPATCH, COPY, MOVE");
    CHECK(allow_for(site, "/a/b.txt") == "GET, HEAD, OPTIONS, PUT, DELETE, MKCOL, POST, LOCK, UNLOCK, PROPFIND, PROPPATCH, COPY, MOVE");
    CHECK(allow_for(site, "/dir/") == "GET, HEAD, OPTIONS, PUT, DELETE, MKCOL, POST, LOCK, UNLOCK, PROPFIND, PROPPATCH, COPY, MOVE");
    CHECK(allow_for(site, "/database.txt") == "GET, HEAD, POST, OPTIONS, PROPFIND");
    CHECK(allow_for(site, "/database.txt/7") == "GET, HEAD, PUT, DELETE, OPTIONS");
    CHECK(allow_for(site, "/healthz") == "GET, HEAD");
    CHECK(allow_for(site, "/readyz") == "GET, HEAD");
    CHECK(allow_for(site, "/metrics") == "GET, HEAD");
}

TEST_CASE("routes: --read-only leaves the writes out of every Allow", "[routes]") {
    Site site = read_only();
    for (const char* path : {"/a/b.txt", "/dir/", "/database.txt"}) {
        INFO(path);
        CHECK(allow_for(site, path) == "GET, HEAD, OPTIONS, PROPFIND");
    }
    CHECK(allow_for(site, "/database.txt/7") == "GET, HEAD, OPTIONS");
    CHECK(allowed_methods(site) == "GET, HEAD, OPTIONS, PROPFIND");
    CHECK(allow_for(site, "/healthz") == "GET, HEAD");
}

TEST_CASE("routes: derive_allow lists the methods in order and drops writes for read-only", "[routes]") {
    Route r;
    r.methods = {{Method::Get, nullptr, BodyPolicy::Discard, Access::Read, {}},
                 {Method::Put, nullptr, BodyPolicy::Read, Access::Write, {}},
                 {Method::Options, nullptr, BodyPolicy::Discard, Access::Read, {}}};
    derive_allow(r);
    CHECK(r.allow_writes == "GET, PUT, OPTIONS");
    CHECK(r.allow_reads == "GET, OPTIONS");
    Site site;
    CHECK(r.allow(site) == "GET, PUT, OPTIONS");
    site.writes_enabled = false;
    CHECK(r.allow(site) == "GET, OPTIONS");
}

TEST_CASE("routes: which route a path matches", "[routes]") {
    Site site;
    CHECK(route_name(site, "/") == "files");
    CHECK(route_name(site, "/a/b.txt") == "files");
    CHECK(route_name(site, "/database.txt") == "database");
    CHECK(route_name(site, "/database.txt/7") == "record");
    CHECK(route_name(site, "/database.txt/") == "files");
    CHECK(route_name(site, "/database.txt/a/b") == "files");
    CHECK(route_name(site, "/database.txtx") == "files");
    CHECK(route_name(site, "/.git/config") == "hidden");
    CHECK(route_name(site, "/a/.env") == "hidden");
    CHECK(route_name(site, "/.uvhttpd-tmp-0123") == "hidden");
    // A resumable upload's resource comes before the dotfile rule; nothing
    // else under its prefix does (handlers/uploads/uploads.h).
    CHECK(route_name(site, "/.uvhttpd-uploads/0123456789abcdef0123456789abcdef") == "upload");
    CHECK(route_name(site, "/.uvhttpd-uploads/0123456789ABCDEF0123456789ABCDEF") == "hidden");
    CHECK(route_name(site, "/.uvhttpd-uploads/0123456789abcdef0123456789abcdef.part") == "hidden");
    CHECK(route_name(site, "/.uvhttpd-uploads/") == "hidden");
    CHECK(route_name(site, "/x/.uvhttpd-uploads/0123456789abcdef0123456789abcdef") == "hidden");
    Request star;
    star.parsed.form = TargetForm::Asterisk;
    CHECK(find_route(site, star, "*").name == "server");
    CHECK(find_route(site, star, "*").allow(site) == allowed_methods(site));
}

TEST_CASE("routes: probes come before files of the same name, and follow their configured paths", "[routes]") {
    Site site;
    CHECK(route_name(site, "/healthz") == "health");
    CHECK(route_name(site, "/readyz") == "ready");
    CHECK(route_name(site, "/metrics") == "metrics");
    CHECK(route_name(site, "/healthz/") == "files");

    site.health_path = "/.well-known/live";
    site.ready_path = "/database.txt";
    site.metrics_path = "";
    CHECK(route_name(site, "/.well-known/live") == "health");  // before the dotfile rule
    CHECK(route_name(site, "/database.txt") == "ready");       // before the record store
    CHECK(route_name(site, "/healthz") == "files");
    CHECK(route_name(site, "/metrics") == "files");  // '' turns it off
    CHECK(route_name(site, "") == "files");
}

TEST_CASE("routes: every write of the table is marked a write", "[routes]") {
    for (const Route& r : route_table()) {
        for (const MethodRoute& m : r.methods) {
            INFO(r.name << " " << method_token(m.method));
            bool write = m.method == Method::Put || m.method == Method::Delete || m.method == Method::Mkcol ||
                         m.method == Method::Post || m.method == Method::Proppatch || m.method == Method::Copy ||
                         m.method == Method::Move || m.method == Method::Lock || m.method == Method::Unlock ||
                         m.method == Method::Patch;
            CHECK((m.access == Access::Write) == write);
            CHECK((m.handler == nullptr) == (m.method == Method::Options));
        }
        // Exactly one way to answer: per method, or everything to `any`.
        CHECK((r.any != nullptr) == r.methods.empty());
    }
    CHECK(route_table().back().name == "files");
}

TEST_CASE("dispatch: dotfiles are 404 for every method, writes or not", "[routes][dispatch]") {
    for (Site site : {Site{}, read_only()}) {
        site.write_token = "s3cret";  // not even the token check comes first
        for (Method m : kMethods) {
            for (const char* path : {"/.secret", "/a/.git/config", "/database.txt/.x"}) {
                FakeExchange ex(site, m, path);
                INFO(method_token(m) << " " << path << " writes " << site.writes_enabled);
                dispatch(ex);
                REQUIRE(ex.status);
                CHECK(*ex.status == 404);
                CHECK(ex.allow.empty());
                CHECK(ex.body_mode == "");  // no body is read for a file that is not there
            }
        }
    }
}

TEST_CASE("dispatch: a method a route does not take is 405 with the route's Allow", "[routes][dispatch]") {
    Site site;
    struct Case {
        Method m;
        const char* path;
        const char* allow;
        const char* text;
    };
    for (const Case& c : std::vector<Case>{
             {Method::Post, "/healthz", "GET, HEAD", "this endpoint answers GET and HEAD"},
             {Method::Options, "/metrics", "GET, HEAD", "this endpoint answers GET and HEAD"},
             {Method::Put, "/database.txt", "GET, HEAD, POST, OPTIONS, PROPFIND", "the record store takes POST"},
             {Method::Delete, "/database.txt", "GET, HEAD, POST, OPTIONS, PROPFIND", "the record store takes POST"},
             {Method::Post, "/database.txt/1", "GET, HEAD, PUT, DELETE, OPTIONS", "a record supports"},
             {Method::Mkcol, "/database.txt/1", "GET, HEAD, PUT, DELETE, OPTIONS", "a record supports"},
         }) {
        FakeExchange ex(site, c.m, c.path);
        INFO(method_token(c.m) << " " << c.path);
        dispatch(ex);
        REQUIRE(ex.status);
        CHECK(*ex.status == 405);
        CHECK(ex.allow == c.allow);
        CHECK(ex.body_text.find(c.text) != std::string::npos);
    }
    // POST is a method of the file route (a directory URL takes a record),
    // refused for a file by its handler with the same Allow.
    FakeExchange file(site, Method::Post, "/a.txt");
    dispatch(file);
    REQUIRE(file.status);
    CHECK(*file.status == 405);
    CHECK(file.allow == "GET, HEAD, OPTIONS, PUT, DELETE, MKCOL, POST, LOCK, UNLOCK, PROPFIND, PROPPATCH, COPY, MOVE");
}

TEST_CASE("dispatch: --read-only answers every write 405 with the read Allow", "[routes][dispatch]") {
    Site site = read_only();
    for (Method m : {Method::Put, Method::Delete, Method::Mkcol, Method::Post, Method::Proppatch, Method::Copy,
                     Method::Move}) {
        for (const char* path : {"/f.txt", "/d/", "/database.txt", "/database.txt/1"}) {
            FakeExchange ex(site, m, path);
            INFO(method_token(m) << " " << path);
            dispatch(ex);
            REQUIRE(ex.status);
            CHECK(*ex.status == 405);
            CHECK(ex.allow == (std::string_view(path) == "/database.txt/1" ? "GET, HEAD, OPTIONS"
                                                                            : "GET, HEAD, OPTIONS, PROPFIND"));
            CHECK(ex.body_text.find("this server is read-only") != std::string::npos);
        }
    }
}

TEST_CASE("dispatch: OPTIONS answers 204 with the route's Allow", "[routes][dispatch]") {
    for (Site site : {Site{}, read_only()}) {
        for (const char* path : {"/", "/f.txt", "/database.txt", "/database.txt/1"}) {
            FakeExchange ex(site, Method::Options, path);
            INFO(path << " writes " << site.writes_enabled);
            dispatch(ex);
            REQUIRE(ex.status);
            CHECK(*ex.status == 204);
            CHECK(ex.allow == allow_for(site, path));
            CHECK(ex.body_mode == "discarded");
        }
        FakeExchange star(site, Method::Options, "*");
        star.req().parsed.form = TargetForm::Asterisk;
        dispatch(star);
        REQUIRE(star.status);
        CHECK(*star.status == 204);
        CHECK(star.allow == allowed_methods(site));
    }
}

TEST_CASE("dispatch: the write policy answers in order: token 401, Host 421, Origin 403", "[routes][dispatch]") {
    Site site;
    site.write_token = "s3cret";
    FakeExchange no_token(site, Method::Put, "/f.txt");
    dispatch(no_token);
    CHECK(no_token.status == 401);

    site.write_token.clear();
    FakeExchange rebound(site, Method::Delete, "/f.txt");
    rebound.req().host = "attacker.example";
    dispatch(rebound);
    CHECK(rebound.status == 421);

    // A cross-site page: 403 even with no Host problem.
    FakeExchange cross(site, Method::Put, "/f.txt");
    const Header origin[] = {{"origin", "https://attacker.example"}, {"sec-fetch-site", "cross-site"}};
    cross.req().headers = origin;
    dispatch(cross);
    CHECK(cross.status == 403);

    // The token check comes first: a wrong token is 401 whatever the Host.
    site.write_token = "s3cret";
    FakeExchange both(site, Method::Mkcol, "/d/");
    both.req().host = "attacker.example";
    dispatch(both);
    CHECK(both.status == 401);

    // Probes take no writes: their 405 comes before any write policy.
    FakeExchange probe(site, Method::Put, "/healthz");
    dispatch(probe);
    CHECK(probe.status == 405);
}

TEST_CASE("dispatch: MKCOL with a body is 415 before the handler, an unknown method 501", "[routes][dispatch]") {
    Site site;
    FakeExchange mkcol(site, Method::Mkcol, "/d/");
    mkcol.req().has_content_length = true;
    mkcol.req().content_length = 3;
    dispatch(mkcol);
    CHECK(mkcol.status == 415);
    CHECK(mkcol.body_mode == "");  // refused unread: the connection decides to drop or close

    for (const char* path : {"/f.txt", "/healthz", "/.secret"}) {
        FakeExchange other(site, Method::Other, path);
        dispatch(other);
        CHECK(other.status == 501);
    }
}

TEST_CASE("routes: the listing page's assets are served from memory under /.uvhttpd-ui/", "[routes][ui]") {
    Site site;
    REQUIRE(kUiAssetCount == 4);  // ui.css, upload.js, upload_list.js, ui.js
    CHECK(route_name(site, "/.uvhttpd-ui/ui.0123456789abcdef.js") == "ui");
    CHECK(route_name(site, "/.uvhttpd-ui/") == "ui");
    CHECK(route_name(site, "/.uvhttpd-uix/a") == "hidden");
    CHECK(allow_for(site, "/.uvhttpd-ui/x") == "GET, HEAD, OPTIONS");
    for (size_t i = 0; i < kUiAssetCount; ++i) {
        const UiAsset& a = kUiAssets[i];
        INFO(a.file);
        CHECK(find_ui_asset(a.file) == &a);
        // NAME.HASH.EXT, the identity's ETag the same hash in quotes.
        REQUIRE(a.file.size() > a.stem.size() + 17);
        const UiRep& id = a.reps[UiAsset::kIdentity];
        CHECK(id.etag == "\"" + std::string(a.file.substr(a.stem.size() + 1, 16)) + "\"");
        for (int r = 1; r < UiAsset::kReps; ++r) {
            CHECK(a.reps[r].data.size() < id.data.size() / 2);  // compressed at build time
            CHECK(a.reps[r].etag != id.etag);
        }
        FakeExchange ex(site, Method::Get, std::string(kUiPrefix) + std::string(a.file));
        dispatch(ex);
        CHECK(ex.status == 200);
        CHECK(ex.etag == id.etag);
        CHECK(ex.cache_control == "public, max-age=31536000, immutable");
        CHECK(ex.body_text == id.data);
        FakeExchange cond(site, Method::Get, std::string(kUiPrefix) + std::string(a.file));
        cond.req().if_none_match = id.etag;
        dispatch(cond);
        CHECK(cond.status == 304);
        FakeExchange refused(site, Method::Get, std::string(kUiPrefix) + std::string(a.file));
        refused.req().accept_encoding = "identity;q=0";
        dispatch(refused);
        CHECK(refused.status == 406);  // the site has no --compress policy here: identity only
    }
    FakeExchange missing(site, Method::Get, "/.uvhttpd-ui/ui.0000000000000000.js");
    dispatch(missing);
    CHECK(missing.status == 404);
    FakeExchange put(site, Method::Put, std::string(kUiPrefix) + std::string(kUiAssets[0].file));
    dispatch(put);
    CHECK(put.status == 405);
    CHECK(put.allow == "GET, HEAD, OPTIONS");
}

TEST_CASE("routes: page_writes tells the page what the write policy would answer", "[routes][ui]") {
    Site site;
    Request req;
    req.host = "127.0.0.1:8080";
    CHECK(page_writes(site, req) == "open");
    req.host = "files.example";
    CHECK(page_writes(site, req) == "closed");  // a write would get 421
    site.allowed_hosts = {"files.example"};
    CHECK(page_writes(site, req) == "open");
    site.write_token = "s3cret";
    req.host = "other.example";
    CHECK(page_writes(site, req) == "token");
    site.writes_enabled = false;
    CHECK(page_writes(site, req) == "closed");
}
