// The response for one representation of a file, whichever way its bytes
// are held: preconditions, ranges (one range, multipart/byteranges) and the
// whole body, from memory or sent from a descriptor with sendfile.
#pragma once

#include <cstdint>
#include <ctime>
#include <string_view>

#include "handlers/exchange.h"
#include "handlers/fd_cache.h"

namespace uvh {

struct GetJob;

// A body that is one range of a file, sent with sendfile.
class FileRangeSource final : public BodySource {
public:
    FileRangeSource(FileHandle file, uint64_t offset, uint64_t length)
        : file_(std::move(file)), offset_(offset), length_(length) {}
    BodyPiece next() override {
        if (sent_) return BodyPiece::end();
        sent_ = true;
        return BodyPiece::file(file_.fd(), offset_, length_);
    }
    int release_descriptor() override { return file_.release(); }
    bool owns_descriptor() const override { return file_.owned(); }
    bool sends_file_pieces() const override { return true; }

private:
    FileHandle file_;
    uint64_t offset_, length_;
    bool sent_ = false;
};

// multipart/byteranges (RFC 9110 §14.6): the parts' heads from the layout,
// each followed by its range of the file, then the closing delimiter.
class MultipartSource final : public BodySource {
public:
    MultipartSource(FileHandle file, const MultipartLayout& layout) : file_(std::move(file)), layout_(layout) {}
    int release_descriptor() override { return file_.release(); }
    bool owns_descriptor() const override { return file_.owned(); }
    bool sends_file_pieces() const override { return true; }
    BodyPiece next() override {
        // 2n+1 pieces: n heads and n ranges alternating, then the tail.
        size_t parts = layout_.parts.size();
        size_t k = step_++;
        std::string_view text = layout_.text;
        if (k > 2 * parts) return BodyPiece::end();
        if (k == 2 * parts) return BodyPiece::mem(text.substr(layout_.tail_offset, layout_.tail_length));
        const auto& part = layout_.parts[k / 2];
        if (k % 2 == 0) return BodyPiece::mem(text.substr(part.head_offset, part.head_length));
        return BodyPiece::file(file_.fd(), part.range.first, part.range.length());
    }

private:
    FileHandle file_;
    const MultipartLayout& layout_;
    size_t step_ = 0;
};

// Everything needed to answer for one representation of a file, whether it
// comes from the cache (bytes in memory, no descriptor) or from the disk
// (a descriptor, and the bytes too when the file is small).
struct FileView {
    uint64_t size = 0;
    std::string_view etag;
    time_t last_modified = 0;
    std::string_view content_type;
    std::string_view encoding;
    std::string_view vary;
    bool database = false;
    bool in_memory = false;  // `data` holds all `size` bytes
    std::string_view data;
    std::string_view fields;  // the 200's representation fields, preformatted (cache)
    bool fields_have_length = false;  // `fields` begins with Content-Length: `size`
    GetJob* job = nullptr;    // the file's descriptor, when read from disk
    FdCache* fds = nullptr;   // or a descriptor shared through the cache
    OpenFile* shared = nullptr;

    FileHandle take_file();  // the descriptor, owned or shared, for a body source
};

// Answers for one representation: preconditions (RFC 9110 §13.2.2), then
// ranges (§14), then the whole thing. Shared by the caches and the disk.
void serve_view(Exchange& ex, FileView& v);

}  // namespace uvh
