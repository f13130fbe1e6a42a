/*
 * ws.c — lwc_ws: the server's WebSocket, client side.
 *
 * curl opens the connection (CURLOPT_CONNECT_ONLY), so TCP and TLS, proxies
 * and timeouts behave as in HTTP requests; we write the HTTP/1.1 Upgrade
 * ourselves, check the server's Sec-WebSocket-Accept, then let wslay frame
 * messages over curl_easy_send/curl_easy_recv. The connection is
 * non-blocking: every wait is a poll() with a deadline.
 *
 * Received events are parsed and queued; lwc_ws_next hands them out one by
 * one. The queue is bounded: when it is full we stop reading from the socket
 * (the server's buffers push back), instead of growing without limit.
 */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/sha.h>
#include <sodium.h>
#include <wslay/wslay.h>

#include "client_int.h"

#define WS_QUEUE_MAX 256
#define WS_HANDSHAKE_TIMEOUT_MS 10000
#define WS_SEND_TIMEOUT_MS 5000
#define WS_CLOSE_TIMEOUT_MS 1000
#define WS_KEY_BYTES 16
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

typedef struct ws_event {
    struct ws_event *next;
    json_t *json;
} ws_event;

struct lwc_ws {
    lwc_client *c;
    CURL *curl;
    curl_socket_t fd;
    wslay_event_context_ptr ctx;
    /* Bytes that arrived with the upgrade response, after its header: the
     * first frames (the server says hello at once) are fed to wslay first. */
    uint8_t pre[LWC_WS_HANDSHAKE_MAX];
    size_t pre_len, pre_off;
    ws_event *head, *tail;
    size_t count;
    bool closed; /* no more events can come */
    int close_code;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the deadline (< 0: none) passes.
 * 1 ready, 0 timed out, -1 error. */
static int wait_fd(curl_socket_t fd, short events, int64_t deadline)
{
    for (;;) {
        int timeout = -1;
        if (deadline >= 0) {
            int64_t left = deadline - mono_ms();
            if (left <= 0)
                return 0;
            timeout = left > 60000 ? 60000 : (int)left;
        }
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, timeout);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
        if (n == 0 && deadline >= 0 && mono_ms() >= deadline)
            return 0;
    }
}

static int send_all(lwc_ws *ws, const char *data, size_t len, int64_t deadline)
{
    size_t off = 0;
    while (off < len) {
        size_t n = 0;
        CURLcode r = curl_easy_send(ws->curl, data + off, len - off, &n);
        if (r == CURLE_AGAIN) {
            if (wait_fd(ws->fd, POLLOUT, deadline) <= 0)
                return LW_EIO;
            continue;
        }
        if (r != CURLE_OK)
            return LW_EIO;
        off += n;
    }
    return LW_OK;
}

/* ---- wslay callbacks ---- */

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user_data)
{
    lwc_ws *ws = user_data;
    if (ws->count >= WS_QUEUE_MAX) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (ws->pre_off < ws->pre_len) {
        size_t n = ws->pre_len - ws->pre_off;
        if (n > len)
            n = len;
        memcpy(buf, ws->pre + ws->pre_off, n);
        ws->pre_off += n;
        return (ssize_t)n;
    }
    size_t n = 0;
    CURLcode r = curl_easy_recv(ws->curl, buf, len, &n);
    if (r == CURLE_AGAIN) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (r != CURLE_OK || n == 0) {
        /* An error, or the server closed the connection. */
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)n;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user_data)
{
    lwc_ws *ws = user_data;
    size_t n = 0;
    CURLcode r = curl_easy_send(ws->curl, data, len, &n);
    if (r == CURLE_AGAIN) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (r != CURLE_OK) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)n;
}

static int on_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user_data)
{
    lw_random(buf, len);
    return 0;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user_data)
{
    lwc_ws *ws = user_data;
    if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        ws->close_code = arg->status_code;
        return;
    }
    if (arg->opcode != WSLAY_TEXT_FRAME)
        return; /* the API speaks text frames only; pongs and binary are ignored */
    json_error_t jerr;
    json_t *j = json_loadb((const char *)arg->msg, arg->msg_length, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(j)) {
        json_decref(j); /* not an event: skip it rather than end the stream */
        return;
    }
    ws_event *e = lw_malloc(sizeof(*e));
    if (e == NULL) {
        json_decref(j);
        return;
    }
    e->next = NULL;
    e->json = j;
    if (ws->tail != NULL)
        ws->tail->next = e;
    else
        ws->head = e;
    ws->tail = e;
    ws->count++;
}

/* ---- the upgrade ---- */

/* Value of header `name` in the response head (NUL-terminated), trimmed,
 * copied into dst; false if absent or too long. */
static bool head_value(const char *head, const char *name, char *dst, size_t cap)
{
    size_t nlen = strlen(name);
    const char *line = strstr(head, "\r\n");
    while (line != NULL) {
        line += 2;
        const char *end = strstr(line, "\r\n");
        if (end == NULL || end == line)
            return false;
        if ((size_t)(end - line) > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = end;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            if ((size_t)(ve - v) >= cap)
                return false;
            memcpy(dst, v, (size_t)(ve - v));
            dst[ve - v] = '\0';
            return true;
        }
        line = end;
    }
    return false;
}

/* True if the comma-separated list contains token (case-insensitive). */
static bool list_has(const char *list, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *te = e;
        while (te > p && te[-1] == ' ')
            te--;
        if ((size_t)(te - p) == tlen && strncasecmp(p, token, tlen) == 0)
            return true;
        p = e;
    }
    return false;
}

static long parse_status(const char *head)
{
    if (strncmp(head, "HTTP/1.1 ", 9) != 0 && strncmp(head, "HTTP/1.0 ", 9) != 0)
        return -1;
    long v = 0;
    for (int i = 9; i < 12; i++) {
        if (!isdigit((unsigned char)head[i]))
            return -1;
        v = v * 10 + (head[i] - '0');
    }
    return v;
}

static int build_upgrade(lwc_ws *ws, const char *token, const char *key, lw_buf *req)
{
    int rc = LW_EINVAL;
    char *host = NULL, *port = NULL, *path = NULL;
    CURLU *u = curl_url();
    if (u == NULL)
        return LW_ENOMEM;
    if (curl_url_set(u, CURLUPART_URL, lwc_client_url(ws->c), 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        goto fail;
    (void)curl_url_get(u, CURLUPART_PORT, &port, 0); /* absent: the scheme's default */
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
        goto fail;
    size_t plen = strlen(path);
    while (plen > 0 && path[plen - 1] == '/')
        plen--;

    rc = LW_ETOOBIG;
    if (lw_buf_appendf(req, "GET %.*s/v1/ws HTTP/1.1\r\nHost: %s%s%s\r\n", (int)plen, path, host,
                       port ? ":" : "", port ? port : "") != LW_OK ||
        lw_buf_appendf(req,
                       "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nUser-Agent: %s\r\n",
                       key, lwc_client_user_agent(ws->c)) != LW_OK)
        goto fail;
    if (token != NULL && lw_buf_appendf(req, "Authorization: Bearer %s\r\n", token) != LW_OK)
        goto fail;
    for (size_t i = 0; i < lwc_client_header_count(ws->c); i++)
        if (lw_buf_appendf(req, "%s\r\n", lwc_client_header(ws->c, i)) != LW_OK)
            goto fail;
    if (lw_buf_append(req, "\r\n", 2) != LW_OK)
        goto fail;
    rc = LW_OK;
fail:
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return rc;
}

/* Reads the response to the upgrade until its blank line (bounded), keeping
 * what follows in ws->pre. On a refusal, also reads the (small) JSON body so
 * the caller learns why: a session that ended is not a network problem. */
static int read_upgrade(lwc_ws *ws, const char *expect_accept, int64_t deadline)
{
    lwc_error *err = lwc_client_err(ws->c);
    char buf[LWC_WS_HANDSHAKE_MAX + 1];
    size_t len = 0;
    char *end = NULL;
    while (end == NULL) {
        if (len >= LWC_WS_HANDSHAKE_MAX) {
            lwc_err_set(err, 0, "bad_response", "the WebSocket upgrade response is too large");
            return LW_EIO;
        }
        size_t n = 0;
        CURLcode r = curl_easy_recv(ws->curl, buf + len, LWC_WS_HANDSHAKE_MAX - len, &n);
        if (r == CURLE_AGAIN) {
            if (wait_fd(ws->fd, POLLIN, deadline) <= 0) {
                lwc_err_set(err, 0, "unreachable", "the server did not answer the WebSocket upgrade");
                return LW_EIO;
            }
            continue;
        }
        if (r != CURLE_OK || n == 0) {
            lwc_err_set(err, 0, "unreachable",
                        "the server closed the connection during the WebSocket upgrade");
            return LW_EIO;
        }
        len += n;
        buf[len] = '\0';
        end = memmem(buf, len, "\r\n\r\n", 4);
    }
    size_t head_len = (size_t)(end - buf) + 4;
    end[2] = '\0'; /* keep the last header's CRLF for head_value */

    long status = parse_status(buf);
    if (status < 0) {
        lwc_err_set(err, 0, "bad_response", "the server does not speak HTTP/1.1");
        return LW_EIO;
    }
    char value[256];
    if (status == 101) {
        if (!head_value(buf, "upgrade", value, sizeof(value)) || strcasecmp(value, "websocket") != 0 ||
            !head_value(buf, "connection", value, sizeof(value)) || !list_has(value, "upgrade") ||
            !head_value(buf, "sec-websocket-accept", value, sizeof(value)) ||
            strcmp(value, expect_accept) != 0) {
            lwc_err_set(err, 101, "bad_response", "the server's WebSocket upgrade is not valid");
            return LW_EIO;
        }
        memcpy(ws->pre, buf + head_len, len - head_len);
        ws->pre_len = len - head_len;
        return LW_OK;
    }

    /* A refusal: read the body announced by Content-Length, within bounds. */
    size_t want = 0;
    if (head_value(buf, "content-length", value, sizeof(value))) {
        for (const char *p = value; *p && want <= LWC_WS_HANDSHAKE_MAX; p++)
            if (isdigit((unsigned char)*p))
                want = want * 10 + (size_t)(*p - '0');
    }
    if (want > LWC_WS_HANDSHAKE_MAX - head_len)
        want = 0;
    size_t have = len - head_len;
    memmove(buf, buf + head_len, have);
    while (have < want) {
        size_t n = 0;
        CURLcode r = curl_easy_recv(ws->curl, buf + have, want - have, &n);
        if (r == CURLE_AGAIN) {
            if (wait_fd(ws->fd, POLLIN, deadline) <= 0)
                break;
            continue;
        }
        if (r != CURLE_OK || n == 0)
            break;
        have += n;
    }
    if (have > want)
        have = want;
    json_error_t jerr;
    json_t *answer = want > 0 ? json_loadb(buf, have, 0, &jerr) : NULL;
    lwc_err_from_json(err, status, answer);
    json_decref(answer);
    int rc = lwc_status_to_err(status, err->code);
    if (rc == LW_OK) {
        lwc_err_set(err, status, "bad_response", "the server did not accept the WebSocket upgrade (HTTP %ld)",
                    status);
        rc = LW_EIO;
    }
    return rc;
}

lwc_ws *lwc_ws_connect(lwc_client *c, const char *bearer_token, int *err)
{
    int rc = LW_ENOMEM;
    lw_buf req;
    lw_buf_init(&req, 64 * 1024);
    lwc_error *cerr = lwc_client_err(c);
    lwc_err_clear(cerr);
    lwc_ws *ws = lw_calloc(1, sizeof(*ws));
    if (ws == NULL)
        goto fail;
    ws->c = c;
    ws->fd = CURL_SOCKET_BAD;
    if ((ws->curl = curl_easy_init()) == NULL)
        goto fail;

    int64_t deadline = mono_ms() + WS_HANDSHAKE_TIMEOUT_MS;
    curl_easy_setopt(ws->curl, CURLOPT_URL, lwc_client_url(c));
    curl_easy_setopt(ws->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(ws->curl, CURLOPT_CONNECT_ONLY, 1L);
    lwc_curl_tls(ws->curl);
    curl_easy_setopt(ws->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(ws->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)LWC_CONNECT_TIMEOUT_MS);
    CURLcode cr = curl_easy_perform(ws->curl);
    if (cr != CURLE_OK) {
        rc = LW_EIO;
        lwc_err_set(cerr, 0, "unreachable", "cannot reach %s: %s", lwc_client_url(c), curl_easy_strerror(cr));
        goto fail;
    }
    if (curl_easy_getinfo(ws->curl, CURLINFO_ACTIVESOCKET, &ws->fd) != CURLE_OK ||
        ws->fd == CURL_SOCKET_BAD) {
        rc = LW_EIO;
        lwc_err_set(cerr, 0, "unreachable", "no socket for %s", lwc_client_url(c));
        goto fail;
    }

    uint8_t raw[WS_KEY_BYTES];
    char key[sodium_base64_ENCODED_LEN(WS_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    lw_random(raw, sizeof(raw));
    sodium_bin2base64(key, sizeof(key), raw, sizeof(raw), sodium_base64_VARIANT_ORIGINAL);

    /* The accept value the server must answer: base64(SHA-1(key || GUID)). */
    char both[sizeof(key) + sizeof(WS_GUID)];
    int n = snprintf(both, sizeof(both), "%s%s", key, WS_GUID);
    if (n < 0 || (size_t)n >= sizeof(both))
        goto fail;
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)both, (size_t)n, digest);
    char accept[sodium_base64_ENCODED_LEN(SHA_DIGEST_LENGTH, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(accept, sizeof(accept), digest, sizeof(digest), sodium_base64_VARIANT_ORIGINAL);

    if ((rc = build_upgrade(ws, bearer_token, key, &req)) != LW_OK) {
        lwc_err_set(cerr, 0, "invalid_url", "cannot build the WebSocket request for %s", lwc_client_url(c));
        goto fail;
    }
    if (send_all(ws, req.data, req.len, deadline) != LW_OK) {
        rc = LW_EIO;
        lwc_err_set(cerr, 0, "unreachable", "cannot send the WebSocket upgrade to %s", lwc_client_url(c));
        goto fail;
    }
    if ((rc = read_upgrade(ws, accept, deadline)) != LW_OK)
        goto fail;

    struct wslay_event_callbacks cbs = {
        .recv_callback = on_recv,
        .send_callback = on_send,
        .genmask_callback = on_genmask,
        .on_msg_recv_callback = on_msg,
    };
    rc = LW_ENOMEM;
    if (wslay_event_context_client_init(&ws->ctx, &cbs, ws) != 0) {
        ws->ctx = NULL;
        goto fail;
    }
    wslay_event_config_set_max_recv_msg_length(ws->ctx, LWC_WS_MSG_MAX);
    lw_buf_free(&req); /* wipes the bearer credential it held */
    if (err != NULL)
        *err = LW_OK;
    return ws;
fail:
    lw_buf_free(&req);
    if (rc == LW_ENOMEM && cerr->code[0] == '\0')
        lwc_err_set(cerr, 0, "no_memory", "out of memory");
    lwc_ws_close(ws);
    if (err != NULL)
        *err = rc;
    return NULL;
}

static json_t *pop_event(lwc_ws *ws)
{
    ws_event *e = ws->head;
    if (e == NULL)
        return NULL;
    ws->head = e->next;
    if (ws->head == NULL)
        ws->tail = NULL;
    ws->count--;
    json_t *j = e->json;
    lw_free(e);
    return j;
}

/* Sends what wslay has queued (close replies, pongs) without waiting. */
static void flush_nowait(lwc_ws *ws)
{
    if (wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) != 0)
        ws->closed = true;
}

int lwc_ws_next(lwc_ws *ws, json_t **event, int timeout_ms)
{
    *event = NULL;
    int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
    for (;;) {
        if ((*event = pop_event(ws)) != NULL)
            return LW_OK;
        if (ws->closed)
            return LW_EIO;
        /* Read first, poll after: curl (TLS) may already hold decrypted
         * bytes that the socket no longer signals. */
        if (wslay_event_recv(ws->ctx) != 0)
            ws->closed = true;
        flush_nowait(ws);
        if (!wslay_event_want_read(ws->ctx))
            ws->closed = true; /* a close frame came */
        if (ws->head != NULL || ws->closed)
            continue;
        short events = POLLIN;
        if (wslay_event_want_write(ws->ctx))
            events |= POLLOUT;
        int r = wait_fd(ws->fd, events, deadline);
        if (r < 0) {
            ws->closed = true;
            continue;
        }
        if (r == 0)
            return LW_EEXPIRED;
    }
}

int lwc_ws_send_json(lwc_ws *ws, json_t *msg)
{
    if (ws->closed)
        return LW_EIO;
    char *text = json_dumps(msg, JSON_COMPACT);
    if (text == NULL)
        return LW_ENOMEM;
    struct wslay_event_msg m = {
        .opcode = WSLAY_TEXT_FRAME,
        .msg = (const uint8_t *)text,
        .msg_length = strlen(text),
    };
    int rc = wslay_event_queue_msg(ws->ctx, &m) == 0 ? LW_OK : LW_EIO;
    free(text); /* wslay copied it */
    int64_t deadline = mono_ms() + WS_SEND_TIMEOUT_MS;
    while (rc == LW_OK && wslay_event_want_write(ws->ctx)) {
        if (wslay_event_send(ws->ctx) != 0) {
            ws->closed = true;
            rc = LW_EIO;
        } else if (wslay_event_want_write(ws->ctx) && wait_fd(ws->fd, POLLOUT, deadline) <= 0) {
            rc = LW_EIO;
        }
    }
    return rc;
}

int lwc_ws_close_code(const lwc_ws *ws)
{
    return ws->close_code;
}

void lwc_ws_close(lwc_ws *ws)
{
    if (ws == NULL)
        return;
    if (ws->ctx != NULL) {
        if (!ws->closed && wslay_event_queue_close(ws->ctx, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0) == 0) {
            int64_t deadline = mono_ms() + WS_CLOSE_TIMEOUT_MS;
            while (wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) == 0 &&
                   wslay_event_want_write(ws->ctx) && wait_fd(ws->fd, POLLOUT, deadline) > 0)
                ;
        }
        wslay_event_context_free(ws->ctx);
    }
    json_t *j;
    while ((j = pop_event(ws)) != NULL)
        json_decref(j);
    if (ws->curl != NULL)
        curl_easy_cleanup(ws->curl);
    lw_wipe(ws->pre, sizeof(ws->pre));
    lw_free(ws);
}
