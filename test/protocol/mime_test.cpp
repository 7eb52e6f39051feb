// Tests for protocol/mime.cpp: Content-Type from a file name.
#include "protocol/mime.h"

#include <catch2/catch.hpp>

#include <string_view>

using namespace uvh;

TEST_CASE("mime: mime_type_for common and edge-case names", "[mime]") {
    struct {
        std::string_view name;
        std::string_view type;
    } const cases[] = {
        {"index.html", "text/html; charset=utf-8"},
        {"index.htm", "text/html; charset=utf-8"},
        {"style.css", "text/css; charset=utf-8"},
        {"app.js", "text/javascript; charset=utf-8"},
        {"mod.mjs", "text/javascript; charset=utf-8"},
        {"logo.png", "image/png"},
        {"photo.jpg", "image/jpeg"},
        {"photo.jpeg", "image/jpeg"},
        {"icon.svg", "image/svg+xml"},
        {"data.json", "application/json"},
        {"notes.txt", "text/plain; charset=utf-8"},
        {"doc.pdf", "application/pdf"},
        {"font.woff2", "font/woff2"},
        {"module.wasm", "application/wasm"},
        {"archive.tar.gz", "application/gzip"},  // only the last extension counts
        {"7z.7z", "application/x-7z-compressed"},  // first table entry
        {"z.zst", "application/zstd"},             // last table entry
        {"file.unknownext", "application/octet-stream"},
        {"file.xyz", "application/octet-stream"},
        {"Makefile", "application/octet-stream"},  // no extension
        {"file.", "application/octet-stream"},     // trailing dot
        {"", "application/octet-stream"},
        {"INDEX.HTML", "text/html; charset=utf-8"},  // case-insensitive
        {"Photo.JpG", "image/jpeg"},
        {"dir/sub/page.html", "text/html; charset=utf-8"},
        {"/abs/path/data.json", "application/json"},
        {"a.b/c", "application/octet-stream"},  // the dot is in a directory name
        {"a.html/", "application/octet-stream"},
        {".html", "text/html; charset=utf-8"},  // a dotfile named like an extension
        {"x.averyveryverylongextension", "application/octet-stream"},
    };
    for (const auto& c : cases) {
        INFO("[" << c.name << "]");
        CHECK(mime_type_for(c.name) == c.type);
    }
}

TEST_CASE("mime: text types carry a UTF-8 charset, binary types do not", "[mime]") {
    for (std::string_view name : {"a.html", "a.css", "a.js", "a.txt", "a.csv", "a.md", "a.xhtml"}) {
        INFO(name);
        CHECK(mime_type_for(name).find("; charset=utf-8") != std::string_view::npos);
    }
    for (std::string_view name : {"a.png", "a.gif", "a.zip", "a.mp4", "a.bin", "a.json"}) {
        INFO(name);
        CHECK(mime_type_for(name).find("charset") == std::string_view::npos);
    }
}
