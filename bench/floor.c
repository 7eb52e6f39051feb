/* The floor for bench/run: one libuv loop, llhttp parsing every request,
 * and a canned 200 whose body is as long as the benchmark's small file (571
 * bytes). All responses to one read leave with one uv_try_write; what the
 * kernel does not take is queued with uv_write. What uvhttpd spends above
 * this is its own work. Usage: floor PORT (0 = any; prints the port). */
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define HEAD "HTTP/1.1 200 OK\r\nServer: floor\r\nContent-Type: text/html\r\nContent-Length: 571\r\n\r\n"
static char reply[sizeof HEAD - 1 + 571];
static llhttp_settings_t settings;
typedef struct { uv_tcp_t tcp; llhttp_t parser; unsigned done; } conn_t;

static int on_complete(llhttp_t* p) { ((conn_t*)p->data)->done++; return 0; }
static void on_close(uv_handle_t* h) { free(h); }
static void on_written(uv_write_t* w, int status) { (void)status; free(w); }
static void on_alloc(uv_handle_t* h, size_t n, uv_buf_t* b) { static char buf[65536]; (void)h; (void)n; *b = uv_buf_init(buf, sizeof buf); }

static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* b) {
    conn_t* c = (conn_t*)s;
    if (n < 0 || (n > 0 && llhttp_execute(&c->parser, b->base, (size_t)n) != HPE_OK)) {
        if (!uv_is_closing((uv_handle_t*)s)) uv_close((uv_handle_t*)s, on_close);
        return;
    }
    uv_buf_t bufs[256];
    unsigned k = c->done < 256 ? c->done : 256, i;
    size_t total = k * sizeof reply, off;
    c->done = 0;
    for (i = 0; i < k; i++) bufs[i] = uv_buf_init(reply, sizeof reply);
    int w = k ? uv_try_write(s, bufs, k) : 0;
    off = w > 0 ? (size_t)w : 0;
    if (k == 0 || off == total) return;
    uv_write_t* req = malloc(sizeof *req + total - off);  /* the rest, pinned until written */
    char* rest = (char*)(req + 1);
    for (size_t at = off; at < total; at++) rest[at - off] = reply[at % sizeof reply];
    uv_buf_t tail = uv_buf_init(rest, (unsigned)(total - off));
    uv_write(req, s, &tail, 1, on_written);
}

static void on_conn(uv_stream_t* server, int status) {
    if (status < 0) return;
    conn_t* c = malloc(sizeof *c);
    uv_tcp_init(server->loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t*)&c->tcp) != 0) { uv_close((uv_handle_t*)&c->tcp, on_close); return; }
    uv_tcp_nodelay(&c->tcp, 1);
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    c->done = 0;
    uv_read_start((uv_stream_t*)&c->tcp, on_alloc, on_read);
}

int main(int argc, char** argv) {
    memcpy(reply, HEAD, sizeof HEAD - 1);
    memset(reply + sizeof HEAD - 1, 'x', 571);
    llhttp_settings_init(&settings);
    settings.on_message_complete = on_complete;
    uv_tcp_t server;
    struct sockaddr_in addr;
    int len = sizeof addr;
    uv_tcp_init(uv_default_loop(), &server);
    uv_ip4_addr("127.0.0.1", argc > 1 ? atoi(argv[1]) : 0, &addr);
    if (uv_tcp_bind(&server, (const struct sockaddr*)&addr, 0) || uv_listen((uv_stream_t*)&server, 4096, on_conn)) return 2;
    uv_tcp_getsockname(&server, (struct sockaddr*)&addr, &len);
    printf("listening on http://127.0.0.1:%d/\n", ntohs(addr.sin_port));
    fflush(stdout);
    return uv_run(uv_default_loop(), UV_RUN_DEFAULT);
}
