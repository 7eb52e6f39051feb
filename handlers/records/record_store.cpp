#include "handlers/records/record_store.h"

#include <cstdio>
#include <cstdlib>

namespace uvh {

RecordStore::RecordStore(uv_loop_t* loop, std::unique_ptr<RecordFile> file, uint64_t gather_ms)
    : loop_(loop), file_(std::move(file)), gather_ms_(gather_ms) {
    work_.data = this;
}

RecordStore::~RecordStore() {
    if (busy_ || reads_ != 0 || (timer_inited_ && !timer_closed_)) {
        // The job would write into freed memory, or the loop would keep a
        // dangling timer; there is no safe way on.
        std::fputs("uvhttpd: RecordStore destroyed with a job in flight or before close() finished\n", stderr);
        std::abort();
    }
}

void RecordStore::submit(Op* op) {
    op->status = closing_ ? 503 : 0;  // a refused op still completes through a job
    op->created = false;
    op->store_full = false;
    op->retry_after_s = 0;
    if (op->kind == Op::Kind::Get && !closing_) {
        // Reads do not wait behind the writes' queue or their fdatasync.
        op->backend = this;
        op->read_req.data = op;
        ++reads_;
        uv_queue_work(loop_, &op->read_req, read_work_cb, read_after_cb);
        return;
    }
    queued_.push_back(op);
    if (busy_) return;
    if (gathering_) {
        if (queued_.size() < expected_) return;
        uv_timer_stop(&gather_timer_);
        gathering_ = false;
    }
    start_job();
}

void RecordStore::close(std::function<void()> closed) {
    closing_ = true;
    closed_ = std::move(closed);
    if (gathering_) {
        uv_timer_stop(&gather_timer_);
        gathering_ = false;
    }
    if (timer_inited_) uv_close(reinterpret_cast<uv_handle_t*>(&gather_timer_), timer_closed_cb);
    // An empty job when idle (it also runs what was gathering), so that
    // `closed` runs later on the loop and never inside close().
    if (!busy_) start_job();
}

void RecordStore::start_job() {
    running_.swap(queued_);  // queued_ takes the (empty) vector of the last job
    busy_ = true;
    ++jobs_;
    job_batches_ = 0;
    // Fails only without a work callback.
    uv_queue_work(loop_, &work_, work_cb, after_cb);
}

// Group commit only pays when the ops of one commit arrive together. With
// many clients each waiting for its answer, starting a job for the first op
// that comes back locks the others out for a whole fdatasync, and the
// batches settle into alternating 1 and N-1. So after a job of `expected`
// ops the next one starts as soon as that many are queued, or after
// gather_ms_, whichever comes first; a lone client (expected 1) never waits.
void RecordStore::gather(size_t expected) {
    if (!timer_inited_) {
        uv_timer_init(loop_, &gather_timer_);
        gather_timer_.data = this;
        timer_inited_ = true;
    }
    gathering_ = true;
    expected_ = expected;
    uv_timer_start(&gather_timer_, gather_cb, gather_ms_, 0);
}

void RecordStore::gather_cb(uv_timer_t* timer) {
    auto* self = static_cast<RecordStore*>(timer->data);
    self->gathering_ = false;
    if (!self->busy_ && !self->queued_.empty()) self->start_job();
}

void RecordStore::timer_closed_cb(uv_handle_t* handle) {
    auto* self = static_cast<RecordStore*>(handle->data);
    self->timer_closed_ = true;
    self->maybe_closed();
}

void RecordStore::maybe_closed() {
    if (!closing_ || busy_ || reads_ != 0 || !closed_ || !queued_.empty()) return;
    if (timer_inited_ && !timer_closed_) return;
    auto closed = std::move(closed_);
    closed_ = nullptr;
    closed();
}

void RecordStore::work_cb(uv_work_t* req) { static_cast<RecordStore*>(req->data)->run_job(); }

void RecordStore::read_work_cb(uv_work_t* req) {
    auto* op = static_cast<Op*>(req->data);
    try {
        Record out;
        op->status = static_cast<RecordStore*>(op->backend)->file_->get(op->rec.id, out);
        if (op->status == 200) op->rec.fields = std::move(out.fields);
    } catch (...) {  // std::bad_alloc
        op->status = 500;
    }
}

void RecordStore::read_after_cb(uv_work_t* req, int /*status: never cancelled*/) {
    auto* op = static_cast<Op*>(req->data);
    auto* self = static_cast<RecordStore*>(op->backend);
    --self->reads_;
    if (op->done) op->done(*op);  // may free op
    self->maybe_closed();
}

void RecordStore::run_job() {
    try {
        size_t n = running_.size();
        for (size_t i = 0; i < n;) {
            Op* op = running_[i];
            if (op->status != 0) {  // refused after close()
                ++i;
                continue;
            }
            switch (op->kind) {
            case Op::Kind::Append: {
                size_t j = i;
                while (j < n && running_[j]->kind == Op::Kind::Append && running_[j]->status == 0) ++j;
                scratch_.resize(j - i);
                scratch_ptrs_.clear();
                scratch_ptrs_.reserve(j - i);
                for (size_t k = 0; k < j - i; ++k) {
                    scratch_[k].rec = std::move(running_[i + k]->rec);
                    scratch_[k].status = 0;
                    scratch_[k].store_full = false;
                    scratch_ptrs_.push_back(&scratch_[k]);
                }
                file_->append_batch(scratch_ptrs_);
                ++job_batches_;
                for (size_t k = 0; k < j - i; ++k) {
                    running_[i + k]->rec = std::move(scratch_[k].rec);
                    running_[i + k]->status = scratch_[k].status;
                    running_[i + k]->store_full = scratch_[k].store_full;
                }
                i = j;
                break;
            }
            case Op::Kind::Get: {
                Record out;
                op->status = file_->get(op->rec.id, out);
                if (op->status == 200) op->rec.fields = std::move(out.fields);
                ++i;
                break;
            }
            case Op::Kind::Put:
                op->status = file_->put(op->rec, op->created, &op->store_full);
                ++i;
                break;
            case Op::Kind::Delete:
                op->status = file_->remove(op->rec.id);
                ++i;
                break;
            }
        }
    } catch (...) {  // std::bad_alloc in the scratch vectors
        for (Op* op : running_)
            if (op->status == 0) op->status = 500;
    }
}

void RecordStore::after_cb(uv_work_t* req, int /*status: never cancelled*/) {
    auto* self = static_cast<RecordStore*>(req->data);
    self->batches_ += self->job_batches_;
    size_t ran = self->running_.size();
    // busy_ stays set while the callbacks run: an op submitted from done()
    // queues for the next job instead of disturbing running_.
    for (Op* op : self->running_) {
        if (op->kind == Op::Kind::Append && op->status == 201) ++self->appended_;
        if (op->done) op->done(*op);  // may free op
    }
    self->running_.clear();
    self->busy_ = false;
    if (self->closing_) {
        if (!self->queued_.empty()) {
            self->start_job();
        } else {
            self->maybe_closed();
        }
    } else if (!self->queued_.empty() && self->queued_.size() >= ran) {
        self->start_job();
    } else if (ran > 1) {
        self->gather(ran);  // fewer than last time are back: wait for the rest briefly
    }
}

}  // namespace uvh
