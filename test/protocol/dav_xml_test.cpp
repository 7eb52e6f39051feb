// Tests for protocol/dav_xml.cpp: the hardened expat parse of WebDAV bodies
// and the multistatus / property writers (RFC 4918 §14).
#include "protocol/dav_xml.h"

#include <catch2/catch.hpp>

#include <string>

using namespace uvh;

TEST_CASE("dav_xml: a propfind with a prefix resolves to the DAV: namespace", "[dav_xml]") {
    auto r = parse_xml(R"(<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:displayname/></D:prop></D:propfind>)");
    REQUIRE(r.ok);
    CHECK(r.root.is_dav("propfind"));
    const XmlElement* prop = r.root.child(kDavNs, "prop");
    REQUIRE(prop);
    REQUIRE(prop->children.size() == 2);
    CHECK(prop->children[0].is_dav("getetag"));
    CHECK(prop->children[1].is_dav("displayname"));
    CHECK(r.root.child(kDavNs, "allprop") == nullptr);
}

TEST_CASE("dav_xml: default namespace, other prefixes and unqualified names", "[dav_xml]") {
    auto r = parse_xml(R"(<propfind xmlns="DAV:" xmlns:z="http://example.com/z">
  <prop><z:color/><getcontentlength/><plain xmlns=""/></prop></propfind>)");
    REQUIRE(r.ok);
    CHECK(r.root.is_dav("propfind"));
    const XmlElement* prop = r.root.child("DAV:", "prop");
    REQUIRE(prop);
    REQUIRE(prop->children.size() == 3);
    CHECK(prop->children[0].is("http://example.com/z", "color"));
    CHECK(prop->children[1].is_dav("getcontentlength"));
    CHECK(prop->children[2].ns.empty());
    CHECK(prop->children[2].name == "plain");
}

TEST_CASE("dav_xml: the same local name in two namespaces stays two names", "[dav_xml]") {
    auto r = parse_xml(R"(<a:x xmlns:a="urn:a" xmlns:b="urn:b"><b:x/></a:x>)");
    REQUIRE(r.ok);
    CHECK(r.root.is("urn:a", "x"));
    CHECK(r.root.children.at(0).is("urn:b", "x"));
    CHECK_FALSE(r.root.children.at(0).is("urn:a", "x"));
}

TEST_CASE("dav_xml: attributes with and without namespaces, xml:lang", "[dav_xml]") {
    auto r = parse_xml(R"(<p xmlns="urn:p" xmlns:q="urn:q" xml:lang="en" q:kind="k" plain="v"/>)");
    REQUIRE(r.ok);
    REQUIRE(r.root.attribute(kXmlNs, "lang"));
    CHECK(*r.root.attribute(kXmlNs, "lang") == "en");
    REQUIRE(r.root.attribute("urn:q", "kind"));
    CHECK(*r.root.attribute("urn:q", "kind") == "k");
    REQUIRE(r.root.attribute("", "plain"));
    CHECK(*r.root.attribute("", "plain") == "v");
    // Namespace declarations are not attributes once resolved.
    CHECK(r.root.attributes.size() == 3);
}

TEST_CASE("dav_xml: mixed content keeps its order as text and tails", "[dav_xml]") {
    auto r = parse_xml(R"(<v xmlns="urn:v">one<b>two</b>three<i/>four</v>)");
    REQUIRE(r.ok);
    CHECK(r.root.text == "one");
    REQUIRE(r.root.children.size() == 2);
    CHECK(r.root.children[0].text == "two");
    CHECK(r.root.children[0].tail == "three");
    CHECK(r.root.children[1].tail == "four");
    CHECK(r.root.all_text() == "onetwothreefour");
    CHECK_FALSE(r.root.empty_content());
}

TEST_CASE("dav_xml: entities and character references are decoded, high Unicode kept", "[dav_xml]") {
    auto r = parse_xml("<v xmlns=\"urn:v\">&lt;a&amp;b&gt; &#x10000; &#233; \xF0\x9F\x98\x80</v>");
    REQUIRE(r.ok);
    CHECK(r.root.text == "<a&b> \xF0\x90\x80\x80 \xC3\xA9 \xF0\x9F\x98\x80");
}

TEST_CASE("dav_xml: UTF-16 with a BOM is decoded to UTF-8", "[dav_xml]") {
    std::string body = "\xFF\xFE";  // little-endian BOM
    for (char c : std::string("<a xmlns=\"DAV:\">\xE9</a>")) {
        if (static_cast<unsigned char>(c) == 0xE9) {
            body += '\xE9';
            body += '\0';
        } else {
            body += c;
            body += '\0';
        }
    }
    auto r = parse_xml(body);
    REQUIRE(r.ok);
    CHECK(r.root.is_dav("a"));
    CHECK(r.root.text == "\xC3\xA9");
}

TEST_CASE("dav_xml: billion laughs is refused fast at the DOCTYPE", "[dav_xml]") {
    std::string body = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n";
    body += " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n";
    for (int i = 2; i <= 9; ++i) {
        body += " <!ENTITY lol" + std::to_string(i) + " \"";
        for (int k = 0; k < 10; ++k) body += "&lol" + std::to_string(i - 1) + ";";
        body += "\">\n";
    }
    body += "]>\n<D:propfind xmlns:D=\"DAV:\"><D:prop>&lol9;</D:prop></D:propfind>";
    auto r = parse_xml(body);
    CHECK_FALSE(r.ok);
    CHECK(r.error.find("DOCTYPE") != std::string::npos);
}

TEST_CASE("dav_xml: an external entity is never loaded", "[dav_xml]") {
    auto r = parse_xml(R"(<?xml version="1.0"?>
<!DOCTYPE p [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<p xmlns="urn:p">&xxe;</p>)");
    CHECK_FALSE(r.ok);
    CHECK(r.error.find("DOCTYPE") != std::string::npos);
    // Also with an external DTD subset and no internal subset.
    auto r2 = parse_xml(R"(<!DOCTYPE p SYSTEM "http://127.0.0.1:1/evil.dtd"><p/>)");
    CHECK_FALSE(r2.ok);
}

TEST_CASE("dav_xml: an undeclared entity is a parse error, not a lookup", "[dav_xml]") {
    auto r = parse_xml(R"(<p xmlns="urn:p">&xxe;</p>)");
    CHECK_FALSE(r.ok);
    CHECK(r.error.find("malformed XML") != std::string::npos);
    CHECK(r.error.find("undefined entity") != std::string::npos);
}

TEST_CASE("dav_xml: nesting deeper than the limit is refused", "[dav_xml]") {
    XmlLimits limits;
    limits.max_depth = 10;
    std::string ok, deep;
    for (int i = 0; i < 10; ++i) ok += "<a>";
    for (int i = 0; i < 10; ++i) ok += "</a>";
    CHECK(parse_xml(ok, limits).ok);
    for (int i = 0; i < 11; ++i) deep += "<a>";
    for (int i = 0; i < 11; ++i) deep += "</a>";
    auto r = parse_xml(deep, limits);
    CHECK_FALSE(r.ok);
    CHECK(r.error == "XML nested too deeply (the limit is 10 levels)");
    // The default bound holds for a 100,000-level body without recursion.
    std::string huge;
    for (int i = 0; i < 100000; ++i) huge += "<a>";
    auto r2 = parse_xml(huge);
    CHECK_FALSE(r2.ok);
    CHECK(r2.error.find("nested too deeply") != std::string::npos);
}

TEST_CASE("dav_xml: more elements than the limit are refused", "[dav_xml]") {
    XmlLimits limits;
    limits.max_elements = 100;
    std::string body = "<r>";
    for (int i = 0; i < 99; ++i) body += "<e/>";
    body += "</r>";
    CHECK(parse_xml(body, limits).ok);
    body.insert(3, "<e/>");
    auto r = parse_xml(body, limits);
    CHECK_FALSE(r.ok);
    CHECK(r.error == "too many XML elements (the limit is 100)");
}

TEST_CASE("dav_xml: malformed bodies answer one readable line", "[dav_xml]") {
    for (std::string_view body : {"", "   ", "<a>", "<a></b>", "<a xmlns:p=\"urn:p\"><q:x/></a>", "not xml",
                                  "<a/><b/>", "<a>\x01</a>", "<a b='1' b='2'/>"}) {
        INFO(body);
        auto r = parse_xml(body);
        CHECK_FALSE(r.ok);
        CHECK_FALSE(r.error.empty());
        CHECK(r.error.find('\n') == std::string::npos);
    }
    auto r = parse_xml("<a>\n<b></c></a>");
    CHECK(r.error.rfind("malformed XML at line 2, column ", 0) == 0);
}

TEST_CASE("dav_xml: escaping text and attribute values", "[dav_xml]") {
    CHECK(xml_escape("a<b>&\"c'\r") == "a&lt;b&gt;&amp;&quot;c&apos;&#13;");
    CHECK(xml_escape("plain /x%20y") == "plain /x%20y");
    CHECK(xml_escape("") == "");
}

TEST_CASE("dav_xml: serialising round-trips namespaces, attributes, mixed content and Unicode", "[dav_xml]") {
    const char* src =
        "<z:prop xmlns:z=\"http://example.com/z\" xmlns:o=\"urn:other\" xml:lang=\"fr\" o:k=\"a&amp;b\">"
        "d\xC3\xA9" "but<o:inner plain=\"1\"><z:leaf/>x</o:inner>&lt;tail&gt;<none xmlns=\"\">n</none>"
        "\xF0\x90\x80\x80</z:prop>";
    auto first = parse_xml(src);
    REQUIRE(first.ok);
    std::string out = xml_serialize(first.root);
    auto second = parse_xml(out);
    REQUIRE(second.ok);
    const XmlElement& a = first.root;
    const XmlElement& b = second.root;
    CHECK(b.is("http://example.com/z", "prop"));
    REQUIRE(b.attribute(kXmlNs, "lang"));
    CHECK(*b.attribute(kXmlNs, "lang") == "fr");
    REQUIRE(b.attribute("urn:other", "k"));
    CHECK(*b.attribute("urn:other", "k") == "a&b");
    CHECK(b.text == a.text);
    REQUIRE(b.children.size() == 2);
    CHECK(b.children[0].is("urn:other", "inner"));
    CHECK(b.children[0].children.at(0).is("http://example.com/z", "leaf"));
    CHECK(b.children[0].children.at(0).tail == "x");
    CHECK(b.children[0].tail == "<tail>");
    CHECK(b.children[1].ns.empty());
    CHECK(b.children[1].text == "n");
    CHECK(b.children[1].tail == "\xF0\x90\x80\x80");
    // Serialising again gives the same bytes: the form is canonical.
    CHECK(xml_serialize(b) == out);
}

TEST_CASE("dav_xml: a serialised element placed inside D:prop stands alone", "[dav_xml]") {
    auto r = parse_xml("<x:p xmlns:x=\"urn:x\">v</x:p>");
    REQUIRE(r.ok);
    CHECK(xml_serialize(r.root) == "<p xmlns=\"urn:x\">v</p>");
    auto none = parse_xml("<p/>");
    REQUIRE(none.ok);
    CHECK(xml_serialize(none.root) == "<p/>");
    // Inside an element with a default namespace, no namespace is said as xmlns="".
    std::string out;
    xml_serialize_append(out, none.root, "urn:outer");
    CHECK(out == "<p xmlns=\"\"/>");
}

TEST_CASE("dav_xml: property name elements", "[dav_xml]") {
    std::string out;
    xml_empty_property_append(out, kDavNs, "getetag");
    xml_empty_property_append(out, "urn:a&b", "color");
    CHECK(out == "<D:getetag/><color xmlns=\"urn:a&amp;b\"/>");
}

TEST_CASE("dav_xml: a multistatus built from pieces parses and says what it should", "[dav_xml]") {
    std::string out;
    multistatus_begin(out);
    multistatus_response_begin(out, "/a%20b/c&d");
    multistatus_propstat(out, "<D:getcontentlength>3</D:getcontentlength>", 200);
    std::string missing;
    xml_empty_property_append(missing, "urn:x", "nope");
    multistatus_propstat(out, missing, 404);
    multistatus_response_end(out);
    multistatus_href_status(out, "/locked", 423, "lock-token-submitted");
    multistatus_end(out);

    auto r = parse_xml(out);
    REQUIRE(r.ok);
    CHECK(r.root.is_dav("multistatus"));
    REQUIRE(r.root.children.size() == 2);
    const XmlElement& first = r.root.children[0];
    REQUIRE(first.child(kDavNs, "href"));
    CHECK(first.child(kDavNs, "href")->text == "/a%20b/c&d");
    REQUIRE(first.children.size() == 3);
    CHECK(first.children[1].child(kDavNs, "status")->text == "HTTP/1.1 200 OK");
    CHECK(first.children[1].child(kDavNs, "prop")->children.at(0).text == "3");
    CHECK(first.children[2].child(kDavNs, "status")->text == "HTTP/1.1 404 Not Found");
    CHECK(first.children[2].child(kDavNs, "prop")->children.at(0).is("urn:x", "nope"));
    const XmlElement& second = r.root.children[1];
    CHECK(second.child(kDavNs, "status")->text == "HTTP/1.1 423 Locked");
    CHECK(second.child(kDavNs, "error")->child(kDavNs, "lock-token-submitted"));
}

TEST_CASE("dav_xml: error bodies and status texts", "[dav_xml]") {
    CHECK(dav_status_text(207) == "HTTP/1.1 207 Multi-Status");
    CHECK(dav_status_text(424) == "HTTP/1.1 424 Failed Dependency");
    auto r = parse_xml(dav_error_body("propfind-finite-depth"));
    REQUIRE(r.ok);
    CHECK(r.root.is_dav("error"));
    CHECK(r.root.child(kDavNs, "propfind-finite-depth"));
    auto r2 = parse_xml(dav_error_body("lock-token-submitted", "<D:href>/x</D:href>"));
    REQUIRE(r2.ok);
    CHECK(r2.root.child(kDavNs, "lock-token-submitted")->child(kDavNs, "href")->text == "/x");
}
