/* Unit tests for cred.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cred.h"
#include "lw.h"

static int setup(void **state)
{
    (void)state;
    return lw_crypto_init() == LW_OK ? 0 : -1;
}

static void test_format_parse_roundtrip(void **state)
{
    (void)state;
    for (int kind = LW_CRED_SESSION; kind <= LW_CRED_LINK; kind++) {
        for (int i = 0; i < 200; i++) {
            lw_cred c, d;
            lw_cred_new(&c, (lw_cred_kind)kind);
            char s[LW_CRED_STRLEN];
            lw_cred_format(&c, s);
            assert_int_equal(strlen(s), 70);
            assert_memory_equal(s, kind == LW_CRED_SESSION ? "lws_" : "lwl_", 4);
            assert_int_equal(s[26], '.');
            assert_int_equal(lw_cred_parse(&d, s, strlen(s)), LW_OK);
            assert_int_equal(d.kind, kind);
            assert_memory_equal(d.selector, c.selector, LW_SEL_BYTES);
            assert_memory_equal(d.verifier, c.verifier, LW_VER_BYTES);
            lw_cred_wipe(&c);
            lw_cred_wipe(&d);
        }
    }
}

static void test_new_is_random(void **state)
{
    (void)state;
    lw_cred a, b;
    lw_cred_new(&a, LW_CRED_SESSION);
    lw_cred_new(&b, LW_CRED_SESSION);
    assert_memory_not_equal(a.selector, b.selector, LW_SEL_BYTES);
    assert_memory_not_equal(a.verifier, b.verifier, LW_VER_BYTES);
}

static void test_selector_str(void **state)
{
    (void)state;
    lw_cred c;
    lw_cred_new(&c, LW_CRED_LINK);
    char s[LW_CRED_STRLEN], sel[LW_ID_STRLEN];
    lw_cred_format(&c, s);
    lw_cred_selector_str(&c, sel);
    assert_int_equal(strlen(sel), 22);
    assert_memory_equal(s + 4, sel, 22);
    /* Read off the text of any credential that parses: the same string. */
    for (int i = 0; i < 1000; i++) {
        lw_cred_new(&c, i % 2 ? LW_CRED_LINK : LW_CRED_SESSION);
        lw_cred_format(&c, s);
        lw_cred p;
        assert_int_equal(lw_cred_parse(&p, s, strlen(s)), LW_OK);
        char a[LW_ID_STRLEN], b[LW_ID_STRLEN];
        lw_cred_selector_str(&p, a);
        lw_cred_selector_text(s, b);
        assert_string_equal(a, b);
    }
}

static void test_parse_rejects(void **state)
{
    (void)state;
    lw_cred c;
    lw_cred_new(&c, LW_CRED_SESSION);
    char good[LW_CRED_STRLEN];
    lw_cred_format(&c, good);
    lw_cred out;
    memset(&out, 0xAA, sizeof out);
    lw_cred before = out;
    char s[LW_CRED_STRLEN + 8];

    /* Wrong or missing prefix. */
    static const char *prefixes[] = {"lwx_", "LWS_", "lws-", "xws_", "lw__"};
    for (size_t i = 0; i < 5; i++) {
        memcpy(s, good, 71);
        memcpy(s, prefixes[i], 4);
        assert_int_equal(lw_cred_parse(&out, s, 70), LW_EINVAL);
    }
    /* Wrong length: one short, one long, truncated verifier, empty, NULL. */
    assert_int_equal(lw_cred_parse(&out, good, 69), LW_EINVAL);
    memcpy(s, good, 70);
    s[70] = 'A';
    assert_int_equal(lw_cred_parse(&out, s, 71), LW_EINVAL);
    assert_int_equal(lw_cred_parse(&out, good, 0), LW_EINVAL);
    assert_int_equal(lw_cred_parse(&out, NULL, 70), LW_EINVAL);
    /* Separator missing or moved. */
    memcpy(s, good, 71);
    s[26] = 'A';
    assert_int_equal(lw_cred_parse(&out, s, 70), LW_EINVAL);
    memcpy(s, good, 71);
    s[26] = s[25];
    s[25] = '.';
    assert_int_equal(lw_cred_parse(&out, s, 70), LW_EINVAL);
    /* Characters outside base64url, in selector and verifier. */
    static const char bad_chars[] = {'+', '/', '=', ' ', '\0', '\n', '.', '~', (char)0xc3};
    for (size_t i = 0; i < sizeof bad_chars; i++) {
        for (size_t pos = 4; pos < 70; pos++) {
            if (pos == 26)
                continue;
            memcpy(s, good, 71);
            s[pos] = bad_chars[i];
            assert_int_equal(lw_cred_parse(&out, s, 70), LW_EINVAL);
        }
    }
    /* Non-canonical last character of the selector (22 chars carry 132 bits). */
    memcpy(s, good, 71);
    s[25] = 'B'; /* value 1: low bits set */
    assert_int_equal(lw_cred_parse(&out, s, 70), LW_EINVAL);
    /* Nothing was written on failure. */
    assert_memory_equal(&out, &before, sizeof out);
    /* Whitespace around is not tolerated. */
    s[0] = ' ';
    memcpy(s + 1, good, 71);
    assert_int_equal(lw_cred_parse(&out, s, 71), LW_EINVAL);
}

static void test_hash(void **state)
{
    (void)state;
    uint8_t k1[LW_KEY_LEN], k2[LW_KEY_LEN];
    lw_random(k1, sizeof k1);
    lw_random(k2, sizeof k2);
    lw_cred a, b;
    lw_cred_new(&a, LW_CRED_SESSION);
    b = a;
    uint8_t h1[LW_HASH_LEN], h2[LW_HASH_LEN], h3[LW_HASH_LEN];
    lw_cred_hash(&a, k1, h1);
    lw_cred_hash(&b, k1, h2);
    assert_memory_equal(h1, h2, LW_HASH_LEN);
    lw_cred_hash(&a, k2, h3);
    assert_memory_not_equal(h1, h3, LW_HASH_LEN); /* differs by key */
    b.verifier[0] ^= 1;
    lw_cred_hash(&b, k1, h2);
    assert_memory_not_equal(h1, h2, LW_HASH_LEN);         /* differs by verifier */
    assert_memory_not_equal(h1, a.verifier, LW_HASH_LEN); /* not the verifier itself */
}

static void test_wipe(void **state)
{
    (void)state;
    lw_cred c, zero;
    memset(&zero, 0, sizeof zero);
    lw_cred_new(&c, LW_CRED_LINK);
    lw_cred_wipe(&c);
    assert_memory_equal(&c, &zero, sizeof c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_parse_roundtrip),
        cmocka_unit_test(test_new_is_random),
        cmocka_unit_test(test_selector_str),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_wipe),
    };
    return cmocka_run_group_tests_name("cred", tests, setup, NULL);
}
