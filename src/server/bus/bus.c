#include "bus.h"

#include <stdio.h>
#include <string.h>

#include <h2o.h>

#include "log.h"
#include "relay.h"
#include "lw.h"
#include "map.h"
#include "ws.h"

void lw_ws_set_keys(lw_ws *ws, const char *primary_key, const char *account_key);

typedef struct bucket {
    h2o_linklist_t socks;
} bucket;

struct lw_bus {
    lw_relay *relay; /* other nodes, when several share PostgreSQL */
    lw_map *primary; /* "d:<device id>" or "l:<request id>" -> bucket (linked via primary_link) */
    lw_map *account; /* "a:<account id>" -> bucket (linked via account_link) */
    size_t count;
    /* The last session.ended text built: a logout-all tells 1,000 devices the
     * same thing, so it is serialised once, not 1,000 times. */
    char end_reason[LW_REASON_MAX];
    char *end_text;
    size_t end_len;
};

lw_bus *lw_bus_new(void)
{
    lw_bus *b = lw_calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->primary = lw_map_new();
    b->account = lw_map_new();
    if (!b->primary || !b->account) {
        lw_bus_free(b);
        return NULL;
    }
    return b;
}

static void free_bucket(const char *key, void *value, void *arg)
{
    lw_free(value);
}

void lw_bus_free(lw_bus *b)
{
    if (!b)
        return;
    if (b->primary) {
        lw_map_each(b->primary, free_bucket, NULL);
        lw_map_free(b->primary);
    }
    if (b->account) {
        lw_map_each(b->account, free_bucket, NULL);
        lw_map_free(b->account);
    }
    free(b->end_text);
    lw_free(b);
}

static int join(lw_map *m, const char *key, h2o_linklist_t *node)
{
    bucket *bk = lw_map_get(m, key);
    if (!bk) {
        if (!(bk = lw_malloc(sizeof *bk)))
            return LW_ENOMEM;
        h2o_linklist_init_anchor(&bk->socks);
        if (lw_map_put(m, key, bk) != LW_OK) {
            lw_free(bk);
            return LW_ENOMEM;
        }
    }
    h2o_linklist_insert(&bk->socks, node);
    return LW_OK;
}

static void leave(lw_map *m, const char *key, h2o_linklist_t *node)
{
    if (!h2o_linklist_is_linked(node))
        return;
    h2o_linklist_unlink(node);
    bucket *bk = lw_map_get(m, key);
    if (bk && h2o_linklist_is_empty(&bk->socks))
        lw_free(lw_map_del(m, key));
}

static void make_key(char *dst, size_t cap, char kind, const char *id)
{
    snprintf(dst, cap, "%c:%s", kind, id);
}

int lw_bus_subscribe_device(lw_bus *b, lw_ws *ws, const char *device_id, const char *account_id)
{
    char pk[2 + LW_ID_STRLEN], ak[2 + LW_ID_STRLEN];
    make_key(pk, sizeof pk, 'd', device_id);
    make_key(ak, sizeof ak, 'a', account_id);
    lw_ws_set_keys(ws, pk, ak);
    if (join(b->primary, pk, lw_ws_link_primary(ws)) != LW_OK)
        return LW_ENOMEM;
    if (join(b->account, ak, lw_ws_link_account(ws)) != LW_OK) {
        leave(b->primary, pk, lw_ws_link_primary(ws));
        return LW_ENOMEM;
    }
    b->count++;
    return LW_OK;
}

int lw_bus_subscribe_link(lw_bus *b, lw_ws *ws, const char *request_id)
{
    char pk[2 + LW_ID_STRLEN];
    make_key(pk, sizeof pk, 'l', request_id);
    lw_ws_set_keys(ws, pk, NULL);
    if (join(b->primary, pk, lw_ws_link_primary(ws)) != LW_OK)
        return LW_ENOMEM;
    b->count++;
    return LW_OK;
}

void lw_bus_unsubscribe(lw_bus *b, lw_ws *ws)
{
    bool was = h2o_linklist_is_linked(lw_ws_link_primary(ws));
    leave(b->primary, lw_ws_key_primary(ws), lw_ws_link_primary(ws));
    leave(b->account, lw_ws_key_account(ws), lw_ws_link_account(ws));
    if (was)
        b->count--;
}

/* Collects the sockets of a bucket into a new array: sending may close a
 * socket (unlinking it, and freeing the bucket with the last one), so the
 * list is taken before anything is sent. */
static lw_ws **snapshot(h2o_linklist_t *anchor, bool account_links, const char *except, size_t *n)
{
    size_t count = 0;
    for (h2o_linklist_t *l = anchor->next; l != anchor; l = l->next)
        count++;
    *n = 0;
    lw_ws **list = lw_malloc((count ? count : 1) * sizeof *list);
    if (!list)
        return NULL;
    for (h2o_linklist_t *l = anchor->next; l != anchor; l = l->next) {
        lw_ws *ws = account_links ? lw_ws_from_account(l) : lw_ws_from_primary(l);
        if (except && strcmp(lw_ws_key_primary(ws), except) == 0)
            continue;
        list[(*n)++] = ws;
    }
    return list;
}

static void send_bucket_primary(lw_bus *b, const char *key, const char *text, size_t len)
{
    bucket *bk = lw_map_get(b->primary, key);
    if (!bk)
        return;
    size_t n;
    lw_ws **list = snapshot(&bk->socks, false, NULL, &n);
    if (!list) {
        lw_log_error("bus", "out of memory: an event was not delivered");
        return;
    }
    for (size_t i = 0; i < n; i++)
        lw_ws_send(list[i], text, len);
    lw_free(list);
}

static char *dump(json_t *ev, size_t *len)
{
    char *text = json_dumps(ev, JSON_COMPACT);
    *len = text ? strlen(text) : 0;
    return text;
}

void lw_bus_local_to_device(lw_bus *b, const char *device_id, json_t *ev)
{
    char key[2 + LW_ID_STRLEN];
    make_key(key, sizeof key, 'd', device_id);
    size_t len;
    char *text = dump(ev, &len);
    if (text)
        send_bucket_primary(b, key, text, len);
    free(text);
}

void lw_bus_local_to_link(lw_bus *b, const char *request_id, json_t *ev)
{
    char key[2 + LW_ID_STRLEN];
    make_key(key, sizeof key, 'l', request_id);
    size_t len;
    char *text = dump(ev, &len);
    if (text)
        send_bucket_primary(b, key, text, len);
    free(text);
}

void lw_bus_local_to_account(lw_bus *b, const char *account_id, const char *except_device, json_t *ev)
{
    char key[2 + LW_ID_STRLEN], except[2 + LW_ID_STRLEN] = "";
    make_key(key, sizeof key, 'a', account_id);
    if (except_device)
        make_key(except, sizeof except, 'd', except_device);
    bucket *bk = lw_map_get(b->account, key);
    if (!bk)
        return;
    size_t len;
    char *text = dump(ev, &len);
    if (!text)
        return;
    size_t count;
    lw_ws **list = snapshot(&bk->socks, true, except_device ? except : NULL, &count);
    if (!list) {
        lw_log_error("bus", "out of memory: an event was not delivered");
        free(text);
        return;
    }
    for (size_t i = 0; i < count; i++)
        lw_ws_send(list[i], text, len);
    lw_free(list);
    free(text);
}

static void close_bucket(lw_bus *b, const char *key, const char *text, size_t len, int code,
                         const char *reason)
{
    bucket *bk;
    /* Each close unlinks its socket from the bucket, and the last one frees it. */
    for (int guard = 0; guard < 1024 && (bk = lw_map_get(b->primary, key)) != NULL; guard++)
        lw_ws_end(lw_ws_from_primary(bk->socks.next), text, len, code, reason);
}

/* {"event":"session.ended","reason":…,"message":…} for reason; owned by b. */
static const char *end_text(lw_bus *b, const char *reason, size_t *len)
{
    if (b->end_text && strcmp(b->end_reason, reason) == 0) {
        *len = b->end_len;
        return b->end_text;
    }
    free(b->end_text);
    b->end_text = NULL;
    json_t *ev = json_pack("{s:s, s:s, s:s}", "event", "session.ended", "reason", reason, "message",
                           lw_end_reason_message(reason));
    if (ev && strlen(reason) < sizeof b->end_reason) {
        b->end_text = dump(ev, &b->end_len);
        lw_strlcpy(b->end_reason, reason, sizeof b->end_reason);
    }
    json_decref(ev);
    *len = b->end_text ? b->end_len : 0;
    return b->end_text;
}

void lw_bus_local_end_device(lw_bus *b, const char *device_id, const char *reason)
{
    char key[2 + LW_ID_STRLEN];
    make_key(key, sizeof key, 'd', device_id);
    if (!lw_map_get(b->primary, key))
        return; /* no socket here: nothing to build or send */
    size_t len = 0;
    const char *text = end_text(b, reason, &len);
    close_bucket(b, key, text, len, 4001, reason);
}

void lw_bus_local_close_link(lw_bus *b, const char *request_id)
{
    char key[2 + LW_ID_STRLEN];
    make_key(key, sizeof key, 'l', request_id);
    close_bucket(b, key, NULL, 0, 1000, "link request finished");
}

typedef struct {
    lw_ws **list;
    size_t n, cap;
} all_ctx;

static void collect_bucket(const char *key, void *value, void *arg)
{
    all_ctx *a = arg;
    bucket *bk = value;
    for (h2o_linklist_t *l = bk->socks.next; l != &bk->socks && a->n < a->cap; l = l->next)
        a->list[a->n++] = lw_ws_from_primary(l);
}

void lw_bus_close_all(lw_bus *b, int code, const char *reason)
{
    all_ctx a = {lw_malloc((b->count ? b->count : 1) * sizeof(lw_ws *)), 0, b->count};
    if (!a.list)
        return;
    lw_map_each(b->primary, collect_bucket, &a);
    for (size_t i = 0; i < a.n; i++)
        lw_ws_close(a.list[i], code, reason);
    lw_free(a.list);
}

/* Sockets in the primary bucket of kind ('d' device, 'l' link request) and id. */
static size_t primary_sockets(const lw_bus *b, char kind, const char *id)
{
    char key[2 + LW_ID_STRLEN];
    make_key(key, sizeof key, kind, id);
    bucket *bk = lw_map_get(b->primary, key);
    size_t n = 0;
    if (bk)
        for (h2o_linklist_t *l = bk->socks.next; l != &bk->socks; l = l->next)
            n++;
    return n;
}

size_t lw_bus_device_sockets(const lw_bus *b, const char *device_id)
{
    return primary_sockets(b, 'd', device_id);
}

size_t lw_bus_link_sockets(const lw_bus *b, const char *request_id)
{
    return primary_sockets(b, 'l', request_id);
}

size_t lw_bus_count(const lw_bus *b)
{
    return b->count;
}

static const struct {
    const char *reason, *message;
} reasons[] = {
    {"logout", "You logged out on this device."},
    {"remote_logout", "You were logged out from your phone."},
    {"logout_all", "You were logged out from your phone (all devices were logged out)."},
    {"inactive", "You were logged out because this device was not used for a long time."},
    {"primary_inactive", "You were logged out because your phone was not used for 14 days."},
    {"max_age", "You were logged out because this session reached its maximum age."},
    {"token_theft", "You were logged out because this device's credential was used without its key."},
    {"account_reset", "You were logged out because the account was reset."},
    {"admin_logout", "You were logged out by the server's administrator."},
    {"account_deleted", "You were logged out because the account was deleted."},
    {"server_key_changed",
     "You were logged out because the server's key was replaced; link this device again."},
    {LW_END_RELINKED, "This device was linked again: this earlier session was replaced by the new one."},
};

const char *lw_end_reason_message(const char *reason)
{
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (strcmp(reasons[i].reason, reason) == 0)
            return reasons[i].message;
    return "Your session ended.";
}

bool lw_end_reason_valid(const char *reason)
{
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (strcmp(reasons[i].reason, reason) == 0)
            return true;
    return false;
}

/* ---- publishing: this node's sockets, then the other nodes' ---- */

void lw_bus_set_relay(lw_bus *b, lw_relay *relay)
{
    b->relay = relay;
}

void lw_bus_to_device(lw_bus *b, const char *device_id, json_t *ev)
{
    lw_bus_local_to_device(b, device_id, ev);
    lw_relay_publish(b->relay, "dev", device_id, NULL, NULL, ev);
}

void lw_bus_to_account(lw_bus *b, const char *account_id, const char *except_device, json_t *ev)
{
    lw_bus_local_to_account(b, account_id, except_device, ev);
    lw_relay_publish(b->relay, "acct", account_id, except_device, NULL, ev);
}

void lw_bus_to_link(lw_bus *b, const char *request_id, json_t *ev)
{
    lw_bus_local_to_link(b, request_id, ev);
    lw_relay_publish(b->relay, "link", request_id, NULL, NULL, ev);
}

void lw_bus_end_device(lw_bus *b, const char *device_id, const char *reason)
{
    lw_bus_local_end_device(b, device_id, reason);
    lw_relay_publish(b->relay, "end", device_id, NULL, reason, NULL);
}

void lw_bus_credential_replaced(lw_bus *b, const char *device_id)
{
    lw_relay_publish(b->relay, "cred", device_id, NULL, NULL, NULL);
}

void lw_bus_flush(lw_bus *b)
{
    lw_relay_flush(b->relay);
}

void lw_bus_close_link(lw_bus *b, const char *request_id)
{
    lw_bus_local_close_link(b, request_id);
    lw_relay_publish(b->relay, "close_link", request_id, NULL, NULL, NULL);
}

/* The ids behind the keys "<kind>:<id>" of map m (for a resynchronisation). */
typedef struct {
    char kind;
    char (*ids)[LW_ID_STRLEN];
    size_t n, cap;
} ids_ctx;

static void collect_id(const char *key, void *value, void *arg)
{
    ids_ctx *c = arg;
    if (key[0] == c->kind && key[1] == ':' && c->n < c->cap)
        lw_strlcpy(c->ids[c->n++], key + 2, LW_ID_STRLEN);
}

static size_t ids_of(lw_map *m, char kind, char (**out)[LW_ID_STRLEN])
{
    ids_ctx c = {kind, lw_malloc((lw_map_size(m) + 1) * LW_ID_STRLEN), 0, lw_map_size(m)};
    *out = c.ids;
    if (!c.ids)
        return 0;
    lw_map_each(m, collect_id, &c);
    return c.n;
}

size_t lw_bus_devices(const lw_bus *b, char (**out)[LW_ID_STRLEN])
{
    return ids_of(b->primary, 'd', out);
}

size_t lw_bus_accounts(const lw_bus *b, char (**out)[LW_ID_STRLEN])
{
    return ids_of(b->account, 'a', out);
}
