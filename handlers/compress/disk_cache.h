// The on-disk coding cache (--compress-cache-dir): files too large for the
// in-memory coding cache (above --compress-max-cached) are compressed once
// per version and coding into a file of their own in a directory, and the
// next requests for that coding are a sendfile of it, Range requests
// included (docs/architecture.md, "The coding cache on disk";
// docs/operations.md for disk use and cleanup).
//
// An entry's name is its key: the source's device, inode, size and
// modification time, the coding and the level. A change to the source
// (a PUT renames a new inode over it; an edit changes size or mtime) makes
// a new key, so an old entry is never served for a new version; it stays
// unused until eviction removes it. The content is the coded bytes, then
// a fixed-size trailer that repeats the name and the coded length: a file
// whose size, trailer or name does not agree (truncated, hand-edited,
// somebody else's) is never served, and files whose names are not entry
// names are never touched.
//
// One writer per entry: the exchanges that find no entry wait for one
// compression (Exchange::hold, as the in-memory cache does), which runs on
// the threadpool under the lock service's name lock of the entry, so
// --workers processes and servers sharing the root compress a version
// once too. It writes a temporary name, syncs it and renames it into
// place, so a reader opens the old entry, the new one or none, never a
// part. The bytes are exactly those of the streamed response for the same
// coding and level (the same CompressPump over the same file), so the
// ETag the stream has is the entry's too.
//
// Total size: after each write the directory is scanned and the least
// recently used entries (by mtime, which a hit refreshes at most once a
// minute) are removed until the entries fit --compress-cache-dir-size.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>
#include <uv.h>

#include <atomic>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "handlers/compress/waiters.h"
#include "handlers/exchange.h"
#include "protocol/negotiate.h"

namespace uvh {

class LockService;

// What an entry is of: one version of a source file, one coding and level.
struct DiskKey {
    dev_t dev = 0;
    ino_t ino = 0;
    uint64_t size = 0;
    int64_t mtime_s = 0, mtime_ns = 0;
    Coding coding = Coding::Gzip;
    int level = 0;
};

// The key of coding `c` at `level` of the file version `st` describes.
inline DiskKey disk_key(const struct stat& st, Coding c, int level) {
    return DiskKey{st.st_dev, st.st_ino, static_cast<uint64_t>(st.st_size), st.st_mtim.tv_sec, st.st_mtim.tv_nsec, c,
                   level};
}

// The entry's file name: "c-<dev>-<ino>-<size>-<sec>-<nsec>-<coding><level>"
// with the numbers in hex. parse_entry_name() accepts exactly these names.
std::string disk_entry_name(const DiskKey& k);
bool is_entry_name(std::string_view name);

// The trailer every entry ends with (kTrailer bytes): the magic, the
// coded length and the entry's name, padded with spaces, then '\n'.
inline constexpr size_t kDiskTrailer = 160;
std::string disk_trailer(uint64_t coded_length, std::string_view name);
// The coded length when `trailer` is a valid trailer for `name` in a file
// of `file_size` bytes; false otherwise.
bool check_disk_trailer(std::string_view trailer, std::string_view name, uint64_t file_size, uint64_t& coded_length);

class DiskCodingCache {
public:
    struct Options {
        std::string dir;                 // --compress-cache-dir
        uint64_t max_bytes = 1ull << 30;  // --compress-cache-dir-size
        unsigned max_jobs = 1;           // compressions on the threadpool at once
    };
    // Start-up (blocking, before the loop serves): opens the directory,
    // creating it (0700) when missing. `root_path` is the served root: the
    // directory may be inside it only beneath a dotted name (hidden by the
    // dotfile rule), and then not with `read_only`. nullptr with `error`.
    static std::unique_ptr<DiskCodingCache> open(uv_loop_t* loop, const LockService* locks, Options opt,
                                                 const std::string& root_path, bool read_only, std::string& error);
    ~DiskCodingCache();
    DiskCodingCache(const DiskCodingCache&) = delete;
    DiskCodingCache& operator=(const DiskCodingCache&) = delete;

    // Worker thread: the entry of `k`, opened, when it is whole; -1
    // otherwise. `coded_length` is what to send (the file without its
    // trailer). Counts a hit or a miss.
    int open_entry(const DiskKey& k, uint64_t& coded_length);

    // Loop thread, for a GET that found no entry: the exchange waits (held)
    // for the one compression of `k` from `source_fd` (a descriptor of the
    // version `k` names; the cache dups it), started now unless one runs;
    // `after` runs when it ends, and finds the entry or, when it could not
    // be made, streams. False when no compression can be waited for (the
    // cache is closing, or this key failed lately): stream at once.
    bool wait_for(const DiskKey& k, int source_fd, Exchange& ex, DoneFn after);

    // Stops starting compressions; `closed` runs once none is running.
    void close(std::function<void()> closed);

    uint64_t hits() const { return hits_.load(std::memory_order_relaxed); }
    uint64_t misses() const { return misses_.load(std::memory_order_relaxed); }
    uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }  // the entries, at the last scan
    uint64_t written() const { return written_; }                              // coded bytes written
    uint64_t evictions() const { return evictions_.load(std::memory_order_relaxed); }
    uint64_t compressions() const { return compressions_; }
    uint64_t max_bytes() const { return opt_.max_bytes; }

private:
    struct Task;
    DiskCodingCache(uv_loop_t* loop, const LockService* locks, Options opt, int dir_fd);
    // Worker thread: the entry `name`, opened, when it is whole.
    int open_valid(const std::string& name, uint64_t& coded_length) const;
    void pump();
    friend class CompressionJobs<Task>;  // calls finish()
    void finish(Task* t, bool cancelled);
    // Worker thread: removes stale temporary files and, while the entries
    // exceed the budget, the least recently used ones (never `keep`).
    void scan_and_evict(std::string_view keep);

    uv_loop_t* loop_;
    const LockService* locks_;
    Options opt_;
    int dir_fd_;
    std::unordered_map<std::string, std::vector<Waiter>> pending_;  // by entry name
    std::unordered_map<std::string, uint64_t> failed_;  // entry name -> when (ms); retried after a minute
    CompressionJobs<Task> jobs_;
    std::atomic<uint64_t> hits_{0}, misses_{0}, bytes_{0}, evictions_{0};
    uint64_t written_ = 0, compressions_ = 0;
};

}  // namespace uvh
