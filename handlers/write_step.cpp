#include "handlers/write_step.h"

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
#include "handlers/dav/dav_locks.h"
#include "handlers/dav/props_store.h"
#include "handlers/fd_cache.h"
#include "handlers/file_cache.h"
#include "handlers/fs_ops.h"
#include "handlers/lock_service.h"
#include "handlers/write_ops.h"
#include "protocol/etag.h"
#include "protocol/preconditions.h"
#include "protocol/target.h"

namespace uvh {

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

std::string created_location(const Exchange& ex) {
    return self_location(ex.request().parsed.path, {}, false);
}

void invalidate_path_caches(Exchange& ex) {
    if (FileCache* cache = ex.site().cache) cache->invalidate_file(ex.path());
    if (CodingCache* codings = ex.site().codings) codings->invalidate_file(ex.path());
    if (FdCache* fds = ex.site().fd_cache) fds->invalidate_file(ex.path());
}

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
