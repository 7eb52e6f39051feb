// Resumable uploads, the HTTP side: the IETF draft "Resumable Uploads for
// HTTP" (draft-ietf-httpbis-resumable-upload; interop versions 5, 6 and 8)
// and tus 1.0.0 (core, creation, creation-with-upload,
// creation-defer-length, termination, expiration, checksum). The creation
// request targets the final path of the file; the upload resource it makes
// is /.uvhttpd-uploads/<32 hex digits>. The state on disk is
// handlers/uploads/upload_state.h; the last step is PUT's
// (handlers/write_step.h place_content).
#pragma once

#include <string>
#include <string_view>

#include "handlers/exchange.h"

namespace uvh {

// The URL prefix of upload resources (the directory on disk has the same
// name; the route for these URLs comes before the dotfile route).
inline constexpr std::string_view kUploadsPrefix = "/.uvhttpd-uploads/";

// Whether a POST or PUT asks for a resumable upload: tus headers
// (Tus-Resumable with Upload-Length or Upload-Defer-Length), or the IETF
// draft's Upload-Complete with an interop version this server speaks.
bool is_upload_creation(const Request& req);

// POST/PUT to a file path that is_upload_creation(): creates the upload.
void handle_upload_create(Exchange& ex);

// /.uvhttpd-uploads/<id>
bool is_upload_resource(std::string_view path);
// HEAD (offset), PATCH (append), DELETE (cancel) of an upload resource.
void handle_upload_resource(Exchange& ex);

// The fields an OPTIONS answer adds where uploads can be created:
// Upload-Limit (IETF) and, to a tus request, Tus-Version, Tus-Extension,
// Tus-Max-Size and Tus-Checksum-Algorithm. `storage` keeps the values.
void add_upload_options(const Exchange& ex, ResponseHead& head, std::string& storage);

// A request that carries an older or unknown draft's upload fields
// (Upload-Incomplete, or Upload-Complete: ?0 with an interop version this
// server does not speak) and must not be taken as a whole-file write.
bool is_unsupported_partial_upload(const Request& req);

}  // namespace uvh
