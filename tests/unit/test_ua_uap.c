/*
 * uap-core's own test suites (shipped by Debian's uap-core package) run through
 * ua.c's per-section parsers: test_ua.yaml (user_agent_parsers), test_os.yaml
 * (os_parsers) and test_device.yaml (device_parsers). Prints the pass rate of
 * each suite and the cost of an uncached parse; fails below the threshold.
 *
 * The threshold is 100%: the expected answers were produced by uap-core's
 * reference implementations from the same regexes.yaml, and PCRE2 accepts
 * every construct those regexes use, so any miss is a bug in the parser (the
 * replacement rules, the flags, or the order). Should a future uap-core rely
 * on a construct PCRE2 reads differently, list the case in known_exceptions
 * with the reason rather than lowering the bar.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <yaml.h>

#include "lw.h"
#include "ua.h"

#define UAP_TESTS_DIR "/usr/share/uap-core/tests"
#define MAX_FAILURES_SHOWN 10
/* An uncached parse (three sections, up to ~1200 regexes) must stay well under
 * a millisecond on average; the bound is loose so that a sanitizer build or a
 * busy CI machine still passes, while a lost JIT (10x slower) does not. */
#define MAX_AVG_US_PLAIN 1000.0
#define MAX_AVG_US_SANITIZED 20000.0

typedef enum { SUITE_UA, SUITE_OS, SUITE_DEVICE } suite_kind;

/* Cases whose expected answer PCRE2 cannot give, with the reason. None today. */
static const struct {
    const char *file, *ua;
} known_exceptions[] = {
    {NULL, NULL},
};

static bool is_exception(const char *file, const char *ua)
{
    for (size_t i = 0; i < sizeof known_exceptions / sizeof known_exceptions[0]; i++)
        if (known_exceptions[i].file && strcmp(known_exceptions[i].file, file) == 0 &&
            strcmp(known_exceptions[i].ua, ua) == 0)
            return true;
    return false;
}

/* The scalar's text, with YAML's spellings of null as "" (uap-core's fixtures
 * write null as an empty value, and the parsers return "" for null). */
static const char *scalar(yaml_node_t *n, size_t *len)
{
    if (n == NULL || n->type != YAML_SCALAR_NODE) {
        *len = 0;
        return "";
    }
    const char *s = (const char *)n->data.scalar.value;
    *len = n->data.scalar.length;
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        (*len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0)) {
        *len = 0;
        return "";
    }
    return s;
}

static bool field_is(const char *key, yaml_node_t *k)
{
    return k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == strlen(key) &&
           memcmp(k->data.scalar.value, key, k->data.scalar.length) == 0;
}

/* Expected value of one field of a case ("" for null or absent). */
static const char *expected(yaml_document_t *doc, yaml_node_t *c, const char *key)
{
    for (yaml_node_pair_t *p = c->data.mapping.pairs.start; p < c->data.mapping.pairs.top; p++) {
        if (field_is(key, yaml_document_get_node(doc, p->key))) {
            size_t n;
            return scalar(yaml_document_get_node(doc, p->value), &n);
        }
    }
    return "";
}

typedef struct suite_result {
    size_t total, passed, excepted;
    double us_per_parse; /* average per section call */
} suite_result;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void show_failure(size_t *shown, const char *file, const char *ua, const char *field, const char *want,
                         const char *got)
{
    if ((*shown)++ < MAX_FAILURES_SHOWN)
        printf("  FAIL %s: %s: %s want \"%s\" got \"%s\"\n", file, ua, field, want, got);
}

static void run_suite(const char *file, suite_kind kind, suite_result *res)
{
    char path[512];
    int pn = snprintf(path, sizeof path, "%s/%s", UAP_TESTS_DIR, file);
    assert_true(pn > 0 && (size_t)pn < sizeof path);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("%s: missing (install the uap-core package: make deps)", path);
    yaml_parser_t parser;
    yaml_document_t doc;
    assert_true(yaml_parser_initialize(&parser));
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc))
        fail_msg("%s:%lu: %s", path, (unsigned long)parser.problem_mark.line + 1, parser.problem);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    assert_non_null(root);
    assert_int_equal(root->type, YAML_MAPPING_NODE);
    yaml_node_t *cases = NULL;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++)
        if (field_is("test_cases", yaml_document_get_node(&doc, p->key)))
            cases = yaml_document_get_node(&doc, p->value);
    assert_non_null(cases);
    assert_int_equal(cases->type, YAML_SEQUENCE_NODE);

    memset(res, 0, sizeof *res);
    size_t shown = 0;
    double spent = 0;
    for (yaml_node_item_t *it = cases->data.sequence.items.start; it < cases->data.sequence.items.top; it++) {
        yaml_node_t *c = yaml_document_get_node(&doc, *it);
        assert_non_null(c);
        assert_int_equal(c->type, YAML_MAPPING_NODE);
        size_t ua_len = 0;
        const char *ua = "";
        for (yaml_node_pair_t *p = c->data.mapping.pairs.start; p < c->data.mapping.pairs.top; p++)
            if (field_is("user_agent_string", yaml_document_get_node(&doc, p->key)))
                ua = scalar(yaml_document_get_node(&doc, p->value), &ua_len);

        lw_uap got;
        double t0 = now_us();
        int rc = kind == SUITE_UA   ? lw_ua_parse_agent(&got, ua, ua_len)
                 : kind == SUITE_OS ? lw_ua_parse_os(&got, ua, ua_len)
                                    : lw_ua_parse_device(&got, ua, ua_len);
        spent += now_us() - t0;
        assert_true(rc == LW_OK || rc == LW_ENOTFOUND);

        static const char *const ua_fields[] = {"family", "major", "minor", "patch", NULL};
        static const char *const os_fields[] = {"family", "major", "minor", "patch", "patch_minor", NULL};
        static const char *const dev_fields[] = {"family", "brand", "model", NULL};
        const char *const *fields = kind == SUITE_UA ? ua_fields : kind == SUITE_OS ? os_fields : dev_fields;
        bool ok = true;
        for (size_t i = 0; fields[i] != NULL; i++) {
            const char *name = fields[i];
            const char *g = strcmp(name, "family") == 0        ? got.family
                            : strcmp(name, "major") == 0       ? got.major
                            : strcmp(name, "minor") == 0       ? got.minor
                            : strcmp(name, "patch") == 0       ? got.patch
                            : strcmp(name, "patch_minor") == 0 ? got.patch_minor
                            : strcmp(name, "brand") == 0       ? got.brand
                                                               : got.model;
            const char *want = expected(&doc, c, name);
            if (strcmp(g, want) != 0) {
                if (ok && !is_exception(file, ua))
                    show_failure(&shown, file, ua, name, want, g);
                ok = false;
            }
        }
        res->total++;
        if (ok)
            res->passed++;
        else if (is_exception(file, ua))
            res->excepted++;
    }
    res->us_per_parse = res->total ? spent / (double)res->total : 0;
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);

    double rate = res->total ? 100.0 * (double)res->passed / (double)res->total : 0;
    printf("%s: %zu/%zu passed (%.1f%%)", file, res->passed, res->total, rate);
    if (res->excepted)
        printf(", %zu documented exceptions", res->excepted);
    printf(", %.1f us per section parse\n", res->us_per_parse);
    fflush(stdout);
}

static int setup(void **state)
{
    (void)state;
    int rc = lw_ua_init(NULL);
    if (rc != LW_OK) {
        fprintf(stderr, "lw_ua_init: %s (%s)\n", lw_strerror(rc), lw_ua_error());
        return -1;
    }
    lw_ua_stats st;
    lw_ua_get_stats(&st);
    printf("uap-core: %zu rules, %zu JIT-compiled\n", st.rules, st.jit_rules);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    lw_ua_free();
    return 0;
}

static void check_suite(const char *file, suite_kind kind)
{
    suite_result r;
    run_suite(file, kind, &r);
    assert_true(r.total > 0);
    /* Every case passes, or is a documented exception. */
    assert_int_equal(r.passed + r.excepted, r.total);
}

static void test_suite_ua(void **state)
{
    (void)state;
    check_suite("test_ua.yaml", SUITE_UA);
}

static void test_suite_os(void **state)
{
    (void)state;
    check_suite("test_os.yaml", SUITE_OS);
}

static void test_suite_device(void **state)
{
    (void)state;
    check_suite("test_device.yaml", SUITE_DEVICE);
}

static bool sanitized(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return true;
#endif
#endif
    return false;
}

/* The cost of a full uncached lw_ua_parse (all three sections) over the
 * test_ua.yaml strings, then of the same strings from the cache. */
static void test_speed(void **state)
{
    (void)state;
    char path[512];
    int pn = snprintf(path, sizeof path, "%s/test_ua.yaml", UAP_TESTS_DIR);
    assert_true(pn > 0 && (size_t)pn < sizeof path);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    yaml_parser_t parser;
    yaml_document_t doc;
    assert_true(yaml_parser_initialize(&parser));
    yaml_parser_set_input_file(&parser, f);
    assert_true(yaml_parser_load(&parser, &doc));

    /* Collect the strings, then parse them with an empty cache each round:
     * re-initialising empties it (outside the timed part). */
    size_t n = 0, cap = 0;
    const char **uas = NULL;
    size_t *lens = NULL;
    for (int i = 1;; i++) {
        yaml_node_t *node = yaml_document_get_node(&doc, i);
        if (node == NULL)
            break;
        if (node->type != YAML_MAPPING_NODE)
            continue;
        for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
            if (!field_is("user_agent_string", yaml_document_get_node(&doc, p->key)))
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 1024;
                uas = realloc(uas, cap * sizeof *uas);
                lens = realloc(lens, cap * sizeof *lens);
                assert_true(uas && lens);
            }
            uas[n] = scalar(yaml_document_get_node(&doc, p->value), &lens[n]);
            n++;
        }
    }
    assert_true(n > 100);
    assert_int_equal(lw_ua_init(NULL), LW_OK);
    double t0 = now_us();
    for (size_t i = 0; i < n; i++) {
        lw_ua u;
        lw_ua_parse(&u, uas[i], lens[i]);
    }
    double miss_us = (now_us() - t0) / (double)n;
    lw_ua_stats st;
    lw_ua_get_stats(&st);
    unsigned long long misses = st.cache_misses;
    /* The most recent LW_UA_CACHE_ENTRIES strings are still cached. */
    size_t from = n > LW_UA_CACHE_ENTRIES ? n - LW_UA_CACHE_ENTRIES : 0;
    t0 = now_us();
    for (size_t i = from; i < n; i++) {
        lw_ua u;
        lw_ua_parse(&u, uas[i], lens[i]);
    }
    double hit_us = (now_us() - t0) / (double)(n - from);
    lw_ua_get_stats(&st);
    printf("lw_ua_parse over %zu test_ua.yaml strings: %.1f us per uncached parse (%llu misses), "
           "%.2f us per cached parse (%llu hits)\n",
           n, miss_us, misses, hit_us, st.cache_hits);
    fflush(stdout);
    assert_true(miss_us < (sanitized() ? MAX_AVG_US_SANITIZED : MAX_AVG_US_PLAIN));
    free(uas);
    free(lens);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suite_ua),
        cmocka_unit_test(test_suite_os),
        cmocka_unit_test(test_suite_device),
        cmocka_unit_test(test_speed),
    };
    return cmocka_run_group_tests_name("ua_uap", tests, setup, teardown);
}
