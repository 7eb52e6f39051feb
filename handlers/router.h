// Routing a complete request head to the handler for its method and path,
// through the route table (handlers/routes.h).
#pragma once

#include <string_view>

#include "handlers/exchange.h"

namespace uvh {

// Called once per request, after the connection validated the head (version,
// Host, framing, path): finds the route, checks the method (405 with the
// route's Allow), applies the write policy (--read-only 405, token 401,
// Host 421, Origin 403) to writes, applies the body policy, and runs the
// handler, which answers through `ex`, at once or later.
void dispatch(Exchange& ex);

// The Allow value for ordinary resources (files and directories) under
// this site's configuration, derived from the route table.
std::string_view allowed_methods(const Site& site);

}  // namespace uvh
