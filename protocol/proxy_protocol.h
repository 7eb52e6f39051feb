// HAProxy's PROXY protocol, versions 1 (text) and 2 (binary): the header a
// load balancer sends before the HTTP bytes to say who the client is.
#pragma once

#include <cstddef>
#include <string_view>

#include "protocol/address.h"

namespace uvh {

enum class ProxyParse { NeedMore, Ok, Invalid };

// Parses a header at the start of `data`. On Ok, `consumed` is its length
// and `source` the client's address; `local` is set for v2 LOCAL and v1
// UNKNOWN (health checks from the proxy itself), in which case the TCP peer
// stands.
ProxyParse parse_proxy_header(std::string_view data, PeerAddress& source, bool& local, size_t& consumed);

}  // namespace uvh
