#include "handlers/records/pg_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

#include "handlers/metrics.h"
#include "handlers/records/pg_conn.h"
#include "handlers/records/pg_cursor.h"

namespace uvh {

using pg::log_line;
using pg::one_line;

// -------------------------------------------------------------------- store

bool PgStore::check_conninfo(const std::string& conninfo, std::string& error) {
    char* err = nullptr;
    PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
    if (!opts) {
        error = err ? one_line(err) : "out of memory";
        if (err) PQfreemem(err);
        return false;
    }
    PQconninfoFree(opts);
    return true;
}

PgStore::PgStore(uv_loop_t* loop, Options options) : loop_(loop), opt_(std::move(options)) {
    uv_timer_init(loop_, &defer_);
    defer_.data = this;
    ++handles_open_;
    for (int i = 0; i < opt_.pool; ++i) {
        auto c = std::make_unique<Conn>();
        c->store = this;
        uv_timer_init(loop_, &c->timer);
        c->timer.data = c.get();
        ++handles_open_;
        conns_.push_back(std::move(c));
    }
    if (Metrics* m = opt_.metrics) {
        m->records_db = true;
        m->db_pool_size = opt_.pool;
    }
}

PgStore::~PgStore() {
    if (handles_open_ != 0) {
        std::fputs("uvhttpd: PgStore destroyed before close() finished\n", stderr);
        std::abort();
    }
}

void PgStore::start() {
    for (auto& c : conns_) c->start_connect();
}

uint32_t PgStore::retry_after() const {
    // The soonest reconnection attempt, in whole seconds, at least 1.
    uint64_t now = uv_now(loop_), soonest = kBackoffMaxMs;
    for (const auto& c : conns_)
        if (c->state == Conn::State::Down && c->next_attempt_ms > now)
            soonest = std::min(soonest, c->next_attempt_ms - now);
    return static_cast<uint32_t>(std::max<uint64_t>(1, (soonest + 999) / 1000));
}

void PgStore::finish_soon(Op* op, int status) {
    op->status = status;
    if (status == 503 && !closing_) op->retry_after_s = retry_after();
    deferred_.push_back(op);
    uv_timer_start(&defer_, on_defer, 0, 0);
}

void PgStore::on_defer(uv_timer_t* t) {
    auto* s = static_cast<PgStore*>(t->data);
    s->deferred_running_.swap(s->deferred_);
    for (Op* op : s->deferred_running_)
        if (op->done) op->done(*op);
    s->deferred_running_.clear();
    s->maybe_closed();
}

void PgStore::submit(Op* op) {
    op->status = 0;
    op->created = false;
    op->store_full = false;
    op->retry_after_s = 0;
    op->started_ms = uv_now(loop_);
    if (closing_) return finish_soon(op, 503);
    if (!available()) return finish_soon(op, 503);
    if (op->kind == Op::Kind::Append || op->kind == Op::Kind::Put) {
        // The same record cap as the file store: the record's line.
        size_t line = format_record_line(op->rec).size();
        if (op->kind == Op::Kind::Append && op->rec.id.empty()) line += 1;  // room for a one-digit id at least
        if (opt_.max_record && line > opt_.max_record) return finish_soon(op, 413);
        if (!op->rec.id.empty() && !valid_record_id(op->rec.id)) return finish_soon(op, 400);
        if (!numeric_id_in_range(op->rec.id)) return finish_soon(op, 400);
    }
    queue_.push_back(op);
    dispatch();
}

// Hands queued operations to idle connections: all the queued appends (up
// to kMaxBatch) go as one statement, anything else alone.
void PgStore::dispatch() {
    while (!queue_.empty()) {
        Conn* idle = nullptr;
        for (auto& c : conns_)
            if (c->state == Conn::State::Idle) {
                idle = c.get();
                break;
            }
        if (!idle) return;
        Op* first = queue_.front();
        idle->ops.clear();
        idle->attempts = 0;
        Conn::Query q = Conn::Query::None;
        if (first->kind == Op::Kind::Append) {
            idle->param0.clear();
            for (auto it = queue_.begin(); it != queue_.end() && idle->ops.size() < kMaxBatch;) {
                if ((*it)->kind != Op::Kind::Append) {
                    ++it;
                    continue;
                }
                std::string line = format_record_line((*it)->rec);  // " fields\n" for "number it"
                idle->param0.append(line);
                idle->ops.push_back(*it);
                it = queue_.erase(it);
            }
            idle->param0.pop_back();  // the function splits on newlines: no empty last line
            idle->param1 = std::to_string(opt_.max_store);
            q = Conn::Query::Append;
        } else {
            queue_.pop_front();
            idle->ops.push_back(first);
            idle->param0 = first->rec.id;
            switch (first->kind) {
            case Op::Kind::Get: q = Conn::Query::Get; break;
            case Op::Kind::Delete: q = Conn::Query::Delete; break;
            case Op::Kind::Put: {
                q = Conn::Query::Put;
                std::string line = format_record_line(first->rec);
                idle->param1.assign(line, first->rec.id.size() + 1, line.size() - first->rec.id.size() - 2);
                idle->param2 = std::to_string(opt_.max_store);
                break;
            }
            default: break;
            }
        }
        idle->state = Conn::State::Busy;
        if (opt_.metrics) ++opt_.metrics->db_pool_in_use;
        idle->send(q);
    }
}

void PgStore::conn_up(Conn& c) {
    c.backoff_ms = 0;
    if (c.ever_up && opt_.metrics) ++opt_.metrics->db_reconnects;
    c.ever_up = true;
    bool was_unavailable = up_ == 0;
    ++up_;
    if (opt_.metrics) opt_.metrics->db_up = up_;
    if (was_unavailable && (outage_logged_ || !ever_up_)) log_line(ever_up_ ? "reachable again" : "connected");
    ever_up_ = true;
    outage_logged_ = false;
    dispatch();
    maybe_closed();
}

void PgStore::conn_down(Conn&, bool was_up) {
    if (was_up) --up_;
    if (opt_.metrics) opt_.metrics->db_up = up_;
    if (up_ == 0) {
        if (!outage_logged_ && !closing_) {
            log_line("unreachable: record requests answer 503 until it is back");
            outage_logged_ = true;
        }
        fail_queued();
    }
}

void PgStore::fail_queued() {
    while (!queue_.empty()) {
        Op* op = queue_.front();
        queue_.pop_front();
        finish_soon(op, 503);
    }
}

void PgStore::close(std::function<void()> closed) {
    if (closing_) return;
    closing_ = true;
    closed_ = std::move(closed);
    fail_queued();
    // Idle and connecting connections go now; a busy one finishes its
    // statement first (query_done() calls maybe_closed()).
    for (auto& c : conns_)
        if (c->state != Conn::State::Busy && c->state != Conn::State::Closed) {
            uv_timer_stop(&c->timer);
            c->unwatch();
            if (c->pg) PQfinish(c->pg);
            c->pg = nullptr;
            if (c->state == Conn::State::Idle) --up_;
            c->state = Conn::State::Closed;
        }
    // Something must call maybe_closed() after close() returns, never
    // inside it: the deferral timer does.
    uv_timer_start(&defer_, on_defer, 0, 0);
}

void PgStore::maybe_closed() {
    if (!closing_ || !closed_ || !deferred_.empty() || !deferred_running_.empty()) return;
    for (auto& c : conns_) {
        if (c->state == Conn::State::Busy) return;
        if (c->state != Conn::State::Closed) {
            // A busy one that just finished.
            uv_timer_stop(&c->timer);
            c->unwatch();
            if (c->pg) PQfinish(c->pg);
            c->pg = nullptr;
            c->state = Conn::State::Closed;
        }
    }
    if (handles_open_ == 0 || uv_is_closing(reinterpret_cast<uv_handle_t*>(&defer_))) return;
    auto after = [](uv_handle_t* h) {
        auto* s = static_cast<PgStore*>(h->data);
        if (--s->handles_open_ == 0 && s->closed_) std::exchange(s->closed_, nullptr)();
    };
    for (auto& c : conns_) {
        c->timer.data = this;
        uv_close(reinterpret_cast<uv_handle_t*>(&c->timer), after);
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&defer_), after);
}

std::unique_ptr<RecordCursor> PgStore::open_cursor() { return std::make_unique<PgCursor>(opt_.conninfo); }

}  // namespace uvh
