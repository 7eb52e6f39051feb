#include "protocol/status.h"

#include <array>
#include <string>

namespace uvh {

std::string_view reason_phrase(int status) {
    switch (status) {
    case 100: return "Continue";
    case 104: return "Upload Resumption Supported";  // draft-ietf-httpbis-resumable-upload
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 301: return "Moved Permanently";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 460: return "Checksum Mismatch";  // tus 1.0.0, checksum extension
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
    }
}

namespace {

// Status lines for 100..599, formatted once. A function-local static keeps
// the initialisation order safe for callers in other translation units.
const std::array<std::string, 500>& status_lines() {
    static const std::array<std::string, 500> lines = [] {
        std::array<std::string, 500> a;
        for (int code = 100; code < 600; ++code) {
            std::string s = "HTTP/1.1 ";
            s += std::to_string(code);
            s += ' ';
            s += reason_phrase(code);
            s += "\r\n";
            a[static_cast<size_t>(code - 100)] = std::move(s);
        }
        return a;
    }();
    return lines;
}

}  // namespace

std::string_view status_line(int status) {
    if (status < 100 || status > 599) status = 500;
    return status_lines()[static_cast<size_t>(status - 100)];
}

}  // namespace uvh
