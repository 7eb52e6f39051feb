// Directory listings (handlers/listing.cpp) through handle_get and the fake
// Exchange, and the pure pieces they are made of. A listing may go out as a
// body of unknown length (chunked), so these tests look at the body bytes
// and the type, never at Content-Length; the fake drains any source.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "handlers/get_head.h"
#include "handlers/listing.h"
#include "test/handlers/fake_exchange.h"

using namespace uvh;
using namespace uvh::test;

namespace {

FakeResponse get(FakeSite& s, std::string target, std::string fields = {}) {
    FakeRequest r;
    r.target = std::move(target);
    r.fields = std::move(fields);
    return serve(s, std::move(r), handle_get);
}

// A body that is either sized exactly or chunked, never both or neither.
void check_framing(const FakeResponse& r) {
    if (r.chunked) {
        CHECK_FALSE(r.has("content-length"));
    } else {
        CHECK(r.header("content-length") == std::to_string(r.body.size()));
    }
}

}  // namespace

TEST_CASE("handler listing: HTML, escaped, encoded, directories first, with the record form",
          "[handler][listing]") {
    FakeSite s;
    s.root().write("b.txt", "bb");
    s.root().write("a <&> \".txt", "a");
    s.root().write("x y.txt", "");
    s.root().write("it's.txt", "");
    s.root().mkdir("zdir");
    s.root().mkdir("adir");
    s.root().write(".hidden", "secret");
    s.root().mkdir(".git");

    FakeExchange ex(s, {"GET", "/"});
    FakeResponse r = ex.run(handle_get);
    CHECK(r.status == 200);
    CHECK(r.header("content-type") == "text/html; charset=utf-8");
    CHECK(r.header("cache-control") == "no-cache");
    CHECK(r.header("vary") == "Accept, Accept-Encoding");
    CHECK(r.header("x-frame-options") == "DENY");
    check_framing(r);
    CHECK(ex.job_classes().front() == JobClass::Listing);  // a directory URL is listing work

    const std::string& b = r.body;
    CHECK(b.rfind("<!DOCTYPE html>", 0) == 0);
    CHECK(b.find("<title>Index of /</title>") != std::string::npos);
    CHECK(b.find(">a &lt;&amp;&gt; &quot;.txt</a>") != std::string::npos);
    CHECK(b.find("href=\"a%20%3C%26%3E%20%22.txt\"") != std::string::npos);
    CHECK(b.find("href=\"x%20y.txt\"") != std::string::npos);
    CHECK(b.find(">it&#39;s.txt</a>") != std::string::npos);
    CHECK(b.find("hidden") == std::string::npos);
    CHECK(b.find(".git") == std::string::npos);
    CHECK(b.find(".uvhttpd-state") == std::string::npos);
    // Directories first, then files, each by name.
    size_t adir = b.find(">adir/</a>"), zdir = b.find(">zdir/</a>");
    size_t a = b.find(">a &lt;"), bt = b.find(">b.txt</a>"), x = b.find(">x y.txt</a>");
    REQUIRE(adir != std::string::npos);
    REQUIRE(zdir != std::string::npos);
    REQUIRE(a != std::string::npos);
    REQUIRE(bt != std::string::npos);
    REQUIRE(x != std::string::npos);
    CHECK(adir < zdir);
    CHECK(zdir < a);
    CHECK(a < bt);
    CHECK(bt < x);
    CHECK(b.find("<td class=\"size\">2 B</td>") != std::string::npos);
    CHECK(b.find("<form method=\"post\" action=\"/database.txt\">") != std::string::npos);
    CHECK(b.find("name=\"mis\"") != std::string::npos);
    CHECK(b.find("href=\"../\"") == std::string::npos);  // no parent above the root
    CHECK(b.ends_with("</body>\n</html>\n"));
}

TEST_CASE("handler listing: a subdirectory has a parent link and an escaped title", "[handler][listing]") {
    FakeSite s;
    s.root().write("a&b/f.txt", "x");
    FakeResponse r = get(s, "/a%26b/");
    CHECK(r.status == 200);
    CHECK(r.body.find("<title>Index of /a&amp;b/</title>") != std::string::npos);
    CHECK(r.body.find("href=\"../\"") != std::string::npos);
    CHECK(r.body.find("href=\"f.txt\"") != std::string::npos);
}

TEST_CASE("handler listing: JSON by ?format=json or by Accept", "[handler][listing]") {
    FakeSite s;
    s.root().write("f.txt", "12345");
    s.root().write("a \"q\".txt", "");
    s.root().mkdir("sub");
    s.root().write(".env", "x");
    for (const auto& [target, fields] : {std::pair<std::string, std::string>{"/?format=json", ""},
                                         {"/", "Accept: application/json\r\n"},
                                         {"/", "Accept: text/html;q=0.5, application/json\r\n"}}) {
        INFO(target << " " << fields);
        FakeResponse r = get(s, target, fields);
        CHECK(r.status == 200);
        CHECK(r.header("content-type") == "application/json");
        CHECK_FALSE(r.has("x-frame-options"));
        check_framing(r);
        auto doc = nlohmann::json::parse(r.body);
        CHECK(doc["path"] == "/");
        REQUIRE(doc["entries"].size() == 3);
        CHECK(doc["entries"][0]["name"] == "sub");
        CHECK(doc["entries"][0]["type"] == "directory");
        CHECK(doc["entries"][0]["href"] == "sub/");
        CHECK(doc["entries"][1]["name"] == "a \"q\".txt");
        CHECK(doc["entries"][1]["href"] == "a%20%22q%22.txt");
        CHECK(doc["entries"][2]["name"] == "f.txt");
        CHECK(doc["entries"][2]["type"] == "file");
        CHECK(doc["entries"][2]["size"] == 5);
        CHECK(doc["entries"][2]["href"] == "f.txt");
        std::string modified = doc["entries"][2]["modified"];
        CHECK(modified.size() == 20);  // 2026-01-02T03:04:05Z
        CHECK(modified.back() == 'Z');
    }
    // Accept preferring HTML keeps HTML.
    CHECK(get(s, "/", "Accept: text/html, application/json;q=0.9\r\n").header("content-type") ==
          "text/html; charset=utf-8");
}

TEST_CASE("handler listing: a directory of many entries comes out whole and in order", "[handler][listing]") {
    FakeSite s;
    constexpr int kFiles = 1500;  // more than one 64 KiB window of HTML
    for (int i = 0; i < kFiles; ++i) s.root().write(fmt::format("f{:05}.txt", i), "x");
    FakeResponse html = get(s, "/");
    CHECK(html.status == 200);
    check_framing(html);
    size_t last = 0;
    for (int i = 0; i < kFiles; ++i) {
        size_t at = html.body.find(fmt::format(">f{:05}.txt</a>", i));
        REQUIRE(at != std::string::npos);
        REQUIRE(at > last);
        last = at;
    }
    CHECK(html.body.ends_with("</body>\n</html>\n"));

    FakeResponse json = get(s, "/?format=json");
    auto doc = nlohmann::json::parse(json.body);
    REQUIRE(doc["entries"].size() == kFiles);
    CHECK(doc["entries"][0]["name"] == "f00000.txt");
    CHECK(doc["entries"][kFiles - 1]["name"] == fmt::format("f{:05}.txt", kFiles - 1));
}

TEST_CASE("handler listing: an empty directory and HEAD", "[handler][listing]") {
    FakeSite s;
    s.root().mkdir("empty");
    FakeResponse json = get(s, "/empty/?format=json");
    CHECK(json.status == 200);
    CHECK(nlohmann::json::parse(json.body)["entries"].empty());

    FakeExchange ex(s, {"HEAD", "/empty/"});
    FakeResponse head = ex.run(handle_get);
    CHECK(head.status == 200);
    CHECK(head.header("content-type") == "text/html; charset=utf-8");
    CHECK(head.body.empty());
}

// ----------------------------------------------------------- pure pieces

TEST_CASE("listing: html_escape escapes the five characters", "[listing]") {
    std::string out;
    html_escape("a<b>&\"c'", out);
    CHECK(out == "a&lt;b&gt;&amp;&quot;c&#39;");
    out.clear();
    html_escape("plain é", out);
    CHECK(out == "plain é");
}

TEST_CASE("listing: human_size", "[listing]") {
    CHECK(human_size(0) == "0 B");
    CHECK(human_size(1023) == "1023 B");
    CHECK(human_size(1024) == "1.0 KiB");
    CHECK(human_size(1536) == "1.5 KiB");
    CHECK(human_size(5ull << 20) == "5.0 MiB");
    CHECK(human_size(3ull << 30) == "3.0 GiB");
}

TEST_CASE("listing: sort_entries puts directories first, then byte order", "[listing]") {
    std::vector<DirEntry> e(5);
    e[0].name = "b";
    e[1].name = "Z";
    e[2].name = "a";
    e[2].is_dir = true;
    e[3].name = "B";
    e[3].is_dir = true;
    e[4].name = "_";
    sort_entries(e);
    std::vector<std::string> names;
    for (const auto& d : e) names.push_back(d.name);
    CHECK(names == std::vector<std::string>{"B", "a", "Z", "_", "b"});
}

TEST_CASE("listing: render_listing_json and render_listing_html", "[listing]") {
    std::vector<DirEntry> e(2);
    e[0].name = "d<ir>";
    e[0].is_dir = true;
    e[1].name = "f.txt";
    e[1].size = 2048;
    e[1].mtime = 0;
    std::string json;
    render_listing_json("/x/", e, json);
    auto doc = nlohmann::json::parse(json);
    CHECK(doc["path"] == "/x/");
    REQUIRE(doc["entries"].size() == 2);
    CHECK(doc["entries"][0]["href"] == "d%3Cir%3E/");
    CHECK(doc["entries"][1]["size"] == 2048);
    CHECK(doc["entries"][1]["modified"] == "1970-01-01T00:00:00Z");

    std::string html;
    render_listing_html("/x/", e, "/data<base>", "open", html);
    CHECK(html.find(">d&lt;ir&gt;/</a>") != std::string::npos);
    CHECK(html.find("<td class=\"size\">2.0 KiB</td><td>1970-01-01 00:00 UTC</td>") != std::string::npos);
    CHECK(html.find("action=\"/data&lt;base&gt;\"") != std::string::npos);
    CHECK(html.find("href=\"../\"") != std::string::npos);
}
