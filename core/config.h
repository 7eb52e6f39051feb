// Command-line configuration. Parsing is the only place exceptions are
// used (at start-up, never in a callback); errors become one line on stderr
// and exit code 2.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace uvh {

constexpr const char* kVersion = "0.1.0";

struct Config {
    std::string host = "127.0.0.1";
    int port = 8080;
    std::string root = ".";

    // Writes
    bool read_only = false;
    std::string write_token;
    bool allow_anonymous_writes = false;
    bool create_dirs = false;
    bool dav_depth_infinity = false;  // --dav-depth-infinity
    bool dav_props_sidecar = false;   // --dav-props sidecar
    std::string database = "database.txt";  // relative to the root, or absolute
    uint64_t max_record_size = 64 * 1024;    // a record's stored line, newline included
    uint64_t max_store_size = 1ull << 30;    // the record store file; 0: unlimited
    uint64_t dav_lock_timeout_max = 3600;    // seconds: a WebDAV lock's longest Timeout
    std::string records;            // --records: a libpq conninfo; empty: the file store
    int records_pool = 4;           // --records-pool: connections to PostgreSQL
    bool records_required = false;  // --records-required: /readyz needs the database
    uint64_t upload_expiry_ms = 24ull * 3600 * 1000;  // --upload-expiry
    size_t max_uploads = 1000;               // --max-uploads; 0: no cap

    // HTTP
    std::string cache_control;
    uint64_t max_body_size = 1ull << 30;
    size_t inline_max = 64 * 1024;
    size_t cache_size = 64ull << 20;  // 0: no small-file cache
    size_t send_buffer = 256 * 1024;  // TCP_NOTSENT_LOWAT for file bodies; 0: no limit
    size_t send_buffer_fast = 4u << 20;         // TCP_NOTSENT_LOWAT of proven-fast readers; 0: none
    size_t send_buffer_fast_total = 256u << 20;  // what all such readers together may have queued
    uint64_t cache_revalidate_ms = 500;
    size_t open_file_cache = 1000;  // descriptors of large files kept open; 0: none

    // Compression (handlers/compress/).
    bool compress = true;                     // --compress on|off
    std::vector<std::string> compress_types;  // --compress-types; empty: the defaults
    uint64_t compress_min_size = 1024;        // --compress-min-size
    uint64_t compress_max_cached = 1 << 20;   // --compress-max-cached: larger files are streamed
    size_t compress_cache_size = 64ull << 20; // --compress-cache-size
    std::string compress_cache_dir;           // --compress-cache-dir; empty: large files are not kept
    uint64_t compress_cache_dir_size = 1ull << 30;  // --compress-cache-dir-size
    int level_cached[4] = {0, 9, 11, 19};     // --compress-level CODING=N (index: gzip 1, br 2, zstd 3)
    int level_stream[4] = {0, 6, 5, 3};       // --compress-stream-level CODING=N

    // Timeouts, in milliseconds (the flags take seconds).
    uint64_t header_timeout_ms = 10'000;
    uint64_t idle_timeout_ms = 75'000;
    uint64_t body_timeout_ms = 60'000;
    uint64_t send_timeout_ms = 60'000;
    uint64_t shutdown_timeout_ms = 30'000;
    uint64_t keepalive_requests = 0;  // 0: unlimited

    // Operations
    std::string access_log = "-";  // path, "-" (stdout) or "off"
    bool log_json = false;         // --log-format json
    std::string health_path = "/healthz";
    std::string ready_path = "/readyz";
    std::string metrics_path = "/metrics";
    std::vector<std::string> metrics_allow;  // CIDRs besides loopback
    std::vector<std::string> allowed_hosts;    // --allowed-host: names anonymous writes may use
    std::vector<std::string> allowed_origins;  // --allowed-origin: cross-site origins that may write
    std::vector<std::string> trust_proxy;    // CIDRs whose forwarding headers we believe
    bool proxy_protocol = false;
    uint64_t drain_delay_ms = 0;
    size_t max_connections = 10000;
    unsigned max_listing_jobs = 0;   // 0: half the threadpool (at least 1)
    uint64_t ready_max_queue = 256;  // /readyz 503 from this many jobs queued; 0: never
    bool reuse_port = false;
    int workers = 1;
    int listen_fd = -1;  // --listen-fd: a listening socket handed to us (workers)

    // Process
    bool install_signals = true;  // false for in-process tests
};

struct ParseOutcome {
    enum class Kind { Run, ExitOk, ExitError };
    Kind kind = Kind::Run;
    std::string message;  // usage/version text or the error line
};

ParseOutcome parse_args(int argc, const char* const* argv, Config& cfg);
std::string usage_text();

}  // namespace uvh
