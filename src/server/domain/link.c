#include "link.h"

#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include <h2o.h>

#include "alert.h"
#include "events.h"
#include "log.h"
#include "lw.h"
#include "map.h"
#include "metrics.h"
#include "payload.h"
#include "place.h"
#include "qr.h"
#include "record.h"
#include "session.h"

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
    if (deps->loop) {
        h2o_timeout_init(deps->loop, &L->first, (uint64_t)deps->cfg->qr_first_ttl_ms);
        h2o_timeout_init(deps->loop, &L->next, (uint64_t)deps->cfg->qr_next_ttl_ms);
    }
    return L;
}

/* Starts lv's timer: rotation and expiry. Without a loop (a unit test) refs
 * do not rotate; a request still ends by the clock (lw_links_remaining). */
static void arm(lw_links *L, h2o_timeout_t *t, live *lv)
{
    if (L->deps->loop)
        h2o_timeout_link(L->deps->loop, t, &lv->timer);
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
    lw_strlcpy(lv->ip, r->place.ip, sizeof lv->ip);
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
    arm(L, &L->first, lv);
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
    arm(L, &L->next, lv);
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
    arm(L, &L->next, lv);
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

/* ---- the state machine ---- */

static lw_link_step step(lw_link_status status)
{
    return (lw_link_step){.status = status};
}

static lw_link_step store_failed(int rc, const char *doing)
{
    return (lw_link_step){.status = LW_LINK_STORE, .rc = rc, .doing = doing};
}

static bool in_state(const lw_link_request *r, const char *state)
{
    return strcmp(r->state, state) == 0;
}

/* What is full, and how to free a slot: the same sentence for the answer to
 * whoever asked and for the companion's link.denied. */
#define LIMIT_TEXT "This account already has %ld linked devices, the limit."
#define LIMIT_PHONE_HINT                                                                                     \
    " Log one out from your phone (Linked devices) to free a slot, then link the other device again."
#define LIMIT_COMPANION_HINT                                                                                 \
    " Log one out from the phone (Linked devices) to free a slot, then link this device again."

int lw_links_limit_text(char *out, size_t cap, long limit, bool to_phone)
{
    int n = to_phone ? snprintf(out, cap, LIMIT_TEXT LIMIT_PHONE_HINT, limit)
                     : snprintf(out, cap, LIMIT_TEXT LIMIT_COMPANION_HINT, limit);
    return n >= 0 && (size_t)n < cap ? LW_OK : LW_ETOOBIG;
}

/* Ends request r, found in state `from`, because its account is at the
 * device limit: denied, and the companion waiting on it hears at once
 * link.denied with reason "limit" and the sentence, rather than waiting for
 * an approval that cannot come. Nothing is said if the request moved on
 * meanwhile (whoever moved it told the companion). */
static lw_link_step deny_at_limit(lw_links *L, const lw_link_request *r, const char *from)
{
    long limit = L->deps->cfg->max_companions;
    int rc = lw_store_link_transition(L->deps->store, r, from, "denied");
    if (rc != LW_OK) {
        if (rc != LW_ECONFLICT)
            lw_log_error("link", "cannot end request %.8s at the device limit: %s", r->id, lw_strerror(rc));
        return (lw_link_step){.status = LW_LINK_DEVICE_LIMIT, .limit = limit};
    }
    char text[LW_LINK_LIMIT_TEXT_MAX];
    if (lw_links_limit_text(text, sizeof text, limit, false) != LW_OK) /* cannot happen: one number */
        lw_log_error("link", "the device-limit sentence was cut");
    lw_links_push(L, r->id, lw_event_link_denied_limit(text, limit), true);
    lw_metrics_inc("linkward_link_requests_total", "outcome=\"denied\"");
    lw_log_info("link", "request %.8s denied: the account is at its device limit", r->id);
    return (lw_link_step){.status = LW_LINK_DEVICE_LIMIT, .limit = limit};
}

/* Why a request that is not pending (or out of time) cannot be scanned. */
static lw_link_step unscannable(const lw_link_request *r)
{
    if (in_state(r, "expired") || lw_links_remaining(r) == 0)
        return step(LW_LINK_EXPIRED);
    if (!in_state(r, "pending") && !in_state(r, "denied"))
        return step(LW_LINK_ALREADY_SCANNED);
    return step(LW_LINK_ANSWERED);
}

/* The request a scanned QR text names, once the text is shown to be ours. */
static lw_link_step find_by_payload(lw_links *L, const char *text, lw_link_scanned *out)
{
    const lw_domain_deps *d = L->deps;
    lw_payload p;
    if (lw_payload_parse(&p, text, strlen(text)) != LW_OK)
        return step(LW_LINK_BAD_PAYLOAD);
    uint8_t h[LW_HASH_LEN];
    lw_keyed_hash(h, d->hash_key, p.ref, sizeof p.ref);
    lw_link_request *r = &out->r;
    int rc = lw_store_link_get_by_ref(d->store, h, r);
    /* The server's signature is checked here only when this node cannot
     * vouch for the text itself: a payload byte-for-byte equal to the one
     * it made and signed for this request's current ref (kept in memory)
     * carries that very signature (Ed25519 signing is deterministic), so
     * verifying it again would prove nothing. Anything else (another
     * node's ref, an old or forged payload) is verified as before, and
     * before any answer that depends on the lookup. The phone verifies
     * the payload against its pinned server key on its own side anyway. */
    bool ours = rc == LW_OK && lw_links_issued(L, r->id, text);
    if (!ours && lw_payload_verify(&p, d->server_pk) != LW_OK)
        return step(LW_LINK_BAD_SIGNATURE);
    if (strcmp(p.origin, d->cfg->public_origin) != 0) {
        lw_strlcpy(out->origin, p.origin, sizeof out->origin);
        return step(LW_LINK_WRONG_ORIGIN);
    }
    if (rc == LW_ENOTFOUND)
        return step(LW_LINK_REF_UNKNOWN);
    if (rc != LW_OK)
        return store_failed(rc, "finding the link request");
    uint8_t fp[LW_FP_LEN];
    lw_fingerprint(fp, r->public_key);
    if (!lw_ct_equal(fp, p.fp, LW_FP_LEN))
        return step(LW_LINK_KEY_MISMATCH);
    if (lw_now_ms() > r->ref_expires_at && in_state(r, "pending"))
        return step(LW_LINK_REF_EXPIRED);
    return step(LW_LINK_DONE);
}

static lw_link_step find_by_code(lw_links *L, const char *text, lw_link_request *r)
{
    char code[LW_CODE_STRLEN];
    if (lw_code_normalize(text, strlen(text), code) != LW_OK)
        return step(LW_LINK_BAD_CODE);
    uint8_t h[LW_HASH_LEN];
    lw_keyed_hash(h, L->deps->hash_key, code, strlen(code));
    int rc = lw_store_link_get_by_code(L->deps->store, h, r);
    if (rc == LW_ENOTFOUND)
        return step(LW_LINK_NO_CODE);
    if (rc != LW_OK)
        return store_failed(rc, "finding the link request");
    return step(LW_LINK_DONE);
}

lw_link_step lw_links_scan(lw_links *L, const lw_link_scan *in, lw_link_scanned *out)
{
    const lw_domain_deps *d = L->deps;
    memset(out, 0, sizeof *out);
    lw_link_request *r = &out->r;
    lw_link_step st = in->payload ? find_by_payload(L, in->payload, out) : find_by_code(L, in->code, r);
    if (st.status != LW_LINK_DONE)
        return st;
    /* The phone that scanned may scan again (say, to retry with the right
     * PIN); anyone else finds the code used. */
    out->rescan = in_state(r, "scanned") && strcmp(r->scanned_by, in->device_id) == 0;
    if ((!in_state(r, "pending") && !out->rescan) || lw_links_remaining(r) == 0)
        return unscannable(r);
    /* The payload the primary checks: for a code, the current ref's, which
     * any node can give (whichever node opened the request). */
    out->payload = in->payload;
    if (!in->payload) {
        int rc = lw_links_payload(L, r, out->code_payload);
        if (rc == LW_ENOTFOUND)
            return unscannable(r);
        if (rc != LW_OK)
            return store_failed(rc, "making the payload");
        out->payload = out->code_payload;
    }
    lw_strlcpy(r->account_id, in->account_id, sizeof r->account_id);
    lw_strlcpy(r->scanned_by, in->device_id, sizeof r->scanned_by);
    int rc = out->rescan ? LW_OK : lw_store_link_transition(d->store, r, "pending", "scanned");
    if (rc == LW_ECONFLICT)
        return step(LW_LINK_ALREADY_SCANNED);
    if (rc != LW_OK)
        return store_failed(rc, "recording the scan");
    if (!out->rescan) {
        lw_links_notify(L, r->id, "link.scanned", false);
        lw_metrics_inc("linkward_link_requests_total", "outcome=\"scanned\"");
    }
    lw_log_info("link", "request %.8s scanned by %.8s", r->id, in->device_id);

    lw_account a;
    memset(&a, 0, sizeof a);
    lw_store_account_get(d->store, in->account_id, &a);
    out->pin_required = a.pin_hash[0] != '\0' || d->cfg->pin_required;
    lw_wipe(&a, sizeof a);
    /* The phone is making this very request: that is where it is now. */
    lw_place phone_at;
    lw_place_lookup(d, in->ip, &phone_at, NULL);
    lw_risk_link(d, r, in->account_id, &phone_at, &out->risk);
    out->blocked = out->risk.level == LW_RISK_HIGH && d->cfg->block_high_risk;
    return st;
}

lw_link_step lw_links_load_scanned(lw_links *L, const char *request_id, const char *device_id,
                                   lw_link_request *r)
{
    int rc = lw_store_link_get(L->deps->store, request_id, r);
    if (rc == LW_OK && strcmp(r->scanned_by, device_id) != 0)
        rc = LW_ENOTFOUND; /* not revealing other accounts' requests */
    if (rc == LW_ENOTFOUND)
        return step(LW_LINK_NOT_FOUND);
    if (rc != LW_OK)
        return store_failed(rc, "loading the link request");
    if (lw_links_remaining(r) == 0 || in_state(r, "expired"))
        return step(LW_LINK_EXPIRED);
    if (!in_state(r, "scanned"))
        return step(LW_LINK_ANSWERED);
    return step(LW_LINK_DONE);
}

lw_link_step lw_links_approval(lw_links *L, const lw_link_request *r, const lw_account *a,
                               const char *phone_ip, bool accept_risk, bool pin_given)
{
    const lw_domain_deps *d = L->deps;
    if (a->pin_change_required)
        return step(LW_LINK_PIN_CHANGE_REQUIRED);
    lw_place phone_at;
    lw_place_lookup(d, phone_ip, &phone_at, NULL);
    lw_risk k;
    lw_risk_link(d, r, a->id, &phone_at, &k);
    lw_risk_level level = k.level;
    lw_risk_clear(&k);
    if (level == LW_RISK_HIGH && d->cfg->block_high_risk)
        return step(LW_LINK_RISK_BLOCKED);
    if (level == LW_RISK_HIGH && !accept_risk)
        return step(LW_LINK_RISK_NOT_ACCEPTED);
    long n = 0;
    /* A device linking again replaces its own session: that one does not count. */
    int rc = lw_store_session_count_active_companions(d->store, a->id, r->public_key, &n);
    if (rc != LW_OK)
        return store_failed(rc, "counting devices");
    if (n >= d->cfg->max_companions)
        return deny_at_limit(L, r, "scanned");
    bool has_pin = a->pin_hash[0] != '\0';
    if (!has_pin && d->cfg->pin_required)
        return step(LW_LINK_PIN_SETUP_REQUIRED);
    if (!has_pin)
        return lw_links_approve(L, r);
    return step(pin_given ? LW_LINK_CHECK_PIN : LW_LINK_PIN_NEEDED);
}

/* scanned -> to, told to the companion as ev (final for denied). */
static lw_link_step answer(lw_links *L, const lw_link_request *r, const char *to, const char *ev,
                           const char *doing)
{
    int rc = lw_store_link_transition(L->deps->store, r, "scanned", to);
    if (rc == LW_ECONFLICT)
        return step(LW_LINK_CONFLICT);
    if (rc != LW_OK)
        return store_failed(rc, doing);
    bool denied = strcmp(to, "denied") == 0;
    lw_links_notify(L, r->id, ev, denied);
    lw_metrics_inc("linkward_link_requests_total", denied ? "outcome=\"denied\"" : "outcome=\"approved\"");
    lw_log_info("link", "request %.8s %s", r->id, to);
    return step(LW_LINK_DONE);
}

lw_link_step lw_links_approve(lw_links *L, const lw_link_request *r)
{
    return answer(L, r, "approved", "link.approved", "approving");
}

lw_link_step lw_links_deny(lw_links *L, const lw_link_request *r)
{
    return answer(L, r, "denied", "link.denied", "denying");
}

lw_link_step lw_links_completable(const lw_link_request *r)
{
    if (lw_links_remaining(r) == 0 || in_state(r, "expired"))
        return step(LW_LINK_EXPIRED);
    if (!in_state(r, "approved"))
        return step(LW_LINK_ANSWERED);
    return step(LW_LINK_DONE);
}

/* The companion's session as the approved request describes it. */
static void session_from(lw_session *s, const lw_link_request *r, const lw_place *here, int64_t now)
{
    memset(s, 0, sizeof *s);
    lw_random_id(s->id);
    lw_strlcpy(s->account_id, r->account_id, sizeof s->account_id);
    lw_strlcpy(s->role, LW_ROLE_COMPANION, sizeof s->role);
    lw_strlcpy(s->name, r->name, sizeof s->name);
    s->client = r->client;
    /* The credential goes to whoever completes, usually from where it asked.
     * The record holds that address: the place and network the device is
     * really at, first and last seen. */
    lw_place_seen_first(here, s);
    memcpy(s->public_key, r->public_key, LW_PK_LEN);
    memcpy(s->account_sig, r->account_sig, LW_SIG_LEN);
    s->linked_at = now;
    s->last_active_at = now;
    lw_strlcpy(s->state, "active", sizeof s->state);
    s->persistent = r->persistent;
}

/* Tells the account of the new device s: the live event for screens, the
 * alert for the record, and the alerts of the risk k. */
static void tell_linked(const lw_domain_deps *d, const lw_session *s, const lw_risk *k)
{
    json_t *ev = lw_event_device_linked(lw_record_json(s, NULL));
    lw_events_to_account(d->events, s->account_id, s->id, ev);
    json_decref(ev);
    char where[2 * LW_PLACE_MAX + 4];
    lw_place_describe(s->first.city, s->first.country, where, sizeof where);
    char message[LW_ALERT_TEXT_MAX];
    lw_alert_text_linked(message, sizeof message, s->name, where);
    lw_alert_raise(d, s->account_id, "device.linked", s->id, message,
                   json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "name", s->name, "browser", s->client.browser,
                             "os", s->client.os, "ip", s->first.ip, "place", where, "network",
                             s->first.network));
    lw_risk_link_alerts(d, k, s->account_id, s->id, s->name);
}

lw_link_step lw_links_complete(lw_links *L, const lw_link_request *r, const lw_place *here,
                               const lw_netinfo *here_net, lw_session *s, char token[LW_CRED_STRLEN])
{
    const lw_domain_deps *d = L->deps;
    int64_t now = lw_now_ms();
    session_from(s, r, here, now);
    /* The risk as the primary saw it: the request's address, judged against
     * where the phone was when it approved (its latest request here). */
    lw_place phone_at;
    bool phone_known = lw_sessions_place(d->sessions, r->scanned_by, &phone_at);
    lw_risk k;
    lw_risk_link(d, r, r->account_id, phone_known ? &phone_at : NULL, &k);

    lw_ended *replaced = NULL;
    size_t nreplaced = 0;
    lw_link_step st = step(LW_LINK_DONE);
    uint64_t epoch = lw_sessions_epoch(d->sessions);
    int rc = lw_sessions_prepare(d->sessions, s, token);
    if (rc == LW_OK)
        rc = lw_store_link_complete(d->store, r->id, s, d->cfg->max_companions, &replaced, &nreplaced);
    if (rc == LW_ELIMIT) {
        st = deny_at_limit(L, r, "approved"); /* two approvals raced for the last slot: this one lost */
        goto out;
    }
    if (rc != LW_OK) {
        st = rc == LW_ECONFLICT ? step(LW_LINK_CONFLICT) : store_failed(rc, "linking the device");
        goto out;
    }
    lw_sessions_cache(d->sessions, s, epoch);
    /* The same key's earlier session ended in the completion's transaction
     * (relinked): its sockets and the account's devices hear it now. */
    lw_end_request relinked = {.scope = LW_END_TOLD, .told = replaced, .ntold = nreplaced};
    lw_sessions_end_where(d->sessions, &relinked, NULL);
    lw_free(replaced);
    lw_links_notify(L, r->id, "link.completed", true);
    tell_linked(d, s, &k);
    lw_risk_link_completed(d, &k, here, here_net, s->account_id, s->id, s->name, now - r->created_at, now);
    lw_metrics_inc("linkward_link_requests_total", "outcome=\"completed\"");
    lw_log_info("link", "request %.8s completed: device %.8s linked", r->id, s->id);
out:
    lw_risk_clear(&k);
    return st;
}
