// The one interface core has to the application it serves, beside the
// Exchange each request is answered through. core/server.cpp opens it,
// starts it once it listens, hands it every request and closes it when the
// last connection is gone, without knowing what it serves or which services
// it runs (GUIDE item 29). uvhttpd's application is built from the command
// line by handlers/site_builder.h and assembled in core/main.cpp.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "handlers/exchange.h"
#include "handlers/metrics.h"

namespace uvh {

class Application {
public:
    virtual ~Application() = default;

    // Opens what the application needs before the server listens (the loop
    // is not running yet: blocking calls hold up no client). `metrics` is the
    // server's set of counters: core counts connections, bytes and requests
    // in it, the application adds its own and renders them; it outlives the
    // application. False with `error` set (one readable line): the server
    // does not start, and the application is destroyed without close().
    virtual bool open(uv_loop_t* loop, Metrics& metrics, std::string& error) = 0;

    // The server listens: background work may begin (on the loop thread).
    virtual void start() = 0;

    // What handlers see through Exchange::site(). Valid after open().
    virtual const Site& site() const = 0;

    // One complete, validated request head; answered through `ex`, at once
    // or later.
    virtual void dispatch(Exchange& ex) = 0;

    // No connection is left and none will come: stop every service and
    // call `closed` on the loop thread once nothing the application started
    // is in flight. Called once; `closed` may run inside close() when there
    // is nothing to wait for.
    virtual void close(std::function<void()> closed) = 0;
};

// The application this project serves (handlers/site_builder.cpp): the
// Site and its services built from the command line's Config. Declared here
// so that the one place that assembles the program (core/main.cpp) needs no
// handler header beyond this interface.
struct Config;
std::unique_ptr<Application> build_site(const Config& config);

}  // namespace uvh
