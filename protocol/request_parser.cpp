#include "protocol/request_parser.h"

#include <cstring>

namespace uvh {

bool iequals_ascii(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
        if (x >= 'A' && x <= 'Z') x = static_cast<unsigned char>(x + 32);
        if (y >= 'A' && y <= 'Z') y = static_cast<unsigned char>(y + 32);
        if (x != y) return false;
    }
    return true;
}

std::string_view Request::find(std::string_view name) const {
    for (const Header& h : headers)
        if (iequals_ascii(h.name, name)) return h.value;
    return {};
}

void RequestStorage::trim(size_t keep) {
    if (bytes.capacity() > keep) std::string().swap(bytes);
    if (combined.capacity() > keep) std::string().swap(combined);
    if (spans.capacity() > 256) std::vector<Span>().swap(spans);
    if (headers.capacity() > 256) std::vector<Header>().swap(headers);
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
    default: return Method::Other;
    }
}

std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    return s;
}

// An empty but present field value must still have a non-null data().
constexpr std::string_view kEmpty = "";

}  // namespace

const llhttp_settings_t RequestParser::kSettings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &RequestParser::on_message_begin;
    s.on_url = &RequestParser::on_url;
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
    self.in_value_ = false;
    self.value_seen_ = false;
    self.header_bytes_ = 0;
    self.chunk_ext_bytes_ = 0;
    self.storage_->clear();
    return 0;
}

int RequestParser::on_url(llhttp_t* p, const char* at, size_t len) {
    RequestParser& self = RequestParser::self(p);
    std::string& b = self.storage_->bytes;
    if (b.size() + len > self.limits_.max_target) return self.fail(414, "request-target too long");
    b.append(at, len);
    return 0;
}

int RequestParser::on_header_field(llhttp_t* p, const char* at, size_t len) {
    RequestParser& self = RequestParser::self(p);
    if (!self.count_header_bytes(len)) return self.fail(431, "header fields too large");
    if (self.head_done_) return 0;  // trailer fields are counted, not kept
    RequestStorage& s = *self.storage_;
    if (s.spans.empty() || self.in_value_) {
        if (s.spans.size() >= self.limits_.max_header_count)
            return self.fail(431, "too many header fields");
        s.spans.push_back({static_cast<uint32_t>(s.bytes.size()), 0, 0, 0});
        self.in_value_ = false;
        self.value_seen_ = false;
    }
    s.bytes.append(at, len);
    s.spans.back().name_len += static_cast<uint32_t>(len);
    return 0;
}

int RequestParser::on_header_field_complete(llhttp_t* p) {
    RequestParser& self = RequestParser::self(p);
    if (self.head_done_) return 0;
    // RFC 9112 §5.1: whitespace between the field name and the colon must
    // be rejected (llhttp keeps it in the name instead).
    const RequestStorage& s = *self.storage_;
    if (!s.spans.empty()) {
        const auto& sp = s.spans.back();
        if (sp.name_len > 0) {
            char last = s.bytes[sp.name_off + sp.name_len - 1];
            if (last == ' ' || last == '\t')
                return self.fail(400, "whitespace between header field name and colon");
        }
    }
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
    // A value span that starts right after a line break is obs-fold (CRLF
    // then whitespace); a span split by a read boundary starts after a value
    // byte instead. RFC 9112 §5.2 lets a server reject obs-fold with 400,
    // which closes the door to the smuggling tricks it enables.
    char before = at > self.exec_begin_ ? at[-1] : self.prev_tail_;
    if (before == '\n') return self.fail(400, "obsolete line folding in a header field");
    if (!self.value_seen_) {
        sp.value_off = static_cast<uint32_t>(s.bytes.size());
        self.value_seen_ = true;
    }
    s.bytes.append(at, len);
    sp.value_len += static_cast<uint32_t>(len);
    self.in_value_ = true;
    return 0;
}

int RequestParser::on_headers_complete(llhttp_t* p) {
    RequestParser& self = RequestParser::self(p);
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

void RequestParser::build_request() {
    RequestStorage& s = *storage_;
    Request& r = s.request;
    r = Request{};
    uint8_t m = llhttp_get_method(&parser_);
    r.method = map_method(m);
    r.method_name = llhttp_method_name(static_cast<llhttp_method_t>(m));
    r.http_major = parser_.http_major;
    r.http_minor = parser_.http_minor;
    size_t url_len = s.spans.empty() ? s.bytes.size() : s.spans.front().name_off;
    r.target = std::string_view(s.bytes.data(), url_len);
    r.parsed = parse_target(r.target);

    // Reserve once so views into `combined` never move.
    s.combined.reserve(s.bytes.size() + 2 * s.spans.size() + 1);
    s.headers.resize(s.spans.size());
    bool range_dup = false;
    for (size_t i = 0; i < s.spans.size(); ++i) {
        const auto& sp = s.spans[i];
        Header& h = s.headers[i];
        h.name = std::string_view(s.bytes.data() + sp.name_off, sp.name_len);
        h.value = sp.value_len ? trim_ows(std::string_view(s.bytes.data() + sp.value_off, sp.value_len))
                               : kEmpty;
        if (h.value.empty()) h.value = kEmpty;

        std::string_view* list_field = nullptr;
        std::string_view* single_field = nullptr;
        switch (h.name.size()) {
        case 4:
            if (iequals_ascii(h.name, "host")) {
                ++r.host_count;
                single_field = &r.host;
            }
            break;
        case 5:
            if (iequals_ascii(h.name, "range")) {
                if (r.range.data()) range_dup = true;
                single_field = &r.range;
            }
            break;
        case 6:
            if (iequals_ascii(h.name, "accept")) list_field = &r.accept;
            else if (iequals_ascii(h.name, "expect")) list_field = &r.expect;
            break;
        case 7:
            if (iequals_ascii(h.name, "referer")) single_field = &r.referer;
            break;
        case 8:
            if (iequals_ascii(h.name, "if-match")) list_field = &r.if_match;
            else if (iequals_ascii(h.name, "if-range")) {
                if (r.if_range.data()) range_dup = true;
                single_field = &r.if_range;
            }
            break;
        case 9:
            if (iequals_ascii(h.name, "forwarded")) list_field = &r.forwarded;
            break;
        case 10:
            if (iequals_ascii(h.name, "user-agent")) single_field = &r.user_agent;
            break;
        case 12:
            if (iequals_ascii(h.name, "content-type")) single_field = &r.content_type;
            else if (iequals_ascii(h.name, "x-request-id")) single_field = &r.x_request_id;
            break;
        case 13:
            if (iequals_ascii(h.name, "if-none-match")) list_field = &r.if_none_match;
            else if (iequals_ascii(h.name, "authorization")) single_field = &r.authorization;
            else if (iequals_ascii(h.name, "content-range")) single_field = &r.content_range;
            break;
        case 15:
            if (iequals_ascii(h.name, "accept-encoding")) list_field = &r.accept_encoding;
            else if (iequals_ascii(h.name, "x-forwarded-for")) list_field = &r.x_forwarded_for;
            break;
        case 17:
            if (iequals_ascii(h.name, "if-modified-since")) single_field = &r.if_modified_since;
            else if (iequals_ascii(h.name, "transfer-encoding")) list_field = &r.transfer_encoding;
            break;
        case 19:
            if (iequals_ascii(h.name, "if-unmodified-since")) single_field = &r.if_unmodified_since;
            break;
        default:
            break;
        }
        if (list_field) {
            if (!list_field->data()) {
                *list_field = h.value;
            } else {
                size_t off = s.combined.size();
                s.combined.append(*list_field);
                s.combined.append(", ");
                s.combined.append(h.value);
                *list_field = std::string_view(s.combined.data() + off, s.combined.size() - off);
            }
        } else if (single_field) {
            if (!single_field->data()) {
                *single_field = h.value;
            } else if (single_field == &r.if_modified_since || single_field == &r.if_unmodified_since) {
                // More than one member: ignore the field (RFC 9110 §13.1.3-4).
                *single_field = std::string_view{};
            }
            // Otherwise keep the first; Host duplicates are caught by count.
        }
    }
    if (range_dup) {
        // An ambiguous Range or If-Range: send the whole representation.
        r.range = {};
        r.if_range = {};
    }
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
    if (line_len_ < sizeof line_ && len > 0) {
        size_t take = std::min(len, sizeof line_ - line_len_);
        std::memcpy(line_ + line_len_, data, take);
        line_len_ += take;
    }
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
        if (err == HPE_USER) return Event::Error;  // status already set by fail()
        if (err == HPE_INVALID_METHOD) {
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
    line_len_ = 0;
    llhttp_resume(&parser_);
}

}  // namespace uvh
