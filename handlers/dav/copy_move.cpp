// COPY (RFC 4918 §9.8) and MOVE (§9.9).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "handlers/dav/dav.h"
#include "handlers/dav/dav_common.h"
#include "handlers/dav/dav_locks.h"
#include "handlers/dav/tree_ops.h"
#include "handlers/fd_cache.h"
#include "handlers/file_cache.h"
#include "handlers/fs_ops.h"
#include "handlers/lock_service.h"
#include "handlers/router.h"
#include "protocol/target.h"

namespace uvh {

namespace {

std::string_view without_slash(std::string_view p) {
    while (p.size() > 1 && p.back() == '/') p.remove_suffix(1);
    return p;
}

struct CopyMoveJob final : Job {
    // ---- inputs (loop thread) ----
    const Site* site = nullptr;
    const Request* request = nullptr;
    int root_fd = -1;
    bool move = false;
    bool overwrite = true;
    bool members = true;  // Depth: infinity (COPY Depth: 0 copies the collection alone)
    std::string src_path, dst_path;  // decoded URL paths
    PropsMode mode = PropsMode::Auto;
    time_t now = 0;

    // ---- outputs (worker thread) ----
    int err = 0;
    int status = 0;
    std::string why;
    bool replaced = false;  // the destination existed
    bool collection = false;
    LockCheck lock_check;
    TreeContext tree;

    CopyMoveJob(Exchange& ex, bool is_move)
        : site(&ex.site()),
          request(&ex.request()),
          root_fd(ex.site().root_fd),
          move(is_move),
          src_path(ex.path()),
          mode(props_mode(ex.site())),
          now(ex.now()) {}

    void work() override;
    void done(Exchange& ex) override;
    bool run(int src_dir, const std::string& src_name, int dst_dir, const std::string& dst_name);
};

void CopyMoveJob::work() {
    tree.site = site;
    tree.mode = mode;
    std::string src_rel = relative_path(src_path), dst_rel = relative_path(dst_path);
    std::string src_parent, src_name, dst_parent, dst_name;
    split_parent(src_rel, src_parent, src_name);
    split_parent(dst_rel, dst_parent, dst_name);
    int sdir = open_beneath(root_fd, src_parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (sdir < 0) {
        err = errno == ENOTDIR ? ENOENT : errno;
        return;
    }
    int ddir = open_beneath(root_fd, dst_parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ddir < 0) {
        int e = errno;
        close(sdir);
        if (e == ENOENT || e == ENOTDIR) {
            status = 409;  // RFC 4918 §9.8.5: the destination's parent is missing
            why = "the destination's parent collection does not exist";
        } else {
            err = e;
        }
        return;
    }
    run(sdir, src_name, ddir, dst_name);
    // A name may now exist in the destination's directory: caches that
    // remember it missing (handlers/fd_cache.h) keep that under the
    // directory's generation. After a refusal the bump costs a cache miss.
    struct stat dst_dir {};
    if (site->locks && fstat(ddir, &dst_dir) == 0) site->locks->bump(dst_dir.st_dev, dst_dir.st_ino);
    close(sdir);
    close(ddir);
}

// The work with both parents open; false with status/err set on refusal.
bool CopyMoveJob::run(int sdir, const std::string& src_name, int ddir, const std::string& dst_name) {
    struct stat sst {};
    if (fstatat(sdir, src_name.c_str(), &sst, AT_SYMLINK_NOFOLLOW) != 0) {
        err = errno;
        return false;
    }
    collection = S_ISDIR(sst.st_mode);
    if ((!collection && !S_ISREG(sst.st_mode) && !S_ISLNK(sst.st_mode)) || (!collection && src_path.back() == '/')) {
        err = ENOENT;
        return false;
    }
    // The record store is never moved or copied over; copying it is refused
    // too (its bytes are served by GET; a copy would be a stale second store).
    if (dav_is_record_store(*site, sdir, src_name) || dav_is_record_store(*site, ddir, dst_name)) {
        status = 403;
        why = "that name is the record store's file; records live at /database.txt/ID";
        return false;
    }
    // Both names' locks, in one fixed order (handlers/lock_service.h), from
    // the checks to the change.
    LockService::Guard guard;
    if (site->locks) {
        struct stat a {}, b {};
        fstat(sdir, &a);
        fstat(ddir, &b);
        guard = site->locks->lock_names(a, src_name, b, dst_name);
        if (!guard.held()) {
            err = errno;
            return false;
        }
    }
    struct stat dst {};
    replaced = fstatat(ddir, dst_name.c_str(), &dst, AT_SYMLINK_NOFOLLOW) == 0;
    bool dst_dir = replaced && S_ISDIR(dst.st_mode);
    if (replaced && !overwrite) {
        status = 412;  // RFC 4918 §10.6
        why = "the destination exists and Overwrite is F";
        return false;
    }
    // WebDAV locks (RFC 4918 §7.5): the destination's, and a moved source's.
    lock_check = check_write_locks(*site, *request, &guard,
                                   WriteTarget{dst_path, ddir, dst_name, dst_dir || collection, !replaced}, now);
    if (lock_check.status) return false;
    LockCheck src_check;
    if (move) {
        src_check = check_write_locks(*site, *request, &guard, WriteTarget{src_path, sdir, src_name, collection, true},
                                      now);
        if (src_check.status) {
            lock_check = std::move(src_check);
            return false;
        }
    }

    // RFC 4918 §9.8.4, §9.9.3: an overwritten destination is deleted first,
    // unless a file replaces a file, which one rename does atomically.
    bool file_over_file = replaced && !dst_dir && !collection;
    if (replaced && !file_over_file) {
        std::string dst_url(dst_path);
        if (!remove_tree(tree, ddir, dst_name, dst_url)) return false;  // 207 names what stayed
    }
    if (replaced && file_over_file && site->locks) site->locks->bump(dst.st_dev, dst.st_ino);

    if (!move) {
        copy_tree(tree, sdir, src_name, ddir, dst_name, dst_path, members);
        return tree.failures.empty();
    }

    // MOVE: one rename within a file system, so readers see the resource at
    // one name or the other, never missing. Without Overwrite the kernel
    // refuses to replace a name someone else created meanwhile.
    unsigned flags = replaced ? 0 : RENAME_NOREPLACE;
    int r = renameat2(sdir, src_name.c_str(), ddir, dst_name.c_str(), flags);
    if (r != 0 && errno == EINVAL && flags) r = renameat(sdir, src_name.c_str(), ddir, dst_name.c_str());
    if (r != 0) {
        int e = errno;
        if (e == EEXIST) {
            status = 412;
            why = "the destination was created meanwhile";
            return false;
        }
        if (e != EXDEV) {
            err = e;
            return false;
        }
        // Another file system (a mount inside the root): copy, then delete.
        if (!copy_tree(tree, sdir, src_name, ddir, dst_name, dst_path, true) || !tree.failures.empty())
            return false;
        std::string src_url(src_path);
        remove_tree(tree, sdir, src_name, src_url);
        return tree.failures.empty();
    }
    fsync(ddir);
    if (sdir != ddir) fsync(sdir);
    props_moved({sdir, src_name, collection}, {ddir, dst_name, collection});
    if (site->locks) {
        site->locks->bump(sst.st_dev, sst.st_ino);
        if (collection) {
            int fd = openat(ddir, dst_name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd >= 0) {
                bump_tree(*site, fd);
                close(fd);
            }
        }
    }
    // RFC 4918 §9.9.1: locks on the source do not move with it.
    guard.release();
    release_locks(*site, src_check.rooted, now);
    return true;
}

void CopyMoveJob::done(Exchange& ex) {
    // Caches drop whatever they held under either name before the answer.
    if (FileCache* cache = ex.site().cache) {
        if (collection || tree.removed > 1) {
            cache->clear();
        } else {
            cache->invalidate_file(src_path);
            cache->invalidate_file(dst_path);
        }
    }
    if (FdCache* fds = ex.site().fd_cache) {
        if (collection || tree.removed > 1) {
            fds->clear();
        } else {
            fds->invalidate_file(src_path);
            fds->invalidate_file(dst_path);
        }
    }
    if (lock_check.status) return respond_lock_check(ex, lock_check);
    if (status) return respond_error(ex, status, why);
    if (err) {
        if (err == ENOENT || err == ENOTDIR) return respond_error(ex, 404, "no such file or directory");
        if (err == ENOSPC || err == EDQUOT) return respond_error(ex, 507, std::strerror(err));
        return respond_error(ex, status_for_errno(err), std::strerror(err));
    }
    if (!tree.failures.empty()) {
        // Only the resource itself failed: its status alone says it.
        if (tree.failures.size() == 1 && without_slash(tree.failures[0].url_path) == without_slash(dst_path) &&
            tree.copied == 0)
            return respond_error(ex, tree.failures[0].status, "the copy could not be made");
        // RFC 4918 §9.8.5, §9.6.1: 207 naming the members that failed.
        return respond_member_failures(ex, tree.failures);
    }
    if (replaced) {
        ResponseHead head;
        head.status = 204;
        return ex.respond(head, Body::none());
    }
    std::string location = dav_href(dst_path);
    ResponseHead head;
    head.location = location;
    respond_text(ex, 201, location, head);
}

void start(Exchange& ex, bool move) {
    const Request& req = ex.request();
    std::string dst, why;
    int s = parse_destination(req, dst, why);
    if (s) return respond_error(ex, s, why);
    bool overwrite = true;
    if (!parse_overwrite(req, overwrite)) return respond_error(ex, 400, "Overwrite must be T or F");
    // Depth (RFC 4918 §9.8.3, §9.9.2): COPY takes 0 or infinity; MOVE of a
    // collection is always infinity.
    Depth depth = parse_depth(req, Depth::Infinity);
    if (depth == Depth::Invalid || depth == Depth::One || (move && depth != Depth::Infinity))
        return respond_error(ex, 400, move ? "MOVE takes Depth: infinity" : "COPY takes Depth: 0 or infinity");
    // The dotfile rule holds for destinations too: hidden names are not
    // the client's to create.
    if (has_hidden_segment(dst)) return respond_error(ex, 403, "the destination is a hidden name");
    std::string_view src = without_slash(ex.path()), to = without_slash(dst);
    if (src == "/") return respond_error(ex, 403, move ? "the root cannot be moved" : "the root cannot be copied");
    if (to == "/") return respond_error(ex, 403, "the root cannot be overwritten");
    if (src == to) return respond_error(ex, 403, "the source and the destination are the same");
    if (to.size() > src.size() && to.starts_with(src) && to[src.size()] == '/')
        return respond_error(ex, 403, "the destination is inside the source");
    if (src.size() > to.size() && src.starts_with(to) && src[to.size()] == '/')
        return respond_error(ex, 403, "the destination is a collection holding the source");
    if (to == ex.site().database_url)
        return respond_error(ex, 403, "that name is the record store's file; records live at /database.txt/ID");
    CopyMoveJob& job = ex.make_job<CopyMoveJob>(ex, move);
    job.dst_path = std::move(dst);
    job.overwrite = overwrite;
    job.members = depth == Depth::Infinity;
    ex.offload(job);
}

}  // namespace

void handle_copy(Exchange& ex) { start(ex, false); }
void handle_move(Exchange& ex) { start(ex, true); }

}  // namespace uvh
