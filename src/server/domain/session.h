/*
 * session.h — session credentials: issuing, checking on every request,
 * device-bound refresh, ending, and the last-active bookkeeping.
 *
 * Checks are served from an in-memory cache keyed by credential selector, so
 * a valid session costs no store access; last-active times are written to the
 * store at most once per cfg.last_active_write_ms per device (and before every
 * sweep and at shutdown). With several nodes (a shared store) the cache is
 * kept exact by the other nodes' notifications, and trusted only while the
 * vouch hook says every notification has arrived (the relay's health, wired by
 * serve.c: the domain does not see the bus); otherwise every check reads the
 * session's row.
 */
#ifndef LW_SESSION_H
#define LW_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "deps.h"
#include "cred.h"
#include "store.h"

typedef struct lw_principal {
    char device_id[LW_ID_STRLEN];
    char account_id[LW_ID_STRLEN];
    bool primary;
    int64_t cred_expires_at;
} lw_principal;

lw_sessions *lw_sessions_new(const lw_domain_deps *deps);

/* With several nodes: whether every revocation committed until a short
 * horizon before mono_now (lw_mono_ms) has reached this node, so the cache may
 * be trusted without reading the store. Without a hook (or while it says
 * false) a shared store is read on every check. */
typedef bool lw_sessions_vouch_fn(void *ctx, int64_t mono_now);
void lw_sessions_set_vouch(lw_sessions *s, lw_sessions_vouch_fn *fn, void *ctx);
void lw_sessions_free(lw_sessions *s);

/* Checks a credential string ("lws_…"): parses it, hashes its verifier and
 * compares it in constant time with the cached (or, on a miss and with
 * several nodes when the cache cannot be vouched for, the stored) session.
 * It only reads: no last-active time, no GeoIP, no alert, no write (the one
 * exception: on SQLite, when another process wrote to the file, the cache is
 * dropped and its pending last-active times are written first, as before any
 * cache drop). On LW_OK fills *out. Errors: LW_ENOTFOUND (unknown or wrong
 * verifier), LW_EEXPIRED (credential lapsed; allowed when allow_expired),
 * LW_EDENIED (the session ended; end_reason gets the reason). */
int lw_sessions_check(lw_sessions *s, const char *cred, size_t len, bool allow_expired, lw_principal *out,
                      char end_reason[LW_REASON_MAX]);

/* The device who (just checked by lw_sessions_check) was seen from ip at now:
 * records its last activity (written at most once per
 * cfg.last_active_write_ms), and when the address changed looks the new one
 * up and runs the travel rules (risk.c), which may raise alerts. Called once
 * per request, after a successful check. */
void lw_sessions_seen(lw_sessions *s, const lw_principal *who, const char *ip, int64_t now);

/* Device-bound refresh of sess (as stored: the caller loaded it). sig is the
 * signature the request carried over the current challenge, or NULL when it
 * carried none. A valid proof by the device key gives sess a new credential
 * and challenge (lw_sessions_issue; token gets the string). Anything else
 * means the credential is in the wrong hands: the account gets a
 * token.theft_suspected alert, the session ends (token_theft) as any other
 * end does, and the answer is LW_EDENIED. Otherwise the store's error. */
int lw_sessions_refresh(lw_sessions *s, lw_session *sess, const uint8_t *sig, const char *ip,
                        char token[LW_CRED_STRLEN]);

/* Gives sess a new credential (selector, verifier hash, expiry, challenge),
 * stores it and updates the cache; the previous credential stops working,
 * here and (told through the events sink) on the other nodes. token gets the string
 * the device presents. */
int lw_sessions_issue(lw_sessions *s, lw_session *sess, char token[LW_CRED_STRLEN]);

/* As lw_sessions_issue for a session not stored yet: fills the credential
 * fields only; the caller takes lw_sessions_epoch, inserts sess, and then
 * calls lw_sessions_cache with that epoch, which caches sess only if no
 * session was dropped from the cache in between (with PostgreSQL the insert
 * may wait while other requests run, and one may end the new session). */
int lw_sessions_prepare(lw_sessions *s, lw_session *sess, char token[LW_CRED_STRLEN]);
uint64_t lw_sessions_epoch(const lw_sessions *s);
void lw_sessions_cache(lw_sessions *s, const lw_session *sess, uint64_t epoch);

/*
 * Ending sessions: the one entry point. Whatever ends sessions (a logout, a
 * logout-all, the administrator, the sweeper, an account deletion, a relink,
 * a theft) names what to end here; this does the store transaction and then
 * everything that must follow it, in this order: drop the sessions from the
 * cache (a cached credential stops working at once), close their sockets with
 * session.ended here and on the other nodes, and, unless their account is
 * gone, tell the devices that remain (device.ended) and raise one
 * device.ended alert per account and reason. No caller ends a session in the
 * store itself.
 */
typedef enum lw_end_scope {
    LW_END_DEVICE,  /* device_id, if active (else LW_ECONFLICT; LW_ENOTFOUND when unknown) */
    LW_END_ACCOUNT, /* account_id's active sessions of role (NULL: every role) but except (or NULL) */
    LW_END_EVERY,   /* every account's active sessions of role (NULL: every role) */
    LW_END_DELETE,  /* account_id deleted with its sessions ("account_deleted"): nobody is left to tell */
    LW_END_SWEEP,   /* what *sweep makes due; pending last-active times are written first */
    LW_END_TOLD,    /* told[0..ntold) ended in a transaction of the caller's own (a relink): tell only */
} lw_end_scope;

typedef struct lw_end_request {
    lw_end_scope scope;
    const char *device_id;
    const char *account_id;
    const char *role;
    const char *except;
    const char *reason; /* DEVICE, ACCOUNT, EVERY */
    const lw_sweep_policy *sweep;
    const lw_ended *told;
    size_t ntold;
} lw_end_request;

/* What ended: ended[0..n) (lw_malloc'd, the caller lw_frees it) and, for a
 * sweep, the history records purged. */
typedef struct lw_end_result {
    lw_ended *ended;
    size_t n;
    long purged;
} lw_end_result;

/* Ends what *what names (above). LW_OK, or the store's error, when nothing
 * ended. res may be NULL; otherwise it is filled (zeroed on error). */
int lw_sessions_end_where(lw_sessions *s, const lw_end_request *what, lw_end_result *res);

/* lw_sessions_end_where for one device (LW_END_DEVICE). */
int lw_sessions_end(lw_sessions *s, const char *device_id, const char *reason);

/* Where a cached device was last used (address, country, coordinates), as
 * of its latest request on this node. False when it is not cached here. */
bool lw_sessions_place(lw_sessions *s, const char *device_id, lw_place *out);

/* Another node ended this session or replaced its credential: forget it
 * here (the bus's forget hook, wired by serve.c). Never waits: its
 * last-active time, if not written yet, is written by
 * lw_sessions_write_late (the bus's settle hook, once the notice is
 * applied), which may wait for the store. */
void lw_sessions_forget(lw_sessions *s, const char *device_id);
void lw_sessions_write_late(lw_sessions *s);
/* After missed notifications: forget every cached session (each credential is
 * checked against the store again) and end the sockets of sessions that
 * ended meanwhile (or whose rows are gone: account_deleted). LW_OK, or the
 * first store error when some sessions could not be read: their sockets stay
 * open and the caller tries again. */
int lw_sessions_resync(lw_sessions *s);

/* The rendered answer of GET /v1/session for a cached session (the device's
 * most frequent request, served without the store): text owned by the cache,
 * its length, and the offset of its 20-byte last_active_at timestamp, which
 * the caller overwrites in its copy. NULL when not rendered yet. */
const char *lw_sessions_view(lw_sessions *s, const char *device_id, size_t *len, size_t *ts_off);
/* Keeps text (lw_malloc'd; taken over when true) as the session's rendered
 * answer, unless a view was invalidated since lw_sessions_view_epoch said
 * epoch (the caller read the store to render it, and may have waited
 * meanwhile) or the session is not cached: false, and text stays the
 * caller's. */
uint64_t lw_sessions_view_epoch(const lw_sessions *s);
bool lw_sessions_set_view(lw_sessions *s, const char *device_id, char *text, size_t len, size_t ts_off,
                          uint64_t epoch);
/* Something the answer shows changed: the device's own record, or the account's. */
void lw_sessions_invalidate_view(lw_sessions *s, const char *device_id);
void lw_sessions_invalidate_account_views(lw_sessions *s, const char *account_id);

/* Writes pending last-active times (all of them when force). */
void lw_sessions_flush(lw_sessions *s, bool force);
size_t lw_sessions_cached(const lw_sessions *s);

#endif
