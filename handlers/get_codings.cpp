#include "handlers/get_codings.h"

#include "handlers/file_response.h"
#include "handlers/get_head.h"
#include "handlers/get_job.h"
#include "handlers/compress/compress_source.h"
#include "handlers/compress/disk_cache.h"
#include "protocol/etag.h"
#include "protocol/mime.h"
#include "protocol/preconditions.h"

namespace uvh {

namespace {

// 304 and 412 for a coding not produced yet, from its derived ETag, so a
// revalidation never waits for a compression (RFC 9110 §13.2.2).
bool answer_preconditions(Exchange& ex, std::string_view etag, time_t last_modified, std::string_view content_type) {
    const Request& req = ex.request();
    switch (evaluate_preconditions(req.conditionals(), true, Representation{true, etag, last_modified}, ex.now())) {
    case Precondition::Failed:
        respond_error(ex, 412, "If-Match or If-Unmodified-Since failed");
        return true;
    case Precondition::NotModified: {
        ResponseHead head;
        head.status = 304;
        head.etag = etag;
        head.cache_control = ex.site().cache_control;
        head.vary = vary_for(ex.site().compress, content_type, false);
        ex.respond(head, Body::none());
        return true;
    }
    case Precondition::Proceed:
        break;
    }
    return false;
}

void serve_coded(Exchange& ex, const PathRecord& rec, const CodedRep& rep, Coding c) {
    FileView v;
    v.size = rep.bytes.size();
    v.etag = rep.etag;
    v.last_modified = rec.facts.last_modified;
    v.content_type = rec.facts.content_type;
    v.encoding = coding_name(c);
    v.vary = "Accept-Encoding";
    v.in_memory = true;
    v.data = rep.bytes;
    v.fields = rep.fields;
    serve_view(ex, v);
}

}  // namespace

// Serves coding `c` of a record's version from the coding cache, or waits
// for its one compression. False: the caller serves identity.
bool serve_or_wait(Exchange& ex, PathRecord& rec, Coding c, bool may_start) {
    CodingCache& codings = *ex.site().codings;
    CodedRep& rep = rec.coded[static_cast<int>(c)];
    if (rep.state == CodedRep::State::Failed) return false;
    if (rep.state != CodedRep::State::Ready) {
        std::string etag = coded_etag(rec.facts.etag, c, codings.level(c));
        if (answer_preconditions(ex, etag, rec.facts.last_modified, rec.facts.content_type)) return true;
        if (!may_start) return false;
    }
    switch (codings.get_or_wait(rec, ex.path(), c, ex, after_compression)) {
    case CodedRep::State::Ready:
        serve_coded(ex, rec, rep, c);
        return true;
    case CodedRep::State::Pending:
        return true;  // answered by after_compression
    case CodedRep::State::None:
    case CodedRep::State::Failed:
        break;
    }
    return false;
}

// The fast path: a coding of a file whose version the coding cache has
// verified within the interval. False: go on as without it.
bool serve_from_codings(Exchange& ex, PathRecord& rec, const AcceptedCodings& accepted, bool may_start) {
    const Site& site = ex.site();
    const FileFacts& f = rec.facts;
    uint64_t now = ex.now_ms();
    // A sibling the client accepts and nobody probed lately: the job looks.
    if (accepted.accepted_mask() & ~rec.known(now, site.codings->interval_ms())) return false;
    uint8_t fly = on_the_fly_codings(site.compress, f.content_type, f.size, accepted);
    Coding c = Coding::Identity;
    if (!choose_coding(accepted, rec.sib_present | fly, c)) return false;
    if (c == Coding::Identity || (rec.sib_present & coding_bit(c))) return false;
    if (f.size > site.codings->max_file()) return false;  // streamed by the job
    if (range_from_identity(ex.request(), f.etag, f.last_modified)) return false;
    return serve_or_wait(ex, rec, c, may_start);
}

// A coding produced as the body is sent, for a file larger than the coding
// cache takes: chunked, the encoder's memory and one window per connection.
void serve_streamed(Exchange& ex, GetJob& job, std::string_view identity_etag) {
    const Site& site = ex.site();
    Coding c = job.coding;
    int level = site.compress->stream.of(c);
    std::string etag = coded_etag(identity_etag, c, level);
    std::string_view type = mime_type_for(job.served_rel);
    if (answer_preconditions(ex, etag, job.st.st_mtim.tv_sec, type)) return;
    auto& src = ex.make_source<CompressingSource<FileRangeSource>>(c, level, FileHandle::owned(job.take_fd()), 0,
                                                                  static_cast<uint64_t>(job.st.st_size));
    ResponseHead head;
    head.content_type = type;
    head.html = type.starts_with("text/html");
    head.etag = etag;
    head.last_modified = job.st.st_mtim.tv_sec;
    head.content_encoding = coding_name(c);
    head.vary = "Accept-Encoding";
    head.cache_control = site.cache_control;
    head.accept_ranges = true;  // ranges are answered from the identity file
    head.content_length = ResponseHead::kUnknownLength;
    ex.respond(head, Body::from(src));
}

void serve_disk_coded(Exchange& ex, GetJob& job, std::string_view identity_etag) {
    const Site& site = ex.site();
    Coding c = job.coding;
    std::string etag = coded_etag(identity_etag, c, site.compress->stream.of(c));
    // The entry's descriptor takes the source's place in the job.
    ex.close_later(job.take_fd());
    job.fd = job.disk_fd;
    job.disk_fd = -1;
    FileView v;
    v.size = job.disk_size;
    v.etag = etag;
    v.last_modified = job.st.st_mtim.tv_sec;
    v.content_type = mime_type_for(job.served_rel);
    v.encoding = coding_name(c);
    v.vary = "Accept-Encoding";
    v.job = &job;
    serve_view(ex, v);
    if (job.fd >= 0) ex.close_later(job.take_fd());
}

bool wait_for_disk_coded(Exchange& ex, GetJob& job, std::string_view identity_etag) {
    const Site& site = ex.site();
    if (!site.disk_codings || !job.may_start) return false;  // HEAD too: the headers GET will send
    int level = site.compress->stream.of(job.coding);
    std::string etag = coded_etag(identity_etag, job.coding, level);
    if (answer_preconditions(ex, etag, job.st.st_mtim.tv_sec, mime_type_for(job.served_rel))) {
        ex.close_later(job.take_fd());
        return true;
    }
    if (!site.disk_codings->wait_for(disk_key(job.st, job.coding, level), job.fd, ex, after_compression))
        return false;
    ex.close_later(job.take_fd());  // the compression has its own descriptor
    return true;
}

// Tells the coding cache what the job found. Returns its record.
PathRecord* record_facts(Exchange& ex, GetJob& job, const std::string& identity_etag) {
    CodingCache* codings = ex.site().codings;
    if (!codings || job.database) return nullptr;
    FileFacts f;
    f.etag = identity_etag;
    f.rel = job.served_rel;
    f.dev = job.id_st.st_dev;
    f.ino = job.id_st.st_ino;
    f.file_generation = job.id_generation;
    f.size = static_cast<uint64_t>(job.id_st.st_size);
    f.last_modified = job.id_st.st_mtim.tv_sec;
    f.content_type = mime_type_for(job.served_rel);
    f.siblings_present = job.siblings_present;
    f.siblings_absent = job.siblings_absent;
    return codings->verify(ex.path(), std::move(f), job.codings_generation, ex.now_ms());
}

}  // namespace uvh
