/* The relay's health rule (relay.h): when a node may trust its session cache
 * without reading the store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "relay.h"

static void test_never_heard(void **state)
{
    (void)state;
    /* At start nothing was heard: the cache is not trusted. */
    assert_false(lw_relay_heard_recently(0, 1, 0, 1000));
    assert_false(lw_relay_heard_recently(1, 1, 0, 1000));
    /* A NULL relay (no LISTEN at all) is never healthy. */
    assert_false(lw_relay_healthy(NULL, lw_mono_ms()));
}

static void test_horizon(void **state)
{
    (void)state;
    int64_t sent = 100000;
    assert_true(lw_relay_heard_recently(3, 3, sent, sent));
    assert_true(lw_relay_heard_recently(3, 3, sent, sent + LW_RELAY_HEARTBEAT_MS));
    assert_true(lw_relay_heard_recently(3, 3, sent, sent + LW_RELAY_HEALTHY_MS - 1));
    /* The horizon counts from when the heartbeat was sent, and ends on it. */
    assert_false(lw_relay_heard_recently(3, 3, sent, sent + LW_RELAY_HEALTHY_MS));
    assert_false(lw_relay_heard_recently(3, 3, sent, sent + 10 * LW_RELAY_HEALTHY_MS));
    /* A clock that ran backwards (it should not: monotonic) proves nothing. */
    assert_false(lw_relay_heard_recently(3, 3, sent, sent - 1));
}

static void test_lost_connection(void **state)
{
    (void)state;
    int64_t sent = 100000;
    /* A heartbeat of a connection since lost vouches for nothing, however recent. */
    assert_false(lw_relay_heard_recently(3, 4, sent, sent + 1));
    assert_false(lw_relay_heard_recently(4, 3, sent, sent + 1));
}

static void test_constants(void **state)
{
    (void)state;
    /* Several heartbeats fit in the horizon: one late one does not flap the cache. */
    assert_true(LW_RELAY_HEALTHY_MS >= 2 * LW_RELAY_HEARTBEAT_MS);
    int64_t a = lw_mono_ms(), b = lw_mono_ms();
    assert_true(a > 0 && b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_never_heard),
        cmocka_unit_test(test_horizon),
        cmocka_unit_test(test_lost_connection),
        cmocka_unit_test(test_constants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
