// PROPPATCH (RFC 4918 §9.2): dead properties set and removed in document
// order, all or nothing, stored by handlers/dav/props_store.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "handlers/dav/dav.h"
#include "handlers/dav/dav_common.h"
#include "handlers/dav/dav_locks.h"
#include "handlers/fs_ops.h"
#include "handlers/lock_service.h"
#include "protocol/target.h"

namespace uvh {

namespace {

struct PropOp {
    bool set = true;
    std::string ns, name;
    std::string xml;  // the element to store (set)
    int status = 200;
};

// The live properties this server computes; setting or removing one is
// 403 with cannot-modify-protected-property (RFC 4918 §9.2, §16).
bool is_protected(std::string_view ns, std::string_view name) {
    if (ns != kDavNs) return false;
    for (std::string_view p : {"creationdate", "displayname", "getcontentlength", "getcontenttype", "getetag",
                               "getlastmodified", "lockdiscovery", "resourcetype", "supportedlock"})
        if (p == name) return true;
    return false;
}

// xml:lang in scope on an ancestor applies to the value (RFC 4918 §4.3):
// the stored element carries it itself.
void inherit_lang(XmlElement& e, const std::string* lang) {
    if (!lang || e.attribute(kXmlNs, "lang")) return;
    e.attributes.push_back({std::string(kXmlNs), "lang", *lang});
}

int parse_update(const Request& req, std::string_view body, std::vector<PropOp>& ops, std::string& why) {
    XmlParseResult r;
    if (int status = parse_dav_body(req, body, "propertyupdate", r, why)) return status;
    const std::string* lang0 = r.root.attribute(kXmlNs, "lang");
    for (const XmlElement& action : r.root.children) {
        bool set = action.is_dav("set");
        if (!set && !action.is_dav("remove")) continue;  // unknown elements are ignored (§17)
        const std::string* lang1 = action.attribute(kXmlNs, "lang");
        for (const XmlElement& prop : action.children) {
            if (!prop.is_dav("prop")) continue;
            const std::string* lang2 = prop.attribute(kXmlNs, "lang");
            const std::string* lang = lang2 ? lang2 : lang1 ? lang1 : lang0;
            for (const XmlElement& p : prop.children) {
                PropOp op;
                op.set = set;
                op.ns = p.ns;
                op.name = p.name;
                if (set) {
                    XmlElement copy = p;
                    copy.tail.clear();
                    inherit_lang(copy, lang);
                    op.xml = xml_serialize(copy);
                }
                ops.push_back(std::move(op));
            }
        }
    }
    if (ops.empty()) {
        why = "DAV:propertyupdate names no property";
        return 400;
    }
    return 0;
}

struct ProppatchJob final : Job {
    const Site* site = nullptr;
    const Request* request = nullptr;
    int root_fd = -1;
    std::string rel;
    std::string url_path;
    PropsMode mode = PropsMode::Auto;
    time_t now = 0;
    std::string body;
    bool body_refused = false;
    std::vector<PropOp> ops;

    int err = 0;
    int status = 0;  // for the whole request (404, 403)
    LockCheck lock_check;

    explicit ProppatchJob(Exchange& ex)
        : site(&ex.site()),
          request(&ex.request()),
          root_fd(ex.site().root_fd),
          rel(relative_path(ex.path())),
          url_path(ex.path()),
          mode(props_mode(ex.site())),
          now(ex.now()) {}

    void work() override;
    void done(Exchange& ex) override;
};

void ProppatchJob::work() {
    std::string parent, name;
    bool root = rel == ".";
    if (!root) split_parent(rel, parent, name);
    int dfd = root ? open_beneath(root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC)
                   : open_beneath(root_fd, parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        err = errno;
        return;
    }
    std::string_view entry = root ? std::string_view(".") : std::string_view(name);
    struct stat st {};
    if (fstatat(dfd, std::string(entry).c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        err = errno;
        close(dfd);
        return;
    }
    if ((!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) || (!S_ISDIR(st.st_mode) && url_path.back() == '/')) {
        err = ENOENT;
        close(dfd);
        return;
    }
    if (!root && dav_is_record_store(*site, dfd, name)) {
        status = 403;
        close(dfd);
        return;
    }
    LockService::Guard guard;
    if (site->locks) {
        struct stat dir {};
        fstat(dfd, &dir);
        guard = site->locks->lock_name(dir, entry);
        if (!guard.held()) {
            err = errno;
            close(dfd);
            return;
        }
    }
    lock_check = check_write_locks(*site, *request, &guard, WriteTarget{url_path, dfd, entry, false, false}, now);
    if (lock_check.status) {
        close(dfd);
        return;
    }

    // Every operation is checked first; any failure changes nothing and
    // the others are 424 (RFC 4918 §9.2).
    bool any_failed = false;
    for (PropOp& op : ops) {
        if (is_protected(op.ns, op.name)) {
            op.status = 403;
            any_failed = true;
        }
    }
    PropsTarget target{dfd, entry, S_ISDIR(st.st_mode)};
    std::vector<DeadProperty> props;
    if (!any_failed) {
        int e = props_read(mode, target, props);
        if (e != 0) {
            for (PropOp& op : ops) op.status = status_for_errno(e);
            close(dfd);
            return;
        }
        for (const PropOp& op : ops) {
            auto same = [&](const DeadProperty& d) { return d.ns == op.ns && d.name == op.name; };
            std::erase_if(props, same);
            if (op.set) props.push_back({op.ns, op.name, op.xml});
        }
        e = props_write(mode, target, props);
        if (e != 0) {
            // Too large for the attribute and the sidecar, or a full disk.
            int s = (e == E2BIG || e == ENOSPC || e == EDQUOT) ? 507 : status_for_errno(e);
            for (PropOp& op : ops) op.status = s;
        }
    } else {
        for (PropOp& op : ops)
            if (op.status == 200) op.status = 424;
    }
    close(dfd);
}

void ProppatchJob::done(Exchange& ex) {
    if (lock_check.status) return respond_lock_check(ex, lock_check);
    if (status == 403) return respond_error(ex, 403, "the record store's file takes no properties");
    if (err) {
        if (err == ENOENT || err == ENOTDIR) return respond_error(ex, 404, "no such file or directory");
        return respond_error(ex, status_for_errno(err), std::strerror(err));
    }
    std::string& out = ex.text();
    out.clear();
    multistatus_begin(out);
    multistatus_response_begin(out, dav_href(url_path));
    // One propstat per status, in the order the statuses first appear.
    std::vector<int> seen;
    for (const PropOp& op : ops) {
        if (std::find(seen.begin(), seen.end(), op.status) != seen.end()) continue;
        seen.push_back(op.status);
        std::string names;
        for (const PropOp& o : ops)
            if (o.status == op.status) xml_empty_property_append(names, o.ns, o.name);
        multistatus_propstat(out, names, op.status);
        if (op.status == 403 && is_protected(op.ns, op.name)) {
            out.insert(out.size() - std::string_view("</D:propstat>").size(),
                       "<D:error><D:cannot-modify-protected-property/></D:error>");
        }
    }
    multistatus_response_end(out);
    multistatus_end(out);
    respond_xml(ex, 207, out);
}

void proppatch_body_end(Exchange& ex) {
    ProppatchJob& job = ex.job_as<ProppatchJob>();
    if (job.body_refused) return;
    std::string why;
    if (int status = parse_update(ex.request(), job.body, job.ops, why)) return respond_error(ex, status, why);
    std::string().swap(job.body);
    ex.offload(job);
}

}  // namespace

void handle_proppatch(Exchange& ex) {
    ex.make_job<ProppatchJob>(ex);
    read_dav_body<ProppatchJob>(ex, proppatch_body_end);
}

}  // namespace uvh
