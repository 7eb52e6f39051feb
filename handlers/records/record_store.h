// RecordStore: the record store's group commit on the libuv threadpool,
// over RecordFile (record_file.h) and the line format (record_format.h).
// No HTTP: handlers/records.cpp is the HTTP side.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "handlers/records/record_backend.h"
#include "handlers/records/record_file.h"

namespace uvh {

// Runs RecordFile operations on the libuv threadpool, from the loop thread.
//
// Group commit: at most one threadpool job of writes is in flight. When
// idle, submit() starts a job with every queued write; writes that arrive
// while a job runs wait and all go together in the next job, so many
// concurrent clients share one fdatasync per batch. Inside a job, writes run
// in arrival order, each maximal run of consecutive Appends as one
// append_batch; their done() callbacks run in submission order on the loop
// thread. A Get does not queue behind writes: it is a threadpool job of its
// own (RecordFile::get, one pread), so its done() may come before that of a
// write submitted earlier. Uses only the gathering timer and uv_work_t
// requests, so uv_loop_close() succeeds once close() has called back.
class RecordStore final : public RecordBackend {
public:
    using Op = RecordBackend::Op;

    static constexpr uint64_t kGatherMs = 1;
    // gather_ms: how long the next job may wait for the ops of the last one
    // (see gather()); tests make it long so that no timer decides.
    RecordStore(uv_loop_t* loop, std::unique_ptr<RecordFile> file, uint64_t gather_ms = kGatherMs);
    // Must not run while a job is in flight: close() and wait for `closed`.
    ~RecordStore() override;
    RecordStore(const RecordStore&) = delete;
    RecordStore& operator=(const RecordStore&) = delete;

    void submit(Op* op) override;
    void close(std::function<void()> closed) override;

    uint64_t appended() const { return appended_; }  // records appended by this process
    uint64_t batches() const { return batches_; }    // append_batch calls (= append fdatasyncs)
    uint64_t jobs() const { return jobs_; }          // threadpool jobs run

private:
    static void work_cb(uv_work_t* req);
    static void read_work_cb(uv_work_t* req);
    static void read_after_cb(uv_work_t* req, int status);
    static void after_cb(uv_work_t* req, int status);
    static void gather_cb(uv_timer_t* timer);
    static void timer_closed_cb(uv_handle_t* handle);
    void start_job();
    void gather(size_t expected);
    void maybe_closed();
    void run_job();  // on the threadpool

    uv_loop_t* loop_;
    std::unique_ptr<RecordFile> file_;
    uv_work_t work_ {};
    bool busy_ = false;
    size_t reads_ = 0;  // Get jobs in flight
    bool closing_ = false;
    std::function<void()> closed_;
    std::vector<Op*> queued_;   // loop thread only
    std::vector<Op*> running_;  // the job's; the loop touches it only when no job is in flight

    // Gathering (see gather()): after a job of N ops, the next one waits up
    // to gather_ms_ for N ops to queue, so the clients that job answered
    // share the next fdatasync instead of splitting into 1 and N-1.
    uint64_t gather_ms_;
    uv_timer_t gather_timer_ {};
    bool timer_inited_ = false;
    bool timer_closed_ = false;
    bool gathering_ = false;
    size_t expected_ = 0;

    // Worker scratch, reused job after job.
    std::vector<RecordFile::Append> scratch_;
    std::vector<RecordFile::Append*> scratch_ptrs_;
    uint64_t job_batches_ = 0;  // written by the job, read in after_cb

    uint64_t appended_ = 0;
    uint64_t batches_ = 0;
    uint64_t jobs_ = 0;
};

}  // namespace uvh
