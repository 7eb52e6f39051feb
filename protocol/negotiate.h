// Proactive negotiation (RFC 9110 §12): quality values in Accept and
// Accept-Encoding.
#pragma once

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

}  // namespace uvh
