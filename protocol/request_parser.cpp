#include "protocol/request_parser.h"

#include <array>
#include <cstring>
#include <type_traits>

#include "protocol/text.h"

namespace uvh {

std::string_view Request::find(std::string_view name) const {
    for (const Header& h : headers)
        if (iequals_ascii(h.name, name)) return h.value;
    return {};
}

namespace {

bool is_tchar(unsigned char c) {
    // RFC 9110 §5.6.2
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != 0;
}

Method map_method(uint8_t m) {
    switch (m) {
    case HTTP_GET: return Method::Get;
    case HTTP_HEAD: return Method::Head;
    case HTTP_POST: return Method::Post;
    case HTTP_PUT: return Method::Put;
    case HTTP_DELETE: return Method::Delete;
    case HTTP_OPTIONS: return Method::Options;
    case HTTP_MKCOL: return Method::Mkcol;
    case HTTP_PROPFIND: return Method::Propfind;
    case HTTP_PROPPATCH: return Method::Proppatch;
    case HTTP_COPY: return Method::Copy;
    case HTTP_MOVE: return Method::Move;
    case HTTP_LOCK: return Method::Lock;
    case HTTP_UNLOCK: return Method::Unlock;
    case HTTP_PATCH: return Method::Patch;
    default: return Method::Other;
    }
}

// An empty but present field value must still have a non-null data().
constexpr std::string_view kEmpty = "";

}  // namespace

const llhttp_settings_t RequestParser::kSettings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &RequestParser::on_message_begin;
    s.on_url = &RequestParser::on_url;
    s.on_version_complete = &RequestParser::on_version_complete;
    s.on_header_field = &RequestParser::on_header_field;
    s.on_header_field_complete = &RequestParser::on_header_field_complete;
    s.on_header_value = &RequestParser::on_header_value;
    s.on_headers_complete = &RequestParser::on_headers_complete;
    s.on_body = &RequestParser::on_body;
    s.on_message_complete = &RequestParser::on_message_complete;
    s.on_chunk_extension_name = &RequestParser::on_chunk_extension;
    s.on_chunk_extension_value = &RequestParser::on_chunk_extension;
    return s;
}();

RequestParser::RequestParser() {
    llhttp_init(&parser_, HTTP_REQUEST, &kSettings);
    parser_.data = this;
}

int RequestParser::fail(int status, const char* message) {
    error_status_ = status;
    error_message_ = message;
    llhttp_set_error_reason(&parser_, message);
    return HPE_USER;
}

bool RequestParser::count_header_bytes(size_t len) {
    header_bytes_ += len;
    return header_bytes_ <= limits_.max_header_bytes;
}

int RequestParser::on_message_begin(llhttp_t* p) {
    RequestParser& self = RequestParser::self(p);
    self.started_ = true;
    self.head_done_ = false;
    self.version_seen_ = false;
    self.in_value_ = false;
    self.value_seen_ = false;
    self.header_bytes_ = 0;
    self.chunk_ext_bytes_ = 0;
    self.region_open_ = false;
    self.region_at_ = nullptr;
    self.region_end_ = 0;
    self.url_len_ = 0;
    self.storage_->clear();
    return 0;
}

size_t RequestParser::head_offset(const char* at) {
    if (!region_open_) {
        region_open_ = true;
        region_at_ = at;
    }
    if (region_at_) return static_cast<size_t>(at - region_at_);
    return storage_->bytes.size() + static_cast<size_t>(at - exec_begin_);
}

size_t RequestParser::head_bytes_limit() const {
    // Besides the counted target and field bytes, a head holds separators
    // and whitespace: those are bounded too.
    return limits_.max_target + 2 * limits_.max_header_bytes + 4 * limits_.max_header_count + 64;
}

bool RequestParser::save_head_bytes(const char* end) {
    if (!region_open_ || head_done_) return true;
    const char* from = region_at_ ? region_at_ : exec_begin_;
    std::string& b = storage_->bytes;
    if (b.size() + static_cast<size_t>(end - from) > head_bytes_limit()) return false;
    b.append(from, static_cast<size_t>(end - from));
    region_at_ = nullptr;
    return true;
}

bool RequestParser::finish_head_bytes() {
    if (!region_open_) return true;
    if (region_end_ > head_bytes_limit()) return false;
    std::string& b = storage_->bytes;
    size_t have = region_at_ ? 0 : b.size();
    const char* from = region_at_ ? region_at_ : exec_begin_;
    if (region_end_ > have) b.append(from, region_end_ - have);
    region_at_ = nullptr;
    return true;
}

int RequestParser::on_url(llhttp_t* p, const char* at, size_t len) {
    RequestParser& self = RequestParser::self(p);
    self.method_done_ = true;
    size_t end = self.head_offset(at) + len;  // the target comes first: its length so far
    if (end > self.limits_.max_target) return self.fail(414, "request-target too long");
    self.url_len_ = self.region_end_ = end;
    return 0;
}

int RequestParser::on_header_field(llhttp_t* p, const char* at, size_t len) {
    RequestParser& self = RequestParser::self(p);
    if (!self.count_header_bytes(len)) return self.fail(431, "header fields too large");
    if (self.head_done_) return 0;  // trailer fields are counted, not kept
    RequestStorage& s = *self.storage_;
    size_t off = self.head_offset(at);
    if (s.spans.empty() || self.in_value_) {
        if (s.spans.size() >= self.limits_.max_header_count)
            return self.fail(431, "too many header fields");
        s.spans.push_back({static_cast<uint32_t>(off), 0, 0, 0, -1});
        self.in_value_ = false;
        self.value_seen_ = false;
    }
    s.spans.back().name_len += static_cast<uint32_t>(len);
    if (len > 0) self.last_name_char_ = at[len - 1];
    self.region_end_ = off + len;
    return 0;
}

int RequestParser::on_header_field_complete(llhttp_t* p) {
    RequestParser& self = RequestParser::self(p);
    if (self.head_done_) return 0;
    // RFC 9112 §5.1: whitespace between the field name and the colon must
    // be rejected (llhttp keeps it in the name instead).
    const RequestStorage& s = *self.storage_;
    // No field bytes since the last value: the name is empty, which RFC 9110
    // §5.1 does not allow (a field name is a token of at least one char).
    if (s.spans.empty() || self.in_value_ || s.spans.back().name_len == 0)
        return self.fail(400, "empty header field name");
    if (self.last_name_char_ == ' ' || self.last_name_char_ == '\t')
        return self.fail(400, "whitespace between header field name and colon");
    self.in_value_ = true;
    return 0;
}

int RequestParser::on_header_value(llhttp_t* p, const char* at, size_t len) {
    RequestParser& self = RequestParser::self(p);
    if (!self.count_header_bytes(len)) return self.fail(431, "header fields too large");
    if (self.head_done_) return 0;
    RequestStorage& s = *self.storage_;
    if (s.spans.empty()) return 0;
    auto& sp = s.spans.back();
    // llhttp reports an empty value as an empty span right after the line
    // break; it carries nothing, and must not look like obs-fold below.
    if (len == 0) return 0;
    // A value span that starts right after a line break is obs-fold (CRLF
    // then whitespace); a span split by a read boundary starts after a value
    // byte instead. RFC 9112 §5.2 lets a server reject obs-fold with 400,
    // which closes the door to the smuggling tricks it enables.
    char before = at > self.exec_begin_ ? at[-1] : self.prev_tail_;
    if (before == '\n') return self.fail(400, "obsolete line folding in a header field");
    size_t off = self.head_offset(at);
    if (!self.value_seen_) {
        sp.value_off = static_cast<uint32_t>(off);
        self.value_seen_ = true;
    }
    sp.value_len += static_cast<uint32_t>(len);
    self.region_end_ = off + len;
    self.in_value_ = true;
    return 0;
}

int RequestParser::on_version_complete(llhttp_t* p) {
    RequestParser::self(p).version_seen_ = true;
    return 0;
}

int RequestParser::on_headers_complete(llhttp_t* p) {
    RequestParser& self = RequestParser::self(p);
    // llhttp reads "GET /" (no version) as an HTTP/0.9 simple request. RFC
    // 9112 §3 requires the version in every request line, and a simple
    // request is not a version this server could decline with 505: it is a
    // malformed request line (an explicit "HTTP/0.9" still gets 505).
    if (!self.version_seen_) return self.fail(400, "request line without an HTTP version");
    if (!self.finish_head_bytes()) return self.fail(431, "header fields too large");
    self.head_done_ = true;
    self.build_request();
    self.pending_ = Event::Head;
    return HPE_PAUSED;
}

int RequestParser::on_body(llhttp_t* p, const char* at, size_t len) {
    RequestParser& self = RequestParser::self(p);
    if (self.body_fn_) self.body_fn_(self.body_ctx_, at, len);
    return 0;
}

int RequestParser::on_message_complete(llhttp_t* p) {
    RequestParser& self = RequestParser::self(p);
    self.pending_ = Event::Complete;
    return HPE_PAUSED;
}

int RequestParser::on_chunk_extension(llhttp_t* p, const char*, size_t len) {
    RequestParser& self = RequestParser::self(p);
    self.chunk_ext_bytes_ += len;
    // Extensions carry nothing we use; bound them so a client cannot make
    // the server parse an endless chunk header (RFC 9112 §7.1.1).
    if (self.chunk_ext_bytes_ > self.limits_.max_header_bytes)
        return self.fail(400, "chunk extensions too long");
    return 0;
}

namespace {

// How a known field is kept when it arrives on several lines.
enum class Multi : uint8_t {
    First,       // keep the first line (Host duplicates are counted separately)
    List,        // a list: combine the lines with ", " (RFC 9110 §5.3)
    IgnoreAll,   // more than one member makes the field invalid: drop it
    DropRanges,  // an ambiguous Range or If-Range: serve the whole thing
};

struct KnownField {
    std::string_view name;  // lower case
    std::string_view Request::*member;
    Multi multi;
};

constexpr KnownField kKnownFields[] = {
    {"host", &Request::host, Multi::First},
    {"range", &Request::range, Multi::DropRanges},
    {"if-range", &Request::if_range, Multi::DropRanges},
    {"accept", &Request::accept, Multi::List},
    {"expect", &Request::expect, Multi::List},
    {"referer", &Request::referer, Multi::First},
    {"if-match", &Request::if_match, Multi::List},
    {"forwarded", &Request::forwarded, Multi::List},
    {"user-agent", &Request::user_agent, Multi::First},
    {"content-type", &Request::content_type, Multi::First},
    {"x-request-id", &Request::x_request_id, Multi::First},
    {"if-none-match", &Request::if_none_match, Multi::List},
    {"authorization", &Request::authorization, Multi::First},
    {"content-range", &Request::content_range, Multi::First},
    {"accept-encoding", &Request::accept_encoding, Multi::List},
    {"x-forwarded-for", &Request::x_forwarded_for, Multi::List},
    {"if-modified-since", &Request::if_modified_since, Multi::IgnoreAll},
    {"transfer-encoding", &Request::transfer_encoding, Multi::List},
    {"if-unmodified-since", &Request::if_unmodified_since, Multi::IgnoreAll},
};
constexpr int kKnownCount = static_cast<int>(sizeof kKnownFields / sizeof kKnownFields[0]);
constexpr int kHostField = 0;
static_assert(kKnownFields[kHostField].member == &Request::host);

// Compares a token (a header name) with a lower-case name of the same
// length, eight bytes at a time. OR-ing 0x20 lower-cases letters and leaves
// '-' and digits alone; no other byte can be in a token that would then
// compare equal to one of our names.
bool token_equals_lower(std::string_view token, std::string_view lower) {
    size_t n = lower.size(), i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t a, b;
        std::memcpy(&a, token.data() + i, 8);
        std::memcpy(&b, lower.data() + i, 8);
        if ((a | 0x2020202020202020ull) != b) return false;
    }
    for (; i < n; ++i)
        if ((static_cast<unsigned char>(token[i]) | 0x20) != static_cast<unsigned char>(lower[i])) return false;
    return true;
}

// Which known field a name is, looking only at the candidates of its length
// (this runs for every header line of every request).
int classify_field(std::string_view name) {
    static constexpr auto kByLength = [] {
        std::array<std::array<int8_t, 4>, 24> t{};
        for (auto& row : t) row.fill(-1);
        for (int k = 0; k < kKnownCount; ++k) {
            auto& row = t[kKnownFields[k].name.size()];
            for (auto& slot : row) {
                if (slot < 0) {
                    slot = static_cast<int8_t>(k);
                    break;
                }
            }
        }
        return t;
    }();
    if (name.size() >= kByLength.size()) return -1;
    for (int8_t k : kByLength[name.size()]) {
        if (k < 0) break;
        if (token_equals_lower(name, kKnownFields[k].name)) return k;
    }
    return -1;
}

// A known field that came on several lines (RFC 9110 §5.3): the first
// line's value is in place; `count` says how many lines each field had.
void combine_repeated(RequestStorage& s, const int count[kKnownCount]) {
    Request& r = s.request;
    // Combined list values get exactly the room they need, reserved before
    // the first append, so no view into `combined` ever moves.
    s.combined.clear();
    size_t need = 0;
    for (size_t i = 0; i < s.spans.size(); ++i) {
        int k = s.spans[i].known;
        if (k >= 0 && count[k] > 1 && kKnownFields[k].multi == Multi::List) need += s.headers[i].value.size() + 2;
    }
    s.combined.reserve(need);
    bool drop_ranges = false;
    for (int k = 0; k < kKnownCount; ++k) {
        if (count[k] < 2) continue;
        const KnownField& f = kKnownFields[k];
        std::string_view& field = r.*(f.member);
        switch (f.multi) {
        case Multi::First:  // Host duplicates are refused by the checks
            break;
        case Multi::IgnoreAll:
            // More than one member: ignore the field (RFC 9110 §13.1.3-4).
            field = {};
            break;
        case Multi::DropRanges:
            drop_ranges = true;
            break;
        case Multi::List: {
            size_t off = s.combined.size();
            for (size_t i = 0; i < s.spans.size(); ++i) {
                if (s.spans[i].known != k) continue;
                if (s.combined.size() > off) s.combined.append(", ");
                s.combined.append(s.headers[i].value);
            }
            field = std::string_view(s.combined.data() + off, s.combined.size() - off);
            break;
        }
        }
    }
    if (drop_ranges) {
        r.range = {};
        r.if_range = {};
    }
}

}  // namespace

void RequestParser::build_request() {
    RequestStorage& s = *storage_;
    Request& r = s.request;
    // One block copy: assigning Request{} stores each member on its own,
    // which costs more than the rest of a small request's head.
    static_assert(std::is_trivially_copyable_v<Request>);
    static const Request kFresh{};
    std::memcpy(static_cast<void*>(&r), &kFresh, sizeof r);
    uint8_t m = llhttp_get_method(&parser_);
    r.method = map_method(m);
    r.method_name = llhttp_method_name(static_cast<llhttp_method_t>(m));
    r.http_major = parser_.http_major;
    r.http_minor = parser_.http_minor;
    r.target = std::string_view(s.bytes.data(), url_len_);
    r.parsed = parse_target(r.target);

    // One pass: views, which known field each line is, and the first line
    // of each known field as its value; repeated fields are sorted out after.
    s.headers.resize(s.spans.size());
    int count[kKnownCount] = {};
    bool repeated = false;
    for (size_t i = 0; i < s.spans.size(); ++i) {
        auto& sp = s.spans[i];
        Header& h = s.headers[i];
        h.name = std::string_view(s.bytes.data() + sp.name_off, sp.name_len);
        h.value = sp.value_len ? trim_ows(std::string_view(s.bytes.data() + sp.value_off, sp.value_len)) : kEmpty;
        if (h.value.empty()) h.value = kEmpty;
        int k = classify_field(h.name);
        sp.known = static_cast<int8_t>(k);
        if (k < 0) continue;
        if (count[k]++ == 0) {
            r.*(kKnownFields[k].member) = h.value;
        } else {
            repeated = true;
        }
    }
    r.host_count = count[kHostField];
    if (repeated) combine_repeated(s, count);
    r.headers = std::span<const Header>(s.headers.data(), s.headers.size());

    uint16_t flags = parser_.flags;
    r.chunked = (flags & F_CHUNKED) != 0;
    r.has_content_length = (flags & F_CONTENT_LENGTH) != 0;
    r.content_length = r.has_content_length ? parser_.content_length : 0;
    r.keep_alive = llhttp_should_keep_alive(&parser_) != 0;
}

void RequestParser::classify_method_error() {
    // Skip the empty lines a client may send before a request (RFC 9112 §2.2).
    size_t i = 0;
    while (i < line_len_ && (line_[i] == '\r' || line_[i] == '\n')) ++i;
    size_t start = i;
    while (i < line_len_ && is_tchar(static_cast<unsigned char>(line_[i]))) ++i;
    if (i < line_len_) {
        sniffing_ = false;
        if (line_[i] == ' ' && i > start) {
            fail(501, "method not implemented");
        } else {
            fail(400, "malformed request line");
        }
        return;
    }
    if (line_len_ == sizeof line_) {
        sniffing_ = false;
        fail(400, "malformed request line");
        return;
    }
    sniffing_ = true;  // a token so far: wait for the byte that decides
}

void RequestParser::keep_line(const char* data, size_t len) {
    size_t take = std::min(len, sizeof line_ - line_len_);
    if (take == 0) return;
    std::memcpy(line_ + line_len_, data, take);
    line_len_ += take;
}

RequestParser::Event RequestParser::sniff_method(const char* data, size_t len, size_t& consumed) {
    size_t take = std::min(len, sizeof line_ - line_len_);
    std::memcpy(line_ + line_len_, data, take);
    line_len_ += take;
    consumed = len;
    classify_method_error();
    return sniffing_ ? Event::NeedMore : Event::Error;
}

RequestParser::Event RequestParser::execute(const char* data, size_t len, size_t& consumed) {
    consumed = 0;
    if (error_status_) return Event::Error;
    if (sniffing_) return sniff_method(data, len, consumed);
    pending_ = Event::NeedMore;
    const char* cur = data;
    const char* end = data + len;
    for (;;) {
        exec_begin_ = cur;
        llhttp_errno_t err = llhttp_execute(&parser_, cur, static_cast<size_t>(end - cur));
        if (err == HPE_OK) {
            consumed = len;
            bytes_parsed_ += static_cast<uint64_t>(end - cur);
            if (len > 0) prev_tail_ = end[-1];
            // A method not yet complete may still need telling apart (501 or
            // 400) when its end comes in the next read.
            if (!method_done_) keep_line(data, len);
            // The read buffer is reused: keep what it holds of a head.
            if (region_open_ && !head_done_ && !save_head_bytes(end)) {
                fail(431, "header fields too large");
                return Event::Error;
            }
            return Event::NeedMore;
        }
        if (err == HPE_PAUSED_UPGRADE) {
            // We never switch protocols (no h2c, no WebSocket); the bytes
            // after the head are the next HTTP/1.1 request.
            const char* pos = llhttp_get_error_pos(&parser_);
            bytes_parsed_ += static_cast<uint64_t>(pos - cur);
            llhttp_resume_after_upgrade(&parser_);
            cur = pos;
            continue;
        }
        if (err == HPE_PAUSED) {
            const char* pos = llhttp_get_error_pos(&parser_);
            bytes_parsed_ += static_cast<uint64_t>(pos - cur);
            consumed = static_cast<size_t>(pos - data);
            if (consumed > 0) prev_tail_ = pos[-1];
            return pending_;
        }
        consumed = len;
        // Status already set by fail(); from on_headers_complete llhttp
        // reports its own callback error code instead of HPE_USER.
        if (err == HPE_USER || (err == HPE_CB_HEADERS_COMPLETE && error_status_ != 0)) return Event::Error;
        if (err == HPE_INVALID_METHOD) {
            keep_line(data, len);
            classify_method_error();
            return sniffing_ ? Event::NeedMore : Event::Error;
        }
        const char* reason = llhttp_get_error_reason(&parser_);
        if (err == HPE_INVALID_VERSION && reason && std::strstr(reason, "Invalid HTTP version")) {
            fail(505, "HTTP version not supported");
        } else {
            fail(400, reason ? reason : llhttp_errno_name(err));
        }
        return Event::Error;
    }
}

void RequestParser::resume() { llhttp_resume(&parser_); }

void RequestParser::next_message() {
    started_ = false;
    head_done_ = false;
    method_done_ = false;
    region_open_ = false;
    line_len_ = 0;
    llhttp_resume(&parser_);
}

}  // namespace uvh
