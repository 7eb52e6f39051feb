// RecordFile: the record store's blocking file operations (durable, safe
// between processes sharing one root). No HTTP: statuses are plain numbers
// the HTTP side (handlers/records.cpp) sends as they are. The line format is
// record_format.h; the threadpool and group commit on top are
// record_store.h. The methods live in record_file.cpp (operations),
// record_index.cpp (the id index) and record_recovery.cpp (start-up checks).
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "handlers/records/record_format.h"

namespace uvh {

// Blocking operations on the record file, never called from the loop
// thread. The writing ones (append_batch, put, remove, recover) run on one
// thread at a time (RecordStore guarantees it) and may block on a lock held
// by another process and on fdatasync; get() may run on other threads at the
// same time and never waits for either (see get()).
//
// The index: id -> (offset, length) of its line in the file, for the inode
// this process holds open, built once and then extended by reading only
// the bytes appended since (by this process or another); a different inode
// (a rewrite renamed over it) or a smaller size means a rebuild.
//
// Limits (set_limits): a record's line, with its newline, is at most
// max_record bytes (413), and an append or a growing put may not take the
// file beyond max_store bytes (507 with store_full set); 0 turns one off.
//
// Concurrency between processes: every operation opens the path, takes an
// exclusive flock(2) on it and then checks that the path still names the
// locked inode (a put()/remove() elsewhere may have renamed a new file over
// it meanwhile; then it retries). Writers only ever append whole lines with
// one write() or replace the file with rename(), so a reader under the lock
// sees whole lines.
//
// No method throws; failures are HTTP statuses (507 for ENOSPC, EDQUOT and
// EFBIG with the file left as it was, 500 otherwise).
class RecordFile {
public:
    // The file is `path` resolved against dir_fd: AT_FDCWD with an absolute
    // (or working-directory relative) --database path, or the served root's
    // O_PATH descriptor with a relative path like "database.txt" and
    // beneath = true, so the kernel refuses to leave the root (open_beneath).
    // dir_fd must stay open for the object's lifetime.
    RecordFile(int dir_fd, std::string path, bool beneath);
    ~RecordFile();
    RecordFile(const RecordFile&) = delete;
    RecordFile& operator=(const RecordFile&) = delete;

    // In: rec (an empty id asks for the next number). Out: status 201 (and
    // rec.id set), 400 (invalid explicit id, or a number out of range), 409
    // (the id exists in the file or earlier in the batch), 507 (disk full)
    // or 500 (and rec.id as it came in). Never 507 for an id: see
    // next_auto_id().
    struct Append {
        Record rec;
        int status = 0;
        bool store_full = false;  // the 507 is the store cap, not the disk
    };

    static constexpr uint64_t kDefaultMaxRecord = 64 * 1024;
    static constexpr uint64_t kDefaultMaxStore = 1ull << 30;
    void set_limits(uint64_t max_record, uint64_t max_store);

    // Appends every acceptable record with ONE write() of all their lines to
    // the O_APPEND descriptor, then one fdatasync() (and an fsync of the
    // directory the first time this process appends to this inode, so a just
    // created file's name is durable too). Statuses are set only after the
    // sync succeeded. Empty ids get the next integer after the largest
    // number in range in the file (or the smallest free number once the
    // largest, kMaxNumeric, is taken), in batch order. A last line without a
    // newline is moved aside first (see recover()). On failure the file is
    // truncated back to its previous size and every accepted record gets
    // 507/500.
    void append_batch(std::vector<Append*>& batch);

    // 200 with `out` filled, 404 (no such record or no file), or an error
    // status (500 for a record line that does not parse). One pread of the
    // record's line, without flock: writers append whole lines with one
    // write() or rename complete files, so the bytes below the size seen are
    // whole lines. A record whose append is still waiting for its fdatasync
    // may be seen. Safe to call from several threads, also while a writing
    // operation runs.
    int get(std::string_view id, Record& out);

    // Lines sharing an id (only a hand edit makes them): the first in file
    // order is the record for get(), put() and remove(); the others are
    // kept, and recover() reports them on stderr.
    //
    // Replaces the record with rec.id in place (204, created = false) or
    // appends it at the end (201, created = true), by rewriting the file:
    // a ".uvhttpd-tmp-" file in the same directory, fdatasync, rename over
    // the database, fsync of the directory. 400 for an invalid id, 507/500
    // with the file unchanged.
    int put(const Record& rec, bool& created, bool* store_full = nullptr);

    // Removes the record (204) by the same rewrite, 404 if there is none,
    // 507/500 with the file unchanged.
    int remove(std::string_view id);

    // Called once at start-up. Writable: a last line without a newline (a
    // crash mid-append, or a hand edit) is moved to ".NAME.torn-DATE" next
    // to the store and logged on stderr, never dropped and never taken as a
    // record (every writing operation does the same under its lock).
    // Read-only (writable = false): nothing is written, the line is only
    // reported, and reads serve the complete lines. CRLF line endings are
    // line endings. Returns 0 (also when the file does not exist yet) or the
    // errno of the failing step.
    int recover(bool writable = true);

    // For tests and metrics: ids known to this process's index.
    size_t indexed() const;

private:
    // A descriptor of the indexed file, shared with reads still using it.
    struct Held {
        int fd = -1;
        explicit Held(int f) : fd(f) {}
        ~Held();
        Held(const Held&) = delete;
        Held& operator=(const Held&) = delete;
    };
    // The database descriptor of one operation, exclusively flocked. A rewrite
    // adds the new file's descriptor, locked from before its rename until the
    // directory is synced, so no other process appends to a file whose name is
    // not yet durable.
    struct Locked {
        int fd = -1;
        struct stat st {};
        bool created = false;
        std::shared_ptr<Held> new_held;  // a rewrite's file, now held_: unlocked here, not closed

        Locked() = default;
        Locked(const Locked&) = delete;
        Locked& operator=(const Locked&) = delete;
        ~Locked();  // unlocks and closes
    };
    struct Entry {
        uint64_t off = 0;  // of the line
        size_t len = 0;    // without its line ending
    };
    // record_file.cpp: the operations.
    int open_path(int flags, mode_t mode);
    int get_once(std::string_view id, Record& out, bool rebuild);
    int lock(bool write, bool create, Locked& lk);
    int refresh_index(Locked& lk);  // needs mu_ held
    int read_all(Locked& lk, std::string& content);
    int lock_and_read(bool create, Locked& lk, std::string& content);
    int rewrite(Locked& lk, const std::string& content);
    int open_parent_dir();

    // record_index.cpp: the index. All but forget_index() need mu_ held.
    int scan_tail(uint64_t size);
    size_t index_lines(std::string_view content, uint64_t base);
    void reset_index(std::shared_ptr<Held> held, const struct stat& st);
    void forget_index();
    void note_id(std::string_view id, uint64_t off, size_t len);
    std::string next_auto_id(uint64_t& max, const std::unordered_set<std::string>& batch_ids) const;

    // record_recovery.cpp: torn tails and duplicate ids. Need mu_ held.
    int set_aside_tail(Locked& lk);
    void report_duplicates();

    int dir_fd_;
    std::string path_;
    bool beneath_;

    uint64_t max_record_ = kDefaultMaxRecord;
    uint64_t max_store_ = kDefaultMaxStore;

    // The index of the file this process last saw, guarded by mu_: ids and
    // their lines, and the largest number in range among them (0 for none),
    // for the first `scanned_` bytes of the inode held open in `held_`.
    // Holding the inode open means its number cannot be reused by another
    // file, so "same inode" really means "same file, maybe grown".
    mutable std::mutex mu_;
    std::shared_ptr<Held> held_;
    struct stat held_st_ {};
    uint64_t scanned_ = 0;
    bool dir_synced_ = false;  // this process fsynced the directory for held_st_'s inode
    std::unordered_map<std::string, Entry> ids_;
    std::unordered_map<std::string, uint64_t> dups_;  // id -> lines after its first
    uint64_t max_numeric_ = 0;
    uint64_t tmp_counter_ = 0;
};

}  // namespace uvh
