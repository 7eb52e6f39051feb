// The on-disk state of resumable uploads (handlers/uploads/uploads.cpp is
// the HTTP side; this file has no HTTP in it). Every upload lives in the
// hidden directory ".uvhttpd-uploads" in the served root, so its data is on
// the same file system as the targets and its last step is a link and a
// rename, like PUT's:
//
//   <id>.part   the bytes received so far (created 0644, grows by pwrite)
//   <id>.state  what the upload is: target, length, acknowledged offset,
//               expiry, the creation request's preconditions; a few
//               "key=value" lines, replaced whole (write, fdatasync,
//               rename, directory fsync) before an offset is acknowledged
//
// <id> is 32 hex digits from getrandom (128 bits), the only thing the upload
// URL carries. The acknowledged offset is the one in <id>.state: bytes past
// it in <id>.part (written before a crash or by a superseded request) are
// cut off when the next request opens the upload.
//
// Exclusion: each step that reads or changes an upload holds the OFD lock of
// its <id>.part (LockService::lock_file), across threads, --workers and
// servers sharing the root. A request that opens an upload bumps the part
// file's generation (LockService::bump); an older request of the same
// upload, in any process, sees the generation move at its next step and
// ends at its last synced offset, so a resuming client never waits.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

namespace uvh {

inline constexpr const char* kUploadsDir = ".uvhttpd-uploads";
inline constexpr size_t kUploadIdLength = 32;

// Which protocol created the upload; its responses keep that dialect.
enum class UploadProtocol : uint8_t { Tus, Ietf5, Ietf6, Ietf8 };

struct UploadState {
    static constexpr uint64_t kUnknown = ~0ull;
    UploadProtocol protocol = UploadProtocol::Tus;
    std::string target;        // relative to the root, as PUT's rel
    uint64_t length = kUnknown;  // total length, once known
    uint64_t offset = 0;       // acknowledged (synced) bytes
    time_t created = 0;
    time_t expires = 0;
    bool complete = false;     // the file is at its target; only this marker is left
    bool interrupted = false;  // the last request ended before its body did
    // The creation request's preconditions, checked again at completion.
    std::string if_match, if_none_match, if_unmodified_since;
    std::string metadata;      // tus Upload-Metadata, echoed by HEAD
};

// A fresh id: 32 lowercase hex digits. False if the kernel has no entropy.
bool new_upload_id(std::string& id);
// Exactly 32 lowercase hex digits.
bool valid_upload_id(std::string_view id);

std::string part_name(std::string_view id);
std::string state_name(std::string_view id);

// The serialised form, and its strict parser (a hand-edited or torn file is
// rejected, never half-read: false).
std::string serialize_state(const UploadState& s);
bool parse_state(std::string_view text, UploadState& s);

// Blocking; threadpool only. errno on failure.
// Opens the uploads directory beneath the root (creating it when asked).
int open_uploads_dir(int root_fd, bool create);
bool read_state(int dir_fd, std::string_view id, UploadState& s);
bool write_state(int dir_fd, std::string_view id, const UploadState& s);
// Removes both files (the caller holds the part's lock, or it is gone).
void remove_upload(int dir_fd, std::string_view id);
// Unfinished uploads (part files) in the directory.
size_t count_unfinished(int dir_fd);

// Removes uploads whose expiry has passed (and debris: a part without
// state, a temporary state file, older than an hour). Returns how many
// uploads it removed. `bump` is called with each removed part's device and
// inode, so a request still writing it ends.
size_t sweep_expired_uploads(int root_fd, time_t now, void (*bump)(void* ctx, dev_t, ino_t), void* ctx);

}  // namespace uvh
