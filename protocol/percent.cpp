#include "protocol/percent.h"

#include "protocol/text.h"

namespace uvh {

namespace {

bool is_unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

constexpr char kHex[] = "0123456789ABCDEF";

}  // namespace

bool percent_decode(std::string_view in, std::string& out, bool plus_is_space) {
    out.reserve(out.size() + in.size());
    for (size_t i = 0; i < in.size(); ++i) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= in.size()) return false;
            int hi = hex_value(in[i + 1]);
            int lo = hex_value(in[i + 2]);
            if (hi < 0 || lo < 0) return false;
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out.push_back(' ');
        } else {
            out.push_back(c);
        }
    }
    return true;
}

void percent_encode(std::string_view in, std::string& out, std::string_view keep) {
    out.reserve(out.size() + in.size());
    for (char ch : in) {
        auto c = static_cast<unsigned char>(ch);
        if (is_unreserved(c) || keep.find(ch) != std::string_view::npos) {
            out.push_back(ch);
        } else {
            out.push_back('%');
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 15]);
        }
    }
}

void form_encode(std::string_view in, std::string& out) {
    out.reserve(out.size() + in.size());
    for (char ch : in) {
        auto c = static_cast<unsigned char>(ch);
        if (is_unreserved(c)) {
            out.push_back(ch);
        } else if (c == ' ') {
            out.push_back('+');
        } else {
            out.push_back('%');
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 15]);
        }
    }
}

bool parse_form(std::string_view body, FormFields& out) {
    while (!body.empty()) {
        size_t amp = body.find('&');
        std::string_view piece = body.substr(0, amp);
        body = amp == std::string_view::npos ? std::string_view{} : body.substr(amp + 1);
        if (piece.empty()) continue;
        size_t eq = piece.find('=');
        std::string name, value;
        if (!percent_decode(piece.substr(0, eq), name, true)) return false;
        if (eq != std::string_view::npos && !percent_decode(piece.substr(eq + 1), value, true))
            return false;
        out.emplace_back(std::move(name), std::move(value));
    }
    return true;
}

std::string serialize_form(const FormFields& fields) {
    std::string out;
    for (const auto& [name, value] : fields) {
        if (!out.empty()) out.push_back('&');
        form_encode(name, out);
        out.push_back('=');
        form_encode(value, out);
    }
    return out;
}

bool query_param(std::string_view query, std::string_view name, std::string& value) {
    while (!query.empty()) {
        size_t amp = query.find('&');
        std::string_view piece = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        size_t eq = piece.find('=');
        std::string decoded_name;
        if (!percent_decode(piece.substr(0, eq), decoded_name, true)) continue;
        if (decoded_name != name) continue;
        value.clear();
        if (eq != std::string_view::npos && !percent_decode(piece.substr(eq + 1), value, true))
            return false;
        return true;
    }
    return false;
}

}  // namespace uvh
