// A body compressed as it is sent: wraps another source (a listing, a file
// too large for the coding cache) and runs its pieces through an Encoder
// on the threadpool, one window at a time, so memory per connection is
// the encoder's state plus one window, whatever the body's size. The
// length is unknown up front: chunked on HTTP/1.1.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "handlers/compress/codecs.h"
#include "handlers/exchange.h"

namespace uvh {

// The part that does not depend on the wrapped type.
class CompressPump {
public:
    CompressPump(Coding coding, int level) : coding_(coding), level_(level) {}
    // On a worker: pulls from `inner` (its next() and work() run here, so
    // only sources whose pieces are memory, work or file ranges, and whose
    // next() touches nothing of the loop's, may be wrapped) until some
    // output is ready or the body ended.
    void step(BodySource& inner);
    bool has_output() const { return !out_.empty() && !taken_; }
    std::string_view take() {
        taken_ = true;
        return out_;
    }
    bool done() const { return done_; }
    bool failed() const { return failed_; }

    // Input read from a file piece per step, and the output size at which a
    // step stops and hands its window to the sender.
    static constexpr size_t kReadBlock = 128 * 1024;
    static constexpr size_t kWindow = 64 * 1024;

private:
    Coding coding_;
    int level_;
    std::unique_ptr<Encoder> enc_;
    std::string out_, in_;
    bool taken_ = false;
    bool done_ = false, failed_ = false;
    // A file piece being read.
    int fd_ = -1;
    uint64_t offset_ = 0, left_ = 0;
};

template <class Inner>
class CompressingSource final : public BodySource {
public:
    template <class... Args>
    CompressingSource(Coding coding, int level, Args&&... args)
        : pump_(coding, level), inner_(std::forward<Args>(args)...) {}
    BodyPiece next() override {
        if (pump_.has_output()) return BodyPiece::mem(pump_.take());
        if (pump_.done()) return BodyPiece::end();
        return BodyPiece::work();
    }
    void work() override { pump_.step(inner_); }
    int release_descriptor() override { return inner_.release_descriptor(); }
    bool owns_descriptor() const override { return inner_.owns_descriptor(); }
    bool failed() const override { return pump_.failed() || inner_.failed(); }

private:
    CompressPump pump_;
    Inner inner_;
};

}  // namespace uvh
