#include "handlers/fs_ops.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>

namespace uvh {

namespace {

// Fallback for kernels without openat2 (before 5.6): open normally, then
// check through /proc that the file really lies under the root.
int open_checked(int root_fd, const std::string& rel, int flags, mode_t mode) {
    int fd = openat(root_fd, rel.c_str(), flags, mode);
    if (fd < 0) return -1;
    char root_path[PATH_MAX], file_path[PATH_MAX];
    std::string link = "/proc/self/fd/" + std::to_string(root_fd);
    ssize_t rn = readlink(link.c_str(), root_path, sizeof root_path - 1);
    link = "/proc/self/fd/" + std::to_string(fd);
    ssize_t fn = readlink(link.c_str(), file_path, sizeof file_path - 1);
    if (rn <= 0 || fn <= 0) {
        close(fd);
        errno = EACCES;
        return -1;
    }
    std::string_view r(root_path, static_cast<size_t>(rn)), f(file_path, static_cast<size_t>(fn));
    bool inside = f == r || (f.size() > r.size() && f.compare(0, r.size(), r) == 0 &&
                             (r == "/" || f[r.size()] == '/'));
    if (!inside) {
        close(fd);
        errno = EXDEV;
        return -1;
    }
    return fd;
}

}  // namespace

int open_beneath(int root_fd, const std::string& rel, int flags, mode_t mode) {
#if defined(__SANITIZE_THREAD__)
    // ThreadSanitizer sees descriptors made by the libc calls it intercepts,
    // not by a raw openat2 syscall; under TSan the checked fallback below is
    // used. libtsan 12 does not intercept openat() either, so descriptor-
    // number reuse across workers is suppressed in test/tsan.supp.
    static std::atomic<bool> have_openat2{false};
#else
    // Worker threads share this; relaxed order is enough for a one-way flag.
    static std::atomic<bool> have_openat2{true};
#endif
    if (have_openat2.load(std::memory_order_relaxed)) {
        struct open_how how {};
        how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
        how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
        for (;;) {
            long fd = syscall(SYS_openat2, root_fd, rel.c_str(), &how, sizeof how);
            if (fd >= 0) return static_cast<int>(fd);
            if (errno == EAGAIN || errno == EINTR) continue;  // a rename raced the lookup
            if (errno == ENOSYS) break;
            return -1;
        }
        have_openat2.store(false, std::memory_order_relaxed);
    }
    return open_checked(root_fd, rel, flags | O_CLOEXEC, mode);
}

void split_parent(std::string_view rel, std::string& parent, std::string& name) {
    size_t slash = rel.rfind('/');
    if (slash == std::string_view::npos) {
        parent = ".";
        name.assign(rel);
    } else {
        parent.assign(rel.substr(0, slash));
        name.assign(rel.substr(slash + 1));
    }
}

int status_for_errno(int err) {
    switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG:
        return 404;
    case EACCES:
    case EPERM:
    case EXDEV:
    case ELOOP:
    case EROFS:
        return 403;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return 507;
    case EMFILE:
    case ENFILE:
        return 503;
    default:
        return 500;
    }
}

bool read_exact(int fd, uint64_t offset, size_t len, std::string& out) {
    out.resize(len);
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, out.data() + done, len - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        if (n == 0) {
            errno = EIO;
            return false;
        }
        done += static_cast<size_t>(n);
    }
    return true;
}

bool write_all(int fd, const char* data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data += n;
        len -= static_cast<size_t>(n);
    }
    return true;
}

bool same_version(const struct stat& a, const struct stat& b) {
    return a.st_ino == b.st_ino && a.st_dev == b.st_dev && a.st_size == b.st_size &&
           a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec &&
           a.st_ctim.tv_sec == b.st_ctim.tv_sec && a.st_ctim.tv_nsec == b.st_ctim.tv_nsec;
}

}  // namespace uvh
