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

namespace {

// The coding choose_coding() picks, as its name ("" identity, "406" none).
std::string_view pick(std::string_view field, uint8_t available) {
    Coding c = Coding::Identity;
    if (!choose_coding(parse_accept_encoding(field), available, c)) return "406";
    return coding_name(c);
}

constexpr uint8_t kAll = coding_bit(Coding::Gzip) | coding_bit(Coding::Br) | coding_bit(Coding::Zstd);
constexpr uint8_t kGzipOnly = coding_bit(Coding::Gzip);

}  // namespace

TEST_CASE("negotiate: parse_accept_encoding qualities", "[negotiate]") {
    AcceptedCodings a = parse_accept_encoding({});
    CHECK(a.q[0] == 1.0);
    CHECK(a.accepted_mask() == 0);  // absent: identity only
    a = parse_accept_encoding("");
    CHECK(a.q[0] > 0);
    CHECK(a.accepted_mask() == 0);
    CHECK(parse_accept_encoding("gzip").q[0] > 0);  // identity stays acceptable, least preferred
    CHECK(parse_accept_encoding("gzip").q[0] < 0.001);
    a = parse_accept_encoding("gzip, deflate, br, zstd");
    CHECK(a.accepted_mask() == kAll);
    a = parse_accept_encoding("x-gzip");
    CHECK(a.accepts(Coding::Gzip));
    a = parse_accept_encoding("*;q=0.2, br;q=0");
    CHECK(a.q[1] == Approx(0.2));
    CHECK(a.q[2] == 0.0);
    CHECK(a.q[3] == Approx(0.2));
    CHECK(a.q[0] > 0);  // "*" above 0 leaves identity acceptable
    a = parse_accept_encoding("*;q=0");
    CHECK(a.q[0] == 0.0);  // "*;q=0" without an identity entry refuses identity
    a = parse_accept_encoding("*;q=0, identity;q=0.5");
    CHECK(a.q[0] == Approx(0.5));
    a = parse_accept_encoding("identity;q=0, gzip");
    CHECK(a.q[0] == 0.0);
    a = parse_accept_encoding("GZIP;Q=0.7, Zstd");
    CHECK(a.q[1] == Approx(0.7));
    CHECK(a.q[3] == 1.0);
    a = parse_accept_encoding("gzip;q=2, br;q=abc");  // malformed q: refused, never chosen by accident
    CHECK(a.q[1] == 0.0);
    CHECK(a.q[2] == 0.0);
}

TEST_CASE("negotiate: choose_coding by quality then zstd, br, gzip", "[negotiate]") {
    CHECK(pick({}, kAll) == "");
    CHECK(pick("", kAll) == "");
    CHECK(pick("gzip", kAll) == "gzip");
    CHECK(pick("gzip, br", kAll) == "br");
    CHECK(pick("gzip, br, zstd", kAll) == "zstd");
    CHECK(pick("zstd, br, gzip", kAll) == "zstd");  // the client's order is not a preference
    CHECK(pick("gzip;q=1, br;q=0.9, zstd;q=0.8", kAll) == "gzip");
    CHECK(pick("gzip;q=0.5, br;q=0.9", kAll) == "br");
    CHECK(pick("*", kAll) == "zstd");
    CHECK(pick("*, zstd;q=0", kAll) == "br");
    CHECK(pick("br, zstd", kGzipOnly) == "");     // nothing acceptable available: identity
    CHECK(pick("gzip;q=0", kAll) == "");
    CHECK(pick("gzip;q=0.1", kAll) == "gzip");  // any acceptable coding beats an unnamed identity
    CHECK(pick("gzip;q=0.5, identity", kAll) == "");  // identity at q=1 beats gzip at 0.5
    CHECK(pick("gzip, identity", kAll) == "gzip");    // a tie goes to the coding
    CHECK(pick("identity;q=0, gzip", kAll) == "gzip");
    CHECK(pick("identity;q=0, br", kGzipOnly) == "406");
    CHECK(pick("*;q=0", kAll) == "406");
    CHECK(pick("identity;q=0", 0) == "406");
    CHECK(pick("identity;q=0, *", 0) == "406");
    CHECK(pick("*;q=0, identity", 0) == "");
}

TEST_CASE("negotiate: coding names and suffixes", "[negotiate]") {
    CHECK(coding_name(Coding::Identity).empty());
    CHECK(coding_suffix(Coding::Gzip) == ".gz");
    CHECK(coding_suffix(Coding::Br) == ".br");
    CHECK(coding_suffix(Coding::Zstd) == ".zst");
}
