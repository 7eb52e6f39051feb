// The bridge from llhttp's callbacks to a Request. One static settings
// table; the callbacks recover the RequestParser from the embedded llhttp_t
// (as Node's node_http_parser.cc does). The parser pauses after the head and
// after each message, so the connection handles one request at a time and
// pipelined requests stay in order.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/request.h"

namespace uvh {

struct ParserLimits {
    size_t max_target = 8 * 1024;         // 414 beyond
    size_t max_header_bytes = 16 * 1024;  // 431 beyond (names + values)
    size_t max_header_count = 100;        // 431 beyond
};

// Per-request byte storage. The head's bytes from the request-target to the
// last field value are copied here in one piece when the head completes (or
// at the end of each read while a head spans several), so the request
// survives the read buffer being reused. Pooled by the connection layer and
// released while a connection is idle.
struct RequestStorage {
    Request request;
    std::string bytes;     // the head as received, from the target's first byte
    std::string combined;  // list-valued fields that came on several lines
    struct Span {  // offsets into `bytes`
        uint32_t name_off, name_len, value_off, value_len;
        int8_t known = -1;  // which well-known field, if any
    };
    std::vector<Span> spans;
    std::vector<Header> headers;

    // The request itself is rebuilt whole when a head completes.
    void clear() {
        bytes.clear();
        combined.clear();
        spans.clear();
        headers.clear();
    }
    // Gives memory back when a pathological request grew it (inline: a
    // keep-alive connection's storage goes back to the pool after each
    // request).
    void trim(size_t keep) {
        if (bytes.capacity() > keep) std::string().swap(bytes);
        if (combined.capacity() > keep) std::string().swap(combined);
        if (spans.capacity() > 256) std::vector<Span>().swap(spans);
        if (headers.capacity() > 256) std::vector<Header>().swap(headers);
    }
};

class RequestParser {
public:
    enum class Event {
        NeedMore,  // all bytes consumed, waiting for more
        Head,      // request head complete: request() is valid; call resume()
        Complete,  // message complete (body delivered): call next_message()
        Error,     // error_status() / error_message() say what to answer
    };
    using BodyFn = void (*)(void* ctx, const char* data, size_t len);

    RequestParser();
    RequestParser(const RequestParser&) = delete;
    RequestParser& operator=(const RequestParser&) = delete;

    void set_limits(const ParserLimits& l) { limits_ = l; }
    void set_body_sink(BodyFn fn, void* ctx) {
        body_fn_ = fn;
        body_ctx_ = ctx;
    }
    // Storage must be attached before execute() and stay attached while a
    // message is in progress.
    void attach(RequestStorage* s) { storage_ = s; }
    RequestStorage* storage() const { return storage_; }

    // Parses from `data`; stops at the first event. `consumed` tells how
    // many bytes were used; the rest must be offered again (after resume()
    // or next_message()). Calling with len == 0 is valid and completes a
    // message whose last byte was already seen.
    Event execute(const char* data, size_t len, size_t& consumed);

    void resume();        // after Head
    void next_message();  // after Complete

    const Request& request() const { return storage_->request; }
    int error_status() const { return error_status_; }
    std::string_view error_message() const { return error_message_ ? error_message_ : ""; }

    // True when bytes of a request have been received but its head is not
    // complete (used for the header timeout and to decide whether an EOF is
    // an abort).
    bool head_in_progress() const { return started_ && !head_done_; }
    bool message_in_progress() const { return started_; }

    // Bytes of request heads and bodies received in total.
    uint64_t bytes_parsed() const { return bytes_parsed_; }

private:
    static const llhttp_settings_t kSettings;
    static RequestParser& self(llhttp_t* p) { return *static_cast<RequestParser*>(p->data); }

    static int on_message_begin(llhttp_t* p);
    static int on_url(llhttp_t* p, const char* at, size_t len);
    static int on_version_complete(llhttp_t* p);
    static int on_header_field(llhttp_t* p, const char* at, size_t len);
    static int on_header_field_complete(llhttp_t* p);
    static int on_header_value(llhttp_t* p, const char* at, size_t len);
    static int on_headers_complete(llhttp_t* p);
    static int on_body(llhttp_t* p, const char* at, size_t len);
    static int on_message_complete(llhttp_t* p);
    static int on_chunk_extension(llhttp_t* p, const char* at, size_t len);

    int fail(int status, const char* message);
    bool count_header_bytes(size_t len);
    void build_request();
    void classify_method_error();
    // Where `at` (in the buffer being parsed) lies in the head's bytes;
    // opens the head's region at `at` when it is the first byte kept.
    size_t head_offset(const char* at);
    // Keeps the head's bytes of the buffer being parsed: all of them when
    // the buffer ends inside the head (false: too many), up to the last
    // field byte when the head completes.
    bool save_head_bytes(const char* end);
    bool finish_head_bytes();
    size_t head_bytes_limit() const;
    Event sniff_method(const char* data, size_t len, size_t& consumed);
    void keep_line(const char* data, size_t len);

    llhttp_t parser_{};
    ParserLimits limits_;
    RequestStorage* storage_ = nullptr;
    BodyFn body_fn_ = nullptr;
    void* body_ctx_ = nullptr;

    // Per-message state.
    bool started_ = false;
    bool head_done_ = false;
    bool version_seen_ = false;  // the request line had an HTTP-version
    bool in_value_ = false;   // last header callback was a value
    bool value_seen_ = false; // current header already has value bytes
    size_t header_bytes_ = 0;
    size_t chunk_ext_bytes_ = 0;
    // The head's bytes are not copied as llhttp reports them: the target's
    // and the fields' positions are kept as offsets from the target's first
    // byte, and the bytes are copied in one piece (save_head_bytes).
    bool region_open_ = false;
    const char* region_at_ = nullptr;  // the region's start in this buffer, or null
    size_t region_end_ = 0;            // one past the last target/field byte
    size_t url_len_ = 0;
    char last_name_char_ = 0;
    Event pending_ = Event::NeedMore;
    const char* exec_begin_ = nullptr;  // the buffer given to execute()
    char prev_tail_ = 0;                // last byte of the previous buffer

    // The first bytes of the message, to tell an unknown method (501) from
    // garbage (400) even when the request arrives a byte at a time. Copied
    // only when needed: at an invalid method, or when a read ends before
    // the method is complete (method_done_: the target has begun).
    bool method_done_ = false;
    char line_[32] = {};
    size_t line_len_ = 0;
    bool sniffing_ = false;

    int error_status_ = 0;
    const char* error_message_ = nullptr;  // static text (ours or llhttp's)
    uint64_t bytes_parsed_ = 0;
};

}  // namespace uvh
