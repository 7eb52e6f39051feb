// Client addresses: a compact IPv4/IPv6 value, CIDR ranges, and finding
// the real client behind trusted proxies (X-Forwarded-For, RFC 7239
// Forwarded).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace uvh {

// An address, IPv4 kept as IPv4-mapped IPv6 so one comparison fits both.
struct PeerAddress {
    uint8_t bytes[16] = {};
    uint16_t port = 0;
    bool valid = false;

    bool is_v4() const;
    bool is_loopback() const;
    std::string to_string() const;  // "127.0.0.1", "::1" (no port)

    static PeerAddress from_sockaddr(const sockaddr* sa);
    // Parses "1.2.3.4", "::1", "[::1]", "[::1]:80", "1.2.3.4:80".
    static bool parse(std::string_view text, PeerAddress& out);
};

struct Cidr {
    uint8_t bytes[16] = {};
    int prefix = 0;  // in bits, over the 128-bit (mapped) form
    bool contains(const PeerAddress& a) const;
    // "10.0.0.0/8", "::1/128", "192.168.1.7" (a single host).
    static bool parse(std::string_view text, Cidr& out);
};

bool any_contains(const std::vector<Cidr>& list, const PeerAddress& a);

// The client address to log and to check, given the TCP peer and the
// proxy headers. Only when the peer is trusted are the headers believed;
// then the rightmost address that is not itself a trusted proxy is the
// client (the leftmost ones are whatever the client claimed). Forwarded
// (RFC 7239) is preferred over X-Forwarded-For when both are present.
PeerAddress client_address(const PeerAddress& peer, const std::vector<Cidr>& trusted,
                           std::string_view forwarded, std::string_view x_forwarded_for);

}  // namespace uvh
