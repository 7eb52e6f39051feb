// Operations: health, readiness and drain, metrics, request ids, the access
// log, client addresses behind proxies, the PROXY protocol, connection
// limits.
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "test/integration/harness.h"

using namespace uvh::test;

TEST_CASE("/healthz and /readyz answer 200, and take precedence over files", "[ops]") {
    TestServer t;
    t.root().write("healthz", "a file with the same name");
    HttpResponse h = t.get("/healthz");
    CHECK(h.status == 200);
    CHECK(h.body == "ok\n");
    CHECK(h.header("cache-control") == "no-store");
    HttpResponse r = t.get("/readyz");
    CHECK(r.status == 200);
    CHECK(r.body == "ready\n");
    HttpResponse post = t.request("POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    CHECK(post.status == 405);
    CHECK(post.header("allow") == "GET, HEAD");
}

TEST_CASE("paths are configurable and '' turns an endpoint off", "[ops]") {
    TestServer t([](uvh::Config& c) {
        c.health_path = "/live";
        c.ready_path = "/ready";
        c.metrics_path = "";
    });
    t.root().write("metrics", "just a file");
    CHECK(t.get("/live").body == "ok\n");
    CHECK(t.get("/ready").status == 200);
    CHECK(t.get("/healthz").status == 404);
    CHECK(t.get("/metrics").body == "just a file");
}

TEST_CASE("a drain turns /readyz to 503 at once and asks clients to close", "[ops][drain]") {
    TestServer t([](uvh::Config& c) { c.drain_delay_ms = 60'000; });
    t.root().write("a.txt", "A");
    RawClient keep(t);
    keep.send("GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    REQUIRE(keep.read_response());
    t.server().drain();
    HttpResponse r = t.get("/readyz");
    CHECK(r.status == 503);
    CHECK(r.body == "draining\n");
    CHECK(t.get("/healthz").status == 200);  // alive, just not ready
    // Still serving during the delay, but every response closes its connection.
    keep.send("GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    auto last = keep.read_response();
    REQUIRE(last);
    CHECK(last->status == 200);
    CHECK(last->header("connection") == "close");
    CHECK(keep.wait_closed());
    t.server().shutdown();  // end the delay early
}

TEST_CASE("metrics: Prometheus text with the counters, loopback only", "[ops][metrics]") {
    TestServer t;
    t.root().write("a.txt", "A");
    t.get("/a.txt");
    t.get("/missing");
    t.request("POST /database.txt HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
              "Content-Length: 6\r\nConnection: close\r\n\r\nname=x");
    HttpResponse m = t.get("/metrics");
    CHECK(m.status == 200);
    CHECK(m.header("content-type") == "text/plain; version=0.0.4; charset=utf-8");
    for (const char* line : {"# TYPE uvhttpd_requests_total counter", "uvhttpd_requests_total{method=\"GET\",status=\"2xx\"} ",
                             "uvhttpd_requests_total{method=\"GET\",status=\"4xx\"} 1",
                             "uvhttpd_requests_total{method=\"POST\",status=\"2xx\"} 1",
                             "# TYPE uvhttpd_request_duration_seconds histogram",
                             "uvhttpd_request_duration_seconds_bucket{le=\"+Inf\"} ", "uvhttpd_received_bytes_total ",
                             "uvhttpd_sent_bytes_total ", "uvhttpd_open_connections 1", "uvhttpd_uploads_in_flight 0",
                             "uvhttpd_threadpool_queue_depth ", "uvhttpd_records_appended_total 1", "uvhttpd_ready 1"}) {
        INFO(line);
        CHECK(m.body.find(line) != std::string::npos);
    }
}

TEST_CASE("metrics from a non-loopback client need --metrics-allow", "[ops][metrics]") {
    // The client address comes from a trusted proxy's header here, which is
    // how a remote scraper looks behind a load balancer.
    TestServer deny([](uvh::Config& c) { c.trust_proxy = {"127.0.0.1"}; });
    CHECK(deny.get("/metrics", "X-Forwarded-For: 203.0.113.9\r\n").status == 403);
    TestServer allow([](uvh::Config& c) {
        c.trust_proxy = {"127.0.0.1"};
        c.metrics_allow = {"203.0.113.0/24"};
    });
    CHECK(allow.get("/metrics", "X-Forwarded-For: 203.0.113.9\r\n").status == 200);
    CHECK(allow.get("/metrics", "X-Forwarded-For: 198.51.100.1\r\n").status == 403);
}

TEST_CASE("X-Request-Id is echoed when sane, generated otherwise", "[ops]") {
    TestServer t;
    t.root().write("a.txt", "A");
    CHECK(t.get("/a.txt", "X-Request-Id: lb-1234-abcd\r\n").header("x-request-id") == "lb-1234-abcd");
    std::string gen1 = t.get("/a.txt").header("x-request-id");
    std::string gen2 = t.get("/a.txt").header("x-request-id");
    CHECK(gen1.size() == 16);
    CHECK(gen1 != gen2);
    CHECK(t.get("/a.txt", "X-Request-Id: " + std::string(200, 'x') + "\r\n").header("x-request-id").size() == 16);
    CHECK(t.get("/missing").has("x-request-id"));
    CHECK(t.request("BAD REQUEST\r\n\r\n").has("x-request-id"));
}

namespace {

std::string read_file(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

}  // namespace

TEST_CASE("access log: combined format, one line per request, escaped", "[ops][log]") {
    TempDir logs;
    std::string path = logs.path() + "/access.log";
    {
        TestServer t([&](uvh::Config& c) { c.access_log = path; });
        t.root().write("a.txt", "hello");
        t.get("/a.txt", "User-Agent: test \"agent\"\r\nReferer: http://ref/\r\n");
        t.get("/missing?q=1");
        t.request("\x01garbage\r\n\r\n");
        t.stop();
    }
    std::string log = read_file(path);
    std::istringstream lines(log);
    std::string l1, l2, l3;
    std::getline(lines, l1);
    std::getline(lines, l2);
    std::getline(lines, l3);
    INFO(log);
    CHECK(l1.rfind("127.0.0.1 - - [", 0) == 0);
    CHECK(l1.find("] \"GET /a.txt HTTP/1.1\" 200 ") != std::string::npos);
    CHECK(l1.find("\"http://ref/\" \"test \\x22agent\\x22\"") != std::string::npos);
    CHECK(l2.find("\"GET /missing?q=1 HTTP/1.1\" 404 ") != std::string::npos);
    CHECK(l3.find("\"-\" 400 ") != std::string::npos);
}

TEST_CASE("access log: JSON with time, client, method, target, status, bytes, duration, id", "[ops][log]") {
    TempDir logs;
    std::string path = logs.path() + "/access.json";
    std::string id;
    {
        TestServer t([&](uvh::Config& c) {
            c.access_log = path;
            c.log_json = true;
            c.trust_proxy = {"127.0.0.0/8"};
        });
        t.root().write("a.txt", "hello");
        id = t.get("/a.txt", "X-Forwarded-For: 198.51.100.7, 127.0.0.1\r\nUser-Agent: ua\r\n").header("x-request-id");
        t.stop();
    }
    auto j = nlohmann::json::parse(read_file(path));
    CHECK(j["client"] == "198.51.100.7");
    CHECK(j["method"] == "GET");
    CHECK(j["target"] == "/a.txt");
    CHECK(j["status"] == 200);
    CHECK(j["bytes"].get<int>() > 5);
    CHECK(j["duration_us"].get<int>() >= 0);
    CHECK(j["user_agent"] == "ua");
    CHECK(j["request_id"] == id);
    CHECK(j["time"].get<std::string>().size() == 20);
}

TEST_CASE("client address: only trusted peers' forwarding headers are believed", "[ops][proxy]") {
    TempDir logs;
    std::string path = logs.path() + "/a.json";
    {
        TestServer t([&](uvh::Config& c) {
            c.access_log = path;
            c.log_json = true;
        });
        t.root().write("a.txt", "x");
        t.get("/a.txt", "X-Forwarded-For: 6.6.6.6\r\n");  // nobody trusted: ignored
        t.stop();
    }
    CHECK(nlohmann::json::parse(read_file(path))["client"] == "127.0.0.1");
    std::string path2 = logs.path() + "/b.json";
    {
        TestServer t([&](uvh::Config& c) {
            c.access_log = path2;
            c.log_json = true;
            c.trust_proxy = {"127.0.0.1", "10.0.0.0/8"};
        });
        t.root().write("a.txt", "x");
        // The rightmost untrusted hop is the client; what it claimed is not.
        t.get("/a.txt", "X-Forwarded-For: 6.6.6.6, 192.0.2.1, 10.1.2.3\r\n");
        t.get("/a.txt", "Forwarded: for=\"[2001:db8::1]:4711\";proto=http, for=10.9.9.9\r\n");
        t.stop();
    }
    std::istringstream lines(read_file(path2));
    std::string a, b;
    std::getline(lines, a);
    std::getline(lines, b);
    CHECK(nlohmann::json::parse(a)["client"] == "192.0.2.1");
    CHECK(nlohmann::json::parse(b)["client"] == "2001:db8::1");
}

TEST_CASE("PROXY protocol v1 and v2 give the client address and anything else is refused", "[ops][proxy]") {
    TempDir logs;
    std::string path = logs.path() + "/p.json";
    {
        TestServer t([&](uvh::Config& c) {
            c.proxy_protocol = true;
            c.access_log = path;
            c.log_json = true;
        });
        t.root().write("a.txt", "x");
        HttpResponse v1 = t.request("PROXY TCP4 198.51.100.22 203.0.113.7 35646 80\r\n"
                                    "GET /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        CHECK(v1.status == 200);
        std::string v2 = std::string("\r\n\r\n\0\r\nQUIT\n", 12) + "\x21\x11" + std::string("\x00\x0c", 2) +
                         std::string("\xc0\x00\x02\x05\xcb\x00\x71\x07\x1f\x90\x00\x50", 12) +
                         "GET /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        CHECK(t.request(v2).status == 200);
        RawClient split(t);  // the header may come in pieces
        split.send_and_wait_read("PROXY TCP6 2001:db8::5 2001:db8::1 1000 ");
        split.send("80\r\nGET /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        auto sr = split.read_response();
        REQUIRE(sr);
        CHECK(sr->status == 200);
        HttpResponse bad = t.request("GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
        CHECK(bad.status == 400);
        t.stop();
    }
    std::istringstream lines(read_file(path));
    std::string a, b, c;
    std::getline(lines, a);
    std::getline(lines, b);
    std::getline(lines, c);
    CHECK(nlohmann::json::parse(a)["client"] == "198.51.100.22");
    CHECK(nlohmann::json::parse(b)["client"] == "192.0.2.5");
    CHECK(nlohmann::json::parse(c)["client"] == "2001:db8::5");
}

TEST_CASE("max-connections: over the limit a short 503 and close", "[ops][limits]") {
    TestServer t([](uvh::Config& c) { c.max_connections = 3; });
    t.root().write("a.txt", "A");
    std::vector<std::unique_ptr<RawClient>> held;
    for (int i = 0; i < 3; ++i) {
        held.push_back(std::make_unique<RawClient>(t));
        held.back()->send("GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
        REQUIRE(held.back()->read_response());
    }
    RawClient over(t);
    auto r = over.read_response();
    REQUIRE(r);
    CHECK(r->status == 503);
    CHECK(r->header("connection") == "close");
    CHECK(over.wait_closed());
    CHECK(t.server().metrics().connections_refused >= 1);
    // Freeing a slot lets the next client in.
    held.pop_back();
    CHECK(t.spin_until([&] { return t.server().metrics().open_connections <= 2; }));
    RawClient next(t);
    next.send("GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    auto ok = next.read_response();
    REQUIRE(ok);
    CHECK(ok->status == 200);
}

TEST_CASE("keepalive-requests closes after N requests", "[ops][limits]") {
    TestServer t([](uvh::Config& c) { c.keepalive_requests = 3; });
    t.root().write("a.txt", "A");
    RawClient c(t);
    for (int i = 0; i < 3; ++i) {
        c.send("GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->header("connection") == (i == 2 ? "close" : ""));
    }
    CHECK(c.wait_closed());
}

TEST_CASE("a body that stalls after its early response is still under the body timeout", "[ops][timeout]") {
    // Found by the fuzzer: a GET with a body is answered before the body
    // ends (the body is read and dropped); a client that then stops sending
    // used to keep the connection forever.
    // Sent from the disk (past --inline-max), so the send timeout runs and
    // ends while the body is still open.
    TestServer t([](uvh::Config& c) {
        c.body_timeout_ms = 300;
        c.inline_max = 16;
    });
    const std::string content(4000, 'A');
    t.root().write("a.txt", content);
    for (const char* framing : {"Content-Length: 100\r\n\r\nonly a part",
                                "Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n"}) {
        RawClient c(t);
        c.send(std::string("GET /a.txt HTTP/1.1\r\nHost: localhost\r\n") + framing);
        auto r = c.read_response(false, std::chrono::seconds(5));
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->body == content);
        CHECK(c.wait_closed(std::chrono::seconds(5)));
    }
}

TEST_CASE("an error answer to HEAD carries no body", "[http]") {
    TestServer t;
    RawClient c(t);
    c.send("HEAD /a.txt HTTP/1.1\r\nHost: localhost\r\nHost: y\r\n\r\n");
    auto r = c.read_response(true, std::chrono::seconds(5));
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(c.wait_closed());
    CHECK(c.buffered().empty());
}

TEST_CASE("a body that trickles in is closed by the body timeout too", "[ops][timeout]") {
    // slowhttptest -B: a few bytes now and then. Each --body-timeout must
    // bring 16 KiB (or the end of the body), as nginx's client_body_timeout
    // alone would let this run for hours.
    TestServer t([](uvh::Config& c) { c.body_timeout_ms = 300; });
    RawClient c(t);
    c.send("PUT /slow.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n");
    bool closed = false;
    int sent = 0;
    // One byte, then up to 20 ms waiting for the close: at most 50 bytes a
    // second, so no body-timeout interval can bring 16 KiB and the server
    // must cut the upload off long before the 1000 bytes (20 s) are sent.
    // The wait ends as soon as the connection closes; a slow machine only
    // sends fewer bytes per interval.
    while (sent < 1000 && !closed) {
        c.send("x");
        ++sent;
        closed = c.wait_closed(std::chrono::milliseconds(20));
    }
    REQUIRE(closed);
    CHECK(sent < 1000);
    CHECK(c.buffered().rfind("HTTP/1.1 408", 0) == 0);
    CHECK_FALSE(t.root().exists("slow.txt"));
}

TEST_CASE("the body timeout closes a stalled upload with 408", "[ops][timeout]") {
    TestServer t([](uvh::Config& c) { c.body_timeout_ms = 300; });
    RawClient c(t);
    c.send("PUT /slow.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nonly a part");
    auto r = c.read_response(false, std::chrono::seconds(5));
    REQUIRE(r);
    CHECK(r->status == 408);
    CHECK(c.wait_closed());
    CHECK_FALSE(t.root().exists("slow.txt"));
}
