#include "handlers/dav/lock_discovery.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "handlers/dav/dav_common.h"
#include "handlers/dav/dav_locks.h"
#include "handlers/fs_ops.h"
#include "protocol/dav_xml.h"
#include "protocol/percent.h"

namespace uvh {

void locks_for(const Site& site, std::string_view path, time_t now, std::vector<DavLock>& out) {
    out.clear();
    const DavLockTable* table = site.dav_locks;
    if (!table || !table->maybe_active(now) || !site.locks) return;
    LockService::Guard g = site.locks->lock_table(false);
    if (!g.held()) return;
    table->find(path, false, now, out);
}

void append_lock_properties_for(const Site& site, std::string_view path, time_t now, bool lockdiscovery,
                                std::string& out) {
    if (!lockdiscovery) return append_supportedlock(out);
    std::vector<DavLock> locks;
    const DavLockTable* table = site.dav_locks;
    if (table && table->maybe_active(now)) {
        std::string rel = relative_path(path);
        std::string parent, name;
        int dir_fd = -1;
        if (rel != ".") {
            split_parent(rel, parent, name);
            dir_fd = open_beneath(site.root_fd, parent, O_RDONLY | O_DIRECTORY);
        }
        std::string canonical = canonical_lock_path(site, dir_fd, name, path);
        if (dir_fd >= 0) close(dir_fd);
        locks_for(site, canonical, now, locks);
    }
    append_lockdiscovery(out, locks, now);
}

void append_supportedlock(std::string& out) {
    out += "<D:supportedlock>"
           "<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>"
           "<D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>"
           "</D:supportedlock>";
}

void append_lockdiscovery(std::string& out, const std::vector<DavLock>& locks, time_t now) {
    if (locks.empty()) {
        out += "<D:lockdiscovery/>";
        return;
    }
    out += "<D:lockdiscovery>";
    for (const DavLock& l : locks) {
        out += "<D:activelock><D:locktype><D:write/></D:locktype><D:lockscope>";
        out += l.exclusive ? "<D:exclusive/>" : "<D:shared/>";
        out += "</D:lockscope><D:depth>";
        out += l.infinite ? "infinity" : "0";
        out += "</D:depth>";
        out += l.owner;  // the client's <D:owner> element, serialised when the lock was taken
        int64_t left = l.expiry - static_cast<int64_t>(now);
        out += fmt::format("<D:timeout>Second-{}</D:timeout>", left > 0 ? left : 0);
        out += "<D:locktoken><D:href>";
        xml_escape_append(out, l.token);
        out += "</D:href></D:locktoken><D:lockroot><D:href>";
        std::string href;
        percent_encode(l.root, href, "/");
        xml_escape_append(out, href);
        out += "</D:href></D:lockroot></D:activelock>";
    }
    out += "</D:lockdiscovery>";
}

}  // namespace uvh
