#include "protocol/if_header.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace uvh;

namespace {

using Kind = IfCondition::Kind;

IfHeader parse_ok(std::string_view v) {
    IfHeader h;
    INFO(v);
    REQUIRE(parse_if_header(v, h));
    return h;
}

bool parses(std::string_view v) {
    IfHeader h;
    return parse_if_header(v, h);
}

}  // namespace

TEST_CASE("If header: one untagged list with a state token", "[if_header]") {
    IfHeader h = parse_ok("(<urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2>)");
    CHECK_FALSE(h.tagged);
    REQUIRE(h.lists.size() == 1);
    CHECK(h.lists[0].resource.empty());
    REQUIRE(h.lists[0].conditions.size() == 1);
    CHECK(h.lists[0].conditions[0].kind == Kind::StateToken);
    CHECK_FALSE(h.lists[0].conditions[0].negated);
    CHECK(h.lists[0].conditions[0].value == "urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2");
}

TEST_CASE("If header: conditions in a list, Not, entity tags (RFC 4918 10.4.2 example)", "[if_header]") {
    IfHeader h = parse_ok(
        "(<urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2> [\"I am an ETag\"]) ([\"I am another ETag\"])");
    REQUIRE(h.lists.size() == 2);
    REQUIRE(h.lists[0].conditions.size() == 2);
    CHECK(h.lists[0].conditions[1].kind == Kind::ETag);
    CHECK(h.lists[0].conditions[1].value == "\"I am an ETag\"");
    REQUIRE(h.lists[1].conditions.size() == 1);
    CHECK(h.lists[1].conditions[0].value == "\"I am another ETag\"");

    IfHeader n = parse_ok("(Not <urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2> <urn:uuid:58f202ac-22cf-11d1-b12d-002035b29092>)");
    REQUIRE(n.lists[0].conditions.size() == 2);
    CHECK(n.lists[0].conditions[0].negated);
    CHECK_FALSE(n.lists[0].conditions[1].negated);

    // "Not" is case-insensitive and may sit right before the condition.
    IfHeader m = parse_ok("(NOT<DAV:no-lock>) (not [W/\"x\"])");
    CHECK(m.lists[0].conditions[0].negated);
    CHECK(m.lists[0].conditions[0].value == "DAV:no-lock");
    CHECK(m.lists[1].conditions[0].negated);
    CHECK(m.lists[1].conditions[0].value == "W/\"x\"");
}

TEST_CASE("If header: tagged lists with several lists per resource", "[if_header]") {
    IfHeader h = parse_ok(
        "<http://www.example.com/specs/> (<urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2>) "
        "</resource1> (<urn:uuid:a>) ([W/\"A weak ETag\"]) ([\"strong ETag\"])");
    CHECK(h.tagged);
    REQUIRE(h.lists.size() == 4);
    CHECK(h.lists[0].resource == "http://www.example.com/specs/");
    CHECK(h.lists[1].resource == "/resource1");
    CHECK(h.lists[2].resource == "/resource1");
    CHECK(h.lists[3].resource == "/resource1");
    CHECK(h.lists[2].conditions[0].value == "W/\"A weak ETag\"");
}

TEST_CASE("If header: whitespace is optional between productions", "[if_header]") {
    IfHeader h = parse_ok("  </a>(<DAV:no-lock>)(Not<DAV:no-lock>[\"e\"])  ");
    REQUIRE(h.lists.size() == 2);
    CHECK(h.lists[1].conditions.size() == 2);
    IfHeader t = parse_ok("(\t<urn:uuid:x>\t)");
    CHECK(t.lists[0].conditions[0].value == "urn:uuid:x");
}

TEST_CASE("If header: malformed values are refused", "[if_header]") {
    const char* bad[] = {
        "",
        "   ",
        "()",                                  // an empty list
        "(",                                   // unterminated
        "(<urn:uuid:x>",                       // unterminated
        "<urn:uuid:x>",                        // a tag without a list
        "</a> (<urn:uuid:x>) </b>",            // the last tag has no list
        "(<urn:uuid:x>) </a> (<urn:uuid:y>)",  // untagged then tagged
        "</a> (<urn:uuid:x>) (<urn:uuid:y>) x",  // garbage after
        "(<no-scheme>)",                       // a state token must be an absolute URI
        "(<>)",
        "(<urn:uuid:a b>)",                    // whitespace inside a URI
        "(<urn:>)",                            // scheme without anything after it
        "([not-quoted])",
        "([\"unterminated])",
        "([\"a\"b\"])",                        // a quote inside the tag
        "([\"a\"]",                            // unterminated list
        "(Not)",
        "(Not )",
        "(Nothing <urn:uuid:x>)",
        "(urn:uuid:x)",                        // a token without <>
        "<> (<urn:uuid:x>)",                   // an empty resource tag
        "<relative/path> (<urn:uuid:x>)",      // a resource tag is absolute
        "(<urn:uuid:x>) garbage",
        "[\"etag\"]",                          // a condition outside a list
    };
    for (const char* v : bad) {
        INFO(v);
        CHECK_FALSE(parses(v));
    }
}

TEST_CASE("If header: submitted tokens are the state tokens outside Not", "[if_header]") {
    IfHeader h = parse_ok("</a> (<urn:uuid:1> [\"e\"]) (Not <urn:uuid:2>) </b> (<urn:uuid:3>)");
    std::vector<std::string_view> tokens;
    submitted_tokens(h, tokens);
    REQUIRE(tokens.size() == 2);
    CHECK(tokens[0] == "urn:uuid:1");
    CHECK(tokens[1] == "urn:uuid:3");
}
