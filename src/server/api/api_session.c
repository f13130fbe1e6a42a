/* The device's own session, the account's devices, history, alerts, settings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <h2o.h>

#include "alert.h"
#include "api.h"
#include "bus.h"
#include "events.h"
#include "log.h"
#include "lw.h"
#include "proof.h"
#include "record.h"
#include "session.h"

#define DAY_MS (24LL * 3600 * 1000)

static json_t *challenge_json(const uint8_t c[32])
{
    char b[lw_b64_enc_len(32)];
    lw_b64_encode(b, c, 32);
    return json_string(b);
}

bool lw_api_cookie_wanted(lw_rq *rq)
{
    const char *mode = json_string_value(json_object_get(rq->body, "credential"));
    return mode && strcmp(mode, "cookie") == 0;
}

/* Over TLS cookies are __Host- prefixed and Secure (bound to this origin, no
 * Domain, Path=/); on plain-HTTP loopback development they cannot be. */
void lw_api_set_cookie(lw_rq *rq, const char *name, const char *value, long long max_age)
{
    bool tls = strncmp(rq->app->cfg.public_origin, "https://", 8) == 0;
    char age[40] = "";
    if (max_age >= 0)
        snprintf(age, sizeof age, "; Max-Age=%lld", max_age);
    char v[LW_CRED_STRLEN + 200];
    int n = snprintf(v, sizeof v, "%s%s=%s; Path=/; HttpOnly; SameSite=Strict%s%s", tls ? "__Host-" : "",
                     name, value, tls ? "; Secure" : "", age);
    if (n > 0 && n < (int)sizeof v)
        lw_rq_header(rq, "set-cookie", v);
    lw_wipe(v, sizeof v);
}

void lw_api_forget_browser(lw_rq *rq)
{
    lw_rq_header(rq, "clear-site-data", "\"cache\", \"cookies\", \"storage\"");
    lw_api_set_cookie(rq, "lw_session", "", 0);
}

/* The session cookie's own lifetime is long: what expires is the credential
 * inside it, refreshed by the device key. Without "keep me signed in" it is a
 * browser-session cookie. */
void lw_api_set_session_cookie(lw_rq *rq, const char *token, bool persistent)
{
    lw_api_set_cookie(rq, "lw_session", token, persistent ? 365LL * 24 * 3600 : -1);
}

static bool load_own(lw_rq *rq, lw_session *s)
{
    int rc = lw_store_session_get(rq->app->store, rq->who.device_id, s);
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "loading the session");
        return false;
    }
    return true;
}

/* GET /v1/session is what every device asks most: it is rendered once per
 * session into the cache and then copied, with this request's time patched
 * in, until something it shows changes. */
#define TS_SENTINEL "1970-01-01T00:00:00Z"

void lw_api_session_get(lw_rq *rq)
{
    lw_sessions *ss = rq->app->sessions;
    size_t len, ts;
    const char *view = lw_sessions_view(ss, rq->who.device_id, &len, &ts);
    char *own = NULL; /* a view not kept by the cache */
    if (!view) {
        lw_session s;
        lw_account a;
        uint64_t epoch = lw_sessions_view_epoch(ss);
        if (!load_own(rq, &s))
            return;
        int rc = lw_store_account_get(rq->app->store, s.account_id, &a);
        if (rc != LW_OK) {
            lw_api_store_failed(rq, rc, "loading the account");
            return;
        }
        s.last_active_at = 0;
        json_t *ans = json_pack(
            "{s:o, s:{s:s, s:s, s:b, s:b, s:I, s:b}, s:o}", "device", lw_record_json(&s, s.id), "account",
            "id", a.id, "handle", a.handle, "has_pin", a.pin_hash[0] != '\0', "pin_change_required",
            a.pin_change_required, "inactive_ttl_days", (json_int_t)(a.inactive_ttl_ms / DAY_MS),
            "has_recovery_key", a.recovery_hash[0] != '\0', "challenge", challenge_json(s.challenge));
        lw_wipe(&a, sizeof a);
        /* A fixed-width placeholder where this request's time goes. */
        json_object_set_new(json_object_get(ans, "device"), "last_active_at", json_string(TS_SENTINEL));
        char *text = json_dumps(ans, JSON_COMPACT);
        json_decref(ans);
        char *at = text ? strstr(text, "\"last_active_at\":\"" TS_SENTINEL "\"") : NULL;
        if (!at) {
            free(text);
            lw_reply_error(rq, 500, "internal", "Cannot render the session.");
            return;
        }
        len = strlen(text) - 1; /* without the closing brace: token_expires_in follows */
        ts = (size_t)(at - text) + strlen("\"last_active_at\":\"");
        char *copy = lw_malloc(len + 1);
        if (!copy) {
            free(text);
            lw_reply_error(rq, 503, "unavailable", "Out of memory.");
            return;
        }
        memcpy(copy, text, len);
        copy[len] = '\0';
        free(text);
        /* Not kept when something it shows changed while the store was
         * read (or the entry is gone): then it answers this request only. */
        if (lw_sessions_set_view(ss, rq->who.device_id, copy, len, ts, epoch))
            view = lw_sessions_view(ss, rq->who.device_id, &len, &ts);
        else
            view = own = copy;
    }
    if (!rq->req) {
        lw_free(own); /* the client left while the store was read */
        return;
    }
    /* The tail by hand (a snprintf here cost as much as the rest of this function). */
    static const char k1[] = ",\"token_expires_in\":", k2[] = ",\"token_expires_in_ms\":";
    char buf[LW_TIME_STRLEN];
    char tail[sizeof k1 + sizeof k2 + 2 * 20 + 2];
    int64_t left = rq->who.cred_expires_at - lw_now_ms();
    size_t n = 0;
    memcpy(tail, k1, sizeof k1 - 1);
    n += sizeof k1 - 1;
    n += lw_fmt_i64(tail + n, lw_api_secs(left));
    memcpy(tail + n, k2, sizeof k2 - 1);
    n += sizeof k2 - 1;
    n += lw_fmt_i64(tail + n, (long long)(left > 0 ? left : 0));
    tail[n++] = '}';
    char *out = h2o_mem_alloc_pool(&rq->req->pool, len + n);
    memcpy(out, view, len);
    lw_time_format(lw_now_ms(), buf);
    memcpy(out + ts, buf, strlen(TS_SENTINEL)); /* RFC 3339 seconds: always 20 bytes */
    memcpy(out + len, tail, n);
    lw_free(own);
    lw_reply_pooled(rq, 200, "application/json; charset=utf-8", out, len + n);
}

/* Device-bound refresh: a new credential only for a signature by the device
 * key over the current challenge. Anything else means the credential is in
 * the wrong hands: the session ends and the account hears about it. */
void lw_api_session_refresh(lw_rq *rq)
{
    lw_server *app = rq->app;
    lw_session s;
    if (lw_api_rate_limited(rq, &app->cfg.rate_refresh, "device", rq->who.device_id, NULL))
        return;
    if (!load_own(rq, &s))
        return;
    /* A signature that is not one is as missing: the rule is the domain's. */
    uint8_t sig[LW_SIG_LEN];
    bool present = false;
    json_t *v = json_object_get(rq->body, "signature");
    if (json_is_string(v) &&
        lw_b64_decode(sig, sizeof sig, json_string_value(v), json_string_length(v), sizeof sig) == LW_SIG_LEN)
        present = true;
    char token[LW_CRED_STRLEN];
    int rc = lw_sessions_refresh(app->sessions, &s, present ? sig : NULL, rq->ip, token);
    if (rc == LW_EDENIED) {
        /* The same words as the session.ended event: whichever reaches the
         * device first, it says the same. A browser is also told to forget
         * its (now dead) cookie here, as every other answer that finds its
         * session ended does: a page that handles this answer before the
         * session.ended on its socket closes that socket unread, and would
         * otherwise never ask to be forgotten (DELETE /v1/session), keeping
         * a dead HttpOnly cookie it cannot remove itself. */
        if (rq->cookie_auth)
            lw_api_forget_browser(rq);
        lw_reply_error_x(rq, 401, "token_theft", json_pack("{s:s}", "reason", "token_theft"), "%s",
                         lw_end_reason_message("token_theft"));
        return;
    }
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "refreshing the credential");
        return;
    }
    lw_log_debug("session", "device %.8s refreshed its credential", s.id);
    json_t *ans =
        json_pack("{s:I, s:o}", "token_expires_in", (json_int_t)lw_api_secs(s.cred_expires_at - lw_now_ms()),
                  "challenge", challenge_json(s.challenge));
    if (lw_api_cookie_wanted(rq))
        lw_api_set_session_cookie(rq, token, s.persistent);
    else
        json_object_set_new(ans, "token", json_string(token));
    lw_wipe(token, sizeof token);
    json_t *ev =
        lw_event_proof_challenge(challenge_json(s.challenge), lw_api_secs(s.cred_expires_at - lw_now_ms()));
    if (ev)
        lw_bus_to_device(app->bus, s.id, ev);
    json_decref(ev);
    lw_reply_json(rq, 200, ans);
}

void lw_api_session_socket_opened(lw_server *app, const lw_principal *who)
{
    lw_session s;
    if (lw_store_session_get(app->store, who->device_id, &s) != LW_OK)
        return;
    json_t *ev =
        lw_event_proof_challenge(challenge_json(s.challenge), lw_api_secs(s.cred_expires_at - lw_now_ms()));
    if (ev)
        lw_bus_to_device(app->bus, s.id, ev);
    json_decref(ev);
}

static void reply_ended(lw_rq *rq)
{
    lw_api_forget_browser(rq);
    lw_reply_json(rq, 200, json_pack("{s:b}", "ended", 1));
}

void lw_api_session_logout(lw_rq *rq)
{
    if (rq->who.primary) {
        lw_reply_error(rq, 403, "forbidden",
                       "The primary device cannot log itself out; it holds the account. Log out the other "
                       "devices instead.");
        return;
    }
    int rc = lw_sessions_end(rq->app->sessions, rq->who.device_id, "logout");
    if (rc != LW_OK && rc != LW_ECONFLICT) {
        lw_api_store_failed(rq, rc, "logging out");
        return;
    }
    reply_ended(rq);
}

static void reply_list(lw_rq *rq, bool ended, const char *key)
{
    lw_session *list = NULL;
    size_t n = 0;
    int rc = lw_store_session_list(rq->app->store, rq->who.account_id, ended, &list, &n);
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "listing devices");
        return;
    }
    json_t *arr = json_array();
    int64_t now = lw_now_ms();
    for (size_t i = 0; i < n; i++) {
        if (!ended && strcmp(list[i].id, rq->who.device_id) == 0)
            list[i].last_active_at = now;
        json_array_append_new(arr, lw_record_json(&list[i], rq->who.device_id));
    }
    lw_wipe(list, n * sizeof *list);
    lw_free(list);
    lw_reply_json(rq, 200, json_pack("{s:o}", key, arr));
}

void lw_api_devices_list(lw_rq *rq)
{
    /* Freshen the stored last-active times first so the list is current. */
    lw_sessions_flush(rq->app->sessions, true);
    reply_list(rq, false, "devices");
}

void lw_api_history_list(lw_rq *rq)
{
    reply_list(rq, true, "sessions");
}

/* Loads a device of the caller's account by the path id. */
static bool load_device(lw_rq *rq, lw_session *s)
{
    int rc = lw_store_session_get(rq->app->store, rq->param, s);
    if (rc == LW_OK && strcmp(s->account_id, rq->who.account_id) != 0)
        rc = LW_ENOTFOUND;
    if (rc != LW_OK) {
        if (rc == LW_ENOTFOUND)
            lw_reply_error(rq, 404, "not_found", "This account has no device %s.", rq->param);
        else
            lw_api_store_failed(rq, rc, "loading the device");
        return false;
    }
    return true;
}

/* Loads the alert an answer is about: the path's (alert_id NULL) or the
 * body's optional "alert_id" (*a->id is then "" when none was given).
 * Only the primary answers alerts (every route that calls this is the
 * primary's): a companion in the wrong hands must not be able to silence the
 * alert about itself or about another device. Replies and returns false on
 * failure. */
static bool load_answered_alert(lw_rq *rq, const char *alert_id, lw_alert *a)
{
    memset(a, 0, sizeof *a);
    if (!rq->who.primary) {
        lw_reply_error(rq, 403, "forbidden",
                       "Only your phone can answer alerts. Answer this one on your phone: \"it was me\", "
                       "\"log out that device\" or \"secure my account\".");
        return false;
    }
    if (alert_id == NULL) {
        if (lw_body_str(rq, "alert_id", false, LW_ID_STRLEN - 1, &alert_id) != LW_OK)
            return false;
        if (alert_id == NULL)
            return true;
    }
    int rc = lw_store_alert_get(rq->app->store, rq->who.account_id, alert_id, a);
    if (rc == LW_ENOTFOUND) {
        lw_reply_error(rq, 404, "not_found", "This account has no alert %s.", alert_id);
        return false;
    }
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "loading the alert");
        return false;
    }
    return true;
}

/* Records the answer to an alert already loaded (a->id "" : none), with the
 * device that gave it. A failure here is logged, not answered: what the
 * answer did (a logout) is done. */
static void record_answer(lw_rq *rq, const lw_alert *a, const char *answer)
{
    if (!a->id[0])
        return;
    int rc =
        lw_store_alert_ack(rq->app->store, rq->who.account_id, a->id, answer, rq->who.device_id, lw_now_ms());
    if (rc != LW_OK)
        lw_log_error("session", "cannot record the answer %s to alert %.8s: %s", answer, a->id,
                     lw_strerror(rc));
}

void lw_api_device_rename(lw_rq *rq)
{
    lw_session s;
    const char *name;
    if (lw_body_str(rq, "name", true, LW_NAME_MAX - 1, &name) != LW_OK)
        return;
    if (!name[0]) {
        lw_reply_error(rq, 400, "invalid_request", "The name must not be empty.");
        return;
    }
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            lw_reply_error(rq, 400, "invalid_request", "The name must not contain control characters.");
            return;
        }
    if (!load_device(rq, &s))
        return;
    if (!rq->who.primary && strcmp(s.id, rq->who.device_id) != 0) {
        lw_reply_error(rq, 403, "forbidden", "A companion can rename only itself.");
        return;
    }
    int rc = lw_store_session_set_name(rq->app->store, s.id, name);
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "renaming");
        return;
    }
    lw_strlcpy(s.name, name, sizeof s.name);
    lw_sessions_invalidate_view(rq->app->sessions, s.id);
    lw_reply_json(rq, 200, lw_record_json(&s, rq->who.device_id));
}

void lw_api_device_logout(lw_rq *rq)
{
    lw_session s;
    lw_alert a;
    if (!load_device(rq, &s) || !load_answered_alert(rq, NULL, &a))
        return;
    if (a.id[0] && strcmp(a.device_id, s.id) != 0) {
        lw_reply_error(rq, 400, "invalid_request", "Alert %s is not about device %s.", a.id, s.id);
        return;
    }
    if (strcmp(s.id, rq->who.device_id) == 0) {
        lw_reply_error(rq, 400, "invalid_request", "The phone cannot log itself out.");
        return;
    }
    if (strcmp(s.state, "active") != 0) {
        lw_reply_error(rq, 409, "not_active", "This device is already logged out.");
        return;
    }
    int rc = lw_sessions_end(rq->app->sessions, s.id, "remote_logout");
    if (rc == LW_ECONFLICT) {
        lw_reply_error(rq, 409, "not_active", "This device is already logged out.");
        return;
    }
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "logging the device out");
        return;
    }
    record_answer(rq, &a, LW_ALERT_ANSWER_LOGOUT);
    json_t *ans = json_pack("{s:b, s:s}", "ended", 1, "device_id", s.id);
    if (ans && a.id[0])
        json_object_set_new(ans, "answered",
                            json_pack("{s:s, s:s}", "alert_id", a.id, "answer", LW_ALERT_ANSWER_LOGOUT));
    lw_reply_json(rq, 200, ans);
}

/* Ends every companion of the caller's account (logout_all) and closes their
 * sockets before returning, so "answered" means "everyone was told". Returns
 * {"ended":N,"device_ids":[…]}, or NULL after replying an error. */
static json_t *end_all_companions(lw_rq *rq)
{
    lw_server *app = rq->app;
    lw_end_request what = {.scope = LW_END_ACCOUNT,
                           .account_id = rq->who.account_id,
                           .role = LW_ROLE_COMPANION,
                           .except = rq->who.device_id,
                           .reason = "logout_all"};
    lw_end_result res;
    int rc = lw_sessions_end_where(app->sessions, &what, &res);
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "logging out all devices");
        return NULL;
    }
    lw_ended *ended = res.ended;
    size_t n = res.n;
    json_t *ids = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(ids, json_string(ended[i].device_id));
    lw_free(ended);
    lw_log_info("session", "logout-all on account %.8s: %zu devices", rq->who.account_id, n);
    return json_pack("{s:I, s:o}", "ended", (json_int_t)n, "device_ids", ids);
}

void lw_api_devices_logout_all(lw_rq *rq)
{
    json_t *ans = end_all_companions(rq);
    if (ans)
        lw_reply_json(rq, 200, ans);
}

static void history_delete(lw_rq *rq, const char *device_id)
{
    long deleted = 0;
    int rc = lw_store_session_delete_ended(rq->app->store, rq->who.account_id, device_id, &deleted);
    if (rc == LW_ENOTFOUND) {
        lw_reply_error(rq, 404, "not_found", "No ended session %s in this account's history.", device_id);
        return;
    }
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "deleting history");
        return;
    }
    lw_reply_json(rq, 200, json_pack("{s:I}", "deleted", (json_int_t)deleted));
}

void lw_api_history_delete(lw_rq *rq)
{
    history_delete(rq, rq->param);
}

void lw_api_history_delete_all(lw_rq *rq)
{
    history_delete(rq, NULL);
}

void lw_api_alerts_list(lw_rq *rq)
{
    lw_alert *list = NULL;
    size_t n = 0;
    int rc = lw_store_alert_list(rq->app->store, rq->who.account_id, 200, &list, &n);
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "listing alerts");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, lw_alert_json(&list[i]));
    lw_free(list);
    lw_reply_json(rq, 200, json_pack("{s:o}", "alerts", arr));
}

/* "It was me". The other two answers are actions (DELETE /v1/devices/{id},
 * POST /v1/account/secure) that name the alert in their body. */
void lw_api_alert_ack(lw_rq *rq)
{
    /* Who may answer comes before what the answer says. */
    lw_alert a;
    if (!load_answered_alert(rq, rq->param, &a))
        return;
    const char *answer;
    if (lw_body_str(rq, "answer", false, LW_REASON_MAX - 1, &answer) != LW_OK)
        return;
    if (answer && strcmp(answer, LW_ALERT_ANSWER_ME) != 0) {
        lw_reply_error(
            rq, 400, "invalid_request",
            "Acknowledging answers \"it_was_me\"; to log the device out or secure the account, call "
            "DELETE /v1/devices/{id} or POST /v1/account/secure with \"alert_id\".");
        return;
    }
    int rc = lw_store_alert_ack(rq->app->store, rq->who.account_id, a.id, LW_ALERT_ANSWER_ME,
                                rq->who.device_id, lw_now_ms());
    if (rc == LW_ENOTFOUND) {
        lw_reply_error(rq, 404, "not_found", "This account has no alert %s.", rq->param);
        return;
    }
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "acknowledging");
        return;
    }
    lw_reply_json(rq, 200,
                  json_pack("{s:b, s:s, s:s}", "acked", 1, "answer", LW_ALERT_ANSWER_ME, "answered_by",
                            rq->who.device_id));
}

void lw_api_settings_get(lw_rq *rq)
{
    lw_account a;
    int rc = lw_store_account_get(rq->app->store, rq->who.account_id, &a);
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "loading settings");
        return;
    }
    lw_reply_json(rq, 200,
                  json_pack("{s:I, s:I, s:b}", "inactive_ttl_days", (json_int_t)(a.inactive_ttl_ms / DAY_MS),
                            "inactive_ttl_seconds", (json_int_t)(a.inactive_ttl_ms / 1000), "has_pin",
                            a.pin_hash[0] != '\0'));
    lw_wipe(&a, sizeof a);
}

void lw_api_settings_set(lw_rq *rq)
{
    json_t *v = json_object_get(rq->body, "inactive_ttl_days");
    if (!v) {
        lw_reply_error(rq, 400, "invalid_request", "Nothing to change: give \"inactive_ttl_days\".");
        return;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 7 || json_integer_value(v) > 365) {
        lw_reply_error(rq, 400, "invalid_request",
                       "\"inactive_ttl_days\" must be a whole number from 7 to 365.");
        return;
    }
    lw_account a;
    int rc = lw_store_account_get(rq->app->store, rq->who.account_id, &a);
    if (rc == LW_OK) {
        a.inactive_ttl_ms = json_integer_value(v) * DAY_MS;
        rc = lw_store_account_update(rq->app->store, &a);
    }
    lw_wipe(&a, sizeof a);
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "saving settings");
        return;
    }
    lw_sessions_invalidate_account_views(rq->app->sessions, rq->who.account_id);
    lw_api_settings_get(rq);
}

/* "Secure my account" (the answer to an alarming alert): every companion is
 * logged out at once, and no new device can be linked until the holder sets a
 * new two-step PIN. */
void lw_api_account_secure(lw_rq *rq)
{
    lw_server *app = rq->app;
    lw_alert alert;
    if (!load_answered_alert(rq, NULL, &alert))
        return;
    /* The devices go first: if the server died between the two steps, the
     * suspects are out and the holder can simply press the button again. */
    json_t *ans = end_all_companions(rq);
    if (!ans)
        return;
    lw_account a;
    int rc = lw_store_account_get(app->store, rq->who.account_id, &a);
    if (rc == LW_OK) {
        a.pin_change_required = true;
        rc = lw_store_account_update(app->store, &a);
    }
    lw_wipe(&a, sizeof a);
    if (rc != LW_OK) {
        json_decref(ans);
        lw_api_store_failed(rq, rc, "securing the account");
        return;
    }
    json_object_set_new(ans, "pin_change_required", json_true());
    record_answer(rq, &alert, LW_ALERT_ANSWER_SECURE);
    if (alert.id[0])
        json_object_set_new(ans, "answered",
                            json_pack("{s:s, s:s}", "alert_id", alert.id, "answer", LW_ALERT_ANSWER_SECURE));
    lw_sessions_invalidate_account_views(app->sessions, rq->who.account_id);
    lw_log_info("session", "account %.8s secured: PIN change required", rq->who.account_id);
    lw_reply_json(rq, 200, ans);
}
