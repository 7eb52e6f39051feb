// Steady state serving a small cached file allocates nothing per request
// (issue: performance). The whole process's operator new is counted, but
// only while the server's loop runs: the test's own client code works on
// preallocated buffers outside those windows.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "test/integration/harness.h"

namespace {

thread_local bool counting = false;
std::atomic<long> allocations{0};

}  // namespace

void* operator new(size_t n) {
    if (counting) ++allocations;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new[](size_t n) {
    if (counting) ++allocations;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
// The nothrow forms too, so every new pairs with this file's delete (a
// sanitizer's own nothrow new paired with free() is a mismatch it reports).
void* operator new(size_t n, const std::nothrow_t&) noexcept {
    if (counting) ++allocations;
    return std::malloc(n ? n : 1);
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
    if (counting) ++allocations;
    return std::malloc(n ? n : 1);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

using namespace uvh::test;

namespace {

// Runs the server's loop (counted) until `want` response bytes arrived on fd.
void serve_until(TestServer& t, int fd, char* buf, size_t want) {
    size_t got = 0;
    for (int rounds = 0; got < want && rounds < 100000; ++rounds) {
        counting = true;
        uv_run(t.loop(), UV_RUN_NOWAIT);
        counting = false;
        ssize_t n = recv(fd, buf + got, want - got, MSG_DONTWAIT);
        if (n > 0) got += static_cast<size_t>(n);
        if (got < want) {
            struct pollfd p {uv_backend_fd(t.loop()), POLLIN, 0};
            poll(&p, 1, 1);
        }
    }
    REQUIRE(got == want);
}

}  // namespace

TEST_CASE("a cached small file is served without heap allocation per request", "[alloc]") {
    TestServer t([](uvh::Config& c) { c.cache_revalidate_ms = 3'600'000; });  // no re-reads during the test
    t.root().write("index.html", std::string(571, 'x'));
    RawClient c(t);
    const std::string req = "GET /index.html HTTP/1.1\r\nHost: bench\r\nUser-Agent: alloc-test\r\nAccept: */*\r\n\r\n";
    // Learn the response size and warm everything up (cache, pools, buffers).
    c.send(req);
    auto first = c.read_response();
    REQUIRE(first);
    REQUIRE(first->status == 200);
    const size_t size = first->raw.size();
    std::string pipelined;
    for (int i = 0; i < 16; ++i) pipelined += req;
    char* buf = static_cast<char*>(std::malloc(size * 16));
    for (int i = 0; i < 50; ++i) {
        REQUIRE(send(c.fd(), req.data(), req.size(), 0) == static_cast<ssize_t>(req.size()));
        serve_until(t, c.fd(), buf, size);
        REQUIRE(send(c.fd(), pipelined.data(), pipelined.size(), 0) == static_cast<ssize_t>(pipelined.size()));
        serve_until(t, c.fd(), buf, size * 16);
    }

    allocations = 0;
    for (int i = 0; i < 1000; ++i) {
        REQUIRE(send(c.fd(), req.data(), req.size(), 0) == static_cast<ssize_t>(req.size()));
        serve_until(t, c.fd(), buf, size);
    }
    long single = allocations.exchange(0);
    for (int i = 0; i < 100; ++i) {
        REQUIRE(send(c.fd(), pipelined.data(), pipelined.size(), 0) == static_cast<ssize_t>(pipelined.size()));
        serve_until(t, c.fd(), buf, size * 16);
    }
    long batched = allocations.exchange(0);
    std::free(buf);
    INFO("allocations: " << single << " over 1000 keep-alive requests, " << batched << " over 1600 pipelined");
    CHECK(single == 0);
    CHECK(batched == 0);

    // The counter does count: a directory listing is rendered (and
    // allocates) every time.
    const std::string listing = "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
    REQUIRE(send(c.fd(), listing.data(), listing.size(), 0) == static_cast<ssize_t>(listing.size()));
    counting = true;
    auto r = c.read_response();
    counting = false;
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(allocations.load() > 0);
}

int main(int argc, char* argv[]) {
    std::signal(SIGPIPE, SIG_IGN);
    return Catch::Session().run(argc, argv);
}
