/*
 * sql.c — what the SQL families share, over the driver (sql.h): parameters,
 * the row readers (one per record), one-statement operations and the lists
 * of sessions an operation ended.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql.h"

/* One JSON line on stderr; msg is a fixed string of this folder, never data. */
static void log_error(const char *msg)
{
    fprintf(stderr, "{\"level\":\"error\",\"sub\":\"store\",\"msg\":\"%s\"}\n", msg);
}

/* ---- logging (the drivers') ----------------------------------------------- */

/* Appends s to line as JSON string content, stopping quietly when full;
 * trailing newlines (libpq ends its messages with one) are dropped. */
void lw_sql_json_append(char *line, size_t cap, size_t *len, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t end = strlen(s);
    while (end > 0 && (s[end - 1] == '\n' || s[end - 1] == '\r'))
        end--;
    for (size_t k = 0; k < end; k++) {
        unsigned char c = (unsigned char)s[k];
        char esc[7];
        size_t n;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2;
        } else if (c < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        } else {
            esc[0] = (char)c;
            n = 1;
        }
        if (*len + n >= cap)
            return;
        memcpy(line + *len, esc, n);
        *len += n;
    }
}

const char *lw_sql_too_new(char *buf, size_t cap, int found, int known)
{
    int len = snprintf(buf, cap,
                       "database schema version %d is newer than this build knows (%d); "
                       "refusing to open it, upgrade linkward",
                       found, known);
    return len > 0 && (size_t)len < cap ? buf : "database schema is newer than this build knows";
}

/* ---- parameters ------------------------------------------------------------ */

size_t lw_sql_utf8_bound(const char *p, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)p[n] & 0xC0) == 0x80)
        n--;
    return n;
}

void lw_sqlp_init(lw_sqlparams *p)
{
    p->n = 0;
    p->overflow = false;
}

static lw_sqlparam *push(lw_sqlparams *p, lw_sqlp_type type)
{
    if (p->n >= LW_SQL_PARAM_MAX) {
        p->overflow = true;
        return NULL;
    }
    lw_sqlparam *v = &p->v[p->n++];
    memset(v, 0, sizeof(*v));
    v->type = type;
    return v;
}

void lw_sqlp_null(lw_sqlparams *p)
{
    (void)push(p, LW_SQLP_NULL);
}

void lw_sqlp_key(lw_sqlparams *p, const char *v, size_t cap)
{
    if (v == NULL) {
        lw_sqlp_null(p);
        return;
    }
    lw_sqlparam *x = push(p, LW_SQLP_TEXT);
    if (x == NULL)
        return;
    x->p = v;
    x->len = strnlen(v, cap);
    x->cstr = x->len < cap;
}

void lw_sqlp_val(lw_sqlparams *p, const char *v, size_t max)
{
    if (v == NULL) {
        lw_sqlp_null(p);
        return;
    }
    lw_sqlparam *x = push(p, LW_SQLP_TEXT);
    if (x == NULL)
        return;
    x->p = v;
    x->len = lw_sql_utf8_bound(v, strnlen(v, max + 1), max);
    x->cstr = v[x->len] == '\0';
}

void lw_sqlp_blob(lw_sqlparams *p, const void *b, size_t n)
{
    lw_sqlparam *x = push(p, LW_SQLP_BLOB);
    if (x != NULL) {
        x->p = b;
        x->len = n;
    }
}

void lw_sqlp_hash_or_null(lw_sqlparams *p, const uint8_t h[LW_HASH_LEN])
{
    uint8_t acc = 0;
    for (size_t k = 0; k < LW_HASH_LEN; k++)
        acc |= h[k];
    if (acc != 0)
        lw_sqlp_blob(p, h, LW_HASH_LEN);
    else
        lw_sqlp_null(p);
}

void lw_sqlp_i64(lw_sqlparams *p, int64_t v)
{
    lw_sqlparam *x = push(p, LW_SQLP_I64);
    if (x != NULL)
        x->i = v;
}

void lw_sqlp_f64(lw_sqlparams *p, double v)
{
    lw_sqlparam *x = push(p, LW_SQLP_F64);
    if (x != NULL)
        x->f = v;
}

void lw_sqlp_bool(lw_sqlparams *p, bool v)
{
    lw_sqlparam *x = push(p, LW_SQLP_BOOL);
    if (x != NULL)
        x->i = v ? 1 : 0;
}

/* ---- inside a body --------------------------------------------------------- */

int lw_sql_write(lw_sqlconn *c, const lw_sqlstmt *st, const lw_sqlparams *p, long *changes)
{
    lw_sqlres r;
    int rc = c->drv->exec(c, st, p, true, &r);
    if (rc != LW_OK)
        return rc;
    if (changes != NULL)
        *changes = r.changes;
    lw_sql_done(&r);
    return LW_OK;
}

int lw_sql_row(lw_sqlconn *c, const lw_sqlstmt *st, const lw_sqlparams *p, bool write, lw_sqlreader read,
               void *out)
{
    lw_sqlres r;
    int rc = c->drv->exec(c, st, p, write, &r);
    if (rc != LW_OK)
        return rc;
    rc = lw_sql_next(&r);
    if (rc == 1) {
        read(&r, out);
        rc = LW_OK;
    } else if (rc == 0) {
        rc = LW_ENOTFOUND;
    }
    lw_sql_done(&r);
    return rc;
}

int lw_sql_rows(lw_sqlconn *c, const lw_sqlstmt *st, const lw_sqlparams *p, bool write, size_t elem,
                lw_sqlreader read, void **out, size_t *n)
{
    char *arr = NULL;
    size_t count = 0, cap = 0;
    lw_sqlres r;
    int rc = c->drv->exec(c, st, p, write, &r);
    if (rc != LW_OK)
        return rc;
    while ((rc = lw_sql_next(&r)) == 1) {
        if (count == cap) {
            size_t ncap = cap == 0 ? 8 : cap * 2;
            char *grown = ncap <= SIZE_MAX / elem ? lw_realloc(arr, ncap * elem) : NULL;
            if (grown == NULL) {
                log_error("out of memory listing rows");
                rc = LW_ENOMEM;
                break;
            }
            arr = grown;
            cap = ncap;
        }
        read(&r, arr + count * elem);
        count++;
    }
    lw_sql_done(&r);
    if (rc != 0) {
        lw_free(arr);
        return rc;
    }
    *out = arr;
    *n = count;
    return LW_OK;
}

typedef struct ended_row {
    lw_ended e;
    int64_t linked_at;
} ended_row;

static void read_ended(const lw_sqlres *r, void *out)
{
    ended_row *x = out;
    memset(x, 0, sizeof(*x));
    LW_SQL_TEXTF(r, 0, x->e.device_id);
    LW_SQL_TEXTF(r, 1, x->e.account_id);
    x->linked_at = lw_sql_i64(r, 2);
}

/* By account, then when linked, then id: bytes, as SQLite's BINARY and
 * PostgreSQL's COLLATE "C" compare. */
static int ended_cmp(const void *a, const void *b)
{
    const ended_row *x = a, *y = b;
    int c = strcmp(x->e.account_id, y->e.account_id);
    if (c != 0)
        return c;
    if (x->linked_at != y->linked_at)
        return x->linked_at < y->linked_at ? -1 : 1;
    return strcmp(x->e.device_id, y->e.device_id);
}

int lw_sql_ended(lw_sqlconn *c, const lw_sqlstmt *st, const lw_sqlparams *p, bool write, const char *reason,
                 lw_ended **list, size_t *count)
{
    void *found = NULL;
    size_t nfound = 0;
    int rc = lw_sql_rows(c, st, p, write, sizeof(ended_row), read_ended, &found, &nfound);
    if (rc != LW_OK || nfound == 0) {
        lw_free(found);
        return rc;
    }
    ended_row *rows = found;
    qsort(rows, nfound, sizeof(*rows), ended_cmp);
    lw_ended *grown = NULL;
    if (*count <= SIZE_MAX / sizeof(lw_ended) - nfound)
        grown = lw_realloc(*list, (*count + nfound) * sizeof(lw_ended));
    if (grown == NULL) {
        log_error("out of memory listing ended sessions");
        lw_free(rows);
        return LW_ENOMEM;
    }
    /* reason comes from this folder; bounded like the column. */
    size_t rn = lw_sql_utf8_bound(reason, strnlen(reason, LW_REASON_MAX), LW_REASON_MAX - 1);
    for (size_t k = 0; k < nfound; k++) {
        lw_ended *e = &grown[*count + k];
        *e = rows[k].e;
        memcpy(e->reason, reason, rn);
        e->reason[rn] = '\0';
    }
    lw_free(rows);
    *list = grown;
    *count += nfound;
    return LW_OK;
}

/* ---- one statement as an operation ----------------------------------------- */

typedef struct one_call {
    const lw_sqlstmt *st;
    const lw_sqlparams *p;
    lw_sqlreader read; /* NULL: a write */
    size_t elem;       /* rows: the record size; 0: one row */
    void *out;
    void **arr;
    size_t *n;
    long changes;
} one_call;

static int one_body(lw_sqlconn *c, void *arg)
{
    one_call *x = arg;
    if (x->read == NULL)
        return lw_sql_write(c, x->st, x->p, &x->changes);
    if (x->elem == 0)
        return lw_sql_row(c, x->st, x->p, false, x->read, x->out);
    return lw_sql_rows(c, x->st, x->p, false, x->elem, x->read, x->arr, x->n);
}

int lw_sqls_write(lw_store *s, const char *what, const lw_sqlstmt *st, const lw_sqlparams *p, long *changes)
{
    one_call x = {.st = st, .p = p};
    int rc = lw_sql_drv(s)->run(s, 0, what, one_body, &x);
    if (rc == LW_OK && changes != NULL)
        *changes = x.changes;
    return rc;
}

int lw_sqls_row(lw_store *s, const char *what, const lw_sqlstmt *st, const lw_sqlparams *p, lw_sqlreader read,
                void *out)
{
    one_call x = {.st = st, .p = p, .read = read, .out = out};
    return lw_sql_drv(s)->run(s, LW_SQL_READ, what, one_body, &x);
}

int lw_sqls_rows(lw_store *s, const char *what, const lw_sqlstmt *st, const lw_sqlparams *p, size_t elem,
                 lw_sqlreader read, void **out, size_t *n)
{
    void *arr = NULL;
    size_t count = 0;
    one_call x = {.st = st, .p = p, .read = read, .elem = elem, .arr = &arr, .n = &count};
    int rc = lw_sql_drv(s)->run(s, LW_SQL_READ, what, one_body, &x);
    if (rc == LW_OK) {
        *out = arr;
        *n = count;
    }
    return rc;
}

static void read_nothing(const lw_sqlres *r, void *out)
{
    (void)r;
    (void)out;
}

int lw_sqls_cas(lw_store *s, long changes, const lw_sqlstmt *exists, const char *id, const char *what)
{
    if (changes == 1)
        return LW_OK;
    lw_sqlparams p;
    lw_sqlp_init(&p);
    lw_sqlp_key(&p, id, LW_SQL_KEY_MAX);
    int rc = lw_sqls_row(s, what, exists, &p, read_nothing, NULL);
    return rc == LW_OK ? LW_ECONFLICT : rc;
}

/* ---- row readers ----------------------------------------------------------- */

void lw_sql_read_account(const lw_sqlres *r, void *out)
{
    lw_account *a = out;
    memset(a, 0, sizeof(*a));
    LW_SQL_TEXTF(r, 0, a->id);
    LW_SQL_TEXTF(r, 1, a->handle);
    a->created_at = lw_sql_i64(r, 2);
    LW_SQL_TEXTF(r, 3, a->pin_hash);
    a->pin_failures = (int)lw_sql_i64(r, 4);
    a->pin_locked_until = lw_sql_i64(r, 5);
    a->inactive_ttl_ms = lw_sql_i64(r, 6);
    a->pin_change_required = lw_sql_bool(r, 7);
    LW_SQL_TEXTF(r, 8, a->recovery_hash);
}

void lw_sql_bind_client_place(lw_sqlparams *p, const lw_client *c, const lw_place *where)
{
    LW_SQLP_VALF(p, c->browser);
    LW_SQLP_VALF(p, c->browser_version);
    LW_SQLP_VALF(p, c->os);
    LW_SQLP_VALF(p, c->os_version);
    LW_SQLP_VALF(p, c->device_model);
    LW_SQLP_VALF(p, where->ip);
    LW_SQLP_VALF(p, where->country);
    LW_SQLP_VALF(p, where->region);
    LW_SQLP_VALF(p, where->city);
    LW_SQLP_VALF(p, where->network);
}

void lw_sql_read_client_place(const lw_sqlres *r, int col, lw_client *c, lw_place *where)
{
    LW_SQL_TEXTF(r, col, c->browser);
    LW_SQL_TEXTF(r, col + 1, c->browser_version);
    LW_SQL_TEXTF(r, col + 2, c->os);
    LW_SQL_TEXTF(r, col + 3, c->os_version);
    LW_SQL_TEXTF(r, col + 4, c->device_model);
    LW_SQL_TEXTF(r, col + 5, where->ip);
    LW_SQL_TEXTF(r, col + 6, where->country);
    LW_SQL_TEXTF(r, col + 7, where->region);
    LW_SQL_TEXTF(r, col + 8, where->city);
    LW_SQL_TEXTF(r, col + 9, where->network);
}

void lw_sql_read_session(const lw_sqlres *r, void *out)
{
    lw_session *x = out;
    memset(x, 0, sizeof(*x));
    LW_SQL_TEXTF(r, 0, x->id);
    LW_SQL_TEXTF(r, 1, x->account_id);
    LW_SQL_TEXTF(r, 2, x->role);
    LW_SQL_TEXTF(r, 3, x->name);
    lw_sql_read_client_place(r, 4, &x->client, &x->first);
    LW_SQL_TEXTF(r, 14, x->last.ip);
    LW_SQL_TEXTF(r, 15, x->last.country);
    LW_SQL_TEXTF(r, 16, x->last.city);
    LW_SQL_BLOBF(r, 17, x->public_key);
    LW_SQL_BLOBF(r, 18, x->account_sig);
    x->linked_at = lw_sql_i64(r, 19);
    x->last_active_at = lw_sql_i64(r, 20);
    LW_SQL_TEXTF(r, 21, x->state);
    x->ended_at = lw_sql_i64(r, 22);
    LW_SQL_TEXTF(r, 23, x->end_reason);
    x->persistent = lw_sql_bool(r, 24);
    LW_SQL_TEXTF(r, 25, x->cred_selector);
    LW_SQL_BLOBF(r, 26, x->cred_hash);
    x->cred_expires_at = lw_sql_i64(r, 27);
    LW_SQL_BLOBF(r, 28, x->challenge);
    x->first.lat = lw_sql_f64(r, 29);
    x->first.lon = lw_sql_f64(r, 30);
    x->first.has_loc = lw_sql_bool(r, 31);
    x->last.lat = lw_sql_f64(r, 32);
    x->last.lon = lw_sql_f64(r, 33);
    x->last.has_loc = lw_sql_bool(r, 34);
    LW_SQL_TEXTF(r, 35, x->last.region);
    LW_SQL_TEXTF(r, 36, x->last.network);
}

void lw_sql_read_link(const lw_sqlres *r, void *out)
{
    lw_link_request *q = out;
    memset(q, 0, sizeof(*q));
    LW_SQL_TEXTF(r, 0, q->id);
    LW_SQL_BLOBF(r, 1, q->token_hash);
    LW_SQL_TEXTF(r, 2, q->token_selector);
    LW_SQL_BLOBF(r, 3, q->public_key);
    LW_SQL_BLOBF(r, 4, q->code_hash);
    LW_SQL_BLOBF(r, 5, q->ref_hash);
    q->ref_index = (int)lw_sql_i64(r, 6);
    q->ref_expires_at = lw_sql_i64(r, 7);
    q->created_at = lw_sql_i64(r, 8);
    q->expires_at = lw_sql_i64(r, 9);
    LW_SQL_TEXTF(r, 10, q->state);
    LW_SQL_TEXTF(r, 11, q->account_id);
    LW_SQL_TEXTF(r, 12, q->scanned_by);
    LW_SQL_BLOBF(r, 13, q->account_sig);
    LW_SQL_BLOBF(r, 14, q->nonce);
    LW_SQL_TEXTF(r, 15, q->device_id);
    q->persistent = lw_sql_bool(r, 16);
    LW_SQL_TEXTF(r, 17, q->name);
    lw_sql_read_client_place(r, 18, &q->client, &q->place);
}

void lw_sql_read_alert(const lw_sqlres *r, void *out)
{
    lw_alert *a = out;
    memset(a, 0, sizeof(*a));
    LW_SQL_TEXTF(r, 0, a->id);
    LW_SQL_TEXTF(r, 1, a->account_id);
    LW_SQL_TEXTF(r, 2, a->kind);
    LW_SQL_TEXTF(r, 3, a->device_id);
    a->created_at = lw_sql_i64(r, 4);
    a->acked_at = lw_sql_i64(r, 5);
    LW_SQL_TEXTF(r, 6, a->details);
    LW_SQL_TEXTF(r, 7, a->answer);
    LW_SQL_TEXTF(r, 8, a->answered_by);
    a->count = (int)lw_sql_i64(r, 9);
    a->updated_at = lw_sql_i64(r, 10);
}

void lw_sql_read_long(const lw_sqlres *r, void *out)
{
    *(long *)out = (long)lw_sql_i64(r, 0);
}

void lw_sql_read_int(const lw_sqlres *r, void *out)
{
    *(int *)out = (int)lw_sql_i64(r, 0);
}
