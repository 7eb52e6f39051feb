// --workers N: a small supervisor that owns the listening socket and runs N
// single-loop workers (this same binary, started with --listen-fd), each
// accepting from the shared socket. A worker that dies is started again;
// SIGTERM/SIGINT/SIGHUP are forwarded. The socket never closes while the
// supervisor lives, so a worker crash loses no queued connection.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"

namespace uvh {

// Runs the supervisor until the workers have stopped after a signal.
// `argv` is the original command line (re-used for the workers). Returns
// the process exit code.
int run_supervisor(const Config& config, int argc, char** argv);

}  // namespace uvh
