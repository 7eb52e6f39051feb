#include "protocol/auth.h"

#include <cstdint>

namespace uvh {

namespace {

int b64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

bool scheme_is(std::string_view value, std::string_view scheme, std::string_view& rest) {
    if (value.size() <= scheme.size() || value[scheme.size()] != ' ') return false;
    for (size_t i = 0; i < scheme.size(); ++i) {
        char c = value[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (c != scheme[i]) return false;
    }
    rest = value.substr(scheme.size() + 1);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
    return !rest.empty();
}

}  // namespace

bool base64_decode(std::string_view in, std::string& out) {
    out.clear();
    if (in.size() % 4 != 0) return false;
    for (size_t i = 0; i < in.size(); i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; ++k) {
            char c = in[i + static_cast<size_t>(k)];
            if (c == '=' && i + 4 == in.size() && k >= 2) {
                v[k] = 0;
                ++pad;
            } else {
                if (pad) return false;  // data after padding
                v[k] = b64_value(c);
                if (v[k] < 0) return false;
            }
        }
        uint32_t n = (uint32_t(v[0]) << 18) | (uint32_t(v[1]) << 12) | (uint32_t(v[2]) << 6) | uint32_t(v[3]);
        out.push_back(static_cast<char>((n >> 16) & 0xff));
        if (pad < 2) out.push_back(static_cast<char>((n >> 8) & 0xff));
        if (pad < 1) out.push_back(static_cast<char>(n & 0xff));
    }
    return true;
}

bool authorization_secret(std::string_view authorization, std::string& secret) {
    std::string_view rest;
    if (scheme_is(authorization, "bearer", rest)) {
        secret.assign(rest);
        return true;
    }
    if (scheme_is(authorization, "basic", rest)) {
        std::string decoded;
        if (!base64_decode(rest, decoded)) return false;
        size_t colon = decoded.find(':');
        if (colon == std::string::npos) return false;
        secret = decoded.substr(colon + 1);
        return true;
    }
    return false;
}

bool constant_time_equals(std::string_view given, std::string_view secret) {
    // Every byte of the secret is compared whatever the differences, so the
    // time taken depends on the secret's length only, not on how much of a
    // guess was right.
    unsigned char diff = given.size() == secret.size() ? 0 : 1;
    for (size_t i = 0; i < secret.size(); ++i) {
        unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
        diff |= static_cast<unsigned char>(g ^ static_cast<unsigned char>(secret[i]));
    }
    return diff == 0;
}

}  // namespace uvh
