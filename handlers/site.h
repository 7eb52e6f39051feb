// What handlers know about the site they serve: settings from the command
// line and the long-lived services (cache, record store, metrics). Built and
// owned by the application (handlers/site_builder.cpp); handlers only read
// it (the services have their own methods).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/address.h"

namespace uvh {

class CodingCache;
class DiskCodingCache;
struct CompressPolicy;
class FileCache;
class FdCache;
class LockService;
class DavLockTable;
class RecordBackend;
class Metrics;

struct Site {
    int root_fd = -1;          // O_PATH descriptor of the served root
    std::string root_path;     // as given, for messages
    std::string server_line;   // "Server: uvhttpd/x.y.z\r\n"

    std::string cache_control;  // --cache-control; empty: none
    size_t inline_max = 64 * 1024;  // files up to this size are read, not sent with sendfile

    // Writes (PUT, DELETE, MKCOL, POST).
    bool writes_enabled = true;  // false with --read-only
    std::string write_token;     // --write-token; empty: no authentication
    uint64_t max_body_size = 1ull << 30;  // --max-body-size; 0: unlimited
    bool create_dirs = false;    // --create-dirs
    bool dav_depth_infinity = false;  // --dav-depth-infinity: PROPFIND Depth: infinity allowed
    bool dav_props_sidecar = false;   // --dav-props sidecar (handlers/dav/props_store.h)
    std::vector<std::string> allowed_hosts;    // --allowed-host (protocol/write_origin.h)
    std::vector<std::string> allowed_origins;  // --allowed-origin
    std::string database_url = "/database.txt";  // URL path of the record store
    int database_dir_fd = -1;    // directory holding the record file
    std::string database_rel;    // the record file, relative to database_dir_fd
    uint64_t max_record_size = 64 * 1024;  // --max-record-size
    uint64_t max_store_size = 1ull << 30;  // --max-store-size; 0: unlimited
    uint64_t upload_expiry_s = 24 * 3600;  // --upload-expiry: an unfinished resumable upload lives this long
    size_t max_uploads = 1000;             // --max-uploads: unfinished resumable uploads at once; 0: no cap
    // What the record file is on disk: its directory and name. Writes by
    // any URL (aliases, symlinks, another --database) are checked against
    // this, not against the URL (hardening issue, item 4).
    bool store_known = false;
    dev_t store_dir_dev = 0;
    ino_t store_dir_ino = 0;
    std::string store_name;

    // Operational endpoints; an empty path turns one off.
    std::string health_path = "/healthz";
    std::string ready_path = "/readyz";
    std::string metrics_path = "/metrics";
    uint64_t ready_max_queue = 256;  // /readyz is 503 "saturated" from this queue depth; 0: never
    std::vector<Cidr> metrics_allow;  // besides loopback

    FileCache* cache = nullptr;
    // Compression (handlers/compress/): null with --compress off.
    const CompressPolicy* compress = nullptr;
    CodingCache* codings = nullptr;
    DiskCodingCache* disk_codings = nullptr;  // --compress-cache-dir (handlers/compress/disk_cache.h)
    FdCache* fd_cache = nullptr;  // descriptors of large files (--open-file-cache)
    const LockService* locks = nullptr;  // write locks and file generations
    DavLockTable* dav_locks = nullptr;   // WebDAV locks (handlers/dav/lock_table.h)
    int64_t dav_lock_timeout_max = 3600;  // --dav-lock-timeout-max, seconds
    RecordBackend* records = nullptr;  // the file store or PostgreSQL (--records)
    bool records_required = false;     // --records-required: /readyz needs the store
    Metrics* metrics = nullptr;
};

}  // namespace uvh
