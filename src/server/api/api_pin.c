#include <stdio.h>
#include <string.h>

#include "alert.h"
#include "fiber.h"
#include "api.h"
#include "log.h"
#include "lw.h"
#include "pin.h"
#include "session.h"

/* 423 pin_locked: entry is locked for `left` more seconds. */
static void reply_locked(lw_rq *rq, long long left)
{
    char ra[32];
    snprintf(ra, sizeof ra, "%lld", left);
    lw_rq_header(rq, "retry-after", ra);
    lw_reply_error_x(rq, 423, "pin_locked", json_pack("{s:I}", "retry_after", (json_int_t)left),
                     "Too many wrong PINs. Try again in %lld second%s.", left, left == 1 ? "" : "s");
}

bool lw_api_pin_locked(lw_rq *rq, const lw_account *a)
{
    long long left = lw_pin_locked_for(a, lw_now_ms());
    if (left == 0)
        return false;
    reply_locked(rq, left);
    return true;
}

bool lw_api_pin_result(lw_server *app, const char *account_id, const char *device_id, int verified, lw_rq *rq)
{
    lw_pin_outcome o = lw_pin_record(&app->domain, account_id, device_id, verified, lw_now_ms());
    if (o.verdict == LW_PIN_RIGHT)
        return true;
    if (!rq)
        return false;
    switch (o.verdict) {
    case LW_PIN_NO_ACCOUNT:
        lw_api_store_failed(rq, o.rc, "loading the account");
        break;
    case LW_PIN_LOCKED:
        reply_locked(rq, o.retry_after);
        break;
    case LW_PIN_WRONG:
        lw_reply_error_x(rq, 403, "wrong_pin", json_pack("{s:i}", "attempts_left", o.attempts_left),
                         "Wrong PIN. %d attempt%s left before a lockout.", o.attempts_left,
                         o.attempts_left == 1 ? "" : "s");
        break;
    default:
        lw_reply_error(rq, 500, "internal", "The PIN could not be checked.");
        break;
    }
    return false;
}

typedef struct pin_wait {
    lw_fiber *f;
    int verified;
    char hash[LW_PIN_HASH_MAX];
} pin_wait;

static void pin_woken(void *arg, int verified, const char *new_hash)
{
    pin_wait *w = arg;
    w->verified = verified;
    if (new_hash)
        lw_strlcpy(w->hash, new_hash, sizeof w->hash);
    lw_fiber_resume(w->f);
}

int lw_api_pin_submit(lw_rq *rq, lw_rq **slot, const char *account_id, const char *pin,
                      const char *stored_hash, const char *new_pin, int max_inflight, lw_pin_done done,
                      void *op)
{
    lw_pins *pins = rq->app->pins;
    if (!(rq->held && lw_in_fiber())) {
        int rc = lw_pins_submit(pins, account_id, pin, stored_hash, new_pin, max_inflight, done, op);
        if (rc == LW_OK && slot)
            lw_rq_guard(rq, slot);
        return rc;
    }
    pin_wait w = {.f = lw_fiber_current()};
    int rc = lw_pins_submit(pins, account_id, pin, stored_hash, new_pin, max_inflight, pin_woken, &w);
    if (rc != LW_OK)
        return rc;
    lw_fiber_suspend();
    if (slot)
        *slot = rq->req ? rq : NULL;
    done(op, w.verified, new_pin ? w.hash : NULL);
    lw_wipe(&w, sizeof w);
    return LW_OK;
}

static void gate_done(void *arg, int verified, const char *new_hash)
{
    lw_api_pin_op *op = arg;
    (void)new_hash;
    if (lw_api_pin_result(op->app, op->account_id, op->device_id, verified, op->rq))
        op->then(op);
    lw_rq_release(&op->rq);
    lw_free(op);
}

bool lw_api_pin_gate(lw_rq *rq, const lw_account *a, const char *pin, const char *why, lw_api_pin_op *op,
                     lw_api_pin_then then)
{
    lw_server *app = rq->app;
    if (!pin) {
        lw_reply_error(rq, 403, "pin_required", "%s", why);
        return false;
    }
    if (lw_api_pin_locked(rq, a) || lw_api_rate_limited(rq, &app->cfg.rate_pin, "acct", a->id, NULL))
        return false;
    op->app = app;
    op->then = then;
    lw_strlcpy(op->account_id, a->id, sizeof op->account_id);
    lw_strlcpy(op->device_id, rq->who.device_id, sizeof op->device_id);
    int rc = lw_api_pin_submit(rq, &op->rq, a->id, pin, a->pin_hash, NULL, lw_pin_inflight_cap(&app->cfg, a),
                               gate_done, op);
    if (rc != LW_OK) {
        lw_api_pin_refused(rq, rc);
        return false;
    }
    return true;
}

/* POST /v1/pin and /v1/pin/disable share one asynchronous job. */
typedef struct pin_op {
    lw_rq *rq; /* NULL once the client is gone */
    lw_server *app;
    char account_id[LW_ID_STRLEN];
    char device_id[LW_ID_STRLEN];
    bool disable;
    bool checked; /* a current PIN was verified */
} pin_op;

static void pin_op_done(void *arg, int verified, const char *new_hash)
{
    pin_op *op = arg;
    lw_server *app = op->app;
    lw_rq *rq = op->rq;
    if (op->checked && !lw_api_pin_result(app, op->account_id, op->device_id, verified, rq))
        goto done;
    if (!op->checked && verified != LW_OK) {
        if (rq)
            lw_reply_error(rq, 500, "internal", "The PIN could not be hashed.");
        goto done;
    }
    lw_account a;
    int rc = lw_store_account_get(app->store, op->account_id, &a);
    if (rc == LW_OK) {
        lw_strlcpy(a.pin_hash, op->disable ? "" : new_hash, sizeof a.pin_hash);
        if (!op->disable)
            a.pin_change_required = false;
        a.pin_failures = 0;
        a.pin_locked_until = 0;
        rc = lw_store_account_update(app->store, &a);
    }
    lw_wipe(&a, sizeof a);
    if (rc != LW_OK) {
        if (rq)
            lw_api_store_failed(rq, rc, "saving the PIN");
        goto done;
    }
    lw_sessions_invalidate_account_views(app->sessions, op->account_id);
    /* Every device hears of it: a PIN changed by someone else is an alarm. */
    lw_alert_raise(&app->domain, op->account_id, "pin.changed", op->device_id,
                   op->disable   ? "The two-step PIN was turned off."
                   : op->checked ? "The two-step PIN was changed."
                                 : "A two-step PIN was set.",
                   json_pack("{s:s}", "change",
                             op->disable   ? "disabled"
                             : op->checked ? "changed"
                                           : "set"));
    lw_log_info("pin", "PIN %s for account %.8s", op->disable ? "disabled" : "set", op->account_id);
    if (rq) {
        json_t *ans = json_pack("{s:b}", "has_pin", !op->disable);
        /* After a change the holder is offered to log out every other device. */
        if (!op->disable && op->checked)
            json_object_set_new(ans, "suggest_logout_all", json_true());
        lw_reply_json(rq, 200, ans);
    }
done:
    lw_rq_release(&op->rq);
    lw_free(op);
}

static void pin_op_start(lw_rq *rq, bool disable)
{
    lw_server *app = rq->app;
    const char *pin = NULL, *new_pin = NULL;
    if (lw_body_str(rq, "pin", disable, 16, &pin) != LW_OK)
        return;
    if (!disable && lw_body_str(rq, "new_pin", true, 16, &new_pin) != LW_OK)
        return;
    if (new_pin && !lw_pin_valid(new_pin)) {
        lw_reply_error(rq, 400, "invalid_request", "The new PIN must be exactly 6 digits.");
        return;
    }
    lw_account a;
    int rc = lw_store_account_get(app->store, rq->who.account_id, &a);
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "loading the account");
        return;
    }
    bool has_pin = a.pin_hash[0] != '\0';
    if (disable && !has_pin) {
        lw_reply_error(rq, 409, "no_pin", "No PIN is set.");
        return;
    }
    if (disable && app->cfg.pin_required) {
        lw_reply_error(rq, 403, "forbidden", "This server requires a two-step PIN; it cannot be disabled.");
        return;
    }
    if (has_pin && !pin) {
        lw_reply_error(rq, 403, "pin_required", "Give the current PIN to change it.");
        return;
    }
    if (has_pin && lw_api_pin_locked(rq, &a))
        return;
    if (has_pin && lw_api_rate_limited(rq, &app->cfg.rate_pin, "acct", a.id, NULL))
        return;
    pin_op *op = lw_calloc(1, sizeof *op);
    if (!op) {
        lw_reply_error(rq, 503, "unavailable", "Out of memory.");
        return;
    }
    op->app = app;
    op->disable = disable;
    op->checked = has_pin;
    lw_strlcpy(op->account_id, rq->who.account_id, sizeof op->account_id);
    lw_strlcpy(op->device_id, rq->who.device_id, sizeof op->device_id);
    rc = lw_api_pin_submit(rq, &op->rq, a.id, has_pin ? pin : NULL, a.pin_hash, disable ? NULL : new_pin,
                           lw_pin_inflight_cap(&app->cfg, &a), pin_op_done, op);
    lw_wipe(&a, sizeof a);
    if (rc != LW_OK) {
        lw_free(op);
        lw_api_pin_refused(rq, rc);
    }
}

void lw_api_pin_set(lw_rq *rq)
{
    pin_op_start(rq, false);
}

void lw_api_pin_disable(lw_rq *rq)
{
    pin_op_start(rq, true);
}
