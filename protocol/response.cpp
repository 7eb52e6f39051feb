#include "protocol/response.h"

#include <fmt/format.h>

#include "protocol/http_date.h"
#include "protocol/status.h"

namespace uvh {

namespace {

void field(std::string& out, std::string_view name, std::string_view value) {
    out.append(name);
    out.append(": ");
    out.append(value);
    out.append("\r\n");
}

}  // namespace

void write_response_head(std::string& out, const ResponseHead& h, const Framing& framing,
                         std::string_view date_line, std::string_view server_line) {
    out.append(status_line(h.status));
    out.append(date_line);
    out.append(server_line);
    if (!h.content_type.empty()) field(out, "Content-Type", h.content_type);
    // RFC 9110 §8.6: no Content-Length on 1xx/204; on 304 it could only
    // repeat the 200's value, so it is left out.
    if (status_allows_body(h.status)) {
        out.append("Content-Length: ");
        out.append(fmt::format_int(h.content_length).str());
        out.append("\r\n");
    }
    if (!h.etag.empty()) field(out, "ETag", h.etag);
    if (h.last_modified >= 0) {
        char date[kHttpDateLen];
        format_http_date(h.last_modified, date);
        field(out, "Last-Modified", std::string_view(date, kHttpDateLen));
    }
    if (h.accept_ranges) out.append("Accept-Ranges: bytes\r\n");
    if (!h.content_encoding.empty()) field(out, "Content-Encoding", h.content_encoding);
    if (!h.content_range.empty()) field(out, "Content-Range", h.content_range);
    if (!h.vary.empty()) field(out, "Vary", h.vary);
    if (!h.cache_control.empty()) field(out, "Cache-Control", h.cache_control);
    if (!h.location.empty()) field(out, "Location", h.location);
    if (!h.allow.empty()) field(out, "Allow", h.allow);
    out.append(h.fragment);
    for (int i = 0; i < h.extra_count; ++i) field(out, h.extra[i].name, h.extra[i].value);
    if (!framing.request_id.empty()) field(out, "X-Request-Id", framing.request_id);
    out.append("X-Content-Type-Options: nosniff\r\n");
    if (h.html) out.append("X-Frame-Options: DENY\r\n");
    if (!framing.keep_alive) {
        out.append("Connection: close\r\n");
    } else if (framing.http10) {
        out.append("Connection: keep-alive\r\n");
    }
    out.append("\r\n");
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
