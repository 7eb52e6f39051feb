// Tests for protocol/http_date.cpp: IMF-fixdate formatting, the three
// HTTP-date forms of RFC 9110 §5.6.7, and the Date line cache.
#include "protocol/http_date.h"

#include <catch2/catch.hpp>

#include <cstdio>
#include <ctime>
#include <string>
#include <string_view>

using namespace uvh;

namespace {
constexpr time_t kRfcExample = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT
}

TEST_CASE("http_date: format_http_date of known times", "[http_date]") {
    struct {
        time_t t;
        const char* text;
    } const cases[] = {
        {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
        {kRfcExample, "Sun, 06 Nov 1994 08:49:37 GMT"},
        {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},   // leap day
        {2147483647, "Tue, 19 Jan 2038 03:14:07 GMT"},  // 32-bit limit
        {4102444800, "Fri, 01 Jan 2100 00:00:00 GMT"},
    };
    for (const auto& c : cases) {
        INFO("t = " << c.t);
        char buf[kHttpDateLen + 1];
        buf[kHttpDateLen] = '#';  // sentinel: exactly kHttpDateLen bytes written
        format_http_date(c.t, buf);
        CHECK(std::string_view(buf, kHttpDateLen) == c.text);
        CHECK(buf[kHttpDateLen] == '#');
        CHECK(http_date(c.t) == c.text);
        CHECK(http_date(c.t).size() == kHttpDateLen);
    }
}

TEST_CASE("http_date: the three RFC 9110 forms all parse to the same time", "[http_date]") {
    const char* forms[] = {
        "Sun, 06 Nov 1994 08:49:37 GMT",   // IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  // obsolete RFC 850 form
        "Sun Nov  6 08:49:37 1994",        // ANSI C asctime() form
    };
    for (const char* f : forms) {
        INFO(f);
        auto t = parse_http_date(f);
        REQUIRE(t.has_value());
        CHECK(*t == kRfcExample);
    }
}

TEST_CASE("http_date: asctime form with a two-digit day", "[http_date]") {
    auto t = parse_http_date("Wed Nov 16 08:49:37 1994");
    REQUIRE(t);
    CHECK(*t == kRfcExample + 10 * 86400);
}

TEST_CASE("http_date: parse is the inverse of format", "[http_date]") {
    for (time_t t : {time_t{0}, kRfcExample, time_t{951782400}, time_t{1700000000},
                     time_t{2147483647}, time_t{4102444800}}) {
        INFO("t = " << t);
        auto back = parse_http_date(http_date(t));
        REQUIRE(back);
        CHECK(*back == t);
    }
}

TEST_CASE("http_date: surrounding whitespace of the field value is ignored", "[http_date]") {
    auto t = parse_http_date(" \tSun, 06 Nov 1994 08:49:37 GMT\t ");
    REQUIRE(t);
    CHECK(*t == kRfcExample);
}

TEST_CASE("http_date: invalid dates give nullopt", "[http_date]") {
    const char* bad[] = {
        "",
        "   ",
        "Xyz, 06 Nov 1994 08:49:37 GMT",    // not a day name
        "sun, 06 Nov 1994 08:49:37 GMT",    // day names are case-sensitive
        "Sun, 06 Nov 1994 08:49:37",        // GMT missing
        "Sun, 06 Nov 1994 08:49:37 UTC",    // only GMT
        "Sun, 06 Nov 1994 08:49:37 GMT x",  // extra text
        "Sun, 06 Nov 1994 08:49:37 GMTx",
        "Sun, 06 Nov 1994 24:00:00 GMT",    // hour 24
        "Sun, 06 Nov 1994 08:60:00 GMT",    // minute 60
        "Sun, 06 Nov 1994 08:49:61 GMT",    // second 61
        "Sun, 00 Nov 1994 08:49:37 GMT",    // day 0
        "Sun, 32 Nov 1994 08:49:37 GMT",    // day 32
        "Sun, 6 Nov 1994 08:49:37 GMT",     // IMF needs two-digit day
        "Sun, 06 nov 1994 08:49:37 GMT",    // month names are case-sensitive
        "Sun, 06 Nov 94 08:49:37 GMT",      // IMF needs a four-digit year
        "Sun, 06 Xyz 1994 08:49:37 GMT",
        "Sun,06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun, 06-Nov-1994 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",  // RFC 850 has a two-digit year
        "Sunday, 06 Nov 1994 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994",           // asctime pads the day with a space
        "Sun Nov  6 08:49:37 1994 GMT",
        "Sun Nov  6 08:49:37 94",
        "1994-11-06T08:49:37Z",
        "784111777",
    };
    for (const char* s : bad) {
        INFO("[" << s << "]");
        CHECK_FALSE(parse_http_date(s).has_value());
    }
}

TEST_CASE("http_date: a weekday that disagrees with the date is accepted", "[http_date]") {
    // Documents the code: the day name is only checked for being a day name,
    // not for agreeing with the date (RFC 9110 does not require a recipient
    // to reject such a date).
    auto t = parse_http_date("Mon, 06 Nov 1994 08:49:37 GMT");
    REQUIRE(t);
    CHECK(*t == kRfcExample);
}

TEST_CASE("http_date: out-of-range calendar days are normalised by timegm", "[http_date]") {
    // Documents the code: day 31 passes the 1..31 check and timegm() rolls
    // 31 Feb 1995 over to 3 Mar 1995 instead of rejecting it.
    auto feb31 = parse_http_date("Tue, 31 Feb 1995 00:00:00 GMT");
    REQUIRE(feb31);
    CHECK(*feb31 == 794188800);  // Fri, 03 Mar 1995 00:00:00 GMT
    CHECK(http_date(*feb31) == "Fri, 03 Mar 1995 00:00:00 GMT");

    // A leap second (:60) is accepted and lands on the next minute.
    auto leap = parse_http_date("Sun, 06 Nov 1994 08:49:60 GMT");
    REQUIRE(leap);
    CHECK(*leap == kRfcExample + 23);
}

TEST_CASE("http_date: the second before the epoch is a valid date", "[http_date]") {
    // timegm() returns -1 both for errors and for this instant; the parser
    // must not mistake a valid date for an error.
    auto t = parse_http_date("Wed, 31 Dec 1969 23:59:59 GMT");
    REQUIRE(t.has_value());
    CHECK(*t == -1);
}

TEST_CASE("http_date: RFC 850 two-digit years are at most 50 years in the future",
          "[http_date]") {
    time_t now = std::time(nullptr);
    struct tm now_tm {};
    gmtime_r(&now, &now_tm);
    const int year = now_tm.tm_year + 1900;

    auto parse_year = [](int yy) -> int {
        char text[64];
        std::snprintf(text, sizeof text, "Monday, 01-Jan-%02d 00:00:00 GMT", yy);
        auto t = parse_http_date(text);
        REQUIRE(t);
        struct tm tm {};
        gmtime_r(&*t, &tm);
        return tm.tm_year + 1900;
    };
    CHECK(parse_year(94) == (year >= 2045 ? 2094 : 1994));
    CHECK(parse_year((year + 1) % 100) == year + 1);
    CHECK(parse_year((year + 49) % 100) == year + 49);
    CHECK(parse_year((year + 51) % 100) == year + 51 - 100);
    CHECK(parse_year((year - 1) % 100) == year - 1);
}

TEST_CASE("http_date: DateCache header_line is the Date field, 29 characters and CRLF", "[http_date]") {
    DateCache cache;
    std::string_view line = cache.header_line();
    CHECK(line.size() == 6 + kHttpDateLen + 2);
    CHECK(line.substr(0, 6) == "Date: ");
    CHECK(line.substr(6 + kHttpDateLen) == "\r\n");
    // The default cache holds the current time.
    CHECK(parse_http_date(line.substr(6, kHttpDateLen)) == cache.now());

    cache.refresh(kRfcExample);
    CHECK(cache.now() == kRfcExample);
    CHECK(cache.header_line() == "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n");

    cache.refresh(0);
    CHECK(cache.now() == 0);
    CHECK(cache.header_line() == "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n");

    // Refreshing with the same second leaves the line as it was.
    cache.refresh(0);
    CHECK(cache.header_line() == "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n");
}
