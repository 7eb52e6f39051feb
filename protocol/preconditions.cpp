#include "protocol/preconditions.h"

#include "protocol/etag.h"
#include "protocol/http_date.h"
#include "protocol/text.h"

namespace uvh {

Precondition evaluate_preconditions(const Conditionals& c, bool safe, const Representation& r,
                                    time_t now) {
    // Step 1: If-Match. "*" matches any current representation; otherwise a
    // strong comparison against the current tag (§13.1.1).
    if (c.if_match.data()) {
        bool ok = r.exists && (is_star(c.if_match) || etag_list_matches(c.if_match, r.etag, true));
        if (!ok) return Precondition::Failed;
    } else if (c.if_unmodified_since.data() && r.exists) {
        // Step 2: If-Unmodified-Since, only without If-Match, ignored when the
        // date is invalid or the resource has no modification date (§13.1.4).
        if (auto since = parse_http_date(c.if_unmodified_since)) {
            if (r.last_modified > *since) return Precondition::Failed;
        }
    }

    // Step 3: If-None-Match, weak comparison (§13.1.2).
    if (c.if_none_match.data()) {
        bool matched = r.exists && (is_star(c.if_none_match) ||
                                    etag_list_matches(c.if_none_match, r.etag, false));
        if (matched) return safe ? Precondition::NotModified : Precondition::Failed;
    } else if (safe && c.if_modified_since.data() && r.exists) {
        // Step 4: If-Modified-Since, GET/HEAD only, without If-None-Match,
        // ignored when invalid or later than the server's clock (§13.1.3).
        if (auto since = parse_http_date(c.if_modified_since)) {
            if (*since <= now && r.last_modified <= *since) return Precondition::NotModified;
        }
    }
    return Precondition::Proceed;
}

bool if_range_allows_partial(std::string_view if_range, const Representation& r) {
    if (!if_range.data()) return true;
    if (!r.exists) return false;
    if_range = trim_ows(if_range);
    // An entity-tag starts with a quote or W/"; a date starts with a day
    // name (which may well be "Wed").
    if (if_range.starts_with("W/\"")) return false;  // strong comparison: weak never matches
    if (if_range.starts_with("\"")) return if_range == r.etag;
    auto date = parse_http_date(if_range);
    return date && *date == r.last_modified;
}

}  // namespace uvh
