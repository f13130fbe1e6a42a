/* Link requests: the companion opens one, the primary scans and approves,
 * the companion completes with proof of its key (PRODUCT.md §2). The state
 * machine and its rules are the domain's (link.h, lw_links_scan ...): these
 * handlers parse, apply the rate limits, hand the signatures to the worker,
 * call a step and turn what it returns into the answer. */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "code.h"
#include "cred.h"
#include "link.h"
#include "log.h"
#include "metrics.h"
#include "lw.h"
#include "payload.h"
#include "pin.h"
#include "proof.h"
#include "place.h"
#include "risk.h"
#include "fiber.h"
#include "work.h"

/* The answer to a new link request: a version-40 QR's SVG is ~400 KB. */
#define LINK_ANSWER_MAX (1024 * 1024)

/* Runs run(op) on the worker and done(op) back on the loop, with *slot
 * guarding rq (NULL in done if the client left meanwhile). False, with rq
 * answered and nothing running, if the work queue refused the job.
 * On the request's fiber (PostgreSQL) the fiber waits for the job and done
 * runs on it, so done's store calls wait off the loop too; the held rq
 * lives until the fiber ends, and *slot says whether its client stayed. */
static bool offload(lw_rq *rq, lw_rq **slot, lw_work_fn run, lw_work_fn done, void *op)
{
    if (rq->held && lw_in_fiber()) {
        int rc = lw_fiber_await(rq->app->work, run, op);
        if (rc != LW_OK) {
            lw_api_work_refused(rq, rc);
            return false;
        }
        *slot = rq->req ? rq : NULL;
        done(op);
        return true;
    }
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
    r->client = d.client;
    lw_netinfo net;
    lw_api_place_lookup(rq, &r->place, &net);
    lw_strlcpy(r->place.network, net.network, sizeof r->place.network);

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
                     r->id, "name", r->name, "browser", r->client.browser, "browser_version",
                     r->client.browser_version, "os", r->client.os, "os_version", r->client.os_version,
                     "device_model", r->client.device_model, "ip", r->place.ip, "country", r->place.country,
                     "region", r->place.region, "city", r->place.city, "network", r->place.network,
                     "public_key", pk, "key_fingerprint", fphex, "created_at", t, "expires_in",
                     (json_int_t)lw_api_secs(lw_links_remaining(r)));
}

/* What a refused step answers, by lw_link_status. fmt is the message, where
 * a "%s" stands for the step's detail (an origin, a state), at most once. */
typedef struct refusal {
    int status;
    const char *code, *fmt;
} refusal;

/* Answers a link step that did not happen: a store failure as every handler
 * does, the device limit with the hint for whoever asked (to_phone), else
 * from the handler's table. */
static void refuse(lw_rq *rq, lw_link_step st, const refusal table[LW_LINK_STATUS_COUNT], const char *detail,
                   bool to_phone)
{
    if (st.status == LW_LINK_STORE) {
        lw_api_store_failed(rq, st.rc, st.doing);
        return;
    }
    if (st.status == LW_LINK_DEVICE_LIMIT) {
        char text[LW_LINK_LIMIT_TEXT_MAX];
        lw_links_limit_text(text, sizeof text, st.limit, to_phone);
        lw_reply_error_x(rq, 409, "device_limit", json_pack("{s:I}", "limit", (json_int_t)st.limit), "%s",
                         text);
        return;
    }
    const refusal *e = &table[st.status];
    if (!e->code) { /* a step this handler cannot get: a bug, said once */
        lw_log_error("link", "no answer for link step %d", (int)st.status);
        lw_reply_error(rq, 500, "internal", "The server could not complete this.");
        return;
    }
    const char *at = strstr(e->fmt, "%s");
    if (at)
        lw_reply_error(rq, e->status, e->code, "%.*s%s%s", (int)(at - e->fmt), e->fmt, detail ? detail : "",
                       at + 2);
    else
        lw_reply_error(rq, e->status, e->code, "%s", e->fmt);
}

static const refusal scan_refusals[LW_LINK_STATUS_COUNT] = {
    [LW_LINK_BAD_PAYLOAD] = {400, "invalid_payload", "This is not a Linkward QR code."},
    [LW_LINK_BAD_SIGNATURE] = {400, "invalid_signature", "This QR code was not issued by this server."},
    [LW_LINK_WRONG_ORIGIN] = {400, "wrong_origin", "This QR code names another site (%s)."},
    [LW_LINK_REF_UNKNOWN] =
        {410, "expired",
         "This QR code is no longer valid (it expired or was replaced). Scan the current one."},
    [LW_LINK_KEY_MISMATCH] = {400, "invalid_payload", "The QR code does not match the device's key."},
    [LW_LINK_REF_EXPIRED] = {410, "expired", "This QR code expired. Scan the current one."},
    [LW_LINK_BAD_CODE] = {400, "invalid_request", "A pairing code has 8 letters and digits (XXXX-XXXX)."},
    [LW_LINK_NO_CODE] = {404, "invalid_code", "No device is waiting with this code. Check it and try again."},
    [LW_LINK_EXPIRED] = {410, "expired", "This QR code expired. Reload it on the other device."},
    [LW_LINK_ALREADY_SCANNED] = {409, "already_scanned",
                                 "This QR code was already used. Reload it on the other device."},
    [LW_LINK_ANSWERED] = {409, "not_pending", "This link request was already answered."},
};

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
    lw_link_scan in = {.payload = payload_text,
                       .code = code_text,
                       .account_id = acct,
                       .device_id = rq->who.device_id,
                       .ip = rq->ip};
    lw_link_scanned out;
    lw_link_step st = lw_links_scan(app->links, &in, &out);
    if (st.status != LW_LINK_DONE) {
        refuse(rq, st, scan_refusals, out.origin, true);
        lw_risk_clear(&out.risk);
        return;
    }
    const lw_risk *k = &out.risk;
    json_t *req_json = request_json(&out.r);
    json_object_set_new(req_json, "distance_km",
                        k->distance_km >= 0 ? json_integer((json_int_t)(k->distance_km + 0.5)) : json_null());
    json_object_set_new(req_json, "anonymous", json_boolean(k->anonymous));
    json_t *ans = json_pack("{s:o, s:o, s:{s:s, s:O}, s:b}", "request", req_json, "payload",
                            json_string(out.payload), "risk", "level", lw_risk_name(k->level), "reasons",
                            k->reasons, "pin_required", out.pin_required);
    if (out.blocked)
        json_object_set_new(ans, "blocked", json_true());
    lw_risk_clear(&out.risk);
    lw_reply_json(rq, 200, ans);
}

/* Refusals of the steps on a request the phone scanned (approve, deny). */
static const refusal scanned_refusals[LW_LINK_STATUS_COUNT] = {
    [LW_LINK_NOT_FOUND] = {404, "not_found", "No such link request scanned by this device."},
    [LW_LINK_EXPIRED] = {410, "expired",
                         "This link request expired. Reload the QR code on the other device."},
    [LW_LINK_ANSWERED] = {409, "not_pending", "This link request was already answered (%s)."},
    [LW_LINK_CONFLICT] = {409, "not_pending", "This link request was already answered."},
    [LW_LINK_PIN_CHANGE_REQUIRED] =
        {403, "pin_change_required",
         "Your account was secured after an alert: change your two-step PIN before "
         "linking devices."},
    [LW_LINK_RISK_BLOCKED] = {403, "risk_blocked", "This server does not allow high-risk links."},
    [LW_LINK_RISK_NOT_ACCEPTED] =
        {409, "risk_not_accepted",
         "This link looks risky; confirm it explicitly (accept_risk) if it really is "
         "you."},
    [LW_LINK_PIN_SETUP_REQUIRED] =
        {403, "pin_required", "This server requires a two-step PIN. Set one first (linkward phone pin set)."},
    [LW_LINK_PIN_NEEDED] = {403, "pin_required", "Enter your two-step PIN to link a device."},
};

/* Loads the request named in the path for the primary that scanned it. */
static bool load_scanned(lw_rq *rq, lw_link_request *r)
{
    lw_link_step st = lw_links_load_scanned(rq->app->links, rq->param, rq->who.device_id, r);
    if (st.status == LW_LINK_DONE)
        return true;
    refuse(rq, st, scanned_refusals, r->state, true);
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

/* Answers an approval step, if the client is still there. */
static void approved(lw_rq *rq, lw_link_step st)
{
    if (!rq)
        return;
    if (st.status == LW_LINK_DONE)
        lw_reply_json(rq, 200, json_pack("{s:s}", "state", "approved"));
    else
        refuse(rq, st, scanned_refusals, NULL, true);
}

static void approve_pin_done(void *arg, int verified, const char *new_hash)
{
    approve_op *op = arg;
    if (lw_api_pin_result(op->app, op->r.account_id, op->device_id, verified, op->rq))
        approved(op->rq, lw_links_approve(op->app->links, &op->r));
    approve_op_free(op);
}

/* The approval once the account signature verified: what the domain says
 * (lw_links_approval), then the PIN when one is to be checked. True when op
 * now belongs to the PIN job. */
static bool approve_verified(lw_rq *rq, approve_op *op)
{
    lw_server *app = op->app;
    lw_account *a = &op->a;
    lw_link_step st = lw_links_approval(app->links, &op->r, a, rq->ip, op->accept_risk, op->has_pin);
    if (st.status != LW_LINK_CHECK_PIN) {
        approved(rq, st);
        return false;
    }
    if (lw_api_rate_limited(rq, &app->cfg.rate_pin, "acct", a->id, a->id))
        return false;
    if (lw_api_pin_locked(rq, a))
        return false;
    /* op may be done with when the call returns (on a fiber): the PIN is
     * taken out of it first. rq is guarded already (offload). */
    char pin[sizeof op->pin];
    memcpy(pin, op->pin, sizeof pin);
    lw_wipe(op->pin, sizeof op->pin);
    int rc = lw_api_pin_submit(rq, NULL, a->id, pin, a->pin_hash, NULL, lw_pin_inflight_cap(&app->cfg, a),
                               approve_pin_done, op);
    lw_wipe(pin, sizeof pin);
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
    lw_link_step st = lw_links_deny(rq->app->links, &r);
    if (st.status != LW_LINK_DONE) {
        refuse(rq, st, scanned_refusals, NULL, true);
        return;
    }
    lw_reply_json(rq, 200, json_pack("{s:s}", "state", "denied"));
}

/* Refusals of the completion. */
static const refusal complete_refusals[LW_LINK_STATUS_COUNT] = {
    [LW_LINK_EXPIRED] = {410, "expired", "This link request expired."},
    [LW_LINK_ANSWERED] = {409, "not_pending", "This link request is %s, not approved."},
    [LW_LINK_CONFLICT] = {409, "not_pending", "This link request was already completed."},
};

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
        refuse(rq, (lw_link_step){.status = LW_LINK_EXPIRED}, complete_refusals, NULL, false);
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
    lw_link_step st = lw_links_completable(r);
    if (st.status != LW_LINK_DONE) {
        refuse(rq, st, complete_refusals, r->state, false);
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
    lw_place here;
    lw_netinfo here_net;
    lw_api_place_lookup(rq, &here, &here_net);
    char token[LW_CRED_STRLEN];
    lw_link_step st = lw_links_complete(app->links, r, &here, &here_net, s, token);
    if (st.status != LW_LINK_DONE) {
        refuse(rq, st, complete_refusals, NULL, false);
        goto out;
    }
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
    lw_reply_json(rq, 201, ans);
out:
    lw_wipe(token, sizeof token);
    lw_wipe(s, sizeof *s);
    lw_free(s);
}
