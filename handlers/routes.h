// The route table: which resource a request is for, the methods it takes,
// a handler per method, which of them are writes, and what happens to a
// request body. Routes are data (uWebSockets' HttpRouter, nginx's phase
// handlers): Allow headers and OPTIONS answers are derived from the table,
// never written by hand. handlers/router.cpp walks it for every request.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "handlers/exchange.h"

namespace uvh {

// What the router does with a request body before the handler runs.
enum class BodyPolicy : uint8_t {
    Read,     // the handler reads it, or answers without it (and the
              // connection reads and drops a small body, or closes)
    Discard,  // read and dropped before the handler runs
    Refuse,   // a request with a body is answered 415 (RFC 4918 §9.3.1)
};

// A write is left out of Allow and answered 405 with --read-only, needs
// the token when one is set, and passes the Host/Origin guard.
enum class Access : uint8_t { Read, Write };

using Handler = void (*)(Exchange& ex);

struct MethodRoute {
    Method method = Method::Other;
    Handler handler = nullptr;  // nullptr for OPTIONS: 204 with the route's Allow
    BodyPolicy body = BodyPolicy::Discard;
    Access access = Access::Read;
    std::string_view refusal;  // the 415 text under BodyPolicy::Refuse
};

struct Route {
    std::string_view name;  // for tests and messages
    // Whether the route serves this request. `path` is Exchange::path().
    bool (*matches)(const Site& site, const Request& req, std::string_view path) = nullptr;
    // In Allow order.
    std::vector<MethodRoute> methods;
    // The 405 text for a method the route does not take.
    std::string_view refusal;
    // Every method goes to `any`, before method, write or body checks (the
    // dotfile route: such paths do not exist, whatever the method).
    Handler any = nullptr;
    // OPTIONS * describes the server, not a resource: its Allow is that of
    // the resources (the file route), RFC 9110 §9.3.7.
    bool server_wide = false;
    // A WebDAV resource: OPTIONS says "DAV: 1, 2" (RFC 4918 §10.1).
    bool dav = false;

    // Derived from `methods` when the table is built.
    std::string allow_writes;  // every method
    std::string allow_reads;   // without the writes (--read-only)

    const MethodRoute* find(Method m) const;
    std::string_view allow(const Site& site) const;
};

// The token for a method ("GET", "MKCOL").
std::string_view method_token(Method m);

// Fills allow_writes and allow_reads from `methods`.
void derive_allow(Route& route);

// The table, in match order: the first route that matches serves the
// request. The last route (files) matches every path.
const std::vector<Route>& route_table();

const Route& find_route(const Site& site, const Request& req, std::string_view path);

// Whether any route of the table takes the method.
bool method_routed(Method m);

// The Allow value for the resource at `path` under this site's
// configuration (no Asterisk form).
std::string_view allow_for(const Site& site, std::string_view path);

}  // namespace uvh
