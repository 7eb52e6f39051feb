// Proactive negotiation (RFC 9110 §12): quality values in Accept and
// Accept-Encoding.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>

namespace uvh {

// The quality (0..1) the Accept-Encoding value gives `coding` ("gzip",
// "br"). A specific entry wins over "*". An absent field (data() == nullptr)
// gives 0: precompressed files are only sent to clients that ask for them,
// which is what curl users and caches expect.
double coding_quality(std::string_view accept_encoding, std::string_view coding);

// Chooses among media types in the server's order of preference. The
// client's quality decides first, then how specific the matching range was
// ("text/html" beats "text/*" beats "*/*"), then the server's order. An
// absent or empty Accept picks the first candidate. Returns the index into
// `candidates`, or -1 if the client accepts none of them.
int choose_media_type(std::string_view accept, std::initializer_list<std::string_view> candidates);

// Content codings the server can send. The order is the server's
// preference when the client gives two codings the same quality: zstd
// decodes fastest and is about as small as br; br is smaller than gzip;
// gzip is understood everywhere (docs/architecture.md, "The coding cache").
enum class Coding : uint8_t { Identity = 0, Gzip = 1, Br = 2, Zstd = 3 };
inline constexpr int kCodings = 4;
inline constexpr uint8_t coding_bit(Coding c) { return static_cast<uint8_t>(1u << static_cast<int>(c)); }
// "gzip", "br", "zstd"; "" for identity.
std::string_view coding_name(Coding c);
// The file-name suffix of a precompressed sibling: ".gz", ".br", ".zst".
std::string_view coding_suffix(Coding c);

// An Accept-Encoding field read once: the quality of each coding the server
// knows (RFC 9110 §12.5.3). A specific entry wins over "*"; "identity" is
// acceptable unless "identity;q=0", or "*;q=0" without an identity entry,
// refuses it; when the field does not name it, it loses to any acceptable
// coding. An absent field gives the codings quality 0 (only identity):
// a client that did not ask is sent nothing it may not decode, as curl
// users and caches expect; an empty field means identity only.
struct AcceptedCodings {
    double q[kCodings] = {1.0, 0.0, 0.0, 0.0};
    bool accepts(Coding c) const { return q[static_cast<int>(c)] > 0; }
    // Codings (not identity) the client accepts, as coding_bit()s.
    uint8_t accepted_mask() const {
        uint8_t m = 0;
        for (int i = 1; i < kCodings; ++i)
            if (q[i] > 0) m |= coding_bit(static_cast<Coding>(i));
        return m;
    }
};
// Reads a present field (data() != nullptr).
AcceptedCodings parse_accept_encoding_field(std::string_view accept_encoding);
// Inline: most requests without the field come here on every GET.
inline AcceptedCodings parse_accept_encoding(std::string_view accept_encoding) {
    if (!accept_encoding.data()) return AcceptedCodings{};
    return parse_accept_encoding_field(accept_encoding);
}

// Picks among the `available` codings (coding_bit()s; identity is always
// available as a representation, but may be refused): the highest quality,
// ties going to the server's order zstd, br, gzip, identity. Returns false
// when the client accepts none of them (identity refused and no acceptable
// coding available): the caller answers 406 (RFC 9110 §12.5.3, §15.5.7).
bool choose_coding(const AcceptedCodings& accepted, uint8_t available, Coding& chosen);

}  // namespace uvh
