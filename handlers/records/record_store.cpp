#include "handlers/records/record_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include "handlers/fs_ops.h"

namespace uvh {

namespace {

constexpr size_t kMaxIdLength = 64;
constexpr size_t kScanChunk = 1 << 20;
// Each retry means another process replaced the file meanwhile, i.e. made
// progress; the bound only stops a pathological loop (a file replaced
// continuously) from spinning forever.
constexpr int kLockAttempts = 100000;
constexpr std::string_view kTmpPrefix = ".uvhttpd-tmp-";

bool is_id_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

// The bytes form_encode produces, plus the separators serialize_form adds.
bool is_form_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '%' || c == '&' || c == '=';
}

bool all_digits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "007" -> "7", "000" -> "0": all-digit ids compare as numbers of any length.
std::string_view canonical_number(std::string_view digits) {
    size_t nz = digits.find_first_not_of('0');
    return nz == std::string_view::npos ? digits.substr(digits.size() - 1) : digits.substr(nz);
}

// The value of an all-digit id in range (numeric_id_in_range).
uint64_t number_value(std::string_view digits) {
    uint64_t v = 0;
    for (char c : canonical_number(digits)) v = v * 10 + static_cast<uint64_t>(c - '0');
    return v;
}

// The id of a stored line: everything before the first space (the whole
// line if there is none), whether or not the rest parses, so that even a
// hand-damaged line keeps its id taken.
std::string_view line_id(std::string_view line) { return line.substr(0, line.find(' ')); }

// Calls fn(line) for every complete line of `content`, without its line
// ending ("\n", or "\r\n" for a file edited on Windows); returns the length
// of the complete lines (an unterminated tail is not visited).
template <typename Fn>
size_t for_each_line(std::string_view content, Fn&& fn) {
    size_t start = 0;
    for (;;) {
        size_t nl = content.find('\n', start);
        if (nl == std::string_view::npos) return start;
        size_t end = nl > start && content[nl - 1] == '\r' ? nl - 1 : nl;
        fn(content.substr(start, end - start));
        start = nl + 1;
    }
}

// For the one stderr line about a set-aside tail: printable ASCII as it is,
// '"' and '\\' escaped, every other byte as \xNN, at most kLogBytes of it.
constexpr size_t kLogBytes = 200;
std::string escape_for_log(std::string_view bytes) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < bytes.size() && i < kLogBytes; ++i) {
        unsigned char c = static_cast<unsigned char>(bytes[i]);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(static_cast<char>(c));
        } else if (c >= 0x20 && c < 0x7f) {
            out.push_back(static_cast<char>(c));
        } else {
            out.append("\\x");
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 15]);
        }
    }
    return out;
}

// One line on stderr, written with one call so lines of several threads or
// workers do not interleave.
void log_line(const std::string& line) {
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
}

// The status for a failed store operation (issue: 507 for a full disk or
// quota with the file unchanged, 500 for everything else).
int store_status(int err) {
    switch (err) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return 507;
    default:
        return 500;
    }
}

int flock_retry(int fd, int op) {
    while (flock(fd, op) < 0) {
        if (errno != EINTR) return errno;
    }
    return 0;
}

// Cuts the file back to `size` after a failed append and makes that durable
// too, so a crash cannot bring back lines whose clients were told they failed.
// Best effort: the error being reported is the original one.
void truncate_back(int fd, uint64_t size) {
    if (ftruncate(fd, static_cast<off_t>(size)) == 0) fdatasync(fd);
}

}  // namespace

bool numeric_id_in_range(std::string_view id) {
    return !all_digits(id) || canonical_number(id).size() <= kMaxNumericDigits;
}

bool valid_record_id(std::string_view id) {
    if (id.empty() || id.size() > kMaxIdLength || id == "." || id == "..") return false;
    return std::all_of(id.begin(), id.end(), is_id_char);
}

std::string format_record_line(const Record& r) {
    std::string line;
    line.reserve(r.id.size() + 2 + 16 * r.fields.size());
    line.append(r.id);
    line.push_back(' ');
    bool first = true;
    for (const auto& [name, value] : r.fields) {
        if (!first) line.push_back('&');
        first = false;
        form_encode(name, line);
        line.push_back('=');
        form_encode(value, line);
    }
    line.push_back('\n');
    return line;
}

bool parse_record_line(std::string_view line, Record& out) {
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return false;
    std::string_view id = line.substr(0, sp);
    std::string_view form = line.substr(sp + 1);
    if (!valid_record_id(id)) return false;
    if (!std::all_of(form.begin(), form.end(), is_form_char)) return false;
    // serialize_form writes "name=value" pieces joined by '&': no empty
    // pieces, none without '='.
    if (!form.empty()) {
        size_t start = 0;
        for (;;) {
            size_t amp = form.find('&', start);
            std::string_view piece = form.substr(start, amp == std::string_view::npos ? amp : amp - start);
            if (piece.find('=') == std::string_view::npos) return false;
            if (amp == std::string_view::npos) break;
            start = amp + 1;
        }
    }
    out.id.assign(id);
    out.fields.clear();
    return parse_form(form, out.fields);
}

// ---------------------------------------------------------------- RecordFile

// The database descriptor of one operation, exclusively flocked. A rewrite
// adds the new file's descriptor, locked from before its rename until the
// directory is synced, so no other process appends to a file whose name is
// not yet durable.
struct RecordFile::Locked {
    int fd = -1;
    struct stat st {};
    bool created = false;
    std::shared_ptr<Held> new_held;  // a rewrite's file, now held_: unlocked here, not closed

    Locked() = default;
    Locked(const Locked&) = delete;
    Locked& operator=(const Locked&) = delete;
    ~Locked() {
        if (new_held) flock(new_held->fd, LOCK_UN);
        if (fd >= 0) {
            flock(fd, LOCK_UN);
            close(fd);
        }
    }
};

RecordFile::RecordFile(int dir_fd, std::string path, bool beneath)
    : dir_fd_(dir_fd), path_(std::move(path)), beneath_(beneath) {}

RecordFile::~RecordFile() = default;

RecordFile::Held::~Held() {
    if (fd >= 0) close(fd);
}

void RecordFile::set_limits(uint64_t max_record, uint64_t max_store) {
    max_record_ = max_record;
    max_store_ = max_store;
}

size_t RecordFile::indexed() const {
    std::lock_guard<std::mutex> g(mu_);
    return ids_.size();
}

int RecordFile::open_path(int flags, mode_t mode) {
    return beneath_ ? open_beneath(dir_fd_, path_, flags, mode)
                    : openat(dir_fd_, path_.c_str(), flags | O_CLOEXEC, mode);
}

// Opens the database, flocks it, and makes sure the path still names the
// locked inode: a rewrite in another process may have renamed a new file
// over it while we waited for the lock (then the old inode is garbage and we
// start over with the new one). Returns 0 or an errno.
int RecordFile::lock(bool write, bool create, Locked& lk) {
    int flags = write ? (O_RDWR | O_APPEND) : O_RDONLY;
    for (int attempt = 0; attempt < kLockAttempts; ++attempt) {
        bool created = false;
        int fd = open_path(flags, 0);
        if (fd < 0 && errno == ENOENT && create) {
            fd = open_path(flags | O_CREAT | O_EXCL, 0644);
            if (fd < 0 && errno == EEXIST) continue;  // another process created it first
            created = fd >= 0;
        }
        if (fd < 0) return errno;
        if (int err = flock_retry(fd, LOCK_EX)) {
            close(fd);
            return err;
        }
        struct stat st, path_st;
        if (fstat(fd, &st) < 0) {
            int err = errno;
            close(fd);
            return err;
        }
        int path_err = fstatat(dir_fd_, path_.c_str(), &path_st, 0) == 0 ? 0 : errno;
        if (path_err == 0 && path_st.st_ino == st.st_ino && path_st.st_dev == st.st_dev) {
            lk.fd = fd;
            lk.st = st;
            lk.created = created;
            return 0;
        }
        flock(fd, LOCK_UN);
        close(fd);
        // Renamed over or removed meanwhile: try the new one. Any other
        // failure to look at the path would only repeat.
        if (path_err != 0 && path_err != ENOENT) return path_err;
    }
    return EAGAIN;
}

void RecordFile::note_id(std::string_view id, uint64_t off, size_t len) {
    if (!valid_record_id(id)) return;
    // The first line with an id is the record; later ones are duplicates.
    if (!ids_.emplace(std::string(id), Entry{off, len}).second) ++dups_[std::string(id)];
    // Numbers beyond the range (only a hand edit makes them) stay records
    // but do not steer auto-numbering.
    if (all_digits(id) && numeric_id_in_range(id)) max_numeric_ = std::max(max_numeric_, number_value(id));
}

// The id for a record without one: the number after the largest in range,
// or when that is the largest possible (someone chose it), the smallest
// number not taken. Never fails: 10^18 ids do not fit on a disk.
std::string RecordFile::next_auto_id(uint64_t& max, const std::unordered_set<std::string>& batch_ids) const {
    if (max < kMaxNumeric) return std::to_string(++max);
    for (uint64_t n = 1;; ++n) {
        std::string id = std::to_string(n);
        if (!ids_.count(id) && !batch_ids.count(id)) return id;
    }
}

// Makes `held` (with `st`) the file the index describes, empty.
void RecordFile::reset_index(std::shared_ptr<Held> held, const struct stat& st) {
    held_ = std::move(held);
    held_st_ = st;
    scanned_ = 0;
    dir_synced_ = false;
    ids_.clear();
    dups_.clear();
    max_numeric_ = 0;
}

void RecordFile::forget_index() {
    std::lock_guard<std::mutex> g(mu_);
    reset_index(nullptr, {});
}

// Indexes the complete lines of `content`, which sits at `base` in the file.
size_t RecordFile::index_lines(std::string_view content, uint64_t base) {
    size_t used = for_each_line(content, [&](std::string_view line) {
        note_id(line_id(line), base + static_cast<uint64_t>(line.data() - content.data()), line.size());
    });
    scanned_ = base + used;
    return used;
}

// Indexes the complete lines between scanned_ and `size` of the held file,
// reading only those bytes. Afterwards scanned_ is the end of the last
// complete line. Returns 0 or an errno.
int RecordFile::scan_tail(uint64_t size) {
    std::string chunk, pending;  // `pending` holds a line cut by a chunk end
    uint64_t off = scanned_;
    while (off < size) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(kScanChunk, size - off));
        if (!read_exact(held_->fd, off, n, chunk)) return errno;
        off += n;
        pending.append(chunk);
        size_t used = index_lines(pending, scanned_);
        pending.erase(0, used);
    }
    return 0;
}

// Brings the index up to date with the locked file (mu_ held): only the
// bytes appended since the last scan when it is the same inode (held open,
// so the number was not reused), everything when a rewrite replaced the file
// or it shrank.
int RecordFile::refresh_index(Locked& lk) {
    uint64_t size = static_cast<uint64_t>(lk.st.st_size);
    bool same = held_ && held_st_.st_ino == lk.st.st_ino && held_st_.st_dev == lk.st.st_dev && size >= scanned_;
    if (!same) {
        int dup_fd = fcntl(lk.fd, F_DUPFD_CLOEXEC, 0);
        if (dup_fd < 0) return errno;
        reset_index(std::make_shared<Held>(dup_fd), lk.st);
    }
    if (int err = scan_tail(size)) {
        reset_index(nullptr, {});
        return err;
    }
    return 0;
}

int RecordFile::read_all(Locked& lk, std::string& content) {
    if (!read_exact(lk.fd, 0, static_cast<size_t>(lk.st.st_size), content)) return errno;
    return 0;
}

int RecordFile::open_parent_dir() {
    std::string parent, name;
    split_parent(path_, parent, name);
    const char* dir = parent.empty() ? "/" : parent.c_str();  // "/database.txt"
    return beneath_ ? open_beneath(dir_fd_, dir, O_RDONLY | O_DIRECTORY)
                    : openat(dir_fd_, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

// Replaces the locked file with `content` (complete lines): a temporary file
// in the same directory, fdatasync, rename over the database, fsync of the
// directory. On failure before the rename the database is untouched and the
// temporary file removed. Returns 0 or an errno.
int RecordFile::rewrite(Locked& lk, const std::string& content) {
    int dfd = open_parent_dir();
    if (dfd < 0) return errno;
    std::string parent, base;
    split_parent(path_, parent, base);

    // Not derived from the database's name, which may be up to NAME_MAX
    // long itself; O_EXCL settles any clash with other writers.
    int tfd = -1;
    std::string tmp;
    for (int attempt = 0; attempt < 16 && tfd < 0; ++attempt) {
        tmp.assign(kTmpPrefix);
        tmp.append("records-");
        tmp.append(std::to_string(getpid()));
        tmp.append("-");
        tmp.append(std::to_string(++tmp_counter_));
        tfd = openat(dfd, tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (tfd < 0 && errno != EEXIST) break;
    }
    if (tfd < 0) {
        int err = errno;
        close(dfd);
        return err;
    }
    auto fail = [&](int err, bool unlink_tmp) {
        if (unlink_tmp) unlinkat(dfd, tmp.c_str(), 0);
        close(tfd);
        close(dfd);
        return err;
    };
    // The replacement keeps the database's permission bits (0600 until then,
    // so a half-written file is never readable by others).
    fchmod(tfd, lk.st.st_mode & 07777);
    if (int err = flock_retry(tfd, LOCK_EX)) return fail(err, true);
    if (!write_all(tfd, content.data(), content.size()) || fdatasync(tfd) < 0)
        return fail(errno, true);
    struct stat st;
    if (fstat(tfd, &st) < 0) return fail(errno, true);
    if (renameat(dfd, tmp.c_str(), dfd, base.c_str()) < 0) return fail(errno, true);
    // The path now names the new file whatever happens next, so the index
    // follows it even if the directory sync fails.
    {
        std::lock_guard<std::mutex> g(mu_);
        reset_index(std::make_shared<Held>(tfd), st);
        lk.new_held = held_;
        index_lines(content, 0);
    }
    int err = fsync(dfd) < 0 ? errno : 0;
    close(dfd);
    std::lock_guard<std::mutex> g(mu_);
    if (held_ == lk.new_held) dir_synced_ = err == 0;
    return err;
}

// A last line without '\n' (the bytes after scanned_) is either an append
// a crash cut short (never acknowledged, maybe cut mid-value) or a line
// someone added by hand without a newline; the store cannot tell which.
// So it is neither taken as a record nor glued to the next append nor
// dropped: its bytes go to ".NAME.torn-YYYYmmddTHHMMSSZ" next to the store
// (hidden, so never served; not kTmpPrefix, so never cleaned up), durably,
// before the store is cut back to its complete lines, and one line on
// stderr says so. Returns 0 or an errno (then the store is unchanged).
int RecordFile::set_aside_tail(Locked& lk) {
    uint64_t size = static_cast<uint64_t>(lk.st.st_size);
    if (size <= scanned_) return 0;
    std::string tail;
    if (!read_exact(lk.fd, scanned_, static_cast<size_t>(size - scanned_), tail)) return errno;
    int dfd = open_parent_dir();
    if (dfd < 0) return errno;
    std::string parent, base;
    split_parent(path_, parent, base);
    char stamp[32];
    time_t now = time(nullptr);
    struct tm tm {};
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    // NAME_MAX is 255: leave room for ".", ".torn-", the stamp and "-NNN".
    std::string name_base = "." + base.substr(0, 200) + ".torn-" + stamp;
    std::string name;
    int tfd = -1;
    for (int n = 1; n < 1000 && tfd < 0; ++n) {
        name = n == 1 ? name_base : name_base + "-" + std::to_string(n);
        tfd = openat(dfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (tfd < 0 && errno != EEXIST) break;
    }
    if (tfd < 0) {
        int err = errno;
        close(dfd);
        return err;
    }
    int err = 0;
    if (!write_all(tfd, tail.data(), tail.size()) || fdatasync(tfd) < 0) err = errno;
    close(tfd);
    if (err == 0 && fsync(dfd) < 0) err = errno;
    if (err != 0) {
        unlinkat(dfd, name.c_str(), 0);
        close(dfd);
        return err;
    }
    close(dfd);
    if (ftruncate(lk.fd, static_cast<off_t>(scanned_)) < 0 || fdatasync(lk.fd) < 0) return errno;
    lk.st.st_size = static_cast<off_t>(scanned_);
    log_line("uvhttpd: record store " + path_ + ": the last line had no newline (a crash mid-write or a hand edit); moved its " +
             std::to_string(tail.size()) + " bytes to " + name + ": \"" + escape_for_log(tail) + "\"" +
             (tail.size() > kLogBytes ? "..." : "") + "\n");
    return 0;
}

void RecordFile::append_batch(std::vector<Append*>& batch) {
    for (Append* a : batch) {
        a->status = 0;
        a->store_full = false;
    }
    auto fail_all = [&](int status) {
        for (Append* a : batch)
            if (a->status == 0) a->status = status;
    };
    std::vector<bool> auto_id(batch.size(), false);
    auto fail_accepted = [&](int status) {
        for (size_t i = 0; i < batch.size(); ++i) {
            if (batch[i]->status != 0) continue;
            batch[i]->status = status;
            if (auto_id[i]) batch[i]->rec.id.clear();
        }
    };
    try {
        Locked lk;
        if (int err = lock(true, true, lk)) return fail_all(store_status(err));
        std::unique_lock<std::mutex> g(mu_);
        if (int err = refresh_index(lk)) return fail_all(store_status(err));
        if (int err = set_aside_tail(lk)) return fail_all(store_status(err));

        // The file size before the write is scanned_ (the tail is gone).
        uint64_t before = scanned_;
        std::string buf;
        std::unordered_set<std::string> batch_ids;
        uint64_t max = max_numeric_;
        for (size_t i = 0; i < batch.size(); ++i) {
            Record& rec = batch[i]->rec;
            uint64_t next_max = max;
            bool is_auto = rec.id.empty();
            if (is_auto) {
                rec.id = next_auto_id(next_max, batch_ids);
            } else if (!valid_record_id(rec.id) || !numeric_id_in_range(rec.id)) {
                batch[i]->status = 400;
                continue;
            } else if (ids_.count(rec.id) || batch_ids.count(rec.id)) {
                batch[i]->status = 409;
                continue;
            }
            std::string line = format_record_line(rec);
            int refused = 0;
            if (max_record_ != 0 && line.size() > max_record_) {
                refused = 413;
            } else if (max_store_ != 0 && before + buf.size() + line.size() > max_store_) {
                refused = 507;
                batch[i]->store_full = true;
            }
            if (refused != 0) {
                batch[i]->status = refused;
                if (is_auto) rec.id.clear();
                continue;
            }
            auto_id[i] = is_auto;
            if (all_digits(rec.id)) next_max = std::max(next_max, number_value(rec.id));
            max = next_max;
            batch_ids.insert(rec.id);
            buf.append(line);
        }
        if (buf.empty()) {
            // Nothing to write: a file this call created goes again, so a
            // refused record leaves no trace. Another process waiting for
            // its lock finds the path gone and starts over (lock()).
            if (lk.created) {
                std::string parent, base;
                split_parent(path_, parent, base);
                int dfd = open_parent_dir();
                if (dfd >= 0) {
                    unlinkat(dfd, base.c_str(), 0);
                    close(dfd);
                }
                reset_index(nullptr, {});
            }
            return;
        }
        bool sync_dir = !dir_synced_;
        std::shared_ptr<Held> held = held_;
        // Reads go on meanwhile: they take mu_ only to look up the index.
        g.unlock();

        // One write() of every line and one fdatasync() for the batch: this
        // is the group commit.
        int err = 0;
        if (!write_all(lk.fd, buf.data(), buf.size()) || fdatasync(lk.fd) < 0) err = errno;
        if (err == 0 && sync_dir) {
            int dfd = open_parent_dir();
            err = dfd < 0 ? errno : (fsync(dfd) < 0 ? errno : 0);
            if (dfd >= 0) close(dfd);
        }
        g.lock();
        if (err != 0) {
            truncate_back(lk.fd, before);
            // A read may have indexed the lines meanwhile: forget them.
            if (held_ != held || scanned_ > before) reset_index(nullptr, {});
            return fail_accepted(store_status(err));
        }
        if (held_ == held && scanned_ == before) {
            index_lines(buf, before);
        } else if (held_ != held || scanned_ < before + buf.size()) {
            reset_index(nullptr, {});  // rescanned by the next operation
        }  // else a read already indexed them
        if (held_ == held) dir_synced_ = true;
        for (size_t i = 0; i < batch.size(); ++i)
            if (batch[i]->status == 0) batch[i]->status = 201;
    } catch (...) {
        // std::bad_alloc. If it struck after the write, the lines are in the
        // file but maybe not in the index: forget the index, so the next
        // operation rescans everything rather than hand out a taken id.
        fail_accepted(500);
        forget_index();
    }
}

// No flock and no wait for a writer: the index says where the line is, and
// one pread reads it. Writers only append whole lines with one write() or
// rename a complete file over the store, so the bytes below the size seen
// are whole lines. Before the lookup the path is checked against the
// indexed file by (dev, ino, size): another inode or a smaller size means a
// rebuild; a larger size (another process appended) means scanning only the
// new tail, and only when the id is not found in what is indexed.
int RecordFile::get(std::string_view id, Record& out) {
    if (!valid_record_id(id)) return 404;
    try {
        // A file rewritten in place to the same size (a hand edit: same
        // inode, same size) passes the (dev, ino, size) check; the line read
        // then names another id, and a second attempt rebuilds the index.
        for (int attempt = 0; attempt < 2; ++attempt) {
            int status = get_once(id, out, attempt > 0);
            if (status >= 0) return status;
        }
        return 500;
    } catch (...) {
        return 500;
    }
}

// get() once: the status, or -1 when the line found names another id.
int RecordFile::get_once(std::string_view id, Record& out, bool rebuild) {
    {
        struct stat pst;
        if (fstatat(dir_fd_, path_.c_str(), &pst, 0) < 0) return errno == ENOENT ? 404 : store_status(errno);
        std::shared_ptr<Held> held;
        Entry e {};
        {
            std::lock_guard<std::mutex> g(mu_);
            bool same = !rebuild && held_ && held_st_.st_ino == pst.st_ino && held_st_.st_dev == pst.st_dev &&
                        static_cast<uint64_t>(pst.st_size) >= scanned_;
            if (!same) {
                int fd = open_path(O_RDONLY, 0);
                if (fd < 0) return errno == ENOENT ? 404 : store_status(errno);
                struct stat st;
                if (fstat(fd, &st) < 0) {
                    int err = errno;
                    close(fd);
                    return store_status(err);
                }
                reset_index(std::make_shared<Held>(fd), st);
                pst = st;
            }
            auto it = ids_.find(std::string(id));
            if (it == ids_.end() && static_cast<uint64_t>(pst.st_size) > scanned_) {
                if (int err = scan_tail(static_cast<uint64_t>(pst.st_size))) {
                    reset_index(nullptr, {});
                    return store_status(err);
                }
                it = ids_.find(std::string(id));
            }
            if (it == ids_.end()) return 404;
            e = it->second;
            held = held_;
        }
        std::string line;
        if (!read_exact(held->fd, e.off, e.len, line)) return store_status(errno);
        if (line_id(line) != id) return -1;
        return parse_record_line(line, out) ? 200 : 500;
    }
}

int RecordFile::put(const Record& rec, bool& created, bool* store_full) {
    created = false;
    if (store_full) *store_full = false;
    if (!valid_record_id(rec.id) || !numeric_id_in_range(rec.id)) return 400;
    try {
        std::string line = format_record_line(rec);
        if (max_record_ != 0 && line.size() > max_record_) return 413;
        Locked lk;
        if (int err = lock(true, true, lk)) return store_status(err);
        {
            std::lock_guard<std::mutex> g(mu_);
            if (int err = refresh_index(lk)) return store_status(err);
            if (int err = set_aside_tail(lk)) return store_status(err);
        }
        std::string content;
        if (int err = read_all(lk, content)) return store_status(err);
        std::string out;
        out.reserve(content.size() + line.size());
        // The first line with the id is the record (GET shows it, and the
        // listing shows it first); it is replaced in place. Later lines
        // with the same id (hand edits; recover() reports them) are kept.
        bool replaced = false;
        for_each_line(content, [&](std::string_view l) {
            if (!replaced && line_id(l) == rec.id) {
                out.append(line);
                replaced = true;
                return;
            }
            out.append(l);
            out.push_back('\n');
        });
        if (!replaced) out.append(line);
        // The store cap refuses growth only: a store over a lowered cap can
        // still shrink or keep its size.
        if (max_store_ != 0 && out.size() > max_store_ && out.size() > content.size()) {
            if (store_full) *store_full = true;
            return 507;
        }
        if (int err = rewrite(lk, out)) return store_status(err);
        created = !replaced;
        return created ? 201 : 204;
    } catch (...) {  // std::bad_alloc, maybe after the rename: rescan next time
        forget_index();
        return 500;
    }
}

int RecordFile::remove(std::string_view id) {
    if (!valid_record_id(id)) return 404;
    try {
        Locked lk;
        if (int err = lock(true, false, lk)) return err == ENOENT ? 404 : store_status(err);
        {
            std::lock_guard<std::mutex> g(mu_);
            if (int err = refresh_index(lk)) return store_status(err);
            if (int err = set_aside_tail(lk)) return store_status(err);
        }
        std::string content;
        if (int err = read_all(lk, content)) return store_status(err);
        std::string out;
        out.reserve(content.size());
        // Only the first line with the id (the record GET shows); a later
        // duplicate then becomes the record.
        bool found = false;
        for_each_line(content, [&](std::string_view l) {
            if (!found && line_id(l) == id) {
                found = true;
                return;
            }
            out.append(l);
            out.push_back('\n');
        });
        if (!found) return 404;
        if (int err = rewrite(lk, out)) return store_status(err);
        return 204;
    } catch (...) {  // std::bad_alloc, maybe after the rename: rescan next time
        forget_index();
        return 500;
    }
}

// One stderr line per id that more than one line carries (at most
// kReportIds of them, then a count): a hand edit or a merge of two files.
void RecordFile::report_duplicates() {
    constexpr size_t kReportIds = 10;
    std::vector<std::pair<std::string, uint64_t>> dups(dups_.begin(), dups_.end());
    std::sort(dups.begin(), dups.end());
    for (size_t i = 0; i < dups.size() && i < kReportIds; ++i)
        log_line("uvhttpd: record store " + path_ + ": id " + dups[i].first + " is on " +
                 std::to_string(dups[i].second + 1) + " lines; GET, PUT and DELETE use the first\n");
    if (dups.size() > kReportIds)
        log_line("uvhttpd: record store " + path_ + ": and " + std::to_string(dups.size() - kReportIds) +
                 " more ids are on several lines\n");
}

int RecordFile::recover(bool writable) {
    try {
        Locked lk;
        if (int err = lock(writable, false, lk)) return err == ENOENT ? 0 : err;
        std::lock_guard<std::mutex> g(mu_);
        if (int err = refresh_index(lk)) return err;
        report_duplicates();
        if (writable) return set_aside_tail(lk);
        if (static_cast<uint64_t>(lk.st.st_size) > scanned_)
            log_line("uvhttpd: record store " + path_ + ": the last line has no newline; read-only, so it is left as it is and not served\n");
        return 0;
    } catch (...) {  // std::bad_alloc
        forget_index();
        return ENOMEM;
    }
}

// --------------------------------------------------------------- RecordStore

RecordStore::RecordStore(uv_loop_t* loop, std::unique_ptr<RecordFile> file, uint64_t gather_ms)
    : loop_(loop), file_(std::move(file)), gather_ms_(gather_ms) {
    work_.data = this;
}

RecordStore::~RecordStore() {
    if (busy_ || reads_ != 0 || (timer_inited_ && !timer_closed_)) {
        // The job would write into freed memory, or the loop would keep a
        // dangling timer; there is no safe way on.
        std::fputs("uvhttpd: RecordStore destroyed with a job in flight or before close() finished\n", stderr);
        std::abort();
    }
}

void RecordStore::submit(Op* op) {
    op->status = closing_ ? 503 : 0;  // a refused op still completes through a job
    op->created = false;
    op->store_full = false;
    if (op->kind == Op::Kind::Get && !closing_) {
        // Reads do not wait behind the writes' queue or their fdatasync.
        op->store = this;
        op->read_req.data = op;
        ++reads_;
        uv_queue_work(loop_, &op->read_req, read_work_cb, read_after_cb);
        return;
    }
    queued_.push_back(op);
    if (busy_) return;
    if (gathering_) {
        if (queued_.size() < expected_) return;
        uv_timer_stop(&gather_timer_);
        gathering_ = false;
    }
    start_job();
}

void RecordStore::close(std::function<void()> closed) {
    closing_ = true;
    closed_ = std::move(closed);
    if (gathering_) {
        uv_timer_stop(&gather_timer_);
        gathering_ = false;
    }
    if (timer_inited_) uv_close(reinterpret_cast<uv_handle_t*>(&gather_timer_), timer_closed_cb);
    // An empty job when idle (it also runs what was gathering), so that
    // `closed` runs later on the loop and never inside close().
    if (!busy_) start_job();
}

void RecordStore::start_job() {
    running_.swap(queued_);  // queued_ takes the (empty) vector of the last job
    busy_ = true;
    ++jobs_;
    job_batches_ = 0;
    // Fails only without a work callback.
    uv_queue_work(loop_, &work_, work_cb, after_cb);
}

// Group commit only pays when the ops of one commit arrive together. With
// many clients each waiting for its answer, starting a job for the first op
// that comes back locks the others out for a whole fdatasync, and the
// batches settle into alternating 1 and N-1. So after a job of `expected`
// ops the next one starts as soon as that many are queued, or after
// gather_ms_, whichever comes first; a lone client (expected 1) never waits.
void RecordStore::gather(size_t expected) {
    if (!timer_inited_) {
        uv_timer_init(loop_, &gather_timer_);
        gather_timer_.data = this;
        timer_inited_ = true;
    }
    gathering_ = true;
    expected_ = expected;
    uv_timer_start(&gather_timer_, gather_cb, gather_ms_, 0);
}

void RecordStore::gather_cb(uv_timer_t* timer) {
    auto* self = static_cast<RecordStore*>(timer->data);
    self->gathering_ = false;
    if (!self->busy_ && !self->queued_.empty()) self->start_job();
}

void RecordStore::timer_closed_cb(uv_handle_t* handle) {
    auto* self = static_cast<RecordStore*>(handle->data);
    self->timer_closed_ = true;
    self->maybe_closed();
}

void RecordStore::maybe_closed() {
    if (!closing_ || busy_ || reads_ != 0 || !closed_ || !queued_.empty()) return;
    if (timer_inited_ && !timer_closed_) return;
    auto closed = std::move(closed_);
    closed_ = nullptr;
    closed();
}

void RecordStore::work_cb(uv_work_t* req) { static_cast<RecordStore*>(req->data)->run_job(); }

void RecordStore::read_work_cb(uv_work_t* req) {
    auto* op = static_cast<Op*>(req->data);
    try {
        Record out;
        op->status = op->store->file_->get(op->rec.id, out);
        if (op->status == 200) op->rec.fields = std::move(out.fields);
    } catch (...) {  // std::bad_alloc
        op->status = 500;
    }
}

void RecordStore::read_after_cb(uv_work_t* req, int /*status: never cancelled*/) {
    auto* op = static_cast<Op*>(req->data);
    RecordStore* self = op->store;
    --self->reads_;
    if (op->done) op->done(*op);  // may free op
    self->maybe_closed();
}

void RecordStore::run_job() {
    try {
        size_t n = running_.size();
        for (size_t i = 0; i < n;) {
            Op* op = running_[i];
            if (op->status != 0) {  // refused after close()
                ++i;
                continue;
            }
            switch (op->kind) {
            case Op::Kind::Append: {
                size_t j = i;
                while (j < n && running_[j]->kind == Op::Kind::Append && running_[j]->status == 0) ++j;
                scratch_.resize(j - i);
                scratch_ptrs_.clear();
                scratch_ptrs_.reserve(j - i);
                for (size_t k = 0; k < j - i; ++k) {
                    scratch_[k].rec = std::move(running_[i + k]->rec);
                    scratch_[k].status = 0;
                    scratch_[k].store_full = false;
                    scratch_ptrs_.push_back(&scratch_[k]);
                }
                file_->append_batch(scratch_ptrs_);
                ++job_batches_;
                for (size_t k = 0; k < j - i; ++k) {
                    running_[i + k]->rec = std::move(scratch_[k].rec);
                    running_[i + k]->status = scratch_[k].status;
                    running_[i + k]->store_full = scratch_[k].store_full;
                }
                i = j;
                break;
            }
            case Op::Kind::Get: {
                Record out;
                op->status = file_->get(op->rec.id, out);
                if (op->status == 200) op->rec.fields = std::move(out.fields);
                ++i;
                break;
            }
            case Op::Kind::Put:
                op->status = file_->put(op->rec, op->created, &op->store_full);
                ++i;
                break;
            case Op::Kind::Delete:
                op->status = file_->remove(op->rec.id);
                ++i;
                break;
            }
        }
    } catch (...) {  // std::bad_alloc in the scratch vectors
        for (Op* op : running_)
            if (op->status == 0) op->status = 500;
    }
}

void RecordStore::after_cb(uv_work_t* req, int /*status: never cancelled*/) {
    auto* self = static_cast<RecordStore*>(req->data);
    self->batches_ += self->job_batches_;
    size_t ran = self->running_.size();
    // busy_ stays set while the callbacks run: an op submitted from done()
    // queues for the next job instead of disturbing running_.
    for (Op* op : self->running_) {
        if (op->kind == Op::Kind::Append && op->status == 201) ++self->appended_;
        if (op->done) op->done(*op);  // may free op
    }
    self->running_.clear();
    self->busy_ = false;
    if (self->closing_) {
        if (!self->queued_.empty()) {
            self->start_job();
        } else {
            self->maybe_closed();
        }
    } else if (!self->queued_.empty() && self->queued_.size() >= ran) {
        self->start_job();
    } else if (ran > 1) {
        self->gather(ran);  // fewer than last time are back: wait for the rest briefly
    }
}

}  // namespace uvh
