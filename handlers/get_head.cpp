#include "handlers/get_head.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "handlers/compress/coding_cache.h"
#include "handlers/compress/compress_source.h"
#include "handlers/compress/policy.h"
#include "handlers/fd_cache.h"
#include "handlers/file_cache.h"
#include "handlers/fs_ops.h"
#include "handlers/listing.h"
#include "handlers/lock_service.h"
#include "protocol/etag.h"
#include "protocol/mime.h"
#include "protocol/negotiate.h"
#include "protocol/percent.h"
#include "protocol/preconditions.h"
#include "protocol/range.h"
#include "protocol/target.h"

namespace uvh {

namespace {

constexpr int kOpenFlags = O_RDONLY | O_NOCTTY | O_NONBLOCK;
constexpr uint8_t kAllCodings = coding_bit(Coding::Gzip) | coding_bit(Coding::Br) | coding_bit(Coding::Zstd);

// The codings the server would produce itself for a body of this type and
// size: none for types not worth it, none under --compress-min-size unless
// the client refuses identity.
// `compressible` is policy->compressible(type), decided by the caller (a
// cache entry keeps it, so a hit does not ask again).
uint8_t fly_codings_of(const CompressPolicy* policy, bool compressible, uint64_t size,
                       const AcceptedCodings& accepted) {
    if (!policy || !compressible) return 0;
    if (size < policy->min_size && accepted.accepts(Coding::Identity)) return 0;
    return kAllCodings;
}

uint8_t on_the_fly_codings(const CompressPolicy* policy, std::string_view type, uint64_t size,
                           const AcceptedCodings& accepted) {
    return fly_codings_of(policy, policy && policy->compressible(type), size, accepted);
}

// A response of a resource whose body depends on Accept-Encoding says so
// (RFC 9110 §12.5.5), compressed or not.
std::string_view vary_of(bool compressible, bool has_siblings) {
    return has_siblings || compressible ? "Accept-Encoding" : std::string_view();
}

std::string_view vary_for(const CompressPolicy* policy, std::string_view type, bool has_siblings) {
    return vary_of(policy && policy->compressible(type), has_siblings);
}

// A Range request is answered from stored bytes: when the chosen coding
// would be produced on the fly, from the identity file, with its ETag.
bool range_from_identity(const Request& req, std::string_view identity_etag, time_t last_modified) {
    return req.method == Method::Get && req.range.data() &&
           if_range_allows_partial(req.if_range, Representation{true, identity_etag, last_modified});
}

// GET's threadpool work: open the path beneath the root, decide what it is,
// and read a small file whole or render a listing.
struct GetJob final : Job {
    // ---- inputs (loop thread) ----
    const Site* site = nullptr;
    const LockService* locks = nullptr;
    int root_fd = -1;
    std::string rel;       // path relative to root_fd, "." for the root
    std::string url_path;  // normalised URL path, for listings
    bool trailing_slash = false;
    bool json = false;      // a listing as JSON
    bool database = false;  // the record store's file
    size_t inline_max = 0;  // read regular files up to this size into `data`
    AcceptedCodings accepted;           // Accept-Encoding
    const CompressPolicy* policy = nullptr;  // null: no compression on the fly
    bool may_start = true;              // false after waiting: never a second compression
    uint8_t skip_probe = 0;             // siblings known absent (the coding cache's negative cache)
    uint64_t started_generation = 0;  // of the file cache, when the read began
    uint64_t codings_generation = 0;  // of the coding cache, when the job began
    uint64_t fd_started_generation = 0;  // of the descriptor cache, likewise
    bool use_fd_cache = false;  // the result may go into the descriptor cache

    // ---- outputs (worker thread) ----
    enum class Kind : uint8_t { None, File, Listing, Redirect };
    Kind kind = Kind::None;
    int err = 0;
    int fd = -1;              // the file (or directory) opened
    struct stat st {};
    std::string served_rel;   // the file served: rel, or its index.html
    struct stat id_st {};     // the identity file, when `fd` is a sibling
    uint8_t siblings_present = 0, siblings_absent = 0;  // probed now (coding_bit()s)
    Coding coding = Coding::Identity;  // the representation chosen
    bool on_the_fly = false;    // `coding` is produced by the server from `fd`
    bool not_acceptable = false;  // identity refused and no acceptable coding: 406
    std::string_view encoding;  // "gzip", "br", "zstd" or empty: what `fd` holds
    bool in_memory = false;     // `data` holds the whole file
    std::string data;           // inline file bytes, or the rendered listing
    uint64_t file_generation = 0;  // of `st`'s file, read before its bytes
    uint64_t id_generation = 0;    // of the identity file, read before its stat
    bool cacheable = false;        // the bytes are still what the path names
    // A missing name: its parent directory, for the descriptor cache's
    // negative entry (a create there bumps the directory's generation).
    bool dir_known = false;
    struct stat dir_st {};
    uint64_t dir_generation = 0;

    void work() override;
    void done(Exchange& ex) override;
    bool holds_resources() const override { return fd >= 0; }
    void release() override {
        if (fd >= 0) close(fd);
        fd = -1;
    }
    // Hands the descriptor on (to a body source, or to be closed later).
    int take_fd() {
        int f = fd;
        fd = -1;
        return f;
    }
};

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
    GetJob* job = nullptr;    // the file's descriptor, when read from disk
    FdCache* fds = nullptr;   // or a descriptor shared through the cache
    OpenFile* shared = nullptr;

    FileHandle take_file() {
        if (shared) {
            fds->acquire(shared);
            return FileHandle::shared(fds, shared);
        }
        return FileHandle::owned(job->take_fd());
    }
};

// Opens `rel` + suffix if it is a regular file; -1 otherwise.
int open_variant(int root_fd, const std::string& rel, const char* suffix, struct stat& st) {
    std::string path = rel + suffix;
    int fd = open_beneath(root_fd, path, kOpenFlags);
    if (fd < 0) return -1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -1;
    }
    return fd;
}

// Chooses the representation (RFC 9110 §12.5.3): precompressed siblings at
// least as new as the file, the codings the server makes itself, identity.
// Siblings are probed only for codings the client accepts and that are not
// known to be missing; a file small enough for the file cache has all of
// them probed, so its entry can answer any client.
void choose_representation(GetJob& job) {
    job.id_st = job.st;
    const uint64_t size = static_cast<uint64_t>(job.st.st_size);
    uint8_t want = job.accepted.accepted_mask();
    if (job.database) want = 0;
    else if (size <= job.inline_max) want = kAllCodings;
    want &= static_cast<uint8_t>(~job.skip_probe);
    int fds[kCodings] = {-1, -1, -1, -1};
    struct stat sts[kCodings] {};
    for (Coding c : {Coding::Gzip, Coding::Br, Coding::Zstd}) {
        if (!(want & coding_bit(c))) continue;
        int i = static_cast<int>(c);
        fds[i] = open_variant(job.root_fd, job.served_rel, std::string(coding_suffix(c)).c_str(), sts[i]);
        // An older sibling is left over from before the file changed.
        bool usable = fds[i] >= 0 && (sts[i].st_mtim.tv_sec > job.st.st_mtim.tv_sec ||
                                      (sts[i].st_mtim.tv_sec == job.st.st_mtim.tv_sec &&
                                       sts[i].st_mtim.tv_nsec >= job.st.st_mtim.tv_nsec));
        if (usable) {
            job.siblings_present |= coding_bit(c);
        } else {
            job.siblings_absent |= coding_bit(c);
            if (fds[i] >= 0) close(fds[i]);
            fds[i] = -1;
        }
    }
    uint8_t fly = job.database ? 0 : on_the_fly_codings(job.policy, mime_type_for(job.served_rel), size, job.accepted);
    Coding c = Coding::Identity;
    if (!choose_coding(job.accepted, job.siblings_present | fly, c)) job.not_acceptable = true;
    job.coding = c;
    int i = static_cast<int>(c);
    if (c != Coding::Identity && fds[i] >= 0) {
        close(job.fd);
        job.fd = fds[i];
        job.st = sts[i];
        job.encoding = coding_name(c);
        fds[i] = -1;
    } else if (c != Coding::Identity) {
        job.on_the_fly = true;
    }
    for (int& f : fds)
        if (f >= 0) close(f);
}

// Reads a small file whole, so it leaves with its head in one write. The
// version is checked again afterwards: bytes and validators must agree.
void read_inline(GetJob& job) {
    auto size = static_cast<size_t>(job.st.st_size);
    if (size > job.inline_max) return;
    for (int attempt = 0; attempt < 3; ++attempt) {
        if (!read_exact(job.fd, 0, size, job.data)) break;
        struct stat after {};
        if (fstat(job.fd, &after) == 0 && same_version(after, job.st)) {
            job.in_memory = true;
            return;
        }
        job.st = after;
        size = static_cast<size_t>(after.st_size);
        if (size > job.inline_max) break;
    }
    job.data.clear();  // send from the descriptor instead
}

std::string make_boundary() {
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r) r = static_cast<uint64_t>(time(nullptr));
    return fmt::format("uvhttpd-{:016x}", r);
}


// Answers for one representation: preconditions (RFC 9110 §13.2.2), then
// ranges (§14), then the whole thing. Shared by the cache and the disk.
void serve_view(Exchange& ex, FileView& v) {
    const Request& req = ex.request();
    const Site& site = ex.site();
    Representation rep{true, v.etag, v.last_modified};

    ResponseHead head;
    head.etag = v.etag;
    // The record store changes under its URL all the time: always revalidate.
    head.cache_control = v.database ? std::string_view("no-cache") : std::string_view(site.cache_control);
    head.vary = v.vary;

    switch (evaluate_preconditions(req.conditionals(), true, rep, ex.now())) {
    case Precondition::Failed:
        return respond_error(ex, 412, "If-Match or If-Unmodified-Since failed");
    case Precondition::NotModified:
        // RFC 9110 §15.4.5: the validators and caching fields a 200 would
        // carry, no body, no Content-Length.
        head.status = 304;
        return ex.respond(head, Body::none());
    case Precondition::Proceed:
        break;
    }

    head.content_type = v.content_type;
    head.html = v.content_type.starts_with("text/html");
    head.content_encoding = v.encoding;
    head.last_modified = v.last_modified;
    head.accept_ranges = true;

    std::vector<ByteRange> ranges;
    RangeOutcome outcome = RangeOutcome::Full;
    // Range handling is defined for GET only (RFC 9110 §14.2); If-Range
    // turns a stale range request into a full one (§13.1.5).
    if (req.method == Method::Get && req.range.data() && if_range_allows_partial(req.if_range, rep))
        outcome = evaluate_range(req.range, v.size, ranges);

    if (outcome == RangeOutcome::Unsatisfiable) {
        // RFC 9110 §15.5.17: 416 says how long the representation is.
        std::string content_range_value = unsatisfied_range(v.size);
        ResponseHead h416;
        h416.content_range = content_range_value;
        h416.etag = v.etag;
        h416.vary = head.vary;
        h416.accept_ranges = true;
        return respond_text(ex, 416, "no satisfiable range", h416);
    }

    if (outcome == RangeOutcome::Partial && ranges.size() == 1) {
        const ByteRange& r = ranges.front();
        std::string content_range_value = content_range(r, v.size);
        head.status = 206;
        head.content_range = content_range_value;
        head.content_length = r.length();
        if (v.in_memory) return ex.respond(head, Body::mem(v.data.substr(r.first, r.length())));
        auto& src = ex.make_source<FileRangeSource>(v.take_file(), r.first, r.length());
        return ex.respond(head, Body::from(src));
    }
    if (outcome == RangeOutcome::Partial) {
        MultipartLayout& layout = ex.multipart();
        layout_multipart(ranges, v.content_type, v.size, make_boundary(), layout);
        head.status = 206;
        head.content_type = layout.content_type;
        head.html = false;
        head.content_length = layout.content_length;
        if (v.in_memory) {
            // A cached file is small: assemble the parts in memory.
            std::string& body = ex.text();
            body.clear();
            for (const auto& part : layout.parts) {
                body.append(layout.text, part.head_offset, part.head_length);
                body.append(v.data.substr(part.range.first, part.range.length()));
            }
            body.append(layout.text, layout.tail_offset, layout.tail_length);
            return ex.respond(head, Body::mem(body));
        }
        auto& src = ex.make_source<MultipartSource>(v.take_file(), layout);
        return ex.respond(head, Body::from(src));
    }

    head.content_length = v.size;
    if (!v.fields.empty()) head.fragment = v.fields;  // formatted when the file was cached
    if (v.in_memory) return ex.respond(head, Body::mem(v.data));
    auto& src = ex.make_source<FileRangeSource>(v.take_file(), 0, v.size);
    ex.respond(head, Body::from(src));
}

void handle_get_impl(Exchange& ex, bool may_compress);

// After waiting for a compression: answer again from the cache, never
// starting another one (identity if the result is not there).
void after_compression(Exchange& ex) { handle_get_impl(ex, false); }

// 304 and 412 for a coding not produced yet, from its derived ETag, so a
// revalidation never waits for a compression (RFC 9110 §13.2.2).
bool answer_preconditions(Exchange& ex, std::string_view etag, time_t last_modified, std::string_view content_type) {
    const Request& req = ex.request();
    switch (evaluate_preconditions(req.conditionals(), true, Representation{true, etag, last_modified}, ex.now())) {
    case Precondition::Failed:
        respond_error(ex, 412, "If-Match or If-Unmodified-Since failed");
        return true;
    case Precondition::NotModified: {
        ResponseHead head;
        head.status = 304;
        head.etag = etag;
        head.cache_control = ex.site().cache_control;
        head.vary = vary_for(ex.site().compress, content_type, false);
        ex.respond(head, Body::none());
        return true;
    }
    case Precondition::Proceed:
        break;
    }
    return false;
}

void serve_coded(Exchange& ex, const PathRecord& rec, const CodedRep& rep, Coding c) {
    FileView v;
    v.size = rep.bytes.size();
    v.etag = rep.etag;
    v.last_modified = rec.facts.last_modified;
    v.content_type = rec.facts.content_type;
    v.encoding = coding_name(c);
    v.vary = "Accept-Encoding";
    v.in_memory = true;
    v.data = rep.bytes;
    v.fields = rep.fields;
    serve_view(ex, v);
}

// Serves coding `c` of a record's version from the coding cache, or waits
// for its one compression. False: the caller serves identity.
bool serve_or_wait(Exchange& ex, PathRecord& rec, Coding c, bool may_start) {
    CodingCache& codings = *ex.site().codings;
    CodedRep& rep = rec.coded[static_cast<int>(c)];
    if (rep.state == CodedRep::State::Failed) return false;
    if (rep.state != CodedRep::State::Ready) {
        std::string etag = coded_etag(rec.facts.etag, c, codings.level(c));
        if (answer_preconditions(ex, etag, rec.facts.last_modified, rec.facts.content_type)) return true;
        if (!may_start) return false;
    }
    switch (codings.get_or_wait(rec, ex.path(), c, ex, after_compression)) {
    case CodedRep::State::Ready:
        serve_coded(ex, rec, rep, c);
        return true;
    case CodedRep::State::Pending:
        return true;  // answered by after_compression
    case CodedRep::State::None:
    case CodedRep::State::Failed:
        break;
    }
    return false;
}

// The fast path: a coding of a file whose version the coding cache has
// verified within the interval. False: go on as without it.
bool serve_from_codings(Exchange& ex, PathRecord& rec, const AcceptedCodings& accepted, bool may_start) {
    const Site& site = ex.site();
    const FileFacts& f = rec.facts;
    uint64_t now = ex.now_ms();
    // A sibling the client accepts and nobody probed lately: the job looks.
    if (accepted.accepted_mask() & ~rec.known(now, site.codings->interval_ms())) return false;
    uint8_t fly = on_the_fly_codings(site.compress, f.content_type, f.size, accepted);
    Coding c = Coding::Identity;
    if (!choose_coding(accepted, rec.sib_present | fly, c)) return false;
    if (c == Coding::Identity || (rec.sib_present & coding_bit(c))) return false;
    if (f.size > site.codings->max_file()) return false;  // streamed by the job
    if (range_from_identity(ex.request(), f.etag, f.last_modified)) return false;
    return serve_or_wait(ex, rec, c, may_start);
}

// A coding produced as the body is sent, for a file larger than the coding
// cache takes: chunked, the encoder's memory and one window per connection.
void serve_streamed(Exchange& ex, GetJob& job, std::string_view identity_etag) {
    const Site& site = ex.site();
    Coding c = job.coding;
    int level = site.compress->stream.of(c);
    std::string etag = coded_etag(identity_etag, c, level);
    std::string_view type = mime_type_for(job.served_rel);
    if (answer_preconditions(ex, etag, job.st.st_mtim.tv_sec, type)) return;
    auto& src = ex.make_source<CompressingSource<FileRangeSource>>(c, level, FileHandle::owned(job.take_fd()), 0,
                                                                  static_cast<uint64_t>(job.st.st_size));
    ResponseHead head;
    head.content_type = type;
    head.html = type.starts_with("text/html");
    head.etag = etag;
    head.last_modified = job.st.st_mtim.tv_sec;
    head.content_encoding = coding_name(c);
    head.vary = "Accept-Encoding";
    head.cache_control = site.cache_control;
    head.accept_ranges = true;  // ranges are answered from the identity file
    head.content_length = ResponseHead::kUnknownLength;
    ex.respond(head, Body::from(src));
}

// Tells the coding cache what the job found. Returns its record.
PathRecord* record_facts(Exchange& ex, GetJob& job, const std::string& identity_etag) {
    CodingCache* codings = ex.site().codings;
    if (!codings || job.database) return nullptr;
    FileFacts f;
    f.etag = identity_etag;
    f.rel = job.served_rel;
    f.dev = job.id_st.st_dev;
    f.ino = job.id_st.st_ino;
    f.file_generation = job.id_generation;
    f.size = static_cast<uint64_t>(job.id_st.st_size);
    f.last_modified = job.id_st.st_mtim.tv_sec;
    f.content_type = mime_type_for(job.served_rel);
    f.siblings_present = job.siblings_present;
    f.siblings_absent = job.siblings_absent;
    return codings->verify(ex.path(), std::move(f), job.codings_generation, ex.now_ms());
}

void serve_opened_file(Exchange& ex, GetJob& job) {
    const Site& site = ex.site();
    const uint64_t size = static_cast<uint64_t>(job.st.st_size);
    std::string etag = make_etag({static_cast<uint64_t>(job.st.st_ino), size, job.st.st_mtim.tv_sec,
                                  job.st.st_mtim.tv_nsec});
    std::string identity_etag = job.encoding.empty()
                                    ? etag
                                    : make_etag({static_cast<uint64_t>(job.id_st.st_ino),
                                                 static_cast<uint64_t>(job.id_st.st_size), job.id_st.st_mtim.tv_sec,
                                                 job.id_st.st_mtim.tv_nsec});
    PathRecord* rec = record_facts(ex, job, identity_etag);
    std::string_view type = mime_type_for(job.served_rel);
    bool has_siblings = job.siblings_present != 0;

    if (job.not_acceptable) {
        // RFC 9110 §12.5.3: identity refused ("identity;q=0" or "*;q=0")
        // and no coding the client accepts can be sent.
        ex.close_later(job.take_fd());
        ResponseHead h;
        h.vary = "Accept-Encoding";
        return respond_text(ex, 406, "no acceptable content coding (Accept-Encoding refuses identity)", h);
    }
    if (job.on_the_fly && !range_from_identity(ex.request(), identity_etag, job.st.st_mtim.tv_sec)) {
        if (rec && size <= site.codings->max_file()) {
            if (serve_or_wait(ex, *rec, job.coding, job.may_start)) {
                if (job.fd >= 0) ex.close_later(job.take_fd());
                return;
            }
        } else if (size > (site.codings ? site.codings->max_file() : 0)) {
            return serve_streamed(ex, job, identity_etag);
        }
        // Otherwise identity: the compression failed, or waiting is over.
    }

    FileView v;
    v.size = size;
    v.etag = etag;
    v.last_modified = job.st.st_mtim.tv_sec;
    v.content_type = type;
    v.encoding = job.encoding;
    v.vary = vary_for(site.compress, type, has_siblings);
    v.database = job.database;
    v.in_memory = job.in_memory && job.data.size() == size;
    v.data = job.data;
    v.job = &job;

    // A large file sent as it is keeps its descriptor for the next
    // requests (fd_cache.h).
    FdCache* fds = site.fd_cache;
    if (fds && job.use_fd_cache && !v.in_memory && job.cacheable && job.encoding.empty() && !job.on_the_fly &&
        size > site.inline_max) {
        v.fds = fds;
        uint8_t known = static_cast<uint8_t>(job.siblings_present | job.siblings_absent | job.skip_probe);
        v.shared = fds->store_open(ex.path(), job.take_fd(), job.st, job.file_generation, job.siblings_present,
                                   known, job.served_rel, job.fd_started_generation, ex.now_ms());
    }

    FileCache* cache = site.cache;
    if (cache && v.in_memory && !v.database && job.cacheable && ex.request().method == Method::Get &&
        ((job.siblings_present | job.siblings_absent | job.skip_probe) & kAllCodings) == kAllCodings) {
        CachedRep rep;
        rep.dev = job.st.st_dev;
        rep.ino = job.st.st_ino;
        rep.file_generation = job.file_generation;
        rep.content = job.data;
        rep.etag = etag;
        rep.content_type = v.content_type;
        rep.compressible = site.compress && site.compress->compressible(v.content_type);
        rep.encoding = v.encoding;
        rep.last_modified = v.last_modified;
        ResponseHead h;
        h.content_type = v.content_type;
        h.etag = etag;
        h.last_modified = v.last_modified;
        h.accept_ranges = true;
        h.content_encoding = v.encoding;
        h.vary = v.vary;
        h.cache_control = site.cache_control;
        rep.fields = representation_fields(h);
        bool exists[CachedEntry::kVariants] = {true, false, false, false};
        for (int i = 1; i < CachedEntry::kVariants; ++i) exists[i] = job.siblings_present & (1u << i);
        cache->store(ex.path(), static_cast<CachedEntry::Variant>(job.on_the_fly ? 0 : static_cast<int>(job.coding)),
                     std::move(rep), exists, job.started_generation, ex.now_ms());
    }
    serve_view(ex, v);
    if (v.shared) fds->release(v.shared);  // the response holds its own reference
    // A file served from memory (or not at all: 304, 412, 416) no longer
    // needs its descriptor.
    if (job.fd >= 0) ex.close_later(job.take_fd());
}

// Whether a client with these codings gets the file as it is: the job that
// opened it looked for every sibling the client accepts, and neither a
// sibling nor the server's own compression wins (else the normal path).
bool identity_for(const Exchange& ex, const OpenFile& f, const AcceptedCodings& accepted) {
    if (accepted.accepted_mask() & ~f.sib_known) return false;
    uint8_t fly = on_the_fly_codings(ex.site().compress, mime_type_for(f.served_rel),
                                     static_cast<uint64_t>(f.st.st_size), accepted);
    Coding c = Coding::Identity;
    return choose_coding(accepted, f.sib_present | fly, c) && c == Coding::Identity;
}

// Serves a large file whose descriptor the cache holds: no threadpool
// round trip before the sendfile steps.
void serve_shared(Exchange& ex, FdCache& fds, OpenFile& f) {
    const uint64_t size = static_cast<uint64_t>(f.st.st_size);
    std::string etag =
        make_etag({static_cast<uint64_t>(f.st.st_ino), size, f.st.st_mtim.tv_sec, f.st.st_mtim.tv_nsec});
    FileView v;
    v.size = size;
    v.etag = etag;
    v.last_modified = f.st.st_mtim.tv_sec;
    v.content_type = mime_type_for(f.served_rel);
    v.vary = vary_for(ex.site().compress, v.content_type, f.sib_present != 0);
    v.fds = &fds;
    v.shared = &f;
    serve_view(ex, v);
}

void GetJob::done(Exchange& ex) {
    GetJob& job = *this;
    if (job.kind != Kind::File && job.kind != Kind::Listing && job.fd >= 0) ex.close_later(job.take_fd());
    if (job.err != 0) {
        if (job.dir_known && ex.site().fd_cache)
            ex.site().fd_cache->store_missing(ex.path(), job.err, job.dir_st.st_dev, job.dir_st.st_ino,
                                              job.dir_generation, job.fd_started_generation, ex.now_ms());
        return respond_error(ex, status_for_errno(job.err), std::strerror(job.err));
    }
    switch (job.kind) {
    case Kind::Redirect: {
        // RFC 9110 §15.4.2; the Location keeps the client's encoding.
        const Request& req = ex.request();
        std::string loc = self_location(req.parsed.path, req.parsed.query, true);
        ResponseHead head;
        head.location = loc;
        return respond_text(ex, 301, loc, head);
    }
    case Kind::Listing: {
        // Streamed (handlers/listing.h): its length is not known up front.
        ResponseHead head;
        head.content_type = job.json ? "application/json" : "text/html; charset=utf-8";
        head.html = !job.json;
        head.cache_control = "no-cache";
        head.content_length = ResponseHead::kUnknownLength;
        // A listing is compressed as it is rendered, when the client asks.
        Coding c = Coding::Identity;
        bool compress = job.policy && job.policy->compressible(head.content_type);
        head.vary = compress ? "Accept, Accept-Encoding" : "Accept";
        if (compress && !choose_coding(job.accepted, kAllCodings, c)) c = Coding::Identity;
        if (c != Coding::Identity) {
            head.content_encoding = coding_name(c);
            auto& src = ex.make_source<CompressingSource<ListingSource>>(
                c, job.policy->stream.of(c), job.root_fd, job.take_fd(), job.rel, job.url_path, job.json,
                job.site->database_url);
            return ex.respond(head, Body::from(src));
        }
        auto& src = ex.make_source<ListingSource>(job.root_fd, job.take_fd(), job.rel, job.url_path, job.json,
                                                  job.site->database_url);  // the page's form posts records
        return ex.respond(head, Body::from(src));
    }
    case Kind::File:
        return serve_opened_file(ex, job);
    case Kind::None:
        break;
    }
    respond_error(ex, 500, "unexpected file type");
}

// Serves a fresh cache entry at once, with no threadpool round trip.
// Returns false when the entry lacks the representation the client wants
// (or it is one the server makes: the coding cache's business).
bool serve_cached(Exchange& ex, CachedEntry& e, const AcceptedCodings& accepted) {
    const CachedRep& id = e.reps[CachedEntry::kIdentity];
    if (!id.present) return false;
    uint8_t present = 0;
    for (int i = 1; i < CachedEntry::kVariants; ++i)
        if (e.variant_exists[i]) present |= static_cast<uint8_t>(1u << i);
    uint8_t fly = fly_codings_of(ex.site().compress, id.compressible, id.content.size(), accepted);
    Coding c = Coding::Identity;
    if (!choose_coding(accepted, present | fly, c)) return false;  // the job answers 406
    if (c != Coding::Identity && !(present & coding_bit(c))) {
        if (!range_from_identity(ex.request(), id.etag, id.last_modified)) return false;
        c = Coding::Identity;
    }
    CachedRep& rep = e.reps[static_cast<int>(c)];
    if (!rep.present) return false;
    FileView v;
    v.size = rep.content.size();
    v.etag = rep.etag;
    v.last_modified = rep.last_modified;
    v.content_type = rep.content_type;
    v.encoding = rep.encoding;
    v.vary = vary_of(id.compressible, e.has_variants());
    v.in_memory = true;
    v.data = rep.content;
    v.fields = rep.fields;
    serve_view(ex, v);
    return true;
}

}  // namespace

// A missing name may be remembered (fd_cache.h) under its parent
// directory's generation, read before the name is looked at again: a create
// there after that bumps it. Only when the directory exists.
void note_missing(GetJob& job) {
    size_t slash = job.rel.rfind('/');
    std::string parent = slash == std::string::npos ? std::string(".") : job.rel.substr(0, slash);
    std::string name = job.rel.substr(slash == std::string::npos ? 0 : slash + 1);
    int dir = open_beneath(job.root_fd, parent, O_PATH | O_DIRECTORY);
    if (dir < 0) return;
    struct stat ds {}, ns {};
    if (fstat(dir, &ds) == 0) {
        job.dir_generation = job.locks->generation(ds.st_dev, ds.st_ino);
        // Still missing after the generation was read: a create we did not
        // see came with a bump the cache will see.
        if (fstatat(dir, name.c_str(), &ns, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT) {
            job.dir_known = true;
            job.dir_st = ds;
        }
    }
    close(dir);
}

void GetJob::work() {
    GetJob& job = *this;
    job.fd = open_beneath(job.root_fd, job.rel, kOpenFlags);
    if (job.fd < 0) {
        job.err = errno;
        if (job.err == ENOENT && job.locks && job.use_fd_cache) note_missing(job);
        return;
    }
    if (fstat(job.fd, &job.st) != 0) {
        job.err = errno;
        return;
    }
    job.served_rel = job.rel;
    if (S_ISDIR(job.st.st_mode)) {
        if (!job.trailing_slash) {
            job.kind = Kind::Redirect;
            return;
        }
        std::string index = job.rel == "." ? std::string("index.html") : job.rel + "/index.html";
        struct stat ist {};
        int ifd = open_beneath(job.root_fd, index, kOpenFlags);
        if (ifd >= 0 && fstat(ifd, &ist) == 0 && S_ISREG(ist.st_mode)) {
            close(job.fd);
            job.fd = ifd;
            job.st = ist;
            job.served_rel = index;
        } else {
            if (ifd >= 0) close(ifd);
            job.kind = Kind::Listing;  // read and rendered as it is sent
            return;
        }
    } else if (!S_ISREG(job.st.st_mode)) {
        job.err = EACCES;  // devices, FIFOs and sockets are never served
        return;
    } else if (job.trailing_slash) {
        job.err = ENOTDIR;  // "/file.txt/" names a directory that is not there
        return;
    }
    job.kind = Kind::File;
    // The generation is read before the stat the coding cache records.
    if (job.locks) job.id_generation = job.file_generation = job.locks->generation(job.st.st_dev, job.st.st_ino);
    choose_representation(job);
    if (job.locks && !job.encoding.empty()) job.file_generation = job.locks->generation(job.st.st_dev, job.st.st_ino);
    if (!job.not_acceptable && !job.on_the_fly) read_inline(job);
    job.cacheable = true;
    // Bytes for the small-file cache, and large files' descriptors for the
    // descriptor cache, are both tagged with the generation read above.
    if (job.locks && (job.in_memory || (job.use_fd_cache && job.encoding.empty() && !job.on_the_fly))) {
        // The bytes may go into the cache tagged with the generation read
        // above. That is only right if the path still named this file after
        // the generation was read: a writer bumps it after its rename, so a
        // rename we did not see here comes with a bump the cache will see.
        std::string path = job.served_rel;
        path += coding_suffix(job.encoding.empty() ? Coding::Identity : job.coding);
        struct stat now {};
        int check = open_beneath(job.root_fd, path, O_PATH);
        job.cacheable = check >= 0 && fstat(check, &now) == 0 && now.st_ino == job.st.st_ino &&
                        now.st_dev == job.st.st_dev;
        if (check >= 0) close(check);
    }
}

namespace {

void handle_get_impl(Exchange& ex, bool may_compress) {
    const Request& req = ex.request();
    const Site& site = ex.site();
    std::string_view path = ex.path();
    AcceptedCodings accepted = parse_accept_encoding(req.accept_encoding);
    bool database = path == site.database_url;

    if (site.codings && !database && accepted.accepted_mask()) {
        if (PathRecord* rec = site.codings->find(path, ex.now_ms())) {
            if (serve_from_codings(ex, *rec, accepted, may_compress)) return;
        }
    }
    if (site.cache) {
        if (CachedEntry* e = site.cache->find(path, ex.now_ms())) {
            if (serve_cached(ex, *e, accepted)) {
                site.cache->count_hit();
                return;
            }
        }
    }
    FdCache* fds = site.fd_cache;
    if (fds && fds->enabled()) {
        for (int fd : fds->pending_closes()) ex.close_later(fd);
        fds->pending_closes().clear();
        if (!database && path.back() != '/') {
            FdCache::Lookup hit = fds->find(path, ex.now_ms());
            if (hit.kind == FdCache::Lookup::Missing)
                return respond_error(ex, status_for_errno(hit.err), std::strerror(hit.err));
            if (hit.kind == FdCache::Lookup::Open) {
                OpenFile& f = *hit.file;
                // A coding the client takes is the normal path's business.
                if (identity_for(ex, f, accepted)) {
                    serve_shared(ex, *fds, f);
                    fds->release(&f);
                    return;
                }
                fds->release(&f);
            }
        }
    }

    GetJob& job = ex.make_job<GetJob>();
    if (site.cache) job.started_generation = site.cache->generation();
    if (fds && fds->enabled()) job.fd_started_generation = fds->generation();
    job.locks = site.locks;
    if (database) {
        // Wherever --database put it, the record file is served at its URL.
        job.root_fd = site.database_dir_fd;
        job.rel = site.database_rel;
        job.database = true;
    } else {
        job.root_fd = site.root_fd;
        job.rel = relative_path(path);
    }
    job.url_path.assign(path);
    job.trailing_slash = path.back() == '/';
    job.use_fd_cache = fds && fds->enabled() && !job.database && !job.trailing_slash;
    job.inline_max = req.method == Method::Head ? 0 : site.inline_max;
    job.accepted = accepted;
    if (!database) job.policy = site.compress;
    job.may_start = may_compress;
    if (site.codings) {
        job.codings_generation = site.codings->generation();
        if (const PathRecord* rec = site.codings->peek(path, ex.now_ms()))
            job.skip_probe = rec->sib_absent & rec->known(ex.now_ms(), site.codings->interval_ms());
    }
    std::string format;
    bool json = (query_param(req.parsed.query, "format", format) && format == "json") ||
                (format.empty() && choose_media_type(req.accept, {"text/html", "application/json"}) == 1);
    job.json = json;
    job.site = &site;
    // A directory URL may need a listing, which reads and renders the
    // whole directory: such requests are the listing class of work
    // (exchange.h: JobClass). Opening files stays quick.
    ex.offload(job, job.trailing_slash ? JobClass::Listing : JobClass::Quick);
}

}  // namespace

void handle_get(Exchange& ex) { handle_get_impl(ex, true); }

}  // namespace uvh
