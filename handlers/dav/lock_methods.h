// The LOCK (RFC 4918 §9.10) and UNLOCK (§9.11) methods: exclusive and
// shared write locks, Depth 0 and infinity, refresh, lock-null creation.
// They change the lock table (handlers/dav/lock_table.h) under the name's
// lock and the table's; writes check it through handlers/dav/dav_locks.h.
#pragma once

#include "handlers/exchange.h"

namespace uvh {

void handle_lock(Exchange& ex);
void handle_unlock(Exchange& ex);

}  // namespace uvh
