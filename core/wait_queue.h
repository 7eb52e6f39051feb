#pragma once

// A first-come-first-served queue of objects waiting for something (a
// listing slot, descriptors), linked through a WaitLink of their own:
// waiting allocates nothing, and one that stops waiting (its client went
// away) leaves from the middle at once. Tag names which of the object's
// links a queue uses: T provides `WaitLink<T>& wait_link(Tag)`.

namespace uvh {

template <class T>
struct WaitLink {
    T* prev = nullptr;
    T* next = nullptr;
};

struct ListingSlotWait {};  // Server's listings waiting for a slot
struct DescriptorWait {};   // Server's jobs and responses waiting for descriptors

template <class T, class Tag>
class WaitQueue {
public:
    T* front() const { return head_; }
    bool empty() const { return head_ == nullptr; }

    void push_back(T& x) {
        WaitLink<T>& l = x.wait_link(Tag{});
        l.prev = tail_;
        l.next = nullptr;
        (tail_ ? tail_->wait_link(Tag{}).next : head_) = &x;
        tail_ = &x;
    }

    void remove(T& x) {
        WaitLink<T>& l = x.wait_link(Tag{});
        (l.prev ? l.prev->wait_link(Tag{}).next : head_) = l.next;
        (l.next ? l.next->wait_link(Tag{}).prev : tail_) = l.prev;
        l.prev = l.next = nullptr;
    }

private:
    T* head_ = nullptr;
    T* tail_ = nullptr;
};

}  // namespace uvh
