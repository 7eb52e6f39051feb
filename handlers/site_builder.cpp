#include "handlers/site_builder.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "handlers/compress/coding_cache.h"
#include "handlers/compress/disk_cache.h"
#include "handlers/compress/policy.h"
#include "handlers/dav/lock_table.h"
#include "handlers/fd_cache.h"
#include "handlers/file_cache.h"
#include "handlers/fs_ops.h"
#include "handlers/lock_service.h"
#include "handlers/records/pg_store.h"
#include "handlers/records/record_store.h"
#include "handlers/router.h"
#include "handlers/uploads/upload_state.h"
#include "handlers/write_ops.h"

namespace uvh {

namespace {

class SiteApp final : public Application {
public:
    explicit SiteApp(Config config) : config_(std::move(config)) {
        sweep_req_.data = this;
        upload_sweep_req_.data = this;
        upload_timer_.data = this;
    }
    ~SiteApp() override;

    bool open(uv_loop_t* loop, Metrics& metrics, std::string& error) override;
    void start() override;
    const Site& site() const override { return site_; }
    void dispatch(Exchange& ex) override { uvh::dispatch(ex); }
    void close(std::function<void()> closed) override;

private:
    static void on_sweep(uv_work_t* req);
    static void on_fd_timer(uv_timer_t* t);
    void close_expired_fds();
    static void on_upload_timer(uv_timer_t* t);
    static void on_upload_sweep(uv_work_t* req);
    static void on_upload_swept(uv_work_t* req, int status);
    static void on_swept(uv_work_t* req, int status);
    bool open_database(std::string& error);
    bool open_postgres(std::string& error);
    void maybe_closed();
    // One cache's close, which may call back at once or later: true once
    // it has called back; maybe_closed() runs again when it does later.
    struct CloseStep {
        bool started = false, done = false, async = false;
    };
    template <class Cache>
    bool closed_step(Cache* cache, CloseStep& step);

    Config config_;
    uv_loop_t* loop_ = nullptr;
    Site site_;
    bool database_fd_owned_ = false;
    std::unique_ptr<LockService> locks_;
    std::unique_ptr<DavLockTable> dav_locks_;
    std::unique_ptr<FileCache> cache_;
    CompressPolicy compress_;
    std::unique_ptr<CodingCache> codings_;
    CloseStep codings_close_;
    std::unique_ptr<DiskCodingCache> disk_codings_;
    CloseStep disk_close_;
    std::unique_ptr<FdCache> fd_cache_;
    std::unique_ptr<RecordBackend> records_;
    PgStore* pg_ = nullptr;  // records_ when it is PostgreSQL

    // Closing: the sweep (if any) finishes, then the record store closes.
    enum class State { Open, Closing, Closed } state_ = State::Open;
    std::function<void()> closed_;
    bool records_closing_ = false;
    bool records_closed_ = false;
    uv_work_t sweep_req_{};
    bool sweeping_ = false;

    // The descriptor cache's sweep: entries past --cache-revalidate go even
    // when nobody asks for them again (a deleted file must not be held open
    // for long), and what they held is closed on the threadpool.
    uv_timer_t fd_timer_{};
    bool fd_timer_open_ = false;
    uv_work_t fd_close_req_{};
    bool fd_closing_ = false;
    std::vector<int> fd_batch_;
    // The expiry sweep of resumable uploads: a timer on the loop that
    // hands the directory walk to the threadpool.
    uv_timer_t upload_timer_{};
    bool upload_timer_open_ = false;
    uv_work_t upload_sweep_req_{};
    bool upload_sweeping_ = false;
    size_t uploads_expired_ = 0;  // written on the worker, read in the after-callback
    bool upload_timer_closed_ = true;  // false while the timer's handle is open or closing
};

SiteApp::~SiteApp() {
    // records_ is closed by then (close() waited for it), or was never used
    // (open() failed or the server did not start).
    records_.reset();
    if (database_fd_owned_ && site_.database_dir_fd >= 0) ::close(site_.database_dir_fd);
    if (site_.root_fd >= 0) ::close(site_.root_fd);
}

bool SiteApp::open(uv_loop_t* loop, Metrics& metrics, std::string& error) {
    loop_ = loop;
    // Start-up runs before the loop does, so these blocking calls hold up
    // no client.
    int root = ::open(config_.root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) {
        error = fmt::format("cannot serve --root '{}': {}", config_.root, std::strerror(errno));
        return false;
    }
    site_.root_fd = root;
    site_.root_path = config_.root;
    site_.server_line = fmt::format("Server: uvhttpd/{}\r\n", kVersion);
    site_.cache_control = config_.cache_control;
    site_.inline_max = config_.inline_max;
    site_.max_body_size = config_.max_body_size;
    site_.max_record_size = config_.max_record_size;
    site_.max_store_size = config_.max_store_size;
    site_.writes_enabled = !config_.read_only;
    site_.write_token = config_.write_token;
    site_.create_dirs = config_.create_dirs;
    site_.dav_depth_infinity = config_.dav_depth_infinity;
    site_.dav_props_sidecar = config_.dav_props_sidecar;
    site_.upload_expiry_s = (config_.upload_expiry_ms + 999) / 1000;
    site_.max_uploads = config_.max_uploads;
    site_.allowed_hosts = config_.allowed_hosts;
    site_.ready_max_queue = config_.ready_max_queue;
    site_.allowed_origins = config_.allowed_origins;
    site_.health_path = config_.health_path;
    site_.ready_path = config_.ready_path;
    site_.metrics_path = config_.metrics_path;
    site_.metrics = &metrics;
    for (const std::string& c : config_.metrics_allow) {
        Cidr cidr;
        if (Cidr::parse(c, cidr)) site_.metrics_allow.push_back(cidr);
    }
    // Writers create the state file; a read-only server uses it when it is
    // there, to see writes made by another server sharing the root.
    locks_ = std::make_unique<LockService>();
    locks_->open(root, !config_.read_only);
    site_.locks = locks_.get();
    // The WebDAV lock table beside it, shared the same way.
    dav_locks_ = std::make_unique<DavLockTable>();
    dav_locks_->open(root, !config_.read_only, locks_.get());
    site_.dav_locks = dav_locks_.get();
    site_.dav_lock_timeout_max = static_cast<int64_t>(config_.dav_lock_timeout_max);
    if (config_.cache_size > 0) {
        cache_ = std::make_unique<FileCache>(config_.cache_size, config_.inline_max, config_.cache_revalidate_ms);
        cache_->set_generations(locks_.get());
        site_.cache = cache_.get();
    }
    if (config_.compress) {
        compress_.types = config_.compress_types.empty() ? default_compress_types() : config_.compress_types;
        compress_.min_size = config_.compress_min_size;
        compress_.max_cached = config_.compress_max_cached;
        compress_.cached = {config_.level_cached[1], config_.level_cached[2], config_.level_cached[3]};
        compress_.stream = {config_.level_stream[1], config_.level_stream[2], config_.level_stream[3]};
        compress_.prepare();
        site_.compress = &compress_;
        CodingCache::Options opt;
        opt.budget = config_.compress_cache_size;
        opt.max_file = config_.compress_cache_size > 0 ? config_.compress_max_cached : 0;
        opt.revalidate_ms = config_.cache_revalidate_ms;
        opt.levels = compress_.cached;
        opt.cache_control = config_.cache_control;
        // Half the threadpool at most compresses, so opening files always
        // finds a thread (as for listings).
        unsigned pool = 4;
        if (const char* env = getenv("UV_THREADPOOL_SIZE")) pool = static_cast<unsigned>(std::max(1, atoi(env)));
        opt.max_jobs = std::max(1u, pool / 2);
        codings_ = std::make_unique<CodingCache>(loop, root, locks_.get(), opt);
        site_.codings = codings_.get();
        if (!config_.compress_cache_dir.empty()) {
            DiskCodingCache::Options dopt;
            dopt.dir = config_.compress_cache_dir;
            dopt.max_bytes = config_.compress_cache_dir_size;
            dopt.max_jobs = std::max(1u, pool / 4);  // large files: fewer at once than the memory cache's
            disk_codings_ = DiskCodingCache::open(loop, locks_.get(), dopt, config_.root, config_.read_only, error);
            if (!disk_codings_) return false;
            site_.disk_codings = disk_codings_.get();
        }
    }
    if (config_.open_file_cache > 0) {
        // At most an eighth of the open-files limit stays open in the cache
        // (the server's descriptor budget counts each entry): under a small
        // limit the cache must not take what connections and responses need.
        size_t entries = config_.open_file_cache;
        struct rlimit rl {};
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
            entries = std::min<size_t>(entries, std::max<rlim_t>(1, rl.rlim_cur / 8));
        fd_cache_ = std::make_unique<FdCache>(entries, config_.cache_revalidate_ms);
        fd_cache_->set_generations(locks_.get());
        if (site_.metrics) fd_cache_->set_descriptor_count(&site_.metrics->descriptors_held);
        site_.fd_cache = fd_cache_.get();
    }
    return open_database(error);
}

bool SiteApp::open_database(std::string& error) {
    // The record store's file: relative paths live beneath the root.
    if (config_.database.front() == '/') {
        size_t slash = config_.database.rfind('/');
        std::string dir = slash == 0 ? std::string("/") : config_.database.substr(0, slash);
        int dfd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
            error = fmt::format("cannot use --database '{}': {}", config_.database, std::strerror(errno));
            return false;
        }
        site_.database_dir_fd = dfd;
        database_fd_owned_ = true;
        site_.database_rel = config_.database.substr(slash + 1);
    } else {
        site_.database_dir_fd = site_.root_fd;
        site_.database_rel = config_.database;
    }

    {
        // The store's identity on disk, for the write guard. Its directory
        // exists whenever the store can exist at all.
        std::string parent, name;
        split_parent(site_.database_rel, parent, name);
        int pfd = openat(site_.database_dir_fd, parent.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
        struct stat pst {};
        if (pfd >= 0 && fstat(pfd, &pst) == 0) {
            site_.store_known = true;
            site_.store_dir_dev = pst.st_dev;
            site_.store_dir_ino = pst.st_ino;
            site_.store_name = name;
        }
        if (pfd >= 0) ::close(pfd);
    }

    site_.records_required = config_.records_required;
    if (!config_.records.empty()) return open_postgres(error);

    // The record store. A last line without a newline is moved aside now
    // (never with --read-only, which never writes), before anyone reads the
    // file (start-up: blocking is fine).
    bool beneath = site_.database_dir_fd == site_.root_fd;
    auto file = std::make_unique<RecordFile>(site_.database_dir_fd, site_.database_rel, beneath);
    file->set_limits(config_.max_record_size, config_.max_store_size);
    if (int e = file->recover(!config_.read_only); e != 0 && e != ENOENT)
        fmt::print(stderr, "uvhttpd: cannot check the record store '{}': {}\n", config_.database, std::strerror(e));
    records_ = std::make_unique<RecordStore>(loop_, std::move(file));
    site_.records = records_.get();
    return true;
}

// --records: the records live in PostgreSQL. The file's identity above
// still guards the name against writes through other URLs; a database.txt
// left from file mode is neither served nor read (GET /database.txt renders
// the table), so start-up says so rather than let it look current.
bool SiteApp::open_postgres(std::string& error) {
    if (!PgStore::check_conninfo(config_.records, error)) {
        error = fmt::format("cannot use --records: {}", error);
        return false;
    }
    struct stat st {};
    if (fstatat(site_.database_dir_fd, site_.database_rel.c_str(), &st, 0) == 0)
        fmt::print(stderr,
                   "uvhttpd: --records: the records are in PostgreSQL; the file '{}' is not served or read "
                   "(GET {} renders the table)\n",
                   config_.database, site_.database_url);
    PgStore::Options opt;
    opt.conninfo = config_.records;
    opt.pool = config_.records_pool;
    opt.max_record = config_.max_record_size;
    opt.max_store = config_.max_store_size;
    opt.metrics = site_.metrics;
    auto store = std::make_unique<PgStore>(loop_, std::move(opt));
    pg_ = store.get();
    records_ = std::move(store);
    site_.records = records_.get();
    return true;
}

void SiteApp::start() {
    // Connecting starts with the loop; until a connection is up, record
    // requests answer 503 with Retry-After.
    if (pg_) pg_->start();
    // Temporary files a crash left behind (between link and rename of an
    // upload, or of a record rewrite) go, on the threadpool: the tree may be
    // large. Ten seconds of age spares other live processes' files.
    if (!config_.read_only && uv_queue_work(loop_, &sweep_req_, on_sweep, on_swept) == 0) sweeping_ = true;
    if (fd_cache_ && uv_timer_init(loop_, &fd_timer_) == 0) {
        fd_timer_.data = this;
        fd_timer_open_ = true;
        uint64_t every = std::max<uint64_t>(config_.cache_revalidate_ms, 100);
        uv_timer_start(&fd_timer_, on_fd_timer, every, every);
    }
    if (!config_.read_only && uv_timer_init(loop_, &upload_timer_) == 0) {
        upload_timer_open_ = true;
        upload_timer_closed_ = false;
        // Often enough that an upload outlives its expiry by at most half
        // of it (and by at most a minute).
        uint64_t period = std::clamp<uint64_t>(config_.upload_expiry_ms / 2, 500, 60'000);
        uv_timer_start(&upload_timer_, on_upload_timer, std::min<uint64_t>(period, 1000), period);
    }
}

void SiteApp::on_fd_timer(uv_timer_t* t) {
    auto* app = static_cast<SiteApp*>(t->data);
    app->fd_cache_->expire(uv_now(app->loop_));
    app->close_expired_fds();
}

void SiteApp::close_expired_fds() {
    std::vector<int>& pending = fd_cache_->pending_closes();
    if (fd_closing_ || pending.empty()) return;
    fd_batch_.swap(pending);
    fd_close_req_.data = this;
    auto work = [](uv_work_t* req) {
        for (int fd : static_cast<SiteApp*>(req->data)->fd_batch_) ::close(fd);
    };
    auto after = [](uv_work_t* req, int) {
        auto* app = static_cast<SiteApp*>(req->data);
        app->fd_closing_ = false;
        app->fd_cache_->closed(app->fd_batch_.size());  // counted in the descriptor budget until now
        app->fd_batch_.clear();
        if (app->state_ == State::Closing) app->maybe_closed();
    };
    if (uv_queue_work(loop_, &fd_close_req_, work, after) == 0) {
        fd_closing_ = true;
    } else {
        pending.swap(fd_batch_);  // the destructor closes them
    }
}

void SiteApp::on_upload_timer(uv_timer_t* t) {
    auto* app = static_cast<SiteApp*>(t->data);
    if (app->upload_sweeping_ || app->state_ != State::Open) return;
    if (uv_queue_work(app->loop_, &app->upload_sweep_req_, on_upload_sweep, on_upload_swept) == 0)
        app->upload_sweeping_ = true;
}

void SiteApp::on_upload_sweep(uv_work_t* req) {
    auto* app = static_cast<SiteApp*>(req->data);
    const LockService* locks = app->locks_.get();
    app->uploads_expired_ = sweep_expired_uploads(
        app->site_.root_fd, time(nullptr),
        [](void* ctx, dev_t dev, ino_t ino) { static_cast<const LockService*>(ctx)->bump(dev, ino); },
        const_cast<LockService*>(locks));
}

void SiteApp::on_upload_swept(uv_work_t* req, int) {
    auto* app = static_cast<SiteApp*>(req->data);
    app->upload_sweeping_ = false;
    if (app->site_.metrics) app->site_.metrics->uploads_expired += app->uploads_expired_;
    app->uploads_expired_ = 0;
    if (app->state_ == State::Closing) app->maybe_closed();
}

void SiteApp::on_sweep(uv_work_t* req) {
    auto* app = static_cast<SiteApp*>(req->data);
    size_t n = sweep_temp_files(app->site_.root_fd, 10);
    if (n) fmt::print(stderr, "uvhttpd: removed {} stale temporary files\n", n);
}

void SiteApp::on_swept(uv_work_t* req, int) {
    auto* app = static_cast<SiteApp*>(req->data);
    app->sweeping_ = false;
    if (app->state_ == State::Closing) app->maybe_closed();
}

void SiteApp::close(std::function<void()> closed) {
    if (state_ != State::Open) return;
    state_ = State::Closing;
    closed_ = std::move(closed);
    if (fd_timer_open_) {
        uv_timer_stop(&fd_timer_);
        uv_close(reinterpret_cast<uv_handle_t*>(&fd_timer_), [](uv_handle_t* h) {
            auto* app = static_cast<SiteApp*>(h->data);
            app->fd_timer_open_ = false;
            app->maybe_closed();
        });
    }
    maybe_closed();
}

template <class Cache>
bool SiteApp::closed_step(Cache* cache, CloseStep& step) {
    if (!cache || step.done) return true;
    if (step.started) return false;
    step.started = true;
    cache->close([this, &step] {
        step.done = true;
        if (step.async) maybe_closed();  // not from inside this call
    });
    step.async = true;
    return step.done;
}

void SiteApp::maybe_closed() {
    if (sweeping_ || fd_closing_ || fd_timer_open_) return;
    if (upload_timer_open_) {
        upload_timer_open_ = false;
        uv_timer_stop(&upload_timer_);
        // Closing the handle is asynchronous: finish once it is closed.
        uv_close(reinterpret_cast<uv_handle_t*>(&upload_timer_), [](uv_handle_t* h) {
            auto* app = static_cast<SiteApp*>(h->data);
            app->upload_timer_closed_ = true;
            app->maybe_closed();
        });
        return;
    }
    if (!upload_timer_closed_ || sweeping_ || upload_sweeping_) return;
    // Compressions still running on the pool finish first (their results
    // are dropped); queued ones never start.
    if (!closed_step(codings_.get(), codings_close_) || !closed_step(disk_codings_.get(), disk_close_)) return;
    // No connection is left, so no record operation is queued; close the
    // store and finish when it says it is done.
    if (records_ && !records_closed_) {
        if (!records_closing_) {
            records_closing_ = true;
            records_->close([this] {
                records_closed_ = true;
                maybe_closed();
            });
        }
        return;
    }
    state_ = State::Closed;
    if (closed_) std::exchange(closed_, nullptr)();
}

}  // namespace

std::unique_ptr<Application> build_site(const Config& config) { return std::make_unique<SiteApp>(config); }

}  // namespace uvh
