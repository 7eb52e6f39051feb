// The one interface between the connection layer and the handlers: what a
// handler may ask of the request it is answering. core::Connection
// implements it; tests implement it with a fake. Handlers never see
// sockets, parser state or the loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "handlers/site.h"
#include "protocol/address.h"
#include "protocol/range.h"
#include "protocol/request.h"
#include "protocol/response.h"

namespace uvh {

// A response body produced step by step (h2o's generator is the model:
// lib/handler/file.c). The sender in core asks for the next piece whenever
// the socket can take more:
//   Memory  bytes, valid until the next call to next() (copied at once);
//   File    a range of a descriptor the source keeps open, sent with
//           sendfile on a worker thread;
//   Work    the source needs a worker: core runs work() on the threadpool,
//           then asks again;
//   End     nothing more.
// A source whose length is unknown up front goes out chunked on HTTP/1.1
// and close-delimited on HTTP/1.0 (ResponseHead::kUnknownLength).
// Sources live in the exchange's slot (Exchange::make_source) and are
// destroyed on the loop thread when the response ends or the client goes
// away; a descriptor the source owns is handed to the sender then, which
// closes it off the loop.
struct BodyPiece {
    enum class Kind : uint8_t { Memory, File, Work, End };
    Kind kind = Kind::End;
    std::string_view memory;
    int fd = -1;
    uint64_t offset = 0, length = 0;

    static BodyPiece mem(std::string_view m) { return {Kind::Memory, m, -1, 0, 0}; }
    static BodyPiece file(int fd, uint64_t offset, uint64_t length) { return {Kind::File, {}, fd, offset, length}; }
    static BodyPiece work() { return {Kind::Work, {}, -1, 0, 0}; }
    static BodyPiece end() { return {}; }
};

class BodySource {
public:
    virtual ~BodySource() = default;
    virtual BodyPiece next() = 0;
    // On a worker thread, after next() returned Work.
    virtual void work() {}
    // The descriptor the source owns, if any, for the sender to close off
    // the loop thread once the response has ended (-1: none).
    virtual int release_descriptor() { return -1; }
    // True once the source has given End because it could not go on (a
    // read error mid-way): the sender then closes the connection instead of
    // ending the body properly, so the client sees it is incomplete.
    virtual bool failed() const { return false; }
    // For the server's descriptor budget (core/descriptors.cpp): whether
    // the source holds a descriptor of its own while the response runs, and
    // whether it gives File pieces (sent through the connection's duplicate
    // of its socket, one more descriptor).
    virtual bool owns_descriptor() const { return false; }
    virtual bool sends_file_pieces() const { return false; }
};

// A source that owns one descriptor (a file, a directory) and hands it to
// the sender when the response ends.
class DescriptorSource : public BodySource {
public:
    int release_descriptor() final {
        int f = fd_;
        fd_ = -1;
        return f;
    }
    bool owns_descriptor() const final { return fd_ >= 0; }

protected:
    explicit DescriptorSource(int fd) : fd_(fd) {}
    int fd_;
};

// A response body: none, memory copied before respond() returns (the fast
// path for small bodies), or a source.
struct Body {
    enum class Kind : uint8_t { None, Memory, Source };
    Kind kind = Kind::None;
    std::string_view memory;
    BodySource* source = nullptr;

    static Body none() { return {}; }
    static Body mem(std::string_view m) {
        Body b;
        b.kind = Kind::Memory;
        b.memory = m;
        return b;
    }
    static Body from(BodySource& s) {
        Body b;
        b.kind = Kind::Source;
        b.source = &s;
        return b;
    }
};

// Work a handler runs on the threadpool: each handler that needs the pool
// defines its own job type with its own fields (nginx's per-module context,
// h2o's per-handler structs). A job lives in the exchange's arena
// (Exchange::make_job) from the handler's first offload to the end of the
// exchange, and may be offloaded several times (PUT: prepare, write each
// piece, commit), keeping its own notion of which step comes next.
class Job {
public:
    virtual ~Job() = default;
    // On a worker thread: the blocking part. Touches only the job.
    virtual void work() = 0;
    // On the loop thread, when the client is still there.
    virtual void done(class Exchange& ex) = 0;
    // Whether release() has clean-up to do (descriptors, a temporary file).
    virtual bool holds_resources() const { return false; }
    // On a worker thread, when the exchange ends while the job still holds
    // resources (the client went away, or the handler answered without
    // handing them on). Core knows nothing of what they are.
    virtual void release() {}
};

// Fixed room for one object of a handler's choosing, reused request after
// request so a job or a source costs no allocation. Types larger than the
// room do not compile.
template <size_t Bytes>
class Slot {
public:
    Slot() = default;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { clear(); }

    template <class T, class... Args>
    T& emplace(Args&&... args) {
        static_assert(sizeof(T) <= Bytes, "make the slot larger");
        static_assert(alignof(T) <= alignof(std::max_align_t));
        clear();
        T* t = new (space_) T(std::forward<Args>(args)...);
        obj_ = t;
        destroy_ = [](void* p) { static_cast<T*>(p)->~T(); };
        return *t;
    }
    void clear() {
        if (obj_) destroy_(obj_);
        obj_ = nullptr;
    }
    bool empty() const { return obj_ == nullptr; }
    void* get() const { return obj_; }

private:
    alignas(std::max_align_t) unsigned char space_[Bytes];
    void* obj_ = nullptr;
    void (*destroy_)(void*) = nullptr;
};

inline constexpr size_t kJobBytes = 1024;  // the largest: a resumable upload's job
inline constexpr size_t kSourceBytes = 512;  // a compressed listing is the largest
using JobSlot = Slot<kJobBytes>;
using SourceSlot = Slot<kSourceBytes>;

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
    virtual std::string& text() = 0;
    virtual MultipartLayout& multipart() = 0;

    // The handler's job for this exchange, built in the exchange's slot
    // (replacing any earlier one of this exchange).
    template <class T, class... Args>
    T& make_job(Args&&... args) {
        return job_slot().emplace<T>(std::forward<Args>(args)...);
    }
    // The object make_job<T>() made for this exchange (the caller knows T).
    template <class T>
    T& job_as() {
        return *static_cast<T*>(job_slot().get());
    }
    // The response body's source, built in the exchange's other slot.
    template <class T, class... Args>
    T& make_source(Args&&... args) {
        return source_slot().emplace<T>(std::forward<Args>(args)...);
    }

    // Runs job.work() on the threadpool, then job.done(*this) on the loop
    // thread. If the client goes away meanwhile, done() is not called, work
    // not yet started is cancelled, and job.release() runs on a worker.
    // `job` must be the one made with make_job().
    virtual void offload(Job& job, JobClass cls = JobClass::Quick) = 0;

    // Closes a descriptor off the loop thread (a close may block).
    virtual void close_later(int fd) = 0;

    // Sends the response. Exactly once per request. HEAD requests get the
    // head only, whatever the body.
    virtual void respond(const ResponseHead& head, const Body& body) = 0;

    // An informational (1xx) response ahead of the final one (RFC 9110
    // §15.2), such as resumable uploads' 104 (Upload Resumption Supported).
    // Never sent to an HTTP/1.0 client (§15.2), nor once the final response
    // has begun: then it returns false. The fields must be single lines.
    // The default (fakes) sends nothing.
    virtual bool interim(int status, std::span<const ResponseHead::Field> fields) {
        (void)status;
        (void)fields;
        return false;
    }

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

protected:
    virtual JobSlot& job_slot() = 0;
    virtual SourceSlot& source_slot() = 0;
};

// The one-line text/plain answer every handler uses ("404 Not Found:
// detail"). `head` may carry extra fields (Location, Allow, Content-Range).
void respond_text(Exchange& ex, int status, std::string_view detail, ResponseHead head = {});
// A 503 (out of descriptors: EMFILE, ENFILE) says when to come back.
inline void respond_error(Exchange& ex, int status, std::string_view detail = {}, std::string_view allow = {}) {
    ResponseHead head;
    head.allow = allow;
    if (status == 503) head.add("Retry-After", "1");
    respond_text(ex, status, detail, head);
}

}  // namespace uvh
