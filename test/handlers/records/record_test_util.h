// Helpers shared by the record store's unit tests (test/handlers/records/):
// a mkdtemp directory, whole-file reads and writes, batch appends.
#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "handlers/records/record_file.h"

namespace uvh::rectest {

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/uvh-records-XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string file(std::string_view name) const { return path + "/" + std::string(name); }
};

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline void write_file(const std::string& path, std::string_view content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    REQUIRE(out.good());
}

inline std::vector<std::string> lines_of(std::string_view content) {
    std::vector<std::string> lines;
    size_t start = 0, nl;
    while ((nl = content.find('\n', start)) != std::string_view::npos) {
        lines.emplace_back(content.substr(start, nl - start));
        start = nl + 1;
    }
    return lines;
}

// Every line of the file, parsed; fails the test on a line that does not.
inline std::vector<Record> records_in(const std::string& path) {
    std::string content = read_file(path);
    CHECK((content.empty() || content.back() == '\n'));
    std::vector<Record> out;
    for (const std::string& line : lines_of(content)) {
        Record r;
        INFO("line: " << line);
        CHECK(parse_record_line(line, r));
        out.push_back(std::move(r));
    }
    return out;
}

inline std::vector<std::string> ids_in(const std::string& path) {
    std::vector<std::string> ids;
    for (Record& r : records_in(path)) ids.push_back(std::move(r.id));
    return ids;
}

inline Record rec(std::string id, FormFields fields = {}) { return Record{std::move(id), std::move(fields)}; }

// Appends the records as one batch; returns the statuses and fills in ids.
inline std::vector<int> append(RecordFile& rf, std::vector<Record>& recs) {
    std::vector<RecordFile::Append> store(recs.size());
    std::vector<RecordFile::Append*> batch;
    for (size_t i = 0; i < recs.size(); ++i) {
        store[i].rec = recs[i];
        batch.push_back(&store[i]);
    }
    rf.append_batch(batch);
    std::vector<int> statuses;
    for (size_t i = 0; i < recs.size(); ++i) {
        recs[i].id = store[i].rec.id;
        statuses.push_back(store[i].status);
    }
    return statuses;
}

inline int append_one(RecordFile& rf, Record& r) {
    std::vector<Record> v{r};
    int status = append(rf, v)[0];
    r = v[0];
    return status;
}

inline size_t tmp_files_in(const std::string& dir) {
    size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().filename().string().rfind(".uvhttpd-tmp-", 0) == 0) ++n;
    return n;
}

}  // namespace uvh::rectest
