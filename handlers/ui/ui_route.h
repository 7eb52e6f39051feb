// The route of the listing page's assets (handlers/ui/ui_assets.h):
// GET and HEAD of /.uvhttpd-ui/NAME.HASH.EXT, before the dotfile rule.
#pragma once

#include <string_view>
#include <vector>

#include "handlers/routes.h"

namespace uvh {

// What the listing page tells its script about writes (<body data-writes>):
// "closed" with --read-only, or when a write from this page would be
// refused for its Host (no token and a name not allowed: 421); "token"
// when writes need --write-token; "open" otherwise. The script shows the
// write controls only for "open", or for "token" once a token is accepted.
std::string_view page_writes(const Site& site, const Request& req);

void append_ui_route(std::vector<Route>& table);

}  // namespace uvh
