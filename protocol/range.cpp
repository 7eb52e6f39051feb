#include "protocol/range.h"

#include <algorithm>

#include <fmt/format.h>

#include "protocol/text.h"

namespace uvh {

namespace {

bool parse_u64(std::string_view s, uint64_t& out) {
    if (s.empty() || s.size() > 19) return false;  // 19 digits always fit
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    out = v;
    return true;
}

bool starts_with_bytes_unit(std::string_view s) {
    if (s.size() < 6) return false;
    static constexpr std::string_view kUnit = "bytes=";
    for (size_t i = 0; i < kUnit.size(); ++i) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (c != kUnit[i]) return false;
    }
    return true;
}

// Ranges closer than this are merged: a multipart part head costs about as
// much as the gap would.
constexpr uint64_t kMergeGap = 80;

}  // namespace

RangeOutcome evaluate_range(std::string_view header, uint64_t size, std::vector<ByteRange>& out) {
    out.clear();
    header = trim_ows(header);
    if (!starts_with_bytes_unit(header)) return RangeOutcome::Full;
    std::string_view set = header.substr(6);

    size_t specs = 0;
    bool satisfiable_suffix_on_empty = false;
    while (true) {
        size_t comma = set.find(',');
        std::string_view spec = trim_ows(set.substr(0, comma));
        if (!spec.empty()) {
            if (++specs > kMaxRanges) {
                out.clear();
                return RangeOutcome::Full;
            }
            size_t dash = spec.find('-');
            if (dash == std::string_view::npos) return out.clear(), RangeOutcome::Full;
            std::string_view a = spec.substr(0, dash), b = spec.substr(dash + 1);
            if (a.empty()) {
                // suffix-range: the last n bytes.
                uint64_t n = 0;
                if (!parse_u64(b, n)) return out.clear(), RangeOutcome::Full;
                if (n > 0 && size == 0) satisfiable_suffix_on_empty = true;
                if (n > 0 && size > 0) out.push_back({n >= size ? 0 : size - n, size - 1});
            } else {
                uint64_t first = 0, last = UINT64_MAX;
                if (!parse_u64(a, first)) return out.clear(), RangeOutcome::Full;
                if (!b.empty()) {
                    if (!parse_u64(b, last)) return out.clear(), RangeOutcome::Full;
                    if (last < first) return out.clear(), RangeOutcome::Full;
                }
                if (first < size) out.push_back({first, std::min(last, size - 1)});
            }
        }
        if (comma == std::string_view::npos) break;
        set = set.substr(comma + 1);
    }
    if (specs == 0) return RangeOutcome::Full;
    if (out.empty()) {
        // A zero-length representation has no bytes to send in a 206; a
        // non-zero suffix is still "satisfiable", so send the empty 200.
        return satisfiable_suffix_on_empty ? RangeOutcome::Full : RangeOutcome::Unsatisfiable;
    }

    std::sort(out.begin(), out.end(),
              [](const ByteRange& x, const ByteRange& y) { return x.first < y.first; });
    size_t w = 0;
    for (size_t i = 1; i < out.size(); ++i) {
        ByteRange& cur = out[w];
        if (out[i].first <= cur.last + 1 + kMergeGap) {
            cur.last = std::max(cur.last, out[i].last);
        } else {
            out[++w] = out[i];
        }
    }
    out.resize(w + 1);
    return RangeOutcome::Partial;
}

std::string content_range(const ByteRange& r, uint64_t size) {
    return fmt::format("bytes {}-{}/{}", r.first, r.last, size);
}

std::string unsatisfied_range(uint64_t size) { return fmt::format("bytes */{}", size); }

void layout_multipart(const std::vector<ByteRange>& ranges, std::string_view part_type, uint64_t size,
                      std::string_view boundary, MultipartLayout& out) {
    out.boundary.assign(boundary);
    out.content_type = fmt::format("multipart/byteranges; boundary={}", boundary);
    out.text.clear();
    out.parts.clear();
    out.content_length = 0;
    for (const ByteRange& r : ranges) {
        size_t off = out.text.size();
        fmt::format_to(std::back_inserter(out.text),
                       "\r\n--{}\r\nContent-Type: {}\r\nContent-Range: bytes {}-{}/{}\r\n\r\n",
                       boundary, part_type, r.first, r.last, size);
        out.parts.push_back({off, out.text.size() - off, r});
        out.content_length += (out.text.size() - off) + r.length();
    }
    out.tail_offset = out.text.size();
    fmt::format_to(std::back_inserter(out.text), "\r\n--{}--\r\n", boundary);
    out.tail_length = out.text.size() - out.tail_offset;
    out.content_length += out.tail_length;
}

}  // namespace uvh
