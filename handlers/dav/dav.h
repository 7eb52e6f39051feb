// The WebDAV methods (RFC 4918) other than LOCK and UNLOCK: PROPFIND,
// PROPPATCH, COPY and MOVE. DELETE of a collection is handlers/write_ops
// (it uses remove_tree from handlers/dav/tree_ops.h).
#pragma once

#include "handlers/exchange.h"

namespace uvh {

// PROPFIND (RFC 4918 §9.1): 207 Multi-Status with the live properties,
// dead properties, allprop / propname / named properties; Depth 0 and 1,
// infinity only with --dav-depth-infinity (403 propfind-finite-depth
// otherwise). A collection's members are streamed a window at a time.
void handle_propfind(Exchange& ex);

// PROPPATCH (RFC 4918 §9.2): sets and removes dead properties, all or
// nothing; 207 with 200 for each property, or 403/409/424 for all.
void handle_proppatch(Exchange& ex);

// COPY (§9.8) and MOVE (§9.9) to the Destination on this server.
void handle_copy(Exchange& ex);
void handle_move(Exchange& ex);

}  // namespace uvh
