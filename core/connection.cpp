// Connection lifecycle: accepting or adopting a socket, reading from it,
// the safe points where work continues (kick, after_processing), the end
// of an exchange, and every way a connection closes (abort, drain, graceful
// close with lingering, timeouts) until the last reference lets it go.
// Request intake lives in core/intake.cpp, response sending in
// core/sender.cpp, the handler's jobs in core/jobs.cpp.
#include "core/connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include "core/server.h"

namespace uvh {

namespace {

// Stop reading while this much input waits unparsed.
constexpr size_t kPendingLimit = 64 * 1024;
// Bytes a lingering close drains before giving up on a polite close.
constexpr uint64_t kLingerBytes = 1ull << 20;

}  // namespace

Connection::Connection(Server& server) : server_(server) {
    tcp_.data = this;
    timeout_node.owner = this;
    parser_.set_limits(server.parser_limits());
    parser_.set_body_sink(&Connection::on_body_bytes, this);
}

Connection::~Connection() = default;

const Site& Connection::site() const { return server_.site(); }
time_t Connection::now() const { return server_.date().now(); }
uint64_t Connection::now_ms() const { return server_.now_ms(); }

// ---------------------------------------------------------------- lifecycle

void Connection::start(uv_stream_t* listener, bool refuse) {
    if (uv_tcp_init(server_.loop(), &tcp_) != 0) {
        // Never initialised: nothing to close, no callback will come.
        unref();
        return;
    }
    if (uv_accept(listener, stream()) != 0) {
        abort();
        return;
    }
    begin(refuse);
}

void Connection::adopt(int fd) {
    if (uv_tcp_init(server_.loop(), &tcp_) != 0) {
        ::close(fd);
        unref();
        return;
    }
    if (uv_tcp_open(&tcp_, fd) != 0) {
        ::close(fd);
        abort();
        return;
    }
    begin(false);
}

void Connection::begin(bool refuse) {
    uv_tcp_nodelay(&tcp_, 1);
    sockaddr_storage ss{};
    int len = sizeof ss;
    if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&ss), &len) == 0)
        peer_ = PeerAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
    if (refuse) {
        // The seed's MAX_CLIENT_REQUESTS answer: a clear 503, then close.
        send_error_and_close(503, "too many connections, try again later");
        after_processing();
        return;
    }
    proxy_pending_ = server_.config().proxy_protocol;
    arm(server_.header_timeouts);
    update_reading();
}

void Connection::abort() {
    if (closing_ == Closing::Closed) return;
    closing_ = Closing::Closed;
    if (counted_upload_) {  // the upload is over, whatever is still being released
        --server_.metrics().uploads_in_flight;
        counted_upload_ = false;
    }
    disarm();
    if (fd_waiting_) {  // its source is released with the connection
        server_.forget_descriptor_waiter(*this);
        fd_waiting_ = false;
    }
    if (reading_) {
        uv_read_stop(stream());
        reading_ = false;
    }
    if (poll_) {
        uv_close(reinterpret_cast<uv_handle_t*>(poll_), on_poll_close);
        poll_ = nullptr;
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_close);
    // Work for a client that is gone is wasted work that others wait
    // behind: a job still queued is cancelled (its after-work callback
    // then runs with UV_ECANCELED and only cleans up), and a listing
    // waiting for a slot leaves the queue.
    if (job_ == JobState::WaitingSlot) {
        job_ = JobState::Idle;
        listing_job_ = false;
        server_.forget_listing_waiter(*this);
        ++server_.metrics().jobs_cancelled;
        unref();  // the queue's reference; the handle's keeps us alive
    } else if (job_running() && uv_cancel(reinterpret_cast<uv_req_t*>(&s_->work_req)) == 0) {
        ++server_.metrics().jobs_cancelled;
    }
    // A sendfile step or a source's work not yet started is not wanted.
    if (send_queued_) uv_cancel(reinterpret_cast<uv_req_t*>(&s_->send_req));
}

void Connection::on_close(uv_handle_t* h) { static_cast<Connection*>(h->data)->unref(); }

void Connection::on_poll_close(uv_handle_t* h) {
    auto* c = static_cast<Connection*>(h->data);
    delete reinterpret_cast<uv_poll_t*>(h);
    c->unref();
}

void Connection::unref() {
    if (--refs_ > 0) return;
    // The handle is closed and no libuv request points at us any more. A
    // job that still holds resources (an upload the client abandoned
    // between two pieces) releases them on a worker first.
    if (s_ && s_->offloaded && s_->offloaded->holds_resources()) {
        dispose_job();  // takes a reference of its own until the release is done
        if (job_ == JobState::Releasing) return;
    }
    if (s_) {
        end_source();
        s_->job.clear();
        s_->offloaded = nullptr;
        parser_.attach(nullptr);
        server_.pool().put(s_);
        s_ = nullptr;
    }
    if (sock_dup_ >= 0) close(sock_dup_);
    if (boost_ != Boost::None) server_.give_send_boost();
    give_body_descriptors();  // the duplicates' charge
    if (counted_upload_) --server_.metrics().uploads_in_flight;
    server_.connection_destroyed(this);
    delete this;
}

void Connection::drain() {
    if (closing_ != Closing::No) return;
    bool busy = in_exchange() || parser_.message_in_progress() || (s_ && !s_->pending.empty());
    if (!busy) {
        // A request may already sit unread in the socket: answer it (with
        // Connection: close) rather than drop it.
        uv_os_fd_t fd = -1;
        char byte;
        if (uv_fileno(reinterpret_cast<uv_handle_t*>(&tcp_), &fd) == 0 &&
            ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 1)
            busy = true;
    }
    if (!busy) {
        begin_graceful_close();
        after_processing();
    } else {
        close_after_ = true;
    }
}

void Connection::begin_graceful_close() {
    if (closing_ != Closing::No) return;
    closing_ = Closing::Graceful;
    body_bytes_ = 0;  // counts what the lingering close drains
    disarm();
    arm(server_.send_timeouts);
    if (reading_) {
        uv_read_stop(stream());
        reading_ = false;
    }
    continue_closing();
}

void Connection::continue_closing() {
    if (closing_ != Closing::Graceful) return;
    flush();
    if (closing_ != Closing::Graceful) return;
    if (writing_ || tx_active_ || (s_ && !s_->out.empty())) return;
    // Everything is handed to the kernel. Half-close, then drain what the
    // client still sends for a moment: closing with unread input would send
    // an RST that can destroy the response before the client reads it.
    closing_ = Closing::Lingering;
    ensure_scratch();
    s_->shutdown_req.data = this;
    if (uv_shutdown(&s_->shutdown_req, stream(), on_shutdown) != 0) {
        abort();
        return;
    }
    ++refs_;
}

void Connection::on_shutdown(uv_shutdown_t* req, int status) {
    auto* c = static_cast<Connection*>(req->data);
    if (c->closing_ == Closing::Lingering) {
        if (status < 0 || c->peer_eof_) {
            c->abort();
        } else {
            c->arm(c->server_.linger_timeouts);
            if (!c->reading_ && uv_read_start(c->stream(), on_alloc, on_read) == 0) c->reading_ = true;
            if (!c->reading_) c->abort();
        }
    }
    c->unref();
}

void Connection::on_timeout(TimeoutList* which) {
    if (closing_ == Closing::Closed) return;
    if (which == &server_.header_timeouts) {
        if (parser_.message_in_progress() && !in_exchange()) {
            send_error_and_close(408, "the request head did not arrive in time");
        } else {
            abort();  // nothing was sent: nothing to answer
        }
    } else if (which == &server_.idle_timeouts) {
        begin_graceful_close();
    } else if (which == &server_.body_timeouts) {
        if (!response_started() && !work_busy()) {
            send_error_and_close(408, "the request body stalled");
        } else {
            abort();
        }
    } else if (fd_waiting_) {
        stop_waiting_for_descriptors();  // a 503 with Retry-After
    } else {
        abort();  // send or linger timeout: the client stopped reading
    }
    after_processing();
}

void Connection::arm(TimeoutList& list) { list.arm(timeout_node, server_.now_ms()); }
void Connection::disarm() { TimeoutList::disarm(timeout_node); }

// `charged`: the descriptor is counted in the server's descriptor budget
// (core/descriptors.cpp) until it is really closed.
void Connection::close_fd_async(int fd, bool charged) {
    if (fd < 0) {
        if (charged) server_.give_descriptors(1);
        return;
    }
    auto* req = new uv_fs_t;
    int rc = uv_fs_close(server_.loop(), req, fd, [](uv_fs_t* done) {
        auto* server = static_cast<Server*>(done->data);
        uv_fs_req_cleanup(done);
        delete done;
        if (server) server->counted_close_done();
    });
    if (rc != 0) {
        uv_fs_req_cleanup(req);
        delete req;
        if (charged) server_.give_descriptors(1);
        return;
    }
    req->data = charged ? &server_ : nullptr;
    if (charged) server_.counted_close_started();
}

void Connection::ensure_scratch() {
    if (s_) return;
    s_ = server_.pool().get();
    parser_.attach(&s_->req);
}

void Connection::maybe_release_scratch() {
    if (!s_ || closing_ != Closing::No || in_exchange() || writing_ || work_busy() || tx_active_ || tx_busy_ ||
        in_done_ || !s_->job.empty() || parser_.message_in_progress() || !s_->pending.empty() || !s_->out.empty())
        return;
    // finish_exchange() already disposed of the job.
    parser_.attach(nullptr);
    server_.pool().put(s_);
    s_ = nullptr;
}

// ---------------------------------------------------------------- reading

void Connection::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
    // One buffer for the whole loop: reads are processed to the end before
    // the next one, and whatever must outlive the read is copied out.
    auto* c = static_cast<Connection*>(h->data);
    *buf = uv_buf_init(c->server_.read_buffer(), Server::kReadBufferSize);
}

void Connection::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
    auto* c = static_cast<Connection*>(s->data);
    c->server_.tick_clock();
    if (nread > 0) {
        c->server_.metrics().bytes_in += static_cast<uint64_t>(nread);
        if (c->closing_ == Closing::Lingering) {
            // Draining before the close; a client that keeps sending is cut off.
            c->body_bytes_ += static_cast<uint64_t>(nread);
            if (c->body_bytes_ > kLingerBytes) c->abort();
            return;
        }
        c->feed(buf->base, static_cast<size_t>(nread));
    } else if (nread == UV_EOF) {
        c->on_eof();
    } else if (nread < 0) {
        c->abort();
    }
}

void Connection::on_eof() {
    peer_eof_ = true;
    if (reading_) {
        uv_read_stop(stream());
        reading_ = false;
    }
    if (closing_ == Closing::Lingering) {
        abort();
        return;
    }
    if (closing_ != Closing::No) return;
    // A half-closed client still gets the answers to what it sent;
    // after_processing() closes once nothing more can complete.
    kick();
}

void Connection::kick() {
    if (closing_ == Closing::Closed || in_feed_) return;
    in_feed_ = true;
    if (tx_active_ && !tx_busy_) pump_body();
    if (closing_ == Closing::No && s_) {
        size_t used = run_parser(s_->pending.data(), s_->pending.size());
        if (s_) s_->pending.erase(0, std::min(used, s_->pending.size()));
    }
    in_feed_ = false;
    after_processing();
}

void Connection::after_processing() {
    if (closing_ == Closing::Closed) return;
    flush();
    // Inside a handler's continuation: the kick after it decides the rest
    // (the next pipelined request is not parsed before then).
    if (in_done_) return;
    if (closing_ == Closing::No && !in_exchange() && parser_.message_in_progress() &&
        timeout_node.list != &server_.header_timeouts)
        arm(server_.header_timeouts);  // a pipelined head arrived in part
    if (closing_ == Closing::No && peer_eof_ && !in_exchange()) {
        // The client half-closed and no request is waiting for an answer.
        begin_graceful_close();
    }
    if (closing_ == Closing::No && peer_eof_ && in_exchange() && !msg_complete_ && !paused_at_head_ &&
        !work_busy() && s_ && s_->pending.empty()) {
        // The client stopped in the middle of a request body (or reset, which
        // libuv may report as EOF): the body can never complete. Drop the
        // exchange now rather than hold its upload open until a timeout.
        abort();
        return;
    }
    continue_closing();
    update_reading();
    maybe_release_scratch();
}

void Connection::update_reading() {
    if (closing_ != Closing::No) return;
    bool want = !peer_eof_;
    if (s_ && (s_->pending.size() >= kPendingLimit || (writing_ && s_->out.size() >= kOutHighWater)))
        want = false;
    if (want && !reading_) {
        if (uv_read_start(stream(), on_alloc, on_read) == 0) {
            reading_ = true;
        } else {
            abort();
        }
    } else if (!want && reading_) {
        uv_read_stop(stream());
        reading_ = false;
    }
}

// ------------------------------------------------------- end of exchange

void Connection::log_exchange() {
    Metrics& m = server_.metrics();
    uint64_t duration_us = (server_.clock_ns() - start_ns_) / 1000;
    const Request* r = have_request_ ? &request() : nullptr;
    m.request_done(r ? r->method : Method::Other, response_status_, duration_us);
    AccessLog& log = server_.access_log();
    if (!log.enabled()) return;
    LogRecord rec;
    rec.time = server_.date().now();
    rec.client = &s_->client;
    rec.status = response_status_;
    rec.bytes = response_bytes_;
    rec.duration_us = duration_us;
    rec.request_id = s_->request_id;
    if (r) {
        rec.method = r->method_name;
        rec.target = r->target;
        rec.http_minor = r->http_minor;
        rec.user_agent = r->user_agent;
        rec.referer = r->referer;
    }
    log.write(rec);
}

void Connection::finish_exchange() {
    if (!in_exchange()) return;
    log_exchange();
    if (counted_upload_) {
        --server_.metrics().uploads_in_flight;
        counted_upload_ = false;
    }
    have_request_ = false;
    s_->request_id.clear();
    if (job_ == JobState::Running) {
        job_ = JobState::Unwanted;  // the job's result is not wanted any more
    } else if (work_busy()) {
        // Releasing: the exchange that owned the job already ended.
    } else if (in_done_) {
        dispose_after_done_ = true;  // the job's own done() is still running
    } else if (s_->offloaded || !s_->job.empty()) {
        dispose_job();  // a cache hit never made one
    }
    end_source();
    exchange_ = ExchangeState::None;
    msg_complete_ = false;
    paused_at_head_ = false;
    body_mode_ = BodyMode::Undecided;
    s_->tx.reader = {};
    reader_ = ReaderState::Idle;
    s_->body.clear();
    s_->body_handed.clear();
    abandoned_ = false;
    ++requests_;
    if (close_after_) {
        begin_graceful_close();
        return;
    }
    parser_.next_message();
    arm(server_.idle_timeouts);
}

}  // namespace uvh
