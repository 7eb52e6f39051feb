// Tests for handlers/records/record_format.cpp: the record line format.
#include "handlers/records/record_format.h"

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
