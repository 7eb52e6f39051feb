#include "handlers/metrics.h"

#include <fmt/format.h>

#include "handlers/routes.h"

namespace uvh {

namespace {

// The tokens of the Method enum, in its order ("other" for Method::Other).
const char* method_name(int m) {
    std::string_view t = method_token(static_cast<Method>(m));
    return t.empty() ? "other" : t.data();
}

void metric(std::string& out, const char* name, const char* type, const char* help) {
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

}  // namespace

void Metrics::render(std::string& out) const {
    out.clear();
    metric(out, "uvhttpd_requests_total", "counter", "Requests answered, by method and status class.");
    for (int m = 0; m < kMethods; ++m)
        for (int c = 0; c < kClasses; ++c)
            if (requests_[m][c] || m == 0)
                fmt::format_to(std::back_inserter(out), "uvhttpd_requests_total{{method=\"{}\",status=\"{}xx\"}} {}\n",
                               method_name(m), c + 1, requests_[m][c]);

    metric(out, "uvhttpd_request_duration_seconds", "histogram",
           "Time from a complete request head to the last response byte queued.");
    uint64_t cumulative = 0;
    for (int b = 0; b < kBuckets; ++b) {
        cumulative += duration_buckets_[b];
        fmt::format_to(std::back_inserter(out), "uvhttpd_request_duration_seconds_bucket{{le=\"{}\"}} {}\n",
                       static_cast<double>(kBucketUs[b]) / 1e6, cumulative);
    }
    cumulative += duration_buckets_[kBuckets];
    fmt::format_to(std::back_inserter(out), "uvhttpd_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\n", cumulative);
    fmt::format_to(std::back_inserter(out), "uvhttpd_request_duration_seconds_sum {}\n",
                   static_cast<double>(duration_sum_us_) / 1e6);
    fmt::format_to(std::back_inserter(out), "uvhttpd_request_duration_seconds_count {}\n", duration_count_);

    auto counter = [&](const char* name, const char* help, uint64_t v) {
        metric(out, name, "counter", help);
        fmt::format_to(std::back_inserter(out), "{} {}\n", name, v);
    };
    auto gauge = [&](const char* name, const char* help, int64_t v) {
        metric(out, name, "gauge", help);
        fmt::format_to(std::back_inserter(out), "{} {}\n", name, v);
    };
    counter("uvhttpd_received_bytes_total", "Bytes read from clients.", bytes_in);
    counter("uvhttpd_sent_bytes_total", "Bytes written to clients.", bytes_out);
    counter("uvhttpd_connections_accepted_total", "Connections accepted.", connections_accepted);
    counter("uvhttpd_connections_refused_total", "Connections answered 503 at --max-connections.",
            connections_refused);
    gauge("uvhttpd_open_connections", "Connections open now.", open_connections);
    gauge("uvhttpd_descriptors_limit", "The open-files limit (RLIMIT_NOFILE) the server runs under.",
          descriptors_limit);
    gauge("uvhttpd_descriptors_reserved",
          "Descriptors kept for the process itself, short-lived threadpool opens and file responses.",
          descriptors_reserved);
    gauge("uvhttpd_connection_capacity", "Idle connections the open-files limit backs; past it clients wait "
          "in the listen backlog.", connection_capacity);
    gauge("uvhttpd_descriptors_held", "Descriptors held beyond the connections' sockets: sendfile duplicates, "
          "response files, open-file-cache entries.", descriptors_held);
    gauge("uvhttpd_responses_waiting_descriptors", "File responses waiting for descriptors now.",
          responses_waiting_descriptors);
    counter("uvhttpd_descriptor_waits_total", "File responses that waited for descriptors.", descriptor_waits);
    counter("uvhttpd_descriptor_refusals_total",
            "Responses answered 503 with Retry-After for want of descriptors.", descriptor_refusals);
    gauge("uvhttpd_uploads_in_flight", "Request bodies being received now.", uploads_in_flight);
    counter("uvhttpd_resumable_uploads_started_total", "Resumable uploads created (tus or IETF draft).",
            uploads_started);
    counter("uvhttpd_resumable_uploads_completed_total", "Resumable uploads whose file reached its path.",
            uploads_completed);
    counter("uvhttpd_resumable_uploads_resumed_total",
            "Appends to a resumable upload whose previous request was interrupted.", uploads_resumed);
    counter("uvhttpd_resumable_uploads_expired_total", "Unfinished resumable uploads removed at --upload-expiry.",
            uploads_expired);
    counter("uvhttpd_resumable_upload_bytes_total", "Bytes appended to resumable uploads.", upload_bytes);
    gauge("uvhttpd_threadpool_queue_depth", "Jobs queued or running on the threadpool.", threadpool_jobs);
    gauge("uvhttpd_send_buffer_fast_connections",
          "Connections whose file bodies may queue --send-buffer-fast unsent bytes now.", send_boosted);
    counter("uvhttpd_send_buffer_fast_total", "Times a fast reader's connection got --send-buffer-fast.",
            send_boosts);
    counter("uvhttpd_jobs_cancelled_total", "Jobs dropped because their client went away before they ran.",
            jobs_cancelled);
    gauge("uvhttpd_listings_running", "Directory listings holding one of the --max-listing-jobs slots.",
          listings_running);
    gauge("uvhttpd_listings_waiting", "Directory listings waiting for a slot, outside the threadpool.",
          listings_waiting);
    counter("uvhttpd_records_appended_total", "Records appended to the record store by this process.",
            records_appended);
    metric(out, "uvhttpd_record_operations_total", "counter",
           "Record store operations, by kind and the status the store answered.");
    static constexpr const char* kinds[kRecordKinds] = {"append", "get", "put", "delete", "list"};
    static constexpr const char* statuses[kRecordStatuses] = {"200", "201", "204", "400", "404",
                                                              "409", "413", "503", "507", "other"};
    for (int k = 0; k < kRecordKinds; ++k)
        for (int st = 0; st < kRecordStatuses; ++st)
            if (record_ops_[k][st] || (k == 0 && st == 1))
                fmt::format_to(std::back_inserter(out), "uvhttpd_record_operations_total{{op=\"{}\",status=\"{}\"}} {}\n",
                               kinds[k], statuses[st], record_ops_[k][st]);
    if (records_db) {
        metric(out, "uvhttpd_records_db_roundtrip_seconds", "histogram",
               "PostgreSQL round trips of the record store: a query sent to its last result.");
        uint64_t cum = 0;
        for (int b = 0; b < kBuckets; ++b) {
            cum += db_buckets_[b];
            fmt::format_to(std::back_inserter(out), "uvhttpd_records_db_roundtrip_seconds_bucket{{le=\"{}\"}} {}\n",
                           static_cast<double>(kBucketUs[b]) / 1e6, cum);
        }
        cum += db_buckets_[kBuckets];
        fmt::format_to(std::back_inserter(out), "uvhttpd_records_db_roundtrip_seconds_bucket{{le=\"+Inf\"}} {}\n", cum);
        fmt::format_to(std::back_inserter(out), "uvhttpd_records_db_roundtrip_seconds_sum {}\n",
                       static_cast<double>(db_sum_us_) / 1e6);
        fmt::format_to(std::back_inserter(out), "uvhttpd_records_db_roundtrip_seconds_count {}\n", db_count_);
        gauge("uvhttpd_records_db_pool_size", "Connections the record store keeps to PostgreSQL (--records-pool).",
              db_pool_size);
        gauge("uvhttpd_records_db_pool_in_use", "Connections with a query in flight now.", db_pool_in_use);
        gauge("uvhttpd_records_db_connections_up", "Connections to PostgreSQL ready now.", db_up);
        counter("uvhttpd_records_db_reconnects_total",
                "Connections to PostgreSQL established again after one was lost or refused.", db_reconnects);
    }
    counter("uvhttpd_cache_hits_total", "GETs answered from the small-file cache.", cache_hits);
    counter("uvhttpd_cache_misses_total", "Cache lookups that went to the disk.", cache_misses);
    gauge("uvhttpd_cache_bytes", "Memory held by the small-file cache.", static_cast<int64_t>(cache_bytes));
    metric(out, "uvhttpd_compressions_total", "counter",
           "Files compressed for the coding cache, by coding (one per version and coding).");
    static constexpr const char* kCodingNames[3] = {"gzip", "br", "zstd"};
    for (int i = 0; i < 3; ++i)
        fmt::format_to(std::back_inserter(out), "uvhttpd_compressions_total{{coding=\"{}\"}} {}\n", kCodingNames[i],
                       compressions[i]);
    counter("uvhttpd_coding_cache_hits_total", "Responses served from the coding cache.", coding_cache_hits);
    gauge("uvhttpd_coding_cache_bytes", "Memory held by the coding cache.", static_cast<int64_t>(coding_cache_bytes));
    if (disk_codings) {
        counter("uvhttpd_coding_disk_hits_total", "GETs of a large file's coding sent from --compress-cache-dir.",
                disk_hits);
        counter("uvhttpd_coding_disk_misses_total",
                "GETs of a large file's coding that found no entry in --compress-cache-dir.", disk_misses);
        counter("uvhttpd_coding_disk_compressions_total", "Entries compressed into --compress-cache-dir.",
                disk_compressions);
        counter("uvhttpd_coding_disk_written_bytes_total", "Coded bytes written into --compress-cache-dir.",
                disk_written);
        counter("uvhttpd_coding_disk_evictions_total",
                "Entries removed from --compress-cache-dir to stay within its size.", disk_evictions);
        gauge("uvhttpd_coding_disk_bytes", "Bytes of the entries in --compress-cache-dir at its last scan.",
              static_cast<int64_t>(disk_bytes));
        gauge("uvhttpd_coding_disk_max_bytes", "--compress-cache-dir-size.", static_cast<int64_t>(disk_max_bytes));
    }
    counter("uvhttpd_access_log_dropped_total", "Access log lines dropped because the log could not keep up.",
            log_lines_dropped);
    gauge("uvhttpd_ready", "1 while accepting traffic, 0 while draining.", ready ? 1 : 0);
}

}  // namespace uvh
