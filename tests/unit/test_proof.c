/* Unit tests for proof.c: the signed messages, against the known answers of
 * tests/vectors/proof.json (integration.proof_vectors holds web/js/proof.mjs
 * to the same file), and the bounds of the builder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "crypto.h"
#include "lw.h"
#include "proof.h"

#ifndef LW_PROOF_VECTORS
#error "LW_PROOF_VECTORS must name tests/vectors/proof.json (CMakeLists.txt)"
#endif

/* More than any raw value or message of the vectors (LW_PROOF_MAX at most). */
#define HEX_MAX 1024

static json_t *vectors;
static uint8_t pk[LW_PK_LEN], sk[LW_SK_LEN];

static int setup(void **state)
{
    (void)state;
    if (lw_crypto_init() != LW_OK)
        return -1;
    json_error_t err;
    vectors = json_load_file(LW_PROOF_VECTORS, 0, &err);
    if (vectors == NULL) {
        fprintf(stderr, "%s:%d: %s\n", LW_PROOF_VECTORS, err.line, err.text);
        return -1;
    }
    uint8_t seed[crypto_sign_SEEDBYTES];
    const char *s = json_string_value(json_object_get(vectors, "seed"));
    if (s == NULL || sodium_hex2bin(seed, sizeof seed, s, strlen(s), NULL, NULL, NULL) != 0)
        return -1;
    return crypto_sign_seed_keypair(pk, sk, seed);
}

static int teardown(void **state)
{
    (void)state;
    json_decref(vectors);
    return 0;
}

/* The field name of v decoded from hex into dst; its length. */
static size_t unhex(uint8_t *dst, size_t cap, json_t *v, const char *name)
{
    const char *s = json_string_value(json_object_get(v, name));
    assert_non_null(s);
    size_t n = 0;
    assert_int_equal(sodium_hex2bin(dst, cap, s, strlen(s), NULL, &n, NULL), 0);
    return n;
}

/* The kind whose domain is v's "domain"; LW_PROOF_KINDS if none is. */
static lw_proof_kind kind_of(json_t *v)
{
    const char *d = json_string_value(json_object_get(v, "domain"));
    assert_non_null(d);
    for (int k = 0; k < LW_PROOF_KINDS; k++)
        if (strcmp(lw_proof_domain((lw_proof_kind)k), d) == 0)
            return (lw_proof_kind)k;
    return LW_PROOF_KINDS;
}

static const char *text_of(json_t *v)
{
    const char *t = json_string_value(json_object_get(v, "text"));
    assert_non_null(t);
    return t;
}

static void test_vector_key(void **state)
{
    (void)state;
    uint8_t want[LW_PK_LEN];
    assert_int_equal(unhex(want, sizeof want, vectors, "public_key"), LW_PK_LEN);
    assert_memory_equal(pk, want, LW_PK_LEN);
}

/* Every kind has a vector, and every vector's domain is a kind. */
static void test_vectors_cover_every_kind(void **state)
{
    (void)state;
    bool seen[LW_PROOF_KINDS] = {false};
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(vectors, "valid"), i, v)
    {
        lw_proof_kind k = kind_of(v);
        assert_true(k < LW_PROOF_KINDS);
        seen[k] = true;
    }
    for (int k = 0; k < LW_PROOF_KINDS; k++)
        assert_true(seen[k]);
    assert_null(lw_proof_domain(LW_PROOF_KINDS));
    assert_int_equal(lw_proof_raw_len(LW_PROOF_KINDS), 0);
}

static void test_known_messages(void **state)
{
    (void)state;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(vectors, "valid"), i, v)
    {
        uint8_t raw[HEX_MAX], want[HEX_MAX], msg[LW_PROOF_MAX];
        size_t rlen = unhex(raw, sizeof raw, v, "raw"), wlen = unhex(want, sizeof want, v, "message"),
               len = 0;
        lw_proof_kind k = kind_of(v);
        assert_int_equal(rlen, lw_proof_raw_len(k));
        assert_int_equal(lw_proof_build(msg, sizeof msg, &len, k, text_of(v), raw, rlen), LW_OK);
        assert_int_equal(len, wlen);
        assert_memory_equal(msg, want, wlen);
        /* A buffer of exactly that length is enough; one byte less is refused. */
        uint8_t exact[LW_PROOF_MAX];
        size_t elen = 0;
        assert_int_equal(lw_proof_build(exact, wlen, &elen, k, text_of(v), raw, rlen), LW_OK);
        assert_int_equal(elen, wlen);
        assert_int_equal(lw_proof_build(exact, wlen - 1, &elen, k, text_of(v), raw, rlen), LW_ETOOBIG);
    }
}

static void test_known_signatures(void **state)
{
    (void)state;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(vectors, "valid"), i, v)
    {
        uint8_t raw[HEX_MAX], want[LW_SIG_LEN], sig[LW_SIG_LEN];
        size_t rlen = unhex(raw, sizeof raw, v, "raw");
        assert_int_equal(unhex(want, sizeof want, v, "signature"), LW_SIG_LEN);
        lw_proof_kind k = kind_of(v);
        assert_int_equal(lw_proof_sign(sig, k, text_of(v), raw, rlen, sk), LW_OK);
        assert_memory_equal(sig, want, LW_SIG_LEN);
        assert_int_equal(lw_proof_verify(want, k, text_of(v), raw, rlen, pk), LW_OK);
        /* The domain is what keeps a signature to its purpose: under any
         * other kind of the same raw length it does not verify. */
        for (int o = 0; o < LW_PROOF_KINDS; o++)
            if (o != (int)k && lw_proof_raw_len((lw_proof_kind)o) == rlen)
                assert_int_equal(lw_proof_verify(want, (lw_proof_kind)o, text_of(v), raw, rlen, pk),
                                 LW_ECRYPTO);
        raw[0] ^= 1;
        assert_int_equal(lw_proof_verify(want, k, text_of(v), raw, rlen, pk), LW_ECRYPTO);
    }
}

static void test_refused(void **state)
{
    (void)state;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(vectors, "refused"), i, v)
    {
        const char *e = json_string_value(json_object_get(v, "error"));
        assert_non_null(e);
        int want = strcmp(e, "too_big") == 0 ? LW_ETOOBIG : LW_EINVAL;
        assert_true(want == LW_ETOOBIG || strcmp(e, "invalid") == 0);
        uint8_t raw[HEX_MAX], msg[LW_PROOF_MAX], sig[LW_SIG_LEN];
        size_t rlen = unhex(raw, sizeof raw, v, "raw");
        lw_proof_kind k = kind_of(v);
        /* Nothing is written on a refusal, in the buffer or the length. */
        memset(msg, 0xa5, sizeof msg);
        size_t len = 7;
        assert_int_equal(lw_proof_build(msg, sizeof msg, &len, k, text_of(v), raw, rlen), want);
        assert_int_equal(len, 7);
        for (size_t j = 0; j < sizeof msg; j++)
            assert_int_equal(msg[j], 0xa5);
        assert_int_equal(lw_proof_sign(sig, k, text_of(v), raw, rlen, sk), want);
        assert_int_equal(lw_proof_verify(sig, k, text_of(v), raw, rlen, pk), want);
    }
}

/* The limits, crossed by one byte, independently of the vectors. */
static void test_bounds(void **state)
{
    (void)state;
    char id[LW_PROOF_ORIGIN_MAX + 2];
    uint8_t raw[LW_PROOF_QR_RAW_LEN] = {0}, msg[LW_PROOF_MAX];
    size_t len;
    memset(id, 'A', sizeof id - 1);
    id[sizeof id - 1] = '\0';

    id[LW_PROOF_ID_MAX] = '\0';
    assert_int_equal(lw_proof_build(msg, sizeof msg, &len, LW_PROOF_REFRESH, id, raw, LW_PROOF_RAW_LEN),
                     LW_OK);
    assert_int_equal(len, sizeof "linkward-refresh-v1" + LW_PROOF_ID_MAX + 1 + LW_PROOF_RAW_LEN);
    id[LW_PROOF_ID_MAX] = 'A';
    id[LW_PROOF_ID_MAX + 1] = '\0';
    assert_int_equal(lw_proof_build(msg, sizeof msg, &len, LW_PROOF_REFRESH, id, raw, LW_PROOF_RAW_LEN),
                     LW_ETOOBIG);
    id[LW_PROOF_ID_MAX + 1] = 'A';

    /* The longest message of all fits LW_PROOF_MAX exactly. */
    id[LW_PROOF_ORIGIN_MAX] = '\0';
    assert_int_equal(lw_proof_build(msg, sizeof msg, &len, LW_PROOF_QR, id, raw, sizeof raw), LW_OK);
    assert_int_equal(len, sizeof "linkward-qr-v1" + LW_PROOF_ORIGIN_MAX + 1 + LW_PROOF_QR_RAW_LEN);
    assert_true(len <= LW_PROOF_MAX);
    id[LW_PROOF_ORIGIN_MAX] = 'A';
    assert_int_equal(lw_proof_build(msg, sizeof msg, &len, LW_PROOF_QR, id, raw, sizeof raw), LW_ETOOBIG);

    assert_int_equal(lw_proof_build(msg, sizeof msg, &len, LW_PROOF_LINK, "", raw, LW_PROOF_RAW_LEN),
                     LW_EINVAL);
    assert_int_equal(lw_proof_build(NULL, sizeof msg, &len, LW_PROOF_LINK, "a", raw, LW_PROOF_RAW_LEN),
                     LW_EINVAL);
    assert_int_equal(lw_proof_build(msg, sizeof msg, NULL, LW_PROOF_LINK, "a", raw, LW_PROOF_RAW_LEN),
                     LW_EINVAL);
    assert_int_equal(lw_proof_build(msg, sizeof msg, &len, LW_PROOF_LINK, NULL, raw, LW_PROOF_RAW_LEN),
                     LW_EINVAL);
    assert_int_equal(lw_proof_build(msg, sizeof msg, &len, LW_PROOF_LINK, "a", NULL, LW_PROOF_RAW_LEN),
                     LW_EINVAL);
    assert_int_equal(lw_proof_build(msg, sizeof msg, &len, (lw_proof_kind)-1, "a", raw, LW_PROOF_RAW_LEN),
                     LW_EINVAL);
    assert_int_equal(lw_proof_build(msg, 0, &len, LW_PROOF_LINK, "a", raw, LW_PROOF_RAW_LEN), LW_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_key),     cmocka_unit_test(test_vectors_cover_every_kind),
        cmocka_unit_test(test_known_messages), cmocka_unit_test(test_known_signatures),
        cmocka_unit_test(test_refused),        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests_name("proof", tests, setup, teardown);
}
