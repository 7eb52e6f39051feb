#include "protocol/write_origin.h"

#include <arpa/inet.h>

#include "protocol/text.h"

namespace uvh {

namespace {

std::string_view strip_dot(std::string_view s) {
    if (!s.empty() && s.back() == '.') s.remove_suffix(1);
    return s;
}

bool ends_with_ci(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && iequals_ascii(s.substr(s.size() - suffix.size()), suffix);
}

bool is_ip_literal(std::string_view authority, std::string_view host) {
    char buf[64];
    if (host.empty() || host.size() >= sizeof buf) return false;
    host.copy(buf, host.size());
    buf[host.size()] = '\0';
    unsigned char addr[16];
    if (!authority.empty() && authority.front() == '[') return inet_pton(AF_INET6, buf, addr) == 1;
    return inet_pton(AF_INET, buf, addr) == 1;
}

// "http://Host:80" -> scheme "http", authority "Host:80". False when the
// value is not a serialised origin (for example "null").
bool split_origin(std::string_view origin, std::string_view& scheme, std::string_view& authority) {
    size_t sep = origin.find("://");
    if (sep == std::string_view::npos || sep == 0) return false;
    scheme = origin.substr(0, sep);
    authority = origin.substr(sep + 3);
    if (authority.empty() || authority.find('/') != std::string_view::npos) return false;
    return true;
}

// An authority with the scheme's default port removed, so that
// "http://localhost:80" and Host "localhost" compare equal.
std::string_view without_default_port(std::string_view scheme, std::string_view authority) {
    std::string_view port = iequals_ascii(scheme, "https") ? ":443" : iequals_ascii(scheme, "http") ? ":80" : "";
    if (!port.empty() && authority.ends_with(port)) authority.remove_suffix(port.size());
    return authority;
}

}  // namespace

std::string_view host_without_port(std::string_view authority) {
    if (!authority.empty() && authority.front() == '[') {
        size_t close = authority.find(']');
        // An unclosed bracket is returned whole: no name or address matches it.
        return close == std::string_view::npos ? authority : authority.substr(1, close - 1);
    }
    size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos && authority.find(':') == colon) return authority.substr(0, colon);
    return authority;
}

bool write_host_allowed(std::string_view host_field, const std::vector<std::string>& allowed) {
    host_field = trim_ows(host_field);
    std::string_view host = strip_dot(host_without_port(host_field));
    if (host.empty()) return false;
    if (iequals_ascii(host, "localhost") || ends_with_ci(host, ".localhost")) return true;
    if (is_ip_literal(host_field, host)) return true;
    for (const std::string& entry : allowed) {
        std::string_view a = strip_dot(entry);
        if (a == "*") return true;
        if (!a.empty() && a.front() == '.') {
            if (iequals_ascii(host, a.substr(1)) || ends_with_ci(host, a)) return true;
        } else if (iequals_ascii(host, a)) {
            return true;
        }
    }
    return false;
}

WriteOrigin classify_write_origin(std::string_view origin, std::string_view sec_fetch_site, std::string_view host,
                                  const std::vector<std::string>& allowed) {
    origin = trim_ows(origin);
    sec_fetch_site = trim_ows(sec_fetch_site);
    bool origin_listed = false;
    if (!origin.empty()) {
        for (const std::string& a : allowed)
            if (a == "*" || iequals_ascii(origin, a)) origin_listed = true;
    }
    if (origin_listed) return WriteOrigin::Allowed;
    // Fetch Metadata: "same-origin" and "none" (typed, bookmarked) are the
    // page itself or the user; "same-site" is another origin on the same
    // site (another port of localhost, say), as foreign as any other.
    if (!sec_fetch_site.empty()) {
        if (iequals_ascii(sec_fetch_site, "same-origin") || iequals_ascii(sec_fetch_site, "none"))
            return WriteOrigin::Allowed;
        return WriteOrigin::CrossSite;
    }
    if (origin.empty()) return WriteOrigin::Allowed;  // not a browser's cross-origin request
    std::string_view scheme, authority;
    if (!split_origin(origin, scheme, authority)) return WriteOrigin::CrossSite;  // "null" and worse
    std::string_view h = trim_ows(host);
    if (iequals_ascii(without_default_port(scheme, authority), without_default_port(scheme, h)))
        return WriteOrigin::Allowed;
    return WriteOrigin::CrossSite;
}

}  // namespace uvh
