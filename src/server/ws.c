#include "ws.h"

#include <string.h>

#include <h2o.h>
#include <h2o/websocket.h>
#include <jansson.h>

#include "bus.h"
#include "log.h"
#include "lw.h"

/* Largest message a client may send us: clients only ping. */
#define LW_WS_MAX_IN_MSG 4096
/* Client messages per second a socket may send (a burst of this many, refilled each second). */
#define LW_WS_MSGS_PER_SEC 10
/* We ping every socket every cfg.ws_ping_ms; one that has sent nothing (not
 * even a pong) for 2.5 intervals is gone and is closed. */
#define LW_WS_IDLE_FACTOR 2.5
/* How long a peer gets to answer our close frame before we drop it. */
#define LW_WS_CLOSE_GRACE_MS 3000

struct lw_ws {
    h2o_websocket_conn_t *conn;
    lw_app *app;
    uint16_t close_code;     /* set while the close waits for queued messages to drain */
    char close_reason[32];
    h2o_linklist_t primary_link; /* in the bus bucket of the device or link request */
    h2o_linklist_t account_link; /* in the bus bucket of the account (session sockets) */
    h2o_timeout_entry_t close_timer;
    h2o_timeout_entry_t ping_timer;
    int64_t last_rx;          /* when the peer last sent anything (ms) */
    bool closing;
    uint8_t msg_tokens;       /* client messages left this second */
    int64_t msg_window;       /* the second they count in */
    char primary_key[2 + LW_ID_STRLEN];
    char account_key[2 + LW_ID_STRLEN];
};

static h2o_timeout_t close_timeout;
static h2o_timeout_t drain_timeout; /* zero: next loop iteration */
static h2o_timeout_t ping_timeout;
static bool close_timeout_ready;

h2o_linklist_t *lw_ws_link_primary(lw_ws *ws)
{
    return &ws->primary_link;
}
h2o_linklist_t *lw_ws_link_account(lw_ws *ws)
{
    return &ws->account_link;
}
lw_ws *lw_ws_from_primary(h2o_linklist_t *l)
{
    return H2O_STRUCT_FROM_MEMBER(lw_ws, primary_link, l);
}
lw_ws *lw_ws_from_account(h2o_linklist_t *l)
{
    return H2O_STRUCT_FROM_MEMBER(lw_ws, account_link, l);
}
const char *lw_ws_key_primary(const lw_ws *ws)
{
    return ws->primary_key;
}
const char *lw_ws_key_account(const lw_ws *ws)
{
    return ws->account_key;
}

static void destroy(lw_ws *ws)
{
    lw_bus_unsubscribe(ws->app->bus, ws);
    if (h2o_timeout_is_linked(&ws->close_timer))
        h2o_timeout_unlink(&ws->close_timer);
    if (h2o_timeout_is_linked(&ws->ping_timer))
        h2o_timeout_unlink(&ws->ping_timer);
    h2o_websocket_close(ws->conn);
    lw_free(ws);
}

static void flush(lw_ws *ws);

/* wslay sends control frames ahead of queued data, so a close frame queued
 * behind a message would overtake it (a device would miss session.ended).
 * The close is therefore queued only once the data queue has drained. */
static void queue_close_when_drained(lw_ws *ws)
{
    if (ws->conn->sock == NULL || wslay_event_get_queued_msg_count(ws->conn->ws_ctx) > 0) {
        h2o_timeout_link(ws->app->loop, &drain_timeout, &ws->close_timer);
        return;
    }
    wslay_event_queue_close(ws->conn->ws_ctx, ws->close_code, (const uint8_t *)ws->close_reason,
                            strlen(ws->close_reason));
    ws->close_code = 0;
    h2o_timeout_link(ws->app->loop, &close_timeout, &ws->close_timer);
    flush(ws);
}

static void on_close_timeout(h2o_timeout_entry_t *entry)
{
    lw_ws *ws = H2O_STRUCT_FROM_MEMBER(lw_ws, close_timer, entry);
    if (ws->close_code != 0) {
        queue_close_when_drained(ws);
        return;
    }
    if (ws->conn->sock == NULL) {
        /* the upgrade has not completed: h2o still holds the conn; try later */
        h2o_timeout_link(ws->app->loop, &close_timeout, &ws->close_timer);
        return;
    }
    destroy(ws);
}

static void on_ping_timer(h2o_timeout_entry_t *entry)
{
    lw_ws *ws = H2O_STRUCT_FROM_MEMBER(lw_ws, ping_timer, entry);
    if (ws->closing)
        return;
    if (ws->conn->sock == NULL) {
        /* The upgrade is still being written: h2o owns the connection until then. */
        h2o_timeout_link(ws->app->loop, &ping_timeout, &ws->ping_timer);
        return;
    }
    if (lw_now_ms() - ws->last_rx > (int64_t)(LW_WS_IDLE_FACTOR * (double)ws->app->cfg.ws_ping_ms)) {
        /* A peer that answers nothing will not answer a close handshake
         * either: drop it now instead of waiting out the close grace. */
        lw_log_debug("ws", "dropping a socket silent for %lld ms", (long long)(lw_now_ms() - ws->last_rx));
        destroy(ws);
        return;
    }
    h2o_timeout_link(ws->app->loop, &ping_timeout, &ws->ping_timer);
    struct wslay_event_msg m = {WSLAY_PING, (const uint8_t *)"", 0};
    if (wslay_event_queue_msg(ws->conn->ws_ctx, &m) == 0)
        flush(ws); /* may destroy ws */
}

static void flush(lw_ws *ws)
{
    /* Before the upgrade completes h2o has no socket; it flushes the queue itself then. */
    if (ws->conn->sock != NULL)
        h2o_websocket_proceed(ws->conn); /* may destroy ws through on_message(NULL) */
}

static void on_message(h2o_websocket_conn_t *conn, const struct wslay_event_on_msg_recv_arg *arg)
{
    lw_ws *ws = conn->data;
    if (arg == NULL) {
        destroy(ws);
        return;
    }
    ws->last_rx = lw_now_ms(); /* pongs included: wslay hands us control frames too */
    if (ws->closing)
        return;
    /* A socket that talks more than a ping now and then is not one of ours. */
    int64_t now = lw_now_ms();
    if (now / 1000 != ws->msg_window) {
        ws->msg_window = now / 1000;
        ws->msg_tokens = LW_WS_MSGS_PER_SEC;
    }
    if (ws->msg_tokens == 0) {
        lw_ws_close(ws, 1008, "too many messages");
        return;
    }
    ws->msg_tokens--;
    if (arg->opcode != WSLAY_TEXT_FRAME)
        return;
    json_t *msg = json_loadb((const char *)arg->msg, arg->msg_length, JSON_REJECT_DUPLICATES, NULL);
    const char *ev = msg ? json_string_value(json_object_get(msg, "event")) : NULL;
    if (ev && strcmp(ev, "ping") == 0) {
        static const char pong[] = "{\"event\":\"pong\"}";
        struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)pong, sizeof pong - 1};
        wslay_event_queue_msg(conn->ws_ctx, &m); /* h2o flushes after this callback returns */
    }
    json_decref(msg);
}

int lw_ws_upgrade(lw_app *app, h2o_req_t *req, const char *device_id, const char *account_id,
                  const char *request_id)
{
    const char *client_key;
    if (h2o_is_websocket_handshake(req, &client_key) != 0 || client_key == NULL)
        return -1;
    if (!close_timeout_ready) {
        h2o_timeout_init(app->loop, &close_timeout, LW_WS_CLOSE_GRACE_MS);
        h2o_timeout_init(app->loop, &drain_timeout, 0);
        h2o_timeout_init(app->loop, &ping_timeout, (uint64_t)app->cfg.ws_ping_ms);
        close_timeout_ready = true;
    }
    lw_ws *ws = lw_calloc(1, sizeof *ws);
    if (!ws)
        return -1;
    ws->app = app;
    ws->close_timer.cb = on_close_timeout;
    ws->ping_timer.cb = on_ping_timer;
    ws->last_rx = lw_now_ms();
    ws->conn = h2o_upgrade_to_websocket(req, client_key, ws, on_message);
    wslay_event_config_set_max_recv_msg_length(ws->conn->ws_ctx, LW_WS_MAX_IN_MSG);
    h2o_timeout_link(app->loop, &ping_timeout, &ws->ping_timer);

    json_t *hello;
    if (device_id) {
        lw_bus_subscribe_device(app->bus, ws, device_id, account_id);
        hello = json_pack("{s:s, s:s}", "event", "hello", "device_id", device_id);
    } else {
        lw_bus_subscribe_link(app->bus, ws, request_id);
        hello = json_pack("{s:s, s:s}", "event", "hello", "request_id", request_id);
    }
    char *text = hello ? json_dumps(hello, JSON_COMPACT) : NULL;
    if (text)
        lw_ws_send(ws, text, strlen(text));
    free(text);
    json_decref(hello);
    return 0;
}

/* Used by the bus to build keys; defined here because the layout is private. */
void lw_ws_set_keys(lw_ws *ws, const char *primary_key, const char *account_key);
void lw_ws_set_keys(lw_ws *ws, const char *primary_key, const char *account_key)
{
    lw_strlcpy(ws->primary_key, primary_key ? primary_key : "", sizeof ws->primary_key);
    lw_strlcpy(ws->account_key, account_key ? account_key : "", sizeof ws->account_key);
}

void lw_ws_send(lw_ws *ws, const char *text, size_t len)
{
    if (ws->closing)
        return;
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)text, len};
    if (wslay_event_queue_msg(ws->conn->ws_ctx, &m) != 0) {
        lw_log_warn("ws", "cannot queue a message; closing the socket");
        lw_ws_close(ws, 1011, "internal error");
        return;
    }
    flush(ws);
}

void lw_ws_close(lw_ws *ws, int code, const char *reason)
{
    if (ws->closing)
        return;
    ws->closing = true;
    lw_bus_unsubscribe(ws->app->bus, ws);
    ws->close_code = (uint16_t)code;
    lw_strlcpy(ws->close_reason, reason, sizeof ws->close_reason);
    /* On the next loop turn: we may be inside wslay's own callbacks here. */
    h2o_timeout_link(ws->app->loop, &drain_timeout, &ws->close_timer);
}
