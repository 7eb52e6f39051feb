#include "protocol/target.h"

#include <array>

#include "protocol/percent.h"
#include "protocol/text.h"


namespace uvh {

namespace {

void split_query(std::string_view rest, Target& t) {
    size_t q = rest.find('?');
    if (q == std::string_view::npos) {
        t.path = rest;
    } else {
        t.path = rest.substr(0, q);
        t.query = rest.substr(q + 1);
    }
}

}  // namespace

Target parse_target(std::string_view raw) {
    Target t;
    // A fragment is never part of a request-target (RFC 9112 §3.2): a '#'
    // means the client sent something else than it meant, and acting on the
    // part before it (deleting a collection, say) would be unsafe.
    if (raw.empty() || raw.find('#') != std::string_view::npos) return t;
    if (raw == "*") {
        t.form = TargetForm::Asterisk;
        return t;
    }
    if (raw.front() == '/') {
        t.form = TargetForm::Origin;
        split_query(raw, t);
        return t;
    }
    size_t colon = raw.find("://");
    if (colon == std::string_view::npos) return t;
    std::string_view scheme = raw.substr(0, colon);
    if (!iequals_ascii(scheme, "http") && !iequals_ascii(scheme, "https")) return t;
    std::string_view rest = raw.substr(colon + 3);
    size_t end = rest.find_first_of("/?#");
    t.authority = rest.substr(0, end);
    if (t.authority.empty() || t.authority.find('@') != std::string_view::npos) return t;
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
    t.form = TargetForm::Absolute;
    split_query(rest, t);
    if (t.path.empty()) t.path = "/";
    return t;
}

PathStatus normalize_path(std::string_view raw, std::string& out) {
    // Decode each segment first, refusing the bytes that would let a segment
    // carry a separator; then resolve "." and ".." on the decoded segment.
    // Decoding before resolving is what makes "%2e%2e" as harmless as "..".
    // Works in `out` alone (its capacity is reused request after request).
    // The common case needs no work: nothing encoded, no dot segments, no
    // empty segments, no backslash.
    // A table lookup per byte finds the few bytes that need a closer look.
    static constexpr auto kLook = [] {
        std::array<bool, 256> t{};
        t['%'] = t['\\'] = t['\0'] = t['/'] = true;
        return t;
    }();
    bool plain = !raw.empty() && raw.front() == '/';
    for (size_t k = 0; plain && k < raw.size(); ++k) {
        char c = raw[k];
        if (!kLook[static_cast<unsigned char>(c)]) continue;
        if (c != '/' || (k + 1 < raw.size() && (raw[k + 1] == '/' || raw[k + 1] == '.'))) plain = false;
    }
    if (plain) {
        out.assign(raw);
        return PathStatus::Ok;
    }
    out.clear();
    out.reserve(raw.size() + 1);
    bool trailing_slash = false;
    size_t i = 0;
    while (i <= raw.size()) {
        size_t seg_start = out.size();
        out.push_back('/');
        size_t end = raw.find('/', i);
        bool last = end == std::string_view::npos;
        if (last) end = raw.size();
        for (size_t k = i; k < end; ++k) {
            char c = raw[k];
            if (c == '%') {
                if (k + 2 >= end) return PathStatus::BadEncoding;
                int hi = hex_value(raw[k + 1]), lo = hex_value(raw[k + 2]);
                if (hi < 0 || lo < 0) return PathStatus::BadEncoding;
                c = static_cast<char>(hi * 16 + lo);
                k += 2;
                if (c == '/') return PathStatus::EncodedSlash;
            }
            if (c == '\0') return PathStatus::NulByte;
            if (c == '\\') return PathStatus::Backslash;
            out.push_back(c);
        }
        std::string_view seg(out.data() + seg_start + 1, out.size() - seg_start - 1);
        if (seg.empty() || seg == ".") {
            out.resize(seg_start);
            trailing_slash = true;
        } else if (seg == "..") {
            out.resize(seg_start);
            if (out.empty()) return PathStatus::Escapes;
            out.resize(out.rfind('/'));
            trailing_slash = true;
        } else {
            trailing_slash = !last;
        }
        if (last) break;
        i = end + 1;
    }
    if (out.empty() || trailing_slash) out.push_back('/');
    return PathStatus::Ok;
}

bool has_hidden_segment(std::string_view p) {
    // A plain loop: string_view::find of two bytes costs more on the short
    // paths every request routes.
    for (size_t i = 0; i + 1 < p.size(); ++i)
        if (p[i] == '/' && p[i + 1] == '.') return true;
    return false;
}

std::string relative_path(std::string_view p) {
    while (!p.empty() && p.front() == '/') p.remove_prefix(1);
    while (!p.empty() && p.back() == '/') p.remove_suffix(1);
    if (p.empty()) return ".";
    return std::string(p);
}

namespace {

// reg-name = *( unreserved / pct-encoded / sub-delims ) (RFC 3986 §3.2.2),
// without the '%' of pct-encoded.
constexpr auto kRegName = [] {
    std::array<bool, 256> t{};
    for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<size_t>(c)] = true;
    for (int c = 'a'; c <= 'z'; ++c) t[static_cast<size_t>(c)] = true;
    for (int c = '0'; c <= '9'; ++c) t[static_cast<size_t>(c)] = true;
    for (char c : std::string_view("-._~!$&'()*+,;=")) t[static_cast<unsigned char>(c)] = true;
    return t;
}();

bool valid_port(std::string_view port) {
    for (char c : port)
        if (c < '0' || c > '9') return false;
    return port.size() <= 5;
}

}  // namespace

bool valid_host(std::string_view host) {
    if (host.empty()) return true;  // allowed when the URI has no authority
    if (host.front() == '[') {
        std::string_view port;
        size_t close = host.find(']');
        if (close == std::string_view::npos || close == 1) return false;
        for (char c : host.substr(1, close - 1)) {
            bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                      c == ':' || c == '.';
            if (!ok) return false;
        }
        std::string_view after = host.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return false;
            port = after.substr(1);
        }
        return valid_port(port);
    }
    // reg-name [ ":" port ] in one pass (this runs for every request).
    // reg-name has no ':', so the only colon starts the port.
    size_t colon = std::string_view::npos;
    for (size_t i = 0; i < host.size(); ++i) {
        auto c = static_cast<unsigned char>(host[i]);
        if (kRegName[c]) continue;
        if (c == ':' && colon == std::string_view::npos) {
            colon = i;
        } else if (c == '%' && colon == std::string_view::npos) {
            // Two hex digits, which cannot be the colon.
            if (i + 2 >= host.size() || hex_value(host[i + 1]) < 0 || hex_value(host[i + 2]) < 0) return false;
            i += 2;
        } else {
            return false;
        }
    }
    return colon == std::string_view::npos || valid_port(host.substr(colon + 1));
}

std::string self_location(std::string_view raw_path, std::string_view raw_query, bool add_slash) {
    // pchar = unreserved / pct-encoded / sub-delims / ":" / "@" (RFC 3986 §3.3)
    constexpr std::string_view kPath = "/%!$&'()*+,;=:@";
    constexpr std::string_view kQuery = "/?%!$&'()*+,;=:@";
    while (raw_path.size() > 1 && raw_path[0] == '/' && raw_path[1] == '/') raw_path.remove_prefix(1);
    std::string out;
    if (raw_path.empty() || raw_path[0] != '/') out.push_back('/');
    percent_encode(raw_path, out, kPath);
    if (add_slash && out.back() != '/') out.push_back('/');
    if (!raw_query.empty()) {
        out.push_back('?');
        percent_encode(raw_query, out, kQuery);
    }
    return out;
}

bool valid_authority_form(std::string_view target) {
    size_t colon = target.rfind(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == target.size()) return false;
    // An IPv6 literal's own colons sit inside its brackets, before this one.
    if (target.front() == '[' && target[colon - 1] != ']') return false;
    std::string_view port = target.substr(colon + 1);
    if (port.size() > 5) return false;
    for (char c : port)
        if (c < '0' || c > '9') return false;
    return valid_host(target);
}

std::string_view path_status_message(PathStatus s) {
    switch (s) {
    case PathStatus::Ok: return "ok";
    case PathStatus::BadEncoding: return "bad percent-encoding in the path";
    case PathStatus::EncodedSlash: return "encoded slash (%2F) in the path";
    case PathStatus::NulByte: return "NUL byte in the path";
    case PathStatus::Backslash: return "backslash in the path";
    case PathStatus::Escapes: return "path escapes the root";
    }
    return "bad path";
}

}  // namespace uvh
