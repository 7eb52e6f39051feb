#include "handlers/get_head.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

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
    double q_gzip = 0, q_br = 0;  // acceptable precompressed variants
    uint64_t started_generation = 0;  // of the file cache, when the read began

    // ---- outputs (worker thread) ----
    enum class Kind : uint8_t { None, File, Listing, Redirect };
    Kind kind = Kind::None;
    int err = 0;
    int fd = -1;              // the file (or directory) opened
    struct stat st {};
    std::string served_rel;   // the file served: rel, or its index.html
    bool has_gzip = false, has_br = false;  // precompressed variants next to it
    std::string_view encoding;  // "gzip", "br" or empty: what `fd` holds
    bool in_memory = false;     // `data` holds the whole file
    std::string data;           // inline file bytes, or the rendered listing
    uint64_t file_generation = 0;  // of `st`'s file, read before its bytes
    bool cacheable = false;        // the bytes are still what the path names

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
class FileRangeSource final : public DescriptorSource {
public:
    FileRangeSource(int fd, uint64_t offset, uint64_t length) : DescriptorSource(fd), offset_(offset), length_(length) {}
    BodyPiece next() override {
        if (sent_) return BodyPiece::end();
        sent_ = true;
        return BodyPiece::file(fd_, offset_, length_);
    }

private:
    uint64_t offset_, length_;
    bool sent_ = false;
};

// multipart/byteranges (RFC 9110 §14.6): the parts' heads from the layout,
// each followed by its range of the file, then the closing delimiter.
class MultipartSource final : public DescriptorSource {
public:
    MultipartSource(int fd, const MultipartLayout& layout) : DescriptorSource(fd), layout_(layout) {}
    BodyPiece next() override {
        // 2n+1 pieces: n heads and n ranges alternating, then the tail.
        size_t parts = layout_.parts.size();
        size_t k = step_++;
        std::string_view text = layout_.text;
        if (k > 2 * parts) return BodyPiece::end();
        if (k == 2 * parts) return BodyPiece::mem(text.substr(layout_.tail_offset, layout_.tail_length));
        const auto& part = layout_.parts[k / 2];
        if (k % 2 == 0) return BodyPiece::mem(text.substr(part.head_offset, part.head_length));
        return BodyPiece::file(fd_, part.range.first, part.range.length());
    }

private:
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
    bool has_variants = false;
    bool database = false;
    bool in_memory = false;  // `data` holds all `size` bytes
    std::string_view data;
    std::string_view fields;  // the 200's representation fields, preformatted (cache)
    GetJob* job = nullptr;    // the file's descriptor, when read from disk
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

// Picks the precompressed variant the client prefers, if any exists.
void choose_variant(GetJob& job) {
    struct stat st_br {}, st_gz {};
    int br = open_variant(job.root_fd, job.served_rel, ".br", st_br);
    int gz = open_variant(job.root_fd, job.served_rel, ".gz", st_gz);
    job.has_gzip = gz >= 0;
    job.has_br = br >= 0;
    int pick = -1;
    struct stat* pick_st = nullptr;
    // Brotli wins a tie: it is smaller for the same content.
    if (br >= 0 && job.q_br > 0 && job.q_br >= job.q_gzip) {
        pick = br;
        pick_st = &st_br;
        job.encoding = "br";
    } else if (gz >= 0 && job.q_gzip > 0) {
        pick = gz;
        pick_st = &st_gz;
        job.encoding = "gzip";
    } else if (br >= 0 && job.q_br > 0) {
        pick = br;
        pick_st = &st_br;
        job.encoding = "br";
    }
    if (br >= 0 && br != pick) close(br);
    if (gz >= 0 && gz != pick) close(gz);
    if (pick >= 0) {
        close(job.fd);
        job.fd = pick;
        job.st = *pick_st;
    }
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

CachedEntry::Variant variant_of(std::string_view encoding) {
    if (encoding == "gzip") return CachedEntry::kGzip;
    if (encoding == "br") return CachedEntry::kBrotli;
    return CachedEntry::kIdentity;
}

// The representation the client prefers among those that exist.
CachedEntry::Variant preferred(const CachedEntry& e, double q_gzip, double q_br) {
    bool br = e.variant_exists[CachedEntry::kBrotli] && q_br > 0;
    bool gz = e.variant_exists[CachedEntry::kGzip] && q_gzip > 0;
    if (br && (!gz || q_br >= q_gzip)) return CachedEntry::kBrotli;
    if (gz) return CachedEntry::kGzip;
    return CachedEntry::kIdentity;
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
    if (v.has_variants) head.vary = "Accept-Encoding";

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
        auto& src = ex.make_source<FileRangeSource>(v.job->take_fd(), r.first, r.length());
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
        auto& src = ex.make_source<MultipartSource>(v.job->take_fd(), layout);
        return ex.respond(head, Body::from(src));
    }

    head.content_length = v.size;
    if (!v.fields.empty()) head.fragment = v.fields;  // formatted when the file was cached
    if (v.in_memory) return ex.respond(head, Body::mem(v.data));
    auto& src = ex.make_source<FileRangeSource>(v.job->take_fd(), 0, v.size);
    ex.respond(head, Body::from(src));
}

void serve_opened_file(Exchange& ex, GetJob& job) {
    const uint64_t size = static_cast<uint64_t>(job.st.st_size);
    std::string etag = make_etag({static_cast<uint64_t>(job.st.st_ino), size, job.st.st_mtim.tv_sec,
                                  job.st.st_mtim.tv_nsec});
    FileView v;
    v.size = size;
    v.etag = etag;
    v.last_modified = job.st.st_mtim.tv_sec;
    v.content_type = mime_type_for(job.served_rel);
    v.encoding = job.encoding;
    v.has_variants = job.has_gzip || job.has_br;
    v.database = job.database;
    v.in_memory = job.in_memory && job.data.size() == size;
    v.data = job.data;
    v.job = &job;

    FileCache* cache = ex.site().cache;
    if (cache && v.in_memory && !v.database && job.cacheable && ex.request().method == Method::Get) {
        CachedRep rep;
        rep.dev = job.st.st_dev;
        rep.ino = job.st.st_ino;
        rep.file_generation = job.file_generation;
        rep.content = job.data;
        rep.etag = etag;
        rep.content_type = v.content_type;
        rep.encoding = v.encoding;
        rep.last_modified = v.last_modified;
        ResponseHead h;
        h.content_type = v.content_type;
        h.etag = etag;
        h.last_modified = v.last_modified;
        h.accept_ranges = true;
        h.content_encoding = v.encoding;
        if (v.has_variants) h.vary = "Accept-Encoding";
        h.cache_control = ex.site().cache_control;
        rep.fields = representation_fields(h);
        bool exists[3] = {true, job.has_gzip, job.has_br};
        cache->store(ex.path(), variant_of(v.encoding), std::move(rep), exists, job.started_generation, ex.now_ms());
    }
    serve_view(ex, v);
    // A file served from memory (or not at all: 304, 412, 416) no longer
    // needs its descriptor.
    if (job.fd >= 0) ex.close_later(job.take_fd());
}

void GetJob::done(Exchange& ex) {
    GetJob& job = *this;
    if (job.kind != Kind::File && job.kind != Kind::Listing && job.fd >= 0) ex.close_later(job.take_fd());
    if (job.err != 0) return respond_error(ex, status_for_errno(job.err), std::strerror(job.err));
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
        auto& src = ex.make_source<ListingSource>(job.root_fd, job.take_fd(), job.rel, job.url_path, job.json,
                                                  job.site->database_url);  // the page's form posts records
        ResponseHead head;
        head.content_type = job.json ? "application/json" : "text/html; charset=utf-8";
        head.html = !job.json;
        head.cache_control = "no-cache";
        head.vary = "Accept";
        head.content_length = ResponseHead::kUnknownLength;
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
// Returns false when the entry lacks the representation the client wants.
bool serve_cached(Exchange& ex, CachedEntry& e, double q_gzip, double q_br) {
    CachedEntry::Variant want = preferred(e, q_gzip, q_br);
    CachedRep& rep = e.reps[want];
    if (!rep.present) return false;
    FileView v;
    v.size = rep.content.size();
    v.etag = rep.etag;
    v.last_modified = rep.last_modified;
    v.content_type = rep.content_type;
    v.encoding = rep.encoding;
    v.has_variants = e.has_variants();
    v.in_memory = true;
    v.data = rep.content;
    v.fields = rep.fields;
    serve_view(ex, v);
    return true;
}

}  // namespace

void GetJob::work() {
    GetJob& job = *this;
    job.fd = open_beneath(job.root_fd, job.rel, kOpenFlags);
    if (job.fd < 0) {
        job.err = errno;
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
    choose_variant(job);
    if (job.locks) job.file_generation = job.locks->generation(job.st.st_dev, job.st.st_ino);
    read_inline(job);
    job.cacheable = true;
    if (job.locks && job.in_memory) {
        // The bytes may go into the cache tagged with the generation read
        // above. That is only right if the path still named this file after
        // the generation was read: a writer bumps it after its rename, so a
        // rename we did not see here comes with a bump the cache will see.
        std::string path = job.served_rel;
        if (!job.encoding.empty()) path += job.encoding == "br" ? ".br" : ".gz";
        struct stat now {};
        int check = open_beneath(job.root_fd, path, O_PATH);
        job.cacheable = check >= 0 && fstat(check, &now) == 0 && now.st_ino == job.st.st_ino &&
                        now.st_dev == job.st.st_dev;
        if (check >= 0) close(check);
    }
}

void handle_get(Exchange& ex) {
    const Request& req = ex.request();
    const Site& site = ex.site();
    std::string_view path = ex.path();
    double q_gzip = coding_quality(req.accept_encoding, "gzip");
    double q_br = coding_quality(req.accept_encoding, "br");

    if (site.cache) {
        if (CachedEntry* e = site.cache->find(path, ex.now_ms())) {
            if (serve_cached(ex, *e, q_gzip, q_br)) {
                site.cache->count_hit();
                return;
            }
        }
    }

    GetJob& job = ex.make_job<GetJob>();
    if (site.cache) job.started_generation = site.cache->generation();
    job.locks = site.locks;
    if (path == site.database_url) {
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
    job.inline_max = req.method == Method::Head ? 0 : site.inline_max;
    job.q_gzip = q_gzip;
    job.q_br = q_br;
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

}  // namespace uvh
