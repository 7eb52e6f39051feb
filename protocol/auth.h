// Credentials for writes (RFC 9110 §11): "Authorization: Bearer TOKEN" or
// Basic with the token as the password, so `curl -u :TOKEN` and browsers'
// login prompts both work.
#pragma once

#include <string>
#include <string_view>

namespace uvh {

// Extracts the secret from an Authorization value: the token of a Bearer
// credential, or the password of a Basic one. False when absent or
// malformed.
bool authorization_secret(std::string_view authorization, std::string& secret);

// Compares a client's guess with the secret without an early exit, so the
// time taken does not tell an attacker how much of a guess was right.
bool constant_time_equals(std::string_view given, std::string_view secret);

// Standard base64 (RFC 4648 §4) with padding; false on bad input.
bool base64_decode(std::string_view in, std::string& out);

}  // namespace uvh
