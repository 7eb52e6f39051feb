#include "handlers/file_cache.h"

#include "handlers/lock_service.h"

namespace uvh {

CachedEntry* FileCache::find(std::string_view url_path, uint64_t now_ms) {
    if (!enabled()) return nullptr;
    // Hot files come in runs (a page's assets, a benchmark): comparing with
    // the last hit's key is cheaper than hashing the path.
    CachedEntry* hit = nullptr;
    if (last_ && last_->first == url_path) {
        hit = &last_->second;
    } else {
        auto it = map_.find(url_path);
        if (it == map_.end()) {
            ++misses_;
            return nullptr;
        }
        last_ = &*it;
        hit = &it->second;
    }
    CachedEntry& e = *hit;
    // Another process may change the file at any time. From two thirds of
    // the interval one request reads it again while the others are still
    // served the entry; at the full interval an entry not yet replaced is
    // dropped, so a change always shows within the interval.
    uint64_t age = now_ms - e.loaded_ms;
    bool replaced = false;
    if (locks_) {
        for (const CachedRep& r : e.reps)
            if (r.present && locks_->generation(r.dev, r.ino) != r.file_generation) replaced = true;
    }
    if (age >= revalidate_ms_ || replaced) {
        ++misses_;
        erase(url_path);
        return nullptr;
    }
    if (age >= revalidate_ms_ * 2 / 3 && !e.revalidating) {
        e.revalidating = true;
        ++misses_;
        return nullptr;
    }
    // Most recently used to the front; splice moves a node, no allocation.
    if (e.lru != lru_.begin()) lru_.splice(lru_.begin(), lru_, e.lru);
    return &e;
}

void FileCache::store(std::string_view url_path, CachedEntry::Variant v, CachedRep rep,
                      const bool variant_exists[CachedEntry::kVariants], uint64_t generation, uint64_t now_ms) {
    if (!enabled() || rep.content.size() > max_file_ || generation != generation_) return;
    auto it = map_.find(url_path);
    if (it != map_.end()) {
        CachedEntry& e = it->second;
        bool same_layout = true;
        for (int i = 1; i < CachedEntry::kVariants; ++i)
            same_layout = same_layout && e.variant_exists[i] == variant_exists[i];
        if (!same_layout || e.revalidating) {  // a new read replaces the old one whole
            erase(url_path);
            it = map_.end();
        }
    }
    if (it == map_.end()) {
        lru_.emplace_front(url_path);
        CachedEntry e;
        e.variant_exists[0] = true;
        for (int i = 1; i < CachedEntry::kVariants; ++i) e.variant_exists[i] = variant_exists[i];
        e.loaded_ms = now_ms;
        e.lru = lru_.begin();
        e.bytes = url_path.size() + sizeof(CachedEntry) + 64;
        bytes_ += e.bytes;
        it = map_.emplace(std::string(url_path), std::move(e)).first;
    }
    CachedEntry& e = it->second;
    CachedRep& slot = e.reps[v];
    size_t old = slot.present ? slot.content.size() + slot.etag.size() : 0;
    slot = std::move(rep);
    slot.present = true;
    size_t now = slot.content.size() + slot.etag.size();
    e.bytes = e.bytes - old + now;
    bytes_ = bytes_ - old + now;
    evict_to(max_bytes_);
}

void FileCache::invalidate_file(std::string_view url_path) {
    if (!enabled()) return;
    ++generation_;  // readers that started before this write must not store
    erase(url_path);
    size_t slash = url_path.rfind('/');
    std::string_view name = url_path.substr(slash + 1);
    if (name == "index.html") erase(url_path.substr(0, slash + 1));
    for (std::string_view suffix : {std::string_view(".gz"), std::string_view(".br"), std::string_view(".zst")}) {
        if (url_path.ends_with(suffix)) {
            std::string_view base = url_path.substr(0, url_path.size() - suffix.size());
            erase(base);
            if (base.ends_with("/index.html")) erase(base.substr(0, base.size() - 10));
        }
    }
}

void FileCache::clear() {
    ++generation_;
    last_ = nullptr;
    map_.clear();
    lru_.clear();
    bytes_ = 0;
}

void FileCache::erase(std::string_view key) {
    auto it = map_.find(key);
    if (it == map_.end()) return;
    bytes_ -= it->second.bytes;
    if (last_ == &*it) last_ = nullptr;
    lru_.erase(it->second.lru);
    map_.erase(it);
}

void FileCache::evict_to(size_t budget) {
    while (bytes_ > budget && !lru_.empty()) {
        std::string key = lru_.back();
        erase(key);
    }
}

}  // namespace uvh
