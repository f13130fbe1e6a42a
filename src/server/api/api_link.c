/* Link requests: the companion opens one, the primary scans and approves,
 * the companion completes with proof of its key (PRODUCT.md §2). */
#include <stdio.h>
#include <string.h>

#include "alert.h"
#include "api.h"
#include "bus.h"
#include "events.h"
#include "code.h"
#include "cred.h"
#include "link.h"
#include "log.h"
#include "metrics.h"
#include "lw.h"
#include "payload.h"
#include "pin.h"
#include "proof.h"
#include "record.h"
#include "place.h"
#include "risk.h"
#include "session.h"
#include "work.h"

/* The answer to a new link request: a version-40 QR's SVG is ~400 KB. */
#define LINK_ANSWER_MAX (1024 * 1024)

/* Runs run(op) on the worker and done(op) back on the loop, with *slot
 * guarding rq (NULL in done if the client left meanwhile). False, with rq
 * answered and nothing running, if the work queue refused the job. */
static bool offload(lw_rq *rq, lw_rq **slot, lw_work_fn run, lw_work_fn done, void *op)
{
    lw_rq_guard(rq, slot);
    int rc = lw_work_submit(rq->app->work, run, done, op);
    if (rc == LW_OK)
        return true;
    lw_rq_release(slot);
    lw_api_work_refused(rq, rc);
    return false;
}

typedef struct create_op {
    lw_rq *rq; /* NULL once the client is gone */
    lw_server *app;
    lw_link_request r;
    lw_link_ref ref;
} create_op;

static void create_op_free(create_op *op)
{
    lw_rq_release(&op->rq);
    lw_links_ref_clear(&op->ref);
    lw_wipe(op, sizeof *op);
    lw_free(op);
}

static bool too_many_pending(lw_rq *rq)
{
    if (lw_links_pending_from(rq->app->links, rq->ip) < rq->app->cfg.max_pending_links_per_ip)
        return false;
    lw_rq_header(rq, "retry-after", "20");
    lw_reply_error(rq, 429, "rate_limited",
                   "Too many link requests are waiting from this address; let them expire or finish first.");
    return true;
}

/* On a worker thread. */
static void create_render(void *arg)
{
    create_op *op = arg;
    lw_links_ref_render(&op->ref);
}

/* Back on the loop: stores the request and answers. */
static void create_finish(lw_rq *rq, create_op *op)
{
    lw_server *app = op->app;
    lw_link_request *r = &op->r;
    char token[LW_CRED_STRLEN], code[LW_CODE_STRLEN];
    int rc = LW_ECONFLICT;
    if (too_many_pending(rq)) /* again: others from this address may have been stored meanwhile */
        return;
    /* A fresh token and code collide with a live one about never; retry a little anyway. */
    for (int attempt = 0; attempt < 3 && rc == LW_ECONFLICT; attempt++) {
        lw_cred cred;
        lw_cred_new(&cred, LW_CRED_LINK);
        lw_cred_selector_str(&cred, r->token_selector);
        lw_cred_hash(&cred, app->hash_key, r->token_hash);
        lw_cred_format(&cred, token);
        lw_cred_wipe(&cred);
        lw_code_new(code);
        lw_keyed_hash(r->code_hash, app->hash_key, code, strlen(code));
        rc = lw_links_begin(app->links, r, code, &op->ref);
    }
    if (rc != LW_OK) {
        lw_wipe(token, sizeof token);
        lw_api_store_failed(rq, rc, "creating the link request");
        return;
    }
    /* The answer is written by hand: with jansson, most of the cost of a
     * link request was json_dumps decoding and re-encoding the ~10 KB SVG.
     * Every member but the token (escaped anyway) is our own ASCII. */
    long long left = lw_api_secs(r->expires_at - lw_now_ms());
    char nonce[lw_b64_enc_len(32)];
    lw_b64_encode(nonce, r->nonce, sizeof r->nonce);
    bool cookie = lw_api_cookie_wanted(rq);
    if (cookie)
        lw_api_set_cookie(rq, "lw_link", token, left);
    lw_buf ans;
    lw_buf_init(&ans, LINK_ANSWER_MAX);
    rc = lw_buf_appendf(&ans, "{\"id\":\"%s\",\"expires_in\":%lld", r->id, left);
    if (rc == LW_OK && !cookie) {
        rc = lw_buf_append(&ans, ",\"token\":", 9);
        if (rc == LW_OK)
            rc = lw_buf_append_json_str(&ans, token);
    }
    if (rc == LW_OK)
        rc = lw_buf_append(&ans, ",\"nonce\":", 9);
    if (rc == LW_OK)
        rc = lw_buf_append_json_str(&ans, nonce);
    if (rc == LW_OK) {
        int vrc = lw_links_view_append(app->links, r, &ans);
        rc = vrc == LW_ENOTFOUND ? LW_OK : vrc;
    }
    if (rc == LW_OK)
        rc = lw_buf_append(&ans, "}", 1);
    lw_wipe(token, sizeof token);
    if (rc != LW_OK) {
        lw_buf_free(&ans);
        lw_api_store_failed(rq, rc, "writing the answer");
        return;
    }
    lw_metrics_inc("linkward_link_requests_total", "outcome=\"created\"");
    char addr[LW_LOG_ADDR_MAX];
    lw_log_info("link", "request %.8s opened from %s", r->id, lw_log_addr(rq->ip, addr));
    lw_reply_text(rq, 201, "application/json; charset=utf-8", ans.data, ans.len);
    lw_buf_free(&ans); /* zeroed: it held the token */
}

static void create_rendered(void *arg)
{
    create_op *op = arg;
    if (op->rq) /* else the client left: nothing was stored */
        create_finish(op->rq, op);
    create_op_free(op);
}

void lw_api_link_create(lw_rq *rq)
{
    lw_server *app = rq->app;
    create_op *op = lw_calloc(1, sizeof *op);
    if (!op) {
        lw_reply_error(rq, 503, "unavailable", "Out of memory.");
        return;
    }
    lw_link_request *r = &op->r;
    struct lw_client_desc d;
    bool persistent;
    if (lw_api_rate_limited(rq, &app->cfg.rate_link, "ip", rq->ip, NULL))
        goto out;
    if (too_many_pending(rq))
        goto out;
    if (lw_body_b64(rq, "public_key", true, r->public_key, LW_PK_LEN, NULL) != LW_OK ||
        lw_body_bool(rq, "persistent", true, &persistent) != LW_OK || lw_api_client_desc(rq, &d) != LW_OK)
        goto out;

    int64_t now = lw_now_ms();
    lw_random_id(r->id);
    lw_random(r->nonce, sizeof r->nonce);
    r->created_at = now;
    r->expires_at = now + app->cfg.qr_first_ttl_ms + (app->cfg.qr_refs - 1) * app->cfg.qr_next_ttl_ms;
    lw_strlcpy(r->state, "pending", sizeof r->state);
    r->persistent = persistent;
    lw_strlcpy(r->name, d.name, sizeof r->name);
    lw_strlcpy(r->browser, d.browser, sizeof r->browser);
    lw_strlcpy(r->browser_version, d.browser_version, sizeof r->browser_version);
    lw_strlcpy(r->os, d.os, sizeof r->os);
    lw_strlcpy(r->os_version, d.os_version, sizeof r->os_version);
    lw_strlcpy(r->device_model, d.device_model, sizeof r->device_model);
    lw_strlcpy(r->ip, rq->ip, sizeof r->ip);
    lw_place where;
    lw_netinfo net;
    lw_api_place_lookup(rq, &where, &net);
    lw_strlcpy(r->country, where.country, sizeof r->country);
    lw_strlcpy(r->region, where.region, sizeof r->region);
    lw_strlcpy(r->city, where.city, sizeof r->city);
    lw_strlcpy(r->network, net.network, sizeof r->network);

    /* The payload's signature and its QR code are made off the loop; the
     * request is stored and answered when they come back. */
    op->app = app;
    lw_links_ref_prepare(app->links, r, 0, &op->ref);
    if (!offload(rq, &op->rq, create_render, create_rendered, op))
        goto out;
    return;
out:
    create_op_free(op);
}

static bool same_request(lw_rq *rq)
{
    if (strcmp(rq->link->id, rq->param) != 0) {
        lw_reply_error(rq, 404, "not_found", "No such link request for this token.");
        return false;
    }
    return true;
}

void lw_api_link_get(lw_rq *rq)
{
    lw_link_request *r = rq->link;
    if (!same_request(rq))
        return;
    json_t *ans = json_pack("{s:s, s:s, s:I}", "id", r->id, "state", r->state, "expires_in",
                            (json_int_t)lw_api_secs(lw_links_remaining(r)));
    if (strcmp(r->state, "pending") == 0) {
        json_t *view = lw_links_view(rq->app->links, r);
        if (view)
            json_object_update(ans, view);
        json_decref(view);
    }
    lw_reply_json(rq, 200, ans);
}

static json_t *request_json(const lw_link_request *r)
{
    char pk[lw_b64_enc_len(LW_PK_LEN)], fphex[2 * LW_FP_LEN + 1], t[LW_TIME_STRLEN];
    uint8_t fp[LW_FP_LEN];
    lw_b64_encode(pk, r->public_key, LW_PK_LEN);
    lw_fingerprint(fp, r->public_key);
    lw_hex_encode(fphex, fp, sizeof fp);
    lw_time_format(r->created_at, t);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "id",
                     r->id, "name", r->name, "browser", r->browser, "browser_version", r->browser_version,
                     "os", r->os, "os_version", r->os_version, "device_model", r->device_model, "ip", r->ip,
                     "country", r->country, "region", r->region, "city", r->city, "network", r->network,
                     "public_key", pk, "key_fingerprint", fphex, "created_at", t, "expires_in",
                     (json_int_t)lw_api_secs(lw_links_remaining(r)));
}

/* Why a request that is not pending cannot be scanned, as an answer. */
static void refuse_state(lw_rq *rq, const lw_link_request *r)
{
    if (strcmp(r->state, "expired") == 0 || lw_links_remaining(r) == 0)
        lw_reply_error(rq, 410, "expired", "This QR code expired. Reload it on the other device.");
    else if (strcmp(r->state, "pending") != 0 && strcmp(r->state, "denied") != 0)
        lw_reply_error(rq, 409, "already_scanned",
                       "This QR code was already used. Reload it on the other device.");
    else
        lw_reply_error(rq, 409, "not_pending", "This link request was already answered.");
}

void lw_api_link_scan(lw_rq *rq)
{
    lw_server *app = rq->app;
    const char *payload_text, *code_text;
    if (lw_body_str(rq, "payload", false, LW_PAYLOAD_MAX, &payload_text) != LW_OK ||
        lw_body_str(rq, "code", false, 32, &code_text) != LW_OK)
        return;
    if (!payload_text == !code_text) {
        lw_reply_error(rq, 400, "invalid_request",
                       "Give either \"payload\" (the scanned QR code) or \"code\".");
        return;
    }
    /* Scans are limited per account and per address; typed codes (guessable,
     * unlike 128-bit refs) much more tightly. The account is the one being
     * linked to, so repeated refusals raise link.rate_limited for its holder. */
    const char *acct = rq->who.account_id;
    if (lw_api_rate_limited(rq, &app->cfg.rate_scan, "acct", acct, acct) ||
        lw_api_rate_limited(rq, &app->cfg.rate_scan, "ip", rq->ip, acct))
        return;
    if (code_text && (lw_api_rate_limited(rq, &app->cfg.rate_code, "acct", acct, acct) ||
                      lw_api_rate_limited(rq, &app->cfg.rate_code, "ip", rq->ip, acct)))
        return;
    lw_link_request r;
    uint8_t h[LW_HASH_LEN];
    int rc;
    if (payload_text) {
        lw_payload p;
        if (lw_payload_parse(&p, payload_text, strlen(payload_text)) != LW_OK) {
            lw_reply_error(rq, 400, "invalid_payload", "This is not a Linkward QR code.");
            return;
        }
        lw_keyed_hash(h, app->hash_key, p.ref, sizeof p.ref);
        rc = lw_store_link_get_by_ref(app->store, h, &r);
        /* The server's signature is checked here only when this node cannot
         * vouch for the text itself: a payload byte-for-byte equal to the one
         * it made and signed for this request's current ref (kept in memory)
         * carries that very signature (Ed25519 signing is deterministic), so
         * verifying it again would prove nothing. Anything else (another
         * node's ref, an old or forged payload) is verified as before, and
         * before any answer that depends on the lookup. The phone verifies
         * the payload against its pinned server key on its own side anyway. */
        bool ours = rc == LW_OK && lw_links_issued(app->links, r.id, payload_text);
        if (!ours && lw_payload_verify(&p, app->server_pk) != LW_OK) {
            lw_reply_error(rq, 400, "invalid_signature", "This QR code was not issued by this server.");
            return;
        }
        if (strcmp(p.origin, app->cfg.public_origin) != 0) {
            lw_reply_error(rq, 400, "wrong_origin", "This QR code names another site (%s).", p.origin);
            return;
        }
        if (rc == LW_ENOTFOUND) {
            lw_reply_error(
                rq, 410, "expired",
                "This QR code is no longer valid (it expired or was replaced). Scan the current one.");
            return;
        }
        uint8_t fp[LW_FP_LEN];
        if (rc == LW_OK) {
            lw_fingerprint(fp, r.public_key);
            if (!lw_ct_equal(fp, p.fp, LW_FP_LEN)) {
                lw_reply_error(rq, 400, "invalid_payload", "The QR code does not match the device's key.");
                return;
            }
            if (lw_now_ms() > r.ref_expires_at && strcmp(r.state, "pending") == 0) {
                lw_reply_error(rq, 410, "expired", "This QR code expired. Scan the current one.");
                return;
            }
        }
    } else {
        char code[LW_CODE_STRLEN];
        if (lw_code_normalize(code_text, strlen(code_text), code) != LW_OK) {
            lw_reply_error(rq, 400, "invalid_request",
                           "A pairing code has 8 letters and digits (XXXX-XXXX).");
            return;
        }
        lw_keyed_hash(h, app->hash_key, code, strlen(code));
        rc = lw_store_link_get_by_code(app->store, h, &r);
        if (rc == LW_ENOTFOUND) {
            lw_reply_error(rq, 404, "invalid_code",
                           "No device is waiting with this code. Check it and try again.");
            return;
        }
    }
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "finding the link request");
        return;
    }
    /* The phone that scanned may scan again (say, to retry with the right
     * PIN); anyone else finds the code used. */
    bool rescan = strcmp(r.state, "scanned") == 0 && strcmp(r.scanned_by, rq->who.device_id) == 0;
    if ((strcmp(r.state, "pending") != 0 && !rescan) || lw_links_remaining(&r) == 0) {
        refuse_state(rq, &r);
        return;
    }
    /* The payload the primary checks: for a code, the current ref's, which
     * any node can give (whichever node opened the request). */
    char code_payload[LW_PAYLOAD_MAX];
    if (!payload_text && (rc = lw_links_payload(app->links, &r, code_payload)) != LW_OK) {
        if (rc == LW_ENOTFOUND)
            refuse_state(rq, &r);
        else
            lw_api_store_failed(rq, rc, "making the payload");
        return;
    }
    json_t *payload_json = json_string(payload_text ? payload_text : code_payload);

    lw_strlcpy(r.account_id, rq->who.account_id, sizeof r.account_id);
    lw_strlcpy(r.scanned_by, rq->who.device_id, sizeof r.scanned_by);
    rc = rescan ? LW_OK : lw_store_link_transition(app->store, &r, "pending", "scanned");
    if (rc == LW_ECONFLICT) {
        json_decref(payload_json);
        lw_reply_error(rq, 409, "already_scanned",
                       "This QR code was already used. Reload it on the other device.");
        return;
    }
    if (rc != LW_OK) {
        json_decref(payload_json);
        lw_api_store_failed(rq, rc, "recording the scan");
        return;
    }
    if (!rescan)
        lw_links_notify(app->links, r.id, "link.scanned", false);

    lw_account a;
    memset(&a, 0, sizeof a);
    lw_store_account_get(app->store, rq->who.account_id, &a);
    /* The phone is making this very request: that is where it is now. */
    lw_place phone_at;
    lw_place_lookup(&app->domain, rq->ip, &phone_at, NULL);
    lw_risk k;
    lw_risk_link(&app->domain, &r, rq->who.account_id, &phone_at, &k);
    json_t *req_json = request_json(&r);
    json_object_set_new(req_json, "distance_km",
                        k.distance_km >= 0 ? json_integer((json_int_t)(k.distance_km + 0.5)) : json_null());
    json_object_set_new(req_json, "anonymous", json_boolean(k.anonymous));
    json_t *ans = json_pack("{s:o, s:o, s:{s:s, s:O}, s:b}", "request", req_json, "payload", payload_json,
                            "risk", "level", lw_risk_name(k.level), "reasons", k.reasons, "pin_required",
                            a.pin_hash[0] != '\0' || app->cfg.pin_required);
    if (k.level == LW_RISK_HIGH && app->cfg.block_high_risk)
        json_object_set_new(ans, "blocked", json_true());
    lw_risk_clear(&k);
    lw_wipe(&a, sizeof a);
    if (!rescan)
        lw_metrics_inc("linkward_link_requests_total", "outcome=\"scanned\"");
    lw_log_info("link", "request %.8s scanned by %.8s", r.id, rq->who.device_id);
    lw_reply_json(rq, 200, ans);
}

/* Loads the request named in the path for the primary that scanned it. */
static bool load_scanned(lw_rq *rq, lw_link_request *r)
{
    int rc = lw_store_link_get(rq->app->store, rq->param, r);
    if (rc == LW_OK && strcmp(r->scanned_by, rq->who.device_id) != 0)
        rc = LW_ENOTFOUND; /* not revealing other accounts' requests */
    if (rc == LW_ENOTFOUND) {
        lw_reply_error(rq, 404, "not_found", "No such link request scanned by this device.");
        return false;
    }
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "loading the link request");
        return false;
    }
    if (lw_links_remaining(r) == 0 || strcmp(r->state, "expired") == 0) {
        lw_reply_error(rq, 410, "expired",
                       "This link request expired. Reload the QR code on the other device.");
        return false;
    }
    if (strcmp(r->state, "scanned") != 0) {
        lw_reply_error(rq, 409, "not_pending", "This link request was already answered (%s).", r->state);
        return false;
    }
    return true;
}

/* The device limit in words (PRODUCT §2.7): what is full, and how to free a
 * slot, for the phone and for the device that asked. */
#define LIMIT_TEXT "This account already has %ld linked devices, the limit."
#define LIMIT_PHONE_HINT                                                                                     \
    " Log one out from your phone (Linked devices) to free a slot, then link the other device again."
#define LIMIT_COMPANION_HINT                                                                                 \
    " Log one out from the phone (Linked devices) to free a slot, then link this device again."
#define LIMIT_TEXT_MAX 256

/* Ends request r, found in state `from`, because its account is at the
 * device limit: denied, and the companion waiting on it hears at once
 * link.denied with reason "limit" and the sentence, rather than waiting for
 * an approval that cannot come. Nothing is said if the request moved on
 * meanwhile (whoever moved it told the companion). */
static void deny_at_limit(lw_server *app, lw_link_request *r, const char *from)
{
    int rc = lw_store_link_transition(app->store, r, from, "denied");
    if (rc != LW_OK) {
        if (rc != LW_ECONFLICT)
            lw_log_error("link", "cannot end request %.8s at the device limit: %s", r->id, lw_strerror(rc));
        return;
    }
    char text[LIMIT_TEXT_MAX];
    int n = snprintf(text, sizeof text, LIMIT_TEXT LIMIT_COMPANION_HINT, app->cfg.max_companions);
    if (n < 0 || (size_t)n >= sizeof text) /* cannot happen: a fixed sentence and one number */
        lw_log_error("link", "the device-limit sentence was cut");
    lw_links_push(app->links, r->id, lw_event_link_denied_limit(text, app->cfg.max_companions), true);
    lw_metrics_inc("linkward_link_requests_total", "outcome=\"denied\"");
    lw_log_info("link", "request %.8s denied: the account is at its device limit", r->id);
}

/* At the limit: answers 409 device_limit and ends the request (above). */
static bool at_device_limit(lw_rq *rq, lw_link_request *r, const char *account_id)
{
    long n = 0;
    /* A device linking again replaces its own session: that one does not count. */
    int rc = lw_store_session_count_active_companions(rq->app->store, account_id, r->public_key, &n);
    if (rc != LW_OK)
        return lw_api_store_failed(rq, rc, "counting devices");
    if (n >= rq->app->cfg.max_companions) {
        deny_at_limit(rq->app, r, "scanned");
        lw_reply_error_x(rq, 409, "device_limit",
                         json_pack("{s:I}", "limit", (json_int_t)rq->app->cfg.max_companions),
                         LIMIT_TEXT LIMIT_PHONE_HINT, rq->app->cfg.max_companions);
        return true;
    }
    return false;
}

typedef struct approve_op {
    lw_rq *rq; /* NULL once the client is gone */
    lw_server *app;
    lw_link_request r;
    char device_id[LW_ID_STRLEN];
    lw_account a;
    bool accept_risk, has_pin;
    char pin[17];
    uint8_t msg[LW_PROOF_MAX], primary_pk[LW_PK_LEN];
    size_t msg_len;
    int verified;
} approve_op;

static void approve_op_free(approve_op *op)
{
    lw_rq_release(&op->rq);
    lw_wipe(op, sizeof *op);
    lw_free(op);
}

static void approve_finish(lw_server *app, lw_rq *rq, lw_link_request *r)
{
    int rc = lw_store_link_transition(app->store, r, "scanned", "approved");
    if (rc != LW_OK) {
        if (rq && rc == LW_ECONFLICT)
            lw_reply_error(rq, 409, "not_pending", "This link request was already answered.");
        else if (rq)
            lw_api_store_failed(rq, rc, "approving");
        return;
    }
    lw_links_notify(app->links, r->id, "link.approved", false);
    lw_metrics_inc("linkward_link_requests_total", "outcome=\"approved\"");
    lw_log_info("link", "request %.8s approved", r->id);
    if (rq)
        lw_reply_json(rq, 200, json_pack("{s:s}", "state", "approved"));
}

static void approve_pin_done(void *arg, int verified, const char *new_hash)
{
    approve_op *op = arg;
    if (lw_api_pin_result(op->app, op->r.account_id, op->device_id, verified, op->rq))
        approve_finish(op->app, op->rq, &op->r);
    approve_op_free(op);
}

/* The approval once the account signature verified: the account's state,
 * the risk, the device limit, then the PIN or the approval itself. True
 * when op now belongs to the PIN job. */
static bool approve_verified(lw_rq *rq, approve_op *op)
{
    lw_server *app = op->app;
    lw_link_request *r = &op->r;
    lw_account *a = &op->a;
    if (a->pin_change_required) {
        lw_reply_error(
            rq, 403, "pin_change_required",
            "Your account was secured after an alert: change your two-step PIN before linking devices.");
        return false;
    }
    lw_place phone_at;
    lw_place_lookup(&app->domain, rq->ip, &phone_at, NULL);
    lw_risk k;
    lw_risk_link(&app->domain, r, a->id, &phone_at, &k);
    lw_risk_level level = k.level;
    lw_risk_clear(&k);
    if (level == LW_RISK_HIGH && app->cfg.block_high_risk) {
        lw_reply_error(rq, 403, "risk_blocked", "This server does not allow high-risk links.");
        return false;
    }
    if (level == LW_RISK_HIGH && !op->accept_risk) {
        lw_reply_error(rq, 409, "risk_not_accepted",
                       "This link looks risky; confirm it explicitly (accept_risk) if it really is you.");
        return false;
    }
    if (at_device_limit(rq, r, a->id))
        return false;
    bool has_pin = a->pin_hash[0] != '\0';
    if (!has_pin && app->cfg.pin_required) {
        lw_reply_error(rq, 403, "pin_required",
                       "This server requires a two-step PIN. Set one first (linkward phone pin set).");
        return false;
    }
    if (!has_pin) {
        approve_finish(app, rq, r);
        return false;
    }
    if (!op->has_pin) {
        lw_reply_error(rq, 403, "pin_required", "Enter your two-step PIN to link a device.");
        return false;
    }
    if (lw_api_rate_limited(rq, &app->cfg.rate_pin, "acct", a->id, a->id))
        return false;
    if (lw_api_pin_locked(rq, a))
        return false;
    int rc = lw_pins_submit(app->pins, a->id, op->pin, a->pin_hash, NULL, lw_pin_inflight_cap(&app->cfg, a),
                            approve_pin_done, op);
    lw_wipe(op->pin, sizeof op->pin);
    if (rc != LW_OK) {
        lw_api_pin_refused(rq, rc);
        return false;
    }
    return true;
}

/* On a worker thread: only op's own copies are touched. */
static void approve_verify(void *arg)
{
    approve_op *op = arg;
    op->verified = lw_verify(op->r.account_sig, op->msg, op->msg_len, op->primary_pk);
}

/* Back on the loop. */
static void approve_verify_done(void *arg)
{
    approve_op *op = arg;
    lw_rq *rq = op->rq;
    if (!rq) {
        /* The client left while its signature was checked: nothing was changed. */
    } else if (op->verified != LW_OK) {
        lw_reply_error(rq, 400, "invalid_signature",
                       "The account signature over the device key does not verify with this phone's key.");
    } else if (approve_verified(rq, op)) {
        return; /* op now belongs to the PIN job */
    }
    approve_op_free(op);
}

void lw_api_link_approve(lw_rq *rq)
{
    lw_server *app = rq->app;
    approve_op *op = lw_calloc(1, sizeof *op);
    if (!op) {
        lw_reply_error(rq, 503, "unavailable", "Out of memory.");
        return;
    }
    lw_link_request *r = &op->r;
    lw_session primary;
    const char *pin;
    if (!load_scanned(rq, r))
        goto out;
    if (lw_body_b64(rq, "account_signature", true, r->account_sig, LW_SIG_LEN, NULL) != LW_OK ||
        lw_body_str(rq, "pin", false, 16, &pin) != LW_OK ||
        lw_body_bool(rq, "accept_risk", false, &op->accept_risk))
        goto out;
    int rc = lw_store_session_get(app->store, rq->who.device_id, &primary);
    if (rc == LW_OK)
        rc = lw_store_account_get(app->store, rq->who.account_id, &op->a);
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "loading the account");
        goto out;
    }
    if (lw_proof_build(op->msg, sizeof op->msg, &op->msg_len, LW_PROOF_ACCOUNT, op->a.id, r->public_key,
                       LW_PK_LEN) != LW_OK) {
        lw_reply_error(rq, 400, "invalid_signature",
                       "The account signature over the device key does not verify with this phone's key.");
        goto out;
    }
    memcpy(op->primary_pk, primary.public_key, LW_PK_LEN);
    op->has_pin = pin != NULL;
    if (pin)
        lw_strlcpy(op->pin, pin, sizeof op->pin);
    op->app = app;
    lw_strlcpy(op->device_id, rq->who.device_id, sizeof op->device_id);
    /* The account signature (PRODUCT.md §2.5: the phone vouches for this
     * device key, so the server cannot slip in a device the phone never
     * signed) is verified off the loop; everything after it waits for it. */
    if (!offload(rq, &op->rq, approve_verify, approve_verify_done, op))
        approve_op_free(op);
    return;
out:
    lw_wipe(op, sizeof *op);
    lw_free(op);
}

void lw_api_link_deny(lw_rq *rq)
{
    lw_link_request r;
    if (!load_scanned(rq, &r))
        return;
    int rc = lw_store_link_transition(rq->app->store, &r, "scanned", "denied");
    if (rc == LW_ECONFLICT) {
        lw_reply_error(rq, 409, "not_pending", "This link request was already answered.");
        return;
    }
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "denying");
        return;
    }
    lw_links_notify(rq->app->links, r.id, "link.denied", true);
    lw_metrics_inc("linkward_link_requests_total", "outcome=\"denied\"");
    lw_log_info("link", "request %.8s denied", r.id);
    lw_reply_json(rq, 200, json_pack("{s:s}", "state", "denied"));
}

typedef struct complete_op {
    lw_rq *rq; /* NULL once the client is gone */
    uint8_t sig[LW_SIG_LEN], msg[LW_PROOF_MAX], pk[LW_PK_LEN];
    size_t msg_len;
    int verified;
} complete_op;

static void complete_verified(lw_rq *rq);

/* On a worker thread: only op's own copies are touched. */
static void complete_verify(void *arg)
{
    complete_op *op = arg;
    op->verified = lw_verify(op->sig, op->msg, op->msg_len, op->pk);
}

/* Back on the loop. */
static void complete_verify_done(void *arg)
{
    complete_op *op = arg;
    lw_rq *rq = op->rq;
    int verified = op->verified;
    lw_rq_release(&op->rq);
    lw_wipe(op, sizeof *op);
    lw_free(op);
    if (!rq)
        return; /* the client left while its signature was checked: nothing was changed */
    if (verified != LW_OK) {
        lw_reply_error(rq, 400, "invalid_signature",
                       "The signature does not prove possession of the device key.");
        return;
    }
    if (lw_links_remaining(rq->link) == 0) {
        lw_reply_error(rq, 410, "expired", "This link request expired.");
        return;
    }
    complete_verified(rq);
}

void lw_api_link_complete(lw_rq *rq)
{
    lw_link_request *r = rq->link;
    if (!same_request(rq))
        return;
    complete_op *op = lw_calloc(1, sizeof *op);
    if (!op) {
        lw_reply_error(rq, 503, "unavailable", "Out of memory.");
        return;
    }
    if (lw_body_b64(rq, "signature", true, op->sig, sizeof op->sig, NULL) != LW_OK)
        goto out;
    if (lw_links_remaining(r) == 0 || strcmp(r->state, "expired") == 0) {
        lw_reply_error(rq, 410, "expired", "This link request expired.");
        goto out;
    }
    if (strcmp(r->state, "approved") != 0) {
        lw_reply_error(rq, 409, "not_pending", "This link request is %s, not approved.", r->state);
        goto out;
    }
    if (lw_proof_build(op->msg, sizeof op->msg, &op->msg_len, LW_PROOF_LINK, r->id, r->nonce,
                       sizeof r->nonce) != LW_OK) {
        lw_reply_error(rq, 400, "invalid_signature",
                       "The signature does not prove possession of the device key.");
        goto out;
    }
    memcpy(op->pk, r->public_key, LW_PK_LEN);
    /* The possession proof (PRODUCT.md §2.6: only the holder of the device
     * key that was approved gets the credential) is verified off the loop;
     * the link completes when it comes back good. */
    op->verified = LW_ECRYPTO;
    if (!offload(rq, &op->rq, complete_verify, complete_verify_done, op))
        goto out;
    return;
out:
    lw_wipe(op, sizeof *op);
    lw_free(op);
}

static void complete_verified(lw_rq *rq)
{
    lw_server *app = rq->app;
    lw_link_request *r = rq->link;
    lw_session *s = lw_calloc(1, sizeof *s);
    if (!s) {
        lw_reply_error(rq, 503, "unavailable", "Out of memory.");
        return;
    }
    int64_t now = lw_now_ms();
    lw_random_id(s->id);
    lw_strlcpy(s->account_id, r->account_id, sizeof s->account_id);
    lw_strlcpy(s->role, LW_ROLE_COMPANION, sizeof s->role);
    lw_strlcpy(s->name, r->name, sizeof s->name);
    lw_strlcpy(s->browser, r->browser, sizeof s->browser);
    lw_strlcpy(s->browser_version, r->browser_version, sizeof s->browser_version);
    lw_strlcpy(s->os, r->os, sizeof s->os);
    lw_strlcpy(s->os_version, r->os_version, sizeof s->os_version);
    lw_strlcpy(s->device_model, r->device_model, sizeof s->device_model);
    /* The risk as the primary saw it: the request's address, judged against
     * where the phone was when it approved (its latest request here). */
    lw_place phone_at;
    bool phone_known = lw_sessions_place(app->sessions, r->scanned_by, &phone_at);
    lw_risk k;
    lw_risk_link(&app->domain, r, r->account_id, phone_known ? &phone_at : NULL, &k);
    /* The credential goes to whoever completes, usually from where it asked.
     * The record holds that address: the place and network the device is
     * really at, first and last seen. */
    lw_place here;
    lw_netinfo here_net;
    lw_api_place_lookup(rq, &here, &here_net);
    lw_place_seen_first(&here, s);
    memcpy(s->public_key, r->public_key, LW_PK_LEN);
    memcpy(s->account_sig, r->account_sig, LW_SIG_LEN);
    s->linked_at = now;
    s->last_active_at = now;
    lw_strlcpy(s->state, "active", sizeof s->state);
    s->persistent = r->persistent;

    char token[LW_CRED_STRLEN];
    lw_ended *replaced = NULL;
    size_t nreplaced = 0;
    int rc = lw_sessions_prepare(app->sessions, s, token);
    if (rc == LW_OK)
        rc = lw_store_link_complete(app->store, r->id, s, app->cfg.max_companions, &replaced, &nreplaced);
    if (rc != LW_OK) {
        if (rc == LW_ELIMIT) {
            /* Two approvals raced for the last slot and this one lost. */
            deny_at_limit(app, r, "approved");
            lw_reply_error_x(rq, 409, "device_limit",
                             json_pack("{s:I}", "limit", (json_int_t)app->cfg.max_companions),
                             LIMIT_TEXT LIMIT_COMPANION_HINT, app->cfg.max_companions);
        } else if (rc == LW_ECONFLICT)
            lw_reply_error(rq, 409, "not_pending", "This link request was already completed.");
        else
            lw_api_store_failed(rq, rc, "linking the device");
        goto out;
    }
    lw_sessions_cache(app->sessions, s);
    /* The same key's earlier session ended in the completion's transaction
     * (relinked): its sockets and the account's devices hear it now. */
    lw_end_request relinked = {.scope = LW_END_TOLD, .told = replaced, .ntold = nreplaced};
    lw_sessions_end_where(app->sessions, &relinked, NULL);
    lw_free(replaced);
    lw_links_notify(app->links, r->id, "link.completed", true);

    /* Tell the account: the live event for screens, the alert for the record. */
    json_t *ev = lw_event_device_linked(lw_record_json(s, NULL));
    if (ev)
        lw_bus_to_account(app->bus, s->account_id, s->id, ev);
    json_decref(ev);
    char where[2 * LW_PLACE_MAX + 4];
    lw_place_describe(s->city, s->country, where, sizeof where);
    char message[LW_ALERT_TEXT_MAX];
    lw_alert_text_linked(message, sizeof message, s->name, where);
    lw_alert_raise(&app->domain, s->account_id, "device.linked", s->id, message,
                   json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "name", s->name, "browser", s->browser, "os",
                             s->os, "ip", s->ip, "place", where, "network", s->network));
    lw_risk_link_alerts(&app->domain, &k, s->account_id, s->id, s->name);
    lw_risk_link_completed(&app->domain, &k, &here, &here_net, s->account_id, s->id, s->name,
                           now - r->created_at, now);

    lw_account a;
    const char *handle = "";
    if (lw_store_account_get(app->store, s->account_id, &a) == LW_OK)
        handle = a.handle;
    char challenge[lw_b64_enc_len(32)];
    lw_b64_encode(challenge, s->challenge, sizeof s->challenge);
    json_t *ans =
        json_pack("{s:s, s:s, s:s, s:I, s:s, s:b}", "device_id", s->id, "account_id", s->account_id, "handle",
                  handle, "token_expires_in", (json_int_t)lw_api_secs(s->cred_expires_at - lw_now_ms()),
                  "challenge", challenge, "persistent", s->persistent);
    if (lw_api_cookie_wanted(rq)) {
        lw_api_set_session_cookie(rq, token, s->persistent);
        if (rq->cookie_auth)
            lw_api_set_cookie(rq, "lw_link", "", 0); /* the link token is spent */
    } else {
        json_object_set_new(ans, "token", json_string(token));
    }
    lw_wipe(token, sizeof token);
    lw_metrics_inc("linkward_link_requests_total", "outcome=\"completed\"");
    lw_log_info("link", "request %.8s completed: device %.8s linked", r->id, s->id);
    lw_reply_json(rq, 201, ans);
out:
    lw_risk_clear(&k);
    lw_wipe(s, sizeof *s);
    lw_free(s);
}
