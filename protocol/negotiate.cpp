#include "protocol/negotiate.h"

#include <string>

#include "protocol/text.h"

namespace uvh {

namespace {

// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )  (RFC 9110
// §12.4.2); -1 when malformed.
double parse_qvalue(std::string_view v) {
    if (v.empty() || v.size() > 5 || (v[0] != '0' && v[0] != '1')) return -1;
    double q = v[0] - '0';
    if (v.size() == 1) return q;
    if (v[1] != '.') return -1;
    double scale = 0.1;
    for (char c : v.substr(2)) {
        if (c < '0' || c > '9') return -1;
        if (v[0] == '1' && c != '0') return -1;
        q += (c - '0') * scale;
        scale /= 10;
    }
    return q;
}

// One member of a comma-separated list: the value and its q parameter.
struct Member {
    std::string_view value;
    double q = 1.0;
};

// Parses "gzip;q=0.5" / "text/html; level=1; q=0.3". Malformed q values
// count as 0 so a broken field never selects something by accident.
Member parse_member(std::string_view m) {
    Member out;
    size_t semi = m.find(';');
    out.value = trim_ows(m.substr(0, semi));
    while (semi != std::string_view::npos) {
        m = m.substr(semi + 1);
        semi = m.find(';');
        std::string_view param = trim_ows(m.substr(0, semi));
        if (param.size() >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') {
            out.q = parse_qvalue(param.substr(2));
            if (out.q < 0) return {out.value, 0.0};
        }
    }
    return out;
}

template <typename F>
void for_each_member(std::string_view list, F&& f) {
    while (!list.empty()) {
        size_t comma = list.find(',');
        std::string_view piece = trim_ows(list.substr(0, comma));
        if (!piece.empty()) f(parse_member(piece));
        if (comma == std::string_view::npos) break;
        list = list.substr(comma + 1);
    }
}

}  // namespace

double coding_quality(std::string_view accept_encoding, std::string_view coding) {
    if (!accept_encoding.data()) return 0.0;
    double specific = -1, wildcard = -1;
    for_each_member(accept_encoding, [&](const Member& m) {
        if (iequals_ascii(m.value, coding)) {
            specific = m.q;
        } else if (m.value == "*") {
            wildcard = m.q;
        }
    });
    if (specific >= 0) return specific;
    if (wildcard >= 0) return wildcard;
    return 0.0;
}

std::string_view coding_name(Coding c) {
    switch (c) {
    case Coding::Gzip: return "gzip";
    case Coding::Br: return "br";
    case Coding::Zstd: return "zstd";
    case Coding::Identity: break;
    }
    return {};
}

std::string_view coding_suffix(Coding c) {
    switch (c) {
    case Coding::Gzip: return ".gz";
    case Coding::Br: return ".br";
    case Coding::Zstd: return ".zst";
    case Coding::Identity: break;
    }
    return {};
}

AcceptedCodings parse_accept_encoding_field(std::string_view accept_encoding) {
    // Below the smallest qvalue a client can write (0.001).
    constexpr double kImplicitIdentity = 0.0001;
    AcceptedCodings out;
    if (!accept_encoding.data()) return out;
    double specific[kCodings] = {-1, -1, -1, -1};
    double wildcard = -1;
    for_each_member(accept_encoding, [&](const Member& m) {
        if (m.value == "*") {
            wildcard = m.q;
            return;
        }
        for (int i = 0; i < kCodings; ++i) {
            std::string_view name = i == 0 ? std::string_view("identity") : coding_name(static_cast<Coding>(i));
            if (iequals_ascii(m.value, name)) specific[i] = m.q;
        }
        // "x-gzip" is gzip (RFC 9110 §8.4.1.3).
        if (iequals_ascii(m.value, "x-gzip") && specific[1] < 0) specific[1] = m.q;
    });
    for (int i = 1; i < kCodings; ++i) out.q[i] = specific[i] >= 0 ? specific[i] : wildcard >= 0 ? wildcard : 0.0;
    // Identity: acceptable unless excluded by name or by "*;q=0" (§12.5.3).
    // Not named, identity is acceptable but preferred least: a client that
    // lists "gzip;q=0.5" wants gzip rather than nothing (nginx and Apache
    // read it so too); named, it competes by its quality.
    out.q[0] = specific[0] >= 0 ? specific[0] : wildcard == 0 ? 0.0 : kImplicitIdentity;
    return out;
}

bool choose_coding(const AcceptedCodings& accepted, uint8_t available, Coding& chosen) {
    static constexpr Coding kOrder[] = {Coding::Zstd, Coding::Br, Coding::Gzip, Coding::Identity};
    double best_q = 0;
    bool found = false;
    for (Coding c : kOrder) {
        bool avail = c == Coding::Identity || (available & coding_bit(c));
        double q = accepted.q[static_cast<int>(c)];
        if (!avail || q <= 0) continue;
        if (!found || q > best_q) {
            chosen = c;
            best_q = q;
            found = true;
        }
    }
    return found;
}

int choose_media_type(std::string_view accept, std::initializer_list<std::string_view> candidates) {
    if (!accept.data() || trim_ows(accept).empty()) return candidates.size() ? 0 : -1;
    int best = -1;
    double best_q = 0;
    int best_spec = -1;
    int index = 0;
    for (std::string_view cand : candidates) {
        size_t slash = cand.find('/');
        std::string_view type = cand.substr(0, slash), sub = cand.substr(slash + 1);
        double q = -1;
        int spec = -1;
        for_each_member(accept, [&](const Member& m) {
            size_t s = m.value.find('/');
            if (s == std::string_view::npos) return;
            std::string_view mt = m.value.substr(0, s), ms = m.value.substr(s + 1);
            int this_spec = -1;
            if (iequals_ascii(mt, type) && iequals_ascii(ms, sub)) {
                this_spec = 2;
            } else if (iequals_ascii(mt, type) && ms == "*") {
                this_spec = 1;
            } else if (mt == "*" && ms == "*") {
                this_spec = 0;
            }
            if (this_spec > spec) {
                spec = this_spec;
                q = m.q;
            }
        });
        if (spec >= 0 && q > 0 && (q > best_q || (q == best_q && spec > best_spec))) {
            best = index;
            best_q = q;
            best_spec = spec;
        }
        ++index;
    }
    return best;
}

}  // namespace uvh
