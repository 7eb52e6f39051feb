// Tests for protocol/request_parser.cpp: the llhttp bridge, driven directly
// (no sockets): framing, field storage, limits and error classification
// (RFC 9112 §2-§7, RFC 9110 §5).
#include "protocol/request_parser.h"

#define CATCH_CONFIG_ENABLE_OPTIONAL_STRINGMAKER
#include <catch2/catch.hpp>

#include <algorithm>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace uvh;
using Event = RequestParser::Event;

namespace {

std::optional<std::string> opt(std::string_view v) {
    if (!v.data()) return std::nullopt;
    return std::string(v);
}

// A deep copy of a Request taken at the Head event, so requests parsed in
// different ways can be compared after the storage has moved on.
struct Snapshot {
    Method method = Method::Other;
    std::string method_name;
    int http_major = 0, http_minor = 0;
    std::string target;
    TargetForm form = TargetForm::Invalid;
    std::string path, query, authority;
    std::vector<std::pair<std::string, std::string>> headers;
    std::optional<std::string> host;
    int host_count = 0;
    std::optional<std::string> if_match, if_none_match, if_modified_since, if_unmodified_since,
        if_range, range, accept, accept_encoding, content_type, content_range, expect,
        authorization, user_agent, referer, x_request_id, x_forwarded_for, forwarded,
        transfer_encoding;
    bool chunked = false, has_content_length = false;
    uint64_t content_length = 0;
    bool keep_alive = false;

    bool operator==(const Snapshot&) const = default;

    static Snapshot of(const Request& r) {
        Snapshot s;
        s.method = r.method;
        s.method_name = r.method_name;
        s.http_major = r.http_major;
        s.http_minor = r.http_minor;
        s.target = r.target;
        s.form = r.parsed.form;
        s.path = r.parsed.path;
        s.query = r.parsed.query;
        s.authority = r.parsed.authority;
        for (const Header& h : r.headers) s.headers.emplace_back(h.name, h.value);
        s.host = opt(r.host);
        s.host_count = r.host_count;
        s.if_match = opt(r.if_match);
        s.if_none_match = opt(r.if_none_match);
        s.if_modified_since = opt(r.if_modified_since);
        s.if_unmodified_since = opt(r.if_unmodified_since);
        s.if_range = opt(r.if_range);
        s.range = opt(r.range);
        s.accept = opt(r.accept);
        s.accept_encoding = opt(r.accept_encoding);
        s.content_type = opt(r.content_type);
        s.content_range = opt(r.content_range);
        s.expect = opt(r.expect);
        s.authorization = opt(r.authorization);
        s.user_agent = opt(r.user_agent);
        s.referer = opt(r.referer);
        s.x_request_id = opt(r.x_request_id);
        s.x_forwarded_for = opt(r.x_forwarded_for);
        s.forwarded = opt(r.forwarded);
        s.transfer_encoding = opt(r.transfer_encoding);
        s.chunked = r.chunked;
        s.has_content_length = r.has_content_length;
        s.content_length = r.content_length;
        s.keep_alive = r.keep_alive;
        return s;
    }
};

std::ostream& operator<<(std::ostream& os, const Snapshot& s) {
    os << s.method_name << " " << s.target << " HTTP/" << s.http_major << "." << s.http_minor
       << " keep_alive=" << s.keep_alive << " chunked=" << s.chunked
       << " content_length=" << s.content_length << " headers:";
    for (const auto& [n, v] : s.headers) os << " [" << n << ": " << v << "]";
    return os;
}

const char* name_of(Event e) {
    switch (e) {
    case Event::NeedMore: return "NeedMore";
    case Event::Head: return "Head";
    case Event::Complete: return "Complete";
    case Event::Error: return "Error";
    }
    return "?";
}

// Drives a RequestParser the way the connection layer does: offer bytes,
// resume() after Head, next_message() after Complete, offer the rest again.
struct Driver {
    RequestParser parser;
    RequestStorage storage;
    std::vector<Event> events;     // Head, Complete and Error, in order
    std::vector<Snapshot> heads;   // one per Head
    std::vector<std::string> bodies;  // one per Complete
    std::string body;              // the body of the message in progress
    size_t body_calls = 0;

    Driver() {
        parser.attach(&storage);
        parser.set_body_sink(&sink, this);
    }
    explicit Driver(const ParserLimits& limits) : Driver() { parser.set_limits(limits); }

    static void sink(void* ctx, const char* data, size_t len) {
        auto* d = static_cast<Driver*>(ctx);
        d->body.append(data, len);
        ++d->body_calls;
    }

    bool failed() const { return !events.empty() && events.back() == Event::Error; }

    // Offers one read's worth of bytes.
    void offer(std::string_view data) {
        size_t off = 0;
        for (int guard = 0; guard < 100000; ++guard) {
            size_t consumed = 12345;
            Event e = parser.execute(data.data() + off, data.size() - off, consumed);
            REQUIRE(consumed <= data.size() - off);
            off += consumed;
            switch (e) {
            case Event::NeedMore:
                REQUIRE(off == data.size());
                return;
            case Event::Head:
                events.push_back(e);
                heads.push_back(Snapshot::of(parser.request()));
                parser.resume();
                break;
            case Event::Complete:
                events.push_back(e);
                bodies.push_back(std::move(body));
                body.clear();
                parser.next_message();
                break;
            case Event::Error:
                events.push_back(e);
                return;
            }
        }
        FAIL("the parser did not settle");
    }

    // Offers `data` split into reads of `step` bytes.
    void feed(std::string_view data, size_t step = std::string_view::npos) {
        if (step == std::string_view::npos || step == 0) step = std::max<size_t>(data.size(), 1);
        for (size_t i = 0; i < data.size() && !failed(); i += step)
            offer(data.substr(i, std::min(step, data.size() - i)));
        if (!failed()) offer({});  // a zero-length execute completes a pending message
    }
};

std::string events_text(const std::vector<Event>& events) {
    std::string s;
    for (Event e : events) {
        if (!s.empty()) s += ",";
        s += name_of(e);
    }
    return s;
}

// Feeds a request that must be refused and checks the status, both whole and
// one byte at a time.
void expect_error(std::string_view request, int status, bool head_first = false) {
    for (size_t step : {std::string_view::npos, size_t{1}}) {
        Driver d;
        d.feed(request, step);
        INFO((step == 1 ? "one byte at a time" : "whole") << ", events " << events_text(d.events) << ", message: "
                     << d.parser.error_message());
        REQUIRE(d.failed());
        CHECK(d.parser.error_status() == status);
        CHECK_FALSE(d.parser.error_message().empty());
        // A broken head is never handed on; a broken body comes after its head.
        CHECK(d.heads.size() == (head_first ? 1u : 0u));
    }
}

const std::string kSimpleGet =
    "GET /index.html?x=1 HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "User-Agent: test/1.0\r\n"
    "\r\n";

}  // namespace

TEST_CASE("request_parser: a simple GET", "[request_parser]") {
    Driver d;
    d.feed(kSimpleGet);
    REQUIRE(events_text(d.events) == "Head,Complete");
    const Snapshot& r = d.heads[0];
    CHECK(r.method == Method::Get);
    CHECK(r.method_name == "GET");
    CHECK(r.http_major == 1);
    CHECK(r.http_minor == 1);
    CHECK(r.target == "/index.html?x=1");
    CHECK(r.form == TargetForm::Origin);
    CHECK(r.path == "/index.html");
    CHECK(r.query == "x=1");
    CHECK(r.host == "example.com");
    CHECK(r.host_count == 1);
    CHECK(r.user_agent == "test/1.0");
    CHECK(r.keep_alive);
    CHECK_FALSE(r.chunked);
    CHECK_FALSE(r.has_content_length);
    CHECK(r.headers.size() == 2);
    CHECK(r.accept == std::nullopt);
    CHECK(d.bodies == std::vector<std::string>{""});
    CHECK(d.body_calls == 0);
    CHECK(d.parser.bytes_parsed() == kSimpleGet.size());
}

TEST_CASE("request_parser: Request helpers on a parsed head", "[request_parser]") {
    RequestParser p;
    RequestStorage s;
    p.attach(&s);
    const std::string req =
        "GET / HTTP/1.1\r\nHost: h\r\nX-Custom: Value\r\nIf-None-Match: \"a\"\r\n"
        "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n";
    size_t consumed = 0;
    REQUIRE(p.execute(req.data(), req.size(), consumed) == Event::Head);
    CHECK(consumed == req.size());
    const Request& r = p.request();
    CHECK(r.find("x-custom") == "Value");
    CHECK(r.find("X-CUSTOM") == "Value");
    CHECK(r.find("missing").data() == nullptr);
    CHECK(r.safe());
    CHECK_FALSE(r.http10());
    CHECK_FALSE(r.has_body());
    Conditionals c = r.conditionals();
    CHECK(c.any());
    CHECK(c.if_none_match == "\"a\"");
    CHECK(c.if_modified_since == "Sun, 06 Nov 1994 08:49:37 GMT");
    CHECK(c.if_match.data() == nullptr);
    CHECK(c.if_unmodified_since.data() == nullptr);
}

TEST_CASE("request_parser: Head, then a zero-length execute completes the message",
          "[request_parser]") {
    RequestParser p;
    RequestStorage s;
    p.attach(&s);
    size_t consumed = 99;
    CHECK(p.execute(kSimpleGet.data(), 10, consumed) == Event::NeedMore);
    CHECK(consumed == 10);
    CHECK(p.head_in_progress());
    CHECK(p.message_in_progress());
    REQUIRE(p.execute(kSimpleGet.data() + 10, kSimpleGet.size() - 10, consumed) == Event::Head);
    CHECK(consumed == kSimpleGet.size() - 10);
    CHECK_FALSE(p.head_in_progress());
    CHECK(p.message_in_progress());
    p.resume();
    REQUIRE(p.execute(kSimpleGet.data() + kSimpleGet.size(), 0, consumed) == Event::Complete);
    CHECK(consumed == 0);
    p.next_message();
    CHECK_FALSE(p.message_in_progress());
    CHECK(p.execute(kSimpleGet.data(), 0, consumed) == Event::NeedMore);
}

TEST_CASE("request_parser: methods", "[request_parser]") {
    struct {
        const char* line;
        Method method;
        const char* name;
    } const cases[] = {
        {"GET / HTTP/1.1", Method::Get, "GET"},
        {"HEAD / HTTP/1.1", Method::Head, "HEAD"},
        {"POST / HTTP/1.1", Method::Post, "POST"},
        {"PUT /x HTTP/1.1", Method::Put, "PUT"},
        {"DELETE /x HTTP/1.1", Method::Delete, "DELETE"},
        {"OPTIONS * HTTP/1.1", Method::Options, "OPTIONS"},
        {"MKCOL /d HTTP/1.1", Method::Mkcol, "MKCOL"},
        {"PATCH /x HTTP/1.1", Method::Patch, "PATCH"},  // resumable uploads' append
        {"PURGE /x HTTP/1.1", Method::Other, "PURGE"},  // known to llhttp: 501 from the router
        {"PROPFIND /x HTTP/1.1", Method::Propfind, "PROPFIND"},
        {"PROPPATCH /x HTTP/1.1", Method::Proppatch, "PROPPATCH"},
        {"COPY /x HTTP/1.1", Method::Copy, "COPY"},
        {"MOVE /x HTTP/1.1", Method::Move, "MOVE"},
        {"LOCK /x HTTP/1.1", Method::Lock, "LOCK"},
        {"UNLOCK /x HTTP/1.1", Method::Unlock, "UNLOCK"},
    };
    for (const auto& c : cases) {
        INFO(c.line);
        Driver d;
        d.feed(std::string(c.line) + "\r\nHost: h\r\n\r\n");
        REQUIRE(events_text(d.events) == "Head,Complete");
        CHECK(d.heads[0].method == c.method);
        CHECK(d.heads[0].method_name == c.name);
    }
}

TEST_CASE("request_parser: target forms reach the Request", "[request_parser]") {
    Driver d;
    d.feed("GET http://example.com:8080/a/b?q=1 HTTP/1.1\r\nHost: other\r\n\r\n"
           "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    REQUIRE(d.heads.size() == 2);
    CHECK(d.heads[0].form == TargetForm::Absolute);
    CHECK(d.heads[0].authority == "example.com:8080");
    CHECK(d.heads[0].path == "/a/b");
    CHECK(d.heads[0].query == "q=1");
    CHECK(d.heads[1].form == TargetForm::Asterisk);
    CHECK(d.heads[1].target == "*");
}

TEST_CASE("request_parser: keep-alive semantics of HTTP/1.0 and HTTP/1.1", "[request_parser]") {
    struct {
        const char* request;
        int minor;
        bool keep_alive;
    } const cases[] = {
        {"GET / HTTP/1.0\r\n\r\n", 0, false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, true},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0, true},
        {"GET / HTTP/1.0\r\nConnection: close\r\n\r\n", 0, false},
        {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1, true},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", 1, false},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", 1, true},
    };
    for (const auto& c : cases) {
        INFO(c.request);
        RequestParser p;
        RequestStorage s;
        p.attach(&s);
        size_t consumed = 0;
        std::string_view req = c.request;
        REQUIRE(p.execute(req.data(), req.size(), consumed) == Event::Head);
        CHECK(p.request().http_minor == c.minor);
        CHECK(p.request().http10() == (c.minor == 0));
        CHECK(p.request().keep_alive == c.keep_alive);
    }
}

TEST_CASE("request_parser: a head fed one byte at a time gives the same Request",
          "[request_parser]") {
    const std::string req =
        "POST /upload/file%20name.txt?overwrite=1&x=%41 HTTP/1.1\r\n"
        "Host: example.com:8080\r\n"
        "User-Agent: curl/8.0\r\n"
        "Accept: text/html, */*;q=0.5\r\n"
        "Accept-Encoding: gzip\r\n"
        "accept-encoding:br\r\n"
        "If-None-Match: \"a\", W/\"b\"\r\n"
        "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
        "Range: bytes=0-99\r\n"
        "X-Padded:   padded value \t \r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "Content-Length: 13\r\n"
        "\r\n"
        "a=1&b=2&c=xyz";

    Driver whole;
    whole.feed(req);
    REQUIRE(events_text(whole.events) == "Head,Complete");
    REQUIRE(whole.bodies.size() == 1);
    CHECK(whole.bodies[0] == "a=1&b=2&c=xyz");
    const Snapshot& w = whole.heads[0];
    CHECK(w.accept_encoding == "gzip, br");
    CHECK(w.headers.size() == 11);

    Driver bytewise;
    bytewise.feed(req, 1);
    REQUIRE(events_text(bytewise.events) == "Head,Complete");
    CHECK(bytewise.heads[0] == w);
    CHECK(bytewise.bodies == whole.bodies);

    // Every two-read split gives the same result too.
    for (size_t cut = 1; cut < req.size(); ++cut) {
        Driver split;
        split.offer(std::string_view(req).substr(0, cut));
        if (!split.failed()) split.offer(std::string_view(req).substr(cut));
        if (!split.failed()) split.offer({});
        INFO("split at " << cut << ": events " << events_text(split.events) << " "
                         << split.parser.error_message());
        REQUIRE(events_text(split.events) == "Head,Complete");
        CHECK(split.heads[0] == w);
        CHECK(split.bodies == whole.bodies);
    }
}

TEST_CASE("request_parser: pipelined requests come out in order", "[request_parser]") {
    const std::string req =
        "GET /a HTTP/1.1\r\nHost: h\r\nAccept: text/html\r\n\r\n"
        "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
        "GET /c HTTP/1.1\r\nHost: h\r\n\r\n";
    for (size_t step : {std::string_view::npos, size_t{1}, size_t{7}}) {
        INFO("reads of " << (step == std::string_view::npos ? std::string("everything") : std::to_string(step) + " bytes"));
        Driver d;
        d.feed(req, step);
        REQUIRE(events_text(d.events) == "Head,Complete,Head,Complete,Head,Complete");
        CHECK(d.heads[0].target == "/a");
        CHECK(d.heads[1].target == "/b");
        CHECK(d.heads[2].target == "/c");
        CHECK(d.bodies == std::vector<std::string>{"", "abc", ""});
        // Each request starts from clean storage.
        CHECK(d.heads[0].accept == "text/html");
        CHECK(d.heads[1].accept == std::nullopt);
        CHECK(d.heads[2].accept == std::nullopt);
        CHECK(d.heads[2].headers.size() == 1);
        CHECK(d.parser.bytes_parsed() == req.size());
    }
}

TEST_CASE("request_parser: execute stops at the end of the first pipelined head",
          "[request_parser]") {
    const std::string first = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    const std::string both = first + "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    RequestParser p;
    RequestStorage s;
    p.attach(&s);
    size_t consumed = 0;
    REQUIRE(p.execute(both.data(), both.size(), consumed) == Event::Head);
    CHECK(consumed == first.size());
    CHECK(p.request().target == "/a");
    p.resume();
    size_t off = consumed;
    REQUIRE(p.execute(both.data() + off, both.size() - off, consumed) == Event::Complete);
    CHECK(consumed == 0);
    p.next_message();
    REQUIRE(p.execute(both.data() + off, both.size() - off, consumed) == Event::Head);
    CHECK(consumed == both.size() - first.size());
    CHECK(p.request().target == "/b");
}

TEST_CASE("request_parser: leading empty lines before a request are ignored",
          "[request_parser]") {
    // RFC 9112 §2.2: a server SHOULD ignore at least one empty line received
    // before the request-line.
    Driver d;
    d.feed("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
    REQUIRE(events_text(d.events) == "Head,Complete");
    CHECK(d.heads[0].target == "/");
}

TEST_CASE("request_parser: field values lose surrounding whitespace", "[request_parser]") {
    Driver d;
    d.feed("GET / HTTP/1.1\r\nHost:   h  \r\nX-Test: value  \t\r\nX-Tab:\tv\t\r\n"
           "X-Inner: a  b\r\n\r\n");
    REQUIRE(d.heads.size() == 1);
    const auto& h = d.heads[0].headers;
    REQUIRE(h.size() == 4);
    CHECK(h[0] == std::pair<std::string, std::string>{"Host", "h"});
    CHECK(h[1] == std::pair<std::string, std::string>{"X-Test", "value"});
    CHECK(h[2] == std::pair<std::string, std::string>{"X-Tab", "v"});
    CHECK(h[3] == std::pair<std::string, std::string>{"X-Inner", "a  b"});
    CHECK(d.heads[0].host == "h");
}

TEST_CASE("request_parser: an empty field value is accepted", "[request_parser]") {
    // RFC 9110 §5.5: field-value = *field-content, so "X-Empty:" is valid.
    // llhttp reports an empty value as a zero-length span that starts right
    // after the line's CRLF; that is not obs-fold.
    for (std::string_view req : {"GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\n\r\n",
                                 "GET / HTTP/1.1\r\nX-Empty:\r\nHost: h\r\n\r\n",
                                 "GET / HTTP/1.1\r\nHost: h\r\nX-Blank:   \t \r\n\r\n"}) {
        for (size_t step : {std::string_view::npos, size_t{1}}) {
            INFO("[" << req << "] " << (step == 1 ? "one byte at a time" : "whole"));
            Driver d;
            d.feed(req, step);
            INFO("message: " << d.parser.error_message());
            REQUIRE(events_text(d.events) == "Head,Complete");
            REQUIRE(d.heads[0].headers.size() == 2);
            CHECK(d.heads[0].host == "h");
            for (const auto& [name, value] : d.heads[0].headers)
                if (name != "Host") CHECK(value.empty());
        }
    }
}

TEST_CASE("request_parser: an empty field value is present, not absent", "[request_parser]") {
    RequestParser p;
    RequestStorage s;
    p.attach(&s);
    const std::string req = "GET / HTTP/1.1\r\nHost: h\r\nIf-None-Match:\r\nAccept: \r\n\r\n";
    size_t consumed = 0;
    Event e = p.execute(req.data(), req.size(), consumed);
    INFO("message: " << p.error_message());
    REQUIRE(e == Event::Head);
    CHECK(p.request().if_none_match.data() != nullptr);
    CHECK(p.request().if_none_match.empty());
    CHECK(p.request().accept.data() != nullptr);
    CHECK(p.request().find("if-none-match").data() != nullptr);
    CHECK(p.request().conditionals().any());
}

TEST_CASE("request_parser: list fields on several lines are combined with \", \"",
          "[request_parser]") {
    Driver d;
    d.feed("GET / HTTP/1.1\r\nHost: h\r\n"
           "Accept-Encoding: gzip\r\n"
           "Accept: text/html\r\n"
           "Accept-Encoding: br\r\n"
           "If-None-Match: \"a\"\r\n"
           "Accept-Encoding: zstd\r\n"
           "if-none-match: \"b\"\r\n"
           "X-Forwarded-For: 10.0.0.1\r\n"
           "X-Forwarded-For: 10.0.0.2\r\n"
           "\r\n");
    REQUIRE(d.heads.size() == 1);
    const Snapshot& r = d.heads[0];
    CHECK(r.accept_encoding == "gzip, br, zstd");
    CHECK(r.if_none_match == "\"a\", \"b\"");
    CHECK(r.accept == "text/html");
    CHECK(r.x_forwarded_for == "10.0.0.1, 10.0.0.2");
    // The individual lines are still there, in order.
    REQUIRE(r.headers.size() == 9);
    CHECK(r.headers[1].second == "gzip");
    CHECK(r.headers[3].second == "br");
}

TEST_CASE("request_parser: two Accept-Encoding lines give \"gzip, br\"", "[request_parser]") {
    Driver d;
    d.feed("GET / HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\nAccept-Encoding: br\r\n\r\n");
    REQUIRE(d.heads.size() == 1);
    CHECK(d.heads[0].accept_encoding == "gzip, br");
}

TEST_CASE("request_parser: combined list fields stay valid when many lines are combined",
          "[request_parser]") {
    // Combining copies earlier values into `combined`; a view taken from it
    // must survive later combinations of other fields.
    std::string req = "GET / HTTP/1.1\r\nHost: h\r\nAccept: a\r\nAccept: b\r\n";
    std::string expected_xff;
    for (int i = 0; i < 20; ++i) {
        std::string v = std::to_string(i) + std::string(200, 'x');
        req += "X-Forwarded-For: " + v + "\r\n";
        expected_xff += (i ? ", " : "") + v;
    }
    req += "\r\n";

    RequestParser p;
    RequestStorage s;
    p.attach(&s);
    size_t consumed = 0;
    REQUIRE(p.execute(req.data(), req.size(), consumed) == Event::Head);
    const Request& r = p.request();
    CHECK(std::string(r.x_forwarded_for) == expected_xff);
    // The Accept view must point into live storage (not a freed buffer).
    auto inside = [](std::string_view v, const std::string& buf) {
        return v.data() >= buf.data() && v.data() + v.size() <= buf.data() + buf.size();
    };
    CHECK((inside(r.accept, s.combined) || inside(r.accept, s.bytes)));
    CHECK(std::string(r.accept) == "a, b");
}

TEST_CASE("request_parser: If-Modified-Since and If-Unmodified-Since with several values are ignored",
          "[request_parser]") {
    const std::string date1 = "Sun, 06 Nov 1994 08:49:37 GMT";
    const std::string date2 = "Mon, 07 Nov 1994 08:49:37 GMT";
    const std::string date3 = "Tue, 08 Nov 1994 08:49:37 GMT";
    {
        Driver d;
        d.feed("GET / HTTP/1.1\r\nHost: h\r\nIf-Modified-Since: " + date1 +
               "\r\nIf-Unmodified-Since: " + date1 + "\r\n\r\n");
        REQUIRE(d.heads.size() == 1);
        CHECK(d.heads[0].if_modified_since == date1);
        CHECK(d.heads[0].if_unmodified_since == date1);
    }
    {
        Driver d;
        d.feed("GET / HTTP/1.1\r\nHost: h\r\nIf-Modified-Since: " + date1 +
               "\r\nIf-Modified-Since: " + date2 + "\r\nIf-Unmodified-Since: " + date1 +
               "\r\nIf-Unmodified-Since: " + date2 + "\r\n\r\n");
        REQUIRE(d.heads.size() == 1);
        CHECK(d.heads[0].if_modified_since == std::nullopt);
        CHECK(d.heads[0].if_unmodified_since == std::nullopt);
    }
    {
        // A third line must not bring the field back.
        Driver d;
        d.feed("GET / HTTP/1.1\r\nHost: h\r\nIf-Modified-Since: " + date1 +
               "\r\nIf-Modified-Since: " + date2 + "\r\nIf-Modified-Since: " + date3 +
               "\r\nIf-Unmodified-Since: " + date1 + "\r\nIf-Unmodified-Since: " + date2 +
               "\r\nIf-Unmodified-Since: " + date3 + "\r\n\r\n");
        REQUIRE(d.heads.size() == 1);
        CHECK(d.heads[0].if_modified_since == std::nullopt);
        CHECK(d.heads[0].if_unmodified_since == std::nullopt);
    }
}

TEST_CASE("request_parser: Host is counted and the first one is kept", "[request_parser]") {
    {
        Driver d;
        d.feed("GET / HTTP/1.1\r\nHost: a.example\r\nhost: b.example\r\n\r\n");
        REQUIRE(d.heads.size() == 1);
        CHECK(d.heads[0].host_count == 2);
        CHECK(d.heads[0].host == "a.example");
    }
    {
        Driver d;
        d.feed("GET / HTTP/1.1\r\n\r\n");
        REQUIRE(d.heads.size() == 1);
        CHECK(d.heads[0].host_count == 0);
        CHECK(d.heads[0].host == std::nullopt);
    }
}

TEST_CASE("request_parser: an empty Host is present and counted", "[request_parser]") {
    // RFC 9112 §3.2: an empty Host is how a client says the URI has no
    // authority; it must reach the connection layer as present.
    Driver d;
    d.feed("GET / HTTP/1.1\r\nHost:\r\n\r\n");
    INFO("message: " << d.parser.error_message());
    REQUIRE(d.heads.size() == 1);
    CHECK(d.heads[0].host_count == 1);
    CHECK(d.heads[0].host == "");
}

TEST_CASE("request_parser: a repeated Range or If-Range drops both", "[request_parser]") {
    {
        Driver d;
        d.feed("GET / HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\nIf-Range: \"x\"\r\n\r\n");
        REQUIRE(d.heads.size() == 1);
        CHECK(d.heads[0].range == "bytes=0-1");
        CHECK(d.heads[0].if_range == "\"x\"");
    }
    {
        Driver d;
        d.feed("GET / HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\nRange: bytes=5-9\r\n"
               "If-Range: \"x\"\r\n\r\n");
        REQUIRE(d.heads.size() == 1);
        CHECK(d.heads[0].range == std::nullopt);
        CHECK(d.heads[0].if_range == std::nullopt);
    }
    {
        Driver d;
        d.feed("GET / HTTP/1.1\r\nHost: h\r\nIf-Range: \"x\"\r\nRange: bytes=0-1\r\n"
               "If-Range: \"y\"\r\n\r\n");
        REQUIRE(d.heads.size() == 1);
        CHECK(d.heads[0].range == std::nullopt);
        CHECK(d.heads[0].if_range == std::nullopt);
    }
}

TEST_CASE("request_parser: a Content-Length body is delivered exactly", "[request_parser]") {
    std::string body = "hello\r\n\0world\r\n\r\nGET / HTTP/1.1\r\n";
    body.push_back('\0');
    body += std::string(5000, 'z');
    const std::string req = "POST /r HTTP/1.1\r\nHost: h\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\n\r\n" + body;
    for (size_t step : {std::string_view::npos, size_t{1}, size_t{100}}) {
        INFO("reads of " << (step == std::string_view::npos ? std::string("everything") : std::to_string(step) + " bytes"));
        Driver d;
        d.feed(req, step);
        REQUIRE(events_text(d.events) == "Head,Complete");
        CHECK(d.heads[0].has_content_length);
        CHECK(d.heads[0].content_length == body.size());
        CHECK_FALSE(d.heads[0].chunked);
        REQUIRE(d.bodies.size() == 1);
        CHECK(d.bodies[0].size() == body.size());
        CHECK(d.bodies[0] == body);
    }
}

TEST_CASE("request_parser: a body without a sink is skipped", "[request_parser]") {
    RequestParser p;
    RequestStorage s;
    p.attach(&s);
    const std::string req = "PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbodyGET";
    size_t consumed = 0;
    REQUIRE(p.execute(req.data(), req.size(), consumed) == Event::Head);
    CHECK(p.request().has_body());
    p.resume();
    size_t off = consumed;
    REQUIRE(p.execute(req.data() + off, req.size() - off, consumed) == Event::Complete);
    CHECK(off + consumed == req.size() - 3);  // stops before the next request
}

TEST_CASE("request_parser: a chunked body is delivered and reassembled", "[request_parser]") {
    const std::string req =
        "POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n"
        "6;name=value\r\n world\r\n"
        "A\r\n0123456789\r\n"
        "0\r\nX-Trailer: t\r\n\r\n"
        "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
    for (size_t step : {std::string_view::npos, size_t{1}, size_t{3}}) {
        INFO("reads of " << (step == std::string_view::npos ? std::string("everything") : std::to_string(step) + " bytes"));
        Driver d;
        d.feed(req, step);
        REQUIRE(events_text(d.events) == "Head,Complete,Head,Complete");
        CHECK(d.heads[0].chunked);
        CHECK(d.heads[0].transfer_encoding == "chunked");
        CHECK_FALSE(d.heads[0].has_content_length);
        CHECK(d.bodies[0] == "hello world0123456789");
        CHECK(d.heads[1].target == "/next");
    }
}

TEST_CASE("request_parser: trailer fields are not added to the request", "[request_parser]") {
    RequestParser p;
    RequestStorage s;
    p.attach(&s);
    const std::string req =
        "POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        "1\r\nx\r\n0\r\nX-Trailer: t\r\nHost: evil\r\n\r\n";
    size_t consumed = 0;
    REQUIRE(p.execute(req.data(), req.size(), consumed) == Event::Head);
    REQUIRE(p.request().headers.size() == 2);
    p.resume();
    size_t off = consumed;
    REQUIRE(p.execute(req.data() + off, req.size() - off, consumed) == Event::Complete);
    CHECK(p.request().headers.size() == 2);
    CHECK(s.spans.size() == 2);
    CHECK(p.request().host == "h");
    CHECK(p.request().find("x-trailer").data() == nullptr);
}

TEST_CASE("request_parser: target length limit (414)", "[request_parser]") {
    const std::string ok_target = "/" + std::string(8 * 1024 - 1, 'a');
    {
        Driver d;
        d.feed("GET " + ok_target + " HTTP/1.1\r\nHost: h\r\n\r\n");
        REQUIRE(events_text(d.events) == "Head,Complete");
        CHECK(d.heads[0].target.size() == 8 * 1024);
    }
    expect_error("GET " + ok_target + "b HTTP/1.1\r\nHost: h\r\n\r\n", 414);

    ParserLimits small;
    small.max_target = 10;
    Driver d(small);
    d.feed("GET /0123456789 HTTP/1.1\r\nHost: h\r\n\r\n");
    REQUIRE(d.failed());
    CHECK(d.parser.error_status() == 414);
}

TEST_CASE("request_parser: header bytes limit (431)", "[request_parser]") {
    // Names and values count; 16 KiB in total is allowed.
    const std::string name = "X-Big";
    const std::string fits(16 * 1024 - name.size() - 4 - 1, 'v');  // "Host" + "h"
    {
        Driver d;
        d.feed("GET / HTTP/1.1\r\nHost: h\r\n" + name + ": " + fits + "\r\n\r\n");
        REQUIRE(events_text(d.events) == "Head,Complete");
    }
    expect_error("GET / HTTP/1.1\r\nHost: h\r\n" + name + ": " + fits + "v\r\n\r\n", 431);
    expect_error("GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(17000, 'a') + "\r\n\r\n",
                 431);
    // Many medium fields add up as well.
    std::string many = "GET / HTTP/1.1\r\nHost: h\r\n";
    for (int i = 0; i < 20; ++i) many += "X-F" + std::to_string(i) + ": " + std::string(1000, 'a') + "\r\n";
    expect_error(many + "\r\n", 431);
}

TEST_CASE("request_parser: whitespace around field values counts toward the head's bound (431)",
          "[request_parser]") {
    // Optional whitespace is not part of a value, but it is part of the head
    // the parser keeps: a few spaces are fine, tens of kilobytes are not,
    // whether the head comes in one read or in many.
    {
        Driver d;
        d.feed("GET / HTTP/1.1\r\nHost:   h  \r\nX-A:" + std::string(1000, ' ') + "v\r\n\r\n", 7);
        REQUIRE(events_text(d.events) == "Head,Complete");
        CHECK(d.heads[0].host == "h");
        REQUIRE(d.heads[0].headers.size() == 2);
        CHECK(d.heads[0].headers[1] == std::pair<std::string, std::string>("X-A", "v"));
    }
    const std::string huge = "GET / HTTP/1.1\r\nHost: h\r\nX-A:" + std::string(60000, ' ') + "v\r\n\r\n";
    for (size_t step : {std::string_view::npos, size_t{1000}}) {
        Driver d;
        d.feed(huge, step);
        INFO("step " << step);
        REQUIRE(d.failed());
        CHECK(d.parser.error_status() == 431);
        CHECK(d.heads.empty());
    }
}

TEST_CASE("request_parser: header count limit (431)", "[request_parser]") {
    auto with_fields = [](int n) {
        std::string req = "GET / HTTP/1.1\r\n";
        for (int i = 0; i < n; ++i) req += "X-" + std::to_string(i) + ": v\r\n";
        return req + "\r\n";
    };
    {
        Driver d;
        d.feed(with_fields(100));
        REQUIRE(events_text(d.events) == "Head,Complete");
        CHECK(d.heads[0].headers.size() == 100);
    }
    expect_error(with_fields(101), 431);
}

TEST_CASE("request_parser: obs-fold is refused with 400", "[request_parser]") {
    expect_error("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n\tb\r\n\r\n", 400);
    // The fold split exactly at a read boundary.
    const std::string req = "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n";
    size_t cut = req.find("a\r\n") + 3;
    Driver d;
    d.offer(std::string_view(req).substr(0, cut));
    REQUIRE_FALSE(d.failed());
    d.offer(std::string_view(req).substr(cut));
    REQUIRE(d.failed());
    CHECK(d.parser.error_status() == 400);
    CHECK_FALSE(d.parser.error_message().empty());
}

TEST_CASE("request_parser: whitespace between field name and colon is refused with 400",
          "[request_parser]") {
    expect_error("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: h\r\nX-A\t: v\r\n\r\n", 400);
}

TEST_CASE("request_parser: an unknown method is 501, garbage is 400", "[request_parser]") {
    expect_error("FOO / HTTP/1.1\r\nHost: h\r\n\r\n", 501);
    expect_error("GEX / HTTP/1.1\r\nHost: h\r\n\r\n", 501);
    expect_error("BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n", 501);
    expect_error("\r\nFOO / HTTP/1.1\r\n\r\n", 501);
    expect_error("\x01\x02 / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_error("G\x01T / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_error(" GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_error(std::string(40, 'A') + " / HTTP/1.1\r\n\r\n", 400);
}

TEST_CASE("request_parser: an unknown method after a pipelined request is 501",
          "[request_parser]") {
    Driver d;
    d.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\nFOO / HTTP/1.1\r\nHost: h\r\n\r\n");
    CHECK(events_text(d.events) == "Head,Complete,Error");
    CHECK(d.parser.error_status() == 501);
}

TEST_CASE("request_parser: unsupported HTTP versions are 505", "[request_parser]") {
    expect_error("GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505);
    expect_error("GET / HTTP/3.0\r\nHost: h\r\n\r\n", 505);
}

TEST_CASE("request_parser: versions llhttp knows are reported for the connection to refuse",
          "[request_parser]") {
    // llhttp accepts explicit HTTP/0.9 and HTTP/2.0 request lines; the
    // parser reports the version and the connection layer answers 505
    // (protocol/request_checks.cpp). A request line without any version is
    // a 400 from the parser itself (next case).
    struct {
        const char* request;
        int major, minor;
    } const cases[] = {
        {"GET / HTTP/0.9\r\n\r\n", 0, 9},
        {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 2, 0},
    };
    for (const auto& c : cases) {
        INFO(c.request);
        Driver d;
        d.feed(c.request);
        REQUIRE_FALSE(d.heads.empty());
        CHECK(d.heads[0].http_major == c.major);
        CHECK(d.heads[0].http_minor == c.minor);
        CHECK_FALSE(d.heads[0].keep_alive);
    }
}

TEST_CASE("request_parser: a request line without an HTTP version is 400, not 505", "[request_parser]") {
    expect_error("GET /\r\n\r\n", 400);
    expect_error("GET /index.html\r\nHost: h\r\n\r\n", 400);
    Driver d;
    d.feed("GET /\r\n\r\n");
    CHECK(d.parser.error_message() == std::string_view("request line without an HTTP version"));
}

TEST_CASE("request_parser: Transfer-Encoding policy is left to the connection layer",
          "[request_parser]") {
    // The head is delivered with the field so the connection can answer 400
    // (not ending in chunked, RFC 9112 §6.3) or 400 for HTTP/1.0 (§6.1);
    // the parser itself then refuses to read a body it cannot frame.
    {
        Driver d;
        d.feed("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\nabc");
        REQUIRE(d.heads.size() == 1);
        CHECK(d.heads[0].transfer_encoding == "gzip");
        CHECK_FALSE(d.heads[0].chunked);
        REQUIRE(d.failed());
        CHECK(d.parser.error_status() == 400);
        CHECK_FALSE(d.parser.error_message().empty());
    }
    {
        Driver d;
        d.feed("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
        REQUIRE(d.heads.size() == 1);
        CHECK(d.heads[0].transfer_encoding == "chunked");
        CHECK(d.heads[0].http_minor == 0);
    }
}

TEST_CASE("request_parser: malformed framing is refused with 400", "[request_parser]") {
    struct {
        const char* name;
        std::string request;
    } const cases[] = {
        {"bare LF line endings", "GET / HTTP/1.1\nHost: h\n\n"},
        {"bare LF after a field", "GET / HTTP/1.1\r\nHost: h\n\r\n"},
        {"bare CR in a field", "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n"},
        {"Content-Length with Transfer-Encoding",
         "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
         "0\r\n\r\n"},
        {"Transfer-Encoding with Content-Length",
         "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
         "0\r\n\r\n"},
        {"Content-Length list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\nabcde"},
        {"duplicate Content-Length",
         "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcde"},
        {"negative Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n"},
        {"non-numeric Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n"},
        {"space in the target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"},
        {"control character in a field value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n"},
    };
    for (const auto& c : cases) {
        INFO(c.name);
        expect_error(c.request, 400);
    }
}

TEST_CASE("request_parser: an empty field name is refused with 400", "[request_parser]") {
    // RFC 9110 §5.1: field-name = token, at least one tchar.
    expect_error("GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\n: v\r\nHost: h\r\n\r\n", 400);
}

TEST_CASE("request_parser: malformed chunked bodies are refused with 400 after the head",
          "[request_parser]") {
    const std::string head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    struct {
        const char* name;
        const char* body;
    } const cases[] = {
        {"bad chunk size", "zz\r\nhello\r\n0\r\n\r\n"},
        {"negative chunk size", "-5\r\nhello\r\n0\r\n\r\n"},
        {"chunk size overflow", "fffffffffffffffff\r\n"},
        {"missing CRLF after chunk data", "5\r\nhelloX\r\n0\r\n\r\n"},
        {"bare LF after chunk size", "5\nhello\r\n0\r\n\r\n"},
    };
    for (const auto& c : cases) {
        INFO(c.name);
        expect_error(head + c.body, 400, true);
    }
}

TEST_CASE("request_parser: chunk extensions are bounded", "[request_parser]") {
    const std::string req = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;" +
                            std::string(17 * 1024, 'e') + "\r\nx\r\n0\r\n\r\n";
    Driver d;
    d.feed(req);
    REQUIRE(d.failed());
    CHECK(d.parser.error_status() == 400);
    CHECK_FALSE(d.parser.error_message().empty());
    CHECK(d.heads.size() == 1);  // the head itself was fine
}

TEST_CASE("request_parser: an error is sticky", "[request_parser]") {
    RequestParser p;
    RequestStorage s;
    p.attach(&s);
    const std::string bad = "GET / HTTP/1.2\r\n\r\n";
    size_t consumed = 0;
    REQUIRE(p.execute(bad.data(), bad.size(), consumed) == Event::Error);
    CHECK(p.error_status() == 505);
    CHECK(p.execute(kSimpleGet.data(), kSimpleGet.size(), consumed) == Event::Error);
    CHECK(consumed == 0);
    CHECK(p.error_status() == 505);
}

TEST_CASE("request_parser: storage can be reused after trim", "[request_parser]") {
    RequestStorage s;
    s.bytes.assign(100000, 'x');
    s.combined.assign(100000, 'y');
    s.trim(4096);
    CHECK(s.bytes.capacity() <= 4096);
    CHECK(s.combined.capacity() <= 4096);

    RequestParser p;
    p.attach(&s);
    size_t consumed = 0;
    REQUIRE(p.execute(kSimpleGet.data(), kSimpleGet.size(), consumed) == Event::Head);
    CHECK(p.request().host == "example.com");
}
