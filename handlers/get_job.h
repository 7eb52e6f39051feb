// GET's threadpool work: open the path beneath the root, decide what it is
// (file, directory index, listing, redirect), choose the representation
// among the precompressed siblings, and read a small file whole.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "handlers/compress/policy.h"
#include "handlers/exchange.h"
#include "handlers/lock_service.h"
#include "handlers/site.h"
#include "protocol/negotiate.h"

namespace uvh {

struct GetJob final : Job {
    // ---- inputs (loop thread) ----
    const Site* site = nullptr;
    const LockService* locks = nullptr;
    int root_fd = -1;
    std::string rel;       // path relative to root_fd, "." for the root
    std::string url_path;  // normalised URL path, for listings
    bool trailing_slash = false;
    bool json = false;      // a listing as JSON
    bool database = false;  // the record store's file
    size_t inline_max = 0;  // read regular files up to this size into `data`
    AcceptedCodings accepted;           // Accept-Encoding
    const CompressPolicy* policy = nullptr;  // null: no compression on the fly
    bool may_start = true;              // false after waiting: never a second compression
    uint8_t skip_probe = 0;             // siblings known absent (the coding cache's negative cache)
    uint64_t started_generation = 0;  // of the file cache, when the read began
    uint64_t codings_generation = 0;  // of the coding cache, when the job began
    uint64_t fd_started_generation = 0;  // of the descriptor cache, likewise
    bool use_fd_cache = false;  // the result may go into the descriptor cache

    // ---- outputs (worker thread) ----
    enum class Kind : uint8_t { None, File, Listing, Redirect };
    Kind kind = Kind::None;
    int err = 0;
    int fd = -1;              // the file (or directory) opened
    struct stat st {};
    std::string served_rel;   // the file served: rel, or its index.html
    struct stat id_st {};     // the identity file, when `fd` is a sibling
    uint8_t siblings_present = 0, siblings_absent = 0;  // probed now (coding_bit()s)
    Coding coding = Coding::Identity;  // the representation chosen
    bool on_the_fly = false;    // `coding` is produced by the server from `fd`
    bool not_acceptable = false;  // identity refused and no acceptable coding: 406
    std::string_view encoding;  // "gzip", "br", "zstd" or empty: what `fd` holds
    bool in_memory = false;     // `data` holds the whole file
    // The coding's entry in --compress-cache-dir, when `on_the_fly` and
    // the file is above --compress-max-cached: its descriptor and the
    // coded length (handlers/compress/disk_cache.h).
    int disk_fd = -1;
    uint64_t disk_size = 0;
    std::string data;           // inline file bytes, or the rendered listing
    uint64_t file_generation = 0;  // of `st`'s file, read before its bytes
    uint64_t id_generation = 0;    // of the identity file, read before its stat
    bool cacheable = false;        // the bytes are still what the path names
    // A missing name: its parent directory, for the descriptor cache's
    // negative entry (a create there bumps the directory's generation).
    bool dir_known = false;
    struct stat dir_st {};
    uint64_t dir_generation = 0;

    void work() override;
    void done(Exchange& ex) override;
    bool holds_resources() const override { return fd >= 0 || disk_fd >= 0; }
    void release() override {
        if (fd >= 0) close(fd);
        if (disk_fd >= 0) close(disk_fd);
        fd = disk_fd = -1;
    }
    // Hands the descriptor on (to a body source, or to be closed later).
    int take_fd() {
        int f = fd;
        fd = -1;
        return f;
    }
};

}  // namespace uvh
