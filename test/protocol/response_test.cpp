// Tests for protocol/response.cpp: the response head writer and the
// one-line error body.
#include "protocol/response.h"

#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <string_view>
#include <vector>

using namespace uvh;

namespace {

constexpr std::string_view kDate = "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n";
constexpr std::string_view kServer = "Server: uvhttpd\r\n";

std::string head_of(const ResponseHead& h, Framing f = {}) {
    std::string out;
    write_response_head(out, h, f, kDate, kServer);
    return out;
}

// The head's lines without their CRLF, up to (not including) the empty line.
std::vector<std::string> lines_of(std::string_view head) {
    std::vector<std::string> lines;
    while (!head.empty()) {
        size_t crlf = head.find("\r\n");
        REQUIRE(crlf != std::string_view::npos);
        if (crlf == 0) break;
        lines.emplace_back(head.substr(0, crlf));
        head.remove_prefix(crlf + 2);
    }
    return lines;
}

// Field name -> values, in order of appearance.
std::multimap<std::string, std::string> fields_of(std::string_view head) {
    std::multimap<std::string, std::string> fields;
    auto lines = lines_of(head);
    for (size_t i = 1; i < lines.size(); ++i) {
        size_t colon = lines[i].find(": ");
        REQUIRE(colon != std::string::npos);
        fields.emplace(lines[i].substr(0, colon), lines[i].substr(colon + 2));
    }
    return fields;
}

bool has_line(std::string_view head, std::string_view line) {
    return head.find(std::string("\r\n") + std::string(line) + "\r\n") != std::string_view::npos;
}

}  // namespace

TEST_CASE("response: a 200 head is well formed", "[response]") {
    ResponseHead h;
    h.content_type = "text/plain; charset=utf-8";
    h.content_length = 1234;
    std::string out = head_of(h);

    auto lines = lines_of(out);
    REQUIRE(lines.size() >= 3);
    CHECK(lines[0] == "HTTP/1.1 200 OK");
    CHECK(lines[1] + "\r\n" == kDate);
    CHECK(lines[2] + "\r\n" == kServer);
    CHECK(has_line(out, "Content-Type: text/plain; charset=utf-8"));
    CHECK(has_line(out, "Content-Length: 1234"));
    CHECK(has_line(out, "X-Content-Type-Options: nosniff"));
    CHECK_FALSE(has_line(out, "X-Frame-Options: DENY"));
    CHECK(out.find("Connection:") == std::string::npos);  // HTTP/1.1 keep-alive is the default

    // Exactly one empty line, at the very end.
    REQUIRE(out.size() >= 4);
    CHECK(out.substr(out.size() - 4) == "\r\n\r\n");
    CHECK(out.find("\r\n\r\n") == out.size() - 4);
    // Every field appears once.
    auto fields = fields_of(out);
    for (const auto& [name, value] : fields) {
        INFO(name);
        CHECK(fields.count(name) == 1);
    }
}

TEST_CASE("response: Content-Length is the given number even with no body (HEAD)",
          "[response]") {
    ResponseHead h;
    h.content_length = 5000;
    CHECK(has_line(head_of(h), "Content-Length: 5000"));
    h.content_length = 0;
    CHECK(has_line(head_of(h), "Content-Length: 0"));
    h.content_length = 18446744073709551614ull;  // the largest; one more is kUnknownLength
    CHECK(has_line(head_of(h), "Content-Length: 18446744073709551614"));
    h.status = 404;
    h.content_length = 27;
    std::string out = head_of(h);
    CHECK(out.rfind("HTTP/1.1 404 Not Found\r\n", 0) == 0);
    CHECK(has_line(out, "Content-Length: 27"));
}

TEST_CASE("response: no Content-Length on 204, 304 and 1xx", "[response]") {
    for (int status : {204, 304, 100}) {
        INFO(status);
        ResponseHead h;
        h.status = status;
        h.content_length = 42;
        std::string out = head_of(h);
        CHECK(out.rfind("HTTP/1.1 " + std::to_string(status) + " ", 0) == 0);
        CHECK(out.find("Content-Length") == std::string::npos);
    }
}

TEST_CASE("response: connection management fields", "[response]") {
    ResponseHead h;
    CHECK(has_line(head_of(h, {false, false}), "Connection: close"));
    CHECK(has_line(head_of(h, {false, true}), "Connection: close"));
    CHECK(has_line(head_of(h, {true, true}), "Connection: keep-alive"));
    CHECK(head_of(h, {true, false}).find("Connection:") == std::string::npos);
}

TEST_CASE("response: X-Content-Type-Options always, X-Frame-Options only for HTML",
          "[response]") {
    ResponseHead h;
    for (int status : {200, 304, 404}) {
        h.status = status;
        h.html = false;
        std::string out = head_of(h);
        CHECK(has_line(out, "X-Content-Type-Options: nosniff"));
        CHECK(out.find("X-Frame-Options") == std::string::npos);
        h.html = true;
        out = head_of(h);
        CHECK(has_line(out, "X-Content-Type-Options: nosniff"));
        CHECK(has_line(out, "X-Frame-Options: DENY"));
    }
}

TEST_CASE("response: validators and optional fields", "[response]") {
    ResponseHead h;
    h.status = 206;
    h.content_type = "image/png";
    h.content_length = 100;
    h.etag = "\"1a-2b-3c\"";
    h.last_modified = 784111777;
    h.accept_ranges = true;
    h.content_encoding = "gzip";
    h.content_range = "bytes 0-99/1000";
    h.vary = "Accept-Encoding";
    h.cache_control = "no-cache";
    h.location = "/dir/";
    h.allow = "GET, HEAD, OPTIONS";
    std::string out = head_of(h);

    CHECK(out.rfind("HTTP/1.1 206 Partial Content\r\n", 0) == 0);
    CHECK(has_line(out, "Content-Type: image/png"));
    CHECK(has_line(out, "Content-Length: 100"));
    CHECK(has_line(out, "ETag: \"1a-2b-3c\""));
    CHECK(has_line(out, "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT"));
    CHECK(has_line(out, "Accept-Ranges: bytes"));
    CHECK(has_line(out, "Content-Encoding: gzip"));
    CHECK(has_line(out, "Content-Range: bytes 0-99/1000"));
    CHECK(has_line(out, "Vary: Accept-Encoding"));
    CHECK(has_line(out, "Cache-Control: no-cache"));
    CHECK(has_line(out, "Location: /dir/"));
    CHECK(has_line(out, "Allow: GET, HEAD, OPTIONS"));
}

TEST_CASE("response: empty optional fields are left out", "[response]") {
    ResponseHead h;  // all defaults
    std::string out = head_of(h);
    for (std::string_view name : {"Content-Type", "ETag", "Last-Modified", "Accept-Ranges",
                                  "Content-Encoding", "Content-Range", "Vary", "Cache-Control",
                                  "Location", "Allow"}) {
        INFO(name);
        CHECK(out.find(std::string(name) + ":") == std::string::npos);
    }
    // Exactly: status, Date, Server, Content-Length, X-Content-Type-Options.
    CHECK(lines_of(out).size() == 5);
}

TEST_CASE("response: Last-Modified at the epoch is sent and -1 means none", "[response]") {
    ResponseHead h;
    h.last_modified = 0;
    CHECK(has_line(head_of(h), "Last-Modified: Thu, 01 Jan 1970 00:00:00 GMT"));
    h.last_modified = -1;
    CHECK(head_of(h).find("Last-Modified") == std::string::npos);
}

TEST_CASE("response: extra fields and preformatted fragments", "[response]") {
    ResponseHead h;
    h.fragment = "Cache-Control: max-age=60\r\nX-Cached: 1\r\n";
    h.add("X-Request-Id", "abc123");
    h.add("WWW-Authenticate", "Basic realm=\"files\"");
    std::string out = head_of(h);
    CHECK(has_line(out, "Cache-Control: max-age=60"));
    CHECK(has_line(out, "X-Cached: 1"));
    CHECK(has_line(out, "X-Request-Id: abc123"));
    CHECK(has_line(out, "WWW-Authenticate: Basic realm=\"files\""));
    CHECK(out.find("X-Request-Id") < out.find("WWW-Authenticate"));  // in order added
    CHECK(out.find("\r\n\r\n") == out.size() - 4);
}

TEST_CASE("response: a cached head (Content-Length in the fragment) is byte-identical to a formatted one",
          "[response]") {
    ResponseHead h;
    h.content_type = "text/html; charset=utf-8";
    h.etag = "\"1-23e-5\"";
    h.last_modified = 1767225600;
    h.accept_ranges = true;
    h.vary = "Accept-Encoding";
    h.cache_control = "max-age=60";
    h.content_length = 571;
    h.html = true;
    std::string cached = length_and_representation_fields(h);
    CHECK(cached.starts_with("Content-Length: 571\r\nContent-Type: text/html; charset=utf-8\r\n"));
    CHECK(cached == "Content-Length: 571\r\n" + representation_fields(h));
    for (Framing f : {Framing{true, false, "abc"}, Framing{false, false, {}}, Framing{true, true, {}}}) {
        ResponseHead c;
        c.content_length = 571;
        c.html = true;
        c.fragment = cached;
        c.fragment_has_length = true;
        CHECK(head_of(c, f) == head_of(h, f));
    }
}

TEST_CASE("response: at most kMaxExtra extra fields are kept", "[response]") {
    ResponseHead h;
    std::vector<std::string> names;
    for (int i = 1; i <= ResponseHead::kMaxExtra + 1; ++i) names.push_back("X-" + std::to_string(i));
    for (const std::string& n : names) h.add(n, "v");
    CHECK(h.extra_count == ResponseHead::kMaxExtra);
    std::string out = head_of(h);
    CHECK(has_line(out, names[ResponseHead::kMaxExtra - 1] + ": v"));
    CHECK(out.find(names.back() + ":") == std::string::npos);
}

TEST_CASE("response: write_response_head appends, so pipelined heads share a buffer",
          "[response]") {
    ResponseHead a, b;
    a.content_length = 1;
    b.status = 404;
    b.content_length = 2;
    std::string out;
    write_response_head(out, a, {}, kDate, kServer);
    const size_t first = out.size();
    write_response_head(out, b, {}, kDate, kServer);
    CHECK(out.substr(0, first) == head_of(a));
    CHECK(out.substr(first) == head_of(b));
}

TEST_CASE("response: format_error_body is one line", "[response]") {
    std::string out = "stale contents";
    format_error_body(out, 404, "detail");
    CHECK(out == "404 Not Found: detail\n");

    format_error_body(out, 400, "");
    CHECK(out == "400 Bad Request\n");

    format_error_body(out, 400, "bad\r\nInjected: yes\nmore\r");
    CHECK(out.find('\r') == std::string::npos);
    CHECK(out.find('\n') == out.size() - 1);
    CHECK(out.rfind("400 Bad Request: bad", 0) == 0);
    CHECK(out.find("Injected: yes") != std::string::npos);

    format_error_body(out, 299, "x");
    CHECK(out == "299 Unknown: x\n");
}

TEST_CASE("response: a body of unknown length is chunked on HTTP/1.1, close-delimited on 1.0", "[response]") {
    ResponseHead h;
    h.content_length = ResponseHead::kUnknownLength;
    std::string out11 = head_of(h);
    CHECK(has_line(out11, "Transfer-Encoding: chunked"));
    CHECK(out11.find("Content-Length") == std::string::npos);
    Framing f10;
    f10.http10 = true;
    f10.keep_alive = false;
    std::string out10 = head_of(h, f10);
    CHECK(out10.find("Transfer-Encoding") == std::string::npos);
    CHECK(out10.find("Content-Length") == std::string::npos);
    CHECK(has_line(out10, "Connection: close"));
    // 204 and 304 carry neither (RFC 9110 §8.6, RFC 9112 §6.1).
    h.status = 204;
    std::string out204 = head_of(h);
    CHECK(out204.find("Transfer-Encoding") == std::string::npos);
    h.status = 304;
    CHECK(head_of(h).find("Transfer-Encoding") == std::string::npos);
}
