// Work that runs on the libuv threadpool for a request: the inputs a handler
// fills in on the loop thread, the outputs the blocking function fills in on
// a worker thread. One FileJob per connection, reused request after request,
// so a request that needs the disk allocates nothing new in steady state.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace uvh {

struct DirEntry {
    std::string name;
    bool is_dir = false;
    uint64_t size = 0;
    int64_t mtime = 0;
};

struct FileJob {
    // ---- inputs (loop thread) ----
    int root_fd = -1;
    std::string rel;            // path relative to the root, "." for the root
    std::string rel2;           // a second path (rename targets, variants)
    std::string url_path;       // normalised URL path, for listings
    bool trailing_slash = false;
    size_t inline_max = 0;      // read regular files up to this size into `data`
    double q_gzip = 0, q_br = 0;  // acceptable precompressed variants
    int listing_format = 0;     // 0 html, 1 json
    int flags = 0;              // operation-specific
    uint64_t number = 0;        // operation-specific
    std::string_view chunk;     // request body bytes to write (PUT)
    const void* request = nullptr;  // the Request, for checks re-run on the worker
    time_t now = 0;
    uint64_t started_generation = 0;  // of the file cache, when the read began
    const class LockService* locks = nullptr;  // write locks, file generations
    const struct Site* site = nullptr;         // read-only settings (store identity)

    // ---- outputs (worker thread) ----
    enum class Kind { None, File, Listing, Redirect };
    Kind kind = Kind::None;
    int err = 0;                // errno of the failing step, 0 on success
    int fd = -1;                // an open descriptor handed to the loop
    int dir_fd = -1;            // the target's parent directory (writes)
    bool created = false;       // a write created the target
    int status = 0;             // a status the worker decided (412, 409, ...)
    std::string temp_rel;       // a named temporary file to remove if the request dies
    struct stat st {};          // of fd (or of the target)
    bool exists = false;
    bool has_variants = false;  // .gz or .br next to the file: Vary needed
    std::string_view encoding;  // "gzip", "br" or empty: what `fd` holds
    uint64_t file_generation = 0;  // of `st`'s file, read before its bytes
    bool cacheable = false;        // the bytes are still what the path names
    std::string data;           // inline file bytes / rendered listing / collected body
    std::string id;             // a record's id (record store)
    std::vector<std::pair<std::string, std::string>> fields;  // a record's fields
    std::vector<DirEntry> entries;

    // Everything but the reusable capacity. Descriptors are the connection's
    // to close before calling this.
    void reset() {
        root_fd = -1;
        rel.clear();
        rel2.clear();
        url_path.clear();
        trailing_slash = false;
        inline_max = 0;
        q_gzip = q_br = 0;
        listing_format = 0;
        flags = 0;
        number = 0;
        chunk = {};
        request = nullptr;
        now = 0;
        started_generation = 0;
        locks = nullptr;
        site = nullptr;
        file_generation = 0;
        cacheable = false;
        kind = Kind::None;
        err = 0;
        fd = -1;
        dir_fd = -1;
        created = false;
        status = 0;
        temp_rel.clear();
        st = {};
        exists = false;
        has_variants = false;
        encoding = {};
        data.clear();
        id.clear();
        fields.clear();
        entries.clear();
    }
};

}  // namespace uvh
