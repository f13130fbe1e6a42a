#include "alert.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "log.h"
#include "metrics.h"
#include "lw.h"

json_t *lw_alert_json(const lw_alert *a)
{
    char t[LW_TIME_STRLEN], u[LW_TIME_STRLEN];
    lw_time_format(a->created_at, t);
    lw_time_format(a->updated_at > 0 ? a->updated_at : a->created_at, u);
    json_t *details = json_loads(a->details[0] ? a->details : "{}", 0, NULL);
    if (!details)
        details = json_object();
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:o, s:b, s:i, s:s}", "id", a->id, "kind", a->kind,
                          "created_at", t, "device_id", a->device_id, "details", details, "acked",
                          a->acked_at > 0, "count", a->count > 0 ? a->count : 1, "updated_at", u);
    /* How the holder answered (it_was_me, logged_out_device, secured_account)
     * and from which device: always the primary's. */
    if (j) {
        json_object_set_new(j, "answer", a->answer[0] ? json_string(a->answer) : json_null());
        json_object_set_new(j, "answered_by", a->answered_by[0] ? json_string(a->answered_by) : json_null());
    }
    return j;
}

/* Fills a from the arguments; the message goes into details. */
static int alert_make(lw_alert *a, const char *account_id, const char *kind, const char *device_id,
                      const char *message, json_t *details)
{
    memset(a, 0, sizeof *a);
    lw_random_id(a->id);
    lw_strlcpy(a->account_id, account_id, sizeof a->account_id);
    lw_strlcpy(a->kind, kind, sizeof a->kind);
    lw_strlcpy(a->device_id, device_id ? device_id : "", sizeof a->device_id);
    a->created_at = lw_now_ms();
    a->updated_at = a->created_at;
    a->count = 1;
    if (!details)
        details = json_object();
    if (!details)
        return LW_ENOMEM;
    if (message && json_object_set_new(details, "message", json_string(message)) != 0) {
        json_decref(details);
        return LW_ENOMEM;
    }
    char *text = json_dumps(details, JSON_COMPACT);
    json_decref(details);
    if (!text)
        return LW_ENOMEM;
    /* Too long to keep whole (names, places): the sentence is what matters. */
    if (lw_strlcpy(a->details, text, sizeof a->details) != LW_OK) {
        json_t *short_details = json_pack("{s:b, s:s}", "truncated", 1, "message", message ? message : "");
        char *st = short_details ? json_dumps(short_details, JSON_COMPACT) : NULL;
        json_decref(short_details);
        if (!st || lw_strlcpy(a->details, st, sizeof a->details) != LW_OK)
            lw_strlcpy(a->details, "{\"truncated\":true}", sizeof a->details);
        free(st);
    }
    free(text);
    return LW_OK;
}

static void alert_publish(const lw_domain_deps *deps, const lw_alert *a)
{
    json_t *ev = lw_event_alert(a);
    lw_events_to_account(deps->events, a->account_id, NULL, ev);
    json_decref(ev);
    if (deps->on_alert.raised)
        deps->on_alert.raised(deps->on_alert.ctx, a);
}

static int alert_raise_as(const lw_domain_deps *deps, const char *account_id, const char *kind,
                          const char *device_id, const char *message, json_t *details, bool burst)
{
    lw_alert a;
    int rc = alert_make(&a, account_id, kind, device_id, message, details);
    if (rc != LW_OK) {
        lw_log_error("alert", "cannot make a %s alert: %s", kind, lw_strerror(rc));
        return rc;
    }
    char label[64];
    snprintf(label, sizeof label, "kind=\"%s\"", a.kind);
    lw_metrics_inc("linkward_alerts_total", label);
    lw_alert stored;
    if (burst)
        rc = lw_store_alert_raise(deps->store, &a, a.created_at - LW_ALERT_BURST_MS, &stored);
    else if ((rc = lw_store_alert_insert(deps->store, &a)) == LW_OK)
        stored = a;
    if (rc != LW_OK) {
        lw_log_error("alert", "cannot store %s alert: %s", kind, lw_strerror(rc));
        return rc;
    }
    alert_publish(deps, &stored);
    lw_log_info("alert", "%s for account %.8s (%d in its burst)", kind, account_id, stored.count);
    return LW_OK;
}

int lw_alert_raise(const lw_domain_deps *deps, const char *account_id, const char *kind,
                   const char *device_id, const char *message, json_t *details)
{
    return alert_raise_as(deps, account_id, kind, device_id, message, details, false);
}

int lw_alert_raise_burst(const lw_domain_deps *deps, const char *account_id, const char *kind,
                         const char *device_id, const char *message, json_t *details)
{
    return alert_raise_as(deps, account_id, kind, device_id, message, details, true);
}

/* ---- the sentences ---- */

/* snprintf that says whether the whole text fitted. */
static int textf(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int textf(char *out, size_t cap, const char *fmt, ...)
{
    if (cap == 0)
        return LW_ETOOBIG;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) {
        out[0] = '\0';
        return LW_ETOOBIG;
    }
    return LW_OK;
}

/* A first attempt with names, else a plain sentence: always a whole sentence. */
static int fallback(int rc, char *out, size_t cap, const char *plain)
{
    if (rc == LW_OK)
        return LW_OK;
    if (lw_strlcpy(out, plain, cap) != LW_OK && cap)
        out[0] = '\0';
    return LW_ETOOBIG;
}

static const char *s_if(long long n)
{
    return n == 1 ? "" : "s";
}

int lw_alert_text_pin_failed(char *out, size_t cap, int failures, int left)
{
    char times[32], tries[32];
    if (failures <= 1)
        lw_strlcpy(times, "once", sizeof times);
    else
        snprintf(times, sizeof times, "%d times", failures);
    if (left <= 0)
        lw_strlcpy(tries, "no tries left", sizeof tries);
    else
        snprintf(tries, sizeof tries, "%d tr%s left", left, left == 1 ? "y" : "ies");
    return fallback(textf(out, cap, "Wrong PIN entered %s; %s.", times, tries), out, cap,
                    "A wrong PIN was entered.");
}

int lw_alert_text_duration(char *out, size_t cap, int64_t ms)
{
    long long s = ms <= 0 ? 0 : (long long)((ms + 999) / 1000);
    if (s < 60)
        return textf(out, cap, "%lld second%s", s, s_if(s));
    if (s < 3600) {
        long long m = (s + 59) / 60;
        if (m < 60)
            return textf(out, cap, "%lld minute%s", m, s_if(m));
        s = 3600; /* 59 min 30 s rounds up to the hour */
    }
    if (s < 86400) {
        long long h = s / 3600, m = (s % 3600 + 59) / 60;
        if (m == 60)
            h++, m = 0;
        if (h < 24) {
            if (m == 0)
                return textf(out, cap, "%lld hour%s", h, s_if(h));
            return textf(out, cap, "%lld hour%s and %lld minute%s", h, s_if(h), m, s_if(m));
        }
        s = 86400;
    }
    long long d = s / 86400, h = (s % 86400 + 3599) / 3600;
    if (h == 24)
        d++, h = 0;
    if (h == 0)
        return textf(out, cap, "%lld day%s", d, s_if(d));
    return textf(out, cap, "%lld day%s and %lld hour%s", d, s_if(d), h, s_if(h));
}

int lw_alert_text_pin_locked(char *out, size_t cap, int failures, int64_t lock_ms)
{
    char d[64];
    if (lw_alert_text_duration(d, sizeof d, lock_ms) != LW_OK)
        lw_strlcpy(d, "a while", sizeof d);
    return fallback(
        textf(out, cap, "Too many wrong PINs (%d in a row): PIN entry is locked for %s.", failures, d), out,
        cap, "Too many wrong PINs: PIN entry is locked for a while.");
}

static const char *named(const char *name)
{
    return name && name[0] ? name : "A device";
}

int lw_alert_text_ended(char *out, size_t cap, const char *reason, size_t count, const char *const *names,
                        size_t nnames)
{
    const char *what = lw_end_reason_phrase(reason);
    if (count <= 1)
        return fallback(textf(out, cap, "%s was %s.", named(nnames ? names[0] : NULL), what), out, cap,
                        "A device was logged out.");
    if (nnames > count)
        nnames = count;
    /* "N devices were …: A, B and C." / "…: A, B and 3 more." */
    char list[LW_ALERT_TEXT_MAX];
    size_t used = 0;
    int rc = LW_OK;
    list[0] = '\0';
    for (size_t i = 0; i < nnames && rc == LW_OK; i++) {
        bool last_named = i + 1 == nnames, more = count > nnames;
        const char *sep = i == 0 ? "" : (last_named && !more ? " and " : ", ");
        rc = textf(list + used, sizeof list - used, "%s%s", sep, named(names[i]));
        used += strlen(list + used);
    }
    if (rc == LW_OK && nnames > 0 && count > nnames)
        rc = textf(list + used, sizeof list - used, " and %zu more", count - nnames);
    if (rc == LW_OK && nnames > 0)
        rc = textf(out, cap, "%zu devices were %s: %s.", count, what, list);
    else if (rc == LW_OK)
        rc = textf(out, cap, "%zu devices were %s.", count, what);
    if (rc == LW_OK)
        return LW_OK;
    if (textf(out, cap, "%zu devices were %s.", count, what) == LW_OK)
        return LW_ETOOBIG; /* whole, without the names */
    return fallback(LW_ETOOBIG, out, cap, "Devices were logged out.");
}

int lw_alert_text_theft(char *out, size_t cap, const char *name, const char *ip, bool signature_present)
{
    const char *how = signature_present ? "with a wrong signature by its device key"
                                        : "without a signature by its device key";
    int rc = ip && ip[0]
                 ? textf(out, cap, "%s presented its credential %s (from %s), so it was logged out.",
                         named(name), how, ip)
                 : textf(out, cap, "%s presented its credential %s, so it was logged out.", named(name), how);
    return fallback(rc, out, cap,
                    "A credential was used without its device key, so that device was logged out.");
}

int lw_alert_text_linked(char *out, size_t cap, const char *name, const char *where)
{
    int rc = where && where[0] ? textf(out, cap, "A new device was linked: %s, %s.", named(name), where)
                               : textf(out, cap, "A new device was linked: %s.", named(name));
    return fallback(rc, out, cap, "A new device was linked.");
}
