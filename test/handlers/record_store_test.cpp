// Tests for handlers/records/record_store.cpp: the record line format, RecordFile on
// real files in a mkdtemp directory (several processes sharing one file, a
// full disk), and RecordStore's group commit on a real uv_loop_t.
#include "handlers/records/record_store.h"

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

using namespace uvh;
using namespace std::string_literals;
using namespace std::string_view_literals;

namespace {

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/uvh-records-XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string file(std::string_view name) const { return path + "/" + std::string(name); }
};

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_file(const std::string& path, std::string_view content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    REQUIRE(out.good());
}

std::vector<std::string> lines_of(std::string_view content) {
    std::vector<std::string> lines;
    size_t start = 0, nl;
    while ((nl = content.find('\n', start)) != std::string_view::npos) {
        lines.emplace_back(content.substr(start, nl - start));
        start = nl + 1;
    }
    return lines;
}

// Every line of the file, parsed; fails the test on a line that does not.
std::vector<Record> records_in(const std::string& path) {
    std::string content = read_file(path);
    CHECK((content.empty() || content.back() == '\n'));
    std::vector<Record> out;
    for (const std::string& line : lines_of(content)) {
        Record r;
        INFO("line: " << line);
        CHECK(parse_record_line(line, r));
        out.push_back(std::move(r));
    }
    return out;
}

std::vector<std::string> ids_in(const std::string& path) {
    std::vector<std::string> ids;
    for (Record& r : records_in(path)) ids.push_back(std::move(r.id));
    return ids;
}

Record rec(std::string id, FormFields fields = {}) { return Record{std::move(id), std::move(fields)}; }

// Appends the records as one batch; returns the statuses and fills in ids.
std::vector<int> append(RecordFile& rf, std::vector<Record>& recs) {
    std::vector<RecordFile::Append> store(recs.size());
    std::vector<RecordFile::Append*> batch;
    for (size_t i = 0; i < recs.size(); ++i) {
        store[i].rec = recs[i];
        batch.push_back(&store[i]);
    }
    rf.append_batch(batch);
    std::vector<int> statuses;
    for (size_t i = 0; i < recs.size(); ++i) {
        recs[i].id = store[i].rec.id;
        statuses.push_back(store[i].status);
    }
    return statuses;
}

int append_one(RecordFile& rf, Record& r) {
    std::vector<Record> v{r};
    int status = append(rf, v)[0];
    r = v[0];
    return status;
}

size_t tmp_files_in(const std::string& dir) {
    size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().filename().string().rfind(".uvhttpd-tmp-", 0) == 0) ++n;
    return n;
}

}  // namespace

// ------------------------------------------------------------ record lines

TEST_CASE("records: format_record_line", "[records]") {
    CHECK(format_record_line(rec("17", {{"mis", "17"}, {"name", "Akshay"}, {"email", "akshay@gmail.com"}})) ==
          "17 mis=17&name=Akshay&email=akshay%40gmail.com\n");
    CHECK(format_record_line(rec("a", {})) == "a \n");
    CHECK(format_record_line(rec("x", {{"", ""}})) == "x =\n");
    CHECK(format_record_line(rec("x", {{"a b", "c+d"}})) == "x a+b=c%2Bd\n");
}

TEST_CASE("records: every byte round-trips through a line", "[records]") {
    std::string all;
    for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
    Record r = rec("x.y-z_1", {{"nl", "a\nb"},
                              {"crlf", "a\r\nb"},
                              {"amp&eq=", "&=&"},
                              {"plus", "1+1 = 2"},
                              {"pct", "100%25 %"},
                              {"spaces", "  lead and trail  "},
                              {"utf8", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x8a"},
                              {"nul", "a\0b"s},
                              {"\0name\n"s, "v"},
                              {"all", all},
                              {"empty", ""},
                              {"", "no name"}});
    std::string line = format_record_line(r);
    REQUIRE(line.back() == '\n');
    CHECK(line.find('\n') == line.size() - 1);  // exactly one line
    CHECK(line.find('\r') == std::string::npos);
    Record back;
    REQUIRE(parse_record_line(std::string_view(line).substr(0, line.size() - 1), back));
    CHECK(back.id == r.id);
    CHECK(back.fields == r.fields);
}

TEST_CASE("records: valid_record_id", "[records]") {
    struct {
        std::string id;
        bool valid;
    } const cases[] = {
        {"", false},
        {"1", true},
        {"17", true},
        {"abc", true},
        {"x.y-z_1", true},
        {std::string(64, 'a'), true},
        {std::string(65, 'a'), false},
        {"a/b", false},
        {"a b", false},
        {"..", false},
        {".", false},
        {"...", true},
        {".hidden", true},
        {"a%20b", false},
        {"a+b", false},
        {"a\nb", false},
        {"\0"s, false},
        {"caf\xc3\xa9", false},
        {"~x", false},
    };
    for (const auto& c : cases) {
        INFO("[" << c.id << "]");
        CHECK(valid_record_id(c.id) == c.valid);
    }
}

TEST_CASE("records: parse_record_line", "[records]") {
    Record r;
    REQUIRE(parse_record_line("17 mis=17&name=Akshay&email=akshay%40gmail.com", r));
    CHECK(r.id == "17");
    CHECK(r.fields == FormFields{{"mis", "17"}, {"name", "Akshay"}, {"email", "akshay@gmail.com"}});
    REQUIRE(parse_record_line("a ", r));
    CHECK(r.id == "a");
    CHECK(r.fields.empty());
    REQUIRE(parse_record_line("a =", r));
    CHECK(r.fields == FormFields{{"", ""}});

    for (std::string_view bad : {
             ""sv, "17"sv, " a=1"sv, "17name=a"sv, "a/b x=1"sv, ".. x=1"sv, "17  a=1"sv,
             "17 a=1&&b=2"sv, "17 a=1&"sv, "17 &a=1"sv, "17 a"sv, "17 a=1&b"sv, "17 a=%zz"sv,
             "17 a=%4"sv, "17 a=b c"sv, "17 a=1\r"sv, "17 a=\xc3\xa9"sv, "17 a=1\0"sv, "17 a=(x)"sv,
         }) {
        INFO("[" << bad << "]");
        Record out;
        CHECK_FALSE(parse_record_line(bad, out));
    }
}

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

// ------------------------------------------------------------ RecordStore

namespace {

// One loop per test; the destructor insists that nothing was left on it.
struct Loop {
    uv_loop_t loop {};
    Loop() { REQUIRE(uv_loop_init(&loop) == 0); }
    ~Loop() { CHECK(uv_loop_close(&loop) == 0); }

    // Runs the loop until pred() or the deadline. A repeating timer wakes it
    // so the deadline is checked even if nothing else happens.
    bool spin(const std::function<bool()>& pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
        uv_timer_t tick;
        uv_timer_init(&loop, &tick);
        uv_timer_start(&tick, [](uv_timer_t*) {}, 5, 5);
        auto deadline = std::chrono::steady_clock::now() + limit;
        bool ok;
        while (!(ok = pred()) && std::chrono::steady_clock::now() < deadline) uv_run(&loop, UV_RUN_ONCE);
        uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
        uv_run(&loop, UV_RUN_NOWAIT);
        return ok;
    }
};

struct Recorder {
    std::vector<int> order;         // op indexes in completion order
    bool in_submit = false;
    bool synchronous_done = false;  // a done() ran inside submit()
    std::function<void(RecordStore::Op&)> extra;
};

struct Harness {
    Loop loop;
    TempDir dir;
    std::string db = dir.file("database.txt");
    RecordStore store;
    explicit Harness(uint64_t gather_ms = RecordStore::kGatherMs)
        : store(&loop.loop, std::make_unique<RecordFile>(AT_FDCWD, db, false), gather_ms) {}
    Recorder rec;
    std::vector<std::unique_ptr<RecordStore::Op>> ops;

    RecordStore::Op* make(RecordStore::Op::Kind kind, Record r = {}) {
        auto op = std::make_unique<RecordStore::Op>();
        op->kind = kind;
        op->rec = std::move(r);
        op->ctx = this;
        op->done = [](RecordStore::Op& o) {
            auto* h = static_cast<Harness*>(o.ctx);
            if (h->rec.in_submit) h->rec.synchronous_done = true;
            for (size_t i = 0; i < h->ops.size(); ++i)
                if (h->ops[i].get() == &o) h->rec.order.push_back(static_cast<int>(i));
            if (h->rec.extra) h->rec.extra(o);
        };
        ops.push_back(std::move(op));
        return ops.back().get();
    }
    void submit(RecordStore::Op* op) {
        rec.in_submit = true;
        store.submit(op);
        rec.in_submit = false;
    }
    bool wait_all() {
        return loop.spin([&] { return rec.order.size() == ops.size(); });
    }
    // Closes the store and waits for it, so that ~Loop finds nothing left.
    void finish() {
        bool closed = false;
        store.close([&] { closed = true; });
        CHECK_FALSE(closed);
        CHECK(loop.spin([&] { return closed; }));
    }
};

std::vector<int> iota_vec(int n) {
    std::vector<int> v;
    for (int i = 0; i < n; ++i) v.push_back(i);
    return v;
}

}  // namespace

TEST_CASE("RecordStore: 200 appends at once share a couple of fdatasyncs", "[records][store]") {
    Harness h;
    for (int i = 0; i < 200; ++i) h.make(RecordStore::Op::Kind::Append, rec("", {{"i", std::to_string(i)}}));
    for (auto& op : h.ops) h.submit(op.get());
    REQUIRE(h.wait_all());
    CHECK_FALSE(h.rec.synchronous_done);
    CHECK(h.rec.order == iota_vec(200));  // done() in submission order
    for (size_t i = 0; i < h.ops.size(); ++i) {
        INFO(i);
        CHECK(h.ops[i]->status == 201);
        CHECK(h.ops[i]->rec.id == std::to_string(i + 1));  // ids in submission order too
    }
    // The first submit starts a job with itself; the other 199 wait for it
    // and go together in the second.
    CHECK(h.store.batches() <= 2);
    CHECK(h.store.jobs() <= 2);
    CHECK(h.store.appended() == 200);
    CHECK(lines_of(read_file(h.db)).size() == 200);
    h.finish();
}

TEST_CASE("RecordStore: ops that arrive during a job go together into the next", "[records][store]") {
    Harness h;
    auto* a = h.make(RecordStore::Op::Kind::Append, rec("a"));
    auto* b = h.make(RecordStore::Op::Kind::Append, rec("b"));
    auto* c = h.make(RecordStore::Op::Kind::Append, rec(""));
    RecordStore::Op* d = nullptr;
    // An op submitted from a done() callback joins the ops already waiting.
    h.rec.extra = [&](RecordStore::Op& o) {
        if (&o != a) return;
        d = h.make(RecordStore::Op::Kind::Append, rec(""));
        h.submit(d);
    };
    h.submit(a);  // starts job 1 at once
    CHECK(h.store.jobs() == 1);
    h.submit(b);  // job 1 is in flight: these wait
    h.submit(c);
    CHECK(h.store.jobs() == 1);
    REQUIRE(h.wait_all());
    CHECK_FALSE(h.rec.synchronous_done);
    CHECK(h.rec.order == std::vector<int>{0, 1, 2, 3});
    CHECK(h.store.jobs() == 2);
    CHECK(h.store.batches() == 2);  // {a}, then {b, c, d} with one fdatasync
    CHECK(c->rec.id == "1");
    REQUIRE(d != nullptr);
    CHECK(d->rec.id == "2");
    CHECK(ids_in(h.db) == std::vector<std::string>{"a", "b", "1", "2"});
    h.finish();
}

TEST_CASE("RecordStore: after a batch of N the next job gathers N ops", "[records][store]") {
    using K = RecordStore::Op::Kind;
    Harness h(60'000);  // a gathering time no loaded machine reaches: only the count decides
    for (int i = 0; i < 5; ++i) h.submit(h.make(K::Append, rec("")));
    REQUIRE(h.wait_all());  // {1}, then {2, 3, 4, 5}
    REQUIRE(h.store.batches() == 2);
    // The four clients come back one by one, each in its own loop pass:
    // they share one job instead of the first running alone.
    for (int i = 0; i < 4; ++i) {
        h.submit(h.make(K::Append, rec("")));
        uv_run(&h.loop.loop, UV_RUN_NOWAIT);
    }
    REQUIRE(h.wait_all());
    CHECK(h.store.batches() == 3);
    h.finish();
}

TEST_CASE("RecordStore: a gathering job starts anyway after the gathering time", "[records][store]") {
    using K = RecordStore::Op::Kind;
    Harness h;  // 1 ms
    for (int i = 0; i < 5; ++i) h.submit(h.make(K::Append, rec("")));
    REQUIRE(h.wait_all());
    // Only one of the four comes back: it still runs, after at most the
    // gathering time (wait_all is bounded).
    auto* lone = h.make(K::Append, rec(""));
    h.submit(lone);
    REQUIRE(h.wait_all());
    CHECK(lone->status == 201);
    CHECK(lone->rec.id == "6");
    // And a lone client after a lone job never waits for a timer: its job
    // is queued inside submit().
    uint64_t jobs = h.store.jobs();
    h.submit(h.make(K::Append, rec("")));
    CHECK(h.store.jobs() == jobs + 1);
    REQUIRE(h.wait_all());
    h.finish();
}

TEST_CASE("RecordStore: close while gathering runs the waiting ops and then closes", "[records][store]") {
    using K = RecordStore::Op::Kind;
    Harness h;
    for (int i = 0; i < 3; ++i) h.submit(h.make(K::Append, rec("")));
    REQUIRE(h.wait_all());
    auto* waiting = h.make(K::Append, rec(""));
    h.submit(waiting);  // gathering: expects 2
    CHECK(waiting->status == 0);
    h.finish();
    CHECK(waiting->status == 201);
    CHECK(lines_of(read_file(h.db)).size() == 4);
}

TEST_CASE("RecordStore: mixed writes run in arrival order", "[records][store]") {
    using K = RecordStore::Op::Kind;
    Harness h;
    auto* first = h.make(K::Append, rec("", {{"n", "first"}}));
    auto* ax = h.make(K::Append, rec("x", {{"v", "1"}}));
    auto* px = h.make(K::Put, rec("x", {{"v", "2"}}));
    auto* ax2 = h.make(K::Append, rec("x"));
    auto* pn = h.make(K::Put, rec("n", {{"v", "new"}}));
    auto* dx = h.make(K::Delete, rec("x"));
    auto* dx2 = h.make(K::Delete, rec("x"));
    auto* a1 = h.make(K::Append, rec(""));
    auto* a2 = h.make(K::Append, rec(""));
    for (auto& op : h.ops) h.submit(op.get());
    REQUIRE(h.wait_all());
    CHECK(h.rec.order == iota_vec(static_cast<int>(h.ops.size())));
    CHECK(first->status == 201);
    CHECK(ax->status == 201);
    CHECK(px->status == 204);
    CHECK_FALSE(px->created);
    CHECK(ax2->status == 409);
    CHECK(pn->status == 201);
    CHECK(pn->created);
    CHECK(dx->status == 204);
    CHECK(dx2->status == 404);
    CHECK(a1->status == 201);
    CHECK(a1->rec.id == "2");
    CHECK(a2->rec.id == "3");
    // {first} | {ax} put {ax2} put delete delete {a1, a2}
    CHECK(h.store.batches() == 4);
    CHECK(h.store.appended() == 4);
    CHECK(read_file(h.db) == "1 n=first\nn v=new\n2 \n3 \n");
    h.finish();
}

TEST_CASE("RecordStore: a GET does not wait behind a write", "[records][store][index]") {
    using K = RecordStore::Op::Kind;
    Harness h;
    write_file(h.db, "1 a=1\n");
    // Another process holds the store's lock: the append blocks on it.
    int other = open(h.db.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(other >= 0);
    REQUIRE(flock(other, LOCK_EX) == 0);
    auto* a = h.make(K::Append, rec("", {{"b", "2"}}));
    auto* g = h.make(K::Get, rec("1"));
    h.submit(a);
    h.submit(g);
    bool got = h.loop.spin([&] { return h.rec.order.size() == 1; }, std::chrono::seconds(5));
    CHECK(got);
    CHECK(h.rec.order == std::vector<int>{1});  // the GET, while the append still waits
    CHECK(g->status == 200);
    CHECK(g->rec.fields == FormFields{{"a", "1"}});
    flock(other, LOCK_UN);
    close(other);
    REQUIRE(h.wait_all());
    CHECK(a->status == 201);
    CHECK(a->rec.id == "2");
    h.finish();
}

TEST_CASE("RecordStore: GETs run beside appends, puts and deletes", "[records][store][index]") {
    using K = RecordStore::Op::Kind;
    Harness h;
    std::string seed;
    for (int i = 1; i <= 50; ++i) seed += std::to_string(i) + " v=" + std::to_string(i) + "\n";
    write_file(h.db, seed);
    std::vector<RecordStore::Op*> gets;
    for (int round = 0; round < 4; ++round) {
        for (int i = 0; i < 20; ++i) h.make(K::Append, rec("", {{"n", std::to_string(i)}}));
        h.make(K::Put, rec(std::to_string(round + 1), {{"v", "p"}}));
        h.make(K::Delete, rec(std::to_string(round + 11)));
        for (int i = 21; i <= 40; ++i) gets.push_back(h.make(K::Get, rec(std::to_string(i))));
    }
    for (auto& op : h.ops) h.submit(op.get());
    REQUIRE(h.wait_all());
    for (RecordStore::Op* g : gets) {
        INFO(g->rec.id);
        CHECK(g->status == 200);  // records no write touched, whatever ran first
        CHECK(g->rec.fields == FormFields{{"v", g->rec.id}});
    }
    CHECK(h.store.appended() == 80);
    CHECK(lines_of(read_file(h.db)).size() == 50 + 80 - 4);
    h.finish();
}

TEST_CASE("RecordStore: close waits for work in flight, then refuses", "[records][store]") {
    Harness h;
    for (int i = 0; i < 5; ++i) h.submit(h.make(RecordStore::Op::Kind::Append, rec("")));
    bool closed = false;
    size_t done_when_closed = 0;
    h.store.close([&] {
        closed = true;
        done_when_closed = h.rec.order.size();
    });
    CHECK_FALSE(closed);
    auto* late = h.make(RecordStore::Op::Kind::Append, rec(""));
    h.submit(late);  // after close(): refused, but still asynchronously
    CHECK(late->status == 503);
    REQUIRE(h.loop.spin([&] { return closed && h.rec.order.size() == h.ops.size(); }));
    CHECK_FALSE(h.rec.synchronous_done);
    CHECK(done_when_closed == h.ops.size());
    CHECK(late->status == 503);
    CHECK(lines_of(read_file(h.db)).size() == 5);

    // Closed already: another op is still answered, and `closed` is not
    // called twice.
    auto* later = h.make(RecordStore::Op::Kind::Get, rec("1"));
    h.submit(later);
    REQUIRE(h.wait_all());
    CHECK(later->status == 503);
}

TEST_CASE("RecordStore: close() when idle calls back later, not inside", "[records][store]") {
    Loop loop;
    TempDir dir;
    RecordStore store(&loop.loop, std::make_unique<RecordFile>(AT_FDCWD, dir.file("db"), false));
    bool closed = false;
    store.close([&] { closed = true; });
    CHECK_FALSE(closed);
    CHECK(loop.spin([&] { return closed; }));
}

// Not run by default (hidden tag): `handlers_tests "[.bench]"` prints the
// record rate for 64-record batches on the disk under /tmp, both straight
// through RecordFile and through RecordStore with 64 ops outstanding.
TEST_CASE("RecordStore: bench, 64 concurrent appends", "[.bench]") {
    using clock = std::chrono::steady_clock;
    constexpr int kTotal = 64 * 200;
    for (int per_batch : {1, 64}) {
        TempDir dir;
        RecordFile rf(AT_FDCWD, dir.file("database.txt"), false);
        int total = per_batch == 1 ? 1000 : kTotal;
        auto t0 = clock::now();
        for (int b = 0; b < total / per_batch; ++b) {
            std::vector<RecordFile::Append> store(static_cast<size_t>(per_batch));
            std::vector<RecordFile::Append*> batch;
            for (auto& a : store) {
                a.rec.fields = {{"mis", "17"}, {"name", "Akshay"}, {"email", "akshay@gmail.com"}};
                batch.push_back(&a);
            }
            rf.append_batch(batch);
            for (auto& a : store) REQUIRE(a.status == 201);
        }
        double s = std::chrono::duration<double>(clock::now() - t0).count();
        std::printf("RecordFile::append_batch, %d per batch: %d records in %.3f s = %.0f records/s "
                    "(%.3f ms per batch)\n",
                    per_batch, total, s, total / s, s * 1000 / (total / per_batch));
    }
    for (bool next_iteration : {false, true}) {
        // next_iteration: done() does not resubmit at once but on the next
        // loop iteration, as a client's next request would arrive: then the
        // first op after an idle moment starts a job alone.
        Harness h;
        uv_timer_t later;
        uv_timer_init(&h.loop.loop, &later);
        std::vector<RecordStore::Op*> pending;
        int submitted = 0;
        int completed = 0;
        std::vector<RecordStore::Op> ops(64);
        struct Ctx {
            Harness* h;
            int* submitted;
            int* completed;
            bool next_iteration;
            uv_timer_t* later;
            std::vector<RecordStore::Op*>* pending;
        } ctx{&h, &submitted, &completed, next_iteration, &later, &pending};
        later.data = &ctx;
        for (auto& op : ops) {
            op.ctx = &ctx;
            op.done = [](RecordStore::Op& o) {
                auto* c = static_cast<Ctx*>(o.ctx);
                ++*c->completed;
                if (o.status != 201) std::abort();
                if (*c->submitted < kTotal) {
                    ++*c->submitted;
                    o.rec = rec("", {{"mis", "17"}, {"name", "Akshay"}, {"email", "akshay@gmail.com"}});
                    if (!c->next_iteration) return c->h->store.submit(&o);
                    c->pending->push_back(&o);
                    uv_timer_start(c->later, [](uv_timer_t* t) {
                        auto* cc = static_cast<Ctx*>(t->data);
                        for (RecordStore::Op* p : *cc->pending) cc->h->store.submit(p);
                        cc->pending->clear();
                    }, 0, 0);
                }
            };
        }
        auto t0 = clock::now();
        for (auto& op : ops) {
            ++submitted;
            op.rec = rec("", {{"mis", "17"}, {"name", "Akshay"}, {"email", "akshay@gmail.com"}});
            h.store.submit(&op);
        }
        REQUIRE(h.loop.spin([&] { return completed == kTotal; }, std::chrono::seconds(120)));
        double s = std::chrono::duration<double>(clock::now() - t0).count();
        std::printf("RecordStore, 64 ops outstanding, resubmitted %s: %d records in %.3f s = %.0f "
                    "records/s, %llu batches (%.1f records per fdatasync)\n",
                    next_iteration ? "on the next loop iteration" : "inside done()", kTotal, s, kTotal / s,
                    static_cast<unsigned long long>(h.store.batches()),
                    double(kTotal) / double(h.store.batches()));
        uv_close(reinterpret_cast<uv_handle_t*>(&later), nullptr);
        h.finish();
    }
}
