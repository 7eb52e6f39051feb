// A parsed request head: views into the parser's per-request storage, valid
// until the connection moves on to the next request.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "protocol/preconditions.h"
#include "protocol/target.h"
#include "protocol/text.h"

namespace uvh {

struct Header {
    std::string_view name;
    std::string_view value;
};

// Methods the server implements: HTTP's, WebDAV's (RFC 4918 §9) and PATCH
// (resumable uploads' append). Everything else llhttp knows (TRACE,
// CONNECT, ...) is Other and answered with 501. Other stays last: metrics
// index arrays by the value.
enum class Method : uint8_t {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Mkcol,
    Propfind,
    Proppatch,
    Copy,
    Move,
    Lock,
    Unlock,
    Patch,
    Other
};

struct Request {
    Method method = Method::Other;
    std::string_view method_name;
    uint8_t http_major = 1;
    uint8_t http_minor = 1;
    std::string_view target;
    Target parsed;
    std::span<const Header> headers;

    // Frequently used fields, found once per request. A view with
    // data() == nullptr means the field was absent. List-valued fields that
    // arrived on several lines are combined with ", " (RFC 9110 §5.3).
    std::string_view host;
    int host_count = 0;
    std::string_view if_match, if_none_match, if_modified_since, if_unmodified_since;
    std::string_view if_range, range;
    std::string_view accept, accept_encoding;
    std::string_view content_type, content_range;
    std::string_view expect, authorization;
    std::string_view user_agent, referer;
    std::string_view x_request_id, x_forwarded_for, forwarded;
    std::string_view transfer_encoding;

    // Framing, from llhttp (RFC 9112 §6).
    bool chunked = false;
    bool has_content_length = false;
    uint64_t content_length = 0;
    bool keep_alive = true;

    bool http10() const { return http_major == 1 && http_minor == 0; }
    bool has_body() const { return chunked || (has_content_length && content_length > 0); }
    bool safe() const { return method == Method::Get || method == Method::Head; }

    Conditionals conditionals() const {
        return {if_match, if_none_match, if_modified_since, if_unmodified_since};
    }

    // Case-insensitive lookup of any field; the first occurrence.
    std::string_view find(std::string_view name) const;
};


}  // namespace uvh
