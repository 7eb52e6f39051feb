#include <catch2/catch.hpp>

#include "protocol/write_origin.h"

using uvh::classify_write_origin;
using uvh::host_without_port;
using uvh::write_host_allowed;
using uvh::WriteOrigin;

TEST_CASE("host_without_port strips ports and IPv6 brackets", "[write_origin]") {
    CHECK(host_without_port("localhost:8080") == "localhost");
    CHECK(host_without_port("localhost") == "localhost");
    CHECK(host_without_port("[::1]:80") == "::1");
    CHECK(host_without_port("[::1]") == "::1");
    CHECK(host_without_port("127.0.0.1:1") == "127.0.0.1");
}

TEST_CASE("write hosts: loopback names, IP literals and allowed names", "[write_origin]") {
    const std::vector<std::string> none;
    for (const char* ok : {"localhost", "LocalHost:1", "localhost.", "app.localhost", "127.0.0.1", "127.1.2.3:9",
                           "[::1]:8080", "[::1]", "10.0.0.7:80", "[2001:db8::1]"}) {
        INFO(ok);
        CHECK(write_host_allowed(ok, none));
    }
    for (const char* bad : {"rebind.attacker.example", "localhost.attacker.example", "evil-localhost", "",
                            "127.0.0.1.nip.io", "[::1", "1.2.3", "::1"}) {
        INFO(bad);
        CHECK_FALSE(write_host_allowed(bad, none));
    }
    const std::vector<std::string> allowed{"files.example", ".lan.example"};
    CHECK(write_host_allowed("files.example", allowed));
    CHECK(write_host_allowed("FILES.example:443", allowed));
    CHECK(write_host_allowed("files.example.", allowed));
    CHECK(write_host_allowed("lan.example", allowed));
    CHECK(write_host_allowed("nas.lan.example:8080", allowed));
    CHECK_FALSE(write_host_allowed("xfiles.example", allowed));
    CHECK_FALSE(write_host_allowed("evillan.example", allowed));
    CHECK(write_host_allowed("anything.example", {"*"}));
}

TEST_CASE("write origins: Fetch Metadata first, then Origin against Host", "[write_origin]") {
    const std::vector<std::string> none;
    // Not a browser, or the user typing the URL.
    CHECK(classify_write_origin("", "", "localhost:1", none) == WriteOrigin::Allowed);
    CHECK(classify_write_origin("", "none", "localhost:1", none) == WriteOrigin::Allowed);
    CHECK(classify_write_origin("http://localhost:1", "same-origin", "localhost:1", none) == WriteOrigin::Allowed);
    CHECK(classify_write_origin("https://evil.example", "cross-site", "localhost:1", none) ==
          WriteOrigin::CrossSite);
    CHECK(classify_write_origin("http://localhost:2", "same-site", "localhost:1", none) == WriteOrigin::CrossSite);
    // Sec-Fetch-Site says cross-site even when Origin looks like ours.
    CHECK(classify_write_origin("http://localhost:1", "cross-site", "localhost:1", none) == WriteOrigin::CrossSite);
    // Origin alone (older browsers): compared with Host, default ports dropped.
    CHECK(classify_write_origin("http://localhost:1", "", "localhost:1", none) == WriteOrigin::Allowed);
    CHECK(classify_write_origin("http://LOCALHOST", "", "localhost:80", none) == WriteOrigin::Allowed);
    CHECK(classify_write_origin("https://files.example", "", "files.example", none) == WriteOrigin::Allowed);
    CHECK(classify_write_origin("http://localhost:2", "", "localhost:1", none) == WriteOrigin::CrossSite);
    CHECK(classify_write_origin("null", "", "localhost:1", none) == WriteOrigin::CrossSite);
    CHECK(classify_write_origin("localhost:1", "", "localhost:1", none) == WriteOrigin::CrossSite);
    // Operator-allowed origins, exact.
    const std::vector<std::string> app{"https://app.example"};
    CHECK(classify_write_origin("https://app.example", "cross-site", "localhost:1", app) == WriteOrigin::Allowed);
    CHECK(classify_write_origin("HTTPS://APP.EXAMPLE", "cross-site", "localhost:1", app) == WriteOrigin::Allowed);
    CHECK(classify_write_origin("https://app.example.evil", "cross-site", "localhost:1", app) ==
          WriteOrigin::CrossSite);
    CHECK(classify_write_origin("https://x.example", "cross-site", "localhost:1", {"*"}) == WriteOrigin::Allowed);
}
