// Tests for protocol/etag.cpp: tag generation and the strong/weak list
// comparison of RFC 9110 §8.8.3.2.
#include "protocol/etag.h"

#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <string_view>

using namespace uvh;

TEST_CASE("etag: make_etag is a quoted strong tag of hex inode, size and nanosecond mtime",
          "[etag]") {
    FileVersion v{0x1a2b, 0x23b, 1, 0};
    // 1 s = 1000000000 ns = 0x3b9aca00.
    CHECK(make_etag(v) == "\"1a2b-23b-3b9aca00\"");

    FileVersion zero{};
    CHECK(make_etag(zero) == "\"0-0-0\"");

    FileVersion ns{1, 2, 3, 4};
    CHECK(make_etag(ns) == "\"1-2-b2d05e04\"");  // 3'000'000'004 ns
}

TEST_CASE("etag: make_etag output is itself a valid strong entity-tag", "[etag]") {
    FileVersion v{123456789, 987654321, 1700000000, 999999999};
    std::string tag = make_etag(v);
    REQUIRE(tag.size() >= 2);
    CHECK(tag.front() == '"');
    CHECK(tag.back() == '"');
    CHECK(tag.rfind("W/", 0) == std::string::npos);
    // A tag always matches itself under strong comparison.
    CHECK(etag_list_matches(tag, tag, true));
    // And it is deterministic.
    CHECK(make_etag(v) == tag);
}

TEST_CASE("etag: make_etag changes when any FileVersion field changes", "[etag]") {
    const FileVersion base{100, 200, 1700000000, 500};
    FileVersion inode = base, size = base, sec = base, nsec = base;
    inode.inode += 1;
    size.size += 1;
    sec.mtime_sec += 1;
    nsec.mtime_nsec += 1;

    std::set<std::string> tags{make_etag(base), make_etag(inode), make_etag(size), make_etag(sec),
                               make_etag(nsec)};
    CHECK(tags.size() == 5);
}

namespace {

struct MatchCase {
    const char* name;
    std::string_view list;
    std::string_view etag;
    bool strong;
    bool expected;
};

}  // namespace

TEST_CASE("etag: etag_list_matches strong and weak comparison", "[etag]") {
    const MatchCase cases[] = {
        // RFC 9110 §8.8.3.2 table.
        {"W/1 vs W/1 strong", R"(W/"1")", R"(W/"1")", true, false},
        {"W/1 vs W/1 weak", R"(W/"1")", R"(W/"1")", false, true},
        {"W/1 vs W/2 weak", R"(W/"1")", R"(W/"2")", false, false},
        {"W/1 vs 1 strong", R"(W/"1")", R"("1")", true, false},
        {"W/1 vs 1 weak", R"(W/"1")", R"("1")", false, true},
        {"1 vs W/1 strong", R"("1")", R"(W/"1")", true, false},
        {"1 vs W/1 weak", R"("1")", R"(W/"1")", false, true},
        {"1 vs 1 strong", R"("1")", R"("1")", true, true},
        {"1 vs 1 weak", R"("1")", R"("1")", false, true},
        {"different opaque", R"("x")", R"("y")", true, false},
        {"opaque is case-sensitive", R"("abc")", R"("ABC")", false, false},
        {"empty opaque tags", R"("")", R"("")", true, true},

        // Lists: members separated by commas with optional whitespace.
        {"match last of list", R"("a", "b", "x")", R"("x")", true, true},
        {"no spaces", R"("a","b","x")", R"("x")", true, true},
        {"tabs and spaces", "\t\"a\" ,\t \"x\"  ", R"("x")", true, true},
        {"empty members", R"(,, "a" ,, "x",)", R"("x")", true, true},
        {"weak members skipped when strong", R"(W/"x", "y")", R"("x")", true, false},
        {"weak member matches when weak", R"("y", W/"x")", R"("x")", false, true},
        {"no member matches", R"("a", "b")", R"("c")", false, false},

        // Commas inside quoted tags are part of the tag.
        {"comma inside tag matches whole", R"("a,b")", R"("a,b")", true, true},
        {"comma inside tag is not a separator", R"("a,b")", R"("a")", true, false},
        {"comma inside tag, second half", R"("a,b")", R"("b")", true, false},
        {"member after comma-tag", R"("a,b", "b")", R"("b")", true, true},

        // Malformed members never match, but do not hide later members.
        {"unquoted member ignored", R"(x, "y")", R"("y")", true, true},
        {"unquoted member does not match quoted", "x", R"("x")", false, false},
        {"lowercase w/ is not a weak prefix", R"(w/"x")", R"("x")", false, false},
        {"unterminated quote", R"("y)", R"("y")", false, false},
        {"empty list", "", R"("x")", false, false},
        {"space inside a tag is not etagc", R"("a b")", R"("a b")", false, false},

        // A malformed tag to compare with matches nothing.
        {"unquoted etag argument", R"("x", x)", "x", false, false},
        {"star is not a tag", "*", R"("x")", false, false},
    };
    for (const MatchCase& c : cases) {
        INFO(c.name << ": list=[" << c.list << "] etag=[" << c.etag << "] strong=" << c.strong);
        CHECK(etag_list_matches(c.list, c.etag, c.strong) == c.expected);
    }
}

TEST_CASE("etag: is_star accepts only a lone asterisk", "[etag]") {
    CHECK(is_star("*"));
    CHECK(is_star(" * "));
    CHECK(is_star("\t*\t"));
    CHECK_FALSE(is_star(""));
    CHECK_FALSE(is_star("**"));
    CHECK_FALSE(is_star("\"*\""));
    CHECK_FALSE(is_star("*, \"a\""));
    CHECK_FALSE(is_star("W/*"));
}
