/* The rate-limit tables (src/server/domain/rate.c): bounded per (rule, scope), the
 * least recently used bucket makes room instead of a newcomer being refused,
 * and IPv6 clients count by their network prefix. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"
#include "lw.h"
#include "rate.h"

#define KEYS 16 /* LW_RATE_TABLE_KEYS_MIN: the smallest table */

static const lw_rate_rule REGISTER = {"register", 1.0 / 60, 2}; /* 2 at once, then one a minute */
static const lw_rate_rule REFRESH = {"refresh", 1.0 / 60, 2};

static int setup(void **state)
{
    assert_int_equal(lw_crypto_init(), LW_OK);
    lw_rates *r = lw_rates_new(KEYS);
    assert_non_null(r);
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    lw_rates_free(*state);
    return 0;
}

static void ip(char out[32], int i)
{
    snprintf(out, 32, "198.51.%d.%d", i / 250, i % 250 + 1);
}

/* The defect: a table holding its bound refused every new key (429 for
 * strangers). Now a newcomer always gets its burst. */
static void test_full_table_admits_newcomers(void **state)
{
    lw_rates *r = *state;
    char a[32];
    for (int i = 0; i < 10 * KEYS; i++) {
        ip(a, i);
        assert_int_equal(lw_rates_take(r, &REGISTER, "ip", a, 1000), 0);
    }
    assert_int_equal(lw_rates_count(r), KEYS); /* the bound holds */
    assert_int_equal(lw_rates_take(r, &REGISTER, "ip", "203.0.113.9", 1000), 0);
    assert_int_equal(lw_rates_take(r, &REGISTER, "ip", "203.0.113.9", 1000), 0);
    assert_true(lw_rates_take(r, &REGISTER, "ip", "203.0.113.9", 1000) > 0); /* its own limit still holds */
    lw_rate_table_stats st[LW_RATE_TABLES_MAX];
    assert_int_equal(lw_rates_stats(r, st, LW_RATE_TABLES_MAX), 1);
    assert_string_equal(st[0].rule, "register");
    assert_string_equal(st[0].scope, "ip");
    assert_int_equal(st[0].keys, KEYS);
    assert_int_equal(st[0].evicted, 10 * KEYS + 1 - KEYS);
}

/* The least recently used bucket goes first: one used again stays. */
static void test_eviction_order(void **state)
{
    lw_rates *r = *state;
    char a[32];
    for (int i = 0; i < KEYS; i++) {
        ip(a, i);
        assert_int_equal(lw_rates_take(r, &REGISTER, "ip", a, 1000), 0);
        assert_int_equal(lw_rates_take(r, &REGISTER, "ip", a, 1000), 0); /* now empty */
    }
    /* Key 0 is the oldest; touching it makes key 1 the oldest. */
    ip(a, 0);
    assert_true(lw_rates_take(r, &REGISTER, "ip", a, 1000) > 0);
    assert_int_equal(lw_rates_take(r, &REGISTER, "ip", "203.0.113.1", 1000), 0); /* evicts key 1 */
    ip(a, 0);
    assert_true(lw_rates_take(r, &REGISTER, "ip", a, 1000) > 0); /* still remembered: still empty */
    /* An evicted key starts fresh: a whole burst again. */
    ip(a, 1);
    assert_int_equal(lw_rates_take(r, &REGISTER, "ip", a, 1000), 0);
    assert_int_equal(lw_rates_take(r, &REGISTER, "ip", a, 1000), 0);
    assert_true(lw_rates_take(r, &REGISTER, "ip", a, 1000) > 0);
    ip(a, 2); /* evicted when key 1 came back */
    assert_int_equal(lw_rates_take(r, &REGISTER, "ip", a, 1000), 0);
    assert_int_equal(lw_rates_count(r), KEYS);
}

/* Each (rule, scope) has its own table and bound: a flood of addresses in
 * one rule forgets nothing of another, and never a device's refresh bucket. */
static void test_tables_per_rule(void **state)
{
    lw_rates *r = *state;
    assert_int_equal(lw_rates_take(r, &REFRESH, "device", "dev-A", 1000), 0);
    assert_int_equal(lw_rates_take(r, &REFRESH, "device", "dev-A", 1000), 0);
    assert_true(lw_rates_take(r, &REFRESH, "device", "dev-A", 1000) > 0);
    assert_int_equal(lw_rates_take(r, &REGISTER, "acct", "acct-A", 1000), 0);
    char a[32];
    for (int i = 0; i < 50 * KEYS; i++) {
        ip(a, i);
        lw_rates_take(r, &REGISTER, "ip", a, 1000);
    }
    /* dev-A is remembered (still empty), so it was not evicted by the flood. */
    assert_true(lw_rates_take(r, &REFRESH, "device", "dev-A", 1000) > 0);
    lw_rate_table_stats st[LW_RATE_TABLES_MAX];
    size_t n = lw_rates_stats(r, st, LW_RATE_TABLES_MAX);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_true(st[i].keys <= KEYS);
        if (strcmp(st[i].rule, "register") == 0 && strcmp(st[i].scope, "ip") == 0)
            assert_int_equal(st[i].keys, KEYS);
        else
            assert_int_equal(st[i].evicted, 0);
    }
    /* The same id in another scope or rule is another bucket. */
    assert_int_equal(lw_rates_take(r, &REGISTER, "device", "dev-A", 1000), 0);
    /* Past the number of tables: not limited (and logged), never refused. */
    static const char *const scopes[] = {"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7",
                                         "s8", "s9", "sa", "sb", "sc", "sd", "se", "sf"};
    for (size_t i = 0; i < sizeof scopes / sizeof scopes[0]; i++)
        for (int k = 0; k < 5; k++)
            assert_int_equal(lw_rates_take(r, &REGISTER, scopes[i], "x", 1000) > 0,
                             i < LW_RATE_TABLES_MAX - 4 && k >= 2);
    assert_int_equal(lw_rates_stats(r, st, LW_RATE_TABLES_MAX), LW_RATE_TABLES_MAX);
}

static void test_refill_and_prune(void **state)
{
    lw_rates *r = *state;
    assert_int_equal(lw_rates_take(r, &REGISTER, "ip", "a", 0), 0);
    assert_int_equal(lw_rates_take(r, &REGISTER, "ip", "a", 0), 0);
    assert_int_equal(lw_rates_take(r, &REGISTER, "ip", "a", 0), 60000); /* a minute for the next */
    assert_int_equal(lw_rates_take(r, &REGISTER, "ip", "a", 60000), 0);
    assert_int_equal(lw_rates_take(r, &REGISTER, "ip", "b", 60000), 0);
    lw_rates_prune(r, 60000);
    assert_int_equal(lw_rates_count(r), 2); /* neither is full yet */
    lw_rates_prune(r, 60000 + 60000);       /* b is full again; a needs another minute */
    assert_int_equal(lw_rates_count(r), 1);
    lw_rates_prune(r, 60000 + 120000);
    assert_int_equal(lw_rates_count(r), 0);
    /* A disabled rule takes nothing and tracks nothing. */
    static const lw_rate_rule off = {"csp", 0, 0};
    assert_int_equal(lw_rates_take(r, &off, "ip", "a", 0), 0);
    assert_int_equal(lw_rates_count(r), 0);
}

static void test_bound_clamped(void **state)
{
    lw_rates *r = lw_rates_new(1);
    assert_non_null(r);
    char a[32];
    for (int i = 0; i < 100; i++) {
        ip(a, i);
        assert_int_equal(lw_rates_take(r, &REGISTER, "ip", a, 0), 0);
    }
    assert_int_equal(lw_rates_count(r), LW_RATE_TABLE_KEYS_MIN);
    lw_rates_free(r);
}

/* A long id is cut, not refused or overflowed. */
static void test_long_id(void **state)
{
    lw_rates *r = *state;
    char id[300];
    memset(id, 'x', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    assert_int_equal(lw_rates_take(r, &REGISTER, "ip", id, 0), 0);
    id[200] = 'y'; /* beyond the cut: the same bucket */
    assert_int_equal(lw_rates_take(r, &REGISTER, "ip", id, 0), 0);
    assert_true(lw_rates_take(r, &REGISTER, "ip", id, 0) > 0);
}

/* Out of memory: the request is allowed and nothing is half-made. */
static void test_out_of_memory(void **state)
{
    lw_rates *r = *state;
    assert_int_equal(lw_rates_take(r, &REGISTER, "ip", "a", 0), 0); /* makes the table */
    lw_alloc_fail_after(0);
    assert_int_equal(lw_rates_take(r, &REGISTER, "ip", "b", 0), 0);
    lw_alloc_fail_after(-1);
    assert_int_equal(lw_rates_count(r), 1);
    assert_int_equal(lw_rates_take(r, &REGISTER, "ip", "b", 0), 0);
    assert_int_equal(lw_rates_count(r), 2);
}

static void addr(const char *in, int prefix, const char *want)
{
    char out[LW_RATE_ID_MAX];
    assert_int_equal(lw_rates_addr_key(in, prefix, out, sizeof out), LW_OK);
    assert_string_equal(out, want);
}

static void test_ipv6_prefix(void **state)
{
    addr("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64, "2001:db8:1:2::/64");
    addr("2001:db8:1:2::1", 64, "2001:db8:1:2::/64");
    addr("2001:DB8:1:2:0:0:0:ffff", 64, "2001:db8:1:2::/64");
    addr("2001:db8:1:3::1", 64, "2001:db8:1:3::/64");
    addr("2001:db8:1:2:aaaa::1", 56, "2001:db8:1::/56");
    addr("2001:db8:1:2ff:aaaa::1", 56, "2001:db8:1:200::/56");
    addr("2001:db8:1:2:aaaa::1", 128, "2001:db8:1:2:aaaa::1");
    addr("2001:db8:1:2:aaaa::1", 127, "2001:db8:1:2:aaaa::/127");
    addr("198.51.100.7", 64, "198.51.100.7");
    addr("::ffff:198.51.100.7", 64, "198.51.100.7"); /* the same IPv4 client */
    addr("", 64, "");
    addr("not an address", 64, "not an address");
    char out[LW_RATE_ID_MAX];
    assert_int_equal(lw_rates_addr_key("2001:db8::1", 15, out, sizeof out), LW_EINVAL);
    assert_int_equal(lw_rates_addr_key("2001:db8::1", 129, out, sizeof out), LW_EINVAL);
    char small[8];
    assert_int_equal(lw_rates_addr_key("2001:db8:1:2::1", 64, small, sizeof small), LW_ETOOBIG);
    assert_string_equal(small, "");

    /* Many addresses of one /64 are one client to the limiter. */
    lw_rates *r = *state;
    char a[64], k[LW_RATE_ID_MAX];
    int allowed = 0;
    for (int i = 0; i < 100; i++) {
        snprintf(a, sizeof a, "2001:db8:7:7:%x::%x", i, i + 1);
        assert_int_equal(lw_rates_addr_key(a, LW_RATE_IPV6_PREFIX_DEFAULT, k, sizeof k), LW_OK);
        allowed += lw_rates_take(r, &REGISTER, "ip", k, 0) == 0;
    }
    assert_int_equal(allowed, 2);
    assert_int_equal(lw_rates_count(r), 1);
}

static void test_rule_parse(void **state)
{
    lw_rate_rule rr = {"x", 0, 0};
    assert_int_equal(lw_rate_rule_parse("30/m", &rr), LW_OK);
    assert_true(rr.burst == 30 && rr.per_second == 0.5);
    assert_int_equal(lw_rate_rule_parse("0", &rr), LW_OK);
    assert_true(rr.burst == 0);
    assert_int_equal(lw_rate_rule_parse("5/d", &rr), LW_EINVAL);
    assert_int_equal(lw_rate_rule_parse("", &rr), LW_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_table_admits_newcomers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eviction_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tables_per_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refill_and_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bound_clamped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6_prefix, setup, teardown),
        cmocka_unit_test(test_rule_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
