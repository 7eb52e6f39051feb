// Tests for handlers/compress/coding_cache.cpp: records, freshness, the
// negative cache of siblings, invalidation, the budget (LRU), and single
// flight (many waiters, one compression) on a real loop and threadpool.
#include "handlers/compress/coding_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

#include "protocol/etag.h"

using namespace uvh;

namespace {

constexpr uint64_t kInterval = 500;

FileFacts facts(std::string etag, uint64_t size = 5000) {
    FileFacts f;
    f.etag = std::move(etag);
    f.rel = "f.txt";
    f.size = size;
    f.content_type = "text/plain; charset=utf-8";
    return f;
}

// A minimal exchange: only hold() and release() are used by the cache.
class WaitingExchange final : public Exchange {
public:
    const Request& request() const override { std::abort(); }
    const Site& site() const override { std::abort(); }
    time_t now() const override { return 0; }
    uint64_t now_ms() const override { return 0; }
    std::string_view path() const override { return "/f.txt"; }
    const PeerAddress& client() const override { std::abort(); }
    std::string& text() override { return text_; }
    MultipartLayout& multipart() override { std::abort(); }
    void offload(Job&, JobClass) override { std::abort(); }
    void close_later(int) override {}
    void respond(const ResponseHead&, const Body&) override {}
    void read_body(const BodyReader&) override {}
    void body_consumed() override {}
    void discard_body() override {}
    void hold() override { ++holds; }
    void release(DoneFn done) override {
        --holds;
        ++released;
        done(*this);
    }
    int holds = 0, released = 0;

protected:
    JobSlot& job_slot() override { return jobs_; }
    SourceSlot& source_slot() override { return sources_; }

private:
    std::string text_;
    JobSlot jobs_;
    SourceSlot sources_;
};

int g_after_calls = 0;
void after(Exchange&) { ++g_after_calls; }

}  // namespace

TEST_CASE("CodingCache: a record is fresh within the interval, then re-verified without losing results", "[compress]") {
    uv_loop_t loop;
    uv_loop_init(&loop);
    {
        CodingCache c(&loop, AT_FDCWD, nullptr, {1 << 20, 1 << 20, kInterval, 1, kDefaultCachedLevels, ""});
        CHECK(c.find("/f.txt", 1000) == nullptr);
        PathRecord* r = c.verify("/f.txt", facts("\"1\""), c.generation(), 1000);
        REQUIRE(r);
        r->coded[1].state = CodedRep::State::Ready;  // as if compressed
        CHECK(c.find("/f.txt", 1100) == r);
        CHECK(c.find("/f.txt", 1400) == nullptr);  // the first past 2/3 re-verifies
        CHECK(c.find("/f.txt", 1410) == r);        // the others are still served
        CHECK(c.find("/f.txt", 1500) == nullptr);  // past the interval: not served
        r = c.verify("/f.txt", facts("\"1\""), c.generation(), 1500);
        REQUIRE(r);
        CHECK(r->coded[1].state == CodedRep::State::Ready);  // same version: kept
        r = c.verify("/f.txt", facts("\"2\""), c.generation(), 1600);
        CHECK(r->coded[1].state == CodedRep::State::None);  // a new version starts afresh
    }
    CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("CodingCache: sibling knowledge expires per coding (the negative cache)", "[compress]") {
    uv_loop_t loop;
    uv_loop_init(&loop);
    {
        CodingCache c(&loop, AT_FDCWD, nullptr, {1 << 20, 1 << 20, kInterval, 1, kDefaultCachedLevels, ""});
        FileFacts f = facts("\"1\"");
        f.siblings_absent = coding_bit(Coding::Br);
        PathRecord* r = c.verify("/f.txt", f, c.generation(), 1000);
        CHECK(r->known(1000, kInterval) == coding_bit(Coding::Br));
        f = facts("\"1\"");
        f.siblings_present = coding_bit(Coding::Gzip);  // a later job probed gzip only
        r = c.verify("/f.txt", f, c.generation(), 1300);
        CHECK(r->known(1300, kInterval) == (coding_bit(Coding::Br) | coding_bit(Coding::Gzip)));
        CHECK(r->sib_absent == coding_bit(Coding::Br));
        CHECK(r->known(1550, kInterval) == coding_bit(Coding::Gzip));  // br's probe is 550 ms old
    }
    CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("CodingCache: a write invalidates records and stops older facts from being recorded", "[compress]") {
    uv_loop_t loop;
    uv_loop_init(&loop);
    {
        CodingCache c(&loop, AT_FDCWD, nullptr, {1 << 20, 1 << 20, kInterval, 1, kDefaultCachedLevels, ""});
        uint64_t g = c.generation();
        c.verify("/d/index.html", facts("\"1\""), g, 1000);
        c.verify("/d/", facts("\"1\""), g, 1000);
        c.verify("/a.js", facts("\"1\""), g, 1000);
        c.invalidate_file("/d/index.html");
        CHECK(c.find("/d/index.html", 1001) == nullptr);
        CHECK(c.find("/d/", 1001) == nullptr);
        CHECK(c.find("/a.js", 1001) != nullptr);
        CHECK(c.verify("/d/", facts("\"1\""), g, 1002) == nullptr);  // read before the write
        c.invalidate_file("/a.js.zst");                               // a sibling changed
        CHECK(c.find("/a.js", 1003) == nullptr);
    }
    CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("CodingCache: many waiters, one compression, results within the budget", "[compress]") {
    char dir[] = "/tmp/uvh-coding-XXXXXX";
    REQUIRE(mkdtemp(dir));
    int root = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    std::string text;
    // Letters drawn at random compress to about 3/4: one result fits the
    // budget below, two do not.
    uint32_t x = 12345;
    for (int i = 0; i < 10000; ++i) {
        x = x * 1103515245u + 12345u;
        text.push_back(static_cast<char>('a' + (x >> 16) % 26));
    }
    for (const char* name : {"f.txt", "g.txt"}) {
        int fd = openat(root, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
        close(fd);
    }
    auto etag_of = [&](const char* name) {
        struct stat st {};
        REQUIRE(fstatat(root, name, &st, 0) == 0);
        return make_etag({static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_size), st.st_mtim.tv_sec,
                          st.st_mtim.tv_nsec});
    };
    uv_loop_t loop;
    uv_loop_init(&loop);
    {
        // A budget for one compressed file and a bit.
        CodingCache c(&loop, root, nullptr, {10000, 1 << 20, 1u << 30, 1, kDefaultCachedLevels, ""});
        FileFacts f = facts(etag_of("f.txt"), text.size());
        PathRecord* r = c.verify("/f.txt", f, c.generation(), 1000);
        REQUIRE(r);
        WaitingExchange ex[20];
        g_after_calls = 0;
        for (auto& e : ex) CHECK(c.get_or_wait(*r, "/f.txt", Coding::Br, e, after) == CodedRep::State::Pending);
        for (auto& e : ex) CHECK(e.holds == 1);
        while (c.running() > 0) uv_run(&loop, UV_RUN_ONCE);
        CHECK(g_after_calls == 20);
        for (auto& e : ex) CHECK(e.holds == 0);
        CHECK(c.compressions(Coding::Br) == 1);
        r = c.find("/f.txt", 1001);
        REQUIRE(r);
        CHECK(r->coded[2].state == CodedRep::State::Ready);
        CHECK(r->coded[2].etag == coded_etag(f.etag, Coding::Br, 11));
        CHECK(r->coded[2].fields.find("Content-Encoding: br\r\n") != std::string::npos);
        WaitingExchange late;
        CHECK(c.get_or_wait(*r, "/f.txt", Coding::Br, late, after) == CodedRep::State::Ready);
        CHECK(c.hits() == 1);
        CHECK(c.bytes() <= 10000);

        // A second file's result pushes the least recently used one out.
        PathRecord* g = c.verify("/g.txt", facts(etag_of("g.txt"), text.size()), c.generation(), 1002);
        REQUIRE(g);
        g->facts.rel = "g.txt";
        WaitingExchange w;
        c.get_or_wait(*g, "/g.txt", Coding::Br, w, after);
        while (c.running() > 0) uv_run(&loop, UV_RUN_ONCE);
        CHECK(c.bytes() <= 10000);
        CHECK(c.find("/f.txt", 1003) == nullptr);
        CHECK(c.find("/g.txt", 1003) != nullptr);

        // A file changed under the job: nothing is stored, identity is served.
        PathRecord* stale = c.verify("/f.txt", facts("\"not-the-version\"", text.size()), c.generation(), 1004);
        WaitingExchange s;
        c.get_or_wait(*stale, "/f.txt", Coding::Gzip, s, after);
        while (c.running() > 0) uv_run(&loop, UV_RUN_ONCE);
        CHECK(s.holds == 0);
        CHECK(c.find("/f.txt", 1005)->coded[1].state == CodedRep::State::Failed);
        CHECK(c.compressions(Coding::Gzip) == 0);
        bool closed = false;
        c.close([&] { closed = true; });
        CHECK(closed);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
    for (const char* name : {"f.txt", "g.txt"}) unlinkat(root, name, 0);
    close(root);
    rmdir(dir);
}

TEST_CASE("coded_etag: one strong tag per coding and level", "[compress]") {
    CHECK(coded_etag("\"a-b-c\"", Coding::Gzip, 9) == "\"a-b-c-gz9\"");
    CHECK(coded_etag("\"a-b-c\"", Coding::Br, 11) == "\"a-b-c-br11\"");
    CHECK(coded_etag("\"a-b-c\"", Coding::Zstd, 19) == "\"a-b-c-zst19\"");
}
