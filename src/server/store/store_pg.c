/*
 * store_pg.c — the PostgreSQL backend of store.h, on libpq.
 *
 * Chosen by lw_store_open for "postgres://" and "postgresql://" locations;
 * the location is handed to libpq whole, so every libpq URL parameter works
 * (sslmode, options=-csearch_path%3Dlinkward, application_name, ...).
 *
 * Connections. A small pool (POOL_MAX) opened lazily: one connection is all
 * the event loop ever uses, since it calls the store one operation at a time,
 * but the pool is guarded by a mutex so a worker thread may use the store
 * too without sharing a PGconn (libpq connections are not thread-safe).
 * Each connection prepares the statements below under fixed names the first
 * time it runs them, so a reconnect just prepares them again.
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

#include "store.h"

/* Connections a store opens at most. */
#define POOL_MAX 4
/* Lookup keys longer than this cannot be real ids, selectors or handles. */
#define KEY_ARG_MAX 1024
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

static const char *const *const migrations[] = {
    migration_1, migration_2, migration_3, migration_4, migration_5, migration_6, migration_7,
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

/* ---- statements ------------------------------------------------------------ */

#define ACCOUNT_COLS                                                                                         \
    "id, handle, created_at, pin_hash, pin_failures, pin_locked_until, inactive_ttl_ms, pin_change_required"

#define SESSION_COLS                                                                                         \
    "id, account_id, role, name, browser, browser_version, os, os_version, device_model, ip, country, "      \
    "region, city, network, last_ip, last_country, last_city, public_key, account_sig, linked_at, "          \
    "last_active_at, state, ended_at, end_reason, persistent, cred_selector, cred_hash, "                    \
    "cred_expires_at, challenge, lat, lon, has_loc, last_lat, last_lon, last_has_loc, last_region, "         \
    "last_network"

#define LINK_COLS                                                                                            \
    "id, token_hash, token_selector, public_key, code_hash, ref_hash, ref_index, ref_expires_at, "           \
    "created_at, expires_at, state, account_id, scanned_by, account_sig, nonce, device_id, persistent, "     \
    "name, browser, browser_version, os, os_version, device_model, ip, country, region, city, network"

#define ALERT_COLS                                                                                           \
    "id, account_id, kind, device_id, created_at, acked_at, details, answer, answered_by, burst_count, "     \
    "updated_at"

enum {
    ST_ACCOUNT_INSERT,
    ST_ACCOUNT_GET,
    ST_ACCOUNT_GET_BY_HANDLE,
    ST_ACCOUNT_UPDATE,
    ST_ACCOUNT_LOCK,
    ST_ACCOUNT_DELETE,
    ST_ACCOUNT_DELETE_SESSIONS,
    ST_ACCOUNT_DELETE_LINKS,
    ST_ACCOUNT_DELETE_ALERTS,
    ST_ACCOUNT_ACTIVE_SESSIONS,
    ST_INVITE_INSERT,
    ST_INVITE_CONSUME,
    ST_SESSION_INSERT,
    ST_SESSION_GET,
    ST_SESSION_GET_BY_SELECTOR,
    ST_SESSION_EXISTS,
    ST_SESSION_LIST,
    ST_SESSION_COUNT_COMPANIONS,
    ST_PLACES_COUNTRY,
    ST_PLACES_PRIMARY,
    ST_SESSION_SET_CRED,
    ST_SESSION_SET_NAME,
    ST_SESSION_TOUCH,
    ST_SESSION_END,
    ST_SESSION_END_ALL,
    ST_SESSION_END_EVERY,
    ST_SESSION_END_SAME_KEY,
    ST_SESSION_REDACT,
    ST_SESSION_REDACT_ENDED,
    ST_ALERT_REDACT_DEVICE,
    ST_ALERT_REDACT_ENDED,
    ST_SESSION_DELETE_ONE,
    ST_SESSION_DELETE_ALL,
    ST_LINK_INSERT,
    ST_LINK_GET,
    ST_LINK_GET_BY_SELECTOR,
    ST_LINK_GET_BY_REF,
    ST_LINK_GET_BY_CODE,
    ST_LINK_EXISTS,
    ST_LINK_SET_REF,
    ST_LINK_TRANSITION,
    ST_LINK_LOCK_STATE,
    ST_LINK_COMPLETE,
    ST_LINK_PURGE,
    ST_ALERT_INSERT,
    ST_ALERT_LIST,
    ST_ALERT_GET,
    ST_ALERT_ACK,
    ST_ALERT_BURST_ADD,
    ST_SWEEP_INACTIVE,
    ST_SWEEP_PRIMARY_INACTIVE,
    ST_SWEEP_MAX_AGE,
    ST_SWEEP_EPHEMERAL,
    ST_SWEEP_PURGE_SESSIONS,
    ST_SWEEP_PURGE_ALERTS,
    ST_STATS,
    ST_SETTING_GET,
    ST_SETTING_PUT,
    ST_COUNT
};

/* The statements that end sessions return what they ended, ordered as the
 * SQLite backend lists them; the sweep ones take ($1 cutoff, $2 now, $3 reason). */
#define ENDED_LIST(order) ") SELECT id, account_id FROM e ORDER BY " order
#define END_SET "SET state = 'ended', ended_at = $2::bigint, end_reason = $3::text"
/* Text is ordered by bytes, as SQLite compares it, whatever the database's locale. */
#define SWEEP_ORDER "account_id COLLATE \"C\", linked_at, id COLLATE \"C\""

static const char *const sql_text[ST_COUNT] = {
    [ST_ACCOUNT_INSERT] = "INSERT INTO accounts (" ACCOUNT_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    [ST_ACCOUNT_GET] = "SELECT " ACCOUNT_COLS " FROM accounts WHERE id = $1",
    [ST_ACCOUNT_GET_BY_HANDLE] =
        "SELECT " ACCOUNT_COLS " FROM accounts WHERE lower(handle) = lower($1::text)",
    [ST_ACCOUNT_UPDATE] = "UPDATE accounts SET pin_hash = $1, pin_failures = $2, pin_locked_until = $3,"
                          " inactive_ttl_ms = $4, pin_change_required = $6 WHERE id = $5",
    /* Completions for one account take turns on this lock, so the companion
     * count they check cannot change between the count and the insert. */
    [ST_ACCOUNT_LOCK] = "SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE",

    /* Children first, then the account (link requests have no foreign key:
     * account_id is '' until a scan). */
    [ST_ACCOUNT_DELETE] = "DELETE FROM accounts WHERE id = $1",
    [ST_ACCOUNT_DELETE_SESSIONS] = "DELETE FROM sessions WHERE account_id = $1",
    [ST_ACCOUNT_DELETE_LINKS] = "DELETE FROM link_requests WHERE account_id = $1",
    [ST_ACCOUNT_DELETE_ALERTS] = "DELETE FROM alerts WHERE account_id = $1",
    [ST_ACCOUNT_ACTIVE_SESSIONS] =
        "SELECT id, account_id FROM sessions WHERE account_id = $1 AND state = 'active'"
        " ORDER BY linked_at, id COLLATE \"C\"",

    [ST_INVITE_INSERT] = "INSERT INTO invites (hash, expires_at, handle) VALUES ($1, $2, $3)",
    /* Handles are stored normalised; lower() as the accounts index does. */
    [ST_INVITE_CONSUME] = "UPDATE invites SET used_at = $2::bigint"
                          " WHERE hash = $1 AND used_at = 0 AND expires_at > $2::bigint"
                          " AND (handle = '' OR lower(handle) = lower($3::text))",

    /* A session is always born active; state, ended_at and end_reason are not the caller's. */
    [ST_SESSION_INSERT] =
        "INSERT INTO sessions (" SESSION_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7,"
        " $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,"
        " 'active', 0, '', $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34)",
    [ST_SESSION_GET] = "SELECT " SESSION_COLS " FROM sessions WHERE id = $1",
    [ST_SESSION_GET_BY_SELECTOR] =
        "SELECT " SESSION_COLS " FROM sessions WHERE cred_selector = $1"
        " ORDER BY CASE WHEN state = 'active' THEN 0 ELSE 1 END, ended_at DESC LIMIT 1",
    [ST_SESSION_EXISTS] = "SELECT 1 FROM sessions WHERE id = $1",
    [ST_SESSION_LIST] = "SELECT " SESSION_COLS " FROM sessions WHERE account_id = $1 AND state = $2"
                        " ORDER BY linked_at, id COLLATE \"C\"",
    [ST_SESSION_COUNT_COMPANIONS] = "SELECT count(*) FROM sessions"
                                    " WHERE account_id = $1 AND state = 'active' AND role = 'companion'"
                                    " AND ($2::bytea IS NULL OR public_key <> $2::bytea)",
    /* 2: some session was in $2; 1: none was, but some has a country; 0: none has one. */
    [ST_PLACES_COUNTRY] =
        "SELECT CASE"
        " WHEN EXISTS (SELECT 1 FROM sessions WHERE account_id = $1"
        "              AND $2::text <> '' AND (country = $2::text OR last_country = $2::text)) THEN 2"
        " WHEN EXISTS (SELECT 1 FROM sessions WHERE account_id = $1"
        "              AND (country <> '' OR last_country <> '')) THEN 1"
        " ELSE 0 END",
    [ST_PLACES_PRIMARY] = "SELECT country, last_country, has_loc, lat, lon, last_has_loc, last_lat, last_lon"
                          " FROM sessions WHERE account_id = $1 AND role = 'primary' AND state = 'active'"
                          " ORDER BY linked_at, id COLLATE \"C\" LIMIT 1",
    [ST_SESSION_SET_CRED] = "UPDATE sessions SET cred_selector = $1, cred_hash = $2, cred_expires_at = $3,"
                            " challenge = $4 WHERE id = $5 AND state = 'active'",
    [ST_SESSION_SET_NAME] = "UPDATE sessions SET name = $1 WHERE id = $2",
    /* Writes are coalesced by the caller and may arrive out of order: never move
     * last_active_at backwards, and keep the place with the newest time. A
     * touch without a place ($2 NULL) only moves the time. Every right-hand
     * side sees the row as it was before this UPDATE. */
    [ST_SESSION_TOUCH] =
        "UPDATE sessions SET"
        " last_ip = CASE WHEN $1::bigint >= last_active_at AND $2::text IS NOT NULL THEN $2::text ELSE "
        "last_ip END,"
        " last_country = CASE WHEN $1::bigint >= last_active_at AND $2::text IS NOT NULL THEN $4::text"
        "   ELSE last_country END,"
        " last_city = CASE WHEN $1::bigint >= last_active_at AND $2::text IS NOT NULL THEN $5::text"
        "   ELSE last_city END,"
        " last_region = CASE WHEN $1::bigint >= last_active_at AND $2::text IS NOT NULL THEN $9::text"
        "   ELSE last_region END,"
        " last_network = CASE WHEN $1::bigint >= last_active_at AND $2::text IS NOT NULL THEN $10::text"
        "   ELSE last_network END,"
        " last_lat = CASE WHEN $1::bigint >= last_active_at AND $2::text IS NOT NULL THEN $6::float8"
        "   ELSE last_lat END,"
        " last_lon = CASE WHEN $1::bigint >= last_active_at AND $2::text IS NOT NULL THEN $7::float8"
        "   ELSE last_lon END,"
        " last_has_loc = CASE WHEN $1::bigint >= last_active_at AND $2::text IS NOT NULL THEN $8::boolean"
        "   ELSE last_has_loc END,"
        " last_active_at = GREATEST(last_active_at, $1::bigint)"
        " WHERE id = $3 AND state = 'active'",
    [ST_SESSION_END] = "UPDATE sessions SET state = 'ended', ended_at = $1, end_reason = $2"
                       " WHERE id = $3 AND state = 'active'",
    [ST_SESSION_END_ALL] =
        "WITH e AS (UPDATE sessions " END_SET " WHERE account_id = $1 AND state = 'active'"
        " AND ($4::text IS NULL OR role = $4::text) AND ($5::text IS NULL OR id <> $5::text)"
        " RETURNING id, account_id, linked_at" ENDED_LIST("linked_at, id COLLATE \"C\""),
    /* Same parameters as the sweep steps ($1 role instead of a cutoff). */
    [ST_SESSION_END_EVERY] = "WITH e AS (UPDATE sessions " END_SET
                             " WHERE state = 'active' AND ($1::text IS NULL OR role = $1::text)"
                             " RETURNING id, account_id, linked_at" ENDED_LIST(SWEEP_ORDER),
    /* What a completion replaces: the account's live companions with the same key ($4). */
    [ST_SESSION_END_SAME_KEY] =
        "WITH e AS (UPDATE sessions " END_SET " WHERE account_id = $1 AND state = 'active'"
        " AND role = 'companion' AND public_key = $4::bytea"
        " RETURNING id, account_id, linked_at" ENDED_LIST("linked_at, id COLLATE \"C\""),
#define REDACT_SET                                                                                           \
    "SET ip = '', region = '', city = '', last_ip = '', last_region = '', last_city = '', lat = 0, lon = 0," \
    " has_loc = FALSE, last_lat = 0, last_lon = 0, last_has_loc = FALSE, redacted = TRUE"
    [ST_SESSION_REDACT] = "UPDATE sessions " REDACT_SET " WHERE id = $1 AND state = 'ended'",
    [ST_SESSION_REDACT_ENDED] = "UPDATE sessions " REDACT_SET " WHERE state = 'ended' AND NOT redacted",
/* The addresses alerts about a device carry (risk.c, api_link.c,
 * api_session.c put them under these keys). */
#define REDACT_DETAILS "details = ((details::jsonb - 'ip' - 'from_ip' - 'to_ip')::text)"
    [ST_ALERT_REDACT_DEVICE] = "UPDATE alerts SET " REDACT_DETAILS " WHERE device_id = $1",
    /* Before ST_SESSION_REDACT_ENDED, in the same transaction: these are the
     * devices it is about to mark. */
    [ST_ALERT_REDACT_ENDED] = "UPDATE alerts SET " REDACT_DETAILS " WHERE device_id <> '' AND device_id IN"
                              " (SELECT id FROM sessions WHERE state = 'ended' AND NOT redacted)",
    [ST_SESSION_DELETE_ONE] = "DELETE FROM sessions WHERE account_id = $1 AND id = $2 AND state = 'ended'",
    [ST_SESSION_DELETE_ALL] = "DELETE FROM sessions WHERE account_id = $1 AND state = 'ended'",

    [ST_LINK_INSERT] = "INSERT INTO link_requests (" LINK_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
                       " $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24,"
                       " $25, $26, $27, $28)",
    [ST_LINK_GET] = "SELECT " LINK_COLS " FROM link_requests WHERE id = $1",
    [ST_LINK_GET_BY_SELECTOR] = "SELECT " LINK_COLS " FROM link_requests WHERE token_selector = $1",
    [ST_LINK_GET_BY_REF] = "SELECT " LINK_COLS " FROM link_requests WHERE ref_hash = $1",
    [ST_LINK_GET_BY_CODE] = "SELECT " LINK_COLS " FROM link_requests WHERE code_hash = $1",
    [ST_LINK_EXISTS] = "SELECT 1 FROM link_requests WHERE id = $1",
    [ST_LINK_SET_REF] = "UPDATE link_requests SET ref_hash = $1, ref_index = $2, ref_expires_at = $3"
                        " WHERE id = $4 AND state = 'pending'",
    [ST_LINK_TRANSITION] = "UPDATE link_requests SET state = $1, account_id = $2, scanned_by = $3,"
                           " account_sig = $4, nonce = $5"
                           " WHERE id = $6 AND state = $7",
    /* The row lock makes a second completer of the same request wait, then
     * read 'completed' and lose. */
    [ST_LINK_LOCK_STATE] = "SELECT state, account_id FROM link_requests WHERE id = $1 FOR UPDATE",
    [ST_LINK_COMPLETE] = "UPDATE link_requests SET state = 'completed', device_id = $1"
                         " WHERE id = $2 AND state = 'approved'",
    /* A request cannot be acted on after expires_at, so whatever state it is
     * in, it has ended by then: expires_at bounds its end from above. */
    [ST_LINK_PURGE] = "DELETE FROM link_requests WHERE expires_at < $1",

    [ST_ALERT_INSERT] =
        "INSERT INTO alerts (" ALERT_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    /* The newest unanswered alert of the burst, locked until the transaction ends. */
    [ST_ALERT_BURST_ADD] =
        "UPDATE alerts SET burst_count = burst_count + 1, details = $5, updated_at = $6::bigint"
        " WHERE id = (SELECT id FROM alerts WHERE account_id = $1 AND kind = $2 AND device_id = $3"
        " AND answer = '' AND updated_at >= $4::bigint ORDER BY updated_at DESC, seq DESC"
        " LIMIT 1 FOR UPDATE) RETURNING " ALERT_COLS,
    [ST_ALERT_LIST] = "SELECT " ALERT_COLS " FROM alerts WHERE account_id = $1"
                      " ORDER BY created_at DESC, seq DESC LIMIT $2",
    [ST_ALERT_GET] = "SELECT " ALERT_COLS " FROM alerts WHERE id = $1 AND account_id = $2",
    /* Acknowledging twice keeps the first time; "it was me" gives way to a
     * protective answer given later, never the reverse; who answered goes
     * with the answer (the CASEs read the row as it was). */
    [ST_ALERT_ACK] = "UPDATE alerts SET acked_at = CASE WHEN acked_at = 0 THEN $1::bigint ELSE acked_at END,"
                     " answer = CASE WHEN answer IN ('', 'it_was_me') THEN $4::text ELSE answer END,"
                     " answered_by = CASE WHEN answer IN ('', 'it_was_me') THEN $5::text ELSE answered_by END"
                     " WHERE id = $2 AND account_id = $3",

    [ST_SWEEP_INACTIVE] = "WITH e AS (UPDATE sessions AS s " END_SET " FROM accounts AS a"
                          " WHERE a.id = s.account_id AND s.state = 'active' AND s.role = 'companion'"
                          " AND a.inactive_ttl_ms > 0 AND s.last_active_at < $1::bigint - a.inactive_ttl_ms"
                          " RETURNING s.id, s.account_id, s.linked_at" ENDED_LIST(SWEEP_ORDER),
    /* The newest primary of the account counts, ended or not: after an account
     * reset the old primary is ended and a new one carries on. A join with a
     * grouped table rather than a correlated subquery, which Citus cannot
     * run on distributed tables; an account without any primary matches no
     * row and so is left alone, as NULL < x is in SQLite. */
    [ST_SWEEP_PRIMARY_INACTIVE] = "WITH e AS (UPDATE sessions AS c " END_SET
                                  " FROM (SELECT account_id, max(last_active_at) AS seen FROM sessions"
                                  "       WHERE role = 'primary' GROUP BY account_id) AS p"
                                  " WHERE p.account_id = c.account_id AND p.seen < $1::bigint"
                                  " AND c.state = 'active' AND c.role = 'companion'"
                                  " RETURNING c.id, c.account_id, c.linked_at" ENDED_LIST(SWEEP_ORDER),
    [ST_SWEEP_MAX_AGE] = "WITH e AS (UPDATE sessions " END_SET
                         " WHERE state = 'active' AND role = 'companion' AND linked_at < $1::bigint"
                         " RETURNING id, account_id, linked_at" ENDED_LIST(SWEEP_ORDER),
    /* A browser that did not ask to stay signed in lost its cookie when it
     * closed: nobody will use that session again. */
    [ST_SWEEP_EPHEMERAL] = "WITH e AS (UPDATE sessions " END_SET
                           " WHERE state = 'active' AND role = 'companion' AND last_active_at < $1::bigint"
                           " AND NOT persistent"
                           " RETURNING id, account_id, linked_at" ENDED_LIST(SWEEP_ORDER),
    [ST_SWEEP_PURGE_SESSIONS] = "DELETE FROM sessions WHERE state = 'ended' AND ended_at < $1",
    [ST_SWEEP_PURGE_ALERTS] = "DELETE FROM alerts WHERE created_at < $1",

    [ST_STATS] = "SELECT (SELECT count(*) FROM accounts),"
                 " (SELECT count(*) FROM sessions WHERE state = 'active'),"
                 " (SELECT count(*) FROM sessions WHERE state = 'ended'),"
                 " (SELECT count(*) FROM link_requests WHERE state IN ('pending', 'scanned', 'approved')),"
                 " (SELECT count(*) FROM alerts)",
    [ST_SETTING_GET] = "SELECT value FROM settings WHERE name = $1",
    [ST_SETTING_PUT] = "INSERT INTO settings (name, value) VALUES ($1, $2)"
                       " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
};

/* ---- types ----------------------------------------------------------------- */

typedef struct pg_conn {
    PGconn *c;               /* NULL until first needed, or after it broke */
    bool busy;               /* handed out by pool_acquire */
    bool doomed;             /* the server said FATAL: it is closing this connection */
    bool prepared[ST_COUNT]; /* statement k is prepared on this connection */
} pg_conn;

typedef struct pg_store {
    lw_store base;      /* first: the wrappers cast lw_store * to this */
    char *location;     /* libpq URL; may hold a password, wiped at close */
    pthread_mutex_t mu; /* guards the busy flags */
    pthread_cond_t cv;  /* a connection was released */
    bool sync_ready;    /* mu and cv exist */
    pg_conn pool[POOL_MAX];
} pg_store;

/* One operation's view of its connection and of how its last attempt failed. */
typedef struct pg_op {
    pg_store *s;
    pg_conn *pc;
    const char *what; /* label for logs */
    bool in_tx;       /* between BEGIN and COMMIT/ROLLBACK */
    bool lost;        /* the connection failed during this attempt */
    bool retry;       /* serialization failure, deadlock: run it again */
    bool sent_write;  /* a write outside a transaction, or a COMMIT, went out */
} pg_op;

/* ---- logging --------------------------------------------------------------- */

/* Appends s to line as JSON string content, stopping quietly when full;
 * trailing newlines (libpq ends its messages with one) are dropped. */
static void json_append(char *line, size_t cap, size_t *len, const char *s)
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
    json_append(line, cap, len, value);
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
    json_append(line, room, &len, msg);
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
static size_t utf8_bound(const char *p, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)p[n] & 0xC0) == 0x80)
        n--;
    return n;
}

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
static void p_key(params *p, const char *v, size_t cap)
{
    if (v == NULL) {
        p_push(p, NULL, 0, 0);
        return;
    }
    size_t n = strnlen(v, cap);
    p_push(p, n < cap ? v : p_copy(p, v, n), 0, 0);
}

/* A value: cut to max bytes on a character boundary, so it always fits the
 * array it is read back into. NULL sends SQL NULL. */
static void p_val(params *p, const char *v, size_t max)
{
    if (v == NULL) {
        p_push(p, NULL, 0, 0);
        return;
    }
    size_t n = utf8_bound(v, strnlen(v, max + 1), max);
    p_push(p, v[n] == '\0' ? v : p_copy(p, v, n), 0, 0);
}

static void p_blob(params *p, const void *b, size_t n)
{
    p_push(p, (const char *)b, (int)n, 1);
}

/* Hashes with unique indexes: all zeros means "none" and is stored as NULL. */
static void p_hash_or_null(params *p, const uint8_t h[LW_HASH_LEN])
{
    uint8_t acc = 0;
    for (size_t k = 0; k < LW_HASH_LEN; k++)
        acc |= h[k];
    if (acc != 0)
        p_blob(p, h, LW_HASH_LEN);
    else
        p_push(p, NULL, 0, 0);
}

/* Numbers go as text; a formatting failure (which cannot happen with these
 * buffers) is reported like an overflow rather than sent as NULL. */
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

#define P_KEYF(p, f) p_key((p), (f), sizeof(f))
#define P_VALF(p, f) p_val((p), (f), sizeof(f) - 1)
#define P_BLOBF(p, f) p_blob((p), (f), sizeof(f))

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

static bool get_bool(const PGresult *r, int row, int col)
{
    return get_i64(r, row, col) != 0;
}

/* Copies a text cell into a fixed array, bounded on a character boundary and
 * NUL-terminated, whatever was written behind the store's back. */
static void get_text(char *dst, size_t cap, const PGresult *r, int row, int col)
{
    size_t n = 0;
    if (!PQgetisnull(r, row, col)) {
        const char *t = PQgetvalue(r, row, col);
        n = utf8_bound(t, (size_t)PQgetlength(r, row, col), cap - 1);
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

typedef void (*row_reader)(const PGresult *r, int row, void *out);

static void read_account(const PGresult *r, int row, void *out)
{
    lw_account *a = out;
    memset(a, 0, sizeof(*a));
    GET_TEXT(a->id, r, row, 0);
    GET_TEXT(a->handle, r, row, 1);
    a->created_at = get_i64(r, row, 2);
    GET_TEXT(a->pin_hash, r, row, 3);
    a->pin_failures = (int)get_i64(r, row, 4);
    a->pin_locked_until = get_i64(r, row, 5);
    a->inactive_ttl_ms = get_i64(r, row, 6);
    a->pin_change_required = get_bool(r, row, 7);
}

static void read_session(const PGresult *r, int row, void *out)
{
    lw_session *x = out;
    memset(x, 0, sizeof(*x));
    GET_TEXT(x->id, r, row, 0);
    GET_TEXT(x->account_id, r, row, 1);
    GET_TEXT(x->role, r, row, 2);
    GET_TEXT(x->name, r, row, 3);
    GET_TEXT(x->browser, r, row, 4);
    GET_TEXT(x->browser_version, r, row, 5);
    GET_TEXT(x->os, r, row, 6);
    GET_TEXT(x->os_version, r, row, 7);
    GET_TEXT(x->device_model, r, row, 8);
    GET_TEXT(x->ip, r, row, 9);
    GET_TEXT(x->country, r, row, 10);
    GET_TEXT(x->region, r, row, 11);
    GET_TEXT(x->city, r, row, 12);
    GET_TEXT(x->network, r, row, 13);
    GET_TEXT(x->last_ip, r, row, 14);
    GET_TEXT(x->last_country, r, row, 15);
    GET_TEXT(x->last_city, r, row, 16);
    GET_BLOB(x->public_key, r, row, 17);
    GET_BLOB(x->account_sig, r, row, 18);
    x->linked_at = get_i64(r, row, 19);
    x->last_active_at = get_i64(r, row, 20);
    GET_TEXT(x->state, r, row, 21);
    x->ended_at = get_i64(r, row, 22);
    GET_TEXT(x->end_reason, r, row, 23);
    x->persistent = get_bool(r, row, 24);
    GET_TEXT(x->cred_selector, r, row, 25);
    GET_BLOB(x->cred_hash, r, row, 26);
    x->cred_expires_at = get_i64(r, row, 27);
    GET_BLOB(x->challenge, r, row, 28);
    x->lat = get_f64(r, row, 29);
    x->lon = get_f64(r, row, 30);
    x->has_loc = get_bool(r, row, 31);
    x->last_lat = get_f64(r, row, 32);
    x->last_lon = get_f64(r, row, 33);
    x->last_has_loc = get_bool(r, row, 34);
    GET_TEXT(x->last_region, r, row, 35);
    GET_TEXT(x->last_network, r, row, 36);
}

static void read_link(const PGresult *r, int row, void *out)
{
    lw_link_request *q = out;
    memset(q, 0, sizeof(*q));
    GET_TEXT(q->id, r, row, 0);
    GET_BLOB(q->token_hash, r, row, 1);
    GET_TEXT(q->token_selector, r, row, 2);
    GET_BLOB(q->public_key, r, row, 3);
    GET_BLOB(q->code_hash, r, row, 4);
    GET_BLOB(q->ref_hash, r, row, 5);
    q->ref_index = (int)get_i64(r, row, 6);
    q->ref_expires_at = get_i64(r, row, 7);
    q->created_at = get_i64(r, row, 8);
    q->expires_at = get_i64(r, row, 9);
    GET_TEXT(q->state, r, row, 10);
    GET_TEXT(q->account_id, r, row, 11);
    GET_TEXT(q->scanned_by, r, row, 12);
    GET_BLOB(q->account_sig, r, row, 13);
    GET_BLOB(q->nonce, r, row, 14);
    GET_TEXT(q->device_id, r, row, 15);
    q->persistent = get_bool(r, row, 16);
    GET_TEXT(q->name, r, row, 17);
    GET_TEXT(q->browser, r, row, 18);
    GET_TEXT(q->browser_version, r, row, 19);
    GET_TEXT(q->os, r, row, 20);
    GET_TEXT(q->os_version, r, row, 21);
    GET_TEXT(q->device_model, r, row, 22);
    GET_TEXT(q->ip, r, row, 23);
    GET_TEXT(q->country, r, row, 24);
    GET_TEXT(q->region, r, row, 25);
    GET_TEXT(q->city, r, row, 26);
    GET_TEXT(q->network, r, row, 27);
}

static void read_alert(const PGresult *r, int row, void *out)
{
    lw_alert *a = out;
    memset(a, 0, sizeof(*a));
    GET_TEXT(a->id, r, row, 0);
    GET_TEXT(a->account_id, r, row, 1);
    GET_TEXT(a->kind, r, row, 2);
    GET_TEXT(a->device_id, r, row, 3);
    a->created_at = get_i64(r, row, 4);
    a->acked_at = get_i64(r, row, 5);
    GET_TEXT(a->details, r, row, 6);
    GET_TEXT(a->answer, r, row, 7);
    GET_TEXT(a->answered_by, r, row, 8);
    a->count = (int)get_i64(r, row, 9);
    a->updated_at = get_i64(r, row, 10);
}

static void read_long(const PGresult *r, int row, void *out)
{
    *(long *)out = (long)get_i64(r, row, 0);
}

static void read_stats(const PGresult *r, int row, void *out)
{
    lw_store_stats *x = out;
    x->accounts = (long)get_i64(r, row, 0);
    x->sessions_active = (long)get_i64(r, row, 1);
    x->sessions_ended = (long)get_i64(r, row, 2);
    x->link_requests_pending = (long)get_i64(r, row, 3);
    x->alerts = (long)get_i64(r, row, 4);
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

/* Runs prepared statement `which` with p, preparing it on this connection
 * first if needed. write says whether it changes rows (for the retry rule).
 * On LW_OK *out (if not NULL) owns the result. */
static int op_exec(pg_op *op, int which, const params *p, bool write, PGresult **out)
{
    pg_conn *pc = op->pc;
    if (p->overflow) {
        char buf[128];
        log_error(label(buf, sizeof(buf), op->what, "too many or too long parameters"));
        return LW_ETOOBIG;
    }
    char name[16];
    (void)snprintf(name, sizeof(name), "lw_%d", which);
    if (!pc->prepared[which]) {
        PGresult *r = PQprepare(pc->c, name, sql_text[which], 0, NULL);
        int rc = result_rc(op, r, true); /* the statement text holds no values */
        PQclear(r);
        if (rc != LW_OK)
            return rc;
        pc->prepared[which] = true;
    }
    if (write && !op->in_tx)
        op->sent_write = true;
    PGresult *r = PQexecPrepared(pc->c, name, p->n, p->v, p->len, p->fmt, 1);
    int rc = result_rc(op, r, false);
    if (rc != LW_OK || out == NULL)
        PQclear(r);
    else
        *out = r;
    return rc;
}

static int op_exec_changes(pg_op *op, int which, const params *p, long *changes)
{
    PGresult *r = NULL;
    int rc = op_exec(op, which, p, true, &r);
    if (rc == LW_OK) {
        *changes = changes_of(r);
        PQclear(r);
    }
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
    pg_op op = {.s = s, .what = what};
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

/* ---- one-statement operations ---------------------------------------------- */

typedef struct stmt_call {
    int which;
    const params *p;
    bool write;
    PGresult *res; /* set on success */
} stmt_call;

static int stmt_body(pg_op *op, void *arg)
{
    stmt_call *c = arg;
    return op_exec(op, c->which, c->p, c->write, &c->res);
}

/* Runs one statement in its own implicit transaction; on LW_OK *out owns the result. */
static int run_stmt(pg_store *s, const char *what, int which, const params *p, bool write, PGresult **out)
{
    stmt_call c = {which, p, write, NULL};
    int rc = run_op(s, write ? 0 : OP_READ, what, stmt_body, &c);
    if (rc == LW_OK)
        *out = c.res;
    return rc;
}

/* A write; *changes gets the number of rows it touched. */
static int exec_changes(pg_store *s, const char *what, int which, const params *p, long *changes)
{
    PGresult *r = NULL;
    int rc = run_stmt(s, what, which, p, true, &r);
    if (rc == LW_OK) {
        *changes = changes_of(r);
        PQclear(r);
    }
    return rc;
}

/* A query for one row: read into out on LW_OK, LW_ENOTFOUND if none. */
static int query_one(pg_store *s, const char *what, int which, const params *p, row_reader read, void *out)
{
    PGresult *r = NULL;
    int rc = run_stmt(s, what, which, p, false, &r);
    if (rc != LW_OK)
        return rc;
    if (PQntuples(r) > 0)
        read(r, 0, out);
    else
        rc = LW_ENOTFOUND;
    PQclear(r);
    return rc;
}

/* A query whose rows become a fresh lw_malloc'd array of elem-sized records
 * (NULL when there are none). */
static int query_list(pg_store *s, const char *what, int which, const params *p, size_t elem, row_reader read,
                      void **out, size_t *n)
{
    PGresult *r = NULL;
    int rc = run_stmt(s, what, which, p, false, &r);
    if (rc != LW_OK)
        return rc;
    size_t rows = (size_t)PQntuples(r);
    char *arr = NULL;
    if (rows > 0) {
        if (rows > SIZE_MAX / elem || (arr = lw_malloc(rows * elem)) == NULL) {
            log_error("out of memory listing rows");
            PQclear(r);
            return LW_ENOMEM;
        }
        for (size_t k = 0; k < rows; k++)
            read(r, (int)k, arr + k * elem);
    }
    PQclear(r);
    *out = arr;
    *n = rows;
    return LW_OK;
}

/* LW_OK if the row named by id exists in the table `which` checks, else LW_ENOTFOUND. */
static int row_exists(pg_store *s, int which, const char *id, const char *what)
{
    params p;
    p_init(&p);
    p_key(&p, id, KEY_ARG_MAX);
    PGresult *r = NULL;
    int rc = run_stmt(s, what, which, &p, false, &r);
    if (rc != LW_OK)
        return rc;
    rc = PQntuples(r) > 0 ? LW_OK : LW_ENOTFOUND;
    PQclear(r);
    return rc;
}

/* After a compare-and-set UPDATE: one row changed is success; none means the
 * row is either gone (LW_ENOTFOUND) or no longer in the expected state. */
static int cas_result(pg_store *s, long changes, int exists_stmt, const char *id, const char *what)
{
    if (changes == 1)
        return LW_OK;
    int rc = row_exists(s, exists_stmt, id, what);
    return rc == LW_OK ? LW_ECONFLICT : rc;
}

/* ---- accounts and invites -------------------------------------------------- */

/* Inserts a new active session; role and account are the caller's decision,
 * not whatever the struct says. */
static int insert_session(pg_op *op, const lw_session *x, const char *account_id, const char *role)
{
    params p;
    p_init(&p);
    P_KEYF(&p, x->id);
    p_key(&p, account_id, KEY_ARG_MAX);
    p_key(&p, role, KEY_ARG_MAX);
    P_VALF(&p, x->name);
    P_VALF(&p, x->browser);
    P_VALF(&p, x->browser_version);
    P_VALF(&p, x->os);
    P_VALF(&p, x->os_version);
    P_VALF(&p, x->device_model);
    P_VALF(&p, x->ip);
    P_VALF(&p, x->country);
    P_VALF(&p, x->region);
    P_VALF(&p, x->city);
    P_VALF(&p, x->network);
    /* A new session is last seen where it was first seen, unless told otherwise. */
    bool first = x->last_ip[0] == '\0';
    p_val(&p, first ? x->ip : x->last_ip, sizeof(x->last_ip) - 1);
    p_val(&p, first ? x->country : x->last_country, sizeof(x->last_country) - 1);
    p_val(&p, first ? x->city : x->last_city, sizeof(x->last_city) - 1);
    P_BLOBF(&p, x->public_key);
    P_BLOBF(&p, x->account_sig);
    p_i64(&p, x->linked_at);
    p_i64(&p, x->last_active_at);
    p_bool(&p, x->persistent);
    P_KEYF(&p, x->cred_selector);
    P_BLOBF(&p, x->cred_hash);
    p_i64(&p, x->cred_expires_at);
    P_BLOBF(&p, x->challenge);
    p_f64(&p, x->lat);
    p_f64(&p, x->lon);
    p_bool(&p, x->has_loc);
    p_f64(&p, first ? x->lat : x->last_lat);
    p_f64(&p, first ? x->lon : x->last_lon);
    p_bool(&p, first ? x->has_loc : x->last_has_loc);
    p_val(&p, first ? x->region : x->last_region, sizeof(x->last_region) - 1);
    p_val(&p, first ? x->network : x->last_network, sizeof(x->last_network) - 1);
    return op_exec(op, ST_SESSION_INSERT, &p, true, NULL);
}

typedef struct account_create_args {
    const lw_account *a;
    const lw_session *primary;
    const uint8_t *invite_hash;
} account_create_args;

static int account_create_body(pg_op *op, void *arg)
{
    account_create_args *c = arg;
    const lw_account *a = c->a;
    params p;
    int rc;
    if (c->invite_hash != NULL) {
        long n = 0;
        p_init(&p);
        /* The invite comes first: nothing about the handle is looked at
         * for a caller without a valid invite. */
        p_blob(&p, c->invite_hash, LW_HASH_LEN);
        p_i64(&p, a->created_at);
        P_KEYF(&p, a->handle);
        if ((rc = op_exec_changes(op, ST_INVITE_CONSUME, &p, &n)) != LW_OK)
            return rc;
        if (n != 1)
            return LW_EDENIED; /* unknown, used, expired or for another handle: one answer for all */
    }
    p_init(&p);
    P_KEYF(&p, a->id);
    P_KEYF(&p, a->handle);
    p_i64(&p, a->created_at);
    P_VALF(&p, a->pin_hash);
    p_i64(&p, a->pin_failures);
    p_i64(&p, a->pin_locked_until);
    p_i64(&p, a->inactive_ttl_ms);
    p_bool(&p, a->pin_change_required);
    if ((rc = op_exec(op, ST_ACCOUNT_INSERT, &p, true, NULL)) != LW_OK)
        return rc;
    return insert_session(op, c->primary, a->id, LW_ROLE_PRIMARY);
}

static int pg_account_create(lw_store *base, const lw_account *a, const lw_session *primary,
                             const uint8_t *invite_hash)
{
    if (a == NULL || primary == NULL)
        return LW_EINVAL;
    account_create_args c = {a, primary, invite_hash};
    return run_op((pg_store *)base, OP_TX, "create account", account_create_body, &c);
}

static int pg_account_get(lw_store *base, const char *id, lw_account *out)
{
    if (id == NULL || out == NULL)
        return LW_EINVAL;
    params p;
    p_init(&p);
    p_key(&p, id, KEY_ARG_MAX);
    return query_one((pg_store *)base, "get account", ST_ACCOUNT_GET, &p, read_account, out);
}

static int pg_account_get_by_handle(lw_store *base, const char *handle, lw_account *out)
{
    if (handle == NULL || out == NULL)
        return LW_EINVAL;
    params p;
    p_init(&p);
    p_key(&p, handle, KEY_ARG_MAX);
    return query_one((pg_store *)base, "get account by handle", ST_ACCOUNT_GET_BY_HANDLE, &p, read_account,
                     out);
}

static int pg_account_update(lw_store *base, const lw_account *a)
{
    if (a == NULL)
        return LW_EINVAL;
    params p;
    p_init(&p);
    P_VALF(&p, a->pin_hash);
    p_i64(&p, a->pin_failures);
    p_i64(&p, a->pin_locked_until);
    p_i64(&p, a->inactive_ttl_ms);
    P_KEYF(&p, a->id);
    p_bool(&p, a->pin_change_required);
    long n = 0;
    int rc = exec_changes((pg_store *)base, "update account", ST_ACCOUNT_UPDATE, &p, &n);
    if (rc != LW_OK)
        return rc;
    return n == 1 ? LW_OK : LW_ENOTFOUND;
}

static int pg_invite_create(lw_store *base, const uint8_t hash[LW_HASH_LEN], int64_t expires_at,
                            const char *handle)
{
    if (hash == NULL)
        return LW_EINVAL;
    params p;
    p_init(&p);
    p_blob(&p, hash, LW_HASH_LEN);
    p_i64(&p, expires_at);
    p_val(&p, handle != NULL ? handle : "", LW_HANDLE_MAX - 1);
    long n = 0;
    return exec_changes((pg_store *)base, "insert invite", ST_INVITE_INSERT, &p, &n);
}

typedef struct account_delete_args {
    const char *account_id;
    lw_ended *list; /* what was active; rebuilt on every run */
    size_t count;
} account_delete_args;

/* One transaction: lock the account row (a completion for this account,
 * which locks it too, then waits and finds nothing), list what is live,
 * delete the children, then the account. */
static int account_delete_body(pg_op *op, void *arg)
{
    account_delete_args *c = arg;
    lw_free(c->list);
    c->list = NULL;
    c->count = 0;
    params p;
    p_init(&p);
    p_key(&p, c->account_id, KEY_ARG_MAX);
    PGresult *r = NULL;
    int rc = op_exec(op, ST_ACCOUNT_LOCK, &p, false, &r);
    if (rc != LW_OK)
        return rc;
    bool found = PQntuples(r) > 0;
    PQclear(r);
    if (!found)
        return LW_ENOTFOUND;
    if ((rc = op_exec(op, ST_ACCOUNT_ACTIVE_SESSIONS, &p, false, &r)) != LW_OK)
        return rc;
    size_t rows = (size_t)PQntuples(r);
    if (rows > 0) {
        if (rows > SIZE_MAX / sizeof(lw_ended) || (c->list = lw_calloc(rows, sizeof(lw_ended))) == NULL) {
            log_error("out of memory listing sessions to delete");
            PQclear(r);
            return LW_ENOMEM;
        }
        for (size_t k = 0; k < rows; k++) {
            GET_TEXT(c->list[k].device_id, r, (int)k, 0);
            GET_TEXT(c->list[k].account_id, r, (int)k, 1);
            memcpy(c->list[k].reason, "account_deleted", sizeof "account_deleted");
        }
        c->count = rows;
    }
    PQclear(r);
    static const int children[] = {ST_ACCOUNT_DELETE_SESSIONS, ST_ACCOUNT_DELETE_LINKS,
                                   ST_ACCOUNT_DELETE_ALERTS, ST_ACCOUNT_DELETE};
    for (size_t k = 0; k < sizeof children / sizeof children[0]; k++)
        if ((rc = op_exec(op, children[k], &p, true, NULL)) != LW_OK)
            return rc;
    return LW_OK;
}

static int pg_account_delete(lw_store *base, const char *account_id, lw_ended **out, size_t *n)
{
    if (account_id == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    account_delete_args c = {account_id, NULL, 0};
    int rc = run_op((pg_store *)base, OP_TX, "delete account", account_delete_body, &c);
    if (rc != LW_OK) {
        lw_free(c.list);
        return rc;
    }
    *out = c.list;
    *n = c.count;
    return LW_OK;
}

/* ---- sessions -------------------------------------------------------------- */

static int pg_session_get(lw_store *base, const char *device_id, lw_session *out)
{
    if (device_id == NULL || out == NULL)
        return LW_EINVAL;
    params p;
    p_init(&p);
    p_key(&p, device_id, KEY_ARG_MAX);
    return query_one((pg_store *)base, "get session", ST_SESSION_GET, &p, read_session, out);
}

static int pg_session_get_by_selector(lw_store *base, const char *selector, lw_session *out)
{
    if (selector == NULL || out == NULL)
        return LW_EINVAL;
    params p;
    p_init(&p);
    p_key(&p, selector, KEY_ARG_MAX);
    return query_one((pg_store *)base, "get session by selector", ST_SESSION_GET_BY_SELECTOR, &p,
                     read_session, out);
}

static int pg_session_list(lw_store *base, const char *account_id, bool ended, lw_session **out, size_t *n)
{
    if (account_id == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    params p;
    p_init(&p);
    p_key(&p, account_id, KEY_ARG_MAX);
    p_key(&p, ended ? "ended" : "active", KEY_ARG_MAX);
    void *arr = NULL;
    int rc = query_list((pg_store *)base, "list sessions", ST_SESSION_LIST, &p, sizeof(lw_session),
                        read_session, &arr, n);
    if (rc == LW_OK)
        *out = arr;
    return rc;
}

/* $1 account, $2 the device key not to count (NULL: count all). */
static void count_params(params *p, const char *account_id, const uint8_t *except_key)
{
    p_init(p);
    p_key(p, account_id, KEY_ARG_MAX);
    if (except_key != NULL)
        p_blob(p, except_key, LW_PK_LEN);
    else
        p_push(p, NULL, 0, 0);
}

static int pg_session_count_active_companions(lw_store *base, const char *account_id,
                                              const uint8_t *except_key, long *n)
{
    if (account_id == NULL || n == NULL)
        return LW_EINVAL;
    params p;
    count_params(&p, account_id, except_key);
    return query_one((pg_store *)base, "count companions", ST_SESSION_COUNT_COMPANIONS, &p, read_long, n);
}

static void read_place_kind(const PGresult *r, int row, void *out)
{
    *(int *)out = (int)get_i64(r, row, 0);
}

static void read_primary_place(const PGresult *r, int row, void *out)
{
    lw_place *p = out;
    memset(p, 0, sizeof(*p));
    char first[LW_PLACE_MAX], last[LW_PLACE_MAX];
    GET_TEXT(first, r, row, 0);
    GET_TEXT(last, r, row, 1);
    lw_strlcpy(p->country, last[0] ? last : first, sizeof(p->country));
    if (get_bool(r, row, 5)) {
        p->lat = get_f64(r, row, 6);
        p->lon = get_f64(r, row, 7);
        p->has_loc = true;
    } else if (get_bool(r, row, 2)) {
        p->lat = get_f64(r, row, 3);
        p->lon = get_f64(r, row, 4);
        p->has_loc = true;
    }
}

static int pg_account_places(lw_store *base, const char *account_id, const char *country,
                             lw_account_places *out)
{
    if (account_id == NULL || country == NULL || out == NULL)
        return LW_EINVAL;
    memset(out, 0, sizeof(*out));
    params p;
    p_init(&p);
    p_key(&p, account_id, KEY_ARG_MAX);
    p_key(&p, country, KEY_ARG_MAX);
    int seen = 0;
    int rc = query_one((pg_store *)base, "account countries", ST_PLACES_COUNTRY, &p, read_place_kind, &seen);
    if (rc != LW_OK)
        return rc;
    out->country_seen = seen == 2;
    out->any_country = seen >= 1;
    p_init(&p);
    p_key(&p, account_id, KEY_ARG_MAX);
    rc = query_one((pg_store *)base, "primary place", ST_PLACES_PRIMARY, &p, read_primary_place,
                   &out->primary);
    if (rc == LW_ENOTFOUND)
        return LW_OK;
    out->has_primary = rc == LW_OK;
    return rc;
}

static int pg_session_set_credential(lw_store *base, const lw_session *sess)
{
    pg_store *s = (pg_store *)base;
    if (sess == NULL)
        return LW_EINVAL;
    params p;
    p_init(&p);
    P_KEYF(&p, sess->cred_selector);
    P_BLOBF(&p, sess->cred_hash);
    p_i64(&p, sess->cred_expires_at);
    P_BLOBF(&p, sess->challenge);
    P_KEYF(&p, sess->id);
    long n = 0;
    int rc = exec_changes(s, "set credential", ST_SESSION_SET_CRED, &p, &n);
    if (rc != LW_OK)
        return rc;
    return cas_result(s, n, ST_SESSION_EXISTS, sess->id, "set credential");
}

static int pg_session_set_name(lw_store *base, const char *device_id, const char *name)
{
    if (device_id == NULL || name == NULL)
        return LW_EINVAL;
    params p;
    p_init(&p);
    p_val(&p, name, LW_NAME_MAX - 1);
    p_key(&p, device_id, KEY_ARG_MAX);
    long n = 0;
    int rc = exec_changes((pg_store *)base, "set session name", ST_SESSION_SET_NAME, &p, &n);
    if (rc != LW_OK)
        return rc;
    return n == 1 ? LW_OK : LW_ENOTFOUND;
}

static int pg_session_touch(lw_store *base, const char *device_id, int64_t at, const lw_place *where)
{
    pg_store *s = (pg_store *)base;
    if (device_id == NULL)
        return LW_EINVAL;
    params p;
    p_init(&p);
    p_i64(&p, at);
    p_val(&p, where ? where->ip : NULL, LW_IP_MAX - 1);
    p_key(&p, device_id, KEY_ARG_MAX);
    p_val(&p, where ? where->country : "", LW_PLACE_MAX - 1);
    p_val(&p, where ? where->city : "", LW_PLACE_MAX - 1);
    p_f64(&p, where ? where->lat : 0);
    p_f64(&p, where ? where->lon : 0);
    p_bool(&p, where && where->has_loc);
    p_val(&p, where ? where->region : "", LW_PLACE_MAX - 1);
    p_val(&p, where ? where->network : "", LW_NETWORK_MAX - 1);
    long n = 0;
    int rc = exec_changes(s, "touch session", ST_SESSION_TOUCH, &p, &n);
    if (rc != LW_OK)
        return rc;
    return cas_result(s, n, ST_SESSION_EXISTS, device_id, "touch session");
}

static int pg_session_end(lw_store *base, const char *device_id, const char *reason, int64_t now)
{
    pg_store *s = (pg_store *)base;
    if (device_id == NULL || reason == NULL)
        return LW_EINVAL;
    params p;
    p_init(&p);
    p_i64(&p, now);
    p_val(&p, reason, LW_REASON_MAX - 1);
    p_key(&p, device_id, KEY_ARG_MAX);
    long n = 0;
    int rc = exec_changes(s, "end session", ST_SESSION_END, &p, &n);
    if (rc != LW_OK)
        return rc;
    return cas_result(s, n, ST_SESSION_EXISTS, device_id, "end session");
}

/* Runs an UPDATE ... RETURNING (id, account_id) that ended sessions, inside
 * the caller's transaction, and appends what it ended to *list / *count. */
static int end_returning(pg_op *op, int which, const params *p, const char *reason, lw_ended **list,
                         size_t *count)
{
    PGresult *r = NULL;
    int rc = op_exec(op, which, p, true, &r);
    if (rc != LW_OK)
        return rc;
    size_t rows = (size_t)PQntuples(r);
    if (rows > 0) {
        lw_ended *grown = NULL;
        if (*count <= SIZE_MAX / sizeof(lw_ended) - rows)
            grown = lw_realloc(*list, (*count + rows) * sizeof(lw_ended));
        if (grown == NULL) {
            log_error("out of memory listing ended sessions");
            PQclear(r);
            return LW_ENOMEM;
        }
        *list = grown;
        /* reason comes from the caller; bounded like the column. */
        size_t rn = utf8_bound(reason, strnlen(reason, LW_REASON_MAX), LW_REASON_MAX - 1);
        for (size_t k = 0; k < rows; k++) {
            lw_ended *e = &grown[*count + k];
            memset(e, 0, sizeof(*e));
            GET_TEXT(e->device_id, r, (int)k, 0);
            GET_TEXT(e->account_id, r, (int)k, 1);
            memcpy(e->reason, reason, rn);
            e->reason[rn] = '\0';
        }
        *count += rows;
    }
    PQclear(r);
    return LW_OK;
}

/* An ending step: one statement taking ($1 account or cutoff, $2 now,
 * $3 reason, [$4 role, $5 except]); its list is appended after `before`
 * entries, which a rerun starts from again. */
typedef struct end_args {
    int which;
    const char *key; /* account id (end-all) or NULL (sweep: cutoff) */
    int64_t cutoff;
    const char *role, *except;
    const char *reason;
    int64_t now;
    lw_ended **list;
    size_t *count;
    size_t before;
} end_args;

static int end_body(pg_op *op, void *arg)
{
    end_args *c = arg;
    *c->count = c->before;
    params p;
    p_init(&p);
    if (c->which == ST_SESSION_END_EVERY)
        p_key(&p, c->role, KEY_ARG_MAX);
    else if (c->key != NULL)
        p_key(&p, c->key, KEY_ARG_MAX);
    else
        p_i64(&p, c->cutoff);
    p_i64(&p, c->now);
    p_val(&p, c->reason, LW_REASON_MAX - 1);
    if (c->which == ST_SESSION_END_ALL) {
        p_key(&p, c->role, KEY_ARG_MAX);
        p_key(&p, c->except, KEY_ARG_MAX);
    }
    return end_returning(op, c->which, &p, c->reason, c->list, c->count);
}

/* Runs an end_body step in a transaction of its own; on success *out / *n
 * take the sessions it ended. */
static int end_listed(pg_store *s, end_args *c, const char *what, lw_ended **out, size_t *n)
{
    lw_ended *list = NULL;
    size_t count = 0;
    c->list = &list;
    c->count = &count;
    c->before = 0;
    int rc = run_op(s, OP_TX, what, end_body, c);
    if (rc != LW_OK) {
        lw_free(list);
        return rc;
    }
    *out = list;
    *n = count;
    return LW_OK;
}

static int pg_session_end_all(lw_store *base, const char *account_id, const char *role, const char *except,
                              const char *reason, int64_t now, lw_ended **out, size_t *n)
{
    if (account_id == NULL || reason == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    end_args c = {.which = ST_SESSION_END_ALL,
                  .key = account_id,
                  .role = role,
                  .except = except,
                  .reason = reason,
                  .now = now};
    return end_listed((pg_store *)base, &c, "end all sessions", out, n);
}

static int pg_session_end_every(lw_store *base, const char *role, const char *reason, int64_t now,
                                lw_ended **out, size_t *n)
{
    if (reason == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    end_args c = {.which = ST_SESSION_END_EVERY, .role = role, .reason = reason, .now = now};
    return end_listed((pg_store *)base, &c, "end every session", out, n);
}

typedef struct redact_args {
    const char *device_id; /* NULL: every ended record not redacted yet */
    long changed;
} redact_args;

/* The record and the alerts about it in one transaction, so no crash can
 * leave addresses behind in either. */
static int redact_body(pg_op *op, void *arg)
{
    redact_args *c = arg;
    params p;
    p_init(&p);
    if (c->device_id == NULL) {
        int rc = op_exec(op, ST_ALERT_REDACT_ENDED, &p, true, NULL);
        return rc != LW_OK ? rc : op_exec_changes(op, ST_SESSION_REDACT_ENDED, &p, &c->changed);
    }
    p_key(&p, c->device_id, KEY_ARG_MAX);
    int rc = op_exec_changes(op, ST_SESSION_REDACT, &p, &c->changed);
    if (rc != LW_OK || c->changed != 1)
        return rc;
    return op_exec(op, ST_ALERT_REDACT_DEVICE, &p, true, NULL);
}

static int pg_session_redact(lw_store *base, const char *device_id)
{
    pg_store *s = (pg_store *)base;
    if (device_id == NULL)
        return LW_EINVAL;
    redact_args c = {device_id, 0};
    int rc = run_op(s, OP_TX, "redact session", redact_body, &c);
    if (rc != LW_OK)
        return rc;
    return cas_result(s, c.changed, ST_SESSION_EXISTS, device_id, "redact session");
}

static int pg_session_redact_ended(lw_store *base, long *n)
{
    redact_args c = {NULL, 0};
    int rc = run_op((pg_store *)base, OP_TX, "redact ended sessions", redact_body, &c);
    if (rc == LW_OK && n != NULL)
        *n = c.changed;
    return rc;
}

static int pg_session_delete_ended(lw_store *base, const char *account_id, const char *device_id,
                                   long *deleted)
{
    if (account_id == NULL)
        return LW_EINVAL;
    params p;
    p_init(&p);
    p_key(&p, account_id, KEY_ARG_MAX);
    if (device_id != NULL)
        p_key(&p, device_id, KEY_ARG_MAX);
    long n = 0;
    int rc = exec_changes((pg_store *)base, "delete ended sessions",
                          device_id != NULL ? ST_SESSION_DELETE_ONE : ST_SESSION_DELETE_ALL, &p, &n);
    if (rc != LW_OK)
        return rc;
    if (device_id != NULL && n == 0)
        return LW_ENOTFOUND;
    if (deleted != NULL)
        *deleted = n;
    return LW_OK;
}

/* ---- link requests --------------------------------------------------------- */

static int pg_link_insert(lw_store *base, const lw_link_request *r)
{
    if (r == NULL)
        return LW_EINVAL;
    params p;
    p_init(&p);
    P_KEYF(&p, r->id);
    P_BLOBF(&p, r->token_hash);
    P_KEYF(&p, r->token_selector);
    P_BLOBF(&p, r->public_key);
    p_hash_or_null(&p, r->code_hash);
    p_hash_or_null(&p, r->ref_hash);
    p_i64(&p, r->ref_index);
    p_i64(&p, r->ref_expires_at);
    p_i64(&p, r->created_at);
    p_i64(&p, r->expires_at);
    p_key(&p, r->state[0] != '\0' ? r->state : "pending", sizeof(r->state));
    P_KEYF(&p, r->account_id);
    P_KEYF(&p, r->scanned_by);
    P_BLOBF(&p, r->account_sig);
    P_BLOBF(&p, r->nonce);
    P_KEYF(&p, r->device_id);
    p_bool(&p, r->persistent);
    P_VALF(&p, r->name);
    P_VALF(&p, r->browser);
    P_VALF(&p, r->browser_version);
    P_VALF(&p, r->os);
    P_VALF(&p, r->os_version);
    P_VALF(&p, r->device_model);
    P_VALF(&p, r->ip);
    P_VALF(&p, r->country);
    P_VALF(&p, r->region);
    P_VALF(&p, r->city);
    P_VALF(&p, r->network);
    long n = 0;
    return exec_changes((pg_store *)base, "insert link request", ST_LINK_INSERT, &p, &n);
}

static int link_get_by_key(pg_store *s, int which, const char *key, lw_link_request *out)
{
    params p;
    p_init(&p);
    p_key(&p, key, KEY_ARG_MAX);
    return query_one(s, "get link request", which, &p, read_link, out);
}

static int link_get_by_hash(pg_store *s, int which, const uint8_t h[LW_HASH_LEN], lw_link_request *out)
{
    params p;
    p_init(&p);
    p_blob(&p, h, LW_HASH_LEN);
    return query_one(s, "get link request by hash", which, &p, read_link, out);
}

static int pg_link_get(lw_store *base, const char *id, lw_link_request *out)
{
    if (id == NULL || out == NULL)
        return LW_EINVAL;
    return link_get_by_key((pg_store *)base, ST_LINK_GET, id, out);
}

static int pg_link_get_by_selector(lw_store *base, const char *token_selector, lw_link_request *out)
{
    if (token_selector == NULL || out == NULL)
        return LW_EINVAL;
    return link_get_by_key((pg_store *)base, ST_LINK_GET_BY_SELECTOR, token_selector, out);
}

static int pg_link_get_by_ref(lw_store *base, const uint8_t ref_hash[LW_HASH_LEN], lw_link_request *out)
{
    if (ref_hash == NULL || out == NULL)
        return LW_EINVAL;
    return link_get_by_hash((pg_store *)base, ST_LINK_GET_BY_REF, ref_hash, out);
}

static int pg_link_get_by_code(lw_store *base, const uint8_t code_hash[LW_HASH_LEN], lw_link_request *out)
{
    if (code_hash == NULL || out == NULL)
        return LW_EINVAL;
    return link_get_by_hash((pg_store *)base, ST_LINK_GET_BY_CODE, code_hash, out);
}

static int pg_link_set_ref(lw_store *base, const char *id, const uint8_t ref_hash[LW_HASH_LEN], int ref_index,
                           int64_t ref_expires_at)
{
    pg_store *s = (pg_store *)base;
    if (id == NULL || ref_hash == NULL)
        return LW_EINVAL;
    params p;
    p_init(&p);
    p_hash_or_null(&p, ref_hash);
    p_i64(&p, ref_index);
    p_i64(&p, ref_expires_at);
    p_key(&p, id, KEY_ARG_MAX);
    long n = 0;
    int rc = exec_changes(s, "set link ref", ST_LINK_SET_REF, &p, &n);
    if (rc != LW_OK)
        return rc;
    return cas_result(s, n, ST_LINK_EXISTS, id, "set link ref");
}

static int pg_link_transition(lw_store *base, const lw_link_request *r, const char *from, const char *to)
{
    pg_store *s = (pg_store *)base;
    if (r == NULL || from == NULL || to == NULL)
        return LW_EINVAL;
    params p;
    p_init(&p);
    p_key(&p, to, KEY_ARG_MAX);
    P_KEYF(&p, r->account_id);
    P_KEYF(&p, r->scanned_by);
    P_BLOBF(&p, r->account_sig);
    P_BLOBF(&p, r->nonce);
    P_KEYF(&p, r->id);
    p_key(&p, from, KEY_ARG_MAX);
    long n = 0;
    int rc = exec_changes(s, "link transition", ST_LINK_TRANSITION, &p, &n);
    if (rc != LW_OK)
        return rc;
    return cas_result(s, n, ST_LINK_EXISTS, r->id, "link transition");
}

typedef struct link_complete_args {
    const char *request_id;
    const lw_session *sess;
    long max_companions;
    lw_ended *list; /* the sessions replaced (same key) */
    size_t count;
} link_complete_args;

static int link_complete_body(pg_op *op, void *arg)
{
    link_complete_args *c = arg;
    params p;
    PGresult *r = NULL;
    char state[16], account_id[LW_ID_STRLEN];
    int rc;

    p_init(&p);
    p_key(&p, c->request_id, KEY_ARG_MAX);
    if ((rc = op_exec(op, ST_LINK_LOCK_STATE, &p, false, &r)) != LW_OK)
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return LW_ENOTFOUND;
    }
    GET_TEXT(state, r, 0, 0);
    GET_TEXT(account_id, r, 0, 1);
    PQclear(r);
    if (strcmp(state, "approved") != 0)
        return LW_ECONFLICT;
    /* The request was approved for one account; a session for another would
     * be a device nobody signed for. */
    if (strncmp(account_id, c->sess->account_id, sizeof(account_id)) != 0) {
        log_error("link_complete: session account differs from the approved request's");
        return LW_EINVAL;
    }

    p_init(&p);
    p_key(&p, account_id, KEY_ARG_MAX);
    if ((rc = op_exec(op, ST_ACCOUNT_LOCK, &p, false, NULL)) != LW_OK)
        return rc;
    /* The same key linking again replaces its live session, before the
     * count: the replaced one frees its own slot. A rerun starts afresh. */
    c->count = 0;
    p_init(&p);
    p_key(&p, account_id, KEY_ARG_MAX);
    p_i64(&p, c->sess->linked_at);
    p_val(&p, LW_END_RELINKED, LW_REASON_MAX - 1);
    P_BLOBF(&p, c->sess->public_key);
    if ((rc = end_returning(op, ST_SESSION_END_SAME_KEY, &p, LW_END_RELINKED, &c->list, &c->count)) != LW_OK)
        return rc;
    count_params(&p, account_id, NULL);
    if ((rc = op_exec(op, ST_SESSION_COUNT_COMPANIONS, &p, false, &r)) != LW_OK)
        return rc;
    long active = PQntuples(r) > 0 ? (long)get_i64(r, 0, 0) : 0;
    PQclear(r);
    if (active >= c->max_companions)
        return LW_ELIMIT;
    if ((rc = insert_session(op, c->sess, account_id, LW_ROLE_COMPANION)) != LW_OK)
        return rc;

    p_init(&p);
    P_KEYF(&p, c->sess->id);
    p_key(&p, c->request_id, KEY_ARG_MAX);
    long n = 0;
    if ((rc = op_exec_changes(op, ST_LINK_COMPLETE, &p, &n)) != LW_OK)
        return rc;
    /* Unreachable while we hold the row lock; never commit half. */
    return n == 1 ? LW_OK : LW_ECONFLICT;
}

static int pg_link_complete(lw_store *base, const char *request_id, const lw_session *sess,
                            long max_companions, lw_ended **out, size_t *n)
{
    if (request_id == NULL || sess == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    link_complete_args c = {request_id, sess, max_companions, NULL, 0};
    int rc = run_op((pg_store *)base, OP_TX, "complete link request", link_complete_body, &c);
    if (rc != LW_OK) {
        lw_free(c.list);
        return rc;
    }
    *out = c.list;
    *n = c.count;
    return LW_OK;
}

static int pg_link_purge(lw_store *base, int64_t before, long *deleted)
{
    params p;
    p_init(&p);
    p_i64(&p, before);
    long n = 0;
    int rc = exec_changes((pg_store *)base, "purge link requests", ST_LINK_PURGE, &p, &n);
    if (rc == LW_OK && deleted != NULL)
        *deleted = n;
    return rc;
}

/* ---- alerts ---------------------------------------------------------------- */

/* The parameters of ST_ALERT_INSERT. */
static void alert_params(params *p, const lw_alert *a)
{
    p_init(p);
    P_KEYF(p, a->id);
    P_KEYF(p, a->account_id);
    P_VALF(p, a->kind);
    P_KEYF(p, a->device_id);
    p_i64(p, a->created_at);
    p_i64(p, a->acked_at);
    p_val(p, a->details[0] != '\0' ? a->details : "{}", sizeof(a->details) - 1);
    P_VALF(p, a->answer);
    P_KEYF(p, a->answered_by);
    p_i64(p, a->count > 0 ? a->count : 1);
    p_i64(p, a->updated_at > 0 ? a->updated_at : a->created_at);
}

static int pg_alert_insert(lw_store *base, const lw_alert *a)
{
    if (a == NULL)
        return LW_EINVAL;
    /* Cutting JSON would store invalid JSON: refuse an unterminated one. */
    if (strnlen(a->details, sizeof(a->details)) == sizeof(a->details))
        return LW_ETOOBIG;
    params p;
    alert_params(&p, a);
    long n = 0;
    return exec_changes((pg_store *)base, "insert alert", ST_ALERT_INSERT, &p, &n);
}

typedef struct alert_raise_args {
    const lw_alert *a;
    int64_t since;
    lw_alert *out;
} alert_raise_args;

static int alert_raise_body(pg_op *op, void *arg)
{
    alert_raise_args *c = arg;
    const lw_alert *a = c->a;
    params p;
    p_init(&p);
    P_KEYF(&p, a->account_id);
    P_VALF(&p, a->kind);
    P_KEYF(&p, a->device_id);
    p_i64(&p, c->since > 0 ? c->since : INT64_MAX);
    p_val(&p, a->details[0] != '\0' ? a->details : "{}", sizeof(a->details) - 1);
    p_i64(&p, a->created_at);
    PGresult *r = NULL;
    int rc = op_exec(op, ST_ALERT_BURST_ADD, &p, true, &r);
    if (rc != LW_OK)
        return rc;
    bool counted = PQntuples(r) > 0;
    if (counted)
        read_alert(r, 0, c->out);
    PQclear(r);
    if (counted)
        return LW_OK;
    alert_params(&p, a);
    if ((rc = op_exec(op, ST_ALERT_INSERT, &p, true, NULL)) != LW_OK)
        return rc;
    *c->out = *a;
    c->out->count = 1;
    c->out->updated_at = a->created_at;
    return LW_OK;
}

static int pg_alert_raise(lw_store *base, const lw_alert *a, int64_t since, lw_alert *out)
{
    if (a == NULL || out == NULL)
        return LW_EINVAL;
    if (strnlen(a->details, sizeof(a->details)) == sizeof(a->details))
        return LW_ETOOBIG;
    lw_alert got;
    alert_raise_args c = {a, since, &got};
    int rc = run_op((pg_store *)base, OP_TX, "raise alert", alert_raise_body, &c);
    if (rc == LW_OK)
        *out = got;
    return rc;
}

static int pg_alert_list(lw_store *base, const char *account_id, int limit, lw_alert **out, size_t *n)
{
    if (account_id == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    params p;
    p_init(&p);
    p_key(&p, account_id, KEY_ARG_MAX);
    /* No limit: the largest BIGINT, which every engine accepts (LIMIT NULL is not portable). */
    p_i64(&p, limit > 0 ? limit : INT64_MAX);
    void *arr = NULL;
    int rc =
        query_list((pg_store *)base, "list alerts", ST_ALERT_LIST, &p, sizeof(lw_alert), read_alert, &arr, n);
    if (rc == LW_OK)
        *out = arr;
    return rc;
}

static int pg_alert_get(lw_store *base, const char *account_id, const char *alert_id, lw_alert *out)
{
    if (account_id == NULL || alert_id == NULL || out == NULL)
        return LW_EINVAL;
    params p;
    p_init(&p);
    p_key(&p, alert_id, KEY_ARG_MAX);
    p_key(&p, account_id, KEY_ARG_MAX);
    return query_one((pg_store *)base, "get alert", ST_ALERT_GET, &p, read_alert, out);
}

static int pg_alert_ack(lw_store *base, const char *account_id, const char *alert_id, const char *answer,
                        const char *answered_by, int64_t now)
{
    if (account_id == NULL || alert_id == NULL || answer == NULL || answered_by == NULL)
        return LW_EINVAL;
    params p;
    p_init(&p);
    p_i64(&p, now);
    p_key(&p, alert_id, KEY_ARG_MAX);
    p_key(&p, account_id, KEY_ARG_MAX);
    p_val(&p, answer, LW_REASON_MAX - 1);
    p_key(&p, answered_by, KEY_ARG_MAX);
    long n = 0;
    int rc = exec_changes((pg_store *)base, "ack alert", ST_ALERT_ACK, &p, &n);
    if (rc != LW_OK)
        return rc;
    return n == 1 ? LW_OK : LW_ENOTFOUND;
}

/* ---- sweeper --------------------------------------------------------------- */

/* One sweep step in its own transaction, appending what it ended. On failure
 * the step is rolled back and the list left as it was. */
static int sweep_end_step(pg_store *s, int which, int64_t cutoff, const char *reason, int64_t now,
                          lw_ended **list, size_t *count)
{
    end_args c = {.which = which,
                  .cutoff = cutoff,
                  .reason = reason,
                  .now = now,
                  .list = list,
                  .count = count,
                  .before = *count};
    int rc = run_op(s, OP_TX, "sweep", end_body, &c);
    if (rc != LW_OK)
        *count = c.before;
    return rc;
}

static int sweep_delete(pg_store *s, int which, int64_t cutoff, long *deleted)
{
    params p;
    p_init(&p);
    p_i64(&p, cutoff);
    return exec_changes(s, "sweep purge", which, &p, deleted);
}

static int pg_sweep(lw_store *base, const lw_sweep_policy *pol, lw_ended **out, size_t *n, long *purged)
{
    pg_store *s = (pg_store *)base;
    if (pol == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    lw_ended *list = NULL;
    size_t count = 0;
    long gone = 0, alerts_gone = 0;
    int rc;

    /* Order matters only for the reason a session gets when several apply:
     * its own inactivity first, then its primary's, then the absolute age. */
    if ((rc = sweep_end_step(s, ST_SWEEP_INACTIVE, pol->now, "inactive", pol->now, &list, &count)) != LW_OK)
        goto fail;
    if (pol->primary_inactive_ms > 0 &&
        (rc = sweep_end_step(s, ST_SWEEP_PRIMARY_INACTIVE, pol->now - pol->primary_inactive_ms,
                             "primary_inactive", pol->now, &list, &count)) != LW_OK)
        goto fail;
    if (pol->max_age_ms > 0 && (rc = sweep_end_step(s, ST_SWEEP_MAX_AGE, pol->now - pol->max_age_ms,
                                                    "max_age", pol->now, &list, &count)) != LW_OK)
        goto fail;
    if (pol->ephemeral_idle_ms > 0 &&
        (rc = sweep_end_step(s, ST_SWEEP_EPHEMERAL, pol->now - pol->ephemeral_idle_ms, "inactive", pol->now,
                             &list, &count)) != LW_OK)
        goto fail;
    if (pol->history_retention_ms > 0) {
        int64_t cutoff = pol->now - pol->history_retention_ms;
        if ((rc = sweep_delete(s, ST_SWEEP_PURGE_SESSIONS, cutoff, &gone)) != LW_OK)
            goto fail;
        if ((rc = sweep_delete(s, ST_SWEEP_PURGE_ALERTS, cutoff, &alerts_gone)) != LW_OK)
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

/* ---- settings -------------------------------------------------------------- */

typedef struct text_out {
    char *dst;
    size_t cap;
    bool fits;
} text_out;

static void read_text(const PGresult *r, int row, void *out)
{
    text_out *t = out;
    t->fits = (size_t)PQgetlength(r, row, 0) < t->cap;
    get_text(t->dst, t->cap, r, row, 0);
}

static int pg_setting_get(lw_store *base, const char *name, char *out, size_t cap)
{
    if (name == NULL || out == NULL || cap == 0)
        return LW_EINVAL;
    params p;
    p_init(&p);
    p_key(&p, name, LW_SETTING_NAME_MAX);
    text_out t = {out, cap, false};
    int rc = query_one((pg_store *)base, "read setting", ST_SETTING_GET, &p, read_text, &t);
    if (rc == LW_OK && !t.fits) {
        log_error("a stored setting is longer than its bound");
        return LW_ETOOBIG;
    }
    return rc;
}

static int pg_setting_put(lw_store *base, const char *name, const char *value)
{
    if (name == NULL || value == NULL || strlen(name) >= LW_SETTING_NAME_MAX ||
        strlen(value) >= LW_SETTING_VALUE_MAX)
        return LW_EINVAL;
    params p;
    p_init(&p);
    p_key(&p, name, LW_SETTING_NAME_MAX);
    p_key(&p, value, LW_SETTING_VALUE_MAX);
    long changed = 0;
    return exec_changes((pg_store *)base, "write setting", ST_SETTING_PUT, &p, &changed);
}

/* ---- stats and backup ------------------------------------------------------ */

static int pg_stats(lw_store *base, lw_store_stats *out)
{
    if (out == NULL)
        return LW_EINVAL;
    params p;
    p_init(&p);
    return query_one((pg_store *)base, "stats", ST_STATS, &p, read_stats, out);
}

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
    int len = snprintf(msg, sizeof(msg),
                       "database schema version %d is newer than this build knows (%d); "
                       "refusing to open it, upgrade linkward",
                       found, SCHEMA_VERSION);
    log_error(len > 0 && (size_t)len < sizeof(msg) ? msg : "database schema is newer than this build knows");
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
    s->base.ops = &lw_store_pg_ops;
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
    *out = &s->base;
    return LW_OK;
fail:
    pg_close(&s->base);
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
    .account_create = pg_account_create,
    .account_get = pg_account_get,
    .account_get_by_handle = pg_account_get_by_handle,
    .account_update = pg_account_update,
    .account_delete = pg_account_delete,
    .invite_create = pg_invite_create,
    .session_get = pg_session_get,
    .session_get_by_selector = pg_session_get_by_selector,
    .session_list = pg_session_list,
    .session_count_active_companions = pg_session_count_active_companions,
    .account_places = pg_account_places,
    .session_set_credential = pg_session_set_credential,
    .session_set_name = pg_session_set_name,
    .session_touch = pg_session_touch,
    .session_end = pg_session_end,
    .session_end_all = pg_session_end_all,
    .session_end_every = pg_session_end_every,
    .session_redact = pg_session_redact,
    .session_redact_ended = pg_session_redact_ended,
    .session_delete_ended = pg_session_delete_ended,
    .link_insert = pg_link_insert,
    .link_get = pg_link_get,
    .link_get_by_selector = pg_link_get_by_selector,
    .link_get_by_ref = pg_link_get_by_ref,
    .link_get_by_code = pg_link_get_by_code,
    .link_set_ref = pg_link_set_ref,
    .link_transition = pg_link_transition,
    .link_complete = pg_link_complete,
    .link_purge = pg_link_purge,
    .alert_insert = pg_alert_insert,
    .alert_raise = pg_alert_raise,
    .alert_list = pg_alert_list,
    .alert_get = pg_alert_get,
    .alert_ack = pg_alert_ack,
    .sweep = pg_sweep,
    .stats = pg_stats,
    .setting_get = pg_setting_get,
    .setting_put = pg_setting_put,
    .backup = pg_backup,
};
