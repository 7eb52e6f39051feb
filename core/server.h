// The server: one libuv loop, the listening socket, signals, the periodic
// tick (Date refresh, timeouts, log flushing), the registry of connections
// and the shared resources they borrow (read buffer, scratch pool, metrics,
// access log). What is served is the Application's (handlers/application.h):
// the server opens, starts and closes it without knowing what it runs.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <ctime>
#include <memory>
#include <string>

#include "core/wait_queue.h"
#include "core/access_log.h"
#include "core/config.h"
#include "core/scratch.h"
#include "core/timeouts.h"
#include "handlers/application.h"
#include "protocol/http_date.h"
#include "protocol/request_parser.h"

namespace uvh {

class Connection;

// True for 127.0.0.0/8, ::1 and IPv4-mapped 127.x addresses.
bool is_loopback(const std::string& host);

class Server {
public:
    // `app` answers the requests; the server owns it.
    Server(uv_loop_t* loop, Config config, std::unique_ptr<Application> app);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Opens the application and starts listening (or adopts a socket passed by
    // systemd, or `listen_fd` when >= 0). On failure returns false and sets
    // `error` to one readable line.
    bool start(std::string& error, int listen_fd = -1);

    // SIGTERM: /readyz turns 503 at once and responses say Connection:
    // close; after --drain-delay the server stops accepting, closes idle
    // connections, lets in-flight requests finish, and ends when they are
    // done or --shutdown-timeout passed.
    void drain();
    // Stop accepting now and finish (drain without the delay).
    void shutdown();
    // True once every handle the server opened is closed and the access
    // log has written everything.
    bool finished() const { return handles_closed() && (!log_ || !log_->busy()); }
    // Every handle is closed (the log may still be writing).
    // (and no close the descriptor budget counts is pending: its callback
    // reaches the server).
    bool handles_closed() const { return finished_ && counted_closes_ == 0; }

    uint16_t port() const { return port_; }
    std::string url() const;

    // ---- for connections ----
    uv_loop_t* loop() const { return loop_; }
    const Config& config() const { return config_; }
    const Site& site() const { return app_->site(); }
    Application& application() { return *app_; }
    const DateCache& date() const { return date_; }
    void refresh_date() { date_.refresh(std::time(nullptr)); }
    ScratchPool& pool() { return pool_; }
    char* read_buffer() { return read_buffer_.get(); }
    static constexpr size_t kReadBufferSize = 64 * 1024;
    const ParserLimits& parser_limits() const { return limits_; }
    bool draining() const { return draining_; }
    Metrics& metrics() { return metrics_; }
    AccessLog& access_log() { return *log_; }
    const std::vector<Cidr>& trusted_proxies() const { return trust_proxy_; }
    uint64_t now_ms() const { return uv_now(loop_); }
    // A high-resolution clock read once per callback that can start or end
    // requests (a read, a finished job or write) rather than twice per
    // request: request durations for the log and the histogram. Monotonic.
    uint64_t clock_ns() const { return clock_ns_; }
    void tick_clock() { clock_ns_ = uv_hrtime(); }
    // A fresh request id: 16 hex digits, unique per process run.
    void next_request_id(std::string& out);

    TimeoutList header_timeouts, idle_timeouts, body_timeouts, send_timeouts, linger_timeouts;

    void connection_destroyed(Connection* c);
    // Directory listings run at most --max-listing-jobs at a time: true
    // when `c` may queue its job now; false puts it in a FIFO until
    // release_listing_slot() hands it a slot (Connection::run_waiting_job).
    bool acquire_listing_slot(Connection& c);
    void release_listing_slot();
    void forget_listing_waiter(Connection& c);

    // A sendfile step may wait on its pool thread for a fast reader's
    // socket (core/sender.cpp), but at most half the pool's threads wait so
    // at once: the rest stay free for opens, stats and reads, whatever the
    // number of fast large downloads. Called on pool threads.
    bool begin_socket_wait() {
        unsigned n = socket_waits_.fetch_add(1, std::memory_order_relaxed);
        if (n < socket_wait_slots_) return true;
        socket_waits_.fetch_sub(1, std::memory_order_relaxed);
        return false;
    }
    void end_socket_wait() { socket_waits_.fetch_sub(1, std::memory_order_relaxed); }

    // --send-buffer-fast is given to at most --send-buffer-fast-total /
    // --send-buffer-fast connections at once (core/sender.cpp). Loop thread.
    bool take_send_boost();
    void give_send_boost();

    // The descriptor budget (core/descriptors.cpp). Each connection costs
    // its socket; a response costs more only while it holds them (its own
    // file, the sendfile duplicate of the socket). take_descriptors()
    // charges `n` for a response, false when the budget has no room (or
    // earlier responses wait: first come, first served); such a response
    // waits in a FIFO until give_descriptors() or a closing connection
    // makes room, and Connection::descriptors_granted() runs with its
    // descriptors charged. Accepting pauses while the room left is under
    // the headroom kept for responses, so idle connections can take
    // nearly the whole limit without starving file responses.
    bool take_descriptors(int n);
    void give_descriptors(int n);
    void wait_for_descriptors(Connection& c);
    void forget_descriptor_waiter(Connection& c);
    // Responses wait, or only the headroom is left.
    bool descriptors_scarce() const;
    // A counted descriptor's close went to the threadpool / came back
    // (Connection::close_fd_async): the budget gets it back then.
    void counted_close_started() { ++counted_closes_; }
    void counted_close_done() {
        --counted_closes_;
        give_descriptors(1);
    }

private:
    static void on_connection(uv_stream_t* listener, int status);
    static void on_tick(uv_timer_t* t);
    static void on_signal(uv_signal_t* s, int signum);
    static void on_shutdown_deadline(uv_timer_t* t);
    static void on_drain_delay(uv_timer_t* t);
    static void on_resume_accepting(uv_timer_t* t);

    bool open_listener(std::string& error, int listen_fd);
    void pause_accepting(uint64_t retry_ms);
    void resume_accepting();
    void expire_timeouts();
    void maybe_finish();
    void close_handle(uv_handle_t* h);

    uv_loop_t* loop_;
    void raise_descriptor_limit();
    void size_descriptor_budget();
    int64_t descriptor_room() const;
    bool descriptors_fit_connection() const;  // more than the budget's headroom is left
    bool connections_fit() const;  // below --max-connections, and descriptors_fit_connection()
    void grant_descriptor_waiters();
    void reclaim_idle_dups();
    int64_t fd_limit_ = 0;     // RLIMIT_NOFILE; 0: no budget (unlimited)
    int64_t fd_reserve_ = 0;   // the process's own and the threadpool's short-lived opens
    int64_t fd_headroom_ = 0;  // kept for file responses when connections fill the rest
    WaitQueue<Connection, DescriptorWait> fd_waiters_;  // jobs and responses waiting for descriptors
    bool granting_ = false;
    uint32_t counted_closes_ = 0;
    unsigned listing_slots_ = 2;
    unsigned socket_wait_slots_ = 2;  // half the pool (begin_socket_wait)
    std::atomic<unsigned> socket_waits_{0};
    uint64_t send_boost_slots_ = 0;
    WaitQueue<Connection, ListingSlotWait> slot_waiters_;  // listings waiting for a slot
    Config config_;
    std::unique_ptr<Application> app_;
    // Open once start() opened it; Closing from the first maybe_finish()
    // with no connection left until the application says it is done.
    enum class AppState { Idle, Open, Closing, Closed } app_state_ = AppState::Idle;
    ParserLimits limits_;
    DateCache date_;
    ScratchPool pool_;
    std::unique_ptr<char[]> read_buffer_;
    std::unique_ptr<AccessLog> log_;
    Metrics metrics_;
    std::vector<Cidr> trust_proxy_;
    uint64_t clock_ns_ = uv_hrtime();
    uint64_t ticks_ = 0;
    uint64_t boot_id_ = 0;
    uint64_t request_counter_ = 0;

    uv_tcp_t listener_{};
    int listen_fd_ = -1;  // our own descriptor for the socket: survives pausing
    uv_timer_t tick_{};
    uv_timer_t deadline_{};
    uv_timer_t drain_timer_{};
    uv_timer_t resume_timer_{};
    uv_signal_t sigint_{}, sigterm_{}, sighup_{};
    bool listening_ = false;  // listener_ is open (not paused, not stopped)
    bool paused_ = false;     // accepting paused (limits), will resume
    bool listener_closing_ = false;
    bool stopped_ = false;    // no more accepting, ever
    bool signals_ = false;
    bool draining_ = false;
    bool finished_ = false;
    bool closing_handles_ = false;
    bool timers_ = false;
    int open_handles_ = 0;
    uint16_t port_ = 0;
    std::string bound_host_;

    // All live connections, for shutdown.
    Connection* first_ = nullptr;
    friend class Connection;
};

}  // namespace uvh
