// Content-Type from a file name's extension: a built-in table of the common
// web types. Text types carry "; charset=utf-8".
#pragma once

#include <string_view>
#include <vector>

namespace uvh {

// The media type for a file name (only the part after the last '.' of the
// last segment matters; comparison ignores ASCII case).
// Unknown extensions give "application/octet-stream".
std::string_view mime_type_for(std::string_view file_name);

// Every media type mime_type_for() can return, as the very views it returns
// (same data pointers): callers precompute a decision per type once.
std::vector<std::string_view> known_mime_types();

}  // namespace uvh
