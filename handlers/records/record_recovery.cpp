// RecordFile's start-up checks (recover()): a torn last line is set aside,
// ids on several lines are reported (see record_file.h).
#include "handlers/records/record_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <string>

#include "handlers/fs_ops.h"

namespace uvh {

namespace {

// For the one stderr line about a set-aside tail: printable ASCII as it is,
// '"' and '\\' escaped, every other byte as \xNN, at most kLogBytes of it.
constexpr size_t kLogBytes = 200;
std::string escape_for_log(std::string_view bytes) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < bytes.size() && i < kLogBytes; ++i) {
        unsigned char c = static_cast<unsigned char>(bytes[i]);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(static_cast<char>(c));
        } else if (c >= 0x20 && c < 0x7f) {
            out.push_back(static_cast<char>(c));
        } else {
            out.append("\\x");
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 15]);
        }
    }
    return out;
}

// One line on stderr, written with one call so lines of several threads or
// workers do not interleave.
void log_line(const std::string& line) {
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
}

}  // namespace

// A last line without '\n' (the bytes after scanned_) is either an append
// a crash cut short (never acknowledged, maybe cut mid-value) or a line
// someone added by hand without a newline; the store cannot tell which.
// So it is neither taken as a record nor glued to the next append nor
// dropped: its bytes go to ".NAME.torn-YYYYmmddTHHMMSSZ" next to the store
// (hidden, so never served; not kTmpPrefix, so never cleaned up), durably,
// before the store is cut back to its complete lines, and one line on
// stderr says so. Returns 0 or an errno (then the store is unchanged).
int RecordFile::set_aside_tail(Locked& lk) {
    uint64_t size = static_cast<uint64_t>(lk.st.st_size);
    if (size <= scanned_) return 0;
    std::string tail;
    if (!read_exact(lk.fd, scanned_, static_cast<size_t>(size - scanned_), tail)) return errno;
    int dfd = open_parent_dir();
    if (dfd < 0) return errno;
    std::string parent, base;
    split_parent(path_, parent, base);
    char stamp[32];
    time_t now = time(nullptr);
    struct tm tm {};
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    // NAME_MAX is 255: leave room for ".", ".torn-", the stamp and "-NNN".
    std::string name_base = "." + base.substr(0, 200) + ".torn-" + stamp;
    std::string name;
    int tfd = -1;
    for (int n = 1; n < 1000 && tfd < 0; ++n) {
        name = n == 1 ? name_base : name_base + "-" + std::to_string(n);
        tfd = openat(dfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (tfd < 0 && errno != EEXIST) break;
    }
    if (tfd < 0) {
        int err = errno;
        close(dfd);
        return err;
    }
    int err = 0;
    if (!write_all(tfd, tail.data(), tail.size()) || fdatasync(tfd) < 0) err = errno;
    close(tfd);
    if (err == 0 && fsync(dfd) < 0) err = errno;
    if (err != 0) {
        unlinkat(dfd, name.c_str(), 0);
        close(dfd);
        return err;
    }
    close(dfd);
    if (ftruncate(lk.fd, static_cast<off_t>(scanned_)) < 0 || fdatasync(lk.fd) < 0) return errno;
    lk.st.st_size = static_cast<off_t>(scanned_);
    log_line("uvhttpd: record store " + path_ + ": the last line had no newline (a crash mid-write or a hand edit); moved its " +
             std::to_string(tail.size()) + " bytes to " + name + ": \"" + escape_for_log(tail) + "\"" +
             (tail.size() > kLogBytes ? "..." : "") + "\n");
    return 0;
}

// One stderr line per id that more than one line carries (at most
// kReportIds of them, then a count): a hand edit or a merge of two files.
void RecordFile::report_duplicates() {
    constexpr size_t kReportIds = 10;
    std::vector<std::pair<std::string, uint64_t>> dups(dups_.begin(), dups_.end());
    std::sort(dups.begin(), dups.end());
    for (size_t i = 0; i < dups.size() && i < kReportIds; ++i)
        log_line("uvhttpd: record store " + path_ + ": id " + dups[i].first + " is on " +
                 std::to_string(dups[i].second + 1) + " lines; GET, PUT and DELETE use the first\n");
    if (dups.size() > kReportIds)
        log_line("uvhttpd: record store " + path_ + ": and " + std::to_string(dups.size() - kReportIds) +
                 " more ids are on several lines\n");
}

int RecordFile::recover(bool writable) {
    try {
        Locked lk;
        if (int err = lock(writable, false, lk)) return err == ENOENT ? 0 : err;
        std::lock_guard<std::mutex> g(mu_);
        if (int err = refresh_index(lk)) return err;
        report_duplicates();
        if (writable) return set_aside_tail(lk);
        if (static_cast<uint64_t>(lk.st.st_size) > scanned_)
            log_line("uvhttpd: record store " + path_ + ": the last line has no newline; read-only, so it is left as it is and not served\n");
        return 0;
    } catch (...) {  // std::bad_alloc
        forget_index();
        return ENOMEM;
    }
}
}  // namespace uvh
