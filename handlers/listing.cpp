#include "handlers/listing.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "handlers/fs_ops.h"
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

bool read_directory(int root_fd, int dir_fd, const std::string& rel, std::vector<DirEntry>& out) {
    // fdopendir takes ownership of its descriptor, so give it a copy.
    int copy = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (copy < 0) return false;
    DIR* dir = fdopendir(copy);
    if (!dir) {
        int e = errno;
        close(copy);
        errno = e;
        return false;
    }
    // readdir() reports errors only through errno, so clear it before every
    // call: the checks inside the loop may leave it set.
    for (;;) {
        errno = 0;
        struct dirent* d = readdir(dir);
        if (!d) break;
        if (d->d_name[0] == '.') continue;  // ".", ".." and dotfiles
        struct stat st {};
        if (fstatat(dir_fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (S_ISLNK(st.st_mode)) {
            // Show a symlink only if the server would follow it.
            std::string path = rel == "." ? std::string(d->d_name) : rel + "/" + d->d_name;
            int fd = open_beneath(root_fd, path, O_PATH);
            if (fd < 0) continue;
            bool ok = fstat(fd, &st) == 0;
            close(fd);
            if (!ok) continue;
        }
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) continue;
        DirEntry e;
        e.name = d->d_name;
        e.is_dir = S_ISDIR(st.st_mode);
        e.size = e.is_dir ? 0 : static_cast<uint64_t>(st.st_size);
        e.mtime = st.st_mtim.tv_sec;
        out.push_back(std::move(e));
    }
    int e = errno;
    closedir(dir);
    if (e != 0) {
        errno = e;
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

void render_listing_html(std::string_view url_path, const std::vector<DirEntry>& entries,
                         std::string_view form_action, std::string& out) {
    std::string title;
    html_escape(url_path, title);
    out.clear();
    fmt::format_to(std::back_inserter(out),
                   "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                   "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                   "<title>Index of {0}</title>\n<style>\n"
                   "body{{font-family:system-ui,sans-serif;margin:2em;max-width:60em}}\n"
                   "table{{border-collapse:collapse;width:100%}}\n"
                   "th,td{{text-align:left;padding:.25em 1em .25em 0}}\n"
                   "td.size,th.size{{text-align:right;white-space:nowrap}}\n"
                   "form{{margin-top:2em;padding:1em;border:1px solid #ccc;max-width:24em}}\n"
                   "label{{display:block;margin:.5em 0}}\n"
                   "</style>\n</head>\n<body>\n<h1>Index of {0}</h1>\n"
                   "<table>\n<thead><tr><th>Name</th><th class=\"size\">Size</th><th>Last modified</th></tr></thead>\n"
                   "<tbody>\n",
                   title);
    if (url_path != "/") out += "<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n";
    for (const DirEntry& e : entries) {
        std::string name;
        html_escape(e.name, name);
        if (e.is_dir) name.push_back('/');
        std::string href;
        html_escape(href_for(e), href);
        fmt::format_to(std::back_inserter(out),
                       "<tr><td><a href=\"{}\">{}</a></td><td class=\"size\">{}</td><td>{}</td></tr>\n",
                       href, name, e.is_dir ? std::string("-") : human_size(e.size),
                       display_time(e.mtime));
    }
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

void render_listing_json(std::string_view url_path, const std::vector<DirEntry>& entries,
                         std::string& out) {
    nlohmann::json list = nlohmann::json::array();
    for (const DirEntry& e : entries) {
        list.push_back({{"name", e.name},
                        {"type", e.is_dir ? "directory" : "file"},
                        {"size", e.size},
                        {"modified", iso_time(e.mtime)},
                        {"href", href_for(e)}});
    }
    nlohmann::json doc = {{"path", std::string(url_path)}, {"entries", std::move(list)}};
    // Invalid UTF-8 in a file name is replaced rather than failing the page.
    out = doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
    out.push_back('\n');
}

}  // namespace uvh
