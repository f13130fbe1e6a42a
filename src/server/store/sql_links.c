/*
 * sql_links.c — link requests, once for both engines (sql.h).
 */
#include <stdio.h>
#include <string.h>

#include "sql.h"

static const lw_sqlstmt st_insert = {
    LW_SQL_LINK_INSERT,
    "INSERT INTO link_requests (" LW_SQL_LINK_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
    " $9, $10, $11, $12, $13, $14, $15, $16, $17::boolean, $18, $19, $20, $21, $22, $23, $24,"
    " $25, $26, $27, $28)",
    NULL, NULL};
static const lw_sqlstmt st_get = {LW_SQL_LINK_GET,
                                  "SELECT " LW_SQL_LINK_COLS " FROM link_requests WHERE id = $1", NULL, NULL};
static const lw_sqlstmt st_get_by_selector = {
    LW_SQL_LINK_GET_BY_SELECTOR, "SELECT " LW_SQL_LINK_COLS " FROM link_requests WHERE token_selector = $1",
    NULL, NULL};
static const lw_sqlstmt st_get_by_ref = {
    LW_SQL_LINK_GET_BY_REF, "SELECT " LW_SQL_LINK_COLS " FROM link_requests WHERE ref_hash = $1", NULL, NULL};
static const lw_sqlstmt st_get_by_code = {
    LW_SQL_LINK_GET_BY_CODE, "SELECT " LW_SQL_LINK_COLS " FROM link_requests WHERE code_hash = $1", NULL,
    NULL};
static const lw_sqlstmt st_exists = {LW_SQL_LINK_EXISTS, "SELECT 1 FROM link_requests WHERE id = $1", NULL,
                                     NULL};
static const lw_sqlstmt st_set_ref = {
    LW_SQL_LINK_SET_REF,
    "UPDATE link_requests SET ref_hash = $1, ref_index = $2, ref_expires_at = $3"
    " WHERE id = $4 AND state = 'pending'",
    NULL, NULL};
/* The ref and code hashes stay after 'pending', so a second scan is told
 * "already used" rather than "unknown"; purging removes them. */
static const lw_sqlstmt st_transition = {
    LW_SQL_LINK_TRANSITION,
    "UPDATE link_requests SET state = $1, account_id = $2, scanned_by = $3,"
    " account_sig = $4, nonce = $5 WHERE id = $6 AND state = $7",
    NULL, NULL};
/* The row lock makes a second completer of the same request wait, then read
 * 'completed' and lose (PostgreSQL; SQLite's BEGIN IMMEDIATE already
 * serialises writers). */
static const lw_sqlstmt st_lock_state = {
    LW_SQL_LINK_LOCK_STATE, "SELECT state, account_id FROM link_requests WHERE id = $1", NULL,
    "SELECT state, account_id FROM link_requests WHERE id = $1 FOR UPDATE"};
static const lw_sqlstmt st_complete = {LW_SQL_LINK_COMPLETE,
                                       "UPDATE link_requests SET state = 'completed', device_id = $1"
                                       " WHERE id = $2 AND state = 'approved'",
                                       NULL, NULL};
/* A request cannot be acted on after expires_at, so whatever state it is
 * in, it has ended by then: expires_at bounds its end from above. */
static const lw_sqlstmt st_purge = {LW_SQL_LINK_PURGE, "DELETE FROM link_requests WHERE expires_at < $1",
                                    NULL, NULL};
int lw_sql_link_insert(lw_store *s, const lw_link_request *r)
{
    if (r == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    LW_SQLP_KEYF(&p, r->id);
    LW_SQLP_BLOBF(&p, r->token_hash);
    LW_SQLP_KEYF(&p, r->token_selector);
    LW_SQLP_BLOBF(&p, r->public_key);
    lw_sqlp_hash_or_null(&p, r->code_hash);
    lw_sqlp_hash_or_null(&p, r->ref_hash);
    lw_sqlp_i64(&p, r->ref_index);
    lw_sqlp_i64(&p, r->ref_expires_at);
    lw_sqlp_i64(&p, r->created_at);
    lw_sqlp_i64(&p, r->expires_at);
    lw_sqlp_key(&p, r->state[0] != '\0' ? r->state : "pending", sizeof(r->state));
    LW_SQLP_KEYF(&p, r->account_id);
    LW_SQLP_KEYF(&p, r->scanned_by);
    LW_SQLP_BLOBF(&p, r->account_sig);
    LW_SQLP_BLOBF(&p, r->nonce);
    LW_SQLP_KEYF(&p, r->device_id);
    lw_sqlp_bool(&p, r->persistent);
    LW_SQLP_VALF(&p, r->name);
    lw_sql_bind_client_place(&p, &r->client, &r->place);
    return lw_sqls_write(s, "insert link request", &st_insert, &p, NULL);
}

static int get_by_key(lw_store *s, const lw_sqlstmt *st, const char *key, lw_link_request *out)
{
    if (key == NULL || out == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, key, LW_SQL_KEY_MAX);
    return lw_sqls_row(s, "get link request", st, &p, lw_sql_read_link, out);
}

static int get_by_hash(lw_store *s, const lw_sqlstmt *st, const uint8_t h[LW_HASH_LEN], lw_link_request *out)
{
    if (h == NULL || out == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_blob(&p, h, LW_HASH_LEN);
    return lw_sqls_row(s, "get link request by hash", st, &p, lw_sql_read_link, out);
}

int lw_sql_link_get(lw_store *s, const char *id, lw_link_request *out)
{
    return get_by_key(s, &st_get, id, out);
}

int lw_sql_link_get_by_selector(lw_store *s, const char *token_selector, lw_link_request *out)
{
    return get_by_key(s, &st_get_by_selector, token_selector, out);
}

int lw_sql_link_get_by_ref(lw_store *s, const uint8_t ref_hash[LW_HASH_LEN], lw_link_request *out)
{
    return get_by_hash(s, &st_get_by_ref, ref_hash, out);
}

int lw_sql_link_get_by_code(lw_store *s, const uint8_t code_hash[LW_HASH_LEN], lw_link_request *out)
{
    return get_by_hash(s, &st_get_by_code, code_hash, out);
}

static int cas_write(lw_store *s, const char *what, const lw_sqlstmt *st, const lw_sqlparams *p,
                     const char *id)
{
    long n = 0;
    int rc = lw_sqls_write(s, what, st, p, &n);
    if (rc != LW_OK)
        return rc;
    return lw_sqls_cas(s, n, &st_exists, id, what);
}

int lw_sql_link_set_ref(lw_store *s, const char *id, const uint8_t ref_hash[LW_HASH_LEN], int ref_index,
                        int64_t ref_expires_at)
{
    if (id == NULL || ref_hash == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_hash_or_null(&p, ref_hash);
    lw_sqlp_i64(&p, ref_index);
    lw_sqlp_i64(&p, ref_expires_at);
    lw_sqlp_key(&p, id, LW_SQL_KEY_MAX);
    return cas_write(s, "set link ref", &st_set_ref, &p, id);
}

int lw_sql_link_transition(lw_store *s, const lw_link_request *r, const char *from, const char *to)
{
    if (r == NULL || from == NULL || to == NULL)
        return LW_EINVAL;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, to, LW_SQL_KEY_MAX);
    LW_SQLP_KEYF(&p, r->account_id);
    LW_SQLP_KEYF(&p, r->scanned_by);
    LW_SQLP_BLOBF(&p, r->account_sig);
    LW_SQLP_BLOBF(&p, r->nonce);
    LW_SQLP_KEYF(&p, r->id);
    lw_sqlp_key(&p, from, LW_SQL_KEY_MAX);
    return cas_write(s, "link transition", &st_transition, &p, r->id);
}

typedef struct link_state {
    char state[16];
    char account_id[LW_ID_STRLEN];
} link_state;

static void read_link_state(const lw_sqlres *r, void *out)
{
    link_state *ls = out;
    LW_SQL_TEXTF(r, 0, ls->state);
    LW_SQL_TEXTF(r, 1, ls->account_id);
}

static void read_nothing(const lw_sqlres *r, void *out)
{
    (void)r;
    (void)out;
}

typedef struct complete_args {
    const char *request_id;
    const lw_session *sess;
    long max_companions;
    lw_ended *list; /* the sessions replaced (same key); rebuilt on every run */
    size_t count;
} complete_args;

static int complete_body(lw_sqlconn *c, void *arg)
{
    complete_args *x = arg;
    lw_free(x->list);
    x->list = NULL;
    x->count = 0;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, x->request_id, LW_SQL_KEY_MAX);
    link_state ls;
    int rc = lw_sql_row(c, &st_lock_state, &p, false, read_link_state, &ls);
    if (rc != LW_OK)
        return rc;
    if (strcmp(ls.state, "approved") != 0)
        return LW_ECONFLICT;
    /* The request was approved for one account; a session for another would
     * be a device nobody signed for. */
    if (strncmp(ls.account_id, x->sess->account_id, sizeof(ls.account_id)) != 0) {
        fprintf(stderr, "{\"level\":\"error\",\"sub\":\"store\",\"msg\":\"link_complete: session account "
                        "differs from the approved request's\"}\n");
        return LW_EINVAL;
    }
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, ls.account_id, LW_SQL_KEY_MAX);
    if ((rc = lw_sql_row(c, &lw_sql_account_lock, &p, false, read_nothing, NULL)) != LW_OK)
        return rc;
    /* The same key linking again replaces its live session, before the
     * count: the replaced one frees its own slot. */
    if ((rc = lw_sql_session_end_same_key(c, ls.account_id, x->sess, &x->list, &x->count)) != LW_OK)
        return rc;
    long active = 0;
    lw_sql_count_params(&p, ls.account_id, NULL);
    if ((rc = lw_sql_row(c, &lw_sql_session_count_companions, &p, false, lw_sql_read_long, &active)) != LW_OK)
        return rc;
    if (active >= x->max_companions)
        return LW_ELIMIT;
    if ((rc = lw_sql_session_insert(c, x->sess, ls.account_id, LW_ROLE_COMPANION)) != LW_OK)
        return rc;
    lw_sqlp_init(&p);
    LW_SQLP_KEYF(&p, x->sess->id);
    lw_sqlp_key(&p, x->request_id, LW_SQL_KEY_MAX);
    long n = 0;
    if ((rc = lw_sql_write(c, &st_complete, &p, &n)) != LW_OK)
        return rc;
    /* Unreachable while we hold the lock; never commit half. */
    return n == 1 ? LW_OK : LW_ECONFLICT;
}

int lw_sql_link_complete(lw_store *s, const char *request_id, const lw_session *sess, long max_companions,
                         lw_ended **out, size_t *n)
{
    if (request_id == NULL || sess == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    complete_args x = {request_id, sess, max_companions, NULL, 0};
    int rc = lw_sql_drv(s)->run(s, LW_SQL_TX, "complete link request", complete_body, &x);
    if (rc != LW_OK) {
        lw_free(x.list);
        return rc;
    }
    *out = x.list;
    *n = x.count;
    return LW_OK;
}

int lw_sql_link_purge(lw_store *s, int64_t before, long *deleted)
{
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_i64(&p, before);
    long n = 0;
    int rc = lw_sqls_write(s, "purge link requests", &st_purge, &p, &n);
    if (rc == LW_OK && deleted != NULL)
        *deleted = n;
    return rc;
}
