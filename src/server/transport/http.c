#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <time.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "httpmsg.h"
#include "log.h"
#include "lw.h"
#include "map.h"
#include "metrics.h"
#include "router.h"

static h2o_globalconf_t h2o_conf;
static h2o_context_t h2o_ctx;
static h2o_accept_ctx_t accept_ctx;
static h2o_socket_t *listener, *metrics_listener;
static int metrics_port = -1;
static lw_server *the_app;

/* Headers every API answer carries (PRODUCT.md §8). Names and values are
 * static, so they are appended to the answer as they are: no allocation or
 * copy per header on the hot path (each answer carries nine). */
static h2o_iovec_t sec_names[] = {
    {H2O_STRLIT("x-content-type-options")},
    {H2O_STRLIT("referrer-policy")},
    {H2O_STRLIT("x-frame-options")},
    {H2O_STRLIT("content-security-policy")},
    {H2O_STRLIT("cross-origin-resource-policy")},
    {H2O_STRLIT("accept-ch")},
    /* Clients compare this with what they understand (and warn when older). */
    {H2O_STRLIT("linkward-version")},
};
static const h2o_iovec_t sec_values[] = {
    {H2O_STRLIT("nosniff")},        {H2O_STRLIT("no-referrer")},
    {H2O_STRLIT("DENY")},           {H2O_STRLIT("default-src 'none'; frame-ancestors 'none'")},
    {H2O_STRLIT("same-origin")},    {H2O_STRLIT(LW_ACCEPT_CH)},
    {H2O_STRLIT(LINKWARD_VERSION)},
};
#define SEC_N (sizeof sec_values / sizeof sec_values[0])
_Static_assert(sizeof sec_names / sizeof sec_names[0] == SEC_N, "one value per name");

/* "Keep-Alive: timeout=N", N the seconds an idle connection is kept
 * (--request-timeout): clients then drop an idle connection before the server
 * closes it, and never send a request into one that is being closed (which
 * can lose it). Set once at start. */
static h2o_iovec_t keepalive_name = {H2O_STRLIT("keep-alive")};
static char keepalive_text[32];
static h2o_iovec_t keepalive_value;

static void security_headers(h2o_req_t *req)
{
    h2o_mem_pool_t *p = &req->pool;
    h2o_headers_t *h = &req->res.headers;
    h2o_add_header(p, h, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_vector_reserve(p, h, h->size + SEC_N + 2);
    for (size_t i = 0; i < SEC_N; i++)
        h->entries[h->size++] = (h2o_header_t){&sec_names[i], NULL, sec_values[i]};
    if (keepalive_value.len)
        h->entries[h->size++] = (h2o_header_t){&keepalive_name, NULL, keepalive_value};
    /* On TLS here, or behind a TLS-terminating proxy (an https public origin). */
    if (the_app && (the_app->cfg.tls_cert[0] || strncmp(the_app->cfg.public_origin, "https://", 8) == 0))
        h2o_add_header(p, h, H2O_TOKEN_STRICT_TRANSPORT_SECURITY, NULL,
                       H2O_STRLIT("max-age=31536000; includeSubDomains"));
}

/* h2o's own error answers get our JSON error body instead of its text. */
typedef struct json_error_ostream {
    h2o_ostream_t super;
    h2o_iovec_t body;
    bool sent;
} json_error_ostream;

static void json_error_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                            h2o_send_state_t state)
{
    json_error_ostream *o = (json_error_ostream *)self;
    (void)bufs;
    (void)bufcnt;
    if (o->sent) {
        h2o_ostream_send_next(self, req, NULL, 0, state);
        return;
    }
    o->sent = true;
    h2o_ostream_send_next(self, req, &o->body, 1, state);
}

/* The code and sentence for an answer h2o gives before any handler runs. */
#define LW_STRINGIFY_(x) #x
#define LW_STRINGIFY(x) LW_STRINGIFY_(x)

static void h2o_error_words(int status, const char **code, const char **message)
{
    switch (status) {
    case 413:
        *code = "body_too_large";
        *message = "The request body is larger than this server accepts (" LW_STRINGIFY(
            LW_H2O_ENTITY_MAX_KIB) " KiB at most, less for most routes).";
        return;
    case 400:
        *code = "bad_request";
        *message = "The request could not be read as HTTP/1.1 (a broken body or chunked encoding).";
        return;
    default:
        *code = "http_error";
        *message = "The request was refused before it reached Linkward.";
        return;
    }
}

/* h2o answers some requests itself (a body over its limit, broken chunked
 * encoding); this filter gives those answers the same headers as ours and,
 * for errors, the same {"error":{"code","message"}} body, so that a client
 * never has to parse two kinds of error. */
static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    if (h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("x-content-type-options"), -1) == -1) {
        security_headers(req);
        if (req->res.status >= 400) {
            const char *code, *message;
            h2o_error_words(req->res.status, &code, &message);
            char buf[256];
            int n = snprintf(buf, sizeof buf, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", code,
                             message);
            json_error_ostream *o = (json_error_ostream *)h2o_add_ostream(req, sizeof *o, slot);
            o->super.do_send = json_error_send;
            o->body = h2o_strdup(&req->pool, buf, (size_t)n);
            o->sent = false;
            req->res.content_length = o->body.len;
            h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE,
                           H2O_STRLIT("application/json; charset=utf-8"), 1);
            slot = &o->super.next;
        }
    }
    h2o_setup_next_ostream(req, slot);
}

void lw_rq_header(lw_rq *rq, const char *name, const char *value)
{
    h2o_req_t *req = rq->req;
    if (!req)
        return; /* the client is gone */
    h2o_iovec_t v = h2o_strdup(&req->pool, value, SIZE_MAX);
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, v.base, v.len);
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 423:
        return "Locked";
    case 429:
        return "Too Many Requests";
    case 426:
        return "Upgrade Required";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return status >= 500 ? "Internal Server Error" : "OK";
    }
}

/* Sends the final answer: body must live as long as the request (the pool,
 * or static). h2o_send_inline would copy it once more. */
static void send_final(h2o_req_t *req, const char *body, size_t len)
{
    static h2o_generator_t generator = {NULL, NULL};
    req->res.content_length = len;
    h2o_start_response(req, &generator);
    h2o_iovec_t buf = h2o_iovec_init(body, len);
    bool head = h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD"));
    h2o_send(req, &buf, head || len == 0 ? 0 : 1, H2O_SEND_STATE_FINAL);
}

/* Marks rq answered and writes the status line and the headers every answer
 * carries, with its content type (none when type is NULL). NULL if rq was
 * answered already or its client is gone. */
static h2o_req_t *begin_reply(lw_rq *rq, int status, const char *type)
{
    if (rq->replied || !rq->req)
        return NULL;
    rq->replied = true;
    h2o_req_t *req = rq->req;
    lw_metrics_http_status(status);
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    security_headers(req);
    if (type)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    return req;
}

void lw_reply_json(lw_rq *rq, int status, json_t *body)
{
    if (rq->replied || !rq->req) {
        json_decref(body);
        return;
    }
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        status = 500;
        text = strdup("{\"error\":{\"code\":\"internal\",\"message\":\"Internal error.\"}}");
    }
    h2o_req_t *req = begin_reply(rq, status, "application/json; charset=utf-8");
    size_t len = text ? strlen(text) : 0;
    h2o_iovec_t copy = h2o_strdup(&req->pool, text ? text : "", len);
    free(text);
    send_final(req, copy.base, copy.len);
}

void lw_reply_pooled(lw_rq *rq, int status, const char *type, const char *text, size_t len)
{
    h2o_req_t *req = begin_reply(rq, status, type);
    if (req)
        send_final(req, text, len);
}

void lw_reply_text(lw_rq *rq, int status, const char *type, const char *text, size_t len)
{
    if (rq->replied || !rq->req)
        return;
    lw_reply_pooled(rq, status, type, h2o_strdup(&rq->req->pool, text, len).base, len);
}

void lw_reply_empty(lw_rq *rq, int status)
{
    h2o_req_t *req = begin_reply(rq, status, NULL);
    if (req)
        send_final(req, "", 0);
}

/* Longest error message, in bytes (longer ones are cut, and end in "..."). */
#define LW_REPLY_MESSAGE_MAX 512

static void reply_error_v(lw_rq *rq, int status, const char *code, json_t *extra, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));
static void reply_error_v(lw_rq *rq, int status, const char *code, json_t *extra, const char *fmt, va_list ap)
{
    char msg[LW_REPLY_MESSAGE_MAX];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n < 0)
        lw_strlcpy(msg, "(no message)", sizeof msg);
    else if ((size_t)n >= sizeof msg)
        memcpy(msg + sizeof msg - 4, "...", 4); /* says it was cut */
    /* Messages quote what clients and parsers said (a media type, jansson's
     * "near '…'"), cut anywhere by the bound: jansson refuses to encode text
     * that is not UTF-8, which would turn a 4xx into a 500. */
    lw_utf8_sanitize(msg);
    json_t *err = json_pack("{s:s, s:s}", "code", code, "message", msg);
    if (err && extra)
        json_object_update(err, extra);
    json_decref(extra);
    lw_reply_json(rq, status, json_pack("{s:o}", "error", err));
}

void lw_reply_error(lw_rq *rq, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(rq, status, code, NULL, fmt, ap);
    va_end(ap);
}

void lw_reply_error_x(lw_rq *rq, int status, const char *code, json_t *extra, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(rq, status, code, extra, fmt, ap);
    va_end(ap);
}

int lw_body_str(lw_rq *rq, const char *field, bool required, size_t maxlen, const char **out)
{
    json_t *v = rq->body ? json_object_get(rq->body, field) : NULL;
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (!required)
            return LW_OK;
        lw_reply_error(rq, 400, "invalid_request", "The field \"%s\" is required.", field);
        return LW_EINVAL;
    }
    if (!json_is_string(v)) {
        lw_reply_error(rq, 400, "invalid_request", "The field \"%s\" must be a string.", field);
        return LW_EINVAL;
    }
    size_t len = json_string_length(v);
    const char *s = json_string_value(v);
    if (len > maxlen || strlen(s) != len) {
        lw_reply_error(rq, 400, "invalid_request",
                       "The field \"%s\" is longer than %zu bytes or contains NUL.", field, maxlen);
        return LW_EINVAL;
    }
    *out = s;
    return LW_OK;
}

int lw_body_b64(lw_rq *rq, const char *field, bool required, uint8_t *out, size_t len, bool *present)
{
    const char *s;
    if (present)
        *present = false;
    if (lw_body_str(rq, field, required, 4 * len / 3 + 4, &s) != LW_OK)
        return LW_EINVAL;
    if (!s)
        return LW_OK;
    if (lw_b64_decode(out, len, s, strlen(s), len) != (long)len) {
        lw_reply_error(rq, 400, "invalid_request", "The field \"%s\" must be %zu bytes in base64url.", field,
                       len);
        return LW_EINVAL;
    }
    if (present)
        *present = true;
    return LW_OK;
}

int lw_body_bool(lw_rq *rq, const char *field, bool dflt, bool *out)
{
    json_t *v = rq->body ? json_object_get(rq->body, field) : NULL;
    *out = dflt;
    if (!v || json_is_null(v))
        return LW_OK;
    if (!json_is_boolean(v)) {
        lw_reply_error(rq, 400, "invalid_request", "The field \"%s\" must be true or false.", field);
        return LW_EINVAL;
    }
    *out = json_is_true(v);
    return LW_OK;
}

struct lw_rq_guard {
    lw_rq **slot;
};

/* ---- held requests ----------------------------------------------------------
 * A handler on a fiber may wait, and its client may leave meanwhile: h2o
 * then frees the request and its pool. So such a handler gets a copy of its
 * lw_rq on the heap, with everything it points to that lived in the pool
 * (the User-Agent, the body, lw_rq_alloc's memory). Two references keep it:
 * the fiber's (lw_rq_unhold) and the request's (its pool's dispose, which
 * also sets rq->req to NULL: from then on replies and headers are dropped). */
typedef struct held_block {
    struct held_block *next;
    max_align_t data[]; /* what lw_rq_alloc hands out */
} held_block;

struct lw_rq_held {
    lw_rq rq;
    int refs;
    held_block *blocks;
    char ua[]; /* the User-Agent's copy */
};

static void held_unref(struct lw_rq_held *h)
{
    if (--h->refs > 0)
        return;
    json_decref(h->rq.body);
    for (held_block *b = h->blocks, *next; b; b = next) {
        next = b->next;
        lw_free(b);
    }
    lw_free(h);
}

static void on_held_dispose(void *p)
{
    struct lw_rq_held **slot = p;
    (*slot)->rq.req = NULL;
    (*slot)->rq.guard = NULL; /* it lived in the pool too (its own dispose ran or runs now) */
    held_unref(*slot);
}

lw_rq *lw_rq_hold(const lw_rq *rq)
{
    if (rq->held || !rq->req)
        return NULL;
    struct lw_rq_held *h = lw_calloc(1, sizeof *h + rq->ua_len + 1);
    if (!h)
        return NULL;
    struct lw_rq_held **slot = h2o_mem_alloc_shared(&rq->req->pool, sizeof *slot, on_held_dispose);
    *slot = h;
    h->rq = *rq;
    h->rq.held = h;
    h->refs = 2;
    if (rq->ua) {
        memcpy(h->ua, rq->ua, rq->ua_len);
        h->rq.ua = h->ua;
    }
    json_incref(rq->body);
    return &h->rq;
}

void lw_rq_unhold(lw_rq *rq)
{
    if (rq && rq->held)
        held_unref(rq->held);
}

void *lw_rq_alloc(lw_rq *rq, size_t size)
{
    if (!rq->held)
        return rq->req ? h2o_mem_alloc_pool(&rq->req->pool, size) : NULL;
    held_block *b = lw_calloc(1, sizeof *b + size);
    if (!b)
        return NULL;
    b->next = rq->held->blocks;
    rq->held->blocks = b;
    return b->data;
}

static void on_guard_dispose(void *p)
{
    struct lw_rq_guard *g = p;
    if (g->slot)
        *g->slot = NULL;
}

void lw_rq_guard(lw_rq *rq, lw_rq **slot)
{
    if (!rq->req) {
        *slot = NULL; /* the client left while the handler waited */
        return;
    }
    struct lw_rq_guard *g = h2o_mem_alloc_shared(&rq->req->pool, sizeof *g, on_guard_dispose);
    g->slot = slot;
    rq->guard = g;
    *slot = rq;
}

void lw_rq_release(lw_rq **slot)
{
    /* Still set means the request (and so the guard in its pool) is alive. */
    if (*slot && (*slot)->guard)
        (*slot)->guard->slot = NULL;
    *slot = NULL;
}

/* picohttpparser, which libh2o carries and exports (h2o parsed the request
 * with it) but whose header Debian does not install. */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path,
                      size_t *path_len, int *minor_version, struct phr_header *headers, size_t *num_headers,
                      size_t last_len);

/* h2o keeps Content-Length and Transfer-Encoding out of req->headers and
 * reads the body by the first Content-Length (or by Transfer-Encoding when
 * there is one), so what it would not tell us is read from the request's own
 * bytes: until its answer is sent, h2o keeps the request at the start of the
 * connection's input buffer, its header block untouched (a chunked body is
 * decoded in place after it). Parsed again with the parser h2o used, the
 * fields are exactly the ones h2o saw. */
lw_framing lw_http_framing(h2o_req_t *req, char *why, size_t cap)
{
    if (cap)
        why[0] = '\0';
    /* Without either header h2o read no body: there is nothing to judge. */
    if (req->entity.base == NULL)
        return LW_FRAMING_OK;
    h2o_socket_t *sock =
        req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
    struct phr_header headers[H2O_MAX_HEADERS];
    lw_httpmsg_field fields[H2O_MAX_HEADERS];
    size_t n = H2O_MAX_HEADERS;
    const char *method, *path;
    size_t method_len, path_len;
    int minor = -1, len = -1;
    if (sock && sock->input)
        len = phr_parse_request(sock->input->bytes, sock->input->size, &method, &method_len, &path, &path_len,
                                &minor, headers, &n, 0);
    /* The body starts right after the header block: if it does not, these
     * bytes are not this request's, and nothing can be said of its framing. */
    if (len <= 0 || req->entity.base != sock->input->bytes + len) {
        lw_log_error("http", "cannot find the header block of a request with a body; closing its connection");
        if (cap)
            lw_strlcpy(why, "The request's framing could not be checked.", cap);
        req->http1_is_persistent = 0;
        return LW_FRAMING_REJECT;
    }
    for (size_t i = 0; i < n; i++)
        fields[i] =
            (lw_httpmsg_field){headers[i].name, headers[i].name_len, headers[i].value, headers[i].value_len};
    lw_framing f = lw_httpmsg_framing(fields, n, minor, why, cap);
    if (f != LW_FRAMING_OK)
        req->http1_is_persistent = 0; /* h2o then answers "Connection: close" and closes */
    return f;
}

/* Requests being handled (a request counts until h2o disposes of it, i.e.
 * its response was sent or its client left); graceful shutdown waits for 0. */
static long inflight;

typedef struct req_token {
    int64_t started_ns;
} req_token;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void on_req_done(void *p)
{
    req_token *t = p;
    inflight--;
    lw_metrics_observe(LW_HIST_REQUEST, (double)(mono_ns() - t->started_ns) / 1e9);
}

long lw_http_inflight(void)
{
    return inflight;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    req_token *t = h2o_mem_alloc_shared(&req->pool, sizeof *t, on_req_done);
    t->started_ns = mono_ns();
    inflight++;
    lw_router_dispatch(the_app, req);
    return 0;
}

/* Connection accounting: caps in total and per client address, so one
 * address cannot take every descriptor. Counted by peer address (a trusted
 * proxy's connections count as the proxy's). */
static lw_map *conns_per_ip;
static long conns_total;
static int spare_fd = -1; /* given up when descriptors run out, to accept and shed */

typedef struct conn_tag {
    char ip[LW_IP_MAX];
} conn_tag;

static void conn_count(const char *ip, int delta)
{
    conns_total += delta;
    intptr_t n = (intptr_t)lw_map_get(conns_per_ip, ip) + delta;
    if (n <= 0)
        lw_map_del(conns_per_ip, ip);
    else
        lw_map_put(conns_per_ip, ip, (void *)n);
}

static void on_conn_close(void *data)
{
    conn_tag *t = data;
    conn_count(t->ip, -1);
    lw_free(t);
}

long lw_http_connections(void)
{
    return conns_total;
}

static void peer_ip(h2o_socket_t *sock, char out[LW_IP_MAX])
{
    struct sockaddr_storage ss;
    socklen_t len = h2o_socket_getpeername(sock, (struct sockaddr *)&ss);
    out[0] = '\0';
    if (len == 0)
        return;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, LW_IP_MAX);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, LW_IP_MAX);
}

static void on_accept(h2o_socket_t *listener_sock, const char *err)
{
    if (err != NULL)
        return;
    h2o_socket_t *conn = h2o_evloop_socket_accept(listener_sock);
    if (conn == NULL) {
        if ((errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {
            /* Out of descriptors: free the spare one, take the waiting
             * connection and close it at once, so the kernel's queue drains
             * instead of the loop spinning on a readable listener. */
            close(spare_fd);
            int fd = accept(h2o_socket_get_fd(listener_sock), NULL, NULL);
            if (fd >= 0)
                close(fd);
            spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            lw_log_warn("http", "out of file descriptors: shedding connections");
        }
        return;
    }
    conn_tag *t = lw_calloc(1, sizeof *t);
    if (!t) {
        h2o_socket_close(conn);
        return;
    }
    peer_ip(conn, t->ip);
    if (conns_total >= the_app->cfg.max_connections ||
        (intptr_t)lw_map_get(conns_per_ip, t->ip) >= the_app->cfg.max_connections_per_ip) {
        char addr[LW_LOG_ADDR_MAX];
        lw_log_warn("http", "connection limit reached (%s); refusing a connection", lw_log_addr(t->ip, addr));
        lw_free(t);
        h2o_socket_close(conn);
        return;
    }
    conn_count(t->ip, +1);
    conn->on_close.cb = on_conn_close;
    conn->on_close.data = t;
    h2o_accept(&accept_ctx, conn);
}

void lw_http_init(lw_server *app)
{
    the_app = app;
    {
        long secs = (long)(app->cfg.request_timeout_ms / 1000);
        int n = snprintf(keepalive_text, sizeof keepalive_text, "timeout=%ld", secs < 1 ? 1 : secs);
        keepalive_value = n > 0 && (size_t)n < sizeof keepalive_text
                              ? h2o_iovec_init(keepalive_text, (size_t)n)
                              : h2o_iovec_init(NULL, 0);
    }
    h2o_config_init(&h2o_conf);
    h2o_conf.max_request_entity_size = LW_H2O_ENTITY_MAX;
    h2o_conf.http1.upgrade_to_http2 = 0; /* HTTP/1.1 only */
    h2o_conf.server_name = h2o_iovec_init(H2O_STRLIT("linkward"));
    /* The whole request (headers and body) must arrive within this; it is also
     * how long an idle keep-alive connection may stay. Slow clients are dropped. */
    h2o_conf.http1.req_timeout = (uint64_t)app->cfg.request_timeout_ms;
    if (!conns_per_ip)
        conns_per_ip = lw_map_new();
    if (spare_fd < 0)
        spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    h2o_hostconf_t *host = h2o_config_register_host(&h2o_conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = on_req;
    h2o_create_filter(path, sizeof(h2o_filter_t))->on_setup_ostream = on_setup_ostream;
    h2o_create_filter(&host->fallback_path, sizeof(h2o_filter_t))->on_setup_ostream = on_setup_ostream;

    h2o_context_init(&h2o_ctx, h2o_evloop_create(), &h2o_conf);
    app->loop = h2o_ctx.loop;
    app->h2o_ctx = &h2o_ctx;
    accept_ctx.ctx = &h2o_ctx;
    accept_ctx.hosts = h2o_conf.hosts;
}

void lw_http_accept_fd(lw_server *app, int fd)
{
    h2o_socket_t *sock = h2o_evloop_socket_create(h2o_ctx.loop, fd, 0);
    h2o_accept(&accept_ctx, sock);
}

/* Binds host:port (SO_REUSEPORT: a new server can bind beside the old one
 * before the old one stops accepting, so a restart refuses no connection).
 * Returns the socket, or NULL (logged). *port_out gets the bound port. */
static h2o_socket_t *bind_listener(const char *host, int port, int *port_out)
{
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%d", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, portbuf, &hints, &res);
    if (gai != 0) {
        lw_log_error("http", "cannot resolve listen address %s: %s", host, gai_strerror(gai));
        return NULL;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        lw_log_error("http", "cannot listen on %s:%s: %s", host, portbuf, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return NULL;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    h2o_socket_t *sock = h2o_evloop_socket_create(h2o_ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(sock, on_accept);
    return sock;
}

int lw_http_listen(lw_server *app)
{
    if (!(listener = bind_listener(app->cfg.listen_host, app->cfg.listen_port, &app->cfg.listen_port)))
        return LW_EIO;
    if (app->cfg.metrics_listen[0]) {
        char host[256];
        int port;
        if (lw_listen_parse(app->cfg.metrics_listen, host, sizeof host, &port) != LW_OK) {
            lw_log_error("http", "--metrics-listen wants HOST:PORT");
            return LW_EINVAL;
        }
        if (!(metrics_listener = bind_listener(host, port, &metrics_port)))
            return LW_EIO;
    }
    return LW_OK;
}

int lw_http_metrics_port(void)
{
    return metrics_port;
}

bool lw_http_on_metrics_listener(h2o_req_t *req)
{
    if (metrics_port < 0 || !req->conn->callbacks->get_sockname)
        return false;
    struct sockaddr_storage ss;
    if (req->conn->callbacks->get_sockname(req->conn, (struct sockaddr *)&ss) == 0)
        return false;
    int port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    return port == metrics_port;
}

/* TLS 1.2 and 1.3 only, forward-secret AEAD suites only; no compression,
 * no renegotiation, server preference. */
static SSL_CTX *make_ssl_ctx(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx,
                        SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        char err[256];
        ERR_error_string_n(ERR_get_error(), err, sizeof err);
        lw_log_error("tls", "cannot load %s / %s: %s", cert, key, err);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int lw_http_tls_load(lw_server *app)
{
    SSL_CTX *ctx = make_ssl_ctx(app->cfg.tls_cert, app->cfg.tls_key);
    if (!ctx)
        return LW_ECRYPTO;
    /* Connections hold their own reference to the old context: swapping does
     * not drop them, new handshakes get the new certificate. */
    SSL_CTX *old = accept_ctx.ssl_ctx;
    accept_ctx.ssl_ctx = ctx;
    if (old)
        SSL_CTX_free(old);
    return LW_OK;
}

void lw_http_request_shutdown(lw_server *app)
{
    /* Responses from now on carry "Connection: close". */
    h2o_context_request_shutdown(&h2o_ctx);
}

void lw_http_stop(lw_server *app)
{
    if (listener) {
        h2o_socket_read_stop(listener);
        h2o_socket_close(listener);
        listener = NULL;
    }
    if (metrics_listener) {
        h2o_socket_read_stop(metrics_listener);
        h2o_socket_close(metrics_listener);
        metrics_listener = NULL;
    }
}
