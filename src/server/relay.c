#include "relay.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include <h2o.h>
#include <libpq-fe.h>

#include "bus.h"
#include "log.h"
#include "lw.h"
#include "alert.h"
#include "qr.h"
#include "session.h"
#include "store.h"

#define CHANNEL "linkward"
#define RECONNECT_MAX_MS 2000

typedef struct message {
    h2o_multithread_message_t super;
    bool resync;
    int64_t deaf_since; /* resync: when the listener lost its connection */
    char text[];
} message;

struct lw_relay {
    lw_app *app;
    char node[LW_ID_STRLEN];  /* this node's id: our own notifications come back to us */
    char *conninfo;
    PGconn *send;             /* used by the event loop only */
    pthread_t thread;
    volatile bool stopping;
    h2o_multithread_receiver_t receiver;
};

/* ---- the event loop side ---- */

static void apply(lw_relay *r, const char *text)
{
    json_t *m = json_loads(text, 0, NULL);
    const char *node = json_string_value(json_object_get(m, "n"));
    const char *op = json_string_value(json_object_get(m, "op"));
    const char *key = json_string_value(json_object_get(m, "k"));
    if (!m || !node || !op || !key || strcmp(node, r->node) == 0) {
        json_decref(m);
        return;
    }
    const char *except = json_string_value(json_object_get(m, "x"));
    const char *reason = json_string_value(json_object_get(m, "r"));
    json_t *ev = json_object_get(m, "e");
    lw_bus *bus = r->app->bus;
    if (strcmp(op, "end") == 0 && reason) {
        lw_sessions_forget(r->app->sessions, key);
        lw_bus_local_end_device(bus, key, reason);
    } else if (strcmp(op, "close_link") == 0) {
        lw_bus_local_close_link(bus, key);
    } else if (ev && strcmp(op, "dev") == 0) {
        lw_bus_local_to_device(bus, key, ev);
    } else if (ev && strcmp(op, "acct") == 0) {
        lw_bus_local_to_account(bus, key, except, ev);
    } else if (ev && strcmp(op, "link") == 0) {
        /* The QR SVG does not fit a notification: draw it again from the payload. */
        const char *payload = json_string_value(json_object_get(ev, "payload"));
        if (payload && !json_object_get(ev, "qr_svg")) {
            char *svg = lw_qr_svg(payload);
            if (svg)
                json_object_set_new(ev, "qr_svg", json_string(svg));
            lw_free(svg);
        }
        lw_bus_local_to_link(bus, key, ev);
    }
    json_decref(m);
}

/* Alerts raised on other nodes while we could not hear them: pushed now to
 * this node's sockets (an alert raised here meanwhile may arrive twice;
 * clients know alerts by id). */
static void replay_alerts(lw_relay *r, int64_t since)
{
    char(*accounts)[LW_ID_STRLEN] = NULL;
    size_t n = lw_bus_accounts(r->app->bus, &accounts);
    for (size_t i = 0; i < n; i++) {
        lw_alert *list = NULL;
        size_t k = 0;
        if (lw_store_alert_list(r->app->store, accounts[i], 100, &list, &k) != LW_OK)
            continue;
        for (size_t j = k; j-- > 0;) { /* oldest first */
            if (list[j].created_at < since)
                continue;
            json_t *ev = json_pack("{s:s, s:o}", "event", "alert", "alert", lw_alert_json(&list[j]));
            if (ev)
                lw_bus_local_to_account(r->app->bus, accounts[i], NULL, ev);
            json_decref(ev);
        }
        lw_free(list);
    }
    lw_free(accounts);
}

static void on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    lw_relay *r = H2O_STRUCT_FROM_MEMBER(lw_relay, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        message *m = H2O_STRUCT_FROM_MEMBER(message, super.link, messages->next);
        h2o_linklist_unlink(&m->super.link);
        if (m->resync) {
            lw_log_warn("relay", "reconnected: notifications may have been missed; resynchronising");
            lw_sessions_resync(r->app->sessions);
            replay_alerts(r, m->deaf_since);
        } else {
            apply(r, m->text);
        }
        free(m);
    }
}

static bool send_connect(lw_relay *r)
{
    if (r->send && PQstatus(r->send) == CONNECTION_OK)
        return true;
    if (r->send)
        PQreset(r->send);
    else
        r->send = PQconnectdb(r->conninfo);
    return PQstatus(r->send) == CONNECTION_OK;
}

void lw_relay_publish(lw_relay *r, const char *op, const char *key, const char *except, const char *reason,
                      json_t *ev)
{
    if (!r)
        return;
    json_t *m = json_pack("{s:s, s:s, s:s}", "n", r->node, "op", op, "k", key);
    if (!m)
        return;
    if (except)
        json_object_set_new(m, "x", json_string(except));
    if (reason)
        json_object_set_new(m, "r", json_string(reason));
    if (ev) {
        json_t *copy = json_deep_copy(ev);
        json_object_del(copy, "qr_svg"); /* redrawn by the receiver */
        json_object_set_new(m, "e", copy);
    }
    char *text = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    if (!text)
        return;
    if (strlen(text) > LW_RELAY_PAYLOAD_MAX) {
        lw_log_error("relay", "an event of %zu bytes is too large to relay (%s)", strlen(text), op);
        free(text);
        return;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!send_connect(r)) {
            lw_log_error("relay", "cannot reach PostgreSQL to relay an event: %s", PQerrorMessage(r->send));
            continue;
        }
        const char *params[1] = {text};
        PGresult *res = PQexecParams(r->send, "SELECT pg_notify('" CHANNEL "', $1)", 1, NULL, params, NULL, NULL, 0);
        bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
        PQclear(res);
        if (ok)
            break;
        lw_log_warn("relay", "relaying an event failed: %s", PQerrorMessage(r->send));
    }
    free(text);
}

/* ---- the listener thread ---- */

static void post(lw_relay *r, const char *text, bool resync, int64_t deaf_since)
{
    size_t len = text ? strlen(text) : 0;
    message *m = calloc(1, sizeof *m + len + 1);
    if (!m)
        return;
    m->resync = resync;
    m->deaf_since = deaf_since;
    if (text)
        memcpy(m->text, text, len + 1);
    h2o_multithread_send_message(&r->receiver, &m->super);
}

static PGconn *listen_connect(lw_relay *r)
{
    PGconn *c = PQconnectdb(r->conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        return NULL;
    }
    PGresult *res = PQexec(c, "LISTEN " CHANNEL);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

static void *listener(void *arg)
{
    lw_relay *r = arg;
    PGconn *c = NULL;
    int backoff = 50;
    bool first = true;
    int64_t deaf_since = 0;
    while (!r->stopping) {
        if (!c) {
            if (!(c = listen_connect(r))) {
                struct timespec ts = {backoff / 1000, (long)(backoff % 1000) * 1000000};
                nanosleep(&ts, NULL);
                backoff = backoff * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : backoff * 2;
                continue;
            }
            backoff = 50;
            if (!first)
                post(r, NULL, true, deaf_since); /* we were deaf for a while */
            first = false;
        }
        int fd = PQsocket(c);
        fd_set in;
        FD_ZERO(&in);
        FD_SET(fd, &in);
        struct timeval tv = {0, 200000}; /* wake up to notice stopping */
        int n = select(fd + 1, &in, NULL, NULL, &tv);
        if (n < 0 && errno != EINTR)
            goto lost;
        if (n > 0 && !PQconsumeInput(c))
            goto lost;
        PGnotify *note;
        while ((note = PQnotifies(c)) != NULL) {
            post(r, note->extra, false, 0);
            PQfreemem(note);
        }
        if (PQstatus(c) != CONNECTION_OK)
            goto lost;
        continue;
    lost:
        lw_log_warn("relay", "lost the PostgreSQL LISTEN connection; reconnecting");
        /* A second of margin: notifications sent just before we noticed. */
        deaf_since = lw_now_ms() - 1000;
        PQfinish(c);
        c = NULL;
    }
    PQfinish(c);
    return NULL;
}

lw_relay *lw_relay_start(lw_app *app, const char *conninfo)
{
    lw_relay *r = lw_calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->app = app;
    lw_random_id(r->node);
    if (!(r->conninfo = lw_strdup(conninfo))) {
        lw_free(r);
        return NULL;
    }
    if (!send_connect(r)) {
        lw_log_error("relay", "cannot connect to PostgreSQL for cross-node events");
        PQfinish(r->send);
        lw_free(r->conninfo);
        lw_free(r);
        return NULL;
    }
    h2o_context_t *ctx = app->h2o_ctx;
    h2o_multithread_register_receiver(ctx->queue, &r->receiver, on_messages);
    if (pthread_create(&r->thread, NULL, listener, r) != 0) {
        h2o_multithread_unregister_receiver(ctx->queue, &r->receiver);
        PQfinish(r->send);
        lw_free(r->conninfo);
        lw_free(r);
        return NULL;
    }
    lw_log_info("relay", "cross-node events through PostgreSQL LISTEN/NOTIFY (node %.8s)", r->node);
    return r;
}

void lw_relay_stop(lw_relay *r)
{
    if (!r)
        return;
    r->stopping = true;
    pthread_join(r->thread, NULL);
    h2o_multithread_unregister_receiver(((h2o_context_t *)r->app->h2o_ctx)->queue, &r->receiver);
    PQfinish(r->send);
    lw_wipe(r->conninfo, strlen(r->conninfo));
    lw_free(r->conninfo);
    lw_free(r);
}
