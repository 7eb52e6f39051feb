// HTTP status codes: reason phrases and the preformatted status lines the
// response writer copies verbatim (RFC 9110 §15, RFC 9112 §4).
#pragma once

#include <string_view>

namespace uvh {

// The reason phrase for a status code ("Not Found"); "Unknown" for codes the
// server never sends.
std::string_view reason_phrase(int status);

// "HTTP/1.1 404 Not Found\r\n", built once at start-up for every code the
// server can send, so the hot path copies bytes instead of formatting.
std::string_view status_line(int status);

// RFC 9110 §6.4.1: 1xx, 204 and 304 responses never carry content.
constexpr bool status_allows_body(int status) {
    return !(status < 200 || status == 204 || status == 304);
}

}  // namespace uvh
