#include "handlers/uploads/upload_responses.h"

#include <fmt/format.h>

#include "handlers/file_cache.h"
#include "handlers/uploads/uploads.h"
#include "handlers/metrics.h"
#include "handlers/write_ops.h"
#include "protocol/http_date.h"
#include "protocol/percent.h"

namespace uvh::upload {

namespace {

constexpr std::string_view kProblemBase = "https://iana.org/assignments/http-problem-types#";

}  // namespace

void upload_limit(const UploadJob& job, std::string& out) {
    out.clear();
    if (job.max_size) fmt::format_to(std::back_inserter(out), "max-size={}, ", job.max_size);
    fmt::format_to(std::back_inserter(out), "max-age={}", job.expiry_s);
}

// The fields every answer about an upload carries in its dialect.
void add_state_fields(const UploadJob& job, ResponseHead& head, Fields& f, uint64_t offset) {
    f.offset = std::to_string(offset);
    head.add("Upload-Offset", f.offset);
    if (job.dialect.protocol == UploadProtocol::Tus) {
        head.add("Tus-Resumable", kTusVersion);
        if (!job.state.complete && job.state.expires) {
            f.expires = http_date(job.state.expires);
            head.add("Upload-Expires", f.expires);
        }
        return;
    }
    bool complete = job.state.complete || job.finished;
    head.add("Upload-Complete", complete ? "?1" : "?0");
    if (job.state.length != UploadState::kUnknown) {
        f.length = std::to_string(job.state.length);
        head.add("Upload-Length", f.length);
    }
    if (!complete) {
        upload_limit(job, f.limit);
        head.add("Upload-Limit", f.limit);
    }
}

// RFC 9457 problem details, for the draft's problem types.
void respond_problem(Exchange& ex, UploadJob& job, int status, std::string_view type, std::string_view title,
                     Fields& f, uint64_t offset) {
    std::string& body = ex.text();
    body.clear();
    fmt::format_to(std::back_inserter(body), "{{\"type\":\"{}{}\",\"title\":\"{}\"", kProblemBase, type, title);
    if (type == "mismatching-upload-offset")
        fmt::format_to(std::back_inserter(body), ",\"expected-offset\":{},\"provided-offset\":{}", job.state.offset,
                       job.req_offset);
    body.append("}\n");
    ResponseHead head;
    head.status = status;
    head.content_type = "application/problem+json";
    head.content_length = body.size();
    add_state_fields(job, head, f, offset);
    ex.respond(head, Body::mem(body));
}

void respond_tus_error(Exchange& ex, int status, std::string_view detail, ResponseHead head) {
    head.add("Tus-Resumable", kTusVersion);
    respond_text(ex, status, detail, head);
}

// Answers an outcome other than Ok; false when there is none to answer.
bool respond_outcome(Exchange& ex, UploadJob& job) {
    Fields f;
    bool tus = job.dialect.protocol == UploadProtocol::Tus;
    auto plain = [&](int status, std::string_view detail) {
        if (tus) return respond_tus_error(ex, status, detail);
        respond_error(ex, status, detail);
    };
    switch (job.outcome) {
    case Outcome::Ok: break;
    case Outcome::NotFound: plain(404, "no such upload"); return true;
    case Outcome::Gone:
        plain(tus ? 410 : 404, "the upload expired");
        return true;
    case Outcome::Busy:
        plain(503, "too many unfinished uploads (--max-uploads); finish or cancel one");
        return true;
    case Outcome::Superseded:
        plain(409, "a newer request took over this upload");
        return true;
    case Outcome::TooLarge:
        plain(413, tus ? "the upload would exceed its Upload-Length or --max-body-size"
                       : "the upload would exceed --max-body-size");
        return true;
    case Outcome::Checksum:
        plain(460, "Upload-Checksum does not match the request body; nothing of it was kept");
        return true;
    case Outcome::Completed:
        if (tus) {
            plain(409, "the upload is complete");
        } else {
            respond_problem(ex, job, 400, "completed-upload", "the upload is already complete", f, job.state.offset);
        }
        return true;
    case Outcome::Mismatch:
        if (tus) {
            ResponseHead head;
            std::string off = std::to_string(job.state.offset);
            head.add("Upload-Offset", off);
            respond_tus_error(ex, 409, "Upload-Offset does not match the upload's offset", head);
        } else {
            respond_problem(ex, job, 409, "mismatching-upload-offset", "offset from request does not match offset of resource", f,
                            job.state.offset);
        }
        return true;
    case Outcome::Inconsistent:
        if (tus) {
            plain(400, "inconsistent upload length");
        } else {
            respond_problem(ex, job, 400, "inconsistent-upload-length", "inconsistent length values for upload", f,
                            job.state.offset);
        }
        return true;
    }
    return false;
}

void send_progress(Exchange& ex, const UploadJob& job) {
    if (job.dialect.protocol != UploadProtocol::Ietf8) return;
    std::string offset = std::to_string(job.synced);
    ResponseHead::Field fields[] = {{"Upload-Offset", offset}};
    ex.interim(104, fields);
}

// The answer once an append (or a creation's content) has been stored.
void respond_stored(Exchange& ex, UploadJob& job) {
    Fields f;
    ResponseHead head;
    std::string etag;
    if (job.finished) {
        if (Metrics* m = ex.site().metrics) ++m->uploads_completed;
        if (FileCache* cache = ex.site().cache) {
            std::string url = "/" + job.state.target;
            cache->invalidate_file(url);
        }
        representation_of(true, job.st, etag);
    }
    bool creation = ex.request().method != Method::Patch;
    if (job.dialect.protocol == UploadProtocol::Tus) {
        head.status = creation ? 201 : 204;
        if (creation) {
            f.location = std::string(kUploadsPrefix) + job.id;
            head.location = f.location;
        }
        add_state_fields(job, head, f, job.cur);
        return ex.respond(head, Body::none());
    }
    add_state_fields(job, head, f, job.cur);
    if (job.finished) {
        // What the creation request would have produced (draft §4.2): PUT's
        // answer for the target.
        head.etag = etag;
        head.last_modified = job.st.st_mtim.tv_sec;
        head.status = job.created ? 201 : 204;
        if (job.created) {
            f.location.assign(1, '/');
            percent_encode(job.state.target, f.location, "/");
            head.location = f.location;
            return respond_text(ex, 201, f.location, head);
        }
        return ex.respond(head, Body::none());
    }
    if (creation) {
        f.location = std::string(kUploadsPrefix) + job.id;
        head.location = f.location;
        head.status = 201;
        return respond_text(ex, 201, f.location, head);
    }
    head.status = 204;
    ex.respond(head, Body::none());
}

}  // namespace uvh::upload
