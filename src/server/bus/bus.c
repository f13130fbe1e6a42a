#include "bus.h"

#include <stdio.h>
#include <string.h>

#include "events.h"
#include "log.h"
#include "lw.h"
#include "map.h"

/* ---- intrusive lists: an anchor points at itself when empty, a node in no
 * list has next == NULL ---- */

static void list_init(lw_bus_link *anchor)
{
    anchor->prev = anchor->next = anchor;
}

static bool list_linked(const lw_bus_link *node)
{
    return node->next != NULL;
}

static bool list_empty(const lw_bus_link *anchor)
{
    return anchor->next == anchor;
}

static void list_insert(lw_bus_link *anchor, lw_bus_link *node)
{
    node->prev = anchor->prev;
    node->next = anchor;
    node->prev->next = node;
    node->next->prev = node;
}

static void list_unlink(lw_bus_link *node)
{
    node->next->prev = node->prev;
    node->prev->next = node->next;
    node->next = node->prev = NULL;
}

#define SUB_OF(link, member) ((lw_bus_sub *)((char *)(link)-offsetof(lw_bus_sub, member)))

typedef struct bucket {
    lw_bus_link socks;
} bucket;

struct lw_bus {
    lw_bus_peer peer; /* other nodes, when several share PostgreSQL (publish NULL: none) */
    lw_bus_hooks hooks;
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

static int join(lw_map *m, const char *key, lw_bus_link *node)
{
    bucket *bk = lw_map_get(m, key);
    if (!bk) {
        if (!(bk = lw_malloc(sizeof *bk)))
            return LW_ENOMEM;
        list_init(&bk->socks);
        if (lw_map_put(m, key, bk) != LW_OK) {
            lw_free(bk);
            return LW_ENOMEM;
        }
    }
    list_insert(&bk->socks, node);
    return LW_OK;
}

static void leave(lw_map *m, const char *key, lw_bus_link *node)
{
    if (!list_linked(node))
        return;
    list_unlink(node);
    bucket *bk = lw_map_get(m, key);
    if (bk && list_empty(&bk->socks))
        lw_free(lw_map_del(m, key));
}

static void make_key(char *dst, size_t cap, char kind, const char *id)
{
    snprintf(dst, cap, "%c:%s", kind, id);
}

static void set_keys(lw_bus_sub *sub, const char *primary_key, const char *account_key)
{
    lw_strlcpy(sub->primary_key, primary_key, sizeof sub->primary_key);
    lw_strlcpy(sub->account_key, account_key ? account_key : "", sizeof sub->account_key);
}

int lw_bus_subscribe_device(lw_bus *b, lw_bus_sub *sub, const char *device_id, const char *account_id)
{
    char pk[2 + LW_ID_STRLEN], ak[2 + LW_ID_STRLEN];
    make_key(pk, sizeof pk, 'd', device_id);
    make_key(ak, sizeof ak, 'a', account_id);
    set_keys(sub, pk, ak);
    if (join(b->primary, pk, &sub->primary_link) != LW_OK)
        return LW_ENOMEM;
    if (join(b->account, ak, &sub->account_link) != LW_OK) {
        leave(b->primary, pk, &sub->primary_link);
        return LW_ENOMEM;
    }
    b->count++;
    return LW_OK;
}

int lw_bus_subscribe_link(lw_bus *b, lw_bus_sub *sub, const char *request_id)
{
    char pk[2 + LW_ID_STRLEN];
    make_key(pk, sizeof pk, 'l', request_id);
    set_keys(sub, pk, NULL);
    if (join(b->primary, pk, &sub->primary_link) != LW_OK)
        return LW_ENOMEM;
    b->count++;
    return LW_OK;
}

void lw_bus_unsubscribe(lw_bus *b, lw_bus_sub *sub)
{
    bool was = list_linked(&sub->primary_link);
    leave(b->primary, sub->primary_key, &sub->primary_link);
    leave(b->account, sub->account_key, &sub->account_link);
    if (was)
        b->count--;
}

/* Collects the sockets of a bucket into a new array: sending may close a
 * socket (unlinking it, and freeing the bucket with the last one), so the
 * list is taken before anything is sent. */
static lw_bus_sub **snapshot(lw_bus_link *anchor, bool account_links, const char *except, size_t *n)
{
    size_t count = 0;
    for (lw_bus_link *l = anchor->next; l != anchor; l = l->next)
        count++;
    *n = 0;
    lw_bus_sub **list = lw_malloc((count ? count : 1) * sizeof *list);
    if (!list)
        return NULL;
    for (lw_bus_link *l = anchor->next; l != anchor; l = l->next) {
        lw_bus_sub *sub = account_links ? SUB_OF(l, account_link) : SUB_OF(l, primary_link);
        if (except && strcmp(sub->primary_key, except) == 0)
            continue;
        list[(*n)++] = sub;
    }
    return list;
}

static void send_bucket_primary(lw_bus *b, const char *key, const char *text, size_t len)
{
    bucket *bk = lw_map_get(b->primary, key);
    if (!bk)
        return;
    size_t n;
    lw_bus_sub **list = snapshot(&bk->socks, false, NULL, &n);
    if (!list) {
        lw_log_error("bus", "out of memory: an event was not delivered");
        return;
    }
    for (size_t i = 0; i < n; i++)
        list[i]->ops->send(list[i], text, len);
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
    lw_bus_sub **list = snapshot(&bk->socks, true, except_device ? except : NULL, &count);
    if (!list) {
        lw_log_error("bus", "out of memory: an event was not delivered");
        free(text);
        return;
    }
    for (size_t i = 0; i < count; i++)
        list[i]->ops->send(list[i], text, len);
    lw_free(list);
    free(text);
}

static void close_bucket(lw_bus *b, const char *key, const char *text, size_t len, int code,
                         const char *reason)
{
    bucket *bk;
    /* Each close unlinks its socket from the bucket, and the last one frees it. */
    for (int guard = 0; guard < 1024 && (bk = lw_map_get(b->primary, key)) != NULL; guard++) {
        lw_bus_sub *sub = SUB_OF(bk->socks.next, primary_link);
        sub->ops->end(sub, text, len, code, reason);
    }
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
    json_t *ev = lw_event_session_ended(reason);
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
    lw_bus_sub **list;
    size_t n, cap;
} all_ctx;

static void collect_bucket(const char *key, void *value, void *arg)
{
    all_ctx *a = arg;
    bucket *bk = value;
    for (lw_bus_link *l = bk->socks.next; l != &bk->socks && a->n < a->cap; l = l->next)
        a->list[a->n++] = SUB_OF(l, primary_link);
}

void lw_bus_close_all(lw_bus *b, int code, const char *reason)
{
    all_ctx a = {lw_malloc((b->count ? b->count : 1) * sizeof(lw_bus_sub *)), 0, b->count};
    if (!a.list)
        return;
    lw_map_each(b->primary, collect_bucket, &a);
    for (size_t i = 0; i < a.n; i++)
        a.list[i]->ops->end(a.list[i], NULL, 0, code, reason);
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
        for (lw_bus_link *l = bk->socks.next; l != &bk->socks; l = l->next)
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

/* ---- publishing: this node's sockets, then the other nodes' ---- */

void lw_bus_set_peer(lw_bus *b, const lw_bus_peer *peer)
{
    b->peer = peer ? *peer : (lw_bus_peer){0};
}

static void publish(lw_bus *b, const char *op, const char *key, const char *except, const char *reason,
                    json_t *ev)
{
    if (b->peer.publish)
        b->peer.publish(b->peer.ctx, op, key, except, reason, ev);
}

void lw_bus_to_device(lw_bus *b, const char *device_id, json_t *ev)
{
    lw_bus_local_to_device(b, device_id, ev);
    publish(b, "dev", device_id, NULL, NULL, ev);
}

void lw_bus_to_account(lw_bus *b, const char *account_id, const char *except_device, json_t *ev)
{
    lw_bus_local_to_account(b, account_id, except_device, ev);
    publish(b, "acct", account_id, except_device, NULL, ev);
}

void lw_bus_to_link(lw_bus *b, const char *request_id, json_t *ev)
{
    lw_bus_local_to_link(b, request_id, ev);
    publish(b, "link", request_id, NULL, NULL, ev);
}

void lw_bus_end_device(lw_bus *b, const char *device_id, const char *reason)
{
    lw_bus_local_end_device(b, device_id, reason);
    publish(b, "end", device_id, NULL, reason, NULL);
}

void lw_bus_credential_replaced(lw_bus *b, const char *device_id)
{
    publish(b, "cred", device_id, NULL, NULL, NULL);
}

void lw_bus_flush(lw_bus *b)
{
    if (b->peer.flush)
        b->peer.flush(b->peer.ctx);
}

void lw_bus_close_link(lw_bus *b, const char *request_id)
{
    lw_bus_local_close_link(b, request_id);
    publish(b, "close_link", request_id, NULL, NULL, NULL);
}

/* ---- receiving: what the peer heard from the other nodes ---- */

void lw_bus_set_hooks(lw_bus *b, const lw_bus_hooks *hooks)
{
    b->hooks = hooks ? *hooks : (lw_bus_hooks){0};
}

void lw_bus_receive(lw_bus *b, const char *op, const char *key, const char *except, const char *reason,
                    json_t *ev)
{
    if (!op || !key)
        return;
    if (strcmp(op, "end") == 0 && reason) {
        if (b->hooks.forget)
            b->hooks.forget(b->hooks.ctx, key);
        lw_bus_local_end_device(b, key, reason);
    } else if (strcmp(op, "cred") == 0) {
        if (b->hooks.forget) /* its old credential stops working here too */
            b->hooks.forget(b->hooks.ctx, key);
    } else if (strcmp(op, "close_link") == 0) {
        lw_bus_local_close_link(b, key);
    } else if (ev && strcmp(op, "dev") == 0) {
        lw_bus_local_to_device(b, key, ev);
    } else if (ev && strcmp(op, "acct") == 0) {
        lw_bus_local_to_account(b, key, except, ev);
    } else if (ev && strcmp(op, "link") == 0) {
        if (b->hooks.complete_link_event)
            b->hooks.complete_link_event(b->hooks.ctx, ev);
        lw_bus_local_to_link(b, key, ev);
    }
}

void lw_bus_settle(lw_bus *b)
{
    if (b->hooks.settle)
        b->hooks.settle(b->hooks.ctx);
}

int lw_bus_resync(lw_bus *b)
{
    return b->hooks.resync ? b->hooks.resync(b->hooks.ctx) : LW_OK;
}

void lw_bus_replay(lw_bus *b, int64_t since)
{
    if (b->hooks.replay)
        b->hooks.replay(b->hooks.ctx, since);
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

/* ---- the events port of the domain (events.h), implemented by the bus ---- */

static void ev_to_device(void *ctx, const char *device_id, json_t *ev)
{
    lw_bus_to_device(ctx, device_id, ev);
}

static void ev_to_account(void *ctx, const char *account_id, const char *except_device, json_t *ev)
{
    lw_bus_to_account(ctx, account_id, except_device, ev);
}

static void ev_to_link(void *ctx, const char *request_id, json_t *ev)
{
    lw_bus_to_link(ctx, request_id, ev);
}

static void ev_end_device(void *ctx, const char *device_id, const char *reason)
{
    lw_bus_end_device(ctx, device_id, reason);
}

static void ev_close_link(void *ctx, const char *request_id)
{
    lw_bus_close_link(ctx, request_id);
}

static void ev_credential_replaced(void *ctx, const char *device_id)
{
    lw_bus_credential_replaced(ctx, device_id);
}

static void ev_flush(void *ctx)
{
    lw_bus_flush(ctx);
}

static size_t ev_devices_here(void *ctx, char (**out)[LW_ID_STRLEN])
{
    return lw_bus_devices(ctx, out);
}

static void ev_end_device_here(void *ctx, const char *device_id, const char *reason)
{
    lw_bus_local_end_device(ctx, device_id, reason);
}

lw_events lw_bus_events(lw_bus *b)
{
    return (lw_events){.ctx = b,
                       .to_device = ev_to_device,
                       .to_account = ev_to_account,
                       .to_link = ev_to_link,
                       .end_device = ev_end_device,
                       .close_link = ev_close_link,
                       .credential_replaced = ev_credential_replaced,
                       .flush = ev_flush,
                       .devices_here = ev_devices_here,
                       .end_device_here = ev_end_device_here};
}
