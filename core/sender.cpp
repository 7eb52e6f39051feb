// Response sending: the response head and a memory body go into the
// per-connection output buffer and leave in one write per batch
// (uv_try_write first); a body source is pumped piece by piece, its file
// pieces sent with sendfile on a worker through a dup of the socket, with
// POLLOUT waits, and chunked framing when its length is unknown.
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <utility>

#include <fmt/format.h>

#include "core/connection.h"
#include "core/server.h"
#include "protocol/response.h"
#include "protocol/status.h"

namespace uvh {

namespace {

// A sendfile step on the threadpool sends at most this much before
// returning, so one fast client cannot hold a worker thread for long.
constexpr uint64_t kSendStep = 16ull << 20;
// TCP_NOTSENT_LOWAT of a connection's first file body bytes, and how many
// bytes must have left through sendfile before it becomes --send-buffer.
// A slow reader with a 1-2 byte window (slowhttptest -X -w 1 -y 2) never
// gets past the first fill: at 256 KiB it pinned 637 KB of kernel memory
// (skbs of its 576-byte MSS, `ss -m` wmem) and cost the server 4-8 % of a
// core while 200 of them arrived per second; at 64 KiB, 156 KB and 1-4 %
// (hardening issue, item 11). A fast reader passes kLowatRaiseAfter within
// its first steps and then keeps the full --send-buffer.
constexpr int kFirstLowat = 64 * 1024;
constexpr uint64_t kLowatRaiseAfter = 512 * 1024;
// When the socket is full (TCP_NOTSENT_LOWAT reached), a sendfile step of a
// reader that has shown it is fast waits for the socket on the worker
// instead of going back to the loop at once: a fast reader drains
// --send-buffer in a fraction of a millisecond, and each trip back (eventfd,
// epoll, uv_poll start and stop, a new threadpool job) cost more CPU than the
// waiting saves (100 MiB files: 73 such trips per file, 44 ms of server CPU
// per file against 30 without the limit). The wait is allowed while the
// reader keeps up kWaitNsPerByte (100 MB/s) after a first kWaitBaseNs. A
// step that runs out of that allowance having sent less than kFastStep
// stops its connection's waits on a worker (the loop's uv_poll waits for it)
// until a step sends kFastStep again: a worker is held at most kWaitBaseNs
// plus 10 ns per byte the reader took, so slow readers cannot tie up the
// threadpool, while a fast one delayed once by the scheduler keeps waiting.
// At most half the pool's threads wait at once (Server::begin_socket_wait):
// many fast large downloads cannot delay the opens and reads of others.
constexpr int64_t kWaitBaseNs = 2'000'000;
constexpr int64_t kWaitNsPerByte = 10;
constexpr int64_t kFastStep = 1 << 20;
// An unread request body up to this size is read and dropped after an early
// response, so the connection can stay open; a larger one closes it.
constexpr uint64_t kDiscardLimit = 64 * 1024;

}  // namespace

void Connection::respond(const ResponseHead& head, const Body& body) {
    if (abandoned_ || closing_ != Closing::No || response_started()) {
        if (body.kind == Body::Kind::Source) {
            s_->tx.source = body.source;  // so its descriptor is released too
            end_source();
        }
        return;
    }
    exchange_ = ExchangeState::Responding;
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
    if (!take_body_descriptors(before)) return;  // waits for descriptors, or a 503 (core/descriptors.cpp)
    tx_active_ = true;
    pump_body();
}

void Connection::send_error_and_close(int status, std::string_view detail) {
    if (response_started()) {
        abort();
        return;
    }
    ensure_scratch();
    abandoned_ = in_exchange();  // a handler still at work is no longer heard
    exchange_ = ExchangeState::Responding;
    close_after_ = true;
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

void Connection::flush(bool more) {
    if (!s_ || writing_ || s_->out.empty() || closing_ == Closing::Closed) return;
    int r;
    uv_os_fd_t fd = -1;
    if (more && uv_fileno(reinterpret_cast<uv_handle_t*>(&tcp_), &fd) == 0) {
        ssize_t n;
        do n = send(fd, s_->out.data(), s_->out.size(), MSG_MORE | MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        r = n >= 0 ? static_cast<int>(n) : (errno == EAGAIN ? 0 : -errno);
    } else {
        uv_buf_t buf = uv_buf_init(s_->out.data(), static_cast<unsigned>(s_->out.size()));
        r = uv_try_write(stream(), &buf, 1);
        if (r == UV_EAGAIN) r = 0;
    }
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
    exchange_ = ExchangeState::Responded;
    if (msg_complete_ || close_after_) {
        finish_exchange();
    } else if (!timeout_node.list) {
        send_finished();
    }
    kick();
}

// Nothing is left to send: the send timeout ends, and a request body still
// arriving (a response can precede the end of its request, e.g. an early
// error while the body is discarded) is back under the body timeout, so no
// connection is ever left without a deadline.
void Connection::send_finished() {
    disarm();
    if (in_exchange() && !msg_complete_ && !paused_at_head_ && !work_busy() && closing_ == Closing::No)
        arm_body_timeout();
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
            if (tx.source->failed()) {
                // No last chunk (or, close-delimited, a reset): the client
                // must not take a cut body for a whole one.
                flush();
                abort();
                return;
            }
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
            flush(true);
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
    // The file's charge in the descriptor budget returns once it is closed.
    close_fd_async(s_->tx.source ? s_->tx.source->release_descriptor() : -1, std::exchange(file_charged_, false));
    give_body_descriptors();
    s_->tx.source = nullptr;
    s_->tx.have_piece = false;
    s_->source.clear();
}

void Connection::start_source_work() { queue_send(Transfer::Op::SourceWork); }

// The sender's own threadpool request: a sendfile step or a source's work().
bool Connection::queue_send(Transfer::Op op) {
    s_->tx.op = op;
    s_->send_req.data = this;
    if (uv_queue_work(server_.loop(), &s_->send_req, on_send_work, on_after_send_work) != 0) {
        abort();
        return false;
    }
    tx_busy_ = true;
    send_queued_ = true;
    ++refs_;
    ++server_.metrics().threadpool_jobs;
    return true;
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
            (sock_dup_ = take_spare_dup(fd)) < 0) {
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
        if (size_t lowat = server_.config().send_buffer; lowat > 0) {
            lowat_full_ = lowat <= kFirstLowat;
            set_lowat(std::min<size_t>(lowat, kFirstLowat));
        } else {
            lowat_full_ = true;
        }
    }
    s_->tx.send_off = offset;
    s_->tx.send_left = length;
    if (!queue_send(Transfer::Op::Sendfile)) return;
    if (timeout_node.list != &server_.send_timeouts) {
        s_->tx.progress = 0;
        arm(server_.send_timeouts);
    }
}

void Connection::sendfile_step() {
    auto off = static_cast<off_t>(s_->tx.send_off);
    uint64_t left = s_->tx.send_left;
    int64_t sent = 0;
    int64_t waited_ns = 0;
    s_->tx.send_errno = 0;
    s_->tx.again = false;
    s_->tx.slow_reader = false;
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
            if (lowat_full_ && worker_waits_ && wait_writable_briefly(sent, waited_ns)) continue;
            s_->tx.again = true;
            break;
        }
        s_->tx.send_errno = errno;
        break;
    }
    s_->tx.sent = sent;
}

// On a worker, inside a sendfile step that has sent `sent` bytes and waited
// `waited_ns`: waits until the socket takes more bytes, within the reader's
// allowance. True when it is writable (or has an error, which the next
// sendfile reports); false marks the reader slow.
bool Connection::wait_writable_briefly(int64_t sent, int64_t& waited_ns) {
    int64_t left = kWaitBaseNs + sent * kWaitNsPerByte - waited_ns;
    if (left <= 0) {
        s_->tx.slow_reader = true;
        return false;
    }
    // No free wait slot: the loop waits for this socket instead, and the
    // reader is not marked slow.
    if (!server_.begin_socket_wait()) return false;
    struct timespec t0 {}, t1 {};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct pollfd p {sock_dup_, POLLOUT, 0};
    struct timespec limit {static_cast<time_t>(left / 1'000'000'000), static_cast<long>(left % 1'000'000'000)};
    int r = ppoll(&p, 1, &limit, nullptr);
    server_.end_socket_wait();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    waited_ns += (t1.tv_sec - t0.tv_sec) * 1'000'000'000LL + (t1.tv_nsec - t0.tv_nsec);
    if (r > 0) return true;
    if (r == 0) s_->tx.slow_reader = true;
    return false;
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
    if (s_->tx.sent >= kFastStep) worker_waits_ = true;
    else if (s_->tx.slow_reader) worker_waits_ = false;
    file_sent_ += static_cast<uint64_t>(s_->tx.sent);
    // No sendfile step is in flight here: the worker does not race these.
    if (!lowat_full_ && file_sent_ >= kLowatRaiseAfter) {
        set_lowat(server_.config().send_buffer);
        lowat_full_ = true;
    }
    update_send_boost();
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

void Connection::set_lowat(size_t bytes) {
    int lowat = static_cast<int>(bytes);
    setsockopt(sock_dup_, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
}

// After a sendfile step, on the loop. A reader whose step took kFastStep
// gets --send-buffer-fast while one of the slots is free: the kernel then
// sends a large file from its queue as the reader's ACKs arrive, and the
// worker refills it in a few large sendfile calls instead of one every
// --send-buffer (100 MiB at 256 KiB: 400 socket waits and refills). A step
// that ran out of the reader's allowance (slow_reader) brings the bound
// back to --send-buffer, and the slot is given back only when the kernel
// takes bytes under that bound again, or at close: a reader that turns
// slow (the slow-read attack after a fast start) keeps pinning what it
// queued meanwhile, so the slots bound that memory to
// --send-buffer-fast-total beyond --send-buffer per connection.
void Connection::update_send_boost() {
    const Transfer& tx = s_->tx;
    switch (boost_) {
    case Boost::None:
        if (lowat_full_ && tx.sent >= kFastStep && server_.take_send_boost()) {
            set_lowat(server_.config().send_buffer_fast);
            boost_ = Boost::On;
        }
        break;
    case Boost::On:
        if (tx.slow_reader) {
            set_lowat(server_.config().send_buffer);
            boost_ = Boost::Draining;
        }
        break;
    case Boost::Draining:
        if (tx.sent > 0) {
            server_.give_send_boost();
            boost_ = Boost::None;
        }
        break;
    }
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
