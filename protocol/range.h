// Range requests (RFC 9110 §14): parsing a byte Range header against a
// representation's length, coalescing, and laying out multipart/byteranges.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace uvh {

struct ByteRange {
    uint64_t first = 0;
    uint64_t last = 0;  // inclusive
    uint64_t length() const { return last - first + 1; }
};

enum class RangeOutcome {
    Full,           // ignore the Range: 200 with the whole representation
    Partial,        // 206 with the ranges in `out` (sorted, coalesced)
    Unsatisfiable,  // 416 with Content-Range: bytes */LENGTH
};

// More ranges than this (before coalescing) are answered with the full 200,
// which defuses the many-small-ranges and overlapping-ranges attacks.
constexpr size_t kMaxRanges = 16;

// Evaluates a Range field value. Unknown units and malformed values are
// ignored (Full), as RFC 9110 §14.2 allows. Satisfiable ranges are clipped
// to the length, sorted, and ranges that overlap or lie within 80 bytes of
// each other (less than a part header) are merged.
RangeOutcome evaluate_range(std::string_view header, uint64_t size, std::vector<ByteRange>& out);

// "bytes 0-99/1234"
std::string content_range(const ByteRange& r, uint64_t size);
// "bytes */1234"
std::string unsatisfied_range(uint64_t size);

// The layout of a multipart/byteranges body (RFC 9110 §14.6): part heads and
// the closing delimiter live in one string; the file bytes between them are
// sent straight from the file, so the body is never assembled in memory.
struct MultipartLayout {
    std::string boundary;
    std::string content_type;  // "multipart/byteranges; boundary=..."
    std::string text;          // all part heads, then the closing delimiter
    struct Part {
        size_t head_offset, head_length;  // into text
        ByteRange range;
    };
    std::vector<Part> parts;
    size_t tail_offset = 0, tail_length = 0;
    uint64_t content_length = 0;
};

void layout_multipart(const std::vector<ByteRange>& ranges, std::string_view part_type, uint64_t size,
                      std::string_view boundary, MultipartLayout& out);

}  // namespace uvh
