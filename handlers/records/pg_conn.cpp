#include "handlers/records/pg_conn.h"

#include <algorithm>
#include <cstdlib>
#include <random>

#include <fmt/format.h>

#include "handlers/metrics.h"
#include "handlers/records/pg_schema.h"

namespace uvh {

namespace pg {

void log_line(const std::string& text) { fmt::print(stderr, "uvhttpd: records database: {}\n", text); }

std::string one_line(const char* msg) {
    std::string s = msg ? msg : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    std::replace(s.begin(), s.end(), '\n', ' ');
    return s;
}

}  // namespace pg

using pg::log_line;
using pg::one_line;

namespace {

// The SQLSTATEs that say "the database cannot serve now" rather than "this
// statement is wrong": connection exceptions (class 08), the server shutting
// down or starting (57P01-57P03), a standby that takes no writes (25006),
// too many connections (53300).
bool unavailable_state(std::string_view st) {
    return st.starts_with("08") || st == "57P01" || st == "57P02" || st == "57P03" || st == "25006" ||
           st == "53300";
}

// A deadlock (two instances' batches taking explicit ids in opposite
// orders) or a serialization failure: the transaction rolled back, nothing
// was stored, the same statement may simply run again.
bool retryable_state(std::string_view st) { return st == "40P01" || st == "40001"; }

}  // namespace

// ------------------------------------------------------------------ watches

void PgStore::Conn::unwatch() {
    if (!poll) return;
    uv_poll_stop(poll);
    uv_close(reinterpret_cast<uv_handle_t*>(poll), on_poll_closed);
    poll = nullptr;
    poll_events = 0;
}

// Watches libpq's current socket for `events`. While connecting the socket
// may change from one step to the next (another address of the host), so
// the handle is made afresh; closing the old one removes its descriptor from
// the loop's epoll set at once, before libpq may reuse the number.
void PgStore::Conn::watch(int events) {
    int fd = pg ? PQsocket(pg) : -1;
    if (fd < 0) return lost("no socket");
    if (poll && state != State::Connecting && poll_events == events) return;
    if (poll && state != State::Connecting) {
        poll_events = events;
        uv_poll_start(poll, events, on_poll);
        return;
    }
    unwatch();
    poll = new uv_poll_t;
    if (uv_poll_init(store->loop_, poll, fd) != 0) {
        delete poll;
        poll = nullptr;
        return lost("cannot watch the socket");
    }
    poll->data = this;
    poll_events = events;
    uv_poll_start(poll, events, on_poll);
}

// ------------------------------------------------------------------ connect

void PgStore::Conn::start_connect() {
    // The operator's connection string, expanded by libpq (URI or key=value;
    // PGPASSWORD, ~/.pgpass and the other PG* variables as libpq reads them);
    // uvhttpd only names itself for pg_stat_activity unless the string does.
    const char* keys[] = {"fallback_application_name", "dbname", nullptr};
    const char* vals[] = {"uvhttpd", store->opt_.conninfo.c_str(), nullptr};
    pg = PQconnectStartParams(keys, vals, 1);
    if (!pg) return lost("out of memory");
    // The server's notices (and a FATAL sent to an idle connection at
    // shutdown) would go to stderr raw; what matters is logged here, once.
    PQsetNoticeProcessor(pg, [](void*, const char*) {}, nullptr);
    if (PQstatus(pg) == CONNECTION_BAD) return lost(one_line(PQerrorMessage(pg)));
    state = State::Connecting;
    uv_timer_start(&timer, on_timer, kConnectTimeoutMs, 0);
    // The documented start: poll as if PQconnectPoll had asked for writing.
    watch(UV_WRITABLE);
}

void PgStore::Conn::connect_step(PostgresPollingStatusType st) {
    switch (st) {
    case PGRES_POLLING_READING: return watch(UV_READABLE);
    case PGRES_POLLING_WRITING: return watch(UV_WRITABLE);
    case PGRES_POLLING_FAILED: return lost(one_line(PQerrorMessage(pg)));
    case PGRES_POLLING_OK: break;
    default: return watch(UV_READABLE | UV_WRITABLE);
    }
    uv_timer_stop(&timer);
    if (PQsetnonblocking(pg, 1) != 0) return lost(one_line(PQerrorMessage(pg)));
    state = State::Initialising;
    unwatch();  // a handle of its own for the connected socket
    send(Query::Setup);
}

// -------------------------------------------------------------------- query

void PgStore::Conn::send(Query q) {
    query = q;
    sqlstate.clear();
    error.clear();
    failed = false;
    got_result = false;
    rows.clear();
    affected.clear();
    schema_version = 0;
    int ok = 0;
    full.clear();
    const char* params[3] = {param0.c_str(), param1.c_str(), param2.c_str()};
    switch (q) {
    case Query::Setup:
        ok = PQsendQuery(pg, store->schema_ready_ ? pg_sql::kSession : pg_sql::kSetup);
        break;
    case Query::Append: ok = PQsendQueryParams(pg, pg_sql::kAppend, 2, nullptr, params, nullptr, nullptr, 0); break;
    case Query::Put: ok = PQsendQueryParams(pg, pg_sql::kPut, 3, nullptr, params, nullptr, nullptr, 0); break;
    case Query::Get: ok = PQsendQueryParams(pg, pg_sql::kGet, 1, nullptr, params, nullptr, nullptr, 0); break;
    case Query::Delete: ok = PQsendQueryParams(pg, pg_sql::kDelete, 1, nullptr, params, nullptr, nullptr, 0); break;
    case Query::None: break;
    }
    if (!ok) return lost(one_line(PQerrorMessage(pg)));
    sent_ms = uv_now(store->loop_);
    uv_timer_start(&timer, on_timer, kQueryTimeoutMs, 0);
    flush_and_watch();
}

// Non-blocking libpq may keep part of a query in its buffer: PQflush until
// it is out, watching for writability meanwhile (and always for input,
// which must be consumed for the server to go on reading).
void PgStore::Conn::flush_and_watch() {
    int r = PQflush(pg);
    if (r < 0) return lost(one_line(PQerrorMessage(pg)));
    watch(r == 1 ? (UV_READABLE | UV_WRITABLE) : UV_READABLE);
}

void PgStore::Conn::on_readable() {
    if (!PQconsumeInput(pg)) return lost(one_line(PQerrorMessage(pg)));
    if (state == State::Idle) {
        // Nothing was asked: a notice, or the server saying goodbye (the
        // end of the stream shows as a failed PQconsumeInput next time).
        while (PGnotify* n = PQnotifies(pg)) PQfreemem(n);
        if (PQstatus(pg) == CONNECTION_BAD) lost("the connection closed");
        return;
    }
    while (!PQisBusy(pg)) {
        PGresult* res = PQgetResult(pg);
        if (!res) return query_done();
        take_result(res);
        PQclear(res);
    }
}

void PgStore::Conn::take_result(PGresult* res) {
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR || st == PGRES_BAD_RESPONSE) {
        if (!failed) {
            failed = true;
            const char* s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            sqlstate = s ? s : "";
            error = one_line(PQresultErrorMessage(res));
        }
        return;
    }
    if (failed) return;
    got_result = true;
    switch (query) {
    case Query::Setup:
        if (st == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
            schema_version = std::atoi(PQgetvalue(res, 0, 0));
        break;
    case Query::Append:
        for (int i = 0; i < PQntuples(res); ++i) {
            rows.emplace_back(PQgetisnull(res, i, 1) != 0, PQgetvalue(res, i, 1));
            full.push_back(std::string_view(PQgetvalue(res, i, 2)) == "t");
        }
        break;
    case Query::Put:
    case Query::Get:
        for (int i = 0; i < PQntuples(res); ++i)
            rows.emplace_back(PQgetisnull(res, i, 0) != 0, PQgetvalue(res, i, 0));
        break;
    case Query::Delete: affected = PQcmdTuples(res); break;
    case Query::None: break;
    }
}

// The last result of the statement is in: answer its operations.
void PgStore::Conn::query_done() {
    uv_timer_stop(&timer);
    PgStore& s = *store;
    if (s.opt_.metrics && query != Query::Setup) s.opt_.metrics->db_roundtrip((uv_now(s.loop_) - sent_ms) * 1000);
    if (PQstatus(pg) == CONNECTION_BAD || (failed && unavailable_state(sqlstate)))
        return lost(error.empty() ? "the connection broke" : error);

    if (query == Query::Setup) {
        query = Query::None;
        if (failed) {
            return lost(fmt::format("cannot create the schema: {}", error));
        }
        if (!s.schema_ready_) {
            if (schema_version != pg_sql::kSchemaVersion)
                return lost(fmt::format("the schema is version {}; this uvhttpd knows version {}", schema_version,
                                        pg_sql::kSchemaVersion));
            s.schema_ready_ = true;
        }
        state = State::Idle;
        s.conn_up(*this);
        return;
    }

    if (failed && retryable_state(sqlstate) && ++attempts < 5) return send(query);

    std::vector<Op*> finished;
    finished.swap(ops);
    if (failed) {
        // 53100 disk_full: the database's disk; anything else is ours or the
        // DBA's to look at, so it is logged with PostgreSQL's own words.
        int status = sqlstate == "53100" ? 507 : 500;
        if (status == 500) log_line(fmt::format("{} ({})", error, sqlstate));
        for (Op* op : finished) op->status = status;
    } else {
        switch (query) {
        case Query::Append:
            if (rows.size() != finished.size()) {
                log_line("the append function answered a different number of rows");
                for (Op* op : finished) op->status = 500;
                break;
            }
            for (size_t i = 0; i < finished.size(); ++i) {
                if (full[i]) {
                    finished[i]->status = 507;  // --max-store-size
                    finished[i]->store_full = true;
                } else if (rows[i].first) {
                    finished[i]->status = 409;
                } else {
                    finished[i]->status = 201;
                    finished[i]->rec.id = rows[i].second;
                }
            }
            break;
        case Query::Put: {
            Op* op = finished.front();
            if (rows.size() != 1 || rows[0].first) {
                op->status = 500;
            } else if (rows[0].second == "full") {
                op->status = 507;  // --max-store-size
                op->store_full = true;
            } else {
                op->created = rows[0].second == "created";
                op->status = op->created ? 201 : 204;
            }
            break;
        }
        case Query::Get: {
            Op* op = finished.front();
            if (rows.empty()) {
                op->status = 404;
            } else {
                Record r;
                std::string line = op->rec.id + " " + rows[0].second;
                if (parse_record_line(line, r)) {
                    op->rec.fields = std::move(r.fields);
                    op->status = 200;
                } else {
                    log_line(fmt::format("record {} does not parse", op->rec.id));
                    op->status = 500;
                }
            }
            break;
        }
        case Query::Delete: finished.front()->status = affected == "0" ? 404 : 204; break;
        default: break;
        }
    }
    query = Query::None;
    state = State::Idle;
    if (s.opt_.metrics) --s.opt_.metrics->db_pool_in_use;
    for (Op* op : finished)
        if (op->done) op->done(*op);  // may submit more, and may free op
    s.dispatch();
    s.maybe_closed();
}

// ------------------------------------------------------------------- faults

// The connection is unusable: its operation (if any) answers 503, the
// connection is dropped and tried again after a backoff.
void PgStore::Conn::lost(const std::string& why) {
    PgStore& s = *store;
    bool was_up = state == State::Idle || state == State::Busy;
    bool was_busy = state == State::Busy;
    uv_timer_stop(&timer);
    unwatch();
    if (pg) PQfinish(pg);
    pg = nullptr;
    query = Query::None;
    std::vector<Op*> cut;
    cut.swap(ops);
    state = s.closing_ ? State::Closed : State::Down;
    if (was_busy && s.opt_.metrics) --s.opt_.metrics->db_pool_in_use;
    if (!s.closing_) {
        // One line per connection lost, and the first failure of an outage;
        // the retries while it lasts are quiet.
        if (was_up || !s.outage_logged_) log_line(why);
        schedule_reconnect();
    }
    s.conn_down(*this, was_up);
    uint32_t retry = s.retry_after();
    for (Op* op : cut) {
        op->status = 503;
        op->retry_after_s = retry;
    }
    for (Op* op : cut)
        if (op->done) op->done(*op);
    s.maybe_closed();
}

void PgStore::Conn::schedule_reconnect() {
    backoff_ms = backoff_ms == 0 ? kBackoffMinMs : std::min(backoff_ms * 2, kBackoffMaxMs);
    // Some jitter, so that the connections of many instances do not all
    // knock at the same moment after an outage.
    static thread_local std::minstd_rand rng(std::random_device{}());
    uint64_t wait = backoff_ms / 2 + rng() % (backoff_ms / 2 + 1);
    next_attempt_ms = uv_now(store->loop_) + wait;
    uv_timer_start(&timer, on_timer, wait, 0);
}

void PgStore::Conn::on_timer(uv_timer_t* t) {
    auto* c = static_cast<Conn*>(t->data);
    switch (c->state) {
    case State::Down: return c->start_connect();
    case State::Connecting: return c->lost("connecting timed out");
    case State::Initialising:
    case State::Busy: return c->lost("no answer in time; dropping the connection");
    default: return;
    }
}

void PgStore::Conn::on_poll(uv_poll_t* h, int status, int events) {
    auto* c = static_cast<Conn*>(h->data);
    if (status < 0) {
        // libuv reports POLLERR (a reset, a refused connect) as UV_EBADF and
        // stops the handle: let libpq read the socket and say what happened.
        c->unwatch();
        if (c->state == State::Connecting) return c->connect_step(PQconnectPoll(c->pg));
        if (!PQconsumeInput(c->pg)) return c->lost(one_line(PQerrorMessage(c->pg)));
        return c->lost(fmt::format("socket error ({})", uv_strerror(status)));
    }
    if (c->state == State::Connecting) return c->connect_step(PQconnectPoll(c->pg));
    if (events & UV_WRITABLE) {
        c->flush_and_watch();
        if (!c->pg) return;  // lost
    }
    if (events & UV_READABLE) c->on_readable();
}

}  // namespace uvh
