#include "handlers/uploads/uploads.h"

#include <openssl/evp.h>

#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "handlers/fs_ops.h"
#include "handlers/metrics.h"
#include "handlers/router.h"
#include "handlers/uploads/upload_dialect.h"
#include "handlers/uploads/upload_job.h"
#include "handlers/uploads/upload_responses.h"
#include "handlers/write_ops.h"
#include "handlers/write_step.h"
#include "protocol/text.h"
#include "protocol/target.h"

namespace uvh {

namespace upload {

namespace {

void count_metrics(Exchange& ex, UploadJob& job) {
    Metrics* m = ex.site().metrics;
    if (!m) return;
    m->upload_bytes += job.appended;
    job.appended = 0;
}

void upload_data(Exchange& ex, std::string_view piece);
void upload_end(Exchange& ex);

void start_body(Exchange& ex, UploadJob& job) {
    if (!job.has_body) {
        job.step = UploadJob::Step::End;
        return ex.offload(job);
    }
    BodyReader reader;
    reader.data = upload_data;
    reader.end = upload_end;
    reader.chunk = kUploadChunk;
    ex.read_body(reader);
}

}  // namespace

void UploadJob::done(Exchange& ex) {
    count_metrics(ex, *this);
    // Failures of the write steps (a disk full, a target that changed).
    auto fail = [&]() -> bool {
        if (outcome == Outcome::Ok && !status && !err && !lock_check.status) return false;
        body_open = false;
        hand_back(ex);
        if (up_dir >= 0) ex.close_later(up_dir);
        up_dir = -1;
        if (respond_outcome(ex, *this)) return true;
        if (lock_check.status) {
            respond_lock_check(ex, lock_check);
        } else if (status == kStoreRefused) {
            respond_error(ex, kStoreRefused, kStoreMessage);
        } else if (status == 412) {
            respond_error(ex, 412, "precondition failed");
        } else if (status == 409) {
            respond_error(ex, 409, exists ? "the target is a directory" : "the parent directory does not exist");
        } else if (status) {
            respond_error(ex, status, "conflict");
        } else {
            respond_error(ex, status_for_errno(err), std::strerror(err));
        }
        return true;
    };
    switch (step) {
    case Step::Create: {
        if (fail()) return;
        if (Metrics* m = ex.site().metrics) ++m->uploads_started;
        if (is_ietf(dialect.protocol)) {
            // draft §4.2: 104 with the upload's URI as soon as it exists, so
            // the client can resume even if this request breaks.
            std::string location = std::string(kUploadsPrefix) + id, limit;
            upload_limit(*this, limit);
            ResponseHead::Field fields[] = {{"Location", location},
                                            {"Upload-Draft-Interop-Version", interop_token(dialect.protocol)},
                                            {"Upload-Limit", limit}};
            ex.interim(104, fields);
        }
        return start_body(ex, *this);
    }
    case Step::Open:
        if (fail()) return;
        if (Metrics* m = ex.site().metrics; m && was_interrupted) ++m->uploads_resumed;
        return start_body(ex, *this);
    case Step::Write:
        if (fail()) return;
        if (std::exchange(progress, false)) send_progress(ex, *this);
        return ex.body_consumed();
    case Step::End:
        if (fail()) return;
        hand_back(ex);
        if (up_dir >= 0) ex.close_later(up_dir);
        up_dir = -1;
        return respond_stored(ex, *this);
    case Step::Head: {
        if (fail()) return;
        if (up_dir >= 0) ex.close_later(up_dir);
        up_dir = -1;
        Fields f;
        ResponseHead head;
        head.cache_control = "no-store";
        uint64_t offset = state.complete && state.length != UploadState::kUnknown ? state.length : state.offset;
        add_state_fields(*this, head, f, offset);
        if (dialect.protocol == UploadProtocol::Tus) {
            head.status = 200;
            if (state.length != UploadState::kUnknown) {
                f.length = std::to_string(state.length);
                head.add("Upload-Length", f.length);
            } else {
                head.add("Upload-Defer-Length", "1");
            }
            if (!state.metadata.empty()) head.add("Upload-Metadata", state.metadata);
        } else {
            head.status = 204;
        }
        return ex.respond(head, Body::none());
    }
    case Step::Delete: {
        if (fail()) return;
        if (up_dir >= 0) ex.close_later(up_dir);
        up_dir = -1;
        ResponseHead head;
        head.status = 204;
        if (dialect.protocol == UploadProtocol::Tus) head.add("Tus-Resumable", kTusVersion);
        return ex.respond(head, Body::none());
    }
    }
}

namespace {

void upload_data(Exchange& ex, std::string_view piece) {
    UploadJob& job = ex.job_as<UploadJob>();
    job.step = UploadJob::Step::Write;
    job.chunk = piece;
    ex.offload(job);
}

void upload_end(Exchange& ex) {
    UploadJob& job = ex.job_as<UploadJob>();
    job.step = UploadJob::Step::End;
    ex.offload(job);
}

// Reads the request's upload fields into the job. False when it answered.
bool read_fields(Exchange& ex, UploadJob& job) {
    const Request& req = ex.request();
    const Site& site = ex.site();
    job.max_size = site.max_body_size;
    job.expiry_s = site.upload_expiry_s;
    job.max_uploads = site.max_uploads;
    job.has_body = req.has_body();
    if (req.has_content_length) job.content_length = req.content_length;
    bool tus = job.dialect.protocol == UploadProtocol::Tus;
    auto bad = [&](std::string_view why) {
        if (tus) {
            respond_tus_error(ex, 400, why);
        } else {
            respond_error(ex, 400, why);
        }
        return false;
    };
    if (tus && !job.dialect.tus_version_ok) {
        ResponseHead head;
        head.add("Tus-Version", kTusVersion);
        respond_text(ex, 412, "this server speaks tus 1.0.0 (Tus-Resumable)", head);
        return false;
    }
    std::string_view v = req.find("upload-offset");
    if (v.data() && !parse_sf_uint(v, job.req_offset)) return bad("Upload-Offset must be a non-negative integer");
    v = req.find("upload-length");
    if (v.data() && !parse_sf_uint(v, job.req_length)) return bad("Upload-Length must be a non-negative integer");
    if (!tus) {
        job.req_complete = parse_sf_bool(req.find("upload-complete"));
        if (job.req_complete == 1 && job.req_length == UploadState::kUnknown && req.has_content_length &&
            ex.request().method != Method::Patch)
            job.req_length = req.content_length;  // draft §4.1.2: Content-Length + Upload-Complete: ?1
        if (job.req_complete == 1 && job.req_length != UploadState::kUnknown && req.has_content_length) {
            uint64_t at = job.req_offset == UploadState::kUnknown ? 0 : job.req_offset;
            if (at + req.content_length != job.req_length) {
                Fields f;
                job.state.offset = at;
                respond_problem(ex, job, 400, "inconsistent-upload-length", "inconsistent length values for upload", f,
                                at);
                return false;
            }
        }
    }
    // tus checksum extension: "Upload-Checksum: sha1 <base64>".
    v = req.find("upload-checksum");
    if (tus && v.data()) {
        v = trim_ows(v);
        size_t sp = v.find(' ');
        std::string algo(v.substr(0, sp));
        std::string_view b64 = sp == std::string_view::npos ? std::string_view{} : trim_ows(v.substr(sp + 1));
        const EVP_MD* md = nullptr;
        if (algo == "sha1") md = EVP_sha1();
        else if (algo == "sha256") md = EVP_sha256();
        else if (algo == "sha512") md = EVP_sha512();
        else if (algo == "md5") md = EVP_md5();
        if (!md) return bad("unsupported Upload-Checksum algorithm (sha1, sha256, sha512, md5)");
        std::string raw(b64.size(), '\0');
        int n = b64.empty() || b64.size() % 4 ? -1
                                               : EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()),
                                                                 reinterpret_cast<const unsigned char*>(b64.data()),
                                                                 static_cast<int>(b64.size()));
        if (n < 0) return bad("Upload-Checksum needs a base64 digest");
        size_t pad = b64.ends_with("==") ? 2 : b64.ends_with("=") ? 1 : 0;
        raw.resize(static_cast<size_t>(n) - pad);
        if (raw.size() != static_cast<size_t>(EVP_MD_get_size(md))) return bad("Upload-Checksum digest has the wrong length");
        job.expected_digest = std::move(raw);
        job.md = EVP_MD_CTX_new();
        if (!job.md || EVP_DigestInit_ex(job.md, md, nullptr) != 1) {
            respond_error(ex, 500, "cannot start the checksum");
            return false;
        }
    }
    return true;
}

}  // namespace

}  // namespace upload

using namespace upload;

void handle_upload_create(Exchange& ex) {
    const Request& req = ex.request();
    const Site& site = ex.site();
    if (ex.path().back() == '/')
        return respond_error(ex, 405, "an upload needs a file path, not a directory", allowed_methods(site));
    UploadJob& job = ex.make_job<UploadJob>(ex);
    job.dialect = dialect_of(req);
    job.step = UploadJob::Step::Create;
    job.create_dirs = site.create_dirs;
    if (!read_fields(ex, job)) return;
    bool tus = job.dialect.protocol == UploadProtocol::Tus;
    if (tus) {
        std::string_view defer = req.find("upload-defer-length");
        if (defer.data() && trim_ows(defer) != "1") return respond_tus_error(ex, 400, "Upload-Defer-Length must be 1");
        if (defer.data() && job.req_length != UploadState::kUnknown)
            return respond_tus_error(ex, 400, "Upload-Length and Upload-Defer-Length together");
        if (job.has_body && !media_type_is(req.content_type, "application/offset+octet-stream"))
            return respond_tus_error(ex, 415, "creation-with-upload needs Content-Type: application/offset+octet-stream");
        std::string_view meta = req.find("upload-metadata");
        if (meta.data()) job.state.metadata = trim_ows(meta);
    }
    if (job.req_offset != UploadState::kUnknown && job.req_offset != 0) {
        return tus ? respond_tus_error(ex, 400, "a new upload starts at offset 0")
                   : respond_error(ex, 400, "a new upload starts at offset 0");
    }
    if (site.max_body_size && job.req_length != UploadState::kUnknown && job.req_length > site.max_body_size) {
        ResponseHead head;
        std::string max = std::to_string(site.max_body_size);
        if (tus) {
            head.add("Tus-Resumable", kTusVersion);
            head.add("Tus-Max-Size", max);
        }
        return respond_text(ex, 413, "the upload is larger than --max-body-size", head);
    }
    if (job.has_body && job.req_length != UploadState::kUnknown && req.has_content_length &&
        req.content_length > job.req_length)
        return tus ? respond_tus_error(ex, 413, "the body is longer than Upload-Length")
                   : respond_error(ex, 400, "the body is longer than Upload-Length");
    job.state.protocol = job.dialect.protocol;
    job.state.target = relative_path(ex.path());
    if (job.state.target.find_first_of("\r\n") != std::string::npos)
        return respond_error(ex, 400, "a file name with a line break cannot be uploaded in pieces");
    if (req.if_match.data()) job.state.if_match = trim_ows(req.if_match);
    if (req.if_none_match.data()) job.state.if_none_match = trim_ows(req.if_none_match);
    if (req.if_unmodified_since.data()) job.state.if_unmodified_since = trim_ows(req.if_unmodified_since);
    ex.offload(job);
}

bool is_upload_resource(std::string_view path) {
    return path.size() == kUploadsPrefix.size() + kUploadIdLength && path.starts_with(kUploadsPrefix) &&
           valid_upload_id(path.substr(kUploadsPrefix.size()));
}

void handle_upload_resource(Exchange& ex) {
    const Request& req = ex.request();
    Dialect d = dialect_of(req);
    if (!d.known) {
        // No dialect named: a client of the final RFC sends no interop
        // version; its appends say application/partial-upload.
        if (req.method == Method::Patch && !media_type_is(req.content_type, "application/partial-upload")) {
            ResponseHead head;
            head.add("Tus-Version", kTusVersion);
            return respond_text(ex, 412,
                                "an append needs Tus-Resumable: 1.0.0 or Upload-Draft-Interop-Version (5, 6 or 8)",
                                head);
        }
        d.known = true;
        d.protocol = UploadProtocol::Ietf8;
    }
    UploadJob& job = ex.make_job<UploadJob>(ex);
    job.dialect = d;
    job.id = std::string(ex.path().substr(kUploadsPrefix.size()));
    if (!read_fields(ex, job)) return;
    bool tus = d.protocol == UploadProtocol::Tus;
    switch (req.method) {
    case Method::Head: job.step = UploadJob::Step::Head; break;
    case Method::Delete: job.step = UploadJob::Step::Delete; break;
    case Method::Patch:
        job.step = UploadJob::Step::Open;
        if (tus && !media_type_is(req.content_type, "application/offset+octet-stream"))
            return respond_tus_error(ex, 415, "PATCH needs Content-Type: application/offset+octet-stream");
        // Interop 5 (draft 03) sends no Content-Type; 6 and later must.
        if ((d.protocol == UploadProtocol::Ietf6 || d.protocol == UploadProtocol::Ietf8) &&
            !media_type_is(req.content_type, "application/partial-upload"))
            return respond_error(ex, 415, "an append needs Content-Type: application/partial-upload");
        if (job.req_offset == UploadState::kUnknown)
            return tus ? respond_tus_error(ex, 400, "PATCH needs Upload-Offset")
                       : respond_error(ex, 400, "an append needs Upload-Offset");
        if (!tus && job.req_complete < 0) return respond_error(ex, 400, "an append needs Upload-Complete: ?0 or ?1");
        break;
    default: return respond_error(ex, 405, "an upload takes HEAD, PATCH and DELETE");
    }
    ex.offload(job);
}

}  // namespace uvh
