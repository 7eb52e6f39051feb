// Request intake: bytes from the socket through the PROXY header and the
// parser, the checks on a complete head before dispatch, and the request
// body (discarded, or delivered piece by piece to the handler's
// BodyReader), with Expect: 100-continue and the body timeout.
#include <algorithm>

#include "core/connection.h"
#include "core/server.h"
#include "protocol/proxy_protocol.h"
#include "protocol/request_checks.h"
#include "protocol/response.h"
#include "protocol/status.h"

namespace uvh {

namespace {

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

}  // namespace

void Connection::feed(const char* data, size_t len) {
    if (closing_ != Closing::No) return;
    // Date must never lag the clock the files' Last-Modified come from; the
    // refresh is one vDSO call and does nothing within the same second.
    server_.refresh_date();
    ensure_scratch();
    // Bytes on an idle connection start the header timeout, unless they
    // complete a head in this same pass (the common case): then on_head()
    // would take it off again at once, so it is armed after parsing, only
    // when no head was dispatched (same loop time, same deadline).
    bool idle = !in_exchange() && !parser_.message_in_progress() &&
                timeout_node.list != &server_.header_timeouts;
    uint32_t requests_before = requests_;
    in_feed_ = true;
    if (proxy_pending_) {
        s_->pending.append(data, len);
        if (!read_proxy_header()) {
            in_feed_ = false;
            arm_header_timeout_if(idle, requests_before);
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
    arm_header_timeout_if(idle, requests_before);
    after_processing();
}

void Connection::arm_header_timeout_if(bool idle_before, uint32_t requests_before) {
    // No head dispatched since: no exchange now, and none finished.
    if (idle_before && closing_ == Closing::No && !in_exchange() && requests_ == requests_before &&
        timeout_node.list != &server_.header_timeouts)
        arm(server_.header_timeouts);
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

bool Connection::parse_blocked() const {
    if (paused_at_head_ || msg_complete_) return true;
    // Inside a handler's continuation the exchange may end, but the next
    // request must not take the job's slot before the continuation returns
    // (the kick after it parses on); nor while the last exchange's job is
    // still on a worker or releasing what it held.
    if (in_done_ || (!in_exchange() && work_busy())) return true;
    if (body_mode_ == BodyMode::Deliver && reader_ == ReaderState::Busy && s_->body.size() >= s_->tx.reader.chunk)
        return true;
    if (writing_ && s_->out.size() >= kOutHighWater) return true;
    return false;
}

size_t Connection::run_parser(const char* data, size_t len) {
    size_t pos = 0;
    while (closing_ == Closing::No && !parse_blocked()) {
        size_t used = 0;
        RequestParser::Event ev = parser_.execute(data + pos, len - pos, used);
        pos += used;
        if (in_exchange() && !msg_complete_) {
            // Bodies without a declared length are held to the limit as they
            // arrive (declared ones were refused before reading).
            uint64_t max = server_.site().max_body_size;
            if (max != 0 && body_bytes_ > max && !response_started()) {
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
            // Nothing left to parse: a zero-length parse at a message's
            // start can only answer NeedMore (keep-alive requests end here).
            if (pos == len) return pos;
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
    if (!c->work_busy()) c->body_progress(len);
}

void Connection::on_head() {
    exchange_ = ExchangeState::Dispatched;
    paused_at_head_ = true;
    msg_complete_ = false;
    abandoned_ = false;
    expect_continue_ = continue_sent_ = false;
    body_mode_ = BodyMode::Undecided;
    reader_ = ReaderState::Idle;
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
    HeadCheck check = check_request_head(r, s_->path);
    if (check.status != 0) {
        send_error_and_close(check.status, check.reason);
        return;
    }
    expect_continue_ = check.expect_continue;
    server_.application().dispatch(*this);
}

void Connection::on_message_complete() {
    msg_complete_ = true;
    if (timeout_node.list == &server_.body_timeouts) disarm();
    if (body_mode_ == BodyMode::Deliver) deliver_body();
    if (exchange_ == ExchangeState::Responded) finish_exchange();
}

void Connection::on_parse_error() {
    int status = parser_.error_status();
    std::string_view why = parser_.error_message();
    if (response_started()) {
        abort();  // a second response cannot follow the first mid-stream
        return;
    }
    send_error_and_close(status ? status : 400, why);
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

bool Connection::interim(int status, std::span<const ResponseHead::Field> fields) {
    // 101 switches protocols and is not ours to send; HTTP/1.0 clients
    // do not expect 1xx (RFC 9110 §15.2).
    if (status < 102 || status > 199 || request().http10() || abandoned_ || closing_ != Closing::No ||
        response_started())
        return false;
    std::string& out = s_->out;
    out.append(status_line(status));
    for (const ResponseHead::Field& f : fields) {
        out.append(f.name);
        out.append(": ");
        out.append(f.value);
        out.append("\r\n");
    }
    out.append("\r\n");
    kick();
    return true;
}

void Connection::body_consumed() {
    if (reader_ == ReaderState::Busy) reader_ = ReaderState::Idle;
    s_->body_handed.clear();
    deliver_body();
    kick();
}

void Connection::deliver_body() {
    if (body_mode_ != BodyMode::Deliver || reader_ != ReaderState::Idle || abandoned_ ||
        closing_ != Closing::No || response_started())
        return;
    if (!s_->body.empty() && (s_->body.size() >= s_->tx.reader.chunk || msg_complete_)) {
        s_->body_handed.swap(s_->body);
        s_->body.clear();
        reader_ = ReaderState::Busy;
        s_->tx.reader.data(*this, s_->body_handed);
        return;
    }
    if (msg_complete_ && s_->body.empty()) {
        reader_ = ReaderState::Ended;
        s_->tx.reader.end(*this);
    }
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

}  // namespace uvh
