// The coding cache: each version of a file compressed once per coding, on
// the threadpool, kept in memory within a budget (LRU) and served like a
// cached file (docs/architecture.md, "The coding cache").
//
// One record per URL path says what the server last verified about the
// file behind it: the identity version (ETag, device, inode, the lock
// service's generation read before the stat), which precompressed siblings
// exist and which do not (the negative cache: a missing .br is probed once
// per interval, not once per request), and the codings produced from that
// version. Coherence follows the small-file cache (handlers/file_cache.h):
// a record is served only while its verification is younger than
// --cache-revalidate and the file's generation is unchanged, so a write
// through this server (any process) shows at once and any other change
// within the interval. Revalidation is a stat: when the version is the
// same, the compressed results are kept.
//
// Single flight: the first request for a coding of a version starts one
// compression and waits for it (Exchange::hold); requests arriving while
// it runs wait for the same job. A version is never compressed twice in
// one coding while its record lives.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <ctime>
#include <deque>
#include <functional>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "handlers/compress/codecs.h"
#include "handlers/compress/waiters.h"
#include "handlers/exchange.h"
#include "protocol/negotiate.h"

namespace uvh {

class LockService;

// What a GET's job found on disk, for CodingCache::verify.
struct FileFacts {
    std::string etag;       // the identity ETag (make_etag, unchanged)
    std::string rel;        // the file beneath the root (index.html for a directory URL)
    dev_t dev = 0;
    ino_t ino = 0;
    uint64_t file_generation = 0;  // read before the stat
    uint64_t size = 0;
    time_t last_modified = 0;
    std::string_view content_type;  // static MIME table string
    uint8_t siblings_present = 0;   // coding_bit()s probed now: a sibling at least as new as the file
    uint8_t siblings_absent = 0;    // coding_bit()s probed now: no usable sibling
};

// One coding of one version.
struct CodedRep {
    enum class State : uint8_t { None, Pending, Ready, Failed };
    State state = State::None;
    std::string bytes;
    std::string etag;    // derived from the identity ETag (coded_etag)
    std::string fields;  // the 200's representation fields, formatted once
    std::vector<Waiter> waiters;
};

struct PathRecord {
    FileFacts facts;  // siblings_* there: what the last job probed
    uint64_t verified_ms = 0;
    // What is known of each sibling and since when: knowledge older than
    // the interval is forgotten, so a sibling created later is found
    // within the interval, like any other change on disk.
    uint8_t sib_present = 0, sib_absent = 0;
    uint64_t probed_ms[kCodings] = {};
    uint8_t known(uint64_t now_ms, uint64_t interval_ms) const {
        uint8_t m = 0;
        for (int c = 1; c < kCodings; ++c)
            if (((sib_present | sib_absent) & (1u << c)) && now_ms - probed_ms[c] < interval_ms) m |= 1u << c;
        return m;
    }
    bool revalidating = false;
    CodedRep coded[kCodings];  // [0] unused (identity)
    size_t bytes = 0;           // memory charged to the record
    std::list<std::string>::iterator lru;
};

// "\"1a-2b-3c\"" -> "\"1a-2b-3c-br11\"": a strong tag per coding and level,
// so two results with one tag are always the same bytes (RFC 9110 §8.8.3).
std::string coded_etag(std::string_view identity_etag, Coding coding, int level);

class CodingCache {
public:
    struct Options {
        size_t budget = 64ull << 20;   // --compress-cache-size
        uint64_t max_file = 1 << 20;   // identity files up to this size are compressed whole
        uint64_t revalidate_ms = 500;  // --cache-revalidate
        unsigned max_jobs = 2;         // compressions running at once on the threadpool
        CodingLevels levels = kDefaultCachedLevels;
        std::string cache_control;     // --cache-control, for the formatted fields
    };
    CodingCache(uv_loop_t* loop, int root_fd, const LockService* locks, Options opt);
    ~CodingCache();
    CodingCache(const CodingCache&) = delete;
    CodingCache& operator=(const CodingCache&) = delete;

    // The record for `url_path` if fresh: verified within the interval and
    // its file's generation unchanged. As in FileCache::find, the first
    // request past two thirds of the interval gets nullptr (and
    // re-verifies through its job) while the others are still served.
    PathRecord* find(std::string_view url_path, uint64_t now_ms);
    // The fresh record, without electing anyone to revalidate (for the
    // negative cache of a job that is going to the disk anyway).
    const PathRecord* peek(std::string_view url_path, uint64_t now_ms) const;

    // Records what a job found. The same identity version keeps its
    // compressed results; a new one drops them. `generation` is the cache's
    // generation() when the job started: if a write invalidated since, the
    // facts may be older than the write and are not recorded.
    PathRecord* verify(std::string_view url_path, FileFacts facts, uint64_t generation, uint64_t now_ms);

    // For a coding of a fresh record: Ready, or the exchange now waits
    // (held) for the one compression of this version, started now if none
    // runs; `after` runs on the loop when it ends (the caller serves the
    // result, or identity if there is none). Returns the state found:
    // Ready (serve it now), Pending (waiting), Failed (serve identity).
    CodedRep::State get_or_wait(PathRecord& rec, std::string_view url_path, Coding coding, Exchange& ex,
                                DoneFn after);

    // A write to the file at `url_path` (before it is acknowledged): its
    // records, its directory's when it is an index.html, and the file a
    // sibling belongs to are dropped; compressions under way do not store.
    void invalidate_file(std::string_view url_path);
    uint64_t generation() const { return generation_; }

    // Stops starting compressions; `closed` runs once none is running.
    void close(std::function<void()> closed);

    int level(Coding c) const { return opt_.levels.of(c); }
    uint64_t interval_ms() const { return opt_.revalidate_ms; }
    uint64_t max_file() const { return opt_.max_file; }
    uint64_t compressions(Coding c) const { return compressions_[static_cast<int>(c)]; }
    uint64_t hits() const { return hits_; }
    size_t bytes() const { return bytes_; }
    size_t records() const { return map_.size(); }
    size_t running() const { return jobs_.running(); }
    void count_hit() { ++hits_; }

private:
    struct Task;
    struct Hash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    void start(Task* t);
    void pump();
    friend class CompressionJobs<Task>;  // calls finish()
    void finish(Task* t, bool cancelled);
    void erase(std::string_view key);
    void evict();
    void charge(PathRecord& rec, long delta);

    uv_loop_t* loop_;
    int root_fd_;
    const LockService* locks_;
    Options opt_;
    std::unordered_map<std::string, PathRecord, Hash, std::equal_to<>> map_;
    std::list<std::string> lru_;  // front: most recently used
    size_t bytes_ = 0;
    uint64_t generation_ = 0;
    uint64_t hits_ = 0;
    uint64_t compressions_[kCodings] = {};
    CompressionJobs<Task> jobs_;
};

}  // namespace uvh
