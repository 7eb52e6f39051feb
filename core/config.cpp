#include "core/config.h"

#include <fmt/format.h>

#include "protocol/address.h"

#include <charconv>
#include <cmath>
#include <stdexcept>
#include <string_view>

namespace uvh {

namespace {

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

uint64_t parse_uint(std::string_view flag, std::string_view v, uint64_t max) {
    uint64_t out = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    if (ec != std::errc() || p != v.data() + v.size() || out > max)
        throw UsageError(fmt::format("{} needs a whole number up to {}, got '{}'", flag, max, v));
    return out;
}

// Sizes accept K, M, G suffixes (powers of 1024): "64K", "1G".
uint64_t parse_size(std::string_view flag, std::string_view v) {
    uint64_t mult = 1;
    if (!v.empty()) {
        switch (v.back()) {
        case 'k': case 'K': mult = 1ull << 10; break;
        case 'm': case 'M': mult = 1ull << 20; break;
        case 'g': case 'G': mult = 1ull << 30; break;
        default: break;
        }
        if (mult != 1) v.remove_suffix(1);
    }
    uint64_t n = parse_uint(flag, v, UINT64_MAX / mult);
    return n * mult;
}

// Seconds, fractions allowed ("0.5"), returned in milliseconds.
uint64_t parse_seconds(std::string_view flag, std::string_view v) {
    double d = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
    if (ec != std::errc() || p != v.data() + v.size() || !(d >= 0) || d > 1e7)
        throw UsageError(fmt::format("{} needs a number of seconds, got '{}'", flag, v));
    return static_cast<uint64_t>(std::llround(d * 1000.0));
}

}  // namespace

std::string usage_text() {
    return fmt::format(
        "uvhttpd {} - a fast, correct HTTP/1.1 file server\n"
        "\n"
        "usage: uvhttpd [PORT] [options]\n"
        "\n"
        "Listening:\n"
        "  PORT, --port N          port to listen on (default 8080; 0 picks a free one)\n"
        "  --host ADDR             address to bind (default 127.0.0.1; IPv6 literals work)\n"
        "  --reuse-port            SO_REUSEPORT, so several processes share the port\n"
        "  --workers N             N single-loop workers under a supervisor (default 1)\n"
        "  --listen-fd N           serve on an already listening socket N (what workers get)\n"
        "  --proxy-protocol        expect a HAProxy PROXY header (v1 or v2) on every connection\n"
        "\n"
        "Files:\n"
        "  --root DIR              directory to serve (default: the current directory)\n"
        "  --cache-control VALUE   Cache-Control for files (default: none)\n"
        "  --inline-max SIZE       files up to SIZE are read and sent with their head;\n"
        "                          larger ones go out with sendfile (default 64K)\n"
        "  --cache-size SIZE       memory for the small-file cache (default 64M; 0 = off)\n"
        "  --cache-revalidate S    re-read a cached file older than S seconds (default 0.5),\n"
        "                          so changes made by other programs show within S\n"
        "  --open-file-cache N     keep up to N large files (and missing names) open between\n"
        "                          requests, checked again after --cache-revalidate\n"
        "                          (default 1000; 0 = off)\n"
        "\n"
        "Compression (gzip, br, zstd by Accept-Encoding; precompressed .gz/.br/.zst first):\n"
        "  --compress on|off       compress text types on the fly (default on)\n"
        "  --compress-types LIST   comma-separated media types to compress, type/* allowed\n"
        "                          (default: text/*, JavaScript, JSON, XML, SVG, wasm, ...)\n"
        "  --compress-min-size SIZE  smaller bodies go out as they are (default 1K)\n"
        "  --compress-max-cached SIZE  files up to SIZE are compressed once per version and\n"
        "                          kept; larger ones are compressed as they are sent (default 1M)\n"
        "  --compress-cache-size SIZE  memory for compressed results, LRU (default 64M)\n"
        "  --compress-cache-dir DIR  keep the compressed forms of files above\n"
        "                          --compress-max-cached in DIR, sent with sendfile (outside the\n"
        "                          root, or a dotted directory in it; default: not kept)\n"
        "  --compress-cache-dir-size SIZE  disk for that directory, least recently used\n"
        "                          first out (default 1G)\n"
        "  --compress-level CODING=N   level of kept results (defaults gzip=9 br=11 zstd=19)\n"
        "  --compress-stream-level CODING=N  level of streamed bodies (gzip=6 br=5 zstd=3)\n"
        "\n"
        "  --send-buffer SIZE      unsent file-body bytes the kernel may queue per connection\n"
        "                          (TCP_NOTSENT_LOWAT; default 256K, from 64K for a\n"
        "                          connection's first 512K; 0 = no limit)\n"
        "  --send-buffer-fast SIZE  the same for a reader that took 1M within one send step\n"
        "                          (default 4M; 0 or at most --send-buffer: never raised);\n"
        "                          back to --send-buffer once it falls behind\n"
        "  --send-buffer-fast-total SIZE  at most this much for all such readers together:\n"
        "                          TOTAL / FAST connections at once (default 256M)\n"
        "\n"
        "Writes (PUT, DELETE, MKCOL, POST to the record store):\n"
        "  --read-only             refuse writes (405)\n"
        "  --write-token TOKEN     writes need Authorization: Bearer TOKEN (or Basic\n"
        "                          auth with TOKEN as the password: curl -u :TOKEN)\n"
        "  --allow-anonymous-writes  allow writes without a token on a non-loopback address\n"
        "  --allowed-host NAME     without a token, writes must name a loopback host or\n"
        "                          an IP address in Host (DNS rebinding); also allow\n"
        "                          NAME (repeatable; .NAME takes its subdomains too,\n"
        "                          * turns the check off)\n"
        "  --allowed-origin ORIGIN browsers may write from this other origin, e.g.\n"
        "                          https://app.example (repeatable; * for any); other\n"
        "                          cross-site writes get 403\n"
        "  --create-dirs           PUT creates missing parent directories (default: 409)\n"
        "  --max-body-size SIZE    largest request body, and largest resumable upload\n"
        "                          (default 1G; 0 = unlimited)\n"
        "  --upload-expiry S       an unfinished resumable upload is removed S seconds\n"
        "                          after its last append (default 86400)\n"
        "  --max-uploads N         unfinished resumable uploads at once (default 1000;\n"
        "                          0 = no cap); more get 503\n"

        "  --database PATH         the record store file (default: database.txt in the root)\n"
        "  --max-record-size SIZE  largest record, as a record's line (default 64K); more: 413\n"
        "  --max-store-size SIZE   largest size of the record store file (default 1G;\n"
        "                          0 = unlimited; with --records: the sum of its lines);\n"
        "                          a POST or PUT beyond it: 507\n"
        "  --dav-lock-timeout-max S  longest WebDAV lock a LOCK gets, whatever Timeout it\n"
        "                          asks for (default 3600; Infinite gets this too)\n"
        "  --records CONNINFO      keep the records in PostgreSQL instead of the file:\n"
        "                          a libpq connection string or URI, e.g.\n"
        "                          postgresql://uvh@db.example/uvh (PGPASSWORD and\n"
        "                          ~/.pgpass as libpq reads them); same HTTP interface\n"
        "  --records-pool N        connections to PostgreSQL (default 4, 1 to 64)\n"
        "  --records-required      /readyz is 503 while the records database is down\n"
        "\n"
        "WebDAV (PROPFIND, PROPPATCH, COPY, MOVE; writes follow the rules above):\n"
        "  --dav-depth-infinity    answer PROPFIND with Depth: infinity (default: 403,\n"
        "                          RFC 4918 propfind-finite-depth)\n"
        "  --dav-props auto|sidecar  where dead properties live: extended attributes\n"
        "                          (user.uvhttpd.props) with a .uvhttpd-props sidecar\n"
        "                          where the file system has none (auto, the default),\n"
        "                          or always the sidecar\n"
        "\n"
        "Limits and timeouts (seconds may have fractions):\n"
        "  --max-connections N     beyond N open connections: 503 and pause accepting\n"
        "                          (default 10000)\n"
        "  --max-listing-jobs N    directory listings running at once on the threadpool;\n"
        "                          more wait outside it (default: half the pool, >= 1)\n"
        "  --ready-max-queue N     /readyz answers 503 \"saturated\" while N or more jobs\n"
        "                          wait for or run on the threadpool (default 256; 0: never)\n"
        "  --header-timeout S      to receive a request head (default 10; then 408)\n"
        "  --idle-timeout S        a keep-alive connection may idle (default 75)\n"
        "  --body-timeout S        a request body must bring 16 KiB (or end) within S\n"
        "                          (default 60; then 408)\n"
        "  --send-timeout S        a response must move 16 KiB (or finish) within S\n"
        "                          (default 60)\n"
        "  --keepalive-requests N  close a connection after N requests (default 0: no limit)\n"
        "  --drain-delay S         on SIGTERM keep serving S seconds with /readyz at 503\n"
        "                          before closing the listener (default 0)\n"
        "  --shutdown-timeout S    then let in-flight requests finish for S (default 30)\n"
        "\n"
        "Logs and endpoints:\n"
        "  --access-log PATH|-|off where the access log goes (default -, stdout)\n"
        "  --log-format combined|json  access log format (default combined)\n"
        "  --trust-proxy CIDR      believe X-Forwarded-For / Forwarded from these peers\n"
        "                          (repeatable)\n"
        "  --health-path PATH      liveness: 200 while the process runs (default /healthz)\n"
        "  --ready-path PATH       readiness: 503 while draining (default /readyz)\n"
        "  --metrics-path PATH     Prometheus metrics (default /metrics; '' turns it off)\n"
        "  --metrics-allow CIDR    also serve metrics to these clients (repeatable;\n"
        "                          loopback always may)\n"
        "\n"
        "  --help                  this text\n"
        "  --version               the version\n",
        kVersion);
}

ParseOutcome parse_args(int argc, const char* const* argv, Config& cfg) {
    ParseOutcome out;
    bool port_seen = false;
    try {
        for (int i = 1; i < argc; ++i) {
            std::string_view arg = argv[i];
            std::string_view value;
            bool has_inline_value = false;
            if (arg.starts_with("--")) {
                size_t eq = arg.find('=');
                if (eq != std::string_view::npos) {
                    value = arg.substr(eq + 1);
                    arg = arg.substr(0, eq);
                    has_inline_value = true;
                }
            }
            auto need = [&]() -> std::string_view {
                if (has_inline_value) return value;
                if (i + 1 >= argc) throw UsageError(fmt::format("{} needs a value", arg));
                return argv[++i];
            };
            if (arg == "--help" || arg == "-h") {
                out.kind = ParseOutcome::Kind::ExitOk;
                out.message = usage_text();
                return out;
            }
            if (arg == "--version") {
                out.kind = ParseOutcome::Kind::ExitOk;
                out.message = fmt::format("uvhttpd {}\n", kVersion);
                return out;
            }
            if (arg == "--port") {
                cfg.port = static_cast<int>(parse_uint(arg, need(), 65535));
                port_seen = true;
            } else if (arg == "--host") {
                cfg.host = need();
                if (cfg.host.size() > 2 && cfg.host.front() == '[' && cfg.host.back() == ']')
                    cfg.host = cfg.host.substr(1, cfg.host.size() - 2);
                if (cfg.host.empty()) throw UsageError("--host needs an address");
            } else if (arg == "--root") {
                cfg.root = need();
                if (cfg.root.empty()) throw UsageError("--root needs a directory");
            } else if (arg == "--read-only") {
                cfg.read_only = true;
            } else if (arg == "--write-token") {
                cfg.write_token = need();
                if (cfg.write_token.empty()) throw UsageError("--write-token needs a non-empty token");
                for (char c : cfg.write_token)
                    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
                        throw UsageError("--write-token must be printable, without spaces");
            } else if (arg == "--allow-anonymous-writes") {
                cfg.allow_anonymous_writes = true;
            } else if (arg == "--create-dirs") {
                cfg.create_dirs = true;
            } else if (arg == "--dav-depth-infinity") {
                cfg.dav_depth_infinity = true;
            } else if (arg == "--dav-props") {
                std::string v(need());
                if (v == "sidecar") {
                    cfg.dav_props_sidecar = true;
                } else if (v == "auto") {
                    cfg.dav_props_sidecar = false;
                } else {
                    throw UsageError("--dav-props is auto or sidecar");
                }
            } else if (arg == "--database") {
                cfg.database = need();
                if (cfg.database.empty() || cfg.database.back() == '/')
                    throw UsageError("--database needs a file path");
            } else if (arg == "--records") {
                cfg.records = need();
                if (cfg.records.empty()) throw UsageError("--records needs a PostgreSQL connection string");
            } else if (arg == "--records-pool") {
                cfg.records_pool = static_cast<int>(parse_uint(arg, need(), 64));
                if (cfg.records_pool < 1) throw UsageError("--records-pool is between 1 and 64");
            } else if (arg == "--records-required") {
                cfg.records_required = true;
            } else if (arg == "--cache-control") {
                cfg.cache_control = need();
                for (char c : cfg.cache_control)
                    if (c == '\r' || c == '\n') throw UsageError("--cache-control must be one line");
            } else if (arg == "--max-record-size") {
                cfg.max_record_size = parse_size(arg, need());
                if (cfg.max_record_size < 16 || cfg.max_record_size > (64ull << 20))
                    throw UsageError("--max-record-size is between 16 and 64M");
            } else if (arg == "--dav-lock-timeout-max") {
                cfg.dav_lock_timeout_max = parse_uint(arg, need(), 604800);
                if (cfg.dav_lock_timeout_max == 0) throw UsageError("--dav-lock-timeout-max must be at least 1");
            } else if (arg == "--max-store-size") {
                cfg.max_store_size = parse_size(arg, need());
            } else if (arg == "--upload-expiry") {
                cfg.upload_expiry_ms = parse_seconds(arg, need());
                if (cfg.upload_expiry_ms < 1000) throw UsageError("--upload-expiry is at least 1 second");
            } else if (arg == "--max-uploads") {
                cfg.max_uploads = parse_uint(arg, need(), 100'000'000);
            } else if (arg == "--max-body-size") {
                cfg.max_body_size = parse_size(arg, need());
            } else if (arg == "--inline-max") {
                cfg.inline_max = parse_size(arg, need());
                if (cfg.inline_max > (64ull << 20)) throw UsageError("--inline-max is at most 64M");
            } else if (arg == "--cache-size") {
                cfg.cache_size = parse_size(arg, need());
            } else if (arg == "--send-buffer") {
                cfg.send_buffer = parse_size(arg, need());
                if (cfg.send_buffer > (64ull << 20)) throw UsageError("--send-buffer is at most 64M");
            } else if (arg == "--send-buffer-fast") {
                cfg.send_buffer_fast = parse_size(arg, need());
                if (cfg.send_buffer_fast > (64ull << 20)) throw UsageError("--send-buffer-fast is at most 64M");
            } else if (arg == "--send-buffer-fast-total") {
                cfg.send_buffer_fast_total = parse_size(arg, need());
            } else if (arg == "--open-file-cache") {
                cfg.open_file_cache = parse_uint(arg, need(), 1'000'000);
            } else if (arg == "--cache-revalidate") {
                cfg.cache_revalidate_ms = parse_seconds(arg, need());
            } else if (arg == "--compress") {
                std::string_view v = need();
                if (v != "on" && v != "off") throw UsageError(fmt::format("--compress is on or off, not '{}'", v));
                cfg.compress = v == "on";
            } else if (arg == "--compress-types") {
                std::string_view v = need();
                cfg.compress_types.clear();
                while (!v.empty()) {
                    size_t comma = v.find(',');
                    std::string_view t = v.substr(0, comma);
                    while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
                    while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
                    if (!t.empty()) {
                        size_t slash = t.find('/');
                        if (slash == std::string_view::npos || slash == 0 || slash + 1 == t.size())
                            throw UsageError(fmt::format("--compress-types needs media types like text/css or text/*, got '{}'", t));
                        cfg.compress_types.emplace_back(t);
                    }
                    if (comma == std::string_view::npos) break;
                    v.remove_prefix(comma + 1);
                }
                if (cfg.compress_types.empty()) throw UsageError("--compress-types needs at least one media type");
            } else if (arg == "--compress-min-size") {
                cfg.compress_min_size = parse_size(arg, need());
            } else if (arg == "--compress-max-cached") {
                cfg.compress_max_cached = parse_size(arg, need());
                if (cfg.compress_max_cached > (256ull << 20)) throw UsageError("--compress-max-cached is at most 256M");
            } else if (arg == "--compress-cache-dir") {
                cfg.compress_cache_dir = std::string(need());
                if (cfg.compress_cache_dir.empty()) throw UsageError("--compress-cache-dir needs a directory");
            } else if (arg == "--compress-cache-dir-size") {
                cfg.compress_cache_dir_size = parse_size(arg, need());
            } else if (arg == "--compress-cache-size") {
                cfg.compress_cache_size = parse_size(arg, need());
            } else if (arg == "--compress-level" || arg == "--compress-stream-level") {
                std::string_view v = need();
                size_t eq = v.find('=');
                std::string_view coding = v.substr(0, eq == std::string_view::npos ? v.size() : eq);
                int index = coding == "gzip" ? 1 : coding == "br" ? 2 : coding == "zstd" ? 3 : 0;
                if (eq == std::string_view::npos || index == 0)
                    throw UsageError(fmt::format("{} needs gzip=N, br=N or zstd=N, got '{}'", arg, v));
                int max = index == 1 ? 9 : index == 2 ? 11 : 19;
                int level = static_cast<int>(parse_uint(arg, v.substr(eq + 1), static_cast<uint64_t>(max)));
                if (level < (index == 2 ? 0 : 1))
                    throw UsageError(fmt::format("{}: the {} level is {} to {}", arg, coding, index == 2 ? 0 : 1, max));
                (arg == "--compress-level" ? cfg.level_cached : cfg.level_stream)[index] = level;
            } else if (arg == "--header-timeout") {
                cfg.header_timeout_ms = parse_seconds(arg, need());
            } else if (arg == "--idle-timeout") {
                cfg.idle_timeout_ms = parse_seconds(arg, need());
            } else if (arg == "--body-timeout") {
                cfg.body_timeout_ms = parse_seconds(arg, need());
            } else if (arg == "--send-timeout") {
                cfg.send_timeout_ms = parse_seconds(arg, need());
            } else if (arg == "--shutdown-timeout") {
                cfg.shutdown_timeout_ms = parse_seconds(arg, need());
            } else if (arg == "--keepalive-requests") {
                cfg.keepalive_requests = parse_uint(arg, need(), UINT32_MAX);
            } else if (arg == "--max-connections") {
                cfg.max_connections = parse_uint(arg, need(), 10'000'000);
                if (cfg.max_connections == 0) throw UsageError("--max-connections must be at least 1");
            } else if (arg == "--access-log") {
                cfg.access_log = need();
                if (cfg.access_log.empty()) throw UsageError("--access-log needs a path, - or off");
            } else if (arg == "--log-format") {
                std::string_view f = need();
                if (f == "json") {
                    cfg.log_json = true;
                } else if (f == "combined") {
                    cfg.log_json = false;
                } else {
                    throw UsageError(fmt::format("--log-format is combined or json, not '{}'", f));
                }
            } else if (arg == "--health-path" || arg == "--ready-path" || arg == "--metrics-path") {
                std::string v(need());
                if (!v.empty() && v.front() != '/') throw UsageError(fmt::format("{} must start with '/'", arg));
                (arg == "--health-path" ? cfg.health_path : arg == "--ready-path" ? cfg.ready_path : cfg.metrics_path) = v;
            } else if (arg == "--metrics-allow" || arg == "--trust-proxy") {
                std::string v(need());
                Cidr c;
                if (!Cidr::parse(v, c)) throw UsageError(fmt::format("{} needs an address or CIDR, got '{}'", arg, v));
                (arg == "--metrics-allow" ? cfg.metrics_allow : cfg.trust_proxy).push_back(v);
            } else if (arg == "--max-listing-jobs") {
                cfg.max_listing_jobs = static_cast<unsigned>(parse_uint(arg, need(), 1024));
                if (cfg.max_listing_jobs == 0) throw UsageError("--max-listing-jobs must be at least 1");
            } else if (arg == "--ready-max-queue") {
                cfg.ready_max_queue = parse_uint(arg, need(), 100'000'000);
            } else if (arg == "--allowed-host") {
                std::string v(need());
                if (v.empty() || v.find_first_of(" /:@") != std::string::npos)
                    throw UsageError(fmt::format("--allowed-host needs a host name (no port or scheme), got '{}'", v));
                cfg.allowed_hosts.push_back(v);
            } else if (arg == "--allowed-origin") {
                std::string v(need());
                if (v != "*" && (v.find("://") == std::string::npos || v.back() == '/'))
                    throw UsageError(fmt::format("--allowed-origin needs scheme://host[:port], got '{}'", v));
                cfg.allowed_origins.push_back(v);
            } else if (arg == "--proxy-protocol") {
                cfg.proxy_protocol = true;
            } else if (arg == "--drain-delay") {
                cfg.drain_delay_ms = parse_seconds(arg, need());
            } else if (arg == "--reuse-port") {
                cfg.reuse_port = true;
            } else if (arg == "--workers") {
                cfg.workers = static_cast<int>(parse_uint(arg, need(), 256));
                if (cfg.workers < 1) throw UsageError("--workers must be at least 1");
            } else if (arg == "--listen-fd") {
                cfg.listen_fd = static_cast<int>(parse_uint(arg, need(), 1 << 20));
            } else if (!arg.empty() && arg.front() != '-' && !port_seen) {
                // The seed's "httpServer.py [portNumber]".
                cfg.port = static_cast<int>(parse_uint("PORT", arg, 65535));
                port_seen = true;
            } else {
                throw UsageError(fmt::format("unknown argument '{}' (try --help)", arg));
            }
        }
    } catch (const UsageError& e) {
        out.kind = ParseOutcome::Kind::ExitError;
        out.message = e.what();
    }
    return out;
}

}  // namespace uvh
