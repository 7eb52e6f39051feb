#include "test/integration/harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "handlers/site_builder.h"

namespace uvh::test {

namespace fs = std::filesystem;

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

// Tries to parse one complete response at the start of `buf`. Returns the
// number of bytes it used, or 0 if more bytes are needed. `eof` allows a
// body delimited by the connection close.
size_t parse_response(const std::string& buf, bool head_only, bool eof, HttpResponse& out) {
    size_t end = buf.find("\r\n\r\n");
    if (end == std::string::npos) return 0;
    HttpResponse r;
    std::string_view head(buf.data(), end);
    size_t line_end = head.find("\r\n");
    std::string_view status_line = head.substr(0, line_end);
    size_t sp1 = status_line.find(' ');
    if (sp1 == std::string_view::npos) throw std::runtime_error("bad status line: " + std::string(status_line));
    r.version = std::string(status_line.substr(0, sp1));
    r.status = std::atoi(std::string(status_line.substr(sp1 + 1, 3)).c_str());
    if (status_line.size() > sp1 + 5) r.reason = std::string(status_line.substr(sp1 + 5));
    std::string_view rest = line_end == std::string_view::npos ? std::string_view{} : head.substr(line_end + 2);
    while (!rest.empty()) {
        size_t e = rest.find("\r\n");
        std::string_view line = rest.substr(0, e);
        rest = e == std::string_view::npos ? std::string_view{} : rest.substr(e + 2);
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) throw std::runtime_error("bad header line: " + std::string(line));
        std::string_view v = line.substr(colon + 1);
        while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
        r.headers.emplace(lower(line.substr(0, colon)), std::string(v));
    }
    size_t body_start = end + 4;
    size_t used = body_start;
    bool no_body = head_only || r.status < 200 || r.status == 204 || r.status == 304;
    if (!no_body) {
        if (lower(r.header("transfer-encoding")).find("chunked") != std::string::npos) {
            size_t pos = body_start;
            for (;;) {
                size_t le = buf.find("\r\n", pos);
                if (le == std::string::npos) return 0;
                size_t n = std::strtoul(buf.substr(pos, le - pos).c_str(), nullptr, 16);
                pos = le + 2;
                if (n == 0) {
                    size_t te = buf.find("\r\n", pos);
                    if (te == std::string::npos) return 0;
                    pos = te + 2;
                    break;
                }
                if (buf.size() < pos + n + 2) return 0;
                r.body.append(buf, pos, n);
                pos += n + 2;
            }
            used = pos;
        } else if (r.has("content-length")) {
            size_t n = std::strtoull(r.header("content-length").c_str(), nullptr, 10);
            if (buf.size() < body_start + n) return 0;
            r.body = buf.substr(body_start, n);
            used = body_start + n;
        } else {
            if (!eof) return 0;
            r.body = buf.substr(body_start);
            used = buf.size();
        }
    }
    r.raw = buf.substr(0, used);
    out = std::move(r);
    return used;
}

}  // namespace

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

// ------------------------------------------------------------- HttpResponse

bool HttpResponse::has(std::string_view name) const { return headers.count(lower(name)) > 0; }

std::string HttpResponse::header(std::string_view name) const {
    auto it = headers.find(lower(name));
    return it == headers.end() ? std::string() : it->second;
}

size_t HttpResponse::count(std::string_view name) const { return headers.count(lower(name)); }

// ---------------------------------------------------------------- RawClient

RawClient::RawClient(TestServer& server) : server_(server) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(server.port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // The kernel completes the handshake from the listen backlog, so a
    // blocking connect returns before the server's loop accepts.
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        throw std::runtime_error(std::string("connect failed: ") + std::strerror(errno));
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
}

RawClient::~RawClient() {
    if (fd_ >= 0) close(fd_);
}

void RawClient::send(std::string_view bytes) {
    size_t done = 0;
    bool ok = server_.spin_until([&] {
        while (done < bytes.size()) {
            ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
            if (n > 0) {
                done += static_cast<size_t>(n);
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
            throw std::runtime_error(std::string("send failed: ") + std::strerror(errno));
        }
        return true;
    });
    if (!ok) throw std::runtime_error("send timed out");
}

void RawClient::send_and_wait_read(std::string_view bytes) {
    uint64_t target = server_.server().metrics().bytes_in + bytes.size();
    send(bytes);
    if (!server_.spin_until([&] { return server_.server().metrics().bytes_in >= target; }))
        throw std::runtime_error("the server did not read what was sent");
}

bool RawClient::fill() {
    char tmp[65536];
    for (;;) {
        ssize_t n = recv(fd_, tmp, sizeof tmp, 0);
        if (n > 0) {
            buf_.append(tmp, static_cast<size_t>(n));
            continue;
        }
        if (n == 0) {
            eof_ = true;
            return false;
        }
        if (errno == EAGAIN) return true;
        if (errno == EINTR) continue;
        eof_ = true;  // reset counts as closed
        return false;
    }
}

std::optional<HttpResponse> RawClient::read_response(bool head_only, std::chrono::milliseconds timeout) {
    HttpResponse r;
    size_t used = 0;
    server_.spin_until(
        [&] {
            if (!eof_) fill();
            used = parse_response(buf_, head_only, eof_, r);
            return used > 0 || eof_;
        },
        timeout);
    if (used == 0) return std::nullopt;
    buf_.erase(0, used);
    return r;
}

bool RawClient::wait_closed(std::chrono::milliseconds timeout) {
    return server_.spin_until(
        [&] {
            if (!eof_) fill();
            return eof_;
        },
        timeout);
}

void RawClient::shutdown_write() { ::shutdown(fd_, SHUT_WR); }

void RawClient::reset() {
    struct linger l {1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd_);
    fd_ = -1;
}

// --------------------------------------------------------------- TestServer

TestServer::TestServer(std::function<void(Config&)> configure) {
    if (uv_loop_init(&loop_) != 0) throw std::runtime_error("uv_loop_init failed");
    Config cfg;
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.root = root_.path();
    cfg.install_signals = false;
    cfg.access_log = "off";
    if (configure) configure(cfg);
    server_ = std::make_unique<Server>(&loop_, cfg, build_site(cfg));
    std::string error;
    if (!server_->start(error)) throw std::runtime_error("server start failed: " + error);
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
