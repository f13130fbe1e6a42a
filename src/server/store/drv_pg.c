/*
 * drv_pg.c — the PostgreSQL driver of the store's SQL (sql.h), on libpq; the
 * operations themselves are sql_*.c, shared with SQLite.
 *
 * Chosen by lw_store_open for "postgres://" and "postgresql://" locations;
 * the location is handed to libpq whole, so every libpq URL parameter works
 * (sslmode, options=-csearch_path%3Dlinkward, application_name, ...).
 *
 * Connections. A small pool (POOL_MAX) opened lazily and guarded by a mutex,
 * one connection per operation in flight (libpq connections are not
 * thread-safe). An API request runs on a fiber (core/fiber.h): its
 * operations run whole (connection, statements, retries) on one of the store
 * worker threads, as many as connections, while the loop serves others; code
 * on the loop's own stack (timers, start-up) runs them inline, and when every
 * connection is busy it waits for a worker to give one back, which never
 * needs the loop.
 * Each connection prepares the shared statements (sql_*.c, their .pg text
 * where they have one) under fixed names the first time it runs them, so a reconnect just prepares them
 * again.
 *
 * Reconnecting. Before an operation is sent, its connection is probed
 * without blocking (read whatever the server sent while it sat idle): a
 * server that restarted, or ran pg_terminate_backend, or a proxy that timed
 * the connection out, has left a FATAL message and an end-of-file there, and
 * the connection is reset before anything of the operation leaves. When the
 * connection fails during an operation, the operation runs once more on a
 * reset connection only if the server cannot have applied it: a read, or a
 * transaction whose COMMIT was not sent yet. A single-statement write or a
 * COMMIT whose answer was lost is reported as LW_ESTORE, never replayed: a
 * compare-and-set replayed after it succeeded would answer LW_ECONFLICT
 * (and, the outcome being unknown, it is not reported as "nothing written").
 * An operation that could not reach the server at all, or lost it before
 * any write was sent, or that the server refused because its disk is full
 * or it is read-only, is reported as LW_EUNAVAIL: nothing happened, and the
 * API answers 503 (retry) instead of 500.
 *
 * Isolation. Single-use consumption never relies on the isolation level:
 *  - transitions are one UPDATE ... WHERE state = $expected whose row count
 *    says who won; PostgreSQL re-checks the WHERE clause of a row another
 *    transaction changed under us (READ COMMITTED), so of two nodes approving
 *    the same request at once exactly one sees a row count of 1;
 *  - read-then-write sequences lock what they read: link_complete takes the
 *    request row and the account row FOR UPDATE before counting companions,
 *    so two completions for one account cannot both pass the device limit;
 *  - "end these sessions and tell me which" is one UPDATE ... RETURNING, so
 *    the list is exactly what this statement ended.
 * Transactions use the server's default level. The code is correct under
 * READ COMMITTED (PostgreSQL, Citus), REPEATABLE READ / snapshot (YugabyteDB
 * by default) and SERIALIZABLE (CockroachDB by default) because every
 * operation is retried as a whole, up to TX_RETRIES times, when the server
 * answers 40001 (serialization failure) or 40P01 (deadlock): such an answer
 * means the transaction was rolled back, so nothing is applied twice.
 *
 * Portability: the SQL stays inside what PostgreSQL-compatible distributed
 * engines (CockroachDB, YugabyteDB, Citus) also accept, which rules out:
 *  - LISTEN/NOTIFY in the store (CockroachDB has none; the cross-node bus
 *    uses it only as an accelerator, outside this file);
 *  - advisory locks (pg_advisory_lock): row locks (SELECT ... FOR UPDATE)
 *    on ordinary rows serialise what needs serialising, migrations included;
 *  - stored procedures, triggers, rules, sequences beyond BIGSERIAL, custom
 *    types, enums and domains: states are TEXT with CHECK constraints;
 *  - server-side time (now(), clock_timestamp()): times come from the caller
 *    as BIGINT milliseconds, so sweeps and tests use one clock;
 *  - session state across statements (temporary tables, SET LOCAL tricks,
 *    cursors), so a statement can run on any pooled connection;
 *  - string-built SQL: every value is a parameter of a prepared statement;
 *  - correlated subqueries (Citus cannot distribute them) and collations on
 *    columns (CockroachDB has none but its default).
 * What is used: BIGINT/INTEGER/BOOLEAN/DOUBLE PRECISION/TEXT/BYTEA, partial
 * and expression unique indexes, UPDATE ... FROM (a table or a grouped
 * derived table), UPDATE ... RETURNING inside a WITH, INSERT ... ON CONFLICT
 * DO NOTHING / DO UPDATE, SELECT ... FOR UPDATE by primary key, GREATEST, and COLLATE "C"
 * in ORDER BY (byte order, as SQLite compares). docs/postgres.md has the
 * engine-by-engine notes.
 *
 * Logging: errors are logged once, where they happen, as JSON lines with the
 * SQLSTATE and the names of the constraint/table involved. The server's
 * message text is logged only for statements that carry no parameters
 * (migrations, BEGIN/COMMIT), because for the others it can quote a value.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fiber.h"
#include "metrics.h"
#include "sql.h"

/* Connections a store opens at most. */
#define POOL_MAX LW_STORE_PG_CONNECTIONS
/* Whole-operation retries after a serialization failure or deadlock. */
#define TX_RETRIES 8
/* The most parameters any statement here takes, and the scratch space for
 * the text of numbers and of values cut to their column's bound. */
#define PARAM_MAX 36
#define ARENA_MAX 4096

/* ---- schema ---------------------------------------------------------------- */

/* Migration k (1-based) is migrations[k - 1], a NULL-terminated list of
 * statements applied in one transaction together with the version bump.
 * Never edit one that has shipped: append a new one. IF NOT EXISTS keeps a
 * re-run harmless on engines whose DDL is not transactional (YugabyteDB).
 *
 * Flags are BOOLEAN, times BIGINT milliseconds, secrets' hashes BYTEA. No
 * column carries a collation (CockroachDB rejects COLLATE in column
 * definitions): text that is ordered is ordered COLLATE "C" in the query. */
static const char *const migration_1[] = {
    "CREATE TABLE IF NOT EXISTS accounts ("
    "  id TEXT PRIMARY KEY CHECK (length(id) > 0),"
    "  handle TEXT NOT NULL CHECK (length(handle) > 0),"
    "  created_at BIGINT NOT NULL,"
    "  pin_hash TEXT NOT NULL DEFAULT '',"
    "  pin_failures INTEGER NOT NULL DEFAULT 0,"
    "  pin_locked_until BIGINT NOT NULL DEFAULT 0,"
    "  inactive_ttl_ms BIGINT NOT NULL,"
    "  pin_change_required BOOLEAN NOT NULL DEFAULT FALSE"
    ")",
    /* Case-insensitive uniqueness, so "Alice" cannot register next to "alice";
     * lookups by handle use the same expression and so this index. ASCII
     * folds as in SQLite's NOCASE; other letters fold as the database's
     * collation says (not at all under the C locale). */
    "CREATE UNIQUE INDEX IF NOT EXISTS accounts_handle_lower ON accounts (lower(handle))",
    "CREATE TABLE IF NOT EXISTS invites ("
    "  hash BYTEA PRIMARY KEY CHECK (octet_length(hash) = 32),"
    "  expires_at BIGINT NOT NULL,"
    "  used_at BIGINT NOT NULL DEFAULT 0"
    ")",
    "CREATE TABLE IF NOT EXISTS sessions ("
    "  id TEXT PRIMARY KEY CHECK (length(id) > 0),"
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
    "  public_key BYTEA NOT NULL CHECK (octet_length(public_key) = 32),"
    "  account_sig BYTEA NOT NULL CHECK (octet_length(account_sig) = 64),"
    "  linked_at BIGINT NOT NULL,"
    "  last_active_at BIGINT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('active', 'ended')),"
    "  ended_at BIGINT NOT NULL DEFAULT 0,"
    "  end_reason TEXT NOT NULL DEFAULT '',"
    "  persistent BOOLEAN NOT NULL DEFAULT TRUE,"
    "  cred_selector TEXT NOT NULL,"
    "  cred_hash BYTEA NOT NULL CHECK (octet_length(cred_hash) = 32),"
    "  cred_expires_at BIGINT NOT NULL,"
    "  challenge BYTEA NOT NULL CHECK (octet_length(challenge) = 32),"
    "  lat DOUBLE PRECISION NOT NULL DEFAULT 0,"
    "  lon DOUBLE PRECISION NOT NULL DEFAULT 0,"
    "  has_loc BOOLEAN NOT NULL DEFAULT FALSE,"
    "  last_lat DOUBLE PRECISION NOT NULL DEFAULT 0,"
    "  last_lon DOUBLE PRECISION NOT NULL DEFAULT 0,"
    "  last_has_loc BOOLEAN NOT NULL DEFAULT FALSE"
    ")",
    /* Ended sessions keep their last selector, so a credential presented after
     * the end is answered with the reason; only live ones must be unique. */
    "CREATE UNIQUE INDEX IF NOT EXISTS sessions_active_selector ON sessions (cred_selector)"
    "  WHERE state = 'active'",
    "CREATE INDEX IF NOT EXISTS sessions_selector ON sessions (cred_selector)",
    "CREATE INDEX IF NOT EXISTS sessions_account_state ON sessions (account_id, state)",
    "CREATE INDEX IF NOT EXISTS sessions_last_active ON sessions (last_active_at)",
    "CREATE TABLE IF NOT EXISTS link_requests ("
    "  id TEXT PRIMARY KEY CHECK (length(id) > 0),"
    "  token_hash BYTEA NOT NULL CHECK (octet_length(token_hash) = 32),"
    "  token_selector TEXT NOT NULL,"
    "  public_key BYTEA NOT NULL CHECK (octet_length(public_key) = 32),"
    /* NULL stands for "none" (all-zero hash in the struct); unique indexes
     * let any number of NULLs through. */
    "  code_hash BYTEA CHECK (code_hash IS NULL OR octet_length(code_hash) = 32),"
    "  ref_hash BYTEA CHECK (ref_hash IS NULL OR octet_length(ref_hash) = 32),"
    "  ref_index INTEGER NOT NULL DEFAULT 0,"
    "  ref_expires_at BIGINT NOT NULL DEFAULT 0,"
    "  created_at BIGINT NOT NULL,"
    "  expires_at BIGINT NOT NULL,"
    "  state TEXT NOT NULL"
    "    CHECK (state IN ('pending', 'scanned', 'approved', 'completed', 'denied', 'expired')),"
    "  account_id TEXT NOT NULL DEFAULT '',"
    "  scanned_by TEXT NOT NULL DEFAULT '',"
    "  account_sig BYTEA NOT NULL CHECK (octet_length(account_sig) = 64),"
    "  nonce BYTEA NOT NULL CHECK (octet_length(nonce) = 32),"
    "  device_id TEXT NOT NULL DEFAULT '',"
    "  persistent BOOLEAN NOT NULL DEFAULT TRUE,"
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
    ")",
    "CREATE UNIQUE INDEX IF NOT EXISTS link_requests_selector ON link_requests (token_selector)",
    "CREATE UNIQUE INDEX IF NOT EXISTS link_requests_ref ON link_requests (ref_hash)",
    "CREATE UNIQUE INDEX IF NOT EXISTS link_requests_code ON link_requests (code_hash)",
    "CREATE INDEX IF NOT EXISTS link_requests_expires ON link_requests (expires_at)",
    /* seq stands in for SQLite's rowid: alerts created in the same millisecond
     * list newest first by insertion order. */
    "CREATE TABLE IF NOT EXISTS alerts ("
    "  id TEXT PRIMARY KEY CHECK (length(id) > 0),"
    "  seq BIGSERIAL NOT NULL,"
    "  account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL,"
    "  device_id TEXT NOT NULL DEFAULT '',"
    "  created_at BIGINT NOT NULL,"
    "  acked_at BIGINT NOT NULL DEFAULT 0,"
    "  details TEXT NOT NULL DEFAULT '{}'"
    ")",
    "CREATE INDEX IF NOT EXISTS alerts_account_created ON alerts (account_id, created_at)",
    /* The retention purge deletes by age across all accounts. */
    "CREATE INDEX IF NOT EXISTS alerts_created ON alerts (created_at)",
    NULL,
};

/* 2: handle-bound invites ('' = any handle). */
static const char *const migration_2[] = {
    "ALTER TABLE invites ADD COLUMN IF NOT EXISTS handle TEXT NOT NULL DEFAULT ''",
    NULL,
};

/* 3: an account's sessions by state and role, in place of by state alone:
 * counting its live companions (twice per link) and finding its primary
 * (the risk rules, at every link step) read only what they need. */
static const char *const migration_3[] = {
    "CREATE INDEX IF NOT EXISTS sessions_account_state_role ON sessions (account_id, state, role)",
    "DROP INDEX IF EXISTS sessions_account_state",
    NULL,
};

/* 4: the whole last-seen place (region and network were the first-seen
 * ones, shown next to the last country: wrong after a move); which ended
 * records privacy has redacted; how the holder answered an alert. */
static const char *const migration_4[] = {
    "ALTER TABLE sessions ADD COLUMN IF NOT EXISTS last_region TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE sessions ADD COLUMN IF NOT EXISTS last_network TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE sessions ADD COLUMN IF NOT EXISTS redacted BOOLEAN NOT NULL DEFAULT FALSE",
    "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS answer TEXT NOT NULL DEFAULT ''",
    /* Never used since it was linked: last seen where it was first seen. */
    "UPDATE sessions SET last_ip = ip, last_country = country, last_region = region, last_city = city,"
    "  last_lat = lat, last_lon = lon, last_has_loc = has_loc WHERE last_ip = '' AND ip <> ''",
    /* Last used where it was linked: same region and network. Elsewhere they
     * stay empty: unknown, not the first-seen ones. */
    "UPDATE sessions SET last_region = region, last_network = network WHERE last_ip = ip AND ip <> ''",
    "CREATE INDEX IF NOT EXISTS sessions_unredacted ON sessions (id) WHERE state = 'ended' AND NOT redacted",
    "CREATE INDEX IF NOT EXISTS alerts_device ON alerts (device_id) WHERE device_id <> ''",
    NULL,
};

/* 5: what the server keeps about itself (the fingerprint of the key its
 * hashes and signatures depend on; when it last proved it can write). */
static const char *const migration_5[] = {
    "CREATE TABLE IF NOT EXISTS settings ("
    "  name TEXT PRIMARY KEY CHECK (length(name) > 0),"
    "  value TEXT NOT NULL"
    ")",
    NULL,
};

/* 6: which device answered an alert (only the primary may). */
static const char *const migration_6[] = {
    "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS answered_by TEXT NOT NULL DEFAULT ''",
    NULL,
};

/* 7: a burst of one kind about one device is one alert with a count. */
static const char *const migration_7[] = {
    "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS burst_count INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS updated_at BIGINT NOT NULL DEFAULT 0",
    "UPDATE alerts SET updated_at = created_at WHERE updated_at = 0",
    NULL,
};

/* 8: Web Push subscriptions of primaries (store.h lw_push_sub). A session
 * that ends takes its subscriptions with it, whichever statement ended it:
 * the trigger is the one place. */
static const char *const migration_8[] = {
    "CREATE TABLE IF NOT EXISTS push_subscriptions ("
    "  device_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
    "  account_id TEXT NOT NULL,"
    "  endpoint TEXT NOT NULL CHECK (length(endpoint) > 0),"
    "  p256dh BYTEA NOT NULL CHECK (length(p256dh) = 65),"
    "  auth BYTEA NOT NULL CHECK (length(auth) = 16),"
    "  created_at BIGINT NOT NULL,"
    "  failures INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (device_id, endpoint)"
    ")",
    "CREATE INDEX IF NOT EXISTS push_subscriptions_account ON push_subscriptions(account_id)",
    "CREATE OR REPLACE FUNCTION push_subscriptions_session_ended() RETURNS trigger LANGUAGE plpgsql AS"
    " $$ BEGIN DELETE FROM push_subscriptions WHERE device_id = NEW.id; RETURN NULL; END $$",
    "CREATE OR REPLACE TRIGGER push_subscriptions_session_ended AFTER UPDATE OF state ON sessions"
    " FOR EACH ROW WHEN (NEW.state <> 'active') EXECUTE FUNCTION push_subscriptions_session_ended()",
    NULL,
};

/* 9: what verifies the account's recovery key ("I lost my phone"): hex of
 * a keyed hash, '' when the account has none; the requests of "Move to a
 * new phone". */
static const char *const migration_9[] = {
    "ALTER TABLE accounts ADD COLUMN IF NOT EXISTS recovery_hash TEXT NOT NULL DEFAULT ''",
    /* and the requests of "Move to a new phone" (pending -> approved -> claimed). */
    "CREATE TABLE IF NOT EXISTS transfers ("
    "  id TEXT PRIMARY KEY CHECK (length(id) > 0),"
    "  token_hash BYTEA NOT NULL CHECK (octet_length(token_hash) = 32),"
    "  code_hash BYTEA NOT NULL CHECK (octet_length(code_hash) = 32),"
    "  public_key BYTEA NOT NULL CHECK (octet_length(public_key) = 32),"
    "  state TEXT NOT NULL,"
    "  account_id TEXT NOT NULL DEFAULT '',"
    "  device_id TEXT NOT NULL DEFAULT '',"
    "  created_at BIGINT NOT NULL,"
    "  expires_at BIGINT NOT NULL"
    ")",
    "CREATE UNIQUE INDEX IF NOT EXISTS transfers_code ON transfers (code_hash)",
    "CREATE INDEX IF NOT EXISTS transfers_expires ON transfers (expires_at)",
    NULL,
};

static const char *const *const migrations[] = {
    migration_1, migration_2, migration_3, migration_4, migration_5,
    migration_6, migration_7, migration_8, migration_9,
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* The table that records how many migrations ran. One row, id 1; created
 * before any migration so that migrators can lock that row. */
static const char sql_version_table[] = "CREATE TABLE IF NOT EXISTS schema_version ("
                                        "  id INTEGER PRIMARY KEY CHECK (id = 1),"
                                        "  version INTEGER NOT NULL"
                                        ")";
static const char sql_version_row[] =
    "INSERT INTO schema_version (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING";
static const char sql_version_exists[] =
    "SELECT count(*) FROM information_schema.tables"
    " WHERE table_schema = current_schema() AND table_name = 'schema_version'";
static const char sql_version_read[] = "SELECT version FROM schema_version WHERE id = 1";
/* The row lock makes concurrent migrators (nodes starting together) take
 * turns; the second one then finds the work done. */
static const char sql_version_lock[] = "SELECT version FROM schema_version WHERE id = 1 FOR UPDATE";
static const char sql_version_bump[] =
    "UPDATE schema_version SET version = $1::integer WHERE id = 1 AND version = $2::integer";

/* ---- types ----------------------------------------------------------------- */

typedef struct pg_conn {
    PGconn *c;                   /* NULL until first needed, or after it broke */
    bool busy;                   /* handed out by pool_acquire */
    bool doomed;                 /* the server said FATAL: it is closing this connection */
    bool prepared[LW_SQL_COUNT]; /* statement k is prepared on this connection */
} pg_conn;

typedef struct pg_store {
    lw_sqlstore base;   /* first: the wrappers cast lw_store * to this */
    char *location;     /* libpq URL; may hold a password, wiped at close */
    pthread_mutex_t mu; /* guards the busy flags */
    pthread_cond_t cv;  /* a connection was released */
    bool sync_ready;    /* mu and cv exist */
    pg_conn pool[POOL_MAX];
} pg_store;

static const lw_sqldrv pg_driver;

/* One operation's view of its connection and of how its last attempt failed. */
typedef struct pg_op {
    lw_sqlconn conn; /* first: the shared SQL sees this */
    pg_store *s;
    pg_conn *pc;
    const char *what; /* label for logs */
    bool in_tx;       /* between BEGIN and COMMIT/ROLLBACK */
    bool lost;        /* the connection failed during this attempt */
    bool retry;       /* serialization failure, deadlock: run it again */
    bool sent_write;  /* a write outside a transaction, or a COMMIT, went out */
} pg_op;

/* ---- logging --------------------------------------------------------------- */

/* Appends fixed text from this file as is. */
static void json_raw(char *line, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (*len + n >= cap)
        return;
    memcpy(line + *len, s, n);
    *len += n;
}

/* Closes the string being written and opens "key":"value"; skipped when
 * value is empty or the key would not fit. */
static void json_field(char *line, size_t cap, size_t *len, const char *key, const char *value)
{
    if (value == NULL || value[0] == '\0' || *len + strlen(key) + 6 >= cap)
        return;
    json_raw(line, cap, len, "\",\"");
    json_raw(line, cap, len, key);
    json_raw(line, cap, len, "\":\"");
    lw_sql_json_append(line, cap, len, value);
}

/* The one place messages leave this file: a JSON line on stderr, written
 * with a single fwrite so concurrent loggers do not interleave. res adds the
 * SQLSTATE and the names of what was involved; the server's message text
 * only when with_text (the statement carried no values). conn adds libpq's
 * own message, which describes the connection, never a parameter. */
static void log_line(const char *level, const char *msg, const PGresult *res, const PGconn *conn,
                     bool with_text)
{
    static const char tail[] = "\"}\n";
    char line[1024];
    const size_t room = sizeof(line) - (sizeof(tail) - 1);
    int head = snprintf(line, sizeof(line),
                        "{\"level\":\"%s\",\"sub\":\"store\",\"backend\":\"postgres\",\"msg\":\"", level);
    if (head < 0 || (size_t)head >= room)
        return;
    size_t len = (size_t)head;
    lw_sql_json_append(line, room, &len, msg);
    if (res != NULL) {
        json_field(line, room, &len, "sqlstate", PQresultErrorField(res, PG_DIAG_SQLSTATE));
        json_field(line, room, &len, "constraint", PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME));
        json_field(line, room, &len, "table", PQresultErrorField(res, PG_DIAG_TABLE_NAME));
        json_field(line, room, &len, "column", PQresultErrorField(res, PG_DIAG_COLUMN_NAME));
        if (with_text)
            json_field(line, room, &len, "pg", PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
    }
    if (conn != NULL && (res == NULL || PQresultErrorField(res, PG_DIAG_SQLSTATE) == NULL)) {
        /* Only the first line: the rest can be the server's CONTEXT and
         * statement excerpts, which are not ours to vouch for. */
        char first[256];
        const char *m = PQerrorMessage(conn);
        size_t n = strcspn(m, "\n");
        if (n >= sizeof(first))
            n = sizeof(first) - 1;
        memcpy(first, m, n);
        first[n] = '\0';
        json_field(line, room, &len, "pg", first);
    }
    memcpy(line + len, tail, sizeof(tail) - 1);
    len += sizeof(tail) - 1;
    if (fwrite(line, 1, len, stderr) != len)
        return; /* nowhere left to report it */
}

static void log_error(const char *msg)
{
    log_line("error", msg, NULL, NULL, false);
}

/* "<what>: <suffix>" into buf, for labels built from this file's strings. */
static const char *label(char *buf, size_t cap, const char *what, const char *suffix)
{
    int n = snprintf(buf, cap, "%s: %s", what, suffix);
    return n > 0 && (size_t)n < cap ? buf : suffix;
}

/* Server messages that arrive outside a query: a FATAL one is the server
 * telling us why it is about to close the connection. Notices and warnings
 * of our own DDL (IF NOT EXISTS skips) are not worth a line. */
static void notice_receiver(void *arg, const PGresult *res)
{
    pg_conn *pc = arg;
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (sev == NULL)
        sev = PQresultErrorField(res, PG_DIAG_SEVERITY);
    if (sev != NULL && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
        pc->doomed = true;
}

/* ---- text helpers ---------------------------------------------------------- */

/* Longest prefix of p[0..len) that fits in max bytes without cutting a UTF-8
 * sequence in two. */
/* ---- parameters ------------------------------------------------------------ */

/* Parameters $1, $2, ... in order. Text goes in text format (NUL-terminated,
 * copied into the arena only when it has to be cut); bytes go in binary
 * format with their length, so BYTEA needs no escaping. The first problem is
 * kept and reported when the statement is run. */
typedef struct params {
    int n;
    bool overflow;
    size_t used;
    const char *v[PARAM_MAX];
    int len[PARAM_MAX];
    int fmt[PARAM_MAX];
    char arena[ARENA_MAX];
} params;

static void p_init(params *p)
{
    p->n = 0;
    p->overflow = false;
    p->used = 0;
}

static void p_push(params *p, const char *v, int len, int fmt)
{
    if (p->n >= PARAM_MAX) {
        p->overflow = true;
        return;
    }
    p->v[p->n] = v;
    p->len[p->n] = len;
    p->fmt[p->n] = fmt;
    p->n++;
}

/* Copies n bytes of v into the arena as a C string. */
static const char *p_copy(params *p, const char *v, size_t n)
{
    if (n + 1 > ARENA_MAX - p->used) {
        p->overflow = true;
        return NULL;
    }
    char *dst = p->arena + p->used;
    memcpy(dst, v, n);
    dst[n] = '\0';
    p->used += n + 1;
    return dst;
}

/* A lookup key (id, selector, handle): sent whole up to cap bytes, never cut
 * to fit a column, so a long input cannot turn into someone else's key.
 * NULL sends SQL NULL. */
/* Text of the shared parameters: sent as is when it ends where the string
 * does, copied into the arena when it was cut. */
static void p_text(params *p, const char *v, size_t n, bool cstr)
{
    p_push(p, cstr ? v : p_copy(p, v, n), 0, 0);
}

static void p_blob(params *p, const void *b, size_t n)
{
    p_push(p, (const char *)b, (int)n, 1);
}

/* Hashes with unique indexes: all zeros means "none" and is stored as NULL. */
static void p_number(params *p, const char *buf, int n, size_t cap)
{
    if (n <= 0 || (size_t)n >= cap) {
        p->overflow = true;
        return;
    }
    p_push(p, p_copy(p, buf, (size_t)n), 0, 0);
}

static void p_i64(params *p, int64_t v)
{
    char buf[24];
    p_number(p, buf, snprintf(buf, sizeof(buf), "%lld", (long long)v), sizeof(buf));
}

/* %.17g round-trips every double exactly. */
static void p_f64(params *p, double v)
{
    char buf[32];
    p_number(p, buf, snprintf(buf, sizeof(buf), "%.17g", v), sizeof(buf));
}

static void p_bool(params *p, bool v)
{
    p_push(p, v ? "true" : "false", 0, 0);
}

/* ---- result cells (binary format) ------------------------------------------ */

static uint64_t be_u64(const unsigned char *b, int n)
{
    uint64_t v = 0;
    for (int k = 0; k < n; k++)
        v = (v << 8) | b[k];
    return v;
}

/* Integers of any width the engine chose (INTEGER is 8 bytes on CockroachDB). */
static int64_t get_i64(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    const unsigned char *b = (const unsigned char *)PQgetvalue(r, row, col);
    switch (PQgetlength(r, row, col)) {
    case 8:
        return (int64_t)be_u64(b, 8);
    case 4:
        return (int32_t)(uint32_t)be_u64(b, 4);
    case 2:
        return (int16_t)(uint16_t)be_u64(b, 2);
    case 1:
        return b[0]; /* a BOOLEAN read as a number */
    default:
        return 0;
    }
}

static double get_f64(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    const unsigned char *b = (const unsigned char *)PQgetvalue(r, row, col);
    int n = PQgetlength(r, row, col);
    if (n == 8) {
        uint64_t bits = be_u64(b, 8);
        double d;
        memcpy(&d, &bits, sizeof(d));
        return d;
    }
    if (n == 4) {
        uint32_t bits = (uint32_t)be_u64(b, 4);
        float f;
        memcpy(&f, &bits, sizeof(f));
        return f;
    }
    return 0;
}

/* Copies a text cell into a fixed array, bounded on a character boundary and
 * NUL-terminated, whatever was written behind the store's back. */
static void get_text(char *dst, size_t cap, const PGresult *r, int row, int col)
{
    size_t n = 0;
    if (!PQgetisnull(r, row, col)) {
        const char *t = PQgetvalue(r, row, col);
        n = lw_sql_utf8_bound(t, (size_t)PQgetlength(r, row, col), cap - 1);
        memcpy(dst, t, n);
    }
    dst[n] = '\0';
}

/* Copies a BYTEA cell of exactly n bytes; anything else (NULL) reads as zeros. */
static void get_blob(void *dst, size_t n, const PGresult *r, int row, int col)
{
    if (!PQgetisnull(r, row, col) && (size_t)PQgetlength(r, row, col) == n)
        memcpy(dst, PQgetvalue(r, row, col), n);
    else
        memset(dst, 0, n);
}

#define GET_TEXT(dst, r, row, col) get_text((dst), sizeof(dst), (r), (row), (col))
#define GET_BLOB(dst, r, row, col) get_blob((dst), sizeof(dst), (r), (row), (col))

/* Rows affected by an INSERT/UPDATE/DELETE. */
static long changes_of(PGresult *r)
{
    return strtol(PQcmdTuples(r), NULL, 10);
}

/* ---- connections and the pool ---------------------------------------------- */

static void conn_forget(pg_conn *pc)
{
    pc->doomed = false;
    memset(pc->prepared, 0, sizeof(pc->prepared));
}

/* Opens the slot's connection. Keywords before "dbname" are defaults the URL
 * may override; client_encoding comes after it because every string this
 * file sends and reads is UTF-8. */
static int conn_open(pg_store *s, pg_conn *pc)
{
    static const char *const keys[] = {
        "connect_timeout",           "keepalives_idle", "keepalives_interval", "keepalives_count",
        "fallback_application_name", "dbname",          "client_encoding",     NULL};
    const char *vals[] = {"10", "30", "10", "3", "linkward", s->location, "UTF8", NULL};
    conn_forget(pc);
    pc->c = PQconnectdbParams(keys, vals, 1);
    if (pc->c == NULL) {
        log_error("out of memory connecting to the database");
        return LW_ENOMEM;
    }
    if (PQstatus(pc->c) != CONNECTION_OK) {
        log_line("error", "cannot connect to the database", NULL, pc->c, false);
        PQfinish(pc->c);
        pc->c = NULL;
        return LW_ESTORE;
    }
    PQsetNoticeReceiver(pc->c, notice_receiver, pc);
    return LW_OK;
}

/* Reads, without blocking, whatever the server sent while the connection sat
 * idle. Twice: the first read may only bring the server's FATAL goodbye
 * (the notice receiver marks the connection doomed), the second its EOF. */
static bool conn_alive(pg_conn *pc)
{
    for (int k = 0; k < 2; k++) {
        if (PQstatus(pc->c) != CONNECTION_OK || pc->doomed)
            return false;
        if (!PQconsumeInput(pc->c))
            return false;
        (void)PQisBusy(pc->c); /* parses what was read, running the notice receiver */
    }
    return PQstatus(pc->c) == CONNECTION_OK && !pc->doomed;
}

/* Makes the operation's connection usable before anything of it is sent:
 * resetting here is always safe. */
static int conn_ready(pg_conn *pc)
{
    if (conn_alive(pc))
        return LW_OK;
    log_line("warn", "the database connection was closed while idle; reconnecting", NULL, NULL, false);
    PQreset(pc->c); /* keeps the notice receiver; prepared statements are gone */
    conn_forget(pc);
    if (PQstatus(pc->c) == CONNECTION_OK)
        return LW_OK;
    log_line("error", "cannot reconnect to the database", NULL, pc->c, false);
    return LW_ESTORE;
}

/* Hands out an idle connection, opening one when every open one is busy and
 * a slot is free, waiting when all POOL_MAX are busy. The connection is
 * opened outside the lock so a slow server does not stall the other slots. */
static int pool_acquire(pg_store *s, pg_conn **out)
{
    pg_conn *pick = NULL;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        for (int k = 0; k < POOL_MAX && pick == NULL; k++)
            if (!s->pool[k].busy && s->pool[k].c != NULL)
                pick = &s->pool[k];
        for (int k = 0; k < POOL_MAX && pick == NULL; k++)
            if (!s->pool[k].busy)
                pick = &s->pool[k];
        if (pick != NULL)
            break;
        pthread_cond_wait(&s->cv, &s->mu);
    }
    pick->busy = true;
    pthread_mutex_unlock(&s->mu);

    int rc = pick->c == NULL ? conn_open(s, pick) : LW_OK;
    if (rc != LW_OK) {
        pthread_mutex_lock(&s->mu);
        pick->busy = false;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    *out = pick;
    return LW_OK;
}

/* A connection comes back idle and healthy, or is closed: a broken one, or
 * one left inside a transaction, is never handed to the next operation. */
static void pool_release(pg_store *s, pg_conn *pc)
{
    if (pc->c != NULL && (PQstatus(pc->c) != CONNECTION_OK || PQtransactionStatus(pc->c) != PQTRANS_IDLE)) {
        PQfinish(pc->c);
        pc->c = NULL;
    }
    pthread_mutex_lock(&s->mu);
    pc->busy = false;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- running statements ---------------------------------------------------- */

static bool sqlstate_is(const char *st, const char *want)
{
    return st != NULL && strcmp(st, want) == 0;
}

static bool sqlstate_class(const char *st, const char *cls)
{
    return st != NULL && strncmp(st, cls, 2) == 0;
}

/* Maps a statement's result to an LW_E* code. Expected outcomes (a unique
 * key taken, a missing parent row) are the caller's business and are not
 * logged; failures that a retry may cure are flagged on op and logged by
 * run_op if it gives up; anything else is logged here, once. */
static int result_rc(pg_op *op, PGresult *res, bool with_text)
{
    ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return LW_OK;
    PGconn *c = op->pc->c;
    const char *code = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char buf[128];
    const char *msg = label(buf, sizeof(buf), op->what, "failed");

    if (PQstatus(c) != CONNECTION_OK || sqlstate_class(code, "08") || sqlstate_is(code, "57P01") ||
        sqlstate_is(code, "57P02") || sqlstate_is(code, "57P03")) {
        op->lost = true;
        return LW_ESTORE;
    }
    if (res == NULL) {
        log_line("error", msg, NULL, c, false);
        return LW_ENOMEM;
    }
    /* A unique key taken; or, for DDL, the object exists already (two nodes
     * creating the same table at once see any of the three). */
    if (sqlstate_is(code, "23505") || sqlstate_is(code, "42P07") || sqlstate_is(code, "42710"))
        return LW_ECONFLICT;
    if (sqlstate_is(code, "23503"))
        return LW_ENOTFOUND;
    if (sqlstate_is(code, "40001") || sqlstate_is(code, "40P01")) {
        op->retry = true;
        return LW_ESTORE;
    }
    if (sqlstate_is(code, "26000")) {
        /* Our prepared statement is gone (DISCARD ALL, a pooler that moved us
         * to another server connection): prepare again and rerun. */
        memset(op->pc->prepared, 0, sizeof(op->pc->prepared));
        op->retry = true;
        return LW_ESTORE;
    }
    log_line("error", msg, res, NULL, with_text);
    /* The server refused to write and rolled the transaction back: its disk
     * is full (53100) or it is read-only (25006: a standby after a failover,
     * or default_transaction_read_only). Nothing was written; retryable. */
    if (sqlstate_is(code, "53100") || sqlstate_is(code, "25006"))
        return LW_EUNAVAIL;
    if (sqlstate_class(code, "23") || sqlstate_class(code, "22"))
        return LW_EINVAL;
    if (sqlstate_class(code, "53"))
        return LW_ENOMEM;
    if (sqlstate_class(code, "54"))
        return LW_ETOOBIG;
    return LW_ESTORE;
}

/* Runs one of this file's SQL strings directly (BEGIN, COMMIT, migrations,
 * the schema_version statements): fixed text, so its errors may be logged
 * with the server's message. On LW_OK *out (if not NULL) owns the result. */
static int op_sql(pg_op *op, const char *sql, const params *p, bool write, PGresult **out)
{
    if (write && !op->in_tx)
        op->sent_write = true;
    PGresult *r = PQexecParams(op->pc->c, sql, p ? p->n : 0, NULL, p ? p->v : NULL, p ? p->len : NULL,
                               p ? p->fmt : NULL, 1);
    int rc = result_rc(op, r, true);
    if (rc != LW_OK || out == NULL)
        PQclear(r);
    else
        *out = r;
    return rc;
}

static void p_i64(params *p, int64_t v);
static void p_f64(params *p, double v);
static void p_bool(params *p, bool v);

/* The shared parameters (sql.h) in libpq's terms: text in text format,
 * bytes in binary format with their length, so BYTEA needs no escaping. */
static void p_from(params *out, const lw_sqlparams *in)
{
    p_init(out);
    if (in->overflow)
        out->overflow = true;
    for (int k = 0; k < in->n; k++) {
        const lw_sqlparam *v = &in->v[k];
        switch (v->type) {
        case LW_SQLP_TEXT:
            p_text(out, v->p, v->len, v->cstr);
            break;
        case LW_SQLP_BLOB:
            p_blob(out, v->p, v->len);
            break;
        case LW_SQLP_I64:
            p_i64(out, v->i);
            break;
        case LW_SQLP_F64:
            p_f64(out, v->f);
            break;
        case LW_SQLP_BOOL:
            p_bool(out, v->i != 0);
            break;
        default:
            p_push(out, NULL, 0, 0);
            break;
        }
    }
}

/* Runs statement st with p, preparing it on this connection first if
 * needed. write says whether it changes rows (for the retry rule). On LW_OK
 * *out owns the result. */
static int op_exec(pg_op *op, const lw_sqlstmt *st, const lw_sqlparams *in, bool write, PGresult **out)
{
    pg_conn *pc = op->pc;
    params p;
    p_from(&p, in);
    if (p.overflow || st->id < 0 || st->id >= LW_SQL_COUNT) {
        char buf[128];
        log_error(label(buf, sizeof(buf), op->what, "too many or too long parameters"));
        return LW_ETOOBIG;
    }
    char name[16];
    (void)snprintf(name, sizeof(name), "lw_%d", st->id);
    if (!pc->prepared[st->id]) {
        PGresult *r = PQprepare(pc->c, name, st->pg != NULL ? st->pg : st->sql, 0, NULL);
        int rc = result_rc(op, r, true); /* the statement text holds no values */
        PQclear(r);
        if (rc != LW_OK)
            return rc;
        pc->prepared[st->id] = true;
    }
    if (write && !op->in_tx)
        op->sent_write = true;
    PGresult *r = PQexecPrepared(pc->c, name, p.n, p.v, p.len, p.fmt, 1);
    int rc = result_rc(op, r, false);
    if (rc != LW_OK)
        PQclear(r);
    else
        *out = r;
    return rc;
}

typedef int (*op_body)(pg_op *op, void *arg);

enum {
    OP_READ = 1, /* changes nothing: always safe to run again */
    OP_TX = 2,   /* run the body between BEGIN and COMMIT */
};

static void tx_rollback(pg_op *op)
{
    PGconn *c = op->pc->c;
    op->in_tx = false;
    if (PQstatus(c) != CONNECTION_OK)
        return; /* the server rolled it back when the connection went */
    PGTransactionStatusType ts = PQtransactionStatus(c);
    if (ts != PQTRANS_INTRANS && ts != PQTRANS_INERROR)
        return;
    PGresult *r = PQexecParams(c, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        log_line("error", "rollback failed", r, c, true);
    PQclear(r);
}

static int tx_run(pg_op *op, op_body body, void *arg)
{
    int rc = op_sql(op, "BEGIN", NULL, false, NULL);
    if (rc != LW_OK)
        return rc;
    op->in_tx = true;
    if ((rc = body(op, arg)) != LW_OK)
        goto fail;
    /* From here on a lost connection leaves the outcome unknown. */
    op->in_tx = false;
    op->sent_write = true;
    if ((rc = op_sql(op, "COMMIT", NULL, true, NULL)) != LW_OK)
        goto fail;
    return LW_OK;
fail:
    tx_rollback(op);
    return rc;
}

/* Before rerun number `attempt` (1-based) after a serialization failure: a
 * rerun at once tends to collide with the same transaction again. 1, 2, 4 ...
 * 32 ms; about 0.13 s over all TX_RETRIES, which the event loop can afford
 * for a case that rare. */
static void backoff(int attempt)
{
    long ms = 1L << (attempt <= 6 ? attempt - 1 : 5);
    struct timespec ts = {0, ms * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ; /* interrupted by a signal: sleep the rest */
}

/* Runs one operation: takes a connection, makes sure it is alive, runs the
 * body (in a transaction with OP_TX), and runs it again when that is both
 * useful and safe — after a serialization failure or deadlock (the server
 * rolled everything back), or once after a lost connection if the operation
 * only reads or the server cannot have applied it. A body must therefore
 * start from scratch each time it is called and hand out results only
 * through arg. */
static int run_op(pg_store *s, unsigned flags, const char *what, op_body body, void *arg)
{
    pg_op op = {.conn = {&pg_driver, what}, .s = s, .what = what};
    int rc = pool_acquire(s, &op.pc);
    if (rc != LW_OK)
        return rc == LW_ESTORE ? LW_EUNAVAIL : rc; /* could not connect: nothing was sent */
    int lost_left = 1, retry_left = TX_RETRIES;
    /* The server could not be reached and nothing of a write was sent: the
     * caller may say "unavailable, retry" (LW_EUNAVAIL) rather than "failed". */
    bool unreachable = false;
    char buf[160];
    for (;;) {
        op.lost = op.retry = op.sent_write = op.in_tx = false;
        if ((rc = conn_ready(op.pc)) != LW_OK) {
            unreachable = true;
            break;
        }
        rc = (flags & OP_TX) ? tx_run(&op, body, arg) : body(&op, arg);
        if (rc == LW_OK)
            break;
        if (op.retry && !op.lost) {
            if (retry_left-- > 0) {
                backoff(TX_RETRIES - retry_left);
                continue;
            }
            log_error(label(buf, sizeof(buf), what, "gave up after repeated serialization failures"));
            break;
        }
        if (!op.lost)
            break;
        if (lost_left-- > 0 && ((flags & OP_READ) || !op.sent_write)) {
            log_line("warn", label(buf, sizeof(buf), what, "the database connection was lost; retrying"),
                     NULL, op.pc->c, false);
            PQreset(op.pc->c);
            conn_forget(op.pc);
            continue;
        }
        log_line("error",
                 label(buf, sizeof(buf), what,
                       op.sent_write ? "the database connection was lost; the outcome is unknown"
                                     : "the database connection was lost"),
                 NULL, op.pc->c, false);
        unreachable = !op.sent_write;
        break;
    }
    pool_release(s, op.pc);
    return rc == LW_ESTORE && unreachable ? LW_EUNAVAIL : rc;
}

/* ---- the driver ------------------------------------------------------------ */

typedef struct tramp {
    lw_sqlbody body;
    void *arg;
} tramp;

static int tramp_body(pg_op *op, void *arg)
{
    tramp *t = arg;
    return t->body(&op->conn, t->arg);
}

/* One whole operation (connection, statements, retries) as a worker's job:
 * on a fiber it runs on a store worker thread while the loop serves others.
 * The body writes its results only through its arg (sql.h), on the waiting
 * fiber's stack, and touches nothing the loop owns. */
typedef struct pg_call {
    pg_store *s;
    unsigned flags;
    const char *what;
    tramp t;
} pg_call;

static int pg_call_run(void *arg)
{
    pg_call *c = arg;
    return run_op(c->s, c->flags, c->what, tramp_body, &c->t);
}

static int pg_run(lw_store *base, unsigned flags, const char *what, lw_sqlbody body, void *arg)
{
    pg_call c = {(pg_store *)base,
                 (flags & LW_SQL_READ ? OP_READ : 0) | (flags & LW_SQL_TX ? OP_TX : 0),
                 what,
                 {body, arg}};
    /* What still waits for PostgreSQL on the loop's own stack (start-up,
     * timers, socket messages) is counted, so that a path that should not
     * can be caught (integration.store_offload). Only the loop calls the
     * store off a fiber, so the registry is touched by one thread. */
    if (!lw_in_fiber())
        lw_metrics_inc("linkward_store_waits_on_loop_total", NULL);
    return lw_offload(pg_call_run, &c);
}

static int pg_exec(lw_sqlconn *c, const lw_sqlstmt *st, const lw_sqlparams *p, bool write, lw_sqlres *res)
{
    pg_op *op = (pg_op *)c;
    memset(res, 0, sizeof(*res));
    res->c = c;
    res->row = -1;
    PGresult *r = NULL;
    int rc = op_exec(op, st, p, write, &r);
    if (rc != LW_OK)
        return rc;
    res->h = r;
    res->rows = PQntuples(r);
    res->changes = changes_of(r);
    return LW_OK;
}

static int pg_next(lw_sqlres *r)
{
    if (r->row + 1 >= r->rows)
        return 0;
    r->row++;
    return 1;
}

static void pg_done(lw_sqlres *r)
{
    PQclear(r->h);
    r->h = NULL;
}

static int64_t pg_col_i64(const lw_sqlres *r, int col)
{
    return get_i64(r->h, r->row, col);
}

static double pg_col_f64(const lw_sqlres *r, int col)
{
    return get_f64(r->h, r->row, col);
}

static size_t pg_col_text(const lw_sqlres *r, int col, char *dst, size_t cap)
{
    get_text(dst, cap, r->h, r->row, col);
    return (size_t)PQgetlength(r->h, r->row, col);
}

static void pg_col_blob(const lw_sqlres *r, int col, void *dst, size_t n)
{
    get_blob(dst, n, r->h, r->row, col);
}

static const lw_sqldrv pg_driver = {
    .name = "postgres",
    .run = pg_run,
    .exec = pg_exec,
    .next = pg_next,
    .done = pg_done,
    .col_i64 = pg_col_i64,
    .col_f64 = pg_col_f64,
    .col_text = pg_col_text,
    .col_blob = pg_col_blob,
};

/* The control socket's backup writes a SQLite file; a PostgreSQL database is
 * backed up with the engine's own tools, which copy it consistently while
 * the nodes keep writing. */
static int pg_backup(lw_store *base, const char *path)
{
    (void)base;
    (void)path;
    log_error("backup over the control socket is SQLite-only; back up PostgreSQL with pg_dump "
              "(or the engine's own backup tooling)");
    return LW_EINVAL;
}

/* ---- open, migrate, close -------------------------------------------------- */

static void log_too_new(int found)
{
    char msg[200];
    log_error(lw_sql_too_new(msg, sizeof msg, found, SCHEMA_VERSION));
}

/* Reads the schema version: 0 when there is no schema_version table yet. */
static int version_body(pg_op *op, void *arg)
{
    int *out = arg;
    PGresult *r = NULL;
    int rc = op_sql(op, sql_version_exists, NULL, false, &r);
    if (rc != LW_OK)
        return rc;
    bool exists = PQntuples(r) > 0 && get_i64(r, 0, 0) > 0;
    PQclear(r);
    if (!exists) {
        *out = 0;
        return LW_OK;
    }
    if ((rc = op_sql(op, sql_version_read, NULL, false, &r)) != LW_OK)
        return rc;
    *out = PQntuples(r) > 0 ? (int)get_i64(r, 0, 0) : 0;
    PQclear(r);
    return LW_OK;
}

static int read_version(pg_store *s, int *out)
{
    return run_op(s, OP_READ, "read schema version", version_body, out);
}

static int bootstrap_body(pg_op *op, void *arg)
{
    (void)arg;
    int rc = op_sql(op, sql_version_table, NULL, true, NULL);
    if (rc == LW_OK)
        rc = op_sql(op, sql_version_row, NULL, true, NULL);
    return rc;
}

typedef struct migrate_args {
    bool done;
    bool too_new;
} migrate_args;

/* Applies the next missing migration, if any, with its version bump, in the
 * caller's transaction, so a crash leaves the database at some version k,
 * never between. The version row is locked first, so of two nodes starting
 * together one migrates and the other then finds nothing to do. */
static int migrate_body(pg_op *op, void *arg)
{
    migrate_args *m = arg;
    PGresult *r = NULL;
    int rc = op_sql(op, sql_version_lock, NULL, false, &r);
    if (rc != LW_OK)
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        log_error("schema_version has no row; refusing to migrate");
        return LW_ESTORE;
    }
    int version = (int)get_i64(r, 0, 0);
    PQclear(r);
    if (version > SCHEMA_VERSION || version < 0) {
        m->too_new = true;
        log_too_new(version);
        return LW_ESTORE;
    }
    if (version == SCHEMA_VERSION) {
        m->done = true;
        return LW_OK;
    }
    for (const char *const *st = migrations[version]; *st != NULL; st++) {
        if ((rc = op_sql(op, *st, NULL, true, NULL)) != LW_OK) {
            /* Not a race (we hold the version row): an object of that name but
             * another kind is in the way. Say so; the server's error was not logged. */
            if (rc == LW_ECONFLICT)
                log_error("migration failed: an object it creates exists already under that name");
            return rc;
        }
    }
    params p;
    p_init(&p);
    p_i64(&p, version + 1);
    p_i64(&p, version);
    if ((rc = op_sql(op, sql_version_bump, &p, true, &r)) != LW_OK)
        return rc;
    long n = changes_of(r);
    PQclear(r);
    if (n != 1) {
        log_error("schema version changed during a migration");
        return LW_ESTORE;
    }
    return LW_OK;
}

static int migrate(pg_store *s)
{
    int version = 0;
    /* Refuse a newer schema before changing anything in the database. */
    int rc = read_version(s, &version);
    if (rc != LW_OK)
        return rc;
    if (version > SCHEMA_VERSION) {
        log_too_new(version);
        return LW_ESTORE;
    }
    /* Two nodes creating the version table at once: PostgreSQL answers the
     * loser "already exists" (as a unique violation on its catalog, or as a
     * duplicate table or type) even with IF NOT EXISTS; the table is there
     * then, and the next try finds it. */
    for (int k = 0; k < 3; k++)
        if ((rc = run_op(s, OP_TX, "create schema_version", bootstrap_body, NULL)) != LW_ECONFLICT)
            break;
    if (rc == LW_ECONFLICT)
        log_error("create schema_version: it kept being created concurrently");
    if (rc != LW_OK)
        return rc;
    migrate_args m = {false, false};
    while (!m.done) {
        if ((rc = run_op(s, OP_TX, "migration", migrate_body, &m)) != LW_OK)
            return rc;
    }
    return LW_OK;
}

static void pg_close(lw_store *base)
{
    pg_store *s = (pg_store *)base;
    if (s == NULL)
        return;
    for (int k = 0; k < POOL_MAX; k++)
        if (s->pool[k].c != NULL)
            PQfinish(s->pool[k].c);
    if (s->sync_ready) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
    }
    if (s->location != NULL) {
        lw_wipe(s->location, strlen(s->location)); /* may hold a password */
        lw_free(s->location);
    }
    lw_free(s);
}

static int pg_open(lw_store **out, const char *location)
{
    pg_store *s = NULL;
    int rc = LW_ESTORE;
    if (out == NULL || location == NULL)
        return LW_EINVAL;
    if (!PQisthreadsafe()) {
        log_error("this libpq is not thread-safe");
        return LW_ESTORE;
    }
    s = lw_calloc(1, sizeof(*s));
    if (s == NULL) {
        log_error("out of memory opening the store");
        return LW_ENOMEM;
    }
    s->base.base.ops = &lw_store_pg_ops;
    s->base.drv = &pg_driver;
    if ((s->location = lw_strdup(location)) == NULL) {
        log_error("out of memory opening the store");
        rc = LW_ENOMEM;
        goto fail;
    }
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        log_error("cannot create the connection pool's lock");
        goto fail;
    }
    if (pthread_cond_init(&s->cv, NULL) != 0) {
        log_error("cannot create the connection pool's lock");
        pthread_mutex_destroy(&s->mu);
        goto fail;
    }
    s->sync_ready = true;
    /* The first operation opens the first connection: a wrong URL or an
     * unreachable server fails here, at start-up, not on the first request. */
    if ((rc = migrate(s)) != LW_OK)
        goto fail;
    *out = &s->base.base;
    return LW_OK;
fail:
    pg_close(&s->base.base);
    /* Opening promises LW_ESTORE for any store failure but one: LW_EUNAVAIL
     * when the server could not be reached or would not write (read-only,
     * disk full), which start-up reports as such. */
    return rc == LW_OK ? LW_ESTORE : rc;
}

int lw_store_pg_schema_version(lw_store *base)
{
    if (base == NULL || base->ops != &lw_store_pg_ops)
        return LW_EINVAL;
    int version = 0;
    int rc = read_version((pg_store *)base, &version);
    return rc == LW_OK ? version : rc;
}

const lw_store_ops lw_store_pg_ops = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    LW_SQL_FAMILY_OPS,
    .backup = pg_backup,
};
