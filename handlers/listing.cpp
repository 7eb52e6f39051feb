#include "handlers/listing.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <sys/stat.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "handlers/fs_ops.h"
#include "handlers/ui/ui_assets.h"
#include "protocol/percent.h"

namespace uvh {

namespace {

std::string iso_time(int64_t t) {
    time_t tt = static_cast<time_t>(t);
    struct tm tm {};
    gmtime_r(&tt, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                       tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string display_time(int64_t t) {
    time_t tt = static_cast<time_t>(t);
    struct tm tm {};
    gmtime_r(&tt, &tm);
    return fmt::format("{:04}-{:02}-{:02} {:02}:{:02} UTC", tm.tm_year + 1900, tm.tm_mon + 1,
                       tm.tm_mday, tm.tm_hour, tm.tm_min);
}

std::string href_for(const DirEntry& e) {
    std::string h;
    percent_encode(e.name, h);
    if (e.is_dir) h.push_back('/');
    return h;
}

}  // namespace

// One entry of the directory open as `dir_fd`: dotfiles skipped, symlinks
// shown only when they resolve inside the root (with their target's type
// and size), only files and directories. False when it is not listed.
bool stat_entry(int root_fd, int dir_fd, const std::string& rel, const char* name, DirEntry& out) {
    if (name[0] == '.') return false;  // ".", ".." and dotfiles
    // statx rather than fstatat: the same cost, and it reports the birth
    // time (DAV:creationdate) where the file system keeps one.
    struct statx st {};
    constexpr unsigned kMask = STATX_TYPE | STATX_SIZE | STATX_MTIME | STATX_INO | STATX_BTIME;
    if (statx(dir_fd, name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, kMask, &st) != 0) return false;
    if (S_ISLNK(st.stx_mode)) {
        // Show a symlink only if the server would follow it.
        std::string path = rel == "." ? std::string(name) : rel + "/" + name;
        int fd = open_beneath(root_fd, path, O_PATH);
        if (fd < 0) return false;
        bool ok = statx(fd, "", AT_EMPTY_PATH, kMask, &st) == 0;
        close(fd);
        if (!ok) return false;
    }
    if (!S_ISDIR(st.stx_mode) && !S_ISREG(st.stx_mode)) return false;
    out.name = name;
    out.is_dir = S_ISDIR(st.stx_mode);
    out.size = out.is_dir ? 0 : static_cast<uint64_t>(st.stx_size);
    out.mtime = st.stx_mtime.tv_sec;
    out.mtime_nsec = st.stx_mtime.tv_nsec;
    out.ino = st.stx_ino;
    out.btime = (st.stx_mask & STATX_BTIME) ? st.stx_btime.tv_sec : 0;
    return true;
}

bool DirectoryReader::next_batch(std::vector<DirEntry>& out, size_t max) {
    if (done_) return false;
    if (buf_.empty()) buf_.resize(32 * 1024);
    size_t added = 0;
    while (added < max) {
        if (pos_ >= len_) {
            // getdents64 directly: the only resource is the descriptor the
            // caller owns (a DIR would need closedir on whatever thread ends
            // the listing).
            long n = syscall(SYS_getdents64, dir_fd_, buf_.data(), buf_.size());
            if (n < 0) {
                if (errno == EINTR) continue;
                error_ = errno;
                done_ = true;
                return false;
            }
            if (n == 0) {
                done_ = true;
                return added > 0;
            }
            len_ = static_cast<size_t>(n);
            pos_ = 0;
        }
        // struct linux_dirent64: ino, off, reclen, type, then the name.
        const char* rec = buf_.data() + pos_;
        unsigned short reclen;
        std::memcpy(&reclen, rec + 16, sizeof reclen);
        const char* name = rec + 19;
        pos_ += reclen;
        DirEntry e;
        if (stat_entry(root_fd_, dir_fd_, rel_, name, e)) {
            out.push_back(std::move(e));
            ++added;
        }
    }
    return true;
}

bool read_directory(int root_fd, int dir_fd, const std::string& rel, std::vector<DirEntry>& out) {
    DirectoryReader reader(root_fd, dir_fd, rel);
    while (reader.next_batch(out, 4096)) {
    }
    if (reader.error() != 0) {
        errno = reader.error();
        return false;
    }
    return true;
}

void sort_entries(std::vector<DirEntry>& entries) {
    std::sort(entries.begin(), entries.end(), [](const DirEntry& a, const DirEntry& b) {
        if (a.is_dir != b.is_dir) return a.is_dir;
        return a.name < b.name;
    });
}

void html_escape(std::string_view in, std::string& out) {
    for (char c : in) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&#39;"; break;
        default: out.push_back(c);
        }
    }
}

std::string human_size(uint64_t bytes) {
    if (bytes < 1024) return fmt::format("{} B", bytes);
    const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = static_cast<double>(bytes) / 1024.0;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        ++u;
    }
    return fmt::format("{:.1f} {}", v, units[u]);
}

void listing_html_head(std::string_view url_path, std::string& out, bool sorted, std::string_view writes) {
    std::string title;
    html_escape(url_path, title);
    // No inline script or style: the Content-Security-Policy of the page
    // allows both only from this server (handlers/ui/ui_assets.h).
    fmt::format_to(std::back_inserter(out),
                   "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                   "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                   "<title>Index of {}</title>\n",
                   title);
    for (size_t i = 0; i < kUiAssetCount; ++i) {
        const UiAsset& a = kUiAssets[i];
        if (a.file.ends_with(".css")) {
            fmt::format_to(std::back_inserter(out), "<link rel=\"stylesheet\" href=\"{}{}\">\n", kUiPrefix, a.file);
        } else {
            fmt::format_to(std::back_inserter(out), "<script src=\"{}{}\" defer></script>\n", kUiPrefix, a.file);
        }
    }
    fmt::format_to(std::back_inserter(out), "</head>\n<body data-writes=\"{}\">\n<h1>Index of {}</h1>\n", writes,
                   title);
    if (!sorted)
        fmt::format_to(std::back_inserter(out),
                       "<p id=\"unsorted\">More than {} entries: shown in the order the directory gives them.</p>\n",
                       kListingSortLimit);
    out += "<table id=\"listing\">\n<thead><tr><th class=\"name\">Name</th><th class=\"size\">Size</th>"
           "<th class=\"mtime\">Last modified</th></tr></thead>\n"
           "<tbody>\n";
    if (url_path != "/") out += "<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n";
}

void listing_html_entry(const DirEntry& e, std::string& out) {
    std::string raw;
    html_escape(e.name, raw);
    std::string_view name = raw;
    std::string dir_name;
    if (e.is_dir) name = dir_name = raw + '/';
    std::string href;
    html_escape(href_for(e), href);
    // The raw name, type, size in bytes and time in seconds for the page's
    // script (sorting, the write controls).
    fmt::format_to(std::back_inserter(out),
                   "<tr data-name=\"{}\" data-type=\"{}\" data-size=\"{}\" data-mtime=\"{}\">"
                   "<td><a href=\"{}\">{}</a></td><td class=\"size\">{}</td><td>{}</td></tr>\n",
                   raw, e.is_dir ? "dir" : "file", e.size, e.mtime, href, name,
                   e.is_dir ? std::string("-") : human_size(e.size), display_time(e.mtime));
}

void listing_html_tail(std::string_view form_action, std::string& out) {
    std::string action;
    html_escape(form_action, action);
    fmt::format_to(std::back_inserter(out),
                   "</tbody>\n</table>\n"
                   "<form method=\"post\" action=\"{}\">\n<h2>Add a record</h2>\n"
                   "<label>MIS <input type=\"number\" name=\"mis\" min=\"0\"></label>\n"
                   "<label>Name <input type=\"text\" name=\"name\" required></label>\n"
                   "<label>Email <input type=\"email\" name=\"email\" required></label>\n"
                   "<button type=\"submit\">Submit</button>\n</form>\n</body>\n</html>\n",
                   action);
}

namespace {

// Invalid UTF-8 in a file name is replaced rather than failing the page.
std::string json_dump(const nlohmann::ordered_json& j) {
    return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace

void listing_json_head(std::string_view url_path, std::string& out, bool sorted) {
    out += "{\"path\": ";
    out += json_dump(std::string(url_path));
    out += sorted ? ", \"sorted\": true" : ", \"sorted\": false";
    out += ", \"entries\": [";
}

void listing_json_entry(const DirEntry& e, bool first, std::string& out) {
    nlohmann::ordered_json j = {{"name", e.name},
                                {"type", e.is_dir ? "directory" : "file"},
                                {"size", e.size},
                                {"modified", iso_time(e.mtime)},
                                {"href", href_for(e)}};
    out += first ? "\n  " : ",\n  ";
    out += json_dump(j);
}

void listing_json_tail(std::string& out) { out += "\n]}\n"; }

void render_listing_html(std::string_view url_path, const std::vector<DirEntry>& entries,
                         std::string_view form_action, std::string_view writes, std::string& out) {
    out.clear();
    listing_html_head(url_path, out, true, writes);
    for (const DirEntry& e : entries) listing_html_entry(e, out);
    listing_html_tail(form_action, out);
}

void render_listing_json(std::string_view url_path, const std::vector<DirEntry>& entries,
                         std::string& out) {
    out.clear();
    listing_json_head(url_path, out, true);
    for (size_t i = 0; i < entries.size(); ++i) listing_json_entry(entries[i], i == 0, out);
    listing_json_tail(out);
}

// ------------------------------------------------------- the listing source

BodyPiece ListingSource::next() {
    if (has_output_) {
        has_output_ = false;
        return BodyPiece::mem(out_);
    }
    if (phase_ == Phase::Done) return BodyPiece::end();
    return BodyPiece::work();
}

// On a worker: the next window of the page, about kWindow bytes.
void ListingSource::work() {
    out_.clear();
    if (phase_ == Phase::Start) {
        // Up to the sort limit the whole directory is read and sorted
        // (directories first, then by name); past it the entries go out in
        // the directory's order, so memory stays bounded however large the
        // directory is.
        while (entries_.size() <= kListingSortLimit && reader_.next_batch(entries_, 1024)) {
        }
        sorted_ = entries_.size() <= kListingSortLimit;
        if (sorted_) sort_entries(entries_);
        if (json_) {
            listing_json_head(url_path_, out_, sorted_);
        } else {
            listing_html_head(url_path_, out_, sorted_, writes_);
        }
        phase_ = Phase::Entries;
    }
    while (phase_ == Phase::Entries && out_.size() < kWindow) {
        if (pos_ == entries_.size()) {
            entries_.clear();
            pos_ = 0;
            if (sorted_ || !reader_.next_batch(entries_, 1024)) {
                failed_ = reader_.error() != 0;
                if (json_) {
                    listing_json_tail(out_);
                } else {
                    listing_html_tail(form_action_, out_);
                }
                phase_ = Phase::Done;
                break;
            }
        }
        const DirEntry& e = entries_[pos_++];
        if (json_) {
            listing_json_entry(e, count_ == 0, out_);
        } else {
            listing_html_entry(e, out_);
        }
        ++count_;
    }
    has_output_ = true;
    if (phase_ == Phase::Done) {
        std::vector<DirEntry>().swap(entries_);
    }
}

}  // namespace uvh
