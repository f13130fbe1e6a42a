/*
 * sql_sweep.c — the sweeper, once for both engines (sql.h).
 *
 * Every ending step is one UPDATE ... RETURNING that takes ($1 cutoff,
 * $2 now, $3 reason), so the list is exactly what the statement ended,
 * under any isolation level. No correlated subqueries (Citus cannot
 * distribute them): joins with a table or a grouped derived table.
 */
#include "sql.h"

#define END_SET "UPDATE sessions SET state = 'ended', ended_at = $2::bigint, end_reason = $3::text"
#define ENDED " RETURNING sessions.id, sessions.account_id, sessions.linked_at"

/* Companions idle past their account's TTL. Nothing idle for less than the
 * shortest TTL can be due: a range on (role, last_active_at) instead of a
 * scan of every session (4 s on the event loop at a million sessions). */
static const lw_sqlstmt st_inactive = {
    LW_SQL_SWEEP_INACTIVE,
    END_SET
    " FROM accounts AS a WHERE a.id = sessions.account_id AND sessions.state = 'active'"
    " AND sessions.role = 'companion' AND a.inactive_ttl_ms > 0"
    " AND sessions.last_active_at < $1::bigint - a.inactive_ttl_ms"
    " AND sessions.last_active_at < $1::bigint - (SELECT coalesce(min(inactive_ttl_ms), 0) FROM accounts"
    "                                           WHERE inactive_ttl_ms > 0)" ENDED,
    NULL, NULL};
/* The newest primary of the account counts, ended or not: after an account
 * reset the old primary is ended and a new one carries on. An account
 * without any primary matches no row and so is left alone. */
static const lw_sqlstmt st_primary_inactive = {
    LW_SQL_SWEEP_PRIMARY_INACTIVE,
    END_SET " FROM (SELECT account_id AS pid, max(last_active_at) AS seen FROM sessions"
            "       WHERE role = 'primary' GROUP BY account_id) AS p"
            " WHERE p.pid = sessions.account_id AND p.seen < $1::bigint"
            " AND sessions.state = 'active' AND sessions.role = 'companion'" ENDED,
    NULL, NULL};
static const lw_sqlstmt st_max_age = {
    LW_SQL_SWEEP_MAX_AGE,
    END_SET " WHERE state = 'active' AND role = 'companion' AND linked_at < $1::bigint" ENDED, NULL, NULL};
/* A browser that did not ask to stay signed in lost its cookie when it
 * closed: nobody will use that session again. */
static const lw_sqlstmt st_ephemeral = {LW_SQL_SWEEP_EPHEMERAL,
                                        END_SET " WHERE state = 'active' AND role = 'companion'"
                                                " AND last_active_at < $1::bigint AND NOT persistent" ENDED,
                                        NULL, NULL};
static const lw_sqlstmt st_purge_sessions = {
    LW_SQL_SWEEP_PURGE_SESSIONS, "DELETE FROM sessions WHERE state = 'ended' AND ended_at < $1", NULL, NULL};
static const lw_sqlstmt st_purge_alerts = {LW_SQL_SWEEP_PURGE_ALERTS,
                                           "DELETE FROM alerts WHERE created_at < $1", NULL, NULL};

typedef struct step_args {
    const lw_sqlstmt *st;
    const lw_sqlparams *p;
    const char *reason;
    lw_ended **list;
    size_t *count;
    size_t before; /* a rerun starts from here again */
} step_args;

static int step_body(lw_sqlconn *c, void *arg)
{
    step_args *x = arg;
    *x->count = x->before;
    return lw_sql_ended(c, x->st, x->p, true, x->reason, x->list, x->count);
}

/* One sweep step in its own transaction, appending what it ended. On
 * failure the step is rolled back and the list left as it was. */
static int end_step(lw_store *s, const lw_sqlstmt *st, int64_t cutoff, const char *reason, int64_t now,
                    lw_ended **list, size_t *count)
{
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_i64(&p, cutoff);
    lw_sqlp_i64(&p, now);
    lw_sqlp_val(&p, reason, LW_REASON_MAX - 1);
    step_args x = {st, &p, reason, list, count, *count};
    int rc = lw_sql_drv(s)->run(s, LW_SQL_TX, "sweep", step_body, &x);
    if (rc != LW_OK)
        *count = x.before;
    return rc;
}

/* A single DELETE is its own transaction. */
static int purge(lw_store *s, const lw_sqlstmt *st, int64_t cutoff, long *deleted)
{
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_i64(&p, cutoff);
    return lw_sqls_write(s, "sweep purge", st, &p, deleted);
}

int lw_sql_sweep(lw_store *s, const lw_sweep_policy *pol, lw_ended **out, size_t *n, long *purged)
{
    if (pol == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    lw_ended *list = NULL;
    size_t count = 0;
    long gone = 0, alerts_gone = 0;
    int rc;

    /* Order matters only for the reason a session gets when several apply:
     * its own inactivity first, then its primary's, then the absolute age. */
    if ((rc = end_step(s, &st_inactive, pol->now, "inactive", pol->now, &list, &count)) != LW_OK)
        goto fail;
    if (pol->primary_inactive_ms > 0 &&
        (rc = end_step(s, &st_primary_inactive, pol->now - pol->primary_inactive_ms, "primary_inactive",
                       pol->now, &list, &count)) != LW_OK)
        goto fail;
    if (pol->max_age_ms > 0 && (rc = end_step(s, &st_max_age, pol->now - pol->max_age_ms, "max_age", pol->now,
                                              &list, &count)) != LW_OK)
        goto fail;
    if (pol->ephemeral_idle_ms > 0 && (rc = end_step(s, &st_ephemeral, pol->now - pol->ephemeral_idle_ms,
                                                     "inactive", pol->now, &list, &count)) != LW_OK)
        goto fail;
    if (pol->history_retention_ms > 0) {
        int64_t cutoff = pol->now - pol->history_retention_ms;
        if ((rc = purge(s, &st_purge_sessions, cutoff, &gone)) != LW_OK)
            goto fail;
        if ((rc = purge(s, &st_purge_alerts, cutoff, &alerts_gone)) != LW_OK)
            goto fail;
    }
    *out = list;
    *n = count;
    if (purged != NULL)
        *purged = gone;
    return LW_OK;
fail:
    /* Earlier steps stay committed; their devices learn on their next request. */
    lw_free(list);
    return rc;
}
