#include "handlers/write_ops.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <vector>

#include <fmt/format.h>

#include "handlers/file_cache.h"
#include "handlers/fs_ops.h"
#include "handlers/lock_service.h"
#include "handlers/router.h"
#include "protocol/etag.h"
#include "protocol/preconditions.h"
#include "protocol/target.h"

namespace uvh {

namespace {

constexpr size_t kPutChunk = 256 * 1024;

// Flags in FileJob::flags for writes.
constexpr int kCreateDirs = 1;
constexpr int kNamedTemp = 2;  // the filesystem has no O_TMPFILE

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
bool check_target(FileJob& job, const std::string& name) {
    struct stat st {};
    job.exists = fstatat(job.dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (!job.exists && errno != ENOENT) {
        job.err = errno;
        return false;
    }
    job.st = st;
    std::string etag;
    Representation rep = representation_of(job.exists, st, etag);
    const auto* req = static_cast<const Request*>(job.request);
    if (evaluate_preconditions(req->conditionals(), false, rep, job.now) != Precondition::Proceed) {
        job.status = 412;
        return false;
    }
    return true;
}

// True when `name` in the directory `dir_fd` is the record store's file,
// whatever URL led there (hardening issue, item 4): the store is known by
// its directory's device and inode and its name, not by a URL string.
bool is_record_store(const FileJob& job, int dir_fd, std::string_view name) {
    const Site* site = job.site;
    if (!site || !site->store_known || name != site->store_name) return false;
    struct stat st {};
    return fstat(dir_fd, &st) == 0 && st.st_dev == site->store_dir_dev && st.st_ino == site->store_dir_ino;
}

constexpr int kStoreRefused = 403;
constexpr std::string_view kStoreMessage =
    "that name is the record store's file; records live at /database.txt/ID";

// Opens the parent of job.rel as job.dir_fd, creating it first when asked.
// Refuses (job.status 403) when the target or a directory to create is the
// record store's name.
bool open_parent(FileJob& job, std::string& name) {
    std::string parent;
    split_parent(job.rel, parent, name);
    job.dir_fd = open_beneath(job.root_fd, parent, O_RDONLY | O_DIRECTORY);
    if (job.dir_fd < 0 && errno == ENOENT && (job.flags & kCreateDirs)) {
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

// The lock of the target's name (handlers/lock_service.h), held from the
// check of the preconditions to the switch, so that of several writers with
// the same If-Match exactly one succeeds (RFC 9110 §13.1.1), in this
// process, across --workers and across servers sharing the root.
bool lock_target(FileJob& job, const std::string& name, LockService::Guard& guard) {
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

// Caches of every process drop what they hold of a replaced or removed
// file at their next hit.
void bump_generation(const FileJob& job, const struct stat& st) {
    if (job.locks) job.locks->bump(st.st_dev, st.st_ino);
}

std::string location_for(const Exchange& ex) {
    return self_location(ex.request().parsed.path, {}, false);
}

// ------------------------------------------------------------------- PUT

void put_prepare(FileJob& job) {
    std::string name;
    if (!open_parent(job, name)) return;
    if (!check_target(job, name)) return;
    if (job.exists && S_ISDIR(job.st.st_mode)) {
        job.status = 409;  // a collection cannot be replaced by a file
        return;
    }
    job.fd = openat(job.dir_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    if (job.fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        // No O_TMPFILE here: a named temporary file, removed if we fail.
        std::string tmp = temp_name();
        job.fd = openat(job.dir_fd, tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        if (job.fd >= 0) {
            std::string parent;
            std::string ignored;
            split_parent(job.rel, parent, ignored);
            job.temp_rel = parent == "." ? tmp : parent + "/" + tmp;
            job.flags |= kNamedTemp;
        }
    }
    if (job.fd < 0) {
        job.err = errno;
        return;
    }
    // A replacement keeps the permission bits of the file it replaces, but
    // not setuid, setgid or sticky: new content must not inherit privileges
    // (the kernel clears them on an unprivileged write for the same reason).
    if (job.exists && S_ISREG(job.st.st_mode)) fchmod(job.fd, job.st.st_mode & 0777);
}

void put_write(FileJob& job) {
    if (!write_all(job.fd, job.chunk.data(), job.chunk.size())) job.err = errno;
}

void put_commit(FileJob& job) {
    if (fdatasync(job.fd) != 0) {
        job.err = errno;
        return;
    }
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
    const auto* req = static_cast<const Request*>(job.request);
    if (!job.exists && !(job.flags & kNamedTemp) && req->if_none_match.data() && is_star(req->if_none_match)) {
        // Create-only (If-None-Match: *): linking straight to the name fails
        // if anyone created it meanwhile, so the check and the create are
        // one atomic step.
        std::string proc = "/proc/self/fd/" + std::to_string(job.fd);
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
        if (fstat(job.fd, &job.st) != 0) job.err = errno;
        return;
    }
    std::string tmp;
    if (job.flags & kNamedTemp) {
        tmp = job.temp_rel.substr(job.temp_rel.rfind('/') == std::string::npos ? 0 : job.temp_rel.rfind('/') + 1);
    } else {
        // Give the unnamed file a name, then rename it over the target:
        // readers see the old file or the new one, never a partial one.
        tmp = temp_name();
        std::string proc = "/proc/self/fd/" + std::to_string(job.fd);
        if (linkat(AT_FDCWD, proc.c_str(), job.dir_fd, tmp.c_str(), AT_SYMLINK_FOLLOW) != 0) {
            job.err = errno;
            return;
        }
    }
    if (renameat(job.dir_fd, tmp.c_str(), job.dir_fd, name.c_str()) != 0) {
        job.err = errno;
        unlinkat(job.dir_fd, tmp.c_str(), 0);
        return;
    }
    job.temp_rel.clear();
    fsync(job.dir_fd);  // the rename itself must survive a crash
    if (job.exists) bump_generation(job, replaced);
    job.created = !job.exists;
    if (fstat(job.fd, &job.st) != 0) job.err = errno;
}

void invalidate(Exchange& ex) {
    if (FileCache* cache = ex.site().cache) cache->invalidate_file(ex.path());
}

void put_committed(Exchange& ex) {
    FileJob& job = ex.job();
    invalidate(ex);  // even a failed commit may have changed nothing or something: drop it
    if (job.status == kStoreRefused) return respond_error(ex, kStoreRefused, kStoreMessage);
    if (job.status) return respond_error(ex, job.status, job.status == 412 ? "precondition failed" : "conflict");
    if (job.err) return respond_error(ex, status_for_errno(job.err), std::strerror(job.err));
    std::string etag;
    representation_of(true, job.st, etag);
    ResponseHead head;
    head.etag = etag;
    head.last_modified = job.st.st_mtim.tv_sec;
    if (job.created) {
        std::string location = location_for(ex);
        head.location = location;
        return respond_text(ex, 201, location, head);
    }
    head.status = 204;
    ex.respond(head, Body::none());
}

void put_written(Exchange& ex) {
    FileJob& job = ex.job();
    if (job.err) return respond_error(ex, status_for_errno(job.err), std::strerror(job.err));
    ex.body_consumed();
}

void put_chunk(Exchange& ex, std::string_view piece) {
    ex.job().chunk = piece;
    ex.offload(put_write, put_written);
}

void put_end(Exchange& ex) { ex.offload(put_commit, put_committed); }

void put_prepared(Exchange& ex) {
    FileJob& job = ex.job();
    if (job.status == kStoreRefused) return respond_error(ex, kStoreRefused, kStoreMessage);
    if (job.status == 412) return respond_error(ex, 412, "precondition failed");
    if (job.status == 409) {
        return respond_error(ex, 409, job.exists ? "the target is a directory" : "the parent directory does not exist");
    }
    if (job.err) return respond_error(ex, status_for_errno(job.err), std::strerror(job.err));
    BodyReader reader;
    reader.data = put_chunk;
    reader.end = put_end;
    reader.chunk = kPutChunk;
    ex.read_body(reader);  // sends 100 Continue now that every check passed
}

// ---------------------------------------------------------------- DELETE

void delete_work(FileJob& job) {
    std::string name;
    if (!open_parent(job, name)) {
        if (job.status == 409) {
            job.status = 0;
            job.err = ENOENT;
        }
        return;
    }
    LockService::Guard guard;
    if (!lock_target(job, name, guard)) return;
    if (!check_target(job, name)) return;
    if (!job.exists) {
        job.err = ENOENT;
        return;
    }
    bool dir = S_ISDIR(job.st.st_mode);
    if (job.trailing_slash && !dir) {
        job.err = ENOTDIR;
        return;
    }
    if (unlinkat(job.dir_fd, name.c_str(), dir ? AT_REMOVEDIR : 0) != 0) {
        if (errno == ENOTEMPTY || errno == EEXIST) {
            job.status = 409;
        } else {
            job.err = errno;
        }
        return;
    }
    fsync(job.dir_fd);
    bump_generation(job, job.st);
}

void delete_done(Exchange& ex) {
    FileJob& job = ex.job();
    invalidate(ex);
    if (job.status == kStoreRefused) return respond_error(ex, kStoreRefused, kStoreMessage);
    if (job.status == 409) return respond_error(ex, 409, "the directory is not empty");
    if (job.status == 412) return respond_error(ex, 412, "precondition failed");
    if (job.err) return respond_error(ex, status_for_errno(job.err), std::strerror(job.err));
    ResponseHead head;
    head.status = 204;
    ex.respond(head, Body::none());
}

// ----------------------------------------------------------------- MKCOL

void mkcol_work(FileJob& job) {
    std::string name;
    if (!open_parent(job, name)) return;
    if (mkdirat(job.dir_fd, name.c_str(), 0755) != 0) {
        if (errno == EEXIST) {
            job.status = 405;
        } else {
            job.err = errno;
        }
        return;
    }
    fsync(job.dir_fd);
}

void mkcol_done(Exchange& ex) {
    FileJob& job = ex.job();
    invalidate(ex);
    if (job.status == kStoreRefused) return respond_error(ex, kStoreRefused, kStoreMessage);
    if (job.status == 405) return respond_error(ex, 405, "something already exists there", allowed_methods(ex.site()));
    if (job.status == 409) return respond_error(ex, 409, "the parent directory does not exist");
    if (job.err) return respond_error(ex, status_for_errno(job.err), std::strerror(job.err));
    std::string location = location_for(ex);
    if (location.empty() || location.back() != '/') location.push_back('/');
    ResponseHead head;
    head.location = location;
    respond_text(ex, 201, location, head);
}

void setup_job(Exchange& ex) {
    FileJob& job = ex.job();
    job.root_fd = ex.site().root_fd;
    job.rel = relative_path(ex.path());
    job.trailing_slash = ex.path().back() == '/';
    job.request = &ex.request();
    job.now = ex.now();
    job.locks = ex.site().locks;
    job.site = &ex.site();
}

}  // namespace

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
    setup_job(ex);
    if (site.create_dirs) ex.job().flags |= kCreateDirs;
    ex.offload(put_prepare, put_prepared);
}

void handle_delete(Exchange& ex) {
    if (ex.path() == "/") return respond_error(ex, 403, "the root cannot be deleted");
    setup_job(ex);
    ex.offload(delete_work, delete_done);
}

void handle_mkcol(Exchange& ex) {
    // RFC 4918 §9.3.1: a body we do not understand is a 415.
    if (ex.request().has_body()) return respond_error(ex, 415, "MKCOL takes no request body");
    if (ex.path() == "/") return respond_error(ex, 405, "the root exists", allowed_methods(ex.site()));
    setup_job(ex);
    ex.offload(mkcol_work, mkcol_done);
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
