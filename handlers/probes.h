// The operational endpoints as routes: liveness (--health-path), readiness
// (--ready-path) and Prometheus metrics (--metrics-path). They come before
// files of the same name; an empty path turns one off.
#pragma once

#include <vector>

#include "handlers/routes.h"

namespace uvh {

// Appends the three probe routes (GET and HEAD only) to `table`.
void append_probe_routes(std::vector<Route>& table);

}  // namespace uvh
