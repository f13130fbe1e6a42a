/*
 * api_push.c — Web Push subscriptions (docs/openapi.yaml, "push"): the VAPID
 * public key a page subscribes with, and a primary's subscriptions. The
 * sender is app/push.c.
 */
#include <string.h>

#include "api.h"
#include "log.h"
#include "lw.h"
#include "webpush.h"

void lw_api_push_vapid_key(lw_rq *rq)
{
    if (!rq->app->vapid_public[0]) {
        lw_reply_error(rq, 503, "push_unavailable", "Web Push is not available on this server.");
        return;
    }
    lw_reply_json(rq, 200, json_pack("{s:s}", "public_key", rq->app->vapid_public));
}

static unsigned endpoint_flags(const lw_rq *rq)
{
    return rq->app->cfg.push_allow_loopback ? LW_WEBPUSH_ALLOW_LOOPBACK : 0;
}

/* The endpoint of the body: present, a string, an accepted push service URL. */
static int body_endpoint(lw_rq *rq, json_t *obj, char out[LW_WEBPUSH_ENDPOINT_MAX + 1])
{
    json_t *v = obj ? json_object_get(obj, "endpoint") : NULL;
    if (!v || !json_is_string(v)) {
        lw_reply_error(rq, 400, "invalid_request",
                       "The field \"endpoint\" is required: the push service URL.");
        return LW_EINVAL;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    char origin[LW_WEBPUSH_ORIGIN_LEN];
    if (len > LW_WEBPUSH_ENDPOINT_MAX || strlen(s) != len) {
        lw_reply_error(rq, 400, "invalid_request", "The field \"endpoint\" is longer than %d bytes.",
                       LW_WEBPUSH_ENDPOINT_MAX);
        return LW_EINVAL;
    }
    if (lw_webpush_endpoint_check(s, endpoint_flags(rq), origin) != LW_OK) {
        lw_reply_error(rq, 400, "invalid_request",
                       "The field \"endpoint\" must be an https:// push service URL without user name, "
                       "fragment or unusual characters.");
        return LW_EINVAL;
    }
    memcpy(out, s, len + 1);
    return LW_OK;
}

/* keys.<name>: base64url (a browser's padding tolerated) of exactly n bytes. */
static int body_key(lw_rq *rq, json_t *keys, const char *name, uint8_t *out, size_t n)
{
    json_t *v = json_object_get(keys, name);
    if (!v || !json_is_string(v)) {
        lw_reply_error(rq, 400, "invalid_request", "The field \"keys.%s\" is required.", name);
        return LW_EINVAL;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    while (len > 0 && s[len - 1] == '=')
        len--;
    if (len > lw_b64_enc_len(n) || lw_b64_decode(out, n, s, len, n) != (long)n) {
        lw_reply_error(rq, 400, "invalid_request", "The field \"keys.%s\" must be %zu bytes in base64url.",
                       name, n);
        return LW_EINVAL;
    }
    return LW_OK;
}

void lw_api_push_subscribe(lw_rq *rq)
{
    lw_push_sub sub;
    memset(&sub, 0, sizeof sub);
    if (body_endpoint(rq, rq->body, sub.endpoint) != LW_OK)
        return;
    json_t *keys = json_object_get(rq->body, "keys");
    if (!keys || !json_is_object(keys)) {
        lw_reply_error(rq, 400, "invalid_request",
                       "The field \"keys\" is required: an object with \"p256dh\" and \"auth\".");
        return;
    }
    if (body_key(rq, keys, "p256dh", sub.p256dh, sizeof sub.p256dh) != LW_OK ||
        body_key(rq, keys, "auth", sub.auth, sizeof sub.auth) != LW_OK)
        goto done;
    /* A point that is not on P-256 would fail every push: say so now. */
    uint8_t probe[LW_WEBPUSH_BODY_LEN(1)];
    size_t probe_len = 0;
    int rc = lw_webpush_encrypt(sub.p256dh, sub.auth, "x", 1, 0, probe, sizeof probe, &probe_len);
    lw_wipe(probe, sizeof probe);
    if (rc == LW_EINVAL) {
        lw_reply_error(rq, 400, "invalid_request",
                       "The field \"keys.p256dh\" must be an uncompressed P-256 public key (65 bytes).");
        goto done;
    }
    lw_strlcpy(sub.device_id, rq->who.device_id, sizeof sub.device_id);
    lw_strlcpy(sub.account_id, rq->who.account_id, sizeof sub.account_id);
    sub.created_at = lw_now_ms();
    rc = lw_store_push_add(rq->app->store, &sub, LW_PUSH_PER_DEVICE, LW_PUSH_PER_ACCOUNT);
    if (rc == LW_ELIMIT) {
        lw_reply_error_x(rq, 409, "push_limit", json_pack("{s:i}", "limit", LW_PUSH_PER_DEVICE),
                         "This phone has %d push subscriptions already (the account %d): remove one first.",
                         LW_PUSH_PER_DEVICE, LW_PUSH_PER_ACCOUNT);
        goto done;
    }
    if (rc == LW_ENOTFOUND) {
        lw_reply_error(rq, 401, "session_ended", "This session has ended.");
        goto done;
    }
    if (rc != LW_OK && lw_api_store_failed(rq, rc, "storing the push subscription"))
        goto done;
    char t[LW_TIME_STRLEN];
    lw_time_format(sub.created_at, t);
    lw_log_info("push", "device %.8s subscribed to Web Push", sub.device_id);
    lw_reply_json(rq, 201, json_pack("{s:s, s:s}", "endpoint", sub.endpoint, "created_at", t));
done:
    lw_wipe(&sub, sizeof sub);
}

void lw_api_push_list(lw_rq *rq)
{
    lw_push_sub *subs = NULL;
    size_t n = 0;
    int rc = lw_store_push_list(rq->app->store, NULL, rq->who.device_id, &subs, &n);
    if (rc != LW_OK && lw_api_store_failed(rq, rc, "listing the push subscriptions"))
        return;
    json_t *list = json_array();
    for (size_t i = 0; list && i < n; i++) {
        char t[LW_TIME_STRLEN];
        lw_time_format(subs[i].created_at, t);
        json_array_append_new(list, json_pack("{s:s, s:s, s:i}", "endpoint", subs[i].endpoint, "created_at",
                                              t, "failures", subs[i].failures));
    }
    if (subs)
        lw_wipe(subs, n * sizeof *subs);
    lw_free(subs);
    if (!list) {
        lw_reply_error(rq, 500, "internal", "Out of memory.");
        return;
    }
    lw_reply_json(rq, 200, json_pack("{s:o}", "subscriptions", list));
}

void lw_api_push_unsubscribe(lw_rq *rq)
{
    char endpoint[LW_WEBPUSH_ENDPOINT_MAX + 1];
    json_t *v = rq->body ? json_object_get(rq->body, "endpoint") : NULL;
    if (!v || !json_is_string(v) || json_string_length(v) > LW_WEBPUSH_ENDPOINT_MAX ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        lw_reply_error(rq, 400, "invalid_request",
                       "The field \"endpoint\" is required: the push service URL to unsubscribe.");
        return;
    }
    lw_strlcpy(endpoint, json_string_value(v), sizeof endpoint);
    int rc = lw_store_push_delete(rq->app->store, rq->who.device_id, endpoint);
    if (rc == LW_ENOTFOUND) {
        lw_reply_error(rq, 404, "not_found", "This phone has no push subscription with that endpoint.");
        return;
    }
    if (rc != LW_OK && lw_api_store_failed(rq, rc, "deleting the push subscription"))
        return;
    lw_reply_empty(rq, 204);
}
