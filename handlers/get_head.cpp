#include "handlers/get_head.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "handlers/compress/coding_cache.h"
#include "handlers/compress/compress_source.h"
#include "handlers/fd_cache.h"
#include "handlers/file_cache.h"
#include "handlers/file_response.h"
#include "handlers/fs_ops.h"
#include "handlers/get_codings.h"
#include "handlers/get_job.h"
#include "handlers/listing.h"
#include "handlers/ui/ui_assets.h"
#include "handlers/ui/ui_route.h"
#include "protocol/etag.h"
#include "protocol/mime.h"
#include "protocol/negotiate.h"
#include "protocol/percent.h"
#include "protocol/target.h"

namespace uvh {

namespace {

void serve_opened_file(Exchange& ex, GetJob& job) {
    const Site& site = ex.site();
    const uint64_t size = static_cast<uint64_t>(job.st.st_size);
    std::string etag = make_etag({static_cast<uint64_t>(job.st.st_ino), size, job.st.st_mtim.tv_sec,
                                  job.st.st_mtim.tv_nsec});
    std::string identity_etag = job.encoding.empty()
                                    ? etag
                                    : make_etag({static_cast<uint64_t>(job.id_st.st_ino),
                                                 static_cast<uint64_t>(job.id_st.st_size), job.id_st.st_mtim.tv_sec,
                                                 job.id_st.st_mtim.tv_nsec});
    PathRecord* rec = record_facts(ex, job, identity_etag);
    std::string_view type = mime_type_for(job.served_rel);
    bool has_siblings = job.siblings_present != 0;

    if (job.not_acceptable) {
        // RFC 9110 §12.5.3: identity refused ("identity;q=0" or "*;q=0")
        // and no coding the client accepts can be sent.
        ex.close_later(job.take_fd());
        ResponseHead h;
        h.vary = "Accept-Encoding";
        return respond_text(ex, 406, "no acceptable content coding (Accept-Encoding refuses identity)", h);
    }
    if (job.on_the_fly && job.disk_fd >= 0) return serve_disk_coded(ex, job, identity_etag);
    if (job.on_the_fly && !range_from_identity(ex.request(), identity_etag, job.st.st_mtim.tv_sec)) {
        if (rec && size <= site.codings->max_file()) {
            if (serve_or_wait(ex, *rec, job.coding, job.may_start)) {
                if (job.fd >= 0) ex.close_later(job.take_fd());
                return;
            }
        } else if (size > (site.codings ? site.codings->max_file() : 0)) {
            if (wait_for_disk_coded(ex, job, identity_etag)) return;
            return serve_streamed(ex, job, identity_etag);
        }
        // Otherwise identity: the compression failed, or waiting is over.
    }

    FileView v;
    v.size = size;
    v.etag = etag;
    v.last_modified = job.st.st_mtim.tv_sec;
    v.content_type = type;
    v.encoding = job.encoding;
    v.vary = vary_for(site.compress, type, has_siblings);
    v.database = job.database;
    v.in_memory = job.in_memory && job.data.size() == size;
    v.data = job.data;
    v.job = &job;

    // A large file sent as it is keeps its descriptor for the next
    // requests (fd_cache.h).
    FdCache* fds = site.fd_cache;
    if (fds && job.use_fd_cache && !v.in_memory && job.cacheable && job.encoding.empty() && !job.on_the_fly &&
        size > site.inline_max) {
        v.fds = fds;
        uint8_t known = static_cast<uint8_t>(job.siblings_present | job.siblings_absent | job.skip_probe);
        v.shared = fds->store_open(ex.path(), job.take_fd(), job.st, job.file_generation, job.siblings_present,
                                   known, job.served_rel, job.fd_started_generation, ex.now_ms());
    }

    FileCache* cache = site.cache;
    if (cache && v.in_memory && !v.database && job.cacheable && ex.request().method == Method::Get &&
        ((job.siblings_present | job.siblings_absent | job.skip_probe) & kAllCodings) == kAllCodings) {
        CachedRep rep;
        rep.dev = job.st.st_dev;
        rep.ino = job.st.st_ino;
        rep.file_generation = job.file_generation;
        rep.content = job.data;
        rep.etag = etag;
        rep.content_type = v.content_type;
        rep.compressible = site.compress && site.compress->compressible(v.content_type);
        rep.encoding = v.encoding;
        rep.last_modified = v.last_modified;
        ResponseHead h;
        h.content_type = v.content_type;
        h.etag = etag;
        h.last_modified = v.last_modified;
        h.accept_ranges = true;
        h.content_encoding = v.encoding;
        h.vary = v.vary;
        h.cache_control = site.cache_control;
        h.content_length = job.data.size();
        rep.fields = length_and_representation_fields(h);
        bool exists[CachedEntry::kVariants] = {true, false, false, false};
        for (int i = 1; i < CachedEntry::kVariants; ++i) exists[i] = job.siblings_present & (1u << i);
        cache->store(ex.path(), static_cast<CachedEntry::Variant>(job.on_the_fly ? 0 : static_cast<int>(job.coding)),
                     std::move(rep), exists, job.started_generation, ex.now_ms());
    }
    serve_view(ex, v);
    if (v.shared) fds->release(v.shared);  // the response holds its own reference
    // A file served from memory (or not at all: 304, 412, 416) no longer
    // needs its descriptor.
    if (job.fd >= 0) ex.close_later(job.take_fd());
}

// Whether a client with these codings gets the file as it is: the job that
// opened it looked for every sibling the client accepts, and neither a
// sibling nor the server's own compression wins (else the normal path).
bool identity_for(const Exchange& ex, const OpenFile& f, const AcceptedCodings& accepted) {
    if (accepted.accepted_mask() & ~f.sib_known) return false;
    uint8_t fly = on_the_fly_codings(ex.site().compress, mime_type_for(f.served_rel),
                                     static_cast<uint64_t>(f.st.st_size), accepted);
    Coding c = Coding::Identity;
    return choose_coding(accepted, f.sib_present | fly, c) && c == Coding::Identity;
}

// Serves a large file whose descriptor the cache holds: no threadpool
// round trip before the sendfile steps.
void serve_shared(Exchange& ex, FdCache& fds, OpenFile& f) {
    const uint64_t size = static_cast<uint64_t>(f.st.st_size);
    std::string etag =
        make_etag({static_cast<uint64_t>(f.st.st_ino), size, f.st.st_mtim.tv_sec, f.st.st_mtim.tv_nsec});
    FileView v;
    v.size = size;
    v.etag = etag;
    v.last_modified = f.st.st_mtim.tv_sec;
    v.content_type = mime_type_for(f.served_rel);
    v.vary = vary_for(ex.site().compress, v.content_type, f.sib_present != 0);
    v.fds = &fds;
    v.shared = &f;
    serve_view(ex, v);
}

}  // namespace

void GetJob::done(Exchange& ex) {
    GetJob& job = *this;
    if (job.kind != Kind::File && job.kind != Kind::Listing && job.fd >= 0) ex.close_later(job.take_fd());
    if (job.err != 0) {
        if (job.dir_known && ex.site().fd_cache)
            ex.site().fd_cache->store_missing(ex.path(), job.err, job.dir_st.st_dev, job.dir_st.st_ino,
                                              job.dir_generation, job.fd_started_generation, ex.now_ms());
        return respond_error(ex, status_for_errno(job.err), std::strerror(job.err));
    }
    switch (job.kind) {
    case Kind::Redirect: {
        // RFC 9110 §15.4.2; the Location keeps the client's encoding.
        const Request& req = ex.request();
        std::string loc = self_location(req.parsed.path, req.parsed.query, true);
        ResponseHead head;
        head.location = loc;
        return respond_text(ex, 301, loc, head);
    }
    case Kind::Listing: {
        // Streamed (handlers/listing.h): its length is not known up front.
        ResponseHead head;
        head.content_type = job.json ? "application/json" : "text/html; charset=utf-8";
        head.html = !job.json;
        head.cache_control = "no-cache";
        head.content_length = ResponseHead::kUnknownLength;
        // The page runs only its own script (handlers/ui/); X-Content-Type-
        // Options: nosniff goes on every response.
        if (!job.json) head.add("Content-Security-Policy", kListingCsp);
        std::string_view writes = page_writes(ex.site(), ex.request());
        // A listing is compressed as it is rendered, when the client asks.
        Coding c = Coding::Identity;
        bool compress = job.policy && job.policy->compressible(head.content_type);
        head.vary = compress ? "Accept, Accept-Encoding" : "Accept";
        if (compress && !choose_coding(job.accepted, kAllCodings, c)) c = Coding::Identity;
        if (c != Coding::Identity) {
            head.content_encoding = coding_name(c);
            auto& src = ex.make_source<CompressingSource<ListingSource>>(
                c, job.policy->stream.of(c), job.root_fd, job.take_fd(), job.rel, job.url_path, job.json,
                job.site->database_url, writes);
            return ex.respond(head, Body::from(src));
        }
        auto& src = ex.make_source<ListingSource>(job.root_fd, job.take_fd(), job.rel, job.url_path, job.json,
                                                  job.site->database_url,  // the page's form posts records
                                                  writes);
        return ex.respond(head, Body::from(src));
    }
    case Kind::File:
        return serve_opened_file(ex, job);
    case Kind::None:
        break;
    }
    respond_error(ex, 500, "unexpected file type");
}

namespace {

// Serves a fresh cache entry at once, with no threadpool round trip.
// Returns false when the entry lacks the representation the client wants
// (or it is one the server makes: the coding cache's business).
bool serve_cached(Exchange& ex, CachedEntry& e, const AcceptedCodings& accepted) {
    const CachedRep& id = e.reps[CachedEntry::kIdentity];
    if (!id.present) return false;
    uint8_t present = 0;
    for (int i = 1; i < CachedEntry::kVariants; ++i)
        if (e.variant_exists[i]) present |= static_cast<uint8_t>(1u << i);
    uint8_t fly = fly_codings_of(ex.site().compress, id.compressible, id.content.size(), accepted);
    Coding c = Coding::Identity;
    if (!choose_coding(accepted, present | fly, c)) return false;  // the job answers 406
    if (c != Coding::Identity && !(present & coding_bit(c))) {
        if (!range_from_identity(ex.request(), id.etag, id.last_modified)) return false;
        c = Coding::Identity;
    }
    CachedRep& rep = e.reps[static_cast<int>(c)];
    if (!rep.present) return false;
    FileView v;
    v.size = rep.content.size();
    v.etag = rep.etag;
    v.last_modified = rep.last_modified;
    v.content_type = rep.content_type;
    v.encoding = rep.encoding;
    v.vary = vary_of(id.compressible, e.has_variants());
    v.in_memory = true;
    v.data = rep.content;
    v.fields = rep.fields;
    v.fields_have_length = true;
    serve_view(ex, v);
    return true;
}

void handle_get_impl(Exchange& ex, bool may_compress) {
    const Request& req = ex.request();
    const Site& site = ex.site();
    std::string_view path = ex.path();
    AcceptedCodings accepted = parse_accept_encoding(req.accept_encoding);
    bool database = path == site.database_url;

    if (site.codings && !database && accepted.accepted_mask()) {
        if (PathRecord* rec = site.codings->find(path, ex.now_ms())) {
            if (serve_from_codings(ex, *rec, accepted, may_compress)) return;
        }
    }
    if (site.cache) {
        if (CachedEntry* e = site.cache->find(path, ex.now_ms())) {
            if (serve_cached(ex, *e, accepted)) {
                site.cache->count_hit();
                return;
            }
        }
    }
    FdCache* fds = site.fd_cache;
    if (fds && fds->enabled()) {
        for (int fd : fds->pending_closes()) ex.close_later(fd);
        fds->closed(fds->pending_closes().size());
        fds->pending_closes().clear();
        if (!database && path.back() != '/') {
            FdCache::Lookup hit = fds->find(path, ex.now_ms());
            if (hit.kind == FdCache::Lookup::Missing)
                return respond_error(ex, status_for_errno(hit.err), std::strerror(hit.err));
            if (hit.kind == FdCache::Lookup::Open) {
                OpenFile& f = *hit.file;
                // A coding the client takes is the normal path's business.
                if (identity_for(ex, f, accepted)) {
                    serve_shared(ex, *fds, f);
                    fds->release(&f);
                    return;
                }
                fds->release(&f);
            }
        }
    }

    GetJob& job = ex.make_job<GetJob>();
    if (site.cache) job.started_generation = site.cache->generation();
    if (fds && fds->enabled()) job.fd_started_generation = fds->generation();
    job.locks = site.locks;
    if (database) {
        // Wherever --database put it, the record file is served at its URL.
        job.root_fd = site.database_dir_fd;
        job.rel = site.database_rel;
        job.database = true;
    } else {
        job.root_fd = site.root_fd;
        job.rel = relative_path(path);
    }
    job.url_path.assign(path);
    job.trailing_slash = path.back() == '/';
    job.use_fd_cache = fds && fds->enabled() && !job.database && !job.trailing_slash;
    job.inline_max = req.method == Method::Head ? 0 : site.inline_max;
    job.accepted = accepted;
    if (!database) job.policy = site.compress;
    job.may_start = may_compress;
    if (site.codings) {
        job.codings_generation = site.codings->generation();
        if (const PathRecord* rec = site.codings->peek(path, ex.now_ms()))
            job.skip_probe = rec->sib_absent & rec->known(ex.now_ms(), site.codings->interval_ms());
    }
    std::string format;
    bool json = (query_param(req.parsed.query, "format", format) && format == "json") ||
                (format.empty() && choose_media_type(req.accept, {"text/html", "application/json"}) == 1);
    job.json = json;
    job.site = &site;
    // A directory URL may need a listing, which reads and renders the
    // whole directory: such requests are the listing class of work
    // (exchange.h: JobClass). Opening files stays quick.
    ex.offload(job, job.trailing_slash ? JobClass::Listing : JobClass::Quick);
}

}  // namespace

void handle_get(Exchange& ex) { handle_get_impl(ex, true); }

void after_compression(Exchange& ex) { handle_get_impl(ex, false); }

}  // namespace uvh
