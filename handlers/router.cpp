#include "handlers/router.h"

#include "handlers/get_head.h"
#include "protocol/target.h"

namespace uvh {

namespace {

constexpr std::string_view kReadMethods = "GET, HEAD, OPTIONS";

void handle_options(Exchange& ex) {
    // RFC 9110 §9.3.7: 204 with Allow, for a resource or for "*".
    ResponseHead head;
    head.status = 204;
    head.allow = allowed_methods(ex.site());
    ex.respond(head, Body::none());
}

}  // namespace

std::string_view allowed_methods(const Site&) { return kReadMethods; }

void respond_error(Exchange& ex, int status, std::string_view detail, std::string_view allow) {
    std::string& body = ex.text();
    format_error_body(body, status, detail);
    ResponseHead head;
    head.status = status;
    head.content_type = "text/plain; charset=utf-8";
    head.content_length = body.size();
    head.allow = allow;
    ex.respond(head, Body::mem(body));
}

void dispatch(Exchange& ex) {
    const Request& req = ex.request();
    const Site& site = ex.site();

    if (req.parsed.form == TargetForm::Asterisk) {
        // The connection only lets "*" through for OPTIONS (RFC 9112 §3.2.4).
        ex.discard_body();
        return handle_options(ex);
    }

    std::string_view path = ex.path();
    switch (req.method) {
    case Method::Get:
    case Method::Head:
        ex.discard_body();
        if (has_hidden_segment(path)) return respond_error(ex, 404, "no such file");
        return handle_get(ex);
    case Method::Options:
        ex.discard_body();
        return handle_options(ex);
    case Method::Put:
    case Method::Delete:
    case Method::Mkcol:
    case Method::Post:
        return respond_error(ex, 405, "this server does not accept writes", allowed_methods(site));
    case Method::Other:
        break;
    }
    respond_error(ex, 501, "method not implemented");
}

}  // namespace uvh
