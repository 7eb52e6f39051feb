// The listing page's script and stylesheet, built into the binary from
// handlers/ui/assets/ (cmake/embed_assets.cmake generates their table) and
// served under the reserved prefix /.uvhttpd-ui/, which no file of the root
// can take (names starting with '.' are never served). Each URL carries a
// hash of the content, so it is cached for a year as immutable; a changed
// asset gets a new URL.
#pragma once

#include <cstddef>
#include <string_view>

namespace uvh {

inline constexpr std::string_view kUiPrefix = "/.uvhttpd-ui/";

// The listing page's Content-Security-Policy: script, style, images and
// fetches from this server only, no inline script or style, no plugins, no
// <base>, never framed, forms post only here.
inline constexpr std::string_view kListingCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

// One representation of an asset: its strong ETag and bytes.
struct UiRep {
    std::string_view etag;  // "\"0123456789abcdef\"": the first 16 hex digits of the SHA-256 of `data`
    std::string_view data;
};

struct UiAsset {
    std::string_view stem;          // "ui"
    std::string_view file;          // "ui.0123456789abcdef.js": the name under kUiPrefix, the
                                    // identity's hash in the middle
    std::string_view content_type;  // text/javascript or text/css, with charset
    // Identity, gzip and zstd, compressed at build time.
    static constexpr int kIdentity = 0, kGzip = 1, kZstd = 2, kReps = 3;
    UiRep reps[kReps];
};

// Generated (ui_assets.cpp in the build tree).
extern const UiAsset kUiAssets[];
extern const size_t kUiAssetCount;

// The asset named `file` (the part of the path after kUiPrefix), or null.
const UiAsset* find_ui_asset(std::string_view file);

}  // namespace uvh
