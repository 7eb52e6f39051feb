// Tests for handlers/records/record_file.cpp: RecordFile on real files in a
// mkdtemp directory (ids, get/put/remove, a path beneath the root, a full
// disk, several processes sharing one file).
#include "handlers/records/record_file.h"

#include <catch2/catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test/handlers/records/record_test_util.h"

using namespace uvh;
using namespace std::string_literals;
using namespace std::string_view_literals;
using namespace uvh::rectest;

// ------------------------------------------------------------- RecordFile

TEST_CASE("RecordFile: appends number records 1, 2, 3 and create the file", "[records]") {
    TempDir dir;
    std::string db = dir.file("database.txt");
    RecordFile rf(AT_FDCWD, db, false);
    std::vector<Record> recs{rec("", {{"name", "a"}}), rec("", {{"name", "b"}}), rec("", {{"name", "c"}})};
    CHECK(append(rf, recs) == std::vector<int>{201, 201, 201});
    CHECK(recs[0].id == "1");
    CHECK(recs[1].id == "2");
    CHECK(recs[2].id == "3");
    CHECK(read_file(db) == "1 name=a\n2 name=b\n3 name=c\n");
    struct stat st;
    REQUIRE(stat(db.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == (0644 & ~[] { mode_t m = umask(0); umask(m); return m; }()));

    Record r = rec("");
    CHECK(append_one(rf, r) == 201);
    CHECK(r.id == "4");
    CHECK(rf.indexed() == 4);
}

TEST_CASE("RecordFile: explicit ids and conflicts", "[records]") {
    TempDir dir;
    std::string db = dir.file("database.txt");
    RecordFile rf(AT_FDCWD, db, false);
    std::vector<Record> recs{rec("abc"), rec("17"), rec(""), rec("abc"), rec("bad/id"), rec("")};
    CHECK(append(rf, recs) == std::vector<int>{201, 201, 201, 409, 400, 201});
    CHECK(recs[2].id == "18");  // after the largest all-digit id, "abc" does not count
    CHECK(recs[5].id == "19");
    CHECK(ids_in(db) == std::vector<std::string>{"abc", "17", "18", "19"});

    std::vector<Record> again{rec("17"), rec("x"), rec("x"), rec("")};
    CHECK(append(rf, again) == std::vector<int>{409, 201, 409, 201});  // in the file, in the batch
    CHECK(again[0].id == "17");
    CHECK(again[3].id == "20");

    // Only conflicts: nothing is written.
    std::string before = read_file(db);
    std::vector<Record> dups{rec("abc"), rec("x")};
    CHECK(append(rf, dups) == std::vector<int>{409, 409});
    CHECK(read_file(db) == before);

    // Leading zeros: "007" is 7 as a number, but its own id.
    std::vector<Record> z{rec("0099"), rec(""), rec("99")};
    CHECK(append(rf, z) == std::vector<int>{201, 201, 201});
    CHECK(z[1].id == "100");
}

TEST_CASE("RecordFile: get, put and remove", "[records]") {
    TempDir dir;
    std::string db = dir.file("database.txt");
    RecordFile rf(AT_FDCWD, db, false);
    Record out;
    CHECK(rf.get("1", out) == 404);  // no file yet
    CHECK(rf.remove("1") == 404);
    CHECK(access(db.c_str(), F_OK) != 0);  // neither created it

    std::vector<Record> recs{rec("", {{"name", "a"}}), rec("", {{"name", "b"}}), rec("", {{"name", "c"}})};
    REQUIRE(append(rf, recs) == std::vector<int>{201, 201, 201});

    CHECK(rf.get("2", out) == 200);
    CHECK(out.id == "2");
    CHECK(out.fields == FormFields{{"name", "b"}});
    CHECK(rf.get("9", out) == 404);
    CHECK(rf.get("../x", out) == 404);

    REQUIRE(chmod(db.c_str(), 0640) == 0);
    bool created = true;
    CHECK(rf.put(rec("2", {{"name", "B"}, {"email", "b@x"}}), created) == 204);
    CHECK_FALSE(created);
    CHECK(read_file(db) == "1 name=a\n2 name=B&email=b%40x\n3 name=c\n");  // in place
    struct stat st;
    REQUIRE(stat(db.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0640);  // the replacement keeps the permissions

    CHECK(rf.put(rec("zed", {{"k", "v"}}), created) == 201);
    CHECK(created);
    CHECK(read_file(db) == "1 name=a\n2 name=B&email=b%40x\n3 name=c\nzed k=v\n");
    CHECK(rf.put(rec("bad id"), created) == 400);

    CHECK(rf.remove("1") == 204);
    CHECK(rf.remove("1") == 404);
    CHECK(rf.remove("..") == 404);
    CHECK(read_file(db) == "2 name=B&email=b%40x\n3 name=c\nzed k=v\n");
    CHECK(rf.get("1", out) == 404);
    CHECK(tmp_files_in(dir.path) == 0);

    // Removing the largest number frees it; the index follows the rewrite.
    CHECK(rf.remove("3") == 204);
    Record r = rec("");
    CHECK(append_one(rf, r) == 201);
    CHECK(r.id == "3");
    CHECK(rf.indexed() == 3);

    // A line that does not parse (edited by hand) is kept, and its id taken.
    {
        std::ofstream o(db, std::ios::binary | std::ios::app);
        o << "77 not a form\n";
    }
    CHECK(rf.get("77", out) == 500);
    Record dup = rec("77");
    CHECK(append_one(rf, dup) == 409);
    CHECK(rf.remove("zed") == 204);
    CHECK(read_file(db).find("77 not a form\n") != std::string::npos);
}

TEST_CASE("RecordFile: numeric ids have a range, auto ids always work", "[records][ids]") {
    TempDir dir;
    std::string db = dir.file("database.txt");
    // A hand edit put a 64-digit id in the file: it stays a record, but
    // auto-numbering skips it.
    write_file(db, std::string(64, '9') + " a=1\n5 b=1\n");
    RecordFile rf(AT_FDCWD, db, false);
    Record out;
    CHECK(rf.get(std::string(64, '9'), out) == 200);
    Record r = rec("");
    CHECK(append_one(rf, r) == 201);
    CHECK(r.id == "6");

    // Numbers are below 10^18 (leading zeros aside): beyond is a 400.
    Record zeros = rec("000000999999999999999998");  // 18 digits after the zeros
    CHECK(append_one(rf, zeros) == 201);
    Record big = rec("1000000000000000000");
    CHECK(append_one(rf, big) == 400);
    bool created = false;
    CHECK(rf.put(rec("1000000000000000000", {{"a", "1"}}), created) == 400);

    // The largest number taken: auto ids go on with the smallest free one,
    // never 507.
    Record last = rec("999999999999999999");
    CHECK(append_one(rf, last) == 201);
    std::vector<Record> more{rec(""), rec(""), rec("")};
    CHECK(append(rf, more) == std::vector<int>{201, 201, 201});
    CHECK(more[0].id == "1");
    CHECK(more[1].id == "2");
    CHECK(more[2].id == "3");
    RecordFile fresh(AT_FDCWD, db, false);  // the same from a rescan
    Record next = rec("");
    CHECK(append_one(fresh, next) == 201);
    CHECK(next.id == "4");
    Record after = rec("");
    CHECK(append_one(fresh, after) == 201);
    CHECK(after.id == "7");  // 5 and 6 are taken
}

TEST_CASE("RecordFile: a path beneath the served root", "[records]") {
    TempDir dir;
    REQUIRE(mkdir(dir.file("root").c_str(), 0755) == 0);
    REQUIRE(mkdir(dir.file("root/sub").c_str(), 0755) == 0);
    int root = open(dir.file("root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(root >= 0);

    RecordFile rf(root, "database.txt", true);
    Record r = rec("", {{"a", "1"}});
    CHECK(append_one(rf, r) == 201);
    bool created = false;
    CHECK(rf.put(rec("p", {{"b", "2"}}), created) == 201);
    CHECK(read_file(dir.file("root/database.txt")) == "1 a=1\np b=2\n");

    RecordFile nested(root, "sub/db.txt", true);
    CHECK(nested.put(rec("q"), created) == 201);
    CHECK(read_file(dir.file("root/sub/db.txt")) == "q \n");
    CHECK(tmp_files_in(dir.file("root/sub")) == 0);

    // Neither ".." nor a symlink leads out of the root.
    RecordFile up(root, "../escape.txt", true);
    Record e = rec("");
    CHECK(append_one(up, e) == 500);
    CHECK(access(dir.file("escape.txt").c_str(), F_OK) != 0);
    REQUIRE(symlink(dir.file("outside.txt").c_str(), dir.file("root/link.txt").c_str()) == 0);
    RecordFile link(root, "link.txt", true);
    CHECK(append_one(link, e) == 500);
    CHECK(link.put(rec("x"), created) == 500);
    CHECK(access(dir.file("outside.txt").c_str(), F_OK) != 0);
    close(root);
}

namespace {

// A small file system that fills up: a 64 KiB tmpfs when this process may
// mount one (root on Linux), else RLIMIT_FSIZE (writes past it fail with
// EFBIG, which is also a 507). `how` is empty when neither works.
struct FullDisk {
    std::string dir;
    std::string how;
    bool mounted = false;
    bool limited = false;
    struct rlimit old_limit {};
    void (*old_handler)(int) = SIG_DFL;

    explicit FullDisk(const std::string& base) : dir(base + "/small") {
        REQUIRE(mkdir(dir.c_str(), 0755) == 0);
        if (mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=64k") == 0) {
            mounted = true;
            how = "tmpfs";
        } else if (getrlimit(RLIMIT_FSIZE, &old_limit) == 0) {
            struct rlimit lim = old_limit;
            lim.rlim_cur = 64 * 1024;
            old_handler = signal(SIGXFSZ, SIG_IGN);
            if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
                limited = true;
                how = "RLIMIT_FSIZE";
            } else {
                signal(SIGXFSZ, old_handler);
            }
        }
    }
    ~FullDisk() {
        if (mounted && umount(dir.c_str()) != 0) umount2(dir.c_str(), MNT_DETACH);
        if (limited) {
            setrlimit(RLIMIT_FSIZE, &old_limit);
            signal(SIGXFSZ, old_handler);
        }
    }
};

}  // namespace

TEST_CASE("RecordFile: a full disk answers 507 and leaves the file as it was", "[records]") {
    TempDir base;
    FullDisk disk(base.path);
    if (disk.how.empty()) {
        WARN("skipped: neither a tmpfs mount nor RLIMIT_FSIZE is available");
        return;
    }
    INFO("full disk by " << disk.how);
    std::string db = disk.dir + "/database.txt";
    RecordFile rf(AT_FDCWD, db, false);
    rf.set_limits(0, 0);  // what fills up here is the disk, not the store's caps
    std::vector<Record> recs{rec("", {{"a", "1"}}), rec("", {{"a", "2"}})};
    REQUIRE(append(rf, recs) == std::vector<int>{201, 201});
    const std::string before = read_file(db);

    // 100 KB of value does not fit: the whole batch fails, the partial write
    // is cut back, and the ids asked for are not handed out.
    std::string big(100 * 1024, 'x');
    std::vector<Record> fat{rec("", {{"a", "3"}}), rec("", {{"big", big}}), rec("1"), rec("named")};
    CHECK(append(rf, fat) == std::vector<int>{507, 507, 409, 507});
    CHECK(fat[0].id.empty());
    CHECK(fat[1].id.empty());
    CHECK(fat[3].id == "named");
    CHECK(read_file(db) == before);

    bool created = false;
    CHECK(rf.put(rec("1", {{"big", big}}), created) == 507);
    CHECK(rf.put(rec("new", {{"big", big}}), created) == 507);
    CHECK(read_file(db) == before);
    CHECK(tmp_files_in(disk.dir) == 0);

    // Still usable afterwards, and the failed ids were not consumed.
    Record r = rec("");
    CHECK(append_one(rf, r) == 201);
    CHECK(r.id == "3");
    Record named = rec("named");
    CHECK(append_one(rf, named) == 201);

    if (disk.mounted) {
        // Fill the rest of the disk: even a smaller rewrite cannot be written.
        std::string filler = disk.dir + "/filler";
        int fd = open(filler.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        REQUIRE(fd >= 0);
        std::string block(4096, 'f');
        while (write(fd, block.data(), block.size()) > 0) {
        }
        close(fd);
        const std::string full = read_file(db);
        CHECK(rf.remove("1") == 507);
        CHECK(rf.put(rec("2", {{"a", "x"}}), created) == 507);
        CHECK(read_file(db) == full);
        CHECK(tmp_files_in(disk.dir) == 0);
        REQUIRE(unlink(filler.c_str()) == 0);
        CHECK(rf.remove("1") == 204);
    }
}

namespace {

// A bounded wait for child processes: polls, and kills them at the deadline.
bool wait_children(std::vector<pid_t>& pids, std::vector<int>& statuses, std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    statuses.assign(pids.size(), -1);
    size_t left = pids.size();
    while (left > 0) {
        for (size_t i = 0; i < pids.size(); ++i) {
            if (statuses[i] != -1) continue;
            int st = 0;
            pid_t r = waitpid(pids[i], &st, WNOHANG);
            if (r == pids[i]) {
                statuses[i] = st;
                --left;
            }
        }
        if (left == 0) break;
        if (std::chrono::steady_clock::now() > deadline) {
            for (size_t i = 0; i < pids.size(); ++i) {
                if (statuses[i] != -1) continue;
                kill(pids[i], SIGKILL);
                waitpid(pids[i], &statuses[i], 0);
            }
            return false;
        }
        struct timespec ts {0, 2'000'000};  // a poll interval, not synchronisation
        nanosleep(&ts, nullptr);
    }
    return true;
}

}  // namespace

TEST_CASE("RecordFile: processes appending to one file get unique ids", "[records][processes]") {
    TempDir dir;
    std::string db = dir.file("database.txt");
    constexpr int kChildren = 4;
    constexpr int kPerChild = 500;

    std::vector<pid_t> pids;
    for (int c = 0; c < kChildren; ++c) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            // The child: its own RecordFile, batches of 1 to 13 records.
            int code = 0;
            try {
                RecordFile rf(AT_FDCWD, db, false);
                int seq = 0;
                for (int round = 0; seq < kPerChild; ++round) {
                    int n = std::min(1 + (round * 7 + c * 3) % 13, kPerChild - seq);
                    std::vector<RecordFile::Append> store(static_cast<size_t>(n));
                    std::vector<RecordFile::Append*> batch;
                    for (auto& a : store) {
                        a.rec.fields = {{"child", std::to_string(c)}, {"seq", std::to_string(seq++)},
                                        {"text", "line\nbreak & more"}};
                        batch.push_back(&a);
                    }
                    rf.append_batch(batch);
                    for (auto& a : store) {
                        if (a.status == 201) continue;
                        std::fprintf(stderr, "child %d: append answered %d\n", c, a.status);
                        code = 1;
                    }
                }
            } catch (...) {
                code = 2;
            }
            _exit(code);
        }
        pids.push_back(pid);
    }

    // Meanwhile this process rewrites the file with put() and remove().
    RecordFile rf(AT_FDCWD, db, false);
    for (int i = 0; i < 40; ++i) {
        bool created = false;
        CHECK(rf.put(rec("p" + std::to_string(i), {{"i", std::to_string(i)}}), created) == 201);
        if (i % 2 == 0) CHECK(rf.put(rec("p" + std::to_string(i), {{"i", "again"}}), created) == 204);
        if (i % 4 == 1) CHECK(rf.remove("p" + std::to_string(i)) == 204);
    }

    std::vector<int> statuses;
    REQUIRE(wait_children(pids, statuses, std::chrono::seconds(60)));
    for (int st : statuses) {
        CHECK(WIFEXITED(st));
        CHECK(WEXITSTATUS(st) == 0);
    }

    std::vector<Record> all = records_in(db);
    std::set<std::string> ids;
    std::map<std::string, std::set<std::string>> seqs;
    size_t numeric = 0;
    for (const Record& r : all) {
        CHECK(ids.insert(r.id).second);
        if (r.id[0] == 'p') continue;
        ++numeric;
        REQUIRE(r.fields.size() == 3);
        CHECK(r.fields[2].second == "line\nbreak & more");
        CHECK(seqs[r.fields[0].second].insert(r.fields[1].second).second);
    }
    CHECK(numeric == size_t{kChildren} * kPerChild);
    CHECK(all.size() == size_t{kChildren} * kPerChild + 30);
    for (int n = 1; n <= kChildren * kPerChild; ++n) CHECK(ids.count(std::to_string(n)) == 1);
    for (int c = 0; c < kChildren; ++c) CHECK(seqs[std::to_string(c)].size() == size_t{kPerChild});
    CHECK(tmp_files_in(dir.path) == 0);

    Record next = rec("");
    CHECK(append_one(rf, next) == 201);
    CHECK(next.id == std::to_string(kChildren * kPerChild + 1));
}
