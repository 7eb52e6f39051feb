// Routing a complete request head to the handler for its method and path.
#pragma once

#include <string_view>

#include "handlers/exchange.h"

namespace uvh {

// Called once per request, after the connection validated the head (version,
// Host, framing, path). The handler answers through `ex`, at once or later.
void dispatch(Exchange& ex);

// The Allow value for ordinary resources under this site's configuration.
std::string_view allowed_methods(const Site& site);

}  // namespace uvh
