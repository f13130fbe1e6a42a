#include <stdio.h>
#include <string.h>

#include "alert.h"
#include "api.h"
#include "log.h"
#include "metrics.h"
#include "lw.h"
#include "pin.h"
#include "session.h"

int lw_api_pin_inflight_cap(lw_server *app, const lw_account *a)
{
    int left = app->cfg.pin_max_failures - a->pin_failures;
    if (left < 1)
        left = 1; /* past the limit each try locks again, one at a time */
    return left < 4 ? left : 4;
}

bool lw_api_pin_locked(lw_rq *rq, const lw_account *a)
{
    int64_t now = lw_now_ms();
    if (a->pin_locked_until <= now)
        return false;
    char ra[32];
    long long left = lw_api_secs(a->pin_locked_until - now);
    snprintf(ra, sizeof ra, "%lld", left);
    lw_rq_header(rq, "retry-after", ra);
    lw_reply_error_x(rq, 423, "pin_locked", json_pack("{s:I}", "retry_after", (json_int_t)left),
                     "Too many wrong PINs. Try again in %lld second%s.", left, left == 1 ? "" : "s");
    return true;
}

bool lw_api_pin_result(lw_server *app, const char *account_id, const char *device_id, int verified, lw_rq *rq)
{
    lw_account a;
    int rc = lw_store_account_get(app->store, account_id, &a);
    if (rc != LW_OK) {
        if (rq)
            lw_api_store_failed(rq, rc, "loading the account");
        return false;
    }
    if (verified == LW_OK) {
        if (a.pin_failures != 0 || a.pin_locked_until != 0) {
            a.pin_failures = 0;
            a.pin_locked_until = 0;
            lw_store_account_update(app->store, &a);
        }
        return true;
    }
    if (verified != LW_EDENIED) {
        if (rq)
            lw_reply_error(rq, 500, "internal", "The PIN could not be checked.");
        return false;
    }
    int64_t now = lw_now_ms();
    lw_metrics_inc("linkward_pin_failures_total", NULL);
    a.pin_failures++;
    int64_t lock = lw_pin_lock_duration(a.pin_failures, app->cfg.pin_max_failures, app->cfg.pin_lockout_ms);
    if (lock > 0)
        a.pin_locked_until = now + lock;
    rc = lw_store_account_update(app->store, &a);
    if (rc != LW_OK)
        lw_log_error("pin", "cannot record a PIN failure: %s", lw_strerror(rc));
    int left = app->cfg.pin_max_failures - a.pin_failures;
    if (left < 0)
        left = 0;
    /* Ten wrong PINs in a row are one pin.failed alert counting them, not
     * ten; the first of a run (after a right PIN) starts a new one. */
    char text[LW_ALERT_TEXT_MAX];
    lw_alert_text_pin_failed(text, sizeof text, a.pin_failures, left);
    json_t *details = json_pack("{s:i, s:i}", "failures", a.pin_failures, "attempts_left", left);
    if (a.pin_failures == 1)
        lw_alert_raise(&app->domain, account_id, "pin.failed", device_id, text, details);
    else
        lw_alert_raise_burst(&app->domain, account_id, "pin.failed", device_id, text, details);
    if (lock > 0) {
        lw_alert_text_pin_locked(text, sizeof text, a.pin_failures, lock);
        lw_alert_raise_burst(&app->domain, account_id, "pin.locked", device_id, text,
                             json_pack("{s:I, s:i}", "locked_for_seconds", (json_int_t)lw_api_secs(lock),
                                       "failures", a.pin_failures));
    }
    if (rq) {
        if (lock > 0) {
            lw_api_pin_locked(rq, &a);
        } else {
            lw_reply_error_x(rq, 403, "wrong_pin", json_pack("{s:i}", "attempts_left", left),
                             "Wrong PIN. %d attempt%s left before a lockout.", left, left == 1 ? "" : "s");
        }
    }
    return false;
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
    rc = lw_pins_submit(app->pins, a.id, has_pin ? pin : NULL, a.pin_hash, disable ? NULL : new_pin,
                        lw_api_pin_inflight_cap(app, &a), pin_op_done, op);
    lw_wipe(&a, sizeof a);
    if (rc != LW_OK) {
        lw_free(op);
        lw_api_pin_refused(rq, rc);
        return;
    }
    lw_rq_guard(rq, &op->rq);
}

void lw_api_pin_set(lw_rq *rq)
{
    pin_op_start(rq, false);
}

void lw_api_pin_disable(lw_rq *rq)
{
    pin_op_start(rq, true);
}
