// PROPFIND (RFC 4918 §9.1).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <vector>

#include <fmt/format.h>

#include "handlers/dav/dav.h"
#include "handlers/dav/dav_common.h"
#include "handlers/dav/lock_discovery.h"
#include "handlers/fs_ops.h"
#include "handlers/listing.h"
#include "handlers/records.h"
#include "protocol/etag.h"
#include "protocol/http_date.h"
#include "protocol/mime.h"
#include "protocol/target.h"

namespace uvh {

namespace {

// What the client asked for (RFC 4918 §14.20): every property (allprop,
// also for an empty body, §9.1), the names only (propname), or a list.
struct PropSpec {
    enum class Mode : uint8_t { AllProp, PropName, Named };
    Mode mode = Mode::AllProp;
    std::vector<std::pair<std::string, std::string>> names;  // (namespace, local name)
    bool needs_dead = true;  // whether dead properties must be read
};

constexpr std::string_view kLiveProps[] = {"creationdate",    "displayname",  "getcontentlength",
                                           "getcontenttype",  "getetag",      "getlastmodified",
                                           "lockdiscovery",   "resourcetype", "supportedlock"};

bool is_live(std::string_view ns, std::string_view name) {
    if (ns != kDavNs) return false;
    for (std::string_view p : kLiveProps)
        if (p == name) return true;
    return false;
}

int parse_spec(const Request& req, std::string_view body, PropSpec& spec, std::string& why) {
    if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return 0;  // allprop
    XmlParseResult r;
    if (int status = parse_dav_body(req, body, "propfind", r, why)) return status;
    for (const XmlElement& c : r.root.children) {
        if (c.is_dav("allprop")) {
            spec.mode = PropSpec::Mode::AllProp;
            return 0;
        }
        if (c.is_dav("propname")) {
            spec.mode = PropSpec::Mode::PropName;
            return 0;
        }
        if (c.is_dav("prop")) {
            spec.mode = PropSpec::Mode::Named;
            spec.needs_dead = false;
            for (const XmlElement& p : c.children) {
                spec.names.emplace_back(p.ns, p.name);
                if (!is_live(p.ns, p.name)) spec.needs_dead = true;
            }
            return 0;
        }
    }
    why = "DAV:propfind needs allprop, propname or prop";
    return 400;
}

// What the live properties are made of, for the target or a member.
struct Facts {
    bool is_dir = false;
    uint64_t size = 0;
    uint64_t ino = 0;
    int64_t mtime = 0, mtime_nsec = 0, btime = 0;
    std::string_view name;      // the last segment, for displayname and the media type
    std::string_view url_path;  // decoded
    // The record store's listing rendered from PostgreSQL (--records): not
    // the file of that name, if any; only what GET sends is described.
    bool rendered_records = false;
};

std::string rfc3339(int64_t t) {
    time_t tt = static_cast<time_t>(t);
    struct tm tm {};
    gmtime_r(&tt, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                       tm.tm_hour, tm.tm_min, tm.tm_sec);
}

struct RenderContext {
    const Site* site = nullptr;
    const PropSpec* spec = nullptr;
    PropsMode mode = PropsMode::Auto;
    time_t now = 0;
};

// Appends the live property `name` for `f` and returns true, or returns
// false when the resource has no such property (a collection has no
// length, type or ETag: GET of a directory is a generated listing).
bool append_live(const RenderContext& cx, const Facts& f, std::string_view name, std::string& out) {
    if (f.rendered_records) {
        // GET sends no ETag or Last-Modified and knows its length only
        // after reading the table: those properties are absent.
        if (name == "getetag" || name == "getlastmodified" || name == "creationdate" || name == "getcontentlength")
            return false;
        if (name == "getcontenttype") {
            out += "<D:getcontenttype>";
            xml_escape_append(out, kRecordListingType);
            out += "</D:getcontenttype>";
            return true;
        }
    }
    if (name == "resourcetype") {
        out += f.is_dir ? "<D:resourcetype><D:collection/></D:resourcetype>" : "<D:resourcetype/>";
    } else if (name == "getlastmodified") {
        out += "<D:getlastmodified>";
        out += http_date(static_cast<time_t>(f.mtime));
        out += "</D:getlastmodified>";
    } else if (name == "creationdate") {
        out += "<D:creationdate>";
        out += rfc3339(f.btime ? f.btime : f.mtime);
        out += "</D:creationdate>";
    } else if (name == "displayname") {
        if (f.name.empty()) return false;  // the root has no name
        out += "<D:displayname>";
        xml_escape_append(out, f.name);
        out += "</D:displayname>";
    } else if (name == "getcontentlength") {
        if (f.is_dir) return false;
        fmt::format_to(std::back_inserter(out), "<D:getcontentlength>{}</D:getcontentlength>", f.size);
    } else if (name == "getcontenttype") {
        if (f.is_dir) return false;
        out += "<D:getcontenttype>";
        xml_escape_append(out, mime_type_for(f.name));  // the type GET sends
        out += "</D:getcontenttype>";
    } else if (name == "getetag") {
        if (f.is_dir) return false;
        out += "<D:getetag>";
        // The ETag GET sends (handlers/get_head.cpp), from the same inputs.
        xml_escape_append(out, make_etag({f.ino, f.size, f.mtime, f.mtime_nsec}));
        out += "</D:getetag>";
    } else if (name == "lockdiscovery" || name == "supportedlock") {
        append_lock_properties_for(*cx.site, f.url_path, cx.now, name == "lockdiscovery", out);
    } else {
        return false;
    }
    return true;
}

// One <D:response> for a resource.
void render_resource(const RenderContext& cx, const Facts& f, const std::vector<DeadProperty>& dead,
                     std::string& out) {
    const PropSpec& spec = *cx.spec;
    std::string href = dav_href(f.url_path);
    multistatus_response_begin(out, href);
    std::string found;
    switch (spec.mode) {
    case PropSpec::Mode::AllProp:
        // RFC 4918 §9.1: allprop is the dead properties and the live ones
        // this specification defines.
        for (std::string_view p : kLiveProps) append_live(cx, f, p, found);
        for (const DeadProperty& d : dead) found += d.xml;
        multistatus_propstat(out, found, 200);
        break;
    case PropSpec::Mode::PropName: {
        std::string scratch;
        for (std::string_view p : kLiveProps) {
            scratch.clear();
            if (append_live(cx, f, p, scratch)) xml_empty_property_append(found, kDavNs, p);
        }
        for (const DeadProperty& d : dead) xml_empty_property_append(found, d.ns, d.name);
        multistatus_propstat(out, found, 200);
        break;
    }
    case PropSpec::Mode::Named: {
        std::string missing;
        for (const auto& [ns, name] : spec.names) {
            if (is_live(ns, name)) {
                if (append_live(cx, f, name, found)) continue;
            } else {
                const DeadProperty* hit = nullptr;
                for (const DeadProperty& d : dead)
                    if (d.ns == ns && d.name == name) hit = &d;
                if (hit) {
                    found += hit->xml;
                    continue;
                }
            }
            xml_empty_property_append(missing, ns, name);
        }
        if (!found.empty() || missing.empty()) multistatus_propstat(out, found, 200);
        if (!missing.empty()) multistatus_propstat(out, missing, 404);
        break;
    }
    }
    multistatus_response_end(out);
}

Facts facts_of(const struct statx& st) {
    Facts f;
    f.is_dir = S_ISDIR(st.stx_mode);
    f.size = f.is_dir ? 0 : st.stx_size;
    f.ino = st.stx_ino;
    f.mtime = st.stx_mtime.tv_sec;
    f.mtime_nsec = st.stx_mtime.tv_nsec;
    f.btime = (st.stx_mask & STATX_BTIME) ? st.stx_btime.tv_sec : 0;
    return f;
}

Facts facts_of(const DirEntry& e) {
    Facts f;
    f.is_dir = e.is_dir;
    f.size = e.size;
    f.ino = e.ino;
    f.mtime = e.mtime;
    f.mtime_nsec = e.mtime_nsec;
    f.btime = e.btime;
    f.name = e.name;
    return f;
}

// Levels below the target a Depth: infinity walk descends at most; deeper
// collections are listed but not entered.
constexpr size_t kMaxWalkDepth = 32;
constexpr size_t kWindow = 64 * 1024;

// One open collection of the walk.
struct Frame {
    int fd = -1;
    std::string rel;       // relative to the root
    std::string url_path;  // decoded, with a trailing '/'
    DirectoryReader reader;
    std::vector<DirEntry> batch;  // read, not yet rendered from `pos` on
    size_t pos = 0;
    Frame(int root_fd, int dir_fd, std::string r, std::string u)
        : fd(dir_fd), rel(r), url_path(std::move(u)), reader(root_fd, dir_fd, std::move(r)) {}
};

struct PropfindJob final : Job {
    // ---- inputs (loop thread) ----
    const Site* site = nullptr;
    int root_fd = -1;
    std::string rel;
    std::string url_path;
    Depth depth = Depth::Zero;
    PropSpec spec;
    PropsMode mode = PropsMode::Auto;
    time_t now = 0;
    std::string body;
    bool body_refused = false;
    bool records_rendered = false;  // /database.txt is the PostgreSQL table (--records)

    // ---- the walk (worker thread; the body source drives it) ----
    int err = 0;
    int status = 0;
    std::vector<Frame> frames;  // the open collections, the target first
    bool finished = false;
    bool failed = false;
    std::string out;

    explicit PropfindJob(Exchange& ex)
        : site(&ex.site()),
          root_fd(ex.site().root_fd),
          rel(relative_path(ex.path())),
          url_path(ex.path()),
          mode(props_mode(ex.site())),
          now(ex.now()),
          records_rendered(database_is_rendered(ex.site())) {}

    void work() override;
    void done(Exchange& ex) override;
    bool holds_resources() const override { return !frames.empty(); }
    void release() override { close_frames(); }
    void close_frames() {
        for (Frame& f : frames)
            if (f.fd >= 0) close(f.fd);
        frames.clear();
    }

    RenderContext context() const { return {site, &spec, mode, now}; }
    void render_members();
};

void PropfindJob::work() {
    if (records_rendered && url_path == site->database_url) {
        // The table behind GET /database.txt, not a file: no dead
        // properties (PROPPATCH does not reach it), no members.
        Facts f;
        f.rendered_records = true;
        f.name = std::string_view(site->database_url).substr(site->database_url.rfind('/') + 1);
        f.url_path = url_path;
        out.clear();
        multistatus_begin(out);
        render_resource(context(), f, {}, out);
        multistatus_end(out);
        finished = true;
        return;
    }
    int fd = open_beneath(root_fd, rel, O_PATH | O_CLOEXEC);
    if (fd < 0) {
        err = errno;
        return;
    }
    struct statx st {};
    constexpr unsigned kMask = STATX_TYPE | STATX_SIZE | STATX_MTIME | STATX_INO | STATX_BTIME;
    if (statx(fd, "", AT_EMPTY_PATH, kMask, &st) != 0) {
        err = errno;
        close(fd);
        return;
    }
    if (!S_ISDIR(st.stx_mode) && !S_ISREG(st.stx_mode)) {
        err = ENOENT;  // devices, sockets: not resources here (as for GET)
        close(fd);
        return;
    }
    if (!S_ISDIR(st.stx_mode) && url_path.back() == '/') {
        err = ENOTDIR;
        close(fd);
        return;
    }
    Facts f = facts_of(st);
    std::string parent, name;
    split_parent(rel, parent, name);
    if (rel != ".") f.name = name;
    f.url_path = url_path;

    std::vector<DeadProperty> dead;
    if (spec.needs_dead) {
        int pfd = rel == "." ? -1 : open_beneath(root_fd, parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
        PropsTarget t{rel == "." ? root_fd : pfd, rel == "." ? std::string_view(".") : std::string_view(name),
                      f.is_dir};
        if (t.dir_fd >= 0) props_read(mode, t, dead);  // unreadable properties: listed as absent
        if (pfd >= 0) close(pfd);
    }
    out.clear();
    multistatus_begin(out);
    render_resource(context(), f, dead, out);

    if (!f.is_dir || depth == Depth::Zero) {
        close(fd);
        multistatus_end(out);
        finished = true;
        return;
    }
    int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int e = errno;
    close(fd);
    if (dfd < 0) {
        // The collection itself was described; its members cannot be read.
        err = e;
        out.clear();
        return;
    }
    std::string base = url_path;
    if (base.back() != '/') base.push_back('/');
    frames.emplace_back(root_fd, dfd, rel, std::move(base));
}

// On a worker: the next window of member responses. Depth 1 reads the
// target's entries; infinity walks depth-first, one frame per open
// collection, so memory is bounded by the depth, not the tree.
void PropfindJob::render_members() {
    std::vector<DeadProperty> dead;
    RenderContext cx = context();
    while (!frames.empty() && out.size() < kWindow) {
        Frame& top = frames.back();
        if (top.pos == top.batch.size()) {
            top.batch.clear();
            top.pos = 0;
            if (!top.reader.next_batch(top.batch, 256)) {
                if (top.reader.error() != 0) failed = true;
                close(top.fd);
                frames.pop_back();
                continue;
            }
        }
        const DirEntry& e = top.batch[top.pos++];
        std::string path = member_path(top.url_path, e.name, e.is_dir);
        Facts f = facts_of(e);
        f.url_path = path;
        f.rendered_records = records_rendered && path == site->database_url;
        dead.clear();
        if (spec.needs_dead && !f.rendered_records) props_read(mode, {top.fd, e.name, e.is_dir}, dead);
        render_resource(cx, f, dead, out);
        if (e.is_dir && depth == Depth::Infinity && frames.size() < kMaxWalkDepth) {
            // Not through symlinks: a link to an ancestor would loop.
            int sub = openat(top.fd, e.name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                std::string sub_rel = top.rel == "." ? e.name : top.rel + "/" + e.name;
                frames.emplace_back(root_fd, sub, std::move(sub_rel), std::move(path));
            }
        }
    }
    if (frames.empty() && !finished) {
        multistatus_end(out);
        finished = true;
    }
}

// The multistatus of a collection: the target's response (rendered by the
// job), then windows of members, each rendered on a worker. The job owns
// the descriptors; the source only drives it.
class PropfindSource final : public BodySource {
public:
    explicit PropfindSource(PropfindJob& job) : job_(job) {}
    BodyPiece next() override {
        if (has_output_) {
            has_output_ = false;
            if (!job_.out.empty()) return BodyPiece::mem(job_.out);
        }
        if (job_.finished) return BodyPiece::end();
        return BodyPiece::work();
    }
    void work() override {
        job_.out.clear();
        job_.render_members();
        has_output_ = true;
    }
    bool failed() const override { return job_.failed; }

private:
    PropfindJob& job_;
    bool has_output_ = true;  // the target's response, rendered by the job
};

void PropfindJob::done(Exchange& ex) {
    if (err) {
        close_frames();
        if (err == ENOENT || err == ENOTDIR) return respond_error(ex, 404, "no such file or directory");
        return respond_error(ex, status_for_errno(err), std::strerror(err));
    }
    ResponseHead head;
    head.status = 207;
    head.content_type = "application/xml; charset=utf-8";
    if (finished) {
        head.content_length = out.size();
        return ex.respond(head, Body::mem(out));
    }
    // A collection's members stream: the length is not known up front.
    head.content_length = ResponseHead::kUnknownLength;
    auto& src = ex.make_source<PropfindSource>(*this);
    ex.respond(head, Body::from(src));
}

void propfind_body_end(Exchange& ex) {
    PropfindJob& job = ex.job_as<PropfindJob>();
    if (job.body_refused) return;
    std::string why;
    if (int status = parse_spec(ex.request(), job.body, job.spec, why)) return respond_error(ex, status, why);
    std::string().swap(job.body);
    ex.offload(job, job.depth == Depth::Zero ? JobClass::Quick : JobClass::Listing);
}

}  // namespace

void handle_propfind(Exchange& ex) {
    const Site& site = ex.site();
    // RFC 4918 §9.1: no Depth means infinity.
    Depth depth = parse_depth(ex.request(), Depth::Infinity);
    if (depth == Depth::Invalid) return respond_error(ex, 400, "Depth must be 0, 1 or infinity");
    if (depth == Depth::Infinity && !site.dav_depth_infinity) {
        // RFC 4918 §9.1, §16: the propfind-finite-depth precondition.
        std::string& body = ex.text();
        body = dav_error_body("propfind-finite-depth");
        return respond_xml(ex, 403, body);
    }
    PropfindJob& job = ex.make_job<PropfindJob>(ex);
    job.depth = depth;
    read_dav_body<PropfindJob>(ex, propfind_body_end);
}

}  // namespace uvh
