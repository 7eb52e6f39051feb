// uvhttpd: parse the command line, assemble the site and the server that
// serves it, listen, run one loop.
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>

#include <fmt/format.h>
#include <uv.h>

#include "core/config.h"
#include "core/server.h"
#include "core/supervisor.h"

namespace {

// Each connection is a descriptor; the default soft limit (often 1024)
// would cap a server meant for 10,000 connections.
void raise_nofile_limit() {
    struct rlimit rl {};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

// Waits up to 10 ms for the loop to have something to do.
void poll_briefly(uv_loop_t* loop) {
    struct pollfd p {uv_backend_fd(loop), POLLIN, 0};
    poll(&p, 1, 10);
}

}  // namespace

int main(int argc, char** argv) {
    // Writing to a socket the peer closed must be an EPIPE error, not a
    // signal that kills the process.
    std::signal(SIGPIPE, SIG_IGN);

    uvh::Config config;
    uvh::ParseOutcome parsed = uvh::parse_args(argc, argv, config);
    if (parsed.kind == uvh::ParseOutcome::Kind::ExitOk) {
        std::fputs(parsed.message.c_str(), stdout);
        return 0;
    }
    if (parsed.kind == uvh::ParseOutcome::Kind::ExitError) {
        fmt::print(stderr, "uvhttpd: {}\n", parsed.message);
        return 2;
    }
    raise_nofile_limit();
    if (config.workers > 1 && config.listen_fd < 0) return uvh::run_supervisor(config, argc, argv);

    uv_loop_t* loop = uv_default_loop();
    int status = 0;
    {
        uvh::Server server(loop, config, uvh::build_site(config));
        std::string error;
        if (!server.start(error, config.listen_fd)) {
            fmt::print(stderr, "uvhttpd: {}\n", error);
            return 2;
        }
        // Scripts start the server on port 0 and read this line. A worker
        // stays quiet: its supervisor already said it.
        if (config.listen_fd < 0) {
            std::printf("listening on %s\n", server.url().c_str());
            std::fflush(stdout);
        }
        fmt::print(stderr, "uvhttpd {}: serving {} on {}, writes {}, access log {}\n", uvh::kVersion, config.root,
                   server.url(),
                   config.read_only ? "off" : (config.write_token.empty() ? "open (no token)" : "need the token"),
                   config.access_log);
        while (!server.handles_closed()) uv_run(loop, UV_RUN_ONCE);
        // Every connection is gone. The last access-log write may still be
        // on a worker; give it a bounded time (a log pipe nobody reads
        // would otherwise hold the exit forever).
        uint64_t deadline = uv_hrtime() + 5'000'000'000ull;
        while (server.access_log().busy() && uv_hrtime() < deadline) {
            uv_run(loop, UV_RUN_NOWAIT);
            poll_briefly(loop);
        }
        if (server.access_log().busy()) {
            fmt::print(stderr, "uvhttpd: the access log did not drain; exiting without it\n");
            std::fflush(stderr);
            _exit(0);
        }
        server.access_log().flush_blocking();
    }
    // Give pending close requests their callbacks before closing the loop.
    uv_run(loop, UV_RUN_DEFAULT);
    if (uv_loop_close(loop) != 0) status = 1;
    return status;
}
