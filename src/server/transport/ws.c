#include "ws.h"

#include <string.h>

#include <h2o.h>
#include <h2o/http1.h>
#include <h2o/websocket.h>
#include <jansson.h>
#include <openssl/sha.h>

#include "bus.h"
#include "events.h"
#include "log.h"
#include "lw.h"
#include "wsframe.h"

/* Largest message a client may send us: clients only ping. */
#define LW_WS_MAX_IN_MSG 4096
/* Client messages per second a socket may send (a burst of this many, refilled each second). */
#define LW_WS_MSGS_PER_SEC 10
/* We ping every socket every cfg.ws_ping_ms; one that has sent nothing (not
 * even a pong) for 2.5 intervals is gone and is closed. */
#define LW_WS_IDLE_FACTOR 2.5
/* How long a peer gets to answer our close frame before we drop it. */
#define LW_WS_CLOSE_GRACE_MS 3000
/* Bytes of frames a socket may have waiting behind a write in progress: a
 * peer that stops reading is dropped rather than buffered for. */
#define LW_WS_OUTBOX_MAX (256 * 1024)

/* Frames on their way out. An idle socket has none: what a socket costs
 * while idle is its lw_ws and h2o's socket, no buffer (the reason this module
 * frames by itself instead of keeping a wslay context of ~8.6 KiB per socket). */
typedef struct outbox {
    size_t len, cap;
    uint8_t data[];
} outbox;

enum ws_state {
    WS_UPGRADING, /* h2o is writing the 101; it owns the connection until on_upgraded */
    WS_OPEN,
    WS_CLOSING, /* our close frame is queued or sent; waiting for the peer's */
};

struct lw_ws {
    h2o_socket_t *sock; /* NULL while upgrading */
    lw_server *app;
    outbox *writing; /* handed to h2o_socket_write: lives until on_written */
    outbox *queued;  /* frames that came while a write was in progress */
    uint8_t *frag;   /* a fragmented client message being joined (rare): LW_WS_MAX_IN_MSG bytes */
    uint16_t frag_len;
    uint8_t frag_opcode;
    uint8_t state;
    bool drop_after_write;     /* a protocol error or the peer's close: hang up once flushed */
    bool dead;                 /* destroy asked while h2o still held the connection */
    uint8_t msg_tokens;        /* client messages left this second */
    int64_t msg_window;        /* the second they count in */
    int64_t last_rx;           /* when the peer last sent anything (ms) */
    h2o_timeout_entry_t timer; /* pings while open, the close grace while closing */
    lw_bus_sub sub;            /* how the bus sees this socket (its buckets, sub_ops) */
};

static h2o_timeout_t close_timeout;
static h2o_timeout_t ping_timeout;
static bool timeouts_ready;
static size_t live; /* lw_ws objects not yet freed */

size_t lw_ws_live(void)
{
    return live;
}

static void free_ws(lw_ws *ws)
{
    lw_bus_unsubscribe(ws->app->bus, &ws->sub);
    if (h2o_timeout_is_linked(&ws->timer))
        h2o_timeout_unlink(&ws->timer);
    lw_free(ws->writing);
    lw_free(ws->queued);
    lw_free(ws->frag);
    lw_free(ws);
    live--;
}

/* Hangs up and frees. Never called from inside lw_ws_send/lw_ws_close, so
 * the bus may send to and close sockets in any order. */
static void destroy(lw_ws *ws)
{
    if (ws->sock == NULL) {
        ws->dead = true; /* h2o still holds the connection: on_upgraded frees it */
        lw_bus_unsubscribe(ws->app->bus, &ws->sub);
        return;
    }
    /* h2o writes nothing more after the close; the buffers are ours to free */
    h2o_socket_close(ws->sock);
    free_ws(ws);
}

static void on_written(h2o_socket_t *sock, const char *err);

static void flush(lw_ws *ws)
{
    if (ws->sock == NULL || ws->writing != NULL || ws->queued == NULL)
        return;
    ws->writing = ws->queued;
    ws->queued = NULL;
    h2o_iovec_t buf = h2o_iovec_init(ws->writing->data, ws->writing->len);
    /* evloop writes at once and reports on a later loop turn: never re-enters */
    h2o_socket_write(ws->sock, &buf, 1, on_written);
}

static void on_written(h2o_socket_t *sock, const char *err)
{
    lw_ws *ws = sock->data;
    lw_free(ws->writing);
    ws->writing = NULL;
    if (err != NULL) {
        destroy(ws);
        return;
    }
    if (ws->queued != NULL)
        flush(ws);
    else if (ws->drop_after_write)
        destroy(ws);
}

/* Appends one final frame to the outbox. False if the outbox is full or out of memory. */
static bool enqueue(lw_ws *ws, uint8_t opcode, const void *payload, size_t n)
{
    outbox *q = ws->queued;
    size_t have = q ? q->len : 0;
    if (n > LW_WS_OUTBOX_MAX || have + n + LW_WSF_SERVER_HEADER_MAX > LW_WS_OUTBOX_MAX)
        return false;
    size_t need = have + n + LW_WSF_SERVER_HEADER_MAX;
    if (q == NULL || q->cap < need) {
        size_t cap = q ? q->cap * 2 : 0;
        if (cap < need)
            cap = need;
        outbox *grown = lw_realloc(q, sizeof *grown + cap);
        if (grown == NULL)
            return false;
        if (q == NULL)
            grown->len = 0;
        grown->cap = cap;
        ws->queued = q = grown;
    }
    q->len += lw_wsf_header_write(q->data + q->len, opcode, n);
    if (n)
        memcpy(q->data + q->len, payload, n);
    q->len += n;
    return true;
}

/* From now on nothing more is sent or delivered: the socket leaves the bus
 * and gets the close grace to go. */
static void start_closing(lw_ws *ws)
{
    ws->state = WS_CLOSING;
    lw_bus_unsubscribe(ws->app->bus, &ws->sub);
    if (h2o_timeout_is_linked(&ws->timer))
        h2o_timeout_unlink(&ws->timer);
    h2o_timeout_link(ws->app->loop, &close_timeout, &ws->timer);
}

/* Queues a close frame; the connection then waits for the peer's (or hangs up
 * after writing, with drop). */
static void send_close(lw_ws *ws, uint16_t code, const char *reason, bool drop)
{
    uint8_t body[2 + 32];
    size_t rlen = reason ? strnlen(reason, 32) : 0;
    body[0] = (uint8_t)(code >> 8);
    body[1] = (uint8_t)code;
    if (rlen)
        memcpy(body + 2, reason, rlen);
    start_closing(ws);
    if (!enqueue(ws, LW_WSF_CLOSE, body, 2 + rlen))
        drop = true; /* nothing more will fit: hang up once what is queued is out */
    ws->drop_after_write = ws->drop_after_write || drop;
    flush(ws);
}

static void on_timer(h2o_timeout_entry_t *entry)
{
    lw_ws *ws = H2O_STRUCT_FROM_MEMBER(lw_ws, timer, entry);
    if (ws->state == WS_CLOSING || ws->sock == NULL) {
        if (ws->sock == NULL) {
            /* still upgrading: h2o owns the connection; look again later */
            h2o_timeout_link(ws->app->loop, ws->state == WS_CLOSING ? &close_timeout : &ping_timeout,
                             &ws->timer);
            return;
        }
        destroy(ws); /* the peer never answered our close */
        return;
    }
    if (lw_now_ms() - ws->last_rx > (int64_t)(LW_WS_IDLE_FACTOR * (double)ws->app->cfg.ws_ping_ms)) {
        /* A peer that answers nothing will not answer a close handshake
         * either: drop it now instead of waiting out the close grace. */
        lw_log_debug("ws", "dropping a socket silent for %lld ms", (long long)(lw_now_ms() - ws->last_rx));
        destroy(ws);
        return;
    }
    h2o_timeout_link(ws->app->loop, &ping_timeout, &ws->timer);
    if (enqueue(ws, LW_WSF_PING, NULL, 0))
        flush(ws);
    else
        destroy(ws); /* so far behind that even a ping does not fit */
}

/* A complete message or control frame from the peer. Returns false if ws is gone. */
static bool on_message(lw_ws *ws, uint8_t opcode, uint8_t *msg, size_t len)
{
    if (opcode == LW_WSF_CLOSE) {
        if (ws->state == WS_CLOSING) {
            destroy(ws); /* the answer to ours: the handshake is complete */
            return false;
        }
        /* Echo the peer's code (RFC 6455 §5.5.1), then hang up. */
        uint16_t code = LW_WSF_NORMAL;
        if (len == 1) {
            code = LW_WSF_PROTOCOL_ERROR;
        } else if (len >= 2) {
            code = (uint16_t)(msg[0] << 8 | msg[1]);
            if (!lw_wsf_close_code_valid(code))
                code = LW_WSF_PROTOCOL_ERROR;
            else if (!lw_wsf_utf8_valid(msg + 2, len - 2))
                code = LW_WSF_BAD_DATA;
        }
        send_close(ws, code, NULL, true);
        return true;
    }
    if (ws->state == WS_CLOSING)
        return true; /* after our close, only the peer's close matters */
    /* A socket that talks more than a ping now and then is not one of ours. */
    int64_t now = lw_now_ms();
    if (now / 1000 != ws->msg_window) {
        ws->msg_window = now / 1000;
        ws->msg_tokens = LW_WS_MSGS_PER_SEC;
    }
    if (ws->msg_tokens == 0) {
        send_close(ws, LW_WSF_POLICY, "too many messages", false);
        return true;
    }
    ws->msg_tokens--;
    switch (opcode) {
    case LW_WSF_PING:
        if (enqueue(ws, LW_WSF_PONG, msg, len))
            flush(ws);
        return true;
    case LW_WSF_PONG:
    case LW_WSF_BINARY:
        return true;
    default:
        break;
    }
    if (!lw_wsf_utf8_valid(msg, len)) {
        send_close(ws, LW_WSF_BAD_DATA, "text is not UTF-8", true);
        return true;
    }
    json_t *j = json_loadb((const char *)msg, len, JSON_REJECT_DUPLICATES, NULL);
    const char *ev = j ? json_string_value(json_object_get(j, "event")) : NULL;
    if (ev && strcmp(ev, "ping") == 0) {
        static const char pong[] = "{\"event\":\"pong\"}";
        if (enqueue(ws, LW_WSF_TEXT, pong, sizeof pong - 1))
            flush(ws);
    }
    json_decref(j);
    return true;
}

/* One data frame: a whole message, or a piece of a fragmented one. */
static bool on_data_frame(lw_ws *ws, const lw_wsf_header *h, uint8_t *payload)
{
    if (h->opcode != LW_WSF_CONT) {
        if (ws->frag != NULL) {
            send_close(ws, LW_WSF_PROTOCOL_ERROR, "expected a continuation", true);
            return true;
        }
        if (h->fin)
            return on_message(ws, h->opcode, payload, h->payload_len);
        if (!(ws->frag = lw_malloc(LW_WS_MAX_IN_MSG))) {
            send_close(ws, 1011, "internal error", true);
            return true;
        }
        ws->frag_opcode = h->opcode;
        ws->frag_len = 0;
    } else if (ws->frag == NULL) {
        send_close(ws, LW_WSF_PROTOCOL_ERROR, "continuation of nothing", true);
        return true;
    }
    if ((size_t)ws->frag_len + h->payload_len > LW_WS_MAX_IN_MSG) {
        send_close(ws, LW_WSF_TOO_BIG, "message too big", true);
        return true;
    }
    memcpy(ws->frag + ws->frag_len, payload, h->payload_len);
    ws->frag_len = (uint16_t)(ws->frag_len + h->payload_len);
    if (!h->fin)
        return true;
    uint8_t *msg = ws->frag;
    size_t len = ws->frag_len;
    ws->frag = NULL;
    bool alive = on_message(ws, ws->frag_opcode, msg, len);
    lw_free(msg);
    return alive;
}

/* Frames whole frames out of the socket's input. Returns false if ws is gone. */
static bool on_input(lw_ws *ws)
{
    h2o_socket_t *sock = ws->sock;
    size_t off = 0;
    bool alive = true;
    while (alive && !ws->drop_after_write) {
        size_t avail = sock->input->size - off;
        if (avail == 0)
            break; /* (an idle socket's buffer has no bytes at all: no pointer arithmetic on it) */
        uint8_t *at = (uint8_t *)sock->input->bytes + off;
        lw_wsf_header h;
        uint16_t code;
        lw_wsf_result r = lw_wsf_parse(at, avail, LW_WS_MAX_IN_MSG, &h, &code);
        if (r == LW_WSF_NEED_MORE)
            break;
        if (r == LW_WSF_ERROR) {
            send_close(ws, code, code == LW_WSF_TOO_BIG ? "message too big" : "protocol error", true);
            break;
        }
        if (avail - h.header_len < h.payload_len)
            break; /* the rest is on its way; at most LW_WS_MAX_IN_MSG waits in the buffer */
        uint8_t *payload = at + h.header_len;
        lw_wsf_unmask(payload, h.payload_len, h.mask);
        off += h.header_len + h.payload_len;
        ws->last_rx = lw_now_ms();
        if (h.opcode & 0x8)
            alive = on_message(ws, h.opcode, payload, h.payload_len);
        else
            alive = on_data_frame(ws, &h, payload);
    }
    if (!alive)
        return false;
    if (ws->drop_after_write) {
        /* nothing more is read: what the peer sends now is not looked at */
        h2o_socket_read_stop(sock);
        h2o_buffer_consume(&sock->input, sock->input->size);
    } else {
        h2o_buffer_consume(&sock->input, off);
    }
    if (sock->input->size == 0) {
        /* Give the read buffer back while the socket idles (h2o allocates one
         * on the next read); this is most of what an idle socket would cost. */
        h2o_buffer_dispose(&sock->input);
        h2o_buffer_init(&sock->input, &h2o_socket_buffer_prototype);
    }
    return true;
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    lw_ws *ws = sock->data;
    if (err != NULL) {
        destroy(ws);
        return;
    }
    on_input(ws);
}

/* h2o has written the 101 and hands the socket over (NULL if that failed). */
static void on_upgraded(void *data, h2o_socket_t *sock, size_t reqsize)
{
    lw_ws *ws = data;
    if (sock == NULL) {
        free_ws(ws);
        return;
    }
    ws->sock = sock;
    sock->data = ws;
    ws->state = ws->state == WS_UPGRADING ? WS_OPEN : ws->state;
    h2o_buffer_consume(&sock->input, reqsize);
    if (ws->dead) {
        destroy(ws);
        return;
    }
    if (!ws->drop_after_write)
        h2o_socket_read_start(sock, on_read);
    flush(ws);
    on_input(ws); /* frames sent right behind the request, if any; frees the buffer otherwise */
}

/* Sec-WebSocket-Accept: base64(SHA-1(key + the RFC's GUID)) (RFC 6455 §4.2.2);
 * h2o 2.2 keeps its own version of this private. */
static void accept_key(char dst[29], const char *client_key)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    uint8_t src[24 + sizeof guid - 1], digest[SHA_DIGEST_LENGTH];
    memcpy(src, client_key, 24); /* h2o_is_websocket_handshake checked it is 24 bytes */
    memcpy(src + 24, guid, sizeof guid - 1);
    SHA1(src, sizeof src, digest);
    h2o_base64_encode(dst, digest, sizeof digest, 0);
    dst[28] = '\0';
}

/* The bus's view of a socket (bus.h). */
static void sub_send(lw_bus_sub *sub, const char *text, size_t len)
{
    lw_ws_send((lw_ws *)((char *)sub - offsetof(lw_ws, sub)), text, len);
}

static void sub_end(lw_bus_sub *sub, const char *text, size_t len, int code, const char *reason)
{
    lw_ws_end((lw_ws *)((char *)sub - offsetof(lw_ws, sub)), text, len, code, reason);
}

static const lw_bus_sub_ops sub_ops = {sub_send, sub_end};

int lw_ws_upgrade(lw_server *app, h2o_req_t *req, const char *device_id, const char *account_id,
                  const char *request_id)
{
    const char *client_key;
    if (h2o_is_websocket_handshake(req, &client_key) != 0 || client_key == NULL)
        return -1;
    if (!timeouts_ready) {
        h2o_timeout_init(app->loop, &close_timeout, LW_WS_CLOSE_GRACE_MS);
        h2o_timeout_init(app->loop, &ping_timeout, (uint64_t)app->cfg.ws_ping_ms);
        timeouts_ready = true;
    }
    lw_ws *ws = lw_calloc(1, sizeof *ws);
    if (!ws)
        return -1;
    live++;
    ws->app = app;
    ws->sub.ops = &sub_ops;
    ws->state = WS_UPGRADING;
    ws->timer.cb = on_timer;
    ws->last_rx = lw_now_ms();
    h2o_timeout_link(app->loop, &ping_timeout, &ws->timer);

    char accept[29];
    accept_key(accept, client_key);
    req->res.status = 101;
    req->res.reason = "Switching Protocols";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_UPGRADE, NULL, H2O_STRLIT("websocket"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-accept"), 0, NULL, accept,
                          strlen(accept));

    json_t *hello;
    if (device_id) {
        lw_bus_subscribe_device(app->bus, &ws->sub, device_id, account_id);
        hello = lw_event_hello(false, device_id);
    } else {
        lw_bus_subscribe_link(app->bus, &ws->sub, request_id);
        hello = lw_event_hello(true, request_id);
    }
    char *text = hello ? json_dumps(hello, JSON_COMPACT) : NULL;
    if (text)
        lw_ws_send(ws, text, strlen(text)); /* queued: written right after the 101 */
    free(text);
    json_decref(hello);
    h2o_http1_upgrade(req, NULL, 0, on_upgraded, ws);
    return 0;
}

void lw_ws_send(lw_ws *ws, const char *text, size_t len)
{
    if (ws->state == WS_CLOSING || ws->dead)
        return;
    if (!enqueue(ws, LW_WSF_TEXT, text, len)) {
        /* A peer this far behind has stopped reading: it reconnects and
         * catches up from the API, which is better than buffering for it. */
        lw_log_warn("ws", "a socket is %d KiB behind; dropping it", LW_WS_OUTBOX_MAX / 1024);
        ws->drop_after_write = true;
        start_closing(ws);
        return;
    }
    flush(ws);
}

void lw_ws_close(lw_ws *ws, int code, const char *reason)
{
    lw_ws_end(ws, NULL, 0, code, reason);
}

void lw_ws_end(lw_ws *ws, const char *text, size_t len, int code, const char *reason)
{
    if (ws->state == WS_CLOSING || ws->dead)
        return;
    /* Both frames go into the outbox before it is flushed: one write, in order. */
    if (text && !enqueue(ws, LW_WSF_TEXT, text, len))
        ws->drop_after_write = true;
    send_close(ws, (uint16_t)code, reason, false);
}
