#include "handlers/compress/policy.h"

#include <algorithm>

#include "protocol/mime.h"
#include "protocol/text.h"

namespace uvh {

bool CompressPolicy::compressible(std::string_view content_type) const {
    if (!enabled) return false;
    auto it = std::lower_bound(known_.begin(), known_.end(), content_type.data(),
                               [](const std::pair<const char*, bool>& k, const char* p) { return k.first < p; });
    if (it != known_.end() && it->first == content_type.data()) return it->second;
    return matches(content_type);
}

void CompressPolicy::prepare() {
    known_.clear();
    for (std::string_view t : known_mime_types()) known_.emplace_back(t.data(), matches(t));
    std::sort(known_.begin(), known_.end());
    known_.erase(std::unique(known_.begin(), known_.end(),
                             [](const auto& a, const auto& b) { return a.first == b.first; }),
                 known_.end());
}

bool CompressPolicy::matches(std::string_view content_type) const {
    std::string_view type = trim_ows(content_type.substr(0, content_type.find(';')));
    size_t slash = type.find('/');
    if (slash == std::string_view::npos) return false;
    for (const std::string& t : types) {
        std::string_view want = t;
        if (want.ends_with("/*") ? iequals_ascii(type.substr(0, slash + 1), want.substr(0, want.size() - 1))
                                 : iequals_ascii(type, want))
            return true;
    }
    return false;
}

std::vector<std::string> default_compress_types() {
    return {"text/*",
            "application/javascript",
            "application/json",
            "application/ld+json",
            "application/manifest+json",
            "application/xml",
            "application/rss+xml",
            "application/atom+xml",
            "application/xhtml+xml",
            "application/wasm",
            "application/x-sh",
            "application/yaml",
            "application/toml",
            "image/svg+xml",
            "image/x-icon",
            "image/bmp",
            "font/ttf",
            "font/otf",
            "application/vnd.ms-fontobject"};
}

}  // namespace uvh
