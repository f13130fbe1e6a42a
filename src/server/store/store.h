/*
 * store.h — the storage interface. Session logic talks only to these
 * functions; each engine fills a lw_store_ops vtable and is chosen by the
 * scheme of the location string ("postgres://" or "postgresql://" for
 * PostgreSQL, a file path for SQLite). The operations are written once
 * (sql_*.c over the driver interface of sql.h); drv_sqlite.c and drv_pg.c
 * are the engines' drivers.
 *
 * Rules every backend keeps:
 *  - every function that changes several rows does it in one transaction;
 *  - state transitions are compare-and-set: they name the state they expect
 *    and return LW_ECONFLICT when the row is no longer in it, which is how a
 *    single-use ref, code or link request is consumed exactly once;
 *  - parameterised statements only;
 *  - times are milliseconds since the epoch (int64), ids are base64url text;
 *  - out-parameters are filled only on LW_OK; lists are malloc'd arrays the
 *    caller frees with lw_free.
 *
 * Threads: the event loop owns the store and calls these functions. A SQLite
 * store is used by the loop thread alone. A PostgreSQL store also runs
 * operations on its worker threads for requests on fibers (core/fiber.h,
 * drv_pg.c): such a call returns after other events ran on the loop, so its
 * caller holds no pointer into loop-owned tables across it.
 */
#ifndef LW_STORE_H
#define LW_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "crypto.h"
#include "lw.h"
#include "webpush.h"

typedef struct lw_store lw_store;

#define LW_HANDLE_MAX 64        /* bytes, including NUL */
#define LW_NAME_MAX 64          /* device name */
#define LW_FIELD_MAX 64         /* browser, os, ... */
#define LW_IP_MAX 64            /* text form of an IPv4/IPv6 address */
#define LW_PLACE_MAX 96         /* country/region/city text */
#define LW_NETWORK_MAX 128      /* network description */
#define LW_REASON_MAX 32        /* end reason / alert kind */
#define LW_PIN_HASH_MAX 128     /* crypto_pwhash_str output */
#define LW_RECOVERY_HASH_MAX 65 /* hex of a keyed hash, and its NUL */
#define LW_ALERT_DETAILS_MAX 2048
/* PostgreSQL connections of one store (drv_pg.c), and so the worker threads
 * that run its operations for requests on fibers (serve.c). */
#define LW_STORE_PG_CONNECTIONS 4
#define LW_SETTING_NAME_MAX 64   /* bytes, including NUL */
#define LW_SETTING_VALUE_MAX 256 /* bytes, including NUL */

/* The settings the server keeps about itself. */
#define LW_SETTING_SERVER_KEY "server_key_fingerprint" /* hex BLAKE2b-256 of the server's public key */
#define LW_SETTING_WRITE_PROBE "write_probe_at"        /* ms: the last write that proved the store writable */

/* Roles and states are stored as text. */
#define LW_ROLE_PRIMARY "primary"
#define LW_ROLE_COMPANION "companion"

/* Where a device was seen: the address and what GeoIP said about it. */
typedef struct lw_place {
    char ip[LW_IP_MAX];
    char country[LW_PLACE_MAX];
    char region[LW_PLACE_MAX];
    char city[LW_PLACE_MAX];
    double lat, lon;
    bool has_loc;                 /* lat/lon are known */
    double accuracy_km;           /* the database's accuracy radius; 0 = unknown (not stored) */
    char network[LW_NETWORK_MAX]; /* connection type, ASN, anonymity, as the record shows it */
} lw_place;

/* What a device says it runs on (its User-Agent and client hints, or what a
 * CLI says of itself), as the record shows it. */
typedef struct lw_client {
    char browser[LW_FIELD_MAX], browser_version[LW_FIELD_MAX];
    char os[LW_FIELD_MAX], os_version[LW_FIELD_MAX];
    char device_model[LW_FIELD_MAX];
} lw_client;

typedef struct lw_account {
    char id[LW_ID_STRLEN];
    char handle[LW_HANDLE_MAX];
    int64_t created_at;
    char pin_hash[LW_PIN_HASH_MAX];           /* "" when no PIN is set */
    int pin_failures;                         /* consecutive wrong PINs */
    int64_t pin_locked_until;                 /* 0 when not locked */
    int64_t inactive_ttl_ms;                  /* companion inactivity TTL chosen by the holder */
    bool pin_change_required;                 /* "secure my account": no new links until the PIN is changed */
    char recovery_hash[LW_RECOVERY_HASH_MAX]; /* verifies the recovery key (lw_recovery_*); "" when none */
} lw_account;

/* "Move to a new phone": the new phone's request (its new primary key),
 * pending -> approved (by the old primary: the new primary session exists)
 * -> claimed (the new phone took its credential). */
typedef struct lw_transfer {
    char id[LW_ID_STRLEN];
    uint8_t token_hash[LW_HASH_LEN]; /* keyed hash of the new phone's transfer token */
    uint8_t code_hash[LW_HASH_LEN];  /* keyed hash of the normalised code the old phone types or scans */
    uint8_t public_key[LW_PK_LEN];   /* the new primary key */
    char state[16];
    char account_id[LW_ID_STRLEN]; /* set by approve */
    char device_id[LW_ID_STRLEN];  /* the new primary session, set by approve */
    int64_t created_at;
    int64_t expires_at;
} lw_transfer;

/* A session: one per linked device (the primary included). */
typedef struct lw_session {
    char id[LW_ID_STRLEN]; /* device id */
    char account_id[LW_ID_STRLEN];
    char role[16]; /* "primary" | "companion" */
    char name[LW_NAME_MAX];
    lw_client client;
    lw_place first; /* where it was linked (accuracy_km is not stored) */
    /* Where it was last used. A new session starts last seen where it was
     * first seen; every move then replaces the whole place, with empty text
     * where GeoIP knows nothing (empty, never the old place). */
    lw_place last;
    uint8_t public_key[LW_PK_LEN];   /* device key */
    uint8_t account_sig[LW_SIG_LEN]; /* primary's signature over the companion key; zero for primaries */
    int64_t linked_at;
    int64_t last_active_at;
    char state[16];                 /* "active" | "ended" */
    int64_t ended_at;               /* 0 while active */
    char end_reason[LW_REASON_MAX]; /* "" while active */
    bool persistent;                /* false: browser-session cookie ("keep me signed in" off) */
    /* current credential */
    char cred_selector[LW_ID_STRLEN];
    uint8_t cred_hash[LW_HASH_LEN];
    int64_t cred_expires_at;
    uint8_t challenge[32]; /* what the device signs to refresh its credential */
} lw_session;

/* Link request states: pending -> scanned -> approved -> completed, or
 * denied / expired. */
typedef struct lw_link_request {
    char id[LW_ID_STRLEN];
    uint8_t token_hash[LW_HASH_LEN]; /* keyed hash of the companion's request token verifier */
    char token_selector[LW_ID_STRLEN];
    uint8_t public_key[LW_PK_LEN];  /* companion's device key */
    uint8_t code_hash[LW_HASH_LEN]; /* keyed hash of the normalised pairing code */
    uint8_t ref_hash[LW_HASH_LEN];  /* keyed hash of the current QR ref */
    int ref_index;                  /* 0..5 */
    int64_t ref_expires_at;
    int64_t created_at;
    int64_t expires_at;
    char state[16];
    char account_id[LW_ID_STRLEN];   /* set by scan */
    char scanned_by[LW_ID_STRLEN];   /* primary device id that scanned */
    uint8_t account_sig[LW_SIG_LEN]; /* set by approve */
    uint8_t nonce[32];               /* the companion signs this to complete */
    char device_id[LW_ID_STRLEN];    /* set by complete */
    bool persistent;
    /* who is asking: filled at creation from the request */
    char name[LW_NAME_MAX];
    lw_client client;
    lw_place place; /* ip, country, region, city and network are stored; not the coordinates */
} lw_link_request;

typedef struct lw_alert {
    char id[LW_ID_STRLEN];
    char account_id[LW_ID_STRLEN];
    char kind[LW_REASON_MAX];
    char device_id[LW_ID_STRLEN]; /* the device the alert is about, "" if none */
    int64_t created_at;
    int64_t acked_at;                   /* 0 until acknowledged */
    int64_t updated_at;                 /* when the last alert of its burst came (created_at at first) */
    int count;                          /* alerts of its burst counted into it (1 at first) */
    char answer[LW_REASON_MAX];         /* "" until answered; LW_ALERT_ANSWER_* */
    char answered_by[LW_ID_STRLEN];     /* the device that gave the answer (the primary), "" until then */
    char details[LW_ALERT_DETAILS_MAX]; /* JSON object text */
} lw_alert;

/* How the holder answered an alert (PRODUCT.md §6). */
#define LW_ALERT_ANSWER_ME "it_was_me"
#define LW_ALERT_ANSWER_LOGOUT "logged_out_device"
#define LW_ALERT_ANSWER_SECURE "secured_account"

/* The end reason of a session replaced by the same device key linking again. */
#define LW_END_RELINKED "relinked"

/* A Web Push subscription (RFC 8030) of a primary device: what the browser's
 * PushSubscription gave (endpoint, keys.p256dh, keys.auth), kept until the
 * device's session ends, the account is deleted, the device unsubscribes or
 * the push service says it is gone (404/410). The endpoint was checked with
 * lw_webpush_endpoint_check before it was stored. */
#define LW_PUSH_PER_DEVICE 4  /* subscriptions one primary may hold (browsers, profiles) */
#define LW_PUSH_PER_ACCOUNT 8 /* and all the account's devices together */
typedef struct lw_push_sub {
    char device_id[LW_ID_STRLEN];
    char account_id[LW_ID_STRLEN];
    char endpoint[LW_WEBPUSH_ENDPOINT_MAX + 1];
    uint8_t p256dh[LW_WEBPUSH_KEY_LEN]; /* the browser's P-256 public key, uncompressed */
    uint8_t auth[LW_WEBPUSH_AUTH_LEN];  /* the auth secret: a secret, never logged */
    int64_t created_at;
    int failures; /* consecutive pushes that failed after every retry */
} lw_push_sub;

/* What a sweep ended, so the caller can tell the devices. */
typedef struct lw_ended {
    char device_id[LW_ID_STRLEN];
    char account_id[LW_ID_STRLEN];
    char reason[LW_REASON_MAX];
} lw_ended;

typedef struct lw_sweep_policy {
    int64_t now;
    int64_t primary_inactive_ms; /* 0 = never */
    int64_t max_age_ms;          /* 0 = no absolute maximum */
    int64_t
        ephemeral_idle_ms; /* companions without "keep me signed in": unused this long ends them; 0 = never */
    int64_t history_retention_ms; /* 0 = keep forever */
} lw_sweep_policy;

/* What the risk rules of a link (PRODUCT.md §6) need to know about an
 * account's devices, read without listing them. */
typedef struct lw_account_places {
    bool country_seen; /* some session, live or ended, was first or last seen in the country asked about */
    bool any_country;  /* some session has a country at all */
    bool has_primary;  /* the account has an active primary; then: */
    lw_place primary;  /* its country and coordinates: where it was last seen, else where it was first */
} lw_account_places;

/* link_requests_pending counts requests still in flight (pending, scanned
 * or approved). */
typedef struct lw_store_stats {
    long accounts, sessions_active, sessions_ended, link_requests_pending, alerts;
} lw_store_stats;

typedef struct lw_store_ops {
    const char *name;
    int (*open)(lw_store **out, const char *location);
    void (*close)(lw_store *s);

    /* accounts */
    /* With invite_hash the invite is consumed first, in the same transaction:
     * LW_EDENIED when it is unknown, used, expired or bound to another handle,
     * before anything about the handle is looked at (so that answer is the same
     * whether the handle is taken or not); then LW_ECONFLICT if the handle is
     * taken (the invite stays unused). */
    int (*account_create)(lw_store *s, const lw_account *a, const lw_session *primary,
                          const uint8_t *invite_hash /* NULL if registration is open */);
    int (*account_get)(lw_store *s, const char *id, lw_account *out);
    int (*account_get_by_handle)(lw_store *s, const char *handle, lw_account *out);
    /* Writes pin_hash, pin_failures, pin_locked_until, inactive_ttl_ms, pin_change_required,
     * recovery_hash. */
    int (*account_update)(lw_store *s, const lw_account *a);
    /* A new primary for the account, in one transaction: every active
     * session of role (NULL: every role) ends with reason, listed in *out
     * (for the caller to tell, lw_sessions_end_where LW_END_TOLD); the
     * recovery hash becomes recovery_hash when it is not NULL; then
     * primary is inserted. LW_ENOTFOUND when there is no such account
     * (nothing changed). */
    int (*account_replace_primary)(lw_store *s, const char *account_id, const char *role, const char *reason,
                                   int64_t now, const lw_session *primary, const char *recovery_hash,
                                   lw_ended **out, size_t *n);

    /* Deletes the account and everything of it (sessions, live and ended;
     * link requests it scanned; alerts) in one transaction, so its handle is
     * free again. *out lists the sessions that were active (reason
     * "account_deleted"), for the caller to tell their sockets. LW_ENOTFOUND
     * if there is no such account (nothing changed). */
    int (*account_delete)(lw_store *s, const char *account_id, lw_ended **out, size_t *n);

    /* transfers ("Move to a new phone") */
    int (*transfer_insert)(lw_store *s, const lw_transfer *t);
    int (*transfer_get)(lw_store *s, const char *id, lw_transfer *out);
    int (*transfer_get_by_code)(lw_store *s, const uint8_t code_hash[LW_HASH_LEN], lw_transfer *out);
    /* pending and unexpired at now -> approved for account_id (the old
     * primary said yes). LW_ECONFLICT when not pending or expired,
     * LW_ENOTFOUND when unknown. */
    int (*transfer_approve)(lw_store *s, const char *transfer_id, const char *account_id, int64_t now);
    /* One transaction: approved and unexpired at now -> claimed by the new
     * primary session, primary (of the account it was approved for;
     * LW_ECONFLICT otherwise, nothing changed); then as
     * account_replace_primary with role "primary" and reason: the old
     * primary ends (listed in *out) and primary is inserted. */
    int (*transfer_claim)(lw_store *s, const char *transfer_id, const lw_session *primary, const char *reason,
                          int64_t now, lw_ended **out, size_t *n);
    /* Replaces the account signature of an active companion of the account
     * (the new primary re-signs after a move). LW_ENOTFOUND otherwise. */
    int (*session_set_account_sig)(lw_store *s, const char *account_id, const char *device_id,
                                   const uint8_t sig[LW_SIG_LEN]);

    /* invites (registration --registration invite). handle "" (or NULL): the
     * invite registers any handle; otherwise only that (normalised) handle. */
    int (*invite_create)(lw_store *s, const uint8_t hash[LW_HASH_LEN], int64_t expires_at,
                         const char *handle);

    /* sessions */
    int (*session_get)(lw_store *s, const char *device_id, lw_session *out);
    /* The session holding this selector: the active one if any, else the most
     * recently ended (so a late request learns why its session ended). */
    int (*session_get_by_selector)(lw_store *s, const char *selector, lw_session *out);
    /* Active (state "active") or ended sessions of an account, ordered by linked_at. */
    int (*session_list)(lw_store *s, const char *account_id, bool ended, lw_session **out, size_t *n);
    /* Active companions of the account; with except_key, those holding another
     * device key (the one being linked again would replace its own session). */
    int (*session_count_active_companions)(lw_store *s, const char *account_id,
                                           const uint8_t *except_key /* LW_PK_LEN bytes or NULL */, long *n);
    /* See lw_account_places; country may be "" (then country_seen is false).
     * Two small indexed queries, whatever the number of sessions. */
    int (*account_places)(lw_store *s, const char *account_id, const char *country, lw_account_places *out);
    /* Replaces the credential (selector, hash, expiry, challenge) of an active session. */
    int (*session_set_credential)(lw_store *s, const lw_session *sess);
    int (*session_set_name)(lw_store *s, const char *device_id, const char *name);
    /* Coalesced last-active write: last_active_at and, when where is not NULL,
     * where it was last used (address, country, region, city, coordinates,
     * network), every field replaced, empty ones included. Never moves
     * last_active_at backwards. */
    int (*session_touch)(lw_store *s, const char *device_id, int64_t at, const lw_place *where);
    /* Ends one active session. LW_ECONFLICT if it was not active. */
    int (*session_end)(lw_store *s, const char *device_id, const char *reason, int64_t now);
    /* Ends every active session of the account with the given role ("companion",
     * or NULL for all roles) except `except` (may be NULL), in one transaction;
     * *out lists what ended. */
    int (*session_end_all)(lw_store *s, const char *account_id, const char *role, const char *except,
                           const char *reason, int64_t now, lw_ended **out, size_t *n);
    /* Ends every active session of every account with the given role
     * ("companion", or NULL for all roles), in one transaction; *out lists
     * what ended, ordered by account (the administrator's "end everything"). */
    int (*session_end_every)(lw_store *s, const char *role, const char *reason, int64_t now, lw_ended **out,
                             size_t *n);
    /* Privacy (--privacy country-only): strips an ended record down to its
     * country: no addresses, regions, cities or coordinates, in the record
     * or in the details of the alerts about that device; in one transaction.
     * LW_ECONFLICT if the session is not ended. */
    int (*session_redact)(lw_store *s, const char *device_id);
    /* The same for every ended record not redacted yet (idempotent): what a
     * crash between ending and redacting left, and what ended before the
     * option was switched on. *n (may be NULL) gets how many records. */
    int (*session_redact_ended)(lw_store *s, long *n);
    /* Deletes ended records: one (device_id) or all of the account (device_id NULL).
     * LW_ENOTFOUND if device_id names no ended session of the account. */
    int (*session_delete_ended)(lw_store *s, const char *account_id, const char *device_id, long *deleted);

    /* link requests */
    int (*link_insert)(lw_store *s, const lw_link_request *r);
    int (*link_get)(lw_store *s, const char *id, lw_link_request *out);
    int (*link_get_by_selector)(lw_store *s, const char *token_selector, lw_link_request *out);
    int (*link_get_by_ref)(lw_store *s, const uint8_t ref_hash[LW_HASH_LEN], lw_link_request *out);
    int (*link_get_by_code)(lw_store *s, const uint8_t code_hash[LW_HASH_LEN], lw_link_request *out);
    /* Stores a new current ref (hash, index, expiry) while the request is pending. */
    int (*link_set_ref)(lw_store *s, const char *id, const uint8_t ref_hash[LW_HASH_LEN], int ref_index,
                        int64_t ref_expires_at);
    /* Compare-and-set of the state; also writes account_id, scanned_by,
     * account_sig and nonce from r. LW_ECONFLICT if the state is not `from`. */
    int (*link_transition)(lw_store *s, const lw_link_request *r, const char *from, const char *to);
    /* The whole completion in one transaction: request approved -> completed;
     * every active companion session of the account holding sess's device
     * key ends with reason "relinked" (a device key has at most one active
     * session: linking it again replaces the old one, which would otherwise
     * hold a slot until it expired), listed in *out; then the account must
     * have fewer than max_companions active companions (LW_ELIMIT otherwise,
     * nothing changed); then sess is inserted. LW_ECONFLICT if the request
     * was not approved any more. */
    int (*link_complete)(lw_store *s, const char *request_id, const lw_session *sess, long max_companions,
                         lw_ended **out, size_t *n);
    /* Deletes requests that ended (expired/denied/completed) before `before`. */
    int (*link_purge)(lw_store *s, int64_t before, long *deleted);

    /* alerts */
    int (*alert_insert)(lw_store *s, const lw_alert *a);
    int (*alert_list)(lw_store *s, const char *account_id, int limit, lw_alert **out, size_t *n);
    /* A burst (one kind about one device, again and again) is one alert:
     * when the account has an unanswered alert of a's kind about a's device
     * updated at or after since, a is counted into it (count + 1, a's
     * details, updated_at = a's created_at); otherwise a is inserted (count
     * 1). Either way *out is the alert as stored. One transaction. */
    int (*alert_raise)(lw_store *s, const lw_alert *a, int64_t since, lw_alert *out);
    /* LW_ENOTFOUND if the alert is not the account's. */
    int (*alert_get)(lw_store *s, const char *account_id, const char *alert_id, lw_alert *out);
    /* Records the holder's answer (LW_ALERT_ANSWER_*) and the device that
     * gave it. The first time is kept; "it was me" gives way to a later
     * protective answer (and its device), never the reverse. LW_ENOTFOUND if
     * the alert is not the account's. */
    int (*alert_ack)(lw_store *s, const char *account_id, const char *alert_id, const char *answer,
                     const char *answered_by, int64_t now);

    /* Web Push subscriptions (lw_push_sub). */
    /* Adds sub, or replaces the keys of the device's subscription with the
     * same endpoint (failures back to 0), in one transaction. LW_ENOTFOUND
     * unless sub->device_id is an active primary of sub->account_id;
     * LW_ELIMIT when a new one would pass max_per_device for the device or
     * max_per_account for the account (nothing changed). */
    int (*push_add)(lw_store *s, const lw_push_sub *sub, long max_per_device, long max_per_account);
    /* The subscriptions of the account's active primaries (account_id), or
     * of one device (device_id; account_id NULL), oldest first. */
    int (*push_list)(lw_store *s, const char *account_id, const char *device_id, lw_push_sub **out,
                     size_t *n);
    /* Deletes the device's subscription with this endpoint. LW_ENOTFOUND if none. */
    int (*push_delete)(lw_store *s, const char *device_id, const char *endpoint);
    /* After a push: ok sets failures to 0, otherwise adds one. LW_ENOTFOUND
     * if the subscription is gone. */
    int (*push_result)(lw_store *s, const char *device_id, const char *endpoint, bool ok);

    /* sweeper: ends what is due and purges old history, one transaction per
     * step; *out lists every session ended (reason inactive, primary_inactive
     * or max_age). Companions idle past their account's inactive_ttl_ms end as
     * "inactive"; when an account's primary is idle past primary_inactive_ms
     * all its companions end as "primary_inactive"; any companion linked more
     * than max_age_ms ago ends as "max_age"; ended records older than the
     * retention are deleted (*purged), and alerts older than it too. */
    int (*sweep)(lw_store *s, const lw_sweep_policy *p, lw_ended **out, size_t *n, long *purged);

    int (*stats)(lw_store *s, lw_store_stats *out);
    /* Small named values the server keeps about itself (LW_SETTING_*).
     * get: LW_ENOTFOUND when never set; LW_ETOOBIG when the stored value
     * does not fit cap. put: inserts or replaces; LW_EINVAL past the
     * LW_SETTING_*_MAX bounds. */
    int (*setting_get)(lw_store *s, const char *name, char *out, size_t cap);
    int (*setting_put)(lw_store *s, const char *name, const char *value);
    /* Consistent online copy of the store into a new file at path: every
     * transaction committed before the call, none after. Safe to call from
     * another thread while the loop keeps using s (it reads through a
     * connection of its own); LW_EINVAL if path exists or s cannot be copied
     * so (PostgreSQL: use pg_dump). */
    int (*backup)(lw_store *s, const char *path);
    /* Whether another process committed to the store since the last call
     * (SQLite: PRAGMA data_version; the first call only starts counting).
     * Two servers on one SQLite file, as during a restart without downtime
     * (SO_REUSEPORT), each cache sessions: the one that did not end a session
     * learns of it here. NULL where every request reads the store anyway
     * (PostgreSQL, shared by several nodes). */
    int (*changed_elsewhere)(lw_store *s, bool *changed);
} lw_store_ops;

/* Opens the store named by location: "postgres://..." or "postgresql://..."
 * selects PostgreSQL (a libpq URL; the schema is created or migrated in the
 * URL's database and search_path), anything else is a SQLite file path
 * (created with its schema, migrated to the current version). LW_EUNAVAIL
 * when the database cannot be written by this process (a file it may only
 * read, a folder it may not create files in, a server that is read-only,
 * out of disk space or unreachable); LW_ESTORE for any other failure. */
int lw_store_open(lw_store **out, const char *location);
void lw_store_close(lw_store *s);
/* ops->changed_elsewhere, or false where the backend has none. */
int lw_store_changed_elsewhere(lw_store *s, bool *changed);

/* Current schema version of the SQLite backend (migrations are numbered 1..N). */
int lw_store_sqlite_schema_version(lw_store *s);
/* Checks a SQLite file offline before it is restored: it opens read-only,
 * passes PRAGMA integrity_check, and has a schema this code knows (1..N).
 * *version gets its schema version; msg says what is wrong. */
int lw_store_sqlite_check_file(const char *path, int *version, char *msg, size_t cap);

/* Current schema version of the PostgreSQL backend (its own numbering, 1..N,
 * kept in its schema_version table), or a negative LW_E* code. */
int lw_store_pg_schema_version(lw_store *s);

/* The backends' vtables, looked up by lw_store_open. */
extern const lw_store_ops lw_store_sqlite_ops;
/* PostgreSQL on libpq. Unlike SQLite's, its operations may be called from
 * several threads at once (a small connection pool serves them). */
extern const lw_store_ops lw_store_pg_ops;

/* Every backend's struct starts with this header so the wrappers can
 * dispatch. The rest is store.c's (backends calloc their struct, so it
 * starts zeroed): whether writes are failing, which the wrappers track for
 * /v1/health. Atomic: PostgreSQL's store may be used from several threads. */
struct lw_store {
    const lw_store_ops *ops;
    atomic_bool unavailable; /* an operation answered LW_EUNAVAIL and no write has succeeded since */
    atomic_llong probed_at;  /* lw_now_ms() of the last write probe */
};

/* Thin wrappers: one place where timing and fault injection can attach. */
int lw_store_account_create(lw_store *s, const lw_account *a, const lw_session *primary,
                            const uint8_t *invite_hash);
int lw_store_account_get(lw_store *s, const char *id, lw_account *out);
int lw_store_account_get_by_handle(lw_store *s, const char *handle, lw_account *out);
int lw_store_account_update(lw_store *s, const lw_account *a);
int lw_store_account_replace_primary(lw_store *s, const char *account_id, const char *role,
                                     const char *reason, int64_t now, const lw_session *primary,
                                     const char *recovery_hash, lw_ended **out, size_t *n);
int lw_store_account_delete(lw_store *s, const char *account_id, lw_ended **out, size_t *n);
int lw_store_transfer_insert(lw_store *s, const lw_transfer *t);
int lw_store_transfer_get(lw_store *s, const char *id, lw_transfer *out);
int lw_store_transfer_get_by_code(lw_store *s, const uint8_t code_hash[LW_HASH_LEN], lw_transfer *out);
int lw_store_transfer_approve(lw_store *s, const char *transfer_id, const char *account_id, int64_t now);
int lw_store_transfer_claim(lw_store *s, const char *transfer_id, const lw_session *primary,
                            const char *reason, int64_t now, lw_ended **out, size_t *n);
int lw_store_session_set_account_sig(lw_store *s, const char *account_id, const char *device_id,
                                     const uint8_t sig[LW_SIG_LEN]);
int lw_store_invite_create(lw_store *s, const uint8_t hash[LW_HASH_LEN], int64_t expires_at,
                           const char *handle);
int lw_store_session_get(lw_store *s, const char *device_id, lw_session *out);
int lw_store_session_get_by_selector(lw_store *s, const char *selector, lw_session *out);
int lw_store_session_list(lw_store *s, const char *account_id, bool ended, lw_session **out, size_t *n);
int lw_store_session_count_active_companions(lw_store *s, const char *account_id, const uint8_t *except_key,
                                             long *n);
int lw_store_account_places(lw_store *s, const char *account_id, const char *country, lw_account_places *out);
int lw_store_session_set_credential(lw_store *s, const lw_session *sess);
int lw_store_session_set_name(lw_store *s, const char *device_id, const char *name);
int lw_store_session_touch(lw_store *s, const char *device_id, int64_t at, const lw_place *where);
int lw_store_session_end(lw_store *s, const char *device_id, const char *reason, int64_t now);
int lw_store_session_end_all(lw_store *s, const char *account_id, const char *role, const char *except,
                             const char *reason, int64_t now, lw_ended **out, size_t *n);
int lw_store_session_end_every(lw_store *s, const char *role, const char *reason, int64_t now, lw_ended **out,
                               size_t *n);
int lw_store_session_redact(lw_store *s, const char *device_id);
int lw_store_session_redact_ended(lw_store *s, long *n);
int lw_store_session_delete_ended(lw_store *s, const char *account_id, const char *device_id, long *deleted);
int lw_store_link_insert(lw_store *s, const lw_link_request *r);
int lw_store_link_get(lw_store *s, const char *id, lw_link_request *out);
int lw_store_link_get_by_selector(lw_store *s, const char *token_selector, lw_link_request *out);
int lw_store_link_get_by_ref(lw_store *s, const uint8_t ref_hash[LW_HASH_LEN], lw_link_request *out);
int lw_store_link_get_by_code(lw_store *s, const uint8_t code_hash[LW_HASH_LEN], lw_link_request *out);
int lw_store_link_set_ref(lw_store *s, const char *id, const uint8_t ref_hash[LW_HASH_LEN], int ref_index,
                          int64_t ref_expires_at);
int lw_store_link_transition(lw_store *s, const lw_link_request *r, const char *from, const char *to);
/* out and n may be NULL: the sessions it replaced are then not listed. */
int lw_store_link_complete(lw_store *s, const char *request_id, const lw_session *sess, long max_companions,
                           lw_ended **out, size_t *n);
int lw_store_link_purge(lw_store *s, int64_t before, long *deleted);
int lw_store_alert_insert(lw_store *s, const lw_alert *a);
int lw_store_alert_list(lw_store *s, const char *account_id, int limit, lw_alert **out, size_t *n);
int lw_store_alert_raise(lw_store *s, const lw_alert *a, int64_t since, lw_alert *out);
int lw_store_alert_get(lw_store *s, const char *account_id, const char *alert_id, lw_alert *out);
int lw_store_alert_ack(lw_store *s, const char *account_id, const char *alert_id, const char *answer,
                       const char *answered_by, int64_t now);
int lw_store_push_add(lw_store *s, const lw_push_sub *sub, long max_per_device, long max_per_account);
int lw_store_push_list(lw_store *s, const char *account_id, const char *device_id, lw_push_sub **out,
                       size_t *n);
int lw_store_push_delete(lw_store *s, const char *device_id, const char *endpoint);
int lw_store_push_result(lw_store *s, const char *device_id, const char *endpoint, bool ok);
int lw_store_sweep(lw_store *s, const lw_sweep_policy *p, lw_ended **out, size_t *n, long *purged);
/* Named _get_ because lw_store_stats is the struct's typedef: C cannot have both. */
int lw_store_get_stats(lw_store *s, lw_store_stats *out);
int lw_store_backup(lw_store *s, const char *path);
int lw_store_setting_get(lw_store *s, const char *name, char *out, size_t cap);
int lw_store_setting_put(lw_store *s, const char *name, const char *value);

/* Store health. Any operation answering LW_EUNAVAIL (disk full, read-only,
 * I/O error, locked past its wait, unreachable) marks the store unavailable;
 * only a write that then succeeds clears it. A write that succeeds while the
 * store is marked is confirmed by a probe (below) first, since a write that
 * changed nothing (a sweep with nothing due) proves nothing about the disk.
 *
 * lw_store_check_writable: the probe. A real, committed write of a settings
 * row (LW_SETTING_WRITE_PROBE = now), so it fails exactly where the next
 * request's write would; LW_OK or the code the write failed with. Start-up
 * runs it after dropping privileges.
 *
 * lw_store_writable: false while the store is marked. While it is, it probes
 * again at most once per LW_STORE_PROBE_INTERVAL_MS, so a server that takes
 * no requests (taken out of a load balancer by its own /v1/health) still
 * sees the store recover. */
#define LW_STORE_PROBE_INTERVAL_MS 1000
int lw_store_check_writable(lw_store *s);
bool lw_store_writable(lw_store *s);

#endif
