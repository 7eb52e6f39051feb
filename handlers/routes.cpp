#include "handlers/routes.h"

#include "handlers/dav/lock_methods.h"
#include "handlers/dav/dav.h"
#include "handlers/get_head.h"
#include "handlers/probes.h"
#include "handlers/records.h"
#include "handlers/ui/ui_route.h"
#include "handlers/uploads/uploads.h"
#include "handlers/write_ops.h"
#include "protocol/target.h"

namespace uvh {

namespace {

// ----------------------------------------------------------------- matches

bool is_asterisk(const Site&, const Request& req, std::string_view) {
    // The connection only lets "*" through for OPTIONS (RFC 9112 §3.2.4).
    return req.parsed.form == TargetForm::Asterisk;
}

// Dotfiles (and the server's own temporary files) do not exist as far as
// clients can tell, whatever the method.
bool is_hidden(const Site&, const Request&, std::string_view path) { return has_hidden_segment(path); }

// One record: /database.txt/ID, with ID a single segment.
bool is_record(const Site& site, const Request&, std::string_view path) {
    const std::string& db = site.database_url;
    return path.size() > db.size() + 1 && path.starts_with(db) && path[db.size()] == '/' &&
           path.find('/', db.size() + 1) == std::string_view::npos;
}

// The record store's file itself.
bool is_database(const Site& site, const Request&, std::string_view path) { return path == site.database_url; }

bool any_path(const Site&, const Request&, std::string_view) { return true; }

// A resumable upload's resource: /.uvhttpd-uploads/<32 hex digits>. Any
// other path under that prefix is hidden like every dotfile.
bool is_upload(const Site&, const Request&, std::string_view path) { return is_upload_resource(path); }

// ---------------------------------------------------------------- handlers

void not_found(Exchange& ex) { respond_error(ex, 404, "no such file"); }

void record(Exchange& ex) { handle_record(ex, ex.path().substr(ex.site().database_url.size() + 1)); }

// POST to a directory URL is where the seed's listing form posted a record.
void post_to_path(Exchange& ex) {
    // POST with tus or IETF draft upload fields creates a resumable upload
    // of the file at this path; any other POST keeps its meaning.
    if (is_upload_creation(ex.request())) return handle_upload_create(ex);
    if (is_unsupported_partial_upload(ex.request()))
        return respond_error(ex, 400, "partial upload of an unsupported draft version (this server speaks tus 1.0.0 "
                                      "and Upload-Draft-Interop-Version 5, 6 and 8)");
    if (ex.path().back() == '/') return handle_record_post(ex);
    respond_error(ex, 405, "POST goes to /database.txt (or a directory URL), not to a file",
                  allow_for(ex.site(), ex.path()));
}

// PUT with the IETF draft's Upload-Complete (and an interop version this
// server speaks) creates a resumable upload; otherwise it is a whole-file PUT.
void put_to_path(Exchange& ex) {
    if (is_upload_creation(ex.request())) return handle_upload_create(ex);
    if (is_unsupported_partial_upload(ex.request()))
        return respond_error(ex, 400, "partial upload of an unsupported draft version (this server speaks tus 1.0.0 "
                                      "and Upload-Draft-Interop-Version 5, 6 and 8)");
    handle_put(ex);
}

constexpr MethodRoute options() { return {Method::Options, nullptr, BodyPolicy::Discard, Access::Read, {}}; }
constexpr MethodRoute read(Method m, Handler h) { return {m, h, BodyPolicy::Discard, Access::Read, {}}; }
constexpr MethodRoute write(Method m, Handler h, BodyPolicy body) { return {m, h, body, Access::Write, {}}; }

std::vector<Route> build_table() {
    std::vector<Route> t;

    Route asterisk;
    asterisk.name = "server";
    asterisk.matches = is_asterisk;
    asterisk.methods = {options()};
    asterisk.refusal = "only OPTIONS takes the target *";
    asterisk.server_wide = true;
    asterisk.dav = true;
    t.push_back(std::move(asterisk));

    // The operational endpoints come before files of the same name.
    append_probe_routes(t);

    // Before the dotfile route: the upload's random id is its URL.
    Route upload;
    upload.name = "upload";
    upload.matches = is_upload;
    upload.methods = {read(Method::Head, handle_upload_resource), options(),
                      write(Method::Patch, handle_upload_resource, BodyPolicy::Read),
                      write(Method::Delete, handle_upload_resource, BodyPolicy::Discard)};
    upload.refusal = "an upload takes HEAD, PATCH and DELETE";
    t.push_back(std::move(upload));

    // The listing page's script and stylesheet (handlers/ui/ui_assets.h),
    // also under a prefix no file can take.
    append_ui_route(t);

    Route hidden;
    hidden.name = "hidden";
    hidden.matches = is_hidden;
    hidden.any = not_found;
    t.push_back(std::move(hidden));

    Route rec;
    rec.name = "record";
    rec.matches = is_record;
    rec.methods = {read(Method::Get, record), read(Method::Head, record),
                   write(Method::Put, record, BodyPolicy::Read), write(Method::Delete, record, BodyPolicy::Discard),
                   options()};
    rec.refusal = "a record supports GET, HEAD, PUT and DELETE";
    t.push_back(std::move(rec));

    // Rewriting the store's file directly would bypass its locking: it
    // takes POST (append a record) and is read like a file.
    Route db;
    db.name = "database";
    db.matches = is_database;
    db.methods = {read(Method::Get, handle_database_read), read(Method::Head, handle_database_read),
                  write(Method::Post, handle_record_post, BodyPolicy::Read), options(),
                  {Method::Propfind, handle_propfind, BodyPolicy::Read, Access::Read, {}}};
    db.refusal = "the record store takes POST; records live at /database.txt/ID";
    t.push_back(std::move(db));

    Route files;
    files.name = "files";
    files.matches = any_path;
    MethodRoute mkcol = write(Method::Mkcol, handle_mkcol, BodyPolicy::Refuse);
    mkcol.refusal = "MKCOL takes no request body";
    files.methods = {read(Method::Get, handle_get),
                     read(Method::Head, handle_get),
                     options(),
                     write(Method::Put, put_to_path, BodyPolicy::Read),
                     write(Method::Delete, handle_delete, BodyPolicy::Discard),
                     mkcol,
                     write(Method::Post, post_to_path, BodyPolicy::Read),
                     // RFC 4918 class 2 (handlers/dav/lock_methods.h).
                     write(Method::Lock, handle_lock, BodyPolicy::Read),
                     write(Method::Unlock, handle_unlock, BodyPolicy::Discard),
                     // WebDAV (RFC 4918 §9). PROPFIND reads; the rest write.
                     {Method::Propfind, handle_propfind, BodyPolicy::Read, Access::Read, {}},
                     write(Method::Proppatch, handle_proppatch, BodyPolicy::Read),
                     write(Method::Copy, handle_copy, BodyPolicy::Discard),
                     write(Method::Move, handle_move, BodyPolicy::Discard)};
    files.refusal = "method not implemented";
    files.dav = true;
    t.push_back(std::move(files));

    for (Route& r : t) derive_allow(r);
    // OPTIONS * answers for the resources of the server.
    t.front().allow_writes = t.back().allow_writes;
    t.front().allow_reads = t.back().allow_reads;
    return t;
}

}  // namespace

std::string_view method_token(Method m) {
    switch (m) {
    case Method::Get: return "GET";
    case Method::Head: return "HEAD";
    case Method::Post: return "POST";
    case Method::Put: return "PUT";
    case Method::Delete: return "DELETE";
    case Method::Options: return "OPTIONS";
    case Method::Mkcol: return "MKCOL";
    case Method::Propfind: return "PROPFIND";
    case Method::Proppatch: return "PROPPATCH";
    case Method::Copy: return "COPY";
    case Method::Move: return "MOVE";
    case Method::Lock: return "LOCK";
    case Method::Unlock: return "UNLOCK";
    case Method::Patch: return "PATCH";
    case Method::Other: break;
    }
    return {};
}

const MethodRoute* Route::find(Method m) const {
    for (const MethodRoute& mr : methods)
        if (mr.method == m) return &mr;
    return nullptr;
}

std::string_view Route::allow(const Site& site) const { return site.writes_enabled ? allow_writes : allow_reads; }

void derive_allow(Route& route) {
    route.allow_writes.clear();
    route.allow_reads.clear();
    for (const MethodRoute& mr : route.methods) {
        for (std::string* allow : {&route.allow_writes, &route.allow_reads}) {
            if (allow == &route.allow_reads && mr.access == Access::Write) continue;
            if (!allow->empty()) allow->append(", ");
            allow->append(method_token(mr.method));
        }
    }
}

const std::vector<Route>& route_table() {
    static const std::vector<Route> table = build_table();
    return table;
}

bool method_routed(Method m) {
    static const uint64_t mask = [] {
        uint64_t bits = 0;
        for (const Route& r : route_table())
            for (const MethodRoute& mr : r.methods) bits |= 1ull << static_cast<unsigned>(mr.method);
        return bits;
    }();
    return (mask >> static_cast<unsigned>(m)) & 1;
}

const Route& find_route(const Site& site, const Request& req, std::string_view path) {
    const std::vector<Route>& table = route_table();
    for (const Route& r : table)
        if (r.matches(site, req, path)) return r;
    return table.back();
}

std::string_view allow_for(const Site& site, std::string_view path) {
    static const Request no_request;
    return find_route(site, no_request, path).allow(site);
}

}  // namespace uvh
