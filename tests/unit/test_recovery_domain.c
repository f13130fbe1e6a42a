/* The recovery key and the replacement of a primary (src/server/domain/
 * recovery.c) built alone: the domain library over a real store (SQLite, or
 * PostgreSQL with LINKWARD_TEST_PG: store_fixture.h) and a fake events sink;
 * no lw_app, bus or HTTP. */
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
#include "recovery.h"
#include "store.h"

#define ACCT "acct-rec"
#define PHONE "acct-rec-p"
#define LAPTOP "acct-rec-c"

typedef struct fixture {
    store_fx fx;
    lw_config cfg;
    lw_store *store;
    lw_events events;
    int alerts;
    lw_domain_deps deps;
    uint8_t key[LW_KEY_LEN];
} fixture;

static void heard(void *ctx, const char *account_id, const char *except_device, json_t *ev)
{
    fixture *f = ctx;
    (void)except_device;
    assert_string_equal(account_id, ACCT);
    if (strcmp(json_string_value(json_object_get(ev, "event")), "alert") == 0)
        f->alerts++;
}

static void session(lw_session *s, const char *id, const char *role, uint8_t pk)
{
    memset(s, 0, sizeof *s);
    lw_strlcpy(s->id, id, sizeof s->id);
    lw_strlcpy(s->account_id, ACCT, sizeof s->account_id);
    lw_strlcpy(s->role, role, sizeof s->role);
    lw_strlcpy(s->state, "active", sizeof s->state);
    lw_strlcpy(s->cred_selector, id, sizeof s->cred_selector);
    memset(s->public_key, pk, sizeof s->public_key);
    s->linked_at = lw_now_ms();
    s->last_active_at = s->linked_at;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    fx_init(&f->fx, "recovery");
    lw_config_defaults(&f->cfg);
    memset(f->key, 7, sizeof f->key);
    if (lw_store_open(&f->store, f->fx.location) != LW_OK)
        return -1;
    if (dx_account_create(f->store, ACCT, "recoverer", PHONE, NULL) != LW_OK)
        return -1;
    f->events = (lw_events){.ctx = f, .to_account = heard};
    f->deps = (lw_domain_deps){.store = f->store, .events = &f->events, .cfg = &f->cfg, .hash_key = f->key};
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

static void test_format_parse(void **state)
{
    (void)state;
    uint8_t raw[LW_RECOVERY_KEY_LEN], back[LW_RECOVERY_KEY_LEN];
    char text[LW_RECOVERY_TEXT_MAX];
    lw_recovery_generate(raw, text);
    assert_int_equal(strlen(text), 39);
    for (int g = 1; g < LW_RECOVERY_GROUPS; g++)
        assert_int_equal(text[g * 5 - 1], '-');
    assert_int_equal(lw_recovery_parse(text, back), LW_OK);
    assert_memory_equal(raw, back, sizeof raw);
    /* Lower case, spaces instead of dashes, 0 for O and 1 for I. */
    uint8_t zeros[LW_RECOVERY_KEY_LEN] = {0};
    lw_recovery_format(zeros, text);
    assert_string_equal(text, "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA");
    uint8_t ones[LW_RECOVERY_KEY_LEN];
    memset(ones, 0xff, sizeof ones);
    lw_recovery_format(ones, text);
    assert_string_equal(text, "7777-7777-7777-7777-7777-7777-7777-7777");
    memset(back, 0, sizeof back);
    assert_int_equal(lw_recovery_parse("7777 7777 7777 7777 7777 7777 7777 7777", back), LW_OK);
    assert_memory_equal(ones, back, sizeof ones);
    uint8_t oi[LW_RECOVERY_KEY_LEN], oi2[LW_RECOVERY_KEY_LEN];
    assert_int_equal(lw_recovery_parse("oiOI-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa", oi), LW_OK);
    assert_int_equal(lw_recovery_parse("0101-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA", oi2), LW_OK);
    assert_memory_equal(oi, oi2, sizeof oi);
    /* Wrong lengths and letters outside the alphabet. */
    assert_int_equal(lw_recovery_parse("AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAA", back), LW_EINVAL);
    assert_int_equal(lw_recovery_parse("AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAAA", back), LW_EINVAL);
    assert_int_equal(lw_recovery_parse("AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAA8", back), LW_EINVAL);
    assert_int_equal(lw_recovery_parse("", back), LW_EINVAL);
    char longer[LW_RECOVERY_INPUT_MAX + 1];
    memset(longer, ' ', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_int_equal(lw_recovery_parse(longer, back), LW_EINVAL);
}

static void test_hash_check(void **state)
{
    fixture *f = *state;
    uint8_t raw[LW_RECOVERY_KEY_LEN];
    char text[LW_RECOVERY_TEXT_MAX], h[LW_RECOVERY_HASH_MAX];
    lw_recovery_generate(raw, text);
    lw_recovery_hash(f->key, ACCT, raw, h);
    assert_int_equal(strlen(h), 64);
    assert_true(lw_recovery_check(f->key, ACCT, raw, h));
    assert_false(lw_recovery_check(f->key, "another", raw, h)); /* bound to the account */
    assert_false(lw_recovery_check(f->key, ACCT, raw, ""));     /* no key set */
    raw[0] ^= 1;
    assert_false(lw_recovery_check(f->key, ACCT, raw, h));
    raw[0] ^= 1;
    uint8_t other[LW_KEY_LEN];
    memset(other, 8, sizeof other);
    assert_false(lw_recovery_check(other, ACCT, raw, h)); /* keyed by the server */
    /* Stored, read back, and replaced with the account. */
    lw_account a;
    assert_int_equal(lw_store_account_get(f->store, ACCT, &a), LW_OK);
    assert_string_equal(a.recovery_hash, "");
    lw_strlcpy(a.recovery_hash, h, sizeof a.recovery_hash);
    assert_int_equal(lw_store_account_update(f->store, &a), LW_OK);
    assert_int_equal(lw_store_account_get_by_handle(f->store, "recoverer", &a), LW_OK);
    assert_string_equal(a.recovery_hash, h);
}

static void test_replace_all(void **state)
{
    fixture *f = *state;
    /* Recovery: every session ends, a new primary and a new verifier. */
    lw_session p2;
    session(&p2, "acct-rec-p2", LW_ROLE_PRIMARY, 3);
    size_t n = 0;
    assert_int_equal(lw_recovery_replace(&f->deps, ACCT, NULL, LW_END_RECOVERED, &p2, "ab", "Recovered.", &n),
                     LW_OK);
    assert_int_equal(n, 1);
    assert_int_equal(f->alerts, 1);
    lw_session s;
    assert_int_equal(lw_store_session_get(f->store, PHONE, &s), LW_OK);
    assert_string_equal(s.state, "ended");
    assert_string_equal(s.end_reason, LW_END_RECOVERED);
    assert_int_equal(lw_store_session_get(f->store, "acct-rec-p2", &s), LW_OK);
    assert_string_equal(s.state, "active");
    assert_string_equal(s.role, LW_ROLE_PRIMARY);
    lw_account a;
    assert_int_equal(lw_store_account_get(f->store, ACCT, &a), LW_OK);
    assert_string_equal(a.recovery_hash, "ab");

    /* A move: only the primary ends; the verifier stays. */
    lw_session p3;
    session(&p3, "acct-rec-p3", LW_ROLE_PRIMARY, 4);
    assert_int_equal(lw_recovery_replace(&f->deps, ACCT, LW_ROLE_PRIMARY, LW_END_MOVED, &p3, NULL, NULL, &n),
                     LW_OK);
    assert_int_equal(n, 1);
    assert_int_equal(f->alerts, 1);
    assert_int_equal(lw_store_session_get(f->store, "acct-rec-p2", &s), LW_OK);
    assert_string_equal(s.end_reason, LW_END_MOVED);
    assert_int_equal(lw_store_account_get(f->store, ACCT, &a), LW_OK);
    assert_string_equal(a.recovery_hash, "ab");
    lw_session *list = NULL;
    size_t k = 0;
    assert_int_equal(lw_store_session_list(f->store, ACCT, false, &list, &k), LW_OK);
    assert_int_equal(k, 1);
    assert_string_equal(list[0].id, "acct-rec-p3");
    lw_free(list);

    /* No such account: nothing changed. */
    lw_session p4;
    session(&p4, "acct-rec-p4", LW_ROLE_PRIMARY, 5);
    lw_strlcpy(p4.account_id, "nobody", sizeof p4.account_id);
    assert_int_equal(lw_recovery_replace(&f->deps, "nobody", NULL, LW_END_RECOVERED, &p4, NULL, NULL, &n),
                     LW_ENOTFOUND);
    assert_int_equal(lw_store_session_get(f->store, "acct-rec-p4", &s), LW_ENOTFOUND);
}

static void transfer(lw_transfer *t, const char *id, uint8_t code, int64_t expires_at)
{
    memset(t, 0, sizeof *t);
    lw_strlcpy(t->id, id, sizeof t->id);
    memset(t->token_hash, 1, sizeof t->token_hash);
    memset(t->code_hash, code, sizeof t->code_hash);
    memset(t->public_key, 9, sizeof t->public_key);
    lw_strlcpy(t->state, "pending", sizeof t->state);
    t->created_at = lw_now_ms();
    t->expires_at = expires_at;
}

static void test_transfer(void **state)
{
    fixture *f = *state;
    int64_t now = lw_now_ms();
    lw_transfer t, got;
    transfer(&t, "tr-1", 3, now + 60000);
    assert_int_equal(lw_store_transfer_insert(f->store, &t), LW_OK);
    uint8_t code[LW_HASH_LEN];
    memset(code, 3, sizeof code);
    assert_int_equal(lw_store_transfer_get_by_code(f->store, code, &got), LW_OK);
    assert_string_equal(got.id, "tr-1");
    assert_string_equal(got.state, "pending");
    assert_memory_equal(got.public_key, t.public_key, LW_PK_LEN);
    memset(code, 4, sizeof code);
    assert_int_equal(lw_store_transfer_get_by_code(f->store, code, &got), LW_ENOTFOUND);

    lw_session p2;
    session(&p2, "acct-rec-new", LW_ROLE_PRIMARY, 9);
    size_t n = 0;
    /* Not approved yet: nothing moves. */
    assert_int_equal(lw_recovery_claim(&f->deps, "tr-1", &p2, &n), LW_ECONFLICT);
    assert_int_equal(lw_store_transfer_approve(f->store, "tr-1", ACCT, now), LW_OK);
    assert_int_equal(lw_store_transfer_approve(f->store, "tr-1", ACCT, now), LW_ECONFLICT);
    assert_int_equal(lw_store_transfer_approve(f->store, "tr-none", ACCT, now), LW_ENOTFOUND);
    /* Claimed for another account than it was approved for: refused. */
    lw_session other = p2;
    lw_strlcpy(other.account_id, "another", sizeof other.account_id);
    assert_int_equal(lw_recovery_claim(&f->deps, "tr-1", &other, &n), LW_ECONFLICT);
    assert_int_equal(lw_recovery_claim(&f->deps, "tr-1", &p2, &n), LW_OK);
    assert_int_equal(n, 1);
    assert_int_equal(f->alerts, 1);
    lw_session s;
    assert_int_equal(lw_store_session_get(f->store, PHONE, &s), LW_OK);
    assert_string_equal(s.end_reason, LW_END_MOVED);
    assert_int_equal(lw_store_session_get(f->store, "acct-rec-new", &s), LW_OK);
    assert_string_equal(s.state, "active");
    assert_int_equal(lw_store_transfer_get(f->store, "tr-1", &got), LW_OK);
    assert_string_equal(got.state, "claimed");
    assert_string_equal(got.device_id, "acct-rec-new");
    assert_int_equal(lw_recovery_claim(&f->deps, "tr-1", &p2, &n), LW_ECONFLICT);

    /* An expired transfer can be neither approved nor claimed. */
    transfer(&t, "tr-2", 5, now - 1);
    assert_int_equal(lw_store_transfer_insert(f->store, &t), LW_OK);
    assert_int_equal(lw_store_transfer_approve(f->store, "tr-2", ACCT, now), LW_ECONFLICT);

    /* Re-signing touches active companions of the account only. */
    uint8_t sig[LW_SIG_LEN];
    memset(sig, 6, sizeof sig);
    assert_int_equal(lw_store_session_set_account_sig(f->store, ACCT, "acct-rec-new", sig), LW_ENOTFOUND);
    assert_int_equal(lw_store_session_set_account_sig(f->store, ACCT, "nobody", sig), LW_ENOTFOUND);
}

int main(void)
{
    print_message("[   NOTE   ] store: %s\n", fx_backend_name());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_parse),
        cmocka_unit_test_setup_teardown(test_hash_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
