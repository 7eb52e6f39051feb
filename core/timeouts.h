// Connection timeouts without a timer per connection: one intrusive FIFO
// list per kind of timeout. Every member of a list has the same duration,
// so appending keeps each list sorted by deadline, arming and disarming are
// O(1), and one periodic tick expires the heads (the idea of h2o's timeout
// lists). A connection sits in at most one list at a time.
#pragma once

#include <cstdint>

namespace uvh {

class TimeoutList;

struct TimeoutNode {
    void* owner = nullptr;  // the connection this node belongs to
    TimeoutNode* prev = nullptr;
    TimeoutNode* next = nullptr;
    TimeoutList* list = nullptr;
    uint64_t deadline = 0;  // loop time in ms
};

class TimeoutList {
public:
    explicit TimeoutList(uint64_t duration_ms = 0) : duration_(duration_ms) {}
    TimeoutList(const TimeoutList&) = delete;
    TimeoutList& operator=(const TimeoutList&) = delete;

    void set_duration(uint64_t ms) { duration_ = ms; }
    uint64_t duration() const { return duration_; }

    // Moves the node to the tail of this list with deadline now + duration.
    void arm(TimeoutNode& n, uint64_t now) {
        disarm(n);
        if (duration_ == 0) return;  // 0 disables this timeout
        n.deadline = now + duration_;
        n.list = this;
        n.prev = tail_;
        n.next = nullptr;
        if (tail_) {
            tail_->next = &n;
        } else {
            head_ = &n;
        }
        tail_ = &n;
    }

    static void disarm(TimeoutNode& n) {
        TimeoutList* l = n.list;
        if (!l) return;
        if (n.prev) {
            n.prev->next = n.next;
        } else {
            l->head_ = n.next;
        }
        if (n.next) {
            n.next->prev = n.prev;
        } else {
            l->tail_ = n.prev;
        }
        n.prev = n.next = nullptr;
        n.list = nullptr;
    }

    // Pops nodes whose deadline has passed and calls f(node) for each; f may
    // re-arm the node in any list, or free its owner.
    template <typename F>
    void expire(uint64_t now, F&& f) {
        while (head_ && head_->deadline <= now) {
            TimeoutNode* n = head_;
            disarm(*n);
            f(*n);
        }
    }

    bool empty() const { return head_ == nullptr; }

private:
    uint64_t duration_;
    TimeoutNode* head_ = nullptr;
    TimeoutNode* tail_ = nullptr;
};

}  // namespace uvh
