// In-process server tests: the real Server on its own loop, port 0, a
// temporary root, and a raw-socket client. The test thread drives the loop
// with spin_until(), which runs it until a condition holds or a deadline
// passes; nothing sleeps to synchronise. Teardown shuts the server down and
// requires uv_loop_close() == 0, so a leaked handle or request fails the test.
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/config.h"
#include "core/server.h"
#include "test/common/raw_http.h"

namespace uvh::test {

// A temporary directory, removed with everything in it at destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    // Writes a file (creating parent directories) and returns its full path.
    std::string write(std::string_view rel, std::string_view content) const;
    std::string mkdir(std::string_view rel) const;
    std::string read(std::string_view rel) const;
    bool exists(std::string_view rel) const;

private:
    std::string path_;
};

class TestServer;

// The shared raw client (test/common/raw_http.h) driven by this server's
// loop: while it waits, the loop runs.
class RawClient {
public:
    explicit RawClient(TestServer& server);
    ~RawClient();
    RawClient(const RawClient&) = delete;
    RawClient& operator=(const RawClient&) = delete;

    // Sends all bytes, spinning the loop while the socket buffer is full.
    // Returns as soon as the kernel took them: the server may not have read
    // them yet, and several sends may reach it in one read.
    void send(std::string_view bytes);
    // Sends the bytes and runs the loop until the server has read them (its
    // bytes_in counter grew by their size), so the next send arrives in a
    // read of its own. Only meaningful while this is the one client
    // sending; throws after 10 s.
    void send_and_wait_read(std::string_view bytes);
    // Reads one response (Content-Length, chunked or close-delimited; the
    // body decoded). `head_only` for HEAD and the like: no body follows
    // whatever the head says. nullopt on timeout or EOF before a complete
    // response; a malformed one throws.
    std::optional<HttpResponse> read_response(bool head_only = false,
                                              std::chrono::milliseconds timeout = std::chrono::seconds(10));
    // True when the server closed the connection (EOF or reset) within
    // the timeout, after any data still unread is drained.
    bool wait_closed(std::chrono::milliseconds timeout = std::chrono::seconds(10));
    // Bytes received and not yet consumed by read_response.
    const std::string& buffered() const { return sock_.buffered(); }
    void shutdown_write();
    void reset();  // close with SO_LINGER 0: the peer sees an RST
    int fd() const { return sock_.fd(); }

private:
    RawSocket::Pump pump();
    TestServer& server_;
    RawSocket sock_;
};

class TestServer {
public:
    // `configure` may change the Config before start (root and port are
    // already set to the temporary root and 0).
    explicit TestServer(std::function<void(Config&)> configure = {});
    ~TestServer();
    TestServer(const TestServer&) = delete;
    TestServer& operator=(const TestServer&) = delete;

    TempDir& root() { return root_; }
    Server& server() { return *server_; }
    uv_loop_t* loop() { return &loop_; }
    uint16_t port() const { return server_->port(); }

    // Runs the loop until pred() or the deadline; returns pred().
    bool spin_until(const std::function<bool()>& pred,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10));
    // Runs the loop for a while regardless (for "nothing happens" checks).
    void spin_for(std::chrono::milliseconds duration);

    // One request on a fresh connection; the whole response.
    HttpResponse get(std::string_view target, std::string_view extra_headers = {});
    HttpResponse request(std::string_view raw, bool head_only = false);

    // Stops the server gracefully and waits for it to finish.
    void stop();

private:
    TempDir root_;
    uv_loop_t loop_{};
    std::unique_ptr<Server> server_;
    bool stopped_ = false;
};

// The record store under test: the file (default) or, when
// UVH_TEST_RECORDS holds a PostgreSQL connection string (test/e2e/pg.py
// sets it for the "integration.records_on_postgresql" CTest test),
// PostgreSQL: every TestServer then starts with --records on an emptied
// schema and waits until the store is up.
const char* records_conninfo();
inline bool records_in_postgres() { return records_conninfo() != nullptr; }

// Open descriptors of this process (for leak checks).
size_t open_fd_count();

}  // namespace uvh::test
