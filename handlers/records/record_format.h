// The record store's line format, pure: no files, no HTTP. The store
// behind POST/GET/PUT/DELETE on /database.txt is the seed's "database.txt"
// in the served directory, done properly (shared/seed/NOTES.md).
//
// Format: one line per record, the id, one space, then the fields as
// application/x-www-form-urlencoded with form_encode for names and values, so
// newlines, '&', '=', '%' and any other byte round-trip exactly:
//
//     17 mis=17&name=Akshay&email=akshay%40gmail.com\n
//
// The store has three layers, one folder: this format; RecordFile
// (record_file.h), the blocking file operations; and RecordStore
// (record_store.h), the threadpool and group commit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/percent.h"

namespace uvh {

struct Record {
    std::string id;
    FormFields fields;
};

// 1 to 64 of [A-Za-z0-9._-], and neither "." nor ".." (the id also names a
// URL path segment, /database.txt/ID, where those two would be dot segments).
bool valid_record_id(std::string_view id);

// An id of only digits is a number, and numbers are below 10^18: at most
// kMaxNumericDigits digits after any leading zeros ("007" is the number 7,
// but its own id). POST and PUT refuse a larger one with 400; one already in
// the file (a hand edit) stays a record that auto-numbering skips.
inline constexpr size_t kMaxNumericDigits = 18;
inline constexpr uint64_t kMaxNumeric = 999'999'999'999'999'999ull;
bool numeric_id_in_range(std::string_view id);

// "ID name=value&...\n". The id must be valid (callers check it first).
std::string format_record_line(const Record& r);

// Parses one line without its '\n'. False (and `out` unspecified) for a
// missing space, an invalid id, a byte form_encode never produces, a piece
// without '=', or bad percent-encoding.
bool parse_record_line(std::string_view line, Record& out);

// True for an id of only digits (a number, see numeric_id_in_range).
bool all_digits(std::string_view s);

// The value of an all-digit id in range (numeric_id_in_range).
uint64_t number_value(std::string_view digits);

// The id of a stored line: everything before the first space (the whole
// line if there is none), whether or not the rest parses, so that even a
// hand-damaged line keeps its id taken.
inline std::string_view line_id(std::string_view line) { return line.substr(0, line.find(' ')); }

// Calls fn(line) for every complete line of `content`, without its line
// ending ("\n", or "\r\n" for a file edited on Windows); returns the length
// of the complete lines (an unterminated tail is not visited).
template <typename Fn>
size_t for_each_line(std::string_view content, Fn&& fn) {
    size_t start = 0;
    for (;;) {
        size_t nl = content.find('\n', start);
        if (nl == std::string_view::npos) return start;
        size_t end = nl > start && content[nl - 1] == '\r' ? nl - 1 : nl;
        fn(content.substr(start, end - start));
        start = nl + 1;
    }
}

}  // namespace uvh
