// Tests for the pure parts of handlers/compress/disk_cache.cpp: entry
// names are keys and nothing else is taken for one; the trailer is
// accepted only whole, for its own name and the file's real size. (The
// cache itself, with the server around it, is test/e2e/test_compression.py.)
#include "handlers/compress/disk_cache.h"

#include <catch2/catch.hpp>

#include <string>

using namespace uvh;

TEST_CASE("disk cache entry names are their keys", "[disk_cache]") {
    DiskKey k{0xfe00, 0xac8100, 0x2bed71, 0x6b0ab3c5, 0x278957f6, Coding::Br, 5};
    std::string name = disk_entry_name(k);
    CHECK(name == "c-fe00-ac8100-2bed71-6b0ab3c5-278957f6-br5");
    CHECK(is_entry_name(name));
    DiskKey other = k;
    other.mtime_ns += 1;  // an edit in the same second is another version
    CHECK(disk_entry_name(other) != name);
    other = k;
    other.level = 6;
    CHECK(disk_entry_name(other) != name);
    CHECK(is_entry_name("c-0-0-0-0-0-zstd19"));
    for (const char* foreign : {"notes.txt", "c-not-an-entry", "c-fe00-ac8100-2bed71-6b0ab3c5-br5",
                                "c-fe00-ac8100-2bed71-6b0ab3c5-278957f6-lzma5", "c-FE00-1-1-1-1-br5",
                                "c-fe00-ac8100-2bed71-6b0ab3c5-278957f6-br", "c-1-1-1-1-1-br123",
                                ".uvhttpd-tmp-0123456789abcdef", "c-11111111111111111-1-1-1-1-br5"})
        CHECK_FALSE(is_entry_name(foreign));
}

TEST_CASE("disk cache trailers are accepted only whole and for their own entry", "[disk_cache]") {
    std::string name = "c-1-2-3-4-5-gzip6";
    std::string t = disk_trailer(1000, name);
    REQUIRE(t.size() == kDiskTrailer);
    CHECK(t.back() == '\n');
    uint64_t len = 0;
    CHECK(check_disk_trailer(t, name, 1000 + kDiskTrailer, len));
    CHECK(len == 1000);
    CHECK_FALSE(check_disk_trailer(t, name, 999 + kDiskTrailer, len));   // truncated
    CHECK_FALSE(check_disk_trailer(t, name, 1001 + kDiskTrailer, len));  // grown
    CHECK_FALSE(check_disk_trailer(t, "c-1-2-3-4-6-gzip6", 1000 + kDiskTrailer, len));  // another entry's
    std::string edited = t;
    edited[3] = 'X';
    CHECK_FALSE(check_disk_trailer(edited, name, 1000 + kDiskTrailer, len));
    CHECK_FALSE(check_disk_trailer(t.substr(1), name, 1000 + kDiskTrailer, len));
    CHECK_FALSE(check_disk_trailer(std::string(kDiskTrailer, ' '), name, 1000 + kDiskTrailer, len));
}
