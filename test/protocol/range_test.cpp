// Tests for protocol/range.cpp: Range evaluation (RFC 9110 §14.2),
// Content-Range values and the multipart/byteranges layout (§14.6).
#include "protocol/range.h"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace uvh;

namespace {

using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;

const char* name_of(RangeOutcome o) {
    switch (o) {
    case RangeOutcome::Full: return "Full";
    case RangeOutcome::Partial: return "Partial";
    case RangeOutcome::Unsatisfiable: return "Unsatisfiable";
    }
    return "?";
}

Ranges pairs(const std::vector<ByteRange>& v) {
    Ranges out;
    for (const ByteRange& r : v) out.emplace_back(r.first, r.last);
    return out;
}

struct Case {
    const char* name;
    std::string_view header;
    uint64_t size;
    RangeOutcome outcome;
    Ranges ranges;  // expected when Partial; empty otherwise
};

void run(const std::vector<Case>& cases) {
    for (const Case& c : cases) {
        std::vector<ByteRange> out{{1, 2}};  // stale contents must be cleared
        RangeOutcome got = evaluate_range(c.header, c.size, out);
        INFO(c.name << ": [" << c.header << "] size " << c.size << " -> " << name_of(got));
        CHECK(got == c.outcome);
        CHECK(pairs(out) == c.ranges);
    }
}

std::string many_ranges(int n, uint64_t stride) {
    std::string h = "bytes=";
    for (int i = 0; i < n; ++i) {
        if (i) h += ',';
        h += std::to_string(i * stride) + "-" + std::to_string(i * stride);
    }
    return h;
}

}  // namespace

TEST_CASE("range: single ranges against a 1000-byte file", "[range]") {
    run({
        {"first byte", "bytes=0-0", 1000, RangeOutcome::Partial, {{0, 0}}},
        {"first 100 bytes", "bytes=0-99", 1000, RangeOutcome::Partial, {{0, 99}}},
        {"last byte", "bytes=999-999", 1000, RangeOutcome::Partial, {{999, 999}}},
        {"suffix of 100", "bytes=-100", 1000, RangeOutcome::Partial, {{900, 999}}},
        {"suffix of exactly the length", "bytes=-1000", 1000, RangeOutcome::Partial, {{0, 999}}},
        {"open-ended", "bytes=900-", 1000, RangeOutcome::Partial, {{900, 999}}},
        {"open-ended from 0", "bytes=0-", 1000, RangeOutcome::Partial, {{0, 999}}},
        {"last-pos past the end is clipped", "bytes=990-2000", 1000, RangeOutcome::Partial,
         {{990, 999}}},
        {"19-digit last-pos is clipped", "bytes=0-9999999999999999999", 1000,
         RangeOutcome::Partial, {{0, 999}}},
        {"uppercase unit", "BYTES=0-1", 1000, RangeOutcome::Partial, {{0, 1}}},
        {"mixed-case unit", "Bytes=0-1", 1000, RangeOutcome::Partial, {{0, 1}}},
        {"whitespace around the field value", "  bytes=0-1\t", 1000, RangeOutcome::Partial,
         {{0, 1}}},
    });
}

TEST_CASE("range: a suffix longer than the file covers the whole file", "[range]") {
    run({{"suffix of 2000", "bytes=-2000", 1000, RangeOutcome::Partial, {{0, 999}}}});
}

TEST_CASE("range: unsatisfiable ranges give 416", "[range]") {
    run({
        {"zero-length suffix", "bytes=-0", 1000, RangeOutcome::Unsatisfiable, {}},
        {"first-pos at the length", "bytes=1000-", 1000, RangeOutcome::Unsatisfiable, {}},
        {"whole range past the end", "bytes=1000-2000", 1000, RangeOutcome::Unsatisfiable, {}},
        {"several, none satisfiable", "bytes=1000-1001, 2000-, -0", 1000,
         RangeOutcome::Unsatisfiable, {}},
        {"empty file, first byte", "bytes=0-0", 0, RangeOutcome::Unsatisfiable, {}},
        {"empty file, zero suffix", "bytes=-0", 0, RangeOutcome::Unsatisfiable, {}},
    });
}

TEST_CASE("range: invalid or foreign Range values are ignored (200)", "[range]") {
    run({
        {"last before first", "bytes=5-1", 1000, RangeOutcome::Full, {}},
        {"other unit", "items=0-1", 1000, RangeOutcome::Full, {}},
        {"no dash", "bytes=abc", 1000, RangeOutcome::Full, {}},
        {"letters", "bytes=a-b", 1000, RangeOutcome::Full, {}},
        {"empty set", "bytes=", 1000, RangeOutcome::Full, {}},
        {"only commas", "bytes=, ,", 1000, RangeOutcome::Full, {}},
        {"bare dash", "bytes=-", 1000, RangeOutcome::Full, {}},
        {"two dashes", "bytes=1-2-3", 1000, RangeOutcome::Full, {}},
        {"negative", "bytes=--5", 1000, RangeOutcome::Full, {}},
        {"space inside a spec", "bytes=0 -1", 1000, RangeOutcome::Full, {}},
        {"no unit", "0-1", 1000, RangeOutcome::Full, {}},
        {"space before '='", "bytes =0-1", 1000, RangeOutcome::Full, {}},
        {"one bad spec spoils the set", "bytes=0-1, x", 1000, RangeOutcome::Full, {}},
        {"20-digit last-pos", "bytes=0-99999999999999999999", 1000, RangeOutcome::Full, {}},
        {"20-digit first-pos", "bytes=99999999999999999999-", 1000, RangeOutcome::Full, {}},
        {"20-digit suffix", "bytes=-99999999999999999999", 1000, RangeOutcome::Full, {}},
        {"empty field", "", 1000, RangeOutcome::Full, {}},
        {"empty file, non-zero suffix: send the empty 200", "bytes=-5", 0, RangeOutcome::Full,
         {}},
    });
}

TEST_CASE("range: several ranges are sorted and coalesced", "[range]") {
    run({
        {"spaces around commas", "bytes=0-9 , 500-599", 1000, RangeOutcome::Partial,
         {{0, 9}, {500, 599}}},
        {"tabs and empty members", "bytes=\t0-9,,\t500-599 ,", 1000, RangeOutcome::Partial,
         {{0, 9}, {500, 599}}},
        {"overlapping ranges coalesced", "bytes=0-10,5-20", 1000, RangeOutcome::Partial,
         {{0, 20}}},
        {"contained range absorbed", "bytes=0-100,10-20", 1000, RangeOutcome::Partial,
         {{0, 100}}},
        {"adjacent ranges merged", "bytes=0-9,10-19", 1000, RangeOutcome::Partial, {{0, 19}}},
        {"gap of 79 bytes merged", "bytes=0-9,89-99", 1000, RangeOutcome::Partial, {{0, 99}}},
        {"gap of exactly 80 bytes merged", "bytes=0-9,90-99", 1000, RangeOutcome::Partial,
         {{0, 99}}},
        {"gap of 81 bytes kept apart", "bytes=0-9,91-99", 1000, RangeOutcome::Partial,
         {{0, 9}, {91, 99}}},
        {"unsorted input sorted", "bytes=500-599,0-9,200-209", 1000, RangeOutcome::Partial,
         {{0, 9}, {200, 209}, {500, 599}}},
        {"suffix and prefix", "bytes=-10,0-9", 1000, RangeOutcome::Partial,
         {{0, 9}, {990, 999}}},
        {"unsatisfiable members dropped", "bytes=2000-3000, 0-0", 1000, RangeOutcome::Partial,
         {{0, 0}}},
        {"merging cascades", "bytes=0-9,50-59,100-109,150-159", 1000, RangeOutcome::Partial,
         {{0, 159}}},
    });
}

TEST_CASE("range: at most 16 ranges are honoured", "[range]") {
    // Ranges 200 bytes apart never merge, so all 16 come back.
    std::vector<ByteRange> out;
    REQUIRE(evaluate_range(many_ranges(16, 200), 4000, out) == RangeOutcome::Partial);
    REQUIRE(out.size() == 16);
    for (size_t i = 0; i < out.size(); ++i) {
        CHECK(out[i].first == i * 200);
        CHECK(out[i].last == i * 200);
    }

    CHECK(evaluate_range(many_ranges(17, 200), 4000, out) == RangeOutcome::Full);
    CHECK(out.empty());

    // The limit counts ranges before coalescing: 17 overlapping ranges are
    // refused even though they would merge into one.
    CHECK(evaluate_range(many_ranges(17, 1), 4000, out) == RangeOutcome::Full);
    CHECK(out.empty());
}

TEST_CASE("range: ByteRange length is inclusive", "[range]") {
    CHECK(ByteRange{0, 0}.length() == 1);
    CHECK(ByteRange{0, 99}.length() == 100);
    CHECK(ByteRange{900, 999}.length() == 100);
}

TEST_CASE("range: content_range and unsatisfied_range strings", "[range]") {
    CHECK(content_range({0, 99}, 1234) == "bytes 0-99/1234");
    CHECK(content_range({0, 0}, 1) == "bytes 0-0/1");
    CHECK(content_range({5, 18446744073709551614ull}, 18446744073709551615ull) ==
          "bytes 5-18446744073709551614/18446744073709551615");
    CHECK(unsatisfied_range(1234) == "bytes */1234");
    CHECK(unsatisfied_range(0) == "bytes */0");
}

TEST_CASE("range: layout_multipart lays out heads, ranges and the closing delimiter",
          "[range]") {
    const uint64_t size = 1000;
    std::string file(size, '\0');
    for (size_t i = 0; i < size; ++i) file[i] = static_cast<char>('a' + i % 26);
    const std::vector<ByteRange> ranges{{0, 9}, {500, 599}, {990, 999}};
    const std::string_view type = "text/plain; charset=utf-8";

    MultipartLayout m;
    layout_multipart(ranges, type, size, "BOUNDARY", m);

    CHECK(m.boundary == "BOUNDARY");
    CHECK(m.content_type == "multipart/byteranges; boundary=BOUNDARY");
    REQUIRE(m.parts.size() == ranges.size());

    // The body as a client would receive it, built independently.
    std::string expected;
    for (const ByteRange& r : ranges) {
        expected += "\r\n--BOUNDARY\r\n";
        expected += "Content-Type: text/plain; charset=utf-8\r\n";
        expected += "Content-Range: bytes " + std::to_string(r.first) + "-" +
                    std::to_string(r.last) + "/1000\r\n";
        expected += "\r\n";
        expected += file.substr(r.first, r.length());
    }
    expected += "\r\n--BOUNDARY--\r\n";

    // The body as the server would send it from the layout.
    std::string sent;
    size_t expect_offset = 0;
    for (size_t i = 0; i < m.parts.size(); ++i) {
        const auto& p = m.parts[i];
        INFO("part " << i);
        CHECK(p.head_offset == expect_offset);
        CHECK(p.range.first == ranges[i].first);
        CHECK(p.range.last == ranges[i].last);
        std::string_view head = std::string_view(m.text).substr(p.head_offset, p.head_length);
        CHECK(head.find("Content-Range: " + content_range(ranges[i], size) + "\r\n") !=
              std::string_view::npos);
        CHECK(head.find("Content-Type: text/plain; charset=utf-8\r\n") != std::string_view::npos);
        CHECK(head.substr(0, 14) == "\r\n--BOUNDARY\r\n");
        CHECK(head.substr(head.size() - 4) == "\r\n\r\n");
        sent.append(head);
        sent.append(file, p.range.first, p.range.length());
        expect_offset = p.head_offset + p.head_length;
    }
    CHECK(m.tail_offset == expect_offset);
    CHECK(m.tail_offset + m.tail_length == m.text.size());
    CHECK(m.text.substr(m.tail_offset, m.tail_length) == "\r\n--BOUNDARY--\r\n");
    sent.append(m.text, m.tail_offset, m.tail_length);

    CHECK(sent == expected);
    CHECK(m.content_length == expected.size());
}

TEST_CASE("range: layout_multipart can be reused for another response", "[range]") {
    MultipartLayout m;
    layout_multipart({{0, 9}, {100, 199}, {500, 599}}, "image/png", 1000, "first", m);
    layout_multipart({{0, 0}, {200, 200}}, "application/octet-stream", 201, "xyz", m);

    REQUIRE(m.parts.size() == 2);
    CHECK(m.boundary == "xyz");
    CHECK(m.content_type == "multipart/byteranges; boundary=xyz");
    CHECK(m.text.find("first") == std::string::npos);
    const std::string head0 =
        "\r\n--xyz\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-0/201\r\n\r\n";
    const std::string head1 =
        "\r\n--xyz\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 200-200/201\r\n\r\n";
    const std::string tail = "\r\n--xyz--\r\n";
    CHECK(m.text == head0 + head1 + tail);
    CHECK(m.content_length == head0.size() + 1 + head1.size() + 1 + tail.size());
}
