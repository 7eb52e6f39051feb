#include "protocol/mime.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace uvh {

namespace {

struct MimeEntry {
    std::string_view ext;
    std::string_view type;
};

// Sorted by extension for binary search; keep it sorted when adding entries
// (the unit test checks the order).
constexpr std::array kTable = {
    MimeEntry{"7z", "application/x-7z-compressed"},
    MimeEntry{"avif", "image/avif"},
    MimeEntry{"bin", "application/octet-stream"},
    MimeEntry{"bmp", "image/bmp"},
    MimeEntry{"bz2", "application/x-bzip2"},
    MimeEntry{"c", "text/plain; charset=utf-8"},
    MimeEntry{"cc", "text/plain; charset=utf-8"},
    MimeEntry{"cpp", "text/plain; charset=utf-8"},
    MimeEntry{"css", "text/css; charset=utf-8"},
    MimeEntry{"csv", "text/csv; charset=utf-8"},
    MimeEntry{"deb", "application/vnd.debian.binary-package"},
    MimeEntry{"doc", "application/msword"},
    MimeEntry{"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    MimeEntry{"eot", "application/vnd.ms-fontobject"},
    MimeEntry{"epub", "application/epub+zip"},
    MimeEntry{"flac", "audio/flac"},
    MimeEntry{"gif", "image/gif"},
    MimeEntry{"gz", "application/gzip"},
    MimeEntry{"h", "text/plain; charset=utf-8"},
    MimeEntry{"hpp", "text/plain; charset=utf-8"},
    MimeEntry{"htm", "text/html; charset=utf-8"},
    MimeEntry{"html", "text/html; charset=utf-8"},
    MimeEntry{"ico", "image/x-icon"},
    MimeEntry{"ics", "text/calendar; charset=utf-8"},
    MimeEntry{"iso", "application/x-iso9660-image"},
    MimeEntry{"jar", "application/java-archive"},
    MimeEntry{"jpeg", "image/jpeg"},
    MimeEntry{"jpg", "image/jpeg"},
    MimeEntry{"js", "text/javascript; charset=utf-8"},
    MimeEntry{"json", "application/json"},
    MimeEntry{"jsonld", "application/ld+json"},
    MimeEntry{"log", "text/plain; charset=utf-8"},
    MimeEntry{"m4a", "audio/mp4"},
    MimeEntry{"manifest", "application/manifest+json"},
    MimeEntry{"map", "application/json"},
    MimeEntry{"md", "text/markdown; charset=utf-8"},
    MimeEntry{"mid", "audio/midi"},
    MimeEntry{"mjs", "text/javascript; charset=utf-8"},
    MimeEntry{"mkv", "video/x-matroska"},
    MimeEntry{"mov", "video/quicktime"},
    MimeEntry{"mp3", "audio/mpeg"},
    MimeEntry{"mp4", "video/mp4"},
    MimeEntry{"mpeg", "video/mpeg"},
    MimeEntry{"oga", "audio/ogg"},
    MimeEntry{"ogg", "audio/ogg"},
    MimeEntry{"ogv", "video/ogg"},
    MimeEntry{"otf", "font/otf"},
    MimeEntry{"pdf", "application/pdf"},
    MimeEntry{"png", "image/png"},
    MimeEntry{"ppt", "application/vnd.ms-powerpoint"},
    MimeEntry{"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
    MimeEntry{"py", "text/plain; charset=utf-8"},
    MimeEntry{"rar", "application/vnd.rar"},
    MimeEntry{"rss", "application/rss+xml"},
    MimeEntry{"rtf", "application/rtf"},
    MimeEntry{"sh", "text/plain; charset=utf-8"},
    MimeEntry{"svg", "image/svg+xml"},
    MimeEntry{"tar", "application/x-tar"},
    MimeEntry{"tif", "image/tiff"},
    MimeEntry{"tiff", "image/tiff"},
    MimeEntry{"toml", "text/plain; charset=utf-8"},
    MimeEntry{"ts", "video/mp2t"},
    MimeEntry{"tsv", "text/tab-separated-values; charset=utf-8"},
    MimeEntry{"ttf", "font/ttf"},
    MimeEntry{"txt", "text/plain; charset=utf-8"},
    MimeEntry{"wasm", "application/wasm"},
    MimeEntry{"wav", "audio/wav"},
    MimeEntry{"weba", "audio/webm"},
    MimeEntry{"webm", "video/webm"},
    MimeEntry{"webmanifest", "application/manifest+json"},
    MimeEntry{"webp", "image/webp"},
    MimeEntry{"woff", "font/woff"},
    MimeEntry{"woff2", "font/woff2"},
    MimeEntry{"xhtml", "application/xhtml+xml; charset=utf-8"},
    MimeEntry{"xls", "application/vnd.ms-excel"},
    MimeEntry{"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    MimeEntry{"xml", "application/xml"},
    MimeEntry{"xz", "application/x-xz"},
    MimeEntry{"yaml", "text/yaml; charset=utf-8"},
    MimeEntry{"yml", "text/yaml; charset=utf-8"},
    MimeEntry{"zip", "application/zip"},
    MimeEntry{"zst", "application/zstd"},
};

constexpr bool table_sorted() {
    for (size_t i = 1; i < kTable.size(); ++i)
        if (!(kTable[i - 1].ext < kTable[i].ext)) return false;
    return true;
}
static_assert(table_sorted(), "kTable must stay sorted by extension");

constexpr std::string_view kDefault = "application/octet-stream";

}  // namespace

std::vector<std::string_view> known_mime_types() {
    std::vector<std::string_view> types{kDefault};
    for (const MimeEntry& e : kTable) types.push_back(e.type);
    return types;
}

std::string_view mime_type_for(std::string_view file_name) {
    size_t slash = file_name.rfind('/');
    if (slash != std::string_view::npos) file_name.remove_prefix(slash + 1);
    size_t dot = file_name.rfind('.');
    if (dot == std::string_view::npos || dot + 1 == file_name.size()) return kDefault;
    std::string_view ext = file_name.substr(dot + 1);
    char lower[16];
    if (ext.size() > sizeof lower) return kDefault;
    for (size_t i = 0; i < ext.size(); ++i) {
        char c = ext[i];
        lower[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
    std::string_view key(lower, ext.size());
    auto it = std::lower_bound(kTable.begin(), kTable.end(), key,
                               [](const MimeEntry& e, std::string_view k) { return e.ext < k; });
    if (it != kTable.end() && it->ext == key) return it->type;
    return kDefault;
}

}  // namespace uvh
