/*
 * Unit tests for ua.c: the uap-core based parser on real-world strings, its
 * cache, Client Hints, the fallback to the built-in matcher without the rules
 * file, custom rules files, bounds and allocation failures. uap-core's own
 * suites run in test_ua_uap.c.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    {"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "Firefox", "121.0", "Linux",
     "", "", "Firefox on Linux"},
    /* uap-core names the distribution when the User-Agent does */
    {"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0", "Firefox", "115.0",
     "Ubuntu", "", "", "Firefox on Ubuntu"},
    {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 "
     "Safari/605.1.15",
     "Safari", "17.1", "Mac OS X", "10.15.7", "Mac", "Safari on Mac OS X"},
    {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:120.0) Gecko/20100101 Firefox/120.0", "Firefox",
     "120.0", "Mac OS X", "10.15", "Mac", "Firefox on Mac OS X"},
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
    {"Mozilla/5.0 (Linux; U; Android 4.0.3; ko-kr; LG-L160L Build/IML74K) AppleWebkit/534.30 (KHTML, like "
     "Gecko) "
     "Version/4.0 Mobile Safari/534.30",
     "Android", "4.0.3", "Android", "4.0.3", "L160L", "Android on Android"},
    {"Mozilla/5.0 (Linux; Android 14; Pixel 8 Pro Build/UD1A.230803.041; wv) AppleWebKit/537.36 (KHTML, like "
     "Gecko) Version/4.0 Chrome/119.0.6045.193 Mobile Safari/537.36",
     "Chrome Mobile WebView", "119.0.6045", "Android", "14", "Pixel 8 Pro",
     "Chrome Mobile WebView on Android"},
    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
     "Safari/537.36 Edg/120.0.2210.91",
     "Edge", "120.0.2210", "Windows", "10", "", "Edge on Windows"},
    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 "
     "Safari/537.36 OPR/105.0.0.0",
     "Opera", "105.0.0", "Windows", "10", "", "Opera on Windows"},
    {"Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:109.0) Gecko/20100101 Firefox/115.0", "Firefox", "115.0",
     "Windows", "7", "", "Firefox on Windows"},
    {"Mozilla/5.0 (Windows NT 6.3; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 "
     "Safari/537.36",
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
     "Chrome/120.0.6099.216 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
     "+http://www.google.com/bot.html)",
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

static void parse_str(lw_ua *u, const char *s)
{
    lw_ua_parse(u, s, strlen(s));
}

/* Runs first: nobody called lw_ua_init, the first parse loads the default rules. */
static void test_lazy_init(void **state)
{
    (void)state;
    lw_ua u;
    parse_str(&u, cases[0].ua);
    lw_ua_stats st;
    lw_ua_get_stats(&st);
    assert_true(st.uap);
    assert_true(st.rules > 1000);
    assert_string_equal(lw_ua_error(), "");
}

static void test_real_world(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lw_ua u;
        parse_str(&u, cases[i].ua);
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
    lw_uap a;
    assert_int_equal(lw_ua_parse_agent(&a, NULL, 100), LW_ENOTFOUND);
    assert_string_equal(a.family, "Other");
    assert_string_equal(a.major, "");
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
            assert_non_null(copy);
            memcpy(copy, cases[i].ua, k);
            lw_ua u;
            lw_ua_parse(&u, copy, k);
            assert_true(strlen(u.browser) < LW_UA_FIELD && strlen(u.device_model) < LW_UA_FIELD);
            lw_uap d;
            int rc = lw_ua_parse_device(&d, copy, k);
            assert_true(rc == LW_OK || rc == LW_ENOTFOUND);
            free(copy);
        }
    }
    /* A version cut at the end: uap-core wants "Chrome/major.minor". */
    const char *s = "Mozilla/5.0 (Windows NT 10.0) Chrome/120.0";
    lw_ua u;
    lw_ua_parse(&u, s, strlen(s) - 1);
    assert_string_equal(u.browser, "Other");
    lw_ua_parse(&u, s, strlen(s));
    assert_string_equal(u.browser, "Chrome");
    assert_string_equal(u.browser_version, "120.0");
}

static void test_long_fields_truncated(void **state)
{
    (void)state;
    char ua[700];
    int n =
        snprintf(ua, sizeof ua,
                 "Mozilla/5.0 (Linux; Android 14; SM-S%0200d Build/X) AppleWebKit/537.36 (KHTML, like Gecko) "
                 "Chrome/120.0.%0300d Mobile Safari/537.36",
                 7, 1);
    assert_true(n > 0 && (size_t)n < sizeof ua);
    lw_ua u;
    lw_ua_parse(&u, ua, (size_t)n);
    assert_string_equal(u.browser, "Chrome");
    assert_int_equal(strlen(u.browser_version), LW_UA_FIELD - 1);
    assert_memory_equal(u.browser_version, "120.0.000", 9);
    assert_memory_equal(u.device_model, "SM-S000", 7); /* uap-core's rule takes 50 characters */
    assert_true(strlen(u.device_model) < LW_UA_FIELD);
    /* uap-core's raw fields have their own, larger bound. */
    lw_uap a;
    assert_int_equal(lw_ua_parse_agent(&a, ua, (size_t)n), LW_OK);
    assert_int_equal(strlen(a.patch), LW_UAP_FIELD - 1);
    /* Control characters never get into a field. */
    const char *evil = "Mozilla/5.0 (Linux; Android 14; Pix\x1b[31mel Build/X) Chrome/1.0";
    parse_str(&u, evil);
    assert_string_equal(u.device_model, "Pix");
    /* The raw answer keeps the bytes (it is for tests, never for display). */
    lw_uap d;
    assert_int_equal(lw_ua_parse_device(&d, evil, strlen(evil)), LW_OK);
    assert_string_equal(d.model, "Pix\x1b[31mel");
}

/* A User-Agent far past the input bound is parsed on its first bytes, uncached. */
static void test_huge_input(void **state)
{
    (void)state;
    size_t n = 64 * 1024;
    char *big = malloc(n);
    assert_non_null(big);
    const char *head = cases[0].ua;
    memcpy(big, head, strlen(head));
    memset(big + strlen(head), 'x', n - strlen(head));
    lw_ua_stats before, after;
    lw_ua_get_stats(&before);
    lw_ua u;
    lw_ua_parse(&u, big, n);
    assert_string_equal(u.browser, "Chrome");
    assert_string_equal(u.os, "Windows");
    lw_ua_get_stats(&after);
    assert_int_equal(after.cache_misses, before.cache_misses); /* not even looked up */
    free(big);
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

/* ---- the cache ------------------------------------------------------------ */

static void test_cache(void **state)
{
    (void)state;
    assert_int_equal(lw_ua_init(NULL), LW_OK); /* starts empty */
    lw_ua_stats st;
    lw_ua_get_stats(&st);
    assert_int_equal(st.cache_entries, 0);

    lw_ua first, again;
    parse_str(&first, cases[8].ua);
    parse_str(&again, cases[8].ua);
    assert_memory_equal(&first, &again, sizeof first);
    lw_ua_get_stats(&st);
    assert_int_equal(st.cache_entries, 1);
    assert_int_equal(st.cache_misses, 1);
    assert_int_equal(st.cache_hits, 1);

    /* Client Hints refine the caller's copy, never the cached answer. */
    lw_ua_apply_client_hints(&again, "\"Google Chrome\";v=\"121\"", "\"Android\"", "\"15.0.0\"",
                             "\"Pixel 9\"");
    assert_string_equal(again.device_model, "Pixel 9");
    parse_str(&again, cases[8].ua);
    assert_memory_equal(&first, &again, sizeof first);

    /* Bounded: more distinct strings than entries evict the oldest, and an
     * evicted string parses to the same answer as before. */
    char ua[160];
    for (int i = 0; i < LW_UA_CACHE_ENTRIES + 200; i++) {
        int n = snprintf(ua, sizeof ua,
                         "Mozilla/5.0 (X11; Linux x86_64; rv:%d.0) Gecko/20100101 Firefox/%d.0", i, i % 150);
        assert_true(n > 0 && (size_t)n < sizeof ua);
        lw_ua u;
        lw_ua_parse(&u, ua, (size_t)n);
        assert_string_equal(u.browser, "Firefox");
    }
    lw_ua_get_stats(&st);
    assert_int_equal(st.cache_entries, LW_UA_CACHE_ENTRIES);
    unsigned long long misses = st.cache_misses;
    parse_str(&again, cases[8].ua); /* long evicted */
    assert_memory_equal(&first, &again, sizeof first);
    lw_ua_get_stats(&st);
    assert_int_equal(st.cache_misses, misses + 1);
    assert_int_equal(st.cache_entries, LW_UA_CACHE_ENTRIES);

    /* Every case answers the same from the cache as fresh. */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lw_ua u1, u2;
        parse_str(&u1, cases[i].ua);
        parse_str(&u2, cases[i].ua);
        assert_memory_equal(&u1, &u2, sizeof u1);
        check(&cases[i], &u2);
    }
}

/* Parsers on several threads share the rules and the cache (ASan/UBSan
 * builds run this too). */
static void *parse_worker(void *arg)
{
    (void)arg;
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            lw_ua u;
            parse_str(&u, cases[i].ua);
            if (strcmp(u.browser, cases[i].browser) != 0 || strcmp(u.os, cases[i].os) != 0)
                return (void *)1;
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    lw_ua_free(); /* the threads race to load the rules lazily */
    pthread_t t[4];
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, parse_worker, NULL), 0);
    for (size_t i = 0; i < 4; i++) {
        void *ret;
        assert_int_equal(pthread_join(t[i], &ret), 0);
        assert_null(ret);
    }
    lw_ua_stats st;
    lw_ua_get_stats(&st);
    assert_true(st.uap);
}

/* ---- Client Hints ----------------------------------------------------------- */

typedef struct hint_case {
    const char *ua;
    const char *sec_ch_ua, *platform, *platform_version, *model;
    const char *browser, *browser_version, *os, *os_version, *device_model;
} hint_case;

#define UA_CHROME_WIN                                                                                        \
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "     \
    "Safari/537.36"
#define UA_CHROME_ANDROID_REDUCED                                                                            \
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile "     \
    "Safari/537.36"
#define UA_CHROME_MAC                                                                                        \
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "                \
    "Chrome/124.0.0.0 "                                                                                      \
    "Safari/537.36"
#define CH_CHROME "\"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\""

static const hint_case hint_cases[] = {
    /* Windows 11 is only visible through the platform version (13+) */
    {UA_CHROME_WIN, CH_CHROME, "\"Windows\"", "\"15.0.0\"", "\"\"", "Chrome", "124.0.0", "Windows", "11", ""},
    {UA_CHROME_WIN, CH_CHROME, "\"Windows\"", "\"13.0.0\"", NULL, "Chrome", "124.0.0", "Windows", "11", ""},
    {UA_CHROME_WIN, CH_CHROME, "\"Windows\"", "\"10.0.0\"", NULL, "Chrome", "124.0.0", "Windows", "10", ""},
    {UA_CHROME_WIN, CH_CHROME, "\"Windows\"", "\"1.0.0\"", NULL, "Chrome", "124.0.0", "Windows", "10", ""},
    {UA_CHROME_WIN, CH_CHROME, "\"Windows\"", "\"0.3.0\"", NULL, "Chrome", "124.0.0", "Windows", "8.1", ""},
    /* 11 and 12 were never shipped: the UA's answer stands */
    {UA_CHROME_WIN, CH_CHROME, "\"Windows\"", "\"11.0.0\"", NULL, "Chrome", "124.0.0", "Windows", "10", ""},
    /* a real brand beats Chromium; GREASE in any spelling is skipped */
    {UA_CHROME_WIN, "\"Not/A)Brand\";v=\"8\", \"Chromium\";v=\"126\", \"Microsoft Edge\";v=\"126\"", NULL,
     NULL, NULL, "Edge", "126", "Windows", "10", ""},
    {UA_CHROME_WIN, "\" Not A;Brand\";v=\"99\", \"Chromium\";v=\"124\", \"Brave\";v=\"124\"", NULL, NULL,
     NULL, "Brave", "124", "Windows", "10", ""},
    {UA_CHROME_WIN, "\"Chromium\";v=\"124\", \"Opera\";v=\"110\", \"Not-A.Brand\";v=\"99\"", NULL, NULL, NULL,
     "Opera", "110", "Windows", "10", ""},
    /* the same brand keeps the UA's finer version, a newer major replaces it */
    {UA_CHROME_WIN, "\"Google Chrome\";v=\"125\", \"Chromium\";v=\"125\"", NULL, NULL, NULL, "Chrome", "125",
     "Windows", "10", ""},
    /* Chromium alone: the UA's answer is at least as precise */
    {UA_CHROME_WIN, "\"Chromium\";v=\"124\", \"Not(A:Brand\";v=\"24\"", NULL, NULL, NULL, "Chrome", "124.0.0",
     "Windows", "10", ""},
    {"SomeEmbedder", "\"Chromium\";v=\"124\", \"Not(A:Brand\";v=\"24\"", NULL, NULL, NULL, "Chromium", "124",
     "Other", "", ""},
    /* Android's reduced UA: "Chrome Mobile" is Chrome, the real version and model come from the hints */
    {UA_CHROME_ANDROID_REDUCED, CH_CHROME, "\"Android\"", "\"14.0.0\"", "\"Pixel 7\"", "Chrome Mobile",
     "124.0.0", "Android", "14", "Pixel 7"},
    {UA_CHROME_MAC, CH_CHROME, "\"macOS\"", "\"14.2.1\"", "\"\"", "Chrome", "124.0.0", "Mac OS X", "14.2.1",
     "Mac"},
    {UA_CHROME_MAC, CH_CHROME, "\"macOS\"", "\"14.0.0\"", NULL, "Chrome", "124.0.0", "Mac OS X", "14", "Mac"},
    /* a platform that differs from the UA's wins, with its own version or none */
    {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
     CH_CHROME, "\"Chrome OS\"", NULL, NULL, "Chrome", "124.0.0", "Chrome OS", "", ""},
    {UA_CHROME_WIN, NULL, "\"Linux\"", "\"\"", NULL, "Chrome", "124.0.0", "Linux", "", ""},
    /* bare (unquoted) values are taken too */
    {UA_CHROME_WIN, NULL, "Windows", "15.0.0", NULL, "Chrome", "124.0.0", "Windows", "11", ""},
    /* ignored: unknown platform, malformed lists, bad versions, control characters */
    {UA_CHROME_WIN, NULL, "\"Unknown\"", "\"1.0\"", NULL, "Chrome", "124.0.0", "Windows", "10", ""},
    {UA_CHROME_WIN, "\"Microsoft Edge\";v=\"126\", ", NULL, NULL, NULL, "Chrome", "124.0.0", "Windows", "10",
     ""},
    {UA_CHROME_WIN, "\"Microsoft Edge;v=\"126\"", NULL, NULL, NULL, "Chrome", "124.0.0", "Windows", "10", ""},
    {UA_CHROME_WIN, "Microsoft Edge;v=126", NULL, NULL, NULL, "Chrome", "124.0.0", "Windows", "10", ""},
    {UA_CHROME_WIN, "\"Microsoft Edge\";V=\"126\"", NULL, NULL, NULL, "Chrome", "124.0.0", "Windows", "10",
     ""},
    {UA_CHROME_WIN, "\"Evil\x1b[2J\";v=\"1\"", NULL, NULL, NULL, "Chrome", "124.0.0", "Windows", "10", ""},
    {UA_CHROME_WIN, "\"Edge\\\"Quoted\";v=\"x1\"", NULL, NULL, NULL, "Edge\"Quoted", "", "Windows", "10", ""},
    {UA_CHROME_WIN, NULL, "\"Windows\"", "\"15.0.0; rm -rf\"", "\"Pix\x1b[31mel\"", "Chrome", "124.0.0",
     "Windows", "10", ""},
    {UA_CHROME_WIN, NULL, "\"Windows\"", "\"15.0.0\" \"1\"", "\"A\", \"B\"", "Chrome", "124.0.0", "Windows",
     "10", ""},
};

static void test_client_hints(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof hint_cases / sizeof hint_cases[0]; i++) {
        const hint_case *c = &hint_cases[i];
        lw_ua u;
        parse_str(&u, c->ua);
        lw_ua_apply_client_hints(&u, c->sec_ch_ua, c->platform, c->platform_version, c->model);
        if (strcmp(u.browser, c->browser) != 0 || strcmp(u.browser_version, c->browser_version) != 0 ||
            strcmp(u.os, c->os) != 0 || strcmp(u.os_version, c->os_version) != 0 ||
            strcmp(u.device_model, c->device_model) != 0)
            fail_msg("hint case %zu: got {%s, %s, %s, %s, %s}", i, u.browser, u.browser_version, u.os,
                     u.os_version, u.device_model);
    }
    /* No hints at all change nothing; neither does a NULL target. */
    lw_ua u, v;
    parse_str(&u, UA_CHROME_WIN);
    v = u;
    lw_ua_apply_client_hints(&v, NULL, NULL, NULL, NULL);
    assert_memory_equal(&u, &v, sizeof u);
    lw_ua_apply_client_hints(NULL, CH_CHROME, "\"Windows\"", NULL, NULL);
}

/* Every hint is bounded: past the limits the value is ignored, not cut. */
static void test_client_hints_bounds(void **state)
{
    (void)state;
    char list[4096];
    size_t o = 0;
    /* 17 brands: one more than the list may hold */
    for (int i = 0; i < 17; i++) {
        int n = snprintf(list + o, sizeof list - o, "%s\"B%d\";v=\"%d\"", i ? ", " : "", i, i);
        assert_true(n > 0 && (size_t)n < sizeof list - o);
        o += (size_t)n;
    }
    lw_ua u;
    parse_str(&u, UA_CHROME_WIN);
    lw_ua_apply_client_hints(&u, list, NULL, NULL, NULL);
    assert_string_equal(u.browser, "Chrome");

    /* a 2000-byte list, a 300-byte model, a 100-byte brand name */
    char big[2100];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big, "\"Opera\";v=\"1\"", 13);
    lw_ua_apply_client_hints(&u, big, NULL, NULL, big);
    assert_string_equal(u.browser, "Chrome");
    assert_string_equal(u.device_model, "");
    char model[302];
    model[0] = '"';
    memset(model + 1, 'M', 299);
    model[300] = '"';
    model[301] = '\0';
    lw_ua_apply_client_hints(&u, NULL, NULL, NULL, model);
    assert_string_equal(u.device_model, "");
    char brand[120];
    int n = snprintf(brand, sizeof brand, "\"%0100d\";v=\"1\"", 7);
    assert_true(n > 0 && (size_t)n < sizeof brand);
    lw_ua_apply_client_hints(&u, brand, NULL, NULL, NULL);
    assert_string_equal(u.browser, "Chrome");
    /* a 63-character model is the longest that fits, and fits whole */
    char fits[LW_UA_FIELD + 2];
    fits[0] = '"';
    memset(fits + 1, 'M', LW_UA_FIELD - 1);
    fits[LW_UA_FIELD] = '"';
    fits[LW_UA_FIELD + 1] = '\0';
    lw_ua_apply_client_hints(&u, NULL, NULL, NULL, fits);
    assert_int_equal(strlen(u.device_model), LW_UA_FIELD - 1);
}

/* ---- without the rules, and with other rules ---------------------------------- */

static char tmpdir[64];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void test_fallback_without_file(void **state)
{
    (void)state;
    lw_ua_free();
    assert_int_equal(lw_ua_init("/nonexistent/uap-core/regexes.yaml"), LW_ENOTFOUND);
    assert_non_null(strstr(lw_ua_error(), "/nonexistent/uap-core/regexes.yaml"));
    lw_ua_stats st;
    lw_ua_get_stats(&st);
    assert_false(st.uap);
    assert_int_equal(st.rules, 0);

    /* The built-in matcher answers, with uap-core's system names. */
    lw_ua u;
    parse_str(&u, cases[0].ua);
    static const ua_case chrome = {"", "Chrome", "120.0.6099", "Windows", "10", "", "Chrome on Windows"};
    check(&chrome, &u);
    parse_str(&u, cases[3].ua);
    static const ua_case safari = {"", "Safari", "17.1", "Mac OS X", "10.15.7", "Mac", "Safari on Mac OS X"};
    check(&safari, &u);
    parse_str(&u, cases[8].ua);
    static const ua_case pixel = {"",   "Chrome",  "120.0.6099",       "Android",
                                  "14", "Pixel 7", "Chrome on Android"};
    check(&pixel, &u);
    parse_str(&u, cases[9].ua);
    assert_string_equal(u.device_model, ""); /* "K" */
    parse_str(&u, cases[17].ua);
    assert_string_equal(u.os, "Chrome OS");
    /* Client Hints work the same on its answers. */
    lw_ua_apply_client_hints(&u, CH_CHROME, "\"Chrome OS\"", "\"15633.69.0\"", NULL);
    assert_string_equal(u.os_version, "15633.69");
    /* bounds hold in the built-in matcher too */
    char ua[600];
    int n = snprintf(ua, sizeof ua, "Mozilla/5.0 (Linux; Android 14; %0200d Build/X) Chrome/%0300d", 7, 1);
    assert_true(n > 0 && (size_t)n < sizeof ua);
    lw_ua_parse(&u, ua, (size_t)n);
    assert_string_equal(u.browser, "Chrome");
    assert_int_equal(strlen(u.browser_version), LW_UA_FIELD - 1);
    assert_int_equal(strlen(u.device_model), LW_UA_FIELD - 1);

    /* The per-section parsers say the rules are missing. */
    lw_uap a;
    assert_int_equal(lw_ua_parse_agent(&a, cases[0].ua, strlen(cases[0].ua)), LW_EINVAL);
    assert_string_equal(a.family, "Other");

    /* After lw_ua_free the next parse loads the default rules again. */
    lw_ua_free();
    parse_str(&u, cases[5].ua);
    check(&cases[5], &u);
    lw_ua_get_stats(&st);
    assert_true(st.uap);
}

static const char custom_rules[] = "user_agent_parsers:\n"
                                   "  - regex: '(Foo)Browser/(\\d+)\\.(\\d+)'\n"
                                   "    family_replacement: 'Foo $1 Deluxe'\n"
                                   "  - regex: '(Bar)/(\\d+)'\n"
                                   "    v1_replacement: '9'\n"
                                   "os_parsers:\n"
                                   "  - regex: '(FooOS) (\\d+)'\n"
                                   "    os_replacement: ' $1 '\n"
                                   "    os_v2_replacement: '$5'\n"
                                   "    os_v3_replacement: 'p$2'\n"
                                   "device_parsers:\n"
                                   "  - regex: 'Foo(Phone) ([A-Z0-9]+)'\n"
                                   "    regex_flag: 'i'\n"
                                   "    device_replacement: '$1 $2'\n"
                                   "    brand_replacement: 'Foo'\n"
                                   "    model_replacement: '$2'\n"
                                   "  - regex: 'Gen(eric)'\n";

static void test_custom_rules(void **state)
{
    (void)state;
    char path[128];
    int pn = snprintf(path, sizeof path, "%s/rules.yaml", tmpdir);
    assert_true(pn > 0 && (size_t)pn < sizeof path);
    write_file(path, custom_rules);
    assert_int_equal(lw_ua_init(path), LW_OK);
    lw_ua_stats st;
    lw_ua_get_stats(&st);
    assert_true(st.uap);
    assert_int_equal(st.rules, 5);

    const char *s = "foophone x1 FooBrowser/3.4 FooOS 7";
    lw_uap r;
    assert_int_equal(lw_ua_parse_agent(&r, s, strlen(s)), LW_OK);
    assert_string_equal(r.family, "Foo Foo Deluxe");
    assert_string_equal(r.major, "3");
    assert_string_equal(r.minor, "4");
    assert_string_equal(r.patch, "");
    assert_int_equal(lw_ua_parse_os(&r, s, strlen(s)), LW_OK);
    assert_string_equal(r.family, "FooOS"); /* trimmed */
    assert_string_equal(r.major, "7");
    assert_string_equal(r.minor, ""); /* $5 is no group */
    assert_string_equal(r.patch, "p7");
    assert_int_equal(lw_ua_parse_device(&r, s, strlen(s)), LW_OK); /* case-insensitive */
    assert_string_equal(r.family, "phone x1");
    assert_string_equal(r.brand, "Foo");
    assert_string_equal(r.model, "x1");
    s = "Bar/3 Generic";
    assert_int_equal(lw_ua_parse_agent(&r, s, strlen(s)), LW_OK);
    assert_string_equal(r.family, "Bar");
    assert_string_equal(r.major, "9"); /* static replacement */
    assert_int_equal(lw_ua_parse_device(&r, s, strlen(s)), LW_OK);
    assert_string_equal(r.family, "eric");
    assert_string_equal(r.brand, "");
    assert_string_equal(r.model, "eric");
    assert_int_equal(lw_ua_parse_os(&r, s, strlen(s)), LW_ENOTFOUND);
    assert_string_equal(r.family, "Other");

    lw_ua u;
    parse_str(&u, "foophone x1 FooBrowser/3.4 FooOS 7");
    static const ua_case want = {"", "Foo Foo Deluxe", "3.4", "FooOS", "7", "x1", "Foo Foo Deluxe on FooOS"};
    check(&want, &u);
    assert_int_equal(unlink(path), 0);
}

static void test_bad_rules(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        const char *msg;
    } bad[] = {
        {"user_agent_parsers:\n  - regex: '(unclosed'\nos_parsers: []\ndevice_parsers: []\n", LW_EINVAL,
         ":2:"},
        {"user_agent_parsers: []\nos_parsers: []\n", LW_EINVAL, "device_parsers"},
        {"user_agent_parsers:\n  - family_replacement: 'x'\nos_parsers: []\ndevice_parsers: []\n", LW_EINVAL,
         "no regex"},
        {"user_agent_parsers:\n  - regex: 'a'\n    regex_flag: 'x'\nos_parsers: []\ndevice_parsers: []\n",
         LW_EINVAL, "regex_flag"},
        {"user_agent_parsers: {a: b}\nos_parsers: []\ndevice_parsers: []\n", LW_EINVAL, "list"},
        {"user_agent_parsers:\n  - regex: [a]\nos_parsers: []\ndevice_parsers: []\n", LW_EINVAL, "scalar"},
        {"- just\n- a list\n", LW_EINVAL, "mapping"},
        {"user_agent_parsers: [\n", LW_EINVAL, ":"},
        {"", LW_EINVAL, "mapping"},
    };
    char path[128];
    int pn = snprintf(path, sizeof path, "%s/bad.yaml", tmpdir);
    assert_true(pn > 0 && (size_t)pn < sizeof path);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, bad[i].text);
        int rc = lw_ua_init(path);
        if (rc != bad[i].rc || strstr(lw_ua_error(), bad[i].msg) == NULL)
            fail_msg("bad rules %zu: rc %d, error \"%s\"", i, rc, lw_ua_error());
        lw_ua_stats st;
        lw_ua_get_stats(&st);
        assert_false(st.uap);
        assert_int_equal(st.rules, 0);
        lw_ua u;
        parse_str(&u, cases[0].ua); /* the built-in matcher */
        assert_string_equal(u.browser, "Chrome");
    }
    assert_int_equal(unlink(path), 0);
    /* a directory is no rules file */
    assert_int_equal(lw_ua_init(tmpdir), LW_EIO);
    assert_int_equal(lw_ua_init(NULL), LW_OK);
}

/* Allocation failures while loading fall back to the built-in matcher and
 * leak nothing (the sanitizer build checks); while parsing, the built-in
 * matcher answers. */
static void test_alloc_failures(void **state)
{
    (void)state;
    static const long at[] = {0, 1, 2, 3, 50, 700, 2500};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        lw_alloc_fail_after(at[i]);
        int rc = lw_ua_init(NULL);
        lw_alloc_fail_after(-1);
        if (rc != LW_OK)
            assert_int_equal(rc, LW_ENOMEM);
        lw_ua u;
        parse_str(&u, cases[0].ua);
        assert_string_equal(u.browser, "Chrome");
    }
    assert_int_equal(lw_ua_init(NULL), LW_OK);
    for (long k = 0; k < 3; k++) {
        lw_alloc_fail_after(k);
        lw_ua u;
        parse_str(&u, cases[13].ua);
        lw_alloc_fail_after(-1);
        assert_string_equal(u.browser, "Edge");
        assert_string_equal(u.os, "Windows");
    }
}

static int group_setup(void **state)
{
    (void)state;
    int n = snprintf(tmpdir, sizeof tmpdir, "/tmp/lw-test-ua-XXXXXX");
    if (n < 0 || (size_t)n >= sizeof tmpdir || mkdtemp(tmpdir) == NULL)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    lw_ua_free();
    return rmdir(tmpdir) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lazy_init),
        cmocka_unit_test(test_real_world),
        cmocka_unit_test(test_null),
        cmocka_unit_test(test_prefixes_bounded),
        cmocka_unit_test(test_long_fields_truncated),
        cmocka_unit_test(test_huge_input),
        cmocka_unit_test(test_name_truncation),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_client_hints),
        cmocka_unit_test(test_client_hints_bounds),
        cmocka_unit_test(test_fallback_without_file),
        cmocka_unit_test(test_custom_rules),
        cmocka_unit_test(test_bad_rules),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests_name("ua", tests, group_setup, group_teardown);
}
