#include "handlers/compress/codecs.h"

#include <brotli/encode.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>

namespace uvh {

namespace {

// Output grows in steps of this much; each step is filled by the library.
constexpr size_t kStep = 64 * 1024;

class GzipEncoder final : public Encoder {
public:
    explicit GzipEncoder(int level) {
        // windowBits 15 + 16: a gzip wrapper (RFC 1952) rather than zlib's.
        ok_ = deflateInit2(&z_, std::clamp(level, 1, 9), Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK;
    }
    ~GzipEncoder() override {
        if (ok_) deflateEnd(&z_);
    }
    bool write(std::string_view in, bool finish, std::string& out) override {
        if (!ok_) return false;
        z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
        z_.avail_in = static_cast<uInt>(in.size());
        int flush = finish ? Z_FINISH : Z_NO_FLUSH;
        for (;;) {
            size_t before = out.size();
            out.resize(before + kStep);
            z_.next_out = reinterpret_cast<Bytef*>(out.data() + before);
            z_.avail_out = static_cast<uInt>(kStep);
            int rc = deflate(&z_, flush);
            out.resize(before + kStep - z_.avail_out);
            if (rc == Z_STREAM_END) return true;
            if (rc != Z_OK && rc != Z_BUF_ERROR) return false;
            // More to do while output filled up or input remains.
            if (z_.avail_out != 0 && z_.avail_in == 0 && !finish) return true;
        }
    }

private:
    z_stream z_{};
    bool ok_ = false;
};

class BrotliEncoder final : public Encoder {
public:
    BrotliEncoder(int level, uint64_t size_hint) : s_(BrotliEncoderCreateInstance(nullptr, nullptr, nullptr)) {
        if (!s_) return;
        BrotliEncoderSetParameter(s_, BROTLI_PARAM_QUALITY, static_cast<uint32_t>(std::clamp(level, 0, 11)));
        // A window no larger than the input (when known), at most 4 MiB:
        // memory per stream stays bounded whatever the file's size.
        uint32_t lgwin = 22;
        if (size_hint) {
            lgwin = BROTLI_MIN_WINDOW_BITS;
            while (lgwin < 22 && (1ull << lgwin) < size_hint) ++lgwin;
            BrotliEncoderSetParameter(s_, BROTLI_PARAM_SIZE_HINT,
                                      static_cast<uint32_t>(std::min<uint64_t>(size_hint, 1u << 30)));
        }
        BrotliEncoderSetParameter(s_, BROTLI_PARAM_LGWIN, lgwin);
    }
    ~BrotliEncoder() override {
        if (s_) BrotliEncoderDestroyInstance(s_);
    }
    bool write(std::string_view in, bool finish, std::string& out) override {
        if (!s_) return false;
        size_t avail_in = in.size();
        const uint8_t* next_in = reinterpret_cast<const uint8_t*>(in.data());
        BrotliEncoderOperation op = finish ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_PROCESS;
        for (;;) {
            size_t before = out.size();
            out.resize(before + kStep);
            size_t avail_out = kStep;
            uint8_t* next_out = reinterpret_cast<uint8_t*>(out.data() + before);
            if (!BrotliEncoderCompressStream(s_, op, &avail_in, &next_in, &avail_out, &next_out, nullptr)) {
                out.resize(before);
                return false;
            }
            out.resize(before + kStep - avail_out);
            if (finish ? BrotliEncoderIsFinished(s_) : (avail_in == 0 && !BrotliEncoderHasMoreOutput(s_)))
                return true;
        }
    }

private:
    BrotliEncoderState* s_;
};

class ZstdEncoder final : public Encoder {
public:
    ZstdEncoder(int level, uint64_t size_hint) : c_(ZSTD_createCCtx()) {
        if (!c_) return;
        ZSTD_CCtx_setParameter(c_, ZSTD_c_compressionLevel, std::clamp(level, 1, 19));
        ZSTD_CCtx_setParameter(c_, ZSTD_c_checksumFlag, 1);
        // A known size lets zstd pick small tables for a small input and
        // puts the size in the frame header; for a stream of unknown size
        // the window is capped at 8 MiB, the most a browser must accept
        // (RFC 8878 §3.1.1.1.2), and memory stays bounded.
        if (size_hint) {
            ZSTD_CCtx_setPledgedSrcSize(c_, size_hint);
        } else {
            ZSTD_CCtx_setParameter(c_, ZSTD_c_windowLog, 21);
        }
    }
    ~ZstdEncoder() override {
        if (c_) ZSTD_freeCCtx(c_);
    }
    bool write(std::string_view in, bool finish, std::string& out) override {
        if (!c_) return false;
        ZSTD_inBuffer input{in.data(), in.size(), 0};
        ZSTD_EndDirective mode = finish ? ZSTD_e_end : ZSTD_e_continue;
        for (;;) {
            size_t before = out.size();
            out.resize(before + kStep);
            ZSTD_outBuffer output{out.data() + before, kStep, 0};
            size_t rc = ZSTD_compressStream2(c_, &output, &input, mode);
            out.resize(before + output.pos);
            if (ZSTD_isError(rc)) return false;
            if (finish ? rc == 0 : input.pos == input.size) return true;
        }
    }

private:
    ZSTD_CCtx* c_;
};

}  // namespace

std::unique_ptr<Encoder> Encoder::make(Coding coding, int level, uint64_t size_hint) {
    switch (coding) {
    case Coding::Gzip: return std::make_unique<GzipEncoder>(level);
    case Coding::Br: return std::make_unique<BrotliEncoder>(level, size_hint);
    case Coding::Zstd: return std::make_unique<ZstdEncoder>(level, size_hint);
    case Coding::Identity: break;
    }
    return nullptr;
}

bool compress_all(Coding coding, int level, std::string_view in, std::string& out) {
    out.clear();
    auto enc = Encoder::make(coding, level, in.size() ? in.size() : 1);
    if (!enc) return false;
    if (!enc->write(in, true, out)) return false;
    out.shrink_to_fit();
    return true;
}

int max_level(Coding c) {
    switch (c) {
    case Coding::Gzip: return 9;
    case Coding::Br: return 11;
    case Coding::Zstd: return 19;
    case Coding::Identity: break;
    }
    return 0;
}

}  // namespace uvh
