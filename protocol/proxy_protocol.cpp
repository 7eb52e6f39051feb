#include "protocol/proxy_protocol.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace uvh {

namespace {

constexpr char kV2Signature[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};
constexpr size_t kV1Max = 107;  // the longest valid v1 line, CRLF included

ProxyParse parse_v1(std::string_view data, PeerAddress& source, bool& local, size_t& consumed) {
    size_t crlf = data.find("\r\n");
    if (crlf == std::string_view::npos) return data.size() >= kV1Max ? ProxyParse::Invalid : ProxyParse::NeedMore;
    if (crlf + 2 > kV1Max) return ProxyParse::Invalid;
    std::string_view line = data.substr(0, crlf);
    consumed = crlf + 2;
    // "PROXY" SP proto SP src SP dst SP sport SP dport
    std::string_view parts[6];
    size_t n = 0;
    while (!line.empty() && n < 6) {
        size_t sp = line.find(' ');
        parts[n++] = line.substr(0, sp);
        line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    }
    if (n < 2 || parts[0] != "PROXY") return ProxyParse::Invalid;
    if (parts[1] == "UNKNOWN") {
        local = true;
        return ProxyParse::Ok;
    }
    if (n != 6 || !line.empty() || (parts[1] != "TCP4" && parts[1] != "TCP6")) return ProxyParse::Invalid;
    bool v6 = parts[1] == "TCP6";
    if ((parts[2].find(':') != std::string_view::npos) != v6) return ProxyParse::Invalid;
    PeerAddress dst;
    if (!PeerAddress::parse(parts[2], source) || !PeerAddress::parse(parts[3], dst)) return ProxyParse::Invalid;
    unsigned port = 0;
    if (parts[4].empty() || parts[4].size() > 5) return ProxyParse::Invalid;
    for (char c : parts[4]) {
        if (c < '0' || c > '9') return ProxyParse::Invalid;
        port = port * 10 + static_cast<unsigned>(c - '0');
    }
    if (port > 65535) return ProxyParse::Invalid;
    source.port = static_cast<uint16_t>(port);
    local = false;
    return ProxyParse::Ok;
}

ProxyParse parse_v2(std::string_view data, PeerAddress& source, bool& local, size_t& consumed) {
    if (data.size() < 16) return ProxyParse::NeedMore;
    auto u8 = [&](size_t i) { return static_cast<unsigned char>(data[i]); };
    unsigned ver_cmd = u8(12), fam = u8(13);
    size_t len = (static_cast<size_t>(u8(14)) << 8) | u8(15);
    if ((ver_cmd >> 4) != 2) return ProxyParse::Invalid;
    if (data.size() < 16 + len) return ProxyParse::NeedMore;
    consumed = 16 + len;
    unsigned cmd = ver_cmd & 0x0f;
    if (cmd == 0) {  // LOCAL: the proxy talking for itself
        local = true;
        return ProxyParse::Ok;
    }
    if (cmd != 1) return ProxyParse::Invalid;
    const char* a = data.data() + 16;
    sockaddr_storage ss{};
    if (fam == 0x11 && len >= 12) {  // TCP over IPv4
        auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
        s4->sin_family = AF_INET;
        std::memcpy(&s4->sin_addr, a, 4);
        std::memcpy(&s4->sin_port, a + 8, 2);
    } else if (fam == 0x21 && len >= 36) {  // TCP over IPv6
        auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
        s6->sin6_family = AF_INET6;
        std::memcpy(&s6->sin6_addr, a, 16);
        std::memcpy(&s6->sin6_port, a + 32, 2);
    } else if ((fam & 0xf0) == 0x00) {  // UNSPEC
        local = true;
        return ProxyParse::Ok;
    } else {
        return ProxyParse::Invalid;
    }
    source = PeerAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
    local = false;
    return ProxyParse::Ok;
}

}  // namespace

ProxyParse parse_proxy_header(std::string_view data, PeerAddress& source, bool& local, size_t& consumed) {
    consumed = 0;
    local = false;
    size_t n = std::min(data.size(), sizeof kV2Signature);
    if (std::memcmp(data.data(), kV2Signature, n) == 0) {
        if (data.size() < sizeof kV2Signature) return ProxyParse::NeedMore;
        return parse_v2(data, source, local, consumed);
    }
    static constexpr std::string_view kV1 = "PROXY ";
    size_t m = std::min(data.size(), kV1.size());
    if (data.substr(0, m) != kV1.substr(0, m)) return ProxyParse::Invalid;
    if (data.size() < kV1.size()) return ProxyParse::NeedMore;
    return parse_v1(data, source, local, consumed);
}

}  // namespace uvh
