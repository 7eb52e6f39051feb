#include "protocol/response.h"

#include <cstring>

#include <fmt/format.h>

#include "protocol/http_date.h"
#include "protocol/status.h"

namespace uvh {

namespace {

// Builds the head in a stack buffer with plain memcpy, then appends it to
// the output in one go: the head of every response goes through here.
class HeadWriter {
public:
    explicit HeadWriter(char* buf, size_t size) : p_(buf), begin_(buf), end_(buf + size) {}
    bool ok() const { return ok_; }
    std::string_view text() const { return {begin_, static_cast<size_t>(p_ - begin_)}; }
    void put(std::string_view s) {
        if (s.empty()) return;  // memcpy with a null source is undefined, even for 0 bytes
        if (static_cast<size_t>(end_ - p_) < s.size()) {
            ok_ = false;
            return;
        }
        std::memcpy(p_, s.data(), s.size());
        p_ += s.size();
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
    char* end_;
    bool ok_ = true;
};

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

void write_head(HeadWriter& w, const ResponseHead& h, const Framing& framing, std::string_view date_line,
                std::string_view server_line) {
    w.put(status_line(h.status));
    w.put(date_line);
    w.put(server_line);
    // RFC 9110 §8.6: no Content-Length on 1xx/204; on 304 it could only
    // repeat the 200's value, so it is left out.
    if (status_allows_body(h.status)) {
        if (h.content_length != ResponseHead::kUnknownLength) {
            w.field("Content-Length", fmt::format_int(h.content_length).c_str());
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
    for (int i = 0; i < h.extra_count; ++i) w.field(h.extra[i].name, h.extra[i].value);
    if (!framing.request_id.empty()) w.field("X-Request-Id", framing.request_id);
    w.put("X-Content-Type-Options: nosniff\r\n");
    if (h.html) w.put("X-Frame-Options: DENY\r\n");
    if (!framing.keep_alive) {
        w.put("Connection: close\r\n");
    } else if (framing.http10) {
        w.put("Connection: keep-alive\r\n");
    }
    w.put("\r\n");
}

}  // namespace

void write_response_head(std::string& out, const ResponseHead& h, const Framing& framing,
                         std::string_view date_line, std::string_view server_line) {
    // Almost every head fits in 1 KiB; a long Location or extra field takes
    // a second try with room on the heap.
    char stack[1024];
    HeadWriter w(stack, sizeof stack);
    write_head(w, h, framing, date_line, server_line);
    if (w.ok()) {
        out.append(w.text());
        return;
    }
    for (size_t room = 4096;; room *= 4) {
        std::string big(room, '\0');
        HeadWriter wb(big.data(), big.size());
        write_head(wb, h, framing, date_line, server_line);
        if (wb.ok()) {
            out.append(wb.text());
            return;
        }
    }
}

std::string representation_fields(const ResponseHead& h) {
    char buf[2048];
    HeadWriter w(buf, sizeof buf);
    write_representation(w, h);
    return w.ok() ? std::string(w.text()) : std::string();
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
