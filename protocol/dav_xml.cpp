#include "protocol/dav_xml.h"

// The amplification guard is declared only when XML_DTD is defined; Debian's
// libexpat is built with DTD support and exports it (expat >= 2.4.0).
#ifndef XML_DTD
#define XML_DTD
#endif
#include <expat.h>

#include <fmt/format.h>

#include <memory>

#include "protocol/status.h"

namespace uvh {

const XmlElement* XmlElement::child(std::string_view uri, std::string_view local) const {
    for (const auto& c : children)
        if (c.is(uri, local)) return &c;
    return nullptr;
}

const std::string* XmlElement::attribute(std::string_view uri, std::string_view local) const {
    for (const auto& a : attributes)
        if (a.ns == uri && a.name == local) return &a.value;
    return nullptr;
}

namespace {

void append_text(std::string& out, const XmlElement& e) {
    out += e.text;
    for (const auto& c : e.children) {
        append_text(out, c);
        out += c.tail;
    }
}

bool only_space(std::string_view s) {
    return s.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

// The separator expat puts between a namespace URI and a local name. A
// control character cannot occur in an XML name or (since expat 2.4.5,
// CVE-2022-25236) in a namespace URI, so the split is unambiguous.
constexpr char kSep = '\x01';

void split_name(const char* qname, std::string& ns, std::string& local) {
    std::string_view q(qname);
    size_t at = q.find(kSep);
    if (at == std::string_view::npos) {
        ns.clear();
        local.assign(q);
    } else {
        ns.assign(q.substr(0, at));
        local.assign(q.substr(at + 1));
    }
}

struct Builder {
    XML_Parser parser = nullptr;
    const XmlLimits* limits = nullptr;
    XmlElement root;
    bool have_root = false;
    std::vector<XmlElement*> stack;
    size_t elements = 0;
    std::string error;

    void fail(std::string why) {
        if (error.empty()) error = std::move(why);
        XML_StopParser(parser, XML_FALSE);
    }

    static void on_start(void* ud, const XML_Char* name, const XML_Char** atts) {
        auto* b = static_cast<Builder*>(ud);
        if (!b->error.empty()) return;
        if (++b->elements > b->limits->max_elements)
            return b->fail(fmt::format("too many XML elements (the limit is {})", b->limits->max_elements));
        if (b->stack.size() + 1 > b->limits->max_depth)
            return b->fail(fmt::format("XML nested too deeply (the limit is {} levels)", b->limits->max_depth));
        XmlElement* e;
        if (b->stack.empty()) {
            e = &b->root;
            b->have_root = true;
        } else {
            // Pushing onto the top's children moves only closed siblings:
            // the open ancestors on the stack live in other vectors.
            e = &b->stack.back()->children.emplace_back();
        }
        split_name(name, e->ns, e->name);
        for (size_t i = 0; atts[i]; i += 2) {
            XmlAttribute& a = e->attributes.emplace_back();
            split_name(atts[i], a.ns, a.name);
            a.value = atts[i + 1];
        }
        b->stack.push_back(e);
    }

    static void on_end(void* ud, const XML_Char*) {
        auto* b = static_cast<Builder*>(ud);
        if (!b->stack.empty()) b->stack.pop_back();
    }

    static void on_text(void* ud, const XML_Char* s, int len) {
        auto* b = static_cast<Builder*>(ud);
        if (b->stack.empty() || !b->error.empty()) return;
        XmlElement* top = b->stack.back();
        std::string& into = top->children.empty() ? top->text : top->children.back().tail;
        into.append(s, static_cast<size_t>(len));
    }

    // RFC 4918 §20.6 leaves DTD handling to the server; a WebDAV body has
    // no use for one, and refusing it at the start of the DOCTYPE stops
    // entity declarations (billion laughs, external entities) before expat
    // reads them.
    static void on_doctype(void* ud, const XML_Char*, const XML_Char*, const XML_Char*, int) {
        static_cast<Builder*>(ud)->fail("a DOCTYPE is not allowed in a WebDAV request body");
    }
    static void on_entity_decl(void* ud, const XML_Char*, int, const XML_Char*, int, const XML_Char*,
                               const XML_Char*, const XML_Char*, const XML_Char*) {
        static_cast<Builder*>(ud)->fail("entity declarations are not allowed in a WebDAV request body");
    }
};

struct ParserFree {
    void operator()(XML_Parser p) const { XML_ParserFree(p); }
};

}  // namespace

std::string XmlElement::all_text() const {
    std::string out;
    append_text(out, *this);
    return out;
}

bool XmlElement::empty_content() const { return children.empty() && only_space(text); }

XmlParseResult parse_xml(std::string_view body, const XmlLimits& limits) {
    XmlParseResult result;
    std::unique_ptr<XML_ParserStruct, ParserFree> holder(XML_ParserCreateNS(nullptr, kSep));
    if (!holder) {
        result.error = "out of memory parsing XML";
        return result;
    }
    XML_Parser p = holder.get();
    Builder b;
    b.parser = p;
    b.limits = &limits;
    XML_SetUserData(p, &b);
    XML_SetElementHandler(p, &Builder::on_start, &Builder::on_end);
    XML_SetCharacterDataHandler(p, &Builder::on_text);
    XML_SetStartDoctypeDeclHandler(p, &Builder::on_doctype);
    XML_SetEntityDeclHandler(p, &Builder::on_entity_decl);
    // No external entity is ever fetched: no XML_SetExternalEntityRefHandler,
    // and parameter entities (the external DTD subset) are never parsed.
    XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER);
    // A second line behind the DOCTYPE refusal: expat's own bound on entity
    // amplification (output bytes per input byte).
    XML_SetBillionLaughsAttackProtectionMaximumAmplification(p, 4.0f);
    XML_SetBillionLaughsAttackProtectionActivationThreshold(p, 64 * 1024);

    // XML_Parse takes an int length; the caller's 413 keeps bodies far below.
    if (body.size() > static_cast<size_t>(INT32_MAX)) {
        result.error = "XML body too large";
        return result;
    }
    XML_Status st = XML_Parse(p, body.data(), static_cast<int>(body.size()), XML_TRUE);
    if (!b.error.empty()) {
        result.error = std::move(b.error);
        return result;
    }
    if (st != XML_STATUS_OK) {
        result.error = fmt::format("malformed XML at line {}, column {}: {}", XML_GetCurrentLineNumber(p),
                                   XML_GetCurrentColumnNumber(p) + 1, XML_ErrorString(XML_GetErrorCode(p)));
        return result;
    }
    if (!b.have_root) {
        result.error = "the XML body has no element";
        return result;
    }
    result.ok = true;
    result.root = std::move(b.root);
    return result;
}

// --- Writing ---------------------------------------------------------------

void xml_escape_append(std::string& out, std::string_view text) {
    size_t start = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        const char* rep;
        switch (text[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&apos;"; break;
        // A CR would come back as LF after a parser's line-end
        // normalisation (XML 1.0 §2.11); as a reference it survives.
        case '\r': rep = "&#13;"; break;
        default: continue;
        }
        out.append(text.substr(start, i - start));
        out += rep;
        start = i + 1;
    }
    out.append(text.substr(start));
}

std::string xml_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    xml_escape_append(out, text);
    return out;
}

void xml_serialize_append(std::string& out, const XmlElement& e, std::string_view parent_default_ns) {
    out += '<';
    out += e.name;
    if (e.ns != parent_default_ns) {
        out += " xmlns=\"";
        xml_escape_append(out, e.ns);
        out += '"';
    }
    int prefix = 0;
    for (const auto& a : e.attributes) {
        out += ' ';
        if (a.ns.empty()) {
            out += a.name;
        } else if (a.ns == kXmlNs) {
            out += "xml:";
            out += a.name;
        } else {
            // A prefix per attribute, declared on this element; an
            // unprefixed attribute is in no namespace (Namespaces in XML
            // §6.2), so a namespaced one always needs a prefix.
            std::string p = fmt::format("a{}", prefix++);
            out += "xmlns:";
            out += p;
            out += "=\"";
            xml_escape_append(out, a.ns);
            out += "\" ";
            out += p;
            out += ':';
            out += a.name;
        }
        out += "=\"";
        xml_escape_append(out, a.value);
        out += '"';
    }
    if (e.text.empty() && e.children.empty()) {
        out += "/>";
        return;
    }
    out += '>';
    xml_escape_append(out, e.text);
    for (const auto& c : e.children) {
        xml_serialize_append(out, c, e.ns);
        xml_escape_append(out, c.tail);
    }
    out += "</";
    out += e.name;
    out += '>';
}

std::string xml_serialize(const XmlElement& element) {
    std::string out;
    xml_serialize_append(out, element);
    return out;
}

void xml_empty_property_append(std::string& out, std::string_view ns, std::string_view name) {
    if (ns == kDavNs) {
        out += "<D:";
        out += name;
        out += "/>";
        return;
    }
    out += '<';
    out += name;
    out += " xmlns=\"";
    xml_escape_append(out, ns);
    out += "\"/>";
}

std::string dav_status_text(int status) {
    std::string_view line = status_line(status);  // "HTTP/1.1 404 Not Found\r\n"
    if (line.size() >= 2) line.remove_suffix(2);
    return std::string(line);
}

void multistatus_begin(std::string& out) {
    out += "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">\n";
}

void multistatus_end(std::string& out) { out += "</D:multistatus>\n"; }

void multistatus_response_begin(std::string& out, std::string_view href) {
    out += "<D:response><D:href>";
    xml_escape_append(out, href);
    out += "</D:href>";
}

void multistatus_response_end(std::string& out) { out += "</D:response>\n"; }

void multistatus_status(std::string& out, int status) {
    out += "<D:status>";
    out += dav_status_text(status);
    out += "</D:status>";
}

void multistatus_propstat(std::string& out, std::string_view props_xml, int status) {
    out += "<D:propstat><D:prop>";
    out += props_xml;
    out += "</D:prop>";
    multistatus_status(out, status);
    out += "</D:propstat>";
}

void multistatus_href_status(std::string& out, std::string_view href, int status, std::string_view error_condition) {
    multistatus_response_begin(out, href);
    multistatus_status(out, status);
    if (!error_condition.empty()) {
        out += "<D:error><D:";
        out += error_condition;
        out += "/></D:error>";
    }
    multistatus_response_end(out);
}

std::string dav_error_body(std::string_view condition, std::string_view inner) {
    std::string out = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:error xmlns:D=\"DAV:\"><D:";
    out += condition;
    if (inner.empty()) {
        out += "/>";
    } else {
        out += '>';
        out += inner;
        out += "</D:";
        out += condition;
        out += '>';
    }
    out += "</D:error>\n";
    return out;
}

}  // namespace uvh
