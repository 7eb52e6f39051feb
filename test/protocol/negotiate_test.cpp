// Tests for protocol/negotiate.cpp: Accept-Encoding qualities and Accept
// media type selection (RFC 9110 §12.5.1, §12.5.3).
#include "protocol/negotiate.h"

#include <catch2/catch.hpp>

#include <string_view>

using namespace uvh;

TEST_CASE("negotiate: coding_quality", "[negotiate]") {
    struct {
        std::string_view field;
        std::string_view coding;
        double expected;
    } const cases[] = {
        {{}, "gzip", 0.0},  // absent field: only send what was asked for
        {"", "gzip", 0.0},  // empty field: identity only
        {"gzip", "gzip", 1.0},
        {"gzip", "br", 0.0},
        {"gzip, br", "br", 1.0},
        {"gzip;q=0.5", "gzip", 0.5},
        {"gzip; q=0.5", "gzip", 0.5},
        {"gzip ;q=0.5", "gzip", 0.5},
        {"gzip;q=1.000", "gzip", 1.0},
        {"gzip;q=0.001", "gzip", 0.001},
        {"gzip;q=0", "gzip", 0.0},
        {"gzip;foo=bar;q=0.4", "gzip", 0.4},
        {"*;q=0.3", "gzip", 0.3},
        {"*", "br", 1.0},
        {"br;q=0, *", "br", 0.0},  // the specific refusal wins over "*"
        {"br;q=0, *", "gzip", 1.0},
        {"*;q=0.3, gzip;q=0.8", "gzip", 0.8},  // specific wins in either order
        {"gzip;q=0.8, *;q=0.3", "gzip", 0.8},
        {"identity", "gzip", 0.0},
        {"identity", "identity", 1.0},
        {"deflate, compress", "gzip", 0.0},
        {" , gzip ,, ", "gzip", 1.0},
        // Malformed q values count as 0.
        {"gzip;q=abc", "gzip", 0.0},
        {"gzip;q=", "gzip", 0.0},
        {"gzip;q=1.5", "gzip", 0.0},
        {"gzip;q=-1", "gzip", 0.0},
        {"gzip;q=0.12345", "gzip", 0.0},
        {"gzip;q=0.5x", "gzip", 0.0},
        // Codings and the q parameter name are case-insensitive.
        {"GZIP", "gzip", 1.0},
        {"Gzip;q=0.7", "gZip", 0.7},
        {"gzip;Q=0.5", "gzip", 0.5},
    };
    for (const auto& c : cases) {
        INFO("Accept-Encoding [" << c.field << "] coding " << c.coding
                                 << (c.field.data() ? "" : " (absent)"));
        CHECK(coding_quality(c.field, c.coding) == Approx(c.expected));
    }
}

TEST_CASE("negotiate: choose_media_type", "[negotiate]") {
    constexpr std::string_view kBrowser =
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

    // A browser prefers HTML whatever the server's order.
    CHECK(choose_media_type(kBrowser, {"application/json", "text/html"}) == 1);
    CHECK(choose_media_type(kBrowser, {"text/html", "application/json"}) == 0);

    // */* accepts everything equally: the server's first choice.
    CHECK(choose_media_type("*/*", {"text/html", "application/json"}) == 0);
    CHECK(choose_media_type("*/*", {"application/json", "text/html"}) == 0);

    CHECK(choose_media_type("application/json", {"text/html", "application/json"}) == 1);
    CHECK(choose_media_type("text/*;q=0.5, application/json;q=0.9",
                            {"text/html", "application/json"}) == 1);
    CHECK(choose_media_type("text/*;q=0.5, application/json;q=0.9", {"text/html", "text/plain"}) ==
          0);

    // Equal quality: the more specific range wins, then the server's order.
    CHECK(choose_media_type("text/*, application/json", {"text/html", "application/json"}) == 1);
    CHECK(choose_media_type("*/*, application/json", {"text/html", "application/json"}) == 1);
    CHECK(choose_media_type("text/*, */*", {"application/json", "text/html"}) == 1);

    // The most specific matching range decides a candidate's quality.
    CHECK(choose_media_type("text/html;q=0, */*", {"text/html", "application/json"}) == 1);
    CHECK(choose_media_type("text/*;q=0.1, text/html", {"text/plain", "text/html"}) == 1);

    // Nothing acceptable.
    CHECK(choose_media_type("image/png", {"text/html", "application/json"}) == -1);
    CHECK(choose_media_type("*/*;q=0", {"text/html", "application/json"}) == -1);
    CHECK(choose_media_type("text/html;q=abc", {"text/html"}) == -1);
    CHECK(choose_media_type("*/*", {}) == -1);

    // Absent or empty: the first candidate.
    CHECK(choose_media_type({}, {"text/html", "application/json"}) == 0);
    CHECK(choose_media_type("", {"text/html", "application/json"}) == 0);
    CHECK(choose_media_type("  ", {"text/html", "application/json"}) == 0);
    CHECK(choose_media_type({}, {}) == -1);

    // Case-insensitive type and subtype; media-range parameters tolerated.
    CHECK(choose_media_type("TEXT/HTML", {"application/json", "text/html"}) == 1);
    CHECK(choose_media_type("text/html;level=1;q=0.7, application/json;q=0.6",
                            {"application/json", "text/html"}) == 1);
    // A member without a slash is not a media range.
    CHECK(choose_media_type("html", {"text/html"}) == -1);
}
