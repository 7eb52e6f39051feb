// What the WebDAV handlers (RFC 4918) share: the Depth and Destination
// headers, hrefs, reading a bounded XML body, the record-store rule and
// where dead properties live.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "handlers/dav/props_store.h"
#include "handlers/dav/tree_ops.h"
#include "handlers/exchange.h"
#include "protocol/dav_xml.h"

namespace uvh {

// The largest XML request body a DAV method reads (PROPFIND, PROPPATCH);
// a larger one is 413 before or while it is read.
inline constexpr uint64_t kMaxDavBody = 1 << 20;

enum class Depth : uint8_t { Zero, One, Infinity, Invalid };

// RFC 4918 §10.2: "0", "1" or "infinity" (case-insensitive); `absent` when
// the field is missing.
Depth parse_depth(const Request& req, Depth absent);

// The href of a normalised (decoded) URL path: every byte outside RFC 3986
// unreserved and "/" percent-encoded.
std::string dav_href(std::string_view url_path);

// The path joined with a member name ("/a/" + "b" -> "/a/b"), with a
// trailing '/' for a collection.
std::string member_path(std::string_view dir_path, std::string_view name, bool is_dir);

// Where dead properties live on this site (--dav-props).
PropsMode props_mode(const Site& site);

// True when `name` in the directory `dir_fd` is the record store's file,
// whatever URL led there: DAV never moves, copies over or deletes it.
bool dav_is_record_store(const Site& site, int dir_fd, std::string_view name);

// Parses Destination (RFC 4918 §10.3) into a normalised URL path. Returns
// 0, or 400 (missing, malformed, a bad path), 502 (another authority than
// the request's Host: this server does not write to other servers, §9.8.4).
int parse_destination(const Request& req, std::string& path, std::string& why);

// Overwrite (RFC 4918 §10.6): T (default) or F; false on another value.
bool parse_overwrite(const Request& req, bool& overwrite);

// Parses a request body whose root must be the DAV: element `root`
// (propfind, propertyupdate, lockinfo). 0, or the status to refuse it with
// and a one-line reason:
// - 415 when the body is not XML and the request's Content-Type names a
//   format that is not XML either (application/json, text/plain...): the
//   method does not take that format (RFC 9110 §15.5.16);
// - 400 when the body is not well-formed XML but says it is XML or says
//   nothing (RFC 4918 §8.2), or is XML with another root element.
// Well-formed XML is taken whatever its label, as Apache mod_dav does, so
// `curl -X PROPFIND -d '<D:propfind...'` (labelled form data) keeps working.
int parse_dav_body(const Request& req, std::string_view body, std::string_view root, XmlParseResult& out,
                   std::string& why);

// True when a Content-Type value names an XML media type (RFC 7303:
// application/xml, text/xml, any +xml type).
bool is_xml_media_type(std::string_view content_type);

// Sends `body` (XML the caller built in place, usually ex.text()) with
// this status; `head` may carry extra fields (Lock-Token...).
void respond_xml(Exchange& ex, int status, std::string& body, ResponseHead head = {});

// RFC 4918 §9.6.1, §9.8.5: the 207 naming each member of a collection
// operation that failed, with its status.
void respond_member_failures(Exchange& ex, const std::vector<TreeFailure>& failures);

// Reads the request body into `J::body` (a std::string member of the
// exchange's job J, made with make_job<J>() before the call), at most
// kMaxDavBody bytes (413 otherwise), then calls `end` on the loop thread.
// J also has `bool body_refused`.
template <class J>
void read_dav_body(Exchange& ex, void (*end)(Exchange&)) {
    const Request& req = ex.request();
    if (req.has_content_length && req.content_length > kMaxDavBody)
        return respond_error(ex, 413, "the XML request body is larger than 1 MiB");
    BodyReader reader;
    reader.data = [](Exchange& e, std::string_view piece) {
        J& job = e.template job_as<J>();
        if (job.body_refused) return;
        if (job.body.size() + piece.size() > kMaxDavBody) {
            job.body_refused = true;
            return respond_error(e, 413, "the XML request body is larger than 1 MiB");
        }
        job.body.append(piece);
        e.body_consumed();
    };
    reader.end = end;
    reader.chunk = 64 * 1024;
    ex.read_body(reader);
}

}  // namespace uvh
