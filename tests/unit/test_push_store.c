/*
 * test_push_store.c — the store's Web Push subscriptions on a real database:
 * added only for an active primary, the same endpoint replacing its keys,
 * the per-device and per-account bounds, results, deletion, and that a
 * session's end and the account's deletion take them away. The same tests
 * run on both backends (store_fixture.h; CTest: unit.test_push_store.pg).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"
#include "store_fixture.h"

#define T0 1700000000000LL

typedef struct fixture {
    store_fx fx;
    lw_store *s;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    fx_init(&f->fx, "push");
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

static uint8_t next_tag;

static void make_session(lw_session *x, const char *id, const char *account_id, const char *role)
{
    uint8_t tag = ++next_tag;
    memset(x, 0, sizeof(*x));
    snprintf(x->id, sizeof(x->id), "%s", id);
    snprintf(x->account_id, sizeof(x->account_id), "%s", account_id);
    snprintf(x->role, sizeof(x->role), "%s", role);
    memset(x->public_key, tag, sizeof(x->public_key));
    memset(x->cred_hash, tag, sizeof(x->cred_hash));
    memset(x->challenge, tag, sizeof(x->challenge));
    x->linked_at = T0;
    x->last_active_at = T0;
    x->persistent = true;
    snprintf(x->cred_selector, sizeof(x->cred_selector), "s-%.16s", id);
    x->cred_expires_at = T0 + 600000;
}

/* Account id with a primary "<id>-p". */
static void add_account(lw_store *s, const char *id)
{
    lw_account a;
    memset(&a, 0, sizeof(a));
    snprintf(a.id, sizeof(a.id), "%s", id);
    snprintf(a.handle, sizeof(a.handle), "h-%s", id);
    a.created_at = T0;
    a.inactive_ttl_ms = 3600000;
    lw_session p;
    char pid[LW_ID_STRLEN];
    snprintf(pid, sizeof(pid), "%s-p", id);
    make_session(&p, pid, id, LW_ROLE_PRIMARY);
    assert_int_equal(lw_store_account_create(s, &a, &p, NULL), LW_OK);
}

static void make_sub(lw_push_sub *x, const char *device_id, const char *account_id, int n)
{
    memset(x, 0, sizeof *x);
    snprintf(x->device_id, sizeof x->device_id, "%s", device_id);
    snprintf(x->account_id, sizeof x->account_id, "%s", account_id);
    snprintf(x->endpoint, sizeof x->endpoint, "https://push.example.net/send/%s-%d", device_id, n);
    x->p256dh[0] = 4;
    memset(x->p256dh + 1, n + 1, sizeof x->p256dh - 1);
    memset(x->auth, n + 7, sizeof x->auth);
    x->created_at = T0 + n;
}

static size_t count_of(lw_store *s, const char *account_id, const char *device_id)
{
    lw_push_sub *list = NULL;
    size_t n = 0;
    assert_int_equal(lw_store_push_list(s, account_id, device_id, &list, &n), LW_OK);
    lw_free(list);
    return n;
}

static void test_add_list_delete(void **state)
{
    fixture *f = *state;
    add_account(f->s, "a1");
    lw_push_sub x;
    make_sub(&x, "a1-p", "a1", 0);
    assert_int_equal(lw_store_push_add(f->s, &x, LW_PUSH_PER_DEVICE, LW_PUSH_PER_ACCOUNT), LW_OK);
    lw_push_sub *list = NULL;
    size_t n = 0;
    assert_int_equal(lw_store_push_list(f->s, "a1", NULL, &list, &n), LW_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].endpoint, x.endpoint);
    assert_string_equal(list[0].device_id, "a1-p");
    assert_memory_equal(list[0].p256dh, x.p256dh, sizeof x.p256dh);
    assert_memory_equal(list[0].auth, x.auth, sizeof x.auth);
    assert_int_equal(list[0].created_at, x.created_at);
    assert_int_equal(list[0].failures, 0);
    lw_free(list);

    /* The same endpoint again replaces its keys and clears its failures. */
    assert_int_equal(lw_store_push_result(f->s, "a1-p", x.endpoint, false), LW_OK);
    assert_int_equal(lw_store_push_result(f->s, "a1-p", x.endpoint, false), LW_OK);
    assert_int_equal(lw_store_push_list(f->s, NULL, "a1-p", &list, &n), LW_OK);
    assert_int_equal(list[0].failures, 2);
    lw_free(list);
    memset(x.auth, 0x55, sizeof x.auth);
    assert_int_equal(lw_store_push_add(f->s, &x, LW_PUSH_PER_DEVICE, LW_PUSH_PER_ACCOUNT), LW_OK);
    assert_int_equal(lw_store_push_list(f->s, NULL, "a1-p", &list, &n), LW_OK);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].failures, 0);
    assert_memory_equal(list[0].auth, x.auth, sizeof x.auth);
    lw_free(list);

    assert_int_equal(lw_store_push_delete(f->s, "a1-p", x.endpoint), LW_OK);
    assert_int_equal(lw_store_push_delete(f->s, "a1-p", x.endpoint), LW_ENOTFOUND);
    assert_int_equal(lw_store_push_result(f->s, "a1-p", x.endpoint, true), LW_ENOTFOUND);
    assert_int_equal(count_of(f->s, "a1", NULL), 0);
}

static void test_only_active_primary(void **state)
{
    fixture *f = *state;
    add_account(f->s, "a1");
    add_account(f->s, "a2");
    lw_push_sub x;
    make_sub(&x, "a1-p", "a2", 0); /* another account's device */
    assert_int_equal(lw_store_push_add(f->s, &x, 4, 8), LW_ENOTFOUND);
    make_sub(&x, "nobody", "a1", 0);
    assert_int_equal(lw_store_push_add(f->s, &x, 4, 8), LW_ENOTFOUND);
    assert_int_equal(count_of(f->s, "a1", NULL), 0);
    assert_int_equal(count_of(f->s, "a2", NULL), 0);
}

static void test_bounds(void **state)
{
    fixture *f = *state;
    add_account(f->s, "a1");
    lw_push_sub x;
    for (int i = 0; i < 3; i++) {
        make_sub(&x, "a1-p", "a1", i);
        assert_int_equal(lw_store_push_add(f->s, &x, 3, 8), LW_OK);
    }
    make_sub(&x, "a1-p", "a1", 3);
    assert_int_equal(lw_store_push_add(f->s, &x, 3, 8), LW_ELIMIT);
    /* Renewing one it has is not a new one. */
    make_sub(&x, "a1-p", "a1", 1);
    assert_int_equal(lw_store_push_add(f->s, &x, 3, 8), LW_OK);
    /* The account's bound counts every device of it. */
    make_sub(&x, "a1-p", "a1", 4);
    assert_int_equal(lw_store_push_add(f->s, &x, 10, 3), LW_ELIMIT);
    assert_int_equal(count_of(f->s, "a1", NULL), 3);
}

static void test_session_end_and_account_delete(void **state)
{
    fixture *f = *state;
    add_account(f->s, "a1");
    add_account(f->s, "a2");
    lw_push_sub x;
    make_sub(&x, "a1-p", "a1", 0);
    assert_int_equal(lw_store_push_add(f->s, &x, 4, 8), LW_OK);
    make_sub(&x, "a1-p", "a1", 1);
    assert_int_equal(lw_store_push_add(f->s, &x, 4, 8), LW_OK);
    make_sub(&x, "a2-p", "a2", 0);
    assert_int_equal(lw_store_push_add(f->s, &x, 4, 8), LW_OK);

    assert_int_equal(lw_store_session_end(f->s, "a1-p", "logout", T0 + 10), LW_OK);
    assert_int_equal(count_of(f->s, "a1", NULL), 0);
    assert_int_equal(count_of(f->s, NULL, "a1-p"), 0); /* the rows, not only the join */
    assert_int_equal(count_of(f->s, "a2", NULL), 1);

    lw_ended *ended = NULL;
    size_t n = 0;
    assert_int_equal(lw_store_account_delete(f->s, "a2", &ended, &n), LW_OK);
    lw_free(ended);
    assert_int_equal(count_of(f->s, NULL, "a2-p"), 0);
    assert_int_equal(fx_long(&f->fx, "SELECT count(*) FROM push_subscriptions"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_list_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_only_active_primary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_end_and_account_delete, setup, teardown),
    };
    return cmocka_run_group_tests_name(fx_backend_name(), tests, NULL, NULL);
}
