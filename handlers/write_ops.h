// Writes to files: PUT (atomic, streaming), DELETE and MKCOL (RFC 9110
// §9.3.4, §9.3.5; RFC 4918 §9.3 for MKCOL).
#pragma once

#include <string>
#include <string_view>

#include "handlers/exchange.h"

namespace uvh {

// PUT /path: the body streams through the threadpool into an unnamed
// temporary file in the target's directory (O_TMPFILE), is synced, and is
// linked over the target only when complete. 201 for a new file, 204 for a
// replacement; If-Match / If-None-Match / If-Unmodified-Since give 412.
void handle_put(Exchange& ex);

// DELETE /path: 204; 404 when missing. A directory goes with everything in
// it (RFC 4918 §9.6.1); members that cannot go (hidden files, the record
// store, failures) stay with their directories and a 207 names them.
void handle_delete(Exchange& ex);

// MKCOL /dir/: 201; 405 when something exists there; 409 without a parent;
// 415 with a body.
void handle_mkcol(Exchange& ex);

// Removes ".uvhttpd-tmp-*" files older than `min_age_s` under the root: the
// leftovers of a crash between linking and renaming. Blocking; run it on the
// threadpool. Returns how many were removed.
size_t sweep_temp_files(int root_fd, int min_age_s);

// True when `name` in the directory `dir_fd` is the record store's file,
// whatever URL led there (hardening issue, item 4): no other write may
// replace, remove or lock it.
bool is_record_store_entry(const Site& site, int dir_fd, std::string_view name);

// The prefix of every temporary name the server creates (hidden, as a
// dotfile, from listings and GET).
inline constexpr const char* kTempPrefix = ".uvhttpd-tmp-";

// A fresh temporary name: kTempPrefix + 16 random hex digits.
std::string temp_name();

}  // namespace uvh
