#include "handlers/records/record_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "handlers/fs_ops.h"

namespace uvh {

namespace {

// Each retry means another process replaced the file meanwhile, i.e. made
// progress; the bound only stops a pathological loop (a file replaced
// continuously) from spinning forever.
constexpr int kLockAttempts = 100000;
constexpr std::string_view kTmpPrefix = ".uvhttpd-tmp-";

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

// The database descriptor of one operation, exclusively flocked. A rewrite
// adds the new file's descriptor, locked from before its rename until the
// directory is synced, so no other process appends to a file whose name is
// not yet durable.
RecordFile::Locked::~Locked() {
    if (new_held) flock(new_held->fd, LOCK_UN);
    if (fd >= 0) {
        flock(fd, LOCK_UN);
        close(fd);
    }
}

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

// The whole file under an exclusive lock, after the index is brought up to
// date and a torn tail is set aside: what PUT and DELETE rewrite.
int RecordFile::lock_and_read(bool create, Locked& lk, std::string& content) {
    if (int err = lock(true, create, lk)) return err;
    {
        std::lock_guard<std::mutex> g(mu_);
        if (int err = refresh_index(lk)) return err;
        if (int err = set_aside_tail(lk)) return err;
    }
    return read_all(lk, content);
}

// `content` into `out` with the first line whose id is `id` replaced by
// `replacement` (a whole line with its newline, or empty to drop it).
// Returns whether there was such a line.
static bool replace_first_line(std::string_view content, std::string_view id, std::string_view replacement,
                        std::string& out) {
    out.reserve(content.size() + replacement.size());
    bool found = false;
    for_each_line(content, [&](std::string_view l) {
        if (!found && line_id(l) == id) {
            out.append(replacement);
            found = true;
            return;
        }
        out.append(l);
        out.push_back('\n');
    });
    return found;
}

int RecordFile::put(const Record& rec, bool& created, bool* store_full) {
    created = false;
    if (store_full) *store_full = false;
    if (!valid_record_id(rec.id) || !numeric_id_in_range(rec.id)) return 400;
    try {
        std::string line = format_record_line(rec);
        if (max_record_ != 0 && line.size() > max_record_) return 413;
        Locked lk;
        std::string content, out;
        if (int err = lock_and_read(true, lk, content)) return store_status(err);
        // The first line with the id is the record (GET shows it, and the
        // listing shows it first); it is replaced in place. Later lines
        // with the same id (hand edits; recover() reports them) are kept.
        bool replaced = replace_first_line(content, rec.id, line, out);
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
        std::string content, out;
        if (int err = lock_and_read(false, lk, content)) return err == ENOENT ? 404 : store_status(err);
        // Only the first line with the id (the record GET shows); a later
        // duplicate then becomes the record.
        if (!replace_first_line(content, id, {}, out)) return 404;
        if (int err = rewrite(lk, out)) return store_status(err);
        return 204;
    } catch (...) {  // std::bad_alloc, maybe after the rename: rescan next time
        forget_index();
        return 500;
    }
}
}  // namespace uvh
