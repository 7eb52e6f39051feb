#include "protocol/if_header.h"

#include "protocol/text.h"

namespace uvh {

namespace {

// The header's LWS: SP and HTAB (obs-fold never reaches us: llhttp refuses it).
void skip_ws(std::string_view& s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
}

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A visible ASCII byte other than the delimiters that would end the URI.
bool uri_char(char c) { return c > 0x20 && c < 0x7f && c != '<' && c != '>' && c != '"'; }

// RFC 3986 §3.1 and §4.3: scheme ":" followed by something. Coded-URLs
// such as "urn:uuid:…", "opaquelocktoken:…" and "DAV:no-lock" all pass.
bool absolute_uri(std::string_view u) {
    if (u.empty() || !is_alpha(u.front())) return false;
    size_t i = 1;
    while (i < u.size() && (is_alpha(u[i]) || is_digit(u[i]) || u[i] == '+' || u[i] == '-' || u[i] == '.')) ++i;
    if (i >= u.size() || u[i] != ':' || i + 1 >= u.size()) return false;
    for (char c : u)
        if (!uri_char(c)) return false;
    return true;
}

// RFC 4918 §10.4 Simple-ref: an absolute URI or an absolute path.
bool simple_ref(std::string_view u) {
    if (u.empty()) return false;
    for (char c : u)
        if (!uri_char(c)) return false;
    return u.front() == '/' || absolute_uri(u);
}

// "<" ... ">" with no whitespace inside; `inner` gets the content.
bool angle(std::string_view& s, std::string_view& inner) {
    if (s.empty() || s.front() != '<') return false;
    size_t close = s.find('>');
    if (close == std::string_view::npos) return false;
    inner = s.substr(1, close - 1);
    s.remove_prefix(close + 1);
    return true;
}

// RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, where etagc
// is %x21 / %x23-7E / obs-text. Spaces are let through too: RFC 4918's own
// examples use them ("I am an ETag"), and such a tag simply never matches.
bool entity_tag(std::string_view t) {
    if (t.starts_with("W/")) t.remove_prefix(2);
    if (t.size() < 2 || t.front() != '"' || t.back() != '"') return false;
    for (char ch : t.substr(1, t.size() - 2)) {
        auto c = static_cast<unsigned char>(ch);
        if (!(c == 0x20 || c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80)) return false;
    }
    return true;
}

bool parse_condition(std::string_view& s, IfCondition& c) {
    c = {};
    if (s.size() >= 3 && iequals_ascii(s.substr(0, 3), "not")) {
        c.negated = true;
        s.remove_prefix(3);
        // "Not" is a token: something must separate it from a following
        // '<' or '[' only optionally, but "Nothing" is not "Not" + "hing".
        if (!s.empty() && s.front() != ' ' && s.front() != '\t' && s.front() != '<' && s.front() != '[')
            return false;
        skip_ws(s);
    }
    if (s.empty()) return false;
    if (s.front() == '<') {
        std::string_view inner;
        if (!angle(s, inner) || !absolute_uri(inner)) return false;
        c.kind = IfCondition::Kind::StateToken;
        c.value = inner;
        return true;
    }
    if (s.front() == '[') {
        size_t close = s.find(']');
        if (close == std::string_view::npos) return false;
        std::string_view inner = s.substr(1, close - 1);
        if (!entity_tag(inner)) return false;
        c.kind = IfCondition::Kind::ETag;
        c.value = inner;
        s.remove_prefix(close + 1);
        return true;
    }
    return false;
}

bool parse_list(std::string_view& s, IfList& list) {
    if (s.empty() || s.front() != '(') return false;
    s.remove_prefix(1);
    skip_ws(s);
    while (!s.empty() && s.front() != ')') {
        IfCondition c;
        if (!parse_condition(s, c)) return false;
        list.conditions.push_back(c);
        skip_ws(s);
    }
    if (s.empty() || list.conditions.empty()) return false;  // unterminated, or "()"
    s.remove_prefix(1);
    return true;
}

}  // namespace

bool parse_if_header(std::string_view value, IfHeader& out) {
    out = {};
    std::string_view s = value;
    skip_ws(s);
    if (s.empty()) return false;
    out.tagged = s.front() == '<';
    std::string_view resource;
    bool have_list_for_tag = true;
    while (true) {
        skip_ws(s);
        if (s.empty()) break;
        if (s.front() == '<') {
            if (!out.tagged || !have_list_for_tag) return false;  // mixed, or a tag without a list
            if (!angle(s, resource) || !simple_ref(resource)) return false;
            have_list_for_tag = false;
            continue;
        }
        if (s.front() != '(') return false;
        IfList list;
        list.resource = out.tagged ? resource : std::string_view{};
        if (!parse_list(s, list)) return false;
        out.lists.push_back(std::move(list));
        have_list_for_tag = true;
    }
    return !out.lists.empty() && have_list_for_tag;
}

void submitted_tokens(const IfHeader& h, std::vector<std::string_view>& out) {
    out.clear();
    for (const IfList& l : h.lists)
        for (const IfCondition& c : l.conditions)
            if (c.kind == IfCondition::Kind::StateToken && !c.negated) out.push_back(c.value);
}

}  // namespace uvh
