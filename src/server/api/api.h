/*
 * api.h — the /v1 route handlers, one file per area: api_account.c,
 * api_link.c, api_session.c, api_pin.c. router.c maps method and path to
 * these and does body parsing and authentication first.
 */
#ifndef LW_API_H
#define LW_API_H

#include "rq.h"
#include "pin.h"

void lw_api_health(lw_rq *rq);
void lw_api_server(lw_rq *rq);
void lw_api_register(lw_rq *rq);

void lw_api_link_create(lw_rq *rq);
void lw_api_link_get(lw_rq *rq);
void lw_api_link_scan(lw_rq *rq);
void lw_api_link_approve(lw_rq *rq);
void lw_api_link_deny(lw_rq *rq);
void lw_api_link_complete(lw_rq *rq);

void lw_api_session_get(lw_rq *rq);
void lw_api_session_refresh(lw_rq *rq);
void lw_api_session_logout(lw_rq *rq);
void lw_api_devices_list(lw_rq *rq);
void lw_api_device_rename(lw_rq *rq);
void lw_api_device_logout(lw_rq *rq);
void lw_api_devices_logout_all(lw_rq *rq);
void lw_api_history_list(lw_rq *rq);
void lw_api_history_delete(lw_rq *rq);
void lw_api_history_delete_all(lw_rq *rq);
void lw_api_alerts_list(lw_rq *rq);
void lw_api_alert_ack(lw_rq *rq);
void lw_api_settings_get(lw_rq *rq);
void lw_api_settings_set(lw_rq *rq);

void lw_api_account_secure(lw_rq *rq);
void lw_api_account_delete(lw_rq *rq);
void lw_api_csp_report(lw_rq *rq);
void lw_api_pin_set(lw_rq *rq);
void lw_api_pin_disable(lw_rq *rq);
void lw_api_push_vapid_key(lw_rq *rq);
void lw_api_push_list(lw_rq *rq);
void lw_api_push_subscribe(lw_rq *rq);
void lw_api_push_unsubscribe(lw_rq *rq);
void lw_api_recover(lw_rq *rq);
void lw_api_recovery_key_new(lw_rq *rq);
void lw_api_transfer_create(lw_rq *rq);
void lw_api_transfer_approve(lw_rq *rq);
void lw_api_transfer_claim(lw_rq *rq);
void lw_api_devices_resign(lw_rq *rq);

/* Answers held to a fixed time after the store is asked (api_account.c):
 * start the clock before the store call whose outcome the timing must not
 * tell, then give the answer (body stolen). pace may be NULL (out of
 * memory): the answer then goes at once. */
typedef struct lw_paced lw_paced;
lw_paced *lw_api_pace_start(lw_rq *rq);
void lw_api_pace_answer(lw_rq *rq, lw_paced *pace, int status, json_t *body);
/* {"error": {"code", "message"}}, owned by the caller. */
json_t *lw_api_error_body(const char *code, const char *message);
/* How a handler answers a store failure in a paced answer: sets the
 * headers, logs once, returns the body (owned by the caller) and *status. */
json_t *lw_api_store_failure(lw_rq *rq, int rc, const char *what, int *status);

/* Client description from a body's "client" object, falling back to the User-Agent. */
struct lw_client_desc {
    char name[LW_NAME_MAX];
    lw_client client;
};
int lw_api_client_desc(lw_rq *rq, struct lw_client_desc *d);
/* lw_place_lookup for the request's address, plus the connection the client
 * reports (`Linkward-Network: wifi|cellular|ethernet`, PRODUCT §4: "a client
 * hint of wifi/cellular if the client reports one") appended to the network
 * shown, marked as reported. Other values are ignored. */
struct lw_place;
struct lw_netinfo;
void lw_api_place_lookup(lw_rq *rq, struct lw_place *place, struct lw_netinfo *net);

/* A handle as stored: an E.164 number ("+" and 8-15 digits) or a user name
 * of 3-32 of a-z 0-9 . _ - (lower-cased into out). False if in is neither. */
bool lw_handle_normalize(const char *in, char out[LW_HANDLE_MAX]);

/* Maps a store error to a 500/503 reply; returns true if it replied. */
bool lw_api_store_failed(lw_rq *rq, int rc, const char *what);
/* Answers a job lw_work_submit refused: 503, with retry-after when the
 * queue was full (LW_ELIMIT). */
void lw_api_work_refused(lw_rq *rq, int rc);
/* Answers a PIN job lw_pins_submit refused: 429 with retry-after when the
 * account's checks in flight are at their cap (LW_ELIMIT), else 503. */
void lw_api_pin_refused(lw_rq *rq, int rc);

#endif

/* PIN plumbing shared by approve and the PIN routes (api_pin.c). */
/* If the account is locked out, replies 423 pin_locked (with Retry-After) and returns true. */
bool lw_api_pin_locked(lw_rq *rq, const lw_account *a);
/* Records a finished PIN check (lw_pin_record: the count, the lockout, the
 * alerts) and, if rq is still there and the PIN was not right, replies 403
 * wrong_pin, 423 pin_locked or an error. Returns true if the PIN was right.
 * Runs even when the client went away, so disconnecting cannot dodge the
 * counter. */
bool lw_api_pin_result(lw_server *app, const char *account_id, const char *device_id, int verified,
                       lw_rq *rq);
/* lw_pins_submit for a request: done(op, …) runs once the check is done,
 * with *slot set to rq, or NULL if the client left meanwhile (slot NULL: the
 * caller guards rq itself). On the request's fiber (PostgreSQL) the fiber
 * waits for the check and done runs on it before this returns, so done's
 * store calls wait off the loop too; elsewhere done runs later on the loop.
 * Either way, on LW_OK op belongs to done: do not touch it after. On an
 * error nothing ran (lw_api_pin_refused answers it). */
int lw_api_pin_submit(lw_rq *rq, lw_rq **slot, const char *account_id, const char *pin,
                      const char *stored_hash, const char *new_pin, int max_inflight, lw_pin_done done,
                      void *op);
/* What an action held behind the account's PIN (deleting the account, a new
 * recovery key, moving to a new phone) keeps while the PIN is checked; the
 * first member of the action's own job. */
typedef struct lw_api_pin_op lw_api_pin_op;
/* What the action does once the PIN was right (its rq NULL if the client left). */
typedef void (*lw_api_pin_then)(lw_api_pin_op *op);
struct lw_api_pin_op {
    lw_rq *rq; /* NULL once the client left */
    lw_server *app;
    char account_id[LW_ID_STRLEN];
    char device_id[LW_ID_STRLEN]; /* the caller's */
    lw_api_pin_then then;
};
/* Checks pin (the body's, NULL if absent) for account a as a link approval
 * does: off the loop, counted, locked out after too many, rate-limited per
 * account. Without a PIN in the body: 403 pin_required saying why. True when
 * op (lw_malloc'd, filled here) went to the PIN job: the result is recorded
 * (lw_api_pin_result), then(op) runs if the PIN was right, and op is freed,
 * as lw_api_pin_submit says when; the caller keeps no hold on op. False:
 * answered, op is the caller's to free. */
bool lw_api_pin_gate(lw_rq *rq, const lw_account *a, const char *pin, const char *why, lw_api_pin_op *op,
                     lw_api_pin_then then);

/* A session socket opened: send it proof.challenge (api_session.c). */
void lw_api_session_socket_opened(lw_server *app, const lw_principal *who);

/* Browsers get their credential as an HttpOnly cookie instead of in the body:
 * true when the request body asks for {"credential":"cookie"}. Sets the
 * cookie (a browser-session cookie when !persistent). */
bool lw_api_cookie_wanted(lw_rq *rq);
void lw_api_set_session_cookie(lw_rq *rq, const char *token, bool persistent);
/* Sets (max_age > 0), or with max_age 0 deletes, an HttpOnly SameSite=Strict
 * cookie named name (__Host- prefixed and Secure over TLS); max_age < 0 makes
 * a browser-session cookie. */
void lw_api_set_cookie(lw_rq *rq, const char *name, const char *value, long long max_age);
/* Tells a browser to forget this origin (Clear-Site-Data) and expires its
 * session cookie: a page cannot delete an HttpOnly cookie itself. */
void lw_api_forget_browser(lw_rq *rq);

/* Takes a token of rule for id in the table (rule, scope); scope "ip" counts
 * an IPv6 id by its network (cfg.rate_ipv6_prefix). When refused, replies 429
 * rate_limited with Retry-After and, when account_id is given (someone is
 * hammering that account), raises a link.rate_limited alert (at most one a
 * minute per account). Returns true when refused. */
bool lw_api_rate_limited(lw_rq *rq, const lw_rate_rule *rule, const char *scope, const char *id,
                         const char *account_id);

/* Remaining validity in whole seconds, rounded up. */
long long lw_api_secs(int64_t ms);
