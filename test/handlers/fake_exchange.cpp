#include "test/handlers/fake_exchange.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "handlers/site_builder.h"
#include "protocol/status.h"
#include "protocol/target.h"

namespace uvh::test {

// ------------------------------------------------------------------ TempRoot

TempRoot::TempRoot() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/uvh-fake-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
}

TempRoot::~TempRoot() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

void TempRoot::write(std::string_view rel, std::string_view content) const {
    std::filesystem::path p = at(rel);
    std::filesystem::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

void TempRoot::mkdir(std::string_view rel) const { std::filesystem::create_directories(at(rel)); }

std::string TempRoot::read(std::string_view rel) const {
    std::ifstream in(at(rel), std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

bool TempRoot::exists(std::string_view rel) const {
    struct stat st {};
    return lstat(at(rel).c_str(), &st) == 0;
}

// ------------------------------------------------------------------ FakeSite

FakeSite::FakeSite(Config config) {
    if (uv_loop_init(&loop_) != 0) throw std::runtime_error("uv_loop_init failed");
    config.root = root_.path();
    config.install_signals = false;
    app_ = build_site(config);
    std::string error;
    if (!app_->open(&loop_, metrics_, error)) throw std::runtime_error("cannot open the site: " + error);
    // Application::start() is not called: all it begins is the start-up
    // sweep of stale temporary files, which walks the root on a worker
    // thread, opening directories while a test runs; that is no handler's
    // work and would blur the descriptor check of every exchange.
}

FakeSite::~FakeSite() {
    bool closed = false;
    app_->close([&closed] { closed = true; });
    bool in_time = run_until([&] { return closed; });
    app_.reset();
    // Every handle and request of the services is gone (GUIDE item 16).
    uv_run(&loop_, UV_RUN_NOWAIT);
    int rc = uv_loop_close(&loop_);
    CHECK(in_time);
    CHECK(rc == 0);
}

namespace {

struct Deadline {
    uv_timer_t timer{};
    bool expired = false;
};

}  // namespace

bool FakeSite::run_until_impl(bool (*cond)(void*), void* ctx, uint64_t timeout_ms) {
    if (cond(ctx)) return true;
    Deadline d;
    uv_timer_init(&loop_, &d.timer);
    d.timer.data = &d;
    uv_timer_start(
        &d.timer, [](uv_timer_t* t) { static_cast<Deadline*>(t->data)->expired = true; }, timeout_ms, 0);
    while (!cond(ctx) && !d.expired) uv_run(&loop_, UV_RUN_ONCE);
    bool ok = cond(ctx);
    uv_close(reinterpret_cast<uv_handle_t*>(&d.timer), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);  // the timer's close callback, before `d` goes
    return ok;
}

// -------------------------------------------------------------- FakeResponse

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool has_field(std::string_view fields, std::string_view name) {
    std::string f = lower(fields);
    std::string n = lower(name);
    size_t pos = 0;
    while (pos < f.size()) {
        if (f.compare(pos, n.size(), n) == 0 && pos + n.size() < f.size() && f[pos + n.size()] == ':') return true;
        size_t eol = f.find('\n', pos);
        if (eol == std::string::npos) break;
        pos = eol + 1;
    }
    return false;
}

}  // namespace

std::string FakeResponse::header(std::string_view name) const {
    std::string n = lower(name);
    for (const auto& [k, v] : fields)
        if (k == n) return v;
    return {};
}

bool FakeResponse::has(std::string_view name) const { return count(name) > 0; }

size_t FakeResponse::count(std::string_view name) const {
    std::string n = lower(name);
    return static_cast<size_t>(std::count_if(fields.begin(), fields.end(), [&](const auto& f) { return f.first == n; }));
}

// -------------------------------------------------------------- FakeExchange

FakeExchange::FakeExchange(FakeSite& site, FakeRequest req) : site_(site), req_(std::move(req)) {
    std::string& h = raw_head_;
    h = req_.method + " " + req_.target + (req_.http10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
    if (!has_field(req_.fields, "host")) h += "Host: localhost\r\n";
    h += req_.fields;
    if (!has_field(req_.fields, "content-length") && !has_field(req_.fields, "transfer-encoding")) {
        size_t total = 0;
        for (const auto& p : req_.body) total += p.size();
        if (total > 0) h += fmt::format("Content-Length: {}\r\n", total);
    }
    h += "\r\n";
    parser_.attach(&storage_);
    size_t consumed = 0;
    RequestParser::Event e = parser_.execute(h.data(), h.size(), consumed);
    if (e != RequestParser::Event::Head)
        throw std::runtime_error(fmt::format("the fake's request head does not parse: {}", parser_.error_message()));
    const Request& r = storage_.request;
    if (r.parsed.form == TargetForm::Asterisk) {
        path_ = "*";
    } else if (normalize_path(r.parsed.path, path_) != PathStatus::Ok) {
        throw std::runtime_error("the fake's request path does not normalise: " + req_.target);
    }
    client_.bytes[10] = client_.bytes[11] = 0xff;  // ::ffff:127.0.0.1
    client_.bytes[12] = 127;
    client_.bytes[15] = 1;
    client_.valid = true;
}

FakeExchange::~FakeExchange() {
    // A test that threw half-way: leave nothing open behind.
    if (offloaded_ && offloaded_->holds_resources()) offloaded_->release();
    job_slot_.clear();
    source_slot_.clear();
}

time_t FakeExchange::now() const { return time(nullptr); }

uint64_t FakeExchange::now_ms() const {
    uv_update_time(site_.loop());
    return uv_now(site_.loop());
}

void FakeExchange::problem(std::string what) { problems_.push_back(std::move(what)); }

std::set<std::string> FakeExchange::open_descriptors() const {
    std::set<std::string> out;
    DIR* d = opendir("/proc/self/fd");
    if (!d) return out;
    int self = dirfd(d);
    while (struct dirent* e = readdir(d)) {
        if (e->d_name[0] == '.') continue;
        int fd = std::atoi(e->d_name);
        if (fd == self) continue;
        char target[4096];
        ssize_t n = readlinkat(self, e->d_name, target, sizeof target - 1);
        target[n > 0 ? n : 0] = '\0';
        out.insert(fmt::format("{} -> {}", fd, target));
    }
    closedir(d);
    return out;
}

void FakeExchange::start() {
    if (started_) throw std::logic_error("a FakeExchange runs once");
    started_ = true;
    fds_before_ = open_descriptors();
}

FakeResponse FakeExchange::run(HandlerFn handler) {
    FakeResponse r = run_unchecked(handler);
    report();
    return r;
}

FakeResponse FakeExchange::run_unchecked(HandlerFn handler) {
    start();
    handler(*this);
    return finish();
}

void FakeExchange::report() const {
    for (const std::string& p : problems_) FAIL_CHECK(p);
}

FakeResponse FakeExchange::finish() {
    pump();
    if (responses_ == 0) problem("the handler never responded");
    if (holds_ > 0) problem(fmt::format("{} hold(s) never released", holds_));

    // The end of the exchange, as core does it: a job still holding
    // resources is released (core runs release() on a worker).
    if (offloaded_ && offloaded_->holds_resources()) {
        released_at_end_ = true;
        offloaded_->release();
        if (offloaded_->holds_resources()) problem("the job still holds resources after release()");
    }
    job_slot_.clear();
    source_slot_.clear();
    offloaded_ = nullptr;

    // The fake is the sender: it closes what it was given to close. A
    // failing close means the descriptor was not live (closed twice, or
    // never opened).
    std::vector<int> all = closed_later_;
    all.insert(all.end(), source_fds_.begin(), source_fds_.end());
    std::sort(all.begin(), all.end());
    if (std::adjacent_find(all.begin(), all.end()) != all.end()) problem("a descriptor was handed on twice");
    for (int fd : all) {
        if (close(fd) != 0) problem(fmt::format("descriptor {} handed on to be closed was not open", fd));
    }

    // Whatever the exchange opened is closed now; the record store may keep
    // its own file open (RecordFile holds the inode it has indexed).
    std::set<std::string> after = open_descriptors();
    std::string store = site_.root().at("database.txt");
    for (const std::string& fd : after) {
        if (fds_before_.count(fd)) continue;
        if (fd.find(store) != std::string::npos) continue;
        problem("descriptor left open by the exchange: " + fd);
    }
    return response_;
}

// A bounded pump: the connection's loop, reduced to one exchange.
void FakeExchange::pump() {
    for (int rounds = 0; rounds < 1'000'000; ++rounds) {
        if (pending_job_) {
            Job* job = std::exchange(pending_job_, nullptr);
            job->work();
            // Core drops the result of a job of an exchange already
            // answered; the job's release() runs at the end.
            if (responses_ > 0) continue;
            job->done(*this);
            continue;
        }
        if (pending_source_) {
            drain(*std::exchange(pending_source_, nullptr));
            continue;
        }
        if (body_mode_ == BodyMode::Deliver && !reader_busy_ && !reader_ended_ && responses_ == 0) {
            if (next_piece_ < pieces_.size()) {
                handed_ = pieces_[next_piece_++];
                reader_busy_ = true;
                ++pieces_delivered_;
                reader_.data(*this, handed_);
            } else {
                reader_ended_ = true;
                reader_.end(*this);
            }
            continue;
        }
        if (holds_ > 0) {
            if (!site_.run_until([this] { return holds_ == 0; })) {
                problem("a hold was not released within 10 s");
                return;
            }
            continue;
        }
        return;
    }
    problem("the exchange did not settle in 1,000,000 steps");
}

void FakeExchange::offload(Job& job, JobClass cls) {
    if (static_cast<void*>(&job) != job_slot_.get()) problem("offload() of a job not made with make_job()");
    if (pending_job_) problem("offload() while a job is already queued");
    if (responses_ > 0) problem("offload() after the response");
    offloaded_ = &job;
    pending_job_ = &job;
    ++offloads_;
    classes_.push_back(cls);
}

void FakeExchange::close_later(int fd) {
    if (fd < 0) {
        problem("close_later() of a negative descriptor");
        return;
    }
    closed_later_.push_back(fd);
}

void FakeExchange::respond(const ResponseHead& head, const Body& body) {
    if (++responses_ > 1) {
        problem("respond() called more than once");
        if (body.kind == Body::Kind::Source) end_source(*body.source);
        return;
    }
    const Request& r = request();
    response_.status = head.status;
    // The head exactly as core writes it.
    write_response_head(response_.head, head, Framing{true, r.http10(), {}}, "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n",
                        site().server_line);
    std::string_view text = response_.head;
    size_t eol = text.find("\r\n");
    for (size_t pos = eol + 2; pos < text.size();) {
        size_t end = text.find("\r\n", pos);
        if (end == std::string_view::npos || end == pos) break;
        std::string_view line = text.substr(pos, end - pos);
        size_t colon = line.find(':');
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        response_.fields.emplace_back(lower(line.substr(0, colon)), std::string(value));
        pos = end + 2;
    }
    response_.chunked = response_.header("transfer-encoding") == "chunked";

    bool head_only = r.method == Method::Head || !status_allows_body(head.status);
    if (body.kind == Body::Kind::Source) {
        if (static_cast<void*>(body.source) != source_slot_.get()) problem("a body source not made with make_source()");
        if (head_only) {
            end_source(*body.source);
        } else {
            pending_source_ = body.source;
        }
        return;
    }
    if (body.kind == Body::Kind::Memory && !head_only) response_.body.assign(body.memory);
}

void FakeExchange::drain(BodySource& src) {
    for (size_t steps = 0; steps < 1'000'000; ++steps) {
        BodyPiece p = src.next();
        switch (p.kind) {
        case BodyPiece::Kind::Memory:
            response_.body.append(p.memory);
            continue;
        case BodyPiece::Kind::Work:
            src.work();
            continue;
        case BodyPiece::Kind::File: {
            std::string buf(p.length, '\0');
            size_t got = 0;
            while (got < p.length) {
                ssize_t n = pread(p.fd, buf.data() + got, p.length - got, static_cast<off_t>(p.offset + got));
                if (n <= 0) {
                    problem(fmt::format("a File piece (fd {}, offset {}, length {}) cannot be read: {}", p.fd, p.offset,
                                        p.length, n < 0 ? std::strerror(errno) : "end of file"));
                    break;
                }
                got += static_cast<size_t>(n);
            }
            response_.body.append(buf, 0, got);
            continue;
        }
        case BodyPiece::Kind::End:
            end_source(src);
            return;
        }
    }
    problem("a body source did not end in 1,000,000 pieces");
    end_source(src);
}

void FakeExchange::end_source(BodySource& src) {
    int fd = src.release_descriptor();
    if (fd >= 0) source_fds_.push_back(fd);
}

void FakeExchange::read_body(const BodyReader& reader) {
    if (body_mode_ != BodyMode::Undecided) {
        problem("read_body() after the body was already read or discarded");
        return;
    }
    if (!reader.data || !reader.end || reader.chunk == 0) problem("read_body() with an incomplete reader");
    body_mode_ = BodyMode::Deliver;
    reader_ = reader;
    const Request& r = request();
    if (!r.http10() && r.expect.data() && r.has_body()) continue_sent_ = true;
    for (const std::string& piece : req_.body) {
        for (size_t off = 0; off < piece.size(); off += reader.chunk)
            pieces_.push_back(piece.substr(off, reader.chunk));
    }
}

void FakeExchange::body_consumed() {
    if (!reader_busy_) problem("body_consumed() with no piece handed out");
    reader_busy_ = false;
    handed_.clear();
}

void FakeExchange::discard_body() {
    if (body_mode_ == BodyMode::Undecided) body_mode_ = BodyMode::Discard;
}

void FakeExchange::hold() { ++holds_; }

void FakeExchange::release(DoneFn done) {
    if (holds_ <= 0) {
        problem("release() without hold()");
        return;
    }
    // As core: the continuation runs inside release(), on the loop thread.
    done(*this);
    --holds_;
}

FakeResponse serve(FakeSite& site, FakeRequest req, FakeExchange::HandlerFn handler) {
    FakeExchange ex(site, std::move(req));
    return ex.run(handler);
}

}  // namespace uvh::test
