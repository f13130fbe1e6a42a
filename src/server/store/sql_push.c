/*
 * sql_push.c — Web Push subscriptions, once for both engines (sql.h).
 *
 * A subscription belongs to an active primary session; the migration's
 * trigger deletes it when that session ends, and account deletion deletes
 * the account's explicitly (sql_accounts.c).
 */
#include <string.h>

#include "sql.h"

#define PUSH_COLS "device_id, account_id, endpoint, p256dh, auth, created_at, failures"

/* The device as an active primary of the account (PostgreSQL: locked, so two
 * adds for one device count one after the other; SQLite's BEGIN IMMEDIATE
 * holds the write lock already). */
static const lw_sqlstmt st_primary = {LW_SQL_PUSH_PRIMARY, NULL,
                                      "SELECT 1 FROM sessions WHERE id = $1 AND account_id = $2"
                                      " AND role = 'primary' AND state = 'active'",
                                      "SELECT 1 FROM sessions WHERE id = $1 AND account_id = $2"
                                      " AND role = 'primary' AND state = 'active' FOR UPDATE"};
static const lw_sqlstmt st_update = {LW_SQL_PUSH_UPDATE,
                                     "UPDATE push_subscriptions SET p256dh = $3, auth = $4, failures = 0"
                                     " WHERE device_id = $1 AND endpoint = $2",
                                     NULL, NULL};
static const lw_sqlstmt st_counts = {LW_SQL_PUSH_COUNTS,
                                     "SELECT (SELECT count(*) FROM push_subscriptions WHERE device_id = $1),"
                                     " (SELECT count(*) FROM push_subscriptions WHERE account_id = $2)",
                                     NULL, NULL};
static const lw_sqlstmt st_insert = {
    LW_SQL_PUSH_INSERT, "INSERT INTO push_subscriptions (" PUSH_COLS ") VALUES ($1, $2, $3, $4, $5, $6, 0)",
    NULL, NULL};
/* Only the subscriptions of live primaries, in case a row outlived its
 * session some way the trigger does not see. */
static const lw_sqlstmt st_list_account = {
    LW_SQL_PUSH_LIST_ACCOUNT,
    "SELECT p.device_id, p.account_id, p.endpoint, p.p256dh, p.auth, p.created_at, p.failures"
    " FROM push_subscriptions p JOIN sessions s ON s.id = p.device_id"
    " WHERE p.account_id = $1 AND s.role = 'primary' AND s.state = 'active'"
    " ORDER BY p.created_at, p.endpoint COLLATE \"C\"",
    NULL, NULL};
static const lw_sqlstmt st_list_device = {LW_SQL_PUSH_LIST_DEVICE,
                                          "SELECT " PUSH_COLS " FROM push_subscriptions WHERE device_id = $1"
                                          " ORDER BY created_at, endpoint COLLATE \"C\"",
                                          NULL, NULL};
static const lw_sqlstmt st_delete = {
    LW_SQL_PUSH_DELETE, "DELETE FROM push_subscriptions WHERE device_id = $1 AND endpoint = $2", NULL, NULL};
static const lw_sqlstmt st_ok = {LW_SQL_PUSH_OK,
                                 "UPDATE push_subscriptions SET failures = 0"
                                 " WHERE device_id = $1 AND endpoint = $2",
                                 NULL, NULL};
static const lw_sqlstmt st_failed = {LW_SQL_PUSH_FAILED,
                                     "UPDATE push_subscriptions SET failures = failures + 1"
                                     " WHERE device_id = $1 AND endpoint = $2",
                                     NULL, NULL};

static void read_sub(const lw_sqlres *r, void *out)
{
    lw_push_sub *x = out;
    memset(x, 0, sizeof *x);
    LW_SQL_TEXTF(r, 0, x->device_id);
    LW_SQL_TEXTF(r, 1, x->account_id);
    LW_SQL_TEXTF(r, 2, x->endpoint);
    LW_SQL_BLOBF(r, 3, x->p256dh);
    LW_SQL_BLOBF(r, 4, x->auth);
    x->created_at = lw_sql_i64(r, 5);
    x->failures = (int)lw_sql_i64(r, 6);
}

static void read_nothing(const lw_sqlres *r, void *out)
{
    (void)r;
    (void)out;
}

typedef struct counts {
    long device, account;
} counts;

static void read_counts(const lw_sqlres *r, void *out)
{
    counts *c = out;
    c->device = (long)lw_sql_i64(r, 0);
    c->account = (long)lw_sql_i64(r, 1);
}

typedef struct add_args {
    const lw_push_sub *sub;
    long max_device, max_account;
} add_args;

static void key_params(lw_sqlparams *p, const char *device_id, const char *endpoint)
{
    lw_sqlp_init(p);
    lw_sqlp_key(p, device_id, LW_SQL_KEY_MAX);
    lw_sqlp_key(p, endpoint, LW_WEBPUSH_ENDPOINT_MAX + 1); /* whole, never cut */
}

static int add_body(lw_sqlconn *c, void *arg)
{
    const add_args *x = arg;
    const lw_push_sub *sub = x->sub;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    LW_SQLP_KEYF(&p, sub->device_id);
    LW_SQLP_KEYF(&p, sub->account_id);
    int rc = lw_sql_row(c, &st_primary, &p, false, read_nothing, NULL);
    if (rc != LW_OK)
        return rc;
    key_params(&p, sub->device_id, sub->endpoint);
    LW_SQLP_BLOBF(&p, sub->p256dh);
    LW_SQLP_BLOBF(&p, sub->auth);
    long changed = 0;
    if ((rc = lw_sql_write(c, &st_update, &p, &changed)) != LW_OK || changed > 0)
        return rc;
    counts n = {0, 0};
    lw_sqlp_init(&p);
    LW_SQLP_KEYF(&p, sub->device_id);
    LW_SQLP_KEYF(&p, sub->account_id);
    if ((rc = lw_sql_row(c, &st_counts, &p, false, read_counts, &n)) != LW_OK)
        return rc;
    if (n.device >= x->max_device || n.account >= x->max_account)
        return LW_ELIMIT;
    lw_sqlp_init(&p);
    LW_SQLP_KEYF(&p, sub->device_id);
    LW_SQLP_KEYF(&p, sub->account_id);
    lw_sqlp_key(&p, sub->endpoint, sizeof sub->endpoint);
    LW_SQLP_BLOBF(&p, sub->p256dh);
    LW_SQLP_BLOBF(&p, sub->auth);
    lw_sqlp_i64(&p, sub->created_at);
    return lw_sql_write(c, &st_insert, &p, NULL);
}

int lw_sql_push_add(lw_store *s, const lw_push_sub *sub, long max_per_device, long max_per_account)
{
    if (sub == NULL || sub->endpoint[0] == '\0' ||
        strnlen(sub->endpoint, sizeof sub->endpoint) >= sizeof sub->endpoint)
        return LW_EINVAL;
    add_args x = {sub, max_per_device, max_per_account};
    return lw_sql_drv(s)->run(s, LW_SQL_TX, "add push subscription", add_body, &x);
}

int lw_sql_push_list(lw_store *s, const char *account_id, const char *device_id, lw_push_sub **out, size_t *n)
{
    if ((account_id == NULL) == (device_id == NULL) || out == NULL || n == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, account_id ? account_id : device_id, LW_SQL_KEY_MAX);
    return lw_sqls_rows(s, "list push subscriptions", account_id ? &st_list_account : &st_list_device, &p,
                        sizeof(lw_push_sub), read_sub, (void **)out, n);
}

static int write_one(lw_store *s, const char *what, const lw_sqlstmt *st, const char *device_id,
                     const char *endpoint)
{
    if (device_id == NULL || endpoint == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    key_params(&p, device_id, endpoint);
    long changed = 0;
    int rc = lw_sqls_write(s, what, st, &p, &changed);
    if (rc == LW_OK && changed == 0)
        rc = LW_ENOTFOUND;
    return rc;
}

int lw_sql_push_delete(lw_store *s, const char *device_id, const char *endpoint)
{
    return write_one(s, "delete push subscription", &st_delete, device_id, endpoint);
}

int lw_sql_push_result(lw_store *s, const char *device_id, const char *endpoint, bool ok)
{
    return write_one(s, "record push result", ok ? &st_ok : &st_failed, device_id, endpoint);
}
