#include "handlers/uploads/upload_job.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "handlers/fs_ops.h"
#include "handlers/write_ops.h"

namespace uvh::upload {

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
    if (!md && cur - synced >= kCheckpointBytes && checkpoint(g.fd(), false)) progress = true;
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
}  // namespace uvh::upload
