/* Unit tests for lw.c: errors, time, durations, allocation, buffers, base64url, hex. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "lw.h"

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(lw_strerror(LW_OK), "success");
    assert_string_equal(lw_strerror(LW_EINVAL), "invalid input");
    for (int e = LW_ELOCKED; e <= LW_OK; e++)
        assert_non_null(lw_strerror(e));
    assert_string_equal(lw_strerror(-1000), "unknown error");
}

static void test_now(void **state)
{
    (void)state;
    int64_t a = lw_now_ms();
    assert_true(a > INT64_C(1700000000000)); /* after Nov 2023 */
    assert_true(lw_now_ms() >= a);
}

static void test_time_format(void **state)
{
    (void)state;
    char s[LW_TIME_STRLEN];
    lw_time_format(0, s);
    assert_string_equal(s, "1970-01-01T00:00:00Z");
    lw_time_format(INT64_C(1795305300000), s);
    assert_string_equal(s, "2026-11-21T23:55:00Z");
    lw_time_format(INT64_C(1795305300999), s); /* milliseconds are dropped, not rounded */
    assert_string_equal(s, "2026-11-21T23:55:00Z");
    lw_time_format(-1, s);
    assert_string_equal(s, "1969-12-31T23:59:59Z");
}

static void test_duration_ok(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t ms;
    } cases[] = {
        {"0", 0},
        {"30", 30000},
        {"250ms", 250},
        {"30s", 30000},
        {"10m", 600000},
        {"6h", 21600000},
        {"30d", 2592000000LL},
        {"007s", 7000},
        {"9223372036854775807ms", INT64_MAX},
        {"106751991167d", 106751991167LL * 86400000LL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t v = -1;
        assert_int_equal(lw_duration_parse(cases[i].in, &v), LW_OK);
        assert_true(v == cases[i].ms);
    }
}

static void test_duration_bad(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "-5",
        "+5",
        " 5",
        "5 ",
        "s",
        "5x",
        "5S",
        "5sec",
        "1.5h",
        "5mss",
        "0x10",
        "5 s",
        "ms",
        "5hm",
        "abc",
        "9223372036854775808ms", /* one past INT64_MAX */
        "9223372036854775807s",  /* overflows on multiplying */
        "106751991167301d",
        "99999999999999999999999999",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = 42;
        assert_int_equal(lw_duration_parse(bad[i], &v), LW_EINVAL);
        assert_true(v == 42); /* untouched on failure */
    }
    int64_t v;
    assert_int_equal(lw_duration_parse(NULL, &v), LW_EINVAL);
}

static void test_alloc_fault_injection(void **state)
{
    (void)state;
    lw_alloc_fail_after(0);
    assert_null(lw_malloc(8));
    void *p = lw_malloc(8); /* one-shot: the next succeeds */
    assert_non_null(p);
    lw_free(p);

    lw_alloc_fail_after(2);
    void *a = lw_malloc(1), *b = lw_calloc(2, 2);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(lw_strdup("x"));
    lw_free(a);
    lw_free(b);

    lw_alloc_fail_after(0);
    char *r = NULL;
    assert_null(lw_realloc(r, 10));
    lw_alloc_fail_after(-1);
    for (int i = 0; i < 100; i++) {
        p = lw_malloc(1);
        assert_non_null(p);
        lw_free(p);
    }
}

static void test_alloc_helpers(void **state)
{
    (void)state;
    char *s = lw_strndup("hello world", 5);
    assert_string_equal(s, "hello");
    lw_free(s);
    s = lw_strndup("hi", 100); /* n past the end stops at the NUL */
    assert_string_equal(s, "hi");
    lw_free(s);
    assert_null(lw_strdup(NULL));
    uint8_t *z = lw_calloc(16, 4);
    for (int i = 0; i < 64; i++)
        assert_int_equal(z[i], 0);
    z = lw_realloc(z, 0); /* never frees behind our back */
    assert_non_null(z);
    lw_free(z);
    lw_free(NULL);
}

static void test_buf(void **state)
{
    (void)state;
    lw_buf b;
    lw_buf_init(&b, 10);
    assert_string_equal(b.data, ""); /* readable before the first append */
    assert_int_equal(lw_buf_append(&b, "hello", 5), LW_OK);
    assert_int_equal(lw_buf_appendf(&b, "%d%s", 12, "abc"), LW_OK);
    assert_string_equal(b.data, "hello12abc");
    assert_int_equal(b.len, 10);
    /* At max: one more byte is refused and nothing changes. */
    assert_int_equal(lw_buf_append(&b, "x", 1), LW_ETOOBIG);
    assert_int_equal(lw_buf_appendf(&b, "%s", "x"), LW_ETOOBIG);
    assert_string_equal(b.data, "hello12abc");
    assert_true(b.cap <= b.max + 1);
    assert_int_equal(lw_buf_append(&b, "", 0), LW_OK);
    lw_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    lw_buf_free(&b);
    lw_buf_free(&b); /* idempotent */
}

static void test_buf_json_str(void **state)
{
    (void)state;
    lw_buf b;
    lw_buf_init(&b, 64);
    assert_int_equal(lw_buf_append_json_str(&b, "<svg a=\"1\">\\\n\x01\u00e9</svg>"), LW_OK);
    assert_string_equal(b.data, "\"<svg a=\\\"1\\\">\\\\\\u000a\\u0001\u00e9</svg>\"");
    lw_buf_reset(&b);
    assert_int_equal(lw_buf_append_json_str(&b, ""), LW_OK);
    assert_string_equal(b.data, "\"\"");
    /* Past the buffer's maximum: an error, never a cut literal passed as whole. */
    lw_buf_reset(&b);
    char big[100];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(lw_buf_append_json_str(&b, big), LW_ETOOBIG);
    lw_buf_free(&b);
}

static void test_buf_growth_and_big_appendf(void **state)
{
    (void)state;
    lw_buf b;
    lw_buf_init(&b, 100000);
    char chunk[1000];
    memset(chunk, 'a', sizeof chunk);
    for (int i = 0; i < 100; i++)
        assert_int_equal(lw_buf_append(&b, chunk, sizeof chunk), LW_OK);
    assert_int_equal(b.len, 100000);
    assert_int_equal(lw_buf_append(&b, "b", 1), LW_ETOOBIG);
    lw_buf_reset(&b);
    /* Larger than appendf's stack scratch space. */
    assert_int_equal(lw_buf_appendf(&b, "<%.900s>", chunk), LW_OK);
    assert_int_equal(b.len, 902);
    assert_int_equal(b.data[0], '<');
    assert_int_equal(b.data[901], '>');
    assert_int_equal(b.data[902], '\0');
    lw_buf_free(&b);

    static char big[6001];
    memset(big, 'a', 6000);
    lw_buf_init(&b, 5000);
    assert_int_equal(lw_buf_appendf(&b, "%.4999s%s", big, "xy"), LW_ETOOBIG);
    assert_int_equal(b.len, 0);
    assert_int_equal(lw_buf_appendf(&b, "%.4999s%s", big, "x"), LW_OK);
    assert_int_equal(b.len, 5000);
    lw_buf_reset(&b);
    assert_int_equal(b.len, 0);
    lw_buf_free(&b);
}

static void test_buf_enomem(void **state)
{
    (void)state;
    lw_buf b;
    lw_buf_init(&b, 1000);
    lw_alloc_fail_after(0);
    assert_int_equal(lw_buf_append(&b, "abc", 3), LW_ENOMEM);
    assert_int_equal(b.len, 0);
    assert_int_equal(lw_buf_append(&b, "abc", 3), LW_OK);
    char big[200];
    memset(big, 'q', sizeof big);
    lw_alloc_fail_after(0);
    assert_int_equal(lw_buf_append(&b, big, sizeof big), LW_ENOMEM);
    assert_string_equal(b.data, "abc"); /* intact after a failed grow */
    lw_buf_free(&b);
}

static void test_slice(void **state)
{
    (void)state;
    lw_slice s = LW_SLICE_LIT("GET");
    assert_true(lw_slice_eq(s, "GET"));
    assert_false(lw_slice_eq(s, "GE"));
    assert_false(lw_slice_eq(s, "GETS"));
    assert_false(lw_slice_eq(s, NULL));
    lw_slice part = {"POSTING", 4};
    assert_true(lw_slice_eq(part, "POST"));
    lw_slice empty = {NULL, 0};
    assert_true(lw_slice_eq(empty, ""));
}

/* RFC 4648 test vectors, base64url without padding. */
static void test_b64_vectors(void **state)
{
    (void)state;
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char out[lw_b64_enc_len(6)];
        size_t n = strlen(plain[i]);
        lw_b64_encode(out, (const uint8_t *)plain[i], n);
        assert_string_equal(out, enc[i]);
        uint8_t back[8];
        assert_int_equal(lw_b64_decode(back, sizeof back, enc[i], strlen(enc[i]), 0), (long)n);
        assert_memory_equal(back, plain[i], n);
    }
    /* The URL-safe characters. */
    const uint8_t fb[] = {0xfb, 0xff, 0xbf};
    char out[8];
    lw_b64_encode(out, fb, 3);
    assert_string_equal(out, "-_-_");
}

static void test_b64_roundtrip(void **state)
{
    (void)state;
    uint8_t in[70], back[70];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof in; n++) {
        char enc[lw_b64_enc_len(70)];
        lw_b64_encode(enc, in, n);
        assert_int_equal(strlen(enc), (n * 4 + 2) / 3);
        assert_int_equal(lw_b64_decode(back, sizeof back, enc, strlen(enc), n ? n : 0), (long)n);
        assert_memory_equal(back, in, n);
    }
}

static void test_fmt_i64(void **state)
{
    (void)state;
    static const struct {
        long long v;
        const char *s;
    } cases[] = {{0, "0"},
                 {7, "7"},
                 {10, "10"},
                 {255, "255"},
                 {1000, "1000"},
                 {-1, "-1"},
                 {-600, "-600"},
                 {9223372036854775807LL, "9223372036854775807"},
                 {-9223372036854775807LL - 1, "-9223372036854775808"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[24];
        memset(buf, 'x', sizeof buf);
        size_t n = lw_fmt_i64(buf, cases[i].v);
        assert_int_equal(n, strlen(cases[i].s));
        assert_memory_equal(buf, cases[i].s, n);
        assert_int_equal(buf[n], 'x'); /* no terminator written */
    }
}

static void test_b64_reject(void **state)
{
    (void)state;
    uint8_t out[64];
    static const char *bad[] = {
        "Zg==", /* padding */
        "Zm9v=", "Zm 9v", "Zm9v\n", "Zm+v", "Zm/v",
        "Zm9v*", "Z",     "Zm9vY",  "Zh", /* non-canonical: trailing bits set ("Zg" is canonical) */
        "Zm8",                            /* canonical: fine -- checked separately below */
    };
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(lw_b64_decode(out, sizeof out, bad[i], strlen(bad[i]), 0), LW_EINVAL);
    assert_int_equal(lw_b64_decode(out, sizeof out, bad[10], 3, 0), 2);
    assert_int_equal(lw_b64_decode(out, sizeof out, "Zm9", 3, 0), LW_EINVAL); /* '9' = 61: low bits set */
    assert_int_equal(lw_b64_decode(out, sizeof out, "Zm-", 3, 0), LW_EINVAL); /* '-' = 62: low bits set */
    /* An embedded NUL is not in the alphabet. */
    assert_int_equal(lw_b64_decode(out, sizeof out, "Zm\0v", 4, 0), LW_EINVAL);
    /* Exact expected length. */
    assert_int_equal(lw_b64_decode(out, sizeof out, "Zm9v", 4, 3), 3);
    assert_int_equal(lw_b64_decode(out, sizeof out, "Zm9v", 4, 2), LW_EINVAL);
    assert_int_equal(lw_b64_decode(out, sizeof out, "Zm9v", 4, 4), LW_EINVAL);
    /* Destination capacity. */
    assert_int_equal(lw_b64_decode(out, 2, "Zm9v", 4, 0), LW_ETOOBIG);
    assert_int_equal(lw_b64_decode(out, 3, "Zm9v", 4, 0), 3);
    assert_int_equal(lw_b64_decode(out, 0, "", 0, 0), 0);
}

static void test_b64_all_bytes(void **state)
{
    (void)state;
    /* Every single-character substitution in a valid string either decodes
     * canonically or is rejected -- never reads past the input. */
    uint8_t out[8];
    char s[5] = "Zm9v";
    for (int pos = 0; pos < 4; pos++) {
        for (int c = 0; c < 256; c++) {
            s[pos] = (char)c;
            long r = lw_b64_decode(out, sizeof out, s, 4, 0);
            assert_true(r == 3 || r == LW_EINVAL);
            if (r == 3) {
                char re[8];
                lw_b64_encode(re, out, 3);
                assert_memory_equal(re, s, 4);
            }
        }
        s[pos] = "Zm9v"[pos];
    }
}

static void test_hex(void **state)
{
    (void)state;
    const uint8_t in[] = {0x00, 0x01, 0xab, 0xff};
    char out[9];
    lw_hex_encode(out, in, 4);
    assert_string_equal(out, "0001abff");
    lw_hex_encode(out, in, 0);
    assert_string_equal(out, "");
}

static void test_strlcpy(void **state)
{
    (void)state;
    char d[6];
    assert_int_equal(lw_strlcpy(d, "hello", sizeof d), LW_OK);
    assert_string_equal(d, "hello");
    assert_int_equal(lw_strlcpy(d, "hello!", sizeof d), LW_ETOOBIG);
    assert_string_equal(d, "");
    assert_int_equal(lw_strlcpy(d, "", sizeof d), LW_OK);
    assert_string_equal(d, "");
    assert_int_equal(lw_strlcpy(d, "x", 0), LW_ETOOBIG);
}

/* lw_utf8_seq against the table of RFC 3629 and jansson's own validator. */
static void test_utf8_seq(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t want;
    } cases[] = {
        {"a", 1},
        {"\xc3\xa9", 2},         /* é */
        {"\xe2\x82\xac", 3},     /* € */
        {"\xf0\x9f\x98\x80", 4}, /* 😀 */
        {"\xf4\x8f\xbf\xbf", 4}, /* U+10FFFF */
        {"\xc3", 0},             /* cut */
        {"\xe2\x82", 0},
        {"\xa9", 0},     /* a continuation first */
        {"\xc0\xaf", 0}, /* overlong '/' */
        {"\xe0\x80\xaf", 0},
        {"\xed\xa0\x80", 0},     /* a surrogate */
        {"\xf4\x90\x80\x80", 0}, /* past U+10FFFF */
        {"\xf8\x88\x80\x80", 0},
        {"\xff", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(lw_utf8_seq((const unsigned char *)cases[i].s, strlen(cases[i].s)), cases[i].want);
    assert_int_equal(lw_utf8_seq((const unsigned char *)"", 0), 0);
}

static void test_utf8_sanitize(void **state)
{
    (void)state;
    char a[] = "near '\"\\u12\xc3' (cut)";
    assert_int_equal(lw_utf8_sanitize(a), 1);
    assert_string_equal(a, "near '\"\\u12?' (cut)");
    char b[] = "caf\xc3\xa9 \xe2\x82\xac \xed\xa0\x80 \xff\xfe";
    assert_int_equal(lw_utf8_sanitize(b), 5);
    assert_string_equal(b, "caf\xc3\xa9 \xe2\x82\xac ??? ??");
    char c[] = "plain text";
    assert_int_equal(lw_utf8_sanitize(c), 0);
    assert_string_equal(c, "plain text");
    /* Every string of up to two bytes, and three-byte strings around the
     * lead bytes: what is sanitised, jansson encodes; what jansson already
     * accepted, sanitising leaves alone. */
    for (unsigned x = 1; x < 0x100; x++) {
        for (unsigned y = 0; y < 0x100; y++) {
            for (unsigned z = 0; z < 0x100; z += (x >= 0xe0 && y >= 0x80) ? 1 : 0x100) {
                char t[4] = {(char)x, (char)y, (char)z, 0};
                json_t *before = json_string(t);
                char u[4];
                memcpy(u, t, sizeof t);
                size_t n = lw_utf8_sanitize(u);
                json_t *after = json_string(u);
                assert_non_null(after);
                if (before)
                    assert_int_equal(n, 0);
                else
                    assert_true(n > 0);
                json_decref(before);
                json_decref(after);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror),      cmocka_unit_test(test_now),
        cmocka_unit_test(test_time_format),   cmocka_unit_test(test_duration_ok),
        cmocka_unit_test(test_duration_bad),  cmocka_unit_test(test_alloc_fault_injection),
        cmocka_unit_test(test_alloc_helpers), cmocka_unit_test(test_buf),
        cmocka_unit_test(test_buf_json_str),  cmocka_unit_test(test_buf_growth_and_big_appendf),
        cmocka_unit_test(test_buf_enomem),    cmocka_unit_test(test_slice),
        cmocka_unit_test(test_b64_vectors),   cmocka_unit_test(test_b64_roundtrip),
        cmocka_unit_test(test_b64_reject),    cmocka_unit_test(test_fmt_i64),
        cmocka_unit_test(test_b64_all_bytes), cmocka_unit_test(test_hex),
        cmocka_unit_test(test_strlcpy),       cmocka_unit_test(test_utf8_seq),
        cmocka_unit_test(test_utf8_sanitize),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
