// Content-coding choices for GET (RFC 9110 §12.5.3) and the responses that
// come from the coding cache (handlers/compress/coding_cache.h): a coding
// the server produces, served from memory once compressed, or streamed for
// a file larger than that cache takes.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

#include "handlers/compress/coding_cache.h"
#include "handlers/compress/policy.h"
#include "handlers/exchange.h"
#include "protocol/negotiate.h"
#include "protocol/preconditions.h"
#include "protocol/request.h"

namespace uvh {

struct GetJob;

constexpr uint8_t kAllCodings = coding_bit(Coding::Gzip) | coding_bit(Coding::Br) | coding_bit(Coding::Zstd);

// The codings the server would produce itself for a body of this type and
// size: none for types not worth it, none under --compress-min-size unless
// the client refuses identity.
// `compressible` is policy->compressible(type), decided by the caller (a
// cache entry keeps it, so a hit does not ask again).
inline uint8_t fly_codings_of(const CompressPolicy* policy, bool compressible, uint64_t size,
                       const AcceptedCodings& accepted) {
    if (!policy || !compressible) return 0;
    if (size < policy->min_size && accepted.accepts(Coding::Identity)) return 0;
    return kAllCodings;
}

inline uint8_t on_the_fly_codings(const CompressPolicy* policy, std::string_view type, uint64_t size,
                           const AcceptedCodings& accepted) {
    return fly_codings_of(policy, policy && policy->compressible(type), size, accepted);
}

// A response of a resource whose body depends on Accept-Encoding says so
// (RFC 9110 §12.5.5), compressed or not.
inline std::string_view vary_of(bool compressible, bool has_siblings) {
    return has_siblings || compressible ? "Accept-Encoding" : std::string_view();
}

inline std::string_view vary_for(const CompressPolicy* policy, std::string_view type, bool has_siblings) {
    return vary_of(policy && policy->compressible(type), has_siblings);
}

// A Range request is answered from stored bytes: when the chosen coding
// would be produced on the fly, from the identity file, with its ETag.
inline bool range_from_identity(const Request& req, std::string_view identity_etag, time_t last_modified) {
    return req.method == Method::Get && req.range.data() &&
           if_range_allows_partial(req.if_range, Representation{true, identity_etag, last_modified});
}

// The fast path: a coding of a file whose version the coding cache has
// verified within the interval. False: go on as without it.
bool serve_from_codings(Exchange& ex, PathRecord& rec, const AcceptedCodings& accepted, bool may_start);

// Serves coding `c` of a record's version from the coding cache, or waits
// for its one compression. False: the caller serves identity.
bool serve_or_wait(Exchange& ex, PathRecord& rec, Coding c, bool may_start);

// A coding produced as the body is sent, for a file larger than the coding
// cache takes: chunked, the encoder's memory and one window per connection.
void serve_streamed(Exchange& ex, GetJob& job, std::string_view identity_etag);

// A coding of a file above --compress-max-cached that the job found in
// --compress-cache-dir (job.disk_fd): sent from that file with sendfile,
// with Content-Length, the stream's ETag, and Range requests answered from
// the coded bytes (handlers/compress/disk_cache.h).
void serve_disk_coded(Exchange& ex, GetJob& job, std::string_view identity_etag);

// A GET or HEAD of such a coding that found no entry: answers 304/412 from the
// derived ETag, or waits for the one compression into the directory and
// then runs the GET again (after_compression). False: stream it.
bool wait_for_disk_coded(Exchange& ex, GetJob& job, std::string_view identity_etag);

// Tells the coding cache what the job found. Returns its record.
PathRecord* record_facts(Exchange& ex, GetJob& job, const std::string& identity_etag);

}  // namespace uvh
