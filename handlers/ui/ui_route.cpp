#include "handlers/ui/ui_route.h"

#include "handlers/ui/ui_assets.h"
#include "handlers/site.h"
#include "protocol/negotiate.h"
#include "protocol/preconditions.h"
#include "protocol/write_origin.h"

namespace uvh {

std::string_view page_writes(const Site& site, const Request& req) {
    if (!site.writes_enabled) return "closed";
    if (!site.write_token.empty()) return "token";
    // The same Host rule as the router's write policy (handlers/router.cpp).
    if (!req.host.empty() && !write_host_allowed(req.host, site.allowed_hosts)) return "closed";
    return "open";
}

const UiAsset* find_ui_asset(std::string_view file) {
    for (size_t i = 0; i < kUiAssetCount; ++i)
        if (kUiAssets[i].file == file) return &kUiAssets[i];
    return nullptr;
}

namespace {

bool is_ui_path(const Site&, const Request&, std::string_view path) { return path.starts_with(kUiPrefix); }

// The asset's URL names its content (the hash), so a browser may keep it a
// year without asking again (RFC 8246 immutable); a new build that changes
// an asset changes its URL in the listing. Each representation's ETag is
// the hash of its bytes, so a revalidation (a forced reload) is a 304 (RFC
// 9110 §13.1.2). gzip and zstd were made at build time; the client's
// Accept-Encoding chooses as for any file (protocol/negotiate.h), and
// --compress off sends identity only.
void handle_ui_asset(Exchange& ex) {
    const UiAsset* a = find_ui_asset(ex.path().substr(kUiPrefix.size()));
    if (!a) return respond_error(ex, 404, "no such file");
    const Request& req = ex.request();
    uint8_t available = ex.site().compress ? coding_bit(Coding::Gzip) | coding_bit(Coding::Zstd) : 0;
    Coding c = Coding::Identity;
    if (!choose_coding(parse_accept_encoding(req.accept_encoding), available, c))
        return respond_error(ex, 406, "no acceptable content coding (Accept-Encoding refuses identity)");
    const UiRep& rep = a->reps[c == Coding::Gzip   ? UiAsset::kGzip
                               : c == Coding::Zstd ? UiAsset::kZstd
                                                   : UiAsset::kIdentity];
    ResponseHead head;
    head.content_type = a->content_type;
    head.content_encoding = coding_name(c);
    head.etag = rep.etag;
    head.cache_control = "public, max-age=31536000, immutable";
    if (available) head.vary = "Accept-Encoding";
    head.content_length = rep.data.size();
    switch (evaluate_preconditions(req.conditionals(), true, Representation{true, rep.etag, 0}, ex.now())) {
    case Precondition::NotModified:
        head.status = 304;
        return ex.respond(head, Body::none());
    case Precondition::Failed:
        return respond_error(ex, 412, "precondition failed");
    case Precondition::Proceed:
        break;
    }
    ex.respond(head, Body::mem(rep.data));
}

}  // namespace

void append_ui_route(std::vector<Route>& table) {
    Route r;
    r.name = "ui";
    r.matches = is_ui_path;
    r.methods = {{Method::Get, handle_ui_asset, BodyPolicy::Discard, Access::Read, {}},
                 {Method::Head, handle_ui_asset, BodyPolicy::Discard, Access::Read, {}},
                 {Method::Options, nullptr, BodyPolicy::Discard, Access::Read, {}}};
    r.refusal = "the page's assets answer GET and HEAD";
    table.push_back(std::move(r));
}

}  // namespace uvh
