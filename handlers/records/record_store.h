// The record store behind POST/GET/PUT/DELETE on /database.txt: the seed's
// "database.txt" in the served directory, done properly (shared/seed/NOTES.md).
//
// Format: one line per record, the id, one space, then the fields as
// application/x-www-form-urlencoded with form_encode for names and values, so
// newlines, '&', '=', '%' and any other byte round-trip exactly:
//
//     17 mis=17&name=Akshay&email=akshay%40gmail.com\n
//
// Three layers: pure line formatting; RecordFile, the blocking file
// operations (durable, safe between processes sharing one root); and
// RecordStore, which runs RecordFile on the libuv threadpool with group
// commit, so concurrent POSTs share one fdatasync.
#pragma once

#include <sys/stat.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "protocol/percent.h"

namespace uvh {

struct Record {
    std::string id;
    FormFields fields;
};

// 1 to 64 of [A-Za-z0-9._-], and neither "." nor ".." (the id also names a
// URL path segment, /database.txt/ID, where those two would be dot segments).
bool valid_record_id(std::string_view id);

// An id of only digits is a number, and numbers are below 10^18: at most
// kMaxNumericDigits digits after any leading zeros ("007" is the number 7,
// but its own id). POST and PUT refuse a larger one with 400; one already in
// the file (a hand edit) stays a record that auto-numbering skips.
inline constexpr size_t kMaxNumericDigits = 18;
inline constexpr uint64_t kMaxNumeric = 999'999'999'999'999'999ull;
bool numeric_id_in_range(std::string_view id);

// "ID name=value&...\n". The id must be valid (callers check it first).
std::string format_record_line(const Record& r);

// Parses one line without its '\n'. False (and `out` unspecified) for a
// missing space, an invalid id, a byte form_encode never produces, a piece
// without '=', or bad percent-encoding.
bool parse_record_line(std::string_view line, Record& out);

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
    struct Locked;
    // A descriptor of the indexed file, shared with reads still using it.
    struct Held {
        int fd = -1;
        explicit Held(int f) : fd(f) {}
        ~Held();
        Held(const Held&) = delete;
        Held& operator=(const Held&) = delete;
    };
    struct Entry {
        uint64_t off = 0;  // of the line
        size_t len = 0;    // without its line ending
    };
    int open_path(int flags, mode_t mode);
    int get_once(std::string_view id, Record& out, bool rebuild);
    int lock(bool write, bool create, Locked& lk);
    // These four need mu_ held.
    int refresh_index(Locked& lk);
    int scan_tail(uint64_t size);
    size_t index_lines(std::string_view content, uint64_t base);
    void reset_index(std::shared_ptr<Held> held, const struct stat& st);
    int set_aside_tail(Locked& lk);
    void report_duplicates();
    int read_all(Locked& lk, std::string& content);
    int rewrite(Locked& lk, const std::string& content);
    int open_parent_dir();
    void forget_index();
    void note_id(std::string_view id, uint64_t off, size_t len);
    std::string next_auto_id(uint64_t& max, const std::unordered_set<std::string>& batch_ids) const;

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

// Runs RecordFile operations on the libuv threadpool, from the loop thread.
//
// Group commit: at most one threadpool job of writes is in flight. When
// idle, submit() starts a job with every queued write; writes that arrive
// while a job runs wait and all go together in the next job, so many
// concurrent clients share one fdatasync per batch. Inside a job, writes run
// in arrival order, each maximal run of consecutive Appends as one
// append_batch; their done() callbacks run in submission order on the loop
// thread. A Get does not queue behind writes: it is a threadpool job of its
// own (RecordFile::get, one pread), so its done() may come before that of a
// write submitted earlier. Uses only the gathering timer and uv_work_t
// requests, so uv_loop_close() succeeds once close() has called back.
class RecordStore {
public:
    struct Op {
        enum class Kind { Append, Get, Put, Delete } kind = Kind::Append;
        Record rec;            // in (and out for Get, and for Append: the assigned id)
        int status = 0;        // out: HTTP status (503 when submitted after close())
        bool created = false;  // out, for Put
        bool store_full = false;  // out: a 507 is the store cap (--max-store-size), not the disk
        void* ctx = nullptr;   // the caller's
        void (*done)(Op& op) = nullptr;  // called on the loop thread when the op finished

        // The store's, for a Get's own threadpool job.
        uv_work_t read_req {};
        RecordStore* store = nullptr;
    };

    static constexpr uint64_t kGatherMs = 1;
    // gather_ms: how long the next job may wait for the ops of the last one
    // (see gather()); tests make it long so that no timer decides.
    RecordStore(uv_loop_t* loop, std::unique_ptr<RecordFile> file, uint64_t gather_ms = kGatherMs);
    // Must not run while a job is in flight: close() and wait for `closed`.
    ~RecordStore();
    RecordStore(const RecordStore&) = delete;
    RecordStore& operator=(const RecordStore&) = delete;

    // The caller owns op until done() runs; done() is never called
    // synchronously inside submit(). May be called from done().
    void submit(Op* op);

    // Stops accepting (later ops finish with 503, still asynchronously);
    // calls `closed` on the loop thread, never inside close(), once no work
    // is in flight.
    void close(std::function<void()> closed);

    uint64_t appended() const { return appended_; }  // records appended by this process
    uint64_t batches() const { return batches_; }    // append_batch calls (= append fdatasyncs)
    uint64_t jobs() const { return jobs_; }          // threadpool jobs run

private:
    static void work_cb(uv_work_t* req);
    static void read_work_cb(uv_work_t* req);
    static void read_after_cb(uv_work_t* req, int status);
    static void after_cb(uv_work_t* req, int status);
    static void gather_cb(uv_timer_t* timer);
    static void timer_closed_cb(uv_handle_t* handle);
    void start_job();
    void gather(size_t expected);
    void maybe_closed();
    void run_job();  // on the threadpool

    uv_loop_t* loop_;
    std::unique_ptr<RecordFile> file_;
    uv_work_t work_ {};
    bool busy_ = false;
    size_t reads_ = 0;  // Get jobs in flight
    bool closing_ = false;
    std::function<void()> closed_;
    std::vector<Op*> queued_;   // loop thread only
    std::vector<Op*> running_;  // the job's; the loop touches it only when no job is in flight

    // Gathering (see gather()): after a job of N ops, the next one waits up
    // to gather_ms_ for N ops to queue, so the clients that job answered
    // share the next fdatasync instead of splitting into 1 and N-1.
    uint64_t gather_ms_;
    uv_timer_t gather_timer_ {};
    bool timer_inited_ = false;
    bool timer_closed_ = false;
    bool gathering_ = false;
    size_t expected_ = 0;

    // Worker scratch, reused job after job.
    std::vector<RecordFile::Append> scratch_;
    std::vector<RecordFile::Append*> scratch_ptrs_;
    uint64_t job_batches_ = 0;  // written by the job, read in after_cb

    uint64_t appended_ = 0;
    uint64_t batches_ = 0;
    uint64_t jobs_ = 0;
};

}  // namespace uvh
