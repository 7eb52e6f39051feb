// Tests for handlers/records/record_recovery.cpp: a torn last line is set
// aside, CRLF line endings parse, ids on several lines are reported.
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


// The files a writable store moved an unterminated last line to:
// ".NAME.torn-YYYYmmddTHHMMSSZ" (maybe with "-N"), hidden and never served.
std::vector<std::string> torn_files(const std::string& dir, std::string_view db_name = "database.txt") {
    std::vector<std::string> out;
    std::string prefix = "." + std::string(db_name) + ".torn-";
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
}

// Everything this process writes to stderr (fd 2) while it lives.
struct StderrCapture {
    std::string path;
    int saved = -1;
    explicit StderrCapture(const TempDir& dir) : path(dir.path + "-stderr") {
        std::fflush(stderr);
        int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        REQUIRE(fd >= 0);
        saved = dup(2);
        REQUIRE(dup2(fd, 2) == 2);
        close(fd);
    }
    std::string text() {
        std::fflush(stderr);
        return read_file(path);
    }
    ~StderrCapture() {
        std::fflush(stderr);
        dup2(saved, 2);
        close(saved);
        unlink(path.c_str());
    }
};

TEST_CASE("RecordFile: an unterminated last line is moved aside, never dropped", "[records][torn]") {
    TempDir dir;
    std::string db = dir.file("database.txt");
    StderrCapture err(dir);

    SECTION("before an append") {
        write_file(db, "1 a=1\n2 a=2\n3 name=to");  // a crash in the middle of a write, or a hand edit
        RecordFile rf(AT_FDCWD, db, false);
        Record r = rec("", {{"name", "x"}});
        CHECK(append_one(rf, r) == 201);
        CHECK(r.id == "3");  // the unterminated line's id never counted
        CHECK(read_file(db) == "1 a=1\n2 a=2\n3 name=x\n");
        auto torn = torn_files(dir.path);
        REQUIRE(torn.size() == 1);
        CHECK(read_file(torn[0]) == "3 name=to");
        std::string log = err.text();
        CHECK(std::count(log.begin(), log.end(), '\n') == 1);
        CHECK(log.find("\"3 name=to\"") != std::string::npos);
        CHECK(log.find(std::filesystem::path(torn[0]).filename().string()) != std::string::npos);
    }
    SECTION("by recover(), once") {
        write_file(db, "1 a=1\n2 a=");
        RecordFile rf(AT_FDCWD, db, false);
        CHECK(rf.recover() == 0);
        CHECK(read_file(db) == "1 a=1\n");
        CHECK(rf.recover() == 0);
        CHECK(read_file(db) == "1 a=1\n");
        auto torn = torn_files(dir.path);
        REQUIRE(torn.size() == 1);
        CHECK(read_file(torn[0]) == "2 a=");
    }
    SECTION("a file that is only an unterminated line") {
        write_file(db, "1 a=1");
        RecordFile rf(AT_FDCWD, db, false);
        CHECK(rf.recover() == 0);
        CHECK(read_file(db).empty());
        auto torn = torn_files(dir.path);
        REQUIRE(torn.size() == 1);
        CHECK(read_file(torn[0]) == "1 a=1");
    }
    SECTION("two in the same second keep both") {
        write_file(db, "1 a=1\n2 first");
        RecordFile rf(AT_FDCWD, db, false);
        CHECK(rf.recover() == 0);
        {
            std::ofstream out(db, std::ios::binary | std::ios::app);
            out << "2 second";
        }
        CHECK(rf.recover() == 0);
        CHECK(read_file(db) == "1 a=1\n");
        auto torn = torn_files(dir.path);
        REQUIRE(torn.size() == 2);
        std::set<std::string> contents{read_file(torn[0]), read_file(torn[1])};
        CHECK(contents == std::set<std::string>{"2 first", "2 second"});
    }
    SECTION("after this process indexed the file") {
        RecordFile rf(AT_FDCWD, db, false);
        Record a = rec("");
        REQUIRE(append_one(rf, a) == 201);
        {
            std::ofstream out(db, std::ios::binary | std::ios::app);
            out << "9 name=z";  // appended by hand to a running server's file
        }
        Record b = rec("");
        CHECK(append_one(rf, b) == 201);
        CHECK(b.id == "2");
        CHECK(read_file(db) == "1 \n2 \n");
        auto torn = torn_files(dir.path);
        REQUIRE(torn.size() == 1);
        CHECK(read_file(torn[0]) == "9 name=z");
    }
    SECTION("by put() and remove(), and ignored by get()") {
        write_file(db, "1 a=1\n2 a=");
        RecordFile rf(AT_FDCWD, db, false);
        Record out;
        CHECK(rf.get("2", out) == 404);
        bool created = false;
        CHECK(rf.put(rec("1", {{"a", "9"}}), created) == 204);
        CHECK(read_file(db) == "1 a=9\n");
        {
            std::ofstream o(db, std::ios::binary | std::ios::app);
            o << "3 b=";
        }
        CHECK(rf.remove("1") == 204);
        CHECK(read_file(db).empty());
        auto torn = torn_files(dir.path);
        REQUIRE(torn.size() == 2);
        std::set<std::string> contents{read_file(torn[0]), read_file(torn[1])};
        CHECK(contents == std::set<std::string>{"2 a=", "3 b="});
    }
    SECTION("the log line is escaped and bounded, the file keeps every byte") {
        std::string tail = "5 \x01\xff\"\\" + std::string(10000, 'x');
        write_file(db, "1 a=1\n" + tail);
        RecordFile rf(AT_FDCWD, db, false);
        CHECK(rf.recover() == 0);
        auto torn = torn_files(dir.path);
        REQUIRE(torn.size() == 1);
        CHECK(read_file(torn[0]) == tail);
        std::string log = err.text();
        CHECK(std::count(log.begin(), log.end(), '\n') == 1);
        CHECK(log.size() < 600);
        CHECK(log.find("\"5 \\x01\\xff\\\"\\\\xxx") != std::string::npos);
        CHECK(log.find("10006 bytes") != std::string::npos);
    }
    SECTION("recover() without a file creates none") {
        RecordFile rf(AT_FDCWD, db, false);
        CHECK(rf.recover() == 0);
        CHECK(access(db.c_str(), F_OK) != 0);
        CHECK(torn_files(dir.path).empty());
    }
}

TEST_CASE("RecordFile: CRLF line endings parse", "[records][torn]") {
    TempDir dir;
    std::string db = dir.file("database.txt");
    write_file(db, "1 a=b\r\n2 c=d&e=f\r\n");
    RecordFile rf(AT_FDCWD, db, false);
    Record out;
    CHECK(rf.get("1", out) == 200);
    CHECK(out.fields == FormFields{{"a", "b"}});
    CHECK(rf.get("2", out) == 200);
    CHECK(out.fields == FormFields{{"c", "d"}, {"e", "f"}});
    Record r = rec("", {{"g", "h"}});
    CHECK(append_one(rf, r) == 201);
    CHECK(r.id == "3");
    Record dup = rec("2");
    CHECK(append_one(rf, dup) == 409);
    CHECK(read_file(db) == "1 a=b\r\n2 c=d&e=f\r\n3 g=h\n");
    bool created = true;
    CHECK(rf.put(rec("1", {{"a", "z"}}), created) == 204);
    CHECK(rf.get("1", out) == 200);
    CHECK(out.fields == FormFields{{"a", "z"}});
    CHECK(rf.get("2", out) == 200);
    CHECK(rf.remove("2") == 204);
    CHECK(rf.get("2", out) == 404);
    CHECK(rf.get("3", out) == 200);
    CHECK(torn_files(dir.path).empty());
}

TEST_CASE("RecordFile: lines sharing an id: the first wins, none is dropped", "[records][dups]") {
    TempDir dir;
    std::string db = dir.file("database.txt");
    write_file(db, "7 a=1\n8 b=1\n7 a=2\n9 c=1\n7 a=3\n");
    StderrCapture err(dir);
    RecordFile rf(AT_FDCWD, db, false);
    CHECK(rf.recover() == 0);
    std::string log = err.text();
    CHECK(std::count(log.begin(), log.end(), '\n') == 1);  // one line per duplicated id
    CHECK(log.find("id 7 is on 3 lines") != std::string::npos);
    CHECK(read_file(db) == "7 a=1\n8 b=1\n7 a=2\n9 c=1\n7 a=3\n");  // reporting changes nothing

    Record out;
    CHECK(rf.get("7", out) == 200);
    CHECK(out.fields == FormFields{{"a", "1"}});  // the first in file order, as the listing shows it
    bool created = true;
    CHECK(rf.put(rec("7", {{"a", "9"}}), created) == 204);
    CHECK_FALSE(created);
    CHECK(read_file(db) == "7 a=9\n8 b=1\n7 a=2\n9 c=1\n7 a=3\n");  // the others stay
    CHECK(rf.get("7", out) == 200);
    CHECK(out.fields == FormFields{{"a", "9"}});
    CHECK(rf.remove("7") == 204);  // the first one only: the next becomes the record
    CHECK(read_file(db) == "8 b=1\n7 a=2\n9 c=1\n7 a=3\n");
    CHECK(rf.get("7", out) == 200);
    CHECK(out.fields == FormFields{{"a", "2"}});
    Record dup = rec("7");
    CHECK(append_one(rf, dup) == 409);
}
