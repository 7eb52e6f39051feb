#include "test/common/raw_http.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace uvh::test {

std::string lower_ascii(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

bool HttpResponse::has(std::string_view name) const { return headers.count(lower_ascii(name)) > 0; }

std::string HttpResponse::header(std::string_view name) const {
    auto it = headers.find(lower_ascii(name));
    return it == headers.end() ? std::string() : it->second;
}

size_t HttpResponse::count(std::string_view name) const { return headers.count(lower_ascii(name)); }

namespace {

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool is_tchar(char c) {
    unsigned char u = static_cast<unsigned char>(c);
    return (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') ||
           (u != 0 && std::strchr("!#$%&'*+-.^_`|~", u) != nullptr);
}

std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// A line ending in CRLF at `pos`: the line without it, or Incomplete; a
// bare LF inside is Malformed.
Parse take_line(std::string_view buf, size_t pos, std::string_view& line, size_t& next, std::string& error) {
    size_t lf = buf.find('\n', pos);
    if (lf == std::string_view::npos) return Parse::Incomplete;
    if (lf == pos || buf[lf - 1] != '\r') {
        error = "a line ends in a bare LF at offset " + std::to_string(lf);
        return Parse::Malformed;
    }
    line = buf.substr(pos, lf - 1 - pos);
    if (line.find('\r') != std::string_view::npos) {
        error = "a bare CR in a line at offset " + std::to_string(pos);
        return Parse::Malformed;
    }
    next = lf + 1;
    return Parse::Complete;
}

// Field lines up to the empty line: "Name: value" each.
Parse field_line(std::string_view line, std::string& name, std::string& value, std::string& error) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
        error = "malformed field line '" + std::string(line) + "'";
        return Parse::Malformed;
    }
    for (char c : line.substr(0, colon)) {
        if (!is_tchar(c)) {
            error = "bad field name in '" + std::string(line) + "'";
            return Parse::Malformed;
        }
    }
    name = lower_ascii(line.substr(0, colon));
    value = std::string(trim_ows(line.substr(colon + 1)));
    return Parse::Complete;
}

}  // namespace

Parse decode_chunked(std::string_view buf, size_t pos, bool strict, ChunkedBody& out) {
    out = ChunkedBody{};
    for (;;) {
        std::string_view line;
        size_t next = 0;
        Parse p = take_line(buf, pos, line, next, out.error);
        if (p != Parse::Complete) return p;
        // chunk-size = 1*HEXDIG
        size_t i = 0;
        uint64_t size = 0;
        while (i < line.size() && hex_digit(line[i]) >= 0) {
            if (size > (UINT64_MAX >> 4)) {
                out.error = "chunk size overflows: '" + std::string(line) + "'";
                return Parse::Malformed;
            }
            size = size * 16 + static_cast<uint64_t>(hex_digit(line[i]));
            ++i;
        }
        if (i == 0) {
            out.error = "chunk size line without a size: '" + std::string(line) + "'";
            return Parse::Malformed;
        }
        if (strict && line[0] == '0' && i > 1) {
            out.error = "chunk size with a leading zero: '" + std::string(line) + "'";
            return Parse::Malformed;
        }
        std::string_view ext = line.substr(i);
        if (!ext.empty()) {
            if (strict) {
                out.error = "chunk extension or junk after the size: '" + std::string(line) + "'";
                return Parse::Malformed;
            }
            // chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
            // with ext-val a token or a quoted-string: checked loosely.
            std::string_view e = trim_ows(ext);
            if (e.empty() || e.front() != ';') {
                out.error = "junk after the chunk size: '" + std::string(line) + "'";
                return Parse::Malformed;
            }
        }
        pos = next;
        if (size == 0) break;
        if (size > buf.size() - pos || buf.size() - pos - size < 2) return Parse::Incomplete;
        if (buf.substr(pos + size, 2) != "\r\n") {
            out.error = "chunk data of " + std::to_string(size) + " bytes at offset " + std::to_string(pos) +
                        " is not followed by CRLF";
            return Parse::Malformed;
        }
        out.data.append(buf.substr(pos, size));
        out.sizes.push_back(size);
        pos += size + 2;
    }
    // trailer-section CRLF
    for (;;) {
        std::string_view line;
        size_t next = 0;
        Parse p = take_line(buf, pos, line, next, out.error);
        if (p != Parse::Complete) return p;
        pos = next;
        if (line.empty()) break;
        if (strict) {
            out.error = "a trailer field: '" + std::string(line) + "'";
            return Parse::Malformed;
        }
        std::string name, value;
        if (field_line(line, name, value, out.error) != Parse::Complete) return Parse::Malformed;
        out.trailers.emplace(std::move(name), std::move(value));
    }
    out.end = pos;
    return Parse::Complete;
}

Parse parse_response(std::string_view buf, bool head_only, bool eof, HttpResponse& out, size_t& used,
                     std::string* error) {
    std::string err;
    auto bad = [&](std::string why) {
        if (error) *error = std::move(why);
        return Parse::Malformed;
    };
    size_t end = buf.find("\r\n\r\n");
    if (end == std::string_view::npos) return Parse::Incomplete;
    HttpResponse r;
    std::string_view line;
    size_t pos = 0;
    if (take_line(buf, 0, line, pos, err) != Parse::Complete) return bad(err);
    // HTTP-version SP 3DIGIT SP [ reason-phrase ]
    size_t sp1 = line.find(' ');
    if (sp1 == std::string_view::npos || !line.starts_with("HTTP/") || line.size() < sp1 + 4)
        return bad("bad status line: " + std::string(line));
    r.version = std::string(line.substr(0, sp1));
    for (size_t i = sp1 + 1; i < sp1 + 4; ++i)
        if (line[i] < '0' || line[i] > '9') return bad("bad status code: " + std::string(line));
    r.status = std::atoi(std::string(line.substr(sp1 + 1, 3)).c_str());
    if (line.size() > sp1 + 4 && line[sp1 + 4] != ' ') return bad("bad status line: " + std::string(line));
    if (line.size() > sp1 + 5) r.reason = std::string(line.substr(sp1 + 5));
    while (pos < end + 2) {
        size_t next = 0;
        if (take_line(buf, pos, line, next, err) != Parse::Complete) return bad(err);
        std::string name, value;
        if (field_line(line, name, value, err) != Parse::Complete) return bad(err);
        r.headers.emplace(std::move(name), std::move(value));
        pos = next;
    }
    size_t body_start = end + 4;
    used = body_start;
    bool no_body = head_only || r.status < 200 || r.status == 204 || r.status == 304;
    std::string te = lower_ascii(r.header("transfer-encoding"));
    if (no_body) {
        r.framing = Framing::None;
    } else if (r.has("transfer-encoding") && trim_ows(te.substr(te.rfind(',') == std::string::npos ? 0 : te.rfind(',') + 1)) == "chunked") {
        ChunkedBody cb;
        Parse p = decode_chunked(buf, body_start, false, cb);
        if (p == Parse::Malformed) return bad(cb.error);
        if (p == Parse::Incomplete) return Parse::Incomplete;
        r.framing = Framing::Chunked;
        r.body = std::move(cb.data);
        r.chunk_sizes = std::move(cb.sizes);
        r.trailers = std::move(cb.trailers);
        used = cb.end;
    } else if (r.has("content-length")) {
        std::string v = r.header("content-length");
        if (v.empty() || v.size() > 19 || v.find_first_not_of("0123456789") != std::string::npos)
            return bad("bad Content-Length: " + v);
        size_t n = std::strtoull(v.c_str(), nullptr, 10);
        if (buf.size() - body_start < n) return Parse::Incomplete;
        r.framing = Framing::Length;
        r.body = std::string(buf.substr(body_start, n));
        used = body_start + n;
    } else {
        if (!eof) return Parse::Incomplete;
        r.framing = Framing::Close;
        r.body = std::string(buf.substr(body_start));
        used = buf.size();
    }
    r.raw = std::string(buf.substr(0, used));
    out = std::move(r);
    return Parse::Complete;
}

// ---------------------------------------------------------------- RawSocket

RawSocket::~RawSocket() { close(); }

std::string RawSocket::connect(uint16_t port) {
    close();
    buf_.clear();
    eof_ = reset_ = false;
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0) return std::string("socket: ") + std::strerror(errno);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        if (errno != EINPROGRESS && errno != EINTR) return std::string("connect: ") + std::strerror(errno);
        struct pollfd p {fd_, POLLOUT, 0};
        for (int i = 0; i < 5000 && ::poll(&p, 1, 1) <= 0; ++i) {
        }
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0 || !(p.revents & POLLOUT))
            return std::string("connect (completion): ") + std::strerror(err ? err : ETIMEDOUT);
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return {};
}

RawSocket::Sent RawSocket::send_all(std::string_view bytes, Clock::time_point deadline, const Pump& pump) {
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
            // The server may be blocked writing to us: keep reading.
            fill();
            if (Clock::now() > deadline) return Sent::TimedOut;
            pump();
            continue;
        }
        return Sent::PeerGone;  // EPIPE / ECONNRESET: the server closed
    }
    return Sent::All;
}

bool RawSocket::fill() {
    if (fd_ < 0 || eof_) return false;
    char tmp[65536];
    for (;;) {
        ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
        if (n > 0) {
            buf_.append(tmp, static_cast<size_t>(n));
            continue;
        }
        if (n == 0) {
            eof_ = true;
            return false;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return true;
        eof_ = true;  // a reset counts as closed
        reset_ = true;
        return false;
    }
}

std::optional<HttpResponse> RawSocket::read_response(bool head_only, Clock::time_point deadline, const Pump& pump) {
    for (;;) {
        fill();
        HttpResponse r;
        size_t used = 0;
        std::string error;
        Parse p = parse_response(buf_, head_only, eof_, r, used, &error);
        if (p == Parse::Malformed) throw std::runtime_error("malformed response: " + error);
        if (p == Parse::Complete) {
            buf_.erase(0, used);
            return r;
        }
        if (eof_ || Clock::now() >= deadline) return std::nullopt;
        pump();
    }
}

bool RawSocket::read_to_eof(Clock::time_point deadline, const Pump& pump) {
    for (;;) {
        fill();
        if (eof_) return true;
        if (Clock::now() >= deadline) return false;
        pump();
    }
}

void RawSocket::shutdown_write() {
    if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void RawSocket::reset() {
    if (fd_ < 0) return;
    struct linger l {1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close();
}

void RawSocket::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

}  // namespace uvh::test
