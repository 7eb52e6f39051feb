// The response head writer: status line, the fields every response carries,
// the handler's fields, framing and connection management, appended to the
// connection's output buffer in one pass (RFC 9110 §6, RFC 9112 §4, §6).
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

namespace uvh {

struct ResponseHead {
    int status = 200;
    std::string_view content_type;
    // The representation length announced in Content-Length (for HEAD the
    // length GET would send). Never sent for 1xx, 204 or 304. kUnknownLength:
    // the body goes out chunked (HTTP/1.1) or until the close (HTTP/1.0).
    static constexpr uint64_t kUnknownLength = ~0ull;
    uint64_t content_length = 0;
    std::string_view etag;
    time_t last_modified = -1;  // -1: no Last-Modified
    std::string_view location;
    std::string_view allow;
    std::string_view cache_control;
    std::string_view vary;
    std::string_view content_encoding;
    std::string_view content_range;
    bool accept_ranges = false;  // "Accept-Ranges: bytes"
    bool html = false;           // adds X-Frame-Options: DENY
    bool close = false;          // the server wants to close after this

    // The representation fields (Content-Type, ETag, Last-Modified,
    // Accept-Ranges, Content-Encoding, Content-Range, Vary, Cache-Control)
    // already formatted by representation_fields(), each line ending in
    // CRLF; when set, the fields above are not written again.
    std::string_view fragment;
    // The fragment begins with the Content-Length line for content_length
    // (length_and_representation_fields()): a cached file's 200 then needs
    // no field formatted at all.
    bool fragment_has_length = false;

    struct Field {
        std::string_view name, value;
    };
    static constexpr int kMaxExtra = 10;
    int extra_count = 0;
    void add(std::string_view name, std::string_view value) {
        if (extra_count < kMaxExtra) extras_.f[extra_count++] = {name, value};
    }
    // The i-th added field, i < extra_count.
    const Field& extra(int i) const { return extras_.f[i]; }

private:
    // Left uninitialised: a head is built for every response, and zeroing
    // ten unused fields cost more than filling in the rest of it. Only the
    // first extra_count are ever read.
    union Extras {
        Extras() {}
        Field f[kMaxExtra];
    } extras_;
};

// Whether the connection stays open and how to say so.
struct Framing {
    bool keep_alive = true;  // decided by the connection: request and server state
    bool http10 = false;     // an HTTP/1.0 client needs "Connection: keep-alive"
    std::string_view request_id;  // X-Request-Id, when there is one
};

// Appends the head; `date_line` and `server_line` are complete field lines.
void write_response_head(std::string& out, const ResponseHead& head, const Framing& framing,
                         std::string_view date_line, std::string_view server_line);

// The representation fields of `head`, formatted once so a cache can pass
// them as ResponseHead::fragment on every response.
std::string representation_fields(const ResponseHead& head);
// The same preceded by "Content-Length: head.content_length", for a
// fragment with fragment_has_length (a 200 whose length is known).
std::string length_and_representation_fields(const ResponseHead& head);

// The standard one-line text/plain error body: "404 Not Found: detail\n".
void format_error_body(std::string& out, int status, std::string_view detail);

}  // namespace uvh
