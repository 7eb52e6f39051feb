// Tests for handlers/dav/lock_table.cpp: the WebDAV lock table shared by
// every process on one root: coverage by depth, members, expiry and reuse,
// tokens, limits, and a hand-edited file.
#include "handlers/dav/lock_table.h"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "fake_exchange.h"
#include "handlers/lock_service.h"

using namespace uvh;
using uvh::test::TempRoot;

namespace {

// One "process": its own lock service and table over the root.
struct Opened {
    int root_fd = -1;
    LockService locks;
    DavLockTable table;
    explicit Opened(const TempRoot& root, bool create = true) {
        root_fd = ::open(root.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
        REQUIRE(root_fd >= 0);
        locks.open(root_fd, create);
        table.open(root_fd, create, &locks);
        REQUIRE(table.usable());
    }
    ~Opened() { ::close(root_fd); }
};

DavLock make(std::string root, bool infinite, bool exclusive, int64_t expiry) {
    DavLock l;
    l.token = DavLockTable::new_token();
    l.root = std::move(root);
    l.infinite = infinite;
    l.exclusive = exclusive;
    l.owner = "<D:owner xmlns:D=\"DAV:\">me</D:owner>";
    l.expiry = expiry;
    return l;
}

std::vector<std::string> roots(const std::vector<DavLock>& ls) {
    std::vector<std::string> out;
    for (const DavLock& l : ls) out.push_back(l.root);
    return out;
}

constexpr time_t kNow = 1'800'000'000;

}  // namespace

TEST_CASE("dav lock table: tokens are urn:uuid version 4 and unique", "[dav_lock_table]") {
    std::string a = DavLockTable::new_token(), b = DavLockTable::new_token();
    CHECK(a != b);
    REQUIRE(a.size() == 45);
    CHECK(a.starts_with("urn:uuid:"));
    CHECK(a[9 + 14] == '4');
    CHECK(std::string("89ab").find(a[9 + 19]) != std::string::npos);
}

TEST_CASE("dav lock table: depth 0 covers the resource, infinity its members too", "[dav_lock_table]") {
    TempRoot root;
    Opened p(root);
    CHECK_FALSE(p.table.maybe_active(kNow));
    DavLock zero = make("/a/file", false, true, kNow + 60);
    DavLock tree = make("/dir", true, true, kNow + 60);
    REQUIRE(p.table.insert(zero, kNow) == 0);
    REQUIRE(p.table.insert(tree, kNow) == 0);
    CHECK(p.table.maybe_active(kNow));
    CHECK(p.table.live(kNow) == 2);

    std::vector<DavLock> found;
    p.table.find("/a/file", false, kNow, found);
    CHECK(roots(found) == std::vector<std::string>{"/a/file"});
    p.table.find("/a/file/x", false, kNow, found);  // depth 0: not its members
    CHECK(found.empty());
    p.table.find("/dir/sub/deep.txt", false, kNow, found);
    CHECK(roots(found) == std::vector<std::string>{"/dir"});
    p.table.find("/dirt", false, kNow, found);  // a prefix, not a member
    CHECK(found.empty());
    // A write on the whole tree of /a sees the lock on its member.
    p.table.find("/a", false, kNow, found);
    CHECK(found.empty());
    p.table.find("/a", true, kNow, found);
    CHECK(roots(found) == std::vector<std::string>{"/a/file"});
    p.table.find("/", true, kNow, found);
    CHECK(found.size() == 2);

    DavLock root_lock = make("/", true, false, kNow + 60);
    REQUIRE(p.table.insert(root_lock, kNow) == 0);
    p.table.find("/anything/at/all", false, kNow, found);
    CHECK(roots(found) == std::vector<std::string>{"/"});
}

TEST_CASE("dav lock table: tokens are found whatever their case, and removed once", "[dav_lock_table]") {
    TempRoot root;
    Opened p(root);
    DavLock l = make("/f", false, true, kNow + 60);
    REQUIRE(p.table.insert(l, kNow) == 0);
    DavLock got;
    REQUIRE(p.table.find_token(l.token, kNow, got));
    CHECK(got.root == "/f");
    CHECK(got.owner == l.owner);
    CHECK(got.exclusive);
    CHECK_FALSE(got.infinite);
    std::string upper = l.token;
    for (size_t i = 0; i < upper.size(); ++i) upper[i] = static_cast<char>(toupper(upper[i]));
    CHECK(p.table.find_token(upper, kNow, got));
    CHECK_FALSE(p.table.find_token("urn:uuid:00000000-0000-4000-8000-000000000000", kNow, got));
    CHECK_FALSE(p.table.find_token("opaquelocktoken:foobar", kNow, got));
    CHECK_FALSE(p.table.find_token(l.token + "x", kNow, got));
    CHECK(p.table.remove(l.token, kNow));
    CHECK_FALSE(p.table.remove(l.token, kNow));
    CHECK_FALSE(p.table.find_token(l.token, kNow, got));
    CHECK_FALSE(p.table.maybe_active(kNow));
}

TEST_CASE("dav lock table: locks expire by themselves, refresh moves the expiry", "[dav_lock_table]") {
    TempRoot root;
    Opened p(root);
    DavLock l = make("/f", false, true, kNow + 10);
    REQUIRE(p.table.insert(l, kNow) == 0);
    std::vector<DavLock> found;
    p.table.find("/f", false, kNow + 9, found);
    CHECK(found.size() == 1);
    p.table.find("/f", false, kNow + 10, found);
    CHECK(found.empty());
    CHECK_FALSE(p.table.maybe_active(kNow + 10));
    DavLock got;
    CHECK_FALSE(p.table.find_token(l.token, kNow + 11, got));
    CHECK_FALSE(p.table.refresh(l.token, kNow + 100, kNow + 11));  // an expired lock is gone

    DavLock m = make("/g", false, true, kNow + 10);
    REQUIRE(p.table.insert(m, kNow) == 0);
    REQUIRE(p.table.refresh(m.token, kNow + 100, kNow + 5));
    p.table.find("/g", false, kNow + 50, found);
    CHECK(found.size() == 1);
    CHECK(p.table.maybe_active(kNow + 99));
    CHECK_FALSE(p.table.maybe_active(kNow + 100));
}

TEST_CASE("dav lock table: a full table says ENOSPC and reuses expired slots", "[dav_lock_table]") {
    TempRoot root;
    Opened p(root);
    for (size_t i = 0; i < DavLockTable::kSlots; ++i) {
        int64_t expiry = i == 7 ? kNow + 5 : kNow + 1000;
        REQUIRE(p.table.insert(make("/f" + std::to_string(i), false, true, expiry), kNow) == 0);
    }
    CHECK(p.table.insert(make("/more", false, true, kNow + 1000), kNow) == ENOSPC);
    // Once one lock has expired its slot takes the next one.
    CHECK(p.table.insert(make("/more", false, true, kNow + 1000), kNow + 6) == 0);
    CHECK(p.table.insert(make("/again", false, true, kNow + 1000), kNow + 6) == ENOSPC);
    CHECK(p.table.live(kNow + 6) == DavLockTable::kSlots);
}

TEST_CASE("dav lock table: roots and owners past their room are refused", "[dav_lock_table]") {
    TempRoot root;
    Opened p(root);
    CHECK(p.table.insert(make("/" + std::string(DavLockTable::kMaxRoot, 'x'), false, true, kNow + 5), kNow) ==
          ENAMETOOLONG);
    CHECK(p.table.insert(make("/" + std::string(DavLockTable::kMaxRoot - 1, 'x'), false, true, kNow + 5), kNow) == 0);
    DavLock big = make("/o", false, true, kNow + 5);
    big.owner.assign(DavLockTable::kMaxOwner + 1, 'o');
    CHECK(p.table.insert(big, kNow) == EMSGSIZE);
    DavLock bad = make("/t", false, true, kNow + 5);
    bad.token = "opaquelocktoken:x";
    CHECK(p.table.insert(bad, kNow) == EINVAL);
}

TEST_CASE("dav lock table: a second process on the root sees the same locks", "[dav_lock_table]") {
    TempRoot root;
    Opened one(root);
    Opened two(root);
    CHECK(one.table.shared());
    DavLock l = make("/shared", true, false, kNow + 60);
    REQUIRE(one.table.insert(l, kNow) == 0);
    std::vector<DavLock> found;
    two.table.find("/shared/x", false, kNow, found);
    REQUIRE(found.size() == 1);
    CHECK(found[0].token == l.token);
    CHECK(two.table.remove(l.token, kNow));
    CHECK_FALSE(one.table.maybe_active(kNow));
    // A third opening (a restarted server) keeps what is there.
    REQUIRE(one.table.insert(l, kNow) == 0);
    Opened three(root);
    DavLock got;
    CHECK(three.table.find_token(l.token, kNow, got));
}

TEST_CASE("dav lock table: a hand-edited file is started empty or its bad records ignored", "[dav_lock_table]") {
    TempRoot root;
    std::string token;
    {
        Opened p(root);
        DavLock l = make("/f", false, true, kNow + 60);
        token = l.token;
        REQUIRE(p.table.insert(l, kNow) == 0);
        REQUIRE(p.table.insert(make("/g", false, true, kNow + 60), kNow) == 0);
    }
    std::string file = root.at(DavLockTable::kFileName);
    {
        // Record 0 (at 4096): its root no longer starts with '/'.
        int fd = ::open(file.c_str(), O_RDWR);
        REQUIRE(fd >= 0);
        off_t root_at = 4096 + 64;
        REQUIRE(pwrite(fd, "x", 1, root_at) == 1);
        ::close(fd);
        Opened p(root);
        CHECK(p.table.live(kNow) == 1);
        DavLock got;
        CHECK_FALSE(p.table.find_token(token, kNow, got));
    }
    {
        // A wrong magic: the table starts empty.
        int fd = ::open(file.c_str(), O_RDWR);
        REQUIRE(fd >= 0);
        REQUIRE(pwrite(fd, "garbage!", 8, 0) == 8);
        ::close(fd);
        Opened p(root);
        CHECK(p.table.live(kNow) == 0);
        CHECK(p.table.insert(make("/h", false, true, kNow + 60), kNow) == 0);
    }
    {
        // Truncated: started empty at its full size.
        REQUIRE(truncate(file.c_str(), 100) == 0);
        Opened p(root);
        CHECK(p.table.live(kNow) == 0);
        CHECK(p.table.insert(make("/h", false, true, kNow + 60), kNow) == 0);
    }
}

TEST_CASE("dav lock table: path_within is by whole segments", "[dav_lock_table]") {
    CHECK(path_within("/a", "/a"));
    CHECK(path_within("/a/b", "/a"));
    CHECK_FALSE(path_within("/ab", "/a"));
    CHECK(path_within("/ab", "/"));
    CHECK_FALSE(path_within("/a", "/a/b"));
}
