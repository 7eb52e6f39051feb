#include "handlers/write_ops.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <vector>

#include <fmt/format.h>

#include "handlers/compress/coding_cache.h"
#include "handlers/dav/dav_common.h"
#include "handlers/dav/dav_locks.h"
#include "handlers/dav/props_store.h"
#include "handlers/dav/tree_ops.h"
#include "handlers/fd_cache.h"
#include "handlers/file_cache.h"
#include "handlers/fs_ops.h"
#include "handlers/lock_service.h"
#include "handlers/write_step.h"
#include "handlers/router.h"
#include "protocol/dav_xml.h"
#include "protocol/etag.h"
#include "protocol/percent.h"
#include "protocol/preconditions.h"
#include "protocol/target.h"

namespace uvh {

namespace {

constexpr size_t kPutChunk = 256 * 1024;

}  // namespace

WriteJob::WriteJob(Exchange& ex)
    : site(&ex.site()),
      locks(ex.site().locks),
      request(&ex.request()),
      cond(ex.request().conditionals()),
      root_fd(ex.site().root_fd),
      rel(relative_path(ex.path())),
      url_path(ex.path()),
      trailing_slash(ex.path().back() == '/'),
      now(ex.now()) {}

void WriteJob::release() {
    if (dir_fd >= 0) close(dir_fd);
    dir_fd = -1;
}

void WriteJob::hand_back(Exchange& ex) {
    if (dir_fd >= 0) ex.close_later(dir_fd);
    dir_fd = -1;
}

Representation representation_of(bool exists, const struct stat& st, std::string& etag) {
    if (!exists) return {};
    etag = make_etag({static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_size), st.st_mtim.tv_sec,
                      st.st_mtim.tv_nsec});
    return {true, etag, st.st_mtim.tv_sec};
}

// Looks at the target in its parent directory and evaluates the request's
// preconditions against it. Runs on a worker; the request is only read.
// Returns false (with job.status or job.err set) when the write must not
// happen.
bool check_target(WriteJob& job, const std::string& name) {
    struct stat st {};
    job.exists = fstatat(job.dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (!job.exists && errno != ENOENT) {
        job.err = errno;
        return false;
    }
    job.st = st;
    std::string etag;
    Representation rep = representation_of(job.exists, st, etag);
    if (evaluate_preconditions(job.cond, false, rep, job.now) != Precondition::Proceed) {
        job.status = 412;
        return false;
    }
    return true;
}

namespace {

// True when `name` in the directory `dir_fd` is the record store's file,
// whatever URL led there (hardening issue, item 4): the store is known by
// its directory's device and inode and its name, not by a URL string.
bool is_record_store(const WriteJob& job, int dir_fd, std::string_view name) {
    return job.site && is_record_store_entry(*job.site, dir_fd, name);
}


}  // namespace

// Opens the parent of job.rel as job.dir_fd, creating it first when asked.
// Refuses (job.status 403) when the target or a directory to create is the
// record store's name.
bool open_parent(WriteJob& job, std::string& name) {
    std::string parent;
    split_parent(job.rel, parent, name);
    job.dir_fd = open_beneath(job.root_fd, parent, O_RDONLY | O_DIRECTORY);
    if (job.dir_fd < 0 && errno == ENOENT && job.create_dirs) {
        // mkdir -p, one component at a time, each beneath the root.
        std::string so_far;
        size_t start = 0;
        while (start <= parent.size()) {
            size_t slash = parent.find('/', start);
            std::string comp = parent.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
            std::string base = so_far.empty() ? std::string(".") : so_far;
            int d = open_beneath(job.root_fd, base, O_RDONLY | O_DIRECTORY);
            if (d < 0) break;
            if (is_record_store(job, d, comp)) {
                close(d);
                job.status = kStoreRefused;
                return false;
            }
            if (mkdirat(d, comp.c_str(), 0755) != 0 && errno != EEXIST) {
                int e = errno;
                close(d);
                errno = e;
                break;
            }
            fsync(d);
            close(d);
            so_far = so_far.empty() ? comp : so_far + "/" + comp;
            if (slash == std::string::npos) break;
            start = slash + 1;
        }
        job.dir_fd = open_beneath(job.root_fd, parent, O_RDONLY | O_DIRECTORY);
    }
    if (job.dir_fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            job.status = 409;  // RFC 9110 §9.3.4 / WebDAV: no parent collection
        } else {
            job.err = errno;
        }
        return false;
    }
    if (is_record_store(job, job.dir_fd, name)) {
        job.status = kStoreRefused;
        return false;
    }
    return true;
}

namespace {

// The lock of the target's name (handlers/lock_service.h), held from the
// check of the preconditions to the switch, so that of several writers with
// the same If-Match exactly one succeeds (RFC 9110 §13.1.1), in this
// process, across --workers and across servers sharing the root.
bool lock_target(WriteJob& job, const std::string& name, LockService::Guard& guard) {
    if (!job.locks) return true;
    struct stat dir {};
    if (fstat(job.dir_fd, &dir) != 0) {
        job.err = errno;
        return false;
    }
    guard = job.locks->lock_name(dir, name);
    if (!guard.held()) {
        job.err = errno;
        return false;
    }
    return true;
}

}  // namespace

// The WebDAV lock check (RFC 4918 §7.5, §10.4): with `guard` (the name
// lock, held until the change is made) it also holds the lock table still
// until then; without, it is an early look that saves reading a body the
// commit would refuse. `members`: the write changes everything beneath the
// target; `membership`: it adds or removes the name in its parent.
bool check_locks(WriteJob& job, const std::string& name, LockService::Guard* guard, bool members,
                 bool membership) {
    WriteTarget target{job.url_path, job.dir_fd, name, members, membership};
    job.lock_check = check_write_locks(*job.site, *job.request, guard, target, job.now);
    return job.lock_check.status == 0;
}

namespace {

// Caches of every process drop what they hold of a replaced or removed
// file at their next hit.
void bump_generation(const WriteJob& job, const struct stat& st) {
    if (job.locks) job.locks->bump(st.st_dev, st.st_ino);
}

// A name now exists in the target's directory: caches that remember it was
// missing (handlers/fd_cache.h) keep that under the directory's generation.
void bump_directory(const WriteJob& job) {
    struct stat dir {};
    if (job.locks && fstat(job.dir_fd, &dir) == 0) job.locks->bump(dir.st_dev, dir.st_ino);
}

std::string location_for(const Exchange& ex) {
    return self_location(ex.request().parsed.path, {}, false);
}

void invalidate(Exchange& ex) {
    if (FileCache* cache = ex.site().cache) cache->invalidate_file(ex.path());
    if (CodingCache* codings = ex.site().codings) codings->invalidate_file(ex.path());
    if (FdCache* fds = ex.site().fd_cache) fds->invalidate_file(ex.path());
}

}  // namespace

namespace {

// A replacement keeps the WebDAV dead properties of the file it replaces,
// as mod_dav does across a PUT: in the default mode they are an extended
// attribute of the old inode (handlers/dav/props_store.h), which the
// rename drops, so the new file gets a copy first. (A sidecar entry is
// kept by name and needs nothing.) Best effort: the content is what the
// client asked for; a file system without user attributes has none here.
void keep_dead_properties(int dir_fd, const std::string& name, int fd) {
    std::string old = "/proc/self/fd/" + std::to_string(dir_fd) + "/" + name;
    const std::string attr(kPropsXattr);
    ssize_t n = lgetxattr(old.c_str(), attr.c_str(), nullptr, 0);
    if (n <= 0 || static_cast<size_t>(n) > kMaxPropsBlob) return;
    std::string blob(static_cast<size_t>(n), '\0');
    n = lgetxattr(old.c_str(), attr.c_str(), blob.data(), blob.size());
    if (n <= 0) return;
    fsetxattr(fd, attr.c_str(), blob.data(), static_cast<size_t>(n), 0);
}

}  // namespace

void place_content(WriteJob& job, int fd, std::string& named_temp) {
    std::string parent, name;
    split_parent(job.rel, parent, name);
    LockService::Guard guard;
    if (!lock_target(job, name, guard)) return;
    // Check again right before the switch, under the lock: another writer
    // may have changed the target while the body was arriving.
    if (!check_target(job, name)) return;
    const struct stat replaced = job.st;
    if (job.exists && S_ISDIR(job.st.st_mode)) {
        job.status = 409;
        return;
    }
    if (!check_locks(job, name, &guard, false, !job.exists)) return;
    // A replacement keeps the permission bits of the file it replaces, but
    // not setuid, setgid or sticky: new content must not inherit privileges
    // (the kernel clears them on an unprivileged write for the same reason).
    if (job.exists && S_ISREG(job.st.st_mode)) {
        fchmod(fd, job.st.st_mode & 0777);
        keep_dead_properties(job.dir_fd, name, fd);
    }
    if (!job.exists && named_temp.empty() && job.cond.if_none_match.data() && is_star(job.cond.if_none_match)) {
        // Create-only (If-None-Match: *): linking straight to the name fails
        // if anyone created it meanwhile, so the check and the create are
        // one atomic step.
        std::string proc = "/proc/self/fd/" + std::to_string(fd);
        if (linkat(AT_FDCWD, proc.c_str(), job.dir_fd, name.c_str(), AT_SYMLINK_FOLLOW) != 0) {
            if (errno == EEXIST) {
                job.status = 412;
            } else {
                job.err = errno;
            }
            return;
        }
        fsync(job.dir_fd);
        job.created = true;
        bump_directory(job);
        if (fstat(fd, &job.st) != 0) job.err = errno;
        return;
    }
    std::string tmp = named_temp;
    if (tmp.empty()) {
        // Give the file a name beside the target, then rename it over the
        // target: readers see the old file or the new one, never a partial
        // one.
        tmp = temp_name();
        std::string proc = "/proc/self/fd/" + std::to_string(fd);
        if (linkat(AT_FDCWD, proc.c_str(), job.dir_fd, tmp.c_str(), AT_SYMLINK_FOLLOW) != 0) {
            job.err = errno;
            return;
        }
    }
    if (renameat(job.dir_fd, tmp.c_str(), job.dir_fd, name.c_str()) != 0) {
        job.err = errno;
        unlinkat(job.dir_fd, tmp.c_str(), 0);
        named_temp.clear();
        return;
    }
    named_temp.clear();
    fsync(job.dir_fd);  // the rename itself must survive a crash
    if (job.exists) {
        bump_generation(job, replaced);
    } else {
        bump_directory(job);
    }
    job.created = !job.exists;
    if (fstat(fd, &job.st) != 0) job.err = errno;
}

namespace {

// ------------------------------------------------------------------- PUT

// PUT in three kinds of step: prepare (checks, temporary file), write (one
// piece of the body), commit (sync, re-check under the lock, switch).
struct PutJob final : WriteJob {
    enum class Step : uint8_t { Prepare, Write, Commit };
    Step step = Step::Prepare;
    int fd = -1;            // the new content
    std::string named_temp;  // a named temporary file in dir_fd (no O_TMPFILE here)
    std::string_view chunk; // the body piece being written

    using WriteJob::WriteJob;

    void work() override {
        switch (step) {
        case Step::Prepare: return prepare();
        case Step::Write:
            if (!write_all(fd, chunk.data(), chunk.size())) err = errno;
            return;
        case Step::Commit: return commit();
        }
    }
    void done(Exchange& ex) override;
    bool holds_resources() const override { return fd >= 0 || dir_fd >= 0; }
    // An upload that did not finish: its named temporary file goes (an
    // unnamed O_TMPFILE one vanishes with its descriptor).
    void release() override {
        if (!named_temp.empty() && dir_fd >= 0) unlinkat(dir_fd, named_temp.c_str(), 0);
        named_temp.clear();
        if (fd >= 0) close(fd);
        fd = -1;
        WriteJob::release();
    }

    void prepare();
    void commit();
};

void PutJob::prepare() {
    std::string name;
    if (!open_parent(*this, name)) return;
    if (!check_target(*this, name)) return;
    if (exists && S_ISDIR(st.st_mode)) {
        status = 409;  // a collection cannot be replaced by a file
        return;
    }
    if (!check_locks(*this, name, nullptr, false, !exists)) return;
    fd = openat(dir_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        // No O_TMPFILE here: a named temporary file, removed if we fail.
        std::string tmp = temp_name();
        fd = openat(dir_fd, tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        if (fd >= 0) named_temp = tmp;
    }
    if (fd < 0) {
        err = errno;
        return;
    }
}

void PutJob::commit() {
    if (fdatasync(fd) != 0) {
        err = errno;
        return;
    }
    place_content(*this, fd, named_temp);
}

void put_chunk(Exchange& ex, std::string_view piece);
void put_end(Exchange& ex);

void PutJob::done(Exchange& ex) {
    switch (step) {
    case Step::Prepare: {
        if (lock_check.status) return respond_lock_check(ex, lock_check);
        if (status == kStoreRefused) return respond_error(ex, kStoreRefused, kStoreMessage);
        if (status == 412) return respond_error(ex, 412, "precondition failed");
        if (status == 409) {
            return respond_error(ex, 409, exists ? "the target is a directory" : "the parent directory does not exist");
        }
        if (err) return respond_error(ex, status_for_errno(err), std::strerror(err));
        BodyReader reader;
        reader.data = put_chunk;
        reader.end = put_end;
        reader.chunk = kPutChunk;
        return ex.read_body(reader);  // sends 100 Continue now that every check passed
    }
    case Step::Write:
        if (err) return respond_error(ex, status_for_errno(err), std::strerror(err));
        return ex.body_consumed();
    case Step::Commit:
        break;
    }
    invalidate(ex);  // even a failed commit may have changed nothing or something: drop it
    if (lock_check.status) return respond_lock_check(ex, lock_check);
    if (status == kStoreRefused) return respond_error(ex, kStoreRefused, kStoreMessage);
    if (status) return respond_error(ex, status, status == 412 ? "precondition failed" : "conflict");
    if (err) return respond_error(ex, status_for_errno(err), std::strerror(err));
    // Committed: nothing is left to clean up.
    if (fd >= 0) ex.close_later(fd);
    fd = -1;
    hand_back(ex);
    std::string etag;
    representation_of(true, st, etag);
    ResponseHead head;
    head.etag = etag;
    head.last_modified = st.st_mtim.tv_sec;
    if (created) {
        std::string location = location_for(ex);
        head.location = location;
        return respond_text(ex, 201, location, head);
    }
    head.status = 204;
    ex.respond(head, Body::none());
}

PutJob& put_job(Exchange& ex) { return ex.job_as<PutJob>(); }

void put_chunk(Exchange& ex, std::string_view piece) {
    PutJob& job = put_job(ex);
    job.step = PutJob::Step::Write;
    job.chunk = piece;
    ex.offload(job);
}

void put_end(Exchange& ex) {
    PutJob& job = put_job(ex);
    job.step = PutJob::Step::Commit;
    ex.offload(job);
}

// ---------------------------------------------------------------- DELETE

struct DeleteJob final : WriteJob {
    std::string url;  // the decoded URL path, for the members a 207 names
    bool dir = false;
    TreeContext tree;
    explicit DeleteJob(Exchange& ex) : WriteJob(ex), url(ex.path()) {}
    void work() override;
    void done(Exchange& ex) override;
};

void DeleteJob::work() {
    std::string name;
    if (!open_parent(*this, name)) {
        if (status == 409) {
            status = 0;
            err = ENOENT;
        }
        return;
    }
    LockService::Guard guard;
    if (!lock_target(*this, name, guard)) return;
    if (!check_target(*this, name)) return;
    if (!exists) {
        err = ENOENT;
        return;
    }
    dir = S_ISDIR(st.st_mode);
    if (trailing_slash && !dir) {
        err = ENOTDIR;
        return;
    }
    if (!check_locks(*this, name, &guard, dir, true)) return;
    if (dir) {
        // RFC 4918 §9.6.1: a collection goes whole (Depth: infinity); what
        // cannot go (hidden files, the record store, a failing member)
        // stays and the 207 names it.
        tree.site = site;
        tree.mode = site->dav_props_sidecar ? PropsMode::Sidecar : PropsMode::Auto;
        bool gone = remove_tree(tree, dir_fd, name, url);
        // The locks of what went go with it (RFC 4918 §9.6.1); after a
        // partial removal, those of what stayed remain.
        guard.release();
        release_locks(*site, lock_check.rooted, now, !gone);
        return;
    }
    if (unlinkat(dir_fd, name.c_str(), 0) != 0) {
        err = errno;
        return;
    }
    props_forget({dir_fd, name, false});  // a sidecar entry goes with its file
    fsync(dir_fd);
    bump_generation(*this, st);
    // RFC 4918 §9.6.1: the locks of a deleted resource go with it.
    guard.release();
    release_locks(*site, lock_check.rooted, now);
}

void DeleteJob::done(Exchange& ex) {
    hand_back(ex);
    if (dir) {
        if (FileCache* cache = ex.site().cache) cache->clear();  // everything under it
        if (FdCache* fds = ex.site().fd_cache) fds->clear();
    } else {
        invalidate(ex);
    }
    if (lock_check.status) return respond_lock_check(ex, lock_check);
    if (status == kStoreRefused) return respond_error(ex, kStoreRefused, kStoreMessage);
    if (status == 412) return respond_error(ex, 412, "precondition failed");
    if (err) return respond_error(ex, status_for_errno(err), std::strerror(err));
    if (!tree.failures.empty()) {
        // RFC 4918 §9.6.1: 207 naming the members that could not be
        // removed (their collections stay too, and are not listed).
        return respond_member_failures(ex, tree.failures);
    }
    ResponseHead head;
    head.status = 204;
    ex.respond(head, Body::none());
}

// ----------------------------------------------------------------- MKCOL

struct MkcolJob final : WriteJob {
    using WriteJob::WriteJob;
    void work() override;
    void done(Exchange& ex) override;
};

void MkcolJob::work() {
    std::string name;
    if (!open_parent(*this, name)) return;
    // Under the name's lock, like PUT: the lock check holds until the
    // directory exists.
    LockService::Guard guard;
    if (!lock_target(*this, name, guard)) return;
    if (!check_locks(*this, name, &guard, false, true)) return;
    if (mkdirat(dir_fd, name.c_str(), 0755) != 0) {
        if (errno == EEXIST) {
            status = 405;
        } else {
            err = errno;
        }
        return;
    }
    fsync(dir_fd);
    bump_directory(*this);
}

void MkcolJob::done(Exchange& ex) {
    hand_back(ex);
    invalidate(ex);
    if (lock_check.status) return respond_lock_check(ex, lock_check);
    if (status == kStoreRefused) return respond_error(ex, kStoreRefused, kStoreMessage);
    if (status == 405) return respond_error(ex, 405, "something already exists there", allowed_methods(ex.site()));
    if (status == 409) return respond_error(ex, 409, "the parent directory does not exist");
    if (err) return respond_error(ex, status_for_errno(err), std::strerror(err));
    std::string location = location_for(ex);
    if (location.empty() || location.back() != '/') location.push_back('/');
    ResponseHead head;
    head.location = location;
    respond_text(ex, 201, location, head);
}

}  // namespace

bool is_record_store_entry(const Site& site, int dir_fd, std::string_view name) {
    if (!site.store_known || name != site.store_name) return false;
    struct stat st {};
    return fstat(dir_fd, &st) == 0 && st.st_dev == site.store_dir_dev && st.st_ino == site.store_dir_ino;
}

std::string temp_name() {
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r) r = static_cast<uint64_t>(time(nullptr)) ^ static_cast<uint64_t>(getpid());
    return fmt::format("{}{:016x}", kTempPrefix, r);
}

void handle_put(Exchange& ex) {
    const Request& req = ex.request();
    const Site& site = ex.site();
    // RFC 9110 §14.4: a server that does not support partial PUT must
    // reject Content-Range rather than store a piece as the whole.
    if (req.content_range.data()) return respond_error(ex, 400, "partial PUT (Content-Range) is not supported");
    if (ex.path() == "/" || ex.path().back() == '/') {
        return respond_error(ex, 405, "PUT needs a file path, not a directory", allowed_methods(site));
    }
    if (site.max_body_size != 0 && req.has_content_length && req.content_length > site.max_body_size)
        return respond_error(ex, 413, "request body larger than --max-body-size");
    PutJob& job = ex.make_job<PutJob>(ex);
    job.create_dirs = site.create_dirs;
    ex.offload(job);
}

void handle_delete(Exchange& ex) {
    if (ex.path() == "/") return respond_error(ex, 403, "the root cannot be deleted");
    ex.offload(ex.make_job<DeleteJob>(ex));
}

void handle_mkcol(Exchange& ex) {
    // RFC 4918 §9.3.1: a body we do not understand is a 415.
    if (ex.request().has_body()) return respond_error(ex, 415, "MKCOL takes no request body");
    if (ex.path() == "/") return respond_error(ex, 405, "the root exists", allowed_methods(ex.site()));
    ex.offload(ex.make_job<MkcolJob>(ex));
}

size_t sweep_temp_files(int root_fd, int min_age_s) {
    size_t removed = 0, visited = 0;
    time_t now = time(nullptr);
    std::vector<std::string> stack{"."};
    // Bounded, so a huge tree cannot keep a worker busy for long.
    while (!stack.empty() && visited < 200000) {
        std::string rel = stack.back();
        stack.pop_back();
        int dfd = open_beneath(root_fd, rel, O_RDONLY | O_DIRECTORY);
        if (dfd < 0) continue;
        DIR* d = fdopendir(dfd);
        if (!d) {
            close(dfd);
            continue;
        }
        while (struct dirent* e = readdir(d)) {
            ++visited;
            std::string_view n = e->d_name;
            if (n == "." || n == "..") continue;
            struct stat st {};
            if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
            if (S_ISDIR(st.st_mode)) {
                stack.push_back(rel == "." ? std::string(n) : rel + "/" + std::string(n));
            } else if (S_ISREG(st.st_mode) && n.starts_with(kTempPrefix) && now - st.st_mtime >= min_age_s) {
                if (unlinkat(dfd, e->d_name, 0) == 0) ++removed;
            }
        }
        closedir(d);
    }
    return removed;
}

}  // namespace uvh
