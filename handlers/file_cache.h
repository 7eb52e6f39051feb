// A cache of small files, so a hot GET needs no threadpool round trip.
//
// Correctness rules (issue: performance): bytes and validators of an entry
// always come from one read of one version of the file (the reader checks
// the file did not change while it was read); a file changed through this
// server is dropped from the cache before the write is acknowledged; a file
// changed by anyone else is noticed within the revalidation interval,
// because an entry older than that is read again before it is served.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

namespace uvh {

class LockService;

// One representation of a URL: the file itself or one of its
// precompressed variants.
struct CachedRep {
    bool present = false;
    std::string content;
    std::string etag;
    std::string_view content_type;  // from the static MIME table
    bool compressible = false;      // the --compress policy's answer for content_type
    std::string_view encoding;      // "", "gzip", "br" or "zstd" (static strings)
    time_t last_modified = 0;
    // A 200's Content-Length and representation fields, formatted
    // (length_and_representation_fields): a hit formats no field.
    std::string fields;
    // The file the bytes came from and its generation when they were read
    // (handlers/lock_service.h): a write by any process, through any URL,
    // bumps it, and the entry is dropped at its next hit.
    dev_t dev = 0;
    ino_t ino = 0;
    uint64_t file_generation = 0;
};

struct CachedEntry {
    // The same numbering as protocol/negotiate.h's Coding.
    enum Variant { kIdentity = 0, kGzip = 1, kBrotli = 2, kZstd = 3 };
    static constexpr int kVariants = 4;
    CachedRep reps[kVariants];
    bool variant_exists[kVariants] = {true, false, false, false};  // what the disk had at load time
    uint64_t loaded_ms = 0;  // when the identity representation was read
    bool revalidating = false;  // a request past the interval is reading the file again
    size_t bytes = 0;        // memory charged to this entry
    std::list<std::string>::iterator lru;

    bool has_variants() const { return variant_exists[kGzip] || variant_exists[kBrotli] || variant_exists[kZstd]; }
};

class FileCache {
public:
    // max_bytes 0 disables the cache.
    FileCache(size_t max_bytes, size_t max_file, uint64_t revalidate_ms)
        : max_bytes_(max_bytes), max_file_(max_file), revalidate_ms_(revalidate_ms) {}
    FileCache(const FileCache&) = delete;  // last_ points into map_
    FileCache& operator=(const FileCache&) = delete;

    bool enabled() const { return max_bytes_ > 0; }
    // Where file generations are kept; without it only this process's own
    // writes (by URL) and the revalidation interval invalidate.
    void set_generations(const LockService* locks) { locks_ = locks; }
    size_t max_file() const { return max_file_; }

    // The entry for a URL path if it is fresh and no representation's file
    // was replaced or removed since it was read; nullptr otherwise, and the
    // caller reads the file again. The first request past two thirds of the
    // interval gets nullptr and its read replaces the entry; until that
    // lands (at most until the interval ends) the others are still served
    // the entry, so a hot file is read about once per interval rather than
    // once per connection. No allocation.
    CachedEntry* find(std::string_view url_path, uint64_t now_ms);

    // Stores one representation read at `now_ms` by a reader that started
    // when the cache was at `generation`. If anything was invalidated since,
    // the bytes may predate an acknowledged write: they are not stored.
    void store(std::string_view url_path, CachedEntry::Variant v, CachedRep rep, const bool variant_exists[CachedEntry::kVariants],
               uint64_t generation, uint64_t now_ms);
    uint64_t generation() const { return generation_; }

    // Drops the entries a write to the file at URL path `url_path` can
    // change: the path itself, its directory URL when it is an index.html,
    // and the file a .gz/.br/.zst variant belongs to.
    void invalidate_file(std::string_view url_path);
    void clear();

    uint64_t hits() const { return hits_; }
    uint64_t misses() const { return misses_; }
    size_t bytes() const { return bytes_; }
    size_t entries() const { return map_.size(); }
    void count_hit() { ++hits_; }

private:
    struct Hash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    void erase(std::string_view key);
    void evict_to(size_t budget);

    const LockService* locks_ = nullptr;
    size_t max_bytes_;
    size_t max_file_;
    uint64_t revalidate_ms_;
    size_t bytes_ = 0;
    uint64_t hits_ = 0, misses_ = 0;
    uint64_t generation_ = 0;
    std::unordered_map<std::string, CachedEntry, Hash, std::equal_to<>> map_;
    std::list<std::string> lru_;  // front: most recently used
    // The entry find() returned last (map nodes stay put until erased;
    // erase() and clear() forget it).
    std::pair<const std::string, CachedEntry>* last_ = nullptr;
};

}  // namespace uvh
