// Counters for GET /metrics (Prometheus text format 0.0.4). Updated on the
// loop thread by the connection layer and the services; rendered by the
// metrics handler. One process, one set: with --workers each worker
// reports its own (scrape them through their own ports or sum them).
#pragma once

#include <cstdint>
#include <string>

#include "protocol/request.h"

namespace uvh {

class Metrics {
public:
    static constexpr int kMethods = static_cast<int>(Method::Other) + 1;  // Method enum values
    static constexpr int kClasses = 5;        // 1xx..5xx
    static constexpr int kBuckets = 16;       // duration histogram, plus +Inf

    void request_done(Method m, int status, uint64_t duration_us) {
        int cls = status / 100 - 1;
        if (cls < 0 || cls >= kClasses) cls = kClasses - 1;
        ++requests_[static_cast<int>(m)][cls];
        int b = 0;
        while (b < kBuckets && duration_us > kBucketUs[b]) ++b;
        ++duration_buckets_[b];
        duration_sum_us_ += duration_us;
        ++duration_count_;
    }

    // Plain counters and gauges the owners update directly.
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;
    uint64_t connections_accepted = 0;
    uint64_t connections_refused = 0;  // over --max-connections
    int64_t open_connections = 0;
    // The descriptor budget (core/descriptors.cpp): the open-files limit,
    // what is kept for the process and short-lived threadpool opens, the
    // idle connections that fit, descriptors held beyond the connections'
    // sockets (sendfile duplicates, response files, open-file-cache
    // entries), responses waiting for descriptors now, and those that
    // waited or were answered 503 for want of them.
    int64_t descriptors_limit = 0, descriptors_reserved = 0, connection_capacity = 0;
    int64_t descriptors_held = 0;
    int64_t responses_waiting_descriptors = 0;
    uint64_t descriptor_waits = 0, descriptor_refusals = 0;
    int64_t uploads_in_flight = 0;
    int64_t threadpool_jobs = 0;       // queued or running on the threadpool
    int64_t send_boosted = 0;          // connections with --send-buffer-fast now
    uint64_t send_boosts = 0;          // times a connection got it
    uint64_t jobs_cancelled = 0;       // of clients that went away before their job ran
    int64_t listings_running = 0;      // listing jobs holding a slot
    int64_t listings_waiting = 0;      // listing jobs waiting for a slot
    uint64_t records_appended = 0;
    // Resumable uploads (handlers/uploads/): created, finished at their
    // target, appends after an interrupted request, removed by the expiry
    // sweep, and bytes appended.
    uint64_t uploads_started = 0, uploads_completed = 0, uploads_resumed = 0, uploads_expired = 0;
    uint64_t upload_bytes = 0;
    uint64_t cache_hits = 0, cache_misses = 0;
    uint64_t cache_bytes = 0;
    // The coding cache (handlers/compress/): compressions run, by coding
    // (gzip, br, zstd), hits, memory held.
    uint64_t compressions[3] = {};
    uint64_t coding_cache_hits = 0;
    uint64_t coding_cache_bytes = 0;
    // The coding cache on disk (--compress-cache-dir): lookups that found an
    // entry or not, entries written and their coded bytes, evictions, and
    // the entries' size at the last scan of the directory.
    bool disk_codings = false;
    uint64_t disk_hits = 0, disk_misses = 0, disk_compressions = 0, disk_written = 0, disk_evictions = 0;
    uint64_t disk_bytes = 0, disk_max_bytes = 0;
    uint64_t log_lines_dropped = 0;
    bool ready = true;                 // false while draining

    // The record store, either backend: operations by kind (append, get,
    // put, delete, list) and the status the store answered.
    static constexpr int kRecordKinds = 5;
    static constexpr int kRecordStatuses = 10;  // 200 201 204 400 404 409 413 503 507 other
    void record_op(int kind, int status) {
        static constexpr int codes[kRecordStatuses - 1] = {200, 201, 204, 400, 404, 409, 413, 503, 507};
        int i = 0;
        while (i < kRecordStatuses - 1 && codes[i] != status) ++i;
        if (kind >= 0 && kind < kRecordKinds) ++record_ops_[kind][i];
    }

    // PostgreSQL (--records): round trips (query sent to its last result),
    // the pool, reconnections.
    bool records_db = false;
    int64_t db_pool_size = 0;
    int64_t db_pool_in_use = 0;
    int64_t db_up = 0;               // connections ready (idle or busy)
    uint64_t db_reconnects = 0;      // connections re-established after one was lost or refused
    void db_roundtrip(uint64_t us) {
        int b = 0;
        while (b < kBuckets && us > kBucketUs[b]) ++b;
        ++db_buckets_[b];
        db_sum_us_ += us;
        ++db_count_;
    }

    void render(std::string& out) const;

    static constexpr uint64_t kBucketUs[kBuckets] = {100,    250,    500,    1000,    2500,    5000,
                                                     10000,  25000,  50000,  100000,  250000,  500000,
                                                     1000000, 2500000, 5000000, 10000000};

private:
    uint64_t requests_[kMethods][kClasses] = {};
    uint64_t duration_buckets_[kBuckets + 1] = {};
    uint64_t duration_sum_us_ = 0;
    uint64_t duration_count_ = 0;
    uint64_t record_ops_[kRecordKinds][kRecordStatuses] = {};
    uint64_t db_buckets_[kBuckets + 1] = {};
    uint64_t db_sum_us_ = 0;
    uint64_t db_count_ = 0;
};

}  // namespace uvh
