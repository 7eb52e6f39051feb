// The fake Exchange's own checks, with toy handlers that keep or break the
// interface's contract (handlers/exchange.h): a fake that cannot see a
// leaked descriptor or a second response would pass the handler tests for
// the wrong reason.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "test/handlers/fake_exchange.h"

using namespace uvh;
using namespace uvh::test;

namespace {

std::string all_problems(const FakeExchange& ex) {
    std::string out;
    for (const std::string& p : ex.problems()) out += p + "\n";
    return out;
}

bool mentions(const FakeExchange& ex, std::string_view what) {
    for (const std::string& p : ex.problems())
        if (p.find(what) != std::string::npos) return true;
    return false;
}

// A source of unknown length: two memory pieces around a Work step, then a
// range of a file it owns.
class ToySource final : public BodySource {
public:
    explicit ToySource(int fd) : fd_(fd) {}
    BodyPiece next() override {
        switch (step_++) {
        case 0: return BodyPiece::mem("head|");
        case 1: return BodyPiece::work();
        case 2: return BodyPiece::mem(worked_ ? "worked|" : "lazy|");
        case 3: return BodyPiece::file(fd_, 2, 3);
        default: return BodyPiece::end();
        }
    }
    void work() override { worked_ = true; }
    int release_descriptor() override { return std::exchange(fd_, -1); }

private:
    int fd_;
    int step_ = 0;
    bool worked_ = false;
};

int open_file(FakeSite& s) {
    s.root().write("f.txt", "0123456789");
    return open(s.root().at("f.txt").c_str(), O_RDONLY | O_CLOEXEC);
}

// A job that opens a descriptor in work() and keeps it unless told.
struct ToyJob final : Job {
    FakeSite* site = nullptr;
    int fd = -1;
    bool hand_on = false;
    void work() override { fd = open_file(*site); }
    void done(Exchange& ex) override {
        if (hand_on) ex.close_later(std::exchange(fd, -1));
        respond_error(ex, 404, "toy");
    }
    bool holds_resources() const override { return fd >= 0; }
    void release() override {
        if (fd >= 0) close(fd);
        fd = -1;
    }
};

FakeSite* g_site = nullptr;  // for the plain-function handlers below

}  // namespace

TEST_CASE("fake exchange: a chunked source is drained, its descriptor closed", "[fake]") {
    FakeSite s;
    g_site = &s;
    FakeExchange ex(s, {"GET", "/x"});
    FakeResponse r = ex.run_unchecked([](Exchange& e) {
        auto& src = e.make_source<ToySource>(open_file(*g_site));
        ResponseHead h;
        h.content_type = "text/plain";
        h.content_length = ResponseHead::kUnknownLength;
        e.respond(h, Body::from(src));
    });
    INFO(all_problems(ex));
    CHECK(ex.problems().empty());
    CHECK(r.status == 200);
    CHECK(r.chunked);
    CHECK_FALSE(r.has("content-length"));
    CHECK(r.body == "head|worked|234");
    CHECK(ex.source_descriptors().size() == 1);
}

TEST_CASE("fake exchange: HEAD ends a source undrained and still closes its descriptor", "[fake]") {
    FakeSite s;
    g_site = &s;
    FakeExchange ex(s, {"HEAD", "/x"});
    FakeResponse r = ex.run_unchecked([](Exchange& e) {
        auto& src = e.make_source<ToySource>(open_file(*g_site));
        ResponseHead h;
        h.content_length = 10;
        e.respond(h, Body::from(src));
    });
    INFO(all_problems(ex));
    CHECK(ex.problems().empty());
    CHECK(r.body.empty());
    CHECK(r.header("content-length") == "10");
    CHECK(ex.source_descriptors().size() == 1);
}

TEST_CASE("fake exchange: a leaked descriptor, a second response and a missing response are problems", "[fake]") {
    FakeSite s;
    g_site = &s;
    SECTION("leak") {
        FakeExchange ex(s, {"GET", "/x"});
        ex.run_unchecked([](Exchange& e) {
            (void)open_file(*g_site);
            respond_error(e, 404);
        });
        CHECK(mentions(ex, "descriptor left open by the exchange"));
        // Found and reported; now close it, so the other tests start clean.
        for (int fd = 3; fd < 1024; ++fd) {
            char path[64], target[4096];
            snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
            ssize_t n = readlink(path, target, sizeof target - 1);
            if (n > 0 && std::string_view(target, static_cast<size_t>(n)) == s.root().at("f.txt")) close(fd);
        }
    }
    SECTION("twice") {
        FakeExchange ex(s, {"GET", "/x"});
        ex.run_unchecked([](Exchange& e) {
            respond_error(e, 404);
            respond_error(e, 500);
        });
        CHECK(mentions(ex, "more than once"));
    }
    SECTION("never") {
        FakeExchange ex(s, {"GET", "/x"});
        ex.run_unchecked([](Exchange&) {});
        CHECK(mentions(ex, "never responded"));
    }
    SECTION("a descriptor handed on that is not open") {
        FakeExchange ex(s, {"GET", "/x"});
        ex.run_unchecked([](Exchange& e) {
            e.close_later(999);
            respond_error(e, 404);
        });
        CHECK(mentions(ex, "was not open"));
    }
}

TEST_CASE("fake exchange: a job's work and done run off offload(), and what it keeps is released at the end",
          "[fake]") {
    FakeSite s;
    g_site = &s;
    SECTION("handed on") {
        FakeExchange ex(s, {"GET", "/x"});
        FakeResponse r = ex.run_unchecked([](Exchange& e) {
            auto& job = e.make_job<ToyJob>();
            job.site = g_site;
            job.hand_on = true;
            e.offload(job, JobClass::Quick);
        });
        INFO(all_problems(ex));
    CHECK(ex.problems().empty());
        CHECK(r.status == 404);
        CHECK(ex.offloads() == 1);
        CHECK(ex.closed_later().size() == 1);
        CHECK_FALSE(ex.job_released_at_end());
    }
    SECTION("kept: released as core would") {
        FakeExchange ex(s, {"GET", "/x"});
        ex.run_unchecked([](Exchange& e) {
            auto& job = e.make_job<ToyJob>();
            job.site = g_site;
            e.offload(job, JobClass::Quick);
        });
        INFO(all_problems(ex));
    CHECK(ex.problems().empty());
        CHECK(ex.job_released_at_end());
    }
}

TEST_CASE("fake exchange: a body comes in pieces no larger than the reader's chunk", "[fake]") {
    FakeSite s;
    static std::vector<std::string> seen;
    seen.clear();
    FakeExchange ex(s, {"PUT", "/x", {}, {"abcdefg", "hi"}});
    ex.run_unchecked([](Exchange& e) {
        BodyReader r;
        r.chunk = 3;
        r.data = [](Exchange& ex2, std::string_view piece) {
            seen.emplace_back(piece);
            ex2.body_consumed();
        };
        r.end = [](Exchange& ex2) {
            ResponseHead h;
            h.status = 204;
            ex2.respond(h, Body::none());
        };
        e.read_body(r);
    });
    INFO(all_problems(ex));
    CHECK(ex.problems().empty());
    CHECK(seen == std::vector<std::string>{"abc", "def", "g", "hi"});
    CHECK(ex.body_ended());
    CHECK(ex.request().content_length == 9);
}
