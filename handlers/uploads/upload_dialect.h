// The dialects of resumable uploads: which protocol a request speaks (tus
// 1.0.0, or the IETF draft at interop version 5, 6 or 8) and the
// Structured Field values (RFC 9651) their fields carry. No state, no I/O:
// handlers/uploads/uploads.cpp and upload_responses.cpp use these to read
// requests and to answer in the request's dialect.
#pragma once

#include <cstdint>
#include <string_view>

#include "handlers/uploads/upload_state.h"
#include "protocol/request.h"

namespace uvh::upload {

inline constexpr std::string_view kTusVersion = "1.0.0";
inline constexpr std::string_view kTusExtensions =
    "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum";
inline constexpr std::string_view kTusChecksums = "sha1,sha256,sha512,md5";

// RFC 9651 Integer, non-negative (Upload-Offset, Upload-Length, the interop
// version): at most 15 digits.
bool parse_sf_uint(std::string_view v, uint64_t& out);

// RFC 9651 Boolean: "?1" or "?0". -1: absent or malformed.
int parse_sf_bool(std::string_view v);

bool media_type_is(std::string_view content_type, std::string_view type);

// Which dialect a request speaks. `known` false: neither tus nor an interop
// version this server implements.
struct Dialect {
    bool known = false;
    UploadProtocol protocol = UploadProtocol::Tus;
    bool tus_version_ok = true;  // Tus-Resumable was 1.0.0
};

Dialect dialect_of(const Request& req);

inline bool is_ietf(UploadProtocol p) { return p != UploadProtocol::Tus; }

// The Upload-Draft-Interop-Version value of an IETF dialect.
std::string_view interop_token(UploadProtocol p);

}  // namespace uvh::upload
