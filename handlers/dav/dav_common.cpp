#include "handlers/dav/dav_common.h"

#include <fmt/format.h>

#include "handlers/write_ops.h"
#include "protocol/multipart.h"
#include "protocol/percent.h"
#include "protocol/target.h"
#include "protocol/text.h"

namespace uvh {

Depth parse_depth(const Request& req, Depth absent) {
    std::string_view v = req.find("depth");
    if (!v.data()) return absent;
    v = trim_ows(v);
    if (v == "0") return Depth::Zero;
    if (v == "1") return Depth::One;
    if (iequals_ascii(v, "infinity")) return Depth::Infinity;
    return Depth::Invalid;
}

std::string dav_href(std::string_view url_path) {
    std::string out;
    percent_encode(url_path, out, "/");
    return out;
}

bool is_xml_media_type(std::string_view content_type) {
    std::string essence = media_type_essence(content_type);
    return essence == "application/xml" || essence == "text/xml" || essence.ends_with("+xml");
}

int parse_dav_body(const Request& req, std::string_view body, std::string_view root, XmlParseResult& out,
                   std::string& why) {
    out = parse_xml(body);
    if (!out.ok) {
        std::string_view type = trim_ows(req.content_type);
        if (!type.empty() && !is_xml_media_type(type)) {
            why = fmt::format("the body is not XML: DAV:{} is sent as application/xml, not {}", root, type);
            return 415;
        }
        why = out.error;
        return 400;
    }
    if (!out.root.is_dav(root)) {
        why = "the body is not a DAV:";
        why.append(root).append(" element");
        return 400;
    }
    return 0;
}

void respond_xml(Exchange& ex, int status, std::string& body, ResponseHead head) {
    head.status = status;
    head.content_type = "application/xml; charset=utf-8";
    head.content_length = body.size();
    ex.respond(head, Body::mem(body));
}

void respond_member_failures(Exchange& ex, const std::vector<TreeFailure>& failures) {
    std::string& out = ex.text();
    out.clear();
    multistatus_begin(out);
    for (const TreeFailure& f : failures) multistatus_href_status(out, dav_href(f.url_path), f.status);
    multistatus_end(out);
    respond_xml(ex, 207, out);
}

std::string member_path(std::string_view dir_path, std::string_view name, bool is_dir) {
    std::string p(dir_path);
    if (p.empty() || p.back() != '/') p.push_back('/');
    p.append(name);
    if (is_dir) p.push_back('/');
    return p;
}

PropsMode props_mode(const Site& site) { return site.dav_props_sidecar ? PropsMode::Sidecar : PropsMode::Auto; }

bool dav_is_record_store(const Site& site, int dir_fd, std::string_view name) {
    return is_record_store_entry(site, dir_fd, name);
}

namespace {

// Authorities compare case-insensitively (RFC 3986 §6.2.2.1); a missing
// port and the scheme's default port name the same server (§6.2.3).
bool same_authority(std::string_view a, std::string_view b) {
    auto strip_default = [](std::string_view s) {
        if (s.ends_with(":80")) s.remove_suffix(3);
        return s;
    };
    return iequals_ascii(strip_default(a), strip_default(b));
}

}  // namespace

int parse_destination(const Request& req, std::string& path, std::string& why) {
    std::string_view v = req.find("destination");
    if (!v.data()) {
        why = "COPY and MOVE need a Destination header";
        return 400;
    }
    v = trim_ows(v);
    Target t = parse_target(v);
    if (t.form != TargetForm::Origin && t.form != TargetForm::Absolute) {
        why = "Destination is not an absolute URI or an absolute path";
        return 400;
    }
    // RFC 4918 §9.8.4 / §9.9.4: a destination on another server is 502;
    // this server writes only to itself.
    if (t.form == TargetForm::Absolute && !same_authority(t.authority, req.host)) {
        why = "Destination names another server";
        return 502;
    }
    if (!t.query.empty()) {
        why = "Destination must not have a query";
        return 400;
    }
    PathStatus ps = normalize_path(t.path, path);
    if (ps != PathStatus::Ok) {
        why = std::string("Destination: ") + std::string(path_status_message(ps));
        return 400;
    }
    return 0;
}

bool parse_overwrite(const Request& req, bool& overwrite) {
    std::string_view v = req.find("overwrite");
    overwrite = true;
    if (!v.data()) return true;
    v = trim_ows(v);
    if (v == "T" || v == "t") return true;
    if (v == "F" || v == "f") {
        overwrite = false;
        return true;
    }
    return false;
}

}  // namespace uvh
