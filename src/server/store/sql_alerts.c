/*
 * sql_alerts.c — alerts, once for both engines (sql.h).
 */
#include <string.h>

#include "sql.h"

static const lw_sqlstmt st_insert = {LW_SQL_ALERT_INSERT,
                                     "INSERT INTO alerts (" LW_SQL_ALERT_COLS
                                     ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                                     NULL, NULL};

/* The newest unanswered alert of the burst, counted into (PostgreSQL: and
 * locked until the transaction ends; SQLite's BEGIN IMMEDIATE holds the
 * write lock already). Alerts of one millisecond are told apart by
 * insertion order: SQLite's rowid, PostgreSQL's seq. */
#define BURST_ADD(order, lock)                                                                               \
    "UPDATE alerts SET burst_count = burst_count + 1, details = $5, updated_at = $6::bigint"                 \
    " WHERE id = (SELECT id FROM alerts WHERE account_id = $1 AND kind = $2 AND device_id = $3"              \
    " AND answer = '' AND updated_at >= $4::bigint ORDER BY updated_at DESC, " order " DESC"                 \
    " LIMIT 1" lock ") RETURNING " LW_SQL_ALERT_COLS
static const lw_sqlstmt st_burst_add = {LW_SQL_ALERT_BURST_ADD, NULL, BURST_ADD("rowid", ""),
                                        BURST_ADD("seq", " FOR UPDATE")};

#define LIST(order)                                                                                          \
    "SELECT " LW_SQL_ALERT_COLS " FROM alerts WHERE account_id = $1 ORDER BY created_at DESC, " order        \
    " DESC LIMIT $2"
static const lw_sqlstmt st_list = {LW_SQL_ALERT_LIST, NULL, LIST("rowid"), LIST("seq")};

static const lw_sqlstmt st_get = {
    LW_SQL_ALERT_GET, "SELECT " LW_SQL_ALERT_COLS " FROM alerts WHERE id = $1 AND account_id = $2", NULL,
    NULL};

/* Acknowledging twice keeps the first time; "it was me" gives way to a
 * protective answer given later, never the reverse; who answered goes with
 * the answer (the CASEs read the row as it was). */
static const lw_sqlstmt st_ack = {
    LW_SQL_ALERT_ACK,
    "UPDATE alerts SET acked_at = CASE WHEN acked_at = 0 THEN $1::bigint ELSE acked_at END,"
    " answer = CASE WHEN answer IN ('', 'it_was_me') THEN $4::text ELSE answer END,"
    " answered_by = CASE WHEN answer IN ('', 'it_was_me') THEN $5::text ELSE answered_by END"
    " WHERE id = $2 AND account_id = $3",
    NULL, NULL};

static const char *details_of(const lw_alert *a)
{
    return a->details[0] != '\0' ? a->details : "{}";
}

static void insert_params(lw_sqlparams *p, const lw_alert *a)
{
    lw_sqlp_init(p);
    LW_SQLP_KEYF(p, a->id);
    LW_SQLP_KEYF(p, a->account_id);
    LW_SQLP_VALF(p, a->kind);
    LW_SQLP_KEYF(p, a->device_id);
    lw_sqlp_i64(p, a->created_at);
    lw_sqlp_i64(p, a->acked_at);
    lw_sqlp_val(p, details_of(a), sizeof(a->details) - 1);
    LW_SQLP_VALF(p, a->answer);
    LW_SQLP_KEYF(p, a->answered_by);
    lw_sqlp_i64(p, a->count > 0 ? a->count : 1);
    lw_sqlp_i64(p, a->updated_at > 0 ? a->updated_at : a->created_at);
}

/* Cutting JSON would store invalid JSON: refuse an unterminated one. */
static bool details_fit(const lw_alert *a)
{
    return strnlen(a->details, sizeof(a->details)) < sizeof(a->details);
}

int lw_sql_alert_insert(lw_store *s, const lw_alert *a)
{
    if (a == NULL)
        return LW_EINVAL;
    if (!details_fit(a))
        return LW_ETOOBIG;
    lw_sqlparams p;
    insert_params(&p, a);
    return lw_sqls_write(s, "insert alert", &st_insert, &p, NULL);
}

typedef struct raise_args {
    const lw_alert *a;
    int64_t since;
    lw_alert *out;
} raise_args;

static int raise_body(lw_sqlconn *c, void *arg)
{
    raise_args *x = arg;
    const lw_alert *a = x->a;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    LW_SQLP_KEYF(&p, a->account_id);
    LW_SQLP_VALF(&p, a->kind);
    LW_SQLP_KEYF(&p, a->device_id);
    lw_sqlp_i64(&p, x->since > 0 ? x->since : INT64_MAX);
    lw_sqlp_val(&p, details_of(a), sizeof(a->details) - 1);
    lw_sqlp_i64(&p, a->created_at);
    int rc = lw_sql_row(c, &st_burst_add, &p, true, lw_sql_read_alert, x->out);
    if (rc != LW_ENOTFOUND)
        return rc;
    insert_params(&p, a);
    if ((rc = lw_sql_write(c, &st_insert, &p, NULL)) != LW_OK)
        return rc;
    *x->out = *a;
    x->out->count = 1;
    x->out->updated_at = a->created_at;
    return LW_OK;
}

int lw_sql_alert_raise(lw_store *s, const lw_alert *a, int64_t since, lw_alert *out)
{
    if (a == NULL || out == NULL)
        return LW_EINVAL;
    if (!details_fit(a))
        return LW_ETOOBIG;
    lw_alert got;
    raise_args x = {a, since, &got};
    int rc = lw_sql_drv(s)->run(s, LW_SQL_TX, "raise alert", raise_body, &x);
    if (rc == LW_OK)
        *out = got;
    return rc;
}

int lw_sql_alert_list(lw_store *s, const char *account_id, int limit, lw_alert **out, size_t *n)
{
    if (account_id == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, account_id, LW_SQL_KEY_MAX);
    /* No limit: the largest BIGINT, which every engine accepts (LIMIT NULL is not portable). */
    lw_sqlp_i64(&p, limit > 0 ? limit : INT64_MAX);
    void *arr = NULL;
    int rc = lw_sqls_rows(s, "list alerts", &st_list, &p, sizeof(lw_alert), lw_sql_read_alert, &arr, n);
    if (rc == LW_OK)
        *out = arr;
    return rc;
}

int lw_sql_alert_get(lw_store *s, const char *account_id, const char *alert_id, lw_alert *out)
{
    if (account_id == NULL || alert_id == NULL || out == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, alert_id, LW_SQL_KEY_MAX);
    lw_sqlp_key(&p, account_id, LW_SQL_KEY_MAX);
    return lw_sqls_row(s, "get alert", &st_get, &p, lw_sql_read_alert, out);
}

int lw_sql_alert_ack(lw_store *s, const char *account_id, const char *alert_id, const char *answer,
                     const char *answered_by, int64_t now)
{
    if (account_id == NULL || alert_id == NULL || answer == NULL || answered_by == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_i64(&p, now);
    lw_sqlp_key(&p, alert_id, LW_SQL_KEY_MAX);
    lw_sqlp_key(&p, account_id, LW_SQL_KEY_MAX);
    lw_sqlp_val(&p, answer, LW_REASON_MAX - 1);
    lw_sqlp_key(&p, answered_by, LW_SQL_KEY_MAX);
    long n = 0;
    int rc = lw_sqls_write(s, "ack alert", &st_ack, &p, &n);
    if (rc != LW_OK)
        return rc;
    return n == 1 ? LW_OK : LW_ENOTFOUND;
}
