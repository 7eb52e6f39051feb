// Open descriptors of large files kept between requests, as nginx's
// open_file_cache (src/core/ngx_open_file_cache.c) does: a hot large file
// is served without opening it again, so its GET costs the sendfile steps
// and nothing else on the threadpool (no open, no fstat, no close job).
//
// Coherence rules (issue 14):
// * An entry is trusted for `valid_ms` (--cache-revalidate). From two thirds
//   of that, one request opens and fstats the path again on the threadpool
//   (the normal GET job) and its result replaces the entry, while the others
//   are still served from it; at the full interval the entry is dropped. So a
//   change by another program (a rename over the file, an edit in place)
//   shows within the interval, and a new inode means a new descriptor.
// * A write through any worker shows at once: a positive entry remembers its
//   file's generation (handlers/lock_service.h) and a hit compares it (one
//   atomic load), as the small-file cache does; a negative entry (a name that
//   was missing) remembers its parent directory's generation, which writes
//   that create a name bump. Writes through this process also drop the entry
//   by URL (invalidate_file) before they are acknowledged.
// * Responses that already hold a descriptor keep it: an entry replaced or
//   dropped while responses use it closes its descriptor only after the last
//   of them ends (a reference count), so a rename over the file never cuts a
//   response short, and a file truncated in place ends it early, as before.
//
// Loop thread only. Descriptors are never closed here while the loop runs:
// closes are queued (take_closes) for the caller to hand to the threadpool.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace uvh {

class LockService;

// One open file shared by the cache and the responses sending it.
struct OpenFile {
    int fd = -1;
    struct stat st {};
    uint64_t file_generation = 0;  // of (st_dev, st_ino) when it was opened
    // Precompressed siblings (coding_bit()s, protocol/negotiate.h) found
    // next to it, and those looked for, when it was opened.
    uint8_t sib_present = 0, sib_known = 0;
    std::string served_rel;  // the file served (an index.html for a directory URL)
    unsigned refs = 0;       // responses using it, plus one while in the cache
};

class FdCache {
public:
    // max_entries 0 disables the cache.
    FdCache(size_t max_entries, uint64_t valid_ms) : max_entries_(max_entries), valid_ms_(valid_ms) {}
    ~FdCache();  // closes what is left (after the loop has stopped)
    FdCache(const FdCache&) = delete;
    FdCache& operator=(const FdCache&) = delete;

    bool enabled() const { return max_entries_ > 0; }
    void set_generations(const LockService* locks) { locks_ = locks; }
    // Counts the descriptors of live OpenFiles, and of those waiting in
    // pending_closes() until closed(), in `*held` (the server's descriptor
    // budget, Metrics::descriptors_held).
    void set_descriptor_count(int64_t* held) { held_ = held; }

    struct Lookup {
        enum Kind : uint8_t { Miss, Open, Missing } kind = Miss;
        OpenFile* file = nullptr;  // Open: with a reference for the caller (release() it)
        int err = 0;               // Missing: the errno the open failed with
    };
    // The entry for a key, if fresh and not changed by a write; else Miss
    // (and the caller opens the file on the threadpool, then store_*()).
    Lookup find(std::string_view key, uint64_t now_ms);

    // Stores a descriptor opened by a reader that started at `generation`
    // (generation()); the cache owns `fd` from now on, whether it keeps it
    // or not. Returns the file with a reference for the caller.
    OpenFile* store_open(std::string_view key, int fd, const struct stat& st, uint64_t file_generation,
                         uint8_t sib_present, uint8_t sib_known, std::string served_rel, uint64_t generation,
                         uint64_t now_ms);
    // Remembers that opening `key` failed with `err`, while the parent
    // directory (dir_dev, dir_ino) was at `dir_generation`.
    void store_missing(std::string_view key, int err, dev_t dir_dev, ino_t dir_ino, uint64_t dir_generation,
                       uint64_t generation, uint64_t now_ms);

    void acquire(OpenFile* f) { ++f->refs; }
    void release(OpenFile* f);

    // A write through this process to the file at `key` (a URL path): drop
    // it, and its directory URL for an index.html.
    void invalidate_file(std::string_view key);
    void clear();
    // Drops every entry at least the interval old (a periodic sweep, so a
    // descriptor nobody asks for again is not held open).
    void expire(uint64_t now_ms);
    uint64_t generation() const { return generation_; }

    // Descriptors no response and no entry needs any more, to be closed
    // off the loop thread by the caller.
    std::vector<int>& pending_closes() { return closes_; }
    // `n` of them were closed, or handed to a closer that counts them in
    // the descriptor budget itself: the cache stops counting them.
    void closed(size_t n) {
        if (held_) *held_ -= static_cast<int64_t>(n);
    }

    size_t entries() const { return map_.size(); }
    uint64_t hits() const { return hits_; }

private:
    struct Entry {
        OpenFile* file = nullptr;  // nullptr: a negative entry
        int err = 0;
        dev_t dir_dev = 0;
        ino_t dir_ino = 0;
        uint64_t dir_generation = 0;
        uint64_t loaded_ms = 0;
        bool revalidating = false;
        std::list<std::string>::iterator lru;
    };
    struct Hash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    void put(std::string_view key, Entry e);
    void erase(std::string_view key);

    const LockService* locks_ = nullptr;
    int64_t* held_ = nullptr;
    size_t max_entries_;
    uint64_t valid_ms_;
    uint64_t generation_ = 0;
    uint64_t hits_ = 0;
    std::unordered_map<std::string, Entry, Hash, std::equal_to<>> map_;
    std::list<std::string> lru_;  // front: most recently used
    std::vector<int> closes_;
};

// What a file body source sends from: a descriptor it owns (closed by the
// sender when the response ends) or a shared one from the FdCache (its
// reference dropped then). Move-only; loop thread.
class FileHandle {
public:
    FileHandle() = default;
    static FileHandle owned(int fd) {
        FileHandle h;
        h.fd_ = fd;
        return h;
    }
    // Takes over a reference the caller holds on `f`.
    static FileHandle shared(FdCache* cache, OpenFile* f) {
        FileHandle h;
        h.fd_ = f->fd;
        h.cache_ = cache;
        h.file_ = f;
        return h;
    }
    FileHandle(FileHandle&& o) noexcept : fd_(o.fd_), cache_(o.cache_), file_(o.file_) { o.file_ = nullptr; o.fd_ = -1; }
    FileHandle& operator=(FileHandle&&) = delete;
    FileHandle(const FileHandle&) = delete;
    ~FileHandle() { release(); }

    int fd() const { return fd_; }
    bool owned() const { return fd_ >= 0 && !file_; }  // not shared through the cache
    // The end of the response: a descriptor to close, or -1 (a shared one
    // only loses this reference).
    int release() {
        int f = -1;
        if (file_) {
            cache_->release(file_);
            file_ = nullptr;
        } else {
            f = fd_;
        }
        fd_ = -1;
        return f;
    }

private:
    int fd_ = -1;
    FdCache* cache_ = nullptr;
    OpenFile* file_ = nullptr;
};

}  // namespace uvh
