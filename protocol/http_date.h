// HTTP-date (RFC 9110 §5.6.7): formatting the IMF-fixdate form and parsing
// all three forms a recipient must accept.
#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace uvh {

constexpr size_t kHttpDateLen = 29;  // "Sun, 06 Nov 1994 08:49:37 GMT"

// Writes exactly kHttpDateLen characters (no terminator) for a UTC time.
void format_http_date(time_t t, char* out);
std::string http_date(time_t t);

// Accepts IMF-fixdate, the obsolete RFC 850 form and asctime() form.
// Returns nullopt for anything else (the caller then ignores the field, as
// RFC 9110 §13.1.3 and §13.1.4 require for conditional headers).
std::optional<time_t> parse_http_date(std::string_view s);

// The "Date: ...\r\n" header line, reformatted at most once a second. The
// server's timer calls refresh(); readers take the preformatted line.
class DateCache {
public:
    DateCache() { refresh(std::time(nullptr)); }
    void refresh(time_t now);
    time_t now() const { return now_; }
    std::string_view header_line() const { return {line_, sizeof line_}; }

private:
    time_t now_ = 0;
    char line_[6 + kHttpDateLen + 2] = {};  // "Date: " + date + CRLF
};

}  // namespace uvh
