#include "protocol/etag.h"

#include <fmt/format.h>

#include "protocol/text.h"

namespace uvh {

namespace {

// etagc = "!" / %x23-7E / obs-text
bool valid_etagc(unsigned char c) { return c == 0x21 || (c >= 0x23 && c != 0x7f); }

struct ParsedTag {
    bool weak = false;
    std::string_view opaque;  // with quotes
    bool ok = false;
};

ParsedTag parse_tag(std::string_view s) {
    ParsedTag t;
    if (s.size() >= 2 && s[0] == 'W' && s[1] == '/') {
        t.weak = true;
        s.remove_prefix(2);
    }
    if (s.size() < 2 || s.front() != '"' || s.back() != '"') return t;
    for (size_t i = 1; i + 1 < s.size(); ++i)
        if (!valid_etagc(static_cast<unsigned char>(s[i]))) return t;
    t.opaque = s;
    t.ok = true;
    return t;
}

}  // namespace

std::string make_etag(const FileVersion& v) {
    uint64_t ns = static_cast<uint64_t>(v.mtime_sec) * 1000000000ull + static_cast<uint64_t>(v.mtime_nsec);
    return fmt::format("\"{:x}-{:x}-{:x}\"", v.inode, v.size, ns);
}

bool etag_list_matches(std::string_view list, std::string_view etag, bool strong) {
    ParsedTag mine = parse_tag(etag);
    if (!mine.ok) return false;
    if (strong && mine.weak) return false;
    // Walk the list by hand: a quoted tag may itself contain a comma.
    size_t i = 0;
    while (i < list.size()) {
        while (i < list.size() && (list[i] == ' ' || list[i] == '\t' || list[i] == ',')) ++i;
        if (i >= list.size()) break;
        size_t start = i;
        if (list.compare(i, 2, "W/") == 0) i += 2;
        if (i < list.size() && list[i] == '"') {
            size_t close = list.find('"', i + 1);
            if (close == std::string_view::npos) return false;
            i = close + 1;
        } else {
            // Not an entity-tag: skip to the next comma.
            while (i < list.size() && list[i] != ',') ++i;
        }
        ParsedTag theirs = parse_tag(trim_ows(list.substr(start, i - start)));
        if (!theirs.ok) continue;
        if (strong && theirs.weak) continue;
        if (theirs.opaque == mine.opaque) return true;
    }
    return false;
}

bool is_star(std::string_view field) { return trim_ows(field) == "*"; }

}  // namespace uvh
