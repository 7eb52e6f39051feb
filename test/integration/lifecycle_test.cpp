// Server lifecycle: graceful stop, resets, and no leaked descriptors.
#include <sys/socket.h>

#include <catch2/catch.hpp>

#include "test/integration/harness.h"

using namespace uvh::test;

TEST_CASE("shutdown lets an in-flight large response finish", "[lifecycle]") {
    TestServer t;
    std::string data(4 << 20, 'z');
    t.root().write("big.bin", data);
    RawClient c(t);
    c.send("GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n");
    // Wait until the response has started, then stop the server.
    REQUIRE(t.spin_until([&] {
        char b;
        return recv(c.fd(), &b, 1, MSG_PEEK) == 1;
    }));
    t.server().shutdown();
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body.size() == data.size());
    CHECK(t.spin_until([&] { return t.server().finished(); }));
}

TEST_CASE("shutdown closes idle keep-alive connections", "[lifecycle]") {
    TestServer t;
    t.root().write("a.txt", "A");
    RawClient c(t);
    c.send("GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    REQUIRE(c.read_response());
    t.stop();
    CHECK(c.wait_closed());
}

TEST_CASE("peer resets mid-request and mid-response leak nothing", "[lifecycle][faults]") {
    TestServer t;
    t.root().write("big.bin", std::string(8 << 20, 'b'));
    t.root().write("a.txt", "A");
    size_t before = open_fd_count();
    for (int i = 0; i < 20; ++i) {
        {
            RawClient c(t);
            c.send_and_wait_read("GET /a.txt HTTP/1.1\r\nHo");  // mid-request: the server has the part
            c.reset();
        }
        {
            RawClient c(t);
            c.send("GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n");
            t.spin_until([&] {
                char b;
                return recv(c.fd(), &b, 1, MSG_PEEK) == 1;
            });
            c.reset();
        }
    }
    // Every connection goes away and the server keeps serving.
    CHECK(t.spin_until([&] { return t.server().metrics().open_connections == 0; }));
    CHECK(t.get("/a.txt").body == "A");
    CHECK(t.spin_until([&] { return t.server().metrics().open_connections == 0; }));
    CHECK(t.spin_until([&] { return open_fd_count() <= before; }));
}
