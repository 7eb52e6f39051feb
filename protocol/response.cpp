#include "protocol/response.h"

#include <cassert>
#include <cstring>

#include <fmt/format.h>

#include "protocol/http_date.h"
#include "protocol/status.h"

namespace uvh {

namespace {

// Writes a head into a buffer that the caller sized with head_bound(), so
// no piece checks for room: the head of every response goes through here,
// and constant strings (a literal's length is known) are copied inline.
class HeadWriter {
public:
    explicit HeadWriter(char* buf, [[maybe_unused]] size_t size) : p_(buf), begin_(buf) {
#ifndef NDEBUG
        end_ = buf + size;
#endif
    }
    std::string_view text() const { return {begin_, static_cast<size_t>(p_ - begin_)}; }
    [[gnu::always_inline]] void put(std::string_view s) {
        assert(s.size() <= static_cast<size_t>(end_ - p_));
        // memcpy with a null source is undefined, even for 0 bytes.
        if (!s.empty()) std::memcpy(p_, s.data(), s.size());
        p_ += s.size();
    }
    template <size_t N>
    [[gnu::always_inline]] void put(const char (&lit)[N]) {
        assert(N - 1 <= static_cast<size_t>(end_ - p_));
        std::memcpy(p_, lit, N - 1);
        p_ += N - 1;
    }
    void field(std::string_view name, std::string_view value) {
        put(name);
        put(": ");
        put(value);
        put("\r\n");
    }

private:
    char* p_;
    char* begin_;
#ifndef NDEBUG
    char* end_;
#endif
};

// Room for a field line's name, ": " and CRLF (the longest name written
// here, Content-Encoding and X-Request-Id included, is shorter), and for
// the fixed lines that end every head.
constexpr size_t kFieldRoom = 40;
constexpr size_t kTailRoom = 128;

size_t representation_bound(const ResponseHead& h) {
    return 8 * kFieldRoom + h.content_type.size() + h.etag.size() + kHttpDateLen + h.content_encoding.size() +
           h.content_range.size() + h.vary.size() + h.cache_control.size();
}

size_t head_bound(const ResponseHead& h, const Framing& framing, std::string_view status,
                  std::string_view date_line, std::string_view server_line) {
    size_t n = status.size() + date_line.size() + server_line.size() + kFieldRoom + 20 +
               (h.fragment.empty() ? representation_bound(h) : h.fragment.size()) + 3 * kFieldRoom +
               h.location.size() + h.allow.size() + framing.request_id.size() + kTailRoom;
    for (int i = 0; i < h.extra_count; ++i) n += h.extra(i).name.size() + h.extra(i).value.size() + 4;
    return n;
}

// Formatting a date costs a gmtime_r; most responses in a row share their
// Last-Modified (the same hot file), so remember the last one.
std::string_view cached_http_date(time_t t) {
    thread_local time_t last = -1;
    thread_local char text[kHttpDateLen];
    if (t != last) {
        format_http_date(t, text);
        last = t;
    }
    return {text, kHttpDateLen};
}

void write_content_length(HeadWriter& w, uint64_t length) {
    fmt::format_int digits(length);
    w.put("Content-Length: ");
    w.put(std::string_view(digits.data(), digits.size()));
    w.put("\r\n");
}

// The fields that describe the representation (RFC 9110 §8): a cache can
// keep them formatted and pass them as a fragment.
void write_representation(HeadWriter& w, const ResponseHead& h) {
    if (!h.content_type.empty()) w.field("Content-Type", h.content_type);
    if (!h.etag.empty()) w.field("ETag", h.etag);
    if (h.last_modified >= 0) w.field("Last-Modified", cached_http_date(h.last_modified));
    if (h.accept_ranges) w.put("Accept-Ranges: bytes\r\n");
    if (!h.content_encoding.empty()) w.field("Content-Encoding", h.content_encoding);
    if (!h.content_range.empty()) w.field("Content-Range", h.content_range);
    if (!h.vary.empty()) w.field("Vary", h.vary);
    if (!h.cache_control.empty()) w.field("Cache-Control", h.cache_control);
}

void write_head(HeadWriter& w, const ResponseHead& h, const Framing& framing, std::string_view status,
                std::string_view date_line, std::string_view server_line) {
    w.put(status);
    w.put(date_line);
    w.put(server_line);
    // RFC 9110 §8.6: no Content-Length on 1xx/204; on 304 it could only
    // repeat the 200's value, so it is left out.
    if (status_allows_body(h.status) && !h.fragment_has_length) {
        if (h.content_length != ResponseHead::kUnknownLength) {
            write_content_length(w, h.content_length);
        } else if (!framing.http10) {
            // RFC 9112 §7.1: a body of unknown length in chunks; an
            // HTTP/1.0 client gets it delimited by the close instead
            // (§6.3; the connection sets keep_alive false for that).
            w.put("Transfer-Encoding: chunked\r\n");
        }
    }
    if (h.fragment.empty()) {
        write_representation(w, h);
    } else {
        w.put(h.fragment);
    }
    if (!h.location.empty()) w.field("Location", h.location);
    if (!h.allow.empty()) w.field("Allow", h.allow);
    for (int i = 0; i < h.extra_count; ++i) w.field(h.extra(i).name, h.extra(i).value);
    if (!framing.request_id.empty()) {
        w.put("X-Request-Id: ");
        w.put(framing.request_id);
        w.put("\r\n");
    }
    if (h.html) {
        w.put("X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n");
    } else {
        w.put("X-Content-Type-Options: nosniff\r\n");
    }
    if (!framing.keep_alive) {
        w.put("Connection: close\r\n\r\n");
    } else if (framing.http10) {
        w.put("Connection: keep-alive\r\n\r\n");
    } else {
        w.put("\r\n");
    }
}

}  // namespace

void write_response_head(std::string& out, const ResponseHead& h, const Framing& framing,
                         std::string_view date_line, std::string_view server_line) {
    // Almost every head fits in 1 KiB; a long Location or many extra
    // fields are written on the heap.
    // The status line of almost every response, without the table lookup.
    static constexpr std::string_view kOk = "HTTP/1.1 200 OK\r\n";
    std::string_view status = h.status == 200 ? kOk : status_line(h.status);
    size_t bound = head_bound(h, framing, status, date_line, server_line);
    char stack[1024];
    std::string big;
    char* buf = stack;
    if (bound > sizeof stack) {
        big.resize(bound);
        buf = big.data();
    }
    HeadWriter w(buf, bound);
    write_head(w, h, framing, status, date_line, server_line);
    out.append(w.text());
}

std::string representation_fields(const ResponseHead& h) {
    std::string buf(representation_bound(h), '\0');
    HeadWriter w(buf.data(), buf.size());
    write_representation(w, h);
    buf.resize(w.text().size());
    return buf;
}

std::string length_and_representation_fields(const ResponseHead& h) {
    std::string buf(kFieldRoom + 20 + representation_bound(h), '\0');
    HeadWriter w(buf.data(), buf.size());
    write_content_length(w, h.content_length);
    write_representation(w, h);
    buf.resize(w.text().size());
    return buf;
}

void format_error_body(std::string& out, int status, std::string_view detail) {
    out.clear();
    fmt::format_to(std::back_inserter(out), "{} {}", status, reason_phrase(status));
    if (!detail.empty()) {
        out.append(": ");
        // One line: a detail never breaks the body into several.
        for (char c : detail) out.push_back(c == '\r' || c == '\n' ? ' ' : c);
    }
    out.push_back('\n');
}

}  // namespace uvh
