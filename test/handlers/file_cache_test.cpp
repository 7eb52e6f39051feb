// FileCache's freshness rules (issue: performance): an entry is served
// until it is --cache-revalidate old, one request re-reads it from two
// thirds of the interval on, and a reader that started before a write
// never stores what it read.
#include <catch2/catch.hpp>

#include "handlers/file_cache.h"

using namespace uvh;

namespace {

constexpr uint64_t kInterval = 600;  // ms: re-read from 400, dropped at 600
const bool kNoVariants[CachedEntry::kVariants] = {true, false, false, false};

CachedRep rep(std::string content, std::string etag) {
    CachedRep r;
    r.content = std::move(content);
    r.etag = std::move(etag);
    return r;
}

}  // namespace

TEST_CASE("FileCache: fresh entries are hits until two thirds of the interval", "[cache]") {
    FileCache c(1 << 20, 64 * 1024, kInterval);
    c.store("/a", CachedEntry::kIdentity, rep("A1", "\"1\""), kNoVariants, c.generation(), 1000);
    REQUIRE(c.find("/a", 1000) != nullptr);
    REQUIRE(c.find("/a", 1399) != nullptr);
    CHECK(c.find("/a", 1399)->reps[CachedEntry::kIdentity].content == "A1");
    CHECK(c.find("/b", 1000) == nullptr);
}

TEST_CASE("FileCache: one request re-reads, the others are served meanwhile", "[cache]") {
    FileCache c(1 << 20, 64 * 1024, kInterval);
    c.store("/a", CachedEntry::kIdentity, rep("A1", "\"1\""), kNoVariants, c.generation(), 1000);
    uint64_t misses = c.misses();
    CHECK(c.find("/a", 1400) == nullptr);  // this one reads the file again
    CHECK(c.misses() == misses + 1);
    for (uint64_t t : {1400, 1450, 1599}) {  // the others: still the entry
        INFO(t);
        REQUIRE(c.find("/a", t) != nullptr);
    }
    // The re-read lands: a new entry, fresh from its own load time.
    c.store("/a", CachedEntry::kIdentity, rep("A2", "\"2\""), kNoVariants, c.generation(), 1500);
    CachedEntry* e = c.find("/a", 1899);
    REQUIRE(e != nullptr);
    CHECK(e->reps[CachedEntry::kIdentity].content == "A2");
    CHECK(e->reps[CachedEntry::kIdentity].etag == "\"2\"");
    CHECK_FALSE(e->revalidating);
}

TEST_CASE("FileCache: an entry not re-read in time is dropped at the interval", "[cache]") {
    FileCache c(1 << 20, 64 * 1024, kInterval);
    c.store("/a", CachedEntry::kIdentity, rep("A1", "\"1\""), kNoVariants, c.generation(), 1000);
    CHECK(c.find("/a", 1400) == nullptr);  // the re-read starts and never stores (say the file went away)
    CHECK(c.find("/a", 1500) != nullptr);
    CHECK(c.find("/a", 1600) == nullptr);  // a change by another program shows within the interval
    CHECK(c.entries() == 0);
    CHECK(c.find("/a", 1601) == nullptr);
}

TEST_CASE("FileCache: a re-read replaces the variants read before it", "[cache]") {
    FileCache c(1 << 20, 64 * 1024, kInterval);
    const bool gz[CachedEntry::kVariants] = {true, true, false, false};
    c.store("/a", CachedEntry::kIdentity, rep("A1", "\"1\""), gz, c.generation(), 1000);
    c.store("/a", CachedEntry::kGzip, rep("gz1", "\"g1\""), gz, c.generation(), 1000);
    CHECK(c.find("/a", 1450) == nullptr);  // re-read starts
    c.store("/a", CachedEntry::kIdentity, rep("A2", "\"2\""), gz, c.generation(), 1450);
    CachedEntry* e = c.find("/a", 1460);
    REQUIRE(e != nullptr);
    CHECK(e->reps[CachedEntry::kIdentity].content == "A2");
    CHECK_FALSE(e->reps[CachedEntry::kGzip].present);  // the old gzip bytes are not kept beside new identity bytes
}

TEST_CASE("FileCache: a reader that started before a write does not store", "[cache]") {
    FileCache c(1 << 20, 64 * 1024, kInterval);
    uint64_t gen = c.generation();
    c.invalidate_file("/a");  // a PUT acknowledged while the read was in flight
    c.store("/a", CachedEntry::kIdentity, rep("old", "\"0\""), kNoVariants, gen, 1000);
    CHECK(c.find("/a", 1000) == nullptr);
    c.store("/a", CachedEntry::kIdentity, rep("new", "\"1\""), kNoVariants, c.generation(), 1000);
    REQUIRE(c.find("/a", 1000) != nullptr);
    c.invalidate_file("/a");
    CHECK(c.find("/a", 1000) == nullptr);
}
