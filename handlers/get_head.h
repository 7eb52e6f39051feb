// GET and HEAD of files and directories.
#pragma once

#include "handlers/exchange.h"

namespace uvh {

// Serves ex.path(): a file (validators, conditional requests, ranges,
// precompressed variants), a directory's index.html or listing, or a 301 to
// the slash form of a directory URL. HEAD gets GET's head.
void handle_get(Exchange& ex);

// GET again after waiting for a compression (the coding cache calls it):
// answers from the cache and never starts another compression (identity if
// the result is not there).
void after_compression(Exchange& ex);

}  // namespace uvh
