// Content-Type from a file name's extension: a built-in table of the common
// web types. Text types carry "; charset=utf-8".
#pragma once

#include <string_view>

namespace uvh {

// The media type for a file name (only the part after the last '.' of the
// last segment matters; comparison ignores ASCII case).
// Unknown extensions give "application/octet-stream".
std::string_view mime_type_for(std::string_view file_name);

}  // namespace uvh
