/* Session credentials end to end on a real SQLite store: issue, check,
 * refresh, end, coalesced last-active writes, and the sweeper with an
 * injected clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "deps.h"
#include "lw.h"
#include "session.h"
#include "store.h"
#include "sweep.h"

/* What serve.c's lw_app holds for the domain, here without the bus or the
 * transport: the modules see only app.domain (deps.h), filled by wire(). */
typedef struct holder {
    lw_config cfg;
    uint8_t hash_key[LW_KEY_LEN];
    lw_store *store;
    lw_sessions *sessions;
    lw_domain_deps domain;
} holder;

typedef struct fixture {
    char dir[64];
    char db[128];
    holder app;
} fixture;

static const lw_domain_deps *wire(fixture *f)
{
    f->app.domain = (lw_domain_deps){
        .store = f->app.store,
        .cfg = &f->app.cfg,
        .hash_key = f->app.hash_key,
        .sessions = f->app.sessions,
    };
    return &f->app.domain;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/lw-test-session-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->db, sizeof f->db, "%s/t.db", f->dir);
    lw_config_defaults(&f->app.cfg);
    lw_random(f->app.hash_key, sizeof f->app.hash_key);
    if (lw_store_open(&f->app.store, f->db) != LW_OK)
        return -1;
    f->app.sessions = lw_sessions_new(wire(f));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    lw_sessions_free(f->app.sessions);
    lw_store_close(f->app.store);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static void new_session(lw_session *s, const char *id, const char *account, const char *role, int64_t at)
{
    memset(s, 0, sizeof *s);
    lw_strlcpy(s->id, id, sizeof s->id);
    lw_strlcpy(s->account_id, account, sizeof s->account_id);
    lw_strlcpy(s->role, role, sizeof s->role);
    lw_strlcpy(s->name, "Test device", sizeof s->name);
    lw_strlcpy(s->state, "active", sizeof s->state);
    s->linked_at = at;
    s->last_active_at = at;
    s->persistent = true;
    lw_random(s->public_key, sizeof s->public_key);
}

/* An account with a primary; returns the primary's token. */
static void make_account(fixture *f, const char *acct, const char *handle, char token[LW_CRED_STRLEN])
{
    lw_account a;
    memset(&a, 0, sizeof a);
    lw_strlcpy(a.id, acct, sizeof a.id);
    lw_strlcpy(a.handle, handle, sizeof a.handle);
    a.created_at = lw_now_ms();
    a.inactive_ttl_ms = 30LL * 24 * 3600 * 1000;
    lw_session p;
    char pid[LW_ID_STRLEN];
    snprintf(pid, sizeof pid, "%s-p", acct);
    new_session(&p, pid, acct, LW_ROLE_PRIMARY, lw_now_ms());
    assert_int_equal(lw_sessions_prepare(f->app.sessions, &p, token), LW_OK);
    assert_int_equal(lw_store_account_create(f->app.store, &a, &p, NULL), LW_OK);
    lw_sessions_cache(f->app.sessions, &p, lw_sessions_epoch(f->app.sessions));
}

/* What the router does with a credential: the check, then (once, when it
 * passed) the "seen from this address" step. */
static int auth(lw_sessions *s, const char *cred, size_t len, bool allow_expired, const char *ip,
                lw_principal *who, char reason[LW_REASON_MAX])
{
    int rc = lw_sessions_check(s, cred, len, allow_expired, who, reason);
    if (rc == LW_OK)
        lw_sessions_seen(s, who, ip, lw_now_ms());
    return rc;
}

/* A store whose writes are counted (and still done): lw_sessions_check must
 * make none. */
static const lw_store_ops *real_ops;
static int writes;
static int count_touch(lw_store *s, const char *id, int64_t at, const lw_place *where)
{
    writes++;
    return real_ops->session_touch(s, id, at, where);
}
static int count_set_credential(lw_store *s, const lw_session *sess)
{
    writes++;
    return real_ops->session_set_credential(s, sess);
}
static int count_end(lw_store *s, const char *id, const char *reason, int64_t now)
{
    writes++;
    return real_ops->session_end(s, id, reason, now);
}
static int count_alert_insert(lw_store *s, const lw_alert *a)
{
    writes++;
    return real_ops->alert_insert(s, a);
}
static int count_alert_raise(lw_store *s, const lw_alert *a, int64_t since, lw_alert *out)
{
    writes++;
    return real_ops->alert_raise(s, a, since, out);
}
static int count_setting_put(lw_store *s, const char *name, const char *value)
{
    writes++;
    return real_ops->setting_put(s, name, value);
}

static void test_issue_and_check(void **state)
{
    fixture *f = *state;
    char token[LW_CRED_STRLEN];
    make_account(f, "acct1", "alice", token);
    lw_principal who;
    char reason[LW_REASON_MAX] = "";
    assert_int_equal(auth(f->app.sessions, token, strlen(token), false, "127.0.0.1", &who, reason), LW_OK);
    assert_string_equal(who.device_id, "acct1-p");
    assert_string_equal(who.account_id, "acct1");
    assert_true(who.primary);

    /* The store never holds the token: the verifier only as a keyed hash. */
    lw_session s;
    assert_int_equal(lw_store_session_get(f->app.store, "acct1-p", &s), LW_OK);
    const char *verifier = strchr(token, '.') + 1;
    assert_null(memmem(&s, sizeof s, verifier, strlen(verifier)));
    assert_null(memmem(&s, sizeof s, verifier, 8));

    /* A changed verifier, a link token, garbage: all unknown. */
    char bad[LW_CRED_STRLEN];
    memcpy(bad, token, sizeof bad);
    bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == 'A' ? 'B' : 'A';
    assert_int_equal(auth(f->app.sessions, bad, strlen(bad), false, "", &who, reason), LW_ENOTFOUND);
    bad[1] = 'x';
    assert_int_equal(auth(f->app.sessions, bad, strlen(bad), false, "", &who, reason), LW_ENOTFOUND);
    assert_int_equal(auth(f->app.sessions, "lws_", 4, false, "", &who, reason), LW_ENOTFOUND);

    /* After a restart (empty cache) the store answers the same. */
    lw_sessions_free(f->app.sessions);
    f->app.sessions = lw_sessions_new(wire(f));
    assert_int_equal(lw_sessions_cached(f->app.sessions), 0);
    assert_int_equal(auth(f->app.sessions, token, strlen(token), false, "", &who, reason), LW_OK);
    assert_int_equal(lw_sessions_cached(f->app.sessions), 1);
}

static void test_refresh_replaces_credential(void **state)
{
    fixture *f = *state;
    char token[LW_CRED_STRLEN], fresh[LW_CRED_STRLEN];
    make_account(f, "acct1", "alice", token);
    lw_session s;
    assert_int_equal(lw_store_session_get(f->app.store, "acct1-p", &s), LW_OK);
    uint8_t old_challenge[32];
    memcpy(old_challenge, s.challenge, 32);
    assert_int_equal(lw_sessions_issue(f->app.sessions, &s, fresh), LW_OK);
    assert_memory_not_equal(old_challenge, s.challenge, 32);
    lw_principal who;
    char reason[LW_REASON_MAX];
    assert_int_equal(auth(f->app.sessions, token, strlen(token), false, "", &who, reason), LW_ENOTFOUND);
    assert_int_equal(auth(f->app.sessions, fresh, strlen(fresh), false, "", &who, reason), LW_OK);
}

static void test_expired_credential(void **state)
{
    fixture *f = *state;
    char token[LW_CRED_STRLEN];
    f->app.cfg.credential_ttl_ms = -1000; /* issued already lapsed */
    make_account(f, "acct1", "alice", token);
    lw_principal who;
    char reason[LW_REASON_MAX];
    assert_int_equal(auth(f->app.sessions, token, strlen(token), false, "", &who, reason), LW_EEXPIRED);
    /* The refresh route may still use it: that is how the device proves its key. */
    assert_int_equal(auth(f->app.sessions, token, strlen(token), true, "", &who, reason), LW_OK);
}

static void test_end_refuses_next_request(void **state)
{
    fixture *f = *state;
    char ptoken[LW_CRED_STRLEN], ctoken[LW_CRED_STRLEN];
    make_account(f, "acct1", "alice", ptoken);
    lw_session c;
    new_session(&c, "comp1", "acct1", LW_ROLE_COMPANION, lw_now_ms());
    assert_int_equal(lw_sessions_prepare(f->app.sessions, &c, ctoken), LW_OK);
    /* Insert through the link path's store call: a request is not needed for the session itself. */
    lw_link_request r;
    memset(&r, 0, sizeof r);
    lw_strlcpy(r.id, "req1", sizeof r.id);
    lw_strlcpy(r.token_selector, "tok1", sizeof r.token_selector);
    lw_strlcpy(r.state, "pending", sizeof r.state);
    r.created_at = lw_now_ms();
    r.expires_at = r.created_at + 60000;
    assert_int_equal(lw_store_link_insert(f->app.store, &r), LW_OK);
    lw_strlcpy(r.account_id, "acct1", sizeof r.account_id);
    assert_int_equal(lw_store_link_transition(f->app.store, &r, "pending", "approved"), LW_OK);
    assert_int_equal(lw_store_link_complete(f->app.store, "req1", &c, 4, NULL, NULL), LW_OK);
    lw_sessions_cache(f->app.sessions, &c, lw_sessions_epoch(f->app.sessions));

    lw_principal who;
    char reason[LW_REASON_MAX] = "";
    assert_int_equal(auth(f->app.sessions, ctoken, strlen(ctoken), false, "", &who, reason), LW_OK);
    assert_int_equal(lw_sessions_end(f->app.sessions, "comp1", "remote_logout"), LW_OK);
    /* The very next request is refused, and it is told why. */
    assert_int_equal(auth(f->app.sessions, ctoken, strlen(ctoken), false, "", &who, reason), LW_EDENIED);
    assert_string_equal(reason, "remote_logout");
    assert_int_equal(lw_sessions_end(f->app.sessions, "comp1", "logout"), LW_ECONFLICT);
    /* A device.ended alert records it for the account. */
    lw_alert *alerts = NULL;
    size_t n = 0;
    assert_int_equal(lw_store_alert_list(f->app.store, "acct1", 10, &alerts, &n), LW_OK);
    assert_int_equal(n, 1);
    assert_string_equal(alerts[0].kind, "device.ended");
    assert_non_null(strstr(alerts[0].details, "remote_logout"));
    lw_free(alerts);
}

static void test_last_active_coalesced(void **state)
{
    fixture *f = *state;
    char token[LW_CRED_STRLEN];
    make_account(f, "acct1", "alice", token);
    lw_session before;
    assert_int_equal(lw_store_session_get(f->app.store, "acct1-p", &before), LW_OK);
    f->app.cfg.last_active_write_ms = 3600 * 1000; /* an hour: nothing is written on its own */
    lw_principal who;
    char reason[LW_REASON_MAX];
    usleep(5000);
    for (int i = 0; i < 20; i++)
        assert_int_equal(auth(f->app.sessions, token, strlen(token), false, "10.0.0.7", &who, reason), LW_OK);
    lw_session mid;
    assert_int_equal(lw_store_session_get(f->app.store, "acct1-p", &mid), LW_OK);
    assert_int_equal(mid.last_active_at, before.last_active_at);
    /* A flush writes the newest time and address once. */
    lw_sessions_flush(f->app.sessions, true);
    lw_session after;
    assert_int_equal(lw_store_session_get(f->app.store, "acct1-p", &after), LW_OK);
    assert_true(after.last_active_at > before.last_active_at);
    assert_string_equal(after.last.ip, "10.0.0.7");
    /* With a zero window every use is written at once. */
    f->app.cfg.last_active_write_ms = 0;
    usleep(5000);
    assert_int_equal(auth(f->app.sessions, token, strlen(token), false, "", &who, reason), LW_OK);
    lw_session now;
    assert_int_equal(lw_store_session_get(f->app.store, "acct1-p", &now), LW_OK);
    assert_true(now.last_active_at > after.last_active_at);
}

/* Forgotten at another node's word: the credential stops working at once;
 * its pending last-active time is written only by lw_sessions_write_late
 * (after the whole notice), or by a forced flush. */
static void test_forget_drops_now_writes_late(void **state)
{
    fixture *f = *state;
    char token[LW_CRED_STRLEN];
    make_account(f, "acct1", "alice", token);
    f->app.cfg.last_active_write_ms = 3600 * 1000;
    lw_session before;
    assert_int_equal(lw_store_session_get(f->app.store, "acct1-p", &before), LW_OK);
    lw_principal who;
    char reason[LW_REASON_MAX] = "";
    usleep(5000);
    assert_int_equal(auth(f->app.sessions, token, strlen(token), false, "10.0.0.8", &who, reason), LW_OK);
    lw_sessions_forget(f->app.sessions, "acct1-p");
    assert_int_equal(lw_sessions_cached(f->app.sessions), 0); /* dropped at once */
    lw_session mid;
    assert_int_equal(lw_store_session_get(f->app.store, "acct1-p", &mid), LW_OK);
    assert_int_equal(mid.last_active_at, before.last_active_at); /* not written yet */
    lw_sessions_write_late(f->app.sessions);
    lw_session after;
    assert_int_equal(lw_store_session_get(f->app.store, "acct1-p", &after), LW_OK);
    assert_true(after.last_active_at > before.last_active_at);
    assert_string_equal(after.last.ip, "10.0.0.8");
    lw_sessions_write_late(f->app.sessions); /* nothing left: a no-op */
}

static void test_sweeper_injected_clock(void **state)
{
    fixture *f = *state;
    char token[LW_CRED_STRLEN], ctoken[LW_CRED_STRLEN];
    make_account(f, "acct1", "alice", token);
    int64_t t0 = lw_now_ms();
    lw_session c;
    new_session(&c, "comp1", "acct1", LW_ROLE_COMPANION, t0);
    lw_sessions_prepare(f->app.sessions, &c, ctoken);
    lw_link_request r;
    memset(&r, 0, sizeof r);
    lw_strlcpy(r.id, "req1", sizeof r.id);
    lw_strlcpy(r.token_selector, "tok1", sizeof r.token_selector);
    lw_strlcpy(r.state, "approved", sizeof r.state);
    lw_strlcpy(r.account_id, "acct1", sizeof r.account_id);
    r.created_at = t0;
    r.expires_at = t0 + 60000;
    assert_int_equal(lw_store_link_insert(f->app.store, &r), LW_OK);
    assert_int_equal(lw_store_link_complete(f->app.store, "req1", &c, 4, NULL, NULL), LW_OK);

    long ended = -1, purged = -1;
    /* A day later nothing is due (TTL 30 days, primary seen now). */
    assert_int_equal(lw_sweep_run(wire(f), t0 + 24LL * 3600 * 1000, &ended, &purged), LW_OK);
    assert_int_equal(ended, 0);
    /* 31 days later the idle companion ends as "inactive"; the primary is never swept this way. */
    f->app.cfg.primary_inactive_ms = 0;
    assert_int_equal(lw_sweep_run(wire(f), t0 + 31LL * 24 * 3600 * 1000, &ended, &purged), LW_OK);
    assert_int_equal(ended, 1);
    lw_session got;
    assert_int_equal(lw_store_session_get(f->app.store, "comp1", &got), LW_OK);
    assert_string_equal(got.state, "ended");
    assert_string_equal(got.end_reason, "inactive");
    assert_int_equal(lw_store_session_get(f->app.store, "acct1-p", &got), LW_OK);
    assert_string_equal(got.state, "active");
    /* Its credential now says why. */
    lw_principal who;
    char reason[LW_REASON_MAX];
    assert_int_equal(auth(f->app.sessions, ctoken, strlen(ctoken), false, "", &who, reason), LW_EDENIED);
    assert_string_equal(reason, "inactive");
    /* After the retention the ended record is purged. */
    assert_int_equal(lw_sweep_run(wire(f), t0 + 200LL * 24 * 3600 * 1000, &ended, &purged), LW_OK);
    assert_int_equal(purged, 1);
    assert_int_equal(lw_store_session_get(f->app.store, "comp1", &got), LW_ENOTFOUND);
}

/* The credential check only reads: neither a cache hit nor a miss that
 * reads the store writes a last-active time or an alert; the "seen" step
 * does. */
static void test_check_is_pure(void **state)
{
    fixture *f = *state;
    char token[LW_CRED_STRLEN];
    make_account(f, "acct1", "alice", token);
    f->app.cfg.last_active_write_ms = 0; /* a "seen" would write at once */
    lw_session before;
    assert_int_equal(lw_store_session_get(f->app.store, "acct1-p", &before), LW_OK);
    lw_store_ops counting = *f->app.store->ops;
    counting.session_touch = count_touch;
    counting.session_set_credential = count_set_credential;
    counting.session_end = count_end;
    counting.alert_insert = count_alert_insert;
    counting.alert_raise = count_alert_raise;
    counting.setting_put = count_setting_put;
    real_ops = f->app.store->ops;
    f->app.store->ops = &counting;
    writes = 0;
    lw_principal who;
    char reason[LW_REASON_MAX] = "";
    usleep(5000);
    for (int i = 0; i < 5; i++) /* cached */
        assert_int_equal(lw_sessions_check(f->app.sessions, token, strlen(token), false, &who, reason),
                         LW_OK);
    lw_sessions_forget(f->app.sessions, "acct1-p"); /* nothing pending: writes nothing */
    assert_int_equal(lw_sessions_check(f->app.sessions, token, strlen(token), false, &who, reason), LW_OK);
    assert_int_equal(lw_sessions_cached(f->app.sessions), 1); /* the miss filled the cache */
    assert_int_equal(lw_sessions_check(f->app.sessions, "lws_x", 5, false, &who, reason), LW_ENOTFOUND);
    assert_int_equal(writes, 0);
    lw_session mid;
    assert_int_equal(lw_store_session_get(f->app.store, "acct1-p", &mid), LW_OK);
    assert_int_equal(mid.last_active_at, before.last_active_at);
    assert_string_equal(mid.last.ip, before.last.ip);
    /* The "seen" step is where the writes are. */
    lw_sessions_seen(f->app.sessions, &who, "10.0.0.9", lw_now_ms());
    assert_true(writes > 0);
    f->app.store->ops = real_ops;
    lw_session after;
    assert_int_equal(lw_store_session_get(f->app.store, "acct1-p", &after), LW_OK);
    assert_true(after.last_active_at > before.last_active_at);
    assert_string_equal(after.last.ip, "10.0.0.9");
}

int main(void)
{
    lw_crypto_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_issue_and_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_replaces_credential, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_credential, setup, teardown),
        cmocka_unit_test_setup_teardown(test_end_refuses_next_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_active_coalesced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_is_pure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forget_drops_now_writes_late, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweeper_injected_clock, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
