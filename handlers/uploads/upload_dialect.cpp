#include "handlers/uploads/upload_dialect.h"

#include <charconv>
#include <string>

#include <fmt/format.h>

#include "handlers/exchange.h"
#include "handlers/uploads/uploads.h"
#include "protocol/text.h"

namespace uvh {

namespace upload {

bool parse_sf_uint(std::string_view v, uint64_t& out) {
    v = trim_ows(v);
    if (v.empty() || v.size() > 15) return false;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    return ec == std::errc() && p == v.data() + v.size();
}

// RFC 9651 Boolean: "?1" or "?0". -1: absent or malformed.
int parse_sf_bool(std::string_view v) {
    if (!v.data()) return -1;
    v = trim_ows(v);
    if (v == "?1") return 1;
    if (v == "?0") return 0;
    return -1;
}

bool media_type_is(std::string_view content_type, std::string_view type) {
    std::string_view t = content_type.substr(0, content_type.find(';'));
    return iequals_ascii(trim_ows(t), type);
}

// Which dialect a request speaks. `known` false: neither tus nor an interop

Dialect dialect_of(const Request& req) {
    Dialect d;
    std::string_view tus = req.find("tus-resumable");
    if (tus.data()) {
        d.known = true;
        d.protocol = UploadProtocol::Tus;
        d.tus_version_ok = trim_ows(tus) == kTusVersion;
        return d;
    }
    std::string_view iv = req.find("upload-draft-interop-version");
    uint64_t v = 0;
    if (iv.data() && parse_sf_uint(iv, v)) {
        if (v == 5) d.protocol = UploadProtocol::Ietf5;
        else if (v == 6) d.protocol = UploadProtocol::Ietf6;
        else if (v == 8) d.protocol = UploadProtocol::Ietf8;
        else return d;
        d.known = true;
    }
    return d;
}


std::string_view interop_token(UploadProtocol p) {
    switch (p) {
    case UploadProtocol::Ietf5: return "5";
    case UploadProtocol::Ietf6: return "6";
    case UploadProtocol::Ietf8: return "8";
    case UploadProtocol::Tus: break;
    }
    return {};
}

}  // namespace upload

using namespace upload;

bool is_upload_creation(const Request& req) {
    if (req.method != Method::Post && req.method != Method::Put) return false;
    Dialect d = dialect_of(req);
    if (!d.known) return false;
    if (d.protocol == UploadProtocol::Tus)
        return req.method == Method::Post &&
               (req.find("upload-length").data() || req.find("upload-defer-length").data());
    return parse_sf_bool(req.find("upload-complete")) >= 0;
}

bool is_unsupported_partial_upload(const Request& req) {
    if (dialect_of(req).known) return false;
    // iOS 17's URLSession speaks draft 01 (interop 3): Upload-Incomplete.
    return parse_sf_bool(req.find("upload-incomplete")) == 1 || parse_sf_bool(req.find("upload-complete")) == 0;
}

void add_upload_options(const Exchange& ex, ResponseHead& head, std::string& storage) {
    const Site& site = ex.site();
    if (!site.writes_enabled) return;
    storage.clear();
    if (site.max_body_size) fmt::format_to(std::back_inserter(storage), "max-size={}, ", site.max_body_size);
    fmt::format_to(std::back_inserter(storage), "max-age={}", site.upload_expiry_s);
    size_t limit_end = storage.size();
    if (site.max_body_size) fmt::format_to(std::back_inserter(storage), "{}", site.max_body_size);
    std::string_view all = storage;
    head.add("Upload-Limit", all.substr(0, limit_end));
    if (ex.request().find("tus-resumable").data()) {
        head.add("Tus-Resumable", kTusVersion);
        head.add("Tus-Version", kTusVersion);
        head.add("Tus-Extension", kTusExtensions);
        head.add("Tus-Checksum-Algorithm", kTusChecksums);
        if (site.max_body_size) head.add("Tus-Max-Size", all.substr(limit_end));
    }
}

}  // namespace uvh
