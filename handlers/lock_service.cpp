#include "handlers/lock_service.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <fmt/format.h>

namespace uvh {

namespace {

constexpr size_t kTableBytes = LockService::kSlots * sizeof(uint64_t);
// Lock bytes live past the table, so a lock never touches a counter's page.
constexpr off_t kLockBase = 1 << 20;
constexpr off_t kLockBytes = 1 << 16;
// The WebDAV lock table's lock: the first byte past the hashed range.
constexpr off_t kTableLockByte = kLockBase + kLockBytes;

// F_OFD_SETLKW on one byte of `fd`, retried on EINTR.
bool lock_byte(int fd, off_t byte, short type) {
    struct flock fl {};
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = byte;
    fl.l_len = 1;
    while (fcntl(fd, F_OFD_SETLKW, &fl) != 0) {
        if (errno != EINTR) return false;
    }
    return true;
}

uint64_t mix(uint64_t h, uint64_t v) {
    // FNV-1a over the eight bytes of v.
    for (int i = 0; i < 8; ++i) {
        h ^= (v >> (i * 8)) & 0xff;
        h *= 1099511628211ull;
    }
    return h;
}

constexpr uint64_t kFnvBasis = 14695981039346656037ull;

}  // namespace

LockService::~LockService() {
    if (table_) munmap(table_, kTableBytes);
    if (fd_ >= 0) ::close(fd_);
}

namespace {

// Gives the file kTableBytes of allocated blocks without touching what is
// already there (another process may be using the counters). Not sparse:
// touching a hole of a mapped file on a full disk is a SIGBUS, and on tmpfs
// even reading one allocates a page.
bool allocate_table(int fd, const struct stat& st) {
    if (static_cast<size_t>(st.st_size) >= kTableBytes && static_cast<size_t>(st.st_blocks) * 512 >= kTableBytes)
        return true;
    int e = posix_fallocate(fd, 0, kTableBytes);
    if (e == 0) return true;
    if (e != EOPNOTSUPP && e != EINVAL) {
        errno = e;
        return false;
    }
    // No fallocate here: write zeros past the current end.
    static const char zeros[4096] = {};
    for (off_t off = st.st_size; off < static_cast<off_t>(kTableBytes); off += sizeof zeros) {
        if (pwrite(fd, zeros, sizeof zeros, off) != static_cast<ssize_t>(sizeof zeros)) return false;
    }
    return true;
}

}  // namespace

void LockService::open(int root_fd, bool create) {
    int fd = openat(root_fd, kFileName, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0), 0600);
    if (fd < 0 && !create) fd = openat(root_fd, kFileName, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st {};
    bool writable = fd >= 0 && (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR;
    bool usable = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
                  (writable ? allocate_table(fd, st) : static_cast<size_t>(st.st_size) >= kTableBytes);
    if (!usable) {
        int e = fd >= 0 ? (errno ? errno : EINVAL) : errno;
        if (fd >= 0) ::close(fd);
        if (create)
            fmt::print(stderr,
                       "uvhttpd: cannot use {} in the root ({}): write locks and cache generations hold within "
                       "this process only\n",
                       kFileName, std::strerror(e));
        // A memory file: OFD locks on it still exclude this process's
        // threads (each acquisition opens it anew through /proc).
        fd = memfd_create("uvhttpd-state", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, kTableBytes) != 0) {
            if (fd >= 0) ::close(fd);
            return;
        }
        writable = true;
    }
    shared_ = usable;
    void* map = mmap(nullptr, kTableBytes, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        ::close(fd);
        return;
    }
    fd_ = fd;
    table_ = static_cast<uint64_t*>(map);
    writable_ = writable;
}

LockService::Guard& LockService::Guard::operator=(Guard&& o) noexcept {
    if (this != &o) {
        release();
        fd_ = o.fd_;
        o.fd_ = -1;
    }
    return *this;
}

void LockService::Guard::release() {
    // Closing the description drops its OFD lock.
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

off_t LockService::byte_of(const struct stat& dir, std::string_view name) {
    uint64_t h = mix(mix(kFnvBasis, static_cast<uint64_t>(dir.st_dev)), static_cast<uint64_t>(dir.st_ino));
    for (char c : name) {
        h ^= static_cast<unsigned char>(c);
        h *= 1099511628211ull;
    }
    return kLockBase + static_cast<off_t>(h % kLockBytes);
}

LockService::Guard LockService::lock_bytes(off_t first, off_t second) const {
    if (fd_ < 0) {
        errno = EBADF;
        return Guard();
    }
    // A new open file description for every acquisition: OFD locks of one
    // description do not exclude each other, so threads must not share one.
    std::string self = fmt::format("/proc/self/fd/{}", fd_);
    int fd = ::open(self.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return Guard();
    for (off_t at : {first, second}) {
        if (at >= 0 && !lock_byte(fd, at, F_WRLCK)) {
            int e = errno;
            ::close(fd);
            errno = e;
            return Guard();
        }
    }
    return Guard(fd);
}

LockService::Guard LockService::lock_name(const struct stat& dir, std::string_view name) const {
    return lock_bytes(byte_of(dir, name), -1);
}

LockService::Guard LockService::lock_names(const struct stat& dir_a, std::string_view a, const struct stat& dir_b,
                                           std::string_view b) const {
    // Both on one description, in ascending byte order: two MOVEs in
    // opposite directions cannot deadlock, and two names that share a byte
    // do not wait for themselves (OFD locks have no deadlock detection).
    off_t x = byte_of(dir_a, a), y = byte_of(dir_b, b);
    if (x == y) return lock_bytes(x, -1);
    return x < y ? lock_bytes(x, y) : lock_bytes(y, x);
}

LockService::Guard LockService::lock_table(bool exclusive) const {
    if (fd_ < 0) {
        errno = EBADF;
        return Guard();
    }
    std::string self = fmt::format("/proc/self/fd/{}", fd_);
    // A shared hold needs only read access (a --read-only server may have
    // the state file open read-only).
    int fd = ::open(self.c_str(), (exclusive || writable_ ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return Guard();
    if (!lock_byte(fd, kTableLockByte, exclusive ? F_WRLCK : F_RDLCK)) {
        int e = errno;
        ::close(fd);
        errno = e;
        return Guard();
    }
    return Guard(fd);
}

LockService::Guard LockService::lock_file(int dir_fd, const char* name) {
    int fd = ::openat(dir_fd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return Guard();
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 0;  // the whole file, however long it grows
    while (fcntl(fd, F_OFD_SETLKW, &fl) != 0) {
        if (errno == EINTR) continue;
        int e = errno;
        ::close(fd);
        errno = e;
        return Guard();
    }
    return Guard(fd);
}

bool LockService::share_table(Guard& held) const {
    if (held.fd_ < 0) {
        errno = EBADF;
        return false;
    }
    return lock_byte(held.fd_, kTableLockByte, F_RDLCK);
}

uint64_t* LockService::slot(dev_t dev, ino_t ino) const {
    if (!table_) return nullptr;
    uint64_t h = mix(mix(kFnvBasis, static_cast<uint64_t>(dev)), static_cast<uint64_t>(ino));
    return table_ + (h % kSlots);
}

uint64_t LockService::generation(dev_t dev, ino_t ino) const {
    uint64_t* s = slot(dev, ino);
    return s ? __atomic_load_n(s, __ATOMIC_ACQUIRE) : 0;
}

void LockService::bump(dev_t dev, ino_t ino) const {
    uint64_t* s = slot(dev, ino);
    // A read-only mapping (a --read-only server) never writes.
    if (s && writable_) __atomic_add_fetch(s, 1, __ATOMIC_ACQ_REL);
}

}  // namespace uvh
