// One client connection: owns its uv_tcp_t (handle.data = this) and is
// freed only after the close callback and every outstanding libuv request
// has come back. Feeds bytes through the RequestParser, hands complete heads
// to the router, and writes the responses of one read batch in one write.
// Its member functions live in one file per job: lifecycle and close in
// core/connection.cpp, request intake in core/intake.cpp, response sending
// in core/sender.cpp, the handler's jobs in core/jobs.cpp.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "core/scratch.h"
#include "core/timeouts.h"
#include "handlers/exchange.h"
#include "protocol/request_parser.h"

namespace uvh {

class Server;

class Connection final : public Exchange {
public:
    explicit Connection(Server& server);
    ~Connection() override;
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Accepts from the listener and starts reading. On failure the
    // connection closes itself. `refuse`: over --max-connections, answer a
    // short 503 and close.
    void start(uv_stream_t* listener, bool refuse = false);
    // Takes a socket accepted outside libuv (the backlog at shutdown).
    void adopt(int fd);

    // The server is shutting down: close now if idle, else after the
    // current response (which then says Connection: close).
    void drain();
    // Drops the connection at once (errors, shutdown deadline).
    void abort();
    // A timeout in one of the server's lists expired for this connection.
    void on_timeout(TimeoutList* which);

    // ---- Exchange ----
    const Request& request() const override { return s_->req.request; }
    const Site& site() const override;
    time_t now() const override;
    uint64_t now_ms() const override;
    std::string_view path() const override { return s_->path; }
    const PeerAddress& client() const override { return s_->client; }
    std::string& text() override { return s_->text; }
    MultipartLayout& multipart() override { return s_->multipart; }
    void offload(Job& job, JobClass cls = JobClass::Quick) override;
    void close_later(int fd) override { close_fd_async(fd); }
    // The server granted this connection's waiting listing job a slot.
    void run_waiting_job();
    void respond(const ResponseHead& head, const Body& body) override;
    void read_body(const BodyReader& reader) override;
    void body_consumed() override;
    void discard_body() override;
    void hold() override;
    void release(DoneFn done) override;

protected:
    JobSlot& job_slot() override { return s_->job; }
    SourceSlot& source_slot() override { return s_->source; }

public:
    TimeoutNode timeout_node;
    Connection* slot_prev = nullptr;  // server's queue of listings waiting for a slot
    Connection* slot_next = nullptr;
    Connection* prev = nullptr;  // server's list of live connections
    Connection* next = nullptr;

private:
    enum class BodyMode : uint8_t { Undecided, Discard, Deliver };
    enum class Closing : uint8_t { No, Graceful, Lingering, Closed };

    // Shared by the files below: stop parsing further pipelined requests
    // (intake), stop reading (lifecycle) and stop pumping a body (sender)
    // while this much output waits for a slow reader.
    static constexpr size_t kOutHighWater = 256 * 1024;
    // Bytes a response must move within each --send-timeout, and a request
    // body within each --body-timeout, to stay alive.
    static constexpr uint64_t kMinProgress = 16 * 1024;

    uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }

    // Lifecycle and close (core/connection.cpp)
    static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
    static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
    static void on_close(uv_handle_t* h);
    static void on_shutdown(uv_shutdown_t* req, int status);
    static void on_poll_close(uv_handle_t* h);
    void begin(bool refuse);
    void on_eof();
    void update_reading();
    void kick();  // continue after an asynchronous event
    void after_processing();
    void begin_graceful_close();
    void continue_closing();
    void close_fd_async(int fd);
    void ensure_scratch();
    void maybe_release_scratch();
    void unref();
    void arm(TimeoutList& list);
    void disarm();
    void finish_exchange();
    void log_exchange();

    // Request intake (core/intake.cpp)
    static void on_body_bytes(void* ctx, const char* data, size_t len);
    void feed(const char* data, size_t len);
    bool read_proxy_header();
    size_t run_parser(const char* data, size_t len);
    bool parse_blocked() const;
    void on_head();
    void on_message_complete();
    void on_parse_error();
    void deliver_body();
    void arm_body_timeout();
    void body_progress(size_t len);

    // Response sending (core/sender.cpp)
    static void on_write(uv_write_t* req, int status);
    static void on_send_work(uv_work_t* req);
    static void on_after_send_work(uv_work_t* req, int status);
    static void on_poll(uv_poll_t* p, int status, int events);
    void send_error_and_close(int status, std::string_view detail);
    void flush();
    void response_done();
    void send_finished();
    void pump_body();
    void start_sendfile(uint64_t offset, uint64_t length);
    void start_source_work();
    void end_source();
    void sendfile_step();  // worker thread
    void after_sendfile();
    void wait_writable();

    // Handler jobs (core/jobs.cpp)
    static void on_work(uv_work_t* req);
    static void on_after_work(uv_work_t* req, int status);
    void queue_job();
    void dispose_job();
    template <class F>
    void run_done(F&& f);

    uv_tcp_t tcp_{};
    Server& server_;
    RequestParser parser_;
    Scratch* s_ = nullptr;
    uv_poll_t* poll_ = nullptr;  // write readiness while sendfile waits
    int sock_dup_ = -1;          // the socket for threadpool sendfile

    uint32_t refs_ = 1;  // the handle itself, plus each libuv request in flight
    uint32_t requests_ = 0;
    PeerAddress peer_;          // the TCP peer, or the PROXY header's source
    uint64_t start_ns_ = 0;        // when the current request head was complete
    uint64_t response_bytes_ = 0;  // head and body bytes of the current response

    Closing closing_ = Closing::No;
    BodyMode body_mode_ = BodyMode::Undecided;
    bool reading_ = false;
    bool peer_eof_ = false;
    bool in_feed_ = false;         // inside feed(): asynchronous paths must not re-enter
    bool in_exchange_ = false;     // a request head was dispatched and not finished
    bool paused_at_head_ = false;  // parser paused after the head, body mode pending
    bool msg_complete_ = false;    // the whole request (body included) was parsed
    bool response_started_ = false;
    bool response_done_ = false;   // every response byte is queued or sent
    bool close_after_ = false;     // close once this response is out
    bool abandoned_ = false;       // the handler's later callbacks are ignored
    bool expect_continue_ = false;
    bool continue_sent_ = false;
    bool work_busy_ = false;
    bool writing_ = false;
    bool tx_active_ = false;       // a file body is being sent
    bool tx_busy_ = false;         // sendfile job in flight or waiting for POLLOUT
    bool reader_busy_ = false;
    bool reader_ended_ = false;
    bool proxy_pending_ = false;   // a PROXY header must come first
    bool have_request_ = false;    // a head was parsed for this exchange
    bool dispose_after_work_ = false;  // the exchange ended while its job ran
    bool releasing_job_ = false;   // work_req runs the job's release()
    bool send_queued_ = false;     // send_req is on the threadpool
    bool in_done_ = false;         // inside a handler's continuation
    bool dispose_after_done_ = false;
    bool counted_upload_ = false;  // in Metrics::uploads_in_flight

    bool listing_job_ = false;     // the job holds (or waits for) a listing slot
    bool waiting_slot_ = false;    // in the server's queue, not yet on the pool

    int response_status_ = 0;
    uint64_t body_bytes_ = 0;
};

}  // namespace uvh
