// Whole-tree file operations for WebDAV: removing a collection (DELETE,
// RFC 4918 §9.6.1; an overwritten destination, §9.8.4) and copying one
// (COPY, §9.8.3). Both keep going past a member that fails and report it,
// so the caller can answer 207 naming exactly those members. Blocking:
// threadpool only. Dead properties go with their resources
// (handlers/dav/props_store.h).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "handlers/dav/props_store.h"
#include "handlers/site.h"

namespace uvh {

struct TreeFailure {
    std::string url_path;  // decoded URL path of the member
    int status = 0;
};

struct TreeContext {
    const Site* site = nullptr;
    PropsMode mode = PropsMode::Auto;
    std::vector<TreeFailure> failures;
    size_t removed = 0;  // files and directories removed
    size_t copied = 0;   // files and directories created
};

// Removes `name` in `dir_fd`; a directory with its members, depth-first.
// Members that are dotfiles (hidden: clients cannot see or remove them,
// except the server's own property sidecar) and the record store's file
// are never removed: they stay, are reported with 403, and so their
// directories stay too. Every removed file's generation is bumped.
// Returns true when `name` itself is gone.
bool remove_tree(TreeContext& cx, int dir_fd, const std::string& name, const std::string& url_path);

// Copies `src_name` in `src_dir` to `dst_name` in `dst_dir`, which must
// not exist. A file's bytes go to a temporary name and are renamed into
// place; a directory is created, then (with `members`) its members copied.
// Dotfiles are not copied; the record store's file is refused (403). Dead
// properties are copied along. Returns true when `dst_name` was created.
bool copy_tree(TreeContext& cx, int src_dir, const std::string& src_name, int dst_dir, const std::string& dst_name,
               const std::string& dst_url_path, bool members);

// Bumps the generation of everything under the directory `dir_fd` (not
// through symlinks), so caches of every process drop what they hold under
// a moved collection's old URLs.
void bump_tree(const Site& site, int dir_fd);

}  // namespace uvh
