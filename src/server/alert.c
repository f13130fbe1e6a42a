#include "alert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "log.h"
#include "metrics.h"
#include "lw.h"

json_t *lw_alert_json(const lw_alert *a)
{
    char t[LW_TIME_STRLEN];
    lw_time_format(a->created_at, t);
    json_t *details = json_loads(a->details[0] ? a->details : "{}", 0, NULL);
    if (!details)
        details = json_object();
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:o, s:b}", "id", a->id, "kind", a->kind, "created_at", t,
                          "device_id", a->device_id, "details", details, "acked", a->acked_at > 0);
    /* How the holder answered (it_was_me, logged_out_device, secured_account)
     * and from which device: always the primary's. */
    if (j) {
        json_object_set_new(j, "answer", a->answer[0] ? json_string(a->answer) : json_null());
        json_object_set_new(j, "answered_by", a->answered_by[0] ? json_string(a->answered_by) : json_null());
    }
    return j;
}

int lw_alert_raise(lw_app *app, const char *account_id, const char *kind, const char *device_id,
                   json_t *details)
{
    lw_alert a;
    memset(&a, 0, sizeof a);
    lw_random_id(a.id);
    lw_strlcpy(a.account_id, account_id, sizeof a.account_id);
    lw_strlcpy(a.kind, kind, sizeof a.kind);
    lw_strlcpy(a.device_id, device_id ? device_id : "", sizeof a.device_id);
    a.created_at = lw_now_ms();
    char *text = details ? json_dumps(details, JSON_COMPACT) : NULL;
    json_decref(details);
    if (text && lw_strlcpy(a.details, text, sizeof a.details) != LW_OK)
        lw_strlcpy(a.details, "{\"truncated\":true}", sizeof a.details);
    free(text);

    char label[64];
    snprintf(label, sizeof label, "kind=\"%s\"", a.kind);
    lw_metrics_inc("linkward_alerts_total", label);
    int rc = lw_store_alert_insert(app->store, &a);
    if (rc != LW_OK) {
        lw_log_error("alert", "cannot store %s alert: %s", kind, lw_strerror(rc));
        return rc;
    }
    json_t *ev = json_pack("{s:s, s:o}", "event", "alert", "alert", lw_alert_json(&a));
    if (ev)
        lw_bus_to_account(app->bus, account_id, NULL, ev);
    json_decref(ev);
    lw_log_info("alert", "%s for account %.8s", kind, account_id);
    return LW_OK;
}
