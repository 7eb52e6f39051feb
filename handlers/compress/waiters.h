// Exchanges that wait (Exchange::hold) for a compression to end, in the
// in-memory coding cache and the one on disk.
#pragma once

#include <utility>
#include <vector>

#include "handlers/exchange.h"

namespace uvh {

using Waiter = std::pair<Exchange*, DoneFn>;

// Releases every waiter in `queue`, on the loop thread, once the cache's
// own state is consistent: releasing runs the handler, which may call back
// into the cache and queue more (those are released too).
inline void release_waiters(std::vector<Waiter>& queue) {
    while (!queue.empty()) {
        std::vector<Waiter> batch;
        batch.swap(queue);
        for (auto& [ex, fn] : batch) ex->release(fn);
    }
}

}  // namespace uvh
