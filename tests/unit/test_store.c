/*
 * test_store.c — the store against a real database, fresh per test: schema
 * and migrations, accounts and invites, sessions, link requests, alerts,
 * stats and backup. The same tests run on both backends (store_fixture.h):
 * a SQLite file by default, a PostgreSQL schema when LINKWARD_TEST_PG is set
 * (CTest: unit.test_store.pg). A few checks are one backend's only (the file
 * and WAL, backup; reconnecting, several nodes and threads at once on PG).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store.h"
#include "store_fixture.h"

#define T0 1700000000000LL /* an arbitrary "now" */
#define DAY_MS 86400000LL

typedef struct fixture {
    store_fx fx; /* the database: a SQLite file or a PostgreSQL schema */
    lw_store *s;
} fixture;

/* ---- helpers --------------------------------------------------------------- */

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    fx_init(&f->fx, "store");
    assert_int_equal(lw_store_open(&f->s, f->fx.location), LW_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    lw_store_close(f->s);
    fx_fini(&f->fx);
    free(f);
    return 0;
}

/* The schema version through the backend's own accessor. */
static int schema_version(const fixture *f, lw_store *s)
{
    return f->fx.pg ? lw_store_pg_schema_version(s) : lw_store_sqlite_schema_version(s);
}

/* Where each backend records it, read behind the store's back. */
static const char *version_query(const fixture *f)
{
    return f->fx.pg ? "SELECT version FROM schema_version WHERE id = 1" : "PRAGMA user_version";
}

static void fill(uint8_t *p, size_t n, uint8_t v)
{
    memset(p, v, n);
}

static void make_account(lw_account *a, const char *id, const char *handle)
{
    memset(a, 0, sizeof(*a));
    snprintf(a->id, sizeof(a->id), "%s", id);
    snprintf(a->handle, sizeof(a->handle), "%s", handle);
    a->created_at = T0;
    a->inactive_ttl_ms = 30 * DAY_MS;
}

/* A session whose selector and key bytes derive from tag, so they differ. */
static void make_session(lw_session *x, const char *id, const char *account_id, const char *role, uint8_t tag)
{
    memset(x, 0, sizeof(*x));
    snprintf(x->id, sizeof(x->id), "%s", id);
    snprintf(x->account_id, sizeof(x->account_id), "%s", account_id);
    snprintf(x->role, sizeof(x->role), "%s", role);
    snprintf(x->name, sizeof(x->name), "Chrome on Windows");
    snprintf(x->client.browser, sizeof(x->client.browser), "Chrome");
    snprintf(x->client.os, sizeof(x->client.os), "Windows");
    snprintf(x->first.ip, sizeof(x->first.ip), "192.0.2.%u", (unsigned)tag);
    snprintf(x->first.city, sizeof(x->first.city), "Lisboa");
    snprintf(x->last.ip, sizeof(x->last.ip), "192.0.2.%u", (unsigned)tag);
    snprintf(x->last.country, sizeof(x->last.country), "PT");
    snprintf(x->last.city, sizeof(x->last.city), "Lisboa");
    fill(x->public_key, sizeof(x->public_key), tag);
    fill(x->account_sig, sizeof(x->account_sig), (uint8_t)(tag + 1));
    x->linked_at = T0;
    x->last_active_at = T0;
    x->persistent = true;
    snprintf(x->cred_selector, sizeof(x->cred_selector), "sel-%s", id);
    fill(x->cred_hash, sizeof(x->cred_hash), (uint8_t)(tag + 2));
    x->cred_expires_at = T0 + 600000;
    fill(x->challenge, sizeof(x->challenge), (uint8_t)(tag + 3));
}

/* Creates account id/handle with primary session <id>-p. */
static void create_account(lw_store *s, const char *id, const char *handle)
{
    lw_account a;
    lw_session p;
    char pid[LW_ID_STRLEN];
    snprintf(pid, sizeof(pid), "%s-p", id);
    make_account(&a, id, handle);
    make_session(&p, pid, id, LW_ROLE_PRIMARY, 1);
    assert_int_equal(lw_store_account_create(s, &a, &p, NULL), LW_OK);
}

static void make_link(lw_link_request *r, const char *id, uint8_t tag)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "%s", id);
    fill(r->token_hash, sizeof(r->token_hash), tag);
    snprintf(r->token_selector, sizeof(r->token_selector), "tok-%s", id);
    fill(r->public_key, sizeof(r->public_key), (uint8_t)(tag + 1));
    fill(r->code_hash, sizeof(r->code_hash), (uint8_t)(tag + 2));
    fill(r->ref_hash, sizeof(r->ref_hash), (uint8_t)(tag + 3));
    r->ref_index = 0;
    r->ref_expires_at = T0 + 60000;
    r->created_at = T0;
    r->expires_at = T0 + 160000;
    snprintf(r->state, sizeof(r->state), "pending");
    r->persistent = true;
    snprintf(r->name, sizeof(r->name), "Firefox on Linux");
    snprintf(r->place.ip, sizeof(r->place.ip), "198.51.100.7");
}

/* Drives request id to 'approved' for account acct. */
static void approve_link(lw_store *s, const char *id, const char *acct)
{
    lw_link_request r;
    assert_int_equal(lw_store_link_get(s, id, &r), LW_OK);
    snprintf(r.account_id, sizeof(r.account_id), "%s", acct);
    snprintf(r.scanned_by, sizeof(r.scanned_by), "%s-p", acct);
    assert_int_equal(lw_store_link_transition(s, &r, "pending", "scanned"), LW_OK);
    fill(r.account_sig, sizeof(r.account_sig), 0x5a);
    fill(r.nonce, sizeof(r.nonce), 0xa5);
    assert_int_equal(lw_store_link_transition(s, &r, "scanned", "approved"), LW_OK);
}

static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    return db;
}

static void raw_exec(const fixture *f, const char *sql)
{
    fx_exec(&f->fx, sql);
}

static int raw_int(const fixture *f, const char *sql)
{
    return (int)fx_long(&f->fx, sql);
}

/* ---- schema and migrations ------------------------------------------------- */

static void test_open_fresh_schema(void **state)
{
    fixture *f = *state;
    int v = schema_version(f, f->s);
    assert_true(v >= 1);
    assert_int_equal(raw_int(f, version_query(f)), v);
    if (f->fx.pg) {
        assert_int_equal(raw_int(f, "SELECT count(*) FROM information_schema.tables"
                                    " WHERE table_schema = current_schema() AND table_name IN"
                                    " ('accounts','sessions','link_requests','alerts','invites',"
                                    "  'schema_version')"),
                         6);
        assert_int_equal(
            raw_int(f, "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema()"
                       " AND indexname IN ('sessions_active_selector','sessions_account_state_role',"
                       "  'sessions_last_active','sessions_selector','link_requests_selector',"
                       "  'link_requests_ref','link_requests_code','alerts_account_created',"
                       "  'accounts_handle_lower')"),
            9);
        return;
    }
    assert_int_equal(raw_int(f, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN"
                                " ('accounts','sessions','link_requests','alerts','invites')"),
                     5);
    assert_int_equal(
        raw_int(f,
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN"
                " ('sessions_active_selector','sessions_account_state_role',"
                "  'sessions_last_active','sessions_selector','link_requests_selector','link_requests_ref',"
                "  'link_requests_code','alerts_account_created')"),
        8);
    /* WAL is persistent in the file; a second connection sees it. */
    sqlite3 *db = raw_open(f->fx.path);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_reopen_keeps_data_and_version(void **state)
{
    fixture *f = *state;
    int v = schema_version(f, f->s);
    create_account(f->s, "acct1", "+351910000001");
    lw_store_close(f->s);
    f->s = NULL;
    assert_int_equal(lw_store_open(&f->s, f->fx.location), LW_OK);
    assert_int_equal(schema_version(f, f->s), v);
    lw_account a;
    assert_int_equal(lw_store_account_get(f->s, "acct1", &a), LW_OK);
    assert_string_equal(a.handle, "+351910000001");
}

static void test_newer_version_refused(void **state)
{
    fixture *f = *state;
    int v = schema_version(f, f->s);
    lw_store_close(f->s);
    f->s = NULL;
    char sql[96];
    if (f->fx.pg)
        snprintf(sql, sizeof(sql), "UPDATE schema_version SET version = %d WHERE id = 1", v + 1);
    else
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
    raw_exec(f, sql);
    lw_store *s2 = NULL;
    assert_int_equal(lw_store_open(&s2, f->fx.location), LW_ESTORE);
    assert_null(s2);
    /* Refusing must not have touched the database. */
    assert_int_equal(raw_int(f, version_query(f)), v + 1);
}

static void test_migration_idempotent(void **state)
{
    fixture *f = *state;
    int v = schema_version(f, f->s);
    create_account(f->s, "acct1", "alice");
    lw_store_close(f->s);
    f->s = NULL;
    /* Opening an up-to-date database applies nothing. */
    assert_int_equal(lw_store_open(&f->s, f->fx.location), LW_OK);
    assert_int_equal(schema_version(f, f->s), v);
    /* Two connections to one database can both be open. */
    lw_store *s2 = NULL;
    lw_account a;
    assert_int_equal(lw_store_open(&s2, f->fx.location), LW_OK);
    assert_int_equal(lw_store_account_get(s2, "acct1", &a), LW_OK);
    lw_store_close(s2);
}

static void test_migration_from_v1(void **state)
{
    fixture *f = *state;
    FX_SQLITE_ONLY(&f->fx, "a file written by the first release; the PostgreSQL schema starts at its own v1");
    int v = schema_version(f, f->s);
    create_account(f->s, "acct1", "alice");
    lw_store_close(f->s);
    f->s = NULL;
    /* A version-1 database (as the first release wrote it) is migrated in
     * place to the current version, its data kept. */
    raw_exec(f,
             "DROP INDEX sessions_unredacted; DROP INDEX alerts_device;"
             "ALTER TABLE sessions DROP COLUMN last_region; ALTER TABLE sessions DROP COLUMN last_network;"
             "ALTER TABLE sessions DROP COLUMN redacted; ALTER TABLE alerts DROP COLUMN answer; ALTER TABLE "
             "alerts DROP COLUMN answered_by;"
             "ALTER TABLE alerts DROP COLUMN burst_count; ALTER TABLE alerts DROP COLUMN updated_at;"
             "ALTER TABLE sessions DROP COLUMN lat; ALTER TABLE sessions DROP COLUMN lon;"
             "ALTER TABLE sessions DROP COLUMN has_loc; ALTER TABLE sessions DROP COLUMN last_lat;"
             "ALTER TABLE sessions DROP COLUMN last_lon; ALTER TABLE sessions DROP COLUMN last_has_loc;"
             "ALTER TABLE accounts DROP COLUMN pin_change_required; ALTER TABLE invites DROP COLUMN handle;"
             "ALTER TABLE accounts DROP COLUMN recovery_hash; PRAGMA user_version = 1");
    assert_int_equal(lw_store_open(&f->s, f->fx.location), LW_OK);
    assert_int_equal(schema_version(f, f->s), v);
    assert_true(v >= 2);
    lw_account a;
    assert_int_equal(lw_store_account_get(f->s, "acct1", &a), LW_OK);
    assert_false(a.pin_change_required);
    lw_session got;
    assert_int_equal(lw_store_session_get(f->s, "acct1-p", &got), LW_OK);
    assert_false(got.last.has_loc);
}

/* The migration that brought the whole last-seen place: a session never
 * used since its link is last seen where it was linked; one last used where
 * it was linked gets that region and network; one used elsewhere has them
 * empty (unknown), not the first-seen ones. */
static void test_migration_last_place(void **state)
{
    fixture *f = *state;
    int v = schema_version(f, f->s);
    create_account(f->s, "acct1", "alice");
    create_account(f->s, "acct2", "bob");
    create_account(f->s, "acct3", "carol");
    lw_store_close(f->s);
    f->s = NULL;
    if (f->fx.pg)
        raw_exec(
            f, "DROP INDEX sessions_unredacted; DROP INDEX alerts_device;"
               "ALTER TABLE sessions DROP COLUMN last_region; ALTER TABLE sessions DROP COLUMN last_network;"
               "ALTER TABLE sessions DROP COLUMN redacted; ALTER TABLE alerts DROP COLUMN answer; ALTER "
               "TABLE alerts DROP COLUMN answered_by;"
               "ALTER TABLE alerts DROP COLUMN burst_count; ALTER TABLE alerts DROP COLUMN updated_at;"
               "UPDATE schema_version SET version = 3 WHERE id = 1");
    else
        raw_exec(
            f, "DROP INDEX sessions_unredacted; DROP INDEX alerts_device;"
               "ALTER TABLE sessions DROP COLUMN last_region; ALTER TABLE sessions DROP COLUMN last_network;"
               "ALTER TABLE sessions DROP COLUMN redacted; ALTER TABLE alerts DROP COLUMN answer; ALTER "
               "TABLE alerts DROP COLUMN answered_by;"
               "ALTER TABLE alerts DROP COLUMN burst_count; ALTER TABLE alerts DROP COLUMN updated_at;"
               "ALTER TABLE accounts DROP COLUMN recovery_hash; PRAGMA user_version = 5");
    raw_exec(f, "UPDATE sessions SET region = 'Lisboa', network = 'Fibre' WHERE id = 'acct1-p';"
                "UPDATE sessions SET last_ip = '', last_country = '', last_city = '', country = 'ES',"
                "  region = 'Madrid', city = 'Madrid', network = 'Meseta' WHERE id = 'acct2-p';"
                "UPDATE sessions SET last_ip = '203.0.113.10', last_country = 'AU', last_city = 'Sydney',"
                "  region = 'Lisboa', network = 'Fibre' WHERE id = 'acct3-p'");
    assert_int_equal(lw_store_open(&f->s, f->fx.location), LW_OK);
    assert_int_equal(schema_version(f, f->s), v);
    lw_session got;
    assert_int_equal(lw_store_session_get(f->s, "acct1-p", &got), LW_OK);
    assert_string_equal(got.last.region, "Lisboa");
    assert_string_equal(got.last.network, "Fibre");
    assert_int_equal(lw_store_session_get(f->s, "acct2-p", &got), LW_OK);
    assert_string_equal(got.last.ip, got.first.ip);
    assert_string_equal(got.last.country, "ES");
    assert_string_equal(got.last.region, "Madrid");
    assert_string_equal(got.last.city, "Madrid");
    assert_string_equal(got.last.network, "Meseta");
    assert_int_equal(lw_store_session_get(f->s, "acct3-p", &got), LW_OK);
    assert_string_equal(got.last.country, "AU");
    assert_string_equal(got.last.region, "");
    assert_string_equal(got.last.network, "");
}

/* The migration that records who answered an alert: alerts answered before
 * it keep their answer, with no device named (unknown), and new answers name
 * theirs. */
static void test_migration_answered_by(void **state)
{
    fixture *f = *state;
    int v = schema_version(f, f->s);
    create_account(f->s, "acct1", "alice");
    lw_alert a;
    memset(&a, 0, sizeof(a));
    snprintf(a.id, sizeof(a.id), "old");
    snprintf(a.account_id, sizeof(a.account_id), "acct1");
    snprintf(a.kind, sizeof(a.kind), "device.linked");
    a.created_at = T0;
    assert_int_equal(lw_store_alert_insert(f->s, &a), LW_OK);
    assert_int_equal(lw_store_alert_ack(f->s, "acct1", "old", LW_ALERT_ANSWER_ME, "acct1-p", T0 + 1), LW_OK);
    lw_store_close(f->s);
    f->s = NULL;
    raw_exec(
        f,
        f->fx.pg
            ? "ALTER TABLE alerts DROP COLUMN answered_by; ALTER TABLE alerts DROP COLUMN burst_count; ALTER "
              "TABLE alerts DROP COLUMN updated_at; ALTER TABLE accounts DROP COLUMN recovery_hash;"
              " UPDATE schema_version SET version = 4 WHERE id = 1"
            : "ALTER TABLE alerts DROP COLUMN answered_by; ALTER TABLE alerts DROP COLUMN burst_count; ALTER "
              "TABLE alerts DROP COLUMN updated_at; ALTER TABLE accounts DROP COLUMN recovery_hash;"
              " PRAGMA user_version = 6");
    assert_int_equal(lw_store_open(&f->s, f->fx.location), LW_OK);
    assert_int_equal(schema_version(f, f->s), v);
    lw_alert got;
    assert_int_equal(lw_store_alert_get(f->s, "acct1", "old", &got), LW_OK);
    assert_string_equal(got.answer, LW_ALERT_ANSWER_ME);
    assert_string_equal(got.answered_by, "");
    assert_int_equal(lw_store_alert_ack(f->s, "acct1", "old", LW_ALERT_ANSWER_LOGOUT, "acct1-p", T0 + 2),
                     LW_OK);
    assert_int_equal(lw_store_alert_get(f->s, "acct1", "old", &got), LW_OK);
    assert_string_equal(got.answered_by, "acct1-p");
}

static void test_open_locations(void **state)
{
    (void)state;
    lw_store *s = NULL;
    /* Both URL schemes select PostgreSQL (never a SQLite file named like the
     * URL); with nothing listening there, opening fails as "unavailable". */
    assert_int_equal(lw_store_open(&s, "postgres://lw@127.0.0.1:1/linkward?connect_timeout=2"), LW_EUNAVAIL);
    assert_int_equal(lw_store_open(&s, "postgresql://lw@127.0.0.1:1/linkward?connect_timeout=2"),
                     LW_EUNAVAIL);
    assert_null(s);
    assert_int_equal(access("postgres:", F_OK), -1);
    /* A directory that does not exist cannot hold the database. */
    assert_int_equal(lw_store_open(&s, "/nonexistent-dir-lw/x.db"), LW_ESTORE);
    assert_null(s);
}

/* ---- settings and the store's health ---------------------------------------- */

static void test_settings(void **state)
{
    fixture *f = *state;
    char v[LW_SETTING_VALUE_MAX];
    assert_int_equal(lw_store_setting_get(f->s, LW_SETTING_SERVER_KEY, v, sizeof v), LW_ENOTFOUND);
    assert_int_equal(lw_store_setting_put(f->s, LW_SETTING_SERVER_KEY, "0afd34"), LW_OK);
    assert_int_equal(lw_store_setting_get(f->s, LW_SETTING_SERVER_KEY, v, sizeof v), LW_OK);
    assert_string_equal(v, "0afd34");
    /* Replaced, not added. */
    assert_int_equal(lw_store_setting_put(f->s, LW_SETTING_SERVER_KEY, "5be4b2"), LW_OK);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM settings"), 1);
    /* Kept across a restart. */
    lw_store_close(f->s);
    f->s = NULL;
    assert_int_equal(lw_store_open(&f->s, f->fx.location), LW_OK);
    assert_int_equal(lw_store_setting_get(f->s, LW_SETTING_SERVER_KEY, v, sizeof v), LW_OK);
    assert_string_equal(v, "5be4b2");
    /* A value that does not fit the caller's array is refused, never cut. */
    char small[4];
    assert_int_equal(lw_store_setting_get(f->s, LW_SETTING_SERVER_KEY, small, sizeof small), LW_ETOOBIG);
    /* Past the bounds: refused, nothing written. */
    char big[LW_SETTING_VALUE_MAX + 1];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(lw_store_setting_put(f->s, "big", big), LW_EINVAL);
    assert_int_equal(lw_store_setting_get(f->s, "big", v, sizeof v), LW_ENOTFOUND);
    /* The write probe is a real write of its own row. */
    assert_int_equal(lw_store_check_writable(f->s), LW_OK);
    assert_true(lw_store_writable(f->s));
    assert_int_equal(lw_store_setting_get(f->s, LW_SETTING_WRITE_PROBE, v, sizeof v), LW_OK);
    assert_true(strtoll(v, NULL, 10) > T0);
}

/* Another process holds SQLite's write lock past BUSY_TIMEOUT_MS (a backup
 * tool, the sqlite3 shell): the write gives up as "unavailable", which marks
 * the store; the next write that succeeds clears it. */
static void test_sqlite_busy_unavailable(void **state)
{
    fixture *f = *state;
    FX_SQLITE_ONLY(&f->fx, "SQLite's file lock");
    create_account(f->s, "acct1", "alice");
    sqlite3 *raw = raw_open(f->fx.path);
    assert_int_equal(sqlite3_exec(raw, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(lw_store_session_set_name(f->s, "acct1-p", "Phone"), LW_EUNAVAIL);
    assert_false(lw_store_writable(f->s));
    lw_account a;
    assert_int_equal(lw_store_account_get(f->s, "acct1", &a), LW_OK); /* reads go on (WAL) */
    assert_int_equal(sqlite3_exec(raw, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    assert_int_equal(lw_store_session_set_name(f->s, "acct1-p", "Phone"), LW_OK);
    assert_true(lw_store_writable(f->s));
    lw_session got;
    assert_int_equal(lw_store_session_get(f->s, "acct1-p", &got), LW_OK);
    assert_string_equal(got.name, "Phone");
}

/* A database file this process may only read (a root-owned 0644 file, for
 * the user the server dropped to): refused at open, not opened read-only.
 * Run as root (CI), the child drops to nobody; as anyone else the file's
 * mode does it. */
static void test_sqlite_read_only_file(void **state)
{
    fixture *f = *state;
    FX_SQLITE_ONLY(&f->fx, "file permissions");
    create_account(f->s, "acct1", "alice");
    lw_store_close(f->s);
    f->s = NULL;
    assert_int_equal(chmod(f->fx.path, 0444), 0);
    assert_int_equal(chmod(f->fx.dir, 0755), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(2);
        lw_store *s = NULL;
        int rc = lw_store_open(&s, f->fx.path);
        lw_store_close(s);
        _exit(rc == LW_EUNAVAIL ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(chmod(f->fx.path, 0644), 0);
    assert_int_equal(lw_store_open(&f->s, f->fx.location), LW_OK);
}

/* ---- accounts and invites -------------------------------------------------- */

static void test_account_create_get(void **state)
{
    fixture *f = *state;
    lw_account a, got;
    lw_session p, ps;
    make_account(&a, "acct1", "+351910000001");
    snprintf(a.pin_hash, sizeof(a.pin_hash), "$argon2id$v=19$stub");
    make_session(&p, "dev1", "acct1", LW_ROLE_PRIMARY, 1);
    assert_int_equal(lw_store_account_create(f->s, &a, &p, NULL), LW_OK);

    memset(&got, 0x7f, sizeof(got));
    assert_int_equal(lw_store_account_get(f->s, "acct1", &got), LW_OK);
    assert_string_equal(got.id, "acct1");
    assert_string_equal(got.handle, "+351910000001");
    assert_string_equal(got.pin_hash, "$argon2id$v=19$stub");
    assert_int_equal(got.created_at, T0);
    assert_int_equal(got.inactive_ttl_ms, 30 * DAY_MS);
    assert_int_equal(lw_store_account_get_by_handle(f->s, "+351910000001", &got), LW_OK);
    assert_string_equal(got.id, "acct1");

    assert_int_equal(lw_store_session_get(f->s, "dev1", &ps), LW_OK);
    assert_string_equal(ps.role, "primary");
    assert_string_equal(ps.state, "active");
    assert_string_equal(ps.account_id, "acct1");

    /* Out-parameters are untouched when nothing is found. */
    memset(&got, 0x11, sizeof(got));
    assert_int_equal(lw_store_account_get(f->s, "nobody", &got), LW_ENOTFOUND);
    assert_int_equal((unsigned char)got.id[0], 0x11);
    assert_int_equal(lw_store_account_get_by_handle(f->s, "nobody", &got), LW_ENOTFOUND);

    /* Update writes the PIN fields and TTL. */
    got = a;
    got.pin_failures = 3;
    got.pin_locked_until = T0 + 60000;
    got.inactive_ttl_ms = 7 * DAY_MS;
    assert_int_equal(lw_store_account_update(f->s, &got), LW_OK);
    assert_int_equal(lw_store_account_get(f->s, "acct1", &got), LW_OK);
    assert_int_equal(got.pin_failures, 3);
    assert_int_equal(got.pin_locked_until, T0 + 60000);
    assert_int_equal(got.inactive_ttl_ms, 7 * DAY_MS);
    make_account(&got, "ghost", "ghost");
    assert_int_equal(lw_store_account_update(f->s, &got), LW_ENOTFOUND);
}

static void test_account_handle_unique(void **state)
{
    fixture *f = *state;
    create_account(f->s, "acct1", "alice");
    lw_account a;
    lw_session p;
    make_account(&a, "acct2", "alice");
    make_session(&p, "acct2-p", "acct2", LW_ROLE_PRIMARY, 9);
    assert_int_equal(lw_store_account_create(f->s, &a, &p, NULL), LW_ECONFLICT);
    /* Handles compare without case: no look-alike "Alice". */
    make_account(&a, "acct2", "ALICE");
    assert_int_equal(lw_store_account_create(f->s, &a, &p, NULL), LW_ECONFLICT);
    /* Nothing of the failed creation remains. */
    lw_session x;
    assert_int_equal(lw_store_session_get(f->s, "acct2-p", &x), LW_ENOTFOUND);
    assert_int_equal(lw_store_account_get(f->s, "acct2", &a), LW_ENOTFOUND);
    /* Same id, other handle: also a conflict. */
    make_account(&a, "acct1", "bob");
    assert_int_equal(lw_store_account_create(f->s, &a, &p, NULL), LW_ECONFLICT);
}

static void test_invite_consumed_once(void **state)
{
    fixture *f = *state;
    uint8_t inv[LW_HASH_LEN], other[LW_HASH_LEN], old[LW_HASH_LEN];
    fill(inv, sizeof(inv), 0x42);
    fill(other, sizeof(other), 0x43);
    fill(old, sizeof(old), 0x44);
    assert_int_equal(lw_store_invite_create(f->s, inv, T0 + DAY_MS, NULL), LW_OK);
    assert_int_equal(lw_store_invite_create(f->s, inv, T0 + DAY_MS, ""), LW_ECONFLICT);
    assert_int_equal(lw_store_invite_create(f->s, old, T0 - 1, ""), LW_OK);

    lw_account a;
    lw_session p;
    make_account(&a, "acct1", "alice");
    make_session(&p, "acct1-p", "acct1", LW_ROLE_PRIMARY, 1);
    assert_int_equal(lw_store_account_create(f->s, &a, &p, other), LW_EDENIED);
    assert_int_equal(lw_store_account_create(f->s, &a, &p, old), LW_EDENIED); /* expired */
    assert_int_equal(lw_store_account_get(f->s, "acct1", &a), LW_ENOTFOUND);

    /* A taken handle rolls back the whole creation: the invite stays usable. */
    create_account(f->s, "acct0", "taken");
    make_account(&a, "acct1", "taken");
    assert_int_equal(lw_store_account_create(f->s, &a, &p, inv), LW_ECONFLICT);

    make_account(&a, "acct1", "alice");
    assert_int_equal(lw_store_account_create(f->s, &a, &p, inv), LW_OK);
    lw_account b;
    lw_session q;
    make_account(&b, "acct2", "bob");
    make_session(&q, "acct2-p", "acct2", LW_ROLE_PRIMARY, 2);
    assert_int_equal(lw_store_account_create(f->s, &b, &q, inv), LW_EDENIED);
}

/* ---- sessions -------------------------------------------------------------- */

static void test_session_get_and_list(void **state)
{
    fixture *f = *state;
    create_account(f->s, "acct1", "alice");
    create_account(f->s, "acct2", "bob");
    lw_session c;
    make_session(&c, "comp1", "acct1", LW_ROLE_COMPANION, 10);
    lw_link_request r;
    make_link(&r, "req1", 1);
    assert_int_equal(lw_store_link_insert(f->s, &r), LW_OK);
    approve_link(f->s, "req1", "acct1");
    assert_int_equal(lw_store_link_complete(f->s, "req1", &c, 4, NULL, NULL), LW_OK);

    lw_session got;
    assert_int_equal(lw_store_session_get(f->s, "comp1", &got), LW_OK);
    assert_string_equal(got.role, "companion");
    assert_string_equal(got.name, "Chrome on Windows");
    assert_string_equal(got.first.city, "Lisboa");
    assert_memory_equal(got.public_key, c.public_key, LW_PK_LEN);
    assert_memory_equal(got.account_sig, c.account_sig, LW_SIG_LEN);
    assert_memory_equal(got.cred_hash, c.cred_hash, LW_HASH_LEN);
    assert_memory_equal(got.challenge, c.challenge, 32);
    assert_true(got.persistent);
    assert_int_equal(got.ended_at, 0);
    assert_string_equal(got.end_reason, "");

    assert_int_equal(lw_store_session_get_by_selector(f->s, "sel-comp1", &got), LW_OK);
    assert_string_equal(got.id, "comp1");
    assert_int_equal(lw_store_session_get_by_selector(f->s, "sel-none", &got), LW_ENOTFOUND);
    assert_int_equal(lw_store_session_get(f->s, "none", &got), LW_ENOTFOUND);

    long n = -1;
    assert_int_equal(lw_store_session_count_active_companions(f->s, "acct1", NULL, &n), LW_OK);
    assert_int_equal(n, 1);

    lw_session *list = NULL;
    size_t count = 99;
    assert_int_equal(lw_store_session_list(f->s, "acct1", false, &list, &count), LW_OK);
    assert_int_equal(count, 2);
    assert_string_equal(list[0].id, "acct1-p"); /* linked_at tie broken by id */
    assert_string_equal(list[1].id, "comp1");
    lw_free(list);
    assert_int_equal(lw_store_session_list(f->s, "acct1", true, &list, &count), LW_OK);
    assert_int_equal(count, 0);
    lw_free(list);

    assert_int_equal(lw_store_session_end(f->s, "comp1", "logout", T0 + 5), LW_OK);
    assert_int_equal(lw_store_session_list(f->s, "acct1", false, &list, &count), LW_OK);
    assert_int_equal(count, 1);
    lw_free(list);
    assert_int_equal(lw_store_session_list(f->s, "acct1", true, &list, &count), LW_OK);
    assert_int_equal(count, 1);
    assert_string_equal(list[0].id, "comp1");
    assert_string_equal(list[0].state, "ended");
    assert_string_equal(list[0].end_reason, "logout");
    assert_int_equal(list[0].ended_at, T0 + 5);
    lw_free(list);
    /* An ended session's credential still finds the record, so the caller can say why it ended. */
    assert_int_equal(lw_store_session_get_by_selector(f->s, "sel-comp1", &got), LW_OK);
    assert_string_equal(got.state, "ended");
    assert_string_equal(got.end_reason, "logout");
    assert_int_equal(lw_store_session_count_active_companions(f->s, "acct1", NULL, &n), LW_OK);
    assert_int_equal(n, 0);
}

/* The risk rules' view of an account: known countries (live and ended
 * sessions, first and last seen) and its active primary's place. */
static void test_account_places(void **state)
{
    fixture *f = *state;
    create_account(f->s, "acct1", "alice"); /* primary acct1-p: last seen PT, no coordinates */
    create_account(f->s, "acct2", "bob");
    lw_account_places k;
    assert_int_equal(lw_store_account_places(f->s, "acct1", "PT", &k), LW_OK);
    assert_true(k.country_seen && k.any_country && k.has_primary);
    assert_string_equal(k.primary.country, "PT");
    assert_false(k.primary.has_loc);
    assert_int_equal(lw_store_account_places(f->s, "acct1", "ES", &k), LW_OK);
    assert_true(!k.country_seen && k.any_country);
    assert_int_equal(lw_store_account_places(f->s, "acct1", "", &k), LW_OK);
    assert_true(!k.country_seen && k.any_country);
    assert_int_equal(lw_store_account_places(f->s, "nobody", "PT", &k), LW_OK);
    assert_true(!k.country_seen && !k.any_country && !k.has_primary);

    /* A companion first seen in ES, then ended: its country still counts. */
    lw_session c;
    make_session(&c, "comp1", "acct1", LW_ROLE_COMPANION, 10);
    snprintf(c.first.country, sizeof(c.first.country), "ES");
    snprintf(c.last.country, sizeof(c.last.country), "FR");
    lw_link_request r;
    make_link(&r, "req1", 1);
    assert_int_equal(lw_store_link_insert(f->s, &r), LW_OK);
    approve_link(f->s, "req1", "acct1");
    assert_int_equal(lw_store_link_complete(f->s, "req1", &c, 4, NULL, NULL), LW_OK);
    assert_int_equal(lw_store_session_end(f->s, "comp1", "logout", T0 + 5), LW_OK);
    assert_int_equal(lw_store_account_places(f->s, "acct1", "ES", &k), LW_OK);
    assert_true(k.country_seen);
    assert_int_equal(lw_store_account_places(f->s, "acct1", "FR", &k), LW_OK);
    assert_true(k.country_seen);
    assert_int_equal(lw_store_account_places(f->s, "acct2", "ES", &k), LW_OK);
    assert_false(k.country_seen);

    /* The primary's place: where it was last seen, with coordinates. */
    lw_place where;
    memset(&where, 0, sizeof(where));
    snprintf(where.ip, sizeof(where.ip), "198.51.100.70");
    snprintf(where.country, sizeof(where.country), "DE");
    where.lat = 52.5;
    where.lon = 13.4;
    where.has_loc = true;
    assert_int_equal(lw_store_session_touch(f->s, "acct1-p", T0 + 10, &where), LW_OK);
    assert_int_equal(lw_store_account_places(f->s, "acct1", "DE", &k), LW_OK);
    assert_true(k.country_seen && k.has_primary && k.primary.has_loc);
    assert_string_equal(k.primary.country, "DE");
    assert_true(k.primary.lat > 52.4 && k.primary.lat < 52.6 && k.primary.lon > 13.3 && k.primary.lon < 13.5);

    /* No active primary, no primary place. */
    assert_int_equal(lw_store_session_end(f->s, "acct1-p", "reset", T0 + 20), LW_OK);
    assert_int_equal(lw_store_account_places(f->s, "acct1", "DE", &k), LW_OK);
    assert_true(k.country_seen && !k.has_primary);
}

static void test_session_credential_touch_name(void **state)
{
    fixture *f = *state;
    create_account(f->s, "acct1", "alice");
    create_account(f->s, "acct2", "bob");
    lw_session x;
    assert_int_equal(lw_store_session_get(f->s, "acct1-p", &x), LW_OK);
    snprintf(x.cred_selector, sizeof(x.cred_selector), "sel-new");
    fill(x.cred_hash, sizeof(x.cred_hash), 0xee);
    x.cred_expires_at = T0 + 1200000;
    fill(x.challenge, sizeof(x.challenge), 0xcc);
    assert_int_equal(lw_store_session_set_credential(f->s, &x), LW_OK);
    lw_session got;
    assert_int_equal(lw_store_session_get_by_selector(f->s, "sel-acct1-p", &got), LW_ENOTFOUND);
    assert_int_equal(lw_store_session_get_by_selector(f->s, "sel-new", &got), LW_OK);
    assert_string_equal(got.id, "acct1-p");
    assert_memory_equal(got.cred_hash, x.cred_hash, LW_HASH_LEN);
    assert_memory_equal(got.challenge, x.challenge, 32);
    assert_int_equal(got.cred_expires_at, T0 + 1200000);

    /* An active selector is unique. */
    lw_session y;
    assert_int_equal(lw_store_session_get(f->s, "acct2-p", &y), LW_OK);
    snprintf(y.cred_selector, sizeof(y.cred_selector), "sel-new");
    assert_int_equal(lw_store_session_set_credential(f->s, &y), LW_ECONFLICT);

    /* Touch with a place: newest time wins and brings its place. */
    lw_place lisbon = {
        .ip = "198.51.100.1", .country = "PT", .city = "Lisbon", .lat = 38.7, .lon = -9.1, .has_loc = true};
    lw_place sydney = {
        .ip = "203.0.113.9", .country = "AU", .city = "Sydney", .lat = -33.9, .lon = 151.2, .has_loc = true};
    assert_int_equal(lw_store_session_touch(f->s, "acct1-p", T0 + 60000, &sydney), LW_OK);
    assert_int_equal(lw_store_session_get(f->s, "acct1-p", &got), LW_OK);
    assert_int_equal(got.last_active_at, T0 + 60000);
    assert_string_equal(got.last.ip, "203.0.113.9");
    assert_string_equal(got.last.city, "Sydney");
    assert_string_equal(got.last.country, "AU");
    assert_true(got.last.has_loc);
    assert_true(got.last.lat < -33.8 && got.last.lat > -34.0);
    /* An older write (coalesced, late) changes neither time nor place. */
    assert_int_equal(lw_store_session_touch(f->s, "acct1-p", T0 + 30000, &lisbon), LW_OK);
    assert_int_equal(lw_store_session_get(f->s, "acct1-p", &got), LW_OK);
    assert_int_equal(got.last_active_at, T0 + 60000);
    assert_string_equal(got.last.ip, "203.0.113.9");
    assert_string_equal(got.last.city, "Sydney");
    /* Without a place only the time moves. */
    assert_int_equal(lw_store_session_touch(f->s, "acct1-p", T0 + 90000, NULL), LW_OK);
    assert_int_equal(lw_store_session_get(f->s, "acct1-p", &got), LW_OK);
    assert_int_equal(got.last_active_at, T0 + 90000);
    assert_string_equal(got.last.ip, "203.0.113.9");
    assert_string_equal(got.last.city, "Sydney");
    assert_int_equal(lw_store_session_touch(f->s, "nobody", T0, NULL), LW_ENOTFOUND);

    assert_int_equal(lw_store_session_set_name(f->s, "acct1-p", "My phone"), LW_OK);
    assert_int_equal(lw_store_session_get(f->s, "acct1-p", &got), LW_OK);
    assert_string_equal(got.name, "My phone");
    assert_int_equal(lw_store_session_set_name(f->s, "nobody", "x"), LW_ENOTFOUND);

    /* Privacy: only an ended record can be redacted, and then only its country stays. */
    assert_int_equal(lw_store_session_redact(f->s, "acct1-p"), LW_ECONFLICT);
    assert_int_equal(lw_store_session_redact(f->s, "nobody"), LW_ENOTFOUND);

    /* Ended: credential and touch are refused as a conflict. */
    assert_int_equal(lw_store_session_end(f->s, "acct1-p", "account_reset", T0 + 100000), LW_OK);
    assert_int_equal(lw_store_session_set_credential(f->s, &x), LW_ECONFLICT);
    assert_int_equal(lw_store_session_touch(f->s, "acct1-p", T0 + 200000, NULL), LW_ECONFLICT);
    assert_int_equal(lw_store_session_redact(f->s, "acct1-p"), LW_OK);
    assert_int_equal(lw_store_session_get(f->s, "acct1-p", &got), LW_OK);
    assert_string_equal(got.first.ip, "");
    assert_string_equal(got.last.ip, "");
    assert_string_equal(got.first.city, "");
    assert_string_equal(got.last.city, "");
    assert_false(got.first.has_loc);
    assert_false(got.last.has_loc);
    assert_true(got.first.country[0] != '\0' || got.last.country[0] != '\0');
}

static void test_session_end(void **state)
{
    fixture *f = *state;
    create_account(f->s, "acct1", "alice");
    assert_int_equal(lw_store_session_end(f->s, "acct1-p", "logout", T0 + 1), LW_OK);
    assert_int_equal(lw_store_session_end(f->s, "acct1-p", "logout", T0 + 2), LW_ECONFLICT);
    assert_int_equal(lw_store_session_end(f->s, "nobody", "logout", T0 + 2), LW_ENOTFOUND);
    lw_session got;
    assert_int_equal(lw_store_session_get(f->s, "acct1-p", &got), LW_OK);
    assert_int_equal(got.ended_at, T0 + 1); /* the second end changed nothing */
}

/* Links companions c1..cn to acct with max_companions 10. */
static void link_companions(lw_store *s, const char *acct, int n, uint8_t base)
{
    for (int k = 0; k < n; k++) {
        char rid[LW_ID_STRLEN], did[LW_ID_STRLEN];
        snprintf(rid, sizeof(rid), "r-%s-%d", acct, k);
        snprintf(did, sizeof(did), "c-%s-%d", acct, k);
        lw_link_request r;
        make_link(&r, rid, (uint8_t)(base + 4 * k));
        assert_int_equal(lw_store_link_insert(s, &r), LW_OK);
        approve_link(s, rid, acct);
        lw_session c;
        make_session(&c, did, acct, LW_ROLE_COMPANION, (uint8_t)(base + 4 * k));
        c.linked_at = T0 + k + 1;
        assert_int_equal(lw_store_link_complete(s, rid, &c, 10, NULL, NULL), LW_OK);
    }
}

static void test_session_end_all(void **state)
{
    fixture *f = *state;
    create_account(f->s, "acct1", "alice");
    create_account(f->s, "acct2", "bob");
    link_companions(f->s, "acct1", 3, 10);
    link_companions(f->s, "acct2", 1, 100);

    lw_ended *ended = NULL;
    size_t n = 0;
    assert_int_equal(lw_store_session_end_all(f->s, "acct1", LW_ROLE_COMPANION, "c-acct1-1", "logout_all",
                                              T0 + 10, &ended, &n),
                     LW_OK);
    assert_int_equal(n, 2);
    assert_string_equal(ended[0].device_id, "c-acct1-0");
    assert_string_equal(ended[1].device_id, "c-acct1-2");
    assert_string_equal(ended[0].account_id, "acct1");
    assert_string_equal(ended[0].reason, "logout_all");
    lw_free(ended);

    lw_session got;
    assert_int_equal(lw_store_session_get(f->s, "c-acct1-1", &got), LW_OK);
    assert_string_equal(got.state, "active");
    assert_int_equal(lw_store_session_get(f->s, "acct1-p", &got), LW_OK);
    assert_string_equal(got.state, "active");
    assert_int_equal(lw_store_session_get(f->s, "c-acct2-0", &got), LW_OK);
    assert_string_equal(got.state, "active");

    /* All roles, no exception: the primary and the last companion. */
    assert_int_equal(
        lw_store_session_end_all(f->s, "acct1", NULL, NULL, "account_reset", T0 + 20, &ended, &n), LW_OK);
    assert_int_equal(n, 2);
    lw_free(ended);
    /* Nothing left to end. */
    assert_int_equal(
        lw_store_session_end_all(f->s, "acct1", NULL, NULL, "account_reset", T0 + 30, &ended, &n), LW_OK);
    assert_int_equal(n, 0);
    lw_free(ended);
    assert_int_equal(lw_store_session_get(f->s, "c-acct1-0", &got), LW_OK);
    assert_string_equal(got.end_reason, "logout_all"); /* not overwritten */
}

static void test_session_delete_ended(void **state)
{
    fixture *f = *state;
    create_account(f->s, "acct1", "alice");
    create_account(f->s, "acct2", "bob");
    link_companions(f->s, "acct1", 3, 10);
    assert_int_equal(lw_store_session_end(f->s, "c-acct1-0", "logout", T0 + 1), LW_OK);
    assert_int_equal(lw_store_session_end(f->s, "c-acct1-1", "logout", T0 + 1), LW_OK);

    long deleted = -1;
    /* Active, another account's, or absent: not found. */
    assert_int_equal(lw_store_session_delete_ended(f->s, "acct1", "c-acct1-2", &deleted), LW_ENOTFOUND);
    assert_int_equal(lw_store_session_delete_ended(f->s, "acct2", "c-acct1-0", &deleted), LW_ENOTFOUND);
    assert_int_equal(lw_store_session_delete_ended(f->s, "acct1", "nobody", &deleted), LW_ENOTFOUND);
    assert_int_equal(deleted, -1);

    assert_int_equal(lw_store_session_delete_ended(f->s, "acct1", "c-acct1-0", &deleted), LW_OK);
    assert_int_equal(deleted, 1);
    lw_session got;
    assert_int_equal(lw_store_session_get(f->s, "c-acct1-0", &got), LW_ENOTFOUND);

    assert_int_equal(lw_store_session_end(f->s, "c-acct1-2", "logout", T0 + 2), LW_OK);
    assert_int_equal(lw_store_session_delete_ended(f->s, "acct1", NULL, &deleted), LW_OK);
    assert_int_equal(deleted, 2);
    assert_int_equal(lw_store_session_delete_ended(f->s, "acct1", NULL, &deleted), LW_OK);
    assert_int_equal(deleted, 0);
    assert_int_equal(lw_store_session_get(f->s, "acct1-p", &got), LW_OK);
}

/* ---- link requests --------------------------------------------------------- */

static void test_link_lookup_and_ref(void **state)
{
    fixture *f = *state;
    lw_link_request r, got;
    make_link(&r, "req1", 1);
    assert_int_equal(lw_store_link_insert(f->s, &r), LW_OK);
    assert_int_equal(lw_store_link_insert(f->s, &r), LW_ECONFLICT);

    assert_int_equal(lw_store_link_get(f->s, "req1", &got), LW_OK);
    assert_string_equal(got.state, "pending");
    assert_string_equal(got.token_selector, "tok-req1");
    assert_memory_equal(got.token_hash, r.token_hash, LW_HASH_LEN);
    assert_memory_equal(got.public_key, r.public_key, LW_PK_LEN);
    assert_int_equal(got.expires_at, T0 + 160000);
    assert_string_equal(got.name, "Firefox on Linux");
    assert_string_equal(got.place.ip, "198.51.100.7");
    assert_true(got.persistent);

    assert_int_equal(lw_store_link_get_by_selector(f->s, "tok-req1", &got), LW_OK);
    assert_string_equal(got.id, "req1");
    assert_int_equal(lw_store_link_get_by_ref(f->s, r.ref_hash, &got), LW_OK);
    assert_string_equal(got.id, "req1");
    assert_int_equal(lw_store_link_get_by_code(f->s, r.code_hash, &got), LW_OK);
    assert_string_equal(got.id, "req1");
    uint8_t none[LW_HASH_LEN];
    fill(none, sizeof(none), 0x99);
    assert_int_equal(lw_store_link_get_by_ref(f->s, none, &got), LW_ENOTFOUND);
    assert_int_equal(lw_store_link_get_by_code(f->s, none, &got), LW_ENOTFOUND);
    assert_int_equal(lw_store_link_get(f->s, "nope", &got), LW_ENOTFOUND);

    /* Another request with the same code collides (codes are unique among live requests). */
    lw_link_request r2;
    make_link(&r2, "req2", 50);
    memcpy(r2.code_hash, r.code_hash, LW_HASH_LEN);
    assert_int_equal(lw_store_link_insert(f->s, &r2), LW_ECONFLICT);

    /* Rotation: the old ref finds nothing, the new one the request. */
    uint8_t ref2[LW_HASH_LEN];
    fill(ref2, sizeof(ref2), 0x77);
    assert_int_equal(lw_store_link_set_ref(f->s, "req1", ref2, 1, T0 + 80000), LW_OK);
    assert_int_equal(lw_store_link_get_by_ref(f->s, r.ref_hash, &got), LW_ENOTFOUND);
    assert_int_equal(lw_store_link_get_by_ref(f->s, ref2, &got), LW_OK);
    assert_int_equal(got.ref_index, 1);
    assert_int_equal(got.ref_expires_at, T0 + 80000);
    assert_int_equal(lw_store_link_set_ref(f->s, "nope", ref2, 1, T0), LW_ENOTFOUND);

    /* Once scanned, the ref and code still find it (so a second scan is told
     * "already used", not "unknown"), but refs stop rotating. */
    approve_link(f->s, "req1", "acct1");
    assert_int_equal(lw_store_link_get_by_ref(f->s, ref2, &got), LW_OK);
    assert_string_equal(got.state, "approved");
    assert_int_equal(lw_store_link_get_by_code(f->s, r.code_hash, &got), LW_OK);
    assert_int_equal(lw_store_link_set_ref(f->s, "req1", none, 2, T0 + 100000), LW_ECONFLICT);
    /* ...and the code stays taken until the request is purged. */
    assert_int_equal(lw_store_link_insert(f->s, &r2), LW_ECONFLICT);
}

static void test_link_transition_cas(void **state)
{
    fixture *f = *state;
    lw_link_request r, got;
    make_link(&r, "req1", 1);
    assert_int_equal(lw_store_link_insert(f->s, &r), LW_OK);
    snprintf(r.account_id, sizeof(r.account_id), "acct1");
    snprintf(r.scanned_by, sizeof(r.scanned_by), "acct1-p");
    assert_int_equal(lw_store_link_transition(f->s, &r, "pending", "scanned"), LW_OK);
    /* The same transition again: someone else already consumed it. */
    assert_int_equal(lw_store_link_transition(f->s, &r, "pending", "scanned"), LW_ECONFLICT);
    assert_int_equal(lw_store_link_get(f->s, "req1", &got), LW_OK);
    assert_string_equal(got.state, "scanned");
    assert_string_equal(got.account_id, "acct1");
    assert_string_equal(got.scanned_by, "acct1-p");

    fill(r.account_sig, sizeof(r.account_sig), 0x5a);
    fill(r.nonce, sizeof(r.nonce), 0xa5);
    assert_int_equal(lw_store_link_transition(f->s, &r, "scanned", "approved"), LW_OK);
    assert_int_equal(lw_store_link_get(f->s, "req1", &got), LW_OK);
    assert_string_equal(got.state, "approved");
    assert_memory_equal(got.account_sig, r.account_sig, LW_SIG_LEN);
    assert_memory_equal(got.nonce, r.nonce, 32);

    lw_link_request ghost;
    make_link(&ghost, "ghost", 7);
    assert_int_equal(lw_store_link_transition(f->s, &ghost, "pending", "scanned"), LW_ENOTFOUND);

    /* Deny path. */
    lw_link_request d;
    make_link(&d, "req2", 20);
    assert_int_equal(lw_store_link_insert(f->s, &d), LW_OK);
    assert_int_equal(lw_store_link_transition(f->s, &d, "pending", "denied"), LW_OK);
    assert_int_equal(lw_store_link_transition(f->s, &d, "pending", "expired"), LW_ECONFLICT);
    /* An unknown state is rejected by the schema. */
    lw_link_request e;
    make_link(&e, "req3", 40);
    assert_int_equal(lw_store_link_insert(f->s, &e), LW_OK);
    assert_int_equal(lw_store_link_transition(f->s, &e, "pending", "bogus"), LW_EINVAL);
}

static void test_link_complete(void **state)
{
    fixture *f = *state;
    create_account(f->s, "acct1", "alice");
    lw_link_request r, got;
    make_link(&r, "req1", 1);
    assert_int_equal(lw_store_link_insert(f->s, &r), LW_OK);

    lw_session c;
    make_session(&c, "comp1", "acct1", LW_ROLE_COMPANION, 10);
    /* Not approved yet. */
    assert_int_equal(lw_store_link_complete(f->s, "req1", &c, 4, NULL, NULL), LW_ECONFLICT);
    assert_int_equal(lw_store_link_complete(f->s, "nope", &c, 4, NULL, NULL), LW_ENOTFOUND);
    approve_link(f->s, "req1", "acct1");

    /* A session for another account than the approved one is refused. */
    lw_session wrong = c;
    snprintf(wrong.account_id, sizeof(wrong.account_id), "acct9");
    assert_int_equal(lw_store_link_complete(f->s, "req1", &wrong, 4, NULL, NULL), LW_EINVAL);

    assert_int_equal(lw_store_link_complete(f->s, "req1", &c, 4, NULL, NULL), LW_OK);
    assert_int_equal(lw_store_link_get(f->s, "req1", &got), LW_OK);
    assert_string_equal(got.state, "completed");
    assert_string_equal(got.device_id, "comp1");
    lw_session s;
    assert_int_equal(lw_store_session_get(f->s, "comp1", &s), LW_OK);
    assert_string_equal(s.state, "active");
    assert_string_equal(s.role, "companion");

    /* Twice: the request was consumed. */
    lw_session c2;
    make_session(&c2, "comp2", "acct1", LW_ROLE_COMPANION, 20);
    assert_int_equal(lw_store_link_complete(f->s, "req1", &c2, 4, NULL, NULL), LW_ECONFLICT);
    assert_int_equal(lw_store_session_get(f->s, "comp2", &s), LW_ENOTFOUND);
}

static void test_link_device_limit(void **state)
{
    fixture *f = *state;
    create_account(f->s, "acct1", "alice");
    link_companions(f->s, "acct1", 2, 10);

    lw_link_request r, got;
    make_link(&r, "req-x", 200);
    assert_int_equal(lw_store_link_insert(f->s, &r), LW_OK);
    approve_link(f->s, "req-x", "acct1");
    lw_session c;
    make_session(&c, "comp-x", "acct1", LW_ROLE_COMPANION, 200);
    assert_int_equal(lw_store_link_complete(f->s, "req-x", &c, 2, NULL, NULL), LW_ELIMIT);
    /* Nothing changed: no session, request still approved. */
    assert_int_equal(lw_store_session_get(f->s, "comp-x", &c), LW_ENOTFOUND);
    assert_int_equal(lw_store_link_get(f->s, "req-x", &got), LW_OK);
    assert_string_equal(got.state, "approved");
    long n = 0;
    assert_int_equal(lw_store_session_count_active_companions(f->s, "acct1", NULL, &n), LW_OK);
    assert_int_equal(n, 2);

    /* Freeing a slot makes it fit. The primary never counts. */
    assert_int_equal(lw_store_session_end(f->s, "c-acct1-0", "remote_logout", T0 + 1), LW_OK);
    make_session(&c, "comp-x", "acct1", LW_ROLE_COMPANION, 200);
    assert_int_equal(lw_store_link_complete(f->s, "req-x", &c, 2, NULL, NULL), LW_OK);
    /* A duplicate credential selector rolls the completion back too. */
    lw_link_request r2;
    make_link(&r2, "req-y", 220);
    assert_int_equal(lw_store_link_insert(f->s, &r2), LW_OK);
    approve_link(f->s, "req-y", "acct1");
    lw_session dup;
    make_session(&dup, "comp-y", "acct1", LW_ROLE_COMPANION, 220);
    snprintf(dup.cred_selector, sizeof(dup.cred_selector), "sel-comp-x");
    assert_int_equal(lw_store_link_complete(f->s, "req-y", &dup, 10, NULL, NULL), LW_ECONFLICT);
    assert_int_equal(lw_store_link_get(f->s, "req-y", &got), LW_OK);
    assert_string_equal(got.state, "approved");
}

/* A device key has at most one active session: completing a link with the
 * key of a live companion of the account replaces that session, in the same
 * transaction, and the replaced one does not count towards the limit. */
static void test_link_relink(void **state)
{
    fixture *f = *state;
    create_account(f->s, "acct1", "alice");
    create_account(f->s, "acct2", "bob");
    link_companions(f->s, "acct1", 2, 10); /* c-acct1-0 holds key tag 10; the limit (2) is reached */
    {                                      /* the same key on another account is not touched */
        lw_link_request o;
        make_link(&o, "req-o", 60);
        assert_int_equal(lw_store_link_insert(f->s, &o), LW_OK);
        approve_link(f->s, "req-o", "acct2");
        lw_session c;
        make_session(&c, "c-acct2-0", "acct2", LW_ROLE_COMPANION, 10);
        snprintf(c.cred_selector, sizeof(c.cred_selector), "sel-other");
        assert_int_equal(lw_store_link_complete(f->s, "req-o", &c, 10, NULL, NULL), LW_OK);
    }

    lw_link_request r, got;
    make_link(&r, "req-re", 100);
    assert_int_equal(lw_store_link_insert(f->s, &r), LW_OK);
    approve_link(f->s, "req-re", "acct1");
    long n = 0;
    lw_session again, old;
    make_session(&again, "comp-re", "acct1", LW_ROLE_COMPANION, 10);
    again.linked_at = T0 + 50;
    assert_int_equal(lw_store_session_count_active_companions(f->s, "acct1", again.public_key, &n), LW_OK);
    assert_int_equal(n, 1);

    lw_ended *ended = NULL;
    size_t count = 0;
    assert_int_equal(lw_store_link_complete(f->s, "req-re", &again, 2, &ended, &count), LW_OK);
    assert_int_equal(count, 1);
    assert_string_equal(ended[0].device_id, "c-acct1-0");
    assert_string_equal(ended[0].account_id, "acct1");
    assert_string_equal(ended[0].reason, LW_END_RELINKED);
    lw_free(ended);
    assert_int_equal(lw_store_session_get(f->s, "c-acct1-0", &old), LW_OK);
    assert_string_equal(old.state, "ended");
    assert_string_equal(old.end_reason, LW_END_RELINKED);
    assert_true(old.ended_at == T0 + 50);
    assert_int_equal(lw_store_session_get(f->s, "comp-re", &old), LW_OK);
    assert_string_equal(old.state, "active");
    assert_int_equal(lw_store_session_count_active_companions(f->s, "acct1", NULL, &n), LW_OK);
    assert_int_equal(n, 2);
    assert_int_equal(lw_store_session_get(f->s, "c-acct2-0", &old), LW_OK);
    assert_string_equal(old.state, "active");
    /* The history has the replaced session, with its reason. */
    lw_session *hist = NULL;
    size_t nh = 0;
    assert_int_equal(lw_store_session_list(f->s, "acct1", true, &hist, &nh), LW_OK);
    assert_int_equal(nh, 1);
    assert_string_equal(hist[0].id, "c-acct1-0");
    assert_string_equal(hist[0].end_reason, LW_END_RELINKED);
    lw_free(hist);

    /* A completion that fails after the replacement changes nothing at all:
     * here the limit, for another key... */
    lw_link_request r2;
    make_link(&r2, "req-full", 120);
    assert_int_equal(lw_store_link_insert(f->s, &r2), LW_OK);
    approve_link(f->s, "req-full", "acct1");
    lw_session other;
    make_session(&other, "comp-full", "acct1", LW_ROLE_COMPANION, 120);
    ended = NULL;
    count = 7;
    assert_int_equal(lw_store_link_complete(f->s, "req-full", &other, 2, &ended, &count), LW_ELIMIT);
    assert_null(ended);
    assert_int_equal(count, 7);
    /* ...and here a duplicate selector with the same key: the old session stays active. */
    lw_link_request r3;
    make_link(&r3, "req-dup", 140);
    assert_int_equal(lw_store_link_insert(f->s, &r3), LW_OK);
    approve_link(f->s, "req-dup", "acct1");
    lw_session dup;
    make_session(&dup, "comp-dup", "acct1", LW_ROLE_COMPANION, 10);
    snprintf(dup.cred_selector, sizeof(dup.cred_selector), "sel-c-acct1-1"); /* another live session's */
    assert_int_equal(lw_store_link_complete(f->s, "req-dup", &dup, 2, &ended, &count), LW_ECONFLICT);
    assert_int_equal(lw_store_session_get(f->s, "comp-re", &old), LW_OK);
    assert_string_equal(old.state, "active");
    assert_int_equal(lw_store_link_get(f->s, "req-dup", &got), LW_OK);
    assert_string_equal(got.state, "approved");

    /* The primary's key is never ended by a companion's completion. */
    lw_link_request r4;
    make_link(&r4, "req-pk", 160);
    assert_int_equal(lw_store_link_insert(f->s, &r4), LW_OK);
    approve_link(f->s, "req-pk", "acct2");
    lw_session as_primary;
    make_session(&as_primary, "comp-pk", "acct2", LW_ROLE_COMPANION, 1); /* create_account's primary tag */
    assert_int_equal(lw_store_link_complete(f->s, "req-pk", &as_primary, 4, &ended, &count), LW_OK);
    assert_int_equal(count, 0);
    lw_free(ended);
    assert_int_equal(lw_store_session_get(f->s, "acct2-p", &old), LW_OK);
    assert_string_equal(old.state, "active");
}

static void test_link_purge(void **state)
{
    fixture *f = *state;
    lw_link_request r;
    make_link(&r, "old", 1);
    r.expires_at = T0 - 1000;
    assert_int_equal(lw_store_link_insert(f->s, &r), LW_OK);
    make_link(&r, "new", 20);
    assert_int_equal(lw_store_link_insert(f->s, &r), LW_OK);
    long deleted = -1;
    assert_int_equal(lw_store_link_purge(f->s, T0, &deleted), LW_OK);
    assert_int_equal(deleted, 1);
    assert_int_equal(lw_store_link_get(f->s, "old", &r), LW_ENOTFOUND);
    assert_int_equal(lw_store_link_get(f->s, "new", &r), LW_OK);
}

/* ---- alerts ---------------------------------------------------------------- */

static void make_alert(lw_alert *a, const char *id, const char *acct, int64_t at)
{
    memset(a, 0, sizeof(*a));
    snprintf(a->id, sizeof(a->id), "%s", id);
    snprintf(a->account_id, sizeof(a->account_id), "%s", acct);
    snprintf(a->kind, sizeof(a->kind), "device.linked");
    snprintf(a->device_id, sizeof(a->device_id), "dev");
    a->created_at = at;
    snprintf(a->details, sizeof(a->details), "{\"browser\":\"Chrome\"}");
}

static void test_alerts(void **state)
{
    fixture *f = *state;
    create_account(f->s, "acct1", "alice");
    create_account(f->s, "acct2", "bob");
    lw_alert a;
    make_alert(&a, "al1", "acct1", T0 + 1);
    assert_int_equal(lw_store_alert_insert(f->s, &a), LW_OK);
    assert_int_equal(lw_store_alert_insert(f->s, &a), LW_ECONFLICT);
    make_alert(&a, "al2", "acct1", T0 + 3);
    assert_int_equal(lw_store_alert_insert(f->s, &a), LW_OK);
    make_alert(&a, "al3", "acct1", T0 + 2);
    assert_int_equal(lw_store_alert_insert(f->s, &a), LW_OK);
    make_alert(&a, "al4", "acct2", T0 + 2);
    assert_int_equal(lw_store_alert_insert(f->s, &a), LW_OK);
    /* An alert for no account is refused. */
    make_alert(&a, "al5", "ghost", T0);
    assert_int_equal(lw_store_alert_insert(f->s, &a), LW_ENOTFOUND);

    lw_alert *list = NULL;
    size_t n = 0;
    assert_int_equal(lw_store_alert_list(f->s, "acct1", 0, &list, &n), LW_OK);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].id, "al2");
    assert_string_equal(list[1].id, "al3");
    assert_string_equal(list[2].id, "al1");
    assert_string_equal(list[0].kind, "device.linked");
    assert_string_equal(list[0].details, "{\"browser\":\"Chrome\"}");
    assert_int_equal(list[0].acked_at, 0);
    lw_free(list);
    assert_int_equal(lw_store_alert_list(f->s, "acct1", 2, &list, &n), LW_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[1].id, "al3");
    lw_free(list);

    assert_int_equal(lw_store_alert_ack(f->s, "acct2", "al1", LW_ALERT_ANSWER_ME, "dev-me", T0 + 10),
                     LW_ENOTFOUND);
    assert_int_equal(lw_store_alert_ack(f->s, "acct1", "nope", LW_ALERT_ANSWER_ME, "dev-me", T0 + 10),
                     LW_ENOTFOUND);
    assert_int_equal(lw_store_alert_ack(f->s, "acct1", "al1", LW_ALERT_ANSWER_ME, "dev-me", T0 + 10), LW_OK);
    assert_int_equal(lw_store_alert_ack(f->s, "acct1", "al1", LW_ALERT_ANSWER_ME, "dev-me", T0 + 20), LW_OK);
    assert_int_equal(lw_store_alert_list(f->s, "acct1", 0, &list, &n), LW_OK);
    assert_int_equal(list[2].acked_at, T0 + 10); /* the first ack stays */
    assert_string_equal(list[2].answer, LW_ALERT_ANSWER_ME);
    assert_string_equal(list[2].answered_by, "dev-me"); /* who answered is kept with the answer */
    assert_string_equal(list[1].answer, "");
    assert_string_equal(list[1].answered_by, "");
    lw_free(list);

    /* One alert by id, only the account's. */
    lw_alert one;
    assert_int_equal(lw_store_alert_get(f->s, "acct1", "al1", &one), LW_OK);
    assert_string_equal(one.kind, "device.linked");
    assert_string_equal(one.answer, LW_ALERT_ANSWER_ME);
    assert_int_equal(lw_store_alert_get(f->s, "acct2", "al1", &one), LW_ENOTFOUND);
    assert_int_equal(lw_store_alert_get(f->s, "acct1", "nope", &one), LW_ENOTFOUND);

    /* "It was me" gives way to a protective answer given later, never the
     * reverse; the first time stays. */
    assert_int_equal(lw_store_alert_ack(f->s, "acct1", "al1", LW_ALERT_ANSWER_LOGOUT, "dev-logout", T0 + 30),
                     LW_OK);
    assert_int_equal(lw_store_alert_get(f->s, "acct1", "al1", &one), LW_OK);
    assert_string_equal(one.answer, LW_ALERT_ANSWER_LOGOUT);
    assert_string_equal(one.answered_by, "dev-logout"); /* the protective answer's device */
    assert_int_equal(one.acked_at, T0 + 10);
    assert_int_equal(lw_store_alert_ack(f->s, "acct1", "al1", LW_ALERT_ANSWER_ME, "dev-me", T0 + 40), LW_OK);
    assert_int_equal(lw_store_alert_ack(f->s, "acct1", "al1", LW_ALERT_ANSWER_SECURE, "dev-secure", T0 + 40),
                     LW_OK);
    assert_int_equal(lw_store_alert_get(f->s, "acct1", "al1", &one), LW_OK);
    assert_string_equal(one.answer, LW_ALERT_ANSWER_LOGOUT);
    assert_string_equal(one.answered_by, "dev-logout"); /* neither answer nor device gives way */
    assert_int_equal(lw_store_alert_ack(f->s, "acct1", "al1", LW_ALERT_ANSWER_ME, NULL, T0 + 50), LW_EINVAL);
}

/* A burst of one kind about one device is one alert: counted into the
 * newest unanswered one updated since the window's start, else a new one. */
static void test_alert_burst(void **state)
{
    fixture *f = *state;
    create_account(f->s, "acct1", "alice");
    create_account(f->s, "acct2", "bob");
    lw_alert a, got;
    make_alert(&a, "b1", "acct1", T0);
    snprintf(a.kind, sizeof(a.kind), "pin.failed");
    snprintf(a.details, sizeof(a.details), "{\"failures\":1}");
    assert_int_equal(lw_store_alert_raise(f->s, &a, T0 - 1000, &got), LW_OK);
    assert_string_equal(got.id, "b1");
    assert_int_equal(got.count, 1);
    assert_int_equal(got.updated_at, T0);
    /* Within the window: counted in, with the new details; the id stays. */
    for (int i = 2; i <= 10; i++) {
        snprintf(a.id, sizeof(a.id), "b%d", i);
        a.created_at = T0 + i;
        snprintf(a.details, sizeof(a.details), "{\"failures\":%d}", i);
        assert_int_equal(lw_store_alert_raise(f->s, &a, T0 + i - 1000, &got), LW_OK);
        assert_string_equal(got.id, "b1");
        assert_int_equal(got.count, i);
        assert_int_equal(got.updated_at, T0 + i);
        assert_string_equal(got.details, a.details);
    }
    lw_alert *list = NULL;
    size_t n = 0;
    assert_int_equal(lw_store_alert_list(f->s, "acct1", 0, &list, &n), LW_OK);
    assert_int_equal(n, 1); /* ten raised, one row */
    assert_int_equal(list[0].count, 10);
    assert_int_equal(list[0].created_at, T0);
    assert_int_equal(list[0].updated_at, T0 + 10);
    assert_string_equal(list[0].details, "{\"failures\":10}");
    lw_free(list);

    /* Another kind, another device, another account, or after the window: a new alert. */
    snprintf(a.id, sizeof(a.id), "k");
    snprintf(a.kind, sizeof(a.kind), "pin.locked");
    assert_int_equal(lw_store_alert_raise(f->s, &a, T0, &got), LW_OK);
    assert_string_equal(got.id, "k");
    snprintf(a.kind, sizeof(a.kind), "pin.failed");
    snprintf(a.id, sizeof(a.id), "d");
    snprintf(a.device_id, sizeof(a.device_id), "other");
    assert_int_equal(lw_store_alert_raise(f->s, &a, T0, &got), LW_OK);
    assert_string_equal(got.id, "d");
    snprintf(a.device_id, sizeof(a.device_id), "dev");
    snprintf(a.id, sizeof(a.id), "x");
    snprintf(a.account_id, sizeof(a.account_id), "acct2");
    assert_int_equal(lw_store_alert_raise(f->s, &a, T0, &got), LW_OK);
    assert_string_equal(got.id, "x");
    snprintf(a.account_id, sizeof(a.account_id), "acct1");
    snprintf(a.id, sizeof(a.id), "late");
    a.created_at = T0 + 5000;
    assert_int_equal(lw_store_alert_raise(f->s, &a, T0 + 11, &got),
                     LW_OK); /* b1 was last updated at T0 + 10 */
    assert_string_equal(got.id, "late");
    assert_int_equal(got.count, 1);
    /* An answered alert starts no burst: the next one is new. */
    assert_int_equal(lw_store_alert_ack(f->s, "acct1", "late", LW_ALERT_ANSWER_ME, "acct1-p", T0 + 5001),
                     LW_OK);
    snprintf(a.id, sizeof(a.id), "after-answer");
    a.created_at = T0 + 5002;
    assert_int_equal(lw_store_alert_raise(f->s, &a, T0 + 5001, &got), LW_OK);
    assert_string_equal(got.id, "after-answer"); /* not "late", answered; b1 is older than the window */
    /* since <= 0: always a new alert. */
    snprintf(a.id, sizeof(a.id), "plain");
    assert_int_equal(lw_store_alert_raise(f->s, &a, 0, &got), LW_OK);
    assert_string_equal(got.id, "plain");
    /* Refused as the insert is: unknown account, unterminated details; nothing written. */
    snprintf(a.id, sizeof(a.id), "ghost");
    snprintf(a.account_id, sizeof(a.account_id), "ghost");
    assert_int_equal(lw_store_alert_raise(f->s, &a, 0, &got), LW_ENOTFOUND);
    snprintf(a.account_id, sizeof(a.account_id), "acct1");
    memset(a.details, 'x', sizeof(a.details));
    assert_int_equal(lw_store_alert_raise(f->s, &a, T0, &got), LW_ETOOBIG);
    assert_int_equal(lw_store_alert_raise(f->s, NULL, T0, &got), LW_EINVAL);
    assert_int_equal(lw_store_alert_get(f->s, "acct1", "b1", &got), LW_OK);
    assert_int_equal(got.count, 10);
}

/* ---- the last-seen place and privacy ---------------------------------------- */

static void insert_alert(lw_store *s, const char *id, const char *acct, const char *device,
                         const char *details)
{
    lw_alert a;
    memset(&a, 0, sizeof(a));
    snprintf(a.id, sizeof(a.id), "%s", id);
    snprintf(a.account_id, sizeof(a.account_id), "%s", acct);
    snprintf(a.kind, sizeof(a.kind), "session.impossible_travel");
    snprintf(a.device_id, sizeof(a.device_id), "%s", device);
    a.created_at = T0;
    snprintf(a.details, sizeof(a.details), "%s", details);
    assert_int_equal(lw_store_alert_insert(s, &a), LW_OK);
}

static const char *alert_details(lw_store *s, const char *acct, const char *id, lw_alert *a)
{
    assert_int_equal(lw_store_alert_get(s, acct, id, a), LW_OK);
    return a->details;
}

/* PRODUCT.md §4: the last-seen place is one place, never the first-seen one
 * mixed in; empty where GeoIP knew nothing. */
static void test_last_place_whole(void **state)
{
    fixture *f = *state;
    create_account(f->s, "acct1", "alice");
    /* A companion linked in Lisbon and never used since: last seen there. */
    lw_session c;
    make_session(&c, "comp1", "acct1", LW_ROLE_COMPANION, 10);
    memset(c.last.ip, 0, sizeof(c.last.ip));
    memset(c.last.country, 0, sizeof(c.last.country));
    memset(c.last.city, 0, sizeof(c.last.city));
    snprintf(c.first.country, sizeof(c.first.country), "PT");
    snprintf(c.first.region, sizeof(c.first.region), "Lisboa");
    snprintf(c.first.network, sizeof(c.first.network), "Cable/DSL · AS64500 Lisbon Fibre");
    c.first.lat = 38.7;
    c.first.has_loc = true;
    lw_link_request r;
    make_link(&r, "req1", 1);
    assert_int_equal(lw_store_link_insert(f->s, &r), LW_OK);
    approve_link(f->s, "req1", "acct1");
    assert_int_equal(lw_store_link_complete(f->s, "req1", &c, 4, NULL, NULL), LW_OK);
    lw_session got;
    assert_int_equal(lw_store_session_get(f->s, "comp1", &got), LW_OK);
    assert_string_equal(got.last.ip, c.first.ip);
    assert_string_equal(got.last.country, "PT");
    assert_string_equal(got.last.region, "Lisboa");
    assert_string_equal(got.last.city, "Lisboa");
    assert_string_equal(got.last.network, c.first.network);
    assert_true(got.last.has_loc);

    /* Used in Sydney: every last-seen field moves, the first-seen ones stay. */
    lw_place sydney = {.ip = "203.0.113.10",
                       .country = "AU",
                       .region = "New South Wales",
                       .city = "Sydney",
                       .lat = -33.9,
                       .lon = 151.2,
                       .has_loc = true,
                       .network = "Cellular · AS64501 Southern Mobile"};
    assert_int_equal(lw_store_session_touch(f->s, "comp1", T0 + 1000, &sydney), LW_OK);
    assert_int_equal(lw_store_session_get(f->s, "comp1", &got), LW_OK);
    assert_string_equal(got.last.country, "AU");
    assert_string_equal(got.last.region, "New South Wales");
    assert_string_equal(got.last.city, "Sydney");
    assert_string_equal(got.last.network, "Cellular · AS64501 Southern Mobile");
    assert_string_equal(got.first.region, "Lisboa");
    assert_string_equal(got.first.network, c.first.network);

    /* Then from an address no database knows: empty, not Sydney or Lisbon. */
    lw_place nowhere = {.ip = "203.0.113.200"};
    assert_int_equal(lw_store_session_touch(f->s, "comp1", T0 + 2000, &nowhere), LW_OK);
    assert_int_equal(lw_store_session_get(f->s, "comp1", &got), LW_OK);
    assert_string_equal(got.last.ip, "203.0.113.200");
    assert_string_equal(got.last.country, "");
    assert_string_equal(got.last.region, "");
    assert_string_equal(got.last.city, "");
    assert_string_equal(got.last.network, "");
    assert_false(got.last.has_loc);
}

/* Country-only privacy: the record and the alerts about it lose their
 * addresses in one step, and catching up is idempotent. */
static void test_redact_ended_with_alerts(void **state)
{
    fixture *f = *state;
    create_account(f->s, "acct1", "alice");
    lw_session c;
    make_session(&c, "comp1", "acct1", LW_ROLE_COMPANION, 10);
    snprintf(c.first.region, sizeof(c.first.region), "Lisboa");
    snprintf(c.last.region, sizeof(c.last.region), "Lisboa");
    lw_link_request r;
    make_link(&r, "req1", 1);
    assert_int_equal(lw_store_link_insert(f->s, &r), LW_OK);
    approve_link(f->s, "req1", "acct1");
    assert_int_equal(lw_store_link_complete(f->s, "req1", &c, 4, NULL, NULL), LW_OK);
    insert_alert(f->s, "al1", "acct1", "comp1",
                 "{\"from_ip\":\"198.51.100.10\",\"to_ip\":\"203.0.113.10\",\"to\":\"AU\"}");
    insert_alert(f->s, "al2", "acct1", "comp1", "{\"ip\":\"198.51.100.10\",\"name\":\"laptop\"}");
    insert_alert(f->s, "al3", "acct1", "acct1-p", "{\"ip\":\"198.51.100.11\"}");

    long n = -1;
    /* Nothing has ended: nothing to do. */
    assert_int_equal(lw_store_session_redact_ended(f->s, &n), LW_OK);
    assert_int_equal(n, 0);
    lw_alert a;
    assert_non_null(strstr(alert_details(f->s, "acct1", "al1", &a), "198.51.100.10"));

    assert_int_equal(lw_store_session_end(f->s, "comp1", "logout", T0 + 5), LW_OK);
    assert_int_equal(lw_store_session_redact_ended(f->s, &n), LW_OK);
    assert_int_equal(n, 1);
    lw_session got;
    assert_int_equal(lw_store_session_get(f->s, "comp1", &got), LW_OK);
    assert_string_equal(got.first.ip, "");
    assert_string_equal(got.last.ip, "");
    assert_string_equal(got.first.region, "");
    assert_string_equal(got.last.region, "");
    assert_string_equal(got.last.city, "");
    assert_false(got.last.has_loc);
    assert_string_equal(got.last.country, "PT");
    assert_null(strstr(alert_details(f->s, "acct1", "al1", &a), "203.0.113.10"));
    assert_null(strstr(a.details, "198.51.100.10"));
    assert_non_null(strstr(a.details, "\"to\""));
    assert_null(strstr(alert_details(f->s, "acct1", "al2", &a), "198.51.100.10"));
    assert_non_null(strstr(a.details, "laptop"));
    /* The live primary's alerts keep theirs. */
    assert_non_null(strstr(alert_details(f->s, "acct1", "al3", &a), "198.51.100.11"));

    /* Idempotent: the second pass finds nothing left. */
    assert_int_equal(lw_store_session_redact_ended(f->s, &n), LW_OK);
    assert_int_equal(n, 0);

    /* The one-device form also takes the alerts with it. */
    insert_alert(f->s, "al4", "acct1", "acct1-p", "{\"to_ip\":\"203.0.113.10\"}");
    assert_int_equal(lw_store_session_end(f->s, "acct1-p", "reset", T0 + 6), LW_OK);
    assert_int_equal(lw_store_session_redact(f->s, "acct1-p"), LW_OK);
    assert_null(strstr(alert_details(f->s, "acct1", "al4", &a), "203.0.113.10"));
    assert_null(strstr(alert_details(f->s, "acct1", "al3", &a), "198.51.100.11"));
    assert_int_equal(lw_store_session_redact_ended(f->s, &n), LW_OK);
    assert_int_equal(n, 0);
}

/* ---- bounded text, stats, backup ------------------------------------------- */

/* An invite bound to a handle registers that handle only; any other gets the
 * answer an unknown invite gets, and the invite stays usable. */
static void test_invite_bound_to_handle(void **state)
{
    fixture *f = *state;
    uint8_t inv[LW_HASH_LEN], race[LW_HASH_LEN];
    fill(inv, sizeof(inv), 0x52);
    fill(race, sizeof(race), 0x53);
    assert_int_equal(lw_store_invite_create(f->s, inv, T0 + DAY_MS, "alice"), LW_OK);
    assert_int_equal(lw_store_invite_create(f->s, race, T0 + DAY_MS, "carol"), LW_OK);

    lw_account a;
    lw_session p;
    make_session(&p, "acct1-p", "acct1", LW_ROLE_PRIMARY, 1);
    make_account(&a, "acct1", "mallory");
    assert_int_equal(lw_store_account_create(f->s, &a, &p, inv), LW_EDENIED);
    /* A taken handle is not even looked at: the same answer. */
    create_account(f->s, "acct0", "bob");
    make_account(&a, "acct1", "bob");
    assert_int_equal(lw_store_account_create(f->s, &a, &p, inv), LW_EDENIED);
    make_account(&a, "acct1", "alice");
    assert_int_equal(lw_store_account_create(f->s, &a, &p, inv), LW_OK);
    assert_int_equal(lw_store_account_get_by_handle(f->s, "alice", &a), LW_OK);
    assert_string_equal(a.id, "acct1");
    /* Used up. */
    lw_session q;
    make_session(&q, "acct2-p", "acct2", LW_ROLE_PRIMARY, 2);
    make_account(&a, "acct2", "alice");
    assert_int_equal(lw_store_account_create(f->s, &a, &q, inv), LW_EDENIED);

    /* The handle was taken after the invite was made (a race the operator
     * could not see): a conflict, and the invite is not consumed. */
    create_account(f->s, "acct3", "carol");
    make_account(&a, "acct2", "carol");
    assert_int_equal(lw_store_account_create(f->s, &a, &q, race), LW_ECONFLICT);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM invites WHERE used_at = 0 AND handle = 'carol'"), 1);
}

/* Deleting an account removes every row of it in one go and frees its handle;
 * other accounts keep everything. */
static void test_account_delete(void **state)
{
    fixture *f = *state;
    create_account(f->s, "acct1", "alice");
    create_account(f->s, "acct2", "bob");
    link_companions(f->s, "acct1", 3, 10);
    link_companions(f->s, "acct2", 1, 100);
    assert_int_equal(lw_store_session_end(f->s, "c-acct1-1", "logout", T0 + 5), LW_OK);
    lw_alert al;
    make_alert(&al, "al1", "acct1", T0);
    assert_int_equal(lw_store_alert_insert(f->s, &al), LW_OK);
    make_alert(&al, "al2", "acct2", T0);
    assert_int_equal(lw_store_alert_insert(f->s, &al), LW_OK);

    lw_ended *ended = NULL;
    size_t n = 0;
    assert_int_equal(lw_store_account_delete(f->s, "acct1", &ended, &n), LW_OK);
    /* What was live: the primary and the two active companions, in link order. */
    assert_int_equal(n, 3);
    assert_string_equal(ended[0].device_id, "acct1-p");
    assert_string_equal(ended[1].device_id, "c-acct1-0");
    assert_string_equal(ended[2].device_id, "c-acct1-2");
    for (size_t k = 0; k < n; k++) {
        assert_string_equal(ended[k].account_id, "acct1");
        assert_string_equal(ended[k].reason, "account_deleted");
    }
    lw_free(ended);

    lw_account a;
    lw_session got;
    lw_link_request r;
    assert_int_equal(lw_store_account_get(f->s, "acct1", &a), LW_ENOTFOUND);
    assert_int_equal(lw_store_account_get_by_handle(f->s, "alice", &a), LW_ENOTFOUND);
    assert_int_equal(lw_store_session_get(f->s, "c-acct1-1", &got), LW_ENOTFOUND);
    assert_int_equal(lw_store_session_get_by_selector(f->s, "sel-c-acct1-0", &got), LW_ENOTFOUND);
    assert_int_equal(lw_store_link_get(f->s, "r-acct1-0", &r), LW_ENOTFOUND);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM sessions WHERE account_id = 'acct1'"), 0);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM link_requests WHERE account_id = 'acct1'"), 0);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM alerts WHERE account_id = 'acct1'"), 0);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM accounts WHERE id = 'acct1'"), 0);

    /* The other account is untouched. */
    assert_int_equal(lw_store_account_get(f->s, "acct2", &a), LW_OK);
    assert_int_equal(lw_store_session_get(f->s, "c-acct2-0", &got), LW_OK);
    assert_string_equal(got.state, "active");
    assert_int_equal(lw_store_link_get(f->s, "r-acct2-0", &r), LW_OK);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM alerts WHERE account_id = 'acct2'"), 1);

    /* The handle is free again; a second delete finds nothing. */
    create_account(f->s, "acct3", "alice");
    ended = NULL;
    assert_int_equal(lw_store_account_delete(f->s, "acct1", &ended, &n), LW_ENOTFOUND);
    assert_null(ended);
    lw_store_stats st;
    assert_int_equal(lw_store_get_stats(f->s, &st), LW_OK);
    assert_int_equal(st.accounts, 2);
}

/* The administrator's "end everything": every account at once, primaries only
 * when asked, in account order. */
static void test_session_end_every(void **state)
{
    fixture *f = *state;
    create_account(f->s, "acct1", "alice");
    create_account(f->s, "acct2", "bob");
    link_companions(f->s, "acct1", 2, 10);
    link_companions(f->s, "acct2", 1, 100);
    assert_int_equal(lw_store_session_end(f->s, "c-acct1-0", "logout", T0 + 5), LW_OK);

    lw_ended *ended = NULL;
    size_t n = 0;
    assert_int_equal(lw_store_session_end_every(f->s, LW_ROLE_COMPANION, "admin_logout", T0 + 10, &ended, &n),
                     LW_OK);
    assert_int_equal(n, 2);
    assert_string_equal(ended[0].device_id, "c-acct1-1");
    assert_string_equal(ended[0].account_id, "acct1");
    assert_string_equal(ended[1].device_id, "c-acct2-0");
    assert_string_equal(ended[1].account_id, "acct2");
    assert_string_equal(ended[1].reason, "admin_logout");
    lw_free(ended);
    lw_session got;
    assert_int_equal(lw_store_session_get(f->s, "acct1-p", &got), LW_OK);
    assert_string_equal(got.state, "active");
    assert_int_equal(lw_store_session_get(f->s, "c-acct2-0", &got), LW_OK);
    assert_string_equal(got.state, "ended");
    assert_string_equal(got.end_reason, "admin_logout");
    assert_int_equal(got.ended_at, T0 + 10);
    assert_int_equal(lw_store_session_get(f->s, "c-acct1-0", &got), LW_OK);
    assert_string_equal(got.end_reason, "logout"); /* not overwritten */

    /* All roles: the primaries are what is left. */
    assert_int_equal(lw_store_session_end_every(f->s, NULL, "admin_logout", T0 + 20, &ended, &n), LW_OK);
    assert_int_equal(n, 2);
    assert_string_equal(ended[0].device_id, "acct1-p");
    assert_string_equal(ended[1].device_id, "acct2-p");
    lw_free(ended);
    ended = NULL;
    assert_int_equal(lw_store_session_end_every(f->s, NULL, "admin_logout", T0 + 30, &ended, &n), LW_OK);
    assert_int_equal(n, 0);
    lw_free(ended);
}

static void test_long_text_is_bounded(void **state)
{
    fixture *f = *state;
    create_account(f->s, "acct1", "alice");
    /* 100 two-byte characters: 200 bytes into a 64-byte field. */
    char name[256] = "";
    size_t len = 0;
    for (int k = 0; k < 100; k++) {
        memcpy(name + len, "\xc3\xa9", 2);
        len += 2;
    }
    name[len] = '\0';
    assert_int_equal(lw_store_session_set_name(f->s, "acct1-p", name), LW_OK);
    lw_session got;
    assert_int_equal(lw_store_session_get(f->s, "acct1-p", &got), LW_OK);
    assert_int_equal(strlen(got.name), 62); /* 31 whole characters; never half of one */
    /* Written behind the store's back, longer still: reads back bounded too. */
    char sql[512];
    snprintf(sql, sizeof(sql), "UPDATE sessions SET city = '%s' WHERE id = 'acct1-p'", name);
    raw_exec(f, sql);
    assert_int_equal(lw_store_session_get(f->s, "acct1-p", &got), LW_OK);
    assert_true(strlen(got.first.city) < sizeof(got.first.city));
    assert_int_equal(strlen(got.first.city) % 2, 0);
    /* A key longer than any id is not truncated into a match. */
    assert_int_equal(lw_store_session_get(f->s, "acct1-pXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", &got),
                     LW_ENOTFOUND);
}

static void test_stats(void **state)
{
    fixture *f = *state;
    lw_store_stats st;
    assert_int_equal(lw_store_get_stats(f->s, &st), LW_OK);
    assert_int_equal(st.accounts, 0);
    create_account(f->s, "acct1", "alice");
    create_account(f->s, "acct2", "bob");
    link_companions(f->s, "acct1", 2, 10);
    lw_link_request r;
    make_link(&r, "pend", 200);
    assert_int_equal(lw_store_link_insert(f->s, &r), LW_OK);
    assert_int_equal(lw_store_session_end(f->s, "c-acct1-0", "logout", T0 + 1), LW_OK);
    lw_alert a;
    make_alert(&a, "al1", "acct1", T0);
    assert_int_equal(lw_store_alert_insert(f->s, &a), LW_OK);
    assert_int_equal(lw_store_get_stats(f->s, &st), LW_OK);
    assert_int_equal(st.accounts, 2);
    assert_int_equal(st.sessions_active, 3);
    assert_int_equal(st.sessions_ended, 1);
    assert_int_equal(st.link_requests_pending, 1);
    assert_int_equal(st.alerts, 1);
}

static void test_backup(void **state)
{
    fixture *f = *state;
    create_account(f->s, "acct1", "alice");
    link_companions(f->s, "acct1", 1, 10);
    if (f->fx.pg) {
        /* PostgreSQL is backed up with pg_dump; the control socket's backup
         * (a SQLite file) is refused, and logged as such. */
        assert_int_equal(lw_store_backup(f->s, "/tmp/lw-never-written.db"), LW_EINVAL);
        assert_int_equal(access("/tmp/lw-never-written.db", F_OK), -1);
        return;
    }
    char bpath[160];
    snprintf(bpath, sizeof(bpath), "%s/backup.db", f->fx.dir);
    assert_int_equal(lw_store_backup(f->s, bpath), LW_OK);
    assert_int_equal(access(bpath, F_OK), 0);
    /* Never overwrite. */
    assert_int_equal(lw_store_backup(f->s, bpath), LW_EINVAL);
    /* Changes after the backup are not in it. */
    create_account(f->s, "acct2", "bob");

    lw_store *b = NULL;
    assert_int_equal(lw_store_open(&b, bpath), LW_OK);
    assert_int_equal(schema_version(f, b), schema_version(f, f->s));
    lw_account a;
    assert_int_equal(lw_store_account_get(b, "acct1", &a), LW_OK);
    assert_int_equal(lw_store_account_get(b, "acct2", &a), LW_ENOTFOUND);
    lw_session s;
    assert_int_equal(lw_store_session_get(b, "c-acct1-0", &s), LW_OK);
    assert_string_equal(s.role, "companion");
    lw_store_close(b);

    char bad[160];
    snprintf(bad, sizeof(bad), "%s/no-such-dir/backup.db", f->fx.dir);
    assert_int_equal(lw_store_backup(f->s, bad), LW_EIO);
}

static void test_alloc_failure(void **state)
{
    fixture *f = *state;
    create_account(f->s, "acct1", "alice");
    lw_session *list = (lw_session *)0x1;
    size_t n = 77;
    lw_alloc_fail_after(0);
    assert_int_equal(lw_store_session_list(f->s, "acct1", false, &list, &n), LW_ENOMEM);
    lw_alloc_fail_after(-1);
    /* Nothing handed out on failure, and the statement is usable again. */
    assert_ptr_equal(list, (lw_session *)0x1);
    assert_int_equal(n, 77);
    assert_int_equal(lw_store_session_list(f->s, "acct1", false, &list, &n), LW_OK);
    assert_int_equal(n, 1);
    lw_free(list);

    lw_ended *ended = NULL;
    lw_alloc_fail_after(0);
    assert_int_equal(lw_store_session_end_all(f->s, "acct1", NULL, NULL, "account_reset", T0, &ended, &n),
                     LW_ENOMEM);
    lw_alloc_fail_after(-1);
    /* The transaction was rolled back: the primary is still active. */
    lw_session got;
    assert_int_equal(lw_store_session_get(f->s, "acct1-p", &got), LW_OK);
    assert_string_equal(got.state, "active");
}

/* ---- PostgreSQL only: reconnecting, several nodes, threads ------------------ */

/* Runs a query counting something about the store's own connections (those
 * with application_name = the test's schema) on a raw connection. */
static long pg_count_store_conns(const fixture *f, const char *what)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(%s) FROM pg_stat_activity WHERE application_name = '%s'", what,
             f->fx.schema);
    return fx_long(&f->fx, sql);
}

/* What a restart, a failover or an idle timeout does to the store: the server
 * closes its connections. pg_terminate_backend waits until they are gone. */
static long pg_kill_store_conns(const fixture *f)
{
    return pg_count_store_conns(f, "pg_terminate_backend(pid, 5000)");
}

static void test_pg_reconnect(void **state)
{
    fixture *f = *state;
    FX_PG_ONLY(&f->fx, "the server closing the store's connection");
    create_account(f->s, "acct1", "alice");
    create_account(f->s, "acct2", "bob");

    /* A read on a connection the server closed: reconnects and answers. */
    assert_true(pg_kill_store_conns(f) >= 1);
    lw_account a;
    assert_int_equal(lw_store_account_get(f->s, "acct1", &a), LW_OK);
    assert_string_equal(a.handle, "alice");

    /* A compare-and-set write: applied exactly once. */
    assert_true(pg_kill_store_conns(f) >= 1);
    assert_int_equal(lw_store_session_end(f->s, "acct1-p", "logout", T0 + 1), LW_OK);
    assert_int_equal(lw_store_session_end(f->s, "acct1-p", "logout", T0 + 2), LW_ECONFLICT);
    lw_session got;
    assert_int_equal(lw_store_session_get(f->s, "acct1-p", &got), LW_OK);
    assert_int_equal(got.ended_at, T0 + 1);

    /* A transaction, and a statement prepared before the kill (it must be
     * prepared again on the new connection). */
    assert_true(pg_kill_store_conns(f) >= 1);
    lw_ended *ended = NULL;
    size_t n = 0;
    assert_int_equal(lw_store_session_end_all(f->s, "acct2", NULL, NULL, "account_reset", T0 + 3, &ended, &n),
                     LW_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ended[0].device_id, "acct2-p");
    lw_free(ended);
    assert_true(pg_kill_store_conns(f) >= 1);
    assert_int_equal(lw_store_account_get(f->s, "acct2", &a), LW_OK);
    create_account(f->s, "acct3", "carol");

    /* Used one operation at a time, the store keeps a single connection. */
    assert_int_equal(pg_count_store_conns(f, "*"), 1);
}

/* Waits (bounded) until one of the store's connections is blocked on a lock. */
static void pg_wait_store_blocked(const fixture *f)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_stat_activity"
             " WHERE application_name = '%s' AND wait_event_type = 'Lock'",
             f->fx.schema);
    for (int k = 0; k < 500; k++) {
        if (fx_long(&f->fx, sql) > 0)
            return;
        usleep(10000);
    }
    fail_msg("the store never blocked on the held lock");
}

typedef struct blocked_call {
    lw_store *s;
    int op; /* 0: account_get (read), 1: session_end (write), 2: link_complete (transaction) */
    lw_session sess;
    int rc;
} blocked_call;

static void *blocked_main(void *arg)
{
    blocked_call *b = arg;
    lw_account a;
    if (b->op == 0)
        b->rc = lw_store_account_get(b->s, "acct1", &a);
    else if (b->op == 1)
        b->rc = lw_store_session_end(b->s, "acct1-p", "logout", T0 + 1);
    else
        b->rc = lw_store_link_complete(b->s, "req1", &b->sess, 4, NULL, NULL);
    return NULL;
}

/* The connection fails while a statement is in flight (the server kills the
 * backend as it waits on a lock a raw connection holds). A read and a
 * transaction whose COMMIT was not sent are run again on a new connection; a
 * single-statement write is not, since it might have been applied. */
static void test_pg_lost_mid_operation(void **state)
{
    fixture *f = *state;
    FX_PG_ONLY(&f->fx, "the server closing the store's connection mid-statement");
    create_account(f->s, "acct1", "alice");
    lw_link_request r;
    make_link(&r, "req1", 1);
    assert_int_equal(lw_store_link_insert(f->s, &r), LW_OK);
    approve_link(f->s, "req1", "acct1");
    static const char *const locks[] = {
        "BEGIN; LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE",
        "BEGIN; SELECT 1 FROM sessions WHERE id = 'acct1-p' FOR UPDATE",
        "BEGIN; SELECT 1 FROM link_requests WHERE id = 'req1' FOR UPDATE",
    };
    for (int op = 0; op < 3; op++) {
        PGconn *raw = fx_pg_raw(&f->fx);
        fx_pg_run(raw, locks[op]);
        blocked_call b = {.s = f->s, .op = op};
        make_session(&b.sess, "comp1", "acct1", LW_ROLE_COMPANION, 10);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, blocked_main, &b), 0);
        pg_wait_store_blocked(f);
        assert_int_equal(pg_kill_store_conns(f), 1);
        if (op != 1)
            pg_wait_store_blocked(f); /* the rerun, on a new connection, waits for the lock again */
        fx_pg_run(raw, "ROLLBACK");
        PQfinish(raw);
        pthread_join(t, NULL);
        if (op == 1) {
            /* Unknown outcome reported, not replayed: here the kill aborted
             * it, so the session is still active and can be ended. */
            assert_int_equal(b.rc, LW_ESTORE);
            lw_session got;
            assert_int_equal(lw_store_session_get(f->s, "acct1-p", &got), LW_OK);
            assert_string_equal(got.state, "active");
            assert_int_equal(lw_store_session_end(f->s, "acct1-p", "logout", T0 + 2), LW_OK);
        } else {
            assert_int_equal(b.rc, LW_OK);
        }
    }
    lw_link_request got;
    assert_int_equal(lw_store_link_get(f->s, "req1", &got), LW_OK);
    assert_string_equal(got.state, "completed");
    long n = 0;
    assert_int_equal(lw_store_session_count_active_companions(f->s, "acct1", NULL, &n), LW_OK);
    assert_int_equal(n, 1);
}

/* The database server stops writing while the store is open: a standby
 * after a failover, or default_transaction_read_only, answers 25006. A role
 * of the test's own is switched read-only (its settings apply to new
 * connections) and its connections ended, so the store reconnects into a
 * read-only session: writes answer LW_EUNAVAIL (nothing written) and mark
 * the store; reads go on; once the role may write again, the next write
 * succeeds and clears the mark. */
static void test_pg_read_only_unavailable(void **state)
{
    fixture *f = *state;
    FX_PG_ONLY(&f->fx, "a PostgreSQL server that turns read-only");
    create_account(f->s, "acct1", "alice");
    char role[96], sql[1024], url[1200], app[96];
    snprintf(role, sizeof role, "%s_ro", f->fx.schema);
    snprintf(sql, sizeof sql,
             "CREATE ROLE %s LOGIN; GRANT USAGE, CREATE ON SCHEMA %s TO %s;"
             " GRANT ALL ON ALL TABLES IN SCHEMA %s TO %s; GRANT ALL ON ALL SEQUENCES IN SCHEMA %s TO %s",
             role, f->fx.schema, role, f->fx.schema, role, f->fx.schema, role);
    fx_pg_admin(&f->fx, sql);
    snprintf(app, sizeof app, "%s_ro", f->fx.schema);
    fx_url(&f->fx, app, url, sizeof url);
    size_t len = strlen(url);
    snprintf(url + len, sizeof url - len, "&user=%s", role);
    lw_store *s = NULL;
    assert_int_equal(lw_store_open(&s, url), LW_OK);
    assert_int_equal(lw_store_session_set_name(s, "acct1-p", "One"), LW_OK);
    assert_true(lw_store_writable(s));

    snprintf(sql, sizeof sql, "ALTER ROLE %s SET default_transaction_read_only = on", role);
    fx_pg_admin(&f->fx, sql);
    snprintf(
        sql, sizeof sql,
        "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE application_name = '%s'",
        app);
    assert_true(fx_long(&f->fx, sql) >= 1);
    assert_int_equal(lw_store_session_set_name(s, "acct1-p", "Two"), LW_EUNAVAIL);
    lw_ended *ended = NULL;
    size_t n = 0;
    assert_int_equal(lw_store_session_end_all(s, "acct1", NULL, NULL, "logout_all", T0 + 1, &ended, &n),
                     LW_EUNAVAIL); /* a transaction too */
    assert_null(ended);
    assert_false(lw_store_writable(s)); /* marked until a write succeeds */
    lw_session got;
    assert_int_equal(lw_store_session_get(s, "acct1-p", &got), LW_OK);
    assert_string_equal(got.name, "One");
    assert_string_equal(got.state, "active");

    snprintf(sql, sizeof sql, "ALTER ROLE %s RESET default_transaction_read_only", role);
    fx_pg_admin(&f->fx, sql);
    snprintf(
        sql, sizeof sql,
        "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE application_name = '%s'",
        app);
    (void)fx_long(&f->fx, sql);
    assert_int_equal(lw_store_session_set_name(s, "acct1-p", "Three"), LW_OK);
    assert_true(lw_store_writable(s));
    lw_store_close(s);
    snprintf(sql, sizeof sql, "DROP OWNED BY %s; DROP ROLE %s", role, role);
    fx_pg_admin(&f->fx, sql);
}

/* Two nodes, each with its own store on the same database, doing the same
 * thing at the same moment. */
typedef struct racer {
    lw_store *s;
    pthread_barrier_t *go;
    int op; /* RACE_* */
    const char *req;
    lw_link_request r;
    lw_session sess;
    long max;
    int rc;
} racer;

enum { RACE_APPROVE, RACE_COMPLETE };

static void *racer_main(void *arg)
{
    racer *x = arg;
    pthread_barrier_wait(x->go);
    if (x->op == RACE_APPROVE)
        x->rc = lw_store_link_transition(x->s, &x->r, "scanned", "approved");
    else
        x->rc = lw_store_link_complete(x->s, x->req, &x->sess, x->max, NULL, NULL);
    return NULL;
}

static void race(racer *a, racer *b)
{
    pthread_barrier_t go;
    pthread_t ta, tb;
    assert_int_equal(pthread_barrier_init(&go, NULL, 2), 0);
    a->go = b->go = &go;
    assert_int_equal(pthread_create(&ta, NULL, racer_main, a), 0);
    assert_int_equal(pthread_create(&tb, NULL, racer_main, b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&go);
}

/* Exactly one of the two got `win`, the other `lose`. */
static void one_winner(const racer *a, const racer *b, int win, int lose)
{
    assert_true((a->rc == win && b->rc == lose) || (a->rc == lose && b->rc == win));
}

static void test_pg_two_nodes_race(void **state)
{
    fixture *f = *state;
    FX_PG_ONLY(&f->fx, "two nodes on one database");
    lw_store *node_b = NULL;
    assert_int_equal(lw_store_open(&node_b, f->fx.location), LW_OK);
    create_account(f->s, "acct1", "alice");

    for (int k = 0; k < 20; k++) {
        char rid[LW_ID_STRLEN];
        snprintf(rid, sizeof(rid), "req%d", k);
        lw_link_request r;
        make_link(&r, rid, (uint8_t)(4 * k + 1));
        assert_int_equal(lw_store_link_insert(f->s, &r), LW_OK);
        snprintf(r.account_id, sizeof(r.account_id), "acct1");
        snprintf(r.scanned_by, sizeof(r.scanned_by), "acct1-p");
        assert_int_equal(lw_store_link_transition(f->s, &r, "pending", "scanned"), LW_OK);

        /* The phone's approval reaches node A and node B at once. */
        racer a = {.s = f->s, .op = RACE_APPROVE, .r = r}, b = {.s = node_b, .op = RACE_APPROVE, .r = r};
        fill(a.r.account_sig, sizeof(a.r.account_sig), 0x5a);
        fill(b.r.account_sig, sizeof(b.r.account_sig), 0x5b);
        race(&a, &b);
        one_winner(&a, &b, LW_OK, LW_ECONFLICT);
        lw_link_request got;
        assert_int_equal(lw_store_link_get(node_b, rid, &got), LW_OK);
        assert_string_equal(got.state, "approved");
        assert_int_equal(got.account_sig[0], a.rc == LW_OK ? 0x5a : 0x5b);

        /* The companion completes on both nodes at once: one device. */
        racer c = {.s = f->s, .op = RACE_COMPLETE, .req = rid, .max = 100};
        racer d = {.s = node_b, .op = RACE_COMPLETE, .req = rid, .max = 100};
        char did[LW_ID_STRLEN];
        snprintf(did, sizeof(did), "c%d-a", k);
        make_session(&c.sess, did, "acct1", LW_ROLE_COMPANION, (uint8_t)(4 * k + 1));
        snprintf(did, sizeof(did), "c%d-b", k);
        make_session(&d.sess, did, "acct1", LW_ROLE_COMPANION, (uint8_t)(4 * k + 2));
        race(&c, &d);
        one_winner(&c, &d, LW_OK, LW_ECONFLICT);
        long n = 0;
        assert_int_equal(lw_store_session_count_active_companions(node_b, "acct1", NULL, &n), LW_OK);
        assert_int_equal(n, k + 1);
    }

    /* Two different requests for one account completing at once, with room
     * for one more device: the limit holds across nodes. */
    for (int k = 0; k < 10; k++) {
        char acct[LW_ID_STRLEN], handle[32];
        snprintf(acct, sizeof(acct), "lim%d", k);
        snprintf(handle, sizeof(handle), "limit-%d", k);
        create_account(f->s, acct, handle);
        racer c = {.s = f->s, .op = RACE_COMPLETE, .max = 1};
        racer d = {.s = node_b, .op = RACE_COMPLETE, .max = 1};
        racer *side[2] = {&c, &d};
        char rids[2][LW_ID_STRLEN];
        for (int j = 0; j < 2; j++) {
            snprintf(rids[j], sizeof(rids[j]), "l%d-%d", k, j);
            lw_link_request r;
            make_link(&r, rids[j], (uint8_t)(100 + 8 * k + 4 * j));
            assert_int_equal(lw_store_link_insert(f->s, &r), LW_OK);
            approve_link(f->s, rids[j], acct);
            char did[LW_ID_STRLEN];
            snprintf(did, sizeof(did), "ld%d-%d", k, j);
            make_session(&side[j]->sess, did, acct, LW_ROLE_COMPANION, (uint8_t)(100 + 8 * k + 4 * j));
            side[j]->req = rids[j];
        }
        race(&c, &d);
        one_winner(&c, &d, LW_OK, LW_ELIMIT);
        long n = 0;
        assert_int_equal(lw_store_session_count_active_companions(f->s, acct, NULL, &n), LW_OK);
        assert_int_equal(n, 1);
    }
    lw_store_close(node_b);
}

/* Several threads on one store share its small pool. */
typedef struct worker {
    lw_store *s;
    int id;
    int failures;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    for (int k = 0; k < 30; k++) {
        lw_account a;
        lw_store_stats st;
        if (lw_store_account_get(w->s, "acct1", &a) != LW_OK)
            w->failures++;
        if (lw_store_session_touch(w->s, "acct1-p", T0 + w->id * 1000 + k, NULL) != LW_OK)
            w->failures++;
        if (lw_store_get_stats(w->s, &st) != LW_OK || st.accounts != 1)
            w->failures++;
    }
    return NULL;
}

static void test_pg_pool_threads(void **state)
{
    fixture *f = *state;
    FX_PG_ONLY(&f->fx, "the connection pool");
    create_account(f->s, "acct1", "alice");
    enum { NTHREADS = 8 };
    worker w[NTHREADS];
    pthread_t t[NTHREADS];
    for (int k = 0; k < NTHREADS; k++) {
        w[k] = (worker){.s = f->s, .id = k};
        assert_int_equal(pthread_create(&t[k], NULL, worker_main, &w[k]), 0);
    }
    for (int k = 0; k < NTHREADS; k++) {
        pthread_join(t[k], NULL);
        assert_int_equal(w[k].failures, 0);
    }
    /* More threads than connections: they waited their turn. */
    long conns = pg_count_store_conns(f, "*");
    assert_true(conns >= 1 && conns <= 4);
    lw_session got;
    assert_int_equal(lw_store_session_get(f->s, "acct1-p", &got), LW_OK);
    assert_int_equal(got.last_active_at, T0 + (NTHREADS - 1) * 1000 + 29);
}

typedef struct opener {
    const char *location;
    lw_store *s;
    int rc;
    pthread_barrier_t *go;
} opener;

static void *opener_main(void *arg)
{
    opener *o = arg;
    pthread_barrier_wait(o->go);
    o->rc = lw_store_open(&o->s, o->location);
    return NULL;
}

static void test_pg_nodes_start_together(void **state)
{
    fixture *f = *state;
    FX_PG_ONLY(&f->fx, "several nodes migrating one empty database");
    int v = schema_version(f, f->s);
    lw_store_close(f->s);
    f->s = NULL;
    char sql[256];
    snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE; CREATE SCHEMA %s", f->fx.schema, f->fx.schema);
    fx_pg_admin(&f->fx, sql);

    enum { NODES = 4 };
    opener o[NODES];
    pthread_t t[NODES];
    pthread_barrier_t go;
    assert_int_equal(pthread_barrier_init(&go, NULL, NODES), 0);
    for (int k = 0; k < NODES; k++) {
        o[k] = (opener){.location = f->fx.location, .go = &go};
        assert_int_equal(pthread_create(&t[k], NULL, opener_main, &o[k]), 0);
    }
    for (int k = 0; k < NODES; k++)
        pthread_join(t[k], NULL);
    pthread_barrier_destroy(&go);
    for (int k = 0; k < NODES; k++) {
        assert_int_equal(o[k].rc, LW_OK);
        assert_int_equal(schema_version(f, o[k].s), v);
    }
    /* Each migration ran once: the data one node writes, the others see. */
    create_account(o[0].s, "acct1", "alice");
    lw_account a;
    assert_int_equal(lw_store_account_get(o[NODES - 1].s, "acct1", &a), LW_OK);
    f->s = o[0].s;
    for (int k = 1; k < NODES; k++)
        lw_store_close(o[k].s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_fresh_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_data_and_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_version_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_last_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_answered_by, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alert_burst, setup, teardown),
        cmocka_unit_test(test_open_locations),
        cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_busy_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_read_only_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_account_create_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_account_handle_unique, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invite_consumed_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_get_and_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_account_places, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_credential_touch_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_end_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_delete_ended, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_lookup_and_ref, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_transition_cas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_complete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_device_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_relink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alerts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_place_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redact_ended_with_alerts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invite_bound_to_handle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_account_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_end_every, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_text_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_read_only_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_lost_mid_operation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_two_nodes_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_pool_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_nodes_start_together, setup, teardown),
    };
    /* The group is named after the backend, so a report says which one ran. */
    return cmocka_run_group_tests_name(fx_backend_name(), tests, NULL, NULL);
}
