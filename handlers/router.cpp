#include "handlers/router.h"

#include "handlers/routes.h"
#include "handlers/uploads/uploads.h"
#include "protocol/auth.h"
#include "protocol/text.h"
#include "protocol/write_origin.h"

namespace uvh {

namespace {

// Writes need the token when one is configured (RFC 9110 §11.6.2).
bool authorized(const Exchange& ex) {
    const std::string& token = ex.site().write_token;
    if (token.empty()) return true;
    std::string secret;
    if (!authorization_secret(ex.request().authorization, secret)) return false;
    return constant_time_equals(secret, token);
}

void respond_unauthorized(Exchange& ex) {
    ResponseHead head;
    std::string_view scheme = trim_ows(ex.request().authorization);
    if (scheme.size() >= 7 && iequals_ascii(scheme.substr(0, 7), "bearer ")) {
        // A Bearer client with a wrong token (RFC 6750 §3.1) gets only the
        // Bearer challenge: a Basic one would make a browser page's
        // request (the listing's file manager) wait behind the browser's
        // own login prompt.
        head.add("WWW-Authenticate", "Bearer realm=\"uvhttpd\", error=\"invalid_token\"");
        return respond_text(ex, 401, "the token was not accepted (Authorization: Bearer TOKEN)", head);
    }
    // Basic first, so browsers offer their login prompt; curl -u :TOKEN
    // and Bearer clients both work.
    head.add("WWW-Authenticate", "Basic realm=\"uvhttpd\", charset=\"UTF-8\"");
    head.add("WWW-Authenticate", "Bearer realm=\"uvhttpd\"");
    respond_text(ex, 401, "writes need the server's token (Authorization: Bearer TOKEN)", head);
}

// Whether the method writes anywhere on this server (the resources' route
// says which of its methods are writes).
bool writes(Method m) {
    const MethodRoute* mr = route_table().back().find(m);
    return mr && mr->access == Access::Write;
}

// The write policy: --read-only, the token, and the guard against DNS
// rebinding and cross-site writes. Returns false when it answered.
bool write_allowed(Exchange& ex, const Route& route) {
    const Request& req = ex.request();
    const Site& site = ex.site();
    if (!site.writes_enabled) {
        respond_error(ex, 405, "this server is read-only", route.allow(site));
        return false;
    }
    if (!authorized(ex)) {
        respond_unauthorized(ex);
        return false;
    }
    // DNS rebinding: without a token, loopback is the only protection, so
    // the request must say it is for a loopback name or an address
    // (protocol/write_origin.h). An HTTP/1.0 request without Host comes
    // from no browser. RFC 9110 §7.4: 421 for a request this server is not
    // configured to answer for that authority.
    if (site.write_token.empty() && !req.host.empty() && !write_host_allowed(req.host, site.allowed_hosts)) {
        respond_error(ex, 421,
                      "writes without a token need Host to be localhost or an IP address "
                      "(allow other names with --allowed-host)");
        return false;
    }
    // A cross-site page may still carry the browser's cached Basic
    // credentials, so this holds with a token too.
    if (classify_write_origin(req.find("origin"), req.find("sec-fetch-site"), req.host, site.allowed_origins) !=
        WriteOrigin::Allowed) {
        respond_error(ex, 403,
                      "cross-site write refused (Origin / Sec-Fetch-Site); "
                      "allow an origin with --allowed-origin");
        return false;
    }
    return true;
}

}  // namespace

std::string_view allowed_methods(const Site& site) { return route_table().back().allow(site); }

void respond_text(Exchange& ex, int status, std::string_view detail, ResponseHead head) {
    std::string& body = ex.text();
    format_error_body(body, status, detail);
    head.status = status;
    head.content_type = "text/plain; charset=utf-8";
    head.content_length = body.size();
    ex.respond(head, Body::mem(body));
}

void dispatch(Exchange& ex) {
    const Request& req = ex.request();
    const Site& site = ex.site();
    // A method no resource takes (WebDAV methods parsed before their
    // handlers exist, LOCK without lock support) is 501, not 405. PATCH is
    // taken by upload resources only: 405 elsewhere.
    if (req.method == Method::Other || !method_routed(req.method))
        return respond_error(ex, 501, "method not implemented");

    const Route& route = find_route(site, req, ex.path());
    if (route.any) return route.any(ex);

    const MethodRoute* m = route.find(req.method);
    if (!m) {
        // RFC 9110 §15.5.6: 405 with the methods the resource does take.
        bool read_only = !site.writes_enabled && writes(req.method);
        return respond_error(ex, 405, read_only ? "this server is read-only" : route.refusal, route.allow(site));
    }
    if (m->access == Access::Write && !write_allowed(ex, route)) return;

    switch (m->body) {
    case BodyPolicy::Read: break;
    case BodyPolicy::Discard: ex.discard_body(); break;
    case BodyPolicy::Refuse:
        if (req.has_body()) return respond_error(ex, 415, m->refusal);
        break;
    }

    if (m->handler) return m->handler(ex);
    // OPTIONS (RFC 9110 §9.3.7): 204 with Allow, for a resource or for "*".
    ResponseHead head;
    head.status = 204;
    head.allow = route.allow(site);
    if (route.dav) {
        // RFC 4918 §10.1, §18: the compliance classes; MS-Author-Via tells
        // Windows' WebDAV client to author through DAV.
        head.add("DAV", "1, 2");
        head.add("MS-Author-Via", "DAV");
    }
    // Where files can be created, the resumable-upload limits (draft §4.1.3)
    // and, to a tus client, what tus this server speaks.
    std::string& fields = ex.text();
    if (&route == &route_table().back() || route.server_wide || is_upload_resource(ex.path()))
        add_upload_options(ex, head, fields);
    ex.respond(head, Body::none());
}

}  // namespace uvh
