// Tests for protocol/multipart.cpp: media types (RFC 9110 §8.3.1) and
// multipart/form-data bodies (RFC 7578, delimiters of RFC 2046 §5.1.1).
#include "protocol/multipart.h"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

using namespace uvh;
using namespace std::string_literals;

namespace {

// What curl -F a=1 -F 'b=x y' -F c=... sends (curl 7.88, CRLF everywhere).
constexpr std::string_view kCurlBoundary = "------------------------d74496d66958873e";

std::string part(std::string_view boundary, std::string_view disposition, std::string_view value,
                 std::string_view extra_headers = {}) {
    std::string s = "--";
    s.append(boundary);
    s.append("\r\nContent-Disposition: ");
    s.append(disposition);
    s.append("\r\n");
    s.append(extra_headers);
    s.append("\r\n");
    s.append(value);
    s.append("\r\n");
    return s;
}

std::string close_delimiter(std::string_view boundary) {
    return "--" + std::string(boundary) + "--\r\n";
}

MultipartStatus parse(std::string_view body, std::string_view boundary, FormFields& out) {
    out.clear();
    return parse_multipart_form(body, boundary, out);
}

}  // namespace

TEST_CASE("multipart: media_type_essence", "[multipart]") {
    struct {
        std::string_view in;
        std::string_view expected;
    } const cases[] = {
        {"multipart/form-data", "multipart/form-data"},
        {"Multipart/Form-Data; boundary=\"abc\"", "multipart/form-data"},
        {"application/x-www-form-urlencoded;charset=UTF-8", "application/x-www-form-urlencoded"},
        {"text/plain ; charset=utf-8", "text/plain"},
        {"  text/html", "text/html"},
        {"text/html  ", "text/html"},
        {"application/vnd.api+json", "application/vnd.api+json"},
        {"", ""},
        {"text", ""},
        {"text/", ""},
        {"/plain", ""},
        {"text /plain", ""},
        {"text/ plain", ""},
        {"text/plain garbage", ""},
        {"text/plain/x", ""},
        {"te(xt/plain", ""},
        {"\xff/plain", ""},
    };
    for (const auto& c : cases) {
        INFO("[" << c.in << "]");
        CHECK(media_type_essence(c.in) == c.expected);
    }
}

TEST_CASE("multipart: media_type_param", "[multipart]") {
    std::string v;
    REQUIRE(media_type_param("Multipart/Form-Data; boundary=\"abc\"", "boundary", v));
    CHECK(v == "abc");
    REQUIRE(media_type_param("multipart/form-data; BOUNDARY=xyz", "boundary", v));
    CHECK(v == "xyz");
    REQUIRE(media_type_param("multipart/form-data;boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
                             "Boundary", v));
    CHECK(v == "----WebKitFormBoundary7MA4YWxkTrZu0gW");
    REQUIRE(media_type_param("text/plain; charset=utf-8; format=flowed", "format", v));
    CHECK(v == "flowed");
    REQUIRE(media_type_param("text/plain;charset=\"UTF-8\"", "charset", v));
    CHECK(v == "UTF-8");
    REQUIRE(media_type_param("text/plain; a=\"q\\\"uo\\\\te\"", "a", v));
    CHECK(v == "q\"uo\\te");
    REQUIRE(media_type_param("text/plain; a=\"x y;z\"; b=2", "b", v));  // ';' inside quotes
    CHECK(v == "2");
    REQUIRE(media_type_param("text/plain;; ;a=1", "a", v));  // empty parameters are allowed
    CHECK(v == "1");
    REQUIRE(media_type_param("text/plain; a=\"\"", "a", v));
    CHECK(v.empty());

    v = "untouched";
    CHECK_FALSE(media_type_param("text/plain", "charset", v));
    CHECK_FALSE(media_type_param("text/plain; charset=utf-8", "boundary", v));
    CHECK_FALSE(media_type_param("text/plain; charset", "charset", v));      // no '='
    CHECK_FALSE(media_type_param("text/plain; charset=", "charset", v));     // no value
    CHECK_FALSE(media_type_param("text/plain; charset = x", "charset", v));  // spaces around '='
    CHECK_FALSE(media_type_param("text/plain; a=\"open", "a", v));           // unterminated quote
    CHECK_FALSE(media_type_param("text/plain; a=\"x\ny\"", "a", v));         // control character
    CHECK_FALSE(media_type_param("text/plain; a=1 b=2", "b", v));            // missing ';'
    CHECK_FALSE(media_type_param("garbage", "a", v));
    CHECK_FALSE(media_type_param("", "a", v));
    CHECK(v == "untouched");
}

TEST_CASE("multipart: a curl -F body with three fields", "[multipart]") {
    std::string body = part(kCurlBoundary, "form-data; name=\"mis\"", "17") +
                       part(kCurlBoundary, "form-data; name=\"name\"", "Akshay Khoje") +
                       part(kCurlBoundary, "form-data; name=\"email\"", "akshay@gmail.com") +
                       close_delimiter(kCurlBoundary);
    FormFields f;
    REQUIRE(parse(body, kCurlBoundary, f) == MultipartStatus::Ok);
    REQUIRE(f.size() == 3);
    CHECK(f[0] == std::pair<std::string, std::string>{"mis", "17"});
    CHECK(f[1] == std::pair<std::string, std::string>{"name", "Akshay Khoje"});
    CHECK(f[2] == std::pair<std::string, std::string>{"email", "akshay@gmail.com"});
}

TEST_CASE("multipart: appends to the output", "[multipart]") {
    FormFields f{{"x", "1"}};
    std::string body = part("b", "form-data; name=a", "2") + close_delimiter("b");
    REQUIRE(parse_multipart_form(body, "b", f) == MultipartStatus::Ok);
    REQUIRE(f.size() == 2);
    CHECK(f[1].second == "2");
}

TEST_CASE("multipart: names: quoting, escapes, tokens, case", "[multipart]") {
    std::string b = "XyZ";
    std::string body = part(b, "form-data; name=\"a b\"", "1") +
                       part(b, "form-data; name=\"q\\\"uote\\\\d\"", "2") +
                       part(b, "form-data; name=tok", "3") +
                       part(b, "Form-Data; NAME=\"Up\"", "4") +
                       part(b, "form-data;name=\"semi;colon\"", "5") +
                       part(b, "form-data; name=\"caf\xc3\xa9\"", "6") +
                       part(b, "form-data; name=\"a%22b\"", "7") +  // a browser's escape, kept
                       part(b, "form-data; name=\"\"", "8") + close_delimiter(b);
    FormFields f;
    REQUIRE(parse(body, b, f) == MultipartStatus::Ok);
    REQUIRE(f.size() == 8);
    CHECK(f[0].first == "a b");
    CHECK(f[1].first == "q\"uote\\d");
    CHECK(f[2].first == "tok");
    CHECK(f[3].first == "Up");
    CHECK(f[4].first == "semi;colon");
    CHECK(f[5].first == "caf\xc3\xa9");
    CHECK(f[6].first == "a%22b");
    CHECK(f[7].first == "");
    CHECK(f[7].second == "8");
}

TEST_CASE("multipart: values with CRLF, '--' and near-delimiters", "[multipart]") {
    std::string b = "boundary42";
    const std::string values[] = {
        "line1\r\nline2\r\n",
        "--",
        "a\r\n--b",                 // "--" after CRLF, not our boundary
        "x\r\n--boundary4",         // a prefix of the delimiter
        "--boundary42",             // the dash-boundary not after CRLF is content
        "lf only\n--boundary42",    // bare LF: RFC 2046 delimiters need CRLF
        "",                         // empty value
        "\r\n",                     // just a CRLF
        "nul\0byte"s,
        "trailing space ",
    };
    const char* const names[] = {"v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9"};
    static_assert(std::size(names) == std::size(values));
    std::string body;
    for (size_t i = 0; i < std::size(values); ++i)
        body += part(b, std::string("form-data; name=\"") + names[i] + "\"", values[i]);
    body += close_delimiter(b);
    FormFields f;
    REQUIRE(parse(body, b, f) == MultipartStatus::Ok);
    REQUIRE(f.size() == std::size(values));
    for (size_t i = 0; i < std::size(values); ++i) {
        INFO(i);
        CHECK(f[i].first == names[i]);
        CHECK(f[i].second == values[i]);
    }
}

TEST_CASE("multipart: preamble, epilogue, padding, other headers", "[multipart]") {
    std::string b = "sep";
    std::string body = "This is the preamble.\r\nIt is ignored.\r\n" +
                       part(b, "form-data; name=\"a\"", "1",
                            "content-type: text/plain; charset=utf-8\r\nX-Other:  v \r\n") +
                       "--sep \t\r\n"  // transport padding after a delimiter
                       "CONTENT-DISPOSITION: form-data; name=\"b\"\r\n\r\n2\r\n"
                       "--sep--\r\nThis is the epilogue, ignored too.\r\n--sep\r\nnot a part";
    FormFields f;
    REQUIRE(parse(body, b, f) == MultipartStatus::Ok);
    REQUIRE(f.size() == 2);
    CHECK(f[0] == std::pair<std::string, std::string>{"a", "1"});
    CHECK(f[1] == std::pair<std::string, std::string>{"b", "2"});
}

TEST_CASE("multipart: a 70-character boundary and an empty form", "[multipart]") {
    std::string b(70, 'x');
    b[10] = ' ';  // inner spaces are allowed
    b[20] = '\'';
    std::string body = part(b, "form-data; name=a", "1") + close_delimiter(b);
    FormFields f;
    REQUIRE(parse(body, b, f) == MultipartStatus::Ok);
    CHECK(f.size() == 1);

    CHECK(parse(close_delimiter("z"), "z", f) == MultipartStatus::Ok);  // Chrome, empty form
    CHECK(f.empty());
}

TEST_CASE("multipart: a file part is FileField", "[multipart]") {
    std::string b = "fb";
    std::string body = part(b, "form-data; name=\"a\"", "1") +
                       part(b, "form-data; name=\"up\"; filename=\"x.txt\"", "file bytes",
                            "Content-Type: text/plain\r\n") +
                       close_delimiter(b);
    FormFields f;
    CHECK(parse(body, b, f) == MultipartStatus::FileField);

    body = part(b, "form-data; name=\"up\"; filename=\"\"", "") + close_delimiter(b);  // no file chosen
    CHECK(parse(body, b, f) == MultipartStatus::FileField);
    body = part(b, "form-data; name=up; FILENAME*=UTF-8''x.txt", "") + close_delimiter(b);
    CHECK(parse(body, b, f) == MultipartStatus::FileField);
    // A file part in an otherwise broken body: Malformed wins.
    body = part(b, "form-data; name=\"up\"; filename=\"x\"", "") + "--fb";
    CHECK(parse(body, b, f) == MultipartStatus::Malformed);
}

TEST_CASE("multipart: malformed bodies", "[multipart]") {
    std::string b = "bnd";
    std::string good = part(b, "form-data; name=\"a\"", "1");
    struct {
        const char* what;
        std::string body;
    } const cases[] = {
        {"empty body", ""},
        {"no delimiter at all", "a=1&b=2"},
        {"missing closing delimiter", good},
        {"missing closing delimiter, value runs to the end", good + "--bnd\r\nContent-Disposition: form-data; name=b\r\n\r\nxyz"},
        {"closing delimiter without CRLF before it", good.substr(0, good.size() - 2) + "--bnd--\r\n"},
        {"no name", part(b, "form-data", "1") + close_delimiter(b)},
        {"no name, other params", part(b, "form-data; filename2=x", "1") + close_delimiter(b)},
        {"two names", part(b, "form-data; name=a; name=b", "1") + close_delimiter(b)},
        {"no Content-Disposition", "--bnd\r\nContent-Type: text/plain\r\n\r\n1\r\n--bnd--\r\n"},
        {"no headers at all", "--bnd\r\n\r\n1\r\n--bnd--\r\n"},
        {"two Content-Dispositions", part(b, "form-data; name=a", "1", "Content-Disposition: form-data; name=b\r\n") + close_delimiter(b)},
        {"disposition not form-data", part(b, "attachment; name=a", "1") + close_delimiter(b)},
        {"bad disposition params", part(b, "form-data; name=\"a", "1") + close_delimiter(b)},
        {"header without colon", "--bnd\r\nContent-Disposition: form-data; name=a\r\nJunk\r\n\r\n1\r\n--bnd--\r\n"},
        {"space before colon", "--bnd\r\nContent-Disposition : form-data; name=a\r\n\r\n1\r\n--bnd--\r\n"},
        {"obs-fold", "--bnd\r\nContent-Disposition: form-data;\r\n name=a\r\n\r\n1\r\n--bnd--\r\n"},
        {"empty header name", "--bnd\r\n: x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--bnd--\r\n"},
        {"bare LF header lines", "--bnd\nContent-Disposition: form-data; name=a\n\n1\n--bnd--\n"},
        {"bare CR in a header", "--bnd\r\nContent-Disposition: form-data; name=a\rX: y\r\n\r\n1\r\n--bnd--\r\n"},
        {"headers never end", "--bnd\r\nContent-Disposition: form-data; name=a\r\n"},
        {"junk after a delimiter", "--bnd junk\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--bnd--\r\n"},
        {"delimiter followed by more boundary chars", good + "--bndX\r\nContent-Disposition: form-data; name=b\r\n\r\n2\r\n--bnd--\r\n"},
    };
    for (const auto& c : cases) {
        INFO(c.what);
        FormFields f;
        CHECK(parse(c.body, b, f) == MultipartStatus::Malformed);
    }
}

TEST_CASE("multipart: invalid boundaries", "[multipart]") {
    FormFields f;
    std::string body = part("x", "form-data; name=a", "1") + close_delimiter("x");
    CHECK(parse(body, "", f) == MultipartStatus::Malformed);
    std::string b71(71, 'x');
    CHECK(parse(part(b71, "form-data; name=a", "1") + close_delimiter(b71), b71, f) ==
          MultipartStatus::Malformed);
    CHECK(parse(part("a ", "form-data; name=a", "1") + close_delimiter("a "), "a ", f) ==
          MultipartStatus::Malformed);  // trailing space
    CHECK(parse(part("a\"b", "form-data; name=a", "1") + close_delimiter("a\"b"), "a\"b", f) ==
          MultipartStatus::Malformed);  // not a bchar
}
