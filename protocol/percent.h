// Percent-encoding (RFC 3986 §2.1) and application/x-www-form-urlencoded
// (WHATWG URL, the format HTML forms and curl -d send).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace uvh {

// Appends the decoded form of `in` to `out`. "+" becomes a space only when
// plus_is_space (form bodies and query strings). Returns false on a '%' not
// followed by two hex digits.
bool percent_decode(std::string_view in, std::string& out, bool plus_is_space = false);

// Appends `in` to `out` with every byte outside RFC 3986's unreserved set
// percent-encoded, except the bytes listed in `keep` (e.g. "/" for paths).
void percent_encode(std::string_view in, std::string& out, std::string_view keep = {});

// The form encoding of one value: unreserved bytes stay, a space becomes
// "+", everything else %XX. Round-trips any byte string, newlines and NULs
// included, through parse_form.
void form_encode(std::string_view in, std::string& out);

using FormFields = std::vector<std::pair<std::string, std::string>>;

// Parses "a=1&b=2" into decoded pairs, in order. Empty pieces ("a=1&&b=2")
// are skipped; a piece without '=' is a name with an empty value. Returns
// false on bad percent-encoding.
bool parse_form(std::string_view body, FormFields& out);

// Serialises pairs in order with form_encode: "a=1&b=x+y".
std::string serialize_form(const FormFields& fields);

// The decoded value of the first query parameter called `name`, if any.
bool query_param(std::string_view query, std::string_view name, std::string& value);

}  // namespace uvh
