// Exchanges that wait (Exchange::hold) for a compression to end, and the
// queue of compression jobs they wait for, shared by the in-memory coding
// cache and the one on disk.
#pragma once

#include <uv.h>

#include <deque>
#include <functional>
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

// A cache's compression jobs, on the loop thread: at most `max` on the
// threadpool at once (a large br at level 11 takes a second, and opening
// files must still find a thread), the rest queued in order; and the
// waiters to release once the cache's own state is consistent again. Task
// has a `uv_work_t req` whose data is the task, a `work()` run on the pool,
// and a `cache` whose `finish(Task*, bool cancelled)` runs on the loop
// afterwards (the cache makes CompressionJobs<Task> a friend). Closing drops
// the queued tasks and calls back once the running ones have ended.
template <class Task>
class CompressionJobs {
public:
    CompressionJobs() = default;
    CompressionJobs(const CompressionJobs&) = delete;
    CompressionJobs& operator=(const CompressionJobs&) = delete;
    ~CompressionJobs() {
        for (Task* t : queued_) delete t;
    }

    bool closing() const { return closing_; }
    size_t running() const { return running_; }

    void add(Task* t) { queued_.push_back(t); }

    // Starts queued tasks while fewer than `max` run; a task libuv refuses
    // ends at once, as cancelled (its cache's finish calls ended()).
    void pump(uv_loop_t* loop, size_t max) {
        while (running_ < max && !queued_.empty()) {
            Task* t = queued_.front();
            queued_.pop_front();
            ++running_;
            if (uv_queue_work(loop, &t->req, on_work, on_after) != 0) t->cache->finish(t, true);
        }
    }

    // A running task ended; its results go in place before released().
    void ended() { --running_; }

    void release_later(std::vector<Waiter>& waiters) {
        for (auto& w : waiters) to_release_.push_back(w);
        waiters.clear();
    }
    void release() { release_waiters(to_release_); }

    // After an ended task's results are in place and the queue was pumped:
    // the close callback, once the last running job has ended.
    void maybe_closed() {
        if (closing_ && running_ == 0 && closed_) std::exchange(closed_, nullptr)();
    }

    // Drops every queued task (`drop` hands its waiters to release_later),
    // releases the waiters, and calls `closed` once no job runs.
    template <class Drop>
    void close(Drop drop, std::function<void()> closed) {
        closing_ = true;
        for (Task* t : queued_) {
            drop(t);
            delete t;
        }
        queued_.clear();
        release();
        if (running_ == 0) {
            closed();
            return;
        }
        closed_ = std::move(closed);
    }

private:
    static void on_work(uv_work_t* req) { static_cast<Task*>(req->data)->work(); }
    static void on_after(uv_work_t* req, int status) {
        auto* t = static_cast<Task*>(req->data);
        t->cache->finish(t, status == UV_ECANCELED);
    }

    std::deque<Task*> queued_;
    size_t running_ = 0;
    bool closing_ = false;
    std::function<void()> closed_;
    std::vector<Waiter> to_release_;
};

}  // namespace uvh
