/* Unit tests for crypto.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"
#include "lw.h"

static int setup(void **state)
{
    (void)state;
    return lw_crypto_init() == LW_OK ? 0 : -1;
}

static void test_init_twice(void **state)
{
    (void)state;
    assert_int_equal(lw_crypto_init(), LW_OK);
}

static void test_random(void **state)
{
    (void)state;
    uint8_t a[32] = {0}, b[32] = {0}, zero[32] = {0};
    lw_random(a, sizeof a);
    lw_random(b, sizeof b);
    assert_memory_not_equal(a, zero, sizeof a);
    assert_memory_not_equal(a, b, sizeof a);
}

static void test_random_id(void **state)
{
    (void)state;
    char a[LW_ID_STRLEN], b[LW_ID_STRLEN];
    lw_random_id(a);
    lw_random_id(b);
    assert_int_equal(strlen(a), 22);
    assert_string_not_equal(a, b);
    uint8_t raw[LW_ID_BYTES];
    assert_int_equal(lw_b64_decode(raw, sizeof raw, a, 22, LW_ID_BYTES), LW_ID_BYTES);
}

/* Known answer: BLAKE2b-256 of 32 zero bytes, from Python's hashlib.blake2b. */
#define EXPECTED_ZERO_FP "89eb0d6a8a691dae2cd15ed0369931ce0a949ecafa5c3f93f8121833646e15c3"

static void test_fingerprint_known(void **state)
{
    (void)state;
    uint8_t pk[LW_PK_LEN];
    for (int i = 0; i < LW_PK_LEN; i++)
        pk[i] = (uint8_t)i;
    uint8_t fp[LW_FP_LEN], fp2[LW_FP_LEN];
    lw_fingerprint(fp, pk);
    lw_fingerprint(fp2, pk);
    assert_memory_equal(fp, fp2, LW_FP_LEN);
    pk[0] ^= 1;
    lw_fingerprint(fp2, pk);
    assert_memory_not_equal(fp, fp2, LW_FP_LEN);

    char hex[2 * LW_FP_LEN + 1];
    uint8_t zero_pk[LW_PK_LEN] = {0};
    lw_fingerprint(fp, zero_pk);
    lw_hex_encode(hex, fp, LW_FP_LEN);
    assert_string_equal(hex, EXPECTED_ZERO_FP);
}

static void test_fingerprint_human(void **state)
{
    (void)state;
    uint8_t fp[LW_FP_LEN];
    for (int i = 0; i < LW_FP_LEN; i++)
        fp[i] = (uint8_t)(0x10 * (i % 16) + i % 16);
    char h[LW_FP_HUMAN_LEN];
    lw_fingerprint_human(h, fp);
    assert_string_equal(h, "0011 2233 4455 6677 8899 aabb ccdd eeff");
}

static void test_keyed_hash(void **state)
{
    (void)state;
    uint8_t k1[LW_KEY_LEN], k2[LW_KEY_LEN];
    memset(k1, 1, sizeof k1);
    memset(k2, 2, sizeof k2);
    uint8_t h1[LW_HASH_LEN], h1b[LW_HASH_LEN], h2[LW_HASH_LEN], h3[LW_HASH_LEN];
    lw_keyed_hash(h1, k1, "secret", 6);
    lw_keyed_hash(h1b, k1, "secret", 6);
    lw_keyed_hash(h2, k2, "secret", 6);
    lw_keyed_hash(h3, k1, "secreT", 6);
    assert_memory_equal(h1, h1b, LW_HASH_LEN);
    char hex[2 * LW_HASH_LEN + 1];
    lw_hex_encode(hex, h1, LW_HASH_LEN); /* hashlib.blake2b(b"secret", key=b"\x01"*32, digest_size=32) */
    assert_string_equal(hex, "a53e6cfe5903f7fede9cef29d0ab17895937abb58b03e3e00c953d9f79f21485");
    assert_memory_not_equal(h1, h2, LW_HASH_LEN);
    assert_memory_not_equal(h1, h3, LW_HASH_LEN);
    /* Keyed differs from the unkeyed fingerprint construction. */
    uint8_t pk[LW_PK_LEN] = {0}, fp[LW_FP_LEN];
    lw_fingerprint(fp, pk);
    lw_keyed_hash(h1, k1, pk, sizeof pk);
    assert_memory_not_equal(h1, fp, LW_HASH_LEN);
}

static void test_sign_verify(void **state)
{
    (void)state;
    uint8_t pk[LW_PK_LEN], sk[LW_SK_LEN], pk2[LW_PK_LEN], sk2[LW_SK_LEN];
    assert_int_equal(lw_sign_keypair(pk, sk), LW_OK);
    assert_int_equal(lw_sign_keypair(pk2, sk2), LW_OK);
    assert_memory_not_equal(pk, pk2, LW_PK_LEN);
    assert_memory_equal(sk + 32, pk, LW_PK_LEN); /* libsodium layout: seed || pk */

    const char msg[] = "linkward-link-v1\0id\0nonce";
    uint8_t sig[LW_SIG_LEN];
    lw_sign(sig, msg, sizeof msg, sk);
    assert_int_equal(lw_verify(sig, msg, sizeof msg, pk), LW_OK);
    assert_int_equal(lw_verify(sig, msg, sizeof msg - 1, pk), LW_ECRYPTO);
    assert_int_equal(lw_verify(sig, msg, sizeof msg, pk2), LW_ECRYPTO);
    for (size_t i = 0; i < LW_SIG_LEN; i++) {
        sig[i] ^= 0x01;
        assert_int_equal(lw_verify(sig, msg, sizeof msg, pk), LW_ECRYPTO);
        sig[i] ^= 0x01;
    }
    char m2[sizeof msg];
    memcpy(m2, msg, sizeof msg);
    m2[3] ^= 0x20;
    assert_int_equal(lw_verify(sig, m2, sizeof m2, pk), LW_ECRYPTO);
    /* Ed25519 is deterministic. */
    uint8_t sig2[LW_SIG_LEN];
    lw_sign(sig2, msg, sizeof msg, sk);
    assert_memory_equal(sig, sig2, LW_SIG_LEN);
    /* An all-zero key is rejected, not accepted. */
    uint8_t zero_pk[LW_PK_LEN] = {0}, zero_sig[LW_SIG_LEN] = {0};
    assert_int_equal(lw_verify(zero_sig, msg, sizeof msg, zero_pk), LW_ECRYPTO);
    lw_wipe(sk, sizeof sk);
    lw_wipe(sk2, sizeof sk2);
}

static void test_ct_equal_wipe(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    memset(a, 7, sizeof a);
    memset(b, 7, sizeof b);
    assert_int_equal(lw_ct_equal(a, b, sizeof a), 1);
    b[31] = 8;
    assert_int_equal(lw_ct_equal(a, b, sizeof a), 0);
    assert_int_equal(lw_ct_equal(a, b, 31), 1);
    lw_wipe(a, sizeof a);
    uint8_t zero[32] = {0};
    assert_memory_equal(a, zero, sizeof a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_twice),        cmocka_unit_test(test_random),
        cmocka_unit_test(test_random_id),         cmocka_unit_test(test_fingerprint_known),
        cmocka_unit_test(test_fingerprint_human), cmocka_unit_test(test_keyed_hash),
        cmocka_unit_test(test_sign_verify),       cmocka_unit_test(test_ct_equal_wipe),
    };
    return cmocka_run_group_tests_name("crypto", tests, setup, NULL);
}
