// The upload job: every step of a resumable upload that touches the disk
// (create, open for an append, write a piece, end an append, report the
// offset, cancel), run on the threadpool under the part file's lock. The
// on-disk format is upload_state.h; the HTTP side that drives the steps is
// uploads.cpp, the answers upload_responses.cpp.
#pragma once

#include <openssl/evp.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "handlers/lock_service.h"
#include "handlers/uploads/upload_dialect.h"
#include "handlers/uploads/upload_state.h"
#include "handlers/write_step.h"

namespace uvh::upload {

constexpr size_t kUploadChunk = 256 * 1024;
// A long append is synced and acknowledged on disk every this many bytes,
// so a crash or a kill -9 mid-request loses at most this much.
constexpr uint64_t kCheckpointBytes = 8ull << 20;

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
    // A checkpoint in this step made `synced` durable: the loop thread may
    // report it (a progress 104, upload_responses.h).
    bool progress = false;
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

}  // namespace uvh::upload
