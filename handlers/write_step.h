// The steps every write to a file shares (handlers/write_step.cpp defines
// them): open the target's parent beneath the root, evaluate preconditions
// against what is there, take the name's lock, and put finished content at
// the name atomically. PUT uses them for one request; a resumable upload
// (handlers/uploads/) uses the same final step when its last byte
// arrives, with the preconditions its creation request carried.
#pragma once

#include <sys/stat.h>

#include <ctime>
#include <string>
#include <string_view>

#include "handlers/dav/dav_locks.h"
#include "handlers/exchange.h"
#include "handlers/lock_service.h"
#include "protocol/preconditions.h"

namespace uvh {

// What every write's threadpool job knows and finds out: the target, its
// parent directory (opened beneath the root) and what is there now.
struct WriteJob : Job {
    // ---- inputs (loop thread) ----
    const Site* site = nullptr;
    const LockService* locks = nullptr;
    const Request* request = nullptr;  // read on the worker (the WebDAV If header)
    // The preconditions, evaluated on the worker (views that outlive the
    // job's steps: the request's fields, or strings the job owns).
    Conditionals cond;
    int root_fd = -1;
    std::string rel;  // the target relative to the root
    std::string_view url_path;  // the target's normalised URL path (the exchange's, for PUT)
    bool trailing_slash = false;
    bool create_dirs = false;
    time_t now = 0;

    // ---- outputs (worker thread) ----
    int err = 0;      // errno of the failing step, 0 on success
    int status = 0;   // a status the worker decided (403, 405, 409, 412)
    int dir_fd = -1;  // the target's parent directory
    struct stat st {};  // of the target (after a PUT: of the new file)
    bool exists = false;
    bool created = false;
    LockCheck lock_check;  // WebDAV locks and the If header (handlers/dav/dav_locks.h)

    explicit WriteJob(Exchange& ex);

    bool holds_resources() const override { return dir_fd >= 0; }
    void release() override;
    // After a successful step, on the loop: descriptors go to the exchange.
    void hand_back(Exchange& ex);
};

// 403 and its text: no URL may write the record store's file.
inline constexpr int kStoreRefused = 403;
inline constexpr std::string_view kStoreMessage =
    "that name is the record store's file; records live at /database.txt/ID";

// Opens the parent of job.rel as job.dir_fd (creating it with
// --create-dirs). False with job.status (403, 409) or job.err set.
bool open_parent(WriteJob& job, std::string& name);
// Looks at the target and evaluates job.cond against it. False with
// job.status 412 or job.err set.
bool check_target(WriteJob& job, const std::string& name);

// The WebDAV lock check of the target (handlers/dav/dav_locks.h): with
// `guard` (the name lock, held until the change) authoritative, without it
// an early look. False with job.lock_check.status set.
bool check_locks(WriteJob& job, const std::string& name, LockService::Guard* guard, bool members,
                 bool membership);

// The final step of a whole-file write, on a worker: `fd` holds the complete
// content (already synced). Under the name's lock, the preconditions are
// checked again, and the WebDAV locks, then the content is linked over the target (linkat +
// renameat, or a create-only linkat for If-None-Match: *) and the directory
// synced. `named_temp`: the content's temporary name in job.dir_fd, if it
// has one (it is renamed, and cleared). On success job.st is the new file's
// and job.created says whether the name was new; otherwise job.status or
// job.err says why.
void place_content(WriteJob& job, int fd, std::string& named_temp);

// The lock of the target's name (handlers/lock_service.h), held from the
// check of the preconditions to the change. False with job.err set.
bool lock_target(WriteJob& job, const std::string& name, LockService::Guard& guard);

// Caches of every process drop what they hold of the replaced or removed
// file `st` at their next hit (its generation in the lock service).
void bump_generation(const WriteJob& job, const struct stat& st);
// A name now exists in job.dir_fd: caches that remember it missing
// (handlers/fd_cache.h) keep that under the directory's generation.
void bump_directory(const WriteJob& job);

// On the loop, before a write is acknowledged: this process's caches of
// the exchange's path (small files, codings, descriptors) drop it.
void invalidate_path_caches(Exchange& ex);

// The Location of a resource a write created at the exchange's path.
std::string created_location(const Exchange& ex);

// The ETag-bearing view of what check_target() found.
Representation representation_of(bool exists, const struct stat& st, std::string& etag);

}  // namespace uvh
