#include "link.h"

#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include <h2o.h>

#include "events.h"
#include "log.h"
#include "lw.h"
#include "map.h"
#include "metrics.h"
#include "payload.h"
#include "qr.h"

typedef struct live {
    lw_links *L;
    char id[LW_ID_STRLEN];
    int ref_index;
    int64_t ref_expires_at;
    int64_t expires_at;
    char code[LW_CODE_STRLEN];
    char ip[LW_IP_MAX]; /* who asked, for the per-address cap */
    char payload[LW_PAYLOAD_MAX];
    char *svg;
    h2o_timeout_entry_t timer;
} live;

/* Labels of the key refs are derived with, and of the message per ref. */
#define REF_KEY_LABEL "linkward QR ref key v1"
#define REF_MSG_MAX (LW_ID_STRLEN + 8)

struct lw_links {
    const lw_domain_deps *deps;
    uint8_t ref_key[LW_KEY_LEN]; /* derives every ref: see derive_ref */
    lw_map *live;                /* request id -> live */
    lw_map *per_ip;              /* address -> number of live requests, as a pointer-sized integer */
    h2o_timeout_t first, next;
};

static void on_timer(h2o_timeout_entry_t *entry);

lw_links *lw_links_new(const lw_domain_deps *deps)
{
    lw_links *L = lw_calloc(1, sizeof *L);
    if (!L)
        return NULL;
    L->deps = deps;
    lw_keyed_hash(L->ref_key, deps->hash_key, REF_KEY_LABEL, sizeof REF_KEY_LABEL - 1);
    if (!(L->live = lw_map_new()) || !(L->per_ip = lw_map_new())) {
        lw_map_free(L->live);
        lw_free(L);
        return NULL;
    }
    h2o_timeout_init(deps->loop, &L->first, (uint64_t)deps->cfg->qr_first_ttl_ms);
    h2o_timeout_init(deps->loop, &L->next, (uint64_t)deps->cfg->qr_next_ttl_ms);
    return L;
}

static void live_free(live *lv)
{
    if (h2o_timeout_is_linked(&lv->timer))
        h2o_timeout_unlink(&lv->timer);
    lw_free(lv->svg);
    lw_wipe(lv, sizeof *lv);
    lw_free(lv);
}

static void free_live(const char *key, void *value, void *arg)
{
    live_free(value);
}

void lw_links_free(lw_links *L)
{
    if (!L)
        return;
    lw_map_each(L->live, free_live, NULL);
    lw_map_free(L->live);
    lw_map_free(L->per_ip);
    lw_wipe(L->ref_key, sizeof L->ref_key);
    lw_free(L);
}

int64_t lw_links_remaining(const lw_link_request *r)
{
    int64_t left = r->expires_at - lw_now_ms();
    return left > 0 ? left : 0;
}

static int64_t secs(int64_t ms)
{
    return ms <= 0 ? 0 : (ms + 999) / 1000;
}

/* Ref number idx of request id. Refs are not drawn at random but derived
 * from the request id (128 random bits) and the index under a key only the
 * server's seed gives: unpredictable without that key, yet every node
 * sharing the seed can rebuild the current ref, and so the signed payload,
 * from what the store holds (the index). The store itself keeps only the
 * ref's keyed hash, as before. */
static void derive_ref(const lw_links *L, const char *id, int idx, uint8_t ref[LW_ID_BYTES])
{
    uint8_t msg[REF_MSG_MAX], full[LW_HASH_LEN];
    size_t n = strnlen(id, LW_ID_STRLEN);
    memcpy(msg, id, n);
    msg[n] = 0;
    for (int i = 0; i < 4; i++) /* the index, little-endian */
        msg[n + 1 + i] = (uint8_t)((uint32_t)idx >> (8 * i));
    lw_keyed_hash(full, L->ref_key, msg, n + 5);
    memcpy(ref, full, LW_ID_BYTES);
    lw_wipe(full, sizeof full);
}

void lw_links_ref_prepare(lw_links *L, const lw_link_request *r, int idx, lw_link_ref *f)
{
    memset(f, 0, sizeof *f);
    derive_ref(L, r->id, idx, f->ref);
    lw_fingerprint(f->fp, r->public_key);
    lw_strlcpy(f->origin, L->deps->cfg->public_origin, sizeof f->origin);
    f->server_sk = L->deps->server_sk;
    f->rc = LW_EINVAL;
}

void lw_links_ref_render(lw_link_ref *f)
{
    f->rc = lw_payload_make(f->payload, sizeof f->payload, f->origin, f->ref, f->fp, f->server_sk);
    if (f->rc == LW_OK && !(f->svg = lw_qr_svg(f->payload)))
        f->rc = LW_ENOMEM;
}

void lw_links_ref_clear(lw_link_ref *f)
{
    lw_free(f->svg);
    lw_wipe(f, sizeof *f);
}

/* Makes a rendered ref number idx the current one of r and lv (lv takes the
 * SVG); the caller stores the ref hash. */
static int apply_ref(lw_links *L, live *lv, lw_link_request *r, lw_link_ref *f, int idx, int64_t valid_ms)
{
    if (f->rc != LW_OK)
        return f->rc;
    lw_keyed_hash(r->ref_hash, L->deps->hash_key, f->ref, sizeof f->ref);
    r->ref_index = idx;
    r->ref_expires_at = lw_now_ms() + valid_ms;
    lv->ref_index = idx;
    lv->ref_expires_at = r->ref_expires_at;
    memcpy(lv->payload, f->payload, sizeof f->payload);
    lw_free(lv->svg);
    lv->svg = f->svg;
    f->svg = NULL;
    return LW_OK;
}

/* Makes ref number idx for r: a fresh random ref, its signed payload, its SVG.
 * Fills r's ref fields and lv's payload/svg; the caller stores the ref hash. */
static int make_ref(lw_links *L, live *lv, lw_link_request *r, int idx, int64_t valid_ms)
{
    lw_link_ref f;
    lw_links_ref_prepare(L, r, idx, &f);
    lw_links_ref_render(&f);
    int rc = apply_ref(L, lv, r, &f, idx, valid_ms);
    lw_links_ref_clear(&f);
    return rc;
}

static json_t *ref_event(const live *lv)
{
    int64_t now = lw_now_ms();
    return lw_event_link_ref(lv->payload, lv->svg, secs(lv->ref_expires_at - now),
                             secs(lv->expires_at - now));
}

static live *live_new(lw_links *L, const lw_link_request *r, const char *code)
{
    live *lv = lw_calloc(1, sizeof *lv);
    if (!lv)
        return NULL;
    lv->L = L;
    lw_strlcpy(lv->id, r->id, sizeof lv->id);
    lv->expires_at = r->expires_at;
    lw_strlcpy(lv->code, code ? code : "", sizeof lv->code);
    lw_strlcpy(lv->ip, r->ip, sizeof lv->ip);
    lv->timer.cb = on_timer;
    return lv;
}

static void count_ip(lw_links *L, const char *ip, int delta)
{
    if (!ip[0])
        return;
    intptr_t n = (intptr_t)lw_map_get(L->per_ip, ip) + delta;
    if (n <= 0)
        lw_map_del(L->per_ip, ip);
    else
        lw_map_put(L->per_ip, ip, (void *)n);
}

long lw_links_pending_from(lw_links *L, const char *ip)
{
    return (long)(intptr_t)lw_map_get(L->per_ip, ip);
}

/* Every live entry enters and leaves the map through these two. */
static int live_add(lw_links *L, live *lv)
{
    int rc = lw_map_put(L->live, lv->id, lv);
    if (rc == LW_OK)
        count_ip(L, lv->ip, +1);
    return rc;
}

int lw_links_begin(lw_links *L, lw_link_request *r, const char code[LW_CODE_STRLEN], lw_link_ref *first)
{
    live *lv = live_new(L, r, code);
    if (!lv)
        return LW_ENOMEM;
    int rc = apply_ref(L, lv, r, first, 0, L->deps->cfg->qr_first_ttl_ms);
    if (rc == LW_OK)
        rc = lw_store_link_insert(L->deps->store, r);
    if (rc == LW_OK)
        rc = live_add(L, lv);
    if (rc != LW_OK) {
        if (lv->svg && !first->svg) { /* give the SVG back: the caller may retry */
            first->svg = lv->svg;
            lv->svg = NULL;
        }
        live_free(lv);
        return rc;
    }
    h2o_timeout_link(L->deps->loop, &L->first, &lv->timer);
    return LW_OK;
}

static void drop(lw_links *L, const char *id)
{
    live *lv = lw_map_del(L->live, id);
    if (lv) {
        count_ip(L, lv->ip, -1);
        live_free(lv);
    }
}

void lw_links_push(lw_links *L, const char *request_id, json_t *ev, bool final)
{
    lw_events_to_link(L->deps->events, request_id, ev);
    json_decref(ev);
    if (final) {
        lw_events_close_link(L->deps->events, request_id);
        drop(L, request_id);
    }
}

void lw_links_notify(lw_links *L, const char *request_id, const char *ev, bool final)
{
    lw_links_push(L, request_id, lw_event_link_state(ev), final);
}

/* Ends a request that ran out of time, whatever non-final state it is in. */
static void expire(lw_links *L, lw_link_request *r)
{
    static const char *from[] = {"pending", "scanned", "approved"};
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(r->state, from[i]) != 0)
            continue;
        int rc = lw_store_link_transition(L->deps->store, r, from[i], "expired");
        if (rc == LW_OK) {
            lw_metrics_inc("linkward_link_requests_total", "outcome=\"expired\"");
            lw_log_info("link", "request %.8s expired", r->id);
        }
    }
    lw_links_notify(L, r->id, "link.expired", true);
}

static void on_timer(h2o_timeout_entry_t *entry)
{
    live *lv = H2O_STRUCT_FROM_MEMBER(live, timer, entry);
    lw_links *L = lv->L;
    lw_link_request r;
    int rc = lw_store_link_get(L->deps->store, lv->id, &r);
    if (rc != LW_OK || strcmp(r.state, "denied") == 0 || strcmp(r.state, "completed") == 0 ||
        strcmp(r.state, "expired") == 0) {
        drop(L, lv->id);
        return;
    }
    int next = lv->ref_index + 1;
    if (next >= L->deps->cfg->qr_refs || lw_now_ms() >= r.expires_at) {
        expire(L, &r);
        return;
    }
    if (strcmp(r.state, "pending") == 0) {
        if (make_ref(L, lv, &r, next, L->deps->cfg->qr_next_ttl_ms) != LW_OK ||
            lw_store_link_set_ref(L->deps->store, r.id, r.ref_hash, r.ref_index, r.ref_expires_at) != LW_OK) {
            lw_log_error("link", "cannot rotate the ref of %.8s", r.id);
            expire(L, &r);
            return;
        }
        json_t *ev = ref_event(lv);
        lw_events_to_link(L->deps->events, r.id, ev);
        json_decref(ev);
    } else {
        lv->ref_index = next; /* scanned: no new refs, but the clock keeps running */
    }
    h2o_timeout_link(L->deps->loop, &L->next, &lv->timer);
}

/* The live state of a pending request, re-creating it (with a fresh ref) when
 * this process never had it or lost it. */
static live *ensure_live(lw_links *L, const lw_link_request *r)
{
    if (strcmp(r->state, "pending") != 0 || lw_now_ms() >= r->expires_at)
        return NULL;
    live *lv = lw_map_get(L->live, r->id);
    if (lv)
        return lv;
    /* With several nodes the one that opened the request rotates its refs;
     * another node takes over only when that one stopped (its ref lapsed). */
    if (L->deps->shared_store && lw_now_ms() < r->ref_expires_at + 1000)
        return NULL;
    lw_link_request copy = *r;
    if (!(lv = live_new(L, r, NULL)))
        return NULL;
    int idx = r->ref_index + 1 < L->deps->cfg->qr_refs ? r->ref_index + 1 : r->ref_index;
    if (make_ref(L, lv, &copy, idx, L->deps->cfg->qr_next_ttl_ms) != LW_OK ||
        lw_store_link_set_ref(L->deps->store, copy.id, copy.ref_hash, copy.ref_index, copy.ref_expires_at) !=
            LW_OK) {
        live_free(lv);
        return NULL;
    }
    /* The store call may have waited (fiber.h), and another request made
     * the live state meanwhile: the later ref, stored last, is kept. */
    drop(L, copy.id);
    if (live_add(L, lv) != LW_OK) {
        live_free(lv);
        return NULL;
    }
    h2o_timeout_link(L->deps->loop, &L->next, &lv->timer);
    return lv;
}

json_t *lw_links_view(lw_links *L, const lw_link_request *r)
{
    live *lv = ensure_live(L, r);
    if (!lv)
        return NULL;
    return json_pack("{s:s, s:s, s:s, s:I}", "payload", lv->payload, "qr_svg", lv->svg, "code", lv->code,
                     "ref_expires_in", (json_int_t)secs(lv->ref_expires_at - lw_now_ms()));
}

int lw_links_view_append(lw_links *L, const lw_link_request *r, lw_buf *b)
{
    live *lv = ensure_live(L, r);
    if (!lv)
        return LW_ENOTFOUND;
    int rc = lw_buf_append(b, ",\"payload\":", 11);
    if (rc == LW_OK)
        rc = lw_buf_append_json_str(b, lv->payload);
    if (rc == LW_OK)
        rc = lw_buf_append(b, ",\"qr_svg\":", 10);
    if (rc == LW_OK)
        rc = lw_buf_append_json_str(b, lv->svg);
    if (rc == LW_OK)
        rc = lw_buf_append(b, ",\"code\":", 8);
    if (rc == LW_OK)
        rc = lw_buf_append_json_str(b, lv->code);
    if (rc == LW_OK)
        rc = lw_buf_appendf(b, ",\"ref_expires_in\":%lld", (long long)secs(lv->ref_expires_at - lw_now_ms()));
    return rc;
}

int lw_links_payload(lw_links *L, const lw_link_request *r, char dst[LW_PAYLOAD_MAX])
{
    /* A request already scanned keeps the payload it was scanned with. */
    const live *lv = lw_map_get(L->live, r->id);
    if (lv)
        return lw_strlcpy(dst, lv->payload, LW_PAYLOAD_MAX);
    if ((strcmp(r->state, "pending") != 0 && strcmp(r->state, "scanned") != 0) || lw_links_remaining(r) == 0)
        return LW_ENOTFOUND;
    /* Another node shows this request (or this one restarted): the current
     * ref follows from the stored index, and its payload is signed here, on
     * the loop: one Ed25519 signature, only for a code typed on a node that
     * does not show the request (the QR drawing, the costly part, is not
     * needed for an answer to the phone). */
    lw_link_ref f;
    lw_links_ref_prepare(L, r, r->ref_index, &f);
    int rc = lw_payload_make(dst, LW_PAYLOAD_MAX, f.origin, f.ref, f.fp, f.server_sk);
    lw_links_ref_clear(&f);
    return rc;
}

bool lw_links_issued(lw_links *L, const char *request_id, const char *payload)
{
    const live *lv = lw_map_get(L->live, request_id);
    if (!lv || !payload)
        return false;
    size_t n = strnlen(lv->payload, sizeof lv->payload);
    return n > 0 && strnlen(payload, n + 1) == n && lw_ct_equal(lv->payload, payload, n);
}

void lw_links_on_socket(lw_links *L, const lw_link_request *r)
{
    live *lv = ensure_live(L, r);
    if (!lv && strcmp(r->state, "pending") == 0)
        return; /* another node shows it; its rotations reach us through the relay */
    if (!lv) {
        /* Already decided: tell the socket where things stand. */
        const char *ev = strcmp(r->state, "scanned") == 0     ? "link.scanned"
                         : strcmp(r->state, "approved") == 0  ? "link.approved"
                         : strcmp(r->state, "denied") == 0    ? "link.denied"
                         : strcmp(r->state, "completed") == 0 ? "link.completed"
                                                              : "link.expired";
        lw_links_notify(L, r->id, ev, strcmp(r->state, "scanned") != 0 && strcmp(r->state, "approved") != 0);
        return;
    }
    json_t *ev = ref_event(lv);
    lw_events_to_link(L->deps->events, r->id, ev);
    json_decref(ev);
}
