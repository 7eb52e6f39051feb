#include "handlers/records/record_format.h"

#include <algorithm>

namespace uvh {

namespace {

constexpr size_t kMaxIdLength = 64;

bool is_id_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

// The bytes form_encode produces, plus the separators serialize_form adds.
bool is_form_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '%' || c == '&' || c == '=';
}

// "007" -> "7", "000" -> "0": all-digit ids compare as numbers of any length.
std::string_view canonical_number(std::string_view digits) {
    size_t nz = digits.find_first_not_of('0');
    return nz == std::string_view::npos ? digits.substr(digits.size() - 1) : digits.substr(nz);
}

}  // namespace

bool all_digits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

uint64_t number_value(std::string_view digits) {
    uint64_t v = 0;
    for (char c : canonical_number(digits)) v = v * 10 + static_cast<uint64_t>(c - '0');
    return v;
}

bool numeric_id_in_range(std::string_view id) {
    return !all_digits(id) || canonical_number(id).size() <= kMaxNumericDigits;
}

bool valid_record_id(std::string_view id) {
    if (id.empty() || id.size() > kMaxIdLength || id == "." || id == "..") return false;
    return std::all_of(id.begin(), id.end(), is_id_char);
}

std::string format_record_line(const Record& r) {
    std::string line;
    line.reserve(r.id.size() + 2 + 16 * r.fields.size());
    line.append(r.id);
    line.push_back(' ');
    bool first = true;
    for (const auto& [name, value] : r.fields) {
        if (!first) line.push_back('&');
        first = false;
        form_encode(name, line);
        line.push_back('=');
        form_encode(value, line);
    }
    line.push_back('\n');
    return line;
}

bool parse_record_line(std::string_view line, Record& out) {
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return false;
    std::string_view id = line.substr(0, sp);
    std::string_view form = line.substr(sp + 1);
    if (!valid_record_id(id)) return false;
    if (!std::all_of(form.begin(), form.end(), is_form_char)) return false;
    // serialize_form writes "name=value" pieces joined by '&': no empty
    // pieces, none without '='.
    if (!form.empty()) {
        size_t start = 0;
        for (;;) {
            size_t amp = form.find('&', start);
            std::string_view piece = form.substr(start, amp == std::string_view::npos ? amp : amp - start);
            if (piece.find('=') == std::string_view::npos) return false;
            if (amp == std::string_view::npos) break;
            start = amp + 1;
        }
    }
    out.id.assign(id);
    out.fields.clear();
    return parse_form(form, out.fields);
}

}  // namespace uvh
