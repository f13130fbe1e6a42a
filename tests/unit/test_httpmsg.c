/* Request framing (RFC 9112 §6) and Content-Type (RFC 9110 §8.3) as judged
 * before a route runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "httpmsg.h"

#define F(n, v)                                                                                              \
    {                                                                                                        \
        (n), sizeof(n) - 1, (v), sizeof(v) - 1                                                               \
    }

static lw_framing framing(const lw_httpmsg_field *f, size_t n, int minor, char why[LW_HTTPMSG_WHY_MAX])
{
    return lw_httpmsg_framing(f, n, minor, why, LW_HTTPMSG_WHY_MAX);
}

static void test_framing_ok(void **state)
{
    (void)state;
    char why[LW_HTTPMSG_WHY_MAX];
    const lw_httpmsg_field none[] = {F("host", "x"), F("content-type", "application/json")};
    assert_int_equal(framing(none, 2, 1, why), LW_FRAMING_OK);
    assert_string_equal(why, "");
    const lw_httpmsg_field one[] = {F("Content-Length", "12")};
    assert_int_equal(framing(one, 1, 1, why), LW_FRAMING_OK);
    /* The same length said twice, or as a list, is that length (RFC 9110 §8.6). */
    const lw_httpmsg_field same[] = {F("content-length", "12"), F("host", "x"), F("CONTENT-LENGTH", "12")};
    assert_int_equal(framing(same, 3, 1, why), LW_FRAMING_OK);
    const lw_httpmsg_field list[] = {F("content-length", "12, 12 ,12"), F("content-length", "012")};
    assert_int_equal(framing(list, 2, 1, why), LW_FRAMING_OK);
    const lw_httpmsg_field chunked[] = {F("transfer-encoding", "chunked")};
    assert_int_equal(framing(chunked, 1, 1, why), LW_FRAMING_OK);
    assert_int_equal(framing(one, 1, 0, why), LW_FRAMING_OK);
}

static void test_framing_reject(void **state)
{
    (void)state;
    char why[LW_HTTPMSG_WHY_MAX];
    const lw_httpmsg_field two[] = {F("content-length", "5"), F("content-length", "50")};
    assert_int_equal(framing(two, 2, 1, why), LW_FRAMING_REJECT);
    assert_non_null(strstr(why, "Content-Length 5 and 50"));
    const lw_httpmsg_field list[] = {F("content-length", "5"), F("content-length", "5, 6")};
    assert_int_equal(framing(list, 2, 1, why), LW_FRAMING_REJECT);
    assert_non_null(strstr(why, "5 and 6"));
    static const char *const bad[] = {"",   " ",  "+5",   "-5",  "5x",  "0x5",
                                      "5,", ",5", "5,,5", "5 5", "1e3", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const lw_httpmsg_field f[] = {F("content-length", "5"),
                                      {"content-length", 14, bad[i], strlen(bad[i])}};
        assert_int_equal(framing(f, 2, 1, why), LW_FRAMING_REJECT);
        assert_non_null(strstr(why, "not a number"));
        assert_int_equal(framing(f + 1, 1, 1, why), LW_FRAMING_REJECT);
    }
    const lw_httpmsg_field te2[] = {F("transfer-encoding", "gzip"), F("transfer-encoding", "chunked")};
    assert_int_equal(framing(te2, 2, 1, why), LW_FRAMING_REJECT);
    assert_non_null(strstr(why, "Transfer-Encoding"));
    /* A length folded onto a second line (h2o would read the first line only). */
    const lw_httpmsg_field folded[] = {F("content-length", "5"), {NULL, 0, "6", 1}};
    assert_int_equal(framing(folded, 2, 1, why), LW_FRAMING_REJECT);
    assert_non_null(strstr(why, "folded"));
    const lw_httpmsg_field folded_other[] = {F("x-note", "a"), {NULL, 0, "b", 1}, F("content-length", "1")};
    assert_int_equal(framing(folded_other, 3, 1, why), LW_FRAMING_OK);
    /* Disagreeing lengths are refused even beside Transfer-Encoding. */
    const lw_httpmsg_field both_bad[] = {F("transfer-encoding", "chunked"), F("content-length", "1"),
                                         F("content-length", "2")};
    assert_int_equal(framing(both_bad, 3, 1, why), LW_FRAMING_REJECT);
}

static void test_framing_close(void **state)
{
    (void)state;
    char why[LW_HTTPMSG_WHY_MAX];
    const lw_httpmsg_field both[] = {F("content-length", "3"), F("transfer-encoding", "chunked")};
    assert_int_equal(framing(both, 2, 1, why), LW_FRAMING_CLOSE);
    assert_non_null(strstr(why, "both"));
    const lw_httpmsg_field rev[] = {F("Transfer-Encoding", "chunked"), F("Content-Length", "3")};
    assert_int_equal(framing(rev, 2, 1, why), LW_FRAMING_CLOSE);
    const lw_httpmsg_field te[] = {F("transfer-encoding", "chunked")};
    assert_int_equal(framing(te, 1, 0, why), LW_FRAMING_CLOSE);
    assert_non_null(strstr(why, "HTTP/1.0"));
}

static void test_framing_small_why(void **state)
{
    (void)state;
    char why[8];
    const lw_httpmsg_field two[] = {F("content-length", "5"), F("content-length", "50")};
    assert_int_equal(lw_httpmsg_framing(two, 2, 1, why, sizeof why), LW_FRAMING_REJECT);
    assert_string_equal(why, "The ...");
    assert_int_equal(lw_httpmsg_framing(two, 2, 1, NULL, 0), LW_FRAMING_REJECT);
}

static const char *const json[] = {"application/json"};

static bool json_type(const char *v, char why[LW_HTTPMSG_WHY_MAX])
{
    return lw_httpmsg_media_type(v, strlen(v), json, 1, "application/json", why, LW_HTTPMSG_WHY_MAX);
}

static void test_media_type_ok(void **state)
{
    (void)state;
    char why[LW_HTTPMSG_WHY_MAX];
    static const char *const ok[] = {
        "application/json",
        "Application/JSON",
        "  application/json\t",
        "application/json;charset=utf-8",
        "application/json; charset=UTF-8",
        "application/json ; Charset=\"utf-8\"",
        "application/json;\tcharset=\"u\\tf-8\"", /* a quoted-pair is the character itself */
        "application/json;",
        "application/json; ;charset=utf-8;",
        "application/json; charset=utf-8; charset=utf-8",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (!json_type(ok[i], why))
            fail_msg("%s refused: %s", ok[i], why);
        assert_string_equal(why, "");
    }
    static const char *const reports[] = {"application/csp-report", "application/reports+json"};
    static const char *const seen[] = {"application/csp-report", "Application/Reports+JSON; charset=utf-8"};
    for (size_t i = 0; i < 2; i++)
        assert_true(lw_httpmsg_media_type(seen[i], strlen(seen[i]), reports, 2, "a report", why, sizeof why));
    assert_false(lw_httpmsg_media_type("application/json", 16, reports, 2, "a report", why, sizeof why));
    assert_string_equal(why, "The body must be a report, not application/json.");
    assert_false(
        lw_httpmsg_media_type("application/csp-report; x=1", 27, reports, 2, "a report", why, sizeof why));
    assert_string_equal(why, "application/csp-report takes no parameter but charset=utf-8, not x.");
}

static void test_media_type_refused(void **state)
{
    (void)state;
    char why[LW_HTTPMSG_WHY_MAX];
    static const struct {
        const char *v, *says;
    } bad[] = {
        {"application/jsonx", "not application/jsonx"},
        {"application/json-patch+json", "not application/json-patch+json"},
        {"application/jso", "not application/jso"},
        {"text/json", "not text/json"},
        {"text/plain; charset=utf-8", "not text/plain"},
        {"", "malformed"},
        {"application", "malformed"},
        {"application/", "malformed"},
        {"/json", "malformed"},
        {"application /json", "malformed"},
        {"application/json x", "malformed at byte 17"},
        {"application/json, text/plain", "malformed at byte 16"},
        {"application/json; charset", "name=value"},
        {"application/json; charset = utf-8", "name=value"},
        {"application/json; =utf-8", "name=value"},
        {"application/json; charset=", "no value"},
        {"application/json; charset=\"utf-8", "no value"},
        {"application/json; charset=\"utf\x01-8\"", "no value"},
        {"application/json; charset=latin1", "charset=latin1"},
        {"application/json; charset=\"iso-8859-1\"", "charset=iso-8859-1"},
        {"application/json; charset=utf-8x", "charset=utf-8x"},
        {"application/json; charset=utf8", "charset=utf8"},
        {"application/json; foo=bar", "not foo"},
        {"application/json; charset=utf-8; q=1", "not q"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (json_type(bad[i].v, why))
            fail_msg("%s accepted", bad[i].v);
        if (!strstr(why, bad[i].says))
            fail_msg("%s: \"%s\" does not say \"%s\"", bad[i].v, why, bad[i].says);
    }
    /* A NUL inside the value is not the end of it. */
    assert_false(lw_httpmsg_media_type("application/json\0x", 18, json, 1, "JSON", why, sizeof why));
    /* Long values are quoted in part: the sentence always fits. */
    char longv[600];
    memset(longv, 'a', sizeof longv);
    memcpy(longv, "application/json; ", 18);
    assert_false(lw_httpmsg_media_type(longv, sizeof longv, json, 1, "JSON", why, sizeof why));
    assert_true(strlen(why) < sizeof why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framing_ok),    cmocka_unit_test(test_framing_reject),
        cmocka_unit_test(test_framing_close), cmocka_unit_test(test_framing_small_why),
        cmocka_unit_test(test_media_type_ok), cmocka_unit_test(test_media_type_refused),
    };
    return cmocka_run_group_tests_name("httpmsg", tests, NULL, NULL);
}
