/*
 * sql.h — the store's SQL, written once over a small driver per engine.
 * Internal to src/server/store/: nothing outside this folder includes it.
 *
 * The layers (SQLite's os.c, curl's vtls, OpenSMTPD's table backends):
 *
 *   store.c          timed wrappers, health (unchanged)
 *   sql_*.c          one implementation per family (accounts, sessions,
 *                    links, alerts, sweep, settings), filling lw_store_ops
 *   sql.c            what the families share: parameters, row readers,
 *                    one-statement operations, lists of ended sessions
 *   drv_sqlite.c     the SQLite driver: one connection, statement cache,
 *                    WAL checkpointer, backup, migrations
 *   drv_pg.c         the PostgreSQL driver: libpq pool, reconnects,
 *                    retries on serialization failures, migrations
 *
 * SQL dialect. Statements are written in PostgreSQL's placeholder form,
 * $1..$n, where a parameter may carry a cast ($1::bigint) that PostgreSQL
 * needs to type it; the SQLite driver rewrites $n to ?n and drops such a
 * cast (SQLite types values, not parameters). The SQLite driver registers a
 * collation "C" (byte order, SQLite's BINARY), so ORDER BY ... COLLATE "C"
 * means the same on both. TRUE/FALSE and NOT on flags, CASE instead of
 * GREATEST/max, UPDATE ... FROM, UPDATE ... RETURNING and INSERT ... ON
 * CONFLICT are understood by both (SQLite 3.35 or later). What remains
 * different is an override: a statement names its text for one engine
 * (.sqlite, .pg) next to the shared one, never a copied function.
 *
 * Operations. A family function builds its parameters, then hands a body
 * to drv->run with LW_SQL_TX (between BEGIN and COMMIT) or LW_SQL_READ
 * (changes nothing). The driver may run a body more than once (PostgreSQL:
 * after a serialization failure, a deadlock or a connection lost before
 * anything was written), so a body starts from scratch every time and hands
 * results out only through its argument. A body sees one connection
 * (lw_sqlconn) for its whole run; no state lives outside the store object,
 * so a worker thread could own one later.
 */
#ifndef LW_STORE_SQL_H
#define LW_STORE_SQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Lookup keys longer than this cannot be real ids, selectors or handles. */
#define LW_SQL_KEY_MAX 1024
/* The most parameters any statement takes. */
#define LW_SQL_PARAM_MAX 36

/* Every statement, numbered for the drivers' per-connection caches. */
enum {
    LW_SQL_ACCOUNT_INSERT,
    LW_SQL_ACCOUNT_GET,
    LW_SQL_ACCOUNT_GET_BY_HANDLE,
    LW_SQL_ACCOUNT_UPDATE,
    LW_SQL_ACCOUNT_LOCK,
    LW_SQL_ACCOUNT_DELETE,
    LW_SQL_ACCOUNT_DELETE_SESSIONS,
    LW_SQL_ACCOUNT_DELETE_LINKS,
    LW_SQL_ACCOUNT_DELETE_ALERTS,
    LW_SQL_ACCOUNT_ACTIVE_SESSIONS,
    LW_SQL_ACCOUNT_SET_RECOVERY,
    LW_SQL_TRANSFER_INSERT,
    LW_SQL_TRANSFER_GET,
    LW_SQL_TRANSFER_GET_BY_CODE,
    LW_SQL_TRANSFER_APPROVE,
    LW_SQL_TRANSFER_CLAIM,
    LW_SQL_TRANSFER_EXISTS,
    LW_SQL_SESSION_SET_ACCOUNT_SIG,
    LW_SQL_INVITE_INSERT,
    LW_SQL_INVITE_CONSUME,
    LW_SQL_SESSION_INSERT,
    LW_SQL_SESSION_GET,
    LW_SQL_SESSION_GET_BY_SELECTOR,
    LW_SQL_SESSION_EXISTS,
    LW_SQL_SESSION_LIST,
    LW_SQL_SESSION_COUNT_COMPANIONS,
    LW_SQL_PLACES_COUNTRY,
    LW_SQL_PLACES_PRIMARY,
    LW_SQL_SESSION_SET_CRED,
    LW_SQL_SESSION_SET_NAME,
    LW_SQL_SESSION_TOUCH,
    LW_SQL_SESSION_END,
    LW_SQL_SESSION_END_ALL,
    LW_SQL_SESSION_END_EVERY,
    LW_SQL_SESSION_END_SAME_KEY,
    LW_SQL_SESSION_REDACT,
    LW_SQL_SESSION_REDACT_ENDED,
    LW_SQL_ALERT_REDACT_DEVICE,
    LW_SQL_ALERT_REDACT_ENDED,
    LW_SQL_SESSION_DELETE_ONE,
    LW_SQL_SESSION_DELETE_ALL,
    LW_SQL_LINK_INSERT,
    LW_SQL_LINK_GET,
    LW_SQL_LINK_GET_BY_SELECTOR,
    LW_SQL_LINK_GET_BY_REF,
    LW_SQL_LINK_GET_BY_CODE,
    LW_SQL_LINK_EXISTS,
    LW_SQL_LINK_SET_REF,
    LW_SQL_LINK_TRANSITION,
    LW_SQL_LINK_LOCK_STATE,
    LW_SQL_LINK_COMPLETE,
    LW_SQL_LINK_PURGE,
    LW_SQL_ALERT_INSERT,
    LW_SQL_ALERT_LIST,
    LW_SQL_ALERT_GET,
    LW_SQL_ALERT_ACK,
    LW_SQL_ALERT_BURST_ADD,
    LW_SQL_SWEEP_INACTIVE,
    LW_SQL_SWEEP_PRIMARY_INACTIVE,
    LW_SQL_SWEEP_MAX_AGE,
    LW_SQL_SWEEP_EPHEMERAL,
    LW_SQL_SWEEP_PURGE_SESSIONS,
    LW_SQL_SWEEP_PURGE_ALERTS,
    LW_SQL_STATS,
    LW_SQL_SETTING_GET,
    LW_SQL_SETTING_PUT,
    LW_SQL_ACCOUNT_DELETE_PUSH,
    LW_SQL_PUSH_PRIMARY,
    LW_SQL_PUSH_UPDATE,
    LW_SQL_PUSH_COUNTS,
    LW_SQL_PUSH_INSERT,
    LW_SQL_PUSH_LIST_ACCOUNT,
    LW_SQL_PUSH_LIST_DEVICE,
    LW_SQL_PUSH_DELETE,
    LW_SQL_PUSH_OK,
    LW_SQL_PUSH_FAILED,
    LW_SQL_COUNT
};

/* One statement: the shared text, or an engine's own where they differ. */
typedef struct lw_sqlstmt {
    int id;             /* LW_SQL_* */
    const char *sql;    /* both engines, unless overridden */
    const char *sqlite; /* SQLite's text, or NULL */
    const char *pg;     /* PostgreSQL's text, or NULL */
} lw_sqlstmt;

/* ---- parameters ------------------------------------------------------------ */

typedef enum lw_sqlp_type {
    LW_SQLP_NULL,
    LW_SQLP_TEXT,
    LW_SQLP_BLOB,
    LW_SQLP_I64,
    LW_SQLP_F64,
    LW_SQLP_BOOL,
} lw_sqlp_type;

/* A parameter points into the caller's memory, which outlives the run. */
typedef struct lw_sqlparam {
    lw_sqlp_type type;
    bool cstr; /* TEXT: p[len] is the string's own NUL (no copy needed to send it as a C string) */
    const void *p;
    size_t len;
    int64_t i; /* I64, BOOL */
    double f;  /* F64 */
} lw_sqlparam;

/* Parameters $1, $2, ... in order; too many is kept and reported at run. */
typedef struct lw_sqlparams {
    int n;
    bool overflow;
    lw_sqlparam v[LW_SQL_PARAM_MAX];
} lw_sqlparams;

void lw_sqlp_init(lw_sqlparams *p);
void lw_sqlp_null(lw_sqlparams *p);
/* A lookup key (id, selector, handle): sent whole up to cap bytes, never cut
 * to fit a column, so a long input cannot turn into someone else's key.
 * NULL sends SQL NULL. */
void lw_sqlp_key(lw_sqlparams *p, const char *v, size_t cap);
/* A value: cut to max bytes on a character boundary, so it always fits the
 * array it is read back into. NULL sends SQL NULL. */
void lw_sqlp_val(lw_sqlparams *p, const char *v, size_t max);
void lw_sqlp_blob(lw_sqlparams *p, const void *b, size_t n);
/* Hashes with unique indexes: all zeros means "none" and is stored as NULL. */
void lw_sqlp_hash_or_null(lw_sqlparams *p, const uint8_t h[LW_HASH_LEN]);
void lw_sqlp_i64(lw_sqlparams *p, int64_t v);
void lw_sqlp_f64(lw_sqlparams *p, double v);
void lw_sqlp_bool(lw_sqlparams *p, bool v);

#define LW_SQLP_KEYF(p, f) lw_sqlp_key((p), (f), sizeof(f))
#define LW_SQLP_VALF(p, f) lw_sqlp_val((p), (f), sizeof(f) - 1)
#define LW_SQLP_BLOBF(p, f) lw_sqlp_blob((p), (f), sizeof(f))

/* Longest prefix of p[0..len) that fits in max bytes without cutting a UTF-8
 * sequence in two. */
size_t lw_sql_utf8_bound(const char *p, size_t len, size_t max);

/* ---- the driver ------------------------------------------------------------ */

typedef struct lw_sqldrv lw_sqldrv;

/* One operation's connection. Drivers put this first in their own struct. */
typedef struct lw_sqlconn {
    const lw_sqldrv *drv;
    const char *what; /* the operation's label, for logs */
} lw_sqlconn;

/* A statement's result: rows read with lw_sql_next and the column getters,
 * then given back with lw_sql_done (always, after LW_OK from exec). */
typedef struct lw_sqlres {
    lw_sqlconn *c;
    void *h;      /* the driver's: sqlite3_stmt *, PGresult * */
    int row;      /* the current row (-1 before the first) */
    int rows;     /* PostgreSQL: rows in the result */
    int first;    /* SQLite: what the first step answered */
    long changes; /* rows an INSERT/UPDATE/DELETE changed */
} lw_sqlres;

typedef int (*lw_sqlbody)(lw_sqlconn *c, void *arg);

enum {
    LW_SQL_READ = 1, /* changes nothing: always safe to run again */
    LW_SQL_TX = 2,   /* between BEGIN and COMMIT (SQLite: BEGIN IMMEDIATE) */
};

struct lw_sqldrv {
    const char *name;
    /* Runs body on a connection of the store, as the flags say; maps every
     * failure to an LW_E* code (LW_ECONFLICT for a unique key taken,
     * LW_ENOTFOUND for a missing parent row, LW_EUNAVAIL where nothing was
     * written because the database refused or could not be reached). */
    int (*run)(lw_store *s, unsigned flags, const char *what, lw_sqlbody body, void *arg);
    /* Runs one statement; write says whether it changes rows. On LW_OK res
     * holds its rows and changes until done. */
    int (*exec)(lw_sqlconn *c, const lw_sqlstmt *st, const lw_sqlparams *p, bool write, lw_sqlres *res);
    int (*next)(lw_sqlres *r); /* 1: a row; 0: no more; or a negative LW_E* */
    void (*done)(lw_sqlres *r);
    int64_t (*col_i64)(const lw_sqlres *r, int col); /* NULL reads 0; flags read 0/1 */
    double (*col_f64)(const lw_sqlres *r, int col);
    /* Copies at most cap - 1 bytes (on a character boundary), NUL-terminated;
     * returns the stored length. */
    size_t (*col_text)(const lw_sqlres *r, int col, char *dst, size_t cap);
    /* Exactly n bytes; anything else (NULL, another length) reads as zeros. */
    void (*col_blob)(const lw_sqlres *r, int col, void *dst, size_t n);
};

/* What every SQL store starts with. */
typedef struct lw_sqlstore {
    lw_store base; /* first: the wrappers cast lw_store * to this */
    const lw_sqldrv *drv;
} lw_sqlstore;

static inline const lw_sqldrv *lw_sql_drv(lw_store *s)
{
    return ((lw_sqlstore *)s)->drv;
}

static inline int lw_sql_next(lw_sqlres *r)
{
    return r->c->drv->next(r);
}
static inline void lw_sql_done(lw_sqlres *r)
{
    r->c->drv->done(r);
}
static inline int64_t lw_sql_i64(const lw_sqlres *r, int col)
{
    return r->c->drv->col_i64(r, col);
}
static inline bool lw_sql_bool(const lw_sqlres *r, int col)
{
    return r->c->drv->col_i64(r, col) != 0;
}
static inline double lw_sql_f64(const lw_sqlres *r, int col)
{
    return r->c->drv->col_f64(r, col);
}
static inline size_t lw_sql_text(const lw_sqlres *r, int col, char *dst, size_t cap)
{
    return r->c->drv->col_text(r, col, dst, cap);
}
static inline void lw_sql_blob(const lw_sqlres *r, int col, void *dst, size_t n)
{
    r->c->drv->col_blob(r, col, dst, n);
}
#define LW_SQL_TEXTF(r, col, f) ((void)lw_sql_text((r), (col), (f), sizeof(f)))
#define LW_SQL_BLOBF(r, col, f) lw_sql_blob((r), (col), (f), sizeof(f))

/* Appends s to line as JSON string content, stopping quietly when full;
 * trailing newlines (libpq ends its messages with one) are dropped. */
void lw_sql_json_append(char *line, size_t cap, size_t *len, const char *s);
/* "database schema version <found> is newer than this build knows (<known>) ..." in buf. */
const char *lw_sql_too_new(char *buf, size_t cap, int found, int known);

/* ---- what the families share (sql.c) ---------------------------------------- */

typedef void (*lw_sqlreader)(const lw_sqlres *r, void *out);

/* Inside a body. */
int lw_sql_write(lw_sqlconn *c, const lw_sqlstmt *st, const lw_sqlparams *p, long *changes);
/* One row into out on LW_OK, LW_ENOTFOUND if none. write: the statement
 * changes rows (UPDATE ... RETURNING). */
int lw_sql_row(lw_sqlconn *c, const lw_sqlstmt *st, const lw_sqlparams *p, bool write, lw_sqlreader read,
               void *out);
/* Every row into a fresh lw_malloc'd array of elem-sized records (NULL when none). */
int lw_sql_rows(lw_sqlconn *c, const lw_sqlstmt *st, const lw_sqlparams *p, bool write, size_t elem,
                lw_sqlreader read, void **out, size_t *n);
/* Runs a statement whose rows are (id, account_id, linked_at) of sessions it
 * ended (or, for a SELECT, will), appends them to *list / *count with reason,
 * ordered by account (bytes), linked_at, id (bytes). */
int lw_sql_ended(lw_sqlconn *c, const lw_sqlstmt *st, const lw_sqlparams *p, bool write, const char *reason,
                 lw_ended **list, size_t *count);

/* One statement as an operation of its own. */
int lw_sqls_write(lw_store *s, const char *what, const lw_sqlstmt *st, const lw_sqlparams *p, long *changes);
int lw_sqls_row(lw_store *s, const char *what, const lw_sqlstmt *st, const lw_sqlparams *p, lw_sqlreader read,
                void *out);
int lw_sqls_rows(lw_store *s, const char *what, const lw_sqlstmt *st, const lw_sqlparams *p, size_t elem,
                 lw_sqlreader read, void **out, size_t *n);
/* After a compare-and-set UPDATE: one row changed is success; none means the
 * row is either gone (LW_ENOTFOUND: exists finds nothing for id) or no
 * longer in the expected state (LW_ECONFLICT). */
int lw_sqls_cas(lw_store *s, long changes, const lw_sqlstmt *exists, const char *id, const char *what);

/* Row readers: one per record, over the column lists below. */
void lw_sql_read_account(const lw_sqlres *r, void *out);
/* Who a device says it is and where it asked from, as a session (where it
 * was linked) and a link request both store them: ten columns, the
 * client's five then the place's ip, country, region, city and network. */
void lw_sql_bind_client_place(lw_sqlparams *p, const lw_client *c, const lw_place *where);
void lw_sql_read_client_place(const lw_sqlres *r, int col, lw_client *c, lw_place *where);
void lw_sql_read_session(const lw_sqlres *r, void *out);
void lw_sql_read_link(const lw_sqlres *r, void *out);
void lw_sql_read_alert(const lw_sqlres *r, void *out);
void lw_sql_read_long(const lw_sqlres *r, void *out);
void lw_sql_read_int(const lw_sqlres *r, void *out);

#define LW_SQL_ACCOUNT_COLS                                                                                  \
    "id, handle, created_at, pin_hash, pin_failures, pin_locked_until, inactive_ttl_ms, "                    \
    "pin_change_required, "                                                                                  \
    "recovery_hash"

#define LW_SQL_SESSION_COLS                                                                                  \
    "id, account_id, role, name, browser, browser_version, os, os_version, device_model, ip, country, "      \
    "region, city, network, last_ip, last_country, last_city, public_key, account_sig, linked_at, "          \
    "last_active_at, state, ended_at, end_reason, persistent, cred_selector, cred_hash, "                    \
    "cred_expires_at, challenge, lat, lon, has_loc, last_lat, last_lon, last_has_loc, last_region, "         \
    "last_network"

#define LW_SQL_LINK_COLS                                                                                     \
    "id, token_hash, token_selector, public_key, code_hash, ref_hash, ref_index, ref_expires_at, "           \
    "created_at, expires_at, state, account_id, scanned_by, account_sig, nonce, device_id, persistent, "     \
    "name, browser, browser_version, os, os_version, device_model, ip, country, region, city, network"

#define LW_SQL_ALERT_COLS                                                                                    \
    "id, account_id, kind, device_id, created_at, acked_at, details, answer, answered_by, burst_count, "     \
    "updated_at"

/* Shared between families (sql_accounts.c, sql_sessions.c). */
extern const lw_sqlstmt lw_sql_account_lock;
/* Ends an account's active sessions ($1 account, $2 now, $3 reason, $4 role
 * or NULL, $5 a device spared or NULL), returning what it ended
 * (lw_sql_ended); also what a new primary ends in its transaction. */
extern const lw_sqlstmt lw_sql_end_all_stmt;
extern const lw_sqlstmt lw_sql_session_exists;
extern const lw_sqlstmt lw_sql_session_count_companions;
/* Inserts a new active session; role and account are the caller's decision,
 * not whatever the struct says. */
int lw_sql_session_insert(lw_sqlconn *c, const lw_session *x, const char *account_id, const char *role);
/* Ends the account's live companions holding sess's device key (reason
 * "relinked"), appending them to *list / *count. */
int lw_sql_session_end_same_key(lw_sqlconn *c, const char *account_id, const lw_session *sess,
                                lw_ended **list, size_t *count);
/* $1 account, $2 the device key not to count (NULL: count all). */
void lw_sql_count_params(lw_sqlparams *p, const char *account_id, const uint8_t *except_key);

/* The family operations, for the engines' vtables (LW_SQL_FAMILY_OPS). */
int lw_sql_account_create(lw_store *s, const lw_account *a, const lw_session *primary,
                          const uint8_t *invite_hash);
int lw_sql_account_get(lw_store *s, const char *id, lw_account *out);
int lw_sql_account_get_by_handle(lw_store *s, const char *handle, lw_account *out);
int lw_sql_account_update(lw_store *s, const lw_account *a);
int lw_sql_account_delete(lw_store *s, const char *account_id, lw_ended **out, size_t *n);
int lw_sql_transfer_insert(lw_store *s, const lw_transfer *t);
int lw_sql_transfer_get(lw_store *s, const char *id, lw_transfer *out);
int lw_sql_transfer_get_by_code(lw_store *s, const uint8_t code_hash[LW_HASH_LEN], lw_transfer *out);
int lw_sql_transfer_approve(lw_store *s, const char *transfer_id, const char *account_id, int64_t now);
int lw_sql_transfer_claim(lw_store *s, const char *transfer_id, const lw_session *primary, const char *reason,
                          int64_t now, lw_ended **out, size_t *n);
int lw_sql_session_set_account_sig(lw_store *s, const char *account_id, const char *device_id,
                                   const uint8_t sig[LW_SIG_LEN]);
int lw_sql_account_replace_primary(lw_store *s, const char *account_id, const char *role, const char *reason,
                                   int64_t now, const lw_session *primary, const char *recovery_hash,
                                   lw_ended **out, size_t *n);
int lw_sql_invite_create(lw_store *s, const uint8_t hash[LW_HASH_LEN], int64_t expires_at,
                         const char *handle);
int lw_sql_session_get(lw_store *s, const char *device_id, lw_session *out);
int lw_sql_session_get_by_selector(lw_store *s, const char *selector, lw_session *out);
int lw_sql_session_list(lw_store *s, const char *account_id, bool ended, lw_session **out, size_t *n);
int lw_sql_session_count_active_companions(lw_store *s, const char *account_id, const uint8_t *except_key,
                                           long *n);
int lw_sql_account_places(lw_store *s, const char *account_id, const char *country, lw_account_places *out);
int lw_sql_session_set_credential(lw_store *s, const lw_session *sess);
int lw_sql_session_set_name(lw_store *s, const char *device_id, const char *name);
int lw_sql_session_touch(lw_store *s, const char *device_id, int64_t at, const lw_place *where);
int lw_sql_session_end(lw_store *s, const char *device_id, const char *reason, int64_t now);
int lw_sql_session_end_all(lw_store *s, const char *account_id, const char *role, const char *except,
                           const char *reason, int64_t now, lw_ended **out, size_t *n);
int lw_sql_session_end_every(lw_store *s, const char *role, const char *reason, int64_t now, lw_ended **out,
                             size_t *n);
int lw_sql_session_redact(lw_store *s, const char *device_id);
int lw_sql_session_redact_ended(lw_store *s, long *n);
int lw_sql_session_delete_ended(lw_store *s, const char *account_id, const char *device_id, long *deleted);
int lw_sql_link_insert(lw_store *s, const lw_link_request *r);
int lw_sql_link_get(lw_store *s, const char *id, lw_link_request *out);
int lw_sql_link_get_by_selector(lw_store *s, const char *token_selector, lw_link_request *out);
int lw_sql_link_get_by_ref(lw_store *s, const uint8_t ref_hash[LW_HASH_LEN], lw_link_request *out);
int lw_sql_link_get_by_code(lw_store *s, const uint8_t code_hash[LW_HASH_LEN], lw_link_request *out);
int lw_sql_link_set_ref(lw_store *s, const char *id, const uint8_t ref_hash[LW_HASH_LEN], int ref_index,
                        int64_t ref_expires_at);
int lw_sql_link_transition(lw_store *s, const lw_link_request *r, const char *from, const char *to);
int lw_sql_link_complete(lw_store *s, const char *request_id, const lw_session *sess, long max_companions,
                         lw_ended **out, size_t *n);
int lw_sql_link_purge(lw_store *s, int64_t before, long *deleted);
int lw_sql_alert_insert(lw_store *s, const lw_alert *a);
int lw_sql_alert_list(lw_store *s, const char *account_id, int limit, lw_alert **out, size_t *n);
int lw_sql_alert_raise(lw_store *s, const lw_alert *a, int64_t since, lw_alert *out);
int lw_sql_alert_get(lw_store *s, const char *account_id, const char *alert_id, lw_alert *out);
int lw_sql_alert_ack(lw_store *s, const char *account_id, const char *alert_id, const char *answer,
                     const char *answered_by, int64_t now);
int lw_sql_push_add(lw_store *s, const lw_push_sub *sub, long max_per_device, long max_per_account);
int lw_sql_push_list(lw_store *s, const char *account_id, const char *device_id, lw_push_sub **out,
                     size_t *n);
int lw_sql_push_delete(lw_store *s, const char *device_id, const char *endpoint);
int lw_sql_push_result(lw_store *s, const char *device_id, const char *endpoint, bool ok);
int lw_sql_sweep(lw_store *s, const lw_sweep_policy *p, lw_ended **out, size_t *n, long *purged);
int lw_sql_stats(lw_store *s, lw_store_stats *out);
int lw_sql_setting_get(lw_store *s, const char *name, char *out, size_t cap);
int lw_sql_setting_put(lw_store *s, const char *name, const char *value);

/* The designated initialisers both engines' lw_store_ops share. */
#define LW_SQL_FAMILY_OPS                                                                                    \
    .account_create = lw_sql_account_create, .account_get = lw_sql_account_get,                              \
    .account_get_by_handle = lw_sql_account_get_by_handle, .account_update = lw_sql_account_update,          \
    .account_delete = lw_sql_account_delete, .account_replace_primary = lw_sql_account_replace_primary,      \
    .transfer_insert = lw_sql_transfer_insert, .transfer_get = lw_sql_transfer_get,                          \
    .transfer_get_by_code = lw_sql_transfer_get_by_code, .transfer_approve = lw_sql_transfer_approve,        \
    .transfer_claim = lw_sql_transfer_claim, .session_set_account_sig = lw_sql_session_set_account_sig,      \
    .invite_create = lw_sql_invite_create, .session_get = lw_sql_session_get,                                \
    .session_get_by_selector = lw_sql_session_get_by_selector, .session_list = lw_sql_session_list,          \
    .session_count_active_companions = lw_sql_session_count_active_companions,                               \
    .account_places = lw_sql_account_places, .session_set_credential = lw_sql_session_set_credential,        \
    .session_set_name = lw_sql_session_set_name, .session_touch = lw_sql_session_touch,                      \
    .session_end = lw_sql_session_end, .session_end_all = lw_sql_session_end_all,                            \
    .session_end_every = lw_sql_session_end_every, .session_redact = lw_sql_session_redact,                  \
    .session_redact_ended = lw_sql_session_redact_ended,                                                     \
    .session_delete_ended = lw_sql_session_delete_ended, .link_insert = lw_sql_link_insert,                  \
    .link_get = lw_sql_link_get, .link_get_by_selector = lw_sql_link_get_by_selector,                        \
    .link_get_by_ref = lw_sql_link_get_by_ref, .link_get_by_code = lw_sql_link_get_by_code,                  \
    .link_set_ref = lw_sql_link_set_ref, .link_transition = lw_sql_link_transition,                          \
    .link_complete = lw_sql_link_complete, .link_purge = lw_sql_link_purge,                                  \
    .alert_insert = lw_sql_alert_insert, .alert_raise = lw_sql_alert_raise, .alert_list = lw_sql_alert_list, \
    .alert_get = lw_sql_alert_get, .alert_ack = lw_sql_alert_ack, .sweep = lw_sql_sweep,                     \
    .push_add = lw_sql_push_add, .push_list = lw_sql_push_list, .push_delete = lw_sql_push_delete,           \
    .push_result = lw_sql_push_result, .stats = lw_sql_stats, .setting_get = lw_sql_setting_get,             \
    .setting_put = lw_sql_setting_put

#endif
