#include "core/scratch.h"

namespace uvh {

namespace {

// Buffers that grew past this for one large request are given back rather
// than kept in the pool.
constexpr size_t kKeepBytes = 256 * 1024;

void shrink(std::string& s, size_t keep) {
    if (s.capacity() > keep) {
        std::string().swap(s);
    } else {
        s.clear();
    }
}

}  // namespace

void Scratch::reset(size_t keep) {
    req.clear();
    req.trim(keep);
    shrink(path, keep);
    shrink(pending, keep);
    shrink(out, keep);
    shrink(writing, keep);
    shrink(text, keep);
    shrink(body, keep);
    shrink(body_handed, keep);
    request_id.clear();
    client = PeerAddress{};
    job.reset();
    shrink(job.data, keep);
    if (job.entries.capacity() > 1024) std::vector<DirEntry>().swap(job.entries);
    multipart.parts.clear();
    shrink(multipart.text, keep);
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
