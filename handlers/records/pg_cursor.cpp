#include "handlers/records/pg_cursor.h"

#include <libpq-fe.h>

#include <cstdlib>

#include <fmt/format.h>

#include "handlers/records/pg_schema.h"

namespace uvh {

PgCursor::~PgCursor() {
    if (pg_) PQfinish(pg_);
}

RecordCursor::Step PgCursor::next(std::string& out, size_t max_bytes) {
    if (!pg_) {
        // connect_timeout first, so a connection string's own wins.
        std::string timeout = std::to_string(kConnectTimeoutS);
        const char* keys[] = {"connect_timeout", "fallback_application_name", "dbname", nullptr};
        const char* vals[] = {timeout.c_str(), "uvhttpd", conninfo_.c_str(), nullptr};
        pg_ = PQconnectdbParams(keys, vals, 1);
        if (!pg_ || PQstatus(pg_) != CONNECTION_OK) {
            if (pg_) {
                fmt::print(stderr, "uvhttpd: records database: listing: {}", PQerrorMessage(pg_));
                PQfinish(pg_);
            }
            pg_ = nullptr;
            return Step::Failed;
        }
    }
    // Rows of up to a 64 KiB line each: a page of kPageRows, or fewer when
    // the caller asks for less.
    int rows = static_cast<int>(std::min<size_t>(kPageRows, std::max<size_t>(16, max_bytes / 64)));
    std::string after = std::to_string(last_seq_), limit = std::to_string(rows);
    const char* params[2] = {after.c_str(), limit.c_str()};
    PGresult* res = PQexecParams(pg_, pg_sql::kList, 2, nullptr, params, nullptr, nullptr, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fmt::print(stderr, "uvhttpd: records database: listing: {}", PQresultErrorMessage(res));
        PQclear(res);
        return Step::Failed;
    }
    int n = PQntuples(res);
    for (int i = 0; i < n; ++i) {
        out.append(PQgetvalue(res, i, 1), PQgetlength(res, i, 1));
        out.push_back(' ');
        out.append(PQgetvalue(res, i, 2), PQgetlength(res, i, 2));
        out.push_back('\n');
    }
    if (n > 0) last_seq_ = std::strtoll(PQgetvalue(res, n - 1, 0), nullptr, 10);
    PQclear(res);
    return n < rows ? Step::End : Step::More;
}

}  // namespace uvh
