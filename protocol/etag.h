// Entity tags (RFC 9110 §8.8.3): generation from a file's identity and
// version, and matching against If-Match / If-None-Match / If-Range lists.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace uvh {

// Identity and version of a stored file; a change to any field is a new
// version, so the tag changes whenever the bytes may have.
struct FileVersion {
    uint64_t inode = 0;
    uint64_t size = 0;
    int64_t mtime_sec = 0;
    int64_t mtime_nsec = 0;
};

// A strong tag such as "\"1a2b-23b-187a3c9d41e2f000\"" (quotes included).
std::string make_etag(const FileVersion& v);

// True when `list` (a field value: "*" is handled by the caller) contains
// a tag that matches `etag`. Strong comparison (RFC 9110 §8.8.3.2) never
// matches a weak tag; weak comparison ignores the W/ prefix on both sides.
// Malformed members never match.
bool etag_list_matches(std::string_view list, std::string_view etag, bool strong);

// True when the field value is exactly "*" (surrounding whitespace aside).
bool is_star(std::string_view field);

}  // namespace uvh
