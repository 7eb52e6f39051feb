#include "test/integration/harness.h"

#include <dirent.h>
#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "handlers/records/record_backend.h"
#include "handlers/site_builder.h"

namespace uvh::test {

namespace fs = std::filesystem;

// ------------------------------------------------------------------ TempDir

TempDir::TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "uvh-test-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    // Make everything removable again (tests may chmod things away).
    for (auto it = fs::recursive_directory_iterator(path_, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_directory(ec) && !it->is_symlink(ec))
            fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
    }
    fs::remove_all(path_, ec);
}

std::string TempDir::write(std::string_view rel, std::string_view content) const {
    fs::path p = fs::path(path_) / rel;
    fs::create_directories(p.parent_path());
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!f) throw std::runtime_error("cannot write " + p.string());
    return p.string();
}

std::string TempDir::mkdir(std::string_view rel) const {
    fs::path p = fs::path(path_) / rel;
    fs::create_directories(p);
    return p.string();
}

std::string TempDir::read(std::string_view rel) const {
    std::ifstream f(fs::path(path_) / rel, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

bool TempDir::exists(std::string_view rel) const {
    std::error_code ec;
    return fs::exists(fs::symlink_status(fs::path(path_) / rel, ec));
}

// ---------------------------------------------------------------- RawClient

RawClient::RawClient(TestServer& server) : server_(server) {
    std::string error = sock_.connect(server.port());
    if (!error.empty()) throw std::runtime_error(error);
}

RawClient::~RawClient() = default;

// One round of the server's loop, then at most a millisecond's wait for its
// readiness (sockets, threadpool and timers are all seen there).
RawSocket::Pump RawClient::pump() {
    return [this] {
        uv_run(server_.loop(), UV_RUN_NOWAIT);
        struct pollfd p[2] = {{uv_backend_fd(server_.loop()), POLLIN, 0}, {sock_.fd(), POLLIN, 0}};
        poll(p, sock_.fd() >= 0 ? 2 : 1, 1);
    };
}

namespace {
RawSocket::Clock::time_point after(std::chrono::milliseconds d) { return RawSocket::Clock::now() + d; }
}  // namespace

void RawClient::send(std::string_view bytes) {
    switch (sock_.send_all(bytes, after(std::chrono::seconds(10)), pump())) {
    case RawSocket::Sent::All:
        return;
    case RawSocket::Sent::PeerGone:
        throw std::runtime_error(std::string("send failed: ") + std::strerror(errno));
    case RawSocket::Sent::TimedOut:
        throw std::runtime_error("send timed out");
    }
}

void RawClient::send_and_wait_read(std::string_view bytes) {
    uint64_t target = server_.server().metrics().bytes_in + bytes.size();
    send(bytes);
    if (!server_.spin_until([&] { return server_.server().metrics().bytes_in >= target; }))
        throw std::runtime_error("the server did not read what was sent");
}

std::optional<HttpResponse> RawClient::read_response(bool head_only, std::chrono::milliseconds timeout) {
    return sock_.read_response(head_only, after(timeout), pump());
}

bool RawClient::wait_closed(std::chrono::milliseconds timeout) { return sock_.read_to_eof(after(timeout), pump()); }

void RawClient::shutdown_write() { sock_.shutdown_write(); }

void RawClient::reset() { sock_.reset(); }

// --------------------------------------------------------------- TestServer

const char* records_conninfo() {
    const char* v = std::getenv("UVH_TEST_RECORDS");
    return v && *v ? v : nullptr;
}

namespace {

// A fresh store for each TestServer: the schema goes, and the server
// creates it again (blocking libpq is fine in a test, before the loop runs).
void drop_pg_schema(const char* conninfo) {
    PGconn* pg = PQconnectdb(conninfo);
    if (PQstatus(pg) != CONNECTION_OK) {
        std::string msg = PQerrorMessage(pg);
        PQfinish(pg);
        throw std::runtime_error("cannot connect to UVH_TEST_RECORDS: " + msg);
    }
    // Every object pg_schema.h creates (test/e2e/pg.py's reset drops the same).
    PGresult* r = PQexec(pg, "DROP TABLE IF EXISTS uvhttpd_records, uvhttpd_schema, uvhttpd_records_size; "
                             "DROP SEQUENCE IF EXISTS uvhttpd_records_auto; "
                             "DROP FUNCTION IF EXISTS uvhttpd_records_append(text), "
                             "uvhttpd_records_append(text, bigint), uvhttpd_records_put(text, text), "
                             "uvhttpd_records_put(text, text, bigint), uvhttpd_records_bump, "
                             "uvhttpd_records_count, uvhttpd_records_next_auto");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    std::string msg = PQerrorMessage(pg);
    PQclear(r);
    PQfinish(pg);
    if (!ok) throw std::runtime_error("cannot reset the record schema: " + msg);
}

}  // namespace

TestServer::TestServer(std::function<void(Config&)> configure) {
    if (uv_loop_init(&loop_) != 0) throw std::runtime_error("uv_loop_init failed");
    Config cfg;
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.root = root_.path();
    cfg.install_signals = false;
    cfg.access_log = "off";
    if (const char* pg = records_conninfo()) cfg.records = pg;
    if (configure) configure(cfg);
    // A read-only server reads the store as an earlier one left it.
    if (!cfg.records.empty() && !cfg.read_only) drop_pg_schema(cfg.records.c_str());
    server_ = std::make_unique<Server>(&loop_, cfg, build_site(cfg));
    std::string error;
    if (!server_->start(error)) throw std::runtime_error("server start failed: " + error);
    if (records_in_postgres() &&
        !spin_until([&] { return server_->site().records && server_->site().records->available(); }))
        throw std::runtime_error("the record store did not connect to PostgreSQL");
}

void TestServer::stop() {
    if (stopped_) return;
    stopped_ = true;
    server_->shutdown();
    if (!spin_until([&] { return server_->finished(); }, std::chrono::seconds(40)))
        throw std::runtime_error("server did not finish");
}

TestServer::~TestServer() {
    try {
        stop();
    } catch (...) {
    }
    server_.reset();
    // Let the last requests (asynchronous closes) come back, then the loop
    // must close cleanly: nothing leaked.
    for (int i = 0; i < 10000 && uv_loop_alive(&loop_); ++i) uv_run(&loop_, UV_RUN_ONCE);
    int rc = uv_loop_close(&loop_);
    if (rc != 0) {
        // Destructors must not throw; abort so the test run reports it.
        std::fprintf(stderr, "uv_loop_close failed: %s (a handle or request leaked)\n", uv_strerror(rc));
        std::abort();
    }
}

bool TestServer::spin_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (pred()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        uv_run(&loop_, UV_RUN_NOWAIT);
        if (pred()) return true;
        // Wait for the loop's own readiness (sockets, threadpool, timers are
        // checked every round) for at most a millisecond, then look again.
        struct pollfd p {uv_backend_fd(&loop_), POLLIN, 0};
        poll(&p, 1, 1);
    }
}

void TestServer::spin_for(std::chrono::milliseconds duration) {
    spin_until([] { return false; }, duration);
}

HttpResponse TestServer::get(std::string_view target, std::string_view extra_headers) {
    std::string raw = "GET ";
    raw.append(target);
    raw.append(" HTTP/1.1\r\nHost: localhost\r\n");
    raw.append(extra_headers);
    raw.append("Connection: close\r\n\r\n");
    return request(raw);
}

HttpResponse TestServer::request(std::string_view raw, bool head_only) {
    RawClient c(*this);
    c.send(raw);
    auto r = c.read_response(head_only);
    if (!r) throw std::runtime_error("no response to: " + std::string(raw.substr(0, 80)));
    return *r;
}

size_t open_fd_count() {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator("/proc/self/fd")) {
        (void)e;
        ++n;
    }
    return n;
}

}  // namespace uvh::test
