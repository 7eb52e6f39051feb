// The WebDAV lock table (RFC 4918 §6, §7): the write locks granted by LOCK,
// shared by every process serving one root, kept where each of them sees it
// and expiring by itself. No HTTP here: handlers/dav/dav_locks.h turns
// requests into calls on it.
//
// Storage: one file per served root beside the lock service's state file,
// ".uvhttpd-davlocks" (a dotfile: never served, listed or written through
// HTTP), mapped MAP_SHARED by every process: a 4 KiB header and kSlots
// fixed-size records. A record is a lock: its token (a UUID), its root
// (the canonical URL path of the locked resource, symlinks in its parent
// resolved), depth 0 or infinity, exclusive or shared, the owner XML the
// client sent, and its expiry in wall-clock seconds. A record whose expiry
// has passed is free: it is ignored by every reader and reused by the next
// LOCK, so locks expire with no sweeper, and a lock outlives a crash of the
// server that granted it (kill -9, a new server on the same root) until its
// timeout, as RFC 4918 §6.6 lets a client expect.
//
// Concurrency: every change happens under the lock service's table lock
// held exclusively (LockService::lock_table); readers hold it shared. The
// header's `latest_expiry` (the latest expiry of any record, 0 when there
// is none) lets a write tell "no lock can apply" from one load, so plain
// PUT and DELETE pay nothing for the table when nobody locks.
//
// A hand-edited or truncated file: the header is checked at start-up (a
// wrong magic, version or size re-initialises the table, with a line on
// stderr), and each record is checked when read (a root that is not an
// absolute path, lengths past their fields, a token that is not a UUID:
// the record is treated as free).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace uvh {

class LockService;

struct DavLock {
    std::string token;  // "urn:uuid:xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"
    std::string root;   // canonical URL path, decoded: "/" or "/a/b" (no trailing '/')
    bool exclusive = true;
    bool infinite = false;  // Depth: infinity
    std::string owner;      // the <D:owner> element as XML, or empty
    int64_t expiry = 0;     // wall-clock seconds

    // Whether this lock applies to `path` (a canonical path as above): the
    // locked resource itself, or a member of it under Depth: infinity.
    bool covers(std::string_view path) const;
};

// True when `path` is `ancestor` or lies beneath it (canonical paths).
bool path_within(std::string_view path, std::string_view ancestor);

class DavLockTable {
public:
    static constexpr const char* kFileName = ".uvhttpd-davlocks";
    static constexpr size_t kSlots = 1024;
    static constexpr size_t kMaxRoot = 1023;   // bytes of a lock root's path
    static constexpr size_t kMaxOwner = 960;   // bytes of the owner XML

    DavLockTable() = default;
    ~DavLockTable();
    DavLockTable(const DavLockTable&) = delete;
    DavLockTable& operator=(const DavLockTable&) = delete;

    // Opens (creating it when `create`) the table file in the root and maps
    // it; `locks` provides the table lock. Falls back to a memory file when
    // the root's file cannot be used (locks then hold within this process
    // only; shared() says so). Blocking; start-up.
    void open(int root_fd, bool create, const LockService* locks);
    bool shared() const { return shared_; }
    bool usable() const { return header_ != nullptr; }
    const LockService* locks() const { return locks_; }
    // The root's absolute path with symlinks resolved, as /proc/self/fd
    // shows it (for canonical lock paths); empty when unknown.
    const std::string& root_real() const { return root_real_; }

    // Lock-free: false when no lock can be live at `now` (no record, or all
    // expired). Reliable only under the table lock; a hint otherwise.
    bool maybe_active(time_t now) const;

    // ---- under the table lock, shared or exclusive ----

    // Every live lock that applies to `path` (covers it); with
    // `with_members`, also every live lock on a member of `path` (for a
    // write that changes a whole tree: DELETE, MOVE of a collection).
    void find(std::string_view path, bool with_members, time_t now, std::vector<DavLock>& out) const;
    // The live lock with this token, if any.
    bool find_token(std::string_view token, time_t now, DavLock& out) const;

    // ---- under the table lock held exclusively ----

    // Adds a lock. Returns 0, ENOSPC when every slot holds a live lock, or
    // ENAMETOOLONG / EMSGSIZE when the root or the owner does not fit.
    int insert(const DavLock& lock, time_t now);
    // Sets a live lock's expiry. False when no live lock has the token.
    bool refresh(std::string_view token, int64_t expiry, time_t now);
    // Removes a live lock. False when no live lock has the token.
    bool remove(std::string_view token, time_t now);
    // How many live locks there are (tests, metrics).
    size_t live(time_t now) const;

    // A new token: urn:uuid: and a version 4 UUID from getrandom.
    static std::string new_token();

private:
    struct Header;
    struct Record;
    Record* record(size_t i) const;
    bool read_record(size_t i, time_t now, DavLock* out) const;
    void update_latest(time_t now);

    int fd_ = -1;
    void* map_ = nullptr;
    size_t map_bytes_ = 0;
    Header* header_ = nullptr;
    bool shared_ = false;
    bool writable_ = false;
    const LockService* locks_ = nullptr;
    std::string root_real_;
};

}  // namespace uvh
