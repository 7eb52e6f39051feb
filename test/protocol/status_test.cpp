// Tests for protocol/status.cpp: reason phrases and preformatted status
// lines (RFC 9110 §15, RFC 9112 §4).
#include "protocol/status.h"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

using namespace uvh;

TEST_CASE("status: reason phrases for every code the server sends", "[status]") {
    struct {
        int code;
        std::string_view reason;
    } const cases[] = {
        {100, "Continue"},
        {200, "OK"},
        {201, "Created"},
        {204, "No Content"},
        {206, "Partial Content"},
        {207, "Multi-Status"},
        {301, "Moved Permanently"},
        {304, "Not Modified"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {411, "Length Required"},
        {412, "Precondition Failed"},
        {413, "Content Too Large"},
        {414, "URI Too Long"},
        {415, "Unsupported Media Type"},
        {416, "Range Not Satisfiable"},
        {417, "Expectation Failed"},
        {423, "Locked"},
        {424, "Failed Dependency"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {505, "HTTP Version Not Supported"},
        {507, "Insufficient Storage"},
    };
    for (const auto& c : cases) {
        INFO(c.code);
        CHECK(reason_phrase(c.code) == c.reason);
        std::string line = "HTTP/1.1 " + std::to_string(c.code) + " " + std::string(c.reason) + "\r\n";
        CHECK(status_line(c.code) == line);
    }
}

TEST_CASE("status: status_line is the full preformatted line", "[status]") {
    CHECK(status_line(404) == "HTTP/1.1 404 Not Found\r\n");
    CHECK(status_line(200) == "HTTP/1.1 200 OK\r\n");
    // The same bytes every time (built once).
    CHECK(status_line(404).data() == status_line(404).data());
}

TEST_CASE("status: unknown codes are 'Unknown' and out-of-range codes become 500", "[status]") {
    CHECK(reason_phrase(299) == "Unknown");
    CHECK(reason_phrase(0) == "Unknown");
    CHECK(status_line(299) == "HTTP/1.1 299 Unknown\r\n");
    CHECK(status_line(599) == "HTTP/1.1 599 Unknown\r\n");
    CHECK(status_line(99) == "HTTP/1.1 500 Internal Server Error\r\n");
    CHECK(status_line(600) == "HTTP/1.1 500 Internal Server Error\r\n");
    CHECK(status_line(-1) == "HTTP/1.1 500 Internal Server Error\r\n");
}

TEST_CASE("status: status_allows_body excludes 1xx, 204 and 304", "[status]") {
    static_assert(!status_allows_body(100), "usable in constant expressions");
    CHECK_FALSE(status_allows_body(100));
    CHECK_FALSE(status_allows_body(101));
    CHECK_FALSE(status_allows_body(199));
    CHECK_FALSE(status_allows_body(204));
    CHECK_FALSE(status_allows_body(304));
    for (int code : {200, 201, 206, 301, 400, 404, 412, 416, 500, 505}) {
        INFO(code);
        CHECK(status_allows_body(code));
    }
}
