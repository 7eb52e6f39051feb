// Tests for protocol/percent.cpp: percent-encoding (RFC 3986 §2.1) and
// application/x-www-form-urlencoded bodies and queries.
#include "protocol/percent.h"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

using namespace uvh;
using namespace std::string_literals;

namespace {

std::string all_bytes() {
    std::string s;
    for (int c = 0; c < 256; ++c) s.push_back(static_cast<char>(c));
    return s;
}

}  // namespace

TEST_CASE("percent: percent_decode of valid input", "[percent]") {
    struct {
        std::string_view in;
        bool plus_is_space;
        std::string expected;
    } const cases[] = {
        {"", false, ""},
        {"abc", false, "abc"},
        {"%41%42c", false, "ABc"},
        {"%2f%2F", false, "//"},
        {"%e2%82%AC", false, "\xe2\x82\xac"},  // "€" in UTF-8
        {"%00x", false, "\0x"s},
        {"a+b", false, "a+b"},  // '+' is only a space in form data
        {"a+b", true, "a b"},
        {"%2B", true, "+"},  // an encoded plus stays a plus
        {"%20+%20", true, "   "},
        {"100%25", false, "100%"},
    };
    for (const auto& c : cases) {
        INFO("[" << c.in << "] plus_is_space=" << c.plus_is_space);
        std::string out;
        CHECK(percent_decode(c.in, out, c.plus_is_space));
        CHECK(out == c.expected);
    }
}

TEST_CASE("percent: percent_decode appends to the output", "[percent]") {
    std::string out = "x";
    REQUIRE(percent_decode("%41", out));
    CHECK(out == "xA");
}

TEST_CASE("percent: percent_decode rejects '%' without two hex digits", "[percent]") {
    for (std::string_view bad : {"%zz", "%4", "%", "abc%", "abc%4", "%g0", "%0g", "%%41", "% 41"}) {
        INFO("[" << bad << "]");
        std::string out;
        CHECK_FALSE(percent_decode(bad, out));
        CHECK_FALSE(percent_decode(bad, out, true));
    }
}

TEST_CASE("percent: percent_encode", "[percent]") {
    auto enc = [](std::string_view in, std::string_view keep = {}) {
        std::string out;
        percent_encode(in, out, keep);
        return out;
    };
    CHECK(enc("") == "");
    CHECK(enc("AZaz09-._~") == "AZaz09-._~");  // the unreserved set stays
    CHECK(enc("a b") == "a%20b");
    CHECK(enc("/a/b c") == "%2Fa%2Fb%20c");
    CHECK(enc("/a/b c", "/") == "/a/b%20c");
    CHECK(enc("a+b&c=d", "+") == "a+b%26c%3Dd");
    CHECK(enc("caf\xc3\xa9") == "caf%C3%A9");  // uppercase hex digits
    CHECK(enc("\0"s) == "%00");
    CHECK(enc("\xff") == "%FF");
    CHECK(enc("%") == "%25");

    std::string out = "prefix:";
    percent_encode("a b", out);
    CHECK(out == "prefix:a%20b");
}

TEST_CASE("percent: percent_encode then percent_decode round-trips every byte", "[percent]") {
    const std::string bytes = all_bytes();
    for (std::string_view keep : {std::string_view{}, std::string_view{"/"}, std::string_view{":@"}}) {
        std::string encoded, decoded;
        percent_encode(bytes, encoded, keep);
        for (char c : encoded) {
            auto u = static_cast<unsigned char>(c);
            CHECK((u > 0x20 && u < 0x7f));  // printable ASCII only
        }
        REQUIRE(percent_decode(encoded, decoded));
        CHECK(decoded == bytes);
    }
}

TEST_CASE("percent: form_encode", "[percent]") {
    std::string out;
    form_encode("a b+c&d=e%f\n", out);
    CHECK(out == "a+b%2Bc%26d%3De%25f%0A");
    out.clear();
    form_encode("AZaz09-._~", out);
    CHECK(out == "AZaz09-._~");
}

TEST_CASE("percent: form_encode and parse_form round-trip arbitrary bytes", "[percent]") {
    const FormFields fields = {
        {"plain", "value"},
        {"newline", "line one\nline two"},
        {"crlf", "a\r\nb"},
        {"amp&eq=", "x&y=z"},
        {"plus+", "1+1=2"},
        {"percent%", "100%"},
        {"nul", "a\0b"s},
        {"\0"s, "\0\0"s},
        {"utf8", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"spaces", "  leading and trailing  "},
        {"empty", ""},
        {"", "empty name"},
        {"all", all_bytes()},
        {"dup", "1"},
        {"dup", "2"},  // order and duplicates are kept
    };
    const std::string body = serialize_form(fields);
    for (char c : body) {
        auto u = static_cast<unsigned char>(c);
        CHECK((u > 0x20 && u < 0x7f));
    }
    FormFields back;
    REQUIRE(parse_form(body, back));
    CHECK(back == fields);
}

TEST_CASE("percent: parse_form", "[percent]") {
    struct {
        std::string_view body;
        FormFields expected;
    } const cases[] = {
        {"", {}},
        {"a=1&b=2", {{"a", "1"}, {"b", "2"}}},
        {"a=1&&b=2", {{"a", "1"}, {"b", "2"}}},  // empty pieces skipped
        {"&a=1&", {{"a", "1"}}},
        {"&&&", {}},
        {"flag&x=1", {{"flag", ""}, {"x", "1"}}},  // a name without '='
        {"a=", {{"a", ""}}},
        {"=v", {{"", "v"}}},
        {"a=1=2", {{"a", "1=2"}}},  // only the first '=' splits
        {"a+b=c+d", {{"a b", "c d"}}},
        {"k=%41%2B%26", {{"k", "A+&"}}},
        {"a=1&a=2", {{"a", "1"}, {"a", "2"}}},
    };
    for (const auto& c : cases) {
        INFO("[" << c.body << "]");
        FormFields out;
        CHECK(parse_form(c.body, out));
        CHECK(out == c.expected);
    }
}

TEST_CASE("percent: parse_form rejects bad percent-encoding", "[percent]") {
    for (std::string_view bad : {"a=%zz", "%zz=1", "a=1&b=%4", "a=%"}) {
        INFO("[" << bad << "]");
        FormFields out;
        CHECK_FALSE(parse_form(bad, out));
    }
}

TEST_CASE("percent: serialize_form", "[percent]") {
    CHECK(serialize_form({}) == "");
    CHECK(serialize_form({{"a", "1"}}) == "a=1");
    CHECK(serialize_form({{"a", "1"}, {"b", "x y"}}) == "a=1&b=x+y");
    CHECK(serialize_form({{"", ""}}) == "=");
    CHECK(serialize_form({{"", ""}, {"b", ""}}) == "=&b=");
    CHECK(serialize_form({{"k&=", "v+%"}}) == "k%26%3D=v%2B%25");
}

TEST_CASE("percent: query_param", "[percent]") {
    std::string v = "stale";
    CHECK(query_param("a=1&b=2", "b", v));
    CHECK(v == "2");
    CHECK(query_param("a=1&b=2", "a", v));
    CHECK(v == "1");

    v = "kept";
    CHECK_FALSE(query_param("a=1&b=2", "c", v));
    CHECK_FALSE(query_param("", "a", v));
    CHECK_FALSE(query_param("a=1", "A", v));  // names are case-sensitive
    CHECK(v == "kept");                        // untouched when absent

    CHECK(query_param("q=hello+world%21", "q", v));
    CHECK(v == "hello world!");
    CHECK(query_param("a=1&a=2", "a", v));
    CHECK(v == "1");  // the first one
    CHECK(query_param("x&flag", "flag", v));
    CHECK(v == "");
    CHECK(query_param("my+name=1", "my name", v));
    CHECK(v == "1");
    CHECK(query_param("%6Eame=enc", "name", v));
    CHECK(v == "enc");

    // A bad value for the wanted name is an error; bad pieces elsewhere are
    // skipped.
    CHECK_FALSE(query_param("a=%zz", "a", v));
    CHECK(query_param("%zz=1&a=2", "a", v));
    CHECK(v == "2");
    CHECK(query_param("x=%zz&a=3", "a", v));
    CHECK(v == "3");
}
