// RecordBackend: what the HTTP side of the record store
// (handlers/records.cpp) asks of a storage engine, whichever it is: the
// file store (RecordStore over RecordFile, the default) or PostgreSQL
// (PgStore, --records). No HTTP here: an operation's answer is a status
// number the HTTP side sends as it is (GUIDE 28).
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "handlers/records/record_format.h"

namespace uvh {

// Reads every record in creation order, a batch at a time, blocking: it
// runs on a worker thread (a body source's work step), never on the loop.
class RecordCursor {
public:
    enum class Step { More, End, Failed };
    virtual ~RecordCursor() = default;
    // Appends the next records to `out` as "ID fields\n" lines (the file
    // store's format, record_format.h), about `max_bytes` of them. More:
    // call again; End: that was the last batch (maybe empty); Failed: the
    // rest cannot be read (`out` unchanged).
    virtual Step next(std::string& out, size_t max_bytes) = 0;
};

class RecordBackend {
public:
    struct Op {
        enum class Kind { Append, Get, Put, Delete } kind = Kind::Append;
        Record rec;            // in (and out for Get, and for Append: the assigned id)
        int status = 0;        // out: HTTP status (503 when the store cannot take it)
        bool created = false;  // out, for Put
        bool store_full = false;  // out: a 507 is the store cap (--max-store-size), not the disk
        // out, with a 503: the store is unavailable for a while (the
        // database is unreachable), not shutting down; the client may try
        // again after retry_after_s seconds.
        uint32_t retry_after_s = 0;
        void* ctx = nullptr;   // the caller's
        void (*done)(Op& op) = nullptr;  // called on the loop thread when the op finished

        // The backend's own, while the op is in its hands.
        uv_work_t read_req {};
        void* backend = nullptr;
        uint64_t started_ms = 0;
    };

    virtual ~RecordBackend() = default;

    // The caller owns op until done() runs; done() is never called
    // synchronously inside submit(). May be called from done().
    virtual void submit(Op* op) = 0;

    // Stops accepting (later ops finish with 503, still asynchronously);
    // calls `closed` on the loop thread, never inside close(), once no work
    // is in flight.
    virtual void close(std::function<void()> closed) = 0;

    // Whether the store can take operations now (the database is
    // reachable); /readyz consults it with --records-required.
    virtual bool available() const { return true; }

    // A cursor over every record, for GET /database.txt, when the store is
    // not a file the GET handler serves as it is (nullptr: serve the file).
    // Called on the loop thread; the cursor is then used on workers.
    virtual bool renders_listing() const { return false; }
    virtual std::unique_ptr<RecordCursor> open_cursor() { return nullptr; }
};

}  // namespace uvh
