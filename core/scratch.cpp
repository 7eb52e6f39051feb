#include "core/scratch.h"

namespace uvh {

namespace {

// Buffers that grew past this for one large request are given back rather
// than kept in the pool.
constexpr size_t kKeepBytes = 256 * 1024;

}  // namespace

void Scratch::reset(size_t keep) {
    // Users clear what they use when they start using it (the parser at a
    // message's start, the connection at an exchange's start and end), so
    // going back to the pool mostly gives back what one large request grew.
    req.trim(keep);
    for (std::string* s : {&path, &pending, &out, &writing, &text, &body, &body_handed, &multipart.text})
        if (s->capacity() > keep) std::string().swap(*s);
    // A connection that died mid-exchange may leave bytes behind; the next
    // one must start from nothing.
    pending.clear();
    out.clear();
    writing.clear();
    body.clear();
    body_handed.clear();
    request_id.clear();
    std::string().swap(held_head);
    tx = Transfer{};
    job.clear();
    offloaded = nullptr;
    source.clear();
}

ScratchPool::~ScratchPool() {
    for (Scratch* s : free_) delete s;
}

Scratch* ScratchPool::get() {
    if (free_.empty()) return new Scratch();
    Scratch* s = free_.back();
    free_.pop_back();
    return s;
}

void ScratchPool::put(Scratch* s) {
    if (free_.size() >= max_free_) {
        delete s;
        return;
    }
    s->reset(kKeepBytes);
    free_.push_back(s);
}

}  // namespace uvh
