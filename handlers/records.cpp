#include "handlers/records.h"

#include <algorithm>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "handlers/get_head.h"
#include "handlers/listing.h"
#include "handlers/metrics.h"
#include "handlers/records/record_backend.h"
#include "handlers/router.h"
#include "handlers/routes.h"
#include "protocol/multipart.h"
#include "protocol/negotiate.h"
#include "protocol/percent.h"

namespace uvh {

namespace {

// A body may be larger than the line it becomes (multipart and JSON
// framing): it is read up to the record cap plus this much, and the store
// checks the line itself (--max-record-size). This bounds the memory one
// request can make us hold.
constexpr uint64_t kBodySlack = 64 * 1024;

uint64_t body_limit(const Site& site) { return site.max_record_size + kBodySlack; }

std::string record_too_large_text(const Site& site) {
    return fmt::format("a record is at most {} bytes (--max-record-size)", site.max_record_size);
}

enum class BodyType { None, Form, Multipart, Json };

BodyType body_type(const Request& req, std::string& boundary) {
    std::string essence = media_type_essence(req.content_type);
    if (essence == "application/x-www-form-urlencoded") return BodyType::Form;
    if (essence == "application/json") return BodyType::Json;
    if (essence == "multipart/form-data") {
        if (!media_type_param(req.content_type, "boundary", boundary) || boundary.empty()) return BodyType::None;
        return BodyType::Multipart;
    }
    return BodyType::None;
}

// Decodes the collected body into fields. Returns an error text, or empty.
std::string parse_fields(const Request& req, const std::string& body, FormFields& out) {
    if (body.empty()) return "empty body: send the record's fields";
    std::string boundary;
    switch (body_type(req, boundary)) {
    case BodyType::Form:
        if (!parse_form(body, out)) return "malformed form data (bad percent-encoding)";
        break;
    case BodyType::Multipart:
        switch (parse_multipart_form(body, boundary, out)) {
        case MultipartStatus::Ok: break;
        case MultipartStatus::Malformed: return "malformed multipart/form-data";
        case MultipartStatus::FileField: return "file uploads are not records: send text fields";
        }
        break;
    case BodyType::Json: {
        nlohmann::ordered_json doc = nlohmann::ordered_json::parse(body, nullptr, false);
        if (doc.is_discarded()) return "malformed JSON";
        if (!doc.is_object()) return "the JSON must be an object of fields";
        for (const auto& [name, value] : doc.items()) {
            if (value.is_string()) {
                out.emplace_back(name, value.get<std::string>());
            } else if (value.is_number() || value.is_boolean()) {
                out.emplace_back(name, value.dump());
            } else if (value.is_null()) {
                out.emplace_back(name, "");
            } else {
                return fmt::format("field '{}' is not a string, number or boolean", name);
            }
        }
        break;
    }
    case BodyType::None:
        return "unsupported content type";
    }
    if (out.empty()) return "no fields";
    return {};
}

// "id" chooses the id and is not stored as a field; the seed's "mis"
// chooses it too and stays (the seed stored it). An empty one counts as
// absent, which is what a browser sends for a blank input.
std::string take_id(FormFields& fields) {
    for (auto it = fields.begin(); it != fields.end(); ++it) {
        if (it->first == "id") {
            std::string id = it->second;
            fields.erase(it);
            if (!id.empty()) return id;
            break;
        }
    }
    for (const auto& [name, value] : fields)
        if (name == "mis" && !value.empty()) return value;
    return {};
}

// A record is its fields: a body that only names an id ("id=x", or the
// seed's "mis=x" alone) stores nothing anyone asked for.
constexpr std::string_view kOnlyIdText = "no fields besides the id: send the record's fields";
constexpr std::string_view kIdRangeText = "a numeric id must be below 10^18 (at most 18 digits)";

bool only_id(const FormFields& fields) {
    return std::all_of(fields.begin(), fields.end(),
                       [](const auto& f) { return f.first == "id" || f.first == "mis"; });
}

nlohmann::ordered_json record_json(std::string_view id, const FormFields& fields) {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    j["id"] = std::string(id);
    for (const auto& [name, value] : fields)
        if (name != "id") j[name] = value;
    return j;
}

std::string json_text(const nlohmann::ordered_json& j) {
    return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

std::string record_location(const Site& site, std::string_view id) {
    std::string loc = site.database_url + "/";
    percent_encode(id, loc);
    return loc;
}

// ---------------------------------------------------------- store plumbing

using Done = void (*)(Exchange& ex);

// A record request's own state, in the exchange's job slot: the body as it
// is collected, then the store's answer.
struct RecordState {
    std::string data;         // the request body
    int status = 0;           // the store's answer
    bool store_full = false;  // a 507 for the store cap, not the disk
    uint32_t retry_after_s = 0;  // a 503 while the database is unreachable
    bool created = false;
    std::string id;
    FormFields fields;
};

RecordState& state(Exchange& ex) { return ex.job_as<RecordState>(); }

// One operation in the store's queue. The exchange is held (kept alive)
// until the store answers; the answer is copied into the job and the
// exchange released, which runs `after` unless the client went away.
struct PendingOp {
    RecordBackend::Op op;
    Exchange* ex = nullptr;
    Done after = nullptr;
};

void op_done(RecordBackend::Op& op) {
    std::unique_ptr<PendingOp> p(static_cast<PendingOp*>(op.ctx));
    RecordState& job = state(*p->ex);
    job.status = op.status;
    job.store_full = op.store_full;
    job.retry_after_s = op.retry_after_s;
    job.created = op.created;
    if (Metrics* m = p->ex->site().metrics) m->record_op(static_cast<int>(op.kind), op.status);
    job.id = std::move(op.rec.id);
    job.fields = std::move(op.rec.fields);
    p->ex->release(p->after);
}

void submit(Exchange& ex, RecordBackend::Op::Kind kind, Record rec, Done after) {
    auto* p = new PendingOp;
    p->op.kind = kind;
    p->op.rec = std::move(rec);
    p->op.ctx = p;
    p->op.done = op_done;
    p->ex = &ex;
    p->after = after;
    ex.hold();
    ex.site().records->submit(&p->op);
}

int store_error_status(int status) { return status == 0 ? 500 : status; }

constexpr std::string_view kUnreachableText = "the record database is unreachable; nothing was stored, try again";

// 503 with Retry-After (RFC 9110 §10.2.3) while the database is down.
void respond_unavailable(Exchange& ex, uint32_t retry_after_s) {
    std::string seconds = std::to_string(retry_after_s == 0 ? 1 : retry_after_s);
    ResponseHead head;
    head.add("Retry-After", seconds);
    respond_text(ex, 503, kUnreachableText, head);
}

std::string store_error_text(Exchange& ex, int status) {
    const Site& site = ex.site();
    switch (status) {
    case 413: return record_too_large_text(site);
    case 400: return "invalid record id (1 to 64 of A-Z a-z 0-9 . _ -)";
    case 404: return "no such record";
    case 409: return "a record with this id exists";
    case 503:
        if (state(ex).retry_after_s) return std::string(kUnreachableText);
        return "the record store is shutting down";
    case 507:
        if (state(ex).store_full)
            return fmt::format("the record store is full (--max-store-size {} bytes); nothing was stored",
                               site.max_store_size);
        return "the disk is full; nothing was stored";
    default: return "the record store failed";
    }
}

void respond_store_error(Exchange& ex, int status) {
    if (status == 503 && state(ex).retry_after_s) return respond_unavailable(ex, state(ex).retry_after_s);
    respond_error(ex, store_error_status(status), store_error_text(ex, status));
}

// ------------------------------------------------------------ body intake

void collect(Exchange& ex, std::string_view piece) {
    std::string& body = state(ex).data;
    if (body.size() + piece.size() > body_limit(ex.site()))
        return respond_error(ex, 413, record_too_large_text(ex.site()));
    body.append(piece);
    ex.body_consumed();
}

// Checks what can be checked before the body is read, then reads it.
void read_record_body(Exchange& ex, Done collected) {
    const Request& req = ex.request();
    std::string boundary;
    if (body_type(req, boundary) == BodyType::None) {
        return respond_error(ex, 415,
                             "send application/x-www-form-urlencoded, multipart/form-data or application/json");
    }
    uint64_t max = ex.site().max_body_size;
    if (req.has_content_length &&
        (req.content_length > body_limit(ex.site()) || (max != 0 && req.content_length > max)))
        return respond_error(ex, 413, record_too_large_text(ex.site()));
    BodyReader reader;
    reader.data = collect;
    reader.end = collected;
    reader.chunk = 64 * 1024;
    ex.read_body(reader);
}

// -------------------------------------------------------------------- POST

void respond_created(Exchange& ex) {
    RecordState& job = state(ex);
    const Site& site = ex.site();
    std::string location = record_location(site, job.id);
    std::string& body = ex.text();
    ResponseHead head;
    head.status = 201;
    head.location = location;
    head.cache_control = "no-store";
    // A browser gets the seed's success page, curl one line, an API JSON.
    switch (choose_media_type(ex.request().accept, {"text/plain", "text/html", "application/json"})) {
    case 1: {
        std::string id_html, loc_html;
        html_escape(job.id, id_html);
        html_escape(location, loc_html);
        body = fmt::format(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Saved</title>\n"
            "<style>body{{font-family:system-ui,sans-serif;margin:2em}}.ok{{color:#087f23}}</style>\n"
            "</head>\n<body>\n<h1 class=\"ok\">Your response was saved successfully</h1>\n"
            "<p>Record <a href=\"{}\">{}</a> is in <a href=\"{}\">{}</a>.</p>\n"
            "<p><a href=\"./\">Back</a></p>\n</body>\n</html>\n",
            loc_html, id_html, site.database_url, site.database_url.substr(1));
        head.content_type = "text/html; charset=utf-8";
        head.html = true;
        break;
    }
    case 2:
        body = json_text(record_json(job.id, job.fields));
        head.content_type = "application/json";
        break;
    default:
        format_error_body(body, 201, fmt::format("record {} saved at {}", job.id, location));
        head.content_type = "text/plain; charset=utf-8";
        break;
    }
    head.content_length = body.size();
    ex.respond(head, Body::mem(body));
}

void post_stored(Exchange& ex) {
    RecordState& job = state(ex);
    if (job.status != 201) return respond_store_error(ex, job.status);
    if (Metrics* m = ex.site().metrics) ++m->records_appended;
    respond_created(ex);
}

void post_collected(Exchange& ex) {
    RecordState& job = state(ex);
    Record rec;
    std::string error = parse_fields(ex.request(), job.data, rec.fields);
    if (!error.empty()) return respond_error(ex, 400, error);
    rec.id = take_id(rec.fields);
    if (only_id(rec.fields)) return respond_error(ex, 400, kOnlyIdText);
    if (!rec.id.empty() && !valid_record_id(rec.id)) return respond_error(ex, 400, store_error_text(ex, 400));
    if (!numeric_id_in_range(rec.id)) return respond_error(ex, 400, kIdRangeText);
    submit(ex, RecordBackend::Op::Kind::Append, std::move(rec), post_stored);
}

// ------------------------------------------------------- GET / PUT / DELETE

void respond_record(Exchange& ex) {
    RecordState& job = state(ex);
    if (job.status != 200) return respond_store_error(ex, job.status);
    std::string& body = ex.text();
    ResponseHead head;
    head.cache_control = "no-cache";
    head.vary = "Accept";
    // Form-encoded by default, as text/plain so a browser shows it;
    // labelled as a form only for a client that asks for exactly that.
    int choice = choose_media_type(ex.request().accept,
                                   {"text/plain", "application/x-www-form-urlencoded", "application/json"});
    if (choice == 2) {
        body = json_text(record_json(job.id, job.fields));
        head.content_type = "application/json";
    } else {
        body = serialize_form(job.fields);
        body.push_back('\n');
        head.content_type = choice == 1 ? "application/x-www-form-urlencoded" : "text/plain; charset=utf-8";
    }
    head.content_length = body.size();
    ex.respond(head, Body::mem(body));
}

void put_stored(Exchange& ex) {
    RecordState& job = state(ex);
    if (job.status != 201 && job.status != 204)
        return respond_store_error(ex, job.status);
    if (job.status == 204) {
        ResponseHead head;
        head.status = 204;
        return ex.respond(head, Body::none());
    }
    respond_created(ex);
}

void put_collected(Exchange& ex) {
    RecordState& job = state(ex);
    Record rec;
    std::string error = parse_fields(ex.request(), job.data, rec.fields);
    if (!error.empty()) return respond_error(ex, 400, error);
    std::string body_id = take_id(rec.fields);
    (void)body_id;  // the URL names the record; an "id" field in the body is not a field
    if (only_id(rec.fields)) return respond_error(ex, 400, kOnlyIdText);
    if (!numeric_id_in_range(job.id)) return respond_error(ex, 400, kIdRangeText);
    rec.id = job.id;
    submit(ex, RecordBackend::Op::Kind::Put, std::move(rec), put_stored);
}

void delete_stored(Exchange& ex) {
    RecordState& job = state(ex);
    if (job.status != 204) return respond_store_error(ex, job.status);
    ResponseHead head;
    head.status = 204;
    ex.respond(head, Body::none());
}

// ------------------------------------------------- GET /database.txt, rendered

// When the store is not a file (PostgreSQL), GET /database.txt renders the
// same "ID fields" lines the file would hold, in creation order, a page at a
// time on a worker: the body is a source of unknown length (chunked), so a
// large table is never held whole and a slow reader holds one page.
constexpr size_t kListingWindow = 64 * 1024;

class RecordListSource final : public BodySource {
public:
    RecordListSource(std::unique_ptr<RecordCursor> cursor, std::string first, bool more)
        : cursor_(std::move(cursor)), buf_(std::move(first)), more_(more) {}

    BodyPiece next() override {
        if (!buf_.empty() && !sent_) {
            sent_ = true;
            return BodyPiece::mem(buf_);
        }
        if (!more_ || failed_) return BodyPiece::end();
        return BodyPiece::work();
    }
    void work() override {
        buf_.clear();
        sent_ = false;
        RecordCursor::Step step = cursor_->next(buf_, kListingWindow);
        more_ = step == RecordCursor::Step::More;
        failed_ = step == RecordCursor::Step::Failed;
        if (!more_) cursor_.reset();  // its connection goes now, on the worker
    }
    bool failed() const override { return failed_; }

private:
    std::unique_ptr<RecordCursor> cursor_;
    std::string buf_;
    bool more_ = false;
    bool sent_ = false;
    bool failed_ = false;
};

// The first page, read before answering, so that an unreachable database
// is a 503 with Retry-After rather than a 200 cut short.
struct RecordListJob final : Job {
    std::unique_ptr<RecordCursor> cursor;
    std::string first;
    RecordCursor::Step step = RecordCursor::Step::Failed;

    void work() override { step = cursor->next(first, kListingWindow); }
    void done(Exchange& ex) override {
        if (Metrics* m = ex.site().metrics)
            m->record_op(4, step == RecordCursor::Step::Failed ? 503 : 200);
        if (step == RecordCursor::Step::Failed) {
            cursor.reset();
            return respond_unavailable(ex, 1);
        }
        ResponseHead head;
        head.content_type = kRecordListingType;
        head.cache_control = "no-cache";
        if (step == RecordCursor::Step::End) {
            cursor.reset();
            std::string& body = ex.text();
            body = std::move(first);
            head.content_length = body.size();
            return ex.respond(head, Body::mem(body));
        }
        head.content_length = ResponseHead::kUnknownLength;
        auto& src = ex.make_source<RecordListSource>(std::move(cursor), std::move(first), true);
        ex.respond(head, Body::from(src));
    }
    bool holds_resources() const override { return cursor != nullptr; }
    void release() override { cursor.reset(); }
};

}  // namespace

bool database_is_rendered(const Site& site) { return site.records && site.records->renders_listing(); }

void handle_database_read(Exchange& ex) {
    RecordBackend* store = ex.site().records;
    if (!database_is_rendered(ex.site())) return handle_get(ex);
    auto& job = ex.make_job<RecordListJob>();
    job.cursor = store->open_cursor();
    ex.offload(job, JobClass::Listing);
}

void handle_record_post(Exchange& ex) {
    if (!ex.site().records) return respond_error(ex, 503, "the record store is not available");
    ex.make_job<RecordState>();
    read_record_body(ex, post_collected);
}

void handle_record(Exchange& ex, std::string_view id) {
    const Request& req = ex.request();
    if (!ex.site().records) return respond_error(ex, 503, "the record store is not available");
    if (!valid_record_id(id)) {
        ex.discard_body();
        return respond_error(ex, 404, "no such record");
    }
    Record rec;
    rec.id.assign(id);
    ex.make_job<RecordState>();
    switch (req.method) {
    case Method::Get:
    case Method::Head:
        ex.discard_body();
        return submit(ex, RecordBackend::Op::Kind::Get, std::move(rec), respond_record);
    case Method::Delete:
        ex.discard_body();
        return submit(ex, RecordBackend::Op::Kind::Delete, std::move(rec), delete_stored);
    case Method::Put:
        state(ex).id.assign(id);
        return read_record_body(ex, put_collected);
    default:
        return respond_error(ex, 405, "a record supports GET, HEAD, PUT and DELETE", allow_for(ex.site(), ex.path()));
    }
}

}  // namespace uvh
