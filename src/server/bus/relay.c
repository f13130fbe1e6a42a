#include "relay.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#include <h2o.h>
#include <libpq-fe.h>

#include "bus.h"
#include "fiber.h"
#include "log.h"
#include "lw.h"
#include "metrics.h"

#define CHANNEL "linkward"
#define RECONNECT_MAX_MS 2000
/* A connection that died without a word (a NAT or firewall dropping it, a
 * server host that vanished) would look idle forever to a listener that only
 * reads: the heartbeat (LW_RELAY_HEARTBEAT_MS, relay.h) is also a query, and
 * the connection is given up when its answer does not come in time. A silent
 * connection is so noticed within HEARTBEAT + CHECK_TIMEOUT; the node stops
 * trusting its cache sooner, after LW_RELAY_HEALTHY_MS. */
#define LISTEN_CHECK_TIMEOUT_MS 3000
/* Heartbeats answered but never heard back for this long: LISTEN does not
 * work through this connection (a transaction pooler): said once. */
#define LISTEN_DEAF_WARN_MS 10000
#define LISTEN_POLL_MS 200 /* how often the thread looks at `stopping` */
/* Failed LISTEN attempts logged one by one, then only every Nth (a server
 * down for an hour must not write 1,800 lines). */
#define LISTEN_LOG_FIRST 5
#define LISTEN_LOG_EVERY 30
/* A resynchronisation that could not read the store is tried again. */
#define RESYNC_RETRY_MS 1000
#define RESYNC_RETRIES 60
/* Device ids per batched "ends" notice: 256 ids of 22 characters are 6.4 KB
 * of JSON, well under LW_RELAY_PAYLOAD_MAX with the envelope. */
#define END_BATCH 256

typedef enum { MSG_NOTE, MSG_RESYNC, MSG_HEARTBEAT } msg_kind;

typedef struct message {
    h2o_multithread_message_t super;
    msg_kind kind;
    bool first;         /* resync: after the first LISTEN (nothing was missed, nothing to say) */
    int64_t deaf_since; /* resync: when the listener last heard from the server */
    uint32_t conn;      /* heartbeat: the connection it came through */
    int64_t sent_at;    /* heartbeat: when it was sent (lw_mono_ms) */
    char text[];
} message;

struct lw_relay {
    lw_bus *bus;             /* where what the other nodes publish is delivered */
    h2o_context_t *ctx;      /* the loop, and the queue the listener thread posts to */
    char node[LW_ID_STRLEN]; /* this node's id: our own notifications come back to us */
    char *conninfo;          /* publishing: may go through a transaction pooler */
    char *listen_conninfo;   /* LISTEN: needs a session of its own */
    PGconn *send;            /* under send_mu: the loop, or a store worker for a fiber (notify) */
    /* What the listener handed over, applied in order by one fiber at a time
     * (on PostgreSQL what a notification causes may read or write the store:
     * a resync, a replay, a last-active write): the loop serves requests
     * meanwhile, and a heartbeat is applied only after every notification
     * before it, which is what vouching for the cache rests on. */
    h2o_linklist_t pending;
    bool delivering;
    lw_fibers *fibers;
    pthread_mutex_t send_mu;
    pthread_t thread;
    volatile bool stopping;
    h2o_multithread_receiver_t receiver;
    /* "end" notices held back so that ending many devices costs one NOTIFY
     * per END_BATCH devices, not one per device; sent before any other
     * notice (order is kept) or on the loop's next turn at the latest. */
    char end_reason[LW_REASON_MAX];
    char end_ids[END_BATCH][LW_ID_STRLEN];
    size_t end_n;
    h2o_timeout_t now;
    h2o_timeout_entry_t flush_entry;
    /* A resynchronisation that failed, retried on the loop. */
    h2o_timeout_t retry_after;
    h2o_timeout_entry_t resync_entry;
    int resync_tries;
    /* Health (relay.h). conn numbers the listener's connections: the thread
     * moves it on as soon as it loses one, which makes the node unhealthy at
     * once. heard_* are the last heartbeat the loop handled (loop only). */
    _Atomic uint32_t conn;
    uint32_t heard_conn;
    int64_t heard_at;
    char hb_channel[16 + LW_ID_STRLEN]; /* "linkward_hb_<node>": this node's heartbeats only */
};

bool lw_relay_healthy(const lw_relay *r, int64_t now)
{
    return r && lw_relay_heard_recently(r->heard_conn, atomic_load(&r->conn), r->heard_at, now);
}

/* The parameters store_pg.c's connections use, so that a dead peer is
 * noticed the same way (TCP keepalives) and a connect cannot hang (a timeout);
 * the URL (dbname) comes after them and may override them. name tells the
 * connections apart in pg_stat_activity (linkward-notify, linkward-listen). */
static PGconn *relay_connect(const char *conninfo, const char *name)
{
    static const char *const keys[] = {"connect_timeout",
                                       "keepalives_idle",
                                       "keepalives_interval",
                                       "keepalives_count",
                                       "fallback_application_name",
                                       "dbname",
                                       NULL};
    const char *vals[] = {"10", "30", "10", "3", name, conninfo, NULL};
    return PQconnectdbParams(keys, vals, 1);
}

/* A one-line libpq error message (they end with a newline). */
static void pq_error(PGconn *c, char *dst, size_t cap)
{
    lw_strlcpy(dst, c ? PQerrorMessage(c) : "out of memory", cap);
    size_t n = strlen(dst);
    while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == '\r'))
        dst[--n] = '\0';
    for (char *p = dst; *p; p++)
        if (*p == '\n')
            *p = ' ';
}

/* ---- the event loop side ---- */

static void resync(lw_relay *r);

static void apply(lw_relay *r, const char *text)
{
    json_t *m = json_loads(text, 0, NULL);
    const char *node = json_string_value(json_object_get(m, "n"));
    const char *op = json_string_value(json_object_get(m, "op"));
    const char *key = json_string_value(json_object_get(m, "k"));
    const char *reason = json_string_value(json_object_get(m, "r"));
    if (!m || !node || !op || strcmp(node, r->node) == 0) {
        json_decref(m);
        return;
    }
    if (strcmp(op, "ends") == 0 && reason) {
        /* A batch of ended devices (one sender's call). */
        json_t *ids = json_object_get(m, "ids");
        size_t i;
        json_t *id;
        json_array_foreach(ids, i, id)
        {
            const char *device = json_string_value(id);
            if (device)
                lw_bus_receive(r->bus, "end", device, NULL, reason, NULL);
        }
        json_decref(m);
        return;
    }
    if (!key) {
        json_decref(m);
        return;
    }
    if (strcmp(op, "resync") == 0) {
        lw_log_warn("relay", "node %.8s changed sessions before it could tell: resynchronising", node);
        resync(r);
    } else {
        /* "end" (one device: what nodes before batching send), "cred",
         * "close_link", "dev", "acct", "link": the bus knows what each means. */
        lw_bus_receive(r->bus, op, key, json_string_value(json_object_get(m, "x")), reason,
                       json_object_get(m, "e"));
    }
    json_decref(m);
}

static void resync(lw_relay *r)
{
    int rc = lw_bus_resync(r->bus);
    if (rc == LW_OK) {
        r->resync_tries = 0;
        return;
    }
    /* Some sockets could not be checked (the store is not answering yet):
     * they stay open until a later try reads their sessions. */
    if (++r->resync_tries > RESYNC_RETRIES) {
        lw_log_error("relay", "gave up resynchronising after %d tries (%d)", RESYNC_RETRIES, rc);
        r->resync_tries = 0;
        return;
    }
    lw_log_warn("relay", "resynchronising could not read every session (%d); trying again in %d ms", rc,
                RESYNC_RETRY_MS);
    if (!h2o_timeout_is_linked(&r->resync_entry))
        h2o_timeout_link(r->ctx->loop, &r->retry_after, &r->resync_entry);
}

static void on_resync_retry(h2o_timeout_entry_t *entry)
{
    resync(H2O_STRUCT_FROM_MEMBER(lw_relay, resync_entry, entry));
}

static void deliver(void *arg)
{
    lw_relay *r = arg;
    h2o_linklist_t *messages = &r->pending;
    while (!h2o_linklist_is_empty(messages)) {
        message *m = H2O_STRUCT_FROM_MEMBER(message, super.link, messages->next);
        h2o_linklist_unlink(&m->super.link);
        if (m->kind == MSG_HEARTBEAT) {
            /* Everything committed before m->sent_at was handled above (or in
             * an earlier batch): PostgreSQL delivers in commit order. */
            if (m->conn == atomic_load(&r->conn) && m->sent_at > r->heard_at) {
                r->heard_conn = m->conn;
                r->heard_at = m->sent_at;
            }
        } else if (m->kind == MSG_RESYNC) {
            /* Also after the first LISTEN: requests may have filled the cache
             * before it, when nothing could be heard yet. */
            if (!m->first)
                lw_log_warn("relay", "reconnected: notifications may have been missed; resynchronising");
            r->resync_tries = 0;
            resync(r);
            if (!m->first) /* alerts raised on other nodes while we could not hear them */
                lw_bus_replay(r->bus, m->deaf_since);
        } else {
            apply(r, m->text);
            lw_bus_settle(r->bus); /* a batch's last-active writes, once every credential dropped */
        }
        free(m);
    }
    r->delivering = false;
}

static void on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    lw_relay *r = H2O_STRUCT_FROM_MEMBER(lw_relay, receiver, receiver);
    h2o_linklist_insert_list(&r->pending, messages);
    if (r->delivering)
        return; /* the fiber delivering the earlier ones takes these after them */
    r->delivering = true;
    if (lw_fiber_start(r->fibers, deliver, r) != LW_OK)
        deliver(r);
}

void lw_relay_set_fibers(lw_relay *r, lw_fibers *fibers)
{
    r->fibers = fibers;
}

static bool send_connect(lw_relay *r)
{
    if (r->send && PQstatus(r->send) == CONNECTION_OK)
        return true;
    if (r->send)
        PQreset(r->send);
    else
        r->send = relay_connect(r->conninfo, "linkward-notify");
    return r->send && PQstatus(r->send) == CONNECTION_OK;
}

/* One NOTIFY, tried twice (the first may find the connection dead and
 * reconnect). text is at most LW_RELAY_PAYLOAD_MAX bytes. On a fiber it runs
 * on a store worker (fiber.h), the fiber waiting: what was published leaves
 * before the request goes on (and so before its answer), and the loop serves
 * others meanwhile. */
typedef struct notify_call {
    lw_relay *r;
    const char *text, *op;
} notify_call;

static int notify_run(void *arg)
{
    notify_call *c = arg;
    lw_relay *r = c->r;
    char err[256];
    int rc = LW_ESTORE;
    pthread_mutex_lock(&r->send_mu);
    for (int attempt = 0; attempt < 2 && rc != LW_OK; attempt++) {
        if (!send_connect(r)) {
            pq_error(r->send, err, sizeof err);
            lw_log_error("relay", "cannot reach PostgreSQL to relay an event (%s): %s", c->op, err);
            continue;
        }
        const char *params[1] = {c->text};
        PGresult *res =
            PQexecParams(r->send, "SELECT pg_notify('" CHANNEL "', $1)", 1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            rc = LW_OK;
        } else {
            pq_error(r->send, err, sizeof err);
            lw_log_warn("relay", "relaying an event failed (%s): %s", c->op, err);
        }
        PQclear(res);
    }
    pthread_mutex_unlock(&r->send_mu);
    return rc;
}

static void notify(lw_relay *r, const char *text, const char *op)
{
    notify_call c = {r, text, op};
    if (lw_offload(notify_run, &c) == LW_OK) {
        char label[32];
        snprintf(label, sizeof label, "op=\"%s\"", op); /* fixed names: dev, acct, link, ends, … */
        lw_metrics_inc("linkward_relay_notifications_total", label);
    }
}

/* Sends the "end" notices held back, as one "ends" notice. */
static void flush_ends(lw_relay *r)
{
    if (h2o_timeout_is_linked(&r->flush_entry))
        h2o_timeout_unlink(&r->flush_entry);
    if (r->end_n == 0)
        return;
    json_t *ids = json_array();
    for (size_t i = 0; ids && i < r->end_n; i++)
        json_array_append_new(ids, json_string(r->end_ids[i]));
    size_t n = r->end_n;
    r->end_n = 0;
    json_t *m =
        ids ? json_pack("{s:s, s:s, s:s, s:o}", "n", r->node, "op", "ends", "r", r->end_reason, "ids", ids)
            : NULL;
    char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;
    json_decref(m);
    if (!text) {
        lw_log_error("relay", "out of memory: %zu ended devices were not relayed", n);
        return;
    }
    notify(r, text, "ends");
    free(text);
}

static void on_flush(h2o_timeout_entry_t *entry)
{
    flush_ends(H2O_STRUCT_FROM_MEMBER(lw_relay, flush_entry, entry));
}

static void hold_end(lw_relay *r, const char *device_id, const char *reason)
{
    if (r->end_n > 0 && (r->end_n == END_BATCH || strcmp(r->end_reason, reason) != 0))
        flush_ends(r);
    if (strlen(reason) >= sizeof r->end_reason || strlen(device_id) >= LW_ID_STRLEN) {
        lw_log_error("relay", "an ended device with an oversized id or reason was not relayed");
        return;
    }
    lw_strlcpy(r->end_reason, reason, sizeof r->end_reason);
    lw_strlcpy(r->end_ids[r->end_n++], device_id, LW_ID_STRLEN);
    if (!h2o_timeout_is_linked(&r->flush_entry))
        h2o_timeout_link(r->ctx->loop, &r->now, &r->flush_entry);
}

void lw_relay_flush(lw_relay *r)
{
    if (r)
        flush_ends(r);
}

void lw_relay_publish_resync(lw_relay *r)
{
    lw_relay_publish(r, "resync", "all", NULL, NULL, NULL);
}

void lw_relay_publish(lw_relay *r, const char *op, const char *key, const char *except, const char *reason,
                      json_t *ev)
{
    if (!r)
        return;
    if (strcmp(op, "end") == 0 && reason) {
        hold_end(r, key, reason);
        return;
    }
    /* What was ended before this event is told before it (a logout-all's
     * companions hear their own session.ended before their siblings'
     * device.ended, on every node as on this one). */
    flush_ends(r);
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
    notify(r, text, op);
    free(text);
}

/* ---- the listener thread ---- */

static message *new_message(msg_kind kind, const char *text)
{
    size_t len = text ? strlen(text) : 0;
    message *m = calloc(1, sizeof *m + len + 1);
    if (!m)
        return NULL;
    m->kind = kind;
    if (text)
        memcpy(m->text, text, len + 1);
    return m;
}

static void post(lw_relay *r, message *m)
{
    if (m)
        h2o_multithread_send_message(&r->receiver, &m->super);
}

/* Sends a heartbeat through the listening connection c, numbered conn: a
 * NOTIFY on this node's own channel with conn and the time it leaves. */
static bool send_heartbeat(lw_relay *r, PGconn *c, uint32_t conn, int64_t now)
{
    char payload[48];
    int n = snprintf(payload, sizeof payload, "%u %lld", (unsigned)conn, (long long)now);
    if (n < 0 || (size_t)n >= sizeof payload)
        return false;
    const char *params[2] = {r->hb_channel, payload};
    return PQsendQueryParams(c, "SELECT pg_notify($1, $2)", 2, NULL, params, NULL, NULL, 0) == 1;
}

/* A heartbeat heard back: "<conn> <sent_at>", both decimal. false when the
 * payload is not one. */
static bool parse_heartbeat(const char *text, uint32_t *conn, int64_t *sent_at)
{
    char *end;
    errno = 0;
    unsigned long long c = strtoull(text, &end, 10);
    if (errno || end == text || *end != ' ' || c > UINT32_MAX)
        return false;
    const char *t = end + 1;
    long long at = strtoll(t, &end, 10);
    if (errno || end == t || *end != '\0' || at <= 0)
        return false;
    *conn = (uint32_t)c;
    *sent_at = at;
    return true;
}

/* A connection listening on the channel, or NULL with the reason in err. */
static PGconn *listen_connect(lw_relay *r, char *err, size_t cap)
{
    /* Named with the node's id, so that its backend can be told apart in
     * pg_stat_activity ("linkward-listen AbCdEfGh…"). */
    char name[32 + LW_ID_STRLEN];
    snprintf(name, sizeof name, "linkward-listen %s", r->node);
    PGconn *c = relay_connect(r->listen_conninfo, name);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        pq_error(c, err, cap);
        PQfinish(c);
        return NULL;
    }
    /* The node id is base64url: safe between double quotes. */
    char sql[64 + sizeof r->hb_channel];
    snprintf(sql, sizeof sql, "LISTEN " CHANNEL "; LISTEN \"%s\"", r->hb_channel);
    PGresult *res = PQexec(c, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok) {
        pq_error(c, err, cap);
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Sleeps ms in slices, so that stopping is not held up by a backoff. */
static void nap(lw_relay *r, int ms)
{
    for (int left = ms, i = 0; left > 0 && !r->stopping && i < 1000; i++) {
        int slice = left < LISTEN_POLL_MS ? left : LISTEN_POLL_MS;
        struct timespec ts = {slice / 1000, (long)(slice % 1000) * 1000000};
        nanosleep(&ts, NULL);
        left -= slice;
    }
}

/* Reads what arrived: notifications are posted to the loop, in the order
 * they came (heartbeats included: their place in that order is what they
 * prove); the answer to an outstanding heartbeat clears *check_sent, and one
 * of ours heard back sets *hb_heard. false when the connection is broken (why
 * in err). */
static bool listen_read(lw_relay *r, PGconn *c, int64_t *check_sent, int64_t *hb_heard, char *err, size_t cap)
{
    if (!PQconsumeInput(c)) {
        pq_error(c, err, cap);
        return false;
    }
    while (*check_sent && !PQisBusy(c)) {
        PGresult *res = PQgetResult(c);
        if (!res) {
            *check_sent = 0;
            break;
        }
        bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
        PQclear(res);
        if (!ok) {
            pq_error(c, err, cap);
            return false;
        }
    }
    PGnotify *note;
    while ((note = PQnotifies(c)) != NULL) {
        if (strcmp(note->relname, r->hb_channel) == 0) {
            uint32_t conn;
            int64_t sent_at;
            /* Only our own backend sends on this channel. */
            if (note->be_pid == PQbackendPID(c) && parse_heartbeat(note->extra, &conn, &sent_at)) {
                message *m = new_message(MSG_HEARTBEAT, NULL);
                if (m) {
                    m->conn = conn;
                    m->sent_at = sent_at;
                }
                post(r, m);
                *hb_heard = lw_mono_ms();
            }
        } else {
            post(r, new_message(MSG_NOTE, note->extra));
        }
        PQfreemem(note);
    }
    if (PQstatus(c) != CONNECTION_OK) {
        pq_error(c, err, cap);
        return false;
    }
    return true;
}

static void *listener(void *arg)
{
    lw_relay *r = arg;
    PGconn *c = NULL;
    int backoff = 50, failures = 0;
    bool first = true, deaf_warned = false;
    int64_t deaf_since = 0, lost_at = 0, last_heard = 0, check_sent = 0;
    int64_t hb_sent = 0, hb_heard = 0, connected_at = 0; /* lw_relay_clock_ms */
    uint32_t conn = atomic_load(&r->conn);
    char err[256];
    while (!r->stopping) {
        if (!c) {
            if (!(c = listen_connect(r, err, sizeof err))) {
                failures++;
                if (failures <= LISTEN_LOG_FIRST || failures % LISTEN_LOG_EVERY == 0)
                    lw_log_warn("relay", "LISTEN failed (attempt %d): %s; retrying in %d ms", failures, err,
                                backoff);
                nap(r, backoff);
                backoff = backoff * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : backoff * 2;
                continue;
            }
            if (!first)
                lw_log_info("relay", "LISTEN re-established after %d failed attempts, %lld ms without it",
                            failures, (long long)(lw_now_ms() - lost_at));
            backoff = 50;
            failures = 0;
            last_heard = lw_now_ms();
            check_sent = 0;
            hb_sent = 0;
            hb_heard = connected_at = lw_mono_ms();
            deaf_warned = false;
            /* Before any heartbeat of this connection, so that the loop
             * forgets what it may have missed before it trusts its cache
             * again (messages reach it in order). */
            message *m = new_message(MSG_RESYNC, NULL);
            if (m) {
                m->first = first;
                m->deaf_since = deaf_since;
            }
            post(r, m);
            first = false;
        }
        int64_t mono = lw_mono_ms();
        int wait = LISTEN_POLL_MS; /* wake up to notice stopping */
        if (!check_sent) {
            int64_t due = hb_sent + LW_RELAY_HEARTBEAT_MS - mono;
            wait = due <= 0 ? 0 : due < wait ? (int)due : wait;
        }
        int fd = PQsocket(c);
        fd_set in;
        FD_ZERO(&in);
        FD_SET(fd, &in);
        struct timeval tv = {0, wait * 1000};
        int n = select(fd + 1, &in, NULL, NULL, &tv);
        int64_t now = lw_now_ms();
        mono = lw_mono_ms();
        if (n < 0 && errno != EINTR) {
            lw_strlcpy(err, strerror(errno), sizeof err);
            goto lost;
        }
        if (n > 0) {
            if (!listen_read(r, c, &check_sent, &hb_heard, err, sizeof err))
                goto lost;
            last_heard = now;
        }
        if (check_sent && mono - check_sent > LISTEN_CHECK_TIMEOUT_MS) {
            snprintf(err, sizeof err, "no answer to a check within %d ms", LISTEN_CHECK_TIMEOUT_MS);
            goto lost;
        }
        if (!check_sent && mono - hb_sent >= LW_RELAY_HEARTBEAT_MS) {
            if (!send_heartbeat(r, c, conn, mono)) {
                pq_error(c, err, sizeof err);
                goto lost;
            }
            check_sent = hb_sent = mono;
        }
        if (!deaf_warned && mono - hb_heard > LISTEN_DEAF_WARN_MS &&
            mono - connected_at > LISTEN_DEAF_WARN_MS) {
            lw_log_warn("relay",
                        "heartbeats are answered but not heard back: LISTEN does not work through this "
                        "connection (a transaction pooler? see --db-listen); every request reads the store");
            deaf_warned = true;
        }
        continue;
    lost:
        /* Unhealthy from now on, before anything else: the loop stops
         * trusting its cache on its very next request. */
        conn = atomic_fetch_add(&r->conn, 1) + 1;
        lw_log_warn("relay", "lost the PostgreSQL LISTEN connection (%s); reconnecting", err);
        /* Notifications since we last heard from the server may be lost; a
         * second of margin for those sent just before. */
        lost_at = now;
        deaf_since = last_heard - 1000;
        PQfinish(c);
        c = NULL;
    }
    PQfinish(c);
    return NULL;
}

lw_relay *lw_relay_start(lw_bus *bus, h2o_context_t *ctx, const char *conninfo, const char *listen_conninfo)
{
    lw_relay *r = lw_calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->bus = bus;
    r->ctx = ctx;
    lw_random_id(r->node);
    snprintf(r->hb_channel, sizeof r->hb_channel, "linkward_hb_%s", r->node);
    atomic_init(&r->conn, 1); /* heard_conn 0: unhealthy until the first heartbeat */
    pthread_mutex_init(&r->send_mu, NULL);
    h2o_linklist_init_anchor(&r->pending);
    r->conninfo = lw_strdup(conninfo);
    r->listen_conninfo = lw_strdup(listen_conninfo && listen_conninfo[0] ? listen_conninfo : conninfo);
    if (!r->conninfo || !r->listen_conninfo)
        goto fail;
    if (!send_connect(r)) {
        char err[256];
        pq_error(r->send, err, sizeof err);
        lw_log_error("relay", "cannot connect to PostgreSQL for cross-node events: %s", err);
        goto fail;
    }
    h2o_timeout_init(ctx->loop, &r->now, 0);
    h2o_timeout_init(ctx->loop, &r->retry_after, RESYNC_RETRY_MS);
    r->flush_entry.cb = on_flush;
    r->resync_entry.cb = on_resync_retry;
    h2o_multithread_register_receiver(ctx->queue, &r->receiver, on_messages);
    if (pthread_create(&r->thread, NULL, listener, r) != 0) {
        lw_log_error("relay", "cannot start the listener thread");
        h2o_multithread_unregister_receiver(ctx->queue, &r->receiver);
        goto fail;
    }
    lw_log_info("relay", "cross-node events through PostgreSQL LISTEN/NOTIFY (node %s%s)", r->node,
                strcmp(r->conninfo, r->listen_conninfo) != 0 ? ", LISTEN through --db-listen" : "");
    return r;
fail:
    PQfinish(r->send);
    pthread_mutex_destroy(&r->send_mu);
    if (r->conninfo)
        lw_wipe(r->conninfo, strlen(r->conninfo));
    if (r->listen_conninfo)
        lw_wipe(r->listen_conninfo, strlen(r->listen_conninfo));
    lw_free(r->conninfo);
    lw_free(r->listen_conninfo);
    lw_free(r);
    return NULL;
}

void lw_relay_stop(lw_relay *r)
{
    if (!r)
        return;
    flush_ends(r);
    if (h2o_timeout_is_linked(&r->resync_entry))
        h2o_timeout_unlink(&r->resync_entry);
    r->stopping = true;
    pthread_join(r->thread, NULL);
    /* Posted by the listener before it was joined, not delivered yet: only
     * this thread (the loop's) reads the queue now, so they are taken back
     * without a lock (h2o refuses to unregister a receiver with messages). */
    while (!h2o_linklist_is_empty(&r->receiver._messages)) {
        message *m = H2O_STRUCT_FROM_MEMBER(message, super.link, r->receiver._messages.next);
        h2o_linklist_unlink(&m->super.link);
        free(m);
    }
    h2o_multithread_unregister_receiver(r->ctx->queue, &r->receiver);
    while (!h2o_linklist_is_empty(&r->pending)) { /* handed over, never applied: the node stops */
        message *m = H2O_STRUCT_FROM_MEMBER(message, super.link, r->pending.next);
        h2o_linklist_unlink(&m->super.link);
        free(m);
    }
    PQfinish(r->send);
    pthread_mutex_destroy(&r->send_mu);
    lw_wipe(r->conninfo, strlen(r->conninfo));
    lw_wipe(r->listen_conninfo, strlen(r->listen_conninfo));
    lw_free(r->conninfo);
    lw_free(r->listen_conninfo);
    lw_free(r);
}

static void peer_publish(void *ctx, const char *op, const char *key, const char *except, const char *reason,
                         json_t *ev)
{
    lw_relay_publish(ctx, op, key, except, reason, ev);
}

static void peer_flush(void *ctx)
{
    lw_relay_flush(ctx);
}

lw_bus_peer lw_relay_peer(lw_relay *r)
{
    return (lw_bus_peer){.ctx = r, .publish = peer_publish, .flush = peer_flush};
}
