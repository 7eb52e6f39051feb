#include "handlers/write_ops.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "handlers/dav/dav_common.h"
#include "handlers/dav/dav_locks.h"
#include "handlers/dav/tree_ops.h"
#include "handlers/fd_cache.h"
#include "handlers/file_cache.h"
#include "handlers/fs_ops.h"
#include "handlers/lock_service.h"
#include "handlers/router.h"
#include "handlers/write_step.h"

namespace uvh {

namespace {

// DELETE (RFC 9110 §9.3.5, RFC 4918 §9.6) and MKCOL (RFC 4918 §9.3): the
// two writes that remove or add a name without content.

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
        invalidate_path_caches(ex);
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
    invalidate_path_caches(ex);
    if (lock_check.status) return respond_lock_check(ex, lock_check);
    if (status == kStoreRefused) return respond_error(ex, kStoreRefused, kStoreMessage);
    if (status == 405) return respond_error(ex, 405, "something already exists there", allowed_methods(ex.site()));
    if (status == 409) return respond_error(ex, 409, "the parent directory does not exist");
    if (err) return respond_error(ex, status_for_errno(err), std::strerror(err));
    std::string location = created_location(ex);
    if (location.empty() || location.back() != '/') location.push_back('/');
    ResponseHead head;
    head.location = location;
    respond_text(ex, 201, location, head);
}

}  // namespace

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

}  // namespace uvh
