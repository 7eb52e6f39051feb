// handlers/dav/props_store.cpp: the blob format, the extended attribute and
// the sidecar, on real files in a temporary directory.
#include "handlers/dav/props_store.h"

#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "test/handlers/fake_exchange.h"

using namespace uvh;
using uvh::test::TempRoot;

namespace {

std::vector<DeadProperty> sample() {
    return {{"urn:z", "color", "<color xmlns=\"urn:z\" xml:lang=\"fr\">rouge <b>vif</b></color>"},
            {"", "plain", "<plain>\n\x01\xF0\x90\x80\x80</plain>"},
            {"DAV:", "Win32LastModifiedTime", "<Win32LastModifiedTime xmlns=\"DAV:\">x</Win32LastModifiedTime>"}};
}

bool same(const std::vector<DeadProperty>& a, const std::vector<DeadProperty>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (a[i].ns != b[i].ns || a[i].name != b[i].name || a[i].xml != b[i].xml) return false;
    return true;
}

struct Dir {
    TempRoot root;
    int fd = open(root.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    ~Dir() { close(fd); }
};

bool has_user_xattrs(const std::string& path) {
    if (setxattr(path.c_str(), "user.uvhttpd.probe", "1", 1, 0) != 0) return false;
    removexattr(path.c_str(), "user.uvhttpd.probe");
    return true;
}

}  // namespace

TEST_CASE("props_store: the blob round-trips any bytes and refuses damage", "[dav][props]") {
    std::vector<DeadProperty> out;
    REQUIRE(props_decode(props_encode(sample()), out));
    CHECK(same(out, sample()));
    REQUIRE(props_decode(props_encode({}), out));
    CHECK(out.empty());
    std::string blob = props_encode(sample());
    for (size_t cut : {size_t{0}, size_t{3}, size_t{8}, blob.size() - 1}) {
        INFO(cut);
        CHECK_FALSE(props_decode(blob.substr(0, cut), out));
    }
    CHECK_FALSE(props_decode("UVHP1\n99999999999999999999 1 1\nabc", out));
    CHECK_FALSE(props_decode("UVHP1\n1 x 1\nabc", out));
}

TEST_CASE("props_store: write, read, copy and remove, in both modes", "[dav][props]") {
    for (PropsMode mode : {PropsMode::Auto, PropsMode::Sidecar}) {
        Dir d;
        INFO("sidecar " << (mode == PropsMode::Sidecar));
        d.root.write("f.txt", "x");
        d.root.mkdir("coll");
        PropsTarget file{d.fd, "f.txt", false}, coll{d.fd, "coll", true};
        std::vector<DeadProperty> got;
        REQUIRE(props_read(mode, file, got) == 0);
        CHECK(got.empty());
        REQUIRE(props_write(mode, file, sample()) == 0);
        REQUIRE(props_write(mode, coll, {sample()[0]}) == 0);
        REQUIRE(props_read(mode, file, got) == 0);
        CHECK(same(got, sample()));
        REQUIRE(props_read(mode, coll, got) == 0);
        CHECK(got.size() == 1);
        if (mode == PropsMode::Sidecar) {
            CHECK(d.root.exists(".uvhttpd-props/f.txt"));
            CHECK(d.root.exists("coll/.uvhttpd-props/.self"));
        } else if (has_user_xattrs(d.root.at("f.txt"))) {
            CHECK(getxattr(d.root.at("f.txt").c_str(), "user.uvhttpd.props", nullptr, 0) > 0);
            CHECK_FALSE(d.root.exists(".uvhttpd-props"));
        }
        d.root.write("g.txt", "y");
        REQUIRE(props_copy(mode, file, {d.fd, "g.txt", false}) == 0);
        REQUIRE(props_read(mode, {d.fd, "g.txt", false}, got) == 0);
        CHECK(same(got, sample()));
        // A rename plus props_moved keeps them under the new name.
        REQUIRE(renameat(d.fd, "g.txt", d.fd, "h.txt") == 0);
        REQUIRE(props_moved({d.fd, "g.txt", false}, {d.fd, "h.txt", false}) == 0);
        REQUIRE(props_read(mode, {d.fd, "h.txt", false}, got) == 0);
        CHECK(same(got, sample()));
        REQUIRE(props_write(mode, file, {}) == 0);
        REQUIRE(props_read(mode, file, got) == 0);
        CHECK(got.empty());
        CHECK_FALSE(d.root.exists(".uvhttpd-props/f.txt"));
    }
}

TEST_CASE("props_store: a set too large for the store is E2BIG and changes nothing", "[dav][props]") {
    Dir d;
    d.root.write("f.txt", "x");
    PropsTarget file{d.fd, "f.txt", false};
    REQUIRE(props_write(PropsMode::Auto, file, {sample()[0]}) == 0);
    std::vector<DeadProperty> huge{{"urn:z", "big", std::string(kMaxPropsBlob, 'v')}};
    CHECK(props_write(PropsMode::Auto, file, huge) == E2BIG);
    std::vector<DeadProperty> got;
    REQUIRE(props_read(PropsMode::Auto, file, got) == 0);
    CHECK(got.size() == 1);
}

TEST_CASE("props_store: larger than an extended attribute takes goes to the sidecar", "[dav][props]") {
    Dir d;
    d.root.write("f.txt", "x");
    PropsTarget file{d.fd, "f.txt", false};
    // 200 KiB: over the 64 KiB a Linux attribute value may be anywhere.
    std::vector<DeadProperty> big{{"urn:z", "big", std::string(200 * 1024, 'v')}};
    REQUIRE(props_write(PropsMode::Auto, file, big) == 0);
    CHECK(d.root.exists(".uvhttpd-props/f.txt"));
    std::vector<DeadProperty> got;
    REQUIRE(props_read(PropsMode::Auto, file, got) == 0);
    CHECK(same(got, big));
    // Back to a small set: the attribute again, and the sidecar entry goes.
    REQUIRE(props_write(PropsMode::Auto, file, {sample()[1]}) == 0);
    REQUIRE(props_read(PropsMode::Auto, file, got) == 0);
    CHECK(same(got, {sample()[1]}));
    if (has_user_xattrs(d.root.at("f.txt"))) CHECK_FALSE(d.root.exists(".uvhttpd-props/f.txt"));
}
