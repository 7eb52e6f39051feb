// libFuzzer target over the whole request path (issue: fuzzing). Each input
// goes over a real TCP connection to the real Server, running on its own
// libuv loop in this process, through llhttp, routing and a handler on a
// temporary root; what comes back is checked against invariants, and any
// violation aborts so libFuzzer keeps the input as a crash:
//
//  1. Every response is well-formed: "HTTP/1.1 DDD Reason" with a reason
//     from the table, field lines "Name: value" without bare CR/LF or
//     control bytes, Date present, no content for HEAD (RFC 9110 §9.3.2),
//     1xx, 204 and 304 (nor Content-Length in a 204, nor Transfer-Encoding
//     in any of them), and otherwise exactly one framing (RFC 9112 §6.3):
//     Content-Length and exactly that many bytes; or, for a body of unknown
//     length, "Transfer-Encoding: chunked" (never with Content-Length, never
//     to an HTTP/1.0 request) with every chunk well-formed (hex size
//     without leading zeros or extensions, CRLF, the data, CRLF) and the
//     last chunk "0" CRLF with no trailer, CRLF; or, to an HTTP/1.0 request
//     only, no length at all, Connection: close and the body up to the
//     close. A body after a HEAD response shows up as a malformed next
//     response.
//  2. Responses answer requests one for one, in order (RFC 9112 §9.3.2):
//     never more responses than the same parser finds requests in the
//     input (a second response to one request, or a smuggled one, shows up
//     here); every completely received request is answered unless the
//     connection was closed on purpose.
//  3. "Connection: close" ends the connection: no byte follows and the
//     server closes (RFC 9112 §9.6). Bad framing (a parse error, CL+TE,
//     Transfer-Encoding on 1.0 or not ending in chunked) gets a 4xx/5xx that
//     closes (RFC 9112 §6.1, §6.3); HTTP/1.0 requests without keep-alive are
//     answered with a close; 100 Continue only for an HTTP/1.1 request with
//     a body that asked for it (RFC 9110 §10.1.1).
//  4. Nothing outside the root is ever read: markers in a canary file and in
//     the names of entries next to the root never appear in a response.
//  5. Bytes out are right: a 200 or single-range 206 for a fixture file
//     carries exactly the file's bytes (or the slice Content-Range names),
//     whichever path sent them (cache, read, sendfile).
//  6. Location is a path on this server, never "//host" (an open redirect),
//     made of URI characters only.
//  7. The server keeps serving and leaks nothing: every connection is gone
//     after each input, no descriptor is left open, and a control GET on a
//     fresh connection still gets the right file.
//  8. Read boundaries do not matter: an input delivered in pieces gets the
//     same statuses as the same bytes in one write (unless a request body
//     is incomplete or broken, where timing legitimately decides; and a run
//     in which a handler answered mid-upload and closed may stop sooner).
//  9. The write paths are still reached: at start-up and every
//     UVH_FUZZ_WRITE_PROBE_EVERY inputs (default 500) a known-good PUT
//     (201 new, 204 replaced), form POST to the record store (201) and
//     DELETE (204), sent with Host: localhost as curl on this machine does,
//     must succeed and change the disk. A guard (Host/Origin checks, auth
//     defaults) that refused every write would otherwise leave the fuzzer
//     exploring nothing but the refusal, with no crash to show for it.
//
// Input format: the first byte says how the rest is delivered (so partial
// reads are exercised), the rest is sent as-is:
//   bits 0-2  number of extra split points (the rest goes in 1 to 8 writes,
//             each read by the server before the next is sent)
//   bit 3     set: do NOT half-close after sending; the server must end the
//             connection through its own timeouts
//   bits 4-6  seed for the split positions
//   bit 7     set: the first 256 bytes go one byte per write
// So '0' (0x30) is "send everything in one write, then half-close", and the
// seed files in corpus/ read as "0GET / HTTP/1.1...".
//
// Time: the server's header, idle and body timeouts are 1 s, but the harness
// does not wait for them. When the server and the client are both idle (no
// libuv request in flight, no readiness on the loop or the client socket),
// the harness expires those three timeout lists as if 1 s had passed, which
// is exactly what the periodic tick would do a second later.
//
// Environment: UVH_FUZZ_TMPDIR (where the temporary tree goes; default
// /dev/shm when writable, so fdatasync costs nothing), UVH_FUZZ_CONTROL_EVERY
// (control GET every N inputs, default 1), UVH_FUZZ_WRITE_PROBE_EVERY (the
// write probe of invariant 9 every N inputs, default 500), UVH_FUZZ_TRACE=1
// (print every input's responses).
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sanitizer/common_interface_defs.h>
#include <uv.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/connection.h"
#include "core/server.h"
#include "handlers/fd_cache.h"
#include "handlers/file_cache.h"
#include "handlers/site_builder.h"
#include "protocol/request_parser.h"
#include "protocol/target.h"
#include "test/common/raw_http.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// ------------------------------------------------------------------ helpers

std::string escaped(std::string_view s, size_t max = 3000) {
    std::string out;
    for (size_t i = 0; i < s.size() && i < max; ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c == '\r') {
            out += "\\r";
        } else if (c == '\n') {
            out += "\\n\n";
        } else if (c == '\\') {
            out += "\\\\";
        } else if (c < 0x20 || c >= 0x7f) {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02x", c);
            out += b;
        } else {
            out.push_back(static_cast<char>(c));
        }
    }
    if (s.size() > max) out += "\n... (" + std::to_string(s.size() - max) + " more bytes)";
    return out;
}


bool contains(std::string_view hay, std::string_view needle) { return hay.find(needle) != std::string_view::npos; }

// Finds a secret (the canary markers) by rolling hashes alone: its bytes are
// never handed to memcmp or a traced comparison, so libFuzzer's comparison
// hooks cannot learn it and put it into inputs.
struct Secret {
    size_t len = 0;
    uint64_t h1 = 0, h2 = 0, p1 = 1, p2 = 1;  // p = base^(len-1)
    static constexpr uint64_t kB1 = 1000003, kB2 = 0x100000001b3ull;

    explicit Secret(std::string_view s = {}) : len(s.size()) {
        for (size_t i = 0; i < s.size(); ++i) {
            h1 = h1 * kB1 + static_cast<unsigned char>(s[i]);
            h2 = h2 * kB2 + static_cast<unsigned char>(s[i]);
            if (i + 1 < s.size()) {
                p1 *= kB1;
                p2 *= kB2;
            }
        }
    }
    bool in(std::string_view hay) const {
        if (len == 0 || hay.size() < len) return false;
        uint64_t a = 0, b = 0;
        for (size_t i = 0; i < hay.size(); ++i) {
            auto c = static_cast<unsigned char>(hay[i]);
            if (i >= len) {
                auto old = static_cast<unsigned char>(hay[i - len]);
                a -= old * p1;
                b -= old * p2;
            }
            a = a * kB1 + c;
            b = b * kB2 + c;
            if (i + 1 >= len && ((a ^ h1) | (b ^ h2)) == 0) return true;
        }
        return false;
    }
};

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

std::string random_hex(size_t bytes) {
    std::string raw(bytes, '\0');
    if (getrandom(raw.data(), bytes, 0) != static_cast<ssize_t>(bytes)) std::abort();
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : raw) {
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
    }
    return out;
}

void die_errno(const char* what) {
    std::fprintf(stderr, "fuzz_request: %s: %s\n", what, std::strerror(errno));
    std::abort();
}

// ------------------------------------------------------------------ fixture

// The served tree. Restored after every input that could have changed it,
// so every input starts from the same files (and mostly the same ETags).
struct Entry {
    enum Kind { File, Dir, Symlink } kind;
    std::string rel;
    std::string content;  // file bytes, or the symlink's target
};

constexpr time_t kFixedMtime = 1700000000;  // 2023-11-14: stable Last-Modified and ETags

std::string pattern(size_t n, uint32_t seed) {
    std::string s(n, '\0');
    uint32_t x = seed;
    for (size_t i = 0; i < n; ++i) {
        x = x * 1103515245u + 12345u;
        s[i] = "abcdefghijklmnopqrstuvwxyz0123456789\n"[(x >> 16) % 37];
    }
    return s;
}

struct Fixture {
    std::string base;     // holds root/ and the things outside it
    std::string root;     // served
    std::string marker;   // content of the canary outside the root
    std::string marker2;  // in the names of the entries next to the root
    Secret secret, secret2;
    std::vector<Entry> entries;

    void create() {
        const char* env = std::getenv("UVH_FUZZ_TMPDIR");
        std::string dir = env && *env ? env : (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : fs::temp_directory_path().string());
        std::string tmpl = dir + "/uvh-fuzz-XXXXXX";
        if (!mkdtemp(tmpl.data())) die_errno("mkdtemp");
        base = tmpl;
        root = base + "/root";
        marker = "CANARY" + random_hex(16);
        marker2 = "NAME" + random_hex(12);
        secret = Secret(marker);
        secret2 = Secret(marker2);
        // The search itself must work, or invariant 4 checks nothing.
        if (!secret.in("x\r\n" + marker + "\n") || secret.in(marker.substr(1)) || !secret2.in(marker2)) {
            std::fprintf(stderr, "fuzz_request: the canary search fails its self-test\n");
            std::abort();
        }
        std::string outside = base + "/outside-" + marker2;
        fs::create_directories(outside);
        write_file(outside + "/canary.txt", "outside the root: " + marker + "\n");
        write_file(base + "/secret-" + marker2 + ".txt", marker + "\n");
        write_file(base + "/root.txt", marker + " (a sibling of the root)\n");

        // inline_max is 1024 in the server's config: small files are read
        // (and cached), larger ones are sent with sendfile.
        entries = {
            {Entry::File, "small.txt", "hello, small file\n"},
            {Entry::File, "empty.txt", ""},
            {Entry::File, "medium.txt", pattern(3000, 1)},
            {Entry::File, "large.bin", pattern(70000, 2)},
            {Entry::File, "index.html", "<!doctype html><title>root</title><p>root index\n"},
            {Entry::File, "style.css", "body { color: #123; }\n"},
            {Entry::File, "style.css.gz", "GZ-VARIANT-OF-style.css\n"},
            {Entry::File, "app.js", pattern(2000, 3)},
            {Entry::File, "app.js.br", "BR-VARIANT-OF-app.js\n"},
            {Entry::File, "app.js.gz", "GZ-VARIANT-OF-app.js\n"},
            {Entry::File, "data.json", "{\"a\": 1}\n"},
            {Entry::File, ".hidden", "a dotfile must never be served\n"},
            {Entry::File, "database.txt", "1 name=alice&email=alice%40example.org\n2 name=bob\nx-7 note=a+b%26c\n"},
            {Entry::Dir, "sub", ""},
            {Entry::File, "sub/index.html", "<!doctype html><title>sub</title><p>sub index\n"},
            {Entry::File, "sub/page.txt", "a page in sub\n"},
            {Entry::Dir, "sub/deeper", ""},
            {Entry::File, "sub/deeper/file.txt", "deeper file\n"},
            {Entry::Dir, "list", ""},
            {Entry::File, "list/a.txt", "a\n"},
            {Entry::File, "list/b c&d<e>.txt", "odd name\n"},
            {Entry::File, "list/%41.txt", "percent name\n"},
            {Entry::Dir, "list/inner", ""},
            {Entry::Dir, "emptydir", ""},
            {Entry::Symlink, "link.txt", "small.txt"},
            {Entry::Symlink, "sublink", "sub"},
            {Entry::Symlink, "escape.txt", "../outside-" + marker2 + "/canary.txt"},
            {Entry::Symlink, "escape-dir", "../outside-" + marker2},
            {Entry::Symlink, "escape-up", ".."},
            {Entry::Symlink, "abs-escape.txt", outside + "/canary.txt"},
            {Entry::Symlink, "dangling", "no-such-file"},
        };
        fs::create_directories(root);
        restore();
    }

    void remove_all() const {
        std::error_code ec;
        fs::remove_all(base, ec);
    }

    const Entry* find(std::string_view rel) const {
        for (const Entry& e : entries)
            if (e.rel == rel) return &e;
        return nullptr;
    }

    static void write_file(const std::string& path, std::string_view content) {
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0) die_errno(("open " + path).c_str());
        size_t done = 0;
        while (done < content.size()) {
            ssize_t n = ::write(fd, content.data() + done, content.size() - done);
            if (n <= 0) die_errno("write");
            done += static_cast<size_t>(n);
        }
        ::close(fd);
    }

    static void set_mtime(const std::string& path) {
        struct timespec ts[2] = {{kFixedMtime, 0}, {kFixedMtime, 0}};
        utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW);
    }

    // Removes whatever is not part of the fixture (uploads, MKCOL'd
    // directories, leftovers) and puts every fixture entry back as it was.
    // Returns true when anything had to change.
    bool restore() {
        bool changed = false;
        std::vector<std::string> extra;
        std::error_code ec;
        for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
             it.increment(ec)) {
            std::string rel = fs::relative(it->path(), root, ec).string();
            const Entry* e = find(rel);
            struct stat st {};
            if (lstat(it->path().c_str(), &st) != 0) continue;
            bool ok = e && ((e->kind == Entry::File && S_ISREG(st.st_mode)) ||
                            (e->kind == Entry::Dir && S_ISDIR(st.st_mode)) ||
                            (e->kind == Entry::Symlink && S_ISLNK(st.st_mode)));
            if (!ok) {
                extra.push_back(it->path().string());
                if (S_ISDIR(st.st_mode)) it.disable_recursion_pending();
            }
        }
        for (const std::string& p : extra) {
            fs::permissions(p, fs::perms::owner_all, fs::perm_options::add | fs::perm_options::nofollow, ec);
            fs::remove_all(p, ec);
            changed = true;
        }
        for (const Entry& e : entries) {
            std::string path = root + "/" + e.rel;
            struct stat st {};
            bool exists = lstat(path.c_str(), &st) == 0;
            switch (e.kind) {
            case Entry::Dir:
                if (!exists) {
                    if (::mkdir(path.c_str(), 0755) != 0) die_errno(("mkdir " + path).c_str());
                    changed = true;
                } else if ((st.st_mode & 07777) != 0755) {
                    chmod(path.c_str(), 0755);
                    changed = true;
                }
                break;
            case Entry::Symlink: {
                char target[4096];
                ssize_t n = exists ? readlink(path.c_str(), target, sizeof target) : -1;
                if (n < 0 || std::string_view(target, static_cast<size_t>(n)) != e.content) {
                    ::unlink(path.c_str());
                    if (symlink(e.content.c_str(), path.c_str()) != 0) die_errno(("symlink " + path).c_str());
                    changed = true;
                }
                break;
            }
            case Entry::File: {
                // The server never rewrites a file in place (uploads are
                // linked or renamed over it), so a changed file has a new
                // mtime: the restore keeps the fixed one.
                bool same = exists && S_ISREG(st.st_mode) && static_cast<size_t>(st.st_size) == e.content.size() &&
                            st.st_mtim.tv_sec == kFixedMtime && st.st_mtim.tv_nsec == 0 &&
                            (st.st_mode & 07777) == 0644;
                if (same) break;
                changed = true;
                if (e.rel == "database.txt") {
                    // The record store relies on its file only ever growing
                    // in place or being replaced by rename(): do the same.
                    std::string tmp = root + "/.fuzz-restore.tmp";
                    write_file(tmp, e.content);
                    chmod(tmp.c_str(), 0644);
                    set_mtime(tmp);
                    if (rename(tmp.c_str(), path.c_str()) != 0) die_errno("rename");
                } else {
                    // In place when possible: the inode, and so the ETag, stays.
                    write_file(path, e.content);
                    chmod(path.c_str(), 0644);
                    set_mtime(path);
                }
                break;
            }
            }
        }
        // Directory times go last: the restore itself changed them.
        set_mtime(root);
        for (const Entry& e : entries)
            if (e.kind == Entry::Dir) set_mtime(root + "/" + e.rel);
        return changed;
    }

    // The bytes a GET of the normalised URL path must return for the given
    // content coding, when the fixture knows them (regular fixture files,
    // directory indexes, symlinks inside the root). The record store's file
    // and anything hidden are left out.
    const std::string* expected(std::string path, std::string_view coding) const {
        if (path.empty() || path[0] != '/') return nullptr;
        std::string rel = path.substr(1);
        bool dir_url = rel.empty() || rel.back() == '/';
        if (dir_url) {
            rel += "index.html";
        }
        if (rel.starts_with("sublink/")) rel = "sub/" + rel.substr(8);
        if (rel == "link.txt") rel = "small.txt";
        if (rel == "database.txt" || rel.find("/.") != std::string::npos || rel.starts_with(".")) return nullptr;
        if (coding == "gzip") rel += ".gz";
        else if (coding == "br") rel += ".br";
        else if (!coding.empty()) return nullptr;
        const Entry* e = find(rel);
        if (!e || e->kind != Entry::File) return nullptr;
        return &e->content;
    }
};

// ---------------------------------------------------- the reference parse

// What the server's own parser makes of the whole input at once: the
// requests, in order. The server sees the same bytes in pieces, and stops
// early when it closes; its requests are a prefix of these.
struct RefRequest {
    uvh::Method method = uvh::Method::Other;
    bool http10 = false;
    bool http_ok = true;  // 1.0 or 1.1
    bool keep_alive = true;
    bool has_body = false;
    bool expects_continue = false;
    bool bad_te = false;  // Transfer-Encoding the server must refuse (RFC 9112 §6.1, §6.3)
    bool complete = false;
    std::string path;     // normalised, or empty when invalid
    bool plain = false;   // no Range / conditionals: a 200 must be the whole file
    bool body_error = false;  // the parse failed inside this request's body
};

struct RefParse {
    std::vector<RefRequest> reqs;
    bool error = false;        // a parse error ...
    bool head_error = false;   // ... in the head of request number reqs.size()
    bool partial_head = false; // the input ends inside a head
};

RefParse reference_parse(std::string_view data) {
    RefParse out;
    uvh::RequestStorage storage;
    uvh::RequestParser p;
    p.attach(&storage);
    p.set_limits(uvh::ParserLimits{});
    size_t pos = 0;
    for (int guard = 0; guard < 100000; ++guard) {
        size_t used = 0;
        auto ev = p.execute(data.data() + pos, data.size() - pos, used);
        pos += used;
        if (ev == uvh::RequestParser::Event::Head) {
            const uvh::Request& r = p.request();
            RefRequest q;
            q.method = r.method;
            q.http10 = r.http10();
            q.http_ok = r.http_major == 1 && r.http_minor <= 1;
            q.keep_alive = r.keep_alive;
            q.has_body = r.has_body();
            q.expects_continue = r.expect.data() && !r.http10() && uvh::iequals_ascii(trim(r.expect), "100-continue") && r.has_body();
            if (r.transfer_encoding.data()) {
                std::string_view te = trim(r.transfer_encoding);
                q.bad_te = r.http10() || !uvh::iequals_ascii(te, "chunked");
            }
            if (r.parsed.form == uvh::TargetForm::Origin || r.parsed.form == uvh::TargetForm::Absolute) {
                std::string norm;
                if (uvh::normalize_path(r.parsed.path, norm) == uvh::PathStatus::Ok) q.path = norm;
            }
            q.plain = !r.range.data() && !r.if_range.data() && !r.if_match.data() && !r.if_none_match.data() &&
                      !r.if_modified_since.data() && !r.if_unmodified_since.data();
            out.reqs.push_back(q);
            p.resume();
        } else if (ev == uvh::RequestParser::Event::Complete) {
            if (!out.reqs.empty()) out.reqs.back().complete = true;
            p.next_message();
        } else if (ev == uvh::RequestParser::Event::Error) {
            out.error = true;
            if (!out.reqs.empty() && !out.reqs.back().complete) {
                out.reqs.back().body_error = true;
            } else {
                out.head_error = true;
            }
            return out;
        } else {
            if (pos >= data.size()) break;
        }
    }
    if (p.head_in_progress()) out.partial_head = true;
    return out;
}

// ------------------------------------------------------------- the server

struct State {
    uv_loop_t loop{};
    uvh::Server* server = nullptr;
    Fixture fixture;
    uint64_t inputs = 0;
    uint64_t control_every = 1;
    uint64_t write_probe_every = 500;
    uint64_t write_probes = 0;
    bool trace = false;
    size_t fd_baseline = 0;
    std::string current_input;  // for violation reports
};

State* g = nullptr;

// Descriptors the server could leak: sockets, files and directories, with
// what they point at. Pipes are left out: the sanitizers' symbolizer keeps
// two open once started.
std::vector<std::string> open_fds() {
    std::vector<std::string> out;
    DIR* d = opendir("/proc/self/fd");
    if (!d) return out;
    int self = dirfd(d);
    while (dirent* e = readdir(d)) {
        if (e->d_name[0] == '.' || std::atoi(e->d_name) == self) continue;
        char link[64], target[512];
        std::snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len <= 0) continue;
        target[len] = 0;
        if (std::strncmp(target, "pipe:", 5) == 0) continue;
        out.push_back(std::string(e->d_name) + " -> " + target);
    }
    closedir(d);
    return out;
}

[[noreturn]] void violation(std::string_view stream, const char* fmt, ...) {
    std::fprintf(stderr, "\n==== uvhttpd fuzz invariant violated ====\n");
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fprintf(stderr, "\n---- input (%zu bytes, first byte is the delivery mode) ----\n%s\n",
                 g->current_input.size(), escaped(g->current_input).c_str());
    std::fprintf(stderr, "---- received (%zu bytes) ----\n%s\n==== end ====\n", stream.size(), escaped(stream).c_str());
    g->fixture.remove_all();
    std::abort();
}

// What the periodic tick does once the timeouts are due: the client side of
// every connection is silent, so expire the header, idle and body timeouts
// as if their duration had passed. Send and linger timeouts (slow readers)
// never need this: the harness always reads.
void fast_forward_timeouts() {
    uvh::Server& s = *g->server;
    uint64_t now = uv_now(&g->loop) + 1001;
    for (uvh::TimeoutList* list : {&s.header_timeouts, &s.idle_timeouts, &s.body_timeouts}) {
        list->expire(now, [list](uvh::TimeoutNode& n) { static_cast<uvh::Connection*>(n.owner)->on_timeout(list); });
    }
}

// One step of the loop: run what is ready, then wait briefly for the loop's
// descriptor or the client's.
void step(int client_fd, int wait_ms) {
    uv_run(&g->loop, UV_RUN_NOWAIT);
    struct pollfd p[2] = {{uv_backend_fd(&g->loop), POLLIN, 0}, {client_fd, POLLIN, 0}};
    poll(p, client_fd >= 0 ? 2 : 1, wait_ms);
    uv_run(&g->loop, UV_RUN_NOWAIT);
}

// The shared raw client (test/common/raw_http.h), driven by this loop.
struct Client {
    uvh::test::RawSocket sock;
    bool send_failed = false;

    void open() {
        std::string error = sock.connect(g->server->port());
        if (!error.empty()) {
            std::fprintf(stderr, "fuzz_request: %s\n", error.c_str());
            std::abort();
        }
    }
    int fd() const { return sock.fd(); }
    const std::string& in() const { return sock.buffered(); }
    bool eof() const { return sock.eof(); }      // the server closed (FIN or RST)
    bool reset() const { return sock.was_reset(); }  // ... with an RST
    void close_fd() { sock.close(); }
    void drain() { sock.fill(); }
    // Sends all of `bytes` unless the server goes away first.
    void send_all(std::string_view bytes, Clock::time_point deadline) {
        int fd = sock.fd();
        switch (sock.send_all(bytes, deadline, [fd] { step(fd, 1); })) {
        case uvh::test::RawSocket::Sent::All:
            break;
        case uvh::test::RawSocket::Sent::PeerGone:
            send_failed = true;  // EPIPE / ECONNRESET: the server closed
            break;
        case uvh::test::RawSocket::Sent::TimedOut:
            violation(in(), "the server stopped reading a %zu-byte input", bytes.size());
        }
    }
};

// Runs the loop until pred() holds (true), or until nothing can happen any
// more without a timer firing (false): no libuv request in flight (threadpool
// jobs, writes, file closes, shutdowns) and nothing ready on the loop's
// descriptor or the client's, twice in a row a millisecond apart. Never
// sleeps while something is ready; fails the input at the deadline.
template <typename Pred>
bool run_until(Client* c, Pred pred, Clock::time_point deadline, const char* what) {
    int fd = c ? c->fd() : -1;
    int idle = 0;
    for (;;) {
        if (c) c->drain();
        if (pred()) return true;
        if (Clock::now() > deadline) violation(c ? std::string_view(c->in()) : "", "timed out waiting until %s", what);
        uv_run(&g->loop, UV_RUN_NOWAIT);
        if (c) c->drain();
        if (pred()) return true;
        struct pollfd p[2] = {{uv_backend_fd(&g->loop), POLLIN, 0}, {fd, POLLIN, 0}};
        int nfds = fd >= 0 ? 2 : 1;
        bool ready = poll(p, nfds, 0) > 0;
        if (!ready && g->loop.active_reqs.count == 0) {
            if (++idle >= 2) return false;
        } else {
            idle = 0;
        }
        if (!ready) poll(p, nfds, 1);
    }
}

void start_server() {
    g = new State;
    if (const char* e = std::getenv("UVH_FUZZ_CONTROL_EVERY")) g->control_every = std::max<uint64_t>(1, std::strtoull(e, nullptr, 10));
    if (const char* e = std::getenv("UVH_FUZZ_WRITE_PROBE_EVERY"))
        g->write_probe_every = std::max<uint64_t>(1, std::strtoull(e, nullptr, 10));
    if (const char* e = std::getenv("UVH_FUZZ_TRACE")) g->trace = *e == '1';
    g->fixture.create();
    if (uv_loop_init(&g->loop) != 0) std::abort();
    uvh::Config cfg;
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.root = g->fixture.root;
    cfg.install_signals = false;
    cfg.access_log = "off";
    cfg.inline_max = 1024;
    cfg.cache_size = 1 << 20;
    cfg.max_body_size = 64 * 1024;
    cfg.create_dirs = true;
    cfg.header_timeout_ms = 1000;
    cfg.idle_timeout_ms = 1000;
    cfg.body_timeout_ms = 1000;
    cfg.send_timeout_ms = 5000;
    cfg.keepalive_requests = 20;
    g->server = new uvh::Server(&g->loop, cfg, uvh::build_site(cfg));
    std::string error;
    if (!g->server->start(error)) {
        std::fprintf(stderr, "fuzz_request: server start failed: %s\n", error.c_str());
        std::abort();
    }
    // The temporary tree goes at exit, and when a sanitizer or a violation
    // ends the process (a libFuzzer timeout still leaves it behind).
    std::atexit([] { g->fixture.remove_all(); });
    __sanitizer_set_death_callback([] { g->fixture.remove_all(); });
    // Let the start-up sweep of temporary files finish.
    for (int i = 0; i < 1000 && g->loop.active_reqs.count != 0; ++i) step(-1, 1);
}

// ------------------------------------------------------- response checks

struct Head {
    int status = 0;
    bool close = false;
    bool has_cl = false;
    uint64_t cl = 0;
    bool chunked = false;  // Transfer-Encoding: chunked
    std::string content_encoding, content_range, content_type, location;
    bool has_date = false;
};

// Parses and checks the head that starts at `pos`. Returns the offset just
// past it, or 0 when the head is incomplete.
size_t parse_head(std::string_view s, size_t pos, Head& h) {
    size_t end = s.find("\r\n\r\n", pos);
    if (end == std::string_view::npos) {
        // No bare LF that could end a head for a lenient client either.
        return 0;
    }
    std::string_view head = s.substr(pos, end + 2 - pos);  // lines, each with its CRLF
    size_t le = head.find("\r\n");
    std::string_view line = head.substr(0, le);
    if (line.size() < 13 || !line.starts_with("HTTP/1.1 ") || !std::isdigit(static_cast<unsigned char>(line[9])) ||
        !std::isdigit(static_cast<unsigned char>(line[10])) || !std::isdigit(static_cast<unsigned char>(line[11])) ||
        line[12] != ' ' || line.size() == 13)
        violation(s, "malformed status line at offset %zu: '%s'", pos, escaped(line).c_str());
    h.status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    std::string_view reason = line.substr(13);
    for (char ch : reason)
        if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) violation(s, "control byte in the reason phrase");
    if (h.status < 100 || h.status > 599) violation(s, "status %d out of range", h.status);
    if (reason == "Unknown") violation(s, "status %d has no reason phrase in the table (\"Unknown\")", h.status);
    std::string_view rest = head.substr(le + 2);
    int cl_count = 0;
    while (!rest.empty()) {
        size_t e = rest.find("\r\n");
        line = rest.substr(0, e);
        rest = rest.substr(e + 2);
        size_t colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0) violation(s, "malformed field line '%s'", escaped(line).c_str());
        std::string_view name = line.substr(0, colon);
        for (char ch : name) {
            unsigned char u = static_cast<unsigned char>(ch);
            if (!(std::isalnum(u) || std::strchr("!#$%&'*+-.^_`|~", u))) violation(s, "bad field name '%s'", escaped(name).c_str());
        }
        if (colon + 1 >= line.size() || line[colon + 1] != ' ') violation(s, "no space after the colon in '%s'", escaped(line).c_str());
        std::string_view value = line.substr(colon + 2);
        for (char ch : value) {
            unsigned char u = static_cast<unsigned char>(ch);
            if ((u < 0x20 && u != '\t') || u == 0x7f) violation(s, "control byte in the value of %s", std::string(name).c_str());
        }
        if (!value.empty() && (value.front() == ' ' || value.back() == ' ')) violation(s, "padded value of %s", std::string(name).c_str());
        if (uvh::iequals_ascii(name, "content-length")) {
            ++cl_count;
            if (value.empty() || value.size() > 19 || value.find_first_not_of("0123456789") != std::string_view::npos)
                violation(s, "bad Content-Length '%s'", escaped(value).c_str());
            h.has_cl = true;
            h.cl = std::strtoull(std::string(value).c_str(), nullptr, 10);
        } else if (uvh::iequals_ascii(name, "transfer-encoding")) {
            // The server's only coding is chunked, sent once (RFC 9112 §6.1).
            if (h.chunked) violation(s, "Transfer-Encoding twice in one response");
            if (value != "chunked") violation(s, "Transfer-Encoding: %s (the server only sends chunked)", escaped(value).c_str());
            h.chunked = true;
        } else if (uvh::iequals_ascii(name, "connection")) {
            if (value == "close") h.close = true;
            else if (value != "keep-alive") violation(s, "unexpected Connection: %s", escaped(value).c_str());
        } else if (uvh::iequals_ascii(name, "date")) {
            h.has_date = true;
        } else if (uvh::iequals_ascii(name, "content-encoding")) {
            h.content_encoding = value;
        } else if (uvh::iequals_ascii(name, "content-range")) {
            h.content_range = value;
        } else if (uvh::iequals_ascii(name, "content-type")) {
            h.content_type = value;
        } else if (uvh::iequals_ascii(name, "location")) {
            h.location = value;
        }
    }
    if (cl_count > 1) violation(s, "%d Content-Length fields", cl_count);
    if (h.chunked && h.has_cl) violation(s, "a response with both Transfer-Encoding: chunked and Content-Length (RFC 9112 §6.2)");
    return end + 4;
}

bool status_has_body(int status) { return status >= 200 && status != 204 && status != 304; }

// Checks everything the server sent on one connection, given what was sent.
struct Summary {
    std::vector<int> statuses;  // final responses, in order
    bool closed_on_purpose = false;  // the last one said Connection: close
    bool timing_free = false;   // the answers cannot depend on how the bytes were split
};

Summary check_stream(std::string_view input, const Client& c, bool half_closed, bool writes) {
    const std::string_view s = c.in();
    const RefParse ref = reference_parse(input);
    Summary summary;
    // Where a body is still arriving (or breaks) while its request is
    // answered, the split decides what the server has seen when.
    summary.timing_free = !ref.error;
    for (const RefRequest& r : ref.reqs) summary.timing_free = summary.timing_free && r.complete;
    const Fixture& fx = g->fixture;

    // 4. Nothing from outside the root, unless the input itself carried it
    //    (an upload the same input then downloads).
    if (!fx.secret.in(input) && fx.secret.in(s)) violation(s, "the canary from OUTSIDE the root appears in a response");
    if (!fx.secret2.in(input) && fx.secret2.in(s)) violation(s, "a name from OUTSIDE the root appears in a response");

    // A response may be cut short only when the server had to abort: an
    // error or a stall inside a request body it was already answering.
    auto may_truncate = [&](size_t k) { return k < ref.reqs.size() && ref.reqs[k].has_body; };

    size_t pos = 0;
    size_t k = 0;  // index of the request the next final response answers
    bool saw_close = false;
    bool truncated = false;
    while (pos < s.size()) {
        Head h;
        size_t body_start = parse_head(s, pos, h);
        if (body_start == 0) {
            if (!c.eof()) violation(s, "an incomplete response head and the connection still open");
            if (!may_truncate(k)) violation(s, "response %zu: the head is cut short", k);
            truncated = true;
            break;
        }
        if (h.status < 200) {
            // 1. Interim: only "100 Continue", nothing else in it.
            if (s.substr(pos, body_start - pos) != "HTTP/1.1 100 Continue\r\n\r\n")
                violation(s, "unexpected interim response at offset %zu", pos);
            if (k < ref.reqs.size() && !ref.reqs[k].expects_continue)
                violation(s, "100 Continue for request %zu, which did not ask for it (or is HTTP/1.0, or has no body)", k);
            pos = body_start;
            continue;
        }
        if (!h.has_date) violation(s, "response %zu has no Date (RFC 9110 §6.6.1)", k);
        const RefRequest* rq = k < ref.reqs.size() ? &ref.reqs[k] : nullptr;
        // 2. At most one response per request, plus one for a head that
        //    does not parse or never completed (400, 408).
        size_t allowed = ref.reqs.size() + ((ref.head_error || ref.partial_head) ? 1 : 0);
        if (k >= allowed)
            violation(s, "response %zu, but the input holds only %zu request heads%s (a second answer to one request, "
                      "or a request the server saw and the parser does not: desync?)", k, ref.reqs.size(),
                      ref.head_error ? " and a bad one" : ref.partial_head ? " and a partial one" : "");
        if (!rq && !h.close) violation(s, "response %zu answers no complete request head, yet does not close", k);

        // Body length: Content-Length; chunked for a length the server did
        // not know, on HTTP/1.1 only (RFC 9112 §7.1), every chunk checked;
        // or, for such a body on HTTP/1.0, up to the close (§6.3).
        bool is_head = rq && rq->method == uvh::Method::Head;
        enum { None, Length, Chunked, Close } framing = None;
        uint64_t body = 0;
        if (h.status == 204) {
            if (h.has_cl) violation(s, "Content-Length in a 204");
            if (h.chunked) violation(s, "Transfer-Encoding in a 204 (RFC 9112 §6.1)");
        } else if (status_has_body(h.status)) {
            if (h.chunked) {
                if (!rq || rq->http10)
                    violation(s, "response %zu (%d) is chunked, but %s", k, h.status,
                              rq ? "its request is HTTP/1.0" : "it answers no request head");
                framing = Chunked;
            } else if (h.has_cl) {
                framing = Length;
                body = h.cl;
            } else {
                if (!rq || !rq->http10 || !h.close)
                    violation(s, "response %zu (%d) has neither Content-Length nor Transfer-Encoding: chunked%s", k,
                              h.status, rq && rq->http10 ? ", and does not close" : "");
                framing = Close;
            }
        } else if (h.chunked) {
            violation(s, "Transfer-Encoding in a %d (no content)", h.status);
        }
        if (is_head) framing = None;
        std::string_view content;
        size_t body_end = body_start;
        uvh::test::ChunkedBody decoded;
        if (framing == Length) {
            if (body_start + body > s.size()) {
                if (!c.eof()) violation(s, "response %zu: body incomplete and the connection still open", k);
                if (!may_truncate(k)) violation(s, "response %zu (%d): Content-Length %llu but only %zu bytes came", k,
                                                h.status, static_cast<unsigned long long>(body), s.size() - body_start);
                truncated = true;
                break;
            }
            content = s.substr(body_start, body);
            body_end = body_start + body;
        } else if (framing == Chunked) {
            // Each chunk: its size in hex, no extension, CRLF, the data,
            // CRLF; then the last chunk "0", no trailer, CRLF.
            uvh::test::Parse p = uvh::test::decode_chunked(s, body_start, true, decoded);
            if (p == uvh::test::Parse::Malformed)
                violation(s, "response %zu: bad chunked framing: %s", k, decoded.error.c_str());
            if (p == uvh::test::Parse::Incomplete) {
                if (!c.eof()) violation(s, "response %zu: chunked body incomplete and the connection still open", k);
                if (!may_truncate(k)) violation(s, "response %zu (%d): the chunked body is cut short", k, h.status);
                truncated = true;
                break;
            }
            content = decoded.data;
            body_end = decoded.end;
        } else if (framing == Close) {
            if (!c.eof()) violation(s, "response %zu: a body delimited by the close, and the connection still open", k);
            content = s.substr(body_start);
            body_end = s.size();
        }

        // 3. Connection management and framing errors.
        if (rq && !rq->keep_alive && !h.close) violation(s, "request %zu asked to close (or is HTTP/1.0 without keep-alive); the response keeps the connection", k);
        if (rq && rq->bad_te && (h.status < 400 || !h.close))
            violation(s, "request %zu has a Transfer-Encoding the server must refuse; got %d%s", k, h.status, h.close ? "" : " without close");
        // An explicit version other than 1.0/1.1 is 505; a request line
        // without any version never becomes a head (the parser answers 400,
        // a head error above), so it is not 505.
        if (rq && !rq->http_ok && (h.status != 505 || !h.close)) violation(s, "request %zu has an unsupported version; got %d", k, h.status);
        bool framing_error_here = ref.error && ((ref.head_error && k == ref.reqs.size()) || (!ref.head_error && k + 1 == ref.reqs.size()));
        if (framing_error_here && ref.head_error && (h.status < 400 || !h.close))
            violation(s, "request %zu does not parse; got %d%s", k, h.status, h.close ? "" : " without close");
        if (h.status == 408 || h.status == 414 || h.status == 431 || h.status == 505) {
            if (!h.close) violation(s, "%d without Connection: close", h.status);
        }

        // 6. Redirects stay on this server, and Location is a URI reference
        //    (RFC 9110 §10.2.2, RFC 3986 §4.2): no raw bytes outside the
        //    URI characters, whatever bytes the request-target carried.
        if (!h.location.empty()) {
            if (h.location[0] != '/' || (h.location.size() > 1 && (h.location[1] == '/' || h.location[1] == '\\')))
                violation(s, "Location '%s' is not a path on this server (open redirect)", escaped(h.location).c_str());
            for (char ch : h.location) {
                unsigned char u = static_cast<unsigned char>(ch);
                if (u <= 0x20 || u >= 0x7f || std::strchr("\"<>\\^`{|}", u))
                    violation(s, "Location '%s' holds a byte that is not a URI character (0x%02x)", escaped(h.location).c_str(), u);
            }
        }

        // 5. The right bytes for fixture files (the tree is the fixture as
        //    long as the input writes nothing).
        if (rq && !writes && !rq->path.empty() && rq->plain &&
            (rq->method == uvh::Method::Get || rq->method == uvh::Method::Head) &&
            (h.status == 200 || h.status == 206)) {
            const std::string* want = fx.expected(rq->path, h.content_encoding);
            if (want && h.status == 200) {
                if (h.has_cl && h.cl != want->size())
                    violation(s, "response %zu: Content-Length %llu for %s, the file has %zu bytes", k,
                              static_cast<unsigned long long>(h.cl), rq->path.c_str(), want->size());
                if (rq->method == uvh::Method::Get && content != *want)
                    violation(s, "response %zu: the body is not the content of %s", k, rq->path.c_str());
            }
        }
        if (rq && !writes && !rq->path.empty() && rq->method == uvh::Method::Get && h.status == 206 &&
            !h.content_range.empty() && h.content_encoding.empty()) {
            const std::string* want = fx.expected(rq->path, "");
            unsigned long long a = 0, b = 0, len = 0;
            if (want && std::sscanf(h.content_range.c_str(), "bytes %llu-%llu/%llu", &a, &b, &len) == 3) {
                if (len != want->size() || a > b || b >= len) violation(s, "response %zu: bad Content-Range %s", k, h.content_range.c_str());
                if (content != std::string_view(*want).substr(a, b - a + 1))
                    violation(s, "response %zu: the 206 body is not bytes %llu-%llu of %s", k, a, b, rq->path.c_str());
            }
        }

        summary.statuses.push_back(h.status);
        pos = body_end;
        if (h.close) {
            saw_close = true;
            summary.closed_on_purpose = true;
            if (pos != s.size()) violation(s, "%zu bytes after a response with Connection: close", s.size() - pos);
            if (!c.eof()) violation(s, "Connection: close but the server did not close");
        }
        ++k;
    }

    // 2. Every completely received request is answered, unless the server
    //    closed on purpose or had to abort.
    if (half_closed && !saw_close && !truncated && !c.reset() && !ref.error) {
        size_t complete = 0;
        for (const RefRequest& r : ref.reqs) complete += r.complete ? 1 : 0;
        // A request whose body is still missing may be answered early.
        if (k < complete)
            violation(s, "%zu complete requests but only %zu responses, and no response said Connection: close", complete, k);
    }
    return summary;
}

// --------------------------------------------------------------- an input

bool input_writes(std::string_view payload) {
    for (std::string_view m : {"PUT", "POST", "DELETE", "MKCOL"})
        if (contains(payload, m)) return true;
    return false;
}

std::vector<std::string_view> split_input(std::string_view payload, uint8_t mode) {
    std::vector<std::string_view> chunks;
    if (mode & 0x80) {
        size_t n = std::min<size_t>(payload.size(), 256);
        for (size_t i = 0; i < n; ++i) chunks.push_back(payload.substr(i, 1));
        if (payload.size() > n) chunks.push_back(payload.substr(n));
        return chunks;
    }
    size_t splits = mode & 7;
    std::vector<size_t> cuts;
    uint32_t x = ((mode >> 4) & 7) * 2654435761u + static_cast<uint32_t>(payload.size());
    for (size_t i = 0; i < splits && payload.size() > 1; ++i) {
        x = x * 1103515245u + 12345u;
        cuts.push_back(1 + (x >> 8) % (payload.size() - 1));
    }
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    size_t prev = 0;
    for (size_t cut : cuts) {
        chunks.push_back(payload.substr(prev, cut - prev));
        prev = cut;
    }
    chunks.push_back(payload.substr(prev));
    return chunks;
}

// Sends the input, collects everything the server answers, and waits until
// the connection is gone on both sides.
void exchange(Client& c, std::string_view payload, uint8_t mode, bool half_close) {
    uvh::Server& srv = *g->server;
    auto deadline = Clock::now() + std::chrono::seconds(6);
    c.open();
    uint64_t base_in = srv.metrics().bytes_in;
    uint64_t sent = 0;
    auto chunks = split_input(payload, mode);
    for (size_t i = 0; i < chunks.size() && !c.send_failed && !c.eof(); ++i) {
        c.send_all(chunks[i], deadline);
        sent += chunks[i].size();
        if (i + 1 < chunks.size()) {
            // Let the server read this piece on its own before the next.
            run_until(&c, [&] { return srv.metrics().bytes_in >= base_in + sent || c.eof(); }, deadline,
                      "the server read a piece");
        }
    }
    if (half_close) c.sock.shutdown_write();

    // Until the server closes: whenever everything is idle, let the
    // timeouts the server is waiting for expire.
    int forwards = 0;
    while (!c.eof()) {
        if (run_until(&c, [&] { return c.eof(); }, deadline, "the server closed the connection")) break;
        if (++forwards > 8) {
            // Every state that waits for the client has a timeout (header,
            // idle, body); a connection that outlives them all would stay
            // open for ever.
            violation(c.in(), half_close ? "a half-closed connection stays open with nothing in flight, after all timeouts"
                                       : "an idle connection stays open after all timeouts: none is armed");
        }
        fast_forward_timeouts();
    }
    // Then the client closes too, and the connection must disappear.
    c.drain();
    c.close_fd();
    int rounds = 0;
    while (!run_until(
        nullptr, [&] { return srv.metrics().open_connections == 0 && g->loop.active_reqs.count == 0; }, deadline,
        "the connection is gone")) {
        if (++rounds > 8)
            violation(c.in(), "a connection leaked: %lld open and idle after the client closed",
                      static_cast<long long>(srv.metrics().open_connections));
        fast_forward_timeouts();
    }
}

void control_get() {
    Client c;
    std::string req = "GET /small.txt HTTP/1.1\r\nHost: control\r\nConnection: close\r\n\r\n";
    exchange(c, req, 0x30, true);
    const std::string& want = g->fixture.find("small.txt")->content;
    std::string_view s = c.in();
    bool ok = s.starts_with("HTTP/1.1 200 OK\r\n") && s.size() > want.size() && s.ends_with(want) &&
              contains(s, "\r\nContent-Length: " + std::to_string(want.size()) + "\r\n") &&
              contains(s, "\r\nConnection: close\r\n");
    if (!ok) violation(s, "the control GET /small.txt after this input failed");
}

// No descriptor is left open by an input. One may still be on its way to
// being closed by a thread that libuv no longer counts as busy; give the
// loop a moment before calling it a leak.
void check_descriptors() {
    // The descriptor cache keeps large files open on purpose (--open-file-
    // cache): forget its entries and close what it held, then count.
    if (auto* cache = g->server->site().fd_cache) {
        cache->clear();
        for (int fd : cache->pending_closes()) ::close(fd);
        cache->pending_closes().clear();
    }
    std::vector<std::string> fds = open_fds();
    for (int i = 0; i < 100 && fds.size() > g->fd_baseline; ++i) {
        step(-1, 1);
        fds = open_fds();
    }
    if (fds.size() > g->fd_baseline) {
        std::string list;
        for (const std::string& f : fds) list += "  " + f + "\n";
        violation("", "descriptor leak: %zu open, %zu at start:\n%s", fds.size(), g->fd_baseline, list.c_str());
    }
}

void restore_fixture() {
    if (g->fixture.restore() && g->server->site().cache) {
        // The files changed behind the server's back: forget cached copies.
        g->server->site().cache->clear();
    }
}

// 9. Known-good writes, each on its own connection, must still succeed and
//    change the disk; the tree is restored afterwards.
void write_probe() {
    ++g->write_probes;
    std::string saved_input = std::move(g->current_input);
    g->current_input = "(the write probe, invariant 9, after input " + std::to_string(g->inputs) + ")";
    const std::string& root = g->fixture.root;
    auto file_content = [&](const std::string& rel) -> std::optional<std::string> {
        int fd = ::open((root + "/" + rel).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return std::nullopt;
        std::string out;
        char buf[4096];
        ssize_t n;
        while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
        ::close(fd);
        return out;
    };
    auto send = [&](const std::string& req, int status) {
        Client c;
        exchange(c, req, 0x30, true);
        std::string want = "HTTP/1.1 " + std::to_string(status) + " ";
        if (!std::string_view(c.in()).starts_with(want))
            violation(c.in(), "the write probe expected %d for:\n%s", status, escaped(req).c_str());
        return c.in();
    };
    auto put = [](std::string_view body) {
        return "PUT /fuzz-write-probe.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + std::string(body);
    };

    send(put("probe one\n"), 201);
    if (file_content("fuzz-write-probe.txt") != "probe one\n") violation("", "the probe's PUT (201) left no such file");
    send(put("probe two\n"), 204);
    if (file_content("fuzz-write-probe.txt") != "probe two\n") violation("", "the probe's PUT (204) did not replace the file");
    std::string marker = "probe" + std::to_string(g->write_probes);
    std::string form = "name=" + marker;
    std::string posted = send("POST /database.txt HTTP/1.1\r\nHost: localhost\r\n"
                              "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
                                  std::to_string(form.size()) + "\r\nConnection: close\r\n\r\n" + form,
                              201);
    if (!contains(posted, "\r\nLocation: /database.txt/")) violation(posted, "the probe's POST (201) has no record Location");
    auto db = file_content("database.txt");
    if (!db || !contains(*db, "name=" + marker + "\n")) violation(posted, "the probe's POST (201) is not in database.txt");
    send("DELETE /fuzz-write-probe.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 204);
    if (file_content("fuzz-write-probe.txt")) violation("", "the probe's DELETE (204) left the file");

    restore_fixture();
    g->current_input = std::move(saved_input);
}

// Everything the server opens lazily and keeps (the record store holds its
// file open) is opened once before the descriptor baseline is taken.
void warm_up() {
    const char* reqs[] = {
        "POST /database.txt HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        "Content-Length: 6\r\n\r\nname=wGET /database.txt/1 HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET /large.bin HTTP/1.1\r\nHost: localhost\r\n\r\nGET /small.txt HTTP/1.1\r\nHost: localhost\r\n\r\n",
    };
    for (const char* r : reqs) {
        Client c;
        exchange(c, r, 0x30, true);
    }
    restore_fixture();
    control_get();
    write_probe();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    start_server();
    warm_up();
    g->fd_baseline = open_fds().size();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    ++g->inputs;
    g->current_input.assign(reinterpret_cast<const char*>(data), size);
    uint8_t mode = data[0];
    std::string_view payload(reinterpret_cast<const char*>(data) + 1, size - 1);
    bool half_close = (mode & 0x08) == 0;
    bool writes = input_writes(payload);

    Client c;
    exchange(c, payload, mode, half_close);
    if (g->trace) std::fprintf(stderr, "---- responses ----\n%s\n", escaped(c.in()).c_str());
    Summary first = check_stream(payload, c, half_close, writes);
    if (writes) restore_fixture();

    // 8. The split does not matter: sent in one piece, the same requests get
    //    the same statuses (a parser that depends on read boundaries, the
    //    obs-fold or method sniffing across reads, shows up here).
    bool split = (mode & 0x80) || (mode & 7);
    if (split && first.timing_free) {
        Client whole;
        exchange(whole, payload, half_close ? 0x30 : 0x38, half_close);
        Summary second = check_stream(payload, whole, half_close, writes);
        if (writes) restore_fixture();
        // A handler that answers before the body is all in (a PUT refused
        // after its upload started) closes the connection (RFC 9112 §9.6)
        // when the rest is still to come, and keeps it when it is not: the
        // run that closed may have fewer answers, the same up to there.
        const Summary& shorter = first.statuses.size() < second.statuses.size() ? first : second;
        const Summary& longer = &shorter == &first ? second : first;
        bool same = std::equal(shorter.statuses.begin(), shorter.statuses.end(), longer.statuses.begin()) &&
                    (shorter.statuses.size() == longer.statuses.size() || shorter.closed_on_purpose);
        if (!same) {
            std::string a, b;
            for (int st : first.statuses) a += std::to_string(st) + " ";
            for (int st : second.statuses) b += std::to_string(st) + " ";
            violation(c.in(), "split delivery got statuses [ %s] but one piece got [ %s] (responses to one piece:\n%s)",
                      a.c_str(), b.c_str(), escaped(whole.in()).c_str());
        }
    }

    if (g->inputs % g->control_every == 0) control_get();
    if (g->inputs % g->write_probe_every == 0) write_probe();

    check_descriptors();
    return 0;
}
