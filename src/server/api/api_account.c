/* Server facts, primary registration, account deletion, and helpers shared
 * by the handlers. */
#include <ctype.h>
#include <h2o.h>
#include <string.h>

#include "api.h"
#include "alert.h"
#include "log.h"
#include "metrics.h"
#include "pin.h"
#include "place.h"
#include "recovery.h"
#include "lw.h"
#include "session.h"
#include "ua.h"

/* A registration answer that depends on the store (201 created, 409 handle
 * taken, 403 invalid invite) leaves this long after the store is asked, never
 * sooner: the time of the answer then says nothing about the handle or its
 * account (whether it exists, its sessions, its PIN, the index depth) beyond
 * what the answer itself says. The store work takes well under a millisecond
 * (a few under ASan or on PostgreSQL); a phone registers once, so 40 ms cost
 * nobody anything, and the connection waits on a timer, not the loop. */
#define LW_REGISTER_ANSWER_MS 40

long long lw_api_secs(int64_t ms)
{
    return ms <= 0 ? 0 : (long long)((ms + 999) / 1000);
}

/* Seconds a client is asked to wait when the store is unavailable: the
 * blips (a failover, a lock) pass within it; a full disk does not, and the
 * client asks again then, at a rate that costs nothing. */
#define LW_STORE_RETRY_AFTER "1"

/* How every handler answers a store failure (the registration's paced
 * answer included): sets the headers, logs once, and returns the status and
 * the error body (owned by the caller). */
json_t *lw_api_store_failure(lw_rq *rq, int rc, const char *what, int *status)
{
    if (rc == LW_ENOTFOUND) {
        *status = 404;
        return json_pack("{s:{s:s, s:s}}", "error", "code", "not_found", "message", "Not found.");
    }
    if (rc == LW_EUNAVAIL) {
        /* The database refused or could not be reached (disk full,
         * read-only, I/O error, locked, restarting, failing over) and nothing
         * was written: a clean, retryable refusal, not an internal error. */
        lw_log_warn("api", "database unavailable while %s", what);
        lw_rq_header(rq, "retry-after", LW_STORE_RETRY_AFTER);
        *status = 503;
        return json_pack("{s:{s:s, s:s}}", "error", "code", "store_unavailable", "message",
                         "The database cannot take this now and nothing was changed; retry in a moment.");
    }
    lw_log_error("api", "store failure while %s: %s", what, lw_strerror(rc));
    *status = rc == LW_ENOMEM ? 503 : 500;
    char msg[160];
    int n = snprintf(msg, sizeof msg, "The server could not complete this (%s).", what);
    return json_pack("{s:{s:s, s:s}}", "error", "code", "internal", "message",
                     n > 0 && (size_t)n < sizeof msg ? msg : "The server could not complete this.");
}

bool lw_api_store_failed(lw_rq *rq, int rc, const char *what)
{
    int status = 500;
    json_t *body = lw_api_store_failure(rq, rc, what, &status);
    lw_reply_json(rq, status, body);
    return true;
}

void lw_api_work_refused(lw_rq *rq, int rc)
{
    if (rc == LW_ELIMIT) {
        lw_rq_header(rq, "retry-after", "1");
        lw_reply_error(rq, 503, "unavailable", "The server is busy; retry in a moment.");
        return;
    }
    lw_reply_error(rq, 503, "unavailable", "Out of memory.");
}

void lw_api_pin_refused(lw_rq *rq, int rc)
{
    if (rc == LW_ELIMIT) {
        lw_rq_header(rq, "retry-after", "1");
        lw_reply_error(rq, 429, "rate_limited",
                       "Too many PIN checks for this account are running; retry shortly.");
        return;
    }
    lw_reply_error(rq, 503, "unavailable", "Cannot check the PIN now.");
}

bool lw_api_rate_limited(lw_rq *rq, const lw_rate_rule *rule, const char *scope, const char *id,
                         const char *account_id)
{
    lw_server *app = rq->app;
    /* Addresses count by their IPv6 network (--rate-ipv6-prefix): one
     * subscriber's /64 is one client, not 2^64 of them. */
    const char *client = id; /* for the log line: the address as given */
    char addr[LW_RATE_ID_MAX];
    if (strcmp(scope, "ip") == 0 &&
        lw_rates_addr_key(id, app->cfg.rate_ipv6_prefix, addr, sizeof addr) == LW_OK)
        id = addr;
    int64_t now = lw_now_ms();
    int64_t wait = lw_rates_take(app->rates, rule, scope, id, now);
    if (wait == 0)
        return false;
    char mlabel[48];
    snprintf(mlabel, sizeof mlabel, "rule=\"%s\"", rule->name);
    lw_metrics_inc("linkward_rate_limited_total", mlabel);
    char ra[32];
    long long secs = lw_api_secs(wait);
    snprintf(ra, sizeof ra, "%lld", secs < 1 ? 1 : secs);
    lw_rq_header(rq, "retry-after", ra);
    lw_reply_error_x(
        rq, 429, "rate_limited", json_pack("{s:I}", "retry_after", (json_int_t)(secs < 1 ? 1 : secs)),
        "Too many attempts (%s). Try again in %s second%s.", rule->name, ra, secs <= 1 ? "" : "s");
    char logged[LW_LOG_ADDR_MAX];
    if (strcmp(scope, "ip") == 0) /* the id is the address */
        lw_log_warn("rate", "%s limit reached for address %s", rule->name, lw_log_addr(client, logged));
    else
        lw_log_warn("rate", "%s limit reached for %s %.24s from %s", rule->name, scope, id,
                    lw_log_addr(rq->ip, logged));
    if (account_id) {
        /* At most one alert a minute per account: a refused request must not
         * cost a store write each. */
        static const lw_rate_rule alert_rule = {"alert", 1.0 / 60, 1};
        if (lw_rates_take(app->rates, &alert_rule, "acct", account_id, now) == 0)
            lw_alert_raise_burst(&app->domain, account_id, "link.rate_limited", "",
                                 "Repeated link or pairing attempts on your account were refused.",
                                 json_pack("{s:s, s:s}", "limit", rule->name, "ip", rq->ip));
    }
    return true;
}

/* 200 while the store takes writes; 503 "degraded" from the first write it
 * refused (disk full, read-only, unreachable) until one succeeds, so a load
 * balancer stops sending requests that would only be refused. While
 * degraded, lw_store_writable probes with a write (at most once a second),
 * so a node nobody sends requests to still comes back by itself. */
void lw_api_health(lw_rq *rq)
{
    lw_server *app = rq->app;
    if (lw_store_writable(app->store)) {
        lw_reply_json(rq, 200, json_pack("{s:s}", "status", "ok"));
        return;
    }
    lw_rq_header(rq, "retry-after", LW_STORE_RETRY_AFTER);
    lw_reply_json(rq, 503,
                  json_pack("{s:s, s:s, s:s}", "status", "degraded", "store", "unavailable", "message",
                            "The database is not taking writes (disk full, read-only or unreachable); "
                            "requests that write are refused with 503 store_unavailable."));
}

void lw_api_server(lw_rq *rq)
{
    lw_server *app = rq->app;
    char pk[lw_b64_enc_len(LW_PK_LEN)];
    lw_b64_encode(pk, app->server_pk, LW_PK_LEN);
    lw_reply_json(
        rq, 200,
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:b}", "origin", app->cfg.public_origin, "server_key", pk,
                  "version", LINKWARD_VERSION, "min_client_version", app->cfg.min_client_version,
                  "max_companions", (json_int_t)app->cfg.max_companions, "registration",
                  app->cfg.registration_invite ? "invite" : "open", "pin_required", app->cfg.pin_required));
}

/* Printable text without control characters, for names and descriptions. */
static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* The reported connection, as the record shows it; NULL for anything else. */
static const char *reported_network(lw_rq *rq)
{
    static const struct {
        const char *value, *label;
    } kinds[] = {{"wifi", "Wi-Fi"}, {"cellular", "Cellular"}, {"ethernet", "Ethernet"}};
    if (!rq->req)
        return NULL; /* the client left while a store call waited */
    ssize_t k = h2o_find_header_by_str(&rq->req->headers, H2O_STRLIT("linkward-network"), -1);
    if (k < 0)
        return NULL;
    h2o_iovec_t v = rq->req->headers.entries[k].value;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (h2o_lcstris(v.base, v.len, kinds[i].value, strlen(kinds[i].value)))
            return kinds[i].label;
    return NULL;
}

void lw_api_place_lookup(lw_rq *rq, lw_place *place, lw_netinfo *net)
{
    lw_place_lookup(&rq->app->domain, rq->ip, place, net);
    const char *label = reported_network(rq);
    if (!label)
        return;
    char shown[LW_NETWORK_MAX];
    int n = snprintf(shown, sizeof shown, "%s%sreported %s", place->network, place->network[0] ? " · " : "",
                     label);
    if (n < 0 || (size_t)n >= sizeof shown)
        return; /* no room: the network as GeoIP says, never cut in the middle */
    lw_strlcpy(place->network, shown, sizeof place->network);
    if (net)
        lw_strlcpy(net->network, shown, sizeof net->network);
}

int lw_api_client_desc(lw_rq *rq, struct lw_client_desc *d)
{
    memset(d, 0, sizeof *d);
    lw_ua ua;
    lw_ua_parse(&ua, rq->ua, rq->ua_len);
    lw_strlcpy(d->client.browser, ua.browser, sizeof d->client.browser);
    lw_strlcpy(d->client.browser_version, ua.browser_version, sizeof d->client.browser_version);
    lw_strlcpy(d->client.os, ua.os, sizeof d->client.os);
    lw_strlcpy(d->client.os_version, ua.os_version, sizeof d->client.os_version);
    lw_strlcpy(d->client.device_model, ua.device_model, sizeof d->client.device_model);

    /* Browsers that honour our Accept-CH say more than their frozen User-Agent. */
    char ch[4][160];
    static const char *const hints[4] = {"sec-ch-ua", "sec-ch-ua-platform", "sec-ch-ua-platform-version",
                                         "sec-ch-ua-model"};
    bool any_hint = false;
    for (int i = 0; i < 4; i++) {
        ch[i][0] = '\0';
        if (!rq->req)
            continue; /* the client left while a store call waited */
        ssize_t k = h2o_find_header_by_str(&rq->req->headers, hints[i], strlen(hints[i]), -1);
        if (k >= 0) {
            h2o_iovec_t v = rq->req->headers.entries[k].value;
            size_t n = v.len < sizeof ch[i] - 1 ? v.len : sizeof ch[i] - 1;
            memcpy(ch[i], v.base, n);
            ch[i][n] = '\0';
            any_hint = true;
        }
    }
    if (any_hint) {
        lw_ua_apply_client_hints(&ua, ch[0], ch[1], ch[2], ch[3]);
        lw_strlcpy(d->client.browser, ua.browser, sizeof d->client.browser);
        lw_strlcpy(d->client.browser_version, ua.browser_version, sizeof d->client.browser_version);
        lw_strlcpy(d->client.os, ua.os, sizeof d->client.os);
        lw_strlcpy(d->client.os_version, ua.os_version, sizeof d->client.os_version);
        lw_strlcpy(d->client.device_model, ua.device_model, sizeof d->client.device_model);
    }

    json_t *c = rq->body ? json_object_get(rq->body, "client") : NULL;
    if (c && !json_is_null(c)) {
        if (!json_is_object(c)) {
            lw_reply_error(rq, 400, "invalid_request", "The field \"client\" must be an object.");
            return LW_EINVAL;
        }
        static const struct {
            const char *key;
            size_t off;
        } fields[] = {
            {"name", offsetof(struct lw_client_desc, name)},
            {"browser", offsetof(struct lw_client_desc, client.browser)},
            {"browser_version", offsetof(struct lw_client_desc, client.browser_version)},
            {"os", offsetof(struct lw_client_desc, client.os)},
            {"os_version", offsetof(struct lw_client_desc, client.os_version)},
            {"device_model", offsetof(struct lw_client_desc, client.device_model)},
        };
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
            json_t *v = json_object_get(c, fields[i].key);
            if (!v || json_is_null(v))
                continue;
            const char *s = json_string_value(v);
            size_t cap = i == 0 ? LW_NAME_MAX : LW_FIELD_MAX;
            if (!s || json_string_length(v) >= cap || strlen(s) != json_string_length(v) || !printable(s)) {
                lw_reply_error(rq, 400, "invalid_request",
                               "client.%s must be printable text of at most %zu bytes.", fields[i].key,
                               cap - 1);
                return LW_EINVAL;
            }
            lw_strlcpy((char *)d + fields[i].off, s, cap);
        }
    }
    if (!d->name[0]) {
        lw_ua u;
        memset(&u, 0, sizeof u);
        lw_strlcpy(u.browser, d->client.browser, sizeof u.browser);
        lw_strlcpy(u.os, d->client.os, sizeof u.os);
        lw_ua_name(&u, d->name, sizeof d->name);
    }
    return LW_OK;
}

bool lw_handle_normalize(const char *in, char out[LW_HANDLE_MAX])
{
    size_t n = strlen(in);
    if (in[0] == '+') {
        if (n < 9 || n > 16)
            return false;
        for (size_t i = 1; i < n; i++)
            if (!isdigit((unsigned char)in[i]))
                return false;
        memcpy(out, in, n + 1);
        return true;
    }
    if (n < 3 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = (char)tolower((unsigned char)in[i]);
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
        out[i] = c;
    }
    out[n] = '\0';
    return true;
}

/* ---- registration answers held to a fixed time ---- */

typedef struct lw_paced {
    lw_rq *rq; /* NULL once the client left */
    int status;
    json_t *body;
    bool given; /* pace_answer gave the answer */
    bool due;   /* the time came before the answer (the store was slower): it goes when given */
    h2o_timeout_entry_t entry;
} lw_paced;

static h2o_timeout_t pace_timeout;
static lw_loop *pace_loop;

static void pace_fire(h2o_timeout_entry_t *entry)
{
    lw_paced *p = H2O_STRUCT_FROM_MEMBER(lw_paced, entry, entry);
    if (!p->given) {
        p->due = true;
        return;
    }
    if (p->rq)
        lw_reply_json(p->rq, p->status, p->body);
    else
        json_decref(p->body);
    lw_rq_release(&p->rq);
    lw_free(p);
}

/* Starts the clock of a paced answer now, before the store is asked. NULL
 * when out of memory (the answer then goes at once: correct, only not paced). */
lw_paced *lw_api_pace_start(lw_rq *rq)
{
    lw_server *app = rq->app;
    if (pace_loop != app->loop) {
        h2o_timeout_init(app->loop, &pace_timeout, LW_REGISTER_ANSWER_MS);
        pace_loop = app->loop;
    }
    lw_paced *p = lw_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->entry.cb = pace_fire;
    h2o_timeout_link(app->loop, &pace_timeout, &p->entry);
    lw_rq_guard(rq, &p->rq);
    return p;
}

/* Hands the answer (body stolen) to the paced slot, or sends it at once without one. */
void lw_api_pace_answer(lw_rq *rq, lw_paced *p, int status, json_t *body)
{
    if (!p) {
        lw_reply_json(rq, status, body);
        return;
    }
    p->status = status;
    p->body = body;
    p->given = true;
    if (p->due)
        pace_fire(&p->entry);
}

json_t *lw_api_error_body(const char *code, const char *message)
{
    return json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message);
}

void lw_api_register(lw_rq *rq)
{
    lw_server *app = rq->app;
    const char *handle_in, *invite;
    lw_account a;
    lw_session *s = lw_calloc(1, sizeof *s);
    struct lw_client_desc d;
    memset(&a, 0, sizeof a);
    if (!s) {
        lw_reply_error(rq, 503, "unavailable", "Out of memory.");
        return;
    }
    if (lw_api_rate_limited(rq, &app->cfg.rate_register, "ip", rq->ip, NULL))
        goto out;
    if (lw_body_str(rq, "handle", true, 64, &handle_in) != LW_OK ||
        lw_body_b64(rq, "public_key", true, s->public_key, LW_PK_LEN, NULL) != LW_OK ||
        lw_body_str(rq, "invite", false, 64, &invite) != LW_OK || lw_api_client_desc(rq, &d) != LW_OK)
        goto out;
    if (!lw_handle_normalize(handle_in, a.handle)) {
        lw_reply_error(rq, 400, "invalid_request",
                       "A handle is a phone number in E.164 form (+ and 8-15 digits) or a user name of 3-32 "
                       "letters, digits, '.', '_' or '-'.");
        goto out;
    }
    uint8_t invite_hash[LW_HASH_LEN];
    if (app->cfg.registration_invite) {
        if (!invite) {
            lw_reply_error(rq, 403, "invite_required", "This server registers accounts by invitation only.");
            goto out;
        }
        lw_keyed_hash(invite_hash, app->hash_key, invite, strlen(invite));
    }
    int64_t now = lw_now_ms();
    lw_random_id(a.id);
    a.created_at = now;
    a.inactive_ttl_ms = app->cfg.inactive_ttl_ms;

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

    /* The recovery key ("I lost my phone"), shown once: only its verifier is stored. */
    uint8_t rk[LW_RECOVERY_KEY_LEN];
    char rk_text[LW_RECOVERY_TEXT_MAX];
    lw_recovery_generate(rk, rk_text);
    lw_recovery_hash(app->hash_key, a.id, rk, a.recovery_hash);
    lw_wipe(rk, sizeof rk);

    char token[LW_CRED_STRLEN];
    lw_sessions_prepare(app->sessions, s, token);
    /* From here on the answer may depend on the handle: it waits for its fixed time. */
    lw_paced *pace = lw_api_pace_start(rq);
    uint64_t epoch = lw_sessions_epoch(app->sessions);
    int rc = lw_store_account_create(app->store, &a, s, app->cfg.registration_invite ? invite_hash : NULL);
    if (rc == LW_ECONFLICT) {
        /* Open mode must say so (a sign-up form needs it); with an invite only
         * its holder can get here, and a handle-bound invite was checked free. */
        lw_api_pace_answer(rq, pace, 409,
                           lw_api_error_body("handle_taken", "This handle is already registered."));
        goto out_tok;
    }
    if (rc == LW_EDENIED) {
        lw_api_pace_answer(
            rq, pace, 403,
            lw_api_error_body("invalid_invite",
                              "This invitation code is not valid for this handle (unknown, used, "
                              "expired, or issued for another handle)."));
        goto out_tok;
    }
    if (rc != LW_OK) {
        int status = 500;
        json_t *body = lw_api_store_failure(rq, rc, "registering", &status);
        lw_api_pace_answer(rq, pace, status, body);
        goto out_tok;
    }
    lw_sessions_cache(app->sessions, s, epoch);
    char pk[lw_b64_enc_len(LW_PK_LEN)], challenge[lw_b64_enc_len(32)];
    lw_b64_encode(pk, app->server_pk, LW_PK_LEN);
    lw_b64_encode(challenge, s->challenge, sizeof s->challenge);
    char addr[LW_LOG_ADDR_MAX];
    lw_log_info("account", "account %.8s registered from %s", a.id, lw_log_addr(rq->ip, addr));
    lw_api_pace_answer(rq, pace, 201,
                       json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s}", "account_id", a.id,
                                 "device_id", s->id, "handle", a.handle, "token", token, "token_expires_in",
                                 (json_int_t)lw_api_secs(s->cred_expires_at - lw_now_ms()), "challenge",
                                 challenge, "server_key", pk, "origin", app->cfg.public_origin,
                                 "recovery_key", rk_text));
out_tok:
    lw_wipe(token, sizeof token);
    lw_wipe(rk_text, sizeof rk_text);
out:
    lw_wipe(s, sizeof *s);
    lw_free(s);
}

/* ---- DELETE /v1/account ---- */

typedef lw_api_pin_op delete_op;

/* Deletes the account in one store transaction, then closes every socket of
 * it with session.ended (account_deleted). Runs even when the client left
 * after giving the right PIN: what was asked for, with proof, is done. */
static void delete_now(lw_server *app, lw_rq *rq, const char *account_id)
{
    lw_end_request what = {.scope = LW_END_DELETE, .account_id = account_id};
    lw_end_result res;
    int rc = lw_sessions_end_where(app->sessions, &what, &res);
    if (rc != LW_OK) {
        if (rq)
            lw_api_store_failed(rq, rc, "deleting the account");
        else
            lw_log_error("account", "cannot delete account %.8s: %s", account_id, lw_strerror(rc));
        return;
    }
    /* Nobody is left to alert: only the sockets were told. */
    size_t n = res.n;
    lw_free(res.ended);
    lw_metrics_inc("linkward_accounts_deleted_total", NULL);
    lw_log_info("account", "account %.8s deleted; %zu session(s) ended", account_id, n);
    if (!rq)
        return;
    lw_api_forget_browser(rq);
    lw_reply_json(rq, 200, json_pack("{s:b, s:I}", "deleted", 1, "ended", (json_int_t)n));
}

static void delete_pin_right(lw_api_pin_op *op)
{
    delete_now(op->app, op->rq, op->account_id);
}

void lw_api_account_delete(lw_rq *rq)
{
    lw_server *app = rq->app;
    if (!rq->who.primary) {
        lw_reply_error(rq, 403, "forbidden",
                       "Only the primary device (your phone) can delete the account. This device can log "
                       "itself out instead.");
        return;
    }
    const char *pin;
    if (lw_body_str(rq, "pin", false, 16, &pin) != LW_OK)
        return;
    lw_account a;
    int rc = lw_store_account_get(app->store, rq->who.account_id, &a);
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "loading the account");
        return;
    }
    if (a.pin_hash[0] == '\0') {
        lw_wipe(&a, sizeof a);
        delete_now(app, rq, rq->who.account_id);
        return;
    }
    delete_op *op = lw_calloc(1, sizeof *op);
    if (!op) {
        lw_reply_error(rq, 503, "unavailable", "Out of memory.");
        goto out;
    }
    if (!lw_api_pin_gate(rq, &a, pin, "Enter your two-step PIN to delete the account.", op, delete_pin_right))
        goto out_free;
    goto out; /* op now belongs to the PIN job */
out_free:
    lw_free(op);
out:
    lw_wipe(&a, sizeof a);
}
