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
#include "core/wait_queue.h"
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
    void close_later(int fd) override;  // counted in the descriptor budget until closed
    // The server granted this connection's waiting listing job a slot.
    void run_waiting_job();
    void respond(const ResponseHead& head, const Body& body) override;
    void read_body(const BodyReader& reader) override;
    bool interim(int status, std::span<const ResponseHead::Field> fields) override;
    void body_consumed() override;
    void discard_body() override;
    void hold() override;
    void release(DoneFn done) override;

protected:
    JobSlot& job_slot() override { return s_->job; }
    SourceSlot& source_slot() override { return s_->source; }

public:
    TimeoutNode timeout_node;
    // The server's queues of listings waiting for a slot and of jobs and
    // responses waiting for descriptors (core/wait_queue.h).
    WaitLink<Connection> slot_link, fd_link;
    WaitLink<Connection>& wait_link(ListingSlotWait) { return slot_link; }
    WaitLink<Connection>& wait_link(DescriptorWait) { return fd_link; }
    // The server charged what this waiting response needs (core/descriptors.cpp).
    void descriptors_granted();
    int descriptors_needed() const { return fd_want_; }
    void drop_idle_dup();  // descriptors are scarce: give back the socket's duplicate if idle
    Connection* prev = nullptr;  // server's list of live connections
    Connection* next = nullptr;

private:
    // What a connection is doing is read from five fields: closing_ (is it
    // going away), exchange_ (where the current request/response pair is),
    // body_mode_ and reader_ (the request body), and job_ (the handler's
    // threadpool job). The remaining flags are I/O in flight (reading_,
    // writing_, tx_*) and re-entrancy guards (in_feed_, in_done_).

    // No -> Graceful (begin_graceful_close: flush what is queued) ->
    // Lingering (half-closed; drain input for a moment) -> Closed (abort:
    // uv_close issued). abort() may jump to Closed from any state.
    enum class Closing : uint8_t { No, Graceful, Lingering, Closed };

    // None -> Dispatched (on_head: a head was parsed and handed on) ->
    // Responding (respond/send_error_and_close started the response) ->
    // Responded (every byte is queued: response_done) -> None
    // (finish_exchange, once the request is also complete or the
    // connection closes after it). send_error_and_close also goes from
    // None straight to Responding (an error before any head, e.g. 408).
    enum class ExchangeState : uint8_t { None, Dispatched, Responding, Responded };

    // Undecided (on_head; the parser is paused at the head, paused_at_head_)
    // -> Discard (discard_body, or an early small-body response) or Deliver
    // (read_body) -> Undecided (finish_exchange). msg_complete_ says the
    // parser has seen the end of the body, whatever the mode.
    enum class BodyMode : uint8_t { Undecided, Discard, Deliver };

    // In Deliver mode: Idle -> Busy (deliver_body handed a piece to the
    // BodyReader) -> Idle (body_consumed) ... -> Ended (the reader's end()
    // was called after the last piece) -> Idle (finish_exchange).
    enum class ReaderState : uint8_t { Idle, Busy, Ended };

    // Idle -> Running (queue_job: work() queued or on a worker) -> Idle
    // (on_after_work: done() runs, or the result is dropped). While Running,
    // finish_exchange makes it Unwanted (the result is dropped when it
    // comes back). A listing job first waits for a slot: Idle -> WaitingSlot
    // (in the server's queue) -> Running (run_waiting_job), or -> Idle when
    // abort() takes it out of the queue. Idle -> Releasing (dispose_job: the
    // job's release() on a worker) -> Idle (on_after_work). work_req is in
    // use exactly while Running, Unwanted or Releasing.
    enum class JobState : uint8_t { Idle, WaitingSlot, Running, Unwanted, Releasing };

    bool in_exchange() const { return exchange_ != ExchangeState::None; }
    bool response_started() const {
        return exchange_ == ExchangeState::Responding || exchange_ == ExchangeState::Responded;
    }
    bool job_running() const { return job_ == JobState::Running || job_ == JobState::Unwanted; }
    bool work_busy() const { return job_running() || job_ == JobState::Releasing; }

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
    void close_fd_async(int fd, bool charged = false);
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
    void arm_header_timeout_if(bool idle_before, uint32_t requests_before);
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
    void flush(bool more = false);
    void response_done();
    void send_finished();
    void pump_body();
    void start_sendfile(uint64_t offset, uint64_t length);
    void start_source_work();
    bool queue_send(Transfer::Op op);
    void end_source();
    void sendfile_step();  // worker thread
    bool wait_writable_briefly(int64_t sent, int64_t& waited_ns);  // worker thread
    void after_sendfile();
    void wait_writable();

    // The descriptor budget (core/descriptors.cpp)
    bool take_job_descriptors(JobClass cls);
    void give_job_descriptors();
    bool take_body_descriptors(size_t head_at);
    bool body_descriptors_charged();
    void refuse_for_descriptors(size_t head_at, std::string_view detail);
    void stop_waiting_for_descriptors();
    int take_spare_dup(int socket_fd);
    void give_body_descriptors();

    // Handler jobs (core/jobs.cpp)
    static void on_work(uv_work_t* req);
    static void on_release_work(uv_work_t* req);
    static void on_after_work(uv_work_t* req, int status);
    void queue_offloaded(JobClass cls);
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
    uint64_t file_sent_ = 0;     // file body bytes sendfile queued on this connection
    bool lowat_full_ = false;    // TCP_NOTSENT_LOWAT raised to --send-buffer
    bool worker_waits_ = true;   // sendfile steps may wait for the socket (sender.cpp)
    // --send-buffer-fast (sender.cpp): None; On, a fast reader's larger
    // TCP_NOTSENT_LOWAT; Draining, back at --send-buffer but still holding
    // its slot until what it queued under the larger bound has gone.
    enum class Boost : uint8_t { None, On, Draining };
    Boost boost_ = Boost::None;
    void update_send_boost();
    void set_lowat(size_t bytes);
    // The descriptor budget (core/descriptors.cpp): a duplicate of the
    // socket made before the head (so EMFILE can still be a 503), taken by
    // the first sendfile; what this connection has charged; what its
    // waiting response needs.
    int spare_dup_ = -1;
    uint8_t dups_charged_ = 0;
    bool file_charged_ = false;
    uint8_t job_fds_ = 0;      // charged for the handler's job (what it may open)
    uint8_t fd_prepaid_ = 0;   // a waiting response's share already charged (its job's)
    uint8_t fd_want_ = 0;      // what the waiting job or response takes when granted
    bool fd_waiting_ = false;
    bool fd_wait_job_ = false;  // waiting to queue a job (else: to start a body)
    JobClass fd_job_class_ = JobClass::Quick;
    bool fd_need_file_ = false, fd_need_dup_ = false;

    uint32_t refs_ = 1;  // the handle itself, plus each libuv request in flight
    uint32_t requests_ = 0;
    PeerAddress peer_;          // the TCP peer, or the PROXY header's source
    uint64_t start_ns_ = 0;        // when the current request head was complete
    uint64_t response_bytes_ = 0;  // head and body bytes of the current response

    Closing closing_ = Closing::No;
    ExchangeState exchange_ = ExchangeState::None;
    BodyMode body_mode_ = BodyMode::Undecided;
    ReaderState reader_ = ReaderState::Idle;
    JobState job_ = JobState::Idle;
    bool reading_ = false;
    bool peer_eof_ = false;
    bool in_feed_ = false;         // inside feed(): asynchronous paths must not re-enter
    bool paused_at_head_ = false;  // parser paused after the head, body mode pending
    bool msg_complete_ = false;    // the whole request (body included) was parsed
    bool close_after_ = false;     // close once this response is out
    bool abandoned_ = false;       // the handler's later callbacks are ignored
    bool expect_continue_ = false;
    bool continue_sent_ = false;
    bool writing_ = false;
    bool tx_active_ = false;       // a file body is being sent
    bool tx_busy_ = false;         // sendfile job in flight or waiting for POLLOUT
    bool proxy_pending_ = false;   // a PROXY header must come first
    bool have_request_ = false;    // a head was parsed for this exchange
    bool send_queued_ = false;     // send_req is on the threadpool
    bool in_done_ = false;         // inside a handler's continuation
    bool dispose_after_done_ = false;
    bool counted_upload_ = false;  // in Metrics::uploads_in_flight

    bool listing_job_ = false;     // the job holds (or waits for) a listing slot

    int response_status_ = 0;
    uint64_t body_bytes_ = 0;
};

}  // namespace uvh
