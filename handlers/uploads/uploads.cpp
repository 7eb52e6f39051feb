#include "handlers/uploads/uploads.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "handlers/file_cache.h"
#include "handlers/fs_ops.h"
#include "handlers/lock_service.h"
#include "handlers/metrics.h"
#include "handlers/router.h"
#include "handlers/uploads/upload_state.h"
#include "handlers/write_ops.h"
#include "handlers/write_step.h"
#include "protocol/http_date.h"
#include "protocol/percent.h"
#include "protocol/text.h"
#include "protocol/target.h"

namespace uvh {

namespace {

constexpr size_t kUploadChunk = 256 * 1024;
// A long append is synced and acknowledged on disk every this many bytes,
// so a crash or a kill -9 mid-request loses at most this much.
constexpr uint64_t kCheckpointBytes = 8ull << 20;

constexpr std::string_view kTusVersion = "1.0.0";
constexpr std::string_view kTusExtensions =
    "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum";
constexpr std::string_view kTusChecksums = "sha1,sha256,sha512,md5";
constexpr std::string_view kProblemBase = "https://iana.org/assignments/http-problem-types#";

// ------------------------------------------------------------ field parsing

// RFC 9651 Integer, non-negative (Upload-Offset, Upload-Length, the interop
// version): at most 15 digits.
bool parse_sf_uint(std::string_view v, uint64_t& out) {
    v = trim_ows(v);
    if (v.empty() || v.size() > 15) return false;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    return ec == std::errc() && p == v.data() + v.size();
}

// RFC 9651 Boolean: "?1" or "?0". -1: absent or malformed.
int parse_sf_bool(std::string_view v) {
    if (!v.data()) return -1;
    v = trim_ows(v);
    if (v == "?1") return 1;
    if (v == "?0") return 0;
    return -1;
}

bool media_type_is(std::string_view content_type, std::string_view type) {
    std::string_view t = content_type.substr(0, content_type.find(';'));
    return iequals_ascii(trim_ows(t), type);
}

// Which dialect a request speaks. `known` false: neither tus nor an interop
// version this server implements.
struct Dialect {
    bool known = false;
    UploadProtocol protocol = UploadProtocol::Tus;
    bool tus_version_ok = true;  // Tus-Resumable was 1.0.0
};

Dialect dialect_of(const Request& req) {
    Dialect d;
    std::string_view tus = req.find("tus-resumable");
    if (tus.data()) {
        d.known = true;
        d.protocol = UploadProtocol::Tus;
        d.tus_version_ok = trim_ows(tus) == kTusVersion;
        return d;
    }
    std::string_view iv = req.find("upload-draft-interop-version");
    uint64_t v = 0;
    if (iv.data() && parse_sf_uint(iv, v)) {
        if (v == 5) d.protocol = UploadProtocol::Ietf5;
        else if (v == 6) d.protocol = UploadProtocol::Ietf6;
        else if (v == 8) d.protocol = UploadProtocol::Ietf8;
        else return d;
        d.known = true;
    }
    return d;
}

bool is_ietf(UploadProtocol p) { return p != UploadProtocol::Tus; }

std::string_view interop_token(UploadProtocol p) {
    switch (p) {
    case UploadProtocol::Ietf5: return "5";
    case UploadProtocol::Ietf6: return "6";
    case UploadProtocol::Ietf8: return "8";
    case UploadProtocol::Tus: break;
    }
    return {};
}

// ------------------------------------------------------------------- job

enum class Outcome : uint8_t {
    Ok,
    NotFound,      // no such upload (or its state is unreadable)
    Gone,          // expired, not yet swept
    Completed,     // appending to a finished upload
    Mismatch,      // Upload-Offset is not the current offset
    Inconsistent,  // lengths that do not agree
    TooLarge,      // past --max-body-size or tus's Upload-Length
    Superseded,    // a newer request took the upload over
    Busy,          // --max-uploads unfinished uploads exist
    Checksum,      // tus Upload-Checksum did not match
};

struct UploadJob final : WriteJob {
    enum class Step : uint8_t { Create, Open, Write, End, Head, Delete };
    Step step = Step::Create;
    Dialect dialect;

    // ---- request (loop thread) ----
    std::string id;
    uint64_t req_offset = UploadState::kUnknown;
    uint64_t req_length = UploadState::kUnknown;
    int req_complete = -1;  // Upload-Complete, IETF
    bool has_body = false;
    uint64_t content_length = UploadState::kUnknown;  // declared, if any
    uint64_t max_size = 0;                              // --max-body-size; 0: none
    uint64_t expiry_s = 0;
    size_t max_uploads = 0;
    std::string_view chunk;

    // ---- worker ----
    UploadState state;
    Outcome outcome = Outcome::Ok;
    int up_dir = -1;   // .uvhttpd-uploads
    dev_t dev = 0;     // the part file
    ino_t ino = 0;
    uint64_t gen = 0;  // its generation when this request took it over
    uint64_t start = 0, cur = 0, synced = 0;
    bool body_open = false;  // appending: the body has not ended
    bool was_interrupted = false;
    bool finished = false;  // the file is at its target
    uint64_t appended = 0;  // bytes this request added, for the metrics
    EVP_MD_CTX* md = nullptr;
    std::string expected_digest;
    std::string target_url;  // "/" + state.target, for the WebDAV lock check

    using WriteJob::WriteJob;
    ~UploadJob() override {
        if (md) EVP_MD_CTX_free(md);
    }

    void work() override;
    void done(Exchange& ex) override;
    bool holds_resources() const override { return up_dir >= 0 || dir_fd >= 0; }
    void release() override;

    std::string part() const { return part_name(id); }
    LockService::Guard lock_part();
    bool still_mine(const LockService::Guard& g);
    void take_over(const LockService::Guard& g);
    bool checkpoint(int fd, bool interrupted);
    void create();
    void open_existing();
    void write_piece();
    void end();
    void finish(int fd);
    void close_dirs() {
        if (up_dir >= 0) close(up_dir);
        up_dir = -1;
        WriteJob::release();
    }
};

LockService::Guard UploadJob::lock_part() {
    std::string p = part();
    LockService::Guard g = LockService::lock_file(up_dir, p.c_str());
    if (!g.held()) {
        if (errno == ENOENT) {
            // Gone while this request held it: finished or cancelled by a
            // newer request.
            outcome = ino ? Outcome::Superseded : Outcome::NotFound;
        } else {
            err = errno;
        }
    }
    return g;
}

// Under the part's lock: whether this request still owns the upload (no
// newer request bumped the generation, the file was not removed).
bool UploadJob::still_mine(const LockService::Guard& g) {
    struct stat pst {};
    if (fstat(g.fd(), &pst) != 0 || pst.st_nlink == 0 || pst.st_ino != ino || pst.st_dev != dev ||
        (locks && locks->generation(dev, ino) != gen)) {
        outcome = Outcome::Superseded;
        return false;
    }
    return true;
}

// Under the part's lock: ends any older request of this upload (it sees the
// generation move at its next step) and drops bytes past the acknowledged
// offset (a superseded request's or a crashed server's unsynced tail).
void UploadJob::take_over(const LockService::Guard& g) {
    struct stat pst {};
    if (fstat(g.fd(), &pst) != 0) {
        err = errno;
        return;
    }
    dev = pst.st_dev;
    ino = pst.st_ino;
    if (locks) {
        locks->bump(dev, ino);
        gen = locks->generation(dev, ino);
    }
    if (static_cast<uint64_t>(pst.st_size) != state.offset && ftruncate(g.fd(), static_cast<off_t>(state.offset)) != 0)
        err = errno;
}

// Under the part's lock: makes `cur` the acknowledged offset.
bool UploadJob::checkpoint(int fd, bool interrupted) {
    if (fdatasync(fd) != 0) {
        err = errno;
        return false;
    }
    UploadState next = state;
    next.offset = cur;
    next.interrupted = interrupted;
    next.expires = now + static_cast<time_t>(expiry_s);
    if (!write_state(up_dir, id, next)) {
        err = errno;
        return false;
    }
    state = next;
    synced = cur;
    return true;
}

void UploadJob::work() {
    now = time(nullptr);
    switch (step) {
    case Step::Create: return create();
    case Step::Open:
    case Step::Head:
    case Step::Delete: return open_existing();
    case Step::Write: return write_piece();
    case Step::End: return end();
    }
}

void UploadJob::create() {
    std::string name;
    if (!open_parent(*this, name)) return;
    if (!check_target(*this, name)) return;
    if (exists && S_ISDIR(st.st_mode)) {
        status = 409;
        return;
    }
    // WebDAV locks on the target: an early look now (nobody should upload
    // gigabytes to be refused at the end); the final step checks again
    // under the name lock, with the completing request's If header.
    if (!check_locks(*this, name, nullptr, false, !exists)) return;
    WriteJob::release();  // the final step opens the parent again
    up_dir = open_uploads_dir(root_fd, true);
    if (up_dir < 0) {
        err = errno;
        return;
    }
    if (max_uploads && count_unfinished(up_dir) >= max_uploads) {
        outcome = Outcome::Busy;
        return;
    }
    if (!new_upload_id(id)) {
        err = errno ? errno : EIO;
        return;
    }
    std::string p = part();
    int fd = openat(up_dir, p.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        err = errno;
        return;
    }
    close(fd);
    state.created = now;
    state.expires = now + static_cast<time_t>(expiry_s);
    state.length = req_length;
    if (!write_state(up_dir, id, state)) {
        err = errno;
        unlinkat(up_dir, p.c_str(), 0);
        return;
    }
    LockService::Guard g = lock_part();
    if (!g.held()) return;
    take_over(g);
    start = cur = synced = 0;
    body_open = has_body;
}

void UploadJob::open_existing() {
    up_dir = open_uploads_dir(root_fd, false);
    if (up_dir < 0 || !read_state(up_dir, id, state)) {
        if (errno == ENOENT || errno == EBADMSG) {
            outcome = Outcome::NotFound;
        } else {
            err = errno;
        }
        return;
    }
    if (state.complete) {
        if (step == Step::Delete) {
            remove_upload(up_dir, id);  // forget the finished upload's marker
        } else if (step == Step::Open) {
            outcome = Outcome::Completed;
        }
        return;
    }
    if (state.expires <= now) {
        outcome = Outcome::Gone;
        return;
    }
    LockService::Guard g = lock_part();
    if (!g.held()) return;
    // Read again under the lock: the state may have moved while we waited.
    if (!read_state(up_dir, id, state)) {
        outcome = Outcome::NotFound;
        return;
    }
    if (state.complete) {
        if (step == Step::Open) outcome = Outcome::Completed;
        return;
    }
    take_over(g);
    if (err) return;
    if (step == Step::Delete) {
        remove_upload(up_dir, id);
        return;
    }
    if (step == Step::Head) return;
    // PATCH: the checks of an append (draft §4.4, tus 1.0.0 PATCH).
    if (req_offset != state.offset) {
        outcome = Outcome::Mismatch;
        return;
    }
    if (req_length != UploadState::kUnknown) {
        if (state.length == UploadState::kUnknown) {
            if (req_length < state.offset) {
                outcome = Outcome::Inconsistent;
                return;
            }
            state.length = req_length;  // tus deferred length, or the draft's Upload-Length
        } else if (req_length != state.length) {
            outcome = Outcome::Inconsistent;
            return;
        }
    }
    if (content_length != UploadState::kUnknown) {
        uint64_t end_at = state.offset + content_length;
        if (state.length != UploadState::kUnknown &&
            (end_at > state.length || (req_complete == 1 && end_at != state.length))) {
            outcome = dialect.protocol == UploadProtocol::Tus ? Outcome::TooLarge : Outcome::Inconsistent;
            return;
        }
        if (max_size && end_at > max_size) {
            outcome = Outcome::TooLarge;
            return;
        }
    }
    was_interrupted = state.interrupted;
    start = cur = synced = state.offset;
    body_open = has_body;
}

void UploadJob::write_piece() {
    if (state.length != UploadState::kUnknown && cur + chunk.size() > state.length) {
        outcome = dialect.protocol == UploadProtocol::Tus ? Outcome::TooLarge : Outcome::Inconsistent;
        return;
    }
    if (max_size && cur + chunk.size() > max_size) {
        outcome = Outcome::TooLarge;
        return;
    }
    LockService::Guard g = lock_part();
    if (!g.held() || !still_mine(g)) return;
    size_t done_bytes = 0;
    while (done_bytes < chunk.size()) {
        ssize_t n = pwrite(g.fd(), chunk.data() + done_bytes, chunk.size() - done_bytes,
                           static_cast<off_t>(cur + done_bytes));
        if (n < 0) {
            if (errno == EINTR) continue;
            err = errno;
            break;
        }
        done_bytes += static_cast<size_t>(n);
    }
    if (err) {
        // Disk full (507) or an I/O error: what was acknowledged stays; the
        // bytes of this piece are cut off when the upload is next opened.
        if (!md && cur > synced) {
            int e = err;
            err = 0;
            checkpoint(g.fd(), true);
            err = e;
        }
        return;
    }
    if (md) EVP_DigestUpdate(md, chunk.data(), chunk.size());
    cur += chunk.size();
    appended += chunk.size();
    // Without a checksum to verify at the end, long appends are made
    // durable as they go.
    if (!md && cur - synced >= kCheckpointBytes) checkpoint(g.fd(), false);
}

void UploadJob::end() {
    LockService::Guard g = lock_part();
    if (!g.held() || !still_mine(g)) return;
    body_open = false;
    if (md) {
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        EVP_DigestFinal_ex(md, digest, &len);
        if (std::string_view(reinterpret_cast<char*>(digest), len) != expected_digest) {
            // tus checksum extension: the whole append is discarded.
            outcome = Outcome::Checksum;
            if (ftruncate(g.fd(), static_cast<off_t>(start)) != 0) err = errno;
            cur = start;
            appended = 0;
            return;
        }
    }
    if (is_ietf(dialect.protocol) && req_complete == 1) {
        if (state.length == UploadState::kUnknown) {
            state.length = cur;
        } else if (state.length != cur) {
            checkpoint(g.fd(), false);  // keep what arrived
            outcome = Outcome::Inconsistent;
            return;
        }
    }
    if (!checkpoint(g.fd(), false)) return;
    if (state.length != UploadState::kUnknown && cur == state.length) finish(g.fd());
}

// The last byte is in: the file goes to its target with PUT's final step,
// under the preconditions the creation request carried (checked again now).
void UploadJob::finish(int fd) {
    rel = state.target;
    // The target was checked at creation; a hand-edited state file must not
    // lead anywhere PUT could not (parse_state refuses dot segments and
    // dotfiles; open_parent stays beneath the root).
    cond = Conditionals{};
    if (!state.if_match.empty()) cond.if_match = state.if_match;
    if (!state.if_none_match.empty()) cond.if_none_match = state.if_none_match;
    if (!state.if_unmodified_since.empty()) cond.if_unmodified_since = state.if_unmodified_since;
    target_url = "/" + state.target;
    url_path = target_url;
    std::string name;
    if (!open_parent(*this, name)) return;
    std::string no_temp;
    place_content(*this, fd, no_temp);
    if (status || err || lock_check.status) return;  // the upload stays, complete but not placed
    UploadState done_state = state;
    done_state.complete = true;
    if (write_state(up_dir, id, done_state)) state = done_state;
    std::string p = part();
    unlinkat(up_dir, p.c_str(), 0);
    fsync(up_dir);
    finished = true;
}

void UploadJob::release() {
    // The client went away mid-append (or the exchange ended early): what
    // was written is synced and acknowledged on disk, so HEAD reports it and
    // the client resumes from there.
    if (body_open && up_dir >= 0 && !md && cur > synced) {
        LockService::Guard g = lock_part();
        if (g.held() && still_mine(g)) checkpoint(g.fd(), true);
    } else if (body_open && up_dir >= 0) {
        LockService::Guard g = lock_part();
        if (g.held() && still_mine(g)) {
            UploadState next = state;
            next.interrupted = true;
            if (write_state(up_dir, id, next)) state = next;
        }
    }
    body_open = false;
    close_dirs();
}

// ------------------------------------------------------------- responses

struct Fields {
    std::string offset, length, limit, expires, location;
};

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

void respond_tus_error(Exchange& ex, int status, std::string_view detail, ResponseHead head = {}) {
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
            f.location = "/";
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

bool is_upload_creation(const Request& req) {
    if (req.method != Method::Post && req.method != Method::Put) return false;
    Dialect d = dialect_of(req);
    if (!d.known) return false;
    if (d.protocol == UploadProtocol::Tus)
        return req.method == Method::Post &&
               (req.find("upload-length").data() || req.find("upload-defer-length").data());
    return parse_sf_bool(req.find("upload-complete")) >= 0;
}

bool is_unsupported_partial_upload(const Request& req) {
    if (dialect_of(req).known) return false;
    // iOS 17's URLSession speaks draft 01 (interop 3): Upload-Incomplete.
    return parse_sf_bool(req.find("upload-incomplete")) == 1 || parse_sf_bool(req.find("upload-complete")) == 0;
}

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

void add_upload_options(const Exchange& ex, ResponseHead& head, std::string& storage) {
    const Site& site = ex.site();
    if (!site.writes_enabled) return;
    storage.clear();
    if (site.max_body_size) fmt::format_to(std::back_inserter(storage), "max-size={}, ", site.max_body_size);
    fmt::format_to(std::back_inserter(storage), "max-age={}", site.upload_expiry_s);
    size_t limit_end = storage.size();
    if (site.max_body_size) fmt::format_to(std::back_inserter(storage), "{}", site.max_body_size);
    std::string_view all = storage;
    head.add("Upload-Limit", all.substr(0, limit_end));
    if (ex.request().find("tus-resumable").data()) {
        head.add("Tus-Resumable", kTusVersion);
        head.add("Tus-Version", kTusVersion);
        head.add("Tus-Extension", kTusExtensions);
        head.add("Tus-Checksum-Algorithm", kTusChecksums);
        if (site.max_body_size) head.add("Tus-Max-Size", all.substr(limit_end));
    }
}

}  // namespace uvh
