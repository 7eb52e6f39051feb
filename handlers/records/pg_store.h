// PgStore: the record store in PostgreSQL (--records CONNINFO), for several
// uvhttpd instances on several machines sharing one set of records. The
// same RecordBackend as the file store, so handlers/records.cpp does not
// know which one it talks to. The SQL (schema, version, functions) is in
// pg_schema.h; GET /database.txt reads through PgCursor (pg_cursor.h).
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "handlers/records/record_backend.h"

namespace uvh {

class Metrics;

// A small pool of libpq connections driven from the loop thread without
// ever blocking it: PQconnectStartParams/PQconnectPoll to connect,
// PQsetnonblocking, PQsendQueryParams and PQflush to send, PQconsumeInput
// and PQgetResult to read, each connection's socket watched by a uv_poll_t
// (recreated at every connect step, because libpq may move to another
// socket while it tries the addresses of a host). Parameters are always
// bound, never spliced into SQL text.
//
// Group commit comes from the database: every connection has
// synchronous_commit on, so an answer of 201 means the row's commit record
// is flushed; appends queued while the connections are busy go together as
// one statement (one transaction, one WAL flush) on the next free
// connection, and the connections' commits share WAL flushes among
// themselves and with other instances.
//
// Faults: while no connection is up, every operation answers 503 with
// retry_after_s set; an operation whose connection breaks mid-way answers
// 503 (it was not acknowledged, so nothing acknowledged is lost; an append
// may or may not have committed). Each connection reconnects by itself
// with exponential backoff (100 ms doubling to 2 s). Deadlocks between
// batches of two instances (explicit ids in opposite orders) are retried.
class PgStore final : public RecordBackend {
public:
    struct Options {
        std::string conninfo;
        int pool = 4;
        uint64_t max_record = 64 * 1024;  // a record's line, newline included (413 beyond)
        // --max-store-size: the sum of the records' lines, as the file
        // store's file would be (507 with store_full beyond); 0: none.
        uint64_t max_store = 0;
        Metrics* metrics = nullptr;
    };

    // Whether libpq accepts the connection string (at start-up, for a
    // clear error before anything runs).
    static bool check_conninfo(const std::string& conninfo, std::string& error);

    PgStore(uv_loop_t* loop, Options options);
    // Only after close() has called back.
    ~PgStore() override;
    PgStore(const PgStore&) = delete;
    PgStore& operator=(const PgStore&) = delete;

    // Starts connecting every connection of the pool.
    void start();

    void submit(Op* op) override;
    void close(std::function<void()> closed) override;
    bool available() const override { return up_ > 0; }
    bool renders_listing() const override { return true; }
    std::unique_ptr<RecordCursor> open_cursor() override;

    static constexpr uint64_t kConnectTimeoutMs = 5000;
    static constexpr uint64_t kQueryTimeoutMs = 30000;
    static constexpr uint64_t kBackoffMinMs = 100;
    static constexpr uint64_t kBackoffMaxMs = 2000;
    static constexpr size_t kMaxBatch = 256;

private:
    struct Conn;
    friend struct Conn;

    void dispatch();
    void finish_soon(Op* op, int status);
    void fail_queued();
    uint32_t retry_after() const;
    void maybe_closed();
    void conn_up(Conn& c);
    void conn_down(Conn& c, bool was_up);
    static void on_defer(uv_timer_t* t);

    uv_loop_t* loop_;
    Options opt_;
    std::vector<std::unique_ptr<Conn>> conns_;
    std::deque<Op*> queue_;
    int up_ = 0;
    bool schema_ready_ = false;
    bool closing_ = false;
    bool outage_logged_ = false;
    bool ever_up_ = false;
    std::function<void()> closed_;
    int handles_open_ = 0;

    // Answers that must not run inside submit(): delivered from a 0 ms timer.
    uv_timer_t defer_ {};
    std::vector<Op*> deferred_;
    std::vector<Op*> deferred_running_;
};

}  // namespace uvh
