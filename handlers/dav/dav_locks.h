// WebDAV locks as a write sees them (RFC 4918 §6, §7, §10.4): the If header
// evaluated against the files and the lock table, the check every write
// method makes before it changes anything, and its answer. The table itself
// is handlers/dav/lock_table.h; the LOCK and UNLOCK methods are
// handlers/dav/lock_methods.h; the lock properties PROPFIND shows are
// handlers/dav/lock_discovery.h.
//
// How a write method uses the check (docs/architecture.md, "WebDAV
// locks"): on its worker, after taking the lock service's name lock of the
// name it changes (the same lock PUT takes) and before changing anything,
//
//     LockCheck c = check_write_locks(*site, *request, &guard, target, now);
//     if (c.status) { ... stop; on the loop: respond_lock_check(ex, c) ... }
//
// and it keeps `guard` until the change is done: the check adds a shared
// hold of the lock table to the guard's description, so no LOCK can be
// granted between the check and the change. With no live lock in the table
// and no If header the check is one atomic load and one fcntl.
#pragma once

#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "handlers/dav/lock_table.h"
#include "handlers/exchange.h"
#include "handlers/lock_service.h"

namespace uvh {

// What a write changes.
struct WriteTarget {
    std::string_view path;    // the normalised URL path (Exchange::path(), or a Destination's)
    int dir_fd = -1;          // its parent directory, opened beneath the root (-1: unknown)
    std::string_view name;    // its name in dir_fd
    bool members = false;     // the write changes every member too (DELETE or MOVE of a collection)
    bool membership = false;  // the write adds or removes the name in its parent (create, delete, move)
};

struct LockCheck {
    // 0: go ahead. 400: a malformed If header. 412: the If header's
    // conditions are false (RFC 4918 §10.4). 423: a lock applies whose token
    // was not submitted (§7.5). Another status: the table could not be read.
    int status = 0;
    std::string detail;     // one line for 400/412
    std::string lock_root;  // 423: the decoded URL path of the lock root
    // On success: the tokens of the locks rooted at the target or beneath
    // it. A write that removes the target (DELETE, the source of a MOVE)
    // passes them to release_locks() once it has released its name lock
    // (RFC 4918 §9.6.1, §9.9.1: such locks go with the resource).
    std::vector<std::string> rooted;
};

// On a worker thread. `guard` is the name lock the caller holds for the
// target (nullptr: an early, advisory check that the caller repeats under
// the lock before it commits).
LockCheck check_write_locks(const Site& site, const Request& req, LockService::Guard* guard,
                            const WriteTarget& target, time_t now);

// On the loop: 400/412 as a text line; 423 with the body RFC 4918 §16 asks
// for, <D:error><D:lock-token-submitted><D:href>root</D:href>...
void respond_lock_check(Exchange& ex, const LockCheck& c);

// After a successful removal, with no name lock held: removes the locks
// check_write_locks() listed in `rooted` (by token, so a lock granted since
// on a new resource of the same name is not touched). Worker thread.
// With `only_if_gone`, a lock is removed only when nothing exists at its
// root any more (a DELETE of a collection that removed some members and
// answered 207 for the others).
void release_locks(const Site& site, const std::vector<std::string>& tokens, time_t now, bool only_if_gone = false);

// For LOCK itself (handlers/dav/lock_methods.cpp), worker thread: the If
// header evaluated against the target as check_write_locks() does, but no
// lock's token is required (the caller decides about conflicts); the
// tokens of the lists that are true go to `submitted`.
LockCheck evaluate_for_lock(const Site& site, const Request& req, const WriteTarget& target, time_t now,
                            std::vector<std::string>& submitted);

// The canonical path of a target for the lock table: the URL path of its
// parent with symlinks resolved (through /proc/self/fd of `dir_fd`), so
// every alias of one directory entry names the same lock. Falls back to
// the URL path (without a trailing '/', "/" for the root).
std::string canonical_lock_path(const Site& site, int dir_fd, std::string_view name, std::string_view url_path);

// The URL path without a trailing '/' ("/" stays).
std::string_view strip_trailing_slash(std::string_view path);

}  // namespace uvh
