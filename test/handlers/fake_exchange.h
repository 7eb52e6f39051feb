// A fake Exchange: drives one handler with no socket, no parser state and
// no connection (GUIDE item 27; h2o's t/00unit does the same with
// h2o_loopback_conn_t).
//
// FakeSite builds the real application from a Config (handlers/site_builder.h)
// over a fresh temporary root, with a real uv_loop_t for the services that
// need one (the record store's group commit), and closes it properly: the
// application's close() callback, then uv_loop_close() == 0. It is opened,
// not started: start() only begins the stale-temp-file sweep.
//
// FakeExchange parses a request head with the real RequestParser, gives the
// handler the real Site, and then plays the connection's part:
// - offload(): the job runs synchronously on the test thread, work() then
//   done(), from the exchange's pump loop (never inside offload(), as in
//   core, where done() comes on a later loop iteration);
// - read_body(): the request body is fed in the pieces the test gave (each
//   cut to the reader's chunk size), the next one only after
//   body_consumed(), then end();
// - hold()/release(): the pump runs the real loop (UV_RUN_ONCE with a timer
//   bounding the wait) until every hold is released;
// - respond(): the head is rendered with write_response_head() and parsed
//   back; a source is drained after the handler's callback returns
//   (Memory pieces copied, File pieces read with pread, Work pieces run),
//   so chunked and unknown-length bodies are testable;
// - at the end: a job still holding resources is released as core does
//   (and that is recorded), every descriptor given to close_later() or
//   returned by release_descriptor() is closed by the fake (a close that
//   fails means it was not a live descriptor), and /proc/self/fd is
//   compared with its state before the exchange: a descriptor the exchange
//   left open is a leak.
// Every breach of the interface's contract is a problem the exchange
// reports as a failed CHECK.
#pragma once

#include <uv.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "handlers/application.h"
#include "handlers/exchange.h"
#include "handlers/metrics.h"
#include "protocol/request_parser.h"

namespace uvh::test {

// A temporary directory, removed with everything in it.
class TempRoot {
public:
    TempRoot();
    ~TempRoot();
    TempRoot(const TempRoot&) = delete;
    TempRoot& operator=(const TempRoot&) = delete;

    const std::string& path() const { return path_; }
    std::string at(std::string_view rel) const { return path_ + "/" + std::string(rel); }
    // Creates parent directories as needed.
    void write(std::string_view rel, std::string_view content) const;
    void mkdir(std::string_view rel) const;
    std::string read(std::string_view rel) const;  // empty when missing
    bool exists(std::string_view rel) const;

private:
    std::string path_;
};

// The application as main() builds it, over a temporary root.
class FakeSite {
public:
    // `config.root` is replaced by the temporary root.
    explicit FakeSite(Config config = Config{});
    ~FakeSite();
    FakeSite(const FakeSite&) = delete;
    FakeSite& operator=(const FakeSite&) = delete;

    const Site& site() const { return app_->site(); }
    uv_loop_t* loop() { return &loop_; }
    TempRoot& root() { return root_; }
    Metrics& metrics() { return metrics_; }

    // Runs the loop until `done` or `timeout_ms`; false on timeout.
    template <class F>
    bool run_until(F&& done, uint64_t timeout_ms = 10'000) {
        return run_until_impl([](void* f) { return (*static_cast<F*>(f))(); }, &done, timeout_ms);
    }

private:
    bool run_until_impl(bool (*cond)(void*), void* ctx, uint64_t timeout_ms);

    TempRoot root_;
    uv_loop_t loop_{};
    Metrics metrics_;
    std::unique_ptr<Application> app_;
};

// What the client would have received.
struct FakeResponse {
    int status = 0;
    std::string head;  // as rendered by write_response_head
    std::vector<std::pair<std::string, std::string>> fields;  // names lower-cased, in order
    std::string body;  // the content (de-chunked: the source's bytes)
    bool chunked = false;  // the head said Transfer-Encoding: chunked

    std::string header(std::string_view name) const;  // first value, "" when absent
    bool has(std::string_view name) const;
    size_t count(std::string_view name) const;
};

// One request to one handler.
struct FakeRequest {
    std::string method = "GET";
    std::string target = "/";
    // Complete field lines, each ending in CRLF ("Accept: x\r\n"). Host is
    // added unless given; Content-Length from the body pieces unless a
    // Content-Length or Transfer-Encoding line is given.
    std::string fields;
    std::vector<std::string> body;  // the request body, in the pieces it arrives in
    bool http10 = false;
};

class FakeExchange final : public Exchange {
public:
    using HandlerFn = void (*)(Exchange& ex);

    FakeExchange(FakeSite& site, FakeRequest req);
    ~FakeExchange() override;

    // Runs `handler` and everything it set going, then the end-of-exchange
    // checks; each problem found is a failed CHECK. Call once.
    FakeResponse run(HandlerFn handler);
    // The same with a handler that takes more (handle_record's id).
    template <class F>
    FakeResponse run_with(F&& f) {
        start();
        f(static_cast<Exchange&>(*this));
        FakeResponse r = finish();
        report();
        return r;
    }
    // Without turning problems into failed CHECKs (the fake's own tests).
    FakeResponse run_unchecked(HandlerFn handler);

    // What happened, for tests that look at how, not only at what.
    size_t offloads() const { return offloads_; }
    const std::vector<JobClass>& job_classes() const { return classes_; }
    bool body_read() const { return body_mode_ == BodyMode::Deliver; }
    bool body_discarded() const { return body_mode_ == BodyMode::Discard; }
    size_t pieces_delivered() const { return pieces_delivered_; }
    bool body_ended() const { return reader_ended_; }
    bool continue_sent() const { return continue_sent_; }
    // The job still held resources when the exchange ended and the fake
    // released them, as core does for a handler that answered without
    // handing them on.
    bool job_released_at_end() const { return released_at_end_; }
    const std::vector<int>& closed_later() const { return closed_later_; }
    const std::vector<int>& source_descriptors() const { return source_fds_; }
    const std::vector<std::string>& problems() const { return problems_; }

    // ---- Exchange ----
    const Request& request() const override { return storage_.request; }
    const Site& site() const override { return site_.site(); }
    time_t now() const override;
    uint64_t now_ms() const override;
    std::string_view path() const override { return path_; }
    const PeerAddress& client() const override { return client_; }
    std::string& text() override { return text_; }
    MultipartLayout& multipart() override { return multipart_; }
    void offload(Job& job, JobClass cls) override;
    void close_later(int fd) override;
    void respond(const ResponseHead& head, const Body& body) override;
    void read_body(const BodyReader& reader) override;
    void body_consumed() override;
    void discard_body() override;
    void hold() override;
    void release(DoneFn done) override;

protected:
    JobSlot& job_slot() override { return job_slot_; }
    SourceSlot& source_slot() override { return source_slot_; }

private:
    enum class BodyMode { Undecided, Deliver, Discard };

    void start();
    FakeResponse finish();
    void report() const;
    void pump();
    void drain(BodySource& src);
    void end_source(BodySource& src);
    void problem(std::string what);
    std::set<std::string> open_descriptors() const;

    FakeSite& site_;
    FakeRequest req_;
    RequestParser parser_;
    RequestStorage storage_;
    std::string raw_head_;
    std::string path_;
    PeerAddress client_{};
    std::string text_;
    MultipartLayout multipart_;
    JobSlot job_slot_;
    SourceSlot source_slot_;

    Job* offloaded_ = nullptr;  // the exchange's job (core's s_->offloaded)
    Job* pending_job_ = nullptr;  // offloaded, not yet run
    size_t offloads_ = 0;
    std::vector<JobClass> classes_;

    BodyMode body_mode_ = BodyMode::Undecided;
    BodyReader reader_{};
    std::vector<std::string> pieces_;  // cut to the reader's chunk
    size_t next_piece_ = 0;
    std::string handed_;  // the piece being consumed
    bool reader_busy_ = false;
    bool reader_ended_ = false;
    size_t pieces_delivered_ = 0;
    bool continue_sent_ = false;

    int holds_ = 0;
    int responses_ = 0;
    FakeResponse response_;
    BodySource* pending_source_ = nullptr;  // to drain after the current callback

    std::vector<int> closed_later_;
    std::vector<int> source_fds_;
    bool released_at_end_ = false;
    std::set<std::string> fds_before_;
    std::vector<std::string> problems_;
    bool started_ = false;
};

// One request, start to end, with the problems reported as failed CHECKs.
FakeResponse serve(FakeSite& site, FakeRequest req, FakeExchange::HandlerFn handler);

}  // namespace uvh::test
