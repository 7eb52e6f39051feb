// WebDAV XML (RFC 4918 §14): request bodies parsed with expat into a small
// namespace-resolved element tree, and the pieces of the responses
// (multistatus, error bodies, property elements) written as text.
//
// Parsing is hardened for bodies from anyone: the caller bounds the body
// size (413 before this runs); here the element depth and count are bounded,
// any DOCTYPE is refused (a WebDAV body never needs one, and refusing it
// rules out internal entity expansion such as "billion laughs" and external
// entities in one place), external entities are never loaded (no
// XML_SetExternalEntityRefHandler, parameter entities off), and expat's own
// amplification guard is set as a second line. Every failure is one
// readable line for a 400 body.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace uvh {

// The XML namespace (RFC 4918 §21: "DAV:") and the reserved xml: namespace.
inline constexpr std::string_view kDavNs = "DAV:";
inline constexpr std::string_view kXmlNs = "http://www.w3.org/XML/1998/namespace";

struct XmlAttribute {
    std::string ns;    // namespace URI; empty for an unprefixed attribute
    std::string name;  // local name
    std::string value;
};

// One element. Mixed content keeps its order the way ElementTree does:
// `text` is the character data before the first child, and each child's
// `tail` the character data after it, so a property value serialises back
// as it came (RFC 4918 §4.3: dead property values are kept as XML).
struct XmlElement {
    std::string ns;    // namespace URI; empty when the element has none
    std::string name;  // local name
    std::vector<XmlAttribute> attributes;
    std::string text;
    std::string tail;
    std::vector<XmlElement> children;

    bool is(std::string_view uri, std::string_view local) const { return ns == uri && name == local; }
    bool is_dav(std::string_view local) const { return is(kDavNs, local); }
    // The first child with this name, or nullptr.
    const XmlElement* child(std::string_view uri, std::string_view local) const;
    // The value of an attribute, or nullptr.
    const std::string* attribute(std::string_view uri, std::string_view local) const;
    // All character data of this element and its descendants, in order.
    std::string all_text() const;
    // True when the element holds no child elements and only whitespace.
    bool empty_content() const;
};

struct XmlLimits {
    size_t max_depth = 64;         // nesting of elements, root = 1
    size_t max_elements = 20'000;  // elements in the whole body
};

struct XmlParseResult {
    bool ok = false;
    std::string error;  // one line for a 400 body when !ok
    XmlElement root;
};

// Parses a complete body (UTF-8, or any encoding expat knows from the XML
// declaration). Namespace prefixes are resolved; names are (URI, local).
XmlParseResult parse_xml(std::string_view body, const XmlLimits& limits = {});

// --- Writing ---------------------------------------------------------------

// Escapes &, <, >, " and ' (safe both in text and in attribute values).
void xml_escape_append(std::string& out, std::string_view text);
std::string xml_escape(std::string_view text);

// Serialises an element and its content as self-contained XML: every
// element whose namespace differs from its parent's declares it as the
// default namespace (xmlns="..."; xmlns="" for none), attributes in a
// namespace get a prefix declared on their element, and xml:* attributes
// (xml:lang) keep the reserved prefix. `parent_default_ns` is the default
// namespace in effect where the output will be placed (none inside the
// multistatus this server writes, which uses only the D: prefix).
void xml_serialize_append(std::string& out, const XmlElement& element, std::string_view parent_default_ns = {});
std::string xml_serialize(const XmlElement& element);

// An empty element for a property name (PROPFIND propname, 404/403/424
// propstats): <D:name/> for DAV:, <name xmlns="uri"/> otherwise.
void xml_empty_property_append(std::string& out, std::string_view ns, std::string_view name);

// Multistatus pieces (RFC 4918 §13, §14.16). They append to a string so a
// streamed body source can emit a response at a time:
//   multistatus_begin(out);
//   multistatus_response_begin(out, "/dir/a%20b");
//   multistatus_propstat(out, "<D:getcontentlength>3</D:getcontentlength>", 200);
//   multistatus_response_end(out);
//   multistatus_end(out);
// `href` is the already percent-encoded URL path; it is XML-escaped here.
void multistatus_begin(std::string& out);
void multistatus_end(std::string& out);
void multistatus_response_begin(std::string& out, std::string_view href);
void multistatus_response_end(std::string& out);
// <D:propstat><D:prop>props_xml</D:prop><D:status>HTTP/1.1 N Reason</D:status></D:propstat>
void multistatus_propstat(std::string& out, std::string_view props_xml, int status);
// <D:status>HTTP/1.1 N Reason</D:status>, for a response without propstat.
void multistatus_status(std::string& out, int status);
// A whole <D:response> with one href and one status (COPY/MOVE/DELETE
// members), optionally with an <D:error> precondition element name.
void multistatus_href_status(std::string& out, std::string_view href, int status,
                             std::string_view error_condition = {});
// "HTTP/1.1 404 Not Found" for a <D:status> element.
std::string dav_status_text(int status);

// A complete <D:error> body naming one precondition or postcondition
// (RFC 4918 §16), e.g. "propfind-finite-depth", "lock-token-submitted";
// `inner` (already XML) goes inside the condition element, e.g. hrefs.
std::string dav_error_body(std::string_view condition, std::string_view inner = {});

}  // namespace uvh
