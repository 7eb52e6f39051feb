// The record store over HTTP (the seed's database.txt): POST appends a
// record, GET/PUT/DELETE /database.txt/ID read, replace and remove one.
// Every change is acknowledged only after it is on disk.
#pragma once

#include <string_view>

#include "handlers/exchange.h"

namespace uvh {

// POST /database.txt, or POST to a directory URL (where the seed's listing
// form posted): form-urlencoded, multipart/form-data (text fields) or a flat
// JSON object. A field "id" (or the seed's "mis") chooses the id; otherwise
// the next integer is assigned. 201 with Location /database.txt/ID. 400 for
// a body with only the id, or a numeric id of 10^18 or more; 413 for a
// record over --max-record-size; 507 for a full disk or --max-store-size.
void handle_record_post(Exchange& ex);

// GET, HEAD, PUT and DELETE of /database.txt/ID; `id` is the decoded last
// segment. The route table (handlers/routes.cpp) sends only these methods
// here and derives the Allow values of both kinds of record URL.
void handle_record(Exchange& ex, std::string_view id);

// GET and HEAD of /database.txt: the file store's file as the GET handler
// serves any file, or, when the records live in PostgreSQL (--records), the
// same "ID fields" lines rendered from the table in creation order (a file
// of that name in the root is then not served: the table is the store).
void handle_database_read(Exchange& ex);

// The rendered listing's media type. It has no validators (no ETag, no
// Last-Modified: the table has no cheap version) and a length only when
// it fits one page, so PROPFIND (handlers/dav/propfind.cpp) describes it
// with this type and nothing else it cannot know.
inline constexpr std::string_view kRecordListingType = "text/plain; charset=utf-8";

// Whether /database.txt is rendered from a table rather than served as a
// file (--records).
bool database_is_rendered(const Site& site);

}  // namespace uvh
