#include "core/supervisor.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>

#include <fmt/format.h>
#include <uv.h>

#include "protocol/address.h"

namespace uvh {

namespace {

struct Worker;

struct Supervisor {
    uv_loop_t* loop = nullptr;
    int listen_fd = -1;
    std::vector<std::string> args;  // worker command line
    std::vector<std::unique_ptr<Worker>> workers;
    bool stopping = false;
    int running = 0;
    int signal_to_forward = 0;
    uv_signal_t sigint{}, sigterm{}, sighup{};
};

struct Worker {
    Supervisor* sup = nullptr;
    int index = 0;
    uv_process_t process{};
    bool alive = false;
    uint64_t started_ms = 0;
    uint64_t backoff_ms = 100;
    uv_timer_t restart{};
};

void start_worker(Worker& w);

void on_restart(uv_timer_t* t) { start_worker(*static_cast<Worker*>(t->data)); }

void on_exit(uv_process_t* p, int64_t status, int term_signal) {
    auto* w = static_cast<Worker*>(p->data);
    Supervisor& sup = *w->sup;
    w->alive = false;
    --sup.running;
    uv_close(reinterpret_cast<uv_handle_t*>(p), nullptr);
    if (sup.stopping) {
        if (sup.running == 0) {
            uv_close(reinterpret_cast<uv_handle_t*>(&sup.sigint), nullptr);
            uv_close(reinterpret_cast<uv_handle_t*>(&sup.sigterm), nullptr);
            uv_close(reinterpret_cast<uv_handle_t*>(&sup.sighup), nullptr);
            for (auto& other : sup.workers) uv_close(reinterpret_cast<uv_handle_t*>(&other->restart), nullptr);
        }
        return;
    }
    fmt::print(stderr, "uvhttpd: worker {} (pid {}) exited (status {}, signal {}); starting it again\n", w->index,
               p->pid, status, term_signal);
    // A worker that dies right after starting waits longer each time, so a
    // broken configuration does not spin.
    uint64_t lived = uv_now(sup.loop) - w->started_ms;
    w->backoff_ms = lived < 1000 ? std::min<uint64_t>(w->backoff_ms * 2, 5000) : 100;
    uv_timer_start(&w->restart, on_restart, w->backoff_ms, 0);
}

void start_worker(Worker& w) {
    Supervisor& sup = *w.sup;
    if (sup.stopping) return;
    std::vector<char*> argv;
    for (std::string& a : sup.args) argv.push_back(a.data());
    argv.push_back(nullptr);
    uv_stdio_container_t stdio[4];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = 1;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    stdio[3].flags = UV_INHERIT_FD;  // the listening socket becomes fd 3
    stdio[3].data.fd = sup.listen_fd;
    uv_process_options_t opts{};
    opts.file = "/proc/self/exe";
    opts.args = argv.data();
    opts.exit_cb = on_exit;
    opts.stdio_count = 4;
    opts.stdio = stdio;
    w.process.data = &w;
    int r = uv_spawn(sup.loop, &w.process, &opts);
    if (r != 0) {
        fmt::print(stderr, "uvhttpd: cannot start worker {}: {}\n", w.index, uv_strerror(r));
        uv_close(reinterpret_cast<uv_handle_t*>(&w.process), nullptr);
        uv_timer_start(&w.restart, on_restart, 1000, 0);
        return;
    }
    w.alive = true;
    w.started_ms = uv_now(sup.loop);
    ++sup.running;
}

void on_signal(uv_signal_t* s, int signum) {
    auto* sup = static_cast<Supervisor*>(s->data);
    if (signum != SIGHUP) {
        if (!sup->stopping) fmt::print(stderr, "uvhttpd: signal {}, stopping {} workers\n", signum, sup->running);
        sup->stopping = true;
        for (auto& w : sup->workers) uv_timer_stop(&w->restart);
    }
    for (auto& w : sup->workers)
        if (w->alive) uv_process_kill(&w->process, signum);
    if (sup->stopping && sup->running == 0) {
        uv_close(reinterpret_cast<uv_handle_t*>(&sup->sigint), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&sup->sigterm), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&sup->sighup), nullptr);
        for (auto& w : sup->workers) uv_close(reinterpret_cast<uv_handle_t*>(&w->restart), nullptr);
    }
}

int open_listener(const Config& config, std::string& url) {
    PeerAddress addr;
    if (!PeerAddress::parse(config.host, addr)) {
        fmt::print(stderr, "uvhttpd: --host '{}' is not an IPv4 or IPv6 address\n", config.host);
        return -1;
    }
    bool v6 = config.host.find(':') != std::string::npos;
    sockaddr_storage ss{};
    if (v6) {
        uv_ip6_addr(config.host.c_str(), config.port, reinterpret_cast<sockaddr_in6*>(&ss));
    } else {
        uv_ip4_addr(config.host.c_str(), config.port, reinterpret_cast<sockaddr_in*>(&ss));
    }
    int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (config.reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (v6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    socklen_t len = v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 4096) != 0) {
        fmt::print(stderr, "uvhttpd: cannot listen on {}:{}: {}\n", config.host, config.port,
                   uv_strerror(uv_translate_sys_error(errno)));
        if (fd >= 0) ::close(fd);
        return -1;
    }
    sockaddr_storage bound{};
    socklen_t blen = sizeof bound;
    getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen);
    PeerAddress b = PeerAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&bound));
    url = v6 ? fmt::format("http://[{}]:{}/", b.to_string(), b.port) : fmt::format("http://{}:{}/", b.to_string(), b.port);
    return fd;
}

}  // namespace

int run_supervisor(const Config& config, int argc, char** argv) {
    Supervisor sup;
    std::string url;
    sup.listen_fd = open_listener(config, url);
    if (sup.listen_fd < 0) return 2;
    // Workers run the same command line, one loop each, on the shared socket.
    for (int i = 0; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--workers") {
            ++i;
            continue;
        }
        if (a.starts_with("--workers=")) continue;
        sup.args.emplace_back(a);
    }
    sup.args.emplace_back("--listen-fd");
    sup.args.emplace_back("3");

    sup.loop = uv_default_loop();
    for (uv_signal_t* s : {&sup.sigint, &sup.sigterm, &sup.sighup}) {
        uv_signal_init(sup.loop, s);
        s->data = &sup;
    }
    uv_signal_start(&sup.sigint, on_signal, SIGINT);
    uv_signal_start(&sup.sigterm, on_signal, SIGTERM);
    uv_signal_start(&sup.sighup, on_signal, SIGHUP);
    for (int i = 0; i < config.workers; ++i) {
        auto w = std::make_unique<Worker>();
        w->sup = &sup;
        w->index = i;
        uv_timer_init(sup.loop, &w->restart);
        w->restart.data = w.get();
        sup.workers.push_back(std::move(w));
    }
    for (auto& w : sup.workers) start_worker(*w);
    std::printf("listening on %s\n", url.c_str());
    std::fflush(stdout);
    fmt::print(stderr, "uvhttpd {}: supervisor of {} workers on {}\n", kVersion, config.workers, url);
    uv_run(sup.loop, UV_RUN_DEFAULT);
    ::close(sup.listen_fd);
    uv_loop_close(sup.loop);
    return 0;
}

}  // namespace uvh
