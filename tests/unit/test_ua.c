/* Unit tests for ua.c: the User-Agent matcher, on real-world strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lw.h"
#include "ua.h"

typedef struct ua_case {
    const char *ua;
    const char *browser, *browser_version, *os, *os_version, *device_model, *name;
} ua_case;

static const ua_case cases[] = {
    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 "
     "Safari/537.36",
     "Chrome", "120.0.6099", "Windows", "10", "", "Chrome on Windows"},
    {"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "Firefox", "121.0", "Linux", "",
     "", "Firefox on Linux"},
    /* uap-core names the distribution when the User-Agent does */
    {"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0", "Firefox", "115.0",
     "Ubuntu", "", "", "Firefox on Ubuntu"},
    {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 "
     "Safari/605.1.15",
     "Safari", "17.1", "Mac OS X", "10.15.7", "Mac", "Safari on Mac OS X"},
    {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:120.0) Gecko/20100101 Firefox/120.0", "Firefox", "120.0",
     "Mac OS X", "10.15", "Mac", "Firefox on Mac OS X"},
    {"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.1 Mobile/15E148 Safari/604.1",
     "Mobile Safari", "17.1", "iOS", "17.1", "iPhone", "Mobile Safari on iOS"},
    {"Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 "
     "Mobile/15E148 Safari/604.1",
     "Mobile Safari", "16.6", "iOS", "16.6", "iPad", "Mobile Safari on iOS"},
    {"Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
     "Chrome Mobile iOS", "120.0.6099", "iOS", "17.2", "iPhone", "Chrome Mobile iOS on iOS"},
    {"Mozilla/5.0 (Linux; Android 14; Pixel 7 Build/UQ1A.240105.004) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.6099.144 Mobile Safari/537.36",
     "Chrome Mobile", "120.0.6099", "Android", "14", "Pixel 7", "Chrome Mobile on Android"},
    /* Chrome's reduced UA: "K" stands in for every model, so no model */
    {"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile "
     "Safari/537.36",
     "Chrome Mobile", "120.0.0", "Android", "10", "", "Chrome Mobile on Android"},
    {"Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
     "Samsung Internet", "23.0", "Android", "13", "SM-S918B", "Samsung Internet on Android"},
    /* the old stock browser is "Android" to uap-core, and the brand prefix is not part of the model */
    {"Mozilla/5.0 (Linux; U; Android 4.0.3; ko-kr; LG-L160L Build/IML74K) AppleWebkit/534.30 (KHTML, like Gecko) "
     "Version/4.0 Mobile Safari/534.30",
     "Android", "4.0.3", "Android", "4.0.3", "L160L", "Android on Android"},
    {"Mozilla/5.0 (Linux; Android 14; Pixel 8 Pro Build/UD1A.230803.041; wv) AppleWebKit/537.36 (KHTML, like "
     "Gecko) Version/4.0 Chrome/119.0.6045.193 Mobile Safari/537.36",
     "Chrome Mobile WebView", "119.0.6045", "Android", "14", "Pixel 8 Pro", "Chrome Mobile WebView on Android"},
    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
     "Safari/537.36 Edg/120.0.2210.91",
     "Edge", "120.0.2210", "Windows", "10", "", "Edge on Windows"},
    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 "
     "Safari/537.36 OPR/105.0.0.0",
     "Opera", "105.0.0", "Windows", "10", "", "Opera on Windows"},
    {"Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:109.0) Gecko/20100101 Firefox/115.0", "Firefox", "115.0",
     "Windows", "7", "", "Firefox on Windows"},
    {"Mozilla/5.0 (Windows NT 6.3; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36",
     "Chrome", "109.0.0", "Windows", "8.1", "", "Chrome on Windows"},
    {"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
     "Safari/537.36",
     "Chrome", "120.0.0", "Chrome OS", "14541.0.0", "", "Chrome on Chrome OS"},
    {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chromium/120.0.6099.71 "
     "Chrome/120.0.6099.71 Safari/537.36",
     "Chromium", "120.0.6099", "Linux", "", "", "Chromium on Linux"},
    {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.28 "
     "Safari/537.36",
     "HeadlessChrome", "120.0.6099", "Linux", "", "", "HeadlessChrome on Linux"},
    {"curl/8.4.0", "curl", "8.4.0", "Other", "", "", "curl"},
    {"linkward/0.1.0 (Linux x86_64)", "Linkward CLI", "0.1.0", "Linux", "", "", "Linkward CLI on Linux"},
    {"", "Other", "", "Other", "", "", "Unknown device"},
    {"garbage \x01\x02\xff ((;;;))", "Other", "", "Other", "", "", "Unknown device"},
    {"Wget/1.21.3", "Wget", "1.21.3", "Other", "", "", "Wget"},
    /* a "Generic Smartphone" to uap-core: a form factor, not a model */
    {"Mozilla/5.0 (Linux; Android 12)", "Android", "12", "Android", "12", "", "Android on Android"},
    /* bots: the "Spider" device's model ("Smartphone") is not a device either */
    {"Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.6099.216 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
     "Googlebot", "2.1", "Android", "6.0.1", "", "Googlebot on Android"},
    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0", "Firefox", "125.0",
     "Windows", "10", "", "Firefox on Windows"},
};

static void check(const ua_case *c, const lw_ua *u)
{
    assert_string_equal(u->browser, c->browser);
    assert_string_equal(u->browser_version, c->browser_version);
    assert_string_equal(u->os, c->os);
    assert_string_equal(u->os_version, c->os_version);
    assert_string_equal(u->device_model, c->device_model);
    char name[128];
    lw_ua_name(u, name, sizeof name);
    assert_string_equal(name, c->name);
}

static void test_real_world(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lw_ua u;
        lw_ua_parse(&u, cases[i].ua, strlen(cases[i].ua));
        check(&cases[i], &u);
    }
}

static void test_null(void **state)
{
    (void)state;
    lw_ua u;
    lw_ua_parse(&u, NULL, 0);
    static const ua_case unknown = {"", "Other", "", "Other", "", "", "Unknown device"};
    check(&unknown, &u);
    lw_ua_parse(&u, NULL, 100); /* NULL wins over len */
    assert_string_equal(u.browser, "Other");
}

/* The parser must never read past len: feed every prefix of every case from
 * an exactly-sized heap copy (ASan catches any overread). */
static void test_prefixes_bounded(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].ua);
        for (size_t k = 0; k <= n; k++) {
            char *copy = malloc(k ? k : 1);
            memcpy(copy, cases[i].ua, k);
            lw_ua u;
            lw_ua_parse(&u, copy, k);
            assert_true(strlen(u.browser) < LW_UA_FIELD && strlen(u.device_model) < LW_UA_FIELD);
            free(copy);
        }
    }
    /* A token cut at the end: "Chrome" without "/" is not Chrome. */
    const char *s = "Mozilla/5.0 (Windows NT 10.0) Chrome/";
    lw_ua u;
    lw_ua_parse(&u, s, strlen(s) - 1);
    assert_string_equal(u.browser, "Other");
    lw_ua_parse(&u, s, strlen(s));
    assert_string_equal(u.browser, "Chrome");
    assert_string_equal(u.browser_version, "");
}

static void test_long_fields_truncated(void **state)
{
    (void)state;
    char ua[600];
    int n = snprintf(ua, sizeof ua, "Mozilla/5.0 (Linux; Android 14; %0200d Build/X) Chrome/%0300d", 7, 1);
    assert_true(n > 0 && (size_t)n < sizeof ua);
    lw_ua u;
    lw_ua_parse(&u, ua, (size_t)n);
    assert_string_equal(u.browser, "Chrome");
    assert_int_equal(strlen(u.browser_version), LW_UA_FIELD - 1);
    assert_int_equal(strlen(u.device_model), LW_UA_FIELD - 1);
    /* Control characters never get into a field. */
    const char *evil = "Mozilla/5.0 (Linux; Android 14; Pix\x1b[31mel Build/X) Chrome/1.0";
    lw_ua_parse(&u, evil, strlen(evil));
    assert_string_equal(u.device_model, "Pix");
}

static void test_name_truncation(void **state)
{
    (void)state;
    lw_ua u;
    const char *s = cases[0].ua;
    lw_ua_parse(&u, s, strlen(s));
    char small[8] = "xxxxxxx";
    lw_ua_name(&u, small, sizeof small); /* "Chrome on Windows" does not fit */
    assert_string_equal(small, "");
    char exact[18];
    lw_ua_name(&u, exact, sizeof exact);
    assert_string_equal(exact, "Chrome on Windows");
    lw_ua_name(&u, NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_world),
        cmocka_unit_test(test_null),
        cmocka_unit_test(test_prefixes_bounded),
        cmocka_unit_test(test_long_fields_truncated),
        cmocka_unit_test(test_name_truncation),
    };
    return cmocka_run_group_tests_name("ua", tests, NULL, NULL);
}
