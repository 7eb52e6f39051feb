#include "handlers/compress/coding_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iterator>
#include <utility>

#include "handlers/fs_ops.h"
#include "handlers/lock_service.h"
#include "protocol/etag.h"
#include "protocol/response.h"

namespace uvh {

std::string coded_etag(std::string_view identity_etag, Coding coding, int level) {
    std::string out(identity_etag);
    if (out.size() < 2 || out.back() != '"') return out;
    out.pop_back();
    std::string_view tag = coding == Coding::Gzip ? "gz" : coding == Coding::Br ? "br" : "zst";
    out += '-';
    out += tag;
    out += std::to_string(level);
    out += '"';
    return out;
}

// One compression: read one version of the file whole, compress it. The
// version is checked before and after the read, so the result is that
// version's bytes or nothing.
struct CodingCache::Task {
    uv_work_t req{};
    CodingCache* cache = nullptr;
    std::string path;           // the record's key
    std::string rel;            // the file beneath the root
    int root_fd = -1;
    Coding coding = Coding::Gzip;
    int level = 0;
    std::string expected_etag;  // the version the record names
    uint64_t generation = 0;    // the cache's, when the task was made
    uint64_t max_file = 0;
    bool ran = false, ok = false;
    std::string out;

    void work() {
        int fd = open_beneath(root_fd, rel, O_RDONLY | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) return;
        struct stat st {}, after {};
        std::string in;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) <= max_file &&
            make_etag({static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_size), st.st_mtim.tv_sec,
                       st.st_mtim.tv_nsec}) == expected_etag &&
            read_exact(fd, 0, static_cast<size_t>(st.st_size), in) && fstat(fd, &after) == 0 &&
            same_version(st, after)) {
            ran = true;
            ok = compress_all(coding, level, in, out);
        }
        ::close(fd);
    }
};

CodingCache::CodingCache(uv_loop_t* loop, int root_fd, const LockService* locks, Options opt)
    : loop_(loop), root_fd_(root_fd), locks_(locks), opt_(std::move(opt)) {
    if (opt_.max_jobs == 0) opt_.max_jobs = 1;
}

CodingCache::~CodingCache() = default;

PathRecord* CodingCache::find(std::string_view url_path, uint64_t now_ms) {
    auto it = map_.find(url_path);
    if (it == map_.end()) return nullptr;
    PathRecord& rec = it->second;
    if (locks_ && locks_->generation(rec.facts.dev, rec.facts.ino) != rec.facts.file_generation) {
        // Replaced or removed by a writer, in any process: a new version.
        erase(url_path);
        jobs_.release();
        return nullptr;
    }
    uint64_t age = now_ms - rec.verified_ms;
    // Past the interval the record is kept (its results survive a
    // re-verification that finds the same version) but not served.
    if (age >= opt_.revalidate_ms) return nullptr;
    if (age >= opt_.revalidate_ms * 2 / 3 && !rec.revalidating) {
        rec.revalidating = true;
        return nullptr;
    }
    lru_.splice(lru_.begin(), lru_, rec.lru);
    return &rec;
}

const PathRecord* CodingCache::peek(std::string_view url_path, uint64_t now_ms) const {
    auto it = map_.find(url_path);
    if (it == map_.end()) return nullptr;
    const PathRecord& rec = it->second;
    if (locks_ && locks_->generation(rec.facts.dev, rec.facts.ino) != rec.facts.file_generation) return nullptr;
    if (now_ms - rec.verified_ms >= opt_.revalidate_ms) return nullptr;
    return &rec;
}

PathRecord* CodingCache::verify(std::string_view url_path, FileFacts facts, uint64_t generation, uint64_t now_ms) {
    if (generation != generation_) return nullptr;  // a write came in since the job looked
    auto it = map_.find(url_path);
    if (it == map_.end()) {
        lru_.emplace_front(url_path);
        it = map_.emplace(std::string(url_path), PathRecord{}).first;
        it->second.lru = lru_.begin();
        charge(it->second, static_cast<long>(url_path.size() * 2 + sizeof(PathRecord) + 64));
    } else {
        lru_.splice(lru_.begin(), lru_, it->second.lru);
    }
    PathRecord& rec = it->second;
    bool same = rec.facts.etag == facts.etag && rec.facts.dev == facts.dev && rec.facts.ino == facts.ino;
    if (!same) {
        for (int c = 1; c < kCodings; ++c) {
            CodedRep& rep = rec.coded[c];
            charge(rec, -static_cast<long>(rep.bytes.size() + rep.fields.size()));
            jobs_.release_later(rep.waiters);
            rep = CodedRep{};  // a compression under way for the old version will not store
        }
    }
    // A sibling found usable was at least as new as the old version, which
    // says nothing of the new one; one found missing or older stays so.
    if (!same) rec.sib_present = 0;
    uint8_t probed = facts.siblings_present | facts.siblings_absent;
    for (int c = 1; c < kCodings; ++c)
        if (probed & (1u << c)) rec.probed_ms[c] = now_ms;
    rec.sib_present = static_cast<uint8_t>((rec.sib_present & ~probed) | facts.siblings_present);
    rec.sib_absent = static_cast<uint8_t>((rec.sib_absent & ~probed) | facts.siblings_absent);
    charge(rec, static_cast<long>(facts.etag.size() + facts.rel.size()) -
                    static_cast<long>(rec.facts.etag.size() + rec.facts.rel.size()));
    rec.facts = std::move(facts);
    rec.verified_ms = now_ms;
    rec.revalidating = false;
    evict();
    jobs_.release();
    // Eviction never takes the most recently used record, so `rec` is alive.
    auto again = map_.find(url_path);
    return again == map_.end() ? nullptr : &again->second;
}

CodedRep::State CodingCache::get_or_wait(PathRecord& rec, std::string_view url_path, Coding coding, Exchange& ex,
                                         DoneFn after) {
    CodedRep& rep = rec.coded[static_cast<int>(coding)];
    switch (rep.state) {
    case CodedRep::State::Ready:
        ++hits_;
        return rep.state;
    case CodedRep::State::Failed:
        return rep.state;
    case CodedRep::State::Pending:
        ex.hold();
        rep.waiters.emplace_back(&ex, after);
        return rep.state;
    case CodedRep::State::None:
        break;
    }
    if (jobs_.closing() || rec.facts.size > opt_.max_file) return CodedRep::State::Failed;
    auto* t = new Task;
    t->req.data = t;
    t->cache = this;
    t->path.assign(url_path);
    t->rel = rec.facts.rel;
    t->root_fd = root_fd_;
    t->coding = coding;
    t->level = opt_.levels.of(coding);
    t->expected_etag = rec.facts.etag;
    t->generation = generation_;
    t->max_file = opt_.max_file;
    rep.state = CodedRep::State::Pending;
    ex.hold();
    rep.waiters.emplace_back(&ex, after);
    jobs_.add(t);
    pump();
    return CodedRep::State::Pending;
}

void CodingCache::pump() {
    // At most max_jobs compressions on the pool at once: a large br at
    // level 11 takes a second, and opening files must still find a thread.
    jobs_.pump(loop_, opt_.max_jobs);
}

void CodingCache::finish(Task* t, bool cancelled) {
    jobs_.ended();
    if (t->ran && !cancelled) ++compressions_[static_cast<int>(t->coding)];
    auto it = map_.find(t->path);
    if (it != map_.end() && it->second.facts.etag == t->expected_etag) {
        PathRecord& rec = it->second;
        CodedRep& rep = rec.coded[static_cast<int>(t->coding)];
        if (rep.state == CodedRep::State::Pending) {
            bool store = t->ok && !cancelled && t->generation == generation_ && t->out.size() <= opt_.budget;
            if (store) {
                rep.bytes = std::move(t->out);
                rep.etag = coded_etag(rec.facts.etag, t->coding, t->level);
                ResponseHead h;
                h.content_type = rec.facts.content_type;
                h.etag = rep.etag;
                h.last_modified = rec.facts.last_modified;
                h.accept_ranges = true;
                h.content_encoding = coding_name(t->coding);
                h.vary = "Accept-Encoding";
                h.cache_control = opt_.cache_control;
                rep.fields = representation_fields(h);
                rep.state = CodedRep::State::Ready;
                charge(rec, static_cast<long>(rep.bytes.size() + rep.fields.size() + rep.etag.size()));
            } else {
                // The file changed under the job, or the library failed:
                // identity for this version (a new version starts afresh).
                rep.state = t->generation == generation_ && !cancelled ? CodedRep::State::Failed
                                                                      : CodedRep::State::None;
            }
            jobs_.release_later(rep.waiters);
        }
    }
    delete t;
    evict();
    jobs_.release();
    pump();
    jobs_.maybe_closed();
}

void CodingCache::invalidate_file(std::string_view url_path) {
    ++generation_;  // compressions and jobs that started before this write must not store
    erase(url_path);
    size_t slash = url_path.rfind('/');
    if (url_path.substr(slash + 1) == "index.html") erase(url_path.substr(0, slash + 1));
    for (Coding c : {Coding::Gzip, Coding::Br, Coding::Zstd}) {
        std::string_view suffix = coding_suffix(c);
        if (url_path.ends_with(suffix)) {
            std::string_view base = url_path.substr(0, url_path.size() - suffix.size());
            erase(base);
            if (base.ends_with("/index.html")) erase(base.substr(0, base.size() - 10));
        }
    }
    jobs_.release();
}

void CodingCache::close(std::function<void()> closed) {
    jobs_.close(
        [this](Task* t) {
            auto it = map_.find(t->path);
            if (it == map_.end()) return;
            CodedRep& rep = it->second.coded[static_cast<int>(t->coding)];
            jobs_.release_later(rep.waiters);
            rep = CodedRep{};
        },
        std::move(closed));
}

void CodingCache::erase(std::string_view key) {
    auto it = map_.find(key);
    if (it == map_.end()) return;
    for (CodedRep& rep : it->second.coded) jobs_.release_later(rep.waiters);
    bytes_ -= it->second.bytes;
    lru_.erase(it->second.lru);
    map_.erase(it);
}

void CodingCache::evict() {
    // Least recently used first; a record with a compression under way
    // stays, so its version is never compressed a second time.
    auto it = lru_.end();  // stays valid: erasing other nodes leaves it alone
    while (bytes_ > opt_.budget && it != lru_.begin()) {
        auto cur = std::prev(it);
        if (cur == lru_.begin()) break;  // the record just used stays
        auto m = map_.find(*cur);
        bool pending = false;
        for (const CodedRep& rep : m->second.coded) pending = pending || rep.state == CodedRep::State::Pending;
        if (pending) {
            it = cur;
            continue;
        }
        std::string key = *cur;
        erase(key);
    }
}

void CodingCache::charge(PathRecord& rec, long delta) {
    rec.bytes = static_cast<size_t>(static_cast<long>(rec.bytes) + delta);
    bytes_ = static_cast<size_t>(static_cast<long>(bytes_) + delta);
}

}  // namespace uvh
