// Directory listings: reading a directory beneath the root (threadpool) and
// rendering it as HTML or JSON (pure, unit-tested).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace uvh {

struct DirEntry {
    std::string name;
    bool is_dir = false;
    uint64_t size = 0;
    int64_t mtime = 0;
};

// Reads the entries of an open directory: dotfiles skipped, symlinks shown
// only when they resolve inside the root (with their target's type and
// size). `rel` is the directory's path relative to the root. Returns false
// with errno set on failure. Runs on a worker thread.
bool read_directory(int root_fd, int dir_fd, const std::string& rel, std::vector<DirEntry>& out);

// Directories first, then by name (byte order, so the listing is stable).
void sort_entries(std::vector<DirEntry>& entries);

// An HTML page: names HTML-escaped, hrefs percent-encoded, sizes and
// modification times, a parent link below the root, and the record form of
// the seed posting to `form_action`.
void render_listing_html(std::string_view url_path, const std::vector<DirEntry>& entries,
                         std::string_view form_action, std::string& out);

// {"path": "/a/", "entries": [{"name", "type", "size", "modified", "href"}]}
void render_listing_json(std::string_view url_path, const std::vector<DirEntry>& entries,
                         std::string& out);

// HTML-escapes text for element content and attribute values.
void html_escape(std::string_view in, std::string& out);

// "1.5 KiB" style sizes for people.
std::string human_size(uint64_t bytes);

}  // namespace uvh
