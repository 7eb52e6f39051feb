// The answers of resumable uploads, in the dialect of the request that
// created the upload: tus 1.0.0 fields, or the IETF draft's fields and its
// RFC 9457 problem types.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "handlers/exchange.h"
#include "handlers/uploads/upload_job.h"

namespace uvh::upload {

// Storage for the values of the fields an answer carries (the head keeps
// views into them).
struct Fields {
    std::string offset, length, limit, expires, location;
};

// Upload-Limit (draft §4.1.3): max-size and max-age.
void upload_limit(const UploadJob& job, std::string& out);

// The fields every answer about an upload carries in its dialect.
void add_state_fields(const UploadJob& job, ResponseHead& head, Fields& f, uint64_t offset);

// RFC 9457 problem details, for the draft's problem types.
void respond_problem(Exchange& ex, UploadJob& job, int status, std::string_view type, std::string_view title,
                     Fields& f, uint64_t offset);

// A one-line text error with Tus-Resumable (and any fields in `head`).
void respond_tus_error(Exchange& ex, int status, std::string_view detail, ResponseHead head = {});

// Answers an outcome other than Ok; false when there is none to answer.
bool respond_outcome(Exchange& ex, UploadJob& job);

// A progress report during a long creation or append (draft -15 §4.2.2 and
// §4.4.2, the Status Code 104 section): a 104 (Upload Resumption
// Supported) with Upload-Offset and no Location, sent only when a
// checkpoint has just made that offset durable (a client may drop the data
// it buffered up to it), and only to clients of interop version 8 (the
// draft text this server implements says so; earlier versions' clients
// are not told of progress). Never to HTTP/1.0 (Exchange::interim).
void send_progress(Exchange& ex, const UploadJob& job);

// The answer once an append (or a creation's content) has been stored.
void respond_stored(Exchange& ex, UploadJob& job);

}  // namespace uvh::upload
