// The access log: one line per request, combined (Apache/nginx) or JSON.
// Lines collect in memory and go to the file through the threadpool (one
// write in flight at a time), flushed on the server's tick or when enough
// has collected, so logging never blocks the loop. SIGHUP reopens the file
// (logrotate's "move, then signal") without losing a line.
#pragma once

#include <uv.h>

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

#include "protocol/address.h"

namespace uvh {

struct LogRecord {
    time_t time = 0;
    const PeerAddress* client = nullptr;
    std::string_view method, target;
    int http_minor = 1;
    int status = 0;
    uint64_t bytes = 0;  // response bytes sent (head and body)
    uint64_t duration_us = 0;
    std::string_view user_agent, referer, request_id;
};

class AccessLog {
public:
    enum class Format { Combined, Json };

    AccessLog(uv_loop_t* loop, std::string target, Format format);
    ~AccessLog();
    AccessLog(const AccessLog&) = delete;
    AccessLog& operator=(const AccessLog&) = delete;

    // Opens the target at start-up ("-" is stdout, "off" disables).
    bool open(std::string& error);
    bool enabled() const { return enabled_; }

    void write(const LogRecord& r);
    // Starts writing what has collected, if nothing is in flight.
    void flush();
    // Opens the path again and switches to the new file once it is open.
    void reopen();
    // Writes everything left, blocking: only at exit, after the loop ended.
    void flush_blocking();

    // Busy while a write or reopen is in flight, or lines wait to be written.
    bool busy() const { return writing_ || reopening_ || (enabled_ && !buf_.empty()); }
    // From now on every finished write starts the next at once (shutdown).
    void drain_mode() {
        draining_ = true;
        flush();
    }
    uint64_t dropped() const { return dropped_; }

private:
    static void on_written(uv_fs_t* req);
    static void on_reopened(uv_fs_t* req);

    uv_loop_t* loop_;
    std::string target_;
    Format format_;
    bool enabled_ = false;
    int fd_ = -1;
    bool owns_fd_ = false;
    std::string buf_;       // collecting
    std::string inflight_;  // being written
    uv_fs_t write_req_{};
    uv_fs_t open_req_{};
    bool writing_ = false;
    bool reopening_ = false;
    bool reopen_pending_ = false;
    bool draining_ = false;
    uint64_t dropped_ = 0;
    time_t stamp_time_ = -1;
    char stamp_[32] = {};  // "25/Nov/2026:19:00:00 +0000"
};

}  // namespace uvh
