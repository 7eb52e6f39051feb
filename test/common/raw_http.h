// The one raw HTTP/1.1 client of the C++ tests: the integration harness
// (test/integration/harness.h, RawClient) and the fuzz target
// (test/fuzz/fuzz_request.cpp) both use it. It has no test framework and no
// libuv in it: whoever drives the server's loop passes a Pump that runs the
// loop a little (at most about a millisecond) whenever the socket cannot
// make progress, so the client and the in-process server share one thread.
//
// Response framing (RFC 9112 §6.3): no body for HEAD, 1xx, 204 and 304;
// else chunked when Transfer-Encoding ends in chunked (chunk extensions
// and trailer fields accepted, or refused in strict mode), else
// Content-Length, else everything up to the close.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace uvh::test {

enum class Framing { None, Length, Chunked, Close };

struct HttpResponse {
    int status = 0;
    std::string reason;
    std::string version;
    std::multimap<std::string, std::string> headers;  // lower-case names
    std::string body;                                 // decoded (chunked framing removed)
    std::string raw;                                  // everything received for this response
    Framing framing = Framing::None;
    std::vector<uint64_t> chunk_sizes;                 // chunked: each chunk's size, the last (0) excluded
    std::multimap<std::string, std::string> trailers;  // chunked: trailer fields, lower-case names

    bool has(std::string_view name) const;
    std::string header(std::string_view name) const;  // "" when absent
    size_t count(std::string_view name) const;
};

enum class Parse { Incomplete, Complete, Malformed };

// A chunked body (RFC 9112 §7.1) starting at `pos` of `buf`:
//   chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//   last-chunk = 1*("0") [ chunk-ext ] CRLF, trailer-section, CRLF
// Strict (what uvhttpd itself must send): lower- or upper-case hex digits
// only, no leading zeros but in the last chunk's single "0", no extension,
// no trailer. Otherwise extensions (;name[=value]) and trailer fields
// (Name: value) are accepted. Nothing lenient: a bare LF, a missing CRLF
// after the data, or a size that overflows is Malformed, with `error`.
struct ChunkedBody {
    std::string data;
    std::vector<uint64_t> sizes;
    std::multimap<std::string, std::string> trailers;
    size_t end = 0;  // offset in buf just past the body
    std::string error;
};
Parse decode_chunked(std::string_view buf, size_t pos, bool strict, ChunkedBody& out);

// Tries to parse one complete response at the start of `buf`. `head_only`
// for HEAD: no body follows whatever the head says. `eof`: the peer closed,
// so a close-delimited body is complete. On Complete, `used` is the bytes
// it took. On Malformed, `error` says what is wrong.
Parse parse_response(std::string_view buf, bool head_only, bool eof, HttpResponse& out, size_t& used,
                     std::string* error = nullptr);

std::string lower_ascii(std::string_view s);

// A non-blocking TCP client socket to 127.0.0.1:port.
class RawSocket {
public:
    using Clock = std::chrono::steady_clock;
    // Runs the server's loop a little; may wait up to ~1 ms for readiness.
    using Pump = std::function<void()>;
    enum class Sent { All, PeerGone, TimedOut };

    RawSocket() = default;
    ~RawSocket();
    RawSocket(const RawSocket&) = delete;
    RawSocket& operator=(const RawSocket&) = delete;

    // Connects without the server's loop (the kernel completes the
    // handshake from the backlog); waits for completion with poll, so a
    // signal (libFuzzer's timer) cannot interrupt it. Returns "" or why not.
    std::string connect(uint16_t port);
    // Sends all of `bytes`, reading what arrives and pumping while the
    // socket buffer is full.
    Sent send_all(std::string_view bytes, Clock::time_point deadline, const Pump& pump);
    // Reads whatever is ready without blocking; false once EOF or an error
    // (a reset) was seen.
    bool fill();
    // Reads one response from the buffer, pumping until it is complete, the
    // peer closed, or the deadline. nullopt when none is complete; a
    // malformed response throws std::runtime_error. The response's bytes
    // leave the buffer.
    std::optional<HttpResponse> read_response(bool head_only, Clock::time_point deadline, const Pump& pump);
    // Pumps until the peer closed (true) or the deadline (false); what
    // arrives meanwhile stays in buffered().
    bool read_to_eof(Clock::time_point deadline, const Pump& pump);
    void shutdown_write();
    void reset();  // close with SO_LINGER 0: the peer sees an RST
    void close();

    int fd() const { return fd_; }
    bool eof() const { return eof_; }
    bool was_reset() const { return reset_; }  // the peer reset (ECONNRESET)
    const std::string& buffered() const { return buf_; }
    std::string& buffered() { return buf_; }

private:
    int fd_ = -1;
    std::string buf_;
    bool eof_ = false;
    bool reset_ = false;
};

}  // namespace uvh::test
