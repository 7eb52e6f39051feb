#include "protocol/address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "protocol/text.h"

namespace uvh {

namespace {

constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool parse_ip(std::string_view text, uint8_t out[16]) {
    char buf[INET6_ADDRSTRLEN + 1];
    if (text.empty() || text.size() >= sizeof buf) return false;
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = 0;
    in_addr v4{};
    if (inet_pton(AF_INET, buf, &v4) == 1) {
        std::memcpy(out, kMapped, 12);
        std::memcpy(out + 12, &v4, 4);
        return true;
    }
    in6_addr v6{};
    if (inet_pton(AF_INET6, buf, &v6) == 1) {
        std::memcpy(out, &v6, 16);
        return true;
    }
    return false;
}

}  // namespace

bool PeerAddress::is_v4() const { return std::memcmp(bytes, kMapped, 12) == 0; }

bool PeerAddress::is_loopback() const {
    if (!valid) return false;
    if (is_v4()) return bytes[12] == 127;
    static const uint8_t kLoop6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return std::memcmp(bytes, kLoop6, 16) == 0;
}

std::string PeerAddress::to_string() const {
    if (!valid) return "-";
    char buf[INET6_ADDRSTRLEN];
    if (is_v4()) return inet_ntop(AF_INET, bytes + 12, buf, sizeof buf) ? buf : "-";
    return inet_ntop(AF_INET6, bytes, buf, sizeof buf) ? buf : "-";
}

PeerAddress PeerAddress::from_sockaddr(const sockaddr* sa) {
    PeerAddress a;
    if (sa->sa_family == AF_INET) {
        const auto* s4 = reinterpret_cast<const sockaddr_in*>(sa);
        std::memcpy(a.bytes, kMapped, 12);
        std::memcpy(a.bytes + 12, &s4->sin_addr, 4);
        a.port = ntohs(s4->sin_port);
        a.valid = true;
    } else if (sa->sa_family == AF_INET6) {
        const auto* s6 = reinterpret_cast<const sockaddr_in6*>(sa);
        std::memcpy(a.bytes, &s6->sin6_addr, 16);
        a.port = ntohs(s6->sin6_port);
        a.valid = true;
    }
    return a;
}

bool PeerAddress::parse(std::string_view text, PeerAddress& out) {
    text = trim_ows(text);
    out = PeerAddress{};
    std::string_view host = text, port;
    if (!text.empty() && text.front() == '[') {
        size_t close = text.find(']');
        if (close == std::string_view::npos) return false;
        host = text.substr(1, close - 1);
        std::string_view rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return false;
            port = rest.substr(1);
        }
    } else if (std::count(text.begin(), text.end(), ':') == 1) {
        size_t colon = text.find(':');
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    if (!parse_ip(host, out.bytes)) return false;
    unsigned p = 0;
    for (char c : port) {
        if (c < '0' || c > '9' || p > 65535) return false;
        p = p * 10 + static_cast<unsigned>(c - '0');
    }
    if (p > 65535) return false;
    out.port = static_cast<uint16_t>(p);
    out.valid = true;
    return true;
}

bool Cidr::contains(const PeerAddress& a) const {
    if (!a.valid) return false;
    int bits = prefix;
    for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
        uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
        if ((a.bytes[i] & mask) != (bytes[i] & mask)) return false;
    }
    return true;
}

bool Cidr::parse(std::string_view text, Cidr& out) {
    text = trim_ows(text);
    out = Cidr{};
    size_t slash = text.find('/');
    std::string_view host = text.substr(0, slash);
    if (!parse_ip(host, out.bytes)) return false;
    bool v4 = std::memcmp(out.bytes, kMapped, 12) == 0 && host.find(':') == std::string_view::npos;
    int max = v4 ? 32 : 128;
    int len = max;
    if (slash != std::string_view::npos) {
        std::string_view p = text.substr(slash + 1);
        if (p.empty() || p.size() > 3) return false;
        len = 0;
        for (char c : p) {
            if (c < '0' || c > '9') return false;
            len = len * 10 + (c - '0');
        }
        if (len > max) return false;
    }
    out.prefix = v4 ? 96 + len : len;
    return true;
}

bool any_contains(const std::vector<Cidr>& list, const PeerAddress& a) {
    for (const Cidr& c : list)
        if (c.contains(a)) return true;
    return false;
}

namespace {

// The "for=" values of a Forwarded field, in order (RFC 7239 §4).
std::vector<std::string_view> forwarded_for(std::string_view field) {
    std::vector<std::string_view> out;
    size_t i = 0;
    while (i < field.size()) {
        size_t end = field.find(',', i);
        std::string_view element = field.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i);
        i = end == std::string_view::npos ? field.size() : end + 1;
        size_t j = 0;
        while (j < element.size()) {
            size_t semi = element.find(';', j);
            std::string_view pair = trim_ows(element.substr(j, semi == std::string_view::npos ? std::string_view::npos : semi - j));
            j = semi == std::string_view::npos ? element.size() : semi + 1;
            if (pair.size() > 4 && (pair[0] == 'f' || pair[0] == 'F') && (pair[1] == 'o' || pair[1] == 'O') &&
                (pair[2] == 'r' || pair[2] == 'R') && pair[3] == '=') {
                std::string_view v = pair.substr(4);
                if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
                out.push_back(v);
            }
        }
    }
    return out;
}

std::vector<std::string_view> split_list(std::string_view field) {
    std::vector<std::string_view> out;
    while (!field.empty()) {
        size_t comma = field.find(',');
        out.push_back(trim_ows(field.substr(0, comma)));
        if (comma == std::string_view::npos) break;
        field = field.substr(comma + 1);
    }
    return out;
}

}  // namespace

PeerAddress client_address(const PeerAddress& peer, const std::vector<Cidr>& trusted,
                           std::string_view forwarded, std::string_view x_forwarded_for) {
    if (trusted.empty() || !any_contains(trusted, peer)) return peer;
    std::vector<std::string_view> hops;
    if (forwarded.data() && !forwarded.empty()) {
        hops = forwarded_for(forwarded);
    } else if (x_forwarded_for.data() && !x_forwarded_for.empty()) {
        hops = split_list(x_forwarded_for);
    }
    PeerAddress result = peer;
    // Walk from the nearest hop outwards while the hops are our proxies.
    for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
        PeerAddress hop;
        if (!PeerAddress::parse(*it, hop)) break;  // "unknown", obfuscated: stop here
        result = hop;
        if (!any_contains(trusted, hop)) break;
    }
    return result;
}

}  // namespace uvh
