#include "handlers/dav/dav_locks.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "handlers/dav/dav_common.h"
#include "handlers/dav/lock_table.h"
#include "handlers/fs_ops.h"
#include "handlers/write_ops.h"
#include "protocol/dav_xml.h"
#include "protocol/etag.h"
#include "protocol/if_header.h"
#include "protocol/percent.h"
#include "protocol/target.h"
#include "protocol/text.h"

namespace uvh {

std::string_view strip_trailing_slash(std::string_view path) {
    while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
    return path.empty() ? std::string_view("/") : path;
}

std::string canonical_lock_path(const Site& site, int dir_fd, std::string_view name, std::string_view url_path) {
    std::string fallback(strip_trailing_slash(url_path));
    const DavLockTable* table = site.dav_locks;
    if (dir_fd < 0 || name.empty() || name == "." || !table) return fallback;
    char buf[4096];
    std::string self = fmt::format("/proc/self/fd/{}", dir_fd);
    ssize_t n = readlink(self.c_str(), buf, sizeof buf);
    if (n <= 0 || static_cast<size_t>(n) >= sizeof buf) return fallback;
    std::string_view dir(buf, static_cast<size_t>(n));
    const std::string& root = table->root_real();
    std::string out;
    if (dir == root || (root.empty() && dir == "/")) {
        out = "/";
    } else if (dir.starts_with(root) && dir.size() > root.size() && dir[root.size()] == '/') {
        out.assign(dir.substr(root.size()));
        out.push_back('/');
    } else {
        return fallback;  // the root moved, or a deleted directory
    }
    out.append(name);
    return out;
}

namespace {

// The decoded, normalised URL path a Resource-Tag names (an absolute URI
// or an absolute path, RFC 4918 §10.4.3); empty when it is not a path on
// this server's tree.
std::string tag_path(std::string_view tag) {
    std::string_view raw = tag;
    if (raw.front() != '/') {
        size_t scheme = raw.find("://");
        if (scheme == std::string_view::npos) return {};
        size_t slash = raw.find('/', scheme + 3);
        raw = slash == std::string_view::npos ? std::string_view("/") : raw.substr(slash);
    }
    size_t q = raw.find_first_of("?#");
    if (q != std::string_view::npos) raw = raw.substr(0, q);
    std::string out;
    if (normalize_path(raw, out) != PathStatus::Ok) return {};
    return std::string(strip_trailing_slash(out));
}

// The ETag GET sends for the resource at `path` (decoded URL path), or
// empty when there is none.
std::string etag_at(const Site& site, std::string_view path) {
    std::string rel = relative_path(path);
    int fd = open_beneath(site.root_fd, rel, O_PATH);
    if (fd < 0) return {};
    struct stat st {};
    bool ok = fstat(fd, &st) == 0;
    close(fd);
    if (!ok) return {};
    return make_etag({static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_size), st.st_mtim.tv_sec,
                      st.st_mtim.tv_nsec});
}

// The canonical lock path of a URL path other than the target's (a tagged
// list's resource, the Request-URI of a COPY or MOVE): its parent opened
// beneath the root, as for the target.
std::string canonical_of(const Site& site, std::string_view url_path) {
    std::string rel = relative_path(url_path);
    if (rel == ".") return "/";
    std::string parent, name;
    split_parent(rel, parent, name);
    int dir_fd = open_beneath(site.root_fd, parent, O_RDONLY | O_DIRECTORY);
    std::string out = canonical_lock_path(site, dir_fd, name, url_path);
    if (dir_fd >= 0) close(dir_fd);
    return out;
}

void append_unique(std::vector<DavLock>& to, const std::vector<DavLock>& from) {
    for (const DavLock& l : from) {
        bool seen = std::any_of(to.begin(), to.end(), [&](const DavLock& t) { return t.token == l.token; });
        if (!seen) to.push_back(l);
    }
}

// The If header (RFC 4918 §10.4) and the locks on one target. With
// `need_tokens`, every lock that applies must have its token submitted
// (a write); without (LOCK itself), only the If header is evaluated and the
// submitted tokens are handed back.
LockCheck evaluate(const Site& site, const Request& req, const WriteTarget& target, time_t now, bool need_tokens,
                   std::vector<std::string>* submitted_out) {
    LockCheck out;
    const DavLockTable* table = site.dav_locks;
    bool active = table && table->maybe_active(now);
    std::string_view if_value = req.find("if");
    if (!if_value.data() && !active) return out;  // the common case: nothing to check

    std::string path = canonical_lock_path(site, target.dir_fd, target.name, target.path);
    std::string url_path(strip_trailing_slash(target.path));

    // The locks this write must present a token for: those covering the
    // target, those on its members when it changes the whole tree, and a
    // lock on its parent collection when it adds or removes the name
    // (RFC 4918 §7.5: a lock on a collection protects its membership).
    std::vector<DavLock> locks;
    if (active) {
        table->find(path, target.members, now, locks);
        if (target.membership && path != "/") {
            std::string parent = path.substr(0, path.rfind('/'));
            if (parent.empty()) parent = "/";
            std::vector<DavLock> up;
            table->find(parent, false, now, up);
            append_unique(locks, up);
        }
    }

    // RFC 4918 §10.4: the If header is true when one of its lists is; a
    // list is evaluated against the resource it is tagged with (or the
    // Request-URI), its state tokens against the locks that apply to that
    // resource, its entity tags against the ETag GET would send. The state
    // tokens of the lists that are true are the lock tokens submitted.
    std::vector<std::string> submitted;
    if (if_value.data()) {
        IfHeader h;
        if (!parse_if_header(if_value, h)) {
            out.status = 400;
            out.detail = "malformed If header (RFC 4918 section 10.4)";
            return out;
        }
        bool any_true = false;
        std::string own_etag;
        bool own_etag_known = false;
        // A No-tag-list applies to the Request-URI (RFC 4918 §10.4.2),
        // which is not the target when this is a COPY or MOVE destination.
        std::string request_path;
        if (normalize_path(req.parsed.path, request_path) != PathStatus::Ok) request_path = url_path;
        request_path = std::string(strip_trailing_slash(request_path));
        std::string request_canonical = request_path == url_path ? path : canonical_of(site, request_path);
        for (const IfList& list : h.lists) {
            std::string resource = request_canonical;
            bool own = request_path == url_path;
            if (!list.resource.empty()) {
                std::string t = tag_path(list.resource);
                if (t.empty()) continue;  // names no resource here: this list cannot be true
                if (t == url_path || t == path) {
                    resource = path;
                    own = true;
                } else {
                    resource = canonical_of(site, t);
                    own = false;
                }
            }
            bool list_true = true;
            std::vector<std::string> tokens;
            for (const IfCondition& c : list.conditions) {
                bool v = false;
                if (c.kind == IfCondition::Kind::StateToken) {
                    DavLock l;
                    v = table && table->find_token(c.value, now, l) && l.covers(resource);
                    if (v && !c.negated) tokens.push_back(l.token);
                } else {
                    std::string etag;
                    if (own) {
                        if (!own_etag_known) {
                            own_etag = etag_at(site, url_path);
                            own_etag_known = true;
                        }
                        etag = own_etag;
                    } else {
                        etag = etag_at(site, resource);
                    }
                    v = !etag.empty() && etag_list_matches(c.value, etag, false);
                }
                if (c.negated) v = !v;
                if (!v) {
                    list_true = false;
                    break;
                }
            }
            if (list_true) {
                any_true = true;
                submitted.insert(submitted.end(), tokens.begin(), tokens.end());
            }
        }
        if (!any_true) {
            out.status = 412;
            out.detail = "the If header's conditions are false";
            return out;
        }
    }

    if (need_tokens) {
        // RFC 4918 §7.5 (exclusive and shared alike): every lock that
        // applies needs its token submitted.
        std::vector<DavLock> held;
        for (const std::string& t : submitted) {
            DavLock m;
            if (table && table->find_token(t, now, m)) held.push_back(std::move(m));
        }
        for (const DavLock& l : locks) {
            // Shared locks on one resource are interchangeable: a write by
            // the holder of any of them may proceed (RFC 4918 §6.2).
            auto satisfies = [&](const DavLock& m) {
                return m.token == l.token || (!l.exclusive && !m.exclusive && m.covers(l.root));
            };
            if (std::none_of(held.begin(), held.end(), satisfies)) {
                out.status = 423;
                out.lock_root = l.root;
                return out;
            }
            if (path_within(l.root, path)) out.rooted.push_back(l.token);
        }
    }
    if (submitted_out) *submitted_out = std::move(submitted);
    return out;
}

}  // namespace

LockCheck check_write_locks(const Site& site, const Request& req, LockService::Guard* guard,
                            const WriteTarget& target, time_t now) {
    const DavLockTable* table = site.dav_locks;
    // The shared hold first: from here to the caller's commit no LOCK can
    // change the table.
    if (guard && guard->held() && site.locks && table && !site.locks->share_table(*guard)) {
        LockCheck out;
        out.status = status_for_errno(errno);
        out.detail = "cannot take the WebDAV lock table's lock";
        return out;
    }
    return evaluate(site, req, target, now, true, nullptr);
}

LockCheck evaluate_for_lock(const Site& site, const Request& req, const WriteTarget& target, time_t now,
                            std::vector<std::string>& submitted) {
    return evaluate(site, req, target, now, false, &submitted);
}

void release_locks(const Site& site, const std::vector<std::string>& tokens, time_t now, bool only_if_gone) {
    DavLockTable* table = site.dav_locks;
    if (tokens.empty() || !table || !site.locks) return;
    LockService::Guard g = site.locks->lock_table();
    if (!g.held()) return;  // they expire by themselves
    for (const std::string& t : tokens) {
        if (only_if_gone) {
            DavLock l;
            if (!table->find_token(t, now, l)) continue;
            int fd = open_beneath(site.root_fd, relative_path(l.root), O_PATH);
            if (fd >= 0) {
                close(fd);
                continue;  // still there: the lock stays
            }
        }
        table->remove(t, now);
    }
}

void respond_lock_check(Exchange& ex, const LockCheck& c) {
    if (c.status != 423) return respond_error(ex, c.status, c.detail);
    std::string href;
    percent_encode(c.lock_root, href, "/");
    std::string inner = "<D:href>";
    xml_escape_append(inner, href);
    inner += "</D:href>";
    std::string& body = ex.text();
    body = dav_error_body("lock-token-submitted", inner);
    respond_xml(ex, 423, body);
}

}  // namespace uvh
