#include "handlers/dav/props_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string>

#include "handlers/fs_ops.h"
#include "handlers/write_ops.h"

namespace uvh {

namespace {

constexpr std::string_view kMagic = "UVHP1\n";

// Extended attributes have no *at() calls before Linux 6.13: the path
// through the directory's descriptor in /proc names the entry itself (the
// l* calls do not follow a symlink in the last component).
std::string proc_path(int dir_fd, std::string_view name) {
    std::string p = "/proc/self/fd/" + std::to_string(dir_fd);
    if (!name.empty() && name != ".") {
        p += '/';
        p += name;
    }
    return p;
}

bool xattr_unsupported(int e) { return e == ENOTSUP || e == EOPNOTSUPP; }

// The sidecar's directory and entry name for a resource: the collection
// itself (its .self) or the file's parent directory.
struct SidecarPlace {
    int base_fd = -1;  // owned when != the caller's dir_fd
    bool owned = false;
    std::string entry;
    ~SidecarPlace() {
        if (owned && base_fd >= 0) close(base_fd);
    }
};

bool sidecar_place(const PropsTarget& t, SidecarPlace& p) {
    if (t.is_dir) {
        std::string n = t.name.empty() ? std::string(".") : std::string(t.name);
        p.base_fd = openat(t.dir_fd, n.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (p.base_fd < 0) return false;
        p.owned = true;
        p.entry = std::string(kPropsSelf);
    } else {
        p.base_fd = t.dir_fd;
        p.entry = std::string(t.name);
    }
    return true;
}

int read_all(int fd, std::string& out) {
    out.clear();
    char buf[16384];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (n == 0) return 0;
        out.append(buf, static_cast<size_t>(n));
        if (out.size() > kMaxPropsBlob) return EFBIG;
    }
}

// 0 and the blob, ENOENT when there is no sidecar, or an errno.
int sidecar_read(const PropsTarget& t, std::string& blob) {
    SidecarPlace p;
    if (!sidecar_place(t, p)) return errno;
    std::string rel = std::string(kPropsDir) + "/" + p.entry;
    int fd = openat(p.base_fd, rel.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno;
    int e = read_all(fd, blob);
    close(fd);
    return e;
}

int sidecar_remove(const PropsTarget& t) {
    SidecarPlace p;
    if (!sidecar_place(t, p)) return errno;
    std::string rel = std::string(kPropsDir) + "/" + p.entry;
    if (unlinkat(p.base_fd, rel.c_str(), 0) != 0 && errno != ENOENT && errno != ENOTDIR) return errno;
    return 0;
}

// Writes the blob to a temporary file in the sidecar directory, syncs it
// and renames it over the entry: a reader sees the old set or the new one.
int sidecar_write(const PropsTarget& t, const std::string& blob) {
    SidecarPlace p;
    if (!sidecar_place(t, p)) return errno;
    std::string dir(kPropsDir);
    if (mkdirat(p.base_fd, dir.c_str(), 0755) != 0 && errno != EEXIST) return errno;
    int dfd = openat(p.base_fd, dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) return errno;
    std::string tmp = temp_name();
    int fd = openat(dfd, tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        close(dfd);
        return e;
    }
    int e = 0;
    if (!write_all(fd, blob.data(), blob.size()) || fdatasync(fd) != 0) e = errno;
    close(fd);
    if (e == 0 && renameat(dfd, tmp.c_str(), dfd, p.entry.c_str()) != 0) e = errno;
    if (e != 0) {
        unlinkat(dfd, tmp.c_str(), 0);
    } else {
        fsync(dfd);
    }
    close(dfd);
    return e;
}

// 0 and the blob, ENODATA when the attribute is absent, or an errno.
int xattr_read(const PropsTarget& t, std::string& blob) {
    std::string path = proc_path(t.dir_fd, t.name);
    std::string name(kPropsXattr);
    for (int attempt = 0; attempt < 4; ++attempt) {
        ssize_t n = lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
        if (n < 0) return errno;
        blob.resize(static_cast<size_t>(n));
        n = lgetxattr(path.c_str(), name.c_str(), blob.data(), blob.size());
        if (n >= 0) {
            blob.resize(static_cast<size_t>(n));
            return 0;
        }
        if (errno != ERANGE) return errno;  // ERANGE: it grew meanwhile
    }
    return EAGAIN;
}

size_t parse_size(std::string_view& s, char end) {
    size_t v = 0;
    auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc() || r.ptr == s.data() + s.size() || *r.ptr != end) return SIZE_MAX;
    s.remove_prefix(static_cast<size_t>(r.ptr - s.data()) + 1);
    return v;
}

}  // namespace

std::string props_encode(const std::vector<DeadProperty>& props) {
    std::string out(kMagic);
    for (const auto& p : props) {
        out += std::to_string(p.ns.size());
        out += ' ';
        out += std::to_string(p.name.size());
        out += ' ';
        out += std::to_string(p.xml.size());
        out += '\n';
        out += p.ns;
        out += p.name;
        out += p.xml;
    }
    return out;
}

bool props_decode(std::string_view blob, std::vector<DeadProperty>& out) {
    out.clear();
    if (!blob.starts_with(kMagic)) return false;
    blob.remove_prefix(kMagic.size());
    while (!blob.empty()) {
        size_t a = parse_size(blob, ' ');
        size_t b = a == SIZE_MAX ? SIZE_MAX : parse_size(blob, ' ');
        size_t c = b == SIZE_MAX ? SIZE_MAX : parse_size(blob, '\n');
        if (c == SIZE_MAX || a > blob.size() || b > blob.size() - a || c > blob.size() - a - b) return false;
        DeadProperty& p = out.emplace_back();
        p.ns.assign(blob.substr(0, a));
        p.name.assign(blob.substr(a, b));
        p.xml.assign(blob.substr(a + b, c));
        blob.remove_prefix(a + b + c);
    }
    return true;
}

int props_read(PropsMode mode, const PropsTarget& t, std::vector<DeadProperty>& out) {
    out.clear();
    std::string blob;
    int e = ENODATA;
    if (mode == PropsMode::Auto) {
        e = xattr_read(t, blob);
        // A symlink cannot carry user attributes (EPERM on some systems).
        if (e != 0 && e != ENODATA && !xattr_unsupported(e) && e != EPERM) return e;
    }
    if (e != 0) {
        e = sidecar_read(t, blob);
        if (e == ENOENT || e == ENOTDIR) return 0;
        if (e != 0) return e;
    }
    return props_decode(blob, out) ? 0 : EIO;
}

int props_write(PropsMode mode, const PropsTarget& t, const std::vector<DeadProperty>& props) {
    std::string blob = props_encode(props);
    if (blob.size() > kMaxPropsBlob) return E2BIG;
    if (mode == PropsMode::Auto) {
        std::string path = proc_path(t.dir_fd, t.name);
        std::string name(kPropsXattr);
        int r = props.empty() ? lremovexattr(path.c_str(), name.c_str())
                              : lsetxattr(path.c_str(), name.c_str(), blob.data(), blob.size(), 0);
        int e = r == 0 ? 0 : errno;
        if (props.empty() && e == ENODATA) e = 0;
        if (e == 0) {
            sidecar_remove(t);  // an older set that had to live there
            return 0;
        }
        // No user attributes here, or not one this large: the sidecar.
        if (!xattr_unsupported(e) && e != E2BIG && e != ENOSPC && e != EPERM) return e;
    }
    if (props.empty()) return sidecar_remove(t);
    int e = sidecar_write(t, blob);
    if (e == 0 && mode == PropsMode::Auto) {
        // The sidecar now holds the set; an older attribute must not shadow it.
        std::string path = proc_path(t.dir_fd, t.name);
        lremovexattr(path.c_str(), std::string(kPropsXattr).c_str());
    }
    return e;
}

int props_moved(const PropsTarget& from, const PropsTarget& to) {
    if (from.is_dir) return 0;  // the collection's sidecar is inside it
    std::string src = std::string(kPropsDir) + "/" + std::string(from.name);
    struct stat st {};
    if (fstatat(from.dir_fd, src.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return 0;  // none
    std::string dir(kPropsDir);
    if (mkdirat(to.dir_fd, dir.c_str(), 0755) != 0 && errno != EEXIST) return errno;
    std::string dst = dir + "/" + std::string(to.name);
    if (renameat(from.dir_fd, src.c_str(), to.dir_fd, dst.c_str()) != 0) return errno;
    return 0;
}

int props_copy(PropsMode mode, const PropsTarget& from, const PropsTarget& to) {
    std::vector<DeadProperty> props;
    int e = props_read(mode, from, props);
    if (e != 0) return e;
    if (props.empty()) return 0;
    return props_write(mode, to, props);
}

void props_forget(const PropsTarget& t) { sidecar_remove(t); }

}  // namespace uvh
