// One connection of PgStore's pool (pg_store.h), the part that talks to
// libpq: connect step by step, send a statement, read its results, turn
// them into the operations' answers, and fall back to a backoff when the
// connection is lost. Private to pg_store.cpp and pg_conn.cpp.
#pragma once

#include <libpq-fe.h>
#include <uv.h>

#include <string>
#include <utility>
#include <vector>

#include "handlers/records/pg_store.h"

namespace uvh {

namespace pg {

// One line on stderr, prefixed "uvhttpd: records database:".
void log_line(const std::string& text);
// libpq's multi-line messages as one line.
std::string one_line(const char* msg);

}  // namespace pg

// One pooled connection. Lives in conns_ for the store's lifetime; its
// timer is a handle of the loop (closed in close()), its poll handle is
// heap-allocated and replaced whenever libpq changes sockets.
struct PgStore::Conn {
    enum class State { Down, Connecting, Initialising, Idle, Busy, Closed };

    PgStore* store = nullptr;
    State state = State::Down;
    PGconn* pg = nullptr;
    uv_poll_t* poll = nullptr;
    int poll_events = 0;
    uv_timer_t timer {};  // backoff, connect and query deadlines
    uint64_t backoff_ms = 0;
    uint64_t next_attempt_ms = 0;
    bool ever_up = false;  // this connection was up before: a connect is a reconnect

    // The statement in flight.
    enum class Query { None, Setup, Append, Get, Put, Delete } query = Query::None;
    std::vector<Op*> ops;
    std::string param0, param1, param2;
    int attempts = 0;
    uint64_t sent_ms = 0;
    // Its results as they come.
    std::string sqlstate;
    std::string error;
    bool failed = false;
    bool got_result = false;
    int schema_version = 0;
    std::vector<std::pair<bool, std::string>> rows;  // (null, value) of the id column (Append) or the first
    std::vector<bool> full;                          // Append: o_full of each row
    std::string affected;

    void watch(int events);
    void unwatch();
    void start_connect();
    void connect_step(PostgresPollingStatusType st);
    void send(Query q);
    void flush_and_watch();
    void on_readable();
    void take_result(PGresult* res);
    void query_done();
    void lost(const std::string& why);
    void schedule_reconnect();

    static void on_poll(uv_poll_t* h, int status, int events);
    static void on_poll_closed(uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); }
    static void on_timer(uv_timer_t* t);
};

}  // namespace uvh
