// uvhttpd's application: the Site handlers see and the services behind it
// (the served root, the lock-and-generation service, the file cache, the
// record store, the start-up sweep of temporary files), built from the
// command line. core/main.cpp assembles it with a Server; core only knows
// the Application interface (handlers/application.h).
//
// Config (core/config.h) is a plain struct of command-line values with no
// handler types in it; this file is the one place that turns it into the
// site's settings and services.
#pragma once

#include <memory>

#include "core/config.h"
#include "handlers/application.h"

namespace uvh {

// Nothing is opened until Application::open(); the configuration is copied.
// build_site(const Config&) is declared in handlers/application.h.

}  // namespace uvh
