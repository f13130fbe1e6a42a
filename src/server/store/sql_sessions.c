/*
 * sql_sessions.c — sessions, once for both engines (sql.h).
 */
#include <string.h>

#include "sql.h"

/* A session is always born active; state, ended_at and end_reason are not the caller's. */
static const lw_sqlstmt st_insert = {
    LW_SQL_SESSION_INSERT,
    "INSERT INTO sessions (" LW_SQL_SESSION_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7,"
    " $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,"
    " 'active', 0, '', $22::boolean, $23, $24, $25, $26, $27::float8, $28::float8, $29::boolean,"
    " $30::float8, $31::float8, $32::boolean, $33, $34)",
    NULL, NULL};
static const lw_sqlstmt st_get = {LW_SQL_SESSION_GET,
                                  "SELECT " LW_SQL_SESSION_COLS " FROM sessions WHERE id = $1", NULL, NULL};
/* The active one if any, else the most recently ended. */
static const lw_sqlstmt st_get_by_selector = {
    LW_SQL_SESSION_GET_BY_SELECTOR,
    "SELECT " LW_SQL_SESSION_COLS " FROM sessions WHERE cred_selector = $1"
    " ORDER BY CASE WHEN state = 'active' THEN 0 ELSE 1 END, ended_at DESC LIMIT 1",
    NULL, NULL};
const lw_sqlstmt lw_sql_session_exists = {LW_SQL_SESSION_EXISTS, "SELECT 1 FROM sessions WHERE id = $1", NULL,
                                          NULL};
static const lw_sqlstmt st_list = {LW_SQL_SESSION_LIST,
                                   "SELECT " LW_SQL_SESSION_COLS
                                   " FROM sessions WHERE account_id = $1 AND state = $2"
                                   " ORDER BY linked_at, id COLLATE \"C\"",
                                   NULL, NULL};
const lw_sqlstmt lw_sql_session_count_companions = {
    LW_SQL_SESSION_COUNT_COMPANIONS,
    "SELECT count(*) FROM sessions WHERE account_id = $1 AND state = 'active' AND role = 'companion'"
    " AND ($2::bytea IS NULL OR public_key <> $2::bytea)",
    NULL, NULL};
/* 2: some session was in $2; 1: none was, but some has a country; 0: none has one. */
static const lw_sqlstmt st_places_country = {
    LW_SQL_PLACES_COUNTRY,
    "SELECT CASE"
    " WHEN EXISTS (SELECT 1 FROM sessions WHERE account_id = $1"
    "              AND $2::text <> '' AND (country = $2::text OR last_country = $2::text)) THEN 2"
    " WHEN EXISTS (SELECT 1 FROM sessions WHERE account_id = $1"
    "              AND (country <> '' OR last_country <> '')) THEN 1"
    " ELSE 0 END",
    NULL, NULL};
static const lw_sqlstmt st_places_primary = {
    LW_SQL_PLACES_PRIMARY,
    "SELECT country, last_country, has_loc, lat, lon, last_has_loc, last_lat, last_lon"
    " FROM sessions WHERE account_id = $1 AND role = 'primary' AND state = 'active'"
    " ORDER BY linked_at, id COLLATE \"C\" LIMIT 1",
    NULL, NULL};
static const lw_sqlstmt st_set_cred = {
    LW_SQL_SESSION_SET_CRED,
    "UPDATE sessions SET cred_selector = $1, cred_hash = $2, cred_expires_at = $3,"
    " challenge = $4 WHERE id = $5 AND state = 'active'",
    NULL, NULL};
static const lw_sqlstmt st_set_name = {LW_SQL_SESSION_SET_NAME, "UPDATE sessions SET name = $1 WHERE id = $2",
                                       NULL, NULL};
/* Writes are coalesced by the caller and may arrive out of order: never move
 * last_active_at backwards, and keep the place with the newest time. A touch
 * without a place ($2 NULL) only moves the time. Every right-hand side sees
 * the row as it was before this UPDATE. */
#define NEWER "CASE WHEN $1::bigint >= last_active_at AND $2::text IS NOT NULL THEN "
static const lw_sqlstmt st_touch = {
    LW_SQL_SESSION_TOUCH,
    "UPDATE sessions SET last_ip = " NEWER "$2::text ELSE last_ip END,"
    " last_country = " NEWER "$4::text ELSE last_country END,"
    " last_city = " NEWER "$5::text ELSE last_city END,"
    " last_region = " NEWER "$9::text ELSE last_region END,"
    " last_network = " NEWER "$10::text ELSE last_network END,"
    " last_lat = " NEWER "$6::float8 ELSE last_lat END,"
    " last_lon = " NEWER "$7::float8 ELSE last_lon END,"
    " last_has_loc = " NEWER "$8::boolean ELSE last_has_loc END,"
    " last_active_at = CASE WHEN $1::bigint > last_active_at THEN $1::bigint ELSE last_active_at END"
    " WHERE id = $3 AND state = 'active'",
    NULL, NULL};
static const lw_sqlstmt st_end = {LW_SQL_SESSION_END,
                                  "UPDATE sessions SET state = 'ended', ended_at = $1, end_reason = $2"
                                  " WHERE id = $3 AND state = 'active'",
                                  NULL, NULL};

/* The statements that end sessions say which: (id, account_id, linked_at),
 * ordered by lw_sql_ended. They take ($1 account or role, $2 now, $3 reason). */
#define END_SET "UPDATE sessions SET state = 'ended', ended_at = $2::bigint, end_reason = $3::text"
#define ENDED " RETURNING id, account_id, linked_at"
/* One statement for the whole account (a logout-all of 1,000 devices was
 * 1,000 UPDATEs by id: most of its time). */
const lw_sqlstmt lw_sql_end_all_stmt = {LW_SQL_SESSION_END_ALL,
                                        END_SET " WHERE account_id = $1 AND state = 'active'"
                                                " AND ($4::text IS NULL OR role = $4::text)"
                                                " AND ($5::text IS NULL OR id <> $5::text)" ENDED,
                                        NULL, NULL};
static const lw_sqlstmt st_end_every = {
    LW_SQL_SESSION_END_EVERY,
    END_SET " WHERE state = 'active' AND ($1::text IS NULL OR role = $1::text)" ENDED, NULL, NULL};
/* What a completion replaces: the account's live companions with the same key ($4). */
static const lw_sqlstmt st_end_same_key = {LW_SQL_SESSION_END_SAME_KEY,
                                           END_SET " WHERE account_id = $1 AND state = 'active'"
                                                   " AND role = 'companion' AND public_key = $4::bytea" ENDED,
                                           NULL, NULL};

#define REDACT_SET                                                                                           \
    "UPDATE sessions SET ip = '', region = '', city = '', last_ip = '', last_region = '', last_city = '',"   \
    " lat = 0, lon = 0, has_loc = FALSE, last_lat = 0, last_lon = 0, last_has_loc = FALSE, redacted = TRUE"
static const lw_sqlstmt st_redact = {LW_SQL_SESSION_REDACT, REDACT_SET " WHERE id = $1 AND state = 'ended'",
                                     NULL, NULL};
/* Each engine names its partial index's condition as that index does. */
static const lw_sqlstmt st_redact_ended = {LW_SQL_SESSION_REDACT_ENDED, NULL,
                                           REDACT_SET " WHERE state = 'ended' AND redacted = 0",
                                           REDACT_SET " WHERE state = 'ended' AND NOT redacted"};
/* The addresses alerts about a device carry (risk.c, api_link.c,
 * api_session.c put them under these keys): JSON is where the engines
 * differ most. */
#define SQLITE_REDACT_DETAILS                                                                                \
    "UPDATE alerts SET details = json_remove(details, '$.ip', '$.from_ip', '$.to_ip')"
#define PG_REDACT_DETAILS "UPDATE alerts SET details = ((details::jsonb - 'ip' - 'from_ip' - 'to_ip')::text)"
static const lw_sqlstmt st_alert_redact_device = {LW_SQL_ALERT_REDACT_DEVICE, NULL,
                                                  SQLITE_REDACT_DETAILS " WHERE device_id = $1",
                                                  PG_REDACT_DETAILS " WHERE device_id = $1"};
/* Before st_redact_ended, in the same transaction: these are the devices it
 * is about to mark. */
#define UNREDACTED_DEVICES(cond)                                                                             \
    " WHERE device_id <> '' AND device_id IN (SELECT id FROM sessions WHERE " cond ")"
static const lw_sqlstmt st_alert_redact_ended = {
    LW_SQL_ALERT_REDACT_ENDED, NULL,
    SQLITE_REDACT_DETAILS UNREDACTED_DEVICES("state = 'ended' AND redacted = 0"),
    PG_REDACT_DETAILS UNREDACTED_DEVICES("state = 'ended' AND NOT redacted")};
static const lw_sqlstmt st_delete_one = {
    LW_SQL_SESSION_DELETE_ONE, "DELETE FROM sessions WHERE account_id = $1 AND id = $2 AND state = 'ended'",
    NULL, NULL};
static const lw_sqlstmt st_delete_all = {
    LW_SQL_SESSION_DELETE_ALL, "DELETE FROM sessions WHERE account_id = $1 AND state = 'ended'", NULL, NULL};

/* ---- shared with the other families ---------------------------------------- */

int lw_sql_session_insert(lw_sqlconn *c, const lw_session *x, const char *account_id, const char *role)
{
    lw_sqlparams p;
    lw_sqlp_init(&p);
    LW_SQLP_KEYF(&p, x->id);
    lw_sqlp_key(&p, account_id, LW_SQL_KEY_MAX);
    lw_sqlp_key(&p, role, LW_SQL_KEY_MAX);
    LW_SQLP_VALF(&p, x->name);
    lw_sql_bind_client_place(&p, &x->client, &x->first);
    /* A new session is last seen where it was first seen, unless told otherwise. */
    bool first = x->last.ip[0] == '\0';
    lw_sqlp_val(&p, first ? x->first.ip : x->last.ip, sizeof(x->last.ip) - 1);
    lw_sqlp_val(&p, first ? x->first.country : x->last.country, sizeof(x->last.country) - 1);
    lw_sqlp_val(&p, first ? x->first.city : x->last.city, sizeof(x->last.city) - 1);
    LW_SQLP_BLOBF(&p, x->public_key);
    LW_SQLP_BLOBF(&p, x->account_sig);
    lw_sqlp_i64(&p, x->linked_at);
    lw_sqlp_i64(&p, x->last_active_at);
    lw_sqlp_bool(&p, x->persistent);
    LW_SQLP_KEYF(&p, x->cred_selector);
    LW_SQLP_BLOBF(&p, x->cred_hash);
    lw_sqlp_i64(&p, x->cred_expires_at);
    LW_SQLP_BLOBF(&p, x->challenge);
    lw_sqlp_f64(&p, x->first.lat);
    lw_sqlp_f64(&p, x->first.lon);
    lw_sqlp_bool(&p, x->first.has_loc);
    lw_sqlp_f64(&p, first ? x->first.lat : x->last.lat);
    lw_sqlp_f64(&p, first ? x->first.lon : x->last.lon);
    lw_sqlp_bool(&p, first ? x->first.has_loc : x->last.has_loc);
    lw_sqlp_val(&p, first ? x->first.region : x->last.region, sizeof(x->last.region) - 1);
    lw_sqlp_val(&p, first ? x->first.network : x->last.network, sizeof(x->last.network) - 1);
    return lw_sql_write(c, &st_insert, &p, NULL);
}

void lw_sql_count_params(lw_sqlparams *p, const char *account_id, const uint8_t *except_key)
{
    lw_sqlp_init(p);
    lw_sqlp_key(p, account_id, LW_SQL_KEY_MAX);
    if (except_key != NULL)
        lw_sqlp_blob(p, except_key, LW_PK_LEN);
    else
        lw_sqlp_null(p);
}

/* ---- reads ----------------------------------------------------------------- */

static int get_by(lw_store *s, const char *what, const lw_sqlstmt *st, const char *key, lw_session *out)
{
    if (key == NULL || out == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, key, LW_SQL_KEY_MAX);
    return lw_sqls_row(s, what, st, &p, lw_sql_read_session, out);
}

int lw_sql_session_get(lw_store *s, const char *device_id, lw_session *out)
{
    return get_by(s, "get session", &st_get, device_id, out);
}

int lw_sql_session_get_by_selector(lw_store *s, const char *selector, lw_session *out)
{
    return get_by(s, "get session by selector", &st_get_by_selector, selector, out);
}

int lw_sql_session_list(lw_store *s, const char *account_id, bool ended, lw_session **out, size_t *n)
{
    if (account_id == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, account_id, LW_SQL_KEY_MAX);
    lw_sqlp_key(&p, ended ? "ended" : "active", LW_SQL_KEY_MAX);
    void *arr = NULL;
    int rc = lw_sqls_rows(s, "list sessions", &st_list, &p, sizeof(lw_session), lw_sql_read_session, &arr, n);
    if (rc == LW_OK)
        *out = arr;
    return rc;
}

int lw_sql_session_count_active_companions(lw_store *s, const char *account_id, const uint8_t *except_key,
                                           long *n)
{
    if (account_id == NULL || n == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sql_count_params(&p, account_id, except_key);
    return lw_sqls_row(s, "count companions", &lw_sql_session_count_companions, &p, lw_sql_read_long, n);
}

static void read_primary_place(const lw_sqlres *r, void *out)
{
    lw_place *p = out;
    memset(p, 0, sizeof(*p));
    char first[LW_PLACE_MAX], last[LW_PLACE_MAX];
    LW_SQL_TEXTF(r, 0, first);
    LW_SQL_TEXTF(r, 1, last);
    lw_strlcpy(p->country, last[0] ? last : first, sizeof(p->country));
    if (lw_sql_bool(r, 5)) {
        p->lat = lw_sql_f64(r, 6);
        p->lon = lw_sql_f64(r, 7);
        p->has_loc = true;
    } else if (lw_sql_bool(r, 2)) {
        p->lat = lw_sql_f64(r, 3);
        p->lon = lw_sql_f64(r, 4);
        p->has_loc = true;
    }
}

int lw_sql_account_places(lw_store *s, const char *account_id, const char *country, lw_account_places *out)
{
    if (account_id == NULL || country == NULL || out == NULL)
        return LW_EINVAL;
    memset(out, 0, sizeof(*out));
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, account_id, LW_SQL_KEY_MAX);
    lw_sqlp_key(&p, country, LW_SQL_KEY_MAX);
    int seen = 0;
    int rc = lw_sqls_row(s, "account countries", &st_places_country, &p, lw_sql_read_int, &seen);
    if (rc != LW_OK)
        return rc;
    out->country_seen = seen == 2;
    out->any_country = seen >= 1;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, account_id, LW_SQL_KEY_MAX);
    rc = lw_sqls_row(s, "primary place", &st_places_primary, &p, read_primary_place, &out->primary);
    if (rc == LW_ENOTFOUND)
        return LW_OK;
    out->has_primary = rc == LW_OK;
    return rc;
}

/* ---- single writes --------------------------------------------------------- */

/* A compare-and-set on the session named id. */
static int cas_write(lw_store *s, const char *what, const lw_sqlstmt *st, const lw_sqlparams *p,
                     const char *id)
{
    long n = 0;
    int rc = lw_sqls_write(s, what, st, p, &n);
    if (rc != LW_OK)
        return rc;
    return lw_sqls_cas(s, n, &lw_sql_session_exists, id, what);
}

int lw_sql_session_set_credential(lw_store *s, const lw_session *sess)
{
    if (sess == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    LW_SQLP_KEYF(&p, sess->cred_selector);
    LW_SQLP_BLOBF(&p, sess->cred_hash);
    lw_sqlp_i64(&p, sess->cred_expires_at);
    LW_SQLP_BLOBF(&p, sess->challenge);
    LW_SQLP_KEYF(&p, sess->id);
    return cas_write(s, "set credential", &st_set_cred, &p, sess->id);
}

int lw_sql_session_set_name(lw_store *s, const char *device_id, const char *name)
{
    if (device_id == NULL || name == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_val(&p, name, LW_NAME_MAX - 1);
    lw_sqlp_key(&p, device_id, LW_SQL_KEY_MAX);
    long n = 0;
    int rc = lw_sqls_write(s, "set session name", &st_set_name, &p, &n);
    if (rc != LW_OK)
        return rc;
    return n == 1 ? LW_OK : LW_ENOTFOUND;
}

int lw_sql_session_touch(lw_store *s, const char *device_id, int64_t at, const lw_place *where)
{
    if (device_id == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_i64(&p, at);
    lw_sqlp_val(&p, where ? where->ip : NULL, LW_IP_MAX - 1);
    lw_sqlp_key(&p, device_id, LW_SQL_KEY_MAX);
    lw_sqlp_val(&p, where ? where->country : "", LW_PLACE_MAX - 1);
    lw_sqlp_val(&p, where ? where->city : "", LW_PLACE_MAX - 1);
    lw_sqlp_f64(&p, where ? where->lat : 0);
    lw_sqlp_f64(&p, where ? where->lon : 0);
    lw_sqlp_bool(&p, where && where->has_loc);
    lw_sqlp_val(&p, where ? where->region : "", LW_PLACE_MAX - 1);
    lw_sqlp_val(&p, where ? where->network : "", LW_NETWORK_MAX - 1);
    return cas_write(s, "touch session", &st_touch, &p, device_id);
}

int lw_sql_session_end(lw_store *s, const char *device_id, const char *reason, int64_t now)
{
    if (device_id == NULL || reason == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_i64(&p, now);
    lw_sqlp_val(&p, reason, LW_REASON_MAX - 1);
    lw_sqlp_key(&p, device_id, LW_SQL_KEY_MAX);
    return cas_write(s, "end session", &st_end, &p, device_id);
}

/* ---- ending many ----------------------------------------------------------- */

typedef struct end_args {
    const lw_sqlstmt *st;
    const lw_sqlparams *p;
    const char *reason;
    lw_ended *list; /* rebuilt on every run */
    size_t count;
} end_args;

static int end_body(lw_sqlconn *c, void *arg)
{
    end_args *x = arg;
    lw_free(x->list);
    x->list = NULL;
    x->count = 0;
    return lw_sql_ended(c, x->st, x->p, true, x->reason, &x->list, &x->count);
}

/* One ending statement in a transaction of its own; on success *out / *n
 * take the sessions it ended. */
static int end_listed(lw_store *s, const char *what, const lw_sqlstmt *st, const lw_sqlparams *p,
                      const char *reason, lw_ended **out, size_t *n)
{
    end_args x = {st, p, reason, NULL, 0};
    int rc = lw_sql_drv(s)->run(s, LW_SQL_TX, what, end_body, &x);
    if (rc != LW_OK) {
        lw_free(x.list);
        return rc;
    }
    *out = x.list;
    *n = x.count;
    return LW_OK;
}

int lw_sql_session_end_all(lw_store *s, const char *account_id, const char *role, const char *except,
                           const char *reason, int64_t now, lw_ended **out, size_t *n)
{
    if (account_id == NULL || reason == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, account_id, LW_SQL_KEY_MAX);
    lw_sqlp_i64(&p, now);
    lw_sqlp_val(&p, reason, LW_REASON_MAX - 1);
    lw_sqlp_key(&p, role, LW_SQL_KEY_MAX);
    lw_sqlp_key(&p, except, LW_SQL_KEY_MAX);
    return end_listed(s, "end all sessions", &lw_sql_end_all_stmt, &p, reason, out, n);
}

int lw_sql_session_end_every(lw_store *s, const char *role, const char *reason, int64_t now, lw_ended **out,
                             size_t *n)
{
    if (reason == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, role, LW_SQL_KEY_MAX);
    lw_sqlp_i64(&p, now);
    lw_sqlp_val(&p, reason, LW_REASON_MAX - 1);
    return end_listed(s, "end every session", &st_end_every, &p, reason, out, n);
}

int lw_sql_session_end_same_key(lw_sqlconn *c, const char *account_id, const lw_session *sess,
                                lw_ended **list, size_t *count)
{
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, account_id, LW_SQL_KEY_MAX);
    lw_sqlp_i64(&p, sess->linked_at);
    lw_sqlp_val(&p, LW_END_RELINKED, LW_REASON_MAX - 1);
    LW_SQLP_BLOBF(&p, sess->public_key);
    return lw_sql_ended(c, &st_end_same_key, &p, true, LW_END_RELINKED, list, count);
}

/* ---- privacy and history --------------------------------------------------- */

typedef struct redact_args {
    const char *device_id; /* NULL: every ended record not redacted yet */
    long changed;
} redact_args;

/* The record and the alerts about it in one transaction, so no crash can
 * leave addresses behind in either. */
static int redact_body(lw_sqlconn *c, void *arg)
{
    redact_args *x = arg;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    if (x->device_id == NULL) {
        int rc = lw_sql_write(c, &st_alert_redact_ended, &p, NULL);
        return rc != LW_OK ? rc : lw_sql_write(c, &st_redact_ended, &p, &x->changed);
    }
    lw_sqlp_key(&p, x->device_id, LW_SQL_KEY_MAX);
    int rc = lw_sql_write(c, &st_redact, &p, &x->changed);
    if (rc != LW_OK || x->changed != 1)
        return rc;
    return lw_sql_write(c, &st_alert_redact_device, &p, NULL);
}

int lw_sql_session_redact(lw_store *s, const char *device_id)
{
    if (device_id == NULL)
        return LW_EINVAL;
    redact_args x = {device_id, 0};
    int rc = lw_sql_drv(s)->run(s, LW_SQL_TX, "redact session", redact_body, &x);
    if (rc != LW_OK)
        return rc;
    return lw_sqls_cas(s, x.changed, &lw_sql_session_exists, device_id, "redact session");
}

int lw_sql_session_redact_ended(lw_store *s, long *n)
{
    redact_args x = {NULL, 0};
    int rc = lw_sql_drv(s)->run(s, LW_SQL_TX, "redact ended sessions", redact_body, &x);
    if (rc == LW_OK && n != NULL)
        *n = x.changed;
    return rc;
}

int lw_sql_session_delete_ended(lw_store *s, const char *account_id, const char *device_id, long *deleted)
{
    if (account_id == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, account_id, LW_SQL_KEY_MAX);
    if (device_id != NULL)
        lw_sqlp_key(&p, device_id, LW_SQL_KEY_MAX);
    long n = 0;
    int rc = lw_sqls_write(s, "delete ended sessions", device_id != NULL ? &st_delete_one : &st_delete_all,
                           &p, &n);
    if (rc != LW_OK)
        return rc;
    if (device_id != NULL && n == 0)
        return LW_ENOTFOUND;
    if (deleted != NULL)
        *deleted = n;
    return LW_OK;
}
