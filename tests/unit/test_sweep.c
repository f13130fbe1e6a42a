/*
 * test_sweep.c — the store's sweeper on a real database with an injected
 * clock: per-account inactivity TTL, primary inactivity, absolute maximum age
 * and history retention. The same tests run on both backends
 * (store_fixture.h): a SQLite file by default, a PostgreSQL schema when
 * LINKWARD_TEST_PG is set (CTest: unit.test_sweep.pg); on PostgreSQL also two
 * nodes sweeping at once.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"
#include "store_fixture.h"

#define T0 1700000000000LL
#define HOUR_MS 3600000LL
#define DAY_MS (24 * HOUR_MS)

typedef struct fixture {
    store_fx fx; /* the database: a SQLite file or a PostgreSQL schema */
    lw_store *s;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    fx_init(&f->fx, "sweep");
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

/* Distinct bytes per session so selectors and keys never collide. */
static uint8_t next_tag;

static void make_session(lw_session *x, const char *id, const char *account_id, const char *role,
                         int64_t linked_at, int64_t last_active_at)
{
    uint8_t tag = ++next_tag;
    memset(x, 0, sizeof(*x));
    snprintf(x->id, sizeof(x->id), "%s", id);
    snprintf(x->account_id, sizeof(x->account_id), "%s", account_id);
    snprintf(x->role, sizeof(x->role), "%s", role);
    memset(x->public_key, tag, sizeof(x->public_key));
    memset(x->cred_hash, tag, sizeof(x->cred_hash));
    memset(x->challenge, tag, sizeof(x->challenge));
    x->linked_at = linked_at;
    x->last_active_at = last_active_at;
    x->persistent = true;
    snprintf(x->cred_selector, sizeof(x->cred_selector), "sel-%s", id);
    x->cred_expires_at = linked_at + 600000;
}

/* Account id with TTL ttl_ms and a primary "<id>-p" last active at primary_seen. */
static void add_account(lw_store *s, const char *id, int64_t ttl_ms, int64_t primary_seen)
{
    lw_account a;
    memset(&a, 0, sizeof(a));
    snprintf(a.id, sizeof(a.id), "%s", id);
    snprintf(a.handle, sizeof(a.handle), "h-%s", id);
    a.created_at = T0 - 400 * DAY_MS;
    a.inactive_ttl_ms = ttl_ms;
    lw_session p;
    char pid[LW_ID_STRLEN];
    snprintf(pid, sizeof(pid), "%s-p", id);
    make_session(&p, pid, id, LW_ROLE_PRIMARY, T0 - 400 * DAY_MS, primary_seen);
    assert_int_equal(lw_store_account_create(s, &a, &p, NULL), LW_OK);
}

/* A companion linked through the real link path; persistent: "keep me signed in". */
static void add_companion_kept(lw_store *s, const char *id, const char *acct, int64_t linked_at, int64_t seen,
                               bool persistent)
{
    lw_link_request r;
    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "r-%s", id);
    snprintf(r.token_selector, sizeof(r.token_selector), "t-%s", id);
    memset(r.token_hash, next_tag + 1, sizeof(r.token_hash));
    memset(r.public_key, next_tag + 1, sizeof(r.public_key));
    r.created_at = linked_at;
    r.expires_at = linked_at + 160000;
    snprintf(r.state, sizeof(r.state), "pending");
    assert_int_equal(lw_store_link_insert(s, &r), LW_OK);
    snprintf(r.account_id, sizeof(r.account_id), "%s", acct);
    assert_int_equal(lw_store_link_transition(s, &r, "pending", "scanned"), LW_OK);
    assert_int_equal(lw_store_link_transition(s, &r, "scanned", "approved"), LW_OK);
    lw_session c;
    make_session(&c, id, acct, LW_ROLE_COMPANION, linked_at, seen);
    c.persistent = persistent;
    assert_int_equal(lw_store_link_complete(s, r.id, &c, 100, NULL, NULL), LW_OK);
}

static void add_companion(lw_store *s, const char *id, const char *acct, int64_t linked_at, int64_t seen)
{
    add_companion_kept(s, id, acct, linked_at, seen, true);
}

static const char *state_of(lw_store *s, const char *id, char reason[LW_REASON_MAX])
{
    static lw_session x;
    assert_int_equal(lw_store_session_get(s, id, &x), LW_OK);
    snprintf(reason, LW_REASON_MAX, "%s", x.end_reason);
    return x.state;
}

static const lw_ended *find(const lw_ended *list, size_t n, const char *id)
{
    for (size_t k = 0; k < n; k++)
        if (strcmp(list[k].device_id, id) == 0)
            return &list[k];
    return NULL;
}

static void test_inactive_ttl(void **state)
{
    fixture *f = *state;
    add_account(f->s, "a30", 30 * DAY_MS, T0);
    add_account(f->s, "a7", 7 * DAY_MS, T0);
    add_companion(f->s, "stale30", "a30", T0 - 60 * DAY_MS, T0 - 31 * DAY_MS);
    add_companion(f->s, "fresh30", "a30", T0 - 60 * DAY_MS, T0 - 29 * DAY_MS);
    add_companion(f->s, "stale7", "a7", T0 - 60 * DAY_MS, T0 - 8 * DAY_MS);
    add_companion(f->s, "fresh7", "a7", T0 - 60 * DAY_MS, T0 - 6 * DAY_MS);
    /* Exactly at the boundary is not yet past it. */
    add_companion(f->s, "edge7", "a7", T0 - 60 * DAY_MS, T0 - 7 * DAY_MS);
    /* A primary is never ended for its own inactivity. */
    add_account(f->s, "idlep", 7 * DAY_MS, T0 - 300 * DAY_MS);

    lw_sweep_policy p = {.now = T0};
    lw_ended *list = NULL;
    size_t n = 0;
    long purged = -1;
    assert_int_equal(lw_store_sweep(f->s, &p, &list, &n, &purged), LW_OK);
    assert_int_equal(n, 2);
    assert_int_equal(purged, 0);
    const lw_ended *e = find(list, n, "stale30");
    assert_non_null(e);
    assert_string_equal(e->reason, "inactive");
    assert_string_equal(e->account_id, "a30");
    e = find(list, n, "stale7");
    assert_non_null(e);
    assert_string_equal(e->reason, "inactive");
    lw_free(list);

    char reason[LW_REASON_MAX];
    assert_string_equal(state_of(f->s, "stale30", reason), "ended");
    assert_string_equal(reason, "inactive");
    assert_string_equal(state_of(f->s, "fresh30", reason), "active");
    assert_string_equal(state_of(f->s, "fresh7", reason), "active");
    assert_string_equal(state_of(f->s, "edge7", reason), "active");
    assert_string_equal(state_of(f->s, "idlep-p", reason), "active");
    lw_session x;
    assert_int_equal(lw_store_session_get(f->s, "stale7", &x), LW_OK);
    assert_int_equal(x.ended_at, T0);

    /* A second sweep at the same time finds nothing more. */
    assert_int_equal(lw_store_sweep(f->s, &p, &list, &n, &purged), LW_OK);
    assert_int_equal(n, 0);
    lw_free(list);

    /* The clock moves on: edge7 is now past its TTL. */
    p.now = T0 + 1;
    assert_int_equal(lw_store_sweep(f->s, &p, &list, &n, NULL), LW_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].device_id, "edge7");
    lw_free(list);
}

static void test_primary_inactive(void **state)
{
    fixture *f = *state;
    add_account(f->s, "gone", 365 * DAY_MS, T0 - 15 * DAY_MS);
    add_account(f->s, "here", 365 * DAY_MS, T0 - 13 * DAY_MS);
    add_companion(f->s, "g1", "gone", T0 - 20 * DAY_MS, T0 - HOUR_MS);
    add_companion(f->s, "g2", "gone", T0 - 20 * DAY_MS, T0);
    add_companion(f->s, "h1", "here", T0 - 20 * DAY_MS, T0 - HOUR_MS);

    lw_sweep_policy p = {.now = T0, .primary_inactive_ms = 14 * DAY_MS};
    lw_ended *list = NULL;
    size_t n = 0;
    assert_int_equal(lw_store_sweep(f->s, &p, &list, &n, NULL), LW_OK);
    assert_int_equal(n, 2);
    for (size_t k = 0; k < n; k++) {
        assert_string_equal(list[k].reason, "primary_inactive");
        assert_string_equal(list[k].account_id, "gone");
    }
    assert_non_null(find(list, n, "g1"));
    assert_non_null(find(list, n, "g2"));
    lw_free(list);
    char reason[LW_REASON_MAX];
    assert_string_equal(state_of(f->s, "h1", reason), "active");
    /* The idle primary itself stays: it is the account holder's phone. */
    assert_string_equal(state_of(f->s, "gone-p", reason), "active");

    /* Disabled (0): nothing is ended for primary inactivity. */
    add_companion(f->s, "g3", "gone", T0 - DAY_MS, T0);
    p.primary_inactive_ms = 0;
    assert_int_equal(lw_store_sweep(f->s, &p, &list, &n, NULL), LW_OK);
    assert_int_equal(n, 0);
    lw_free(list);
}

static void test_max_age(void **state)
{
    fixture *f = *state;
    add_account(f->s, "acct", 30 * DAY_MS, T0);
    add_companion(f->s, "old", "acct", T0 - 7 * HOUR_MS, T0); /* busy, but too old */
    add_companion(f->s, "young", "acct", T0 - 5 * HOUR_MS, T0);
    add_companion(f->s, "idle", "acct", T0 - 40 * DAY_MS, T0 - 35 * DAY_MS);

    lw_sweep_policy p = {.now = T0, .max_age_ms = 6 * HOUR_MS};
    lw_ended *list = NULL;
    size_t n = 0;
    assert_int_equal(lw_store_sweep(f->s, &p, &list, &n, NULL), LW_OK);
    /* One entry per session, with the first reason that applied. */
    assert_int_equal(n, 2);
    const lw_ended *e = find(list, n, "old");
    assert_non_null(e);
    assert_string_equal(e->reason, "max_age");
    e = find(list, n, "idle");
    assert_non_null(e);
    assert_string_equal(e->reason, "inactive");
    lw_free(list);
    char reason[LW_REASON_MAX];
    assert_string_equal(state_of(f->s, "young", reason), "active");
    /* The primary, linked 400 days ago, is not a companion. */
    assert_string_equal(state_of(f->s, "acct-p", reason), "active");
    assert_string_equal(state_of(f->s, "old", reason), "ended");
    assert_string_equal(reason, "max_age");
}

/* Browsers linked without "keep me signed in" end once unused for the
 * ephemeral idle time; kept ones follow only their account's TTL. */
static void test_ephemeral_idle(void **state)
{
    fixture *f = *state;
    add_account(f->s, "acct", 30 * DAY_MS, T0);
    add_companion_kept(f->s, "gone", "acct", T0 - DAY_MS, T0 - 2 * HOUR_MS, false);
    add_companion_kept(f->s, "open", "acct", T0 - DAY_MS, T0 - 10 * 60000, false);
    add_companion_kept(f->s, "kept", "acct", T0 - DAY_MS, T0 - 2 * HOUR_MS, true);

    lw_sweep_policy p = {.now = T0, .ephemeral_idle_ms = HOUR_MS};
    lw_ended *list = NULL;
    size_t n = 0;
    assert_int_equal(lw_store_sweep(f->s, &p, &list, &n, NULL), LW_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].device_id, "gone");
    assert_string_equal(list[0].account_id, "acct");
    assert_string_equal(list[0].reason, "inactive");
    lw_free(list);
    char reason[LW_REASON_MAX];
    assert_string_equal(state_of(f->s, "gone", reason), "ended");
    assert_string_equal(reason, "inactive");
    assert_string_equal(state_of(f->s, "open", reason), "active");
    assert_string_equal(state_of(f->s, "kept", reason), "active");

    /* 0 turns it off. */
    add_companion_kept(f->s, "gone2", "acct", T0 - DAY_MS, T0 - 2 * HOUR_MS, false);
    p.ephemeral_idle_ms = 0;
    list = NULL;
    assert_int_equal(lw_store_sweep(f->s, &p, &list, &n, NULL), LW_OK);
    assert_int_equal(n, 0);
    lw_free(list);
    assert_string_equal(state_of(f->s, "gone2", reason), "active");
}

static void test_retention(void **state)
{
    fixture *f = *state;
    add_account(f->s, "acct", 365 * DAY_MS, T0);
    add_companion(f->s, "e1", "acct", T0 - 200 * DAY_MS, T0 - 100 * DAY_MS);
    add_companion(f->s, "e2", "acct", T0 - 200 * DAY_MS, T0 - 100 * DAY_MS);
    add_companion(f->s, "e3", "acct", T0 - 200 * DAY_MS, T0 - 100 * DAY_MS);
    add_companion(f->s, "live", "acct", T0 - 200 * DAY_MS, T0);
    assert_int_equal(lw_store_session_end(f->s, "e1", "logout", T0 - 91 * DAY_MS), LW_OK);
    assert_int_equal(lw_store_session_end(f->s, "e2", "logout", T0 - 95 * DAY_MS), LW_OK);
    assert_int_equal(lw_store_session_end(f->s, "e3", "logout", T0 - 89 * DAY_MS), LW_OK);
    lw_alert a;
    memset(&a, 0, sizeof(a));
    snprintf(a.id, sizeof(a.id), "old-alert");
    snprintf(a.account_id, sizeof(a.account_id), "acct");
    snprintf(a.kind, sizeof(a.kind), "device.linked");
    a.created_at = T0 - 91 * DAY_MS;
    assert_int_equal(lw_store_alert_insert(f->s, &a), LW_OK);
    snprintf(a.id, sizeof(a.id), "new-alert");
    a.created_at = T0 - DAY_MS;
    assert_int_equal(lw_store_alert_insert(f->s, &a), LW_OK);

    lw_sweep_policy p = {.now = T0, .history_retention_ms = 90 * DAY_MS};
    lw_ended *list = NULL;
    size_t n = 0;
    long purged = -1;
    assert_int_equal(lw_store_sweep(f->s, &p, &list, &n, &purged), LW_OK);
    assert_int_equal(n, 0);
    assert_int_equal(purged, 2);
    lw_free(list);
    lw_session x;
    assert_int_equal(lw_store_session_get(f->s, "e1", &x), LW_ENOTFOUND);
    assert_int_equal(lw_store_session_get(f->s, "e2", &x), LW_ENOTFOUND);
    assert_int_equal(lw_store_session_get(f->s, "e3", &x), LW_OK);
    assert_int_equal(lw_store_session_get(f->s, "live", &x), LW_OK);

    lw_alert *alerts = NULL;
    size_t na = 0;
    assert_int_equal(lw_store_alert_list(f->s, "acct", 0, &alerts, &na), LW_OK);
    assert_int_equal(na, 1);
    assert_string_equal(alerts[0].id, "new-alert");
    lw_free(alerts);

    /* Retention 0 keeps history forever. */
    p.history_retention_ms = 0;
    p.now = T0 + 1000 * DAY_MS;
    assert_int_equal(lw_store_sweep(f->s, &p, &list, &n, &purged), LW_OK);
    assert_int_equal(purged, 0);
    lw_free(list);
    assert_int_equal(lw_store_session_get(f->s, "e3", &x), LW_OK);
}

static void test_everything_at_once(void **state)
{
    fixture *f = *state;
    add_account(f->s, "a", 30 * DAY_MS, T0 - 20 * DAY_MS);
    add_account(f->s, "b", 30 * DAY_MS, T0);
    add_companion(f->s, "a1", "a", T0 - DAY_MS, T0);
    add_companion(f->s, "b1", "b", T0 - DAY_MS, T0 - 31 * DAY_MS);
    add_companion(f->s, "b2", "b", T0 - 10 * DAY_MS, T0);
    add_companion(f->s, "b3", "b", T0 - HOUR_MS, T0);
    add_companion(f->s, "old", "b", T0 - 300 * DAY_MS, T0 - 299 * DAY_MS);
    assert_int_equal(lw_store_session_end(f->s, "old", "logout", T0 - 200 * DAY_MS), LW_OK);

    lw_sweep_policy p = {
        .now = T0,
        .primary_inactive_ms = 14 * DAY_MS,
        .max_age_ms = 7 * DAY_MS,
        .history_retention_ms = 90 * DAY_MS,
    };
    lw_ended *list = NULL;
    size_t n = 0;
    long purged = 0;
    assert_int_equal(lw_store_sweep(f->s, &p, &list, &n, &purged), LW_OK);
    assert_int_equal(n, 3);
    assert_string_equal(find(list, n, "b1")->reason, "inactive");
    assert_string_equal(find(list, n, "a1")->reason, "primary_inactive");
    assert_string_equal(find(list, n, "b2")->reason, "max_age");
    assert_null(find(list, n, "b3"));
    assert_int_equal(purged, 1);
    lw_free(list);

    lw_store_stats st;
    assert_int_equal(lw_store_get_stats(f->s, &st), LW_OK);
    assert_int_equal(st.sessions_active, 3); /* two primaries and b3 */
    assert_int_equal(st.sessions_ended, 3);
}

/* ---- PostgreSQL only: two nodes sweeping at once --------------------------- */

typedef struct sweeper {
    lw_store *s;
    pthread_barrier_t *go;
    lw_sweep_policy p;
    lw_ended *list;
    size_t n;
    int rc;
} sweeper;

static void *sweeper_main(void *arg)
{
    sweeper *w = arg;
    pthread_barrier_wait(w->go);
    w->rc = lw_store_sweep(w->s, &w->p, &w->list, &w->n, NULL);
    return NULL;
}

static void test_pg_two_nodes_sweep(void **state)
{
    fixture *f = *state;
    FX_PG_ONLY(&f->fx, "two nodes on one database");
    lw_store *node_b = NULL;
    assert_int_equal(lw_store_open(&node_b, f->fx.location), LW_OK);
    /* 3 accounts x 10 stale companions, plus fresh ones that must survive. */
    enum { ACCOUNTS = 3, STALE = 10 };
    for (int a = 0; a < ACCOUNTS; a++) {
        char acct[LW_ID_STRLEN];
        snprintf(acct, sizeof(acct), "acct%d", a);
        add_account(f->s, acct, 7 * DAY_MS, T0);
        for (int k = 0; k < STALE; k++) {
            char id[LW_ID_STRLEN];
            snprintf(id, sizeof(id), "s%d-%d", a, k);
            add_companion(f->s, id, acct, T0 - 30 * DAY_MS, T0 - 8 * DAY_MS);
        }
        char id[LW_ID_STRLEN];
        snprintf(id, sizeof(id), "fresh%d", a);
        add_companion(f->s, id, acct, T0 - 30 * DAY_MS, T0);
    }

    pthread_barrier_t go;
    assert_int_equal(pthread_barrier_init(&go, NULL, 2), 0);
    sweeper w[2] = {{.s = f->s, .go = &go, .p = {.now = T0}}, {.s = node_b, .go = &go, .p = {.now = T0}}};
    pthread_t t[2];
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_create(&t[k], NULL, sweeper_main, &w[k]), 0);
    for (int k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
    pthread_barrier_destroy(&go);
    assert_int_equal(w[0].rc, LW_OK);
    assert_int_equal(w[1].rc, LW_OK);

    /* Every stale device was ended once and reported by exactly one node, so
     * each device is told once. */
    assert_int_equal(w[0].n + w[1].n, ACCOUNTS * STALE);
    for (size_t k = 0; k < w[0].n; k++)
        assert_null(find(w[1].list, w[1].n, w[0].list[k].device_id));
    char reason[LW_REASON_MAX];
    for (int a = 0; a < ACCOUNTS; a++) {
        char id[LW_ID_STRLEN];
        snprintf(id, sizeof(id), "fresh%d", a);
        assert_string_equal(state_of(f->s, id, reason), "active");
    }
    lw_free(w[0].list);
    lw_free(w[1].list);
    lw_store_close(node_b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_inactive_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_primary_inactive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ephemeral_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_everything_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_two_nodes_sweep, setup, teardown),
    };
    /* The group is named after the backend, so a report says which one ran. */
    return cmocka_run_group_tests_name(fx_backend_name(), tests, NULL, NULL);
}
