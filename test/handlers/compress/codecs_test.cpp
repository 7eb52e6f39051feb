// Tests for handlers/compress/codecs.cpp and policy.cpp: every coding
// decodes back to the input with the libraries' own decoders, whole and
// streamed, and the type policy.
#include "handlers/compress/codecs.h"
#include "handlers/compress/policy.h"
#include "protocol/mime.h"

#include <brotli/decode.h>
#include <zlib.h>
#include <zstd.h>

#include <catch2/catch.hpp>

#include <random>
#include <string>

using namespace uvh;

namespace {

std::string decode(Coding c, const std::string& in) {
    std::string out;
    if (c == Coding::Gzip) {
        z_stream z{};
        REQUIRE(inflateInit2(&z, 15 + 16) == Z_OK);
        z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
        z.avail_in = static_cast<uInt>(in.size());
        char buf[65536];
        int rc;
        do {
            z.next_out = reinterpret_cast<Bytef*>(buf);
            z.avail_out = sizeof buf;
            rc = inflate(&z, Z_NO_FLUSH);
            REQUIRE((rc == Z_OK || rc == Z_STREAM_END));
            out.append(buf, sizeof buf - z.avail_out);
        } while (rc != Z_STREAM_END);
        CHECK(z.avail_in == 0);  // nothing after the member
        inflateEnd(&z);
    } else if (c == Coding::Br) {
        BrotliDecoderState* s = BrotliDecoderCreateInstance(nullptr, nullptr, nullptr);
        size_t avail_in = in.size();
        const uint8_t* next_in = reinterpret_cast<const uint8_t*>(in.data());
        BrotliDecoderResult r;
        do {
            uint8_t buf[65536];
            size_t avail_out = sizeof buf;
            uint8_t* next_out = buf;
            r = BrotliDecoderDecompressStream(s, &avail_in, &next_in, &avail_out, &next_out, nullptr);
            REQUIRE(r != BROTLI_DECODER_RESULT_ERROR);
            out.append(reinterpret_cast<char*>(buf), sizeof buf - avail_out);
            REQUIRE((r != BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT || avail_in > 0));
        } while (r != BROTLI_DECODER_RESULT_SUCCESS);
        BrotliDecoderDestroyInstance(s);
    } else {
        ZSTD_DCtx* d = ZSTD_createDCtx();
        ZSTD_inBuffer input{in.data(), in.size(), 0};
        size_t rc = 1;
        while (input.pos < input.size) {
            char buf[65536];
            ZSTD_outBuffer output{buf, sizeof buf, 0};
            rc = ZSTD_decompressStream(d, &output, &input);
            REQUIRE(!ZSTD_isError(rc));
            out.append(buf, output.pos);
        }
        CHECK(rc == 0);  // the frame ended
        ZSTD_freeDCtx(d);
    }
    return out;
}

std::string sample(size_t n, bool random) {
    std::string s;
    std::mt19937 rng(42);
    while (s.size() < n) {
        if (random) {
            s.push_back(static_cast<char>(rng()));
        } else {
            s += "line " + std::to_string(s.size() % 977) + " of a text file that compresses well\n";
        }
    }
    s.resize(n);
    return s;
}

}  // namespace

TEST_CASE("codecs: compress_all round trips for every coding and level range", "[compress]") {
    for (Coding c : {Coding::Gzip, Coding::Br, Coding::Zstd}) {
        for (size_t n : {size_t(0), size_t(1), size_t(1000), size_t(300000)}) {
            for (bool random : {false, true}) {
                std::string in = sample(n, random), out;
                for (int level : {1, max_level(c)}) {
                    if (n > 100000 && level == max_level(c) && c != Coding::Gzip) continue;  // slow, not different
                    INFO("coding " << coding_name(c) << " size " << n << " random " << random << " level " << level);
                    REQUIRE(compress_all(c, level, in, out));
                    CHECK(decode(c, out) == in);
                    if (!random && n >= 1000) CHECK(out.size() < in.size() / 4);
                }
            }
        }
    }
}

TEST_CASE("codecs: a stream written in pieces decodes to the whole", "[compress]") {
    std::string in = sample(1 << 20, false) + sample(200000, true);
    for (Coding c : {Coding::Gzip, Coding::Br, Coding::Zstd}) {
        INFO("coding " << coding_name(c));
        auto enc = Encoder::make(c, kDefaultStreamLevels.of(c), 0);
        REQUIRE(enc);
        std::string out;
        for (size_t pos = 0; pos < in.size(); pos += 77777)
            REQUIRE(enc->write(std::string_view(in).substr(pos, 77777), false, out));
        REQUIRE(enc->write({}, true, out));
        CHECK(decode(c, out) == in);
    }
    CHECK(Encoder::make(Coding::Identity, 1, 0) == nullptr);
}

TEST_CASE("codecs: the same input and level give the same bytes", "[compress]") {
    // A strong ETag per coding and level needs this (coding_cache.h).
    std::string in = sample(100000, false);
    for (Coding c : {Coding::Gzip, Coding::Br, Coding::Zstd}) {
        std::string a, b;
        REQUIRE(compress_all(c, 5, in, a));
        REQUIRE(compress_all(c, 5, in, b));
        CHECK(a == b);
    }
}

TEST_CASE("policy: compressible types, wildcards, parameters ignored, off", "[compress]") {
    CompressPolicy p;
    p.types = default_compress_types();
    CHECK(p.compressible("text/html; charset=utf-8"));
    CHECK(p.compressible("text/javascript; charset=utf-8"));
    CHECK(p.compressible("application/json"));
    CHECK(p.compressible("image/svg+xml"));
    CHECK(p.compressible("application/wasm"));
    CHECK_FALSE(p.compressible("image/png"));
    CHECK_FALSE(p.compressible("video/mp4"));
    CHECK_FALSE(p.compressible("application/gzip"));
    CHECK_FALSE(p.compressible("application/zip"));
    CHECK_FALSE(p.compressible("font/woff2"));
    CHECK_FALSE(p.compressible(""));
    p.types = {"application/json"};
    CHECK_FALSE(p.compressible("text/html"));
    CHECK(p.compressible("Application/JSON"));
    p.enabled = false;
    CHECK_FALSE(p.compressible("application/json"));
}

TEST_CASE("policy: the prepared answer for every MIME table type equals matching", "[compress]") {
    CompressPolicy matched;
    matched.types = {"text/*", "application/json", "image/svg+xml"};
    CompressPolicy prepared = matched;
    prepared.prepare();
    // Copies of the strings take the matching path; the table's own views
    // take the prepared one: both must agree for every type.
    for (std::string_view t : known_mime_types()) {
        std::string copy(t);
        INFO(t);
        CHECK(prepared.compressible(t) == matched.compressible(copy));
    }
    CHECK(prepared.compressible(mime_type_for("a.html")));
    CHECK_FALSE(prepared.compressible(mime_type_for("a.png")));
    CHECK_FALSE(prepared.compressible(mime_type_for("a.unknown-extension")));
    prepared.enabled = false;
    CHECK_FALSE(prepared.compressible(mime_type_for("a.html")));
}
