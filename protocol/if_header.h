// The WebDAV If request header (RFC 4918 §10.4): lists of conditions on
// lock state tokens and entity tags, optionally tagged with the resource
// they apply to. Parsing only; the handlers evaluate a parsed header
// against the lock table and the files (handlers/dav/dav_locks.h).
//
//   If = ( 1*No-tag-list | 1*Tagged-list )
//   No-tag-list = List
//   Tagged-list = Resource-Tag 1*List
//   List = "(" 1*Condition ")"
//   Condition = ["Not"] ( State-token | "[" entity-tag "]" )
//   State-token = Coded-URL = "<" absolute-URI ">"
//   Resource-Tag = "<" Simple-ref ">"
//
// The header is true when any one list is true (lists are OR'ed); a list
// is true when all its conditions are (conditions are AND'ed), §10.4.2.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace uvh {

struct IfCondition {
    enum class Kind : uint8_t { StateToken, ETag };
    Kind kind = Kind::StateToken;
    bool negated = false;  // "Not"
    // StateToken: the URI between '<' and '>' ("urn:uuid:...", "DAV:no-lock").
    // ETag: the entity-tag between '[' and ']', quotes and any W/ included.
    std::string_view value;
};

struct IfList {
    // The Resource-Tag between '<' and '>' (an absolute URI or an absolute
    // path, still percent-encoded); empty for a No-tag-list, which applies
    // to the Request-URI.
    std::string_view resource;
    std::vector<IfCondition> conditions;
};

struct IfHeader {
    bool tagged = false;  // Tagged-list productions (the two kinds do not mix)
    std::vector<IfList> lists;
};

// Parses a field value. Returns false for anything outside the grammar
// (answer 400): an empty header, an empty list "()", a Resource-Tag without
// a list, tagged and untagged lists mixed, a state token that is not an
// absolute URI, a malformed entity-tag, "Not" without a condition, garbage
// between productions. Views point into `value`.
bool parse_if_header(std::string_view value, IfHeader& out);

// Every state token named in the header outside a "Not" (the lock tokens a
// client submits with the request, RFC 4918 §10.4.1), in order.
void submitted_tokens(const IfHeader& h, std::vector<std::string_view>& out);

}  // namespace uvh
