// Media types (RFC 9110 §8.3.1) and multipart/form-data bodies (RFC 7578,
// with the delimiter syntax of RFC 2046 §5.1.1): what a form POST sends when
// the page says enctype="multipart/form-data" or the client is curl -F.
#pragma once

#include <string>
#include <string_view>

#include "protocol/percent.h"

namespace uvh {

// "type/subtype" of a Content-Type value, lower-cased, parameters dropped
// ("" if malformed: no '/', an empty or non-token type or subtype, or junk
// before the first ';').
std::string media_type_essence(std::string_view content_type);

// The value of the parameter `name` (compared case-insensitively) of a
// Content-Type value, with a quoted-string unquoted and its backslash
// escapes removed. False when the parameter is absent or the value (or the
// parameter list up to it) is malformed.
bool media_type_param(std::string_view content_type, std::string_view name, std::string& value);

enum class MultipartStatus {
    Ok,         // every part was a text field; `out` holds them in order
    Malformed,  // the body does not follow RFC 7578 / RFC 2046
    FileField,  // a part is a file upload (Content-Disposition has filename=)
};

// Parses a complete multipart/form-data body into its text fields, in order,
// appended to `out`. `boundary` is the Content-Type's boundary parameter
// (1 to 70 characters, RFC 2046 §5.1.1).
//
// Delimiters are CRLF "--" boundary, strictly with CRLF (browsers and curl
// send CRLF; a bare LF is part of a value). The first delimiter may open the
// body or follow a preamble; anything after the closing delimiter (the
// epilogue) is ignored. A delimiter line may carry trailing spaces or tabs
// (RFC 2046's transport padding). Since RFC 2046 forbids the delimiter inside
// a part, an occurrence of CRLF "--" boundary that is followed by anything but
// "--", padding and CRLF is Malformed rather than guessed at.
//
// Each part needs a Content-Disposition: form-data header with a name
// parameter (token or quoted-string; backslash escapes are undone, and the
// "%22"-style escapes browsers use are kept as sent). Header names are
// case-insensitive; other headers (Content-Type, ...) are accepted and
// ignored. Parts without a name, a missing closing delimiter, header lines
// without a colon, obs-fold, or a repeated Content-Disposition: Malformed.
// A part with filename= or filename*=: FileField (the caller answers 415).
MultipartStatus parse_multipart_form(std::string_view body, std::string_view boundary,
                                     FormFields& out);

}  // namespace uvh
