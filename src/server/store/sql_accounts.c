/*
 * sql_accounts.c — accounts, invites, settings and stats, once for both
 * engines (sql.h).
 */
#include <stdio.h>
#include <string.h>

#include "sql.h"

static const lw_sqlstmt st_insert = {LW_SQL_ACCOUNT_INSERT,
                                     "INSERT INTO accounts (" LW_SQL_ACCOUNT_COLS
                                     ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8::boolean, $9)",
                                     NULL, NULL};
static const lw_sqlstmt st_get = {LW_SQL_ACCOUNT_GET,
                                  "SELECT " LW_SQL_ACCOUNT_COLS " FROM accounts WHERE id = $1", NULL, NULL};
/* Case-insensitive, through each engine's own unique index: SQLite's column
 * is COLLATE NOCASE, PostgreSQL's index is on lower(handle). */
static const lw_sqlstmt st_get_by_handle = {
    LW_SQL_ACCOUNT_GET_BY_HANDLE, NULL, "SELECT " LW_SQL_ACCOUNT_COLS " FROM accounts WHERE handle = $1",
    "SELECT " LW_SQL_ACCOUNT_COLS " FROM accounts WHERE lower(handle) = lower($1::text)"};
static const lw_sqlstmt st_update = {
    LW_SQL_ACCOUNT_UPDATE,
    "UPDATE accounts SET pin_hash = $1, pin_failures = $2, pin_locked_until = $3,"
    " inactive_ttl_ms = $4, pin_change_required = $6::boolean, recovery_hash = $7 WHERE id = $5",
    NULL, NULL};
/* Completions and deletions for one account take turns on this row lock
 * (PostgreSQL; SQLite's BEGIN IMMEDIATE already holds the write lock). */
const lw_sqlstmt lw_sql_account_lock = {LW_SQL_ACCOUNT_LOCK, "SELECT 1 FROM accounts WHERE id = $1", NULL,
                                        "SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE"};

/* Children first, then the account: explicit rather than trusting the
 * cascade, and link requests have no foreign key (account_id is '' until a
 * scan). link_requests has no index on account_id: the table holds only
 * requests younger than the purge age, so the scan is small. */
static const lw_sqlstmt st_delete = {LW_SQL_ACCOUNT_DELETE, "DELETE FROM accounts WHERE id = $1", NULL, NULL};
static const lw_sqlstmt st_delete_sessions = {LW_SQL_ACCOUNT_DELETE_SESSIONS,
                                              "DELETE FROM sessions WHERE account_id = $1", NULL, NULL};
static const lw_sqlstmt st_delete_links = {LW_SQL_ACCOUNT_DELETE_LINKS,
                                           "DELETE FROM link_requests WHERE account_id = $1", NULL, NULL};
static const lw_sqlstmt st_delete_alerts = {LW_SQL_ACCOUNT_DELETE_ALERTS,
                                            "DELETE FROM alerts WHERE account_id = $1", NULL, NULL};
static const lw_sqlstmt st_delete_push = {LW_SQL_ACCOUNT_DELETE_PUSH,
                                          "DELETE FROM push_subscriptions WHERE account_id = $1", NULL, NULL};
static const lw_sqlstmt st_active_sessions = {
    LW_SQL_ACCOUNT_ACTIVE_SESSIONS,
    "SELECT id, account_id, linked_at FROM sessions WHERE account_id = $1 AND state = 'active'", NULL, NULL};

static const lw_sqlstmt st_invite_insert = {
    LW_SQL_INVITE_INSERT, "INSERT INTO invites (hash, expires_at, handle) VALUES ($1, $2, $3)", NULL, NULL};
/* Handles are stored normalised (lower case), both here and in accounts;
 * lower() folds ASCII on both engines, as SQLite's NOCASE does. */
static const lw_sqlstmt st_invite_consume = {LW_SQL_INVITE_CONSUME,
                                             "UPDATE invites SET used_at = $2::bigint"
                                             " WHERE hash = $1 AND used_at = 0 AND expires_at > $2::bigint"
                                             " AND (handle = '' OR lower(handle) = lower($3::text))",
                                             NULL, NULL};

static const lw_sqlstmt st_stats = {
    LW_SQL_STATS,
    "SELECT (SELECT count(*) FROM accounts),"
    " (SELECT count(*) FROM sessions WHERE state = 'active'),"
    " (SELECT count(*) FROM sessions WHERE state = 'ended'),"
    " (SELECT count(*) FROM link_requests WHERE state IN ('pending', 'scanned', 'approved')),"
    " (SELECT count(*) FROM alerts)",
    NULL, NULL};
static const lw_sqlstmt st_setting_get = {LW_SQL_SETTING_GET, "SELECT value FROM settings WHERE name = $1",
                                          NULL, NULL};
static const lw_sqlstmt st_setting_put = {LW_SQL_SETTING_PUT,
                                          "INSERT INTO settings (name, value) VALUES ($1, $2)"
                                          " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                                          NULL, NULL};

/* ---- accounts -------------------------------------------------------------- */

typedef struct create_args {
    const lw_account *a;
    const lw_session *primary;
    const uint8_t *invite_hash;
} create_args;

static int create_body(lw_sqlconn *c, void *arg)
{
    create_args *x = arg;
    const lw_account *a = x->a;
    lw_sqlparams p;
    int rc;
    if (x->invite_hash != NULL) {
        /* The invite comes first: nothing about the handle is looked at
         * for a caller without a valid invite. */
        long n = 0;
        lw_sqlp_init(&p);
        lw_sqlp_blob(&p, x->invite_hash, LW_HASH_LEN);
        lw_sqlp_i64(&p, a->created_at);
        LW_SQLP_KEYF(&p, a->handle);
        if ((rc = lw_sql_write(c, &st_invite_consume, &p, &n)) != LW_OK)
            return rc;
        if (n != 1)
            return LW_EDENIED; /* unknown, used, expired or for another handle: one answer for all */
    }
    lw_sqlp_init(&p);
    LW_SQLP_KEYF(&p, a->id);
    LW_SQLP_KEYF(&p, a->handle);
    lw_sqlp_i64(&p, a->created_at);
    LW_SQLP_VALF(&p, a->pin_hash);
    lw_sqlp_i64(&p, a->pin_failures);
    lw_sqlp_i64(&p, a->pin_locked_until);
    lw_sqlp_i64(&p, a->inactive_ttl_ms);
    lw_sqlp_bool(&p, a->pin_change_required);
    LW_SQLP_VALF(&p, a->recovery_hash);
    if ((rc = lw_sql_write(c, &st_insert, &p, NULL)) != LW_OK)
        return rc;
    return lw_sql_session_insert(c, x->primary, a->id, LW_ROLE_PRIMARY);
}

int lw_sql_account_create(lw_store *s, const lw_account *a, const lw_session *primary,
                          const uint8_t *invite_hash)
{
    if (a == NULL || primary == NULL)
        return LW_EINVAL;
    create_args x = {a, primary, invite_hash};
    return lw_sql_drv(s)->run(s, LW_SQL_TX, "create account", create_body, &x);
}

static int get_by(lw_store *s, const char *what, const lw_sqlstmt *st, const char *key, lw_account *out)
{
    if (key == NULL || out == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, key, LW_SQL_KEY_MAX);
    return lw_sqls_row(s, what, st, &p, lw_sql_read_account, out);
}

int lw_sql_account_get(lw_store *s, const char *id, lw_account *out)
{
    return get_by(s, "get account", &st_get, id, out);
}

int lw_sql_account_get_by_handle(lw_store *s, const char *handle, lw_account *out)
{
    return get_by(s, "get account by handle", &st_get_by_handle, handle, out);
}

int lw_sql_account_update(lw_store *s, const lw_account *a)
{
    if (a == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    LW_SQLP_VALF(&p, a->pin_hash);
    lw_sqlp_i64(&p, a->pin_failures);
    lw_sqlp_i64(&p, a->pin_locked_until);
    lw_sqlp_i64(&p, a->inactive_ttl_ms);
    LW_SQLP_KEYF(&p, a->id);
    lw_sqlp_bool(&p, a->pin_change_required);
    LW_SQLP_VALF(&p, a->recovery_hash);
    long n = 0;
    int rc = lw_sqls_write(s, "update account", &st_update, &p, &n);
    if (rc != LW_OK)
        return rc;
    return n == 1 ? LW_OK : LW_ENOTFOUND;
}

int lw_sql_invite_create(lw_store *s, const uint8_t hash[LW_HASH_LEN], int64_t expires_at, const char *handle)
{
    if (hash == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_blob(&p, hash, LW_HASH_LEN);
    lw_sqlp_i64(&p, expires_at);
    lw_sqlp_val(&p, handle != NULL ? handle : "", LW_HANDLE_MAX - 1);
    return lw_sqls_write(s, "insert invite", &st_invite_insert, &p, NULL);
}

typedef struct delete_args {
    const char *account_id;
    lw_ended *list; /* what was active; rebuilt on every run */
    size_t count;
} delete_args;

static void read_nothing(const lw_sqlres *r, void *out)
{
    (void)r;
    (void)out;
}

/* One transaction: lock the account row (a completion for this account,
 * which locks it too, then waits and finds nothing), list what is live,
 * delete the children, then the account. */
static int delete_body(lw_sqlconn *c, void *arg)
{
    delete_args *x = arg;
    lw_free(x->list);
    x->list = NULL;
    x->count = 0;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, x->account_id, LW_SQL_KEY_MAX);
    int rc = lw_sql_row(c, &lw_sql_account_lock, &p, false, read_nothing, NULL);
    if (rc != LW_OK)
        return rc;
    if ((rc = lw_sql_ended(c, &st_active_sessions, &p, false, "account_deleted", &x->list, &x->count)) !=
        LW_OK)
        return rc;
    static const lw_sqlstmt *const children[] = {&st_delete_push, &st_delete_sessions, &st_delete_links,
                                                 &st_delete_alerts, &st_delete};
    for (size_t k = 0; k < sizeof children / sizeof children[0]; k++)
        if ((rc = lw_sql_write(c, children[k], &p, NULL)) != LW_OK)
            return rc;
    return LW_OK;
}

int lw_sql_account_delete(lw_store *s, const char *account_id, lw_ended **out, size_t *n)
{
    if (account_id == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    delete_args x = {account_id, NULL, 0};
    int rc = lw_sql_drv(s)->run(s, LW_SQL_TX, "delete account", delete_body, &x);
    if (rc != LW_OK) {
        lw_free(x.list);
        return rc;
    }
    *out = x.list;
    *n = x.count;
    return LW_OK;
}

/* ---- a new primary ("I lost my phone", "Move to a new phone") ---------------- */

static const lw_sqlstmt st_set_recovery = {
    LW_SQL_ACCOUNT_SET_RECOVERY, "UPDATE accounts SET recovery_hash = $2 WHERE id = $1", NULL, NULL};

typedef struct replace_args {
    const char *account_id, *role, *reason, *recovery_hash;
    int64_t now;
    const lw_session *primary;
    lw_ended *list; /* what ended; rebuilt on every run */
    size_t count;
} replace_args;

/* Lock the account row (LW_ENOTFOUND when it is gone), end what the role
 * names, set the recovery verifier, insert the new primary. */
static int replace_body(lw_sqlconn *c, void *arg)
{
    replace_args *x = arg;
    lw_free(x->list);
    x->list = NULL;
    x->count = 0;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, x->account_id, LW_SQL_KEY_MAX);
    int rc = lw_sql_row(c, &lw_sql_account_lock, &p, false, read_nothing, NULL);
    if (rc != LW_OK)
        return rc;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, x->account_id, LW_SQL_KEY_MAX);
    lw_sqlp_i64(&p, x->now);
    lw_sqlp_val(&p, x->reason, LW_REASON_MAX - 1);
    lw_sqlp_key(&p, x->role, LW_SQL_KEY_MAX);
    lw_sqlp_key(&p, NULL, LW_SQL_KEY_MAX); /* no session spared */
    if ((rc = lw_sql_ended(c, &lw_sql_end_all_stmt, &p, true, x->reason, &x->list, &x->count)) != LW_OK)
        return rc;
    if (x->recovery_hash != NULL) {
        lw_sqlp_init(&p);
        lw_sqlp_key(&p, x->account_id, LW_SQL_KEY_MAX);
        lw_sqlp_val(&p, x->recovery_hash, LW_RECOVERY_HASH_MAX - 1);
        if ((rc = lw_sql_write(c, &st_set_recovery, &p, NULL)) != LW_OK)
            return rc;
    }
    return lw_sql_session_insert(c, x->primary, x->account_id, LW_ROLE_PRIMARY);
}

/* ---- transfers ("Move to a new phone") -------------------------------------- */

#define TRANSFER_COLS                                                                                        \
    "id, token_hash, code_hash, public_key, state, account_id, device_id, created_at, expires_at"
static const lw_sqlstmt st_transfer_insert = {
    LW_SQL_TRANSFER_INSERT,
    "INSERT INTO transfers (" TRANSFER_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", NULL, NULL};
static const lw_sqlstmt st_transfer_get = {
    LW_SQL_TRANSFER_GET, "SELECT " TRANSFER_COLS " FROM transfers WHERE id = $1", NULL, NULL};
static const lw_sqlstmt st_transfer_get_by_code = {
    LW_SQL_TRANSFER_GET_BY_CODE, "SELECT " TRANSFER_COLS " FROM transfers WHERE code_hash = $1", NULL, NULL};
static const lw_sqlstmt st_transfer_approve = {
    LW_SQL_TRANSFER_APPROVE,
    "UPDATE transfers SET state = 'approved', account_id = $2"
    " WHERE id = $1 AND state = 'pending' AND expires_at > $3::bigint",
    NULL, NULL};
static const lw_sqlstmt st_transfer_claim = {LW_SQL_TRANSFER_CLAIM,
                                             "UPDATE transfers SET state = 'claimed', device_id = $3"
                                             " WHERE id = $1 AND account_id = $2 AND state = 'approved'"
                                             " AND expires_at > $4::bigint",
                                             NULL, NULL};
static const lw_sqlstmt st_transfer_exists = {LW_SQL_TRANSFER_EXISTS, "SELECT 1 FROM transfers WHERE id = $1",
                                              NULL, NULL};
static const lw_sqlstmt st_set_account_sig = {LW_SQL_SESSION_SET_ACCOUNT_SIG,
                                              "UPDATE sessions SET account_sig = $3 WHERE account_id = $1"
                                              " AND id = $2 AND role = 'companion' AND state = 'active'",
                                              NULL, NULL};

static void read_transfer(const lw_sqlres *r, void *out)
{
    lw_transfer *t = out;
    memset(t, 0, sizeof *t);
    LW_SQL_TEXTF(r, 0, t->id);
    LW_SQL_BLOBF(r, 1, t->token_hash);
    LW_SQL_BLOBF(r, 2, t->code_hash);
    LW_SQL_BLOBF(r, 3, t->public_key);
    LW_SQL_TEXTF(r, 4, t->state);
    LW_SQL_TEXTF(r, 5, t->account_id);
    LW_SQL_TEXTF(r, 6, t->device_id);
    t->created_at = lw_sql_i64(r, 7);
    t->expires_at = lw_sql_i64(r, 8);
}

int lw_sql_transfer_insert(lw_store *s, const lw_transfer *t)
{
    if (t == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    LW_SQLP_KEYF(&p, t->id);
    LW_SQLP_BLOBF(&p, t->token_hash);
    LW_SQLP_BLOBF(&p, t->code_hash);
    LW_SQLP_BLOBF(&p, t->public_key);
    LW_SQLP_KEYF(&p, t->state);
    LW_SQLP_KEYF(&p, t->account_id);
    LW_SQLP_KEYF(&p, t->device_id);
    lw_sqlp_i64(&p, t->created_at);
    lw_sqlp_i64(&p, t->expires_at);
    return lw_sqls_write(s, "insert transfer", &st_transfer_insert, &p, NULL);
}

int lw_sql_transfer_get(lw_store *s, const char *id, lw_transfer *out)
{
    if (id == NULL || out == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, id, LW_SQL_KEY_MAX);
    return lw_sqls_row(s, "get transfer", &st_transfer_get, &p, read_transfer, out);
}

int lw_sql_transfer_get_by_code(lw_store *s, const uint8_t code_hash[LW_HASH_LEN], lw_transfer *out)
{
    if (code_hash == NULL || out == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_blob(&p, code_hash, LW_HASH_LEN);
    return lw_sqls_row(s, "get transfer by code", &st_transfer_get_by_code, &p, read_transfer, out);
}

int lw_sql_transfer_approve(lw_store *s, const char *transfer_id, const char *account_id, int64_t now)
{
    if (transfer_id == NULL || account_id == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, transfer_id, LW_SQL_KEY_MAX);
    lw_sqlp_key(&p, account_id, LW_SQL_KEY_MAX);
    lw_sqlp_i64(&p, now);
    long n = 0;
    int rc = lw_sqls_write(s, "approve transfer", &st_transfer_approve, &p, &n);
    if (rc != LW_OK)
        return rc;
    return lw_sqls_cas(s, n, &st_transfer_exists, transfer_id, "approve transfer");
}

int lw_sql_session_set_account_sig(lw_store *s, const char *account_id, const char *device_id,
                                   const uint8_t sig[LW_SIG_LEN])
{
    if (account_id == NULL || device_id == NULL || sig == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, account_id, LW_SQL_KEY_MAX);
    lw_sqlp_key(&p, device_id, LW_SQL_KEY_MAX);
    lw_sqlp_blob(&p, sig, LW_SIG_LEN);
    long n = 0;
    int rc = lw_sqls_write(s, "set account signature", &st_set_account_sig, &p, &n);
    if (rc != LW_OK)
        return rc;
    return n == 1 ? LW_OK : LW_ENOTFOUND;
}

int lw_sql_account_replace_primary(lw_store *s, const char *account_id, const char *role, const char *reason,
                                   int64_t now, const lw_session *primary, const char *recovery_hash,
                                   lw_ended **out, size_t *n)
{
    if (account_id == NULL || reason == NULL || primary == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    replace_args x = {account_id, role, reason, recovery_hash, now, primary, NULL, 0};
    int rc = lw_sql_drv(s)->run(s, LW_SQL_TX, "replace the primary", replace_body, &x);
    if (rc != LW_OK) {
        lw_free(x.list);
        return rc;
    }
    *out = x.list;
    *n = x.count;
    return LW_OK;
}

typedef struct claim_args {
    const char *transfer_id;
    replace_args r;
} claim_args;

static int claim_body(lw_sqlconn *c, void *arg)
{
    claim_args *x = arg;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, x->transfer_id, LW_SQL_KEY_MAX);
    lw_sqlp_key(&p, x->r.account_id, LW_SQL_KEY_MAX);
    lw_sqlp_key(&p, x->r.primary->id, LW_SQL_KEY_MAX);
    lw_sqlp_i64(&p, x->r.now);
    long n = 0;
    int rc = lw_sql_write(c, &st_transfer_claim, &p, &n);
    if (rc != LW_OK)
        return rc;
    if (n != 1)
        return LW_ECONFLICT; /* not approved (any more), or expired */
    return replace_body(c, &x->r);
}

int lw_sql_transfer_claim(lw_store *s, const char *transfer_id, const lw_session *primary, const char *reason,
                          int64_t now, lw_ended **out, size_t *n)
{
    if (transfer_id == NULL || primary == NULL || reason == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    claim_args x = {transfer_id, {primary->account_id, LW_ROLE_PRIMARY, reason, NULL, now, primary, NULL, 0}};
    int rc = lw_sql_drv(s)->run(s, LW_SQL_TX, "claim transfer", claim_body, &x);
    if (rc != LW_OK) {
        lw_free(x.r.list);
        return rc;
    }
    *out = x.r.list;
    *n = x.r.count;
    return LW_OK;
}

/* ---- settings and stats ---------------------------------------------------- */

typedef struct text_out {
    char *dst;
    size_t cap;
    bool fits;
} text_out;

static void read_text(const lw_sqlres *r, void *out)
{
    text_out *t = out;
    t->fits = lw_sql_text(r, 0, t->dst, t->cap) < t->cap;
}

int lw_sql_setting_get(lw_store *s, const char *name, char *out, size_t cap)
{
    if (name == NULL || out == NULL || cap == 0)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, name, LW_SETTING_NAME_MAX);
    text_out t = {out, cap, false};
    int rc = lw_sqls_row(s, "read setting", &st_setting_get, &p, read_text, &t);
    if (rc == LW_OK && !t.fits) {
        fprintf(stderr, "{\"level\":\"error\",\"sub\":\"store\",\"msg\":\"a stored setting is longer than "
                        "its bound\"}\n");
        return LW_ETOOBIG;
    }
    return rc;
}

int lw_sql_setting_put(lw_store *s, const char *name, const char *value)
{
    if (name == NULL || value == NULL || strlen(name) >= LW_SETTING_NAME_MAX ||
        strlen(value) >= LW_SETTING_VALUE_MAX)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, name, LW_SETTING_NAME_MAX);
    lw_sqlp_key(&p, value, LW_SETTING_VALUE_MAX);
    return lw_sqls_write(s, "write setting", &st_setting_put, &p, NULL);
}

static void read_stats(const lw_sqlres *r, void *out)
{
    lw_store_stats *x = out;
    x->accounts = (long)lw_sql_i64(r, 0);
    x->sessions_active = (long)lw_sql_i64(r, 1);
    x->sessions_ended = (long)lw_sql_i64(r, 2);
    x->link_requests_pending = (long)lw_sql_i64(r, 3);
    x->alerts = (long)lw_sql_i64(r, 4);
}

int lw_sql_stats(lw_store *s, lw_store_stats *out)
{
    if (out == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    return lw_sqls_row(s, "stats", &st_stats, &p, read_stats, out);
}
