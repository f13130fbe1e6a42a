/* Unit tests for code.c: pairing codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "code.h"
#include "crypto.h"
#include "lw.h"

#define ALPHABET "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

static int setup(void **state)
{
    (void)state;
    return lw_crypto_init() == LW_OK ? 0 : -1;
}

static void test_new_shape_and_alphabet(void **state)
{
    (void)state;
    int seen[256] = {0};
    char prev[LW_CODE_STRLEN] = "";
    int repeats = 0;
    for (int i = 0; i < 10000; i++) {
        char c[LW_CODE_STRLEN];
        lw_code_new(c);
        assert_int_equal(strlen(c), 9);
        assert_int_equal(c[4], '-');
        for (int j = 0; j < 9; j++) {
            if (j == 4)
                continue;
            assert_non_null(strchr(ALPHABET, c[j]));
            assert_null(strchr("ILOU", c[j]));
            seen[(unsigned char)c[j]]++;
        }
        /* A freshly made code normalises to itself. */
        char n[LW_CODE_STRLEN];
        assert_int_equal(lw_code_normalize(c, strlen(c), n), LW_OK);
        assert_string_equal(n, c);
        repeats += strcmp(prev, c) == 0;
        memcpy(prev, c, sizeof c);
    }
    assert_int_equal(repeats, 0);
    /* 80000 symbols over 32 letters: every symbol appears, roughly evenly. */
    for (const char *a = ALPHABET; *a; a++) {
        assert_true(seen[(unsigned char)*a] > 2000);
        assert_true(seen[(unsigned char)*a] < 3000);
    }
}

static void norm_ok(const char *in, const char *want)
{
    char out[LW_CODE_STRLEN];
    assert_int_equal(lw_code_normalize(in, strlen(in), out), LW_OK);
    assert_string_equal(out, want);
}

static void norm_bad(const char *in, size_t len)
{
    char out[LW_CODE_STRLEN] = "garbage";
    assert_int_equal(lw_code_normalize(in, len, out), LW_EINVAL);
    assert_string_equal(out, "");
}

static void test_normalize(void **state)
{
    (void)state;
    norm_ok("ABCD-EFGH", "ABCD-EFGH");
    norm_ok("abcd efgh", "ABCD-EFGH");
    norm_ok("abcdefgh", "ABCD-EFGH");
    norm_ok("o1l1-ABCD", "0111-ABCD");
    norm_ok("OIL0 iloo", "0110-1100");
    norm_ok("  a-b-c-d  e f g h -", "ABCD-EFGH");
    norm_ok("zyxw-vtsr", "ZYXW-VTSR");
    norm_ok("0123456-7", "0123-4567");
}

static void test_normalize_rejects(void **state)
{
    (void)state;
    norm_bad("ABCD-EFG", 8);    /* 7 symbols */
    norm_bad("ABCD-EFGHJ", 10); /* 9 symbols */
    norm_bad("ABCD-EFGU", 9);   /* U is not a symbol */
    norm_bad("ABCD-EFGu", 9);
    norm_bad("ABCD_EFGH", 9); /* only spaces and hyphens are dropped */
    norm_bad("ABCD\tEFGH", 9);
    norm_bad("ABCD.EFGH", 9);
    norm_bad("ABCD-EF\0H", 9); /* embedded NUL */
    norm_bad("ÄBCD-EFGH", strlen("ÄBCD-EFGH"));
    norm_bad("", 0);
    norm_bad("--------", 8);
    norm_bad(NULL, 9);
    /* len is honoured: a valid prefix of a longer string. */
    char out[LW_CODE_STRLEN];
    assert_int_equal(lw_code_normalize("ABCDEFGHXYZ", 8, out), LW_OK);
    assert_string_equal(out, "ABCD-EFGH");
    /* A long run of symbols fails without overflowing anything. */
    char longin[4096];
    memset(longin, 'A', sizeof longin);
    norm_bad(longin, sizeof longin);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_shape_and_alphabet),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_normalize_rejects),
    };
    return cmocka_run_group_tests_name("code", tests, setup, NULL);
}
