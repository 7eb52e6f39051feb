// The handler's jobs: offload() runs a Job's work() on the threadpool and
// its done() back on the loop, listings wait for a slot of their own, and a
// job that holds resources when its exchange ends releases them on a
// worker (dispose_job). Core does not know what a job does.
#include "core/connection.h"
#include "core/server.h"
#include "protocol/response.h"

namespace uvh {

void Connection::offload(Job& job, JobClass cls) {
    s_->offloaded = &job;
    // Time spent on our own disk work is not the client's stall.
    if (timeout_node.list == &server_.body_timeouts) disarm();
    if (!take_job_descriptors(cls)) return;  // waits for descriptors (core/descriptors.cpp)
    queue_offloaded(cls);
}

void Connection::queue_offloaded(JobClass cls) {
    if (cls == JobClass::Listing) {
        listing_job_ = true;
        if (!server_.acquire_listing_slot(*this)) {
            job_ = JobState::WaitingSlot;
            ++refs_;  // the queue's reference, handed to the job when it runs
            return;
        }
    }
    queue_job();
}

void Connection::run_waiting_job() {
    job_ = JobState::Idle;
    queue_job();
    unref();  // the queue's reference; queue_job took the job's own
}

void Connection::queue_job() {
    s_->work_req.data = this;
    if (uv_queue_work(server_.loop(), &s_->work_req, on_work, on_after_work) != 0) {
        if (listing_job_) {
            listing_job_ = false;
            server_.release_listing_slot();
        }
        respond_error(*this, 503, "cannot queue work on the threadpool");
        return;
    }
    job_ = JobState::Running;
    ++refs_;
    ++server_.metrics().threadpool_jobs;
}

void Connection::on_work(uv_work_t* req) {
    auto* c = static_cast<Connection*>(req->data);
    c->s_->offloaded->work();
}

// The job's release() of what it still holds (dispose_job), on a worker.
void Connection::on_release_work(uv_work_t* req) {
    auto* c = static_cast<Connection*>(req->data);
    c->s_->offloaded->release();
}

void Connection::on_after_work(uv_work_t* req, int status) {
    auto* c = static_cast<Connection*>(req->data);
    c->server_.tick_clock();
    JobState was = c->job_;
    c->job_ = JobState::Idle;
    if (was == JobState::Releasing) {
        // The release of an exchange's job is done (dispose_job).
        c->s_->offloaded = nullptr;
        c->s_->job.clear();
        c->give_job_descriptors();
        c->kick();
        c->unref();
        return;
    }
    --c->server_.metrics().threadpool_jobs;
    if (c->listing_job_) {
        c->listing_job_ = false;
        c->server_.release_listing_slot();
    }
    if (was == JobState::Unwanted || c->closing_ != Closing::No || c->abandoned_ || status != 0) {
        // The client is gone or was already answered: drop the result, and
        // let the job give back what it holds.
        c->dispose_job();
        c->after_processing();
    } else {
        c->run_done([c] { c->s_->offloaded->done(*c); });
        c->kick();
    }
    c->give_job_descriptors();
    c->unref();
}

// Runs a handler's continuation. The exchange may end inside it (the
// response went out whole), but the job it belongs to must outlive the
// call: its disposal waits until the continuation returns.
template <class F>
void Connection::run_done(F&& f) {
    in_done_ = true;
    f();
    in_done_ = false;
    if (dispose_after_done_) {
        dispose_after_done_ = false;
        if (!work_busy()) dispose_job();
    }
}

void Connection::hold() { ++refs_; }

void Connection::release(DoneFn done) {
    server_.tick_clock();
    if (closing_ == Closing::No && !abandoned_ && s_) {
        run_done([this, done] { done(*this); });
        kick();
    }
    unref();
}

// The exchange is over for the handler's job: if it still holds resources
// (descriptors, a temporary file) its release() runs on a worker, and the
// slot is cleared when that is done; otherwise at once. Core does not know
// what the resources are.
void Connection::dispose_job() {
    Job* job = s_->offloaded;
    s_->offloaded = nullptr;
    if (!job || !job->holds_resources()) {
        s_->job.clear();
        return;
    }
    s_->offloaded = job;
    s_->work_req.data = this;
    if (uv_queue_work(server_.loop(), &s_->work_req, on_release_work, on_after_work) != 0) {
        // Cannot happen with a valid loop; release here rather than leak.
        job->release();
        s_->offloaded = nullptr;
        s_->job.clear();
        return;
    }
    job_ = JobState::Releasing;
    ++refs_;
}

}  // namespace uvh
