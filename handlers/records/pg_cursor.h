// PgCursor: every record of the PostgreSQL store in creation order, for
// GET /database.txt (pg_store.h). Blocking libpq on a connection of its
// own, used only on worker threads (a body source's work steps), never on
// the loop thread.
#pragma once

#include <cstdint>
#include <string>

#include "handlers/records/record_backend.h"

typedef struct pg_conn PGconn;

namespace uvh {

// Reads keyset pages (WHERE seq > last ORDER BY seq LIMIT n), so a slow
// reader holds no transaction open and no page of more than kPageRows rows
// in memory. Each page is a statement of its own: a record committed while
// the listing runs shows up if its place in the order is still ahead.
class PgCursor final : public RecordCursor {
public:
    static constexpr int kPageRows = 2000;
    static constexpr int kConnectTimeoutS = 5;

    explicit PgCursor(std::string conninfo) : conninfo_(std::move(conninfo)) {}
    ~PgCursor() override;

    Step next(std::string& out, size_t max_bytes) override;

private:
    std::string conninfo_;
    PGconn* pg_ = nullptr;
    int64_t last_seq_ = 0;
};

}  // namespace uvh
