#include "handlers/fd_cache.h"

#include <unistd.h>

#include "handlers/lock_service.h"

namespace uvh {

FdCache::~FdCache() {
    // The loop has stopped and no response is left: nothing waits here.
    for (auto& [key, e] : map_) {
        if (e.file && --e.file->refs == 0) {
            ::close(e.file->fd);
            delete e.file;
        }
    }
    for (int fd : closes_) ::close(fd);
}

FdCache::Lookup FdCache::find(std::string_view key, uint64_t now_ms) {
    Lookup out;
    if (!enabled()) return out;
    auto it = map_.find(key);
    if (it == map_.end()) return out;
    Entry& e = it->second;
    uint64_t age = now_ms - e.loaded_ms;
    bool changed = false;
    if (locks_) {
        // A write by any process replaced or removed the file, or created a
        // name in the directory where this one was missing.
        changed = e.file ? locks_->generation(e.file->st.st_dev, e.file->st.st_ino) != e.file->file_generation
                         : locks_->generation(e.dir_dev, e.dir_ino) != e.dir_generation;
    }
    if (age >= valid_ms_ || changed) {
        erase(key);
        return out;
    }
    if (age >= valid_ms_ * 2 / 3 && !e.revalidating) {
        // This request looks at the path again; the others keep the entry
        // until its result replaces it.
        e.revalidating = true;
        return out;
    }
    lru_.splice(lru_.begin(), lru_, e.lru);
    ++hits_;
    if (!e.file) {
        out.kind = Lookup::Missing;
        out.err = e.err;
        return out;
    }
    out.kind = Lookup::Open;
    out.file = e.file;
    acquire(e.file);
    return out;
}

OpenFile* FdCache::store_open(std::string_view key, int fd, const struct stat& st, uint64_t file_generation,
                              uint8_t sib_present, uint8_t sib_known, std::string served_rel, uint64_t generation,
                              uint64_t now_ms) {
    auto* f = new OpenFile;
    f->fd = fd;
    f->st = st;
    f->file_generation = file_generation;
    f->sib_present = sib_present;
    f->sib_known = sib_known;
    f->served_rel = std::move(served_rel);
    f->refs = 1;  // the caller's
    if (held_) ++*held_;
    if (enabled() && generation == generation_) {
        Entry e;
        e.file = f;
        e.loaded_ms = now_ms;
        acquire(f);  // the cache's
        put(key, e);
    }
    // Otherwise a write went through since the reader started: the
    // descriptor serves this response only (its reader saw the file before
    // or after the write; either is a correct answer to a request that was
    // concurrent with it), and closes when the response ends.
    return f;
}

void FdCache::store_missing(std::string_view key, int err, dev_t dir_dev, ino_t dir_ino, uint64_t dir_generation,
                            uint64_t generation, uint64_t now_ms) {
    if (!enabled() || generation != generation_) return;
    Entry e;
    e.err = err;
    e.dir_dev = dir_dev;
    e.dir_ino = dir_ino;
    e.dir_generation = dir_generation;
    e.loaded_ms = now_ms;
    put(key, e);
}

void FdCache::put(std::string_view key, Entry e) {
    erase(key);
    while (map_.size() >= max_entries_ && !lru_.empty()) {
        std::string victim = lru_.back();
        erase(victim);
    }
    lru_.emplace_front(key);
    e.lru = lru_.begin();
    map_.emplace(std::string(key), e);
}

void FdCache::release(OpenFile* f) {
    if (--f->refs > 0) return;
    closes_.push_back(f->fd);
    delete f;
}

void FdCache::erase(std::string_view key) {
    auto it = map_.find(key);
    if (it == map_.end()) return;
    if (it->second.file) release(it->second.file);
    lru_.erase(it->second.lru);
    map_.erase(it);
}

void FdCache::invalidate_file(std::string_view key) {
    if (!enabled()) return;
    ++generation_;  // readers that started before this write must not store
    erase(key);
    size_t slash = key.rfind('/');
    if (key.substr(slash + 1) == "index.html") erase(key.substr(0, slash + 1));
}

void FdCache::expire(uint64_t now_ms) {
    for (auto it = map_.begin(); it != map_.end();) {
        Entry& e = it->second;
        if (now_ms - e.loaded_ms < valid_ms_) {
            ++it;
            continue;
        }
        if (e.file) release(e.file);
        lru_.erase(e.lru);
        it = map_.erase(it);
    }
}

void FdCache::clear() {
    ++generation_;
    while (!lru_.empty()) {
        std::string key = lru_.back();
        erase(key);
    }
}

}  // namespace uvh
