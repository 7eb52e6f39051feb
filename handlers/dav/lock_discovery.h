// The WebDAV lock properties (RFC 4918 §15.8 DAV:lockdiscovery, §15.10
// DAV:supportedlock) as PROPFIND and LOCK render them, read from the lock
// table (handlers/dav/lock_table.h).
#pragma once

#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "handlers/dav/lock_table.h"
#include "handlers/site.h"

namespace uvh {

// For PROPFIND (worker thread): the live locks that apply to the resource
// at the canonical path `path`, read under a shared hold of the table lock;
// nothing to do (one atomic load) when the table has no live lock.
void locks_for(const Site& site, std::string_view path, time_t now, std::vector<DavLock>& out);

// The DAV:lockdiscovery property (RFC 4918 §15.8) for `locks`, the whole
// element, and DAV:supportedlock (§15.10): exclusive and shared write locks.
void append_lockdiscovery(std::string& out, const std::vector<DavLock>& locks, time_t now);
void append_supportedlock(std::string& out);

// PROPFIND's hook (worker thread): appends DAV:lockdiscovery (with
// `lockdiscovery`) or DAV:supportedlock, whole elements, for the resource
// at the URL path `path`. With no live lock in the table, lockdiscovery is
// one atomic load; otherwise the path is made canonical (its parent opened
// beneath the root) and the table read under a shared hold.
void append_lock_properties_for(const Site& site, std::string_view path, time_t now, bool lockdiscovery,
                                std::string& out);

}  // namespace uvh
