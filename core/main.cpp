// uvhttpd: parse the command line, open the root, listen, run one loop.
#include <sys/resource.h>

#include <csignal>
#include <cstdio>

#include <fmt/format.h>
#include <uv.h>

#include "core/config.h"
#include "core/server.h"

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

    uv_loop_t* loop = uv_default_loop();
    int status = 0;
    {
        uvh::Server server(loop, config);
        std::string error;
        if (!server.start(error)) {
            fmt::print(stderr, "uvhttpd: {}\n", error);
            return 2;
        }
        // Scripts start the server on port 0 and read this line.
        std::printf("listening on %s\n", server.url().c_str());
        std::fflush(stdout);
        fmt::print(stderr, "uvhttpd {}: serving {} on {}\n", uvh::kVersion, config.root, server.url());
        uv_run(loop, UV_RUN_DEFAULT);
    }
    // Give pending close requests their callbacks before closing the loop.
    uv_run(loop, UV_RUN_DEFAULT);
    if (uv_loop_close(loop) != 0) status = 1;
    return status;
}
