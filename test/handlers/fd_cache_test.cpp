// FdCache's rules (issue 14, handlers/fd_cache.h): a descriptor is trusted
// for the revalidation interval, one request looks again from two thirds of
// it, a missing name is remembered too, a write bumps a generation that
// drops the entry at once, and a descriptor in use by a response outlives
// its entry.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "handlers/fd_cache.h"
#include "handlers/lock_service.h"

using namespace uvh;

namespace {

constexpr uint64_t kInterval = 600;  // ms: one request looks again from 400, dropped at 600

struct TempDir {
    std::string path;
    int fd = -1;
    TempDir() {
        char tmpl[] = "/tmp/uvh-fdcache-XXXXXX";
        path = mkdtemp(tmpl);
        fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    ~TempDir() {
        close(fd);
        std::string cmd = "rm -rf '" + path + "'";
        REQUIRE(system(cmd.c_str()) == 0);
    }
    // A new file with `text`, opened for reading.
    int file(const std::string& name, const std::string& text, struct stat& st) const {
        int w = openat(fd, name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        REQUIRE(w >= 0);
        REQUIRE(write(w, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
        close(w);
        int r = openat(fd, name.c_str(), O_RDONLY | O_CLOEXEC);
        REQUIRE(r >= 0);
        REQUIRE(fstat(r, &st) == 0);
        return r;
    }
};

bool is_open(int fd) { return fcntl(fd, F_GETFD) != -1; }

// What the loop would hand to the threadpool: here, closed at once.
size_t close_pending(FdCache& c) {
    size_t n = c.pending_closes().size();
    for (int fd : c.pending_closes()) close(fd);
    c.pending_closes().clear();
    return n;
}

}  // namespace

TEST_CASE("FdCache: a descriptor is reused until two thirds of the interval", "[fdcache]") {
    TempDir d;
    struct stat st {};
    int fd = d.file("a.bin", "AAAA", st);
    FdCache c(16, kInterval);
    OpenFile* f = c.store_open("/a.bin", fd, st, 0, 0, 0, "a.bin", c.generation(), 1000);
    c.release(f);  // the storing response ended
    for (uint64_t t : {1000, 1200, 1399}) {
        FdCache::Lookup l = c.find("/a.bin", t);
        REQUIRE(l.kind == FdCache::Lookup::Open);
        CHECK(l.file->fd == fd);
        CHECK(l.file->st.st_ino == st.st_ino);
        c.release(l.file);
    }
    CHECK(c.find("/b.bin", 1000).kind == FdCache::Lookup::Miss);
    CHECK(close_pending(c) == 0);  // nothing closed while the entry stays
    CHECK(is_open(fd));
}

TEST_CASE("FdCache: past the validity one request looks again, and at the interval the entry goes", "[fdcache]") {
    TempDir d;
    struct stat st {};
    int fd = d.file("a.bin", "AAAA", st);
    FdCache c(16, kInterval);
    c.release(c.store_open("/a.bin", fd, st, 0, 0, 0, "a.bin", c.generation(), 1000));
    CHECK(c.find("/a.bin", 1400).kind == FdCache::Lookup::Miss);  // this one re-opens
    FdCache::Lookup l = c.find("/a.bin", 1450);                  // the others keep the entry
    REQUIRE(l.kind == FdCache::Lookup::Open);
    c.release(l.file);
    CHECK(c.find("/a.bin", 1600).kind == FdCache::Lookup::Miss);  // dropped
    CHECK(c.entries() == 0);
    CHECK(close_pending(c) == 1);
}

TEST_CASE("FdCache: a new inode replaces the entry, and the old descriptor lives while a response uses it", "[fdcache]") {
    TempDir d;
    struct stat st1 {}, st2 {};
    int fd1 = d.file("a.bin", "old content", st1);
    FdCache c(16, kInterval);
    c.release(c.store_open("/a.bin", fd1, st1, 0, 0, 0, "a.bin", c.generation(), 1000));
    FdCache::Lookup sending = c.find("/a.bin", 1100);  // a long response holds it
    REQUIRE(sending.kind == FdCache::Lookup::Open);

    // Another program renames a new file over the name; the revalidating
    // request opened the new inode.
    int fd2 = d.file("a.new", "new content!", st2);
    REQUIRE(renameat(d.fd, "a.new", d.fd, "a.bin") == 0);
    REQUIRE(st2.st_ino != st1.st_ino);
    CHECK(c.find("/a.bin", 1400).kind == FdCache::Lookup::Miss);
    c.release(c.store_open("/a.bin", fd2, st2, 0, 0, 0, "a.bin", c.generation(), 1400));
    FdCache::Lookup now = c.find("/a.bin", 1410);
    REQUIRE(now.kind == FdCache::Lookup::Open);
    CHECK(now.file->st.st_ino == st2.st_ino);
    c.release(now.file);

    CHECK(close_pending(c) == 0);  // the old descriptor is still sending
    char buf[32] = {};
    CHECK(pread(sending.file->fd, buf, sizeof buf, 0) == 11);
    CHECK(std::string(buf) == "old content");
    c.release(sending.file);  // that response ends
    CHECK(c.pending_closes().size() == 1);
    CHECK(c.pending_closes().front() == fd1);
    close_pending(c);
}

TEST_CASE("FdCache: a missing name is remembered, and a create in its directory ends that", "[fdcache]") {
    TempDir d;
    LockService locks;
    locks.open(d.fd, true);
    struct stat dir {};
    REQUIRE(fstat(d.fd, &dir) == 0);
    FdCache c(16, kInterval);
    c.set_generations(&locks);
    c.store_missing("/gone.bin", ENOENT, dir.st_dev, dir.st_ino, locks.generation(dir.st_dev, dir.st_ino),
                    c.generation(), 1000);
    FdCache::Lookup l = c.find("/gone.bin", 1100);
    REQUIRE(l.kind == FdCache::Lookup::Missing);
    CHECK(l.err == ENOENT);
    locks.bump(dir.st_dev, dir.st_ino);  // a PUT in another worker created a name there
    CHECK(c.find("/gone.bin", 1200).kind == FdCache::Lookup::Miss);
    CHECK(c.entries() == 0);
}

TEST_CASE("FdCache: a generation bump by a writer drops the entry at its next hit", "[fdcache]") {
    TempDir d;
    LockService locks;
    locks.open(d.fd, true);
    struct stat st {};
    int fd = d.file("a.bin", "AAAA", st);
    FdCache c(16, kInterval);
    c.set_generations(&locks);
    c.release(c.store_open("/a.bin", fd, st, locks.generation(st.st_dev, st.st_ino), 0, 0, "a.bin",
                           c.generation(), 1000));
    FdCache::Lookup l = c.find("/a.bin", 1000);
    REQUIRE(l.kind == FdCache::Lookup::Open);
    c.release(l.file);
    locks.bump(st.st_dev, st.st_ino);  // replaced or removed, by any process
    CHECK(c.find("/a.bin", 1001).kind == FdCache::Lookup::Miss);
    CHECK(close_pending(c) == 1);
}

TEST_CASE("FdCache: a write through this process drops the entry and stops older readers from storing", "[fdcache]") {
    TempDir d;
    struct stat st {};
    int fd = d.file("a.bin", "AAAA", st);
    FdCache c(16, kInterval);
    uint64_t before = c.generation();  // a reader starts
    c.release(c.store_open("/a.bin", fd, st, 0, 0, 0, "a.bin", c.generation(), 1000));
    c.invalidate_file("/a.bin");  // a PUT through this process
    CHECK(c.find("/a.bin", 1001).kind == FdCache::Lookup::Miss);
    CHECK(close_pending(c) == 1);

    // The reader that started before the PUT finishes: it serves its own
    // response, but its descriptor is not kept.
    struct stat st2 {};
    int fd2 = d.file("b.bin", "BBBB", st2);
    OpenFile* f = c.store_open("/a.bin", fd2, st2, 0, 0, 0, "a.bin", before, 1002);
    CHECK(f->fd == fd2);
    CHECK(c.entries() == 0);
    c.release(f);
    CHECK(close_pending(c) == 1);

    uint64_t g = c.generation();
    c.store_missing("/x", ENOENT, 1, 1, 0, g - 1, 1003);  // also for negative entries
    CHECK(c.entries() == 0);
}

TEST_CASE("FdCache: the least recently used entry goes when the cache is full", "[fdcache]") {
    TempDir d;
    FdCache c(2, kInterval);
    int fds[3];
    for (int i = 0; i < 3; ++i) {
        struct stat st {};
        std::string name = "f" + std::to_string(i);
        fds[i] = d.file(name, name, st);
        c.release(c.store_open("/" + name, fds[i], st, 0, 0, 0, name, c.generation(), 1000));
        if (i == 1) {
            FdCache::Lookup l = c.find("/f0", 1001);  // f0 is now the most recent
            REQUIRE(l.kind == FdCache::Lookup::Open);
            c.release(l.file);
        }
    }
    CHECK(c.entries() == 2);
    CHECK(c.find("/f1", 1002).kind == FdCache::Lookup::Miss);
    REQUIRE(c.pending_closes().size() == 1);
    CHECK(c.pending_closes().front() == fds[1]);
    close_pending(c);
    FdCache off(0, kInterval);
    CHECK_FALSE(off.enabled());
    struct stat st {};
    int fd = d.file("g", "g", st);
    OpenFile* f = off.store_open("/g", fd, st, 0, 0, 0, "g", off.generation(), 1000);
    CHECK(off.entries() == 0);
    off.release(f);
    CHECK(close_pending(off) == 1);
}

TEST_CASE("FdCache: the sweep drops entries past the interval, used or not", "[fdcache]") {
    TempDir d;
    struct stat st {};
    int fd = d.file("a.bin", "AAAA", st);
    FdCache c(16, kInterval);
    c.release(c.store_open("/a.bin", fd, st, 0, 0, 0, "a.bin", c.generation(), 1000));
    c.store_missing("/gone", ENOENT, 1, 1, 0, c.generation(), 1300);
    c.expire(1599);
    CHECK(c.entries() == 2);
    c.expire(1600);
    CHECK(c.entries() == 1);  // the missing name was remembered later
    CHECK(close_pending(c) == 1);
    c.expire(1900);
    CHECK(c.entries() == 0);
}

TEST_CASE("FdCache: the descriptor budget counts each open file until its close is handed off", "[fdcache]") {
    TempDir d;
    struct stat st {};
    int64_t held = 0;
    FdCache c(1, kInterval);
    c.set_descriptor_count(&held);
    OpenFile* a = c.store_open("/a.bin", d.file("a.bin", "A", st), st, 0, 0, 0, "a.bin", c.generation(), 1000);
    CHECK(held == 1);
    // A second file evicts the first from the one-entry cache, but the
    // response still sending the first keeps it open: both count.
    OpenFile* b = c.store_open("/b.bin", d.file("b.bin", "B", st), st, 0, 0, 0, "b.bin", c.generation(), 1000);
    CHECK(held == 2);
    c.release(a);  // its response ended: closed later, counted until then
    CHECK(held == 2);
    size_t n = close_pending(c);
    c.closed(n);
    CHECK(held == 1);
    c.release(b);  // the cache keeps b
    CHECK(held == 1);
    c.clear();
    c.closed(close_pending(c));
    CHECK(held == 0);
}
