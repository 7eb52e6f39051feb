#include "core/server.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "core/connection.h"

#include <netinet/in.h>

namespace uvh {

namespace {

constexpr uint64_t kTickMs = 250;

}  // namespace

Server::Server(uv_loop_t* loop, Config config)
    : loop_(loop), config_(std::move(config)), read_buffer_(new char[kReadBufferSize]) {
    header_timeouts.set_duration(config_.header_timeout_ms);
    idle_timeouts.set_duration(config_.idle_timeout_ms);
    body_timeouts.set_duration(config_.body_timeout_ms);
    send_timeouts.set_duration(config_.send_timeout_ms);
    linger_timeouts.set_duration(2000);
    date_.refresh(std::time(nullptr));
}

Server::~Server() {
    if (database_fd_owned_ && site_.database_dir_fd >= 0) close(site_.database_dir_fd);
    if (site_.root_fd >= 0) close(site_.root_fd);
}

bool is_loopback(const std::string& host) {
    struct sockaddr_in v4 {};
    struct sockaddr_in6 v6 {};
    if (uv_ip4_addr(host.c_str(), 0, &v4) == 0) return (ntohl(v4.sin_addr.s_addr) >> 24) == 127;
    if (uv_ip6_addr(host.c_str(), 0, &v6) == 0) {
        if (IN6_IS_ADDR_LOOPBACK(&v6.sin6_addr)) return true;
        if (IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr)) return v6.sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

std::string Server::url() const {
    if (config_.host.find(':') != std::string::npos)
        return fmt::format("http://[{}]:{}/", config_.host, port_);
    return fmt::format("http://{}:{}/", config_.host, port_);
}

bool Server::start(std::string& error) {
    // Start-up runs before the loop does, so these blocking calls hold up
    // no client.
    int root = open(config_.root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) {
        error = fmt::format("cannot serve --root '{}': {}", config_.root, std::strerror(errno));
        return false;
    }
    site_.root_fd = root;
    site_.root_path = config_.root;
    site_.server_line = fmt::format("Server: uvhttpd/{}\r\n", kVersion);
    site_.cache_control = config_.cache_control;
    site_.inline_max = config_.inline_max;
    site_.max_body_size = config_.max_body_size;
    site_.writes_enabled = !config_.read_only;
    site_.write_token = config_.write_token;
    site_.create_dirs = config_.create_dirs;
    if (config_.cache_size > 0) {
        cache_ = std::make_unique<FileCache>(config_.cache_size, config_.inline_max, config_.cache_revalidate_ms);
        site_.cache = cache_.get();
    }

    if (!config_.read_only && config_.write_token.empty() && !config_.allow_anonymous_writes &&
        !is_loopback(config_.host)) {
        error = fmt::format(
            "refusing anonymous writes on non-loopback address {}: give --write-token, "
            "--read-only or --allow-anonymous-writes",
            config_.host);
        return false;
    }

    // The record store's file: relative paths live beneath the root.
    if (config_.database.front() == '/') {
        size_t slash = config_.database.rfind('/');
        std::string dir = slash == 0 ? std::string("/") : config_.database.substr(0, slash);
        int dfd = open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
            error = fmt::format("cannot use --database '{}': {}", config_.database, std::strerror(errno));
            return false;
        }
        site_.database_dir_fd = dfd;
        database_fd_owned_ = true;
        site_.database_rel = config_.database.substr(slash + 1);
    } else {
        site_.database_dir_fd = root;
        site_.database_rel = config_.database;
    }

    struct sockaddr_storage addr {};
    bool v6 = config_.host.find(':') != std::string::npos;
    int r = v6 ? uv_ip6_addr(config_.host.c_str(), config_.port, reinterpret_cast<sockaddr_in6*>(&addr))
               : uv_ip4_addr(config_.host.c_str(), config_.port, reinterpret_cast<sockaddr_in*>(&addr));
    if (r != 0) {
        error = fmt::format("--host '{}' is not an IPv4 or IPv6 address", config_.host);
        return false;
    }
    uv_tcp_init(loop_, &listener_);
    listener_.data = this;
    ++open_handles_;
    listening_ = true;
    r = uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&addr), 0);
    if (r == 0) r = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 4096, on_connection);
    if (r != 0) {
        error = fmt::format("cannot listen on {}:{}: {}", config_.host, config_.port, uv_strerror(r));
        close_handle(reinterpret_cast<uv_handle_t*>(&listener_));
        listening_ = false;
        // Let the close callback run so the loop can be closed cleanly.
        uv_run(loop_, UV_RUN_NOWAIT);
        return false;
    }
    struct sockaddr_storage bound {};
    int len = sizeof bound;
    uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&bound), &len);
    port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);

    uv_timer_init(loop_, &tick_);
    tick_.data = this;
    ++open_handles_;
    uv_timer_start(&tick_, on_tick, kTickMs, kTickMs);
    uv_timer_init(loop_, &deadline_);
    deadline_.data = this;
    ++open_handles_;
    timers_ = true;

    if (config_.install_signals) {
        uv_signal_init(loop_, &sigint_);
        uv_signal_init(loop_, &sigterm_);
        sigint_.data = sigterm_.data = this;
        open_handles_ += 2;
        uv_signal_start(&sigint_, on_signal, SIGINT);
        uv_signal_start(&sigterm_, on_signal, SIGTERM);
        signals_ = true;
    }
    return true;
}

void Server::on_connection(uv_stream_t* listener, int status) {
    auto* s = static_cast<Server*>(listener->data);
    if (status < 0) {
        // EMFILE and friends: libuv already accepted and dropped the
        // connection so the loop does not spin; say so once per event.
        fmt::print(stderr, "uvhttpd: accept failed: {}\n", uv_strerror(status));
        return;
    }
    if (s->draining_) return;
    auto* c = new Connection(*s);
    c->next = s->first_;
    if (s->first_) s->first_->prev = c;
    s->first_ = c;
    ++s->stats_.open_connections;
    ++s->stats_.connections_accepted;
    c->start(listener);
}

void Server::connection_destroyed(Connection* c) {
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        first_ = c->next;
    }
    if (c->next) c->next->prev = c->prev;
    --stats_.open_connections;
    maybe_finish();
}

void Server::on_tick(uv_timer_t* t) {
    auto* s = static_cast<Server*>(t->data);
    s->date_.refresh(std::time(nullptr));
    s->expire_timeouts();
}

void Server::expire_timeouts() {
    uint64_t now = uv_now(loop_);
    for (TimeoutList* list : {&header_timeouts, &idle_timeouts, &body_timeouts, &send_timeouts,
                              &linger_timeouts}) {
        list->expire(now, [list](TimeoutNode& n) { static_cast<Connection*>(n.owner)->on_timeout(list); });
    }
}

void Server::on_signal(uv_signal_t* sig, int signum) {
    auto* s = static_cast<Server*>(sig->data);
    if (s->draining_) {
        // A second signal: stop waiting for in-flight requests.
        fmt::print(stderr, "uvhttpd: signal {} again, closing all connections\n", signum);
        for (Connection* c = s->first_; c;) {
            Connection* next = c->next;
            c->abort();
            c = next;
        }
        return;
    }
    fmt::print(stderr, "uvhttpd: signal {}, finishing in-flight requests\n", signum);
    s->shutdown();
}

void Server::shutdown() {
    if (draining_) return;
    draining_ = true;
    if (listening_) {
        close_handle(reinterpret_cast<uv_handle_t*>(&listener_));
        listening_ = false;
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
    fmt::print(stderr, "uvhttpd: shutdown timeout, closing {} connections\n", s->stats_.open_connections);
    for (Connection* c = s->first_; c;) {
        Connection* next = c->next;
        c->abort();
        c = next;
    }
}

void Server::maybe_finish() {
    if (!draining_ || first_ != nullptr || closing_handles_) return;
    closing_handles_ = true;
    if (timers_) {
        close_handle(reinterpret_cast<uv_handle_t*>(&tick_));
        close_handle(reinterpret_cast<uv_handle_t*>(&deadline_));
        timers_ = false;
    }
    if (open_handles_ == 0) finished_ = true;
    if (signals_) {
        close_handle(reinterpret_cast<uv_handle_t*>(&sigint_));
        close_handle(reinterpret_cast<uv_handle_t*>(&sigterm_));
        signals_ = false;
    }
}

void Server::close_handle(uv_handle_t* h) {
    if (uv_is_closing(h)) return;
    h->data = this;
    uv_close(h, [](uv_handle_t* handle) {
        auto* s = static_cast<Server*>(handle->data);
        if (--s->open_handles_ == 0) s->finished_ = true;
    });
}

}  // namespace uvh
