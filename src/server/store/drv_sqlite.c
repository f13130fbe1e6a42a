/*
 * drv_sqlite.c — the SQLite 3 driver of the store's SQL (sql.h); the
 * operations themselves are sql_*.c, shared with PostgreSQL.
 *
 * One connection, owned by the event loop. WAL journal so readers (backups,
 * the CLI's stats through the API) never block the writer; synchronous=NORMAL
 * because in WAL mode it only risks the last transactions on power loss, never
 * corruption. The schema is built by numbered migrations kept below; the
 * database's PRAGMA user_version says how many have been applied.
 *
 * Every statement is prepared the first time it runs and cached in the struct
 * by its LW_SQL_* number; each use binds parameters, steps, then resets and
 * clears the bindings, so no value ever reaches SQL text.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sql.h"

/* How long a statement waits for another connection's lock (a backup, the
 * sqlite3 shell) before giving up with SQLITE_BUSY. */
#define BUSY_TIMEOUT_MS 5000

/* WAL pages after which a commit asks the checkpointer thread for a
 * checkpoint (SQLite's own autocheckpoint default), and after which the
 * loop runs one itself should that thread fall far behind. */
#define CHECKPOINT_PAGES 1000
#define CHECKPOINT_INLINE_PAGES 50000

/* The longest statement text of the shared SQL (sql_*.c). */
#define SQL_TEXT_MAX 4096

/* ---- schema ---------------------------------------------------------------- */

/* Migration k (1-based) is migrations[k - 1]. Never edit one that has shipped:
 * append a new one. IF NOT EXISTS keeps a re-run harmless should user_version
 * ever be reset by hand. */
static const char *const migrations[] = {
    /* 1: the initial schema. */
    "CREATE TABLE IF NOT EXISTS accounts ("
    "  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) > 0),"
    /* NOCASE so "Alice" cannot register next to "alice". */
    "  handle TEXT NOT NULL UNIQUE COLLATE NOCASE CHECK (length(handle) > 0),"
    "  created_at INTEGER NOT NULL,"
    "  pin_hash TEXT NOT NULL DEFAULT '',"
    "  pin_failures INTEGER NOT NULL DEFAULT 0,"
    "  pin_locked_until INTEGER NOT NULL DEFAULT 0,"
    "  inactive_ttl_ms INTEGER NOT NULL"
    ");"
    "CREATE TABLE IF NOT EXISTS invites ("
    "  hash BLOB PRIMARY KEY NOT NULL CHECK (length(hash) = 32),"
    "  expires_at INTEGER NOT NULL,"
    "  used_at INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS sessions ("
    "  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) > 0),"
    "  account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  role TEXT NOT NULL CHECK (role IN ('primary', 'companion')),"
    "  name TEXT NOT NULL DEFAULT '',"
    "  browser TEXT NOT NULL DEFAULT '',"
    "  browser_version TEXT NOT NULL DEFAULT '',"
    "  os TEXT NOT NULL DEFAULT '',"
    "  os_version TEXT NOT NULL DEFAULT '',"
    "  device_model TEXT NOT NULL DEFAULT '',"
    "  ip TEXT NOT NULL DEFAULT '',"
    "  country TEXT NOT NULL DEFAULT '',"
    "  region TEXT NOT NULL DEFAULT '',"
    "  city TEXT NOT NULL DEFAULT '',"
    "  network TEXT NOT NULL DEFAULT '',"
    "  last_ip TEXT NOT NULL DEFAULT '',"
    "  last_country TEXT NOT NULL DEFAULT '',"
    "  last_city TEXT NOT NULL DEFAULT '',"
    "  public_key BLOB NOT NULL CHECK (length(public_key) = 32),"
    "  account_sig BLOB NOT NULL CHECK (length(account_sig) = 64),"
    "  linked_at INTEGER NOT NULL,"
    "  last_active_at INTEGER NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('active', 'ended')),"
    "  ended_at INTEGER NOT NULL DEFAULT 0,"
    "  end_reason TEXT NOT NULL DEFAULT '',"
    "  persistent INTEGER NOT NULL DEFAULT 1,"
    "  cred_selector TEXT NOT NULL,"
    "  cred_hash BLOB NOT NULL CHECK (length(cred_hash) = 32),"
    "  cred_expires_at INTEGER NOT NULL,"
    "  challenge BLOB NOT NULL CHECK (length(challenge) = 32)"
    ");"
    /* Ended sessions keep their last selector, so a credential presented after
     * the end is answered with the reason; only live ones must be unique. */
    "CREATE UNIQUE INDEX IF NOT EXISTS sessions_active_selector"
    "  ON sessions(cred_selector) WHERE state = 'active';"
    "CREATE INDEX IF NOT EXISTS sessions_selector ON sessions(cred_selector);"
    "CREATE INDEX IF NOT EXISTS sessions_account_state ON sessions(account_id, state);"
    "CREATE INDEX IF NOT EXISTS sessions_last_active ON sessions(last_active_at);"
    "CREATE TABLE IF NOT EXISTS link_requests ("
    "  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) > 0),"
    "  token_hash BLOB NOT NULL CHECK (length(token_hash) = 32),"
    "  token_selector TEXT NOT NULL,"
    "  public_key BLOB NOT NULL CHECK (length(public_key) = 32),"
    /* NULL once the request leaves 'pending', so a used code or ref finds
     * nothing and the 40-bit code space is only shared by live requests. */
    "  code_hash BLOB CHECK (code_hash IS NULL OR length(code_hash) = 32),"
    "  ref_hash BLOB CHECK (ref_hash IS NULL OR length(ref_hash) = 32),"
    "  ref_index INTEGER NOT NULL DEFAULT 0,"
    "  ref_expires_at INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('pending','scanned','approved','completed','denied','expired')),"
    "  account_id TEXT NOT NULL DEFAULT '',"
    "  scanned_by TEXT NOT NULL DEFAULT '',"
    "  account_sig BLOB NOT NULL CHECK (length(account_sig) = 64),"
    "  nonce BLOB NOT NULL CHECK (length(nonce) = 32),"
    "  device_id TEXT NOT NULL DEFAULT '',"
    "  persistent INTEGER NOT NULL DEFAULT 1,"
    "  name TEXT NOT NULL DEFAULT '',"
    "  browser TEXT NOT NULL DEFAULT '',"
    "  browser_version TEXT NOT NULL DEFAULT '',"
    "  os TEXT NOT NULL DEFAULT '',"
    "  os_version TEXT NOT NULL DEFAULT '',"
    "  device_model TEXT NOT NULL DEFAULT '',"
    "  ip TEXT NOT NULL DEFAULT '',"
    "  country TEXT NOT NULL DEFAULT '',"
    "  region TEXT NOT NULL DEFAULT '',"
    "  city TEXT NOT NULL DEFAULT '',"
    "  network TEXT NOT NULL DEFAULT ''"
    ");"
    "CREATE UNIQUE INDEX IF NOT EXISTS link_requests_selector ON link_requests(token_selector);"
    "CREATE UNIQUE INDEX IF NOT EXISTS link_requests_ref ON link_requests(ref_hash);"
    "CREATE UNIQUE INDEX IF NOT EXISTS link_requests_code ON link_requests(code_hash);"
    "CREATE INDEX IF NOT EXISTS link_requests_expires ON link_requests(expires_at);"
    "CREATE TABLE IF NOT EXISTS alerts ("
    "  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) > 0),"
    "  account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL,"
    "  device_id TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL,"
    "  acked_at INTEGER NOT NULL DEFAULT 0,"
    "  details TEXT NOT NULL DEFAULT '{}'"
    ");"
    "CREATE INDEX IF NOT EXISTS alerts_account_created ON alerts(account_id, created_at);"
    /* The retention purge deletes by age across all accounts. */
    "CREATE INDEX IF NOT EXISTS alerts_created ON alerts(created_at);",
    /* 2: places with coordinates (GeoIP), for distances and impossible travel;
     * "secure my account". */
    "ALTER TABLE sessions ADD COLUMN lat REAL NOT NULL DEFAULT 0;"
    "ALTER TABLE sessions ADD COLUMN lon REAL NOT NULL DEFAULT 0;"
    "ALTER TABLE sessions ADD COLUMN has_loc INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE sessions ADD COLUMN last_lat REAL NOT NULL DEFAULT 0;"
    "ALTER TABLE sessions ADD COLUMN last_lon REAL NOT NULL DEFAULT 0;"
    "ALTER TABLE sessions ADD COLUMN last_has_loc INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE accounts ADD COLUMN pin_change_required INTEGER NOT NULL DEFAULT 0;",
    /* 3: indexes that let the sweeper look only at what may be due, not at
     * every session (4 s on the event loop at a million sessions). */
    "CREATE INDEX IF NOT EXISTS accounts_inactive_ttl ON accounts(inactive_ttl_ms);"
    "CREATE INDEX IF NOT EXISTS sessions_ended_at ON sessions(ended_at) WHERE state = 'ended';"
    "CREATE INDEX IF NOT EXISTS sessions_role_last_active ON sessions(role, last_active_at);",
    /* 4: handle-bound invites ('' = any handle), so an invitee never needs
     * to learn whether some other handle is taken. */
    "ALTER TABLE invites ADD COLUMN handle TEXT NOT NULL DEFAULT '';",
    /* 5: an account's sessions by state and role (in place of by state
     * alone, so a session insert updates no more indexes than before):
     * counting its live companions (twice per link) reads only index
     * entries, and finding its primary (the risk rules, at every link step)
     * reads one row. */
    "CREATE INDEX IF NOT EXISTS sessions_account_state_role ON sessions(account_id, state, role);"
    "DROP INDEX IF EXISTS sessions_account_state;",
    /* 6: the whole last-seen place (region and network were the first-seen
     * ones, shown next to the last country: wrong after a move); which ended
     * records privacy has redacted; how the holder answered an alert. */
    "ALTER TABLE sessions ADD COLUMN last_region TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE sessions ADD COLUMN last_network TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE sessions ADD COLUMN redacted INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE alerts ADD COLUMN answer TEXT NOT NULL DEFAULT '';"
    /* Never used since it was linked: last seen where it was first seen. */
    "UPDATE sessions SET last_ip = ip, last_country = country, last_region = region, last_city = city,"
    "  last_lat = lat, last_lon = lon, last_has_loc = has_loc WHERE last_ip = '' AND ip <> '';"
    /* Last used where it was linked: same region and network. Elsewhere they
     * stay empty: unknown, not the first-seen ones. */
    "UPDATE sessions SET last_region = region, last_network = network WHERE last_ip = ip AND ip <> '';"
    "CREATE INDEX IF NOT EXISTS sessions_unredacted ON sessions(id) WHERE state = 'ended' AND redacted = 0;"
    "CREATE INDEX IF NOT EXISTS alerts_device ON alerts(device_id) WHERE device_id <> '';",
    /* 7: what the server keeps about itself (the fingerprint of the key its
     * hashes and signatures depend on; when it last proved it can write). */
    "CREATE TABLE IF NOT EXISTS settings ("
    "  name TEXT PRIMARY KEY NOT NULL CHECK (length(name) > 0),"
    "  value TEXT NOT NULL"
    ") WITHOUT ROWID;",
    /* 8: which device answered an alert (only the primary may). */
    "ALTER TABLE alerts ADD COLUMN answered_by TEXT NOT NULL DEFAULT '';",
    /* 9: a burst of one kind about one device is one alert with a count. */
    "ALTER TABLE alerts ADD COLUMN burst_count INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE alerts ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;"
    "UPDATE alerts SET updated_at = created_at;",
    /* 10: Web Push subscriptions of primaries (store.h lw_push_sub). A
     * session that ends takes its subscriptions with it, whichever statement
     * ended it (logout, sweep, a new primary): the trigger is the one place. */
    "CREATE TABLE IF NOT EXISTS push_subscriptions ("
    "  device_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
    "  account_id TEXT NOT NULL,"
    "  endpoint TEXT NOT NULL CHECK (length(endpoint) > 0),"
    "  p256dh BLOB NOT NULL CHECK (length(p256dh) = 65),"
    "  auth BLOB NOT NULL CHECK (length(auth) = 16),"
    "  created_at INTEGER NOT NULL,"
    "  failures INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (device_id, endpoint)"
    ");"
    "CREATE INDEX IF NOT EXISTS push_subscriptions_account ON push_subscriptions(account_id);"
    "CREATE TRIGGER IF NOT EXISTS push_subscriptions_session_ended AFTER UPDATE OF state ON sessions"
    "  WHEN NEW.state <> 'active' BEGIN DELETE FROM push_subscriptions WHERE device_id = NEW.id; END;",
    /* 11: what verifies the account's recovery key ("I lost my phone"):
     * hex of a keyed hash, '' when the account has none; */
    "ALTER TABLE accounts ADD COLUMN recovery_hash TEXT NOT NULL DEFAULT '';"
    /* and the requests of "Move to a new phone" (pending -> approved -> claimed). */
    "CREATE TABLE IF NOT EXISTS transfers ("
    "  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) > 0),"
    "  token_hash BLOB NOT NULL CHECK (length(token_hash) = 32),"
    "  code_hash BLOB NOT NULL CHECK (length(code_hash) = 32),"
    "  public_key BLOB NOT NULL CHECK (length(public_key) = 32),"
    "  state TEXT NOT NULL,"
    "  account_id TEXT NOT NULL DEFAULT '',"
    "  device_id TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE UNIQUE INDEX IF NOT EXISTS transfers_code ON transfers(code_hash);"
    "CREATE INDEX IF NOT EXISTS transfers_expires ON transfers(expires_at);",
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* ---- the connection ------------------------------------------------------ */

typedef struct sqlite_store {
    lw_sqlstore base; /* first: the wrappers cast lw_store * to this */
    lw_sqlconn conn;  /* the one connection every operation runs on */
    sqlite3 *db;
    /* Prepared the first time they run, kept until close. */
    sqlite3_stmt *st[LW_SQL_COUNT];
    sqlite3_stmt *begin, *commit, *rollback, *user_version_st, *data_version_st;
    /* Checkpoints run on a thread of their own, on a connection of its own:
     * copying WAL pages into the database and syncing both (fdatasync) was
     * a tenth of the event loop's time under a link load. */
    sqlite3 *ck_db;
    pthread_t ck_thread;
    pthread_mutex_t ck_mu;
    pthread_cond_t ck_cv;
    bool ck_running, ck_pending, ck_stop;
    /* The database file, for connections of other threads (the backup);
     * "" when in memory. Set at open, read-only afterwards. */
    char file[4096];
    /* PRAGMA data_version as last read (sq_changed_elsewhere). */
    int data_version;
    bool data_version_known;
} sqlite_store;

/* ---- logging --------------------------------------------------------------- */

/* The one place errors leave this file: a JSON line on stderr with SQLite's
 * own message (which names tables and constraints, never values). Written
 * with a single fwrite so concurrent loggers do not interleave. */
static void log_error(sqlite3 *db, const char *msg)
{
    static const char head[] = "{\"level\":\"error\",\"sub\":\"store\",\"msg\":\"";
    static const char mid[] = "\",\"sqlite\":\"";
    static const char tail[] = "\"}\n";
    char line[1024];
    /* Room for the tail is held back from every append. */
    const size_t room = sizeof(line) - (sizeof(tail) - 1);
    size_t len = sizeof(head) - 1;
    memcpy(line, head, len);
    lw_sql_json_append(line, room, &len, msg);
    if (db != NULL && len + sizeof(mid) - 1 < room) {
        memcpy(line + len, mid, sizeof(mid) - 1);
        len += sizeof(mid) - 1;
        lw_sql_json_append(line, room, &len, sqlite3_errmsg(db));
    }
    memcpy(line + len, tail, sizeof(tail) - 1);
    len += sizeof(tail) - 1;
    if (fwrite(line, 1, len, stderr) != len)
        return; /* nowhere left to report it */
}

/* The results that mean the disk or the file refuses (full, read-only,
 * failing, gone, or held by another process past BUSY_TIMEOUT_MS) rather
 * than a fault in what was asked. */
static bool unavailable_class(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_BUSY:
    case SQLITE_PERM:
        return true;
    default:
        return false;
    }
}

/* Maps a failed SQLite result to an LW_E* code. Expected outcomes (a unique
 * key taken, a missing parent row) are the caller's business and are not
 * logged; anything else is, once, here. */
static int fail_rc(sqlite_store *s, int rc, const char *what)
{
    char msg[128];
    int len = snprintf(msg, sizeof(msg), "%s failed", what);
    if (len < 0 || (size_t)len >= sizeof(msg))
        msg[0] = '\0'; /* cannot happen with this file's labels; log without one */
    what = msg;
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
            return LW_ECONFLICT;
        if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
            return LW_ENOTFOUND;
        log_error(s->db, what);
        return LW_EINVAL;
    case SQLITE_NOMEM:
        log_error(s->db, what);
        return LW_ENOMEM;
    case SQLITE_TOOBIG:
        log_error(s->db, what);
        return LW_ETOOBIG;
    default:
        log_error(s->db, what);
        /* The statement changed nothing and its transaction is rolled back
         * by the caller, so when the disk or the file refused, the caller
         * may say "unavailable, retry" instead of "failed". */
        return unavailable_class(rc) ? LW_EUNAVAIL : LW_ESTORE;
    }
}

/* ---- text and blob helpers ------------------------------------------------- */

/* Copies a text column into a fixed array, bounded and NUL-terminated. */
static void col_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const char *t = (const char *)sqlite3_column_text(st, col);
    size_t len = (size_t)sqlite3_column_bytes(st, col);
    size_t n = t == NULL ? 0 : lw_sql_utf8_bound(t, len, cap - 1);
    if (n > 0)
        memcpy(dst, t, n);
    dst[n] = '\0';
}

/* Copies a blob column of exactly n bytes; anything else (NULL) reads as zeros. */
static void col_blob(void *dst, size_t n, sqlite3_stmt *st, int col)
{
    const void *b = sqlite3_column_blob(st, col);
    if (b != NULL && (size_t)sqlite3_column_bytes(st, col) == n)
        memcpy(dst, b, n);
    else
        memset(dst, 0, n);
}

#define COL_TEXT(dst, st, col) col_text((dst), sizeof(dst), (st), (col))
#define COL_BLOB(dst, st, col) col_blob((dst), sizeof(dst), (st), (col))
/* ---- the driver ------------------------------------------------------------ */

/* The shared SQL is written with PostgreSQL's $n (sql.h): ?n here, and a
 * cast right after a parameter ($1::bigint) is dropped, since SQLite types
 * values, not parameters. out has room for strlen(sql) + 1 bytes: the text
 * only gets shorter. */
static void rewrite_sql(const char *sql, char *out)
{
    const char *p = sql;
    char *o = out;
    while (*p != '\0') {
        if (p[0] == '$' && p[1] >= '0' && p[1] <= '9') {
            *o++ = '?';
            p++;
            while (*p >= '0' && *p <= '9')
                *o++ = *p++;
            if (p[0] == ':' && p[1] == ':') {
                p += 2;
                while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')
                    p++;
            }
            continue;
        }
        *o++ = *p++;
    }
    *o = '\0';
}

/* COLLATE "C" of the shared SQL: byte order, as BINARY compares. */
static int collate_c(void *arg, int la, const void *a, int lb, const void *b)
{
    (void)arg;
    int n = memcmp(a, b, (size_t)(la < lb ? la : lb));
    return n != 0 ? n : la - lb;
}

static sqlite3_stmt *stmt_of(sqlite_store *s, const lw_sqlstmt *st)
{
    if (st->id < 0 || st->id >= LW_SQL_COUNT)
        return NULL;
    if (s->st[st->id] != NULL)
        return s->st[st->id];
    const char *sql = st->sqlite != NULL ? st->sqlite : st->sql;
    char text[SQL_TEXT_MAX]; /* on the stack: a failing allocator must not make a statement fail */
    if (strlen(sql) >= sizeof text) {
        log_error(NULL, "a statement is longer than SQL_TEXT_MAX");
        return NULL;
    }
    rewrite_sql(sql, text);
    if (sqlite3_prepare_v3(s->db, text, -1, SQLITE_PREPARE_PERSISTENT, &s->st[st->id], NULL) != SQLITE_OK) {
        log_error(s->db, "preparing a statement failed");
        s->st[st->id] = NULL;
    }
    return s->st[st->id];
}

static void st_reset(sqlite3_stmt *st)
{
    /* Both only report the error of the last step, already handled by the caller. */
    (void)sqlite3_reset(st);
    (void)sqlite3_clear_bindings(st);
}

/* Strings and blobs are bound SQLITE_STATIC: the caller's memory outlives
 * the statement, which is reset before the operation returns. */
static int bind_all(sqlite3_stmt *st, const lw_sqlparams *p)
{
    int rc = SQLITE_OK;
    for (int k = 0; k < p->n && rc == SQLITE_OK; k++) {
        const lw_sqlparam *v = &p->v[k];
        switch (v->type) {
        case LW_SQLP_TEXT:
            rc = sqlite3_bind_text(st, k + 1, v->p, (int)v->len, SQLITE_STATIC);
            break;
        case LW_SQLP_BLOB:
            rc = sqlite3_bind_blob(st, k + 1, v->p, (int)v->len, SQLITE_STATIC);
            break;
        case LW_SQLP_I64:
        case LW_SQLP_BOOL:
            rc = sqlite3_bind_int64(st, k + 1, v->i);
            break;
        case LW_SQLP_F64:
            rc = sqlite3_bind_double(st, k + 1, v->f);
            break;
        default:
            rc = sqlite3_bind_null(st, k + 1);
            break;
        }
    }
    return rc;
}

static int sq_exec(lw_sqlconn *c, const lw_sqlstmt *st, const lw_sqlparams *p, bool write, lw_sqlres *res)
{
    (void)write;
    sqlite_store *s = (sqlite_store *)((char *)c - offsetof(sqlite_store, conn));
    memset(res, 0, sizeof(*res));
    res->c = c;
    res->row = -1;
    if (p->overflow) {
        log_error(NULL, "too many parameters");
        return LW_ETOOBIG;
    }
    sqlite3_stmt *h = stmt_of(s, st);
    if (h == NULL)
        return LW_ESTORE;
    int src = bind_all(h, p);
    if (src == SQLITE_OK)
        src = sqlite3_step(h);
    if (src != SQLITE_ROW && src != SQLITE_DONE) {
        int rc = fail_rc(s, src, c->what);
        st_reset(h);
        return rc;
    }
    res->h = h;
    res->first = src;
    res->changes = (long)sqlite3_changes(s->db);
    return LW_OK;
}

static int sq_next(lw_sqlres *r)
{
    int src;
    if (r->row++ < 0)
        src = r->first;
    else
        src = sqlite3_step(r->h);
    if (src == SQLITE_ROW)
        return 1;
    if (src == SQLITE_DONE)
        return 0;
    return fail_rc((sqlite_store *)((char *)r->c - offsetof(sqlite_store, conn)), src, r->c->what);
}

static void sq_done(lw_sqlres *r)
{
    if (r->h != NULL)
        st_reset(r->h);
    r->h = NULL;
}

static int64_t sq_col_i64(const lw_sqlres *r, int col)
{
    return sqlite3_column_int64(r->h, col);
}

static double sq_col_f64(const lw_sqlres *r, int col)
{
    return sqlite3_column_double(r->h, col);
}

static size_t sq_col_text(const lw_sqlres *r, int col, char *dst, size_t cap)
{
    col_text(dst, cap, r->h, col);
    return (size_t)sqlite3_column_bytes(r->h, col);
}

static void sq_col_blob(const lw_sqlres *r, int col, void *dst, size_t n)
{
    col_blob(dst, n, r->h, col);
}

/* Runs one of the connection's own statements (BEGIN, COMMIT, ROLLBACK). */
static int step_own(sqlite_store *s, sqlite3_stmt *st, const char *what)
{
    int src = sqlite3_step(st);
    int rc = (src == SQLITE_DONE || src == SQLITE_ROW) ? LW_OK : fail_rc(s, src, what);
    st_reset(st);
    return rc;
}

/* Safe to call whether or not a transaction is open (SQLite rolls some back
 * by itself on errors). */
static void tx_rollback(sqlite_store *s)
{
    if (sqlite3_get_autocommit(s->db))
        return;
    int rc = sqlite3_step(s->rollback);
    if (rc != SQLITE_DONE)
        log_error(s->db, "rollback failed");
    st_reset(s->rollback);
}

/* One connection, one operation at a time: no retries here. BEGIN IMMEDIATE
 * takes the write lock up front (waiting up to BUSY_TIMEOUT_MS for another
 * process), so a transaction that read a row cannot lose a race before it
 * writes, and a body runs exactly once. */
static int sq_run(lw_store *base, unsigned flags, const char *what, lw_sqlbody body, void *arg)
{
    sqlite_store *s = (sqlite_store *)base;
    s->conn.what = what;
    if (!(flags & LW_SQL_TX))
        return body(&s->conn, arg);
    int rc = step_own(s, s->begin, "begin transaction");
    if (rc != LW_OK)
        return rc;
    if ((rc = body(&s->conn, arg)) == LW_OK && (rc = step_own(s, s->commit, "commit")) == LW_OK)
        return LW_OK;
    tx_rollback(s);
    return rc;
}

static const lw_sqldrv sqlite_driver = {
    .name = "sqlite",
    .run = sq_run,
    .exec = sq_exec,
    .next = sq_next,
    .done = sq_done,
    .col_i64 = sq_col_i64,
    .col_f64 = sq_col_f64,
    .col_text = sq_col_text,
    .col_blob = sq_col_blob,
};

/* A pragma that reads one number, through a statement prepared at open. */
static int pragma_int(sqlite_store *s, sqlite3_stmt *st, const char *what, int *out)
{
    int src = sqlite3_step(st);
    int rc = LW_OK;
    if (src == SQLITE_ROW)
        *out = sqlite3_column_int(st, 0);
    else
        rc = fail_rc(s, src == SQLITE_DONE ? SQLITE_ERROR : src, what);
    st_reset(st);
    return rc;
}

/* ---- backup ---------------------------------------------------------------- */

/* Online backup through SQLite's backup API: a consistent snapshot even while
 * the server keeps writing. The target must not exist; it is created 0600
 * (it holds credential hashes) and removed again if the copy fails.
 *
 * It runs on a thread of the caller's choosing (the control socket's backup
 * thread), so it never touches s->db: it reads the file through a connection
 * of its own, inside one read transaction held from the first page to the
 * last. In WAL mode that pins one snapshot: the loop's commits meanwhile go
 * to the log, neither restart the copy (as they would between unlocked
 * steps) nor appear half in it, and the copy holds every transaction
 * committed before it began. Pages are copied BACKUP_STEP_PAGES at a time so
 * a failure is noticed early and no single call holds SQLite's locks long. */
#define BACKUP_STEP_PAGES 256
#define BACKUP_BUSY_TRIES 50

static int sq_backup(lw_store *base, const char *path)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite3 *src = NULL, *dst = NULL;
    sqlite3_backup *bk = NULL;
    bool created = false, reading = false;
    int rc = LW_ESTORE;
    if (path == NULL || path[0] == '\0')
        return LW_EINVAL;
    if (s->file[0] == '\0') {
        log_error(NULL, "backup: this store has no file to copy (in memory)");
        return LW_EINVAL;
    }

    /* O_EXCL: refusing an existing file and creating ours is one atomic step. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST) {
            log_error(NULL, "backup target already exists; refusing to overwrite it");
            return LW_EINVAL;
        }
        log_error(NULL, "cannot create the backup file");
        return LW_EIO;
    }
    created = true;
    if (close(fd) != 0) {
        log_error(NULL, "cannot create the backup file");
        rc = LW_EIO;
        goto fail;
    }
    if (sqlite3_open_v2(s->file, &src, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(src, BUSY_TIMEOUT_MS) != SQLITE_OK) {
        log_error(src, "backup: cannot open the database for reading");
        goto fail;
    }
    /* BEGIN is deferred: the SELECT is what takes the snapshot. */
    if (sqlite3_exec(src, "BEGIN; SELECT count(*) FROM sqlite_master;", NULL, NULL, NULL) != SQLITE_OK) {
        log_error(src, "backup: cannot start the read transaction");
        goto fail;
    }
    reading = true;
    if (sqlite3_open_v2(path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        log_error(dst, "backup: cannot open the target");
        goto fail;
    }
    bk = sqlite3_backup_init(dst, "main", src, "main");
    if (bk == NULL) {
        log_error(dst, "backup: init failed");
        goto fail;
    }
    /* The snapshot is fixed, so the page count is too: the loop ends after
     * pages / BACKUP_STEP_PAGES steps, plus the bounded retries of a busy
     * target (only another process opening our new file could cause one). */
    int step, tries = 0;
    long steps = 0;
    while ((step = sqlite3_backup_step(bk, BACKUP_STEP_PAGES)) != SQLITE_DONE) {
        if (step == SQLITE_BUSY || step == SQLITE_LOCKED) {
            if (++tries > BACKUP_BUSY_TRIES) {
                log_error(dst, "backup: the target stayed busy");
                goto fail;
            }
            sqlite3_sleep(100);
            continue;
        }
        if (step != SQLITE_OK || ++steps > sqlite3_backup_pagecount(bk) / BACKUP_STEP_PAGES + 2) {
            log_error(dst, "backup: copy failed");
            goto fail;
        }
    }
    int fin = sqlite3_backup_finish(bk);
    bk = NULL;
    if (fin != SQLITE_OK) {
        log_error(dst, "backup: finish failed");
        goto fail;
    }
    if (sqlite3_close(dst) != SQLITE_OK) {
        log_error(dst, "backup: closing the target failed");
        dst = NULL; /* sqlite3_close failed with BUSY: nothing more we can do */
        goto fail;
    }
    (void)sqlite3_exec(src, "COMMIT", NULL, NULL, NULL); /* ends a read: cannot lose anything */
    if (sqlite3_close(src) != SQLITE_OK)
        log_error(src, "backup: closing the reading connection failed");
    return LW_OK;
fail:
    if (bk != NULL)
        (void)sqlite3_backup_finish(bk); /* the failure was already logged */
    if (dst != NULL)
        (void)sqlite3_close(dst);
    if (reading)
        (void)sqlite3_exec(src, "ROLLBACK", NULL, NULL, NULL);
    if (src != NULL)
        (void)sqlite3_close(src);
    if (created && unlink(path) != 0)
        log_error(NULL, "backup: could not remove the partial target");
    return rc;
}

/* ---- open, migrate, close -------------------------------------------------- */

static int read_pragma_int(sqlite3 *db, const char *sql, int *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        goto fail;
    *out = sqlite3_column_int(st, 0);
    rc = sqlite3_finalize(st);
    return rc == SQLITE_OK ? LW_OK : LW_ESTORE;
fail:
    log_error(db, "reading a pragma failed");
    (void)sqlite3_finalize(st);
    return LW_ESTORE;
}

static int exec_sql(sqlite3 *db, const char *sql, const char *what)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK)
        return LW_OK;
    log_error(db, what);
    return LW_ESTORE;
}

static void log_too_new(int found)
{
    char msg[200];
    log_error(NULL, lw_sql_too_new(msg, sizeof msg, found, SCHEMA_VERSION));
}

/* Applies the missing migrations, each in its own transaction together with
 * its user_version bump, so a crash leaves the database at some version k,
 * never between. The version is re-read under the write lock in case another
 * process migrates at the same time. */
static int migrate(sqlite3 *db)
{
    for (;;) {
        int version = 0;
        if (exec_sql(db, "BEGIN IMMEDIATE", "migration: begin failed") != LW_OK)
            return LW_ESTORE;
        if (read_pragma_int(db, "PRAGMA user_version", &version) != LW_OK)
            goto fail;
        if (version > SCHEMA_VERSION || version < 0) {
            log_too_new(version);
            goto fail;
        }
        if (version == SCHEMA_VERSION)
            return exec_sql(db, "COMMIT", "migration: commit failed");

        char bump[64];
        int len = snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", version + 1);
        if (len < 0 || (size_t)len >= sizeof(bump))
            goto fail;
        if (exec_sql(db, migrations[version], "migration failed") != LW_OK)
            goto fail;
        if (exec_sql(db, bump, "migration: version bump failed") != LW_OK)
            goto fail;
        if (exec_sql(db, "COMMIT", "migration: commit failed") != LW_OK)
            goto fail;
    }
fail:
    if (!sqlite3_get_autocommit(db))
        (void)exec_sql(db, "ROLLBACK", "migration: rollback failed");
    return LW_ESTORE;
}

/* ---- checkpoints ----------------------------------------------------------- */

static void *checkpointer(void *arg)
{
    sqlite_store *s = arg;
    pthread_setname_np(pthread_self(), "lw-checkpoint");
    pthread_mutex_lock(&s->ck_mu);
    for (;;) {
        while (!s->ck_pending && !s->ck_stop)
            pthread_cond_wait(&s->ck_cv, &s->ck_mu);
        if (s->ck_stop)
            break;
        s->ck_pending = false;
        pthread_mutex_unlock(&s->ck_mu);
        /* PASSIVE: copies what no reader still needs, never waits for the
         * writer (the loop); what it leaves is taken next time. */
        int rc = sqlite3_wal_checkpoint_v2(s->ck_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
            log_error(s->ck_db, "checkpoint failed");
        pthread_mutex_lock(&s->ck_mu);
    }
    pthread_mutex_unlock(&s->ck_mu);
    return NULL;
}

/* Called by SQLite on the loop after each commit, with the WAL's size. */
static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int pages)
{
    sqlite_store *s = arg;
    if (pages >= CHECKPOINT_INLINE_PAGES) {
        (void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        return SQLITE_OK;
    }
    if (pages >= CHECKPOINT_PAGES) {
        pthread_mutex_lock(&s->ck_mu);
        if (!s->ck_pending) {
            s->ck_pending = true;
            pthread_cond_signal(&s->ck_cv);
        }
        pthread_mutex_unlock(&s->ck_mu);
    }
    return SQLITE_OK;
}

/* Starts the checkpointer; without it SQLite's autocheckpoint stays on. */
static void checkpointer_start(sqlite_store *s, const char *location)
{
    if (sqlite3_open_v2(location, &s->ck_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        log_error(s->ck_db, "cannot open the checkpoint connection; checkpoints stay on the loop");
        (void)sqlite3_close(s->ck_db);
        s->ck_db = NULL;
        return;
    }
    pthread_mutex_init(&s->ck_mu, NULL);
    pthread_cond_init(&s->ck_cv, NULL);
    if (pthread_create(&s->ck_thread, NULL, checkpointer, s) != 0) {
        log_error(NULL, "cannot start the checkpoint thread; checkpoints stay on the loop");
        pthread_mutex_destroy(&s->ck_mu);
        pthread_cond_destroy(&s->ck_cv);
        (void)sqlite3_close(s->ck_db);
        s->ck_db = NULL;
        return;
    }
    s->ck_running = true;
    sqlite3_wal_hook(s->db, on_wal_commit, s); /* replaces the autocheckpoint */
}

static void checkpointer_stop(sqlite_store *s)
{
    if (!s->ck_running)
        return;
    if (s->db != NULL)
        sqlite3_wal_autocheckpoint(s->db, CHECKPOINT_PAGES); /* back to SQLite's own hook */
    pthread_mutex_lock(&s->ck_mu);
    s->ck_stop = true;
    pthread_cond_signal(&s->ck_cv);
    pthread_mutex_unlock(&s->ck_mu);
    pthread_join(s->ck_thread, NULL);
    pthread_mutex_destroy(&s->ck_mu);
    pthread_cond_destroy(&s->ck_cv);
    if (sqlite3_close(s->ck_db) != SQLITE_OK)
        log_error(s->ck_db, "closing the checkpoint connection failed");
    s->ck_db = NULL;
    s->ck_running = false;
}

static void sq_close(lw_store *base)
{
    sqlite_store *s = (sqlite_store *)base;
    if (s == NULL)
        return;
    checkpointer_stop(s); /* first: the last connection to close checkpoints what is left */
    for (int k = 0; k < LW_SQL_COUNT; k++)
        (void)sqlite3_finalize(s->st[k]); /* reports the last step's error only */
    sqlite3_stmt *own[] = {s->begin, s->commit, s->rollback, s->user_version_st, s->data_version_st};
    for (size_t k = 0; k < sizeof own / sizeof own[0]; k++)
        (void)sqlite3_finalize(own[k]);
    if (s->db != NULL && sqlite3_close(s->db) != SQLITE_OK)
        log_error(s->db, "close failed");
    lw_free(s);
}

static int sq_open(lw_store **out, const char *location)
{
    sqlite_store *s = NULL;
    int rc = LW_ESTORE;
    if (out == NULL || location == NULL)
        return LW_EINVAL;

    s = lw_calloc(1, sizeof(*s));
    if (s == NULL) {
        log_error(NULL, "out of memory opening the store");
        return LW_ENOMEM;
    }
    s->base.base.ops = &lw_store_sqlite_ops;
    s->base.drv = &sqlite_driver;
    s->conn.drv = &sqlite_driver;
    /* SQLite counts every allocation under a global mutex unless told not
     * to; nothing here reads those counts. Only possible before SQLite
     * initialises (the first open): later calls fail harmlessly. */
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    /* NOMUTEX: the connection belongs to the event loop thread alone (see
     * the top of this file), so SQLite need not lock it around every call. */
    int src = sqlite3_open_v2(location, &s->db,
                              SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        log_error(s->db, "cannot open the database");
        /* Not allowed to create or write it: unavailable to this process. A
         * folder that does not exist is a wrong location, not that. */
        int e = s->db != NULL ? sqlite3_system_errno(s->db) : 0;
        rc = unavailable_class(src) && e != ENOENT && e != ENOTDIR ? LW_EUNAVAIL : LW_ESTORE;
        goto fail;
    }
    /* Without write access SQLite opens the file read-only and says nothing
     * until the first write fails: refuse at once, so the server does not
     * start and answer only its reads. */
    if (sqlite3_db_readonly(s->db, "main") == 1) {
        log_error(NULL, "the database file is read-only for this process");
        rc = LW_EUNAVAIL;
        goto fail;
    }
    const char *file = sqlite3_db_filename(s->db, "main");
    if (file != NULL && lw_strlcpy(s->file, file, sizeof s->file) != LW_OK)
        s->file[0] = '\0'; /* too long to reopen: backups refuse, nothing else needs it */
    /* Extended codes let fail_rc tell a unique-key conflict from other constraints. */
    if (sqlite3_extended_result_codes(s->db, 1) != SQLITE_OK ||
        sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS) != SQLITE_OK) {
        log_error(s->db, "configuring the connection failed");
        goto fail;
    }

    /* Refuse a newer schema before changing anything in the file. */
    int version = 0;
    if (read_pragma_int(s->db, "PRAGMA user_version", &version) != LW_OK)
        goto fail;
    if (version > SCHEMA_VERSION) {
        log_too_new(version);
        goto fail;
    }

    char mode[16] = "";
    sqlite3_stmt *jm = NULL;
    if ((src = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &jm, NULL)) != SQLITE_OK ||
        (src = sqlite3_step(jm)) != SQLITE_ROW) {
        /* Also where a directory the process cannot write keeps it from
         * creating the -wal file next to the database. */
        log_error(s->db, "setting WAL mode failed");
        (void)sqlite3_finalize(jm);
        rc = unavailable_class(src) ? LW_EUNAVAIL : LW_ESTORE;
        goto fail;
    }
    COL_TEXT(mode, jm, 0);
    (void)sqlite3_finalize(jm); /* stepped to a row already: nothing left to report */
    /* In-memory databases cannot use WAL; any file should. */
    if (strcmp(mode, "wal") != 0 && strcmp(location, ":memory:") != 0)
        log_error(NULL, "the database did not switch to WAL mode");

    if (exec_sql(s->db, "PRAGMA synchronous = NORMAL", "setting synchronous failed") != LW_OK ||
        exec_sql(s->db, "PRAGMA foreign_keys = ON", "enabling foreign keys failed") != LW_OK)
        goto fail;
    int fk = 0;
    if (read_pragma_int(s->db, "PRAGMA foreign_keys", &fk) != LW_OK)
        goto fail;
    if (fk != 1) {
        log_error(NULL, "this SQLite build does not enforce foreign keys");
        goto fail;
    }

    if (migrate(s->db) != LW_OK)
        goto fail;

    struct {
        sqlite3_stmt **st;
        const char *sql;
    } own[] = {{&s->begin, "BEGIN IMMEDIATE"},
               {&s->commit, "COMMIT"},
               {&s->rollback, "ROLLBACK"},
               {&s->user_version_st, "PRAGMA user_version"},
               {&s->data_version_st, "PRAGMA data_version"}};
    for (size_t k = 0; k < sizeof own / sizeof own[0]; k++) {
        if (sqlite3_prepare_v3(s->db, own[k].sql, -1, SQLITE_PREPARE_PERSISTENT, own[k].st, NULL) !=
            SQLITE_OK) {
            log_error(s->db, "preparing a statement failed");
            goto fail;
        }
    }
    if (sqlite3_create_collation_v2(s->db, "C", SQLITE_UTF8, NULL, collate_c, NULL) != SQLITE_OK) {
        log_error(s->db, "registering the collation failed");
        goto fail;
    }
    if (strcmp(mode, "wal") == 0)
        checkpointer_start(s, location);
    *out = &s->base.base;
    return LW_OK;
fail:
    sq_close(&s->base.base);
    return rc;
}

int lw_store_sqlite_schema_version(lw_store *base)
{
    if (base == NULL || base->ops != &lw_store_sqlite_ops)
        return LW_EINVAL;
    sqlite_store *s = (sqlite_store *)base;
    int version = 0;
    int rc = pragma_int(s, s->user_version_st, "read schema version", &version);
    return rc == LW_OK ? version : rc;
}

/* PRAGMA data_version changes only when another connection commits. This
 * process writes through this connection alone (its checkpoint and backup
 * connections commit nothing), so a change means another process wrote. */
static int sq_changed_elsewhere(lw_store *base, bool *changed)
{
    sqlite_store *s = (sqlite_store *)base;
    int version = 0;
    int rc = pragma_int(s, s->data_version_st, "read data version", &version);
    if (rc != LW_OK)
        return rc;
    *changed = s->data_version_known && version != s->data_version;
    s->data_version = version;
    s->data_version_known = true;
    return LW_OK;
}

const lw_store_ops lw_store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    LW_SQL_FAMILY_OPS,
    .backup = sq_backup,
    .changed_elsewhere = sq_changed_elsewhere,
};

int lw_store_sqlite_check_file(const char *path, int *version, char *msg, size_t cap)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = LW_ESTORE;
    *version = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        snprintf(msg, cap, "cannot open it as SQLite: %s", db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        snprintf(msg, cap, "not a SQLite database (%s)", sqlite3_errmsg(db));
        goto out;
    }
    const char *ok = (const char *)sqlite3_column_text(st, 0);
    if (!ok || strcmp(ok, "ok") != 0) {
        snprintf(msg, cap, "integrity check failed: %s", ok ? ok : "?");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        goto out;
    *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (*version < 1 || *version > SCHEMA_VERSION) {
        snprintf(msg, cap, "schema version %d is not one this Linkward knows (1..%d)", *version,
                 SCHEMA_VERSION);
        goto out;
    }
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM accounts, (SELECT 1 FROM sessions LIMIT 1)", -1, &st,
                           NULL) != SQLITE_OK) {
        snprintf(msg, cap, "it lacks Linkward's tables");
        goto out;
    }
    rc = LW_OK;
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}
