// The descriptor budget: what the open-files limit (RLIMIT_NOFILE) backs.
//
// A connection costs its socket. A response costs more only while it holds
// them: its own file (a descriptor the GET opened; a file shared through
// the open-file cache is counted once, by the cache) and the duplicate of
// the socket a threadpool sendfile writes through (kept by the connection
// once made, as its uv_poll watches it: dup, setsockopt and a poll handle
// per response would cost the 1 MiB path more than the descriptor is
// worth). The process keeps a fixed reserve for its own descriptors (loop,
// listener, root, logs, stores: counted at start) and for the threadpool's
// short-lived opens (three per pool thread), and a headroom for file
// responses: accepting pauses once only the headroom is left, so idle
// connections can take nearly the whole limit while file responses still
// find descriptors (hardening issue, item 12: a --max-connections the
// limit cannot back must not turn requests into failures).
//
// A file response that finds no room waits, first come first served, until
// a response ends or a connection closes; at most --send-timeout, then it
// is a 503 with Retry-After (HAProxy's `timeout queue`). A dup that fails
// with EMFILE or ENFILE anyway (another program shares the limit through
// --workers' processes, the limit was lowered under us) is the same 503,
// before any byte of the response is sent.
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "core/connection.h"
#include "core/server.h"
#include "protocol/response.h"

namespace uvh {

namespace {

// Charged for each handler job from its queueing to the end of its done():
// a GET's file, a PUT's temporary file and directory.
constexpr uint8_t kJobDescriptors = 2;
// Descriptors a threadpool job may open for a moment beyond the two its
// charge covers (kJobDescriptors: a sibling probe, a directory), per pool
// thread.
constexpr int64_t kPerPoolThread = 1;
// Log reopening, the lock service's and the state file's short opens.
constexpr int64_t kSlack = 8;

int64_t count_open_descriptors() {
    DIR* d = opendir("/proc/self/fd");
    if (!d) return 16;
    int64_t n = 0;
    while (dirent* e = readdir(d))
        if (e->d_name[0] != '.') ++n;
    closedir(d);
    return n - 1;  // the directory's own
}

}  // namespace

// The soft limit is raised to the hard one where allowed (main() does it
// too; a server embedded in a test does it here).
void Server::raise_descriptor_limit() {
    struct rlimit rl {};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
    struct rlimit raised = rl;
    raised.rlim_cur = std::min<rlim_t>(rl.rlim_max, 1 << 20);
    setrlimit(RLIMIT_NOFILE, &raised);
}

// After start-up opened everything the process keeps (the application,
// the log, the listener, the signal pipe).
void Server::size_descriptor_budget() {
    struct rlimit rl {};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return;
    const char* env = std::getenv("UV_THREADPOOL_SIZE");
    long pool = env ? std::strtol(env, nullptr, 10) : 4;
    pool = std::clamp(pool, 1L, 1024L);
    fd_limit_ = static_cast<int64_t>(std::min<rlim_t>(rl.rlim_cur, 1 << 30));
    fd_reserve_ = count_open_descriptors() + kPerPoolThread * pool + config_.records_pool + kSlack;
    fd_headroom_ = std::clamp<int64_t>(fd_limit_ / 16, 4, 256);
    int64_t capacity = std::max<int64_t>(1, fd_limit_ - fd_reserve_ - fd_headroom_);
    metrics_.descriptors_limit = fd_limit_;
    metrics_.descriptors_reserved = fd_reserve_ + fd_headroom_;
    metrics_.connection_capacity = capacity;
    if (config_.max_connections > static_cast<size_t>(capacity) &&
        (config_.max_connections != Config{}.max_connections || capacity < 1024))
        fmt::print(stderr,
                   "uvhttpd: the open-files limit is {}: about {} idle connections fit, fewer than "
                   "--max-connections {}; past them clients wait in the listen backlog. A connection "
                   "holds one descriptor, and up to two more while it sends a file; {} are kept for the "
                   "server and for file responses (raise the limit with ulimit -n or LimitNOFILE=)\n",
                   fd_limit_, capacity, config_.max_connections, fd_reserve_ + fd_headroom_);
}

int64_t Server::descriptor_room() const {
    // An upload in flight holds its temporary file and its directory.
    return fd_limit_ - fd_reserve_ - metrics_.open_connections - metrics_.descriptors_held -
           2 * metrics_.uploads_in_flight;
}

bool Server::descriptors_fit_connection() const {
    return fd_limit_ == 0 || (fd_waiters_.empty() && descriptor_room() > fd_headroom_);
}

bool Server::connections_fit() const {
    return static_cast<size_t>(metrics_.open_connections) < config_.max_connections && descriptors_fit_connection();
}

bool Server::descriptors_scarce() const {
    return fd_limit_ != 0 && (!fd_waiters_.empty() || descriptor_room() <= fd_headroom_);
}

bool Server::take_descriptors(int n) {
    if (fd_limit_ != 0 && (!fd_waiters_.empty() || descriptor_room() < n)) return false;
    metrics_.descriptors_held += n;
    return true;
}

void Server::give_descriptors(int n) {
    metrics_.descriptors_held -= n;
    grant_descriptor_waiters();
    if (paused_ && !stopped_ && connections_fit()) resume_accepting();
}

void Server::wait_for_descriptors(Connection& c) {
    fd_waiters_.push_back(c);
    ++metrics_.responses_waiting_descriptors;
    ++metrics_.descriptor_waits;
}

void Server::forget_descriptor_waiter(Connection& c) {
    fd_waiters_.remove(c);
    --metrics_.responses_waiting_descriptors;
}

void Server::grant_descriptor_waiters() {
    if (granting_) return;  // a granted response that ends at once gives back from inside
    granting_ = true;
    while (Connection* c = fd_waiters_.front()) {
        int n = c->descriptors_needed();
        if (descriptor_room() < n) break;
        forget_descriptor_waiter(*c);
        metrics_.descriptors_held += n;
        c->descriptors_granted();
    }
    granting_ = false;
}

// ---- the connection's side ----

// A handler's job is charged before it is queued: what it opens on the
// threadpool (a GET's file) stays open until its done() runs on the loop,
// and a burst of jobs finishing while the loop is busy must not open more
// files than the budget has. The response the job answers with takes its
// descriptors from this charge; what is left returns after done().
bool Connection::take_job_descriptors(JobClass cls) {
    if (job_fds_ > 0) return true;  // a job's next step (a PUT's) keeps its charge
    if (server_.take_descriptors(kJobDescriptors)) {
        job_fds_ = kJobDescriptors;
        return true;
    }
    fd_wait_job_ = true;
    fd_job_class_ = cls;
    fd_want_ = kJobDescriptors;
    fd_waiting_ = true;
    server_.wait_for_descriptors(*this);
    arm(server_.send_timeouts);
    return false;
}

// After a job's done() (or its release): unless another job was queued
// meanwhile, its charge returns.
void Connection::give_job_descriptors() {
    if (job_fds_ == 0 || job_running() || job_ == JobState::WaitingSlot) return;
    server_.give_descriptors(std::exchange(job_fds_, 0));
}

// respond() wrote the head of a source body at `head_at` in the output:
// true when the descriptors it needs are charged (and the socket's
// duplicate made), so the body may start. False when the response waits
// for descriptors (the head moves aside) or was answered 503 instead.
bool Connection::take_body_descriptors(size_t head_at) {
    BodySource* src = s_->tx.source;
    fd_need_file_ = src->owns_descriptor();
    fd_need_dup_ = src->sends_file_pieces() && sock_dup_ < 0 && spare_dup_ < 0;
    int need = fd_need_file_ + fd_need_dup_;
    int have = std::min<int>(job_fds_, need);  // the job's charge covers the file it opened
    job_fds_ = static_cast<uint8_t>(job_fds_ - have);
    if (need == have || server_.take_descriptors(need - have)) {
        if (body_descriptors_charged()) return true;
        refuse_for_descriptors(head_at, std::strerror(errno));
        return false;
    }
    s_->held_head.assign(s_->out, head_at);
    s_->out.resize(head_at);
    fd_wait_job_ = false;
    fd_prepaid_ = static_cast<uint8_t>(have);
    fd_want_ = static_cast<uint8_t>(need - have);
    fd_waiting_ = true;
    server_.wait_for_descriptors(*this);
    arm(server_.send_timeouts);
    return false;
}

// The budget charged what the body needs: the connection owns the charge
// from now on. False (with errno) when the socket cannot be duplicated;
// that share is given back.
bool Connection::body_descriptors_charged() {
    fd_prepaid_ = 0;
    file_charged_ = fd_need_file_;
    if (!fd_need_dup_) return true;
    uv_os_fd_t fd = -1;
    if (uv_fileno(reinterpret_cast<uv_handle_t*>(&tcp_), &fd) != 0) {
        errno = EBADF;
    } else if ((spare_dup_ = fcntl(fd, F_DUPFD_CLOEXEC, 0)) >= 0) {
        ++dups_charged_;
        return true;
    }
    int err = errno;
    server_.give_descriptors(1);
    errno = err;
    return false;
}

void Connection::descriptors_granted() {
    fd_waiting_ = false;
    disarm();
    if (fd_wait_job_) {
        job_fds_ = fd_want_;
        queue_offloaded(fd_job_class_);
    } else if (!body_descriptors_charged()) {
        refuse_for_descriptors(s_->out.size(), std::strerror(errno));
    } else {
        s_->out.append(s_->held_head);
        s_->held_head.clear();
        tx_active_ = true;
    }
    kick();
}

// The send timeout passed while the job or the response waited.
void Connection::stop_waiting_for_descriptors() {
    server_.forget_descriptor_waiter(*this);
    fd_waiting_ = false;
    disarm();
    refuse_for_descriptors(s_->out.size(), "no file descriptor came free in time (open-files limit reached)");
}

// 503 with Retry-After instead of the response whose head sits at
// `head_at` (or aside, waiting): its source goes, the connection stays.
void Connection::refuse_for_descriptors(size_t head_at, std::string_view detail) {
    if (fd_prepaid_) server_.give_descriptors(std::exchange(fd_prepaid_, 0));
    end_source();
    s_->out.resize(head_at);
    s_->held_head.clear();
    ++server_.metrics().descriptor_refusals;
    exchange_ = ExchangeState::Dispatched;  // the refusal is this exchange's response
    std::string& body = s_->text;
    format_error_body(body, 503, detail);
    ResponseHead head;
    head.status = 503;
    head.content_type = "text/plain; charset=utf-8";
    head.content_length = body.size();
    head.add("Retry-After", "1");
    respond(head, Body::mem(body));
}

// A descriptor a handler is done with stays open until the threadpool
// closes it, behind whatever is queued there: the budget counts it until
// then (a burst of responses would otherwise leave many such closes
// pending, uncounted).
void Connection::close_later(int fd) {
    if (fd < 0) return;
    ++server_.metrics().descriptors_held;
    close_fd_async(fd, true);
}

// The first sendfile takes the duplicate made before the head; one made
// here (no budget, or a source that did not say it sends files) is
// charged now.
int Connection::take_spare_dup(int socket_fd) {
    if (spare_dup_ >= 0) return std::exchange(spare_dup_, -1);
    int fd = fcntl(socket_fd, F_DUPFD_CLOEXEC, 0);
    if (fd >= 0) {
        ++dups_charged_;
        ++server_.metrics().descriptors_held;
    }
    return fd;
}

// The response ended (end_source: its own file's charge returns when the
// close is done) or the connection goes (unref): what else it holds
// returns to the budget. While descriptors are scarce, a file body that
// ends also gives back the socket's duplicate: a keep-alive connection
// between responses then costs one descriptor, as an idle one does.
// Otherwise the duplicate stays for the connection's next file, as it
// costs a dup, two setsockopt and a poll handle to make again; should
// descriptors become scarce later, the tick takes it back
// (drop_idle_dup).
void Connection::give_body_descriptors() {
    if (closing_ == Closing::Closed && refs_ == 0) {
        if (spare_dup_ >= 0) ::close(spare_dup_);
        spare_dup_ = -1;
        int n = dups_charged_ + std::exchange(job_fds_, 0) + std::exchange(fd_prepaid_, 0);
        dups_charged_ = 0;
        if (n) server_.give_descriptors(n);
    } else if (server_.descriptors_scarce()) {
        drop_idle_dup();
    }
}

// Gives back the socket's duplicate (and the poll handle on it) of a
// connection with no file body under way.
void Connection::drop_idle_dup() {
    if (!dups_charged_ || closing_ != Closing::No || tx_active_ || tx_busy_ || send_queued_ || fd_waiting_) return;
    if (poll_) {
        uv_close(reinterpret_cast<uv_handle_t*>(poll_), on_poll_close);  // stops watching the duplicate
        poll_ = nullptr;
    }
    for (int* fd : {&sock_dup_, &spare_dup_}) {
        if (*fd >= 0) ::close(*fd);
        *fd = -1;
    }
    // The next duplicate starts over at the first TCP_NOTSENT_LOWAT
    // (start_sendfile): a --send-buffer-fast reader is one that drains what
    // it queued, and keeps its slot until a step finds that gone
    // (update_send_boost) or the connection closes.
    if (boost_ == Boost::On) boost_ = Boost::Draining;
    server_.give_descriptors(std::exchange(dups_charged_, 0));
}

// From the tick, while jobs or responses wait for descriptors: connections
// between responses give back the duplicates they kept.
void Server::reclaim_idle_dups() {
    for (Connection* c = first_; c && !fd_waiters_.empty(); c = c->next) c->drop_idle_dup();
}

}  // namespace uvh
