#include "core/connection.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iterator>

#include <fmt/format.h>

#include "core/server.h"
#include "protocol/proxy_protocol.h"
#include "protocol/response.h"
#include "protocol/status.h"
#include "protocol/target.h"
#include "protocol/text.h"

namespace uvh {

namespace {

// Stop parsing further pipelined requests while this much output waits for
// a slow reader, and stop reading while this much input waits unparsed.
constexpr size_t kOutHighWater = 256 * 1024;
constexpr size_t kPendingLimit = 64 * 1024;
// A sendfile step on the threadpool sends at most this much before
// returning, so one fast client cannot hold a worker thread for long.
constexpr uint64_t kSendStep = 16ull << 20;
// An unread request body up to this size is read and dropped after an early
// response, so the connection can stay open; a larger one closes it.
constexpr uint64_t kDiscardLimit = 64 * 1024;
// Bytes a lingering close drains before giving up on a polite close.
constexpr uint64_t kLingerBytes = 1ull << 20;

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
// Bytes a response must move within each --send-timeout, and a request
// body within each --body-timeout, to stay alive.
constexpr uint64_t kMinProgress = 16 * 1024;

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

bool Connection::read_proxy_header() {
    // The header may arrive in pieces; it is kept in `pending` until whole.
    PeerAddress source;
    bool local = false;
    size_t used = 0;
    switch (parse_proxy_header(s_->pending, source, local, used)) {
    case ProxyParse::NeedMore:
        return false;
    case ProxyParse::Invalid:
        s_->pending.clear();
        send_error_and_close(400, "expected a PROXY protocol header");
        return false;
    case ProxyParse::Ok:
        break;
    }
    if (!local) peer_ = source;
    proxy_pending_ = false;
    s_->pending.erase(0, used);
    return true;
}

void Connection::abort() {
    if (closing_ == Closing::Closed) return;
    closing_ = Closing::Closed;
    if (counted_upload_) {  // the upload is over, whatever is still being released
        --server_.metrics().uploads_in_flight;
        counted_upload_ = false;
    }
    disarm();
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
    if (waiting_slot_) {
        waiting_slot_ = false;
        listing_job_ = false;
        server_.forget_listing_waiter(*this);
        ++server_.metrics().jobs_cancelled;
        unref();  // the queue's reference; the handle's keeps us alive
    } else if (work_busy_ && !releasing_job_ && uv_cancel(reinterpret_cast<uv_req_t*>(&s_->work_req)) == 0) {
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
        if (releasing_job_) return;
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
    if (counted_upload_) --server_.metrics().uploads_in_flight;
    server_.connection_destroyed(this);
    delete this;
}

void Connection::drain() {
    if (closing_ != Closing::No) return;
    bool busy = in_exchange_ || parser_.message_in_progress() || (s_ && !s_->pending.empty());
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
        if (parser_.message_in_progress() && !in_exchange_) {
            send_error_and_close(408, "the request head did not arrive in time");
        } else {
            abort();  // nothing was sent: nothing to answer
        }
    } else if (which == &server_.idle_timeouts) {
        begin_graceful_close();
    } else if (which == &server_.body_timeouts) {
        if (!response_started_ && !work_busy_) {
            send_error_and_close(408, "the request body stalled");
        } else {
            abort();
        }
    } else {
        abort();  // send or linger timeout: the client stopped reading
    }
    after_processing();
}

void Connection::arm(TimeoutList& list) { list.arm(timeout_node, server_.now_ms()); }
void Connection::disarm() { TimeoutList::disarm(timeout_node); }

// Nothing is left to send: the send timeout ends, and a request body still
// arriving (a response can precede the end of its request, e.g. an early
// error while the body is discarded) is back under the body timeout, so no
// connection is ever left without a deadline.
void Connection::send_finished() {
    disarm();
    if (in_exchange_ && !msg_complete_ && !paused_at_head_ && !work_busy_ && closing_ == Closing::No)
        arm_body_timeout();
}

void Connection::arm_body_timeout() {
    if (s_) s_->tx.rx_progress = 0;
    arm(server_.body_timeouts);
}

// The body timeout restarts only on real progress, like the send timeout:
// a client that trickles a few bytes now and then (slow body) must not keep
// an upload open for hours. Time our own disk work takes is not counted
// (offload() disarms; the next bytes arm afresh).
void Connection::body_progress(size_t len) {
    if (timeout_node.list != &server_.body_timeouts || !s_) {
        arm_body_timeout();
        return;
    }
    s_->tx.rx_progress += len;
    if (s_->tx.rx_progress >= kMinProgress) arm_body_timeout();
}

void Connection::close_fd_async(int fd) {
    if (fd < 0) return;
    auto* req = new uv_fs_t;
    int rc = uv_fs_close(server_.loop(), req, fd, [](uv_fs_t* done) {
        uv_fs_req_cleanup(done);
        delete done;
    });
    if (rc != 0) {
        uv_fs_req_cleanup(req);
        delete req;
    }
}

// The exchange is over for the handler's job: if it still holds resources
// (descriptors, a temporary file) its release() runs on a worker, and the
// slot is cleared when that is done; otherwise at once. Core does not know
// what the resources are.
void Connection::dispose_job() {
    Job* job = s_->offloaded;
    s_->offloaded = nullptr;
    if (!job || !job->holds_resources()) {
        s_->job.clear();
        return;
    }
    releasing_job_ = true;
    s_->offloaded = job;
    s_->work_req.data = this;
    if (uv_queue_work(server_.loop(), &s_->work_req, on_work, on_after_work) != 0) {
        // Cannot happen with a valid loop; release here rather than leak.
        job->release();
        releasing_job_ = false;
        s_->offloaded = nullptr;
        s_->job.clear();
        return;
    }
    work_busy_ = true;
    ++refs_;
}

void Connection::ensure_scratch() {
    if (s_) return;
    s_ = server_.pool().get();
    parser_.attach(&s_->req);
}

void Connection::maybe_release_scratch() {
    if (!s_ || closing_ != Closing::No || in_exchange_ || writing_ || work_busy_ || tx_active_ || tx_busy_ ||
        in_done_ || !s_->job.empty() || parser_.message_in_progress() || !s_->pending.empty() || !s_->out.empty())
        return;
    // finish_exchange() already disposed of the job.
    parser_.attach(nullptr);
    server_.pool().put(s_);
    s_ = nullptr;
}

// ------------------------------------------------------------------- input

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

void Connection::feed(const char* data, size_t len) {
    if (closing_ != Closing::No) return;
    // Date must never lag the clock the files' Last-Modified come from; the
    // refresh is one vDSO call and does nothing within the same second.
    server_.refresh_date();
    ensure_scratch();
    if (!in_exchange_ && !parser_.message_in_progress() &&
        timeout_node.list != &server_.header_timeouts)
        arm(server_.header_timeouts);
    in_feed_ = true;
    if (proxy_pending_) {
        s_->pending.append(data, len);
        if (!read_proxy_header()) {
            in_feed_ = false;
            after_processing();
            return;
        }
        data = nullptr;
        len = 0;
    }
    if (!s_->pending.empty()) {
        if (len) s_->pending.append(data, len);
        size_t used = run_parser(s_->pending.data(), s_->pending.size());
        if (s_) s_->pending.erase(0, used);
    } else {
        size_t used = run_parser(data, len);
        if (used < len && closing_ == Closing::No) s_->pending.assign(data + used, len - used);
    }
    in_feed_ = false;
    after_processing();
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
    if (closing_ == Closing::No && !in_exchange_ && parser_.message_in_progress() &&
        timeout_node.list != &server_.header_timeouts)
        arm(server_.header_timeouts);  // a pipelined head arrived in part
    if (closing_ == Closing::No && peer_eof_ && !in_exchange_) {
        // The client half-closed and no request is waiting for an answer.
        begin_graceful_close();
    }
    if (closing_ == Closing::No && peer_eof_ && in_exchange_ && !msg_complete_ && !paused_at_head_ &&
        !work_busy_ && s_ && s_->pending.empty()) {
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

bool Connection::parse_blocked() const {
    if (paused_at_head_ || msg_complete_) return true;
    // Inside a handler's continuation the exchange may end, but the next
    // request must not take the job's slot before the continuation returns
    // (the kick after it parses on); nor while the last exchange's job is
    // still on a worker or releasing what it held.
    if (in_done_ || (!in_exchange_ && work_busy_)) return true;
    if (body_mode_ == BodyMode::Deliver && reader_busy_ && s_->body.size() >= s_->tx.reader.chunk) return true;
    if (writing_ && s_->out.size() >= kOutHighWater) return true;
    return false;
}

size_t Connection::run_parser(const char* data, size_t len) {
    size_t pos = 0;
    while (closing_ == Closing::No && !parse_blocked()) {
        size_t used = 0;
        RequestParser::Event ev = parser_.execute(data + pos, len - pos, used);
        pos += used;
        if (in_exchange_ && !msg_complete_) {
            // Bodies without a declared length are held to the limit as they
            // arrive (declared ones were refused before reading).
            uint64_t max = server_.site().max_body_size;
            if (max != 0 && body_bytes_ > max && !response_started_) {
                send_error_and_close(413, "request body larger than --max-body-size");
                return len;
            }
            if (body_mode_ == BodyMode::Deliver) deliver_body();
        }
        switch (ev) {
        case RequestParser::Event::NeedMore:
            return pos;
        case RequestParser::Event::Head:
            on_head();
            break;
        case RequestParser::Event::Complete:
            on_message_complete();
            break;
        case RequestParser::Event::Error:
            on_parse_error();
            return len;
        }
    }
    return pos;
}

void Connection::on_body_bytes(void* ctx, const char* data, size_t len) {
    auto* c = static_cast<Connection*>(ctx);
    c->body_bytes_ += len;
    if (c->body_mode_ == BodyMode::Deliver && !c->abandoned_) c->s_->body.append(data, len);
    if (!c->work_busy_) c->body_progress(len);
}

int Connection::validate_head(const char*& why) {
    const Request& r = request();
    if (r.http_major != 1 || r.http_minor > 1) {
        why = "only HTTP/1.0 and HTTP/1.1 are supported";
        return 505;
    }
    // RFC 9112 §3.2: exactly one valid Host in HTTP/1.1.
    if (r.host_count > 1) {
        why = "more than one Host header field";
        return 400;
    }
    if (r.host_count == 0 && r.http_minor == 1) {
        why = "missing Host header field";
        return 400;
    }
    if (r.host.data() && !valid_host(r.host)) {
        why = "invalid Host header field";
        return 400;
    }
    if (r.transfer_encoding.data()) {
        // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
        if (r.http10()) {
            why = "Transfer-Encoding in an HTTP/1.0 request";
            return 400;
        }
        // RFC 9112 §6.3: unless chunked is the final coding the body length
        // cannot be known: 400 and close.
        std::string_view te = trim_ows(r.transfer_encoding);
        size_t comma = te.rfind(',');
        std::string_view last = trim_ows(comma == std::string_view::npos ? te : te.substr(comma + 1));
        if (!iequals_ascii(last, "chunked")) {
            why = "Transfer-Encoding does not end in chunked";
            return 400;
        }
        // RFC 9112 §6.1: a coding we do not understand is a 501.
        if (!iequals_ascii(te, "chunked")) {
            why = "transfer coding not implemented";
            return 501;
        }
    }
    switch (r.parsed.form) {
    case TargetForm::Invalid:
        why = "malformed request-target";
        return 400;
    case TargetForm::Asterisk:
        // RFC 9112 §3.2.4: asterisk-form is only for OPTIONS.
        if (r.method != Method::Options) {
            why = "the '*' target is only valid for OPTIONS";
            return 400;
        }
        s_->path.assign("*");
        break;
    case TargetForm::Origin:
    case TargetForm::Absolute: {
        PathStatus ps = normalize_path(r.parsed.path, s_->path);
        if (ps != PathStatus::Ok) {
            why = path_status_message(ps).data();
            return 400;
        }
        break;
    }
    }
    if (r.expect.data() && !r.http10()) {
        // RFC 9110 §10.1.1: 100-continue is the only expectation; HTTP/1.0
        // requests have theirs ignored.
        if (!iequals_ascii(trim_ows(r.expect), "100-continue")) {
            why = "only the 100-continue expectation is supported";
            return 417;
        }
        expect_continue_ = r.has_body();
    }
    return 0;
}

void Connection::on_head() {
    in_exchange_ = true;
    paused_at_head_ = true;
    msg_complete_ = false;
    response_started_ = response_done_ = false;
    abandoned_ = false;
    expect_continue_ = continue_sent_ = false;
    body_mode_ = BodyMode::Undecided;
    reader_busy_ = reader_ended_ = false;
    body_bytes_ = 0;
    response_status_ = 0;
    have_request_ = true;
    start_ns_ = server_.clock_ns();
    response_bytes_ = 0;
    disarm();
    const Request& r = request();
    s_->client = server_.trusted_proxies().empty()
                     ? peer_
                     : client_address(peer_, server_.trusted_proxies(), r.forwarded, r.x_forwarded_for);
    // Echo a sane X-Request-Id from the client (a load balancer's), or make one.
    bool sane = r.x_request_id.size() > 0 && r.x_request_id.size() <= 128;
    for (char ch : r.x_request_id) sane = sane && ch > ' ' && ch < 0x7f;
    if (sane) {
        s_->request_id.assign(r.x_request_id);
    } else {
        server_.next_request_id(s_->request_id);
    }
    const char* why = nullptr;
    int status = validate_head(why);
    if (status != 0) {
        send_error_and_close(status, why ? why : "");
        return;
    }
    server_.application().dispatch(*this);
}

void Connection::on_message_complete() {
    msg_complete_ = true;
    if (timeout_node.list == &server_.body_timeouts) disarm();
    if (body_mode_ == BodyMode::Deliver) deliver_body();
    if (response_done_) finish_exchange();
}

void Connection::on_parse_error() {
    int status = parser_.error_status();
    std::string_view why = parser_.error_message();
    if (response_started_) {
        abort();  // a second response cannot follow the first mid-stream
        return;
    }
    send_error_and_close(status ? status : 400, why);
}

// ------------------------------------------------------- handler interface

void Connection::offload(Job& job, JobClass cls) {
    s_->offloaded = &job;
    // Time spent on our own disk work is not the client's stall.
    if (timeout_node.list == &server_.body_timeouts) disarm();
    if (cls == JobClass::Listing) {
        listing_job_ = true;
        if (!server_.acquire_listing_slot(*this)) {
            waiting_slot_ = true;
            ++refs_;  // the queue's reference, handed to the job when it runs
            return;
        }
    }
    queue_job();
}

void Connection::run_waiting_job() {
    waiting_slot_ = false;
    queue_job();
    unref();  // the queue's reference; queue_job took the job's own
}

void Connection::queue_job() {
    s_->work_req.data = this;
    if (uv_queue_work(server_.loop(), &s_->work_req, on_work, on_after_work) != 0) {
        if (listing_job_) {
            listing_job_ = false;
            server_.release_listing_slot();
        }
        respond_error(*this, 503, "cannot queue work on the threadpool");
        return;
    }
    work_busy_ = true;
    ++refs_;
    ++server_.metrics().threadpool_jobs;
}

void Connection::on_work(uv_work_t* req) {
    auto* c = static_cast<Connection*>(req->data);
    if (c->releasing_job_) {
        c->s_->offloaded->release();
    } else {
        c->s_->offloaded->work();
    }
}

void Connection::on_after_work(uv_work_t* req, int status) {
    auto* c = static_cast<Connection*>(req->data);
    c->server_.tick_clock();
    c->work_busy_ = false;
    if (c->releasing_job_) {
        // The release of an exchange's job is done (dispose_job).
        c->releasing_job_ = false;
        c->s_->offloaded = nullptr;
        c->s_->job.clear();
        c->kick();
        c->unref();
        return;
    }
    --c->server_.metrics().threadpool_jobs;
    if (c->listing_job_) {
        c->listing_job_ = false;
        c->server_.release_listing_slot();
    }
    if (c->dispose_after_work_ || c->closing_ != Closing::No || c->abandoned_ || status != 0) {
        // The client is gone or was already answered: drop the result, and
        // let the job give back what it holds.
        c->dispose_after_work_ = false;
        c->dispose_job();
        c->after_processing();
    } else {
        c->run_done([c] { c->s_->offloaded->done(*c); });
        c->kick();
    }
    c->unref();
}

// Runs a handler's continuation. The exchange may end inside it (the
// response went out whole), but the job it belongs to must outlive the
// call: its disposal waits until the continuation returns.
template <class F>
void Connection::run_done(F&& f) {
    in_done_ = true;
    f();
    in_done_ = false;
    if (dispose_after_done_) {
        dispose_after_done_ = false;
        if (!work_busy_) dispose_job();
    }
}

void Connection::discard_body() {
    if (body_mode_ != BodyMode::Undecided) return;
    body_mode_ = BodyMode::Discard;
    if (paused_at_head_) {
        paused_at_head_ = false;
        parser_.resume();
        if (request().has_body()) arm_body_timeout();
    }
    kick();
}

void Connection::read_body(const BodyReader& reader) {
    if (body_mode_ != BodyMode::Undecided) return;
    s_->tx.reader = reader;
    body_mode_ = BodyMode::Deliver;
    if (request().has_body() && !counted_upload_) {
        counted_upload_ = true;
        ++server_.metrics().uploads_in_flight;
    }
    if (expect_continue_ && !continue_sent_) {
        // RFC 9110 §10.1.1: only now, after every check passed.
        s_->out.append(kContinue);
        continue_sent_ = true;
    }
    if (paused_at_head_) {
        paused_at_head_ = false;
        parser_.resume();
        if (request().has_body()) arm_body_timeout();
    }
    kick();
}

void Connection::hold() { ++refs_; }

void Connection::release(DoneFn done) {
    server_.tick_clock();
    if (closing_ == Closing::No && !abandoned_ && s_) {
        run_done([this, done] { done(*this); });
        kick();
    }
    unref();
}

void Connection::body_consumed() {
    reader_busy_ = false;
    s_->body_handed.clear();
    deliver_body();
    kick();
}

void Connection::deliver_body() {
    if (body_mode_ != BodyMode::Deliver || reader_busy_ || reader_ended_ || abandoned_ ||
        closing_ != Closing::No || response_started_)
        return;
    if (!s_->body.empty() && (s_->body.size() >= s_->tx.reader.chunk || msg_complete_)) {
        s_->body_handed.swap(s_->body);
        s_->body.clear();
        reader_busy_ = true;
        s_->tx.reader.data(*this, s_->body_handed);
        return;
    }
    if (msg_complete_ && s_->body.empty()) {
        reader_ended_ = true;
        s_->tx.reader.end(*this);
    }
}

void Connection::respond(const ResponseHead& head, const Body& body) {
    if (abandoned_ || closing_ != Closing::No || response_started_) {
        if (body.kind == Body::Kind::Source) {
            s_->tx.source = body.source;  // so its descriptor is released too
            end_source();
        }
        return;
    }
    response_started_ = true;
    response_status_ = head.status;
    const Request& r = request();

    if (body_mode_ == BodyMode::Undecided) {
        // Answered without looking at the body (an error, a failed
        // precondition). A client told to wait for 100 will not send it, and
        // a large body is not worth reading: close instead (RFC 9110
        // §10.1.1). A small one is read and dropped to keep the connection.
        if (r.has_body() && (expect_continue_ || r.chunked || r.content_length > kDiscardLimit)) {
            close_after_ = true;
        } else {
            body_mode_ = BodyMode::Discard;
            paused_at_head_ = false;
            parser_.resume();
        }
    } else if (body_mode_ == BodyMode::Deliver && !msg_complete_) {
        close_after_ = true;  // answered mid-upload
    }
    // A body of unknown length ends with the connection on HTTP/1.0 (RFC
    // 9112 §6.3); HTTP/1.1 gets it chunked (§7.1).
    bool unknown_length = body.kind == Body::Kind::Source && head.content_length == ResponseHead::kUnknownLength;
    if (unknown_length && r.http10()) close_after_ = true;
    const Config& cfg = server_.config();
    bool keep = r.keep_alive && !head.close && !close_after_ && !server_.draining() &&
                (cfg.keepalive_requests == 0 || requests_ + 1 < cfg.keepalive_requests);
    if (!keep) close_after_ = true;

    size_t before = s_->out.size();
    write_response_head(s_->out, head, Framing{keep, r.http10(), s_->request_id}, server_.date().header_line(),
                        server_.site().server_line);
    response_bytes_ = s_->out.size() - before;

    bool head_only = r.method == Method::Head || !status_allows_body(head.status);
    if (head_only || body.kind == Body::Kind::None) {
        if (body.kind == Body::Kind::Source) {
            s_->tx.source = body.source;  // so its descriptor is released too
            end_source();
        }
        response_done();
        return;
    }
    if (body.kind == Body::Kind::Memory) {
        response_bytes_ += body.memory.size();
        s_->out.append(body.memory);
        response_done();
        return;
    }
    s_->tx.source = body.source;
    s_->tx.have_piece = false;
    s_->tx.chunked = unknown_length && !r.http10();
    tx_active_ = true;
    pump_body();
}

void Connection::send_error_and_close(int status, std::string_view detail) {
    if (response_started_) {
        abort();
        return;
    }
    ensure_scratch();
    abandoned_ = in_exchange_;  // a handler still at work is no longer heard
    in_exchange_ = true;
    close_after_ = true;
    response_started_ = true;
    response_status_ = status;
    std::string& body = s_->text;
    format_error_body(body, status, detail);
    ResponseHead head;
    head.status = status;
    head.content_type = "text/plain; charset=utf-8";
    head.content_length = body.size();
    head.close = true;
    if (s_->request_id.empty()) server_.next_request_id(s_->request_id);
    if (!have_request_) {
        start_ns_ = server_.clock_ns();
        s_->client = peer_;
    }
    size_t before = s_->out.size();
    write_response_head(s_->out, head, Framing{false, false, s_->request_id}, server_.date().header_line(),
                        server_.site().server_line);
    // RFC 9110 §9.3.2: no content in a response to HEAD, errors included.
    if (!have_request_ || request().method != Method::Head) s_->out.append(body);
    response_bytes_ = s_->out.size() - before;
    response_done();
}

// ------------------------------------------------------------------ output

void Connection::flush() {
    if (!s_ || writing_ || s_->out.empty() || closing_ == Closing::Closed) return;
    uv_buf_t buf = uv_buf_init(s_->out.data(), static_cast<unsigned>(s_->out.size()));
    int r = uv_try_write(stream(), &buf, 1);
    if (r == UV_EAGAIN) r = 0;
    if (r < 0) {
        abort();
        return;
    }
    server_.metrics().bytes_out += static_cast<uint64_t>(r);
    if (static_cast<size_t>(r) == s_->out.size()) {
        s_->out.clear();
        return;
    }
    // The kernel took part of it: queue the rest and keep it pinned in
    // `writing` until the callback.
    s_->writing.swap(s_->out);
    s_->out.clear();
    if (r > 0) s_->writing.erase(0, static_cast<size_t>(r));
    uv_buf_t rest = uv_buf_init(s_->writing.data(), static_cast<unsigned>(s_->writing.size()));
    s_->write_req.data = this;
    if (uv_write(&s_->write_req, stream(), &rest, 1, on_write) != 0) {
        abort();
        return;
    }
    writing_ = true;
    ++refs_;
    arm(server_.send_timeouts);
}

void Connection::on_write(uv_write_t* req, int status) {
    auto* c = static_cast<Connection*>(req->data);
    c->server_.tick_clock();
    c->writing_ = false;
    if (status < 0) {
        c->abort();
    } else if (c->closing_ != Closing::Closed) {
        c->server_.metrics().bytes_out += c->s_->writing.size();
        c->s_->writing.clear();
        if (c->timeout_node.list == &c->server_.send_timeouts && c->closing_ == Closing::No) c->send_finished();
        c->kick();
    }
    c->unref();
}

void Connection::response_done() {
    response_done_ = true;
    if (msg_complete_ || close_after_) {
        finish_exchange();
    } else if (!timeout_node.list) {
        send_finished();
    }
    kick();
}

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
    if (!in_exchange_) return;
    log_exchange();
    if (counted_upload_) {
        --server_.metrics().uploads_in_flight;
        counted_upload_ = false;
    }
    have_request_ = false;
    s_->request_id.clear();
    if (work_busy_) {
        dispose_after_work_ = true;  // the job's result is not wanted any more
    } else if (in_done_) {
        dispose_after_done_ = true;  // the job's own done() is still running
    } else if (s_->offloaded || !s_->job.empty()) {
        dispose_job();  // a cache hit never made one
    }
    end_source();
    in_exchange_ = false;
    msg_complete_ = false;
    paused_at_head_ = false;
    body_mode_ = BodyMode::Undecided;
    s_->tx.reader = {};
    reader_busy_ = reader_ended_ = false;
    s_->body.clear();
    s_->body_handed.clear();
    response_started_ = response_done_ = false;
    abandoned_ = false;
    ++requests_;
    if (close_after_) {
        begin_graceful_close();
        return;
    }
    parser_.next_message();
    arm(server_.idle_timeouts);
}

// Drives the body source: memory pieces go into the output buffer (in
// chunks when the length is unknown), file pieces leave with sendfile on a
// worker, Work pieces run the source's work() on a worker. Bounded by the
// output high-water mark, so a source of many memory pieces waits for the
// socket like any other response.
void Connection::pump_body() {
    Transfer& tx = s_->tx;
    while (tx_active_ && closing_ != Closing::Closed) {
        if (s_->out.size() >= kOutHighWater) {
            flush();
            if (closing_ == Closing::Closed || writing_ || !s_->out.empty()) return;
        }
        if (!tx.have_piece) {
            tx.piece = tx.source->next();
            tx.have_piece = true;
            tx.done = 0;
            tx.framed = false;
        }
        const BodyPiece& p = tx.piece;
        switch (p.kind) {
        case BodyPiece::Kind::End:
            if (tx.chunked) s_->out.append("0\r\n\r\n");  // RFC 9112 §7.1: last chunk, no trailers
            end_source();
            if (timeout_node.list == &server_.send_timeouts) send_finished();
            response_done();
            return;
        case BodyPiece::Kind::Memory:
            if (!p.memory.empty()) {
                if (tx.chunked) fmt::format_to(std::back_inserter(s_->out), "{:x}\r\n", p.memory.size());
                s_->out.append(p.memory);
                if (tx.chunked) s_->out.append("\r\n");
                response_bytes_ += p.memory.size();
            }
            tx.have_piece = false;
            continue;
        case BodyPiece::Kind::Work:
            start_source_work();
            return;
        case BodyPiece::Kind::File:
            if (!tx.framed) {
                if (p.length == 0) {
                    tx.have_piece = false;
                    continue;
                }
                if (tx.chunked) fmt::format_to(std::back_inserter(s_->out), "{:x}\r\n", p.length);
                response_bytes_ += p.length;
                tx.framed = true;
            }
            if (tx.done >= p.length) {
                if (tx.chunked) s_->out.append("\r\n");
                tx.have_piece = false;
                continue;
            }
            // Earlier bytes (the head) must be on the socket before sendfile
            // writes to it from a worker thread.
            flush();
            if (closing_ == Closing::Closed || writing_ || !s_->out.empty()) return;
            start_sendfile(p.offset + tx.done, p.length - tx.done);
            return;
        }
    }
}

// The response is over (or the client is gone): the source goes, and a
// descriptor it owned is closed off the loop.
void Connection::end_source() {
    tx_active_ = false;
    if (!s_) return;
    if (s_->tx.source) close_fd_async(s_->tx.source->release_descriptor());
    s_->tx.source = nullptr;
    s_->tx.have_piece = false;
    s_->source.clear();
}

void Connection::start_source_work() {
    s_->tx.op = Transfer::Op::SourceWork;
    s_->send_req.data = this;
    if (uv_queue_work(server_.loop(), &s_->send_req, on_send_work, on_after_send_work) != 0) {
        abort();
        return;
    }
    tx_busy_ = true;
    send_queued_ = true;
    ++refs_;
    ++server_.metrics().threadpool_jobs;
}

void Connection::on_send_work(uv_work_t* req) {
    auto* c = static_cast<Connection*>(req->data);
    if (c->s_->tx.op == Transfer::Op::Sendfile) {
        c->sendfile_step();
    } else {
        c->s_->tx.source->work();
    }
}

void Connection::on_after_send_work(uv_work_t* req, int status) {
    auto* c = static_cast<Connection*>(req->data);
    c->server_.tick_clock();
    c->tx_busy_ = false;
    c->send_queued_ = false;
    --c->server_.metrics().threadpool_jobs;
    if (status == 0 && c->closing_ != Closing::Closed) {
        if (c->s_->tx.op == Transfer::Op::Sendfile) {
            c->after_sendfile();
        } else {
            c->s_->tx.have_piece = false;  // ask the source again
            c->kick();
        }
    }
    c->unref();
}

void Connection::start_sendfile(uint64_t offset, uint64_t length) {
    if (sock_dup_ < 0) {
        // The worker writes through its own descriptor for the socket, so
        // the loop closing the handle can never leave a worker writing to
        // a reused descriptor number.
        uv_os_fd_t fd = -1;
        if (uv_fileno(reinterpret_cast<uv_handle_t*>(&tcp_), &fd) != 0 ||
            (sock_dup_ = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
            abort();
            return;
        }
        // A file body could fill the kernel's send buffer up to tcp_wmem's
        // maximum (4 MiB) per connection; a thousand slow readers would then
        // exhaust the kernel's TCP memory and slow every other client down
        // (the slow-read attack). TCP_NOTSENT_LOWAT bounds the bytes waiting
        // unsent: a slow reader pins little more than that, while a fast one
        // keeps the autotuned buffer and takes a large file in few sendfile
        // calls (a fixed SO_SNDBUF cost a threadpool round trip every
        // 512 KiB).
        if (int lowat = static_cast<int>(server_.config().send_buffer); lowat > 0)
            setsockopt(sock_dup_, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
    }
    s_->tx.send_off = offset;
    s_->tx.send_left = length;
    s_->tx.op = Transfer::Op::Sendfile;
    s_->send_req.data = this;
    if (uv_queue_work(server_.loop(), &s_->send_req, on_send_work, on_after_send_work) != 0) {
        abort();
        return;
    }
    tx_busy_ = true;
    send_queued_ = true;
    ++refs_;
    ++server_.metrics().threadpool_jobs;
    if (timeout_node.list != &server_.send_timeouts) {
        s_->tx.progress = 0;
        arm(server_.send_timeouts);
    }
}

void Connection::sendfile_step() {
    auto off = static_cast<off_t>(s_->tx.send_off);
    uint64_t left = s_->tx.send_left;
    int64_t sent = 0;
    s_->tx.send_errno = 0;
    s_->tx.again = false;
    while (left > 0 && static_cast<uint64_t>(sent) < kSendStep) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(left, kSendStep - static_cast<uint64_t>(sent)));
        ssize_t n = sendfile(sock_dup_, s_->tx.piece.fd, &off, want);
        if (n > 0) {
            sent += n;
            left -= static_cast<uint64_t>(n);
            continue;
        }
        if (n == 0) {
            s_->tx.send_errno = EIO;  // the file shrank under us
            break;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {
            s_->tx.again = true;
            break;
        }
        s_->tx.send_errno = errno;
        break;
    }
    s_->tx.sent = sent;
}

void Connection::after_sendfile() {
    if (closing_ == Closing::Closed) return;
    server_.metrics().bytes_out += static_cast<uint64_t>(s_->tx.sent);
    s_->tx.done += static_cast<uint64_t>(s_->tx.sent);
    if (s_->tx.send_errno != 0) {
        // The peer went away, or the file was truncated while we sent it:
        // the promised Content-Length can no longer be kept.
        abort();
        return;
    }
    // The send timeout restarts only on real progress: a reader that takes
    // a few bytes now and then (slow read) must not keep a response alive.
    s_->tx.progress += static_cast<uint64_t>(s_->tx.sent);
    if (s_->tx.progress >= kMinProgress) {
        s_->tx.progress = 0;
        arm(server_.send_timeouts);
    }
    if (s_->tx.again) {
        wait_writable();
        return;
    }
    kick();
}

void Connection::wait_writable() {
    if (!poll_) {
        poll_ = new uv_poll_t;
        if (uv_poll_init_socket(server_.loop(), poll_, sock_dup_) != 0) {
            delete poll_;
            poll_ = nullptr;
            abort();
            return;
        }
        poll_->data = this;
        ++refs_;
    }
    tx_busy_ = true;
    if (uv_poll_start(poll_, UV_WRITABLE, on_poll) != 0) abort();
}

void Connection::on_poll(uv_poll_t* p, int status, int) {
    auto* c = static_cast<Connection*>(p->data);
    uv_poll_stop(p);
    c->tx_busy_ = false;
    if (status < 0) {
        c->abort();
        return;
    }
    c->kick();
}

}  // namespace uvh
