// Tests for protocol/target.cpp: request-target forms (RFC 9112 §3.2), path
// normalisation (RFC 3986 §5.2.4, RFC 9110 §17.3) and Host validation.
#include "protocol/target.h"

#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <string_view>

using namespace uvh;
using namespace std::string_view_literals;

namespace {

const char* name_of(TargetForm f) {
    switch (f) {
    case TargetForm::Origin: return "Origin";
    case TargetForm::Absolute: return "Absolute";
    case TargetForm::Asterisk: return "Asterisk";
    case TargetForm::Invalid: return "Invalid";
    }
    return "?";
}

const char* name_of(PathStatus s) {
    switch (s) {
    case PathStatus::Ok: return "Ok";
    case PathStatus::BadEncoding: return "BadEncoding";
    case PathStatus::EncodedSlash: return "EncodedSlash";
    case PathStatus::NulByte: return "NulByte";
    case PathStatus::Backslash: return "Backslash";
    case PathStatus::Escapes: return "Escapes";
    }
    return "?";
}

}  // namespace

TEST_CASE("target: parse_target forms", "[target]") {
    struct {
        std::string_view raw;
        TargetForm form;
        std::string_view authority, path, query;
    } const cases[] = {
        {"/", TargetForm::Origin, "", "/", ""},
        {"/a?b=c", TargetForm::Origin, "", "/a", "b=c"},
        {"/a?", TargetForm::Origin, "", "/a", ""},
        // A fragment has no place in a request-target (RFC 9112 §3.2).
        {"/a#frag", TargetForm::Invalid, "", "", ""},
        {"/a?b#frag", TargetForm::Invalid, "", "", ""},
        {"/a%20b?x=%41", TargetForm::Origin, "", "/a%20b", "x=%41"},  // still encoded
        {"http://h:8/p?q", TargetForm::Absolute, "h:8", "/p", "q"},
        {"HTTP://h", TargetForm::Absolute, "h", "/", ""},
        {"http://h?x=1", TargetForm::Absolute, "h", "/", "x=1"},
        {"https://h/x", TargetForm::Absolute, "h", "/x", ""},
        {"HtTpS://example.com:443/a/b", TargetForm::Absolute, "example.com:443", "/a/b", ""},
        {"http://h/a@b", TargetForm::Absolute, "h", "/a@b", ""},
        {"*", TargetForm::Asterisk, "", "", ""},
        {"", TargetForm::Invalid, "", "", ""},
        {"a/b", TargetForm::Invalid, "", "", ""},
        {"ftp://h/x", TargetForm::Invalid, "", "", ""},
        {"http://user@h/", TargetForm::Invalid, "", "", ""},
        {"http:///x", TargetForm::Invalid, "", "", ""},
        {"http:/x", TargetForm::Invalid, "", "", ""},
        {"**", TargetForm::Invalid, "", "", ""},
    };
    for (const auto& c : cases) {
        Target t = parse_target(c.raw);
        INFO("[" << c.raw << "] -> " << name_of(t.form) << " authority=[" << t.authority
                 << "] path=[" << t.path << "] query=[" << t.query << "]");
        CHECK(t.form == c.form);
        if (t.form == c.form && c.form != TargetForm::Invalid) {
            CHECK(t.authority == c.authority);
            CHECK(t.path == c.path);
            CHECK(t.query == c.query);
        }
    }
}

TEST_CASE("target: normalize_path", "[target]") {
    struct {
        std::string_view raw;
        PathStatus status;
        std::string expected;  // when Ok
    } const cases[] = {
        {"/", PathStatus::Ok, "/"},
        {"", PathStatus::Ok, "/"},
        {"/a/b", PathStatus::Ok, "/a/b"},
        {"/a/b/", PathStatus::Ok, "/a/b/"},  // the trailing slash marks a directory
        {"//a///b", PathStatus::Ok, "/a/b"},
        {"//a///b//", PathStatus::Ok, "/a/b/"},
        {"/a/./b", PathStatus::Ok, "/a/b"},
        {"/a/.", PathStatus::Ok, "/a/"},
        {"/./", PathStatus::Ok, "/"},
        {"/a/b/..", PathStatus::Ok, "/a/"},
        {"/a/b/../", PathStatus::Ok, "/a/"},
        {"/a/b/../c", PathStatus::Ok, "/a/c"},
        {"/a/..", PathStatus::Ok, "/"},
        {"/a/%2e%2e/b", PathStatus::Ok, "/b"},
        {"/a/%2E/b", PathStatus::Ok, "/a/b"},
        {"/a/...", PathStatus::Ok, "/a/..."},  // three dots is a name
        {"/a/..b", PathStatus::Ok, "/a/..b"},
        {"/caf%C3%A9", PathStatus::Ok, "/caf\xc3\xa9"},
        {"/a b", PathStatus::Ok, "/a b"},
        {"/a%20b", PathStatus::Ok, "/a b"},
        {"/a+b", PathStatus::Ok, "/a+b"},  // '+' is not a space in a path
        {"/%41", PathStatus::Ok, "/A"},
        {"/..", PathStatus::Escapes, ""},
        {"/../", PathStatus::Escapes, ""},
        {"/a/../../b", PathStatus::Escapes, ""},
        {"/%2e%2e/x", PathStatus::Escapes, ""},
        {"/%2E%2E", PathStatus::Escapes, ""},
        {"/.%2e/x", PathStatus::Escapes, ""},
        {"/a%2fb", PathStatus::EncodedSlash, ""},
        {"/a%2Fb", PathStatus::EncodedSlash, ""},
        {"/..%2f", PathStatus::EncodedSlash, ""},
        {"/a%00", PathStatus::NulByte, ""},
        {"/a\0b"sv, PathStatus::NulByte, ""},
        {"/a\\b", PathStatus::Backslash, ""},
        {"/a%5cb", PathStatus::Backslash, ""},
        {"/a%5Cb", PathStatus::Backslash, ""},
        {"/..\\..\\etc", PathStatus::Backslash, ""},
        {"/%zz", PathStatus::BadEncoding, ""},
        {"/%4", PathStatus::BadEncoding, ""},
        {"/%", PathStatus::BadEncoding, ""},
        {"/a%g1", PathStatus::BadEncoding, ""},
    };
    for (const auto& c : cases) {
        std::string out = "stale";
        PathStatus s = normalize_path(c.raw, out);
        INFO("[" << c.raw << "] -> " << name_of(s) << " [" << out << "]");
        CHECK(s == c.status);
        if (c.status == PathStatus::Ok) CHECK(out == c.expected);
    }
}

TEST_CASE("target: normalized paths never contain empty, '.' or '..' segments", "[target]") {
    for (std::string_view raw : {"/a/./b/../c//d/", "/./././", "/a/b/c/../../..", "/x/%2e/y/%2e%2e/z",
                                 "////", "/a/b/./../c/."}) {
        std::string out;
        REQUIRE(normalize_path(raw, out) == PathStatus::Ok);
        INFO("[" << raw << "] -> [" << out << "]");
        REQUIRE_FALSE(out.empty());
        CHECK(out.front() == '/');
        CHECK(out.find("//") == std::string::npos);
        CHECK(out.find("/./") == std::string::npos);
        CHECK(out.find("/../") == std::string::npos);
        CHECK((out.size() < 2 || out.substr(out.size() - 2) != "/."));
        CHECK((out.size() < 3 || out.substr(out.size() - 3) != "/.."));
    }
}

TEST_CASE("target: has_hidden_segment", "[target]") {
    CHECK(has_hidden_segment("/.git/x"));
    CHECK(has_hidden_segment("/a/.env"));
    CHECK(has_hidden_segment("/a/.well-known/"));
    CHECK_FALSE(has_hidden_segment("/a.b"));
    CHECK_FALSE(has_hidden_segment("/a/b.c/d"));
    CHECK_FALSE(has_hidden_segment("/"));
    CHECK_FALSE(has_hidden_segment("/a/b/"));
}

TEST_CASE("target: relative_path", "[target]") {
    CHECK(relative_path("/") == ".");
    CHECK(relative_path("/a") == "a");
    CHECK(relative_path("/a/b/") == "a/b");
    CHECK(relative_path("/a/b") == "a/b");
    CHECK(relative_path("/caf\xc3\xa9/x") == "caf\xc3\xa9/x");
}

TEST_CASE("target: valid_host", "[target]") {
    struct {
        std::string_view host;
        bool valid;
    } const cases[] = {
        {"example.com", true},
        {"example.com:8080", true},
        {"EXAMPLE.com", true},
        {"127.0.0.1", true},
        {"127.0.0.1:80", true},
        {"[::1]:80", true},
        {"[::1]", true},
        {"[2001:db8::ff00:42:8329]", true},
        {"[::ffff:192.0.2.1]:443", true},
        {"xn--caf-dma.example", true},
        {"under_score.example", true},
        {"", true},  // an empty Host is allowed when the URI has no authority
        {"a b", false},
        {"a/b", false},
        {"a@b", false},
        {"host:port", false},
        {"[zz]", false},
        {"[]", false},
        {"[::1", false},
        {"[::1]x", false},
        {"[::1]:x", false},
        {"h:123456", false},
        {"a:b:c", false},
        {"caf\xc3\xa9.example", false},
        {"h\r\n", false},
    };
    for (const auto& c : cases) {
        INFO("[" << c.host << "]");
        CHECK(valid_host(c.host) == c.valid);
    }
}

TEST_CASE("target: path_status_message gives a distinct message for each status", "[target]") {
    std::set<std::string_view> messages;
    for (PathStatus s : {PathStatus::Ok, PathStatus::BadEncoding, PathStatus::EncodedSlash,
                         PathStatus::NulByte, PathStatus::Backslash, PathStatus::Escapes}) {
        std::string_view m = path_status_message(s);
        CHECK_FALSE(m.empty());
        CHECK(m.find('\n') == std::string_view::npos);
        messages.insert(m);
    }
    CHECK(messages.size() == 6);
}
