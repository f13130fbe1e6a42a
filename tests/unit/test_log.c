/* Log lines: valid JSON whatever a message holds, and client addresses cut
 * to their network unless full addresses are on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "log.h"

static void test_addr_cut(void **state)
{
    (void)state;
    char out[LW_LOG_ADDR_MAX];
    lw_log_set_full_addresses(false);
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"203.0.113.77", "203.0.113.0/24"},
        {"127.0.0.1", "127.0.0.0/24"},
        {"0.0.0.0", "0.0.0.0/24"},
        {"255.255.255.255", "255.255.255.0/24"},
        {"2001:db8:1234:5678:9abc:def0:1234:5678", "2001:db8:1234::/48"},
        {"2001:db8:12ff:ffff::1", "2001:db8:12ff::/48"},
        {"::1", "::/48"},
        {"fe80::1", "fe80::/48"},
        {"", "-"},
        {"not an address", "-"},
        {"203.0.113.77/32", "-"},
        {"203.0.113.777", "-"},
        {"fe80::1%eth0", "-"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = lw_log_addr(cases[i].in, out);
        assert_ptr_equal(got, out);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("%s gave %s, not %s", cases[i].in, got, cases[i].want);
    }
}

static void test_addr_full(void **state)
{
    (void)state;
    char out[LW_LOG_ADDR_MAX];
    lw_log_set_full_addresses(true);
    assert_string_equal(lw_log_addr("203.0.113.77", out), "203.0.113.77");
    /* Written again from the parsed address: one spelling only. */
    assert_string_equal(lw_log_addr("2001:DB8:0:0:0:0:0:1", out), "2001:db8::1");
    assert_string_equal(lw_log_addr("junk\"\n", out), "-");
    lw_log_set_full_addresses(false);
    assert_string_equal(lw_log_addr("203.0.113.77", out), "203.0.113.0/24");
}

/* Runs fn with stderr going to a file; returns what it wrote (caller frees). */
static char *capture(void (*fn)(void))
{
    FILE *f = tmpfile();
    assert_non_null(f);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(f), 2) >= 0);
    fn();
    fflush(stderr);
    assert_true(dup2(saved, 2) >= 0);
    close(saved);
    long n = ftell(f);
    if (n < 0)
        n = 0;
    rewind(f);
    char *text = calloc(1, (size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return text;
}

static void log_hostile(void)
{
    /* Bytes that are not UTF-8 (a client's), a quote and a newline. */
    lw_log_warn("test", "bad \xc3 \xff\xfe \xed\xa0\x80 \"quoted\"\nsecond line");
}

static void log_long(void)
{
    /* Past the message bound, the cut falling inside a 3-byte character. */
    char big[2048];
    size_t n = 0;
    while (n + 3 < sizeof big) {
        memcpy(big + n, "\xe2\x82\xac", 3);
        n += 3;
    }
    big[n] = '\0';
    lw_log_info("test", "x%s", big);
}

static void check_one_json_line(const char *text, const char *want_in_msg)
{
    const char *nl = strchr(text, '\n');
    assert_non_null(nl);
    assert_int_equal(nl[1], '\0'); /* one line */
    json_error_t err;
    json_t *j = json_loads(text, 0, &err); /* jansson refuses text that is not UTF-8 */
    if (!j)
        fail_msg("not JSON (%s): %s", err.text, text);
    const char *msg = json_string_value(json_object_get(j, "msg"));
    assert_non_null(msg);
    if (want_in_msg)
        assert_non_null(strstr(msg, want_in_msg));
    json_decref(j);
}

static void test_line_is_json(void **state)
{
    (void)state;
    char *t = capture(log_hostile);
    check_one_json_line(t, "bad ? ?? ??? \"quoted\"\nsecond line");
    free(t);
    t = capture(log_long);
    check_one_json_line(t, "...");
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_cut),
        cmocka_unit_test(test_addr_full),
        cmocka_unit_test(test_line_is_json),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
