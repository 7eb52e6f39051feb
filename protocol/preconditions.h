// Conditional requests (RFC 9110 §13): evaluation of If-Match,
// If-Unmodified-Since, If-None-Match and If-Modified-Since in the order of
// §13.2.2, and If-Range (§13.1.5). Shared by every method's handler.
#pragma once

#include <ctime>
#include <string_view>

namespace uvh {

// The four precondition fields as received; a default-constructed view
// (data() == nullptr) means the field was absent.
struct Conditionals {
    std::string_view if_match;
    std::string_view if_none_match;
    std::string_view if_modified_since;
    std::string_view if_unmodified_since;

    bool any() const {
        return if_match.data() || if_none_match.data() || if_modified_since.data() ||
               if_unmodified_since.data();
    }
};

// What the target currently is. A missing resource has exists == false.
struct Representation {
    bool exists = false;
    std::string_view etag;     // strong tag, quotes included
    time_t last_modified = 0;  // seconds
};

enum class Precondition {
    Proceed,      // perform the method
    NotModified,  // 304 (GET/HEAD only)
    Failed,       // 412
};

// `safe` is true for GET and HEAD. `now` is the server's clock, used to
// ignore If-Modified-Since dates in the future.
Precondition evaluate_preconditions(const Conditionals& c, bool safe, const Representation& r,
                                    time_t now);

// RFC 9110 §13.1.5: whether a Range may be honoured given If-Range. An
// absent If-Range allows it. An entity-tag must match strongly; a date must
// equal Last-Modified exactly.
bool if_range_allows_partial(std::string_view if_range, const Representation& r);

}  // namespace uvh
