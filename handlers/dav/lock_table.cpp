#include "handlers/dav/lock_table.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include <fmt/format.h>

#include "handlers/lock_service.h"

namespace uvh {

// The file's layout. Fixed-size fields only, native byte order: the file
// is shared by processes on one machine, never moved between machines.
struct DavLockTable::Header {
    uint64_t magic;
    uint32_t version;
    uint32_t slots;
    uint32_t record_bytes;
    uint32_t pad;
    int64_t latest_expiry;  // the latest expiry of any record; 0: none
    uint64_t changes;       // bumped by every change (diagnostics)
};

struct DavLockTable::Record {
    int64_t expiry;  // 0 or past: free
    char token[36];  // the UUID's text, lower case
    uint8_t exclusive;
    uint8_t infinite;
    uint16_t root_len;
    uint16_t owner_len;
    uint8_t pad[14];
    char root[kMaxRoot + 1];
    char owner[kMaxOwner];
};

namespace {

constexpr uint64_t kMagic = 0x6b636f6c76616475ull;  // "udavlock", little-endian
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 4096;
constexpr size_t kFileBytes = kHeaderBytes + DavLockTable::kSlots * 2048;
constexpr std::string_view kUrnPrefix = "urn:uuid:";

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

// 8-4-4-4-12 lower-case hex digits.
bool valid_uuid(std::string_view u) {
    if (u.size() != 36) return false;
    for (size_t i = 0; i < 36; ++i) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? u[i] != '-' : !is_hex(u[i])) return false;
    }
    return true;
}

// The UUID of a token ("urn:uuid:" + UUID, prefix case-insensitive, hex
// digits of either case), lower-cased; empty when it is not one of ours.
std::string uuid_of(std::string_view token) {
    if (token.size() != kUrnPrefix.size() + 36) return {};
    for (size_t i = 0; i < kUrnPrefix.size(); ++i) {
        char c = token[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (c != kUrnPrefix[i]) return {};
    }
    std::string u(token.substr(kUrnPrefix.size()));
    for (char& c : u)
        if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    return valid_uuid(u) ? u : std::string();
}

}  // namespace

bool path_within(std::string_view path, std::string_view ancestor) {
    if (ancestor == "/") return !path.empty() && path.front() == '/';
    if (!path.starts_with(ancestor)) return false;
    return path.size() == ancestor.size() || path[ancestor.size()] == '/';
}

bool DavLock::covers(std::string_view path) const { return infinite ? path_within(path, root) : path == root; }

DavLockTable::~DavLockTable() {
    if (map_) munmap(map_, map_bytes_);
    if (fd_ >= 0) ::close(fd_);
}

void DavLockTable::open(int root_fd, bool create, const LockService* locks) {
    locks_ = locks;
    {
        char buf[4096];
        std::string self = fmt::format("/proc/self/fd/{}", root_fd);
        ssize_t n = readlink(self.c_str(), buf, sizeof buf);
        if (n > 0 && static_cast<size_t>(n) < sizeof buf) root_real_.assign(buf, static_cast<size_t>(n));
        if (root_real_ == "/") root_real_.clear();  // a root of "/": every path is already canonical
    }
    int fd = openat(root_fd, kFileName, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0), 0600);
    if (fd < 0 && !create) fd = openat(root_fd, kFileName, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    bool writable = fd >= 0 && (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR;
    struct stat st {};
    bool usable = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    // Only a lock service shared with the other processes makes a shared
    // table safe: otherwise their changes would not exclude each other.
    if (usable && !(locks && locks->shared())) usable = false;
    if (usable && writable) {
        // Initialise (or repair) under the table lock, so two servers
        // starting together do not both write the header.
        LockService::Guard g = locks->lock_table();
        if (fstat(fd, &st) != 0) usable = false;
        Header h{};
        bool valid = usable && static_cast<size_t>(st.st_size) >= kFileBytes &&
                     pread(fd, &h, sizeof h, 0) == static_cast<ssize_t>(sizeof h) && h.magic == kMagic &&
                     h.version == kVersion && h.slots == kSlots && h.record_bytes == sizeof(Record);
        if (usable && !valid) {
            if (st.st_size > 0)
                fmt::print(stderr, "uvhttpd: {} in the root is not a lock table this server knows: starting it empty\n",
                           kFileName);
            // Allocated, not sparse (a hole touched on a full disk is a
            // SIGBUS), and zeroed: every record free.
            if (ftruncate(fd, 0) != 0 || posix_fallocate(fd, 0, kFileBytes) != 0) {
                usable = ftruncate(fd, kFileBytes) == 0;
            }
            h = {};
            h.magic = kMagic;
            h.version = kVersion;
            h.slots = kSlots;
            h.record_bytes = sizeof(Record);
            if (usable && pwrite(fd, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) usable = false;
            if (usable) fsync(fd);
        }
    } else if (usable) {
        usable = static_cast<size_t>(st.st_size) >= kFileBytes;
    }
    if (!usable) {
        if (fd >= 0) ::close(fd);
        if (create)
            fmt::print(stderr, "uvhttpd: cannot use {} in the root: WebDAV locks hold within this process only\n",
                       kFileName);
        fd = memfd_create("uvhttpd-davlocks", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, kFileBytes) != 0) {
            if (fd >= 0) ::close(fd);
            return;
        }
        Header h{};
        h.magic = kMagic;
        h.version = kVersion;
        h.slots = kSlots;
        h.record_bytes = sizeof(Record);
        if (pwrite(fd, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) {
            ::close(fd);
            return;
        }
        writable = true;
    }
    void* map = mmap(nullptr, kFileBytes, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        ::close(fd);
        return;
    }
    fd_ = fd;
    map_ = map;
    map_bytes_ = kFileBytes;
    header_ = static_cast<Header*>(map);
    shared_ = usable;
    writable_ = writable;
}

DavLockTable::Record* DavLockTable::record(size_t i) const {
    static_assert(sizeof(Record) == 2048 && offsetof(Record, root) == 64);
    return reinterpret_cast<Record*>(static_cast<char*>(map_) + kHeaderBytes + i * sizeof(Record));
}

bool DavLockTable::maybe_active(time_t now) const {
    if (!header_) return false;
    return __atomic_load_n(&header_->latest_expiry, __ATOMIC_ACQUIRE) > static_cast<int64_t>(now);
}

bool DavLockTable::read_record(size_t i, time_t now, DavLock* out) const {
    const Record* r = record(i);
    if (r->expiry <= static_cast<int64_t>(now)) return false;
    if (r->root_len == 0 || r->root_len > kMaxRoot || r->root[0] != '/' || r->owner_len > kMaxOwner) return false;
    std::string_view uuid(r->token, sizeof r->token);
    if (!valid_uuid(uuid)) return false;
    if (out) {
        out->token.assign(kUrnPrefix);
        out->token.append(uuid);
        out->root.assign(r->root, r->root_len);
        out->exclusive = r->exclusive != 0;
        out->infinite = r->infinite != 0;
        out->owner.assign(r->owner, r->owner_len);
        out->expiry = r->expiry;
    }
    return true;
}

void DavLockTable::find(std::string_view path, bool with_members, time_t now, std::vector<DavLock>& out) const {
    out.clear();
    if (!maybe_active(now)) return;
    DavLock l;
    for (size_t i = 0; i < kSlots; ++i) {
        if (!read_record(i, now, &l)) continue;
        if (l.covers(path) || (with_members && path_within(l.root, path))) out.push_back(l);
    }
}

bool DavLockTable::find_token(std::string_view token, time_t now, DavLock& out) const {
    std::string uuid = uuid_of(token);
    if (uuid.empty() || !maybe_active(now)) return false;
    for (size_t i = 0; i < kSlots; ++i) {
        const Record* r = record(i);
        if (std::string_view(r->token, sizeof r->token) == uuid && read_record(i, now, &out)) return true;
    }
    return false;
}

void DavLockTable::update_latest(time_t now) {
    int64_t latest = 0;
    for (size_t i = 0; i < kSlots; ++i)
        if (read_record(i, now, nullptr) && record(i)->expiry > latest) latest = record(i)->expiry;
    __atomic_store_n(&header_->latest_expiry, latest, __ATOMIC_RELEASE);
    ++header_->changes;
}

int DavLockTable::insert(const DavLock& lock, time_t now) {
    if (!header_ || !writable_) return EROFS;
    if (lock.root.size() > kMaxRoot || lock.root.empty()) return ENAMETOOLONG;
    if (lock.owner.size() > kMaxOwner) return EMSGSIZE;
    std::string uuid = uuid_of(lock.token);
    if (uuid.empty()) return EINVAL;
    for (size_t i = 0; i < kSlots; ++i) {
        if (read_record(i, now, nullptr)) continue;
        Record* r = record(i);
        // The expiry goes last: until then the slot still reads as free.
        r->expiry = 0;
        std::memcpy(r->token, uuid.data(), sizeof r->token);
        r->exclusive = lock.exclusive;
        r->infinite = lock.infinite;
        r->root_len = static_cast<uint16_t>(lock.root.size());
        std::memcpy(r->root, lock.root.data(), lock.root.size());
        r->root[lock.root.size()] = 0;
        r->owner_len = static_cast<uint16_t>(lock.owner.size());
        std::memcpy(r->owner, lock.owner.data(), lock.owner.size());
        __atomic_store_n(&r->expiry, lock.expiry, __ATOMIC_RELEASE);
        update_latest(now);
        return 0;
    }
    return ENOSPC;
}

bool DavLockTable::refresh(std::string_view token, int64_t expiry, time_t now) {
    if (!header_ || !writable_) return false;
    std::string uuid = uuid_of(token);
    if (uuid.empty()) return false;
    for (size_t i = 0; i < kSlots; ++i) {
        Record* r = record(i);
        if (std::string_view(r->token, sizeof r->token) != uuid || !read_record(i, now, nullptr)) continue;
        __atomic_store_n(&r->expiry, expiry, __ATOMIC_RELEASE);
        update_latest(now);
        return true;
    }
    return false;
}

bool DavLockTable::remove(std::string_view token, time_t now) {
    if (!header_ || !writable_) return false;
    std::string uuid = uuid_of(token);
    if (uuid.empty()) return false;
    for (size_t i = 0; i < kSlots; ++i) {
        Record* r = record(i);
        if (std::string_view(r->token, sizeof r->token) != uuid || !read_record(i, now, nullptr)) continue;
        __atomic_store_n(&r->expiry, int64_t{0}, __ATOMIC_RELEASE);
        update_latest(now);
        return true;
    }
    return false;
}

size_t DavLockTable::live(time_t now) const {
    if (!header_) return 0;
    size_t n = 0;
    for (size_t i = 0; i < kSlots; ++i)
        if (read_record(i, now, nullptr)) ++n;
    return n;
}

std::string DavLockTable::new_token() {
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        got += static_cast<size_t>(n);
    }
    // RFC 9562 §5.4: version 4, variant 10.
    b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
    b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
    return fmt::format("urn:uuid:{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
                       b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                       b[15]);
}

}  // namespace uvh
