// The request-target (RFC 9112 §3.2) and the mapping of its path onto a
// file under the served root (RFC 3986 §5.2.4, RFC 9110 §17.3).
#pragma once

#include <string>
#include <string_view>

namespace uvh {

enum class TargetForm { Origin, Absolute, Asterisk, Invalid };

struct Target {
    TargetForm form = TargetForm::Invalid;
    std::string_view authority;  // absolute-form only (RFC 9112 §3.2.2)
    std::string_view path;       // raw, still percent-encoded; "/" at least
    std::string_view query;      // after '?', without it
};

// Splits a request-target. Absolute-form accepts the http and https schemes
// (any case); its authority replaces Host for routing (RFC 9112 §3.2.2).
Target parse_target(std::string_view raw);

enum class PathStatus {
    Ok,
    BadEncoding,   // '%' not followed by two hex digits
    EncodedSlash,  // %2F: would change the segment structure
    NulByte,       // %00 or a raw NUL
    Backslash,     // '\' or %5C: a traversal trick on other systems
    Escapes,       // ".." above the root
};

// Decodes and normalises a raw path into `out`: always starts with '/',
// no empty, "." or ".." segments, and keeps a trailing '/' when the request
// had one (so directories can be told apart). Never yields a path that leaves
// the root.
PathStatus normalize_path(std::string_view raw, std::string& out);

// True when any segment of a normalised path starts with '.' (dotfiles are
// neither listed nor served).
bool has_hidden_segment(std::string_view normalized);

// The normalised path as a path relative to the root, for openat():
// "/a/b/" -> "a/b", "/" -> ".".
std::string relative_path(std::string_view normalized);

// Validates a Host field value (RFC 9110 §7.2: uri-host [":" port]).
bool valid_host(std::string_view host);

// The authority-form of CONNECT (RFC 9112 §3.2.3): uri-host ":" port, the
// port required and numeric.
bool valid_authority_form(std::string_view target);

std::string_view path_status_message(PathStatus s);

// A Location (RFC 9110 §10.2.2) naming the client's own target: `raw_path`
// with one leading '/', then "/" when add_slash, then "?" and `raw_query`
// when there is one. Bytes outside RFC 3986 pchar, "/", "?" and "%" are
// percent-encoded, so the client's encoding is kept but a target such as
// "//evil.example/" cannot turn into a network-path reference (an open
// redirect) and no raw control byte reaches a header.
std::string self_location(std::string_view raw_path, std::string_view raw_query, bool add_slash);

}  // namespace uvh
