#include "handlers/file_response.h"

#include <sys/random.h>

#include <vector>

#include <fmt/format.h>

#include "handlers/get_job.h"
#include "protocol/preconditions.h"
#include "protocol/range.h"

namespace uvh {

FileHandle FileView::take_file() {
    if (shared) {
        fds->acquire(shared);
        return FileHandle::shared(fds, shared);
    }
    return FileHandle::owned(job->take_fd());
}

namespace {

std::string make_boundary() {
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r) r = static_cast<uint64_t>(time(nullptr));
    return fmt::format("uvhttpd-{:016x}", r);
}

}  // namespace

// Answers for one representation: preconditions (RFC 9110 §13.2.2), then
// ranges (§14), then the whole thing. Shared by the cache and the disk.
void serve_view(Exchange& ex, FileView& v) {
    const Request& req = ex.request();
    const Site& site = ex.site();
    Representation rep{true, v.etag, v.last_modified};

    ResponseHead head;
    head.etag = v.etag;
    // The record store changes under its URL all the time: always revalidate.
    head.cache_control = v.database ? std::string_view("no-cache") : std::string_view(site.cache_control);
    head.vary = v.vary;

    switch (evaluate_preconditions(req.conditionals(), true, rep, ex.now())) {
    case Precondition::Failed:
        return respond_error(ex, 412, "If-Match or If-Unmodified-Since failed");
    case Precondition::NotModified:
        // RFC 9110 §15.4.5: the validators and caching fields a 200 would
        // carry, no body, no Content-Length.
        head.status = 304;
        return ex.respond(head, Body::none());
    case Precondition::Proceed:
        break;
    }

    head.content_type = v.content_type;
    head.html = v.content_type.starts_with("text/html");
    head.content_encoding = v.encoding;
    head.last_modified = v.last_modified;
    head.accept_ranges = true;

    std::vector<ByteRange> ranges;
    RangeOutcome outcome = RangeOutcome::Full;
    // Range handling is defined for GET only (RFC 9110 §14.2); If-Range
    // turns a stale range request into a full one (§13.1.5).
    if (req.method == Method::Get && req.range.data() && if_range_allows_partial(req.if_range, rep))
        outcome = evaluate_range(req.range, v.size, ranges);

    if (outcome == RangeOutcome::Unsatisfiable) {
        // RFC 9110 §15.5.17: 416 says how long the representation is.
        std::string content_range_value = unsatisfied_range(v.size);
        ResponseHead h416;
        h416.content_range = content_range_value;
        h416.etag = v.etag;
        h416.vary = head.vary;
        h416.accept_ranges = true;
        return respond_text(ex, 416, "no satisfiable range", h416);
    }

    if (outcome == RangeOutcome::Partial && ranges.size() == 1) {
        const ByteRange& r = ranges.front();
        std::string content_range_value = content_range(r, v.size);
        head.status = 206;
        head.content_range = content_range_value;
        head.content_length = r.length();
        if (v.in_memory) return ex.respond(head, Body::mem(v.data.substr(r.first, r.length())));
        auto& src = ex.make_source<FileRangeSource>(v.take_file(), r.first, r.length());
        return ex.respond(head, Body::from(src));
    }
    if (outcome == RangeOutcome::Partial) {
        MultipartLayout& layout = ex.multipart();
        layout_multipart(ranges, v.content_type, v.size, make_boundary(), layout);
        head.status = 206;
        head.content_type = layout.content_type;
        head.html = false;
        head.content_length = layout.content_length;
        if (v.in_memory) {
            // A cached file is small: assemble the parts in memory.
            std::string& body = ex.text();
            body.clear();
            for (const auto& part : layout.parts) {
                body.append(layout.text, part.head_offset, part.head_length);
                body.append(v.data.substr(part.range.first, part.range.length()));
            }
            body.append(layout.text, layout.tail_offset, layout.tail_length);
            return ex.respond(head, Body::mem(body));
        }
        auto& src = ex.make_source<MultipartSource>(v.take_file(), layout);
        return ex.respond(head, Body::from(src));
    }

    head.content_length = v.size;
    if (!v.fields.empty()) {  // formatted when the file was cached
        head.fragment = v.fields;
        head.fragment_has_length = v.fields_have_length;
    }
    if (v.in_memory) return ex.respond(head, Body::mem(v.data));
    auto& src = ex.make_source<FileRangeSource>(v.take_file(), 0, v.size);
    ex.respond(head, Body::from(src));
}

}  // namespace uvh
