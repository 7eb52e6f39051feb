// Tests for protocol/preconditions.cpp: the evaluation order of RFC 9110
// §13.2.2 and If-Range (§13.1.5).
#include "protocol/preconditions.h"

#include <catch2/catch.hpp>

#include <string_view>

using namespace uvh;

namespace {

constexpr time_t kLastModified = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT
constexpr time_t kNow = kLastModified + 100;

constexpr std::string_view kAt = "Sun, 06 Nov 1994 08:49:37 GMT";       // == last_modified
constexpr std::string_view kBefore = "Sun, 06 Nov 1994 08:49:36 GMT";   // one second earlier
constexpr std::string_view kAfter = "Sun, 06 Nov 1994 08:49:38 GMT";    // one second later
constexpr std::string_view kAtNow = "Sun, 06 Nov 1994 08:51:17 GMT";    // == kNow
constexpr std::string_view kFuture = "Tue, 01 Jan 2030 00:00:00 GMT";   // after kNow
constexpr std::string_view kAtRfc850 = "Sunday, 06-Nov-94 08:49:37 GMT";
constexpr std::string_view kGarbage = "yesterday";

constexpr std::string_view kTag = "\"v1\"";
const Representation kExisting{true, kTag, kLastModified};
const Representation kMissing{false, {}, 0};

const char* name_of(Precondition p) {
    switch (p) {
    case Precondition::Proceed: return "Proceed";
    case Precondition::NotModified: return "NotModified";
    case Precondition::Failed: return "Failed";
    }
    return "?";
}

struct Case {
    const char* name;
    Conditionals c;
    bool safe;
    Representation r;
    Precondition expected;
};

Conditionals im(std::string_view v) { return {v, {}, {}, {}}; }
Conditionals inm(std::string_view v) { return {{}, v, {}, {}}; }
Conditionals ims(std::string_view v) { return {{}, {}, v, {}}; }
Conditionals ius(std::string_view v) { return {{}, {}, {}, v}; }

void run(const Case* begin, const Case* end) {
    for (const Case* c = begin; c != end; ++c) {
        Precondition got = evaluate_preconditions(c->c, c->safe, c->r, kNow);
        INFO(c->name << ": got " << name_of(got) << ", expected " << name_of(c->expected));
        CHECK(got == c->expected);
    }
}

}  // namespace

TEST_CASE("preconditions: no conditional fields means proceed", "[preconditions]") {
    CHECK_FALSE(Conditionals{}.any());
    CHECK(evaluate_preconditions({}, true, kExisting, kNow) == Precondition::Proceed);
    CHECK(evaluate_preconditions({}, false, kExisting, kNow) == Precondition::Proceed);
    CHECK(evaluate_preconditions({}, true, kMissing, kNow) == Precondition::Proceed);
}

TEST_CASE("preconditions: any() sees each field, even an empty one", "[preconditions]") {
    constexpr std::string_view kEmptyPresent = "";
    CHECK(im(kEmptyPresent).any());
    CHECK(inm(kEmptyPresent).any());
    CHECK(ims(kEmptyPresent).any());
    CHECK(ius(kEmptyPresent).any());
}

TEST_CASE("preconditions: If-Match (step 1)", "[preconditions]") {
    const Case cases[] = {
        {"matching tag", im(kTag), true, kExisting, Precondition::Proceed},
        {"matching tag, unsafe", im(kTag), false, kExisting, Precondition::Proceed},
        {"non-matching tag", im("\"v2\""), true, kExisting, Precondition::Failed},
        {"non-matching tag, unsafe", im("\"v2\""), false, kExisting, Precondition::Failed},
        {"match in a list", im("\"v0\", \"v1\""), false, kExisting, Precondition::Proceed},
        {"star on an existing resource", im("*"), false, kExisting, Precondition::Proceed},
        {"star on a missing resource", im("*"), false, kMissing, Precondition::Failed},
        {"tag on a missing resource", im(kTag), false, kMissing, Precondition::Failed},
        {"weak tag never matches (strong comparison)", im("W/\"v1\""), false, kExisting,
         Precondition::Failed},
        {"garbage value", im(kGarbage), false, kExisting, Precondition::Failed},
        {"empty value", im(""), false, kExisting, Precondition::Failed},
    };
    run(std::begin(cases), std::end(cases));
}

TEST_CASE("preconditions: If-Unmodified-Since (step 2)", "[preconditions]") {
    const Case cases[] = {
        {"date later than Last-Modified", ius(kAfter), false, kExisting, Precondition::Proceed},
        {"date equal to Last-Modified", ius(kAt), false, kExisting, Precondition::Proceed},
        {"date earlier than Last-Modified", ius(kBefore), false, kExisting, Precondition::Failed},
        {"date earlier, safe method", ius(kBefore), true, kExisting, Precondition::Failed},
        {"invalid date ignored", ius(kGarbage), false, kExisting, Precondition::Proceed},
        {"ignored when If-Match is present (and matches)", {kTag, {}, {}, kBefore}, false,
         kExisting, Precondition::Proceed},
        {"ignored when the resource is missing", ius(kBefore), false, kMissing,
         Precondition::Proceed},
        {"obsolete date form understood", ius("Sunday, 06-Nov-94 08:49:36 GMT"), false, kExisting,
         Precondition::Failed},
    };
    run(std::begin(cases), std::end(cases));
}

TEST_CASE("preconditions: If-None-Match (step 3)", "[preconditions]") {
    const Case cases[] = {
        {"match, safe -> 304", inm(kTag), true, kExisting, Precondition::NotModified},
        {"match, unsafe -> 412", inm(kTag), false, kExisting, Precondition::Failed},
        {"no match", inm("\"v2\""), true, kExisting, Precondition::Proceed},
        {"no match, unsafe", inm("\"v2\""), false, kExisting, Precondition::Proceed},
        {"star, existing, safe", inm("*"), true, kExisting, Precondition::NotModified},
        {"star, existing, unsafe", inm("*"), false, kExisting, Precondition::Failed},
        {"star, missing, unsafe (create-only PUT)", inm("*"), false, kMissing,
         Precondition::Proceed},
        {"tag, missing", inm(kTag), true, kMissing, Precondition::Proceed},
        // "*" alone or a list of entity-tags (RFC 9110 §13.1.2); a "*" inside
        // a list is neither, and like nginx we do not read it as a wildcard.
        {"star inside a list is not a wildcard", inm("\"nope\", *"), true, kExisting, Precondition::Proceed},
        {"match in a list", inm("\"a\", \"b\",\"v1\""), true, kExisting,
         Precondition::NotModified},
        {"weak tag matches (weak comparison)", inm("W/\"v1\""), true, kExisting,
         Precondition::NotModified},
        {"weak tag matches for unsafe too", inm("W/\"v1\""), false, kExisting,
         Precondition::Failed},
        {"overrides If-Modified-Since: no match means 200 even if not modified",
         {{}, "\"v2\"", kAt, {}}, true, kExisting, Precondition::Proceed},
        {"overrides If-Modified-Since: match means 304 even if modified",
         {{}, kTag, kBefore, {}}, true, kExisting, Precondition::NotModified},
    };
    run(std::begin(cases), std::end(cases));
}

TEST_CASE("preconditions: If-Modified-Since (step 4)", "[preconditions]") {
    const Case cases[] = {
        {"not modified since (equal)", ims(kAt), true, kExisting, Precondition::NotModified},
        {"not modified since (later date)", ims(kAfter), true, kExisting,
         Precondition::NotModified},
        {"date equal to the server clock is not in the future", ims(kAtNow), true, kExisting,
         Precondition::NotModified},
        {"RFC 850 form", ims(kAtRfc850), true, kExisting, Precondition::NotModified},
        {"asctime form", ims("Sun Nov  6 08:49:37 1994"), true, kExisting,
         Precondition::NotModified},
        {"modified since", ims(kBefore), true, kExisting, Precondition::Proceed},
        {"future date ignored", ims(kFuture), true, kExisting, Precondition::Proceed},
        {"invalid date ignored", ims(kGarbage), true, kExisting, Precondition::Proceed},
        {"empty value ignored", ims(""), true, kExisting, Precondition::Proceed},
        {"ignored for unsafe methods", ims(kAt), false, kExisting, Precondition::Proceed},
        {"ignored when the resource is missing", ims(kAt), true, kMissing,
         Precondition::Proceed},
    };
    run(std::begin(cases), std::end(cases));
}

TEST_CASE("preconditions: fields are evaluated in RFC 9110 §13.2.2 order", "[preconditions]") {
    const Case cases[] = {
        {"If-Match failure wins over If-None-Match match", {"\"v2\"", kTag, {}, {}}, true,
         kExisting, Precondition::Failed},
        {"If-Match pass, then If-None-Match match -> 304", {kTag, kTag, {}, {}}, true, kExisting,
         Precondition::NotModified},
        {"If-Unmodified-Since failure wins over If-None-Match", {{}, kTag, {}, kBefore}, true,
         kExisting, Precondition::Failed},
        {"If-Unmodified-Since failure wins over If-Modified-Since", {{}, {}, kAt, kBefore}, true,
         kExisting, Precondition::Failed},
        {"If-Unmodified-Since pass, If-Modified-Since -> 304", {{}, {}, kAt, kAfter}, true,
         kExisting, Precondition::NotModified},
        {"all four pass for an unchanged resource", {kTag, "\"v2\"", kBefore, kAfter}, true,
         kExisting, Precondition::Proceed},
    };
    run(std::begin(cases), std::end(cases));
}

TEST_CASE("preconditions: if_range_allows_partial", "[preconditions]") {
    struct {
        const char* name;
        std::string_view if_range;
        Representation r;
        bool expected;
    } const cases[] = {
        {"absent", {}, kExisting, true},
        {"absent, missing resource", {}, kMissing, true},
        {"strong etag match", kTag, kExisting, true},
        {"etag match with surrounding whitespace", " \"v1\"\t", kExisting, true},
        {"etag mismatch", "\"v2\"", kExisting, false},
        {"weak tag never matches", "W/\"v1\"", kExisting, false},
        {"etag on a missing resource", kTag, kMissing, false},
        {"exact date match", kAt, kExisting, true},
        {"exact date match, RFC 850 form", kAtRfc850, kExisting, true},
        {"date earlier than Last-Modified", kBefore, kExisting, false},
        {"date later than Last-Modified", kAfter, kExisting, false},
        {"garbage", kGarbage, kExisting, false},
        {"empty value", "", kExisting, false},
        {"unterminated tag", "\"v1", kExisting, false},
    };
    for (const auto& c : cases) {
        INFO(c.name << ": [" << c.if_range << "]");
        CHECK(if_range_allows_partial(c.if_range, c.r) == c.expected);
    }
}

TEST_CASE("preconditions: If-Range dates on a Wednesday are dates, not weak tags",
          "[preconditions]") {
    // RFC 9110 §13.1.5: an entity-tag is told from a date by its first
    // characters being DQUOTE or W/"; "Wed, ..." and "Wednesday, ..." are
    // HTTP-dates.
    const Representation wednesday{true, kTag, 784370977};  // Wed, 09 Nov 1994 08:49:37 GMT
    CHECK(if_range_allows_partial("Wed, 09 Nov 1994 08:49:37 GMT", wednesday));
    CHECK(if_range_allows_partial("Wednesday, 09-Nov-94 08:49:37 GMT", wednesday));
    CHECK(if_range_allows_partial("Wed Nov  9 08:49:37 1994", wednesday));
    CHECK_FALSE(if_range_allows_partial("Wed, 09 Nov 1994 08:49:38 GMT", wednesday));
}
