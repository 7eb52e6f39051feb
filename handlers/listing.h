// Directory listings: reading a directory beneath the root (threadpool) and
// rendering it as HTML or JSON (pure, unit-tested).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "handlers/exchange.h"

namespace uvh {

struct DirEntry {
    std::string name;
    bool is_dir = false;
    uint64_t size = 0;
    int64_t mtime = 0;
    // For WebDAV properties (handlers/dav/propfind.cpp): the ETag's inputs
    // and the birth time (0 where the file system does not report it).
    int64_t mtime_nsec = 0;
    uint64_t ino = 0;
    int64_t btime = 0;
};

// Up to this many entries a listing is sorted; a larger directory is
// listed in the order it gives its entries, so that a listing's memory does
// not grow with the directory (hardening issue, item 9).
inline constexpr size_t kListingSortLimit = 10000;

// Reads a directory a batch at a time with getdents64 (no DIR, so the only
// resource is the descriptor, which stays the caller's). Runs on a worker.
class DirectoryReader {
public:
    DirectoryReader(int root_fd, int dir_fd, std::string rel) : root_fd_(root_fd), dir_fd_(dir_fd), rel_(std::move(rel)) {}
    // Appends up to `max` listed entries (see read_directory); false at the
    // end of the directory (with error() set if reading failed).
    bool next_batch(std::vector<DirEntry>& out, size_t max);
    int error() const { return error_; }

private:
    int root_fd_, dir_fd_;
    std::string rel_;
    std::string buf_;
    size_t pos_ = 0, len_ = 0;
    bool done_ = false;
    int error_ = 0;
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
// the seed posting to `form_action`. Its script and stylesheet come from
// handlers/ui/; `writes` ("open", "token" or "closed", see page_writes)
// tells the script whether to offer the write controls.
void render_listing_html(std::string_view url_path, const std::vector<DirEntry>& entries,
                         std::string_view form_action, std::string_view writes, std::string& out);

// {"path": "/a/", "entries": [{"name", "type", "size", "modified", "href"}]}
void render_listing_json(std::string_view url_path, const std::vector<DirEntry>& entries,
                         std::string& out);

// The same pages in pieces, for the streamed listing below. `sorted` false
// adds a note that the order is the directory's.
void listing_html_head(std::string_view url_path, std::string& out, bool sorted, std::string_view writes);
void listing_html_entry(const DirEntry& e, std::string& out);
void listing_html_tail(std::string_view form_action, std::string& out);
void listing_json_head(std::string_view url_path, std::string& out, bool sorted);
void listing_json_entry(const DirEntry& e, bool first, std::string& out);
void listing_json_tail(std::string& out);

// A listing as a body of unknown length (chunked on HTTP/1.1): each Work
// step on a worker reads the next entries and renders about kWindow bytes,
// so a client that reads slowly holds one window, not the whole page. Owns
// the directory's descriptor.
class ListingSource final : public DescriptorSource {
public:
    static constexpr size_t kWindow = 64 * 1024;
    ListingSource(int root_fd, int dir_fd, std::string rel, std::string url_path, bool json,
                  std::string_view form_action, std::string_view writes)
        : DescriptorSource(dir_fd),
          reader_(root_fd, dir_fd, std::move(rel)),
          url_path_(std::move(url_path)),
          form_action_(form_action),
          writes_(writes),
          json_(json) {}
    BodyPiece next() override;
    void work() override;
    bool failed() const override { return failed_; }

private:
    enum class Phase : uint8_t { Start, Entries, Done };
    DirectoryReader reader_;
    std::string url_path_;
    std::string_view form_action_;  // the Site's, which outlives the response
    std::string_view writes_;       // a literal (page_writes)
    bool json_;
    Phase phase_ = Phase::Start;
    bool sorted_ = true;
    bool has_output_ = false;
    bool failed_ = false;
    std::vector<DirEntry> entries_;
    size_t pos_ = 0;
    size_t count_ = 0;
    std::string out_;
};

// HTML-escapes text for element content and attribute values.
void html_escape(std::string_view in, std::string& out);

// "1.5 KiB" style sizes for people.
std::string human_size(uint64_t bytes);

}  // namespace uvh
