// Blocking file-system helpers for code running on the threadpool. Every
// path is resolved beneath the served root by the kernel (openat2 with
// RESOLVE_BENEATH), so "..", absolute symlinks and symlinks that climb out
// of the root fail instead of escaping it.
#pragma once

#include <sys/stat.h>

#include <string>
#include <string_view>

namespace uvh {

// openat2(root_fd, rel, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS).
// Returns a descriptor or -1 with errno set (EXDEV for an escape attempt).
int open_beneath(int root_fd, const std::string& rel, int flags, mode_t mode = 0);

// Splits "a/b/c" into the parent "a/b" ("." for a top-level name) and the
// last segment "c".
void split_parent(std::string_view rel, std::string& parent, std::string& name);

// The HTTP status for a failed file operation's errno: 404 for a missing
// path, 403 for permissions and escapes, 507 for a full disk, 503 when out
// of descriptors, 500 otherwise.
int status_for_errno(int err);

// Reads exactly `len` bytes at `offset` into `out` (resized). Returns false
// with errno set on error or on a short read (errno EIO: the file shrank).
bool read_exact(int fd, uint64_t offset, size_t len, std::string& out);

// Writes all of [data, data+len) at the current offset, retrying on EINTR
// and short writes. Returns false with errno set on failure.
bool write_all(int fd, const char* data, size_t len);

// True when both stats describe the same version of the same file.
bool same_version(const struct stat& a, const struct stat& b);

}  // namespace uvh
