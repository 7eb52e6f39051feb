#include "handlers/router.h"

#include "handlers/file_cache.h"
#include "handlers/get_head.h"
#include "handlers/metrics.h"
#include "handlers/records.h"
#include "handlers/write_ops.h"
#include "protocol/auth.h"
#include "protocol/target.h"
#include "protocol/write_origin.h"

namespace uvh {

namespace {

constexpr std::string_view kReadMethods = "GET, HEAD, OPTIONS";
constexpr std::string_view kAllMethods = "GET, HEAD, OPTIONS, PUT, DELETE, MKCOL, POST";

void handle_options(Exchange& ex) {
    // RFC 9110 §9.3.7: 204 with Allow, for a resource or for "*".
    ResponseHead head;
    head.status = 204;
    head.allow = allowed_methods(ex.site());
    ex.respond(head, Body::none());
}

bool is_write(Method m) {
    return m == Method::Put || m == Method::Delete || m == Method::Mkcol || m == Method::Post;
}

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
    // Basic first, so browsers offer their login prompt; curl -u :TOKEN
    // and Bearer clients both work.
    head.add("WWW-Authenticate", "Basic realm=\"uvhttpd\", charset=\"UTF-8\"");
    head.add("WWW-Authenticate", "Bearer realm=\"uvhttpd\"");
    respond_text(ex, 401, "writes need the server's token (Authorization: Bearer TOKEN)", head);
}

constexpr std::string_view kProbeMethods = "GET, HEAD";

void respond_probe(Exchange& ex, int status, std::string_view text) {
    std::string& body = ex.text();
    body.assign(text);
    ResponseHead head;
    head.status = status;
    head.content_type = "text/plain; charset=utf-8";
    head.cache_control = "no-store";
    head.content_length = body.size();
    ex.respond(head, Body::mem(body));
}

bool probe_method(Exchange& ex) {
    Method m = ex.request().method;
    if (m == Method::Get || m == Method::Head) {
        ex.discard_body();
        return true;
    }
    respond_error(ex, 405, "this endpoint answers GET and HEAD", kProbeMethods);
    return false;
}

// Liveness: the process runs its loop (for restarts by a supervisor).
void handle_health(Exchange& ex) {
    if (probe_method(ex)) respond_probe(ex, 200, "ok\n");
}

// Readiness: 503 from the moment a drain starts, so load balancers take the
// server out of rotation before it stops accepting.
void handle_ready(Exchange& ex) {
    if (!probe_method(ex)) return;
    const Metrics* m = ex.site().metrics;
    if (m && !m->ready) return respond_probe(ex, 503, "draining\n");
    // A pool so busy that new work waits behind a long queue serves nobody
    // well: tell the load balancer (hardening issue, item 7).
    uint64_t limit = ex.site().ready_max_queue;
    if (m && limit && static_cast<uint64_t>(m->threadpool_jobs + m->listings_waiting) >= limit)
        return respond_probe(ex, 503, "saturated\n");
    respond_probe(ex, 200, "ready\n");
}

// Prometheus text format, for loopback and --metrics-allow clients only.
void handle_metrics(Exchange& ex) {
    if (!probe_method(ex)) return;
    const Site& site = ex.site();
    const PeerAddress& client = ex.client();
    if (!client.is_loopback() && !any_contains(site.metrics_allow, client))
        return respond_error(ex, 403, "metrics are served to loopback and --metrics-allow clients only");
    Metrics* m = site.metrics;
    if (!m) return respond_error(ex, 404, "no such file");
    if (site.cache) {
        m->cache_hits = site.cache->hits();
        m->cache_misses = site.cache->misses();
        m->cache_bytes = site.cache->bytes();
    }
    std::string& body = ex.text();
    m->render(body);
    ResponseHead head;
    head.content_type = "text/plain; version=0.0.4; charset=utf-8";
    head.cache_control = "no-store";
    head.content_length = body.size();
    ex.respond(head, Body::mem(body));
}

}  // namespace

std::string_view allowed_methods(const Site& site) { return site.writes_enabled ? kAllMethods : kReadMethods; }

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

    if (req.parsed.form == TargetForm::Asterisk) {
        // The connection only lets "*" through for OPTIONS (RFC 9112 §3.2.4).
        ex.discard_body();
        return handle_options(ex);
    }
    if (req.method == Method::Other) return respond_error(ex, 501, "method not implemented");

    std::string_view path = ex.path();
    // The operational endpoints come before files of the same name.
    if (!site.health_path.empty() && path == site.health_path) return handle_health(ex);
    if (!site.ready_path.empty() && path == site.ready_path) return handle_ready(ex);
    if (!site.metrics_path.empty() && path == site.metrics_path) return handle_metrics(ex);
    if (has_hidden_segment(path)) {
        // Dotfiles (and the server's own temporary files) do not exist as
        // far as clients can tell, whatever the method.
        return respond_error(ex, 404, "no such file");
    }
    if (is_write(req.method)) {
        if (!site.writes_enabled) return respond_error(ex, 405, "this server is read-only", kReadMethods);
        if (!authorized(ex)) return respond_unauthorized(ex);
        // DNS rebinding: without a token, loopback is the only protection,
        // so the request must say it is for a loopback name or an address
        // (protocol/write_origin.h). An HTTP/1.0 request without Host comes
        // from no browser. RFC 9110 §7.4: 421 for a request this server is
        // not configured to answer for that authority.
        if (site.write_token.empty() && !req.host.empty() && !write_host_allowed(req.host, site.allowed_hosts)) {
            return respond_error(ex, 421,
                                 "writes without a token need Host to be localhost or an IP address "
                                 "(allow other names with --allowed-host)");
        }
        // A cross-site page may still carry the browser's cached Basic
        // credentials, so this holds with a token too.
        if (classify_write_origin(req.find("origin"), req.find("sec-fetch-site"), req.host, site.allowed_origins) !=
            WriteOrigin::Allowed) {
            return respond_error(ex, 403,
                                 "cross-site write refused (Origin / Sec-Fetch-Site); "
                                 "allow an origin with --allowed-origin");
        }
    }

    // The record store: /database.txt itself, and one record per
    // /database.txt/ID.
    const std::string& db = site.database_url;
    if (path.size() > db.size() + 1 && path.starts_with(db) && path[db.size()] == '/' &&
        path.find('/', db.size() + 1) == std::string_view::npos) {
        if (req.method == Method::Options) {
            ex.discard_body();
            ResponseHead head;
            head.status = 204;
            head.allow = site.writes_enabled ? kRecordMethods : kReadMethods;
            return ex.respond(head, Body::none());
        }
        return handle_record(ex, path.substr(db.size() + 1));
    }
    bool is_db = path == db;
    if (is_db && req.method != Method::Get && req.method != Method::Head && req.method != Method::Post &&
        req.method != Method::Options) {
        // Rewriting the store's file directly would bypass its locking.
        return respond_error(ex, 405, "the record store takes POST; records live at /database.txt/ID",
                             kDatabaseMethods);
    }
    if (req.method == Method::Post && (is_db || path.back() == '/')) return handle_record_post(ex);

    switch (req.method) {
    case Method::Get:
    case Method::Head:
        ex.discard_body();
        return handle_get(ex);
    case Method::Options:
        ex.discard_body();
        return handle_options(ex);
    case Method::Put:
        return handle_put(ex);
    case Method::Delete:
        ex.discard_body();
        return handle_delete(ex);
    case Method::Mkcol:
        return handle_mkcol(ex);
    case Method::Post:
        return respond_error(ex, 405, "POST goes to /database.txt (or a directory URL), not to a file",
                             allowed_methods(site));
    case Method::Other:
        break;
    }
    respond_error(ex, 501, "method not implemented");
}

}  // namespace uvh
