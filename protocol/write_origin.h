// Who may write when writes are open: the defence against DNS rebinding and
// cross-site requests (the hardening issue, item 2).
//
// A web page can make a browser send requests to 127.0.0.1 in two ways. It
// can post a form or fetch() across origins (a "cross-site" request: the
// browser says so in Origin and Sec-Fetch-Site, Fetch standard §3.1 and
// W3C Fetch Metadata), or it can rebind its own DNS name to 127.0.0.1 so
// that its requests are same-origin to the browser but carry the page's
// name in Host (RFC 9110 §7.2). The first is refused by looking at Origin
// and Sec-Fetch-Site, the second by looking at Host: a rebinding attack
// needs a DNS name, so IP literals and loopback names are safe, and any
// other name must be one the operator allowed.
//
// Pure functions; no sockets.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace uvh {

// The host part of a Host field value or of an authority: "[::1]:80" ->
// "::1", "Example.org:8080" -> "Example.org", "1.2.3.4" -> "1.2.3.4".
std::string_view host_without_port(std::string_view authority);

// True when `host` (a Host field value, port allowed) is a loopback name
// ("localhost" or a name under ".localhost", RFC 6761 §6.3), an IP literal
// (v4 dotted or bracketed v6: such a Host cannot come from a rebound name),
// or matches an entry of `allowed`: "name" matches that name exactly,
// ".name" matches the name and every name under it, "*" matches anything.
// Comparison ignores ASCII case and a trailing dot.
bool write_host_allowed(std::string_view host, const std::vector<std::string>& allowed);

enum class WriteOrigin {
    Allowed,     // no browser context, the same origin, or an allowed one
    CrossSite,   // a browser request from another origin
};

// Decides from the request's Origin and Sec-Fetch-Site (either may be
// empty: absent) whether a write comes from a page of another origin.
// `host` is the request's Host, to recognise the same origin when a browser
// sends Origin without Sec-Fetch-Site. `allowed` lists origins the operator
// trusts ("https://app.example", exact, case-insensitive; "*" for any).
WriteOrigin classify_write_origin(std::string_view origin, std::string_view sec_fetch_site, std::string_view host,
                                  const std::vector<std::string>& allowed);

}  // namespace uvh
