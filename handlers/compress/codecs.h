// The three content codings the server produces (RFC 9110 §8.4.1): gzip
// (zlib), br (libbrotli) and zstd (libzstd), behind one streaming
// interface. Pure computation, no I/O: runs on worker threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "protocol/negotiate.h"

namespace uvh {

// A compressor for one stream. Each call appends whatever output the
// library has ready; the call with `finish` flushes the rest and ends the
// stream. Memory is the library's state for the level chosen (bounded, a
// few MiB at most for br and zstd), never the size of the input.
class Encoder {
public:
    virtual ~Encoder() = default;
    // False when the library reports an error (the output is then useless).
    virtual bool write(std::string_view in, bool finish, std::string& out) = 0;

    // Levels: gzip 1..9, br 0..11, zstd 1..19 (clamped). `size_hint` is the
    // whole input's size when known (0: unknown), so small inputs get small
    // windows and tables. nullptr for identity.
    static std::unique_ptr<Encoder> make(Coding coding, int level, uint64_t size_hint);
};

// Compresses a whole buffer at once (the cached codings).
bool compress_all(Coding coding, int level, std::string_view in, std::string& out);

// The levels of each coding, for results kept in the cache (compressed once,
// so worth the best ratio) and for streams (compressed per request).
struct CodingLevels {
    int gzip = 9, br = 11, zstd = 19;
    int of(Coding c) const { return c == Coding::Gzip ? gzip : c == Coding::Br ? br : zstd; }
};
inline constexpr CodingLevels kDefaultCachedLevels{9, 11, 19};
inline constexpr CodingLevels kDefaultStreamLevels{6, 5, 3};
// The highest level each coding accepts.
int max_level(Coding c);

}  // namespace uvh
