// The server: one libuv loop, the listening socket, signals, the periodic
// tick (Date refresh and timeouts), the registry of connections and the
// shared resources they borrow (read buffer, scratch pool, site settings).
#pragma once

#include <uv.h>

#include <cstdint>
#include <ctime>
#include <memory>
#include <string>

#include "core/config.h"
#include "core/scratch.h"
#include "core/timeouts.h"
#include "handlers/file_cache.h"
#include "handlers/site.h"
#include "protocol/http_date.h"
#include "protocol/request_parser.h"

namespace uvh {

class Connection;

// True for 127.0.0.0/8, ::1 and IPv4-mapped 127.x addresses.
bool is_loopback(const std::string& host);

struct ServerStats {
    uint64_t connections_accepted = 0;
    uint64_t requests = 0;
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;
    uint64_t open_connections = 0;
};

class Server {
public:
    Server(uv_loop_t* loop, Config config);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Opens the root and starts listening. On failure returns false and
    // sets `error` to one readable line.
    bool start(std::string& error);

    // Graceful stop: no new connections, idle ones closed, in-flight
    // requests finish (with Connection: close) until the shutdown timeout.
    void shutdown();
    // True once every handle the server opened is closed.
    bool finished() const { return finished_; }

    uint16_t port() const { return port_; }
    std::string url() const;

    // ---- for connections ----
    uv_loop_t* loop() const { return loop_; }
    const Config& config() const { return config_; }
    const Site& site() const { return site_; }
    const DateCache& date() const { return date_; }
    void refresh_date() { date_.refresh(std::time(nullptr)); }
    ScratchPool& pool() { return pool_; }
    char* read_buffer() { return read_buffer_.get(); }
    static constexpr size_t kReadBufferSize = 64 * 1024;
    const ParserLimits& parser_limits() const { return limits_; }
    bool draining() const { return draining_; }
    ServerStats& stats() { return stats_; }
    FileCache* cache() { return cache_.get(); }
    uint64_t now_ms() const { return uv_now(loop_); }

    TimeoutList header_timeouts, idle_timeouts, body_timeouts, send_timeouts, linger_timeouts;

    void connection_destroyed(Connection* c);

private:
    static void on_connection(uv_stream_t* listener, int status);
    static void on_tick(uv_timer_t* t);
    static void on_signal(uv_signal_t* s, int signum);
    static void on_shutdown_deadline(uv_timer_t* t);

    void expire_timeouts();
    void maybe_finish();
    void close_handle(uv_handle_t* h);

    uv_loop_t* loop_;
    Config config_;
    Site site_;
    ParserLimits limits_;
    DateCache date_;
    ScratchPool pool_;
    std::unique_ptr<char[]> read_buffer_;
    std::unique_ptr<FileCache> cache_;
    ServerStats stats_;

    uv_tcp_t listener_{};
    uv_timer_t tick_{};
    uv_timer_t deadline_{};
    uv_signal_t sigint_{}, sigterm_{};
    bool listening_ = false;
    bool signals_ = false;
    bool draining_ = false;
    bool finished_ = false;
    bool closing_handles_ = false;
    bool timers_ = false;
    bool database_fd_owned_ = false;
    int open_handles_ = 0;
    uint16_t port_ = 0;

    // All live connections, for shutdown.
    Connection* first_ = nullptr;
    friend class Connection;
};

}  // namespace uvh
