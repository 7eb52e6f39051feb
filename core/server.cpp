#include "core/server.h"

#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "core/connection.h"

namespace uvh {

namespace {

constexpr uint64_t kTickMs = 250;
constexpr int kBacklog = 4096;

// systemd socket activation (sd_listen_fds(3)): the first passed
// descriptor is 3 when LISTEN_PID is us and LISTEN_FDS >= 1.
int systemd_socket() {
    const char* pid = std::getenv("LISTEN_PID");
    const char* fds = std::getenv("LISTEN_FDS");
    if (!pid || !fds || std::atol(pid) != static_cast<long>(getpid()) || std::atoi(fds) < 1) return -1;
    // The variables are for us only; children must not see them.
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    fcntl(3, F_SETFD, FD_CLOEXEC);
    return 3;
}

}  // namespace

bool is_loopback(const std::string& host) {
    PeerAddress a;
    return PeerAddress::parse(host, a) && a.is_loopback();
}

Server::Server(uv_loop_t* loop, Config config, std::unique_ptr<Application> app)
    : loop_(loop), config_(std::move(config)), app_(std::move(app)), read_buffer_(new char[kReadBufferSize]) {
    header_timeouts.set_duration(config_.header_timeout_ms);
    idle_timeouts.set_duration(config_.idle_timeout_ms);
    body_timeouts.set_duration(config_.body_timeout_ms);
    send_timeouts.set_duration(config_.send_timeout_ms);
    linger_timeouts.set_duration(2000);
    date_.refresh(std::time(nullptr));
    if (getrandom(&boot_id_, sizeof boot_id_, GRND_NONBLOCK) != sizeof boot_id_)
        boot_id_ = static_cast<uint64_t>(std::time(nullptr)) ^ static_cast<uint64_t>(getpid()) << 32;
}

Server::~Server() {
    // The application is closed by then (maybe_finish waited for it), or
    // was never started; it goes before the metrics it points at.
    app_.reset();
    if (listen_fd_ >= 0) ::close(listen_fd_);
}

std::string Server::url() const {
    if (bound_host_.find(':') != std::string::npos) return fmt::format("http://[{}]:{}/", bound_host_, port_);
    return fmt::format("http://{}:{}/", bound_host_, port_);
}

void Server::next_request_id(std::string& out) {
    // Unique per run without a syscall: a random boot id mixed with a counter.
    uint64_t v = boot_id_ + 0x9e3779b97f4a7c15ull * ++request_counter_;
    // Two hex digits per byte from a table: this runs for every request.
    static const auto kPairs = [] {
        std::array<char, 512> t{};
        constexpr char kHex[] = "0123456789abcdef";
        for (int b = 0; b < 256; ++b) {
            t[static_cast<size_t>(2 * b)] = kHex[b >> 4];
            t[static_cast<size_t>(2 * b + 1)] = kHex[b & 15];
        }
        return t;
    }();
    char buf[16];
    for (int i = 7; i >= 0; --i, v >>= 8) std::memcpy(buf + 2 * i, &kPairs[2 * (v & 0xff)], 2);
    out.assign(buf, sizeof buf);
}

bool Server::take_send_boost() {
    Metrics& m = metrics();
    if (static_cast<uint64_t>(m.send_boosted) >= send_boost_slots_) return false;
    ++m.send_boosted;
    ++m.send_boosts;
    return true;
}

void Server::give_send_boost() { --metrics().send_boosted; }

bool Server::start(std::string& error, int listen_fd) {
    raise_descriptor_limit();
    // libuv's pool has UV_THREADPOOL_SIZE threads (default 4).
    const char* env = std::getenv("UV_THREADPOOL_SIZE");
    long pool = env ? std::strtol(env, nullptr, 10) : 4;
    auto half_pool = static_cast<unsigned>(std::max(1L, std::min(pool, 1024L) / 2));
    listing_slots_ = config_.max_listing_jobs ? config_.max_listing_jobs : half_pool;
    socket_wait_slots_ = half_pool;
    send_boost_slots_ = config_.send_buffer > 0 && config_.send_buffer_fast > config_.send_buffer
                            ? config_.send_buffer_fast_total / config_.send_buffer_fast
                            : 0;
    for (const std::string& c : config_.trust_proxy) {
        Cidr cidr;
        if (Cidr::parse(c, cidr)) trust_proxy_.push_back(cidr);
    }

    if (!config_.read_only && config_.write_token.empty() && !config_.allow_anonymous_writes &&
        !is_loopback(config_.host) && listen_fd < 0 && !std::getenv("LISTEN_FDS")) {
        error = fmt::format(
            "refusing anonymous writes on non-loopback address {}: give --write-token, "
            "--read-only or --allow-anonymous-writes",
            config_.host);
        return false;
    }

    // What is served (the root, its services) opens before anything
    // listens: start-up runs before the loop does, so its blocking calls
    // hold up no client.
    if (!app_->open(loop_, metrics_, error)) return false;
    app_state_ = AppState::Open;

    log_ = std::make_unique<AccessLog>(loop_, config_.access_log,
                                       config_.log_json ? AccessLog::Format::Json : AccessLog::Format::Combined);
    if (!log_->open(error)) return false;

    if (!open_listener(error, listen_fd)) return false;

    uv_timer_init(loop_, &tick_);
    uv_timer_init(loop_, &deadline_);
    uv_timer_init(loop_, &drain_timer_);
    uv_timer_init(loop_, &resume_timer_);
    for (uv_timer_t* t : {&tick_, &deadline_, &drain_timer_, &resume_timer_}) t->data = this;
    open_handles_ += 4;
    timers_ = true;
    uv_timer_start(&tick_, on_tick, kTickMs, kTickMs);

    app_->start();

    if (config_.install_signals) {
        for (uv_signal_t* s : {&sigint_, &sigterm_, &sighup_}) {
            uv_signal_init(loop_, s);
            s->data = this;
        }
        open_handles_ += 3;
        uv_signal_start(&sigint_, on_signal, SIGINT);
        uv_signal_start(&sigterm_, on_signal, SIGTERM);
        uv_signal_start(&sighup_, on_signal, SIGHUP);
        signals_ = true;
    }
    size_descriptor_budget();
    return true;
}

bool Server::open_listener(std::string& error, int listen_fd) {
    int fd = listen_fd >= 0 ? listen_fd : systemd_socket();
    if (fd >= 0) {
        // A socket handed to us (systemd, or the --workers supervisor).
        listen_fd_ = fd;
    } else {
        PeerAddress addr;
        if (!PeerAddress::parse(config_.host, addr) || config_.host.find('[') != std::string::npos) {
            error = fmt::format("--host '{}' is not an IPv4 or IPv6 address", config_.host);
            return false;
        }
        sockaddr_storage ss{};
        bool v6 = !addr.is_v4() || config_.host.find(':') != std::string::npos;
        if (v6) {
            uv_ip6_addr(config_.host.c_str(), config_.port, reinterpret_cast<sockaddr_in6*>(&ss));
        } else {
            uv_ip4_addr(config_.host.c_str(), config_.port, reinterpret_cast<sockaddr_in*>(&ss));
        }
        fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            error = fmt::format("cannot create a socket: {}", std::strerror(errno));
            return false;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (config_.reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (v6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        socklen_t len = v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
        if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, kBacklog) != 0) {
            error = fmt::format("cannot listen on {}:{}: {}", config_.host, config_.port,
                                uv_strerror(uv_translate_sys_error(errno)));
            ::close(fd);
            return false;
        }
        listen_fd_ = fd;
    }
    sockaddr_storage bound{};
    socklen_t blen = sizeof bound;
    if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &blen) != 0) {
        error = fmt::format("the listening socket is not usable: {}", std::strerror(errno));
        return false;
    }
    PeerAddress b = PeerAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&bound));
    port_ = b.port;
    bound_host_ = b.to_string();
    resume_accepting();
    if (!listening_) {
        error = "cannot accept on the listening socket";
        return false;
    }
    return true;
}

// Pausing closes the libuv handle but keeps our descriptor, so the socket
// and its backlog live on: clients wait in the kernel's queue instead of
// being refused, and accepting picks up where it left off.
void Server::pause_accepting(uint64_t retry_ms) {
    if (listening_) {
        close_handle(reinterpret_cast<uv_handle_t*>(&listener_));
        listening_ = false;
    }
    paused_ = true;
    if (retry_ms && timers_) uv_timer_start(&resume_timer_, on_resume_accepting, retry_ms, 0);
}

void Server::resume_accepting() {
    if (listening_ || stopped_ || listen_fd_ < 0) return;
    if (listener_closing_) {
        // The old handle is still closing; try again in a moment.
        if (timers_) uv_timer_start(&resume_timer_, on_resume_accepting, 10, 0);
        return;
    }
    int dup_fd = fcntl(listen_fd_, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) {
        if (timers_) uv_timer_start(&resume_timer_, on_resume_accepting, 100, 0);
        return;
    }
    uv_tcp_init(loop_, &listener_);
    listener_.data = this;
    ++open_handles_;
    if (uv_tcp_open(&listener_, dup_fd) != 0 ||
        uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), kBacklog, on_connection) != 0) {
        close_handle(reinterpret_cast<uv_handle_t*>(&listener_));
        if (timers_) uv_timer_start(&resume_timer_, on_resume_accepting, 100, 0);
        return;
    }
    listening_ = true;
    paused_ = false;
}

void Server::on_resume_accepting(uv_timer_t* t) {
    auto* s = static_cast<Server*>(t->data);
    if (s->connections_fit()) s->resume_accepting();
    else s->pause_accepting(50);
}

void Server::on_connection(uv_stream_t* listener, int status) {
    auto* s = static_cast<Server*>(listener->data);
    if (status < 0) {
        // EMFILE and friends: libuv already accepted and dropped one
        // connection so the loop does not spin. Stop accepting until a
        // descriptor frees up (a connection closes) or a moment passes.
        fmt::print(stderr, "uvhttpd: accept failed: {}; pausing accepts\n", uv_strerror(status));
        s->pause_accepting(100);
        return;
    }
    if (s->stopped_) return;
    auto* c = new Connection(*s);
    c->next = s->first_;
    if (s->first_) s->first_->prev = c;
    s->first_ = c;
    ++s->metrics_.open_connections;
    ++s->metrics_.connections_accepted;
    bool over = static_cast<size_t>(s->metrics_.open_connections) > s->config_.max_connections;
    // Past the limit the operator chose, this one gets a short 503. When
    // the descriptor budget has only its headroom for responses left, it is
    // served (the headroom has room for its socket) and the rest wait in
    // the backlog, as when accept() itself runs out of descriptors: nobody
    // is refused for the machine's limit.
    c->start(listener, over);
    if (over) ++s->metrics_.connections_refused;
    if (over || !s->descriptors_fit_connection()) s->pause_accepting(50);
}

bool Server::acquire_listing_slot(Connection& c) {
    if (static_cast<unsigned>(metrics_.listings_running) < listing_slots_) {
        ++metrics_.listings_running;
        return true;
    }
    slot_waiters_.push_back(c);
    ++metrics_.listings_waiting;
    return false;
}

void Server::forget_listing_waiter(Connection& c) {
    slot_waiters_.remove(c);
    --metrics_.listings_waiting;
}

void Server::release_listing_slot() {
    --metrics_.listings_running;
    if (Connection* next = slot_waiters_.front()) {
        forget_listing_waiter(*next);
        ++metrics_.listings_running;
        next->run_waiting_job();
    }
}

void Server::connection_destroyed(Connection* c) {
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        first_ = c->next;
    }
    if (c->next) c->next->prev = c->prev;
    --metrics_.open_connections;
    grant_descriptor_waiters();  // its socket is free
    if (paused_ && !stopped_ && connections_fit()) resume_accepting();
    maybe_finish();
}

void Server::on_tick(uv_timer_t* t) {
    auto* s = static_cast<Server*>(t->data);
    s->date_.refresh(std::time(nullptr));
    s->expire_timeouts();
    if (!s->fd_waiters_.empty()) s->reclaim_idle_dups();
    s->log_->flush();
    // Give freed heap back to the kernel now and then. Uploads, listings and
    // record rewrites allocate on threadpool threads, each with its own
    // malloc arena, and glibc keeps what they free: over hours a busy
    // server's RSS would creep up without anything being in use. Cheap
    // (well under a millisecond for this heap), once every 10 s.
    if (++s->ticks_ % 40 == 0) malloc_trim(0);
}

void Server::expire_timeouts() {
    tick_clock();
    uint64_t now = uv_now(loop_);
    for (TimeoutList* list : {&header_timeouts, &idle_timeouts, &body_timeouts, &send_timeouts,
                              &linger_timeouts}) {
        list->expire(now, [list](TimeoutNode& n) { static_cast<Connection*>(n.owner)->on_timeout(list); });
    }
}

void Server::on_signal(uv_signal_t* sig, int signum) {
    auto* s = static_cast<Server*>(sig->data);
    if (signum == SIGHUP) {
        fmt::print(stderr, "uvhttpd: SIGHUP, reopening the access log\n");
        s->log_->reopen();
        return;
    }
    if (s->draining_) {
        // A second signal: stop waiting for in-flight requests.
        fmt::print(stderr, "uvhttpd: signal {} again, closing all connections\n", signum);
        for (Connection* c = s->first_; c;) {
            Connection* next = c->next;
            c->abort();
            c = next;
        }
        s->shutdown();
        return;
    }
    fmt::print(stderr, "uvhttpd: signal {}, draining (delay {} ms)\n", signum, s->config_.drain_delay_ms);
    s->drain();
}

void Server::drain() {
    if (draining_) return;
    draining_ = true;
    metrics_.ready = false;
    if (config_.drain_delay_ms > 0 && timers_) {
        uv_timer_start(&drain_timer_, on_drain_delay, config_.drain_delay_ms, 0);
        return;
    }
    shutdown();
}

void Server::on_drain_delay(uv_timer_t* t) { static_cast<Server*>(t->data)->shutdown(); }

void Server::shutdown() {
    draining_ = true;
    metrics_.ready = false;
    if (stopped_) return;
    // Connections already waiting in the backlog completed their handshake
    // and may have sent a request: take them in and answer them (with
    // Connection: close) instead of letting the close reset them.
    if (listen_fd_ >= 0) {
        for (int i = 0; i < 4096; ++i) {
            int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) break;
            auto* c = new Connection(*this);
            c->next = first_;
            if (first_) first_->prev = c;
            first_ = c;
            ++metrics_.open_connections;
            ++metrics_.connections_accepted;
            c->adopt(fd);
        }
    }
    stopped_ = true;
    if (listening_) {
        close_handle(reinterpret_cast<uv_handle_t*>(&listener_));
        listening_ = false;
    }
    if (timers_) {
        uv_timer_stop(&drain_timer_);
        uv_timer_stop(&resume_timer_);
    }
    for (Connection* c = first_; c;) {
        Connection* next = c->next;
        c->drain();
        c = next;
    }
    if (timers_) uv_timer_start(&deadline_, on_shutdown_deadline, config_.shutdown_timeout_ms, 0);
    maybe_finish();
}

void Server::on_shutdown_deadline(uv_timer_t* t) {
    auto* s = static_cast<Server*>(t->data);
    fmt::print(stderr, "uvhttpd: shutdown timeout, closing {} connections\n", s->metrics_.open_connections);
    for (Connection* c = s->first_; c;) {
        Connection* next = c->next;
        c->abort();
        c = next;
    }
}

void Server::maybe_finish() {
    if (!stopped_ || first_ != nullptr || closing_handles_) return;
    // No connection is left, so nothing of the application's is waiting
    // for a client; close it and finish when it says it is done (its
    // callback may come at once, and then finishes here from inside).
    if (app_state_ == AppState::Open) {
        app_state_ = AppState::Closing;
        app_->close([this] {
            app_state_ = AppState::Closed;
            maybe_finish();
        });
    }
    if (app_state_ == AppState::Closing) return;
    closing_handles_ = true;
    if (timers_) {
        for (uv_timer_t* t : {&tick_, &deadline_, &drain_timer_, &resume_timer_})
            close_handle(reinterpret_cast<uv_handle_t*>(t));
        timers_ = false;
    }
    if (signals_) {
        for (uv_signal_t* s : {&sigint_, &sigterm_, &sighup_}) close_handle(reinterpret_cast<uv_handle_t*>(s));
        signals_ = false;
    }
    log_->drain_mode();
    if (open_handles_ == 0) finished_ = true;
}

void Server::close_handle(uv_handle_t* h) {
    if (uv_is_closing(h)) return;
    h->data = this;
    if (h == reinterpret_cast<uv_handle_t*>(&listener_)) listener_closing_ = true;
    uv_close(h, [](uv_handle_t* handle) {
        auto* s = static_cast<Server*>(handle->data);
        if (handle == reinterpret_cast<uv_handle_t*>(&s->listener_)) s->listener_closing_ = false;
        if (--s->open_handles_ == 0 && s->closing_handles_) s->finished_ = true;
    });
}

}  // namespace uvh
