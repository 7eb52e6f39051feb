#include "handlers/probes.h"

#include "handlers/compress/coding_cache.h"
#include "handlers/compress/disk_cache.h"
#include "handlers/file_cache.h"
#include "handlers/metrics.h"
#include "handlers/records/record_backend.h"

namespace uvh {

namespace {

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

// Liveness: the process runs its loop (for restarts by a supervisor).
void handle_health(Exchange& ex) { respond_probe(ex, 200, "ok\n"); }

// Readiness: 503 from the moment a drain starts, so load balancers take the
// server out of rotation before it stops accepting.
void handle_ready(Exchange& ex) {
    const Metrics* m = ex.site().metrics;
    if (m && !m->ready) return respond_probe(ex, 503, "draining\n");
    // A pool so busy that new work waits behind a long queue serves nobody
    // well: tell the load balancer (hardening issue, item 7).
    uint64_t limit = ex.site().ready_max_queue;
    if (m && limit && static_cast<uint64_t>(m->threadpool_jobs + m->listings_waiting) >= limit)
        return respond_probe(ex, 503, "saturated\n");
    // With --records-required, no database means not ready: a load balancer
    // then sends record traffic to an instance that can store it.
    const Site& site = ex.site();
    if (site.records_required && site.records && !site.records->available())
        return respond_probe(ex, 503, "records database unreachable\n");
    respond_probe(ex, 200, "ready\n");
}

// Prometheus text format, for loopback and --metrics-allow clients only.
void handle_metrics(Exchange& ex) {
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
    if (site.codings) {
        for (int i = 0; i < 3; ++i) m->compressions[i] = site.codings->compressions(static_cast<Coding>(i + 1));
        m->coding_cache_hits = site.codings->hits();
        m->coding_cache_bytes = site.codings->bytes();
    }
    if (const DiskCodingCache* d = site.disk_codings) {
        m->disk_codings = true;
        m->disk_hits = d->hits();
        m->disk_misses = d->misses();
        m->disk_compressions = d->compressions();
        m->disk_written = d->written();
        m->disk_evictions = d->evictions();
        m->disk_bytes = d->bytes();
        m->disk_max_bytes = d->max_bytes();
    }
    std::string& body = ex.text();
    m->render(body);
    ResponseHead head;
    head.content_type = "text/plain; version=0.0.4; charset=utf-8";
    head.cache_control = "no-store";
    head.content_length = body.size();
    ex.respond(head, Body::mem(body));
}

template <std::string Site::*Path>
bool at(const Site& site, const Request&, std::string_view path) {
    const std::string& p = site.*Path;
    return !p.empty() && path == p;
}

Route probe(std::string_view name, bool (*matches)(const Site&, const Request&, std::string_view), Handler h) {
    Route r;
    r.name = name;
    r.matches = matches;
    r.methods = {{Method::Get, h, BodyPolicy::Discard, Access::Read, {}},
                 {Method::Head, h, BodyPolicy::Discard, Access::Read, {}}};
    r.refusal = "this endpoint answers GET and HEAD";
    return r;
}

}  // namespace

void append_probe_routes(std::vector<Route>& table) {
    table.push_back(probe("health", at<&Site::health_path>, handle_health));
    table.push_back(probe("ready", at<&Site::ready_path>, handle_ready));
    table.push_back(probe("metrics", at<&Site::metrics_path>, handle_metrics));
}

}  // namespace uvh
