#include "handlers/dav/lock_methods.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "handlers/dav/dav_common.h"
#include "handlers/dav/dav_locks.h"
#include "handlers/dav/lock_discovery.h"
#include "handlers/dav/lock_table.h"
#include "handlers/fd_cache.h"
#include "handlers/file_cache.h"
#include "handlers/fs_ops.h"
#include "handlers/write_ops.h"
#include "protocol/dav_xml.h"
#include "protocol/percent.h"
#include "protocol/text.h"

namespace uvh {

namespace {

constexpr size_t kMaxLockBody = 64 * 1024;

// RFC 4918 §10.7: "Timeout: Infinite, Second-4100000000": the first value
// we understand, bounded by --dav-lock-timeout-max; none (or no header):
// the maximum.
int64_t lock_timeout(std::string_view field, int64_t max) {
    while (!field.empty()) {
        size_t comma = field.find(',');
        std::string_view v = trim_ows(field.substr(0, comma));
        field = comma == std::string_view::npos ? std::string_view() : field.substr(comma + 1);
        if (iequals_ascii(v, "infinite")) return max;
        if (v.size() > 7 && iequals_ascii(v.substr(0, 7), "second-")) {
            int64_t n = 0;
            bool ok = true;
            for (char c : v.substr(7)) {
                if (c < '0' || c > '9') {
                    ok = false;
                    break;
                }
                if (n < max) n = n * 10 + (c - '0');
            }
            if (ok) return n < 1 ? 1 : (n > max ? max : n);
        }
    }
    return max;
}

struct LockJob final : Job {
    // ---- inputs (loop thread) ----
    const Site* site = nullptr;
    const Request* request = nullptr;
    std::string_view url_path;
    time_t now = 0;
    bool unlock = false;
    bool refresh = false;  // LOCK without a body (RFC 4918 §9.10.2)
    bool exclusive = true;
    bool infinite = true;
    int64_t timeout = 0;
    std::string owner;  // serialised <D:owner>, or empty
    std::string token;  // UNLOCK: the Lock-Token
    std::string body;   // LOCK: the request body as it arrives

    // ---- outputs (worker thread) ----
    int status = 0;
    int err = 0;
    std::string detail;
    LockCheck check;
    DavLock lock;
    bool created = false;
    std::string conflict_root;

    void work() override;
    void done(Exchange& ex) override;
    void do_lock(int dir_fd, const std::string& name, bool exists, const struct stat& st);
};

void LockJob::work() {
    std::string rel = relative_path(url_path);
    std::string parent, name;
    if (rel == ".") {
        parent = ".";
        name = ".";
    } else {
        split_parent(rel, parent, name);
    }
    int dir_fd = open_beneath(site->root_fd, parent, O_RDONLY | O_DIRECTORY);
    if (dir_fd < 0) {
        if (unlock) {
            // The resource's directory went away; its locks live on until
            // they expire or are unlocked by the URL path.
            dir_fd = -1;
        } else if (errno == ENOENT || errno == ENOTDIR) {
            status = 409;  // RFC 4918 §9.10.4 via §7.3: no parent collection
            detail = "the parent collection does not exist";
            return;
        } else {
            err = errno;
            return;
        }
    }
    if (unlock) {
        std::string path = canonical_lock_path(*site, dir_fd, name == "." ? std::string_view() : name, url_path);
        if (dir_fd >= 0) close(dir_fd);
        DavLockTable* table = site->dav_locks;
        LockService::Guard g;
        if (site->locks) g = site->locks->lock_table();
        if (!table || !site->locks || !g.held()) {
            err = errno ? errno : EIO;
            return;
        }
        DavLock l;
        // RFC 4918 §9.11.1: the token must name a lock whose scope holds the
        // Request-URI.
        if (!table->find_token(token, now, l) || !l.covers(path)) {
            status = 409;
            return;
        }
        table->remove(l.token, now);
        status = 204;
        return;
    }
    if (name != "." && is_record_store_entry(*site, dir_fd, name)) {
        close(dir_fd);
        status = 403;
        detail = "that name is the record store's file; records live at /database.txt/ID";
        return;
    }
    struct stat st {};
    bool exists = fstatat(dir_fd, name.c_str(), &st, 0) == 0;
    if (!exists && errno != ENOENT) {
        err = errno;
        close(dir_fd);
        return;
    }
    do_lock(dir_fd, name, exists, st);
    close(dir_fd);
}

void LockJob::do_lock(int dir_fd, const std::string& name, bool exists, const struct stat&) {
    DavLockTable* table = site->dav_locks;
    const LockService* locks = site->locks;
    if (!table || !table->usable() || !locks) {
        err = ENOLCK;
        return;
    }
    // The name's lock, as PUT takes it, then the table's: a LOCK and a
    // write of the same name are ordered, and no write anywhere commits
    // while the table changes.
    struct stat dir {};
    if (fstat(dir_fd, &dir) != 0) {
        err = errno;
        return;
    }
    LockService::Guard name_guard = locks->lock_name(dir, name);
    if (!name_guard.held()) {
        err = errno;
        return;
    }
    LockService::Guard table_guard = locks->lock_table();
    if (!table_guard.held()) {
        err = errno;
        return;
    }
    std::string_view tname = name == "." ? std::string_view() : std::string_view(name);
    WriteTarget target{url_path, dir_fd, tname, infinite, !exists};
    std::vector<std::string> submitted;
    check = evaluate_for_lock(*site, *request, target, now, submitted);
    if (check.status) return;
    std::string path = canonical_lock_path(*site, dir_fd, tname, url_path);

    if (refresh) {
        // Any submitted token of a lock that applies here refreshes that
        // lock, including one on an ancestor (litmus' indirect_refresh).
        for (const std::string& t : submitted) {
            DavLock l;
            if (!table->find_token(t, now, l) || !l.covers(path)) continue;
            l.expiry = static_cast<int64_t>(now) + timeout;
            table->refresh(l.token, l.expiry, now);
            lock = l;
            status = 200;
            return;
        }
        status = 412;
        detail = "a LOCK without a body refreshes a lock: the If header must name a lock on this resource";
        return;
    }

    // RFC 4918 §6.1, §7: an exclusive lock conflicts with any other lock on
    // the same resource; shared locks only with exclusive ones. A lock that
    // covers the target (its own, or an ancestor's at depth infinity)
    // conflicts, and so, for a depth-infinity request, does one beneath it.
    std::vector<DavLock> found;
    table->find(path, infinite, now, found);
    for (const DavLock& l : found) {
        if (l.exclusive || exclusive) {
            status = 423;
            conflict_root = l.root;
            return;
        }
    }
    if (!exists) {
        // Creating the resource adds a member to its parent collection: a
        // lock on the parent needs its token (RFC 4918 §7.5).
        std::string parent = path.substr(0, path.rfind('/'));
        if (parent.empty()) parent = "/";
        table->find(parent, false, now, found);
        for (const DavLock& l : found) {
            if (std::find(submitted.begin(), submitted.end(), l.token) == submitted.end()) {
                check.status = 423;
                check.lock_root = l.root;
                return;
            }
        }
        if (url_path.back() == '/') {
            status = 409;
            detail = "a LOCK of an unmapped URL creates an empty file; a collection is made with MKCOL";
            return;
        }
        // RFC 4918 §7.3: a LOCK on an unmapped URL creates an empty
        // resource, locked. Under the name's lock, as PUT creates files.
        int fd = openat(dir_fd, name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0) {
            err = errno;
            return;
        }
        fsync(fd);
        close(fd);
        fsync(dir_fd);
        created = true;
        // A name now exists where caches may remember it missing
        // (handlers/fd_cache.h): they keep that under the directory's
        // generation.
        locks->bump(dir.st_dev, dir.st_ino);
    }
    lock.token = DavLockTable::new_token();
    lock.root = path;
    lock.exclusive = exclusive;
    lock.infinite = infinite;
    lock.owner = owner;
    lock.expiry = static_cast<int64_t>(now) + timeout;
    int e = table->insert(lock, now);
    if (e == ENOSPC) {
        status = 507;
        detail = fmt::format("every one of the {} WebDAV lock slots holds a live lock", DavLockTable::kSlots);
    } else if (e == ENAMETOOLONG) {
        status = 414;
        detail = fmt::format("a locked path is at most {} bytes", DavLockTable::kMaxRoot);
    } else if (e != 0) {
        err = e;
    } else {
        status = created ? 201 : 200;
    }
    if (status != 200 && status != 201 && created) {
        unlinkat(dir_fd, name.c_str(), 0);  // nothing half-done stays
        created = false;
    }
}

void LockJob::done(Exchange& ex) {
    if (created) {
        if (FileCache* cache = ex.site().cache) cache->invalidate_file(ex.path());
        if (FdCache* fds = ex.site().fd_cache) fds->invalidate_file(ex.path());
    }
    if (check.status) return respond_lock_check(ex, check);
    if (err) return respond_error(ex, status_for_errno(err), std::strerror(err));
    std::string& out = ex.text();
    if (unlock) {
        if (status == 409) {
            out = dav_error_body("lock-token-matches-request-uri");
            return respond_xml(ex, 409, out);
        }
        ResponseHead head;
        head.status = 204;
        return ex.respond(head, Body::none());
    }
    if (status == 423) {
        std::string href;
        percent_encode(conflict_root, href, "/");
        std::string inner = "<D:href>";
        xml_escape_append(inner, href);
        inner += "</D:href>";
        out = dav_error_body("no-conflicting-lock", inner);
        return respond_xml(ex, 423, out);
    }
    if (status != 200 && status != 201) return respond_error(ex, status ? status : 500, detail);
    out = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:prop xmlns:D=\"DAV:\">";
    append_lockdiscovery(out, {lock}, now);
    out += "</D:prop>\n";
    ResponseHead head;
    std::string token_field;
    if (!refresh) {
        token_field = "<" + lock.token + ">";
        head.add("Lock-Token", token_field);
    }
    respond_xml(ex, status, out, head);
}

LockJob& lock_job(Exchange& ex) { return ex.job_as<LockJob>(); }

void collect_lock_body(Exchange& ex, std::string_view piece) {
    LockJob& job = lock_job(ex);
    if (job.body.size() + piece.size() > kMaxLockBody)
        return respond_error(ex, 413, fmt::format("a LOCK body is at most {} bytes", kMaxLockBody));
    job.body.append(piece);
    ex.body_consumed();
}

// The body is complete: parse lockinfo (RFC 4918 §14.11) and go to work.
void lock_body_done(Exchange& ex) {
    LockJob& job = lock_job(ex);
    if (trim_ows(job.body).empty()) {
        job.refresh = true;
    } else {
        XmlParseResult parsed;
        std::string why;
        if (int status = parse_dav_body(ex.request(), job.body, "lockinfo", parsed, why))
            return respond_error(ex, status, why);
        const XmlElement& info = parsed.root;
        const XmlElement* scope = info.child(kDavNs, "lockscope");
        const XmlElement* type = info.child(kDavNs, "locktype");
        if (!scope || !type) return respond_error(ex, 400, "DAV:lockinfo needs DAV:lockscope and DAV:locktype");
        if (scope->child(kDavNs, "exclusive")) {
            job.exclusive = true;
        } else if (scope->child(kDavNs, "shared")) {
            job.exclusive = false;
        } else {
            return respond_error(ex, 400, "DAV:lockscope is DAV:exclusive or DAV:shared");
        }
        // RFC 4918 §7: write is the only lock type.
        if (!type->child(kDavNs, "write")) return respond_error(ex, 422, "DAV:locktype must be DAV:write");
        if (const XmlElement* owner = info.child(kDavNs, "owner")) {
            XmlElement o = *owner;
            o.tail.clear();
            job.owner = xml_serialize(o);
            if (job.owner.size() > DavLockTable::kMaxOwner)
                return respond_error(ex, 413,
                                     fmt::format("DAV:owner is at most {} bytes serialised", DavLockTable::kMaxOwner));
        }
        job.body.clear();
        job.body.shrink_to_fit();
    }
    if (job.refresh && !ex.request().find("if").data())
        return respond_error(ex, 400, "a LOCK without a body refreshes a lock and needs an If header with its token");
    ex.offload(job);
}

}  // namespace

void handle_lock(Exchange& ex) {
    const Request& req = ex.request();
    const Site& site = ex.site();
    LockJob& job = ex.make_job<LockJob>();
    job.site = &site;
    job.request = &req;
    job.url_path = ex.path();
    job.now = ex.now();
    // RFC 4918 §9.10.3: Depth 0 or infinity; infinity when absent.
    std::string_view depth = req.find("depth");
    if (depth.data()) {
        depth = trim_ows(depth);
        if (depth == "0") {
            job.infinite = false;
        } else if (!iequals_ascii(depth, "infinity")) {
            return respond_error(ex, 400, "LOCK takes Depth: 0 or Depth: infinity");
        }
    }
    job.timeout = lock_timeout(req.find("timeout"), site.dav_lock_timeout_max);
    if (req.has_content_length && req.content_length > kMaxLockBody)
        return respond_error(ex, 413, fmt::format("a LOCK body is at most {} bytes", kMaxLockBody));
    if (!req.has_body()) return lock_body_done(ex);
    BodyReader reader;
    reader.data = collect_lock_body;
    reader.end = lock_body_done;
    reader.chunk = 16 * 1024;
    ex.read_body(reader);
}

void handle_unlock(Exchange& ex) {
    const Request& req = ex.request();
    // RFC 4918 §10.5: Lock-Token = Coded-URL.
    std::string_view field = trim_ows(req.find("lock-token"));
    if (field.size() < 3 || field.front() != '<' || field.back() != '>')
        return respond_error(ex, 400, "UNLOCK needs a Lock-Token header: <urn:uuid:...>");
    LockJob& job = ex.make_job<LockJob>();
    job.site = &ex.site();
    job.request = &req;
    job.url_path = ex.path();
    job.now = ex.now();
    job.unlock = true;
    job.token.assign(field.substr(1, field.size() - 2));
    ex.offload(job);
}

}  // namespace uvh
