/* "I lost my phone" (POST /v1/account/recover) and a new recovery key for an
 * account (POST /v1/account/recovery-key). docs/security.md, "Recovery key". */
#include <h2o.h>
#include <string.h>

#include "api.h"
#include "log.h"
#include "lw.h"
#include "metrics.h"
#include "pin.h"
#include "place.h"
#include "recovery.h"
#include "session.h"

/* One answer for an unknown handle, an account without a recovery key and a
 * wrong key, given at the same paced time (lw_api_pace_start). */
#define REFUSED_CODE "recovery_refused"
#define REFUSED_TEXT "This handle and recovery key do not match. Check both and try again."

void lw_api_recover(lw_rq *rq)
{
    lw_server *app = rq->app;
    const char *handle_in, *key_in;
    char handle[LW_HANDLE_MAX];
    uint8_t raw[LW_RECOVERY_KEY_LEN], fresh[LW_RECOVERY_KEY_LEN];
    char fresh_text[LW_RECOVERY_TEXT_MAX], fresh_hash[LW_RECOVERY_HASH_MAX], token[LW_CRED_STRLEN];
    struct lw_client_desc d;
    lw_account a;
    memset(&a, 0, sizeof a);
    memset(raw, 0, sizeof raw);
    memset(token, 0, sizeof token);
    memset(fresh_text, 0, sizeof fresh_text);
    lw_session *s = lw_calloc(1, sizeof *s);
    if (!s) {
        lw_reply_error(rq, 503, "unavailable", "Out of memory.");
        return;
    }
    if (lw_api_rate_limited(rq, &app->cfg.rate_recover, "ip", rq->ip, NULL))
        goto out;
    if (lw_body_str(rq, "handle", true, 64, &handle_in) != LW_OK ||
        lw_body_str(rq, "recovery_key", true, LW_RECOVERY_INPUT_MAX - 1, &key_in) != LW_OK ||
        lw_body_b64(rq, "public_key", true, s->public_key, LW_PK_LEN, NULL) != LW_OK ||
        lw_api_client_desc(rq, &d) != LW_OK)
        goto out;
    if (!lw_handle_normalize(handle_in, handle)) {
        lw_reply_error(rq, 400, "invalid_request",
                       "A handle is a phone number in E.164 form (+ and 8-15 digits) or a user name of 3-32 "
                       "letters, digits, '.', '_' or '-'.");
        goto out;
    }
    if (lw_recovery_parse(key_in, raw) != LW_OK) {
        lw_reply_error(
            rq, 400, "invalid_request",
            "The field \"recovery_key\" must be the 32 letters and digits (A-Z, 2-7) of the recovery "
            "key, in groups or not.");
        goto out;
    }
    /* Per handle, whether it exists or not: the limit says nothing about it. */
    if (lw_api_rate_limited(rq, &app->cfg.rate_recover, "handle", handle, NULL))
        goto out;

    lw_paced *pace = lw_api_pace_start(rq);
    int rc = lw_store_account_get_by_handle(app->store, handle, &a);
    if (rc != LW_OK && rc != LW_ENOTFOUND) {
        int status = 500;
        json_t *body = lw_api_store_failure(rq, rc, "recovering the account", &status);
        lw_api_pace_answer(rq, pace, status, body);
        goto out;
    }
    if (rc == LW_ENOTFOUND)
        memset(&a, 0, sizeof a); /* checked all the same, against nothing */
    bool right = lw_recovery_check(app->hash_key, a.id, raw, a.recovery_hash);
    if (!right || rc != LW_OK) {
        char addr[LW_LOG_ADDR_MAX];
        lw_log_warn("recovery", "recovery refused from %s", lw_log_addr(rq->ip, addr));
        lw_metrics_inc("linkward_recoveries_total", "outcome=\"refused\"");
        lw_api_pace_answer(rq, pace, 403, lw_api_error_body(REFUSED_CODE, REFUSED_TEXT));
        goto out;
    }

    int64_t now = lw_now_ms();
    lw_random_id(s->id);
    lw_strlcpy(s->account_id, a.id, sizeof s->account_id);
    lw_strlcpy(s->role, LW_ROLE_PRIMARY, sizeof s->role);
    lw_strlcpy(s->name, d.name, sizeof s->name);
    s->client = d.client;
    lw_place where;
    lw_api_place_lookup(rq, &where, NULL);
    lw_place_seen_first(&where, s);
    s->linked_at = now;
    s->last_active_at = now;
    lw_strlcpy(s->state, "active", sizeof s->state);
    s->persistent = true;
    /* A used key is spent: the answer carries the next one. */
    lw_recovery_generate(fresh, fresh_text);
    lw_recovery_hash(app->hash_key, a.id, fresh, fresh_hash);
    lw_wipe(fresh, sizeof fresh);

    uint64_t epoch = lw_sessions_epoch(app->sessions);
    size_t ended = 0;
    rc = lw_sessions_prepare(app->sessions, s, token);
    if (rc == LW_OK)
        rc = lw_recovery_replace(&app->domain, a.id, NULL, LW_END_RECOVERED, s, fresh_hash,
                                 "Your account was recovered with its recovery key on a new phone: every "
                                 "device was logged out.",
                                 &ended);
    if (rc == LW_ENOTFOUND) { /* deleted meanwhile */
        lw_api_pace_answer(rq, pace, 403, lw_api_error_body(REFUSED_CODE, REFUSED_TEXT));
        goto out;
    }
    if (rc != LW_OK) {
        int status = 500;
        json_t *body = lw_api_store_failure(rq, rc, "recovering the account", &status);
        lw_api_pace_answer(rq, pace, status, body);
        goto out;
    }
    lw_sessions_cache(app->sessions, s, epoch);
    lw_metrics_inc("linkward_recoveries_total", "outcome=\"recovered\"");
    char pk[lw_b64_enc_len(LW_PK_LEN)], challenge[lw_b64_enc_len(32)];
    lw_b64_encode(pk, app->server_pk, LW_PK_LEN);
    lw_b64_encode(challenge, s->challenge, sizeof s->challenge);
    lw_api_pace_answer(rq, pace, 200,
                       json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:I}", "account_id", a.id,
                                 "device_id", s->id, "handle", a.handle, "token", token, "token_expires_in",
                                 (json_int_t)lw_api_secs(s->cred_expires_at - lw_now_ms()), "challenge",
                                 challenge, "server_key", pk, "origin", app->cfg.public_origin,
                                 "recovery_key", fresh_text, "ended", (json_int_t)ended));
out:
    lw_wipe(raw, sizeof raw);
    lw_wipe(token, sizeof token);
    lw_wipe(fresh_text, sizeof fresh_text);
    lw_wipe(&a, sizeof a);
    lw_wipe(s, sizeof *s);
    lw_free(s);
}

/* ---- POST /v1/account/recovery-key ---- */

typedef lw_api_pin_op rekey_op;

/* A new key replaces the old one, which stops working at once. */
static void rekey_now(lw_server *app, lw_rq *rq, const char *account_id)
{
    lw_account a;
    int rc = lw_store_account_get(app->store, account_id, &a);
    uint8_t raw[LW_RECOVERY_KEY_LEN];
    char text[LW_RECOVERY_TEXT_MAX];
    lw_recovery_generate(raw, text);
    if (rc == LW_OK) {
        lw_recovery_hash(app->hash_key, a.id, raw, a.recovery_hash);
        rc = lw_store_account_update(app->store, &a);
    }
    lw_wipe(raw, sizeof raw);
    lw_wipe(&a, sizeof a);
    if (rc != LW_OK) {
        if (rq)
            lw_api_store_failed(rq, rc, "making a recovery key");
        lw_wipe(text, sizeof text);
        return;
    }
    lw_log_info("recovery", "account %.8s has a new recovery key", account_id);
    if (rq)
        lw_reply_json(rq, 201, json_pack("{s:s}", "recovery_key", text));
    lw_wipe(text, sizeof text);
}

static void rekey_pin_right(lw_api_pin_op *op)
{
    rekey_now(op->app, op->rq, op->account_id);
}

void lw_api_recovery_key_new(lw_rq *rq)
{
    lw_server *app = rq->app;
    const char *pin;
    if (lw_body_str(rq, "pin", false, 16, &pin) != LW_OK)
        return;
    if (pin && !lw_pin_valid(pin)) {
        lw_reply_error(rq, 400, "invalid_request", "The field \"pin\" must be exactly 6 digits.");
        return;
    }
    lw_account a;
    int rc = lw_store_account_get(app->store, rq->who.account_id, &a);
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "loading the account");
        return;
    }
    rekey_op *op = NULL;
    if (a.pin_hash[0] == '\0') {
        rekey_now(app, rq, a.id);
        goto out;
    }
    if (!(op = lw_calloc(1, sizeof *op))) {
        lw_reply_error(rq, 503, "unavailable", "Out of memory.");
        goto out;
    }
    if (!lw_api_pin_gate(rq, &a, pin, "Enter your two-step PIN to make a new recovery key.", op,
                         rekey_pin_right))
        lw_free(op);
out:
    lw_wipe(&a, sizeof a);
}
