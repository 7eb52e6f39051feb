#include "protocol/request_checks.h"

#include "protocol/target.h"
#include "protocol/text.h"

namespace uvh {

namespace {

HeadCheck reject(int status, std::string_view reason) { return HeadCheck{status, reason, false}; }

}  // namespace

HeadCheck check_request_head(const Request& r, std::string& path) {
    if (r.http_major != 1 || r.http_minor > 1) return reject(505, "only HTTP/1.0 and HTTP/1.1 are supported");
    // RFC 9112 §3.2: exactly one valid Host in HTTP/1.1.
    if (r.host_count > 1) return reject(400, "more than one Host header field");
    if (r.host_count == 0 && r.http_minor == 1) return reject(400, "missing Host header field");
    if (r.host.data() && !valid_host(r.host)) return reject(400, "invalid Host header field");
    if (r.transfer_encoding.data()) {
        // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
        if (r.http10()) return reject(400, "Transfer-Encoding in an HTTP/1.0 request");
        // RFC 9112 §6.3: unless chunked is the final coding the body length
        // cannot be known: 400 and close.
        std::string_view te = trim_ows(r.transfer_encoding);
        size_t comma = te.rfind(',');
        std::string_view last = trim_ows(comma == std::string_view::npos ? te : te.substr(comma + 1));
        if (!iequals_ascii(last, "chunked")) return reject(400, "Transfer-Encoding does not end in chunked");
        // RFC 9112 §6.1: a coding we do not understand is a 501.
        if (!iequals_ascii(te, "chunked")) return reject(501, "transfer coding not implemented");
    }
    // CONNECT (RFC 9110 §9.3.6) asks for a tunnel to the authority-form
    // target host:port (RFC 9112 §3.2.3). This server is not a proxy: a
    // well-formed CONNECT is 501 (the method is not implemented here), a
    // CONNECT to anything but host:port is a malformed request, 400.
    if (r.method_name == "CONNECT") {
        if (!valid_authority_form(r.target)) return reject(400, "CONNECT needs an authority-form target (host:port)");
        return reject(501, "CONNECT is not supported: this server is not a proxy");
    }
    switch (r.parsed.form) {
    case TargetForm::Invalid:
        return reject(400, "malformed request-target");
    case TargetForm::Asterisk:
        // RFC 9112 §3.2.4: asterisk-form is only for OPTIONS.
        if (r.method != Method::Options) return reject(400, "the '*' target is only valid for OPTIONS");
        path.assign("*");
        break;
    case TargetForm::Origin:
    case TargetForm::Absolute: {
        PathStatus ps = normalize_path(r.parsed.path, path);
        if (ps != PathStatus::Ok) return reject(400, path_status_message(ps));
        break;
    }
    }
    HeadCheck ok;
    if (r.expect.data() && !r.http10()) {
        // RFC 9110 §10.1.1: 100-continue is the only expectation; HTTP/1.0
        // requests have theirs ignored.
        if (!iequals_ascii(trim_ows(r.expect), "100-continue"))
            return reject(417, "only the 100-continue expectation is supported");
        ok.expect_continue = r.has_body();
    }
    return ok;
}

}  // namespace uvh
