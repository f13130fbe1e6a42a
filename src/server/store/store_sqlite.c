/*
 * store_sqlite.c — the SQLite 3 backend of store.h.
 *
 * One connection, owned by the event loop. WAL journal so readers (backups,
 * the CLI's stats through the API) never block the writer; synchronous=NORMAL
 * because in WAL mode it only risks the last transactions on power loss, never
 * corruption. The schema is built by numbered migrations kept below; the
 * database's PRAGMA user_version says how many have been applied.
 *
 * Every statement is prepared once at open and cached in the struct; each use
 * binds parameters, steps, then resets and clears the bindings, so no value
 * ever reaches SQL text.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

/* How long a statement waits for another connection's lock (a backup, the
 * sqlite3 shell) before giving up with SQLITE_BUSY. */
#define BUSY_TIMEOUT_MS 5000

/* WAL pages after which a commit asks the checkpointer thread for a
 * checkpoint (SQLite's own autocheckpoint default), and after which the
 * loop runs one itself should that thread fall far behind. */
#define CHECKPOINT_PAGES 1000
#define CHECKPOINT_INLINE_PAGES 50000

/* Lookup keys longer than this cannot be real ids, selectors or handles. */
#define KEY_ARG_MAX 1024

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
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

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
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_USER_VERSION,
    ST_DATA_VERSION,
    ST_ACCOUNT_INSERT,
    ST_ACCOUNT_GET,
    ST_ACCOUNT_GET_BY_HANDLE,
    ST_ACCOUNT_UPDATE,
    ST_ACCOUNT_DELETE,
    ST_ACCOUNT_DELETE_SESSIONS,
    ST_ACCOUNT_DELETE_LINKS,
    ST_ACCOUNT_DELETE_ALERTS,
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
    ST_SESSION_END_ALL_SELECT,
    ST_SESSION_END_ALL,
    ST_SESSION_END_EVERY_SELECT,
    ST_SESSION_SAME_KEY_SELECT,
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
    ST_LINK_STATE,
    ST_LINK_COMPLETE,
    ST_LINK_PURGE,
    ST_ALERT_INSERT,
    ST_ALERT_LIST,
    ST_ALERT_GET,
    ST_ALERT_ACK,
    ST_ALERT_BURST_FIND,
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

static const char *const sql_text[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_USER_VERSION] = "PRAGMA user_version",
    [ST_DATA_VERSION] = "PRAGMA data_version",

    [ST_ACCOUNT_INSERT] = "INSERT INTO accounts (" ACCOUNT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_ACCOUNT_GET] = "SELECT " ACCOUNT_COLS " FROM accounts WHERE id = ?1",
    [ST_ACCOUNT_GET_BY_HANDLE] = "SELECT " ACCOUNT_COLS " FROM accounts WHERE handle = ?1",
    [ST_ACCOUNT_UPDATE] = "UPDATE accounts SET pin_hash = ?1, pin_failures = ?2, pin_locked_until = ?3,"
                          " inactive_ttl_ms = ?4, pin_change_required = ?6 WHERE id = ?5",

    /* Children first, then the account: explicit rather than trusting the
     * cascade, and link requests have no foreign key (account_id is '' until
     * a scan). link_requests has no index on account_id: the table holds only
     * requests younger than the purge age, so the scan is small. */
    [ST_ACCOUNT_DELETE] = "DELETE FROM accounts WHERE id = ?1",
    [ST_ACCOUNT_DELETE_SESSIONS] = "DELETE FROM sessions WHERE account_id = ?1",
    [ST_ACCOUNT_DELETE_LINKS] = "DELETE FROM link_requests WHERE account_id = ?1",
    [ST_ACCOUNT_DELETE_ALERTS] = "DELETE FROM alerts WHERE account_id = ?1",

    [ST_INVITE_INSERT] = "INSERT INTO invites (hash, expires_at, handle) VALUES (?1, ?2, ?3)",
    /* Handles are stored normalised (lower case), both here and in accounts. */
    [ST_INVITE_CONSUME] = "UPDATE invites SET used_at = ?2"
                          " WHERE hash = ?1 AND used_at = 0 AND expires_at > ?2"
                          " AND (handle = '' OR handle = ?3 COLLATE NOCASE)",

    /* A session is always born active; state, ended_at and end_reason are not the caller's. */
    [ST_SESSION_INSERT] =
        "INSERT INTO sessions (" SESSION_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
        " ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21,"
        " 'active', 0, '', ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34)",
    [ST_SESSION_GET] = "SELECT " SESSION_COLS " FROM sessions WHERE id = ?1",
    [ST_SESSION_GET_BY_SELECTOR] =
        "SELECT " SESSION_COLS " FROM sessions"
        " WHERE cred_selector = ?1 ORDER BY state = 'active' DESC, ended_at DESC LIMIT 1",
    [ST_SESSION_EXISTS] = "SELECT 1 FROM sessions WHERE id = ?1",
    [ST_SESSION_LIST] = "SELECT " SESSION_COLS " FROM sessions WHERE account_id = ?1 AND state = ?2"
                        " ORDER BY linked_at, id",
    [ST_SESSION_COUNT_COMPANIONS] = "SELECT count(*) FROM sessions"
                                    " WHERE account_id = ?1 AND state = 'active' AND role = 'companion'"
                                    " AND (?2 IS NULL OR public_key <> ?2)",
    /* 2: some session was in ?2; 1: none was, but some has a country; 0: none has one. */
    [ST_PLACES_COUNTRY] = "SELECT CASE"
                          " WHEN EXISTS (SELECT 1 FROM sessions WHERE account_id = ?1"
                          "              AND ?2 <> '' AND (country = ?2 OR last_country = ?2)) THEN 2"
                          " WHEN EXISTS (SELECT 1 FROM sessions WHERE account_id = ?1"
                          "              AND (country <> '' OR last_country <> '')) THEN 1"
                          " ELSE 0 END",
    [ST_PLACES_PRIMARY] = "SELECT country, last_country, has_loc, lat, lon, last_has_loc, last_lat, last_lon"
                          " FROM sessions WHERE account_id = ?1 AND role = 'primary' AND state = 'active'"
                          " ORDER BY linked_at, id LIMIT 1",
    [ST_SESSION_SET_CRED] = "UPDATE sessions SET cred_selector = ?1, cred_hash = ?2, cred_expires_at = ?3,"
                            " challenge = ?4 WHERE id = ?5 AND state = 'active'",
    [ST_SESSION_SET_NAME] = "UPDATE sessions SET name = ?1 WHERE id = ?2",
    /* Writes are coalesced by the caller and may arrive out of order: never move
     * last_active_at backwards, and keep the place with the newest time. A
     * touch without a place (?2 NULL) only moves the time. */
    [ST_SESSION_TOUCH] =
        "UPDATE sessions SET"
        " last_ip = CASE WHEN ?1 >= last_active_at AND ?2 IS NOT NULL THEN ?2 ELSE last_ip END,"
        " last_country = CASE WHEN ?1 >= last_active_at AND ?2 IS NOT NULL THEN ?4"
        "   ELSE last_country END,"
        " last_city = CASE WHEN ?1 >= last_active_at AND ?2 IS NOT NULL THEN ?5 ELSE last_city END,"
        " last_region = CASE WHEN ?1 >= last_active_at AND ?2 IS NOT NULL THEN ?9"
        "   ELSE last_region END,"
        " last_network = CASE WHEN ?1 >= last_active_at AND ?2 IS NOT NULL THEN ?10"
        "   ELSE last_network END,"
        " last_lat = CASE WHEN ?1 >= last_active_at AND ?2 IS NOT NULL THEN ?6 ELSE last_lat END,"
        " last_lon = CASE WHEN ?1 >= last_active_at AND ?2 IS NOT NULL THEN ?7 ELSE last_lon END,"
        " last_has_loc = CASE WHEN ?1 >= last_active_at AND ?2 IS NOT NULL THEN ?8"
        "   ELSE last_has_loc END,"
        " last_active_at = max(last_active_at, ?1)"
        " WHERE id = ?3 AND state = 'active'",
    [ST_SESSION_END] = "UPDATE sessions SET state = 'ended', ended_at = ?1, end_reason = ?2"
                       " WHERE id = ?3 AND state = 'active'",
    [ST_SESSION_END_ALL_SELECT] = "SELECT id, account_id FROM sessions"
                                  " WHERE account_id = ?1 AND state = 'active'"
                                  " AND (?2 IS NULL OR role = ?2) AND (?3 IS NULL OR id <> ?3)"
                                  " ORDER BY linked_at, id",
    /* The same rows as the select above, in one statement (a logout-all of
     * 1,000 devices was 1,000 UPDATEs by id: most of its time). */
    [ST_SESSION_END_ALL] = "UPDATE sessions SET state = 'ended', ended_at = ?4, end_reason = ?5"
                           " WHERE account_id = ?1 AND state = 'active'"
                           " AND (?2 IS NULL OR role = ?2) AND (?3 IS NULL OR id <> ?3)",
    [ST_SESSION_END_EVERY_SELECT] = "SELECT id, account_id FROM sessions"
                                    " WHERE state = 'active' AND (?1 IS NULL OR role = ?1)"
                                    " ORDER BY account_id, linked_at, id",
    /* The sessions a completion replaces: the account's live companions with the same key. */
    [ST_SESSION_SAME_KEY_SELECT] = "SELECT id, account_id FROM sessions"
                                   " WHERE account_id = ?1 AND state = 'active' AND role = 'companion'"
                                   " AND public_key = ?2 ORDER BY linked_at, id",
#define REDACT_SET                                                                                           \
    "SET ip = '', region = '', city = '', last_ip = '', last_region = '', last_city = '', lat = 0, lon = 0," \
    " has_loc = 0, last_lat = 0, last_lon = 0, last_has_loc = 0, redacted = 1"
    [ST_SESSION_REDACT] = "UPDATE sessions " REDACT_SET " WHERE id = ?1 AND state = 'ended'",
    [ST_SESSION_REDACT_ENDED] = "UPDATE sessions " REDACT_SET " WHERE state = 'ended' AND redacted = 0",
/* The addresses alerts about a device carry (risk.c, api_link.c,
 * api_session.c put them under these keys). */
#define REDACT_DETAILS "details = json_remove(details, '$.ip', '$.from_ip', '$.to_ip')"
    [ST_ALERT_REDACT_DEVICE] = "UPDATE alerts SET " REDACT_DETAILS " WHERE device_id = ?1",
    /* Before ST_SESSION_REDACT_ENDED, in the same transaction: these are the
     * devices it is about to mark. */
    [ST_ALERT_REDACT_ENDED] = "UPDATE alerts SET " REDACT_DETAILS " WHERE device_id <> '' AND device_id IN"
                              " (SELECT id FROM sessions WHERE state = 'ended' AND redacted = 0)",
    [ST_SESSION_DELETE_ONE] = "DELETE FROM sessions WHERE account_id = ?1 AND id = ?2 AND state = 'ended'",
    [ST_SESSION_DELETE_ALL] = "DELETE FROM sessions WHERE account_id = ?1 AND state = 'ended'",

    [ST_LINK_INSERT] = "INSERT INTO link_requests (" LINK_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
                       " ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24,"
                       " ?25, ?26, ?27, ?28)",
    [ST_LINK_GET] = "SELECT " LINK_COLS " FROM link_requests WHERE id = ?1",
    [ST_LINK_GET_BY_SELECTOR] = "SELECT " LINK_COLS " FROM link_requests WHERE token_selector = ?1",
    [ST_LINK_GET_BY_REF] = "SELECT " LINK_COLS " FROM link_requests WHERE ref_hash = ?1",
    [ST_LINK_GET_BY_CODE] = "SELECT " LINK_COLS " FROM link_requests WHERE code_hash = ?1",
    [ST_LINK_EXISTS] = "SELECT 1 FROM link_requests WHERE id = ?1",
    [ST_LINK_SET_REF] = "UPDATE link_requests SET ref_hash = ?1, ref_index = ?2, ref_expires_at = ?3"
                        " WHERE id = ?4 AND state = 'pending'",
    /* The ref and code hashes stay after 'pending', so a second scan is told
     * "already used" rather than "unknown"; purging removes them. */
    [ST_LINK_TRANSITION] = "UPDATE link_requests SET state = ?1, account_id = ?2, scanned_by = ?3,"
                           " account_sig = ?4, nonce = ?5"
                           " WHERE id = ?6 AND state = ?7",
    [ST_LINK_STATE] = "SELECT state, account_id FROM link_requests WHERE id = ?1",
    [ST_LINK_COMPLETE] = "UPDATE link_requests SET state = 'completed', device_id = ?1"
                         " WHERE id = ?2 AND state = 'approved'",
    /* A request cannot be acted on after expires_at, so whatever state it is
     * in, it has ended by then: expires_at bounds its end from above. */
    [ST_LINK_PURGE] = "DELETE FROM link_requests WHERE expires_at < ?1",

    [ST_ALERT_INSERT] =
        "INSERT INTO alerts (" ALERT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [ST_ALERT_BURST_FIND] =
        "SELECT " ALERT_COLS " FROM alerts WHERE account_id = ?1 AND kind = ?2 AND device_id = ?3"
        " AND answer = '' AND updated_at >= ?4 ORDER BY updated_at DESC, rowid DESC LIMIT 1",
    [ST_ALERT_BURST_ADD] = "UPDATE alerts SET burst_count = burst_count + 1, details = ?1, updated_at = ?2"
                           " WHERE id = ?3",
    [ST_ALERT_LIST] = "SELECT " ALERT_COLS " FROM alerts WHERE account_id = ?1"
                      " ORDER BY created_at DESC, rowid DESC LIMIT ?2",
    [ST_ALERT_GET] = "SELECT " ALERT_COLS " FROM alerts WHERE id = ?1 AND account_id = ?2",
    /* Acknowledging twice keeps the first time; "it was me" gives way to a
     * protective answer given later, never the reverse; who answered goes
     * with the answer (the CASEs read the row as it was). */
    [ST_ALERT_ACK] = "UPDATE alerts SET acked_at = CASE WHEN acked_at = 0 THEN ?1 ELSE acked_at END,"
                     " answer = CASE WHEN answer IN ('', 'it_was_me') THEN ?4 ELSE answer END,"
                     " answered_by = CASE WHEN answer IN ('', 'it_was_me') THEN ?5 ELSE answered_by END"
                     " WHERE id = ?2 AND account_id = ?3",

    [ST_SWEEP_INACTIVE] =
        "SELECT s.id, s.account_id FROM sessions s JOIN accounts a ON a.id = s.account_id"
        " WHERE s.state = 'active' AND s.role = 'companion' AND a.inactive_ttl_ms > 0"
        " AND s.last_active_at < ?1 - a.inactive_ttl_ms"
        /* Nothing idle for less than the shortest TTL can be due: a range on
         * (role, last_active_at) instead of a scan of every session. */
        " AND s.last_active_at < ?1 - (SELECT coalesce(min(inactive_ttl_ms), 0) FROM accounts"
        "                             WHERE inactive_ttl_ms > 0)"
        " ORDER BY s.account_id, s.linked_at",
    /* The newest primary of the account counts, ended or not: after an account
     * reset the old primary is ended and a new one carries on. */
    /* A join with the accounts whose primaries were last seen too long ago,
     * not a subquery per companion (quadratic in a big account). */
    [ST_SWEEP_PRIMARY_INACTIVE] =
        "SELECT c.id, c.account_id FROM sessions c"
        " JOIN (SELECT DISTINCT p.account_id FROM sessions p"
        "       WHERE p.role = 'primary' AND p.last_active_at < ?1"
        "       AND NOT EXISTS (SELECT 1 FROM sessions q WHERE q.account_id = p.account_id"
        "                       AND q.role = 'primary' AND q.last_active_at >= ?1)) p"
        " ON p.account_id = c.account_id"
        " WHERE c.state = 'active' AND c.role = 'companion'"
        " ORDER BY c.account_id, c.linked_at",
    [ST_SWEEP_MAX_AGE] = "SELECT id, account_id FROM sessions"
                         " WHERE state = 'active' AND role = 'companion' AND linked_at < ?1"
                         " ORDER BY account_id, linked_at",
    /* A browser that did not ask to stay signed in lost its cookie when it
     * closed: nobody will use that session again. */
    [ST_SWEEP_EPHEMERAL] = "SELECT id, account_id FROM sessions"
                           " WHERE state = 'active' AND role = 'companion' AND last_active_at < ?1"
                           " AND persistent = 0 ORDER BY account_id, linked_at",
    [ST_SWEEP_PURGE_SESSIONS] = "DELETE FROM sessions WHERE state = 'ended' AND ended_at < ?1",
    [ST_SWEEP_PURGE_ALERTS] = "DELETE FROM alerts WHERE created_at < ?1",

    [ST_STATS] = "SELECT (SELECT count(*) FROM accounts),"
                 " (SELECT count(*) FROM sessions WHERE state = 'active'),"
                 " (SELECT count(*) FROM sessions WHERE state = 'ended'),"
                 " (SELECT count(*) FROM link_requests WHERE state IN ('pending', 'scanned', 'approved')),"
                 " (SELECT count(*) FROM alerts)",
    [ST_SETTING_GET] = "SELECT value FROM settings WHERE name = ?1",
    [ST_SETTING_PUT] = "INSERT INTO settings (name, value) VALUES (?1, ?2)"
                       " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
};

typedef struct sqlite_store {
    lw_store base; /* first: the wrappers cast lw_store * to this */
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
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

/* Appends s to line as JSON string content, stopping quietly when full. */
static void json_append(char *line, size_t cap, size_t *len, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
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
    json_append(line, room, &len, msg);
    if (db != NULL && len + sizeof(mid) - 1 < room) {
        memcpy(line + len, mid, sizeof(mid) - 1);
        len += sizeof(mid) - 1;
        json_append(line, room, &len, sqlite3_errmsg(db));
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

/* Copies a text column into a fixed array, bounded and NUL-terminated. */
static void col_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const char *t = (const char *)sqlite3_column_text(st, col);
    size_t len = (size_t)sqlite3_column_bytes(st, col);
    size_t n = t == NULL ? 0 : utf8_bound(t, len, cap - 1);
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

/* Binds parameters ?1, ?2, ... in order and keeps the first error, so a long
 * run of binds is checked once. Strings are bound SQLITE_STATIC: every
 * statement is reset before the function that bound it returns. */
typedef struct binder {
    sqlite3_stmt *st;
    int i;
    int rc;
} binder;

static binder bind_start(sqlite_store *s, int which)
{
    return (binder){s->st[which], 0, SQLITE_OK};
}

/* A lookup key (id, selector, handle): bound whole, never truncated, so a
 * long input cannot turn into someone else's key. NULL binds SQL NULL. */
static void b_key(binder *b, const char *v, size_t cap)
{
    b->i++;
    if (b->rc != SQLITE_OK)
        return;
    if (v == NULL)
        b->rc = sqlite3_bind_null(b->st, b->i);
    else
        b->rc = sqlite3_bind_text(b->st, b->i, v, (int)strnlen(v, cap), SQLITE_STATIC);
}

/* A value: cut to max bytes on a character boundary, so it always fits the
 * array it is read back into. NULL binds SQL NULL. */
static void b_val(binder *b, const char *v, size_t max)
{
    b->i++;
    if (b->rc != SQLITE_OK)
        return;
    if (v == NULL) {
        b->rc = sqlite3_bind_null(b->st, b->i);
        return;
    }
    size_t n = utf8_bound(v, strnlen(v, max + 1), max);
    b->rc = sqlite3_bind_text(b->st, b->i, v, (int)n, SQLITE_STATIC);
}

static void b_blob(binder *b, const void *p, size_t n)
{
    b->i++;
    if (b->rc == SQLITE_OK)
        b->rc = sqlite3_bind_blob(b->st, b->i, p, (int)n, SQLITE_STATIC);
}

/* Hashes with unique indexes: all zeros means "none" and is stored as NULL. */
static void b_hash_or_null(binder *b, const uint8_t h[LW_HASH_LEN])
{
    uint8_t acc = 0;
    for (size_t k = 0; k < LW_HASH_LEN; k++)
        acc |= h[k];
    if (acc != 0) {
        b_blob(b, h, LW_HASH_LEN);
        return;
    }
    b->i++;
    if (b->rc == SQLITE_OK)
        b->rc = sqlite3_bind_null(b->st, b->i);
}

static void b_i64(binder *b, int64_t v)
{
    b->i++;
    if (b->rc == SQLITE_OK)
        b->rc = sqlite3_bind_int64(b->st, b->i, v);
}

static void b_f64(binder *b, double v)
{
    b->i++;
    if (b->rc == SQLITE_OK)
        b->rc = sqlite3_bind_double(b->st, b->i, v);
}

#define B_KEYF(b, f) b_key((b), (f), sizeof(f))
#define B_VALF(b, f) b_val((b), (f), sizeof(f) - 1)
#define B_BLOBF(b, f) b_blob((b), (f), sizeof(f))

/* ---- statement execution --------------------------------------------------- */

static void st_reset(sqlite3_stmt *st)
{
    /* Both only report the error of the last step, already handled by the caller. */
    (void)sqlite3_reset(st);
    (void)sqlite3_clear_bindings(st);
}

static int bind_check(sqlite_store *s, binder *b, const char *what)
{
    if (b->rc == SQLITE_OK)
        return LW_OK;
    int rc = fail_rc(s, b->rc, what);
    st_reset(b->st);
    return rc;
}

/* Runs a bound statement that returns no rows. */
static int exec_bound(sqlite_store *s, binder *b, const char *what)
{
    int rc = bind_check(s, b, what);
    if (rc != LW_OK)
        return rc;
    int src = sqlite3_step(b->st);
    rc = (src == SQLITE_DONE || src == SQLITE_ROW) ? LW_OK : fail_rc(s, src, what);
    st_reset(b->st);
    return rc;
}

static int exec_plain(sqlite_store *s, int which, const char *what)
{
    binder b = bind_start(s, which);
    return exec_bound(s, &b, what);
}

typedef void (*row_reader)(sqlite3_stmt *st, void *out);

/* Runs a bound query for one row: read into out on LW_OK, LW_ENOTFOUND if none. */
static int query_one(sqlite_store *s, binder *b, const char *what, row_reader read, void *out)
{
    int rc = bind_check(s, b, what);
    if (rc != LW_OK)
        return rc;
    int src = sqlite3_step(b->st);
    if (src == SQLITE_ROW) {
        read(b->st, out);
        rc = LW_OK;
    } else if (src == SQLITE_DONE) {
        rc = LW_ENOTFOUND;
    } else {
        rc = fail_rc(s, src, what);
    }
    st_reset(b->st);
    return rc;
}

/* Runs a bound query and collects every row into a fresh lw_malloc'd array
 * of elem-sized records (NULL when there are none). */
static int query_list(sqlite_store *s, binder *b, const char *what, size_t elem, row_reader read, void **out,
                      size_t *n)
{
    char *arr = NULL;
    size_t count = 0, cap = 0;
    int rc = bind_check(s, b, what);
    if (rc != LW_OK)
        return rc;
    for (;;) {
        int src = sqlite3_step(b->st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = fail_rc(s, src, what);
            goto fail;
        }
        if (count == cap) {
            size_t ncap = cap == 0 ? 8 : cap * 2;
            if (ncap > SIZE_MAX / elem) {
                rc = LW_ENOMEM;
                goto fail;
            }
            char *grown = lw_realloc(arr, ncap * elem);
            if (grown == NULL) {
                log_error(NULL, "out of memory listing rows");
                rc = LW_ENOMEM;
                goto fail;
            }
            arr = grown;
            cap = ncap;
        }
        read(b->st, arr + count * elem);
        count++;
    }
    st_reset(b->st);
    *out = arr;
    *n = count;
    return LW_OK;
fail:
    st_reset(b->st);
    lw_free(arr);
    return rc;
}

/* LW_OK if the row named by id exists in the table `which` checks, else LW_ENOTFOUND. */
static int row_exists(sqlite_store *s, int which, const char *id, const char *what)
{
    binder b = bind_start(s, which);
    b_key(&b, id, KEY_ARG_MAX);
    int rc = bind_check(s, &b, what);
    if (rc != LW_OK)
        return rc;
    int src = sqlite3_step(b.st);
    rc = src == SQLITE_ROW ? LW_OK : src == SQLITE_DONE ? LW_ENOTFOUND : fail_rc(s, src, what);
    st_reset(b.st);
    return rc;
}

/* After a compare-and-set UPDATE: one row changed is success; none means the
 * row is either gone (LW_ENOTFOUND) or no longer in the expected state. */
static int cas_result(sqlite_store *s, int exists_stmt, const char *id, const char *what)
{
    if (sqlite3_changes(s->db) == 1)
        return LW_OK;
    int rc = row_exists(s, exists_stmt, id, what);
    return rc == LW_OK ? LW_ECONFLICT : rc;
}

/* ---- transactions ---------------------------------------------------------- */

/* IMMEDIATE takes the write lock up front, so a transaction that read a row
 * cannot lose a race to another connection before it writes. */
static int tx_begin(sqlite_store *s)
{
    return exec_plain(s, ST_BEGIN, "begin transaction");
}

static int tx_commit(sqlite_store *s)
{
    return exec_plain(s, ST_COMMIT, "commit");
}

/* Safe to call whether or not a transaction is open (SQLite rolls some back
 * by itself on errors). */
static void tx_rollback(sqlite_store *s)
{
    if (sqlite3_get_autocommit(s->db))
        return;
    int rc = sqlite3_step(s->st[ST_ROLLBACK]);
    if (rc != SQLITE_DONE)
        log_error(s->db, "rollback failed");
    st_reset(s->st[ST_ROLLBACK]);
}

/* ---- row readers ----------------------------------------------------------- */

static void read_account(sqlite3_stmt *st, void *out)
{
    lw_account *a = out;
    memset(a, 0, sizeof(*a));
    COL_TEXT(a->id, st, 0);
    COL_TEXT(a->handle, st, 1);
    a->created_at = sqlite3_column_int64(st, 2);
    COL_TEXT(a->pin_hash, st, 3);
    a->pin_failures = sqlite3_column_int(st, 4);
    a->pin_locked_until = sqlite3_column_int64(st, 5);
    a->inactive_ttl_ms = sqlite3_column_int64(st, 6);
    a->pin_change_required = sqlite3_column_int(st, 7) != 0;
}

static void read_session(sqlite3_stmt *st, void *out)
{
    lw_session *x = out;
    memset(x, 0, sizeof(*x));
    COL_TEXT(x->id, st, 0);
    COL_TEXT(x->account_id, st, 1);
    COL_TEXT(x->role, st, 2);
    COL_TEXT(x->name, st, 3);
    COL_TEXT(x->browser, st, 4);
    COL_TEXT(x->browser_version, st, 5);
    COL_TEXT(x->os, st, 6);
    COL_TEXT(x->os_version, st, 7);
    COL_TEXT(x->device_model, st, 8);
    COL_TEXT(x->ip, st, 9);
    COL_TEXT(x->country, st, 10);
    COL_TEXT(x->region, st, 11);
    COL_TEXT(x->city, st, 12);
    COL_TEXT(x->network, st, 13);
    COL_TEXT(x->last_ip, st, 14);
    COL_TEXT(x->last_country, st, 15);
    COL_TEXT(x->last_city, st, 16);
    COL_BLOB(x->public_key, st, 17);
    COL_BLOB(x->account_sig, st, 18);
    x->linked_at = sqlite3_column_int64(st, 19);
    x->last_active_at = sqlite3_column_int64(st, 20);
    COL_TEXT(x->state, st, 21);
    x->ended_at = sqlite3_column_int64(st, 22);
    COL_TEXT(x->end_reason, st, 23);
    x->persistent = sqlite3_column_int64(st, 24) != 0;
    COL_TEXT(x->cred_selector, st, 25);
    COL_BLOB(x->cred_hash, st, 26);
    x->cred_expires_at = sqlite3_column_int64(st, 27);
    COL_BLOB(x->challenge, st, 28);
    x->lat = sqlite3_column_double(st, 29);
    x->lon = sqlite3_column_double(st, 30);
    x->has_loc = sqlite3_column_int(st, 31) != 0;
    x->last_lat = sqlite3_column_double(st, 32);
    x->last_lon = sqlite3_column_double(st, 33);
    x->last_has_loc = sqlite3_column_int(st, 34) != 0;
    COL_TEXT(x->last_region, st, 35);
    COL_TEXT(x->last_network, st, 36);
}

static void read_link(sqlite3_stmt *st, void *out)
{
    lw_link_request *r = out;
    memset(r, 0, sizeof(*r));
    COL_TEXT(r->id, st, 0);
    COL_BLOB(r->token_hash, st, 1);
    COL_TEXT(r->token_selector, st, 2);
    COL_BLOB(r->public_key, st, 3);
    COL_BLOB(r->code_hash, st, 4);
    COL_BLOB(r->ref_hash, st, 5);
    r->ref_index = sqlite3_column_int(st, 6);
    r->ref_expires_at = sqlite3_column_int64(st, 7);
    r->created_at = sqlite3_column_int64(st, 8);
    r->expires_at = sqlite3_column_int64(st, 9);
    COL_TEXT(r->state, st, 10);
    COL_TEXT(r->account_id, st, 11);
    COL_TEXT(r->scanned_by, st, 12);
    COL_BLOB(r->account_sig, st, 13);
    COL_BLOB(r->nonce, st, 14);
    COL_TEXT(r->device_id, st, 15);
    r->persistent = sqlite3_column_int64(st, 16) != 0;
    COL_TEXT(r->name, st, 17);
    COL_TEXT(r->browser, st, 18);
    COL_TEXT(r->browser_version, st, 19);
    COL_TEXT(r->os, st, 20);
    COL_TEXT(r->os_version, st, 21);
    COL_TEXT(r->device_model, st, 22);
    COL_TEXT(r->ip, st, 23);
    COL_TEXT(r->country, st, 24);
    COL_TEXT(r->region, st, 25);
    COL_TEXT(r->city, st, 26);
    COL_TEXT(r->network, st, 27);
}

static void read_alert(sqlite3_stmt *st, void *out)
{
    lw_alert *a = out;
    memset(a, 0, sizeof(*a));
    COL_TEXT(a->id, st, 0);
    COL_TEXT(a->account_id, st, 1);
    COL_TEXT(a->kind, st, 2);
    COL_TEXT(a->device_id, st, 3);
    a->created_at = sqlite3_column_int64(st, 4);
    a->acked_at = sqlite3_column_int64(st, 5);
    COL_TEXT(a->details, st, 6);
    COL_TEXT(a->answer, st, 7);
    COL_TEXT(a->answered_by, st, 8);
    a->count = (int)sqlite3_column_int64(st, 9);
    a->updated_at = sqlite3_column_int64(st, 10);
}

/* The (id, account_id) pairs the end-all and sweep queries select. */
static void read_ended(sqlite3_stmt *st, void *out)
{
    lw_ended *e = out;
    memset(e, 0, sizeof(*e));
    COL_TEXT(e->device_id, st, 0);
    COL_TEXT(e->account_id, st, 1);
}

static void read_long(sqlite3_stmt *st, void *out)
{
    *(long *)out = (long)sqlite3_column_int64(st, 0);
}

static void read_int(sqlite3_stmt *st, void *out)
{
    *(int *)out = sqlite3_column_int(st, 0);
}

/* ---- accounts and invites -------------------------------------------------- */

/* Inserts a new active session; role and account are the caller's decision,
 * not whatever the struct says. */
static int insert_session(sqlite_store *s, const lw_session *x, const char *account_id, const char *role)
{
    binder b = bind_start(s, ST_SESSION_INSERT);
    B_KEYF(&b, x->id);
    b_key(&b, account_id, KEY_ARG_MAX);
    b_key(&b, role, KEY_ARG_MAX);
    B_VALF(&b, x->name);
    B_VALF(&b, x->browser);
    B_VALF(&b, x->browser_version);
    B_VALF(&b, x->os);
    B_VALF(&b, x->os_version);
    B_VALF(&b, x->device_model);
    B_VALF(&b, x->ip);
    B_VALF(&b, x->country);
    B_VALF(&b, x->region);
    B_VALF(&b, x->city);
    B_VALF(&b, x->network);
    /* A new session is last seen where it was first seen, unless told otherwise. */
    bool first = x->last_ip[0] == '\0';
    b_val(&b, first ? x->ip : x->last_ip, sizeof(x->last_ip) - 1);
    b_val(&b, first ? x->country : x->last_country, sizeof(x->last_country) - 1);
    b_val(&b, first ? x->city : x->last_city, sizeof(x->last_city) - 1);
    B_BLOBF(&b, x->public_key);
    B_BLOBF(&b, x->account_sig);
    b_i64(&b, x->linked_at);
    b_i64(&b, x->last_active_at);
    b_i64(&b, x->persistent ? 1 : 0);
    B_KEYF(&b, x->cred_selector);
    B_BLOBF(&b, x->cred_hash);
    b_i64(&b, x->cred_expires_at);
    B_BLOBF(&b, x->challenge);
    b_f64(&b, x->lat);
    b_f64(&b, x->lon);
    b_i64(&b, x->has_loc ? 1 : 0);
    b_f64(&b, first ? x->lat : x->last_lat);
    b_f64(&b, first ? x->lon : x->last_lon);
    b_i64(&b, (first ? x->has_loc : x->last_has_loc) ? 1 : 0);
    b_val(&b, first ? x->region : x->last_region, sizeof(x->last_region) - 1);
    b_val(&b, first ? x->network : x->last_network, sizeof(x->last_network) - 1);
    return exec_bound(s, &b, "insert session");
}

static int sq_account_create(lw_store *base, const lw_account *a, const lw_session *primary,
                             const uint8_t *invite_hash)
{
    sqlite_store *s = (sqlite_store *)base;
    if (a == NULL || primary == NULL)
        return LW_EINVAL;
    int rc = tx_begin(s);
    if (rc != LW_OK)
        return rc;

    if (invite_hash != NULL) {
        /* The invite comes first: nothing about the handle is looked at
         * for a caller without a valid invite. */
        binder b = bind_start(s, ST_INVITE_CONSUME);
        b_blob(&b, invite_hash, LW_HASH_LEN);
        b_i64(&b, a->created_at);
        B_KEYF(&b, a->handle);
        if ((rc = exec_bound(s, &b, "consume invite")) != LW_OK)
            goto fail;
        if (sqlite3_changes(s->db) != 1) {
            /* Unknown, used, expired or for another handle: one answer for all. */
            rc = LW_EDENIED;
            goto fail;
        }
    }

    binder b = bind_start(s, ST_ACCOUNT_INSERT);
    B_KEYF(&b, a->id);
    B_KEYF(&b, a->handle);
    b_i64(&b, a->created_at);
    B_VALF(&b, a->pin_hash);
    b_i64(&b, a->pin_failures);
    b_i64(&b, a->pin_locked_until);
    b_i64(&b, a->inactive_ttl_ms);
    b_i64(&b, a->pin_change_required ? 1 : 0);
    if ((rc = exec_bound(s, &b, "insert account")) != LW_OK)
        goto fail;
    if ((rc = insert_session(s, primary, a->id, LW_ROLE_PRIMARY)) != LW_OK)
        goto fail;
    if ((rc = tx_commit(s)) != LW_OK)
        goto fail;
    return LW_OK;
fail:
    tx_rollback(s);
    return rc;
}

static int sq_account_get(lw_store *base, const char *id, lw_account *out)
{
    sqlite_store *s = (sqlite_store *)base;
    if (id == NULL || out == NULL)
        return LW_EINVAL;
    binder b = bind_start(s, ST_ACCOUNT_GET);
    b_key(&b, id, KEY_ARG_MAX);
    return query_one(s, &b, "get account", read_account, out);
}

static int sq_account_get_by_handle(lw_store *base, const char *handle, lw_account *out)
{
    sqlite_store *s = (sqlite_store *)base;
    if (handle == NULL || out == NULL)
        return LW_EINVAL;
    binder b = bind_start(s, ST_ACCOUNT_GET_BY_HANDLE);
    b_key(&b, handle, KEY_ARG_MAX);
    return query_one(s, &b, "get account by handle", read_account, out);
}

static int sq_account_update(lw_store *base, const lw_account *a)
{
    sqlite_store *s = (sqlite_store *)base;
    if (a == NULL)
        return LW_EINVAL;
    binder b = bind_start(s, ST_ACCOUNT_UPDATE);
    B_VALF(&b, a->pin_hash);
    b_i64(&b, a->pin_failures);
    b_i64(&b, a->pin_locked_until);
    b_i64(&b, a->inactive_ttl_ms);
    B_KEYF(&b, a->id);
    b_i64(&b, a->pin_change_required ? 1 : 0);
    int rc = exec_bound(s, &b, "update account");
    if (rc != LW_OK)
        return rc;
    return sqlite3_changes(s->db) == 1 ? LW_OK : LW_ENOTFOUND;
}

static int sq_invite_create(lw_store *base, const uint8_t hash[LW_HASH_LEN], int64_t expires_at,
                            const char *handle)
{
    sqlite_store *s = (sqlite_store *)base;
    if (hash == NULL)
        return LW_EINVAL;
    binder b = bind_start(s, ST_INVITE_INSERT);
    b_blob(&b, hash, LW_HASH_LEN);
    b_i64(&b, expires_at);
    b_val(&b, handle != NULL ? handle : "", LW_HANDLE_MAX - 1);
    return exec_bound(s, &b, "insert invite");
}

/* Runs a DELETE of everything of one account (the bound statement), inside
 * the caller's transaction. */
static int delete_of_account(sqlite_store *s, int which, const char *account_id, const char *what)
{
    binder b = bind_start(s, which);
    b_key(&b, account_id, KEY_ARG_MAX);
    return exec_bound(s, &b, what);
}

static int select_ended(sqlite_store *s, binder *b, const char *what, const char *reason, lw_ended **list,
                        size_t *count, size_t *added);

/* Ends a transaction that listed sessions it ended or deleted: commits it
 * (rc == LW_OK) and hands the list over, or rolls it back and frees the list. */
static int end_tx(sqlite_store *s, int rc, lw_ended *list, size_t count, lw_ended **out, size_t *n)
{
    if (rc == LW_OK)
        rc = tx_commit(s);
    if (rc != LW_OK) {
        tx_rollback(s);
        lw_free(list);
        return rc;
    }
    *out = list;
    *n = count;
    return LW_OK;
}

static int sq_account_delete(lw_store *base, const char *account_id, lw_ended **out, size_t *n)
{
    sqlite_store *s = (sqlite_store *)base;
    if (account_id == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    lw_ended *list = NULL;
    size_t count = 0, added;
    int rc = tx_begin(s);
    if (rc != LW_OK)
        return rc;
    /* What was live, so the caller can close its sockets with the reason. */
    binder b = bind_start(s, ST_SESSION_END_ALL_SELECT);
    b_key(&b, account_id, KEY_ARG_MAX);
    b_key(&b, NULL, KEY_ARG_MAX);
    b_key(&b, NULL, KEY_ARG_MAX);
    if ((rc = select_ended(s, &b, "list sessions to delete", "account_deleted", &list, &count, &added)) !=
        LW_OK)
        goto done;
    if ((rc = delete_of_account(s, ST_ACCOUNT_DELETE_SESSIONS, account_id, "delete sessions")) != LW_OK ||
        (rc = delete_of_account(s, ST_ACCOUNT_DELETE_LINKS, account_id, "delete link requests")) != LW_OK ||
        (rc = delete_of_account(s, ST_ACCOUNT_DELETE_ALERTS, account_id, "delete alerts")) != LW_OK ||
        (rc = delete_of_account(s, ST_ACCOUNT_DELETE, account_id, "delete account")) != LW_OK)
        goto done;
    if (sqlite3_changes(s->db) != 1) {
        rc = LW_ENOTFOUND;
        goto done;
    }
done:
    return end_tx(s, rc, list, count, out, n);
}

/* ---- sessions -------------------------------------------------------------- */

static int sq_session_get(lw_store *base, const char *device_id, lw_session *out)
{
    sqlite_store *s = (sqlite_store *)base;
    if (device_id == NULL || out == NULL)
        return LW_EINVAL;
    binder b = bind_start(s, ST_SESSION_GET);
    b_key(&b, device_id, KEY_ARG_MAX);
    return query_one(s, &b, "get session", read_session, out);
}

static int sq_session_get_by_selector(lw_store *base, const char *selector, lw_session *out)
{
    sqlite_store *s = (sqlite_store *)base;
    if (selector == NULL || out == NULL)
        return LW_EINVAL;
    binder b = bind_start(s, ST_SESSION_GET_BY_SELECTOR);
    b_key(&b, selector, KEY_ARG_MAX);
    return query_one(s, &b, "get session by selector", read_session, out);
}

static int sq_session_list(lw_store *base, const char *account_id, bool ended, lw_session **out, size_t *n)
{
    sqlite_store *s = (sqlite_store *)base;
    if (account_id == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    binder b = bind_start(s, ST_SESSION_LIST);
    b_key(&b, account_id, KEY_ARG_MAX);
    b_key(&b, ended ? "ended" : "active", KEY_ARG_MAX);
    void *arr = NULL;
    int rc = query_list(s, &b, "list sessions", sizeof(lw_session), read_session, &arr, n);
    if (rc == LW_OK)
        *out = arr;
    return rc;
}

static int count_companions(sqlite_store *s, const char *account_id, const uint8_t *except_key, long *n)
{
    binder b = bind_start(s, ST_SESSION_COUNT_COMPANIONS);
    b_key(&b, account_id, KEY_ARG_MAX);
    if (except_key != NULL)
        b_blob(&b, except_key, LW_PK_LEN);
    else
        b_key(&b, NULL, KEY_ARG_MAX);
    return query_one(s, &b, "count companions", read_long, n);
}

static int sq_session_count_active_companions(lw_store *base, const char *account_id,
                                              const uint8_t *except_key, long *n)
{
    sqlite_store *s = (sqlite_store *)base;
    if (account_id == NULL || n == NULL)
        return LW_EINVAL;
    return count_companions(s, account_id, except_key, n);
}

static void read_primary_place(sqlite3_stmt *st, void *out)
{
    lw_place *p = out;
    memset(p, 0, sizeof(*p));
    char first[LW_PLACE_MAX], last[LW_PLACE_MAX];
    COL_TEXT(first, st, 0);
    COL_TEXT(last, st, 1);
    lw_strlcpy(p->country, last[0] ? last : first, sizeof(p->country));
    if (sqlite3_column_int(st, 5)) {
        p->lat = sqlite3_column_double(st, 6);
        p->lon = sqlite3_column_double(st, 7);
        p->has_loc = true;
    } else if (sqlite3_column_int(st, 2)) {
        p->lat = sqlite3_column_double(st, 3);
        p->lon = sqlite3_column_double(st, 4);
        p->has_loc = true;
    }
}

static int sq_account_places(lw_store *base, const char *account_id, const char *country,
                             lw_account_places *out)
{
    sqlite_store *s = (sqlite_store *)base;
    if (account_id == NULL || country == NULL || out == NULL)
        return LW_EINVAL;
    memset(out, 0, sizeof(*out));
    binder b = bind_start(s, ST_PLACES_COUNTRY);
    b_key(&b, account_id, KEY_ARG_MAX);
    b_key(&b, country, KEY_ARG_MAX);
    int seen = 0;
    int rc = query_one(s, &b, "account countries", read_int, &seen);
    if (rc != LW_OK)
        return rc;
    out->country_seen = seen == 2;
    out->any_country = seen >= 1;
    b = bind_start(s, ST_PLACES_PRIMARY);
    b_key(&b, account_id, KEY_ARG_MAX);
    rc = query_one(s, &b, "primary place", read_primary_place, &out->primary);
    if (rc == LW_ENOTFOUND)
        return LW_OK;
    out->has_primary = rc == LW_OK;
    return rc;
}

static int sq_session_set_credential(lw_store *base, const lw_session *sess)
{
    sqlite_store *s = (sqlite_store *)base;
    if (sess == NULL)
        return LW_EINVAL;
    binder b = bind_start(s, ST_SESSION_SET_CRED);
    B_KEYF(&b, sess->cred_selector);
    B_BLOBF(&b, sess->cred_hash);
    b_i64(&b, sess->cred_expires_at);
    B_BLOBF(&b, sess->challenge);
    B_KEYF(&b, sess->id);
    int rc = exec_bound(s, &b, "set credential");
    if (rc != LW_OK)
        return rc;
    return cas_result(s, ST_SESSION_EXISTS, sess->id, "set credential");
}

static int sq_session_set_name(lw_store *base, const char *device_id, const char *name)
{
    sqlite_store *s = (sqlite_store *)base;
    if (device_id == NULL || name == NULL)
        return LW_EINVAL;
    binder b = bind_start(s, ST_SESSION_SET_NAME);
    b_val(&b, name, LW_NAME_MAX - 1);
    b_key(&b, device_id, KEY_ARG_MAX);
    int rc = exec_bound(s, &b, "set session name");
    if (rc != LW_OK)
        return rc;
    return sqlite3_changes(s->db) == 1 ? LW_OK : LW_ENOTFOUND;
}

static int sq_session_touch(lw_store *base, const char *device_id, int64_t at, const lw_place *where)
{
    sqlite_store *s = (sqlite_store *)base;
    if (device_id == NULL)
        return LW_EINVAL;
    binder b = bind_start(s, ST_SESSION_TOUCH);
    b_i64(&b, at);
    b_val(&b, where ? where->ip : NULL, LW_IP_MAX - 1);
    b_key(&b, device_id, KEY_ARG_MAX);
    b_val(&b, where ? where->country : "", LW_PLACE_MAX - 1);
    b_val(&b, where ? where->city : "", LW_PLACE_MAX - 1);
    b_f64(&b, where ? where->lat : 0);
    b_f64(&b, where ? where->lon : 0);
    b_i64(&b, where && where->has_loc ? 1 : 0);
    b_val(&b, where ? where->region : "", LW_PLACE_MAX - 1);
    b_val(&b, where ? where->network : "", LW_NETWORK_MAX - 1);
    int rc = exec_bound(s, &b, "touch session");
    if (rc != LW_OK)
        return rc;
    return cas_result(s, ST_SESSION_EXISTS, device_id, "touch session");
}

/* Ends one session if it is active; *changed says whether it was. */
static int end_one(sqlite_store *s, const char *device_id, const char *reason, int64_t now, bool *changed)
{
    binder b = bind_start(s, ST_SESSION_END);
    b_i64(&b, now);
    b_val(&b, reason, LW_REASON_MAX - 1);
    b_key(&b, device_id, KEY_ARG_MAX);
    int rc = exec_bound(s, &b, "end session");
    if (rc == LW_OK)
        *changed = sqlite3_changes(s->db) == 1;
    return rc;
}

static int sq_session_end(lw_store *base, const char *device_id, const char *reason, int64_t now)
{
    sqlite_store *s = (sqlite_store *)base;
    if (device_id == NULL || reason == NULL)
        return LW_EINVAL;
    bool changed = false;
    int rc = end_one(s, device_id, reason, now, &changed);
    if (rc != LW_OK)
        return rc;
    if (changed)
        return LW_OK;
    rc = row_exists(s, ST_SESSION_EXISTS, device_id, "end session");
    return rc == LW_OK ? LW_ECONFLICT : rc;
}

/* Appends the sessions a bound query names to *list / *count, with reason,
 * and their number to *added. */
static int select_ended(sqlite_store *s, binder *b, const char *what, const char *reason, lw_ended **list,
                        size_t *count, size_t *added)
{
    void *found = NULL;
    size_t nfound = 0;
    *added = 0;
    int rc = query_list(s, b, what, sizeof(lw_ended), read_ended, &found, &nfound);
    if (rc != LW_OK)
        return rc;
    if (nfound == 0) {
        lw_free(found);
        return LW_OK;
    }
    lw_ended *sel = found;
    /* reason comes from this file; bounded like the column. */
    size_t rn = utf8_bound(reason, strnlen(reason, LW_REASON_MAX), LW_REASON_MAX - 1);
    for (size_t k = 0; k < nfound; k++) {
        memcpy(sel[k].reason, reason, rn);
        sel[k].reason[rn] = '\0';
    }
    if (*count > SIZE_MAX / sizeof(lw_ended) - nfound) {
        lw_free(sel);
        return LW_ENOMEM;
    }
    lw_ended *grown = lw_realloc(*list, (*count + nfound) * sizeof(lw_ended));
    if (grown == NULL) {
        log_error(NULL, "out of memory listing ended sessions");
        lw_free(sel);
        return LW_ENOMEM;
    }
    memcpy(grown + *count, sel, nfound * sizeof(lw_ended));
    lw_free(sel);
    *list = grown;
    *count += nfound;
    *added = nfound;
    return LW_OK;
}

/* Selects the sessions a bound query names and ends each with reason, inside
 * the caller's transaction (whose write lock keeps the selection true);
 * appends them to *list / *count. */
static int end_selected(sqlite_store *s, binder *b, const char *what, const char *reason, int64_t now,
                        lw_ended **list, size_t *count)
{
    size_t before = *count, added;
    int rc = select_ended(s, b, what, reason, list, count, &added);
    for (size_t k = before; rc == LW_OK && k < *count; k++) {
        bool changed = false;
        rc = end_one(s, (*list)[k].device_id, reason, now, &changed);
        if (rc == LW_OK && !changed)
            rc = LW_ECONFLICT; /* cannot happen under the write lock; never report what did not end */
    }
    if (rc != LW_OK)
        *count = before;
    return rc;
}

static int sq_session_end_all(lw_store *base, const char *account_id, const char *role, const char *except,
                              const char *reason, int64_t now, lw_ended **out, size_t *n)
{
    sqlite_store *s = (sqlite_store *)base;
    if (account_id == NULL || reason == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    lw_ended *list = NULL;
    size_t count = 0;
    int rc = tx_begin(s);
    if (rc != LW_OK)
        return rc;
    binder b = bind_start(s, ST_SESSION_END_ALL_SELECT);
    b_key(&b, account_id, KEY_ARG_MAX);
    b_key(&b, role, KEY_ARG_MAX);
    b_key(&b, except, KEY_ARG_MAX);
    size_t added = 0;
    if ((rc = select_ended(s, &b, "end all sessions", reason, &list, &count, &added)) != LW_OK)
        goto done;
    if (added > 0) {
        b = bind_start(s, ST_SESSION_END_ALL);
        b_key(&b, account_id, KEY_ARG_MAX);
        b_key(&b, role, KEY_ARG_MAX);
        b_key(&b, except, KEY_ARG_MAX);
        b_i64(&b, now);
        b_val(&b, reason, LW_REASON_MAX - 1);
        if ((rc = exec_bound(s, &b, "end all sessions")) != LW_OK)
            goto done;
        /* Under the write lock the update meets exactly the rows selected. */
        if ((size_t)sqlite3_changes(s->db) != added) {
            log_error(NULL, "end all sessions: the update and the selection differ");
            rc = LW_ECONFLICT;
            goto done;
        }
    }
done:
    return end_tx(s, rc, list, count, out, n);
}

static int sq_session_end_every(lw_store *base, const char *role, const char *reason, int64_t now,
                                lw_ended **out, size_t *n)
{
    sqlite_store *s = (sqlite_store *)base;
    if (reason == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    lw_ended *list = NULL;
    size_t count = 0;
    int rc = tx_begin(s);
    if (rc != LW_OK)
        return rc;
    binder b = bind_start(s, ST_SESSION_END_EVERY_SELECT);
    b_key(&b, role, KEY_ARG_MAX);
    rc = end_selected(s, &b, "end every session", reason, now, &list, &count);
    return end_tx(s, rc, list, count, out, n);
}

static int sq_session_redact(lw_store *base, const char *device_id)
{
    sqlite_store *s = (sqlite_store *)base;
    if (device_id == NULL)
        return LW_EINVAL;
    int rc = tx_begin(s);
    if (rc != LW_OK)
        return rc;
    binder b = bind_start(s, ST_SESSION_REDACT);
    b_key(&b, device_id, KEY_ARG_MAX);
    if ((rc = exec_bound(s, &b, "redact session")) != LW_OK)
        goto fail;
    if ((rc = cas_result(s, ST_SESSION_EXISTS, device_id, "redact session")) != LW_OK)
        goto fail;
    b = bind_start(s, ST_ALERT_REDACT_DEVICE);
    b_key(&b, device_id, KEY_ARG_MAX);
    if ((rc = exec_bound(s, &b, "redact alerts")) != LW_OK)
        goto fail;
    if ((rc = tx_commit(s)) != LW_OK)
        goto fail;
    return LW_OK;
fail:
    tx_rollback(s);
    return rc;
}

static int sq_session_redact_ended(lw_store *base, long *n)
{
    sqlite_store *s = (sqlite_store *)base;
    int rc = tx_begin(s);
    if (rc != LW_OK)
        return rc;
    if ((rc = exec_plain(s, ST_ALERT_REDACT_ENDED, "redact alerts")) != LW_OK)
        goto fail;
    if ((rc = exec_plain(s, ST_SESSION_REDACT_ENDED, "redact ended sessions")) != LW_OK)
        goto fail;
    long changed = (long)sqlite3_changes(s->db);
    if ((rc = tx_commit(s)) != LW_OK)
        goto fail;
    if (n != NULL)
        *n = changed;
    return LW_OK;
fail:
    tx_rollback(s);
    return rc;
}

static int sq_session_delete_ended(lw_store *base, const char *account_id, const char *device_id,
                                   long *deleted)
{
    sqlite_store *s = (sqlite_store *)base;
    if (account_id == NULL)
        return LW_EINVAL;
    binder b = bind_start(s, device_id != NULL ? ST_SESSION_DELETE_ONE : ST_SESSION_DELETE_ALL);
    b_key(&b, account_id, KEY_ARG_MAX);
    if (device_id != NULL)
        b_key(&b, device_id, KEY_ARG_MAX);
    int rc = exec_bound(s, &b, "delete ended sessions");
    if (rc != LW_OK)
        return rc;
    long changed = (long)sqlite3_changes(s->db);
    if (device_id != NULL && changed == 0)
        return LW_ENOTFOUND;
    if (deleted != NULL)
        *deleted = changed;
    return LW_OK;
}

/* ---- link requests --------------------------------------------------------- */

static int sq_link_insert(lw_store *base, const lw_link_request *r)
{
    sqlite_store *s = (sqlite_store *)base;
    if (r == NULL)
        return LW_EINVAL;
    binder b = bind_start(s, ST_LINK_INSERT);
    B_KEYF(&b, r->id);
    B_BLOBF(&b, r->token_hash);
    B_KEYF(&b, r->token_selector);
    B_BLOBF(&b, r->public_key);
    b_hash_or_null(&b, r->code_hash);
    b_hash_or_null(&b, r->ref_hash);
    b_i64(&b, r->ref_index);
    b_i64(&b, r->ref_expires_at);
    b_i64(&b, r->created_at);
    b_i64(&b, r->expires_at);
    b_key(&b, r->state[0] != '\0' ? r->state : "pending", sizeof(r->state));
    B_KEYF(&b, r->account_id);
    B_KEYF(&b, r->scanned_by);
    B_BLOBF(&b, r->account_sig);
    B_BLOBF(&b, r->nonce);
    B_KEYF(&b, r->device_id);
    b_i64(&b, r->persistent ? 1 : 0);
    B_VALF(&b, r->name);
    B_VALF(&b, r->browser);
    B_VALF(&b, r->browser_version);
    B_VALF(&b, r->os);
    B_VALF(&b, r->os_version);
    B_VALF(&b, r->device_model);
    B_VALF(&b, r->ip);
    B_VALF(&b, r->country);
    B_VALF(&b, r->region);
    B_VALF(&b, r->city);
    B_VALF(&b, r->network);
    return exec_bound(s, &b, "insert link request");
}

static int link_get_by_key(sqlite_store *s, int which, const char *key, lw_link_request *out)
{
    binder b = bind_start(s, which);
    b_key(&b, key, KEY_ARG_MAX);
    return query_one(s, &b, "get link request", read_link, out);
}

static int link_get_by_hash(sqlite_store *s, int which, const uint8_t h[LW_HASH_LEN], lw_link_request *out)
{
    binder b = bind_start(s, which);
    b_blob(&b, h, LW_HASH_LEN);
    return query_one(s, &b, "get link request by hash", read_link, out);
}

static int sq_link_get(lw_store *base, const char *id, lw_link_request *out)
{
    if (id == NULL || out == NULL)
        return LW_EINVAL;
    return link_get_by_key((sqlite_store *)base, ST_LINK_GET, id, out);
}

static int sq_link_get_by_selector(lw_store *base, const char *token_selector, lw_link_request *out)
{
    if (token_selector == NULL || out == NULL)
        return LW_EINVAL;
    return link_get_by_key((sqlite_store *)base, ST_LINK_GET_BY_SELECTOR, token_selector, out);
}

static int sq_link_get_by_ref(lw_store *base, const uint8_t ref_hash[LW_HASH_LEN], lw_link_request *out)
{
    if (ref_hash == NULL || out == NULL)
        return LW_EINVAL;
    return link_get_by_hash((sqlite_store *)base, ST_LINK_GET_BY_REF, ref_hash, out);
}

static int sq_link_get_by_code(lw_store *base, const uint8_t code_hash[LW_HASH_LEN], lw_link_request *out)
{
    if (code_hash == NULL || out == NULL)
        return LW_EINVAL;
    return link_get_by_hash((sqlite_store *)base, ST_LINK_GET_BY_CODE, code_hash, out);
}

static int sq_link_set_ref(lw_store *base, const char *id, const uint8_t ref_hash[LW_HASH_LEN], int ref_index,
                           int64_t ref_expires_at)
{
    sqlite_store *s = (sqlite_store *)base;
    if (id == NULL || ref_hash == NULL)
        return LW_EINVAL;
    binder b = bind_start(s, ST_LINK_SET_REF);
    b_hash_or_null(&b, ref_hash);
    b_i64(&b, ref_index);
    b_i64(&b, ref_expires_at);
    b_key(&b, id, KEY_ARG_MAX);
    int rc = exec_bound(s, &b, "set link ref");
    if (rc != LW_OK)
        return rc;
    return cas_result(s, ST_LINK_EXISTS, id, "set link ref");
}

static int sq_link_transition(lw_store *base, const lw_link_request *r, const char *from, const char *to)
{
    sqlite_store *s = (sqlite_store *)base;
    if (r == NULL || from == NULL || to == NULL)
        return LW_EINVAL;
    binder b = bind_start(s, ST_LINK_TRANSITION);
    b_key(&b, to, KEY_ARG_MAX);
    B_KEYF(&b, r->account_id);
    B_KEYF(&b, r->scanned_by);
    B_BLOBF(&b, r->account_sig);
    B_BLOBF(&b, r->nonce);
    B_KEYF(&b, r->id);
    b_key(&b, from, KEY_ARG_MAX);
    int rc = exec_bound(s, &b, "link transition");
    if (rc != LW_OK)
        return rc;
    return cas_result(s, ST_LINK_EXISTS, r->id, "link transition");
}

typedef struct link_state {
    char state[16];
    char account_id[LW_ID_STRLEN];
} link_state;

static void read_link_state(sqlite3_stmt *st, void *out)
{
    link_state *ls = out;
    COL_TEXT(ls->state, st, 0);
    COL_TEXT(ls->account_id, st, 1);
}

static int sq_link_complete(lw_store *base, const char *request_id, const lw_session *sess,
                            long max_companions, lw_ended **out, size_t *n)
{
    sqlite_store *s = (sqlite_store *)base;
    if (request_id == NULL || sess == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    lw_ended *list = NULL;
    size_t count = 0;
    int rc = tx_begin(s);
    if (rc != LW_OK)
        return rc;

    link_state ls;
    binder b = bind_start(s, ST_LINK_STATE);
    b_key(&b, request_id, KEY_ARG_MAX);
    if ((rc = query_one(s, &b, "read link state", read_link_state, &ls)) != LW_OK)
        goto done;
    if (strcmp(ls.state, "approved") != 0) {
        rc = LW_ECONFLICT;
        goto done;
    }
    /* The request was approved for one account; a session for another would
     * be a device nobody signed for. */
    if (strncmp(ls.account_id, sess->account_id, sizeof(ls.account_id)) != 0) {
        log_error(NULL, "link_complete: session account differs from the approved request's");
        rc = LW_EINVAL;
        goto done;
    }
    /* The same key linking again replaces its live session, before the
     * count: the replaced one frees its own slot. */
    b = bind_start(s, ST_SESSION_SAME_KEY_SELECT);
    b_key(&b, ls.account_id, KEY_ARG_MAX);
    B_BLOBF(&b, sess->public_key);
    if ((rc = end_selected(s, &b, "end the sessions of the same key", LW_END_RELINKED, sess->linked_at, &list,
                           &count)) != LW_OK)
        goto done;
    long active = 0;
    if ((rc = count_companions(s, ls.account_id, NULL, &active)) != LW_OK)
        goto done;
    if (active >= max_companions) {
        rc = LW_ELIMIT;
        goto done;
    }
    if ((rc = insert_session(s, sess, ls.account_id, LW_ROLE_COMPANION)) != LW_OK)
        goto done;

    b = bind_start(s, ST_LINK_COMPLETE);
    B_KEYF(&b, sess->id);
    b_key(&b, request_id, KEY_ARG_MAX);
    if ((rc = exec_bound(s, &b, "complete link request")) != LW_OK)
        goto done;
    if (sqlite3_changes(s->db) != 1) {
        rc = LW_ECONFLICT; /* unreachable under the write lock; never commit half */
        goto done;
    }
done:
    return end_tx(s, rc, list, count, out, n);
}

static int sq_link_purge(lw_store *base, int64_t before, long *deleted)
{
    sqlite_store *s = (sqlite_store *)base;
    binder b = bind_start(s, ST_LINK_PURGE);
    b_i64(&b, before);
    int rc = exec_bound(s, &b, "purge link requests");
    if (rc == LW_OK && deleted != NULL)
        *deleted = (long)sqlite3_changes(s->db);
    return rc;
}

/* ---- alerts ---------------------------------------------------------------- */

static int sq_alert_insert(lw_store *base, const lw_alert *a)
{
    sqlite_store *s = (sqlite_store *)base;
    if (a == NULL)
        return LW_EINVAL;
    /* Cutting JSON would store invalid JSON: refuse an unterminated one. */
    if (strnlen(a->details, sizeof(a->details)) == sizeof(a->details))
        return LW_ETOOBIG;
    binder b = bind_start(s, ST_ALERT_INSERT);
    B_KEYF(&b, a->id);
    B_KEYF(&b, a->account_id);
    B_VALF(&b, a->kind);
    B_KEYF(&b, a->device_id);
    b_i64(&b, a->created_at);
    b_i64(&b, a->acked_at);
    b_val(&b, a->details[0] != '\0' ? a->details : "{}", sizeof(a->details) - 1);
    B_VALF(&b, a->answer);
    B_KEYF(&b, a->answered_by);
    b_i64(&b, a->count > 0 ? a->count : 1);
    b_i64(&b, a->updated_at > 0 ? a->updated_at : a->created_at);
    return exec_bound(s, &b, "insert alert");
}

static int sq_alert_raise(lw_store *base, const lw_alert *a, int64_t since, lw_alert *out)
{
    sqlite_store *s = (sqlite_store *)base;
    if (a == NULL || out == NULL)
        return LW_EINVAL;
    if (strnlen(a->details, sizeof(a->details)) == sizeof(a->details))
        return LW_ETOOBIG;
    int rc = tx_begin(s);
    if (rc != LW_OK)
        return rc;
    lw_alert found;
    binder b = bind_start(s, ST_ALERT_BURST_FIND);
    B_KEYF(&b, a->account_id);
    B_VALF(&b, a->kind);
    B_KEYF(&b, a->device_id);
    b_i64(&b, since > 0 ? since : INT64_MAX);
    rc = query_one(s, &b, "find alert burst", read_alert, &found);
    if (rc == LW_OK) {
        b = bind_start(s, ST_ALERT_BURST_ADD);
        b_val(&b, a->details[0] != '\0' ? a->details : "{}", sizeof(a->details) - 1);
        b_i64(&b, a->created_at);
        B_KEYF(&b, found.id);
        if ((rc = exec_bound(s, &b, "count alert into burst")) == LW_OK) {
            found.count++;
            found.updated_at = a->created_at;
            lw_strlcpy(found.details, a->details[0] != '\0' ? a->details : "{}", sizeof(found.details));
        }
    } else if (rc == LW_ENOTFOUND) {
        rc = sq_alert_insert(base, a);
        found = *a;
        found.count = 1;
        found.updated_at = a->created_at;
    }
    if (rc == LW_OK && (rc = tx_commit(s)) == LW_OK) {
        *out = found;
        return LW_OK;
    }
    tx_rollback(s);
    return rc;
}

static int sq_alert_list(lw_store *base, const char *account_id, int limit, lw_alert **out, size_t *n)
{
    sqlite_store *s = (sqlite_store *)base;
    if (account_id == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    binder b = bind_start(s, ST_ALERT_LIST);
    b_key(&b, account_id, KEY_ARG_MAX);
    b_i64(&b, limit > 0 ? limit : -1); /* SQLite: a negative LIMIT means none */
    void *arr = NULL;
    int rc = query_list(s, &b, "list alerts", sizeof(lw_alert), read_alert, &arr, n);
    if (rc == LW_OK)
        *out = arr;
    return rc;
}

static int sq_alert_get(lw_store *base, const char *account_id, const char *alert_id, lw_alert *out)
{
    sqlite_store *s = (sqlite_store *)base;
    if (account_id == NULL || alert_id == NULL || out == NULL)
        return LW_EINVAL;
    binder b = bind_start(s, ST_ALERT_GET);
    b_key(&b, alert_id, KEY_ARG_MAX);
    b_key(&b, account_id, KEY_ARG_MAX);
    return query_one(s, &b, "get alert", read_alert, out);
}

static int sq_alert_ack(lw_store *base, const char *account_id, const char *alert_id, const char *answer,
                        const char *answered_by, int64_t now)
{
    sqlite_store *s = (sqlite_store *)base;
    if (account_id == NULL || alert_id == NULL || answer == NULL || answered_by == NULL)
        return LW_EINVAL;
    binder b = bind_start(s, ST_ALERT_ACK);
    b_i64(&b, now);
    b_key(&b, alert_id, KEY_ARG_MAX);
    b_key(&b, account_id, KEY_ARG_MAX);
    b_val(&b, answer, LW_REASON_MAX - 1);
    b_key(&b, answered_by, KEY_ARG_MAX);
    int rc = exec_bound(s, &b, "ack alert");
    if (rc != LW_OK)
        return rc;
    return sqlite3_changes(s->db) == 1 ? LW_OK : LW_ENOTFOUND;
}

/* ---- sweeper --------------------------------------------------------------- */

/* One sweep step in its own transaction: select with the single parameter
 * arg, end what was selected with reason, append to the list. On failure the
 * step is rolled back and the list left as it was. */
static int sweep_end_step(sqlite_store *s, int which, int64_t arg, const char *reason, int64_t now,
                          lw_ended **list, size_t *count)
{
    int rc = tx_begin(s);
    if (rc != LW_OK)
        return rc;
    size_t before = *count;
    binder b = bind_start(s, which);
    b_i64(&b, arg);
    if ((rc = end_selected(s, &b, "sweep", reason, now, list, count)) != LW_OK)
        goto fail;
    if ((rc = tx_commit(s)) != LW_OK)
        goto fail;
    return LW_OK;
fail:
    tx_rollback(s);
    *count = before;
    return rc;
}

/* A single DELETE is its own transaction. */
static int sweep_delete(sqlite_store *s, int which, int64_t cutoff, long *deleted)
{
    binder b = bind_start(s, which);
    b_i64(&b, cutoff);
    int rc = exec_bound(s, &b, "sweep purge");
    if (rc == LW_OK)
        *deleted = (long)sqlite3_changes(s->db);
    return rc;
}

static int sq_sweep(lw_store *base, const lw_sweep_policy *p, lw_ended **out, size_t *n, long *purged)
{
    sqlite_store *s = (sqlite_store *)base;
    if (p == NULL || out == NULL || n == NULL)
        return LW_EINVAL;
    lw_ended *list = NULL;
    size_t count = 0;
    long gone = 0, alerts_gone = 0;
    int rc;

    /* Order matters only for the reason a session gets when several apply:
     * its own inactivity first, then its primary's, then the absolute age. */
    if ((rc = sweep_end_step(s, ST_SWEEP_INACTIVE, p->now, "inactive", p->now, &list, &count)) != LW_OK)
        goto fail;
    if (p->primary_inactive_ms > 0 &&
        (rc = sweep_end_step(s, ST_SWEEP_PRIMARY_INACTIVE, p->now - p->primary_inactive_ms,
                             "primary_inactive", p->now, &list, &count)) != LW_OK)
        goto fail;
    if (p->max_age_ms > 0 && (rc = sweep_end_step(s, ST_SWEEP_MAX_AGE, p->now - p->max_age_ms, "max_age",
                                                  p->now, &list, &count)) != LW_OK)
        goto fail;
    if (p->ephemeral_idle_ms > 0 && (rc = sweep_end_step(s, ST_SWEEP_EPHEMERAL, p->now - p->ephemeral_idle_ms,
                                                         "inactive", p->now, &list, &count)) != LW_OK)
        goto fail;
    if (p->history_retention_ms > 0) {
        int64_t cutoff = p->now - p->history_retention_ms;
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

static void read_text(sqlite3_stmt *st, void *out)
{
    text_out *t = out;
    const char *v = (const char *)sqlite3_column_text(st, 0);
    t->fits = lw_strlcpy(t->dst, v != NULL ? v : "", t->cap) == LW_OK;
}

static int sq_setting_get(lw_store *base, const char *name, char *out, size_t cap)
{
    sqlite_store *s = (sqlite_store *)base;
    if (name == NULL || out == NULL || cap == 0)
        return LW_EINVAL;
    text_out t = {out, cap, false};
    binder b = bind_start(s, ST_SETTING_GET);
    b_key(&b, name, LW_SETTING_NAME_MAX);
    int rc = query_one(s, &b, "read setting", read_text, &t);
    if (rc == LW_OK && !t.fits) {
        log_error(NULL, "a stored setting is longer than its bound");
        return LW_ETOOBIG;
    }
    return rc;
}

static int sq_setting_put(lw_store *base, const char *name, const char *value)
{
    sqlite_store *s = (sqlite_store *)base;
    if (name == NULL || value == NULL || strlen(name) >= LW_SETTING_NAME_MAX ||
        strlen(value) >= LW_SETTING_VALUE_MAX)
        return LW_EINVAL;
    binder b = bind_start(s, ST_SETTING_PUT);
    b_key(&b, name, LW_SETTING_NAME_MAX);
    b_key(&b, value, LW_SETTING_VALUE_MAX);
    return exec_bound(s, &b, "write setting");
}

/* ---- stats and backup ------------------------------------------------------ */

static void read_stats(sqlite3_stmt *st, void *out)
{
    lw_store_stats *x = out;
    x->accounts = (long)sqlite3_column_int64(st, 0);
    x->sessions_active = (long)sqlite3_column_int64(st, 1);
    x->sessions_ended = (long)sqlite3_column_int64(st, 2);
    x->link_requests_pending = (long)sqlite3_column_int64(st, 3);
    x->alerts = (long)sqlite3_column_int64(st, 4);
}

static int sq_stats(lw_store *base, lw_store_stats *out)
{
    sqlite_store *s = (sqlite_store *)base;
    if (out == NULL)
        return LW_EINVAL;
    binder b = bind_start(s, ST_STATS);
    return query_one(s, &b, "stats", read_stats, out);
}

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
    int len = snprintf(msg, sizeof(msg),
                       "database schema version %d is newer than this build knows (%d); "
                       "refusing to open it, upgrade linkward",
                       found, SCHEMA_VERSION);
    log_error(NULL,
              len > 0 && (size_t)len < sizeof(msg) ? msg : "database schema is newer than this build knows");
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
    for (int k = 0; k < ST_COUNT; k++)
        (void)sqlite3_finalize(s->st[k]); /* reports the last step's error only */
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
    s->base.ops = &lw_store_sqlite_ops;
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

    for (int k = 0; k < ST_COUNT; k++) {
        if (sql_text[k] == NULL || sqlite3_prepare_v3(s->db, sql_text[k], -1, SQLITE_PREPARE_PERSISTENT,
                                                      &s->st[k], NULL) != SQLITE_OK) {
            log_error(s->db, "preparing a statement failed");
            goto fail;
        }
    }
    if (strcmp(mode, "wal") == 0)
        checkpointer_start(s, location);
    *out = &s->base;
    return LW_OK;
fail:
    sq_close(&s->base);
    return rc;
}

int lw_store_sqlite_schema_version(lw_store *base)
{
    if (base == NULL || base->ops != &lw_store_sqlite_ops)
        return LW_EINVAL;
    sqlite_store *s = (sqlite_store *)base;
    int version = 0;
    binder b = bind_start(s, ST_USER_VERSION);
    int rc = query_one(s, &b, "read schema version", read_int, &version);
    return rc == LW_OK ? version : rc;
}

/* PRAGMA data_version changes only when another connection commits. This
 * process writes through this connection alone (its checkpoint and backup
 * connections commit nothing), so a change means another process wrote. */
static int sq_changed_elsewhere(lw_store *base, bool *changed)
{
    sqlite_store *s = (sqlite_store *)base;
    int version = 0;
    binder b = bind_start(s, ST_DATA_VERSION);
    int rc = query_one(s, &b, "read data version", read_int, &version);
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
    .account_create = sq_account_create,
    .account_get = sq_account_get,
    .account_get_by_handle = sq_account_get_by_handle,
    .account_update = sq_account_update,
    .account_delete = sq_account_delete,
    .invite_create = sq_invite_create,
    .session_get = sq_session_get,
    .session_get_by_selector = sq_session_get_by_selector,
    .session_list = sq_session_list,
    .session_count_active_companions = sq_session_count_active_companions,
    .account_places = sq_account_places,
    .session_set_credential = sq_session_set_credential,
    .session_set_name = sq_session_set_name,
    .session_touch = sq_session_touch,
    .session_end = sq_session_end,
    .session_end_all = sq_session_end_all,
    .session_end_every = sq_session_end_every,
    .session_redact = sq_session_redact,
    .session_redact_ended = sq_session_redact_ended,
    .session_delete_ended = sq_session_delete_ended,
    .link_insert = sq_link_insert,
    .link_get = sq_link_get,
    .link_get_by_selector = sq_link_get_by_selector,
    .link_get_by_ref = sq_link_get_by_ref,
    .link_get_by_code = sq_link_get_by_code,
    .link_set_ref = sq_link_set_ref,
    .link_transition = sq_link_transition,
    .link_complete = sq_link_complete,
    .link_purge = sq_link_purge,
    .alert_insert = sq_alert_insert,
    .alert_raise = sq_alert_raise,
    .alert_list = sq_alert_list,
    .alert_get = sq_alert_get,
    .alert_ack = sq_alert_ack,
    .sweep = sq_sweep,
    .stats = sq_stats,
    .setting_get = sq_setting_get,
    .setting_put = sq_setting_put,
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
