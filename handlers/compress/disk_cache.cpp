#include "handlers/compress/disk_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "handlers/compress/compress_source.h"
#include "handlers/fs_ops.h"
#include "handlers/lock_service.h"
#include "handlers/write_ops.h"

namespace uvh {

namespace {

constexpr std::string_view kMagic = "uvhttpd-coded 1 ";
// A hit refreshes the entry's mtime (its place in the LRU order) at most
// this often, so hot entries cost no metadata write per request.
constexpr int64_t kTouchEvery = 60;
// A temporary file older than this is a crashed writer's: removed at a scan.
constexpr int64_t kStaleTemp = 3600;
// A key whose compression failed is not tried again for this long.
constexpr uint64_t kRetryMs = 60'000;

int64_t wall_now() { return static_cast<int64_t>(time(nullptr)); }

// The whole source, as one file piece: the same input, in the same pieces,
// as the streamed response's FileRangeSource, so the pump makes the same bytes.
class WholeFile final : public BodySource {
public:
    WholeFile(int fd, uint64_t size) : fd_(fd), size_(size) {}
    BodyPiece next() override {
        if (sent_) return BodyPiece::end();
        sent_ = true;
        return BodyPiece::file(fd_, 0, size_);
    }

private:
    int fd_;
    uint64_t size_;
    bool sent_ = false;
};

}  // namespace

std::string disk_entry_name(const DiskKey& k) {
    return fmt::format("c-{:x}-{:x}-{:x}-{:x}-{:x}-{}{}", static_cast<uint64_t>(k.dev), static_cast<uint64_t>(k.ino),
                       k.size, static_cast<uint64_t>(k.mtime_s), static_cast<uint64_t>(k.mtime_ns),
                       coding_name(k.coding), k.level);
}

bool is_entry_name(std::string_view name) {
    // c- then five hex fields separated by '-', then a coding and a level.
    if (!name.starts_with("c-")) return false;
    name.remove_prefix(2);
    for (int i = 0; i < 5; ++i) {
        size_t dash = name.find('-');
        if (dash == 0 || dash == std::string_view::npos || dash > 16) return false;
        for (char c : name.substr(0, dash))
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
        name.remove_prefix(dash + 1);
    }
    for (Coding c : {Coding::Gzip, Coding::Br, Coding::Zstd}) {
        std::string_view cn = coding_name(c);
        if (!name.starts_with(cn)) continue;
        std::string_view level = name.substr(cn.size());
        return !level.empty() && level.size() <= 2 &&
               std::all_of(level.begin(), level.end(), [](char d) { return d >= '0' && d <= '9'; });
    }
    return false;
}

std::string disk_trailer(uint64_t coded_length, std::string_view name) {
    std::string t = fmt::format("{}{:016x} {}", kMagic, coded_length, name);
    t.resize(kDiskTrailer - 1, ' ');
    t.push_back('\n');
    return t;
}

bool check_disk_trailer(std::string_view trailer, std::string_view name, uint64_t file_size, uint64_t& coded_length) {
    if (file_size < kDiskTrailer || trailer.size() != kDiskTrailer) return false;
    if (kMagic.size() + 17 + name.size() > kDiskTrailer - 1) return false;
    if (disk_trailer(file_size - kDiskTrailer, name) != trailer) return false;
    coded_length = file_size - kDiskTrailer;
    return true;
}

struct DiskCodingCache::Task {
    uv_work_t req{};
    DiskCodingCache* cache = nullptr;
    DiskKey key;
    std::string name;
    int source_fd = -1;
    // ---- outputs (worker) ----
    bool ok = false;
    bool compressed = false;  // this task compressed (not another process)
    uint64_t written = 0;

    ~Task() {
        if (source_fd >= 0) ::close(source_fd);
    }
    void work();
    bool compress_into(int out_fd);
};

std::unique_ptr<DiskCodingCache> DiskCodingCache::open(uv_loop_t* loop, const LockService* locks, Options opt,
                                                       const std::string& root_path, bool read_only,
                                                       std::string& error) {
    if (mkdir(opt.dir.c_str(), 0700) != 0 && errno != EEXIST) {
        error = fmt::format("cannot make --compress-cache-dir '{}': {}", opt.dir, std::strerror(errno));
        return nullptr;
    }
    char dir_real[PATH_MAX], root_real[PATH_MAX];
    if (!realpath(opt.dir.c_str(), dir_real) || !realpath(root_path.c_str(), root_real)) {
        error = fmt::format("cannot resolve --compress-cache-dir '{}': {}", opt.dir, std::strerror(errno));
        return nullptr;
    }
    // Inside the served tree only where the dotfile rule hides it from
    // every method; never the root itself or a visible directory in it.
    std::string_view dir(dir_real), root(root_real);
    if (root == "/" ? true : (dir == root || (dir.starts_with(root) && dir[root.size()] == '/'))) {
        std::string_view rel = root == "/" ? dir.substr(1) : dir.substr(std::min(dir.size(), root.size() + 1));
        bool hidden = false;
        for (size_t at = 0; at < rel.size();) {
            size_t slash = rel.find('/', at);
            if (rel[at] == '.') hidden = true;
            at = slash == std::string_view::npos ? rel.size() : slash + 1;
        }
        if (!hidden) {
            error = fmt::format(
                "--compress-cache-dir '{}' is inside the served root: use a directory outside it, or a dotted one "
                "(hidden by the dotfile rule), such as ROOT/.uvhttpd-codings",
                opt.dir);
            return nullptr;
        }
        if (read_only) {
            error = fmt::format("--compress-cache-dir '{}' is inside the root, which --read-only never writes",
                                opt.dir);
            return nullptr;
        }
    }
    int fd = ::open(dir_real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || faccessat(fd, ".", W_OK, AT_EACCESS) != 0) {
        error = fmt::format("cannot write --compress-cache-dir '{}': {}", opt.dir, std::strerror(errno));
        if (fd >= 0) ::close(fd);
        return nullptr;
    }
    std::unique_ptr<DiskCodingCache> c(new DiskCodingCache(loop, locks, std::move(opt), fd));
    c->scan_and_evict({});  // the size of what an earlier run left, before serving
    return c;
}

DiskCodingCache::DiskCodingCache(uv_loop_t* loop, const LockService* locks, Options opt, int dir_fd)
    : loop_(loop), locks_(locks), opt_(std::move(opt)), dir_fd_(dir_fd) {}

DiskCodingCache::~DiskCodingCache() {
    if (dir_fd_ >= 0) ::close(dir_fd_);
}

int DiskCodingCache::open_valid(const std::string& name, uint64_t& coded_length) const {
    int fd = openat(dir_fd_, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return -1;
    struct stat st {};
    std::string trailer;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= static_cast<off_t>(kDiskTrailer) &&
        read_exact(fd, static_cast<uint64_t>(st.st_size) - kDiskTrailer, kDiskTrailer, trailer) &&
        check_disk_trailer(trailer, name, static_cast<uint64_t>(st.st_size), coded_length)) {
        if (wall_now() - st.st_mtim.tv_sec >= kTouchEvery) {
            struct timespec times[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
            futimens(fd, times);  // best effort: its place in the LRU order
        }
        return fd;
    }
    ::close(fd);
    return -1;
}

int DiskCodingCache::open_entry(const DiskKey& k, uint64_t& coded_length) {
    int fd = open_valid(disk_entry_name(k), coded_length);
    (fd >= 0 ? hits_ : misses_).fetch_add(1, std::memory_order_relaxed);
    return fd;
}

bool DiskCodingCache::wait_for(const DiskKey& k, int source_fd, Exchange& ex, DoneFn after) {
    if (jobs_.closing()) return false;
    std::string name = disk_entry_name(k);
    auto pending = pending_.find(name);
    if (pending != pending_.end()) {
        ex.hold();
        pending->second.emplace_back(&ex, after);
        return true;
    }
    auto failed = failed_.find(name);
    if (failed != failed_.end()) {
        if (ex.now_ms() - failed->second < kRetryMs) return false;
        failed_.erase(failed);
    }
    int dup_fd = fcntl(source_fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) return false;
    auto* t = new Task;
    t->req.data = t;
    t->cache = this;
    t->key = k;
    t->name = name;
    t->source_fd = dup_fd;
    ex.hold();
    pending_[name].emplace_back(&ex, after);
    jobs_.add(t);
    pump();
    return true;
}

void DiskCodingCache::pump() {
    jobs_.pump(loop_, opt_.max_jobs);
}

void DiskCodingCache::Task::work() {
    DiskCodingCache& c = *cache;
    struct stat dir {};
    if (fstat(c.dir_fd_, &dir) != 0) return;
    // One writer of this entry in every process sharing the lock service.
    // Without it (a --read-only server with no state file in the root)
    // processes may both compress: the bytes are the same and the rename
    // is atomic, so that costs time, not correctness.
    LockService::Guard guard;
    if (c.locks_) guard = c.locks_->lock_name(dir, name);
    uint64_t len = 0;
    int existing = c.open_valid(name, len);
    if (existing >= 0) {  // another process made it meanwhile
        ::close(existing);
        ok = true;
        return;
    }
    std::string tmp = temp_name();
    int out = openat(c.dir_fd_, tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (out < 0) return;
    bool good = compress_into(out);
    ::close(out);
    // RFC 9110 §8.8.1: a strong tag names one sequence of bytes. The key
    // was taken before the compression read the file; an edit in place
    // meanwhile changes size or mtime, and the result is not kept.
    struct stat now {};
    if (good && (fstat(source_fd, &now) != 0 || static_cast<uint64_t>(now.st_size) != key.size ||
                 now.st_mtim.tv_sec != key.mtime_s || now.st_mtim.tv_nsec != key.mtime_ns))
        good = false;
    if (!good || renameat(c.dir_fd_, tmp.c_str(), c.dir_fd_, name.c_str()) != 0) {
        unlinkat(c.dir_fd_, tmp.c_str(), 0);
        return;
    }
    fsync(c.dir_fd_);
    ok = compressed = true;
    guard.release();
    c.scan_and_evict(name);
}

bool DiskCodingCache::Task::compress_into(int out_fd) {
    CompressPump pump(key.coding, key.level);
    WholeFile source(source_fd, key.size);
    uint64_t total = 0;
    while (!pump.done()) {
        pump.step(source);
        if (pump.has_output()) {
            std::string_view piece = pump.take();
            if (!write_all(out_fd, piece.data(), piece.size())) return false;
            total += piece.size();
        }
    }
    if (pump.failed()) return false;
    std::string trailer = disk_trailer(total, name);
    if (!write_all(out_fd, trailer.data(), trailer.size()) || fdatasync(out_fd) != 0) return false;
    written = total;
    return true;
}

void DiskCodingCache::finish(Task* t, bool cancelled) {
    jobs_.ended();
    if (t->compressed && !cancelled) {
        ++compressions_;
        written_ += t->written;
    }
    if (!t->ok || cancelled) {
        if (failed_.size() > 4096) failed_.clear();  // bounded; a retry costs one more attempt
        failed_[t->name] = uv_now(loop_);
    }
    auto it = pending_.find(t->name);
    if (it != pending_.end()) {
        jobs_.release_later(it->second);
        pending_.erase(it);
    }
    delete t;
    jobs_.release();
    pump();
    jobs_.maybe_closed();
}

void DiskCodingCache::close(std::function<void()> closed) {
    jobs_.close(
        [this](Task* t) {
            auto it = pending_.find(t->name);
            if (it == pending_.end()) return;
            jobs_.release_later(it->second);
            pending_.erase(it);
        },
        std::move(closed));
}

void DiskCodingCache::scan_and_evict(std::string_view keep) {
    int fd = openat(dir_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    DIR* d = fdopendir(fd);
    if (!d) {
        ::close(fd);
        return;
    }
    struct Entry {
        struct timespec used;
        uint64_t size;
        std::string name;
    };
    std::vector<Entry> entries;
    uint64_t total = 0;
    int64_t now = wall_now();
    while (struct dirent* e = readdir(d)) {
        std::string_view n = e->d_name;
        struct stat st {};
        if (n.starts_with(kTempPrefix)) {
            // A writer that crashed (ours, or another process's).
            if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
                now - st.st_mtim.tv_sec > kStaleTemp)
                unlinkat(fd, e->d_name, 0);
            continue;
        }
        if (!is_entry_name(n)) continue;  // not ours: never touched
        if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
        entries.push_back({st.st_mtim, static_cast<uint64_t>(st.st_size), std::string(n)});
        total += static_cast<uint64_t>(st.st_size);
    }
    if (total > opt_.max_bytes) {
        std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
            return a.used.tv_sec != b.used.tv_sec ? a.used.tv_sec < b.used.tv_sec : a.used.tv_nsec < b.used.tv_nsec;
        });
        for (const Entry& e : entries) {
            if (total <= opt_.max_bytes) break;
            if (e.name == keep) continue;
            // A reader that opened it keeps its bytes: an unlinked file
            // lives until its last descriptor closes.
            if (unlinkat(fd, e.name.c_str(), 0) == 0) {
                total -= e.size;
                evictions_.fetch_add(1, std::memory_order_relaxed);
            }
        }
    }
    closedir(d);
    bytes_.store(total, std::memory_order_relaxed);
}

}  // namespace uvh
