// Tests for handlers/records/record_index.cpp: RecordFile's id index follows
// the file and makes a GET one pread.
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

// ------------------------------------------------------------- the index

TEST_CASE("RecordFile: the index follows a file written by someone else", "[records]") {
    TempDir dir;
    std::string db = dir.file("database.txt");
    write_file(db, "3 a=1\n17 a=2\nabc a=3\n00000000000000000000000000000099 a=4\n");
    RecordFile rf(AT_FDCWD, db, false);
    Record r = rec("");
    CHECK(append_one(rf, r) == 201);
    CHECK(r.id == "100");  // larger than any 64-bit number would need: compared as digits

    // A second writer (another process, here a second RecordFile) appends;
    // the first sees its ids on its next operation.
    RecordFile other(AT_FDCWD, db, false);
    std::vector<Record> recs{rec(""), rec("mine")};
    CHECK(append(other, recs) == std::vector<int>{201, 201});
    CHECK(recs[0].id == "101");
    Record dup = rec("mine");
    CHECK(append_one(rf, dup) == 409);
    Record next = rec("");
    CHECK(append_one(rf, next) == 201);
    CHECK(next.id == "102");

    // Replaced by hand (a new inode): everything is rescanned.
    write_file(dir.file("new.txt"), "5 a=1\n");
    REQUIRE(rename(dir.file("new.txt").c_str(), db.c_str()) == 0);
    Record after = rec("");
    CHECK(append_one(rf, after) == 201);
    CHECK(after.id == "6");
    Record mine = rec("mine");
    CHECK(append_one(rf, mine) == 201);  // gone with the old file
}

namespace {
// Bytes this process read with read(2)/pread(2) so far (/proc/self/io
// rchar); -1 where the kernel does not say.
long long bytes_read() {
    std::ifstream in("/proc/self/io");
    std::string key;
    long long value;
    while (in >> key >> value)
        if (key == "rchar:") return value;
    return -1;
}
}  // namespace

TEST_CASE("RecordFile: a GET is one pread of its line, and the index follows the file", "[records][index]") {
    TempDir dir;
    std::string db = dir.file("database.txt");
    {
        std::string big;
        for (int i = 1; i <= 200000; ++i) big += std::to_string(i) + " name=" + std::string(90, 'x') + "\n";
        write_file(db, big);  // about 20 MB
    }
    RecordFile rf(AT_FDCWD, db, false);
    Record out;
    CHECK(rf.get("1", out) == 200);  // builds the index: reads everything once
    long long before = bytes_read();
    CHECK(rf.get("150000", out) == 200);
    CHECK(out.fields == FormFields{{"name", std::string(90, 'x')}});
    CHECK(rf.get("nope", out) == 404);
    long long after = bytes_read();
    if (before >= 0) {
        INFO("bytes read for two GETs: " << after - before);
        CHECK(after - before < 8192);
    }

    // Another writer appends: found by reading only the new tail.
    RecordFile other(AT_FDCWD, db, false);
    Record n = rec("new", {{"k", "v"}});
    REQUIRE(append_one(other, n) == 201);
    before = bytes_read();
    CHECK(rf.get("new", out) == 200);
    CHECK(out.fields == FormFields{{"k", "v"}});
    if (before >= 0) CHECK(bytes_read() - before < 8192);
    // A hand edit appends a line too.
    {
        std::ofstream o(db, std::ios::binary | std::ios::app);
        o << "hand h=1\r\n";
    }
    CHECK(rf.get("hand", out) == 200);

    // Replaced (a new inode): rebuilt.
    write_file(dir.file("new.txt"), "5 a=1\n");
    REQUIRE(rename(dir.file("new.txt").c_str(), db.c_str()) == 0);
    CHECK(rf.get("1", out) == 404);
    CHECK(rf.get("5", out) == 200);
    // Shrunk in place (same inode): rebuilt.
    write_file(db, "7 z=1\n");
    CHECK(rf.get("5", out) == 404);
    CHECK(rf.get("7", out) == 200);
    CHECK(out.fields == FormFields{{"z", "1"}});
    // Removed: 404, and nothing is created.
    REQUIRE(unlink(db.c_str()) == 0);
    CHECK(rf.get("7", out) == 404);
    CHECK(access(db.c_str(), F_OK) != 0);
}
