#include "core/access_log.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace uvh {

namespace {

// Start a write once this much has collected, whatever the tick says.
constexpr size_t kFlushAt = 64 * 1024;
// If the disk cannot keep up, drop lines past this rather than grow.
constexpr size_t kMaxBuffered = 8 * 1024 * 1024;
// A burst may grow the two buffers up to kMaxBuffered; past this, a buffer
// that was written out is given back, so a long-running server's memory
// returns to its usual size after the burst.
constexpr size_t kKeepCapacity = 4 * kFlushAt;

constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Request lines and headers are client data: quotes, backslashes and
// control bytes are written as \xHH so a line cannot be forged or broken.
void append_escaped(std::string& out, std::string_view s) {
    if (s.empty()) {
        out.push_back('-');
        return;
    }
    static constexpr char kHex[] = "0123456789abcdef";
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            out += "\\x";
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 15]);
        } else {
            out.push_back(ch);
        }
    }
}

}  // namespace

AccessLog::AccessLog(uv_loop_t* loop, std::string target, Format format)
    : loop_(loop), target_(std::move(target)), format_(format) {}

AccessLog::~AccessLog() {
    if (owns_fd_ && fd_ >= 0) ::close(fd_);
}

bool AccessLog::open(std::string& error) {
    if (target_ == "off") return true;
    if (target_ == "-") {
        fd_ = STDOUT_FILENO;
        owns_fd_ = false;
    } else {
        // Start-up, before the loop runs: a blocking open holds up no client.
        fd_ = ::open(target_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0) {
            error = fmt::format("cannot open --access-log '{}': {}", target_, std::strerror(errno));
            return false;
        }
        owns_fd_ = true;
    }
    enabled_ = true;
    return true;
}

void AccessLog::write(const LogRecord& r) {
    if (!enabled_) return;
    if (buf_.size() > kMaxBuffered) {
        ++dropped_;
        return;
    }
    std::string client = r.client ? r.client->to_string() : std::string("-");
    if (format_ == Format::Json) {
        nlohmann::json j = {
            {"time", fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(r.time))},
            {"client", client},
            {"method", std::string(r.method)},
            {"target", std::string(r.target)},
            {"protocol", r.http_minor == 0 ? "HTTP/1.0" : "HTTP/1.1"},
            {"status", r.status},
            {"bytes", r.bytes},
            {"duration_us", r.duration_us},
            {"user_agent", std::string(r.user_agent)},
            {"referer", std::string(r.referer)},
            {"request_id", std::string(r.request_id)},
        };
        buf_ += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        buf_.push_back('\n');
    } else {
        if (r.time != stamp_time_) {
            struct tm tm {};
            gmtime_r(&r.time, &tm);
            std::snprintf(stamp_, sizeof stamp_, "%02d/%s/%04d:%02d:%02d:%02d +0000", tm.tm_mday, kMonths[tm.tm_mon],
                          tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
            stamp_time_ = r.time;
        }
        // %h %l %u [%t] "%r" %>s %b "%{Referer}i" "%{User-Agent}i"
        buf_ += client;
        buf_ += " - - [";
        buf_ += stamp_;
        buf_ += "] \"";
        if (r.method.empty()) {
            buf_.push_back('-');
        } else {
            append_escaped(buf_, r.method);
            buf_.push_back(' ');
            append_escaped(buf_, r.target);
            buf_ += r.http_minor == 0 ? " HTTP/1.0" : " HTTP/1.1";
        }
        buf_ += "\" ";
        buf_ += fmt::format_int(r.status).c_str();
        buf_.push_back(' ');
        buf_ += fmt::format_int(r.bytes).c_str();
        buf_ += " \"";
        append_escaped(buf_, r.referer);
        buf_ += "\" \"";
        append_escaped(buf_, r.user_agent);
        buf_ += "\"\n";
    }
    if (buf_.size() >= kFlushAt) flush();
}

void AccessLog::flush() {
    if (!enabled_ || writing_ || reopening_ || buf_.empty()) return;
    inflight_.swap(buf_);
    buf_.clear();
    uv_buf_t b = uv_buf_init(inflight_.data(), static_cast<unsigned>(inflight_.size()));
    write_req_.data = this;
    if (uv_fs_write(loop_, &write_req_, fd_, &b, 1, -1, on_written) != 0) {
        dropped_ += 1;
        inflight_.clear();
        return;
    }
    writing_ = true;
}

void AccessLog::on_written(uv_fs_t* req) {
    auto* log = static_cast<AccessLog*>(req->data);
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    log->writing_ = false;
    if (n >= 0 && static_cast<size_t>(n) < log->inflight_.size()) {
        // A short write (a pipe, a full disk): put the rest back in front.
        log->buf_.insert(0, log->inflight_, static_cast<size_t>(n), std::string::npos);
    } else if (n < 0) {
        ++log->dropped_;
    }
    log->inflight_.clear();
    if (log->inflight_.capacity() > kKeepCapacity) std::string().swap(log->inflight_);
    if (log->reopen_pending_) {
        log->reopen_pending_ = false;
        log->reopen();
        return;
    }
    if (log->buf_.size() >= kFlushAt || log->draining_) log->flush();
}

void AccessLog::reopen() {
    if (!enabled_ || !owns_fd_ || reopening_) return;
    if (writing_) {
        // Let the write to the old file finish, then switch.
        reopen_pending_ = true;
        return;
    }
    reopening_ = true;
    open_req_.data = this;
    if (uv_fs_open(loop_, &open_req_, target_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644,
                   on_reopened) != 0)
        reopening_ = false;
}

void AccessLog::on_reopened(uv_fs_t* req) {
    auto* log = static_cast<AccessLog*>(req->data);
    ssize_t fd = req->result;
    uv_fs_req_cleanup(req);
    if (fd < 0) {
        fmt::print(stderr, "uvhttpd: cannot reopen --access-log '{}': {}\n", log->target_,
                   uv_strerror(static_cast<int>(fd)));
        log->reopening_ = false;
        return;
    }
    int old = log->fd_;
    log->fd_ = static_cast<int>(fd);
    log->reopening_ = false;
    // Closing the old descriptor is a file-system call: on the threadpool.
    auto* close_req = new uv_fs_t;
    if (uv_fs_close(log->loop_, close_req, old, [](uv_fs_t* r) {
            uv_fs_req_cleanup(r);
            delete r;
        }) != 0) {
        uv_fs_req_cleanup(close_req);
        delete close_req;
    }
    log->flush();
}

void AccessLog::flush_blocking() {
    if (!enabled_) return;
    for (std::string* s : {&inflight_, &buf_}) {
        const char* p = s->data();
        size_t left = s->size();
        while (left > 0) {
            // Wait for the log to take bytes, but not forever.
            struct pollfd pfd {fd_, POLLOUT, 0};
            if (poll(&pfd, 1, 2000) != 1) break;
            ssize_t n = ::write(fd_, p, left);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            p += n;
            left -= static_cast<size_t>(n);
        }
        s->clear();
    }
}

}  // namespace uvh
