#include "handlers/dav/tree_ops.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "handlers/dav/dav_common.h"
#include "handlers/fs_ops.h"
#include "handlers/lock_service.h"
#include "handlers/write_ops.h"

namespace uvh {

namespace {

// Levels a tree operation descends at most (a path is at most 4096 bytes,
// so real trees are far shallower); deeper members are reported as failed.
constexpr int kMaxTreeDepth = 256;

void fail(TreeContext& cx, const std::string& url_path, int status) {
    // Bounded: a 207 naming a million members helps nobody.
    if (cx.failures.size() < 10000) cx.failures.push_back({url_path, status});
}

int errno_status(int e) {
    if (e == ENOSPC || e == EDQUOT) return 507;
    if (e == ENOTEMPTY || e == EEXIST) return 409;
    return status_for_errno(e);
}

// The names in a directory (without "." and ".."), read first so removing
// does not disturb the iteration.
bool list_names(int dir_fd, std::vector<std::string>& out) {
    int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return false;
    DIR* d = fdopendir(fd);
    if (!d) {
        close(fd);
        return false;
    }
    while (struct dirent* e = readdir(d)) {
        std::string_view n = e->d_name;
        if (n == "." || n == "..") continue;
        out.emplace_back(n);
    }
    closedir(d);
    return true;
}

void bump(const TreeContext& cx, const struct stat& st) {
    if (cx.site && cx.site->locks) cx.site->locks->bump(st.st_dev, st.st_ino);
}

// Removes the sidecar directory of a directory whose members are all gone.
void remove_sidecar_dir(int dir_fd) {
    std::string dir(kPropsDir);
    int fd = openat(dir_fd, dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return;
    std::vector<std::string> names;
    list_names(fd, names);
    for (const std::string& n : names) unlinkat(fd, n.c_str(), 0);
    close(fd);
    unlinkat(dir_fd, dir.c_str(), AT_REMOVEDIR);
}

bool remove_at(TreeContext& cx, int dir_fd, const std::string& name, const std::string& url_path, int depth) {
    struct stat st {};
    if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) return true;  // gone already
        fail(cx, url_path, errno_status(errno));
        return false;
    }
    if (cx.site && dav_is_record_store(*cx.site, dir_fd, name)) {
        fail(cx, url_path, 403);
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(dir_fd, name.c_str(), 0) != 0) {
            fail(cx, url_path, errno_status(errno));
            return false;
        }
        bump(cx, st);
        ++cx.removed;
        return true;
    }
    if (depth >= kMaxTreeDepth) {
        fail(cx, url_path, 507);
        return false;
    }
    int fd = openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        fail(cx, url_path, errno_status(errno));
        return false;
    }
    std::vector<std::string> names;
    if (!list_names(fd, names)) {
        fail(cx, url_path, errno_status(errno));
        close(fd);
        return false;
    }
    bool has_sidecar = std::find(names.begin(), names.end(), kPropsDir) != names.end();
    bool all_gone = true;
    for (const std::string& n : names) {
        if (n == kPropsDir) continue;
        struct stat mst {};
        bool is_dir = fstatat(fd, n.c_str(), &mst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(mst.st_mode);
        std::string member = member_path(url_path, n, is_dir);
        if (n.front() == '.') {
            // Hidden files are not the client's to remove; they keep their
            // directory (RFC 4918 §9.6.1 allows a partial DELETE).
            fail(cx, member, 403);
            all_gone = false;
            continue;
        }
        if (remove_at(cx, fd, n, member, depth + 1)) {
            if (has_sidecar) props_forget({fd, n, false});
        } else {
            all_gone = false;
        }
    }
    if (!all_gone) {
        close(fd);
        return false;
    }
    remove_sidecar_dir(fd);
    close(fd);
    if (unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0) {
        // Something appeared meanwhile (a concurrent PUT): the directory stays.
        fail(cx, url_path, errno_status(errno));
        return false;
    }
    bump(cx, st);
    ++cx.removed;
    return true;
}

bool copy_file(TreeContext& cx, int src_dir, const std::string& src_name, int dst_dir, const std::string& dst_name,
               const std::string& url_path) {
    int in = openat(src_dir, src_name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0) {
        fail(cx, url_path, errno_status(errno));
        return false;
    }
    struct stat st {};
    fstat(in, &st);
    std::string tmp = temp_name();
    int out = openat(dst_dir, tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (out < 0) {
        fail(cx, url_path, errno_status(errno));
        close(in);
        return false;
    }
    int e = 0;
    for (;;) {
        ssize_t n = copy_file_range(in, nullptr, out, nullptr, 1 << 30, 0);
        if (n > 0) continue;
        if (n == 0) break;
        if (errno == EINTR) continue;
        if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
            // No in-kernel copy between these file systems: read and write.
            char buf[65536];
            ssize_t r;
            while ((r = read(in, buf, sizeof buf)) > 0)
                if (!write_all(out, buf, static_cast<size_t>(r))) {
                    e = errno;
                    break;
                }
            if (r < 0) e = errno;
        } else {
            e = errno;
        }
        break;
    }
    // Permission bits travel, setuid/setgid/sticky do not (as for PUT).
    if (e == 0) fchmod(out, st.st_mode & 0777);
    if (e == 0 && fdatasync(out) != 0) e = errno;
    close(in);
    close(out);
    if (e == 0) {
        // Dead properties onto the new file before it gets its name.
        if (props_copy(cx.mode, {src_dir, src_name, false}, {dst_dir, tmp, false}) != 0) e = EIO;
    }
    if (e == 0 && renameat(dst_dir, tmp.c_str(), dst_dir, dst_name.c_str()) != 0) e = errno;
    if (e != 0) {
        unlinkat(dst_dir, tmp.c_str(), 0);
        props_forget({dst_dir, tmp, false});
        fail(cx, url_path, errno_status(e));
        return false;
    }
    if (cx.mode == PropsMode::Sidecar) props_moved({dst_dir, tmp, false}, {dst_dir, dst_name, false});
    ++cx.copied;
    return true;
}

bool copy_at(TreeContext& cx, int src_dir, const std::string& src_name, int dst_dir, const std::string& dst_name,
             const std::string& url_path, bool members, int depth) {
    // Symlinks are not followed (one could lead out of the root): they are
    // neither files nor collections here, and are reported.
    struct stat st {};
    if (fstatat(src_dir, src_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        fail(cx, url_path, errno_status(errno));
        return false;
    }
    if (cx.site && dav_is_record_store(*cx.site, src_dir, src_name)) {
        fail(cx, url_path, 403);  // the record store is read through GET, not duplicated
        return false;
    }
    if (S_ISREG(st.st_mode)) return copy_file(cx, src_dir, src_name, dst_dir, dst_name, url_path);
    if (!S_ISDIR(st.st_mode)) {
        fail(cx, url_path, 403);
        return false;
    }
    if (depth >= kMaxTreeDepth) {
        fail(cx, url_path, 507);
        return false;
    }
    if (mkdirat(dst_dir, dst_name.c_str(), 0755) != 0) {
        fail(cx, url_path, errno_status(errno));
        return false;
    }
    ++cx.copied;
    props_copy(cx.mode, {src_dir, src_name, true}, {dst_dir, dst_name, true});
    if (!members) return true;
    int sfd = openat(src_dir, src_name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int dfd = openat(dst_dir, dst_name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    std::vector<std::string> names;
    if (sfd < 0 || dfd < 0 || !list_names(sfd, names)) {
        fail(cx, url_path, errno_status(errno));
        if (sfd >= 0) close(sfd);
        if (dfd >= 0) close(dfd);
        return true;  // the collection exists; its members failed
    }
    for (const std::string& n : names) {
        if (n.front() == '.') continue;  // hidden files and the sidecar are not resources
        struct stat mst {};
        bool is_dir = fstatat(sfd, n.c_str(), &mst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(mst.st_mode);
        copy_at(cx, sfd, n, dfd, n, member_path(url_path, n, is_dir), true, depth + 1);
    }
    fsync(dfd);
    close(sfd);
    close(dfd);
    return true;
}

void bump_at(const Site& site, int dir_fd, int depth) {
    std::vector<std::string> names;
    if (depth >= kMaxTreeDepth || !list_names(dir_fd, names)) return;
    for (const std::string& n : names) {
        struct stat st {};
        if (fstatat(dir_fd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        site.locks->bump(st.st_dev, st.st_ino);
        if (!S_ISDIR(st.st_mode)) continue;
        int fd = openat(dir_fd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) continue;
        bump_at(site, fd, depth + 1);
        close(fd);
    }
}

}  // namespace

void bump_tree(const Site& site, int dir_fd) {
    if (site.locks) bump_at(site, dir_fd, 0);
}

bool remove_tree(TreeContext& cx, int dir_fd, const std::string& name, const std::string& url_path) {
    bool gone = remove_at(cx, dir_fd, name, url_path, 0);
    if (gone) props_forget({dir_fd, name, false});
    fsync(dir_fd);
    return gone;
}

bool copy_tree(TreeContext& cx, int src_dir, const std::string& src_name, int dst_dir, const std::string& dst_name,
               const std::string& dst_url_path, bool members) {
    bool made = copy_at(cx, src_dir, src_name, dst_dir, dst_name, dst_url_path, members, 0);
    fsync(dst_dir);
    return made;
}

}  // namespace uvh
