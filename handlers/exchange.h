// The one interface between the connection layer and the handlers: what a
// handler may ask of the request it is answering. core::Connection
// implements it; tests implement it with a fake. Handlers never see
// sockets, parser state or the loop.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

#include "handlers/file_job.h"
#include "handlers/site.h"
#include "protocol/address.h"
#include "protocol/range.h"
#include "protocol/request.h"
#include "protocol/response.h"

namespace uvh {

// A response body. Memory is copied before respond() returns. A File body
// passes ownership of `fd` to the exchange, which sends [offset, offset +
// length) without copying it through user space and closes it afterwards.
// Multipart sends the parts of `layout` with the file bytes in between.
struct Body {
    enum class Kind { None, Memory, File, Multipart };
    Kind kind = Kind::None;
    std::string_view memory;
    int fd = -1;
    uint64_t offset = 0;
    uint64_t length = 0;
    const MultipartLayout* layout = nullptr;

    static Body none() { return {}; }
    static Body mem(std::string_view m) {
        Body b;
        b.kind = Kind::Memory;
        b.memory = m;
        return b;
    }
    static Body file(int fd, uint64_t offset, uint64_t length) {
        Body b;
        b.kind = Kind::File;
        b.fd = fd;
        b.offset = offset;
        b.length = length;
        return b;
    }
    static Body multipart(int fd, const MultipartLayout* layout) {
        Body b;
        b.kind = Kind::Multipart;
        b.fd = fd;
        b.layout = layout;
        return b;
    }
};

// How a handler takes a request body: data() is called on the loop thread
// with the next piece (at most `chunk` bytes unless the body ended); the
// handler calls Exchange::body_consumed() when it has used the piece (after
// an offloaded write, say). end() follows the last consumed piece.
struct BodyReader {
    void (*data)(class Exchange& ex, std::string_view piece) = nullptr;
    void (*end)(class Exchange& ex) = nullptr;
    size_t chunk = 256 * 1024;
};

// Kinds of threadpool work. A listing reads and renders a whole directory,
// which can take long for a large one: listings get at most
// --max-listing-jobs pool threads at once and the rest wait outside the
// pool, so cheap work (opening a file) always finds a thread (hardening
// issue, item 7).
enum class JobClass : uint8_t { Quick, Listing };

using WorkFn = void (*)(FileJob& job);
using DoneFn = void (*)(class Exchange& ex);

class Exchange {
public:
    virtual ~Exchange() = default;

    virtual const Request& request() const = 0;
    virtual const Site& site() const = 0;
    virtual time_t now() const = 0;
    virtual uint64_t now_ms() const = 0;  // the loop's monotonic clock

    // The normalised URL path (percent-decoded, dot segments resolved).
    virtual std::string_view path() const = 0;

    // The client: the TCP peer, or what a PROXY header or a trusted proxy's
    // X-Forwarded-For / Forwarded says it is.
    virtual const PeerAddress& client() const = 0;

    // Per-request scratch space, kept between requests for its capacity.
    virtual FileJob& job() = 0;
    virtual std::string& text() = 0;
    virtual MultipartLayout& multipart() = 0;

    // Runs work(job()) on the threadpool, then done(*this) on the loop
    // thread. If the client goes away meanwhile, done() is not called and
    // any descriptor left in job().fd is closed; work not yet started is
    // cancelled.
    virtual void offload(WorkFn work, DoneFn done, JobClass cls = JobClass::Quick) = 0;

    // Sends the response. Exactly once per request. HEAD requests get the
    // head only, whatever the body.
    virtual void respond(const ResponseHead& head, const Body& body) = 0;

    // Body handling: a request body is discarded unless the handler asks
    // for it. Asking sends "100 Continue" when the client expects it.
    virtual void read_body(const BodyReader& reader) = 0;
    virtual void body_consumed() = 0;
    virtual void discard_body() = 0;

    // For services that finish on their own schedule (the record store's
    // group commit): hold() keeps the exchange alive; release(done) ends
    // the hold and runs done(*this) on the loop thread unless the client
    // has gone away.
    virtual void hold() = 0;
    virtual void release(DoneFn done) = 0;
};

// The one-line text/plain answer every handler uses ("404 Not Found:
// detail"). `head` may carry extra fields (Location, Allow, Content-Range).
void respond_text(Exchange& ex, int status, std::string_view detail, ResponseHead head = {});
inline void respond_error(Exchange& ex, int status, std::string_view detail = {}, std::string_view allow = {}) {
    ResponseHead head;
    head.allow = allow;
    respond_text(ex, status, detail, head);
}

}  // namespace uvh
