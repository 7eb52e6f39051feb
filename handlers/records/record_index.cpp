// RecordFile's index: id -> (offset, length) of its line, for the inode
// this process holds open (see record_file.h), guarded by mu_.
#include "handlers/records/record_file.h"

#include <algorithm>
#include <cerrno>
#include <string>

#include "handlers/fs_ops.h"

namespace uvh {

namespace {

constexpr size_t kScanChunk = 1 << 20;

}  // namespace

size_t RecordFile::indexed() const {
    std::lock_guard<std::mutex> g(mu_);
    return ids_.size();
}

void RecordFile::note_id(std::string_view id, uint64_t off, size_t len) {
    if (!valid_record_id(id)) return;
    // The first line with an id is the record; later ones are duplicates.
    if (!ids_.emplace(std::string(id), Entry{off, len}).second) ++dups_[std::string(id)];
    // Numbers beyond the range (only a hand edit makes them) stay records
    // but do not steer auto-numbering.
    if (all_digits(id) && numeric_id_in_range(id)) max_numeric_ = std::max(max_numeric_, number_value(id));
}

// The id for a record without one: the number after the largest in range,
// or when that is the largest possible (someone chose it), the smallest
// number not taken. Never fails: 10^18 ids do not fit on a disk.
std::string RecordFile::next_auto_id(uint64_t& max, const std::unordered_set<std::string>& batch_ids) const {
    if (max < kMaxNumeric) return std::to_string(++max);
    for (uint64_t n = 1;; ++n) {
        std::string id = std::to_string(n);
        if (!ids_.count(id) && !batch_ids.count(id)) return id;
    }
}

// Makes `held` (with `st`) the file the index describes, empty.
void RecordFile::reset_index(std::shared_ptr<Held> held, const struct stat& st) {
    held_ = std::move(held);
    held_st_ = st;
    scanned_ = 0;
    dir_synced_ = false;
    ids_.clear();
    dups_.clear();
    max_numeric_ = 0;
}

void RecordFile::forget_index() {
    std::lock_guard<std::mutex> g(mu_);
    reset_index(nullptr, {});
}

// Indexes the complete lines of `content`, which sits at `base` in the file.
size_t RecordFile::index_lines(std::string_view content, uint64_t base) {
    size_t used = for_each_line(content, [&](std::string_view line) {
        note_id(line_id(line), base + static_cast<uint64_t>(line.data() - content.data()), line.size());
    });
    scanned_ = base + used;
    return used;
}

// Indexes the complete lines between scanned_ and `size` of the held file,
// reading only those bytes. Afterwards scanned_ is the end of the last
// complete line. Returns 0 or an errno.
int RecordFile::scan_tail(uint64_t size) {
    std::string chunk, pending;  // `pending` holds a line cut by a chunk end
    uint64_t off = scanned_;
    while (off < size) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(kScanChunk, size - off));
        if (!read_exact(held_->fd, off, n, chunk)) return errno;
        off += n;
        pending.append(chunk);
        size_t used = index_lines(pending, scanned_);
        pending.erase(0, used);
    }
    return 0;
}
}  // namespace uvh
