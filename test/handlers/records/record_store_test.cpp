// Tests for handlers/records/record_store.cpp: RecordStore's group commit on a
// real uv_loop_t over a RecordFile in a mkdtemp directory.
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

#include "test/handlers/records/record_test_util.h"

using namespace uvh;
using namespace std::string_literals;
using namespace std::string_view_literals;
using namespace uvh::rectest;

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

