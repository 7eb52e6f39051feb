#include "protocol/http_date.h"

#include <cstring>

#include "protocol/text.h"

namespace uvh {

namespace {

constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kLongDays[] = {"Sunday", "Monday", "Tuesday", "Wednesday",
                                     "Thursday", "Friday", "Saturday"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void put2(char* p, int v) {
    p[0] = static_cast<char>('0' + v / 10);
    p[1] = static_cast<char>('0' + v % 10);
}

// A tiny cursor over the input; every parse step either advances or fails.
struct Cursor {
    std::string_view s;
    size_t i = 0;

    bool lit(std::string_view l) {
        if (s.substr(i, l.size()) != l) return false;
        i += l.size();
        return true;
    }
    bool digits(size_t n, int& out) {
        if (i + n > s.size()) return false;
        int v = 0;
        for (size_t k = 0; k < n; ++k) {
            char c = s[i + k];
            if (c < '0' || c > '9') return false;
            v = v * 10 + (c - '0');
        }
        out = v;
        i += n;
        return true;
    }
    bool month(int& out) {
        for (int m = 0; m < 12; ++m) {
            if (lit(kMonths[m])) {
                out = m;
                return true;
            }
        }
        return false;
    }
    bool time_of_day(struct tm& tm) {
        return digits(2, tm.tm_hour) && lit(":") && digits(2, tm.tm_min) && lit(":") &&
               digits(2, tm.tm_sec);
    }
    bool done() const { return i == s.size(); }
};

std::optional<time_t> finish(struct tm& tm) {
    if (tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_mday < 1 || tm.tm_mday > 31)
        return std::nullopt;
    struct tm copy = tm;
    time_t t = timegm(&copy);
    // -1 is also the valid answer for 1969-12-31 23:59:59.
    bool epoch_minus_one = tm.tm_year == 69 && tm.tm_mon == 11 && tm.tm_mday == 31 && tm.tm_hour == 23 &&
                           tm.tm_min == 59 && tm.tm_sec == 59;
    if (t == static_cast<time_t>(-1) && !epoch_minus_one) return std::nullopt;
    return t;
}

// IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
std::optional<time_t> parse_imf(std::string_view s) {
    Cursor c{s};
    struct tm tm {};
    bool day = false;
    for (const char* d : kDays) day = day || c.lit(d);
    if (!day || !c.lit(", ") || !c.digits(2, tm.tm_mday) || !c.lit(" ") || !c.month(tm.tm_mon) ||
        !c.lit(" ") || !c.digits(4, tm.tm_year) || !c.lit(" ") || !c.time_of_day(tm) ||
        !c.lit(" GMT") || !c.done())
        return std::nullopt;
    tm.tm_year -= 1900;
    return finish(tm);
}

// RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT". Two-digit years are read as the
// most recent year with those digits that is not more than 50 years in the
// future (RFC 9110 §5.6.7).
std::optional<time_t> parse_rfc850(std::string_view s) {
    Cursor c{s};
    struct tm tm {};
    bool day = false;
    for (const char* d : kLongDays) day = day || c.lit(d);
    int yy = 0;
    if (!day || !c.lit(", ") || !c.digits(2, tm.tm_mday) || !c.lit("-") || !c.month(tm.tm_mon) ||
        !c.lit("-") || !c.digits(2, yy) || !c.lit(" ") || !c.time_of_day(tm) || !c.lit(" GMT") ||
        !c.done())
        return std::nullopt;
    time_t now = std::time(nullptr);
    struct tm now_tm {};
    gmtime_r(&now, &now_tm);
    int year = now_tm.tm_year + 1900;
    int candidate = (year / 100) * 100 + yy;
    if (candidate > year + 50) candidate -= 100;
    tm.tm_year = candidate - 1900;
    return finish(tm);
}

// asctime: "Sun Nov  6 08:49:37 1994"
std::optional<time_t> parse_asctime(std::string_view s) {
    Cursor c{s};
    struct tm tm {};
    bool day = false;
    for (const char* d : kDays) day = day || c.lit(d);
    if (!day || !c.lit(" ") || !c.month(tm.tm_mon) || !c.lit(" ")) return std::nullopt;
    if (c.lit(" ")) {
        if (!c.digits(1, tm.tm_mday)) return std::nullopt;
    } else if (!c.digits(2, tm.tm_mday)) {
        return std::nullopt;
    }
    if (!c.lit(" ") || !c.time_of_day(tm) || !c.lit(" ") || !c.digits(4, tm.tm_year) || !c.done())
        return std::nullopt;
    tm.tm_year -= 1900;
    return finish(tm);
}

}  // namespace

void format_http_date(time_t t, char* out) {
    struct tm tm {};
    gmtime_r(&t, &tm);
    std::memcpy(out, kDays[tm.tm_wday], 3);
    out[3] = ',';
    out[4] = ' ';
    put2(out + 5, tm.tm_mday);
    out[7] = ' ';
    std::memcpy(out + 8, kMonths[tm.tm_mon], 3);
    out[11] = ' ';
    int year = tm.tm_year + 1900;
    put2(out + 12, (year / 100) % 100);
    put2(out + 14, year % 100);
    out[16] = ' ';
    put2(out + 17, tm.tm_hour);
    out[19] = ':';
    put2(out + 20, tm.tm_min);
    out[22] = ':';
    put2(out + 23, tm.tm_sec);
    std::memcpy(out + 25, " GMT", 4);
}

std::string http_date(time_t t) {
    std::string s(kHttpDateLen, '\0');
    format_http_date(t, s.data());
    return s;
}

std::optional<time_t> parse_http_date(std::string_view s) {
    // Surrounding whitespace is not part of the field value (RFC 9110 §5.5).
    s = trim_ows(s);
    if (auto t = parse_imf(s)) return t;
    if (auto t = parse_rfc850(s)) return t;
    return parse_asctime(s);
}

void DateCache::refresh(time_t now) {
    if (now == now_) return;
    now_ = now;
    std::memcpy(line_, "Date: ", 6);
    format_http_date(now, line_ + 6);
    line_[6 + kHttpDateLen] = '\r';
    line_[6 + kHttpDateLen + 1] = '\n';
}

}  // namespace uvh
