#include "handlers/uploads/upload_state.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <vector>

#include <fmt/format.h>

#include "handlers/fs_ops.h"
#include "handlers/lock_service.h"

namespace uvh {

namespace {

constexpr std::string_view kMagic = "uvhttpd-upload 1";
constexpr const char* kPartSuffix = ".part";
constexpr const char* kStateSuffix = ".state";
constexpr const char* kTempSuffix = ".state.tmp";
constexpr time_t kDebrisAge = 3600;

std::string_view protocol_token(UploadProtocol p) {
    switch (p) {
    case UploadProtocol::Tus: return "tus";
    case UploadProtocol::Ietf5: return "ietf5";
    case UploadProtocol::Ietf6: return "ietf6";
    case UploadProtocol::Ietf8: return "ietf8";
    }
    return "tus";
}

bool parse_u64(std::string_view v, uint64_t& out) {
    if (v.empty() || v.size() > 19) return false;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    return ec == std::errc() && p == v.data() + v.size();
}

// Values are single lines: header values and URL paths carry no CR or LF
// here (the parser refuses them in fields, and a decoded path with a
// newline is refused at creation), but a hand edit might; refuse.
bool one_line(std::string_view v) { return v.find_first_of("\r\n") == std::string_view::npos; }

}  // namespace

bool new_upload_id(std::string& id) {
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != static_cast<ssize_t>(sizeof r)) return false;
    id.clear();
    for (unsigned char b : r) fmt::format_to(std::back_inserter(id), "{:02x}", b);
    return true;
}

bool valid_upload_id(std::string_view id) {
    if (id.size() != kUploadIdLength) return false;
    for (char c : id)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

std::string part_name(std::string_view id) { return std::string(id) + kPartSuffix; }
std::string state_name(std::string_view id) { return std::string(id) + kStateSuffix; }

std::string serialize_state(const UploadState& s) {
    std::string out;
    fmt::format_to(std::back_inserter(out), "{}\nprotocol={}\ntarget={}\n", kMagic, protocol_token(s.protocol),
                   s.target);
    if (s.length != UploadState::kUnknown) fmt::format_to(std::back_inserter(out), "length={}\n", s.length);
    fmt::format_to(std::back_inserter(out), "offset={}\ncreated={}\nexpires={}\ncomplete={}\ninterrupted={}\n",
                   s.offset, static_cast<int64_t>(s.created), static_cast<int64_t>(s.expires), s.complete ? 1 : 0,
                   s.interrupted ? 1 : 0);
    if (!s.if_match.empty()) fmt::format_to(std::back_inserter(out), "if_match={}\n", s.if_match);
    if (!s.if_none_match.empty()) fmt::format_to(std::back_inserter(out), "if_none_match={}\n", s.if_none_match);
    if (!s.if_unmodified_since.empty())
        fmt::format_to(std::back_inserter(out), "if_unmodified_since={}\n", s.if_unmodified_since);
    if (!s.metadata.empty()) fmt::format_to(std::back_inserter(out), "metadata={}\n", s.metadata);
    out.append("end\n");
    return out;
}

bool parse_state(std::string_view text, UploadState& s) {
    s = UploadState{};
    bool have_magic = false, have_target = false, have_offset = false, have_end = false;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) return false;  // torn: every line ends in LF
        std::string_view line = text.substr(pos, nl - pos);
        pos = nl + 1;
        if (!have_magic) {
            if (line != kMagic) return false;
            have_magic = true;
            continue;
        }
        if (line == "end") {
            have_end = true;
            break;
        }
        size_t eq = line.find('=');
        if (eq == std::string_view::npos) return false;
        std::string_view key = line.substr(0, eq), v = line.substr(eq + 1);
        uint64_t n = 0;
        if (key == "protocol") {
            if (v == "tus") s.protocol = UploadProtocol::Tus;
            else if (v == "ietf5") s.protocol = UploadProtocol::Ietf5;
            else if (v == "ietf6") s.protocol = UploadProtocol::Ietf6;
            else if (v == "ietf8") s.protocol = UploadProtocol::Ietf8;
            else return false;
        } else if (key == "target") {
            // Relative, non-empty, no empty or dot segments: what
            // relative_path() makes of a normalised URL path.
            if (v.empty() || v.front() == '/' || v.back() == '/' || v.find('\0') != std::string_view::npos)
                return false;
            for (size_t a = 0; a <= v.size();) {
                size_t b = v.find('/', a);
                if (b == std::string_view::npos) b = v.size();
                std::string_view seg = v.substr(a, b - a);
                if (seg.empty() || seg.front() == '.') return false;  // dot segments and dotfiles
                a = b + 1;
            }
            s.target = v;
            have_target = true;
        } else if (key == "length") {
            if (!parse_u64(v, n)) return false;
            s.length = n;
        } else if (key == "offset") {
            if (!parse_u64(v, n)) return false;
            s.offset = n;
            have_offset = true;
        } else if (key == "created" || key == "expires") {
            if (!parse_u64(v, n)) return false;
            (key == "created" ? s.created : s.expires) = static_cast<time_t>(n);
        } else if (key == "complete" || key == "interrupted") {
            if (v != "0" && v != "1") return false;
            (key == "complete" ? s.complete : s.interrupted) = v == "1";
        } else if (key == "if_match") {
            s.if_match = v;
        } else if (key == "if_none_match") {
            s.if_none_match = v;
        } else if (key == "if_unmodified_since") {
            s.if_unmodified_since = v;
        } else if (key == "metadata") {
            s.metadata = v;
        } else {
            return false;
        }
        if (!one_line(v)) return false;
    }
    if (!have_magic || !have_target || !have_offset || !have_end) return false;
    if (s.length != UploadState::kUnknown && s.offset > s.length) return false;
    return true;
}

int open_uploads_dir(int root_fd, bool create) {
    int fd = openat(root_fd, kUploadsDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT && create) {
        if (mkdirat(root_fd, kUploadsDir, 0700) != 0 && errno != EEXIST) return -1;
        int root = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (root >= 0) {
            fsync(root);
            close(root);
        }
        fd = openat(root_fd, kUploadsDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    }
    return fd;
}

bool read_state(int dir_fd, std::string_view id, UploadState& s) {
    std::string name = state_name(id);
    int fd = openat(dir_fd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return false;
    std::string text(8192, '\0');
    ssize_t n = pread(fd, text.data(), text.size(), 0);
    int e = errno;
    close(fd);
    if (n < 0) {
        errno = e;
        return false;
    }
    text.resize(static_cast<size_t>(n));
    if (!parse_state(text, s)) {
        errno = EBADMSG;
        return false;
    }
    return true;
}

bool write_state(int dir_fd, std::string_view id, const UploadState& s) {
    // The caller holds the part's lock, so one fixed temporary name serves.
    std::string tmp = std::string(id) + kTempSuffix;
    std::string text = serialize_state(s);
    int fd = openat(dir_fd, tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return false;
    bool ok = write_all(fd, text.data(), text.size()) && fdatasync(fd) == 0;
    int e = errno;
    close(fd);
    if (ok) {
        std::string name = state_name(id);
        ok = renameat(dir_fd, tmp.c_str(), dir_fd, name.c_str()) == 0 && fsync(dir_fd) == 0;
        e = errno;
    }
    if (!ok) {
        unlinkat(dir_fd, tmp.c_str(), 0);
        errno = e;
    }
    return ok;
}

void remove_upload(int dir_fd, std::string_view id) {
    std::string part = part_name(id), state = state_name(id);
    unlinkat(dir_fd, part.c_str(), 0);
    unlinkat(dir_fd, state.c_str(), 0);
    fsync(dir_fd);
}

size_t count_unfinished(int dir_fd) {
    int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return 0;
    DIR* d = fdopendir(fd);
    if (!d) {
        close(fd);
        return 0;
    }
    size_t n = 0;
    while (struct dirent* e = readdir(d)) {
        std::string_view name = e->d_name;
        if (name.size() == kUploadIdLength + 5 && name.ends_with(kPartSuffix)) ++n;
    }
    closedir(d);
    return n;
}

size_t sweep_expired_uploads(int root_fd, time_t now, void (*bump)(void*, dev_t, ino_t), void* ctx) {
    int dir = open_uploads_dir(root_fd, false);
    if (dir < 0) return 0;
    std::vector<std::string> names;
    {
        int fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR* d = fd >= 0 ? fdopendir(fd) : nullptr;
        if (!d && fd >= 0) close(fd);
        while (d && names.size() < 1'000'000) {
            struct dirent* e = readdir(d);
            if (!e) break;
            std::string_view n = e->d_name;
            if (n != "." && n != "..") names.emplace_back(n);
        }
        if (d) closedir(d);
    }
    size_t removed = 0;
    for (const std::string& n : names) {
        std::string_view id = std::string_view(n).substr(0, std::min(n.size(), kUploadIdLength));
        std::string_view suffix = std::string_view(n).substr(id.size());
        struct stat st {};
        if (fstatat(dir, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        bool debris_age = now - st.st_mtime >= kDebrisAge;
        if (!valid_upload_id(id) || (suffix != kPartSuffix && suffix != kStateSuffix && suffix != kTempSuffix)) {
            continue;  // not ours: left alone
        }
        if (suffix == kTempSuffix) {
            if (debris_age) unlinkat(dir, n.c_str(), 0);
            continue;
        }
        if (suffix == kPartSuffix) {
            // A part whose state was never written (a crash at creation).
            std::string state = state_name(id);
            struct stat sst {};
            if (fstatat(dir, state.c_str(), &sst, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT && debris_age)
                unlinkat(dir, n.c_str(), 0);
            continue;
        }
        UploadState s;
        bool readable = read_state(dir, id, s);
        if (readable && s.expires > now) continue;
        if (!readable && !debris_age) continue;  // being replaced right now, or hand-edited: look again later
        // Take the part's lock so no step of a live request is cut in half;
        // the generation bump ends that request at its next step.
        std::string part = part_name(id);
        LockService::Guard guard = LockService::lock_file(dir, part.c_str());
        struct stat pst {};
        if (guard.held() && fstat(guard.fd(), &pst) == 0 && bump) bump(ctx, pst.st_dev, pst.st_ino);
        UploadState again;
        if (read_state(dir, id, again) && again.expires > now) continue;  // refreshed meanwhile
        remove_upload(dir, id);
        ++removed;
    }
    close(dir);
    return removed;
}

}  // namespace uvh
