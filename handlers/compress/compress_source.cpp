#include "handlers/compress/compress_source.h"

#include <algorithm>

#include "handlers/fs_ops.h"

namespace uvh {

void CompressPump::step(BodySource& inner) {
    if (taken_) {
        out_.clear();
        taken_ = false;
    }
    if (!enc_ && !done_) {
        enc_ = Encoder::make(coding_, level_, 0);
        if (!enc_) {
            failed_ = done_ = true;
            return;
        }
    }
    while (!done_ && out_.size() < kWindow) {
        if (left_ > 0) {
            size_t n = static_cast<size_t>(std::min<uint64_t>(left_, kReadBlock));
            if (!read_exact(fd_, offset_, n, in_) || !enc_->write(in_, false, out_)) {
                failed_ = done_ = true;  // the sender closes: the client sees a short body
                break;
            }
            offset_ += n;
            left_ -= n;
            continue;
        }
        BodyPiece p = inner.next();
        switch (p.kind) {
        case BodyPiece::Kind::Memory:
            if (!enc_->write(p.memory, false, out_)) failed_ = done_ = true;
            break;
        case BodyPiece::Kind::File:
            fd_ = p.fd;
            offset_ = p.offset;
            left_ = p.length;
            break;
        case BodyPiece::Kind::Work:
            inner.work();
            break;
        case BodyPiece::Kind::End:
            if (inner.failed() || !enc_->write({}, true, out_)) failed_ = true;
            done_ = true;
            break;
        }
        // Hand over what there is once a read's worth went in: the
        // encoder may hold output back, so do not wait for a full window.
        if (!out_.empty() && p.kind != BodyPiece::Kind::Work) break;
    }
    in_.clear();
    in_.shrink_to_fit();
    if (done_) enc_.reset();  // the encoder's memory goes as soon as the stream ends
}

}  // namespace uvh
