#include "handlers/get_job.h"

#include <fcntl.h>

#include <cerrno>

#include "handlers/compress/coding_cache.h"
#include "handlers/compress/disk_cache.h"
#include "handlers/fs_ops.h"
#include "handlers/get_codings.h"
#include "protocol/mime.h"

namespace uvh {

namespace {

constexpr int kOpenFlags = O_RDONLY | O_NOCTTY | O_NONBLOCK;

// Opens `rel` + suffix if it is a regular file; -1 otherwise.
int open_variant(int root_fd, const std::string& rel, const char* suffix, struct stat& st) {
    std::string path = rel + suffix;
    int fd = open_beneath(root_fd, path, kOpenFlags);
    if (fd < 0) return -1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -1;
    }
    return fd;
}

// Chooses the representation (RFC 9110 §12.5.3): precompressed siblings at
// least as new as the file, the codings the server makes itself, identity.
// Every sibling not known to be missing (the coding cache's negative
// entries) is probed, whatever the client accepts: a file with a usable
// sibling varies by Accept-Encoding even for a client that sent none, and
// its responses say so (RFC 9110 §12.5.5). The caches then know all of
// them, so their entries answer any client and a missing sibling costs
// nothing on the next requests.
void choose_representation(GetJob& job) {
    job.id_st = job.st;
    const uint64_t size = static_cast<uint64_t>(job.st.st_size);
    uint8_t want = job.database ? 0 : static_cast<uint8_t>(kAllCodings & ~job.skip_probe);
    int fds[kCodings] = {-1, -1, -1, -1};
    struct stat sts[kCodings] {};
    for (Coding c : {Coding::Gzip, Coding::Br, Coding::Zstd}) {
        if (!(want & coding_bit(c))) continue;
        int i = static_cast<int>(c);
        fds[i] = open_variant(job.root_fd, job.served_rel, std::string(coding_suffix(c)).c_str(), sts[i]);
        // An older sibling is left over from before the file changed.
        bool usable = fds[i] >= 0 && (sts[i].st_mtim.tv_sec > job.st.st_mtim.tv_sec ||
                                      (sts[i].st_mtim.tv_sec == job.st.st_mtim.tv_sec &&
                                       sts[i].st_mtim.tv_nsec >= job.st.st_mtim.tv_nsec));
        if (usable) {
            job.siblings_present |= coding_bit(c);
        } else {
            job.siblings_absent |= coding_bit(c);
            if (fds[i] >= 0) close(fds[i]);
            fds[i] = -1;
        }
    }
    uint8_t fly = job.database ? 0 : on_the_fly_codings(job.policy, mime_type_for(job.served_rel), size, job.accepted);
    Coding c = Coding::Identity;
    if (!choose_coding(job.accepted, job.siblings_present | fly, c)) job.not_acceptable = true;
    job.coding = c;
    int i = static_cast<int>(c);
    if (c != Coding::Identity && fds[i] >= 0) {
        close(job.fd);
        job.fd = fds[i];
        job.st = sts[i];
        job.encoding = coding_name(c);
        fds[i] = -1;
    } else if (c != Coding::Identity) {
        job.on_the_fly = true;
    }
    for (int& f : fds)
        if (f >= 0) close(f);
}

// Reads a small file whole, so it leaves with its head in one write. The
// version is checked again afterwards: bytes and validators must agree.
void read_inline(GetJob& job) {
    auto size = static_cast<size_t>(job.st.st_size);
    if (size > job.inline_max) return;
    for (int attempt = 0; attempt < 3; ++attempt) {
        if (!read_exact(job.fd, 0, size, job.data)) break;
        struct stat after {};
        if (fstat(job.fd, &after) == 0 && same_version(after, job.st)) {
            job.in_memory = true;
            return;
        }
        job.st = after;
        size = static_cast<size_t>(after.st_size);
        if (size > job.inline_max) break;
    }
    job.data.clear();  // send from the descriptor instead
}

// A coding of a file too large for the memory cache may be on disk.
void open_disk_entry(GetJob& job) {
    const Site* site = job.site;
    if (!site || !site->disk_codings || !job.policy) return;
    uint64_t max_file = site->codings ? site->codings->max_file() : 0;
    if (static_cast<uint64_t>(job.st.st_size) <= max_file) return;
    DiskKey key = disk_key(job.st, job.coding, job.policy->stream.of(job.coding));
    job.disk_fd = site->disk_codings->open_entry(key, job.disk_size);
}

// A missing name may be remembered (fd_cache.h) under its parent
// directory's generation, read before the name is looked at again: a create
// there after that bumps it. Only when the directory exists.
void note_missing(GetJob& job) {
    size_t slash = job.rel.rfind('/');
    std::string parent = slash == std::string::npos ? std::string(".") : job.rel.substr(0, slash);
    std::string name = job.rel.substr(slash == std::string::npos ? 0 : slash + 1);
    int dir = open_beneath(job.root_fd, parent, O_PATH | O_DIRECTORY);
    if (dir < 0) return;
    struct stat ds {}, ns {};
    if (fstat(dir, &ds) == 0) {
        job.dir_generation = job.locks->generation(ds.st_dev, ds.st_ino);
        // Still missing after the generation was read: a create we did not
        // see came with a bump the cache will see.
        if (fstatat(dir, name.c_str(), &ns, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT) {
            job.dir_known = true;
            job.dir_st = ds;
        }
    }
    close(dir);
}

}  // namespace

void GetJob::work() {
    GetJob& job = *this;
    job.fd = open_beneath(job.root_fd, job.rel, kOpenFlags);
    if (job.fd < 0) {
        job.err = errno;
        if (job.err == ENOENT && job.locks && job.use_fd_cache) note_missing(job);
        return;
    }
    if (fstat(job.fd, &job.st) != 0) {
        job.err = errno;
        return;
    }
    job.served_rel = job.rel;
    if (S_ISDIR(job.st.st_mode)) {
        if (!job.trailing_slash) {
            job.kind = Kind::Redirect;
            return;
        }
        std::string index = job.rel == "." ? std::string("index.html") : job.rel + "/index.html";
        struct stat ist {};
        int ifd = open_beneath(job.root_fd, index, kOpenFlags);
        if (ifd >= 0 && fstat(ifd, &ist) == 0 && S_ISREG(ist.st_mode)) {
            close(job.fd);
            job.fd = ifd;
            job.st = ist;
            job.served_rel = index;
        } else {
            if (ifd >= 0) close(ifd);
            job.kind = Kind::Listing;  // read and rendered as it is sent
            return;
        }
    } else if (!S_ISREG(job.st.st_mode)) {
        job.err = EACCES;  // devices, FIFOs and sockets are never served
        return;
    } else if (job.trailing_slash) {
        job.err = ENOTDIR;  // "/file.txt/" names a directory that is not there
        return;
    }
    job.kind = Kind::File;
    // The generation is read before the stat the coding cache records.
    if (job.locks) job.id_generation = job.file_generation = job.locks->generation(job.st.st_dev, job.st.st_ino);
    choose_representation(job);
    if (job.locks && !job.encoding.empty()) job.file_generation = job.locks->generation(job.st.st_dev, job.st.st_ino);
    if (!job.not_acceptable && !job.on_the_fly) read_inline(job);
    if (job.on_the_fly) open_disk_entry(job);
    job.cacheable = true;
    // Bytes for the small-file cache, and large files' descriptors for the
    // descriptor cache, are both tagged with the generation read above.
    if (job.locks && (job.in_memory || (job.use_fd_cache && job.encoding.empty() && !job.on_the_fly))) {
        // The bytes may go into the cache tagged with the generation read
        // above. That is only right if the path still named this file after
        // the generation was read: a writer bumps it after its rename, so a
        // rename we did not see here comes with a bump the cache will see.
        std::string path = job.served_rel;
        path += coding_suffix(job.encoding.empty() ? Coding::Identity : job.coding);
        struct stat now {};
        int check = open_beneath(job.root_fd, path, O_PATH);
        job.cacheable = check >= 0 && fstat(check, &now) == 0 && now.st_ino == job.st.st_ino &&
                        now.st_dev == job.st.st_dev;
        if (check >= 0) close(check);
    }
}

}  // namespace uvh
