#include "router.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <h2o.h>
#include <h2o/websocket.h>

#include "api.h"
#include "csp.h"
#include "bus.h"
#include "events.h"
#include "fiber.h"
#include "link.h"
#include "clientaddr.h"
#include "cred.h"
#include "http.h"
#include "httpmsg.h"
#include "log.h"
#include "metrics.h"
#include "lw.h"
#include "web.h"
#include "ws.h"

#define MAX_SEGMENTS 6
#define MAX_PATH 256

static void api_ws(lw_rq *rq);
static void api_metrics(lw_rq *rq);

typedef struct route {
    const char *method;
    const char *pattern; /* "*" matches one id-like segment, given to the handler as rq->param */
    void (*fn)(lw_rq *rq);
    lw_auth_kind auth;
    size_t body_max; /* 0: the route takes no body */
    bool reports;    /* takes browser reports (application/csp-report, application/reports+json) */
} route;

/* Bodies are small JSON objects; routes open to anyone get less room. */
#define B_OPEN 2048
#define B_AUTH 4096

static const route routes[] = {
    {"GET", "/v1/health", lw_api_health, LW_AUTH_NONE, 0},
    {"GET", "/v1/server", lw_api_server, LW_AUTH_NONE, 0},
    {"POST", "/v1/accounts", lw_api_register, LW_AUTH_NONE, B_OPEN},
    {"POST", "/v1/link-requests", lw_api_link_create, LW_AUTH_NONE, B_OPEN},
    {"POST", "/v1/link-requests/scan", lw_api_link_scan, LW_AUTH_PRIMARY, B_AUTH},
    {"GET", "/v1/link-requests/*", lw_api_link_get, LW_AUTH_LINK, 0},
    {"POST", "/v1/link-requests/*/complete", lw_api_link_complete, LW_AUTH_LINK, B_OPEN},
    {"POST", "/v1/link-requests/*/approve", lw_api_link_approve, LW_AUTH_PRIMARY, B_AUTH},
    {"POST", "/v1/link-requests/*/deny", lw_api_link_deny, LW_AUTH_PRIMARY, B_AUTH},
    {"GET", "/v1/session", lw_api_session_get, LW_AUTH_SESSION, 0},
    {"DELETE", "/v1/session", lw_api_session_logout, LW_AUTH_LOGOUT, 0},
    {"POST", "/v1/session/refresh", lw_api_session_refresh, LW_AUTH_REFRESH, B_AUTH},
    {"GET", "/v1/devices", lw_api_devices_list, LW_AUTH_SESSION, 0},
    {"POST", "/v1/devices/logout-all", lw_api_devices_logout_all, LW_AUTH_PRIMARY, B_AUTH},
    {"POST", "/v1/devices/signatures", lw_api_devices_resign, LW_AUTH_PRIMARY, B_AUTH},
    {"PATCH", "/v1/devices/*", lw_api_device_rename, LW_AUTH_SESSION, B_AUTH},
    /* The body may name the alert this logout answers. */
    {"DELETE", "/v1/devices/*", lw_api_device_logout, LW_AUTH_PRIMARY, B_AUTH},
    {"GET", "/v1/history", lw_api_history_list, LW_AUTH_SESSION, 0},
    {"DELETE", "/v1/history", lw_api_history_delete_all, LW_AUTH_PRIMARY, 0},
    {"DELETE", "/v1/history/*", lw_api_history_delete, LW_AUTH_PRIMARY, 0},
    {"GET", "/v1/alerts", lw_api_alerts_list, LW_AUTH_SESSION, 0},
    /* Only the primary answers; the handler tells a companion to answer on the phone. */
    {"POST", "/v1/alerts/*/ack", lw_api_alert_ack, LW_AUTH_SESSION, B_AUTH},
    {"POST", "/v1/account/secure", lw_api_account_secure, LW_AUTH_PRIMARY, B_AUTH},
    /* Any device may ask; the handler tells a companion why it cannot. */
    {"DELETE", "/v1/account", lw_api_account_delete, LW_AUTH_SESSION, B_AUTH},
    {"POST", "/v1/account/recover", lw_api_recover, LW_AUTH_NONE, B_OPEN},
    {"POST", "/v1/account/recovery-key", lw_api_recovery_key_new, LW_AUTH_PRIMARY, B_AUTH},
    {"POST", "/v1/transfers", lw_api_transfer_create, LW_AUTH_NONE, B_OPEN},
    {"POST", "/v1/transfers/approve", lw_api_transfer_approve, LW_AUTH_PRIMARY, B_AUTH},
    {"POST", "/v1/transfers/*/claim", lw_api_transfer_claim, LW_AUTH_NONE, B_OPEN},
    {"POST", "/v1/pin", lw_api_pin_set, LW_AUTH_PRIMARY, B_AUTH},
    {"POST", "/v1/pin/disable", lw_api_pin_disable, LW_AUTH_PRIMARY, B_AUTH},
    /* Web Push: the key is public; subscriptions are the primary's. */
    {"GET", "/v1/push/vapid-key", lw_api_push_vapid_key, LW_AUTH_NONE, 0},
    {"GET", "/v1/push/subscriptions", lw_api_push_list, LW_AUTH_PRIMARY, 0},
    {"POST", "/v1/push/subscriptions", lw_api_push_subscribe, LW_AUTH_PRIMARY, B_AUTH},
    {"DELETE", "/v1/push/subscriptions", lw_api_push_unsubscribe, LW_AUTH_PRIMARY, B_AUTH},
    {"GET", "/v1/settings", lw_api_settings_get, LW_AUTH_PRIMARY, 0},
    {"PATCH", "/v1/settings", lw_api_settings_set, LW_AUTH_PRIMARY, B_AUTH},
    {"POST", "/v1/csp-reports", lw_api_csp_report, LW_AUTH_NONE, LW_CSP_REPORT_BODY_MAX, true},
    {"GET", "/v1/ws", api_ws, LW_AUTH_NONE, 0},
    {"GET", "/metrics", api_metrics, LW_AUTH_NONE, 0},
};

void lw_router_each(void (*fn)(const char *, const char *, void *), void *arg)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        fn(routes[i].method, routes[i].pattern, arg);
}

static bool id_segment(const char *s, size_t n)
{
    if (n == 0 || n >= 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_'))
            return false;
    }
    return true;
}

/* Matches path against pattern segment by segment; the "*" segment is copied to param. */
static bool match(const char *pattern, const char *path, size_t plen, char param[64])
{
    const char *p = pattern, *s = path, *send = path + plen;
    param[0] = '\0';
    while (*p && s < send) {
        if (*p == '*') {
            const char *e = memchr(s, '/', (size_t)(send - s));
            size_t n = e ? (size_t)(e - s) : (size_t)(send - s);
            if (!id_segment(s, n))
                return false;
            memcpy(param, s, n);
            param[n] = '\0';
            p++;
            s += n;
            continue;
        }
        if (*p != *s)
            return false;
        p++;
        s++;
    }
    return *p == '\0' && s == send;
}

/* "1.2.3" compared part by part (missing parts are 0); non-numeric tails ignored. */
static int version_cmp(const char *a, const char *b)
{
    for (int i = 0; i < 3; i++) {
        long x = strtol(a, (char **)&a, 10), y = strtol(b, (char **)&b, 10);
        if (x != y)
            return x < y ? -1 : 1;
        if (*a == '.')
            a++;
        if (*b == '.')
            b++;
    }
    return 0;
}

/* The version a client announces: "Linkward-Client-Version: X.Y.Z", or our
 * CLI's User-Agent "linkward/X.Y.Z (...)". Clients that say nothing are not judged. */
static bool client_version(h2o_req_t *req, char out[32])
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("linkward-client-version"), -1);
    h2o_iovec_t v;
    if (i >= 0) {
        v = req->headers.entries[i].value;
    } else if ((i = h2o_find_header(&req->headers, H2O_TOKEN_USER_AGENT, -1)) >= 0 &&
               req->headers.entries[i].value.len > 9 &&
               memcmp(req->headers.entries[i].value.base, "linkward/", 9) == 0) {
        v = h2o_iovec_init(req->headers.entries[i].value.base + 9, req->headers.entries[i].value.len - 9);
    } else {
        return false;
    }
    size_t n = 0;
    while (n < v.len && n < 31 && ((v.base[n] >= '0' && v.base[n] <= '9') || v.base[n] == '.'))
        n++;
    memcpy(out, v.base, n);
    out[n] = '\0';
    return n > 0;
}

static bool method_is(h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

static bool header(h2o_req_t *req, const char *name, h2o_iovec_t *out)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0)
        return false;
    *out = req->headers.entries[i].value;
    return true;
}

/* The credential from "Authorization: Bearer …" or, for browsers, a cookie:
 * the session cookie, or with link_cookie the link-request cookie. */
static bool find_credential(h2o_req_t *req, bool link_cookie, const char **tok, size_t *len)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i >= 0) {
        h2o_iovec_t v = req->headers.entries[i].value;
        if (v.len > 7 && strncasecmp(v.base, "Bearer ", 7) == 0) {
            const char *b = v.base + 7, *e = v.base + v.len;
            while (b < e && *b == ' ')
                b++;
            while (e > b && e[-1] == ' ')
                e--;
            *tok = b;
            *len = (size_t)(e - b);
            return *len > 0;
        }
        return false;
    }
    const char *name = link_cookie ? "lw_link" : "lw_session";
    size_t nl = strlen(name);
    for (ssize_t c = -1; (c = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, c)) >= 0;) {
        h2o_iovec_t v = req->headers.entries[c].value;
        const char *p = v.base, *end = v.base + v.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                p++;
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *pe = semi ? semi : end;
            const char *eq = memchr(p, '=', (size_t)(pe - p));
            if (eq) {
                const char *n = p;
                size_t len_n = (size_t)(eq - p);
                if (len_n == nl + 7 && memcmp(n, "__Host-", 7) == 0) {
                    n += 7;
                    len_n -= 7;
                }
                if (len_n == nl && memcmp(n, name, nl) == 0) {
                    *tok = eq + 1;
                    *len = (size_t)(pe - eq - 1);
                    return *len > 0;
                }
            }
            p = pe;
        }
    }
    return false;
}

static bool auth_session(lw_rq *rq, const char *tok, size_t len, bool allow_expired, bool logout)
{
    char reason[LW_REASON_MAX] = "";
    int rc = lw_sessions_check(rq->app->sessions, tok, len, allow_expired, &rq->who, reason);
    switch (rc) {
    case LW_OK:
        /* Once per request, and only for a credential that passed. */
        lw_sessions_seen(rq->app->sessions, &rq->who, rq->ip, lw_now_ms());
        return true;
    case LW_EEXPIRED:
        lw_reply_error(rq, 401, "credential_expired",
                       "The credential expired; refresh it with a signature by the device key.");
        return false;
    case LW_EDENIED:
        if (rq->cookie_auth) {
            lw_api_forget_browser(rq);
            if (logout) {
                /* A page told over its socket that its session ended asks to
                 * be forgotten: that is done, not an error. */
                lw_reply_json(rq, 200,
                              json_pack("{s:b, s:b, s:s}", "ended", 1, "already", 1, "reason", reason));
                return false;
            }
        }
        lw_reply_error_x(rq, 401, "session_ended", json_pack("{s:s}", "reason", reason), "%s",
                         lw_end_reason_message(reason));
        return false;
    case LW_ENOTFOUND:
        if (logout && rq->cookie_auth) {
            /* A cookie whose session is gone altogether (its account was
             * deleted): forgetting it is all there is to do. */
            lw_api_forget_browser(rq);
            lw_reply_json(rq, 200, json_pack("{s:b, s:b}", "ended", 1, "already", 1));
            return false;
        }
        lw_reply_error(rq, 401, "unauthenticated", "The credential is not valid.");
        return false;
    default:
        lw_api_store_failed(rq, rc, "checking the credential");
        return false;
    }
}

static bool auth_link(lw_rq *rq, const char *tok, size_t len)
{
    lw_cred cred;
    if (lw_cred_parse(&cred, tok, len) != LW_OK || cred.kind != LW_CRED_LINK) {
        lw_cred_wipe(&cred);
        lw_reply_error(rq, 401, "unauthenticated", "A link-request token is required.");
        return false;
    }
    char sel[LW_ID_STRLEN];
    uint8_t hash[LW_HASH_LEN];
    lw_cred_selector_str(&cred, sel);
    lw_cred_hash(&cred, rq->app->hash_key, hash);
    lw_cred_wipe(&cred);
    rq->link = lw_rq_alloc(rq, sizeof *rq->link);
    if (!rq->link) {
        lw_reply_error(rq, 503, "unavailable", "Out of memory.");
        return false;
    }
    int rc = lw_store_link_get_by_selector(rq->app->store, sel, rq->link);
    if (rc == LW_ENOTFOUND || (rc == LW_OK && !lw_ct_equal(rq->link->token_hash, hash, LW_HASH_LEN))) {
        rq->link = NULL;
        lw_reply_error(rq, 401, "unauthenticated", "The link-request token is not valid.");
        return false;
    }
    if (rc != LW_OK) {
        rq->link = NULL;
        lw_api_store_failed(rq, rc, "checking the link token");
        return false;
    }
    return true;
}

static bool authenticate(lw_rq *rq, lw_auth_kind kind)
{
    if (kind == LW_AUTH_NONE)
        return true;
    const char *tok;
    size_t len;
    rq->cookie_auth = h2o_find_header(&rq->req->headers, H2O_TOKEN_AUTHORIZATION, -1) < 0;
    if (!find_credential(rq->req, kind == LW_AUTH_LINK, &tok, &len) || len >= LW_CRED_STRLEN) {
        lw_rq_header(rq, "www-authenticate", "Bearer");
        lw_reply_error(rq, 401, "unauthenticated",
                       "This route needs a credential (Authorization: Bearer …).");
        return false;
    }
    if (kind == LW_AUTH_LINK)
        return auth_link(rq, tok, len);
    if (!auth_session(rq, tok, len, kind == LW_AUTH_REFRESH, kind == LW_AUTH_LOGOUT))
        return false;
    if (kind == LW_AUTH_PRIMARY && !rq->who.primary) {
        lw_reply_error(rq, 403, "forbidden", "Only the primary device (your phone) can do this.");
        return false;
    }
    return true;
}

/* State-changing requests from a browser must come from our own origin. */
static bool origin_ok(lw_rq *rq)
{
    h2o_iovec_t v;
    const char *origin = rq->app->cfg.public_origin;
    if (header(rq->req, "origin", &v) && !h2o_memis(v.base, v.len, origin, strlen(origin))) {
        lw_reply_error(rq, 403, "forbidden_origin", "Requests from another site are refused.");
        return false;
    }
    if (header(rq->req, "sec-fetch-site", &v) && !h2o_memis(v.base, v.len, H2O_STRLIT("same-origin")) &&
        !h2o_memis(v.base, v.len, H2O_STRLIT("none"))) {
        lw_reply_error(rq, 403, "forbidden_origin", "Requests from another site are refused.");
        return false;
    }
    return true;
}

/* The request has one Content-Type and it is one of types
 * (lw_httpmsg_media_type); if not, answers 415 saying what differs. */
static bool content_type_ok(lw_rq *rq, const char *const *types, size_t ntypes, const char *what)
{
    h2o_headers_t *hs = &rq->req->headers;
    ssize_t i = h2o_find_header(hs, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i < 0) {
        lw_reply_error(rq, 415, "unsupported_media_type",
                       "The body must be %s; the request has no Content-Type.", what);
        return false;
    }
    if (h2o_find_header(hs, H2O_TOKEN_CONTENT_TYPE, i) >= 0) {
        lw_reply_error(rq, 415, "unsupported_media_type",
                       "The body must be %s; the request has more than one Content-Type.", what);
        return false;
    }
    h2o_iovec_t v = hs->entries[i].value;
    char why[LW_HTTPMSG_WHY_MAX];
    if (lw_httpmsg_media_type(v.base, v.len, types, ntypes, what, why, sizeof why))
        return true;
    lw_reply_error(rq, 415, "unsupported_media_type", "%s", why);
    return false;
}

static bool parse_body(lw_rq *rq, size_t max, bool reports)
{
    h2o_req_t *req = rq->req;
    if (req->entity.base == NULL || req->entity.len == 0) {
        rq->body = json_object(); /* no body: every field is absent */
        return true;
    }
    if (req->entity.len > max) {
        lw_reply_error(rq, 413, "body_too_large",
                       "The request body is larger than %zu bytes, this route's limit.", max);
        return false;
    }
    if (reports) {
        /* What browsers send: report-uri's CSP report, the Reporting API's list. */
        static const char *const types[] = {"application/csp-report", "application/reports+json"};
        if (!content_type_ok(rq, types, 2,
                             "a CSP report (application/csp-report or application/reports+json)"))
            return false;
    } else {
        static const char *const types[] = {"application/json"};
        if (!content_type_ok(rq, types, 1, "JSON (Content-Type: application/json)"))
            return false;
    }
    json_error_t err;
    rq->body = json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &err);
    if (!rq->body) {
        /* err.text may quote the body (cut anywhere): lw_reply_error makes
         * the message valid UTF-8 whatever it holds. */
        lw_reply_error(rq, 400, "invalid_json",
                       "The body is not valid JSON: %s (line %d, column %d, byte %d).", err.text, err.line,
                       err.column, err.position);
        return false;
    }
    if (!json_is_object(rq->body) && !(reports && json_is_array(rq->body))) {
        lw_reply_error(rq, 400, "invalid_json", "The body must be a JSON object.");
        return false;
    }
    return true;
}

static void dispose_body(void *p)
{
    json_t **slot = p;
    json_decref(*slot);
}

/* Who is calling comes first: an unauthenticated client gets no JSON parsing. */
static void serve(lw_rq *rq, const route *hit)
{
    if (!authenticate(rq, hit->auth))
        return;
    if (hit->body_max) {
        json_t **slot = NULL;
        if (!rq->held) { /* a held rq owns its body */
            slot = h2o_mem_alloc_shared(&rq->req->pool, sizeof *slot, dispose_body);
            *slot = NULL;
        }
        bool ok = rq->req && parse_body(rq, hit->body_max, hit->reports);
        if (slot)
            *slot = rq->body;
        if (!ok)
            return;
    }
    hit->fn(rq);
}

static void serve_held(void *arg)
{
    lw_rq *rq = arg;
    serve(rq, rq->route);
    lw_rq_unhold(rq);
}

void lw_router_dispatch(lw_server *app, h2o_req_t *req)
{
    lw_rq *rq = h2o_mem_alloc_pool(&req->pool, sizeof *rq);
    memset(rq, 0, sizeof *rq);
    rq->app = app;
    rq->req = req;
    /* Framing before anything: a request that could be read two ways gets
     * one answer, and nothing after it on its connection is read. */
    char why[LW_HTTPMSG_WHY_MAX];
    if (lw_http_framing(req, why, sizeof why) == LW_FRAMING_REJECT) {
        lw_reply_error(rq, 400, "bad_request", "%s", why);
        return;
    }
    lw_clientaddr(&app->proxies, req, rq->ip);
    h2o_iovec_t ua;
    if (header(req, "user-agent", &ua)) {
        rq->ua = ua.base;
        rq->ua_len = ua.len;
    }

    /* h2o's own bounds are generous (100 headers, ~400 KB); ours are tighter. */
    size_t header_bytes = req->path.len;
    for (size_t i = 0; i < req->headers.size; i++)
        header_bytes += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    if (req->headers.size > LW_MAX_HEADERS || header_bytes > LW_MAX_HEADER_BYTES) {
        lw_reply_error(rq, 431, "headers_too_large",
                       "The request has more than %d headers or %d bytes of them.", LW_MAX_HEADERS,
                       LW_MAX_HEADER_BYTES);
        return;
    }

    /* h2o gives the path without the query, normalised ("/a/../b" -> "/b"). */
    const char *path = req->path_normalized.base;
    size_t plen = req->path_normalized.len;
    if (app->cfg.metrics_listen[0] && lw_http_on_metrics_listener(req) &&
        !h2o_memis(path, plen, H2O_STRLIT("/metrics")) && !h2o_memis(path, plen, H2O_STRLIT("/v1/health"))) {
        lw_reply_error(rq, 404, "not_found", "This address serves only /metrics and /v1/health.");
        return;
    }
    if ((method_is(req, "GET") || method_is(req, "HEAD")) && !(plen >= 4 && memcmp(path, "/v1/", 4) == 0) &&
        lw_web_serve(app, req))
        return;
    if (plen > MAX_PATH) {
        lw_reply_error(rq, 404, "not_found", "No such route.");
        return;
    }
    const route *hit = NULL;
    char allow[128] = "";
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        char param[64];
        if (!match(routes[i].pattern, path, plen, param))
            continue;
        if (method_is(req, routes[i].method)) {
            hit = &routes[i];
            memcpy(rq->param, param, sizeof param);
            break;
        }
        if (!strstr(allow, routes[i].method)) {
            size_t n = strlen(allow);
            snprintf(allow + n, sizeof allow - n, "%s%s", n ? ", " : "", routes[i].method);
        }
    }
    if (!hit) {
        if (allow[0]) {
            lw_rq_header(rq, "allow", allow);
            lw_reply_error(rq, 405, "method_not_allowed", "Use %s on this route.", allow);
        } else {
            lw_reply_error(rq, 404, "not_found", "No such route.");
        }
        return;
    }
    if (!method_is(req, "GET") && !origin_ok(rq))
        return;
    /* Old clients are told to update (they still see /v1/server and /v1/health). */
    char cv[32];
    if (app->cfg.min_client_version[0] && hit->fn != lw_api_server && hit->fn != lw_api_health &&
        client_version(req, cv) && version_cmp(cv, app->cfg.min_client_version) < 0) {
        lw_rq_header(rq, "upgrade", "linkward");
        lw_reply_error_x(
            rq, 426, "client_too_old",
            json_pack("{s:s, s:s}", "client_version", cv, "min_version", app->cfg.min_client_version),
            "This Linkward client (%s) is older than this server accepts (%s or newer). Update it.", cv,
            app->cfg.min_client_version);
        return;
    }
    /* With PostgreSQL the rest runs on a fiber: its store calls wait on a
     * worker thread while the loop serves other requests (fiber.h). */
    if (app->fibers) {
        lw_rq *held = lw_rq_hold(rq);
        if (held) {
            held->route = hit;
            if (lw_fiber_start(app->fibers, serve_held, held) == LW_OK)
                return;
            lw_rq_unhold(held); /* every fiber is busy: served here, blocking as before */
        }
    }
    serve(rq, hit);
}

/* GET /v1/ws: a session socket (session credential) or a link socket (link token). */
static void api_ws(lw_rq *rq)
{
    h2o_iovec_t v;
    const char *origin = rq->app->cfg.public_origin;
    if (header(rq->req, "origin", &v) && !h2o_memis(v.base, v.len, origin, strlen(origin))) {
        lw_reply_error(rq, 403, "forbidden_origin", "WebSocket connections from another site are refused.");
        return;
    }
    /* "?link=1": a browser waiting to be linked, whose link token is in its
     * cookie (it may also hold a stale session cookie). */
    h2o_req_t *req = rq->req;
    bool link_hint =
        req->query_at != SIZE_MAX &&
        h2o_memis(req->path.base + req->query_at, req->path.len - req->query_at, H2O_STRLIT("?link=1"));
    const char *tok;
    size_t len;
    if (!find_credential(req, link_hint, &tok, &len) || len >= LW_CRED_STRLEN) {
        lw_reply_error(rq, 401, "unauthenticated",
                       "The WebSocket needs a credential (Authorization: Bearer …).");
        return;
    }
    const char *client_key;
    if (h2o_is_websocket_handshake(rq->req, &client_key) != 0 || client_key == NULL) {
        lw_reply_error(rq, 400, "invalid_request", "This route only accepts a WebSocket upgrade.");
        return;
    }
    if (len > 4 && memcmp(tok, "lwl_", 4) == 0) {
        if (!auth_link(rq, tok, len) || !rq->req)
            return;
        lw_link_request *r = rq->link;
        if (lw_bus_link_sockets(rq->app->bus, r->id) >= LW_WS_MAX_PER_LINK) {
            lw_rq_header(rq, "retry-after", "5");
            lw_reply_error(rq, 429, "rate_limited", "This link request already has %d live connections.",
                           LW_WS_MAX_PER_LINK);
            return;
        }
        if (lw_ws_upgrade(rq->app, rq->req, NULL, NULL, r->id) != 0) {
            lw_reply_error(rq, 400, "invalid_request", "Bad WebSocket handshake.");
            return;
        }
        rq->replied = true;
        lw_links_on_socket(rq->app->links, r);
        return;
    }
    /* A socket outlives its credential: the device refreshes over HTTP meanwhile. */
    if (!auth_session(rq, tok, len, false, false) || !rq->req)
        return; /* (the client may have left while the store was read) */
    if (lw_bus_device_sockets(rq->app->bus, rq->who.device_id) >= LW_WS_MAX_PER_DEVICE) {
        lw_rq_header(rq, "retry-after", "5");
        lw_reply_error(rq, 429, "rate_limited", "This device already has %d live connections.",
                       LW_WS_MAX_PER_DEVICE);
        return;
    }
    if (lw_ws_upgrade(rq->app, rq->req, rq->who.device_id, rq->who.account_id, NULL) != 0) {
        lw_reply_error(rq, 400, "invalid_request", "Bad WebSocket handshake.");
        return;
    }
    rq->replied = true;
    lw_api_session_socket_opened(rq->app, &rq->who);
}

/* GET /metrics: Prometheus text. With --metrics-listen it is served only on
 * that (private) address, and the public listener answers 404. */
static void api_metrics(lw_rq *rq)
{
    if (!lw_http_on_metrics_listener(rq->req) && rq->app->cfg.metrics_listen[0]) {
        lw_reply_error(rq, 404, "not_found", "No such route.");
        return;
    }
    lw_buf b;
    lw_buf_init(&b, 1 << 20);
    if (lw_metrics_render(&b) != LW_OK) {
        lw_buf_free(&b);
        lw_reply_error(rq, 500, "internal", "The metrics did not fit.");
        return;
    }
    lw_reply_text(rq, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    lw_buf_free(&b);
}
