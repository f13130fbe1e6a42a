/* PIN rules: format, lockout arithmetic, peppered Argon2id hashing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"
#include "lw.h"
#include "pin.h"

static void test_valid(void **state)
{
    assert_true(lw_pin_valid("123456"));
    assert_true(lw_pin_valid("000000"));
    assert_false(lw_pin_valid("12345"));
    assert_false(lw_pin_valid("1234567"));
    assert_false(lw_pin_valid("12345a"));
    assert_false(lw_pin_valid(" 12345"));
    assert_false(lw_pin_valid(""));
    assert_false(lw_pin_valid(NULL));
}

static void test_lock_duration(void **state)
{
    const int64_t min = 60 * 1000;
    /* Nine wrong PINs: no lockout yet. */
    for (int f = 0; f < 10; f++)
        assert_int_equal(lw_pin_lock_duration(f, 10, min), 0);
    /* The tenth locks for the base time, and each further one doubles it. */
    assert_int_equal(lw_pin_lock_duration(10, 10, min), min);
    assert_int_equal(lw_pin_lock_duration(11, 10, min), 2 * min);
    assert_int_equal(lw_pin_lock_duration(12, 10, min), 4 * min);
    assert_int_equal(lw_pin_lock_duration(15, 10, min), 32 * min);
    /* It never passes the cap, even after absurdly many failures (no overflow). */
    assert_int_equal(lw_pin_lock_duration(40, 10, min), LW_PIN_LOCK_CAP_MS);
    assert_int_equal(lw_pin_lock_duration(1000000, 10, min), LW_PIN_LOCK_CAP_MS);
    /* A base of zero disables lockouts. */
    assert_int_equal(lw_pin_lock_duration(20, 10, 0), 0);
    /* A small test base doubles the same way. */
    assert_int_equal(lw_pin_lock_duration(11, 10, 1000), 2000);
}

static void test_hash_and_check(void **state)
{
    uint8_t key[LW_KEY_LEN], other[LW_KEY_LEN];
    lw_random(key, sizeof key);
    lw_random(other, sizeof other);
    char hash[128];
    assert_int_equal(lw_pin_hash(key, "acct-1", "123456", hash), LW_OK);
    /* Argon2id in libsodium's string format; the PIN itself is nowhere in it. */
    assert_non_null(strstr(hash, "$argon2id$"));
    assert_null(strstr(hash, "123456"));
    assert_int_equal(lw_pin_check(key, "acct-1", "123456", hash), LW_OK);
    assert_int_equal(lw_pin_check(key, "acct-1", "123457", hash), LW_EDENIED);
    /* The pepper binds the hash to the account and to the server key. */
    assert_int_equal(lw_pin_check(key, "acct-2", "123456", hash), LW_EDENIED);
    assert_int_equal(lw_pin_check(other, "acct-1", "123456", hash), LW_EDENIED);
    /* Salted: the same PIN hashes differently each time. */
    char hash2[128];
    assert_int_equal(lw_pin_hash(key, "acct-1", "123456", hash2), LW_OK);
    assert_string_not_equal(hash, hash2);
    /* Malformed PINs are refused without hashing; a broken hash never matches. */
    assert_int_equal(lw_pin_hash(key, "acct-1", "12345", hash2), LW_EINVAL);
    assert_int_equal(lw_pin_check(key, "acct-1", "abcdef", hash), LW_EDENIED);
    assert_int_equal(lw_pin_check(key, "acct-1", "123456", ""), LW_EDENIED);
    assert_int_equal(lw_pin_check(key, "acct-1", "123456", "$argon2id$garbage"), LW_EDENIED);
}

int main(void)
{
    lw_crypto_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_lock_duration),
        cmocka_unit_test(test_hash_and_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
