// What the server compresses and how: the --compress flags, read by the GET
// handler and the coding cache.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "handlers/compress/codecs.h"

namespace uvh {

struct CompressPolicy {
    bool enabled = true;  // --compress on|off
    // Media types compressed on the fly (--compress-types): exact types
    // ("application/json") or a whole top-level type ("text/*").
    // Parameters of the Content-Type (charset) are ignored.
    std::vector<std::string> types;
    uint64_t min_size = 1024;        // --compress-min-size: smaller bodies are sent as they are
    uint64_t max_cached = 1 << 20;   // --compress-max-cached: larger files are compressed as a stream
    CodingLevels cached = kDefaultCachedLevels;  // --compress-level CODING=N
    CodingLevels stream = kDefaultStreamLevels;  // --compress-stream-level CODING=N

    // Whether a body of this media type is worth compressing. A type from
    // the MIME table is answered from the decisions prepare() made (a
    // pointer lookup: this runs on every GET); any other by matching.
    bool compressible(std::string_view content_type) const;

    // Decides once for every type of the MIME table; call after setting
    // `enabled` and `types`.
    void prepare();

private:
    bool matches(std::string_view content_type) const;
    // (data pointer of a MIME table type, its decision), sorted by pointer.
    std::vector<std::pair<const char*, bool>> known_;
};

// The default --compress-types: text, scripts, styles, JSON, XML, SVG,
// WebAssembly and the like; never images, audio, video, fonts already
// compressed (woff2), archives or anything already content-coded.
std::vector<std::string> default_compress_types();

}  // namespace uvh
