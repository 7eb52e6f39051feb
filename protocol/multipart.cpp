#include "protocol/multipart.h"

#include "protocol/text.h"

namespace uvh {

namespace {

// tchar of RFC 9110 §5.6.2.
bool is_tchar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

bool is_ows(char c) { return c == ' ' || c == '\t'; }


size_t skip_ows(std::string_view s, size_t i) {
    while (i < s.size() && is_ows(s[i])) ++i;
    return i;
}

size_t skip_token(std::string_view s, size_t i) {
    while (i < s.size() && is_tchar(s[i])) ++i;
    return i;
}

// bchars of RFC 2046 §5.1.1: what a boundary may contain (a space, but not
// at the end).
bool valid_boundary(std::string_view b) {
    if (b.empty() || b.size() > 70 || b.back() == ' ') return false;
    for (char c : b) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!ok) {
            switch (c) {
            case '\'': case '(': case ')': case '+': case '_': case ',': case '-':
            case '.': case '/': case ':': case '=': case '?': case ' ':
                ok = true;
                break;
            default:
                break;
            }
        }
        if (!ok) return false;
    }
    return true;
}

enum class ParamWalk { Done, Stopped, Malformed };

// Walks `*( OWS ";" OWS [ token "=" ( token / quoted-string ) ] )` (RFC 9110
// §5.6.6, which allows empty parameters), calling visit(name, value) with the
// value unquoted. visit returns true to stop early.
template <typename Visit>
ParamWalk walk_params(std::string_view s, Visit&& visit) {
    size_t i = 0;
    std::string value;
    for (;;) {
        i = skip_ows(s, i);
        if (i == s.size()) return ParamWalk::Done;
        if (s[i] != ';') return ParamWalk::Malformed;
        i = skip_ows(s, i + 1);
        if (i == s.size() || s[i] == ';') continue;  // an empty parameter
        size_t name_end = skip_token(s, i);
        if (name_end == i || name_end == s.size() || s[name_end] != '=') return ParamWalk::Malformed;
        std::string_view name = s.substr(i, name_end - i);
        i = name_end + 1;
        value.clear();
        if (i < s.size() && s[i] == '"') {
            // quoted-string (RFC 9110 §5.6.4): qdtext or quoted-pair, no
            // control characters but HTAB.
            ++i;
            for (;;) {
                if (i == s.size()) return ParamWalk::Malformed;
                auto c = static_cast<unsigned char>(s[i]);
                if (c == '"') break;
                if (c == '\\') {
                    if (++i == s.size()) return ParamWalk::Malformed;
                    c = static_cast<unsigned char>(s[i]);
                }
                if ((c < 0x20 && c != '\t') || c == 0x7f) return ParamWalk::Malformed;
                value.push_back(static_cast<char>(c));
                ++i;
            }
            ++i;  // the closing quote
        } else {
            size_t end = skip_token(s, i);
            if (end == i) return ParamWalk::Malformed;
            value.assign(s.substr(i, end - i));
            i = end;
        }
        if (visit(name, std::string_view(value))) return ParamWalk::Stopped;
    }
}

// Splits "type/subtype" off the front of a media type; `rest` is what
// follows the subtype. False when either part is not a token.
bool split_essence(std::string_view ct, std::string_view& type, std::string_view& subtype,
                   std::string_view& rest) {
    size_t i = skip_ows(ct, 0);
    size_t type_end = skip_token(ct, i);
    if (type_end == i || type_end == ct.size() || ct[type_end] != '/') return false;
    size_t sub_end = skip_token(ct, type_end + 1);
    if (sub_end == type_end + 1) return false;
    type = ct.substr(i, type_end - i);
    subtype = ct.substr(type_end + 1, sub_end - type_end - 1);
    rest = ct.substr(sub_end);
    // Only parameters (or whitespace) may follow.
    size_t j = skip_ows(rest, 0);
    return j == rest.size() || rest[j] == ';';
}

struct Disposition {
    bool seen = false;
    bool has_name = false;
    bool has_filename = false;
    std::string name;
};

// Content-Disposition of a form part (RFC 7578 §4.2): "form-data" and
// parameters name, filename, filename* (RFC 6266 §4.1).
bool parse_disposition(std::string_view v, Disposition& d) {
    size_t type_end = skip_token(v, 0);
    if (type_end == 0 || !iequals_ascii(v.substr(0, type_end), "form-data")) return false;
    bool duplicate = false;
    ParamWalk w = walk_params(v.substr(type_end), [&](std::string_view name, std::string_view value) {
        if (iequals_ascii(name, "name")) {
            if (d.has_name) {
                duplicate = true;
                return true;
            }
            d.has_name = true;
            d.name.assign(value);
        } else if (iequals_ascii(name, "filename") || iequals_ascii(name, "filename*")) {
            d.has_filename = true;
        }
        return false;
    });
    return w == ParamWalk::Done && !duplicate;
}

// Reads the header section of a part starting at `pos` up to and including
// the empty line; `pos` ends at the first byte of the content.
MultipartStatus parse_part_headers(std::string_view body, size_t& pos, Disposition& d) {
    for (;;) {
        size_t eol = body.find("\r\n", pos);
        if (eol == std::string_view::npos) return MultipartStatus::Malformed;
        std::string_view line = body.substr(pos, eol - pos);
        pos = eol + 2;
        if (line.empty()) return MultipartStatus::Ok;
        // RFC 9112 §5.2: obs-fold is not accepted; §5.1: no whitespace
        // between the name and the colon.
        size_t colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0 || skip_token(line, 0) != colon)
            return MultipartStatus::Malformed;
        std::string_view value = line.substr(colon + 1);
        for (char ch : value) {
            auto c = static_cast<unsigned char>(ch);
            if ((c < 0x20 && c != '\t') || c == 0x7f) return MultipartStatus::Malformed;
        }
        size_t b = skip_ows(value, 0);
        size_t e = value.size();
        while (e > b && is_ows(value[e - 1])) --e;
        value = value.substr(b, e - b);
        if (iequals_ascii(line.substr(0, colon), "content-disposition")) {
            if (d.seen) return MultipartStatus::Malformed;
            d.seen = true;
            if (!parse_disposition(value, d)) return MultipartStatus::Malformed;
        }
    }
}

// After "--boundary" at `pos`: "--" closes the body (Ok, done = true);
// transport padding and CRLF open another part (pos moves past the CRLF).
bool after_delimiter(std::string_view body, size_t& pos, bool& done) {
    if (body.substr(pos, 2) == "--") {
        done = true;
        return true;
    }
    pos = skip_ows(body, pos);
    if (body.substr(pos, 2) != "\r\n") return false;
    pos += 2;
    done = false;
    return true;
}

}  // namespace

std::string media_type_essence(std::string_view content_type) {
    std::string_view type, subtype, rest;
    if (!split_essence(content_type, type, subtype, rest)) return {};
    std::string out;
    out.reserve(type.size() + 1 + subtype.size());
    for (char c : type) out.push_back(ascii_lower(c));
    out.push_back('/');
    for (char c : subtype) out.push_back(ascii_lower(c));
    return out;
}

bool media_type_param(std::string_view content_type, std::string_view name, std::string& value) {
    std::string_view type, subtype, rest;
    if (!split_essence(content_type, type, subtype, rest)) return false;
    bool found = false;
    ParamWalk w = walk_params(rest, [&](std::string_view n, std::string_view v) {
        if (!iequals_ascii(n, name)) return false;
        value.assign(v);
        found = true;
        return true;
    });
    return w == ParamWalk::Stopped && found;
}

MultipartStatus parse_multipart_form(std::string_view body, std::string_view boundary,
                                     FormFields& out) {
    if (!valid_boundary(boundary)) return MultipartStatus::Malformed;
    std::string delimiter = "\r\n--";
    delimiter.append(boundary);
    std::string_view dash_boundary = std::string_view(delimiter).substr(2);

    // The first delimiter opens the body, or ends a preamble (RFC 2046
    // §5.1.1: the preamble is ignored).
    size_t pos;
    if (body.substr(0, dash_boundary.size()) == dash_boundary) {
        pos = dash_boundary.size();
    } else {
        size_t d = body.find(delimiter);
        if (d == std::string_view::npos) return MultipartStatus::Malformed;
        pos = d + delimiter.size();
    }
    bool done = false;
    if (!after_delimiter(body, pos, done)) return MultipartStatus::Malformed;

    bool file_field = false;
    while (!done) {
        Disposition d;
        MultipartStatus s = parse_part_headers(body, pos, d);
        if (s != MultipartStatus::Ok) return s;
        if (!d.seen || !d.has_name) return MultipartStatus::Malformed;
        size_t end = body.find(delimiter, pos);
        if (end == std::string_view::npos) return MultipartStatus::Malformed;  // no closing delimiter
        // A file part makes the whole form FileField, but only once the rest
        // of the body has been shown to be well-formed.
        if (d.has_filename)
            file_field = true;
        else
            out.emplace_back(std::move(d.name), std::string(body.substr(pos, end - pos)));
        pos = end + delimiter.size();
        if (!after_delimiter(body, pos, done)) return MultipartStatus::Malformed;
    }
    return file_field ? MultipartStatus::FileField : MultipartStatus::Ok;
}

}  // namespace uvh
