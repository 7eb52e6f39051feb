// Per-connection working memory that only an active connection needs:
// request storage, input not yet parsed, output being assembled, the
// handler's job, and the libuv requests that point into it. Connections take
// one from the pool when bytes arrive and give it back when they fall idle,
// so an idle keep-alive connection costs a few hundred bytes, and a busy
// server reuses the same buffers request after request without allocating.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "handlers/exchange.h"
#include "protocol/address.h"
#include "protocol/range.h"
#include "protocol/request_parser.h"

namespace uvh {

// The state of an exchange that only an active connection needs: the body
// being sent, the body reader. Kept here rather than in the connection so
// an idle keep-alive connection stays small.
struct Transfer {
    // The response body's source and the piece it gave last.
    BodySource* source = nullptr;
    BodyPiece piece;
    bool have_piece = false;
    bool chunked = false;              // Transfer-Encoding: chunked framing
    bool framed = false;               // the current file piece's chunk head is out
    uint64_t done = 0;                 // bytes of the current file piece sent
    uint64_t send_off = 0, send_left = 0;  // the sendfile step in flight
    uint64_t progress = 0;             // bytes sent since the send timeout was armed
    uint64_t rx_progress = 0;          // body bytes read since the body timeout was armed
    int64_t sent = 0;                  // bytes sent by the last step
    int send_errno = 0;
    bool again = false;                // the socket was full
    bool slow_reader = false;          // a wait on the worker ran past its allowance
    enum class Op : uint8_t { Sendfile, SourceWork };
    Op op = Op::Sendfile;              // what send_req is doing

    BodyReader reader{};
};

struct Scratch {
    RequestStorage req;
    std::string path;         // normalised URL path of the current request
    std::string pending;      // input received but not yet parsed
    std::string out;          // response bytes not yet handed to the kernel
    std::string writing;      // bytes of the uv_write in flight
    std::string text;         // handler scratch: error bodies, headers
    std::string body;         // request body bytes waiting for the reader
    std::string body_handed;  // the piece the reader is working on
    std::string request_id;   // X-Request-Id of the current request
    std::string held_head;    // a response head waiting for descriptors (core/descriptors.cpp)
    PeerAddress client;       // the client of the current request
    JobSlot job;              // the handler's job or state (Exchange::make_job)
    Job* offloaded = nullptr; // the job offload() ran, for clean-up
    SourceSlot source;        // the response body's source
    MultipartLayout multipart;
    Transfer tx;
    uv_write_t write_req{};
    uv_work_t work_req{};     // the handler's job
    uv_work_t send_req{};     // the sender's own work: sendfile, a source's work()
    uv_shutdown_t shutdown_req{};

    // Drops content, keeps capacity up to a bound.
    void reset(size_t keep);
};

// Keeps up to `max_free` scratches for reuse: enough that a busy server
// with a few hundred active connections allocates none, few enough that a
// burst of ten thousand connections does not leave megabytes behind once
// they fall idle (idle connections must stay under 1 KiB each).
class ScratchPool {
public:
    explicit ScratchPool(size_t max_free = 128) : max_free_(max_free) {}
    ~ScratchPool();
    Scratch* get();
    void put(Scratch* s);
    size_t free_count() const { return free_.size(); }

private:
    size_t max_free_;
    std::vector<Scratch*> free_;
};

}  // namespace uvh
