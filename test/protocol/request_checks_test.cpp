// Tests for protocol/request_checks.cpp: every rejection of a request head
// (status and reason) and what an acceptable head yields.
#include "protocol/request_checks.h"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

namespace uvh {
namespace {

// A well-formed HTTP/1.1 GET of `target` with one valid Host; each case
// changes one thing.
Request make(std::string_view target = "/a/b") {
    Request r;
    r.method = Method::Get;
    r.method_name = "GET";
    r.http_major = 1;
    r.http_minor = 1;
    r.target = target;
    r.parsed = parse_target(target);
    r.host = "example.com";
    r.host_count = 1;
    return r;
}

void check_rejects(const Request& r, int status, std::string_view reason) {
    std::string path;
    HeadCheck c = check_request_head(r, path);
    CHECK(c.status == status);
    CHECK(c.reason == reason);
    CHECK_FALSE(c.expect_continue);
}

}  // namespace

TEST_CASE("request_checks: a valid head passes and yields its normalised path", "[request_checks]") {
    std::string path;
    HeadCheck c = check_request_head(make("/a/./b/../c%20d?q=1"), path);
    CHECK(c.status == 0);
    CHECK(c.reason.empty());
    CHECK_FALSE(c.expect_continue);
    CHECK(path == "/a/c d");

    Request r10 = make("/");
    r10.http_minor = 0;
    r10.host = {};
    r10.host_count = 0;  // HTTP/1.0 needs no Host
    CHECK(check_request_head(r10, path).status == 0);

    Request abs = make("http://Example.com/x/");  // RFC 9112 §3.2.2
    CHECK(check_request_head(abs, path).status == 0);
    CHECK(path == "/x/");

    Request opt = make("*");
    opt.method = Method::Options;
    CHECK(check_request_head(opt, path).status == 0);
    CHECK(path == "*");
}

TEST_CASE("request_checks: versions other than 1.0 and 1.1 are 505", "[request_checks]") {
    Request r = make();
    r.http_major = 2;
    r.http_minor = 0;
    check_rejects(r, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
    r.http_major = 1;
    r.http_minor = 2;
    check_rejects(r, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
    r.http_major = 0;
    r.http_minor = 9;
    check_rejects(r, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
}

TEST_CASE("request_checks: CONNECT in authority-form is 501, any other CONNECT 400", "[request_checks]") {
    for (std::string_view target : {"example.com:443", "127.0.0.1:8080", "[::1]:443"}) {
        INFO(target);
        Request r = make(target);
        r.method = Method::Other;
        r.method_name = "CONNECT";
        check_rejects(r, 501, "CONNECT is not supported: this server is not a proxy");
    }
    for (std::string_view target : {"example.com", "/", "example.com:", ":443", "example.com:http", "a b:1",
                                    "[::1:443", "http://example.com:443/"}) {
        INFO(target);
        Request r = make(target);
        r.method = Method::Other;
        r.method_name = "CONNECT";
        check_rejects(r, 400, "CONNECT needs an authority-form target (host:port)");
    }
}

TEST_CASE("request_checks: Host rules (RFC 9112 §3.2)", "[request_checks]") {
    Request two = make();
    two.host_count = 2;
    check_rejects(two, 400, "more than one Host header field");

    Request none = make();
    none.host = {};
    none.host_count = 0;
    check_rejects(none, 400, "missing Host header field");

    Request bad = make();
    bad.host = "exa mple.com";
    check_rejects(bad, 400, "invalid Host header field");

    Request bad10 = make();  // an invalid Host is refused on HTTP/1.0 too
    bad10.http_minor = 0;
    bad10.host = "a/b";
    check_rejects(bad10, 400, "invalid Host header field");

    Request two10 = make();
    two10.http_minor = 0;
    two10.host_count = 2;
    check_rejects(two10, 400, "more than one Host header field");
}

TEST_CASE("request_checks: Transfer-Encoding (RFC 9112 §6.1, §6.3)", "[request_checks]") {
    Request r10 = make();
    r10.http_minor = 0;
    r10.transfer_encoding = "chunked";
    check_rejects(r10, 400, "Transfer-Encoding in an HTTP/1.0 request");

    Request not_last = make();
    not_last.transfer_encoding = "chunked, gzip";
    check_rejects(not_last, 400, "Transfer-Encoding does not end in chunked");

    Request only_gzip = make();
    only_gzip.transfer_encoding = "gzip";
    check_rejects(only_gzip, 400, "Transfer-Encoding does not end in chunked");

    Request stacked = make();
    stacked.transfer_encoding = "gzip, chunked";
    check_rejects(stacked, 501, "transfer coding not implemented");

    Request ok = make();
    ok.transfer_encoding = " Chunked ";
    ok.chunked = true;
    std::string path;
    CHECK(check_request_head(ok, path).status == 0);
}

TEST_CASE("request_checks: request-target forms (RFC 9112 §3.2)", "[request_checks]") {
    Request invalid = make("a/b");  // neither origin, absolute nor asterisk form
    REQUIRE(invalid.parsed.form == TargetForm::Invalid);
    check_rejects(invalid, 400, "malformed request-target");

    Request star = make("*");  // RFC 9112 §3.2.4
    check_rejects(star, 400, "the '*' target is only valid for OPTIONS");
}

TEST_CASE("request_checks: each path rejection carries normalize_path's reason", "[request_checks]") {
    check_rejects(make("/a%2"), 400, "bad percent-encoding in the path");
    check_rejects(make("/a%2Fb"), 400, "encoded slash (%2F) in the path");
    check_rejects(make("/a%00b"), 400, "NUL byte in the path");
    check_rejects(make("/a%5Cb"), 400, "backslash in the path");
    check_rejects(make("/../etc/passwd"), 400, "path escapes the root");
    check_rejects(make("http://example.com/a/../../b"), 400, "path escapes the root");
}

TEST_CASE("request_checks: Expect (RFC 9110 §10.1.1)", "[request_checks]") {
    std::string path;
    Request put = make();
    put.method = Method::Put;
    put.has_content_length = true;
    put.content_length = 10;
    put.expect = "100-Continue ";
    HeadCheck c = check_request_head(put, path);
    CHECK(c.status == 0);
    CHECK(c.expect_continue);

    Request empty = put;  // nothing to wait for without a body
    empty.content_length = 0;
    c = check_request_head(empty, path);
    CHECK(c.status == 0);
    CHECK_FALSE(c.expect_continue);

    Request r10 = put;  // HTTP/1.0 expectations are ignored, never a 1xx
    r10.http_minor = 0;
    r10.expect = "something-else";
    c = check_request_head(r10, path);
    CHECK(c.status == 0);
    CHECK_FALSE(c.expect_continue);

    Request other = put;
    other.expect = "something-else";
    check_rejects(other, 417, "only the 100-continue expectation is supported");
}

}  // namespace uvh
