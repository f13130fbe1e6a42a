/* Unit tests for payload.c: the signed QR payload. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"
#include "lw.h"
#include "payload.h"
#include "proof.h"

#define ORIGIN "https://link.example.org"

static uint8_t server_pk[LW_PK_LEN], server_sk[LW_SK_LEN];
static uint8_t other_pk[LW_PK_LEN], other_sk[LW_SK_LEN];
static uint8_t ref[LW_ID_BYTES], fp[LW_FP_LEN];

static int setup(void **state)
{
    (void)state;
    if (lw_crypto_init() != LW_OK || lw_sign_keypair(server_pk, server_sk) != LW_OK ||
        lw_sign_keypair(other_pk, other_sk) != LW_OK)
        return -1;
    lw_random(ref, sizeof ref);
    uint8_t device_pk[LW_PK_LEN], device_sk[LW_SK_LEN];
    lw_sign_keypair(device_pk, device_sk);
    lw_fingerprint(fp, device_pk);
    return 0;
}

static void make(char *dst, const char *origin)
{
    assert_int_equal(lw_payload_make(dst, LW_PAYLOAD_MAX, origin, ref, fp, server_sk), LW_OK);
}

static void test_roundtrip(void **state)
{
    (void)state;
    char s[LW_PAYLOAD_MAX];
    make(s, ORIGIN);
    assert_memory_equal(s, "lw1:", 4);
    lw_payload p;
    assert_int_equal(lw_payload_parse(&p, s, strlen(s)), LW_OK);
    assert_string_equal(p.origin, ORIGIN);
    assert_memory_equal(p.ref, ref, sizeof ref);
    assert_memory_equal(p.fp, fp, sizeof fp);
    assert_int_equal(lw_payload_verify(&p, server_pk), LW_OK);
    /* Field lengths: 22, 43 and 86 characters of base64url. */
    const char *d1 = strchr(s, '.'), *d2 = strchr(d1 + 1, '.'), *d3 = strchr(d2 + 1, '.');
    assert_int_equal(d2 - d1 - 1, 22);
    assert_int_equal(d3 - d2 - 1, 43);
    assert_int_equal(strlen(d3 + 1), 86);
}

/* The signed message is exactly the documented one: rebuild it here and
 * check the parsed signature against it independently of payload.c. */
static void test_signed_message_layout(void **state)
{
    (void)state;
    char s[LW_PAYLOAD_MAX];
    make(s, ORIGIN);
    lw_payload p;
    assert_int_equal(lw_payload_parse(&p, s, strlen(s)), LW_OK);
    /* The signature is over the LW_PROOF_QR message of the fields (whose
     * bytes unit.test_proof pins down): origin, then ref and fp. */
    uint8_t raw[LW_PROOF_QR_RAW_LEN];
    memcpy(raw, ref, sizeof ref);
    memcpy(raw + sizeof ref, fp, sizeof fp);
    assert_int_equal(lw_proof_verify(p.sig, LW_PROOF_QR, ORIGIN, raw, sizeof raw, server_pk), LW_OK);
    /* And the origin field is plain base64url of the origin text. */
    char enc[lw_b64_enc_len(sizeof ORIGIN)];
    lw_b64_encode(enc, (const uint8_t *)ORIGIN, strlen(ORIGIN));
    assert_memory_equal(s + 4, enc, strlen(enc));
    assert_int_equal(s[4 + strlen(enc)], '.');
}

static void test_flipped_bits_fail(void **state)
{
    (void)state;
    char s[LW_PAYLOAD_MAX];
    make(s, ORIGIN);
    lw_payload p, q;
    assert_int_equal(lw_payload_parse(&p, s, strlen(s)), LW_OK);
    for (size_t i = 0; i < sizeof p.ref * 8; i++) {
        q = p;
        q.ref[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(lw_payload_verify(&q, server_pk), LW_ECRYPTO);
    }
    for (size_t i = 0; i < sizeof p.fp * 8; i++) {
        q = p;
        q.fp[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(lw_payload_verify(&q, server_pk), LW_ECRYPTO);
    }
    for (size_t i = 0; i < sizeof p.sig * 8; i++) {
        q = p;
        q.sig[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(lw_payload_verify(&q, server_pk), LW_ECRYPTO);
    }
    for (size_t i = 0; i < strlen(ORIGIN) * 8; i++) {
        q = p;
        q.origin[i / 8] ^= (char)(1u << (i % 8));
        assert_int_equal(lw_payload_verify(&q, server_pk), LW_ECRYPTO);
    }
    /* A longer or shorter origin (same prefix) is a different message. */
    q = p;
    size_t olen = strlen(q.origin);
    q.origin[olen] = 'x';
    q.origin[olen + 1] = '\0';
    assert_int_equal(lw_payload_verify(&q, server_pk), LW_ECRYPTO);
    q = p;
    q.origin[strlen(q.origin) - 1] = '\0';
    assert_int_equal(lw_payload_verify(&q, server_pk), LW_ECRYPTO);
    /* An unterminated origin is refused, not read past. */
    q = p;
    memset(q.origin, 'a', sizeof q.origin);
    assert_int_equal(lw_payload_verify(&q, server_pk), LW_ECRYPTO);
}

/* Flipping a bit in any character of the text form either breaks parsing or
 * breaks the signature. */
static void test_text_tamper(void **state)
{
    (void)state;
    char s[LW_PAYLOAD_MAX], t[LW_PAYLOAD_MAX];
    make(s, ORIGIN);
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(t, s, n + 1);
            t[i] ^= (char)(1 << bit);
            lw_payload p;
            if (lw_payload_parse(&p, t, n) == LW_OK)
                assert_int_equal(lw_payload_verify(&p, server_pk), LW_ECRYPTO);
        }
    }
}

static void test_other_key_fails(void **state)
{
    (void)state;
    char s[LW_PAYLOAD_MAX];
    assert_int_equal(lw_payload_make(s, sizeof s, ORIGIN, ref, fp, other_sk), LW_OK);
    lw_payload p;
    assert_int_equal(lw_payload_parse(&p, s, strlen(s)), LW_OK);
    assert_int_equal(lw_payload_verify(&p, server_pk), LW_ECRYPTO);
    assert_int_equal(lw_payload_verify(&p, other_pk), LW_OK);
}

static void test_make_rejects(void **state)
{
    (void)state;
    char s[LW_PAYLOAD_MAX];
    assert_int_equal(lw_payload_make(s, sizeof s, "", ref, fp, server_sk), LW_EINVAL);
    assert_int_equal(lw_payload_make(s, sizeof s, NULL, ref, fp, server_sk), LW_EINVAL);
    assert_int_equal(lw_payload_make(s, sizeof s, "https://a\nb", ref, fp, server_sk), LW_EINVAL);
    assert_int_equal(lw_payload_make(s, sizeof s, "https://a\x7f", ref, fp, server_sk), LW_EINVAL);
    char origin[LW_ORIGIN_MAX + 1];
    memset(origin, 'o', sizeof origin);
    origin[LW_ORIGIN_MAX] = '\0'; /* 256 bytes: one too many */
    assert_int_equal(lw_payload_make(s, sizeof s, origin, ref, fp, server_sk), LW_EINVAL);
    origin[LW_ORIGIN_MAX - 1] = '\0'; /* 255: the longest allowed */
    assert_int_equal(lw_payload_make(s, sizeof s, origin, ref, fp, server_sk), LW_OK);
    assert_true(strlen(s) < LW_PAYLOAD_MAX);
    lw_payload p;
    assert_int_equal(lw_payload_parse(&p, s, strlen(s)), LW_OK);
    assert_string_equal(p.origin, origin);
    assert_int_equal(lw_payload_verify(&p, server_pk), LW_OK);
    /* Too small a destination. */
    size_t need = strlen(s) + 1;
    assert_int_equal(lw_payload_make(s, need - 1, origin, ref, fp, server_sk), LW_ETOOBIG);
    assert_int_equal(lw_payload_make(s, need, origin, ref, fp, server_sk), LW_OK);
    /* UTF-8 origins are fine. */
    assert_int_equal(lw_payload_make(s, sizeof s, "https://bücher.example", ref, fp, server_sk), LW_OK);
    assert_int_equal(lw_payload_parse(&p, s, strlen(s)), LW_OK);
    assert_string_equal(p.origin, "https://bücher.example");
}

static void parse_bad(const char *s)
{
    lw_payload p;
    assert_int_equal(lw_payload_parse(&p, s, strlen(s)), LW_EINVAL);
}

/* Builds "lw1:" + fields joined by dots from raw pieces. */
static void build(char dst[2 * LW_PAYLOAD_MAX], const char *origin_b64, const char *ref_b64,
                  const char *fp_b64, const char *sig_b64)
{
    int n = snprintf(dst, 2 * LW_PAYLOAD_MAX, "lw1:%s.%s.%s.%s", origin_b64, ref_b64, fp_b64, sig_b64);
    assert_true(n > 0 && n < 2 * LW_PAYLOAD_MAX);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    char s[LW_PAYLOAD_MAX];
    make(s, ORIGIN);
    char *f0 = s + 4, *d1 = strchr(s, '.'), *d2 = strchr(d1 + 1, '.'), *d3 = strchr(d2 + 1, '.');
    char o[512], r[64], f[64], g[128];
    memcpy(o, f0, (size_t)(d1 - f0));
    o[d1 - f0] = '\0';
    memcpy(r, d1 + 1, (size_t)(d2 - d1 - 1));
    r[d2 - d1 - 1] = '\0';
    memcpy(f, d2 + 1, (size_t)(d3 - d2 - 1));
    f[d3 - d2 - 1] = '\0';
    snprintf(g, sizeof g, "%s", d3 + 1);

    char t[2 * LW_PAYLOAD_MAX];
    build(t, o, r, f, g);
    assert_string_equal(t, s); /* the pieces are right */

    parse_bad(s + 4); /* missing prefix */
    memcpy(t, s, strlen(s) + 1);
    t[2] = '2';
    parse_bad(t); /* lw2: */
    t[2] = '1';
    t[0] = 'L';
    parse_bad(t); /* prefix is case-sensitive */
    parse_bad("");
    parse_bad("lw1:");
    parse_bad("lw1:...");

    snprintf(t, sizeof t, "lw1:%s.%s.%s", o, r, f);
    parse_bad(t); /* 3 fields */
    snprintf(t, sizeof t, "lw1:%s.%s.%s.%s.%s", o, r, f, g, g);
    parse_bad(t); /* 5 fields */
    snprintf(t, sizeof t, "lw1:%s.%s.%s.%s.", o, r, f, g);
    parse_bad(t); /* trailing dot */
    snprintf(t, sizeof t, " %s", s);
    parse_bad(t); /* surrounding whitespace is the caller's job */
    snprintf(t, sizeof t, "%s\n", s);
    parse_bad(t);

    build(t, o, r, f, "");
    parse_bad(t); /* empty signature */
    build(t, "", r, f, g);
    parse_bad(t); /* empty origin */
    build(t, o, f, f, g);
    parse_bad(t); /* ref of the wrong length */
    build(t, o, r, r, g);
    parse_bad(t); /* fp of the wrong length */
    build(t, o, r, f, f);
    parse_bad(t); /* sig of the wrong length */
    char shorter[128];
    snprintf(shorter, sizeof shorter, "%.85s", g);
    build(t, o, r, f, shorter);
    parse_bad(t); /* sig one character short */

    /* Bad base64url in each field. */
    char bad[128];
    const char *fields[4] = {o, r, f, g};
    for (int i = 0; i < 4; i++) {
        static const char subs[] = {'+', '/', '=', ' ', '!'};
        for (size_t k = 0; k < sizeof subs; k++) {
            const char *v[4] = {o, r, f, g};
            snprintf(bad, sizeof bad, "%s", fields[i]);
            bad[1] = subs[k];
            v[i] = bad;
            build(t, v[0], v[1], v[2], v[3]);
            parse_bad(t);
        }
    }

    /* Origins with control characters or NUL, correctly encoded. */
    static const char *bad_origins[] = {"https://a\nb", "https://a\tb", "\x7f", "https://a\rb"};
    for (size_t i = 0; i < 4; i++) {
        char enc[64];
        lw_b64_encode(enc, (const uint8_t *)bad_origins[i], strlen(bad_origins[i]));
        build(t, enc, r, f, g);
        parse_bad(t);
    }
    const uint8_t nul_origin[] = {'h', 0, 'x'};
    char enc[16];
    lw_b64_encode(enc, nul_origin, sizeof nul_origin);
    build(t, enc, r, f, g);
    parse_bad(t);

    /* Origin of 256 bytes (one past the limit). */
    uint8_t long_origin[LW_ORIGIN_MAX];
    memset(long_origin, 'o', sizeof long_origin);
    char long_enc[lw_b64_enc_len(LW_ORIGIN_MAX)];
    lw_b64_encode(long_enc, long_origin, sizeof long_origin);
    build(t, long_enc, r, f, g);
    parse_bad(t);

    /* Over-long input, even if the fields would be fine. */
    char huge[LW_PAYLOAD_MAX + 16];
    memset(huge, 'A', sizeof huge);
    memcpy(huge, "lw1:", 4);
    huge[sizeof huge - 1] = '\0';
    parse_bad(huge);
    lw_payload p;
    assert_int_equal(lw_payload_parse(&p, s, LW_PAYLOAD_MAX), LW_EINVAL);
    assert_int_equal(lw_payload_parse(&p, NULL, 10), LW_EINVAL);

    /* len is honoured: a valid payload followed by junk parses when cut. */
    snprintf(t, sizeof t, "%sJUNK", s);
    assert_int_equal(lw_payload_parse(&p, t, strlen(s)), LW_OK);
    assert_int_equal(lw_payload_verify(&p, server_pk), LW_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),         cmocka_unit_test(test_signed_message_layout),
        cmocka_unit_test(test_flipped_bits_fail), cmocka_unit_test(test_text_tamper),
        cmocka_unit_test(test_other_key_fails),   cmocka_unit_test(test_make_rejects),
        cmocka_unit_test(test_parse_rejects),
    };
    return cmocka_run_group_tests_name("payload", tests, setup, NULL);
}
