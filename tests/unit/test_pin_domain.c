/* The PIN lockout rule (src/server/domain/pin.c) built alone: the domain
 * library over a real store (a SQLite file, or PostgreSQL with
 * LINKWARD_TEST_PG: store_fixture.h) and a fake events sink, through
 * lw_domain_deps; no lw_app, bus or HTTP. Wrong PINs are counted, lock entry
 * at the limit for a time that doubles, a right PIN resets the count, and a
 * run of wrong PINs is one pin.failed alert counting them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "domain_fixture.h"
#include "store_fixture.h"

#include "config.h"
#include "deps.h"
#include "events.h"
#include "lw.h"
#include "pin.h"
#include "store.h"

#define ACCT "acct-pin"
#define PHONE "acct-pin-p"
#define MIN_MS (60 * 1000)
/* A fixed "now" for the lockout arithmetic (the alerts' burst window runs on
 * the real clock, and a test takes far less than it). */
#define NOW ((int64_t)1700000000000LL)

typedef struct fixture {
    store_fx fx;
    lw_config cfg;
    lw_store *store;
    lw_events events;
    int heard; /* alerts pushed to the account */
    lw_domain_deps deps;
} fixture;

static void heard(void *ctx, const char *account_id, const char *except_device, json_t *ev)
{
    fixture *f = ctx;
    (void)except_device;
    assert_string_equal(account_id, ACCT);
    assert_string_equal(json_string_value(json_object_get(ev, "event")), "alert");
    f->heard++;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    fx_init(&f->fx, "pin");
    lw_config_defaults(&f->cfg);
    f->cfg.pin_max_failures = 3;
    f->cfg.pin_lockout_ms = MIN_MS;
    if (lw_store_open(&f->store, f->fx.location) != LW_OK)
        return -1;
    if (dx_account_create(f->store, ACCT, "pinner", PHONE, "$argon2id$not-checked-here") != LW_OK)
        return -1;
    f->events = (lw_events){.ctx = f, .to_account = heard};
    f->deps = (lw_domain_deps){.store = f->store, .events = &f->events, .cfg = &f->cfg};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    lw_store_close(f->store);
    fx_fini(&f->fx);
    free(f);
    return 0;
}

static lw_pin_outcome record(fixture *f, int verified, int64_t now)
{
    return lw_pin_record(&f->deps, ACCT, PHONE, verified, now);
}

static void load(fixture *f, lw_account *a)
{
    assert_int_equal(lw_store_account_get(f->store, ACCT, a), LW_OK);
}

/* Stored alerts of kind: how many, and the count of the newest. */
static size_t alerts_of(fixture *f, const char *kind, int *count)
{
    lw_alert *list = NULL;
    size_t n = 0, found = 0;
    assert_int_equal(lw_store_alert_list(f->store, ACCT, 50, &list, &n), LW_OK);
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].kind, kind) != 0)
            continue;
        if (found++ == 0)
            *count = list[i].count;
    }
    lw_free(list);
    return found;
}

static void test_locks_after_max_failures(void **state)
{
    fixture *f = *state;
    lw_account a;
    load(f, &a);
    assert_int_equal(lw_pin_locked_for(&a, NOW), 0);
    assert_int_equal(lw_pin_inflight_cap(&f->cfg, &a), 3);

    lw_pin_outcome o = record(f, LW_EDENIED, NOW);
    assert_int_equal(o.verdict, LW_PIN_WRONG);
    assert_int_equal(o.attempts_left, 2);
    o = record(f, LW_EDENIED, NOW);
    assert_int_equal(o.verdict, LW_PIN_WRONG);
    assert_int_equal(o.attempts_left, 1);
    load(f, &a);
    assert_int_equal(a.pin_failures, 2);
    assert_int_equal(a.pin_locked_until, 0);
    assert_int_equal(lw_pin_inflight_cap(&f->cfg, &a), 1);

    /* The third in a row locks, for the base time. */
    o = record(f, LW_EDENIED, NOW);
    assert_int_equal(o.verdict, LW_PIN_LOCKED);
    assert_int_equal(o.attempts_left, 0);
    assert_int_equal(o.retry_after, 60);
    load(f, &a);
    assert_int_equal(a.pin_failures, 3);
    assert_int_equal(a.pin_locked_until, NOW + MIN_MS);
    assert_int_equal(lw_pin_inflight_cap(&f->cfg, &a), 1); /* past the limit: one at a time */

    /* Locked, and for how long, rounded up to whole seconds. */
    assert_int_equal(lw_pin_locked_for(&a, NOW), 60);
    assert_int_equal(lw_pin_locked_for(&a, NOW + 1), 60);
    assert_int_equal(lw_pin_locked_for(&a, NOW + 59000), 1);
    assert_int_equal(lw_pin_locked_for(&a, NOW + 59999), 1);
    assert_int_equal(lw_pin_locked_for(&a, NOW + MIN_MS), 0);
    assert_int_equal(lw_pin_locked_for(&a, NOW + 2 * MIN_MS), 0);

    /* Once it lapsed, the next wrong PIN locks again, twice as long. */
    o = record(f, LW_EDENIED, NOW + MIN_MS);
    assert_int_equal(o.verdict, LW_PIN_LOCKED);
    assert_int_equal(o.retry_after, 120);
    load(f, &a);
    assert_int_equal(a.pin_locked_until, NOW + 3 * MIN_MS);

    /* One burst: one pin.failed alert counting the four, one pin.locked
     * counting both lockouts; each raise was pushed (the count changed). */
    int count = 0;
    assert_int_equal(alerts_of(f, "pin.failed", &count), 1);
    assert_int_equal(count, 4);
    assert_int_equal(alerts_of(f, "pin.locked", &count), 1);
    assert_int_equal(count, 2);
    assert_int_equal(f->heard, 6);
}

static void test_right_pin_resets(void **state)
{
    fixture *f = *state;
    record(f, LW_EDENIED, NOW);
    record(f, LW_EDENIED, NOW);
    lw_pin_outcome o = record(f, LW_OK, NOW);
    assert_int_equal(o.verdict, LW_PIN_RIGHT);
    lw_account a;
    load(f, &a);
    assert_int_equal(a.pin_failures, 0);
    assert_int_equal(a.pin_locked_until, 0);

    /* The count starts again: two more wrong PINs do not lock... */
    o = record(f, LW_EDENIED, NOW);
    assert_int_equal(o.attempts_left, 2);
    o = record(f, LW_EDENIED, NOW);
    assert_int_equal(o.verdict, LW_PIN_WRONG);
    /* ...and the run after the right PIN is a new pin.failed alert. */
    int count = 0;
    assert_int_equal(alerts_of(f, "pin.failed", &count), 2);
    assert_int_equal(count, 2);
    assert_int_equal(alerts_of(f, "pin.locked", &count), 0);

    /* A right PIN also lifts a lockout. */
    record(f, LW_EDENIED, NOW);
    load(f, &a);
    assert_true(lw_pin_locked_for(&a, NOW) > 0);
    assert_int_equal(record(f, LW_OK, NOW).verdict, LW_PIN_RIGHT);
    load(f, &a);
    assert_int_equal(lw_pin_locked_for(&a, NOW), 0);
    assert_int_equal(a.pin_failures, 0);
}

static void test_unchecked_and_no_account(void **state)
{
    fixture *f = *state;
    /* The check itself failed (no memory for Argon2id): nothing is counted. */
    assert_int_equal(record(f, LW_ENOMEM, NOW).verdict, LW_PIN_UNCHECKED);
    lw_account a;
    load(f, &a);
    assert_int_equal(a.pin_failures, 0);
    assert_int_equal(f->heard, 0);

    lw_pin_outcome o = lw_pin_record(&f->deps, "no-such-account", PHONE, LW_EDENIED, NOW);
    assert_int_equal(o.verdict, LW_PIN_NO_ACCOUNT);
    assert_int_equal(o.rc, LW_ENOTFOUND);
}

/* Without a lockout time configured, wrong PINs are counted but never lock. */
static void test_no_lockout_configured(void **state)
{
    fixture *f = *state;
    f->cfg.pin_lockout_ms = 0;
    for (int i = 0; i < 5; i++) {
        lw_pin_outcome o = record(f, LW_EDENIED, NOW);
        assert_int_equal(o.verdict, LW_PIN_WRONG);
        assert_int_equal(o.attempts_left, i < 3 ? 2 - i : 0);
    }
    lw_account a;
    load(f, &a);
    assert_int_equal(a.pin_failures, 5);
    assert_int_equal(lw_pin_locked_for(&a, NOW), 0);
}

int main(void)
{
    print_message("[   NOTE   ] store: %s\n", fx_backend_name());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_locks_after_max_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_right_pin_resets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unchecked_and_no_account, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_lockout_configured, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
