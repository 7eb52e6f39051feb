// The checks on a complete request head before it is dispatched: the HTTP
// version, the Host rules, Transfer-Encoding, the request-target and its
// path, and Expect. Pure: no sockets and no connection state.
#pragma once

#include <string>
#include <string_view>

#include "protocol/request.h"

namespace uvh {

struct HeadCheck {
    int status = 0;           // 0: the head is acceptable; else the error status
    std::string_view reason;  // why, for the one-line error body (static text)
    // The client asked for 100 Continue before sending a body it has
    // (RFC 9110 §10.1.1); false for HTTP/1.0 and for bodiless requests.
    bool expect_continue = false;
};

// Checks `r` and, when its target is acceptable, writes the normalised path
// into `path` ("*" for asterisk-form; see normalize_path in protocol/target.h).
// A rejection answers with `status` and `Connection: close`.
HeadCheck check_request_head(const Request& r, std::string& path);

}  // namespace uvh
