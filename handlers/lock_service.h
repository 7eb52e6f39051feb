// The project's one lock-and-generation service (hardening issue, item 1 and
// item 8). Every write that checks and then changes a name (PUT, DELETE;
// later WebDAV, resumable uploads) takes the lock of that name first, and
// every write that replaces or removes a file bumps that file's generation,
// which caches of any process compare on each hit.
//
// Both live in one small file per served root, ".uvhttpd-state" (a dotfile:
// never served, listed or writable through HTTP):
//
// * Locks are open-file-description locks (fcntl F_OFD_SETLKW) on one byte
//   of that file, chosen by hashing the key. They are held by whoever opened
//   the description, so each acquisition opens the file anew: two threads of
//   one process, two --workers processes and two servers sharing one root on
//   one machine all exclude each other, and the kernel drops a lock when its
//   holder dies (a crashed worker cannot leave a name locked). Over NFSv4 the
//   byte-range locks go to the server, so they hold across machines too;
//   on storage without distributed locks they do not.
// * Generations are 8-byte counters in the first pages of that file, mapped
//   MAP_SHARED by every process on the machine. They do not cross machines:
//   there, a cache notices a change within --cache-revalidate.
//
// Keys: the lock of a name is the parent directory's device and inode plus
// the name, one key whether the file exists or not, so a create and a
// replace of the same name exclude each other and every URL alias (symlinked
// directories, "loop -> .") of one directory entry gets the same lock. The
// generation of a file is its device and inode, so aliases share it too.
// A write that creates a name bumps its parent directory's generation, for
// caches that remember a name was missing (handlers/fd_cache.h).
// Different keys may share a byte or a counter (the tables are fixed-size):
// that costs an unneeded wait or a cache miss, never a wrong answer.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace uvh {

class LockService {
public:
    static constexpr size_t kSlots = 8192;  // generation counters (64 KiB)
    static constexpr const char* kFileName = ".uvhttpd-state";

    LockService() = default;
    ~LockService();
    LockService(const LockService&) = delete;
    LockService& operator=(const LockService&) = delete;

    // Opens (creating it when `create`) the state file in the root and maps
    // its generation table. When the file cannot be had (a read-only root),
    // falls back to an anonymous file: locks and generations then hold
    // within this process only, and `shared()` says so. Blocking; start-up.
    void open(int root_fd, bool create);
    bool shared() const { return shared_; }

    // An exclusive lock, released when the Guard goes. Blocks: call from a
    // threadpool thread, never from the loop.
    class Guard {
    public:
        Guard() = default;
        explicit Guard(int fd) : fd_(fd) {}
        Guard(Guard&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
        Guard& operator=(Guard&& o) noexcept;
        ~Guard() { release(); }
        void release();
        bool held() const { return fd_ >= 0; }
        // The locked description's descriptor (lock_file: the file itself,
        // open for reading and writing).
        int fd() const { return fd_; }

    private:
        friend class LockService;
        int fd_ = -1;
    };
    // The lock of `name` in the directory `dir` (an fstat of it). Returns a
    // Guard that does not hold (held() false, errno set) when the lock could
    // not be taken.
    Guard lock_name(const struct stat& dir, std::string_view name) const;
    // The locks of two names at once (COPY and MOVE: source and
    // destination), taken in a fixed order on one Guard.
    Guard lock_names(const struct stat& dir_a, std::string_view a, const struct stat& dir_b,
                     std::string_view b) const;

    // The lock of the WebDAV lock table (handlers/dav/lock_table.h): one
    // byte of the state file outside the range names hash to, so it never
    // collides with a name's lock. A LOCK or UNLOCK takes it exclusively, on
    // its own description, to change the table; every write method adds a
    // shared hold of it to the description of the name lock it already
    // holds (one fcntl, no new open), so the table cannot change between a
    // write's lock check and its commit, and writes do not exclude each
    // other. Order: name locks first, the table lock last; never a name
    // lock while holding the table lock exclusively. lock_table(false)
    // takes a shared hold on its own description, for readers that hold no
    // name lock (PROPFIND's lockdiscovery). Blocking.
    Guard lock_table(bool exclusive = true) const;
    bool share_table(Guard& held) const;

    // The lock of one file the caller owns, `name` in the directory `dir_fd`
    // (a resumable upload's partial data, handlers/uploads/upload_state.h):
    // an OFD lock on the whole file itself, opened anew for this
    // acquisition, so it shares no byte with any name's lock and can be
    // held while a name lock is taken. Blocks (threadpool only). A Guard
    // that does not hold, errno set (ENOENT: no such file), on failure.
    static Guard lock_file(int dir_fd, const char* name);

    // The generation of the file (dev, ino); bump() after replacing or
    // removing it. Lock-free; any thread.
    uint64_t generation(dev_t dev, ino_t ino) const;
    void bump(dev_t dev, ino_t ino) const;

private:
    static off_t byte_of(const struct stat& dir, std::string_view name);
    Guard lock_bytes(off_t first, off_t second) const;  // second < 0: one byte
    uint64_t* slot(dev_t dev, ino_t ino) const;
    int fd_ = -1;
    uint64_t* table_ = nullptr;
    bool shared_ = false;
    bool writable_ = false;
};

}  // namespace uvh
