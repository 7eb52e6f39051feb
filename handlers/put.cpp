#include "handlers/write_ops.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "handlers/dav/dav_locks.h"
#include "handlers/fs_ops.h"
#include "handlers/lock_service.h"
#include "handlers/router.h"
#include "handlers/write_step.h"

namespace uvh {

namespace {

constexpr size_t kPutChunk = 256 * 1024;

// PUT in three kinds of step: prepare (checks, temporary file), write (one
// piece of the body), commit (sync, re-check under the lock, switch).
struct PutJob final : WriteJob {
    enum class Step : uint8_t { Prepare, Write, Commit };
    Step step = Step::Prepare;
    int fd = -1;            // the new content
    std::string named_temp;  // a named temporary file in dir_fd (no O_TMPFILE here)
    std::string_view chunk; // the body piece being written

    using WriteJob::WriteJob;

    void work() override {
        switch (step) {
        case Step::Prepare: return prepare();
        case Step::Write:
            if (!write_all(fd, chunk.data(), chunk.size())) err = errno;
            return;
        case Step::Commit: return commit();
        }
    }
    void done(Exchange& ex) override;
    bool holds_resources() const override { return fd >= 0 || dir_fd >= 0; }
    // An upload that did not finish: its named temporary file goes (an
    // unnamed O_TMPFILE one vanishes with its descriptor).
    void release() override {
        if (!named_temp.empty() && dir_fd >= 0) unlinkat(dir_fd, named_temp.c_str(), 0);
        named_temp.clear();
        if (fd >= 0) close(fd);
        fd = -1;
        WriteJob::release();
    }

    void prepare();
    void commit();
};

void PutJob::prepare() {
    std::string name;
    if (!open_parent(*this, name)) return;
    if (!check_target(*this, name)) return;
    if (exists && S_ISDIR(st.st_mode)) {
        status = 409;  // a collection cannot be replaced by a file
        return;
    }
    if (!check_locks(*this, name, nullptr, false, !exists)) return;
    fd = openat(dir_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        // No O_TMPFILE here: a named temporary file, removed if we fail.
        std::string tmp = temp_name();
        fd = openat(dir_fd, tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        if (fd >= 0) named_temp = tmp;
    }
    if (fd < 0) {
        err = errno;
        return;
    }
}

void PutJob::commit() {
    if (fdatasync(fd) != 0) {
        err = errno;
        return;
    }
    place_content(*this, fd, named_temp);
}

void put_chunk(Exchange& ex, std::string_view piece);
void put_end(Exchange& ex);

void PutJob::done(Exchange& ex) {
    switch (step) {
    case Step::Prepare: {
        if (lock_check.status) return respond_lock_check(ex, lock_check);
        if (status == kStoreRefused) return respond_error(ex, kStoreRefused, kStoreMessage);
        if (status == 412) return respond_error(ex, 412, "precondition failed");
        if (status == 409) {
            return respond_error(ex, 409, exists ? "the target is a directory" : "the parent directory does not exist");
        }
        if (err) return respond_error(ex, status_for_errno(err), std::strerror(err));
        BodyReader reader;
        reader.data = put_chunk;
        reader.end = put_end;
        reader.chunk = kPutChunk;
        return ex.read_body(reader);  // sends 100 Continue now that every check passed
    }
    case Step::Write:
        if (err) return respond_error(ex, status_for_errno(err), std::strerror(err));
        return ex.body_consumed();
    case Step::Commit:
        break;
    }
    invalidate_path_caches(ex);  // even a failed commit may have changed nothing or something: drop it
    if (lock_check.status) return respond_lock_check(ex, lock_check);
    if (status == kStoreRefused) return respond_error(ex, kStoreRefused, kStoreMessage);
    if (status) return respond_error(ex, status, status == 412 ? "precondition failed" : "conflict");
    if (err) return respond_error(ex, status_for_errno(err), std::strerror(err));
    // Committed: nothing is left to clean up.
    if (fd >= 0) ex.close_later(fd);
    fd = -1;
    hand_back(ex);
    std::string etag;
    representation_of(true, st, etag);
    ResponseHead head;
    head.etag = etag;
    head.last_modified = st.st_mtim.tv_sec;
    if (created) {
        std::string location = created_location(ex);
        head.location = location;
        return respond_text(ex, 201, location, head);
    }
    head.status = 204;
    ex.respond(head, Body::none());
}

PutJob& put_job(Exchange& ex) { return ex.job_as<PutJob>(); }

void put_chunk(Exchange& ex, std::string_view piece) {
    PutJob& job = put_job(ex);
    job.step = PutJob::Step::Write;
    job.chunk = piece;
    ex.offload(job);
}

void put_end(Exchange& ex) {
    PutJob& job = put_job(ex);
    job.step = PutJob::Step::Commit;
    ex.offload(job);
}
}  // namespace

void handle_put(Exchange& ex) {
    const Request& req = ex.request();
    const Site& site = ex.site();
    // RFC 9110 §14.4: a server that does not support partial PUT must
    // reject Content-Range rather than store a piece as the whole.
    if (req.content_range.data()) return respond_error(ex, 400, "partial PUT (Content-Range) is not supported");
    if (ex.path() == "/" || ex.path().back() == '/') {
        return respond_error(ex, 405, "PUT needs a file path, not a directory", allowed_methods(site));
    }
    if (site.max_body_size != 0 && req.has_content_length && req.content_length > site.max_body_size)
        return respond_error(ex, 413, "request body larger than --max-body-size");
    PutJob& job = ex.make_job<PutJob>(ex);
    job.create_dirs = site.create_dirs;
    ex.offload(job);
}

}  // namespace uvh
