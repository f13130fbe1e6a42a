/*
 * ua.c — User-Agent parsing: uap-core's rules through PCRE2, a cache in front
 * of them, a small built-in matcher behind them, and Client Hints on top.
 *
 * The header is attacker-controlled and not NUL-terminated: every scan is
 * bounded by len (and the rules see at most UA_MAX_INPUT bytes of it), and
 * what lw_ua carries out is restricted to printable ASCII so it is safe to log
 * and show. The lw_uap answers are uap-core's raw fields, for the test suites.
 *
 * Locking: the compiled rules are read by any number of parsing threads under
 * ua_lock's read side and replaced or freed under its write side; the cache
 * has its own mutex, taken only around lookups and inserts, never while a
 * regex runs.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "ua.h"

#include <errno.h>
#include <pcre2.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "lw.h"

/* ---- limits -------------------------------------------------------------- */

/* Real User-Agents stay under 512 bytes; the rules never see more than this,
 * which bounds the cost of one uncached parse whatever a client sends. */
#define UA_MAX_INPUT 1024
/* Longer User-Agents are parsed but not cached, so the cache holds at most
 * LW_UA_CACHE_ENTRIES * (UA_CACHE_KEY_MAX + sizeof entry) bytes (~850 KiB). */
#define UA_CACHE_KEY_MAX 512
#define UA_CACHE_BUCKETS 2048 /* power of two, twice the entries: short chains */
/* regexes.yaml is ~260 KiB today; refuse anything absurd before parsing it. */
#define UAP_FILE_MAX (8L * 1024 * 1024)
#define UAP_RULES_MAX 8192 /* per section; uap-core has ~650 device rules */
#define UAP_GROUPS 10      /* $0..$9: replacements reach at most $9 */
/* Backtracking budget per regex and subject; uap-core's rules need a tiny
 * fraction of it, a pathological input gives up on that rule instead of
 * spinning (PCRE2's defaults allow 10 million steps and 20 GB of heap). */
#define UAP_MATCH_LIMIT 1000000
#define UAP_HEAP_LIMIT_KIB 4096
/* Client Hints: one value, the Sec-CH-UA list, brands in it, and a version. */
#define UA_HINT_MAX 256
#define UA_HINT_LIST_MAX 1024
#define UA_HINT_BRANDS_MAX 16
#define UA_HINT_VERSION_MAX 32

/* ---- the built-in matcher ------------------------------------------------ */

typedef struct ua_text {
    const char *p;
    size_t len;
} ua_text;

/* Offset of needle in t at or after from, or -1. */
static long ua_find(ua_text t, size_t from, const char *needle)
{
    size_t n = strlen(needle);
    if (n == 0 || from > t.len || t.len - from < n)
        return -1;
    for (size_t i = from; i + n <= t.len; i++)
        if (t.p[i] == needle[0] && memcmp(t.p + i, needle, n) == 0)
            return (long)i;
    return -1;
}

static bool ua_has(ua_text t, const char *needle)
{
    return ua_find(t, 0, needle) >= 0;
}

static bool ua_is_version_char(char c)
{
    return (c >= '0' && c <= '9') || c == '.' || c == '_';
}

/* Copies the version at t[at...] (digits and dots; '_' becomes '.') into dst,
 * at most max_parts dot-separated parts. */
static void ua_version_at(ua_text t, size_t at, size_t max_parts, char dst[LW_UA_FIELD])
{
    size_t o = 0, parts = 1;
    for (size_t i = at; i < t.len && o + 1 < LW_UA_FIELD && ua_is_version_char(t.p[i]); i++) {
        char c = t.p[i] == '_' ? '.' : t.p[i];
        if (c == '.' && ++parts > max_parts)
            break;
        dst[o++] = c;
    }
    while (o > 0 && dst[o - 1] == '.')
        o--;
    dst[o] = '\0';
}

/* Copies the version after the token (e.g. "Chrome/") into dst; false if absent. */
static bool ua_version_after(ua_text t, const char *token, char dst[LW_UA_FIELD])
{
    long at = ua_find(t, 0, token);
    if (at < 0)
        return false;
    /* major.minor.patch, as the uap-core path reports it */
    ua_version_at(t, (size_t)at + strlen(token), 3, dst);
    return true;
}

static void ua_set(char dst[LW_UA_FIELD], const char *s)
{
    if (lw_strlcpy(dst, s, LW_UA_FIELD) != LW_OK)
        dst[0] = '\0';
}

static bool ua_printable(unsigned char c)
{
    return c >= 0x20 && c <= 0x7e;
}

/* Copies p[0, n) trimmed of spaces into dst: the printable ASCII prefix, cut
 * to the field. Control bytes end the copy so that nothing after an escape
 * sequence reaches a terminal. */
static void ua_copy_clean(const char *p, size_t n, char dst[LW_UA_FIELD])
{
    size_t from = 0;
    while (from < n && p[from] == ' ')
        from++;
    size_t o = 0;
    for (size_t i = from; i < n && o + 1 < LW_UA_FIELD; i++) {
        if (!ua_printable((unsigned char)p[i]))
            break;
        dst[o++] = p[i];
    }
    while (o > 0 && dst[o - 1] == ' ')
        o--;
    dst[o] = '\0';
}

static void ua_browser(ua_text t, lw_ua *u)
{
    /* Order matters: Edge, Opera and Samsung also say "Chrome", Chrome also
     * says "Safari". */
    static const struct {
        const char *token;
        const char *name;
    } table[] = {
        {"linkward/", "Linkward CLI"},
        {"Edg/", "Edge"},
        {"EdgA/", "Edge"},
        {"EdgiOS/", "Edge"},
        {"Edge/", "Edge"},
        {"OPR/", "Opera"},
        {"OPiOS/", "Opera"},
        {"SamsungBrowser/", "Samsung Internet"},
        {"Firefox/", "Firefox"},
        {"FxiOS/", "Firefox"},
        {"CriOS/", "Chrome"},
        {"Chromium/", "Chromium"},
        {"Chrome/", "Chrome"},
    };
    if (t.len >= 5 && memcmp(t.p, "curl/", 5) == 0) {
        ua_set(u->browser, "curl");
        ua_version_at(t, 5, 3, u->browser_version);
        return;
    }
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (ua_version_after(t, table[i].token, u->browser_version)) {
            ua_set(u->browser, table[i].name);
            return;
        }
    }
    if (ua_has(t, "Safari/") && ua_version_after(t, "Version/", u->browser_version)) {
        ua_set(u->browser, "Safari");
        return;
    }
    ua_set(u->browser, "Other");
}

static void ua_windows(ua_text t, lw_ua *u)
{
    static const struct {
        const char *nt;
        const char *name;
    } table[] = {
        {"Windows NT 10.0", "10"}, {"Windows NT 6.3", "8.1"},   {"Windows NT 6.2", "8"},
        {"Windows NT 6.1", "7"},   {"Windows NT 6.0", "Vista"}, {"Windows NT 5.1", "XP"},
    };
    ua_set(u->os, "Windows");
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        long at = ua_find(t, 0, table[i].nt);
        size_t end = at < 0 ? 0 : (size_t)at + strlen(table[i].nt);
        /* "Windows NT 6.1" must not match "Windows NT 6.10". */
        if (at >= 0 && (end == t.len || !ua_is_version_char(t.p[end]))) {
            ua_set(u->os_version, table[i].name);
            return;
        }
    }
}

/* "…; Android 14; Pixel 7 Build/…)" or "…; Android 13; SM-S918B)": the
 * model is the first segment after the Android one that is not a locale. */
static void ua_android_model(ua_text t, size_t at, lw_ua *u)
{
    long close = ua_find(t, at, ")");
    size_t end = close < 0 ? t.len : (size_t)close;
    size_t seg = at;
    for (;;) {
        long semi = ua_find(t, seg, ";");
        if (semi < 0 || (size_t)semi >= end)
            return;
        seg = (size_t)semi + 1;
        long next = ua_find(t, seg, ";");
        size_t seg_end = next < 0 || (size_t)next > end ? end : (size_t)next;
        long build = ua_find(t, seg, " Build/");
        if (build >= 0 && (size_t)build < seg_end)
            seg_end = (size_t)build;
        char model[LW_UA_FIELD];
        ua_copy_clean(t.p + seg, seg_end - seg, model);
        size_t n = strlen(model);
        bool locale = n == 5 && model[2] == '-';
        if (n == 0 || locale || strcmp(model, "wv") == 0)
            continue;
        /* Chrome's reduced UA says "K" instead of the model. */
        if (strcmp(model, "K") != 0)
            ua_set(u->device_model, model);
        return;
    }
}

/* System names are uap-core's, so that a record does not change its OS when
 * the server runs once with and once without the rules file. */
static void ua_os(ua_text t, lw_ua *u)
{
    long at;
    if (ua_has(t, "Windows")) {
        ua_windows(t, u);
    } else if ((at = ua_find(t, 0, "Android")) >= 0) {
        ua_set(u->os, "Android");
        size_t v = (size_t)at + strlen("Android");
        if (v < t.len && t.p[v] == ' ')
            ua_version_at(t, v + 1, 4, u->os_version);
        ua_android_model(t, (size_t)at, u);
    } else if (ua_has(t, "iPhone") || ua_has(t, "iPad") || ua_has(t, "iPod")) {
        ua_set(u->os, "iOS");
        ua_set(u->device_model, ua_has(t, "iPad") ? "iPad" : ua_has(t, "iPod") ? "iPod" : "iPhone");
        /* "CPU iPhone OS 17_1 like Mac OS X" or "CPU OS 17_1 like …" */
        if ((at = ua_find(t, 0, " OS ")) >= 0)
            ua_version_at(t, (size_t)at + 4, 4, u->os_version);
    } else if (ua_has(t, "CrOS")) {
        ua_set(u->os, "Chrome OS");
    } else if (ua_has(t, "Macintosh") || ua_has(t, "Mac OS X")) {
        ua_set(u->os, "Mac OS X");
        ua_set(u->device_model, "Mac");
        if ((at = ua_find(t, 0, "Mac OS X ")) >= 0)
            ua_version_at(t, (size_t)at + strlen("Mac OS X "), 4, u->os_version);
    } else if (ua_has(t, "Linux") || ua_has(t, "X11")) {
        ua_set(u->os, "Linux");
    } else {
        ua_set(u->os, "Other");
    }
}

static void ua_builtin_parse(ua_text t, lw_ua *u)
{
    ua_browser(t, u);
    ua_os(t, u);
}

/* ---- the uap-core rules ---------------------------------------------------- */

enum { UAP_AGENT, UAP_OS, UAP_DEVICE, UAP_SECTIONS };
/* Where each replacement of a rule goes (the lw_uap fields, in order). */
enum { UAP_FAMILY, UAP_MAJOR, UAP_MINOR, UAP_PATCH, UAP_PATCH_MINOR, UAP_BRAND, UAP_MODEL, UAP_SLOTS };

static const char *const uap_section_names[UAP_SECTIONS] = {"user_agent_parsers", "os_parsers",
                                                            "device_parsers"};

static const struct uap_key {
    int section;
    const char *key;
    int slot;
} uap_keys[] = {
    {UAP_AGENT, "family_replacement", UAP_FAMILY},  {UAP_AGENT, "v1_replacement", UAP_MAJOR},
    {UAP_AGENT, "v2_replacement", UAP_MINOR},       {UAP_AGENT, "v3_replacement", UAP_PATCH},
    {UAP_AGENT, "v4_replacement", UAP_PATCH_MINOR}, {UAP_OS, "os_replacement", UAP_FAMILY},
    {UAP_OS, "os_v1_replacement", UAP_MAJOR},       {UAP_OS, "os_v2_replacement", UAP_MINOR},
    {UAP_OS, "os_v3_replacement", UAP_PATCH},       {UAP_OS, "os_v4_replacement", UAP_PATCH_MINOR},
    {UAP_DEVICE, "device_replacement", UAP_FAMILY}, {UAP_DEVICE, "brand_replacement", UAP_BRAND},
    {UAP_DEVICE, "model_replacement", UAP_MODEL},
};

typedef struct uap_rule {
    pcre2_code *re;
    char *repl[UAP_SLOTS]; /* NULL where the rule has no replacement */
} uap_rule;

typedef struct uap_section {
    uap_rule *rules;
    size_t n, cap;
} uap_section;

typedef enum { UA_UNLOADED, UA_UAP, UA_BUILTIN } ua_mode;

static pthread_rwlock_t ua_lock = PTHREAD_RWLOCK_INITIALIZER;
static ua_mode ua_state = UA_UNLOADED;
static uap_section ua_sections[UAP_SECTIONS];
static size_t ua_jit_rules;
static pcre2_general_context *ua_gctx;
static pcre2_match_context *ua_mctx;
static char ua_errbuf[512];

static void ua_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void ua_set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    /* A message cut short is still a useful message: truncation is accepted. */
    (void)vsnprintf(ua_errbuf, sizeof ua_errbuf, fmt, ap);
    va_end(ap);
}

/* PCRE2 allocates through our wrapper, so fault injection reaches it too. */
static void *uap_malloc(PCRE2_SIZE n, void *data)
{
    (void)data;
    return lw_malloc(n);
}

static void uap_free(void *p, void *data)
{
    (void)data;
    lw_free(p);
}

static void uap_rule_free(uap_rule *r)
{
    pcre2_code_free(r->re);
    for (int i = 0; i < UAP_SLOTS; i++)
        lw_free(r->repl[i]);
    memset(r, 0, sizeof *r);
}

/* Frees every compiled rule and the PCRE2 contexts. Caller holds the write lock. */
static void uap_unload(void)
{
    for (int s = 0; s < UAP_SECTIONS; s++) {
        for (size_t i = 0; i < ua_sections[s].n; i++)
            uap_rule_free(&ua_sections[s].rules[i]);
        lw_free(ua_sections[s].rules);
        memset(&ua_sections[s], 0, sizeof ua_sections[s]);
    }
    pcre2_match_context_free(ua_mctx);
    pcre2_general_context_free(ua_gctx);
    ua_mctx = NULL;
    ua_gctx = NULL;
    ua_jit_rules = 0;
}

static bool yaml_scalar_is(const yaml_node_t *n, const char *s)
{
    size_t len = strlen(s);
    return n != NULL && n->type == YAML_SCALAR_NODE && n->data.scalar.length == len &&
           memcmp(n->data.scalar.value, s, len) == 0;
}

static int uap_section_push(uap_section *s, uap_rule *r)
{
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 256;
        uap_rule *nr = lw_realloc(s->rules, ncap * sizeof *nr);
        if (nr == NULL)
            return LW_ENOMEM;
        s->rules = nr;
        s->cap = ncap;
    }
    s->rules[s->n++] = *r;
    return LW_OK;
}

/* Compiles one rule (a mapping of regex, regex_flag and replacements) and
 * appends it to the section. */
static int uap_load_rule(yaml_document_t *doc, yaml_node_t *item, int sec, pcre2_compile_context *cctx,
                         const char *path)
{
    unsigned long line = (unsigned long)item->start_mark.line + 1;
    if (item->type != YAML_MAPPING_NODE) {
        ua_set_error("%s:%lu: a rule is not a mapping", path, line);
        return LW_EINVAL;
    }
    if (ua_sections[sec].n >= UAP_RULES_MAX) {
        ua_set_error("%s:%lu: more than %d rules in %s", path, line, UAP_RULES_MAX, uap_section_names[sec]);
        return LW_ETOOBIG;
    }
    uap_rule r = {0};
    const yaml_node_t *regex = NULL;
    uint32_t options = 0;
    int rc = LW_OK;
    for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        if (k == NULL || v == NULL || k->type != YAML_SCALAR_NODE || v->type != YAML_SCALAR_NODE) {
            ua_set_error("%s:%lu: a rule field is not a scalar", path, line);
            rc = LW_EINVAL;
            goto fail;
        }
        if (yaml_scalar_is(k, "regex")) {
            regex = v;
        } else if (yaml_scalar_is(k, "regex_flag")) {
            /* 'i' is the only flag uap-core defines; another one would change
             * what the rule means, so refuse rather than guess. */
            if (!yaml_scalar_is(v, "i")) {
                ua_set_error("%s:%lu: unknown regex_flag", path, line);
                rc = LW_EINVAL;
                goto fail;
            }
            options |= PCRE2_CASELESS;
        } else {
            for (size_t i = 0; i < sizeof uap_keys / sizeof uap_keys[0]; i++) {
                if (uap_keys[i].section != sec || !yaml_scalar_is(k, uap_keys[i].key))
                    continue;
                char *s = lw_strndup((const char *)v->data.scalar.value, v->data.scalar.length);
                if (s == NULL) {
                    rc = LW_ENOMEM;
                    ua_set_error("%s:%lu: out of memory", path, line);
                    goto fail;
                }
                lw_free(r.repl[uap_keys[i].slot]);
                r.repl[uap_keys[i].slot] = s;
            }
            /* Other keys (comments of future versions) do not change matching. */
        }
    }
    if (regex == NULL) {
        ua_set_error("%s:%lu: a rule has no regex", path, line);
        rc = LW_EINVAL;
        goto fail;
    }
    int err;
    PCRE2_SIZE erroff;
    r.re = pcre2_compile((PCRE2_SPTR)regex->data.scalar.value, regex->data.scalar.length, options, &err,
                         &erroff, cctx);
    if (r.re == NULL) {
        PCRE2_UCHAR msg[128];
        if (pcre2_get_error_message(err, msg, sizeof msg) < 0)
            msg[0] = '\0';
        ua_set_error("%s:%lu: regex does not compile at offset %zu: %s", path, line, (size_t)erroff,
                     (char *)msg);
        rc = err == PCRE2_ERROR_HEAP_FAILED || err == PCRE2_ERROR_NOMEMORY ? LW_ENOMEM : LW_EINVAL;
        goto fail;
    }
    /* JIT makes a full miss over ~1200 rules affordable; where it is not
     * available (or runs out of memory) pcre2_match interprets instead. */
    if (pcre2_jit_compile(r.re, PCRE2_JIT_COMPLETE) == 0)
        ua_jit_rules++;
    rc = uap_section_push(&ua_sections[sec], &r);
    if (rc != LW_OK) {
        ua_set_error("%s: out of memory", path);
        goto fail;
    }
    return LW_OK;
fail:
    uap_rule_free(&r);
    return rc;
}

/* Reads and compiles the three sections of regexes.yaml. Caller holds the
 * write lock and unloads on failure. */
static int uap_load(const char *path)
{
    int rc = LW_OK;
    yaml_parser_t parser;
    yaml_document_t doc;
    bool have_parser = false, have_doc = false;
    pcre2_compile_context *cctx = NULL;
    bool seen[UAP_SECTIONS] = {false};

    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        ua_set_error("%s: %s", path, strerror(e));
        return e == ENOENT ? LW_ENOTFOUND : LW_EIO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        ua_set_error("%s: not a regular file", path);
        rc = LW_EIO;
        goto done;
    }
    if (st.st_size > UAP_FILE_MAX) {
        ua_set_error("%s: larger than %ld bytes", path, UAP_FILE_MAX);
        rc = LW_ETOOBIG;
        goto done;
    }
    ua_gctx = pcre2_general_context_create(uap_malloc, uap_free, NULL);
    cctx = ua_gctx ? pcre2_compile_context_create(ua_gctx) : NULL;
    ua_mctx = ua_gctx ? pcre2_match_context_create(ua_gctx) : NULL;
    if (cctx == NULL || ua_mctx == NULL || pcre2_set_match_limit(ua_mctx, UAP_MATCH_LIMIT) != 0 ||
        pcre2_set_heap_limit(ua_mctx, UAP_HEAP_LIMIT_KIB) != 0) {
        ua_set_error("%s: out of memory", path);
        rc = LW_ENOMEM;
        goto done;
    }
    if (!yaml_parser_initialize(&parser)) {
        ua_set_error("%s: out of memory", path);
        rc = LW_ENOMEM;
        goto done;
    }
    have_parser = true;
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        ua_set_error("%s:%lu: %s", path, (unsigned long)parser.problem_mark.line + 1,
                     parser.problem ? parser.problem : "YAML error");
        rc = parser.error == YAML_MEMORY_ERROR   ? LW_ENOMEM
             : parser.error == YAML_READER_ERROR ? LW_EIO
                                                 : LW_EINVAL;
        goto done;
    }
    have_doc = true;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        ua_set_error("%s: not a mapping of rule sections", path);
        rc = LW_EINVAL;
        goto done;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&doc, p->value);
        int sec = -1;
        for (int s = 0; s < UAP_SECTIONS; s++)
            if (yaml_scalar_is(k, uap_section_names[s]))
                sec = s;
        if (sec < 0)
            continue; /* a section this parser does not know is not ours to judge */
        if (v == NULL || v->type != YAML_SEQUENCE_NODE || seen[sec]) {
            ua_set_error("%s: %s is not a single list of rules", path, uap_section_names[sec]);
            rc = LW_EINVAL;
            goto done;
        }
        seen[sec] = true;
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
            yaml_node_t *item = yaml_document_get_node(&doc, *it);
            if (item == NULL) {
                ua_set_error("%s: dangling node in %s", path, uap_section_names[sec]);
                rc = LW_EINVAL;
                goto done;
            }
            if ((rc = uap_load_rule(&doc, item, sec, cctx, path)) != LW_OK)
                goto done;
        }
    }
    for (int s = 0; s < UAP_SECTIONS; s++) {
        if (!seen[s]) {
            ua_set_error("%s: no %s section", path, uap_section_names[s]);
            rc = LW_EINVAL;
            goto done;
        }
    }
done:
    if (have_doc)
        yaml_document_delete(&doc);
    if (have_parser)
        yaml_parser_delete(&parser);
    pcre2_compile_context_free(cctx);
    fclose(f);
    return rc;
}

/* ---- matching and replacement -------------------------------------------- */

typedef struct uap_match {
    const char *subj;
    const PCRE2_SIZE *ov;
    uint32_t n; /* groups whose ovector pairs are meaningful */
} uap_match;

/* Runs the section's rules in file order; the first that matches, or NULL. */
static const uap_rule *uap_first_match(const uap_section *s, const char *subj, size_t len,
                                       pcre2_match_data *md, uap_match *m)
{
    for (size_t i = 0; i < s->n; i++) {
        int rc = pcre2_match(s->rules[i].re, (PCRE2_SPTR)subj, len, 0, 0, md, ua_mctx);
        if (rc == PCRE2_ERROR_NOMATCH)
            continue;
        /* The JIT stack is small and fixed; the interpreter keeps its
         * backtracking on the (limited) heap and may still finish. */
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
            rc = pcre2_match(s->rules[i].re, (PCRE2_SPTR)subj, len, 0, PCRE2_NO_JIT, md, ua_mctx);
        /* A rule that hits the match or heap limit is taken as not matching:
         * the next rules still get their chance, as with a miss. */
        if (rc < 0)
            continue;
        m->subj = subj;
        m->ov = pcre2_get_ovector_pointer(md);
        /* rc == 0: more groups than the ovector holds; all UAP_GROUPS pairs are set or PCRE2_UNSET. */
        m->n = rc == 0 ? pcre2_get_ovector_count(md) : (uint32_t)rc;
        return &s->rules[i];
    }
    return NULL;
}

static bool uap_group(const uap_match *m, unsigned i, const char **p, size_t *n)
{
    if (i >= m->n || m->ov[2 * i] == PCRE2_UNSET || m->ov[2 * i + 1] < m->ov[2 * i])
        return false;
    *p = m->subj + m->ov[2 * i];
    *n = m->ov[2 * i + 1] - m->ov[2 * i];
    return true;
}

/* A bounded writer for one lw_uap field: excess bytes are dropped, and a cut
 * never leaves half a UTF-8 sequence at the end. */
typedef struct uap_out {
    char *dst;
    size_t cap, len;
    bool cut;
} uap_out;

static void uap_put(uap_out *o, const char *p, size_t n)
{
    size_t room = o->cap - 1 - o->len;
    if (n > room) {
        n = room;
        o->cut = true;
    }
    memcpy(o->dst + o->len, p, n);
    o->len += n;
}

static bool uap_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void uap_finish(uap_out *o, bool trim)
{
    if (o->cut) {
        size_t i = o->len, k = 0;
        while (i > 0 && k < 4 && ((unsigned char)o->dst[i - 1] & 0xC0) == 0x80) {
            i--;
            k++;
        }
        if (i > 0) {
            unsigned char lead = (unsigned char)o->dst[i - 1];
            size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
            if (need > 1 && k + 1 < need)
                o->len = i - 1;
        }
    }
    size_t from = 0;
    if (trim) {
        while (o->len > 0 && uap_space(o->dst[o->len - 1]))
            o->len--;
        while (from < o->len && uap_space(o->dst[from]))
            from++;
    }
    memmove(o->dst, o->dst + from, o->len - from);
    o->dst[o->len - from] = '\0';
}

/* dst = the template with $1..$9 replaced by the groups ("" when a group did
 * not take part), optionally trimmed: uap-core's replacement rule. */
static void uap_expand(char dst[LW_UAP_FIELD], const char *tmpl, const uap_match *m, bool trim)
{
    uap_out o = {dst, LW_UAP_FIELD, 0, false};
    for (const char *t = tmpl; *t != '\0';) {
        if (t[0] == '$' && t[1] >= '1' && t[1] <= '9') {
            const char *g;
            size_t gn;
            if (uap_group(m, (unsigned)(t[1] - '0'), &g, &gn))
                uap_put(&o, g, gn);
            t += 2;
        } else {
            const char *d = strchr(t + 1, '$');
            size_t n = d ? (size_t)(d - t) : strlen(t);
            uap_put(&o, t, n);
            t += n;
        }
    }
    uap_finish(&o, trim);
}

static void uap_copy_group(char dst[LW_UAP_FIELD], const uap_match *m, unsigned i)
{
    uap_out o = {dst, LW_UAP_FIELD, 0, false};
    const char *g;
    size_t gn;
    if (uap_group(m, i, &g, &gn))
        uap_put(&o, g, gn);
    uap_finish(&o, false);
}

static void uap_other(lw_uap *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->family, "Other", sizeof "Other");
}

/* One section's answer, with uap-core's rules for each field (they differ by
 * section, as in the reference implementations):
 *  - user agent: family_replacement has its $n expanded, the version
 *    replacements are taken as they are; without a replacement each field is
 *    its group (1..5), untrimmed;
 *  - OS: every field is its replacement or "$n" (1..5), expanded and trimmed;
 *  - device: family and model are their replacement or "$1", brand only its
 *    replacement, expanded and trimmed.
 * An empty result is null (""); an empty family is "Other". */
static int uap_section_parse(int sec, lw_uap *out, const char *ua, size_t len, pcre2_match_data *md)
{
    uap_other(out);
    uap_match m;
    const uap_rule *r = uap_first_match(&ua_sections[sec], ua, len, md, &m);
    if (r == NULL)
        return LW_ENOTFOUND;
    char *fields[UAP_SLOTS] = {out->family,      out->major, out->minor, out->patch,
                               out->patch_minor, out->brand, out->model};
    static const char *const group_ref[] = {"$1", "$2", "$3", "$4", "$5"};
    switch (sec) {
    case UAP_AGENT:
        if (r->repl[UAP_FAMILY])
            uap_expand(out->family, r->repl[UAP_FAMILY], &m, false);
        else
            uap_copy_group(out->family, &m, 1);
        for (int f = UAP_MAJOR; f <= UAP_PATCH_MINOR; f++) {
            if (r->repl[f])
                uap_expand(fields[f], r->repl[f], &m, false);
            else
                uap_copy_group(fields[f], &m, (unsigned)f + 1);
        }
        break;
    case UAP_OS:
        for (int f = UAP_FAMILY; f <= UAP_PATCH_MINOR; f++)
            uap_expand(fields[f], r->repl[f] ? r->repl[f] : group_ref[f], &m, true);
        break;
    default:
        uap_expand(out->family, r->repl[UAP_FAMILY] ? r->repl[UAP_FAMILY] : "$1", &m, true);
        if (r->repl[UAP_BRAND])
            uap_expand(out->brand, r->repl[UAP_BRAND], &m, true);
        uap_expand(out->model, r->repl[UAP_MODEL] ? r->repl[UAP_MODEL] : "$1", &m, true);
        break;
    }
    if (out->family[0] == '\0')
        memcpy(out->family, "Other", sizeof "Other");
    return LW_OK;
}

/* ---- loading on demand ------------------------------------------------------ */

static void ua_cache_clear(void);

/* Replaces the rules; caller holds the write lock. */
static int ua_load_locked(const char *path)
{
    uap_unload();
    ua_cache_clear();
    ua_errbuf[0] = '\0';
    int rc = uap_load(path ? path : LW_UA_REGEXES_DEFAULT);
    if (rc != LW_OK) {
        uap_unload();
        ua_state = UA_BUILTIN;
    } else {
        ua_state = UA_UAP;
    }
    return rc;
}

/* Takes the read lock with the rules loaded (or their absence settled),
 * loading the default file on the first call. rwlock calls only fail on
 * misuse (we hold nothing here) or reader overflow, which cannot happen with
 * the server's thread counts; their results are not worth a fallback path. */
static void ua_read_lock(void)
{
    (void)pthread_rwlock_rdlock(&ua_lock);
    while (ua_state == UA_UNLOADED) {
        (void)pthread_rwlock_unlock(&ua_lock);
        (void)pthread_rwlock_wrlock(&ua_lock);
        if (ua_state == UA_UNLOADED)
            (void)ua_load_locked(NULL); /* failure leaves the built-in matcher; lw_ua_error() says why */
        (void)pthread_rwlock_unlock(&ua_lock);
        (void)pthread_rwlock_rdlock(&ua_lock);
    }
}

int lw_ua_init(const char *regexes_path)
{
    (void)pthread_rwlock_wrlock(&ua_lock);
    int rc = ua_load_locked(regexes_path);
    (void)pthread_rwlock_unlock(&ua_lock);
    return rc;
}

void lw_ua_free(void)
{
    (void)pthread_rwlock_wrlock(&ua_lock);
    uap_unload();
    ua_cache_clear();
    ua_state = UA_UNLOADED;
    ua_errbuf[0] = '\0';
    (void)pthread_rwlock_unlock(&ua_lock);
}

const char *lw_ua_error(void)
{
    return ua_errbuf;
}

/* ---- the cache -------------------------------------------------------------- */

/* A hash table of User-Agent -> answer with an LRU list through it. Keys are
 * hashed with SipHash under a per-process random key, so that a client cannot
 * pile its strings into one chain. */
typedef struct ua_entry {
    struct ua_entry *chain;         /* next in the bucket */
    struct ua_entry *newer, *older; /* LRU list */
    uint64_t hash;
    size_t len;
    lw_ua val;
    char key[]; /* len bytes, not NUL-terminated */
} ua_entry;

static struct ua_cache {
    pthread_mutex_t lock;
    ua_entry *bucket[UA_CACHE_BUCKETS];
    ua_entry *newest, *oldest;
    size_t count;
    unsigned long long hits, misses;
    unsigned char hkey[crypto_shorthash_KEYBYTES];
    bool keyed;
} ua_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t ua_cache_hash(const char *p, size_t n)
{
    unsigned char out[crypto_shorthash_BYTES];
    /* crypto_shorthash cannot fail */
    (void)crypto_shorthash(out, (const unsigned char *)p, n, ua_cache.hkey);
    uint64_t h;
    memcpy(&h, out, sizeof h);
    return h;
}

static void ua_lru_unlink(ua_entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        ua_cache.newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        ua_cache.oldest = e->newer;
    e->newer = e->older = NULL;
}

static void ua_lru_push(ua_entry *e)
{
    e->older = ua_cache.newest;
    e->newer = NULL;
    if (ua_cache.newest)
        ua_cache.newest->newer = e;
    ua_cache.newest = e;
    if (ua_cache.oldest == NULL)
        ua_cache.oldest = e;
}

/* Empties the cache and draws a new hash key. Caller holds the write lock
 * (no parser is running), so the cache mutex is taken only for form. */
static void ua_cache_clear(void)
{
    (void)pthread_mutex_lock(&ua_cache.lock);
    for (ua_entry *e = ua_cache.newest, *next; e != NULL; e = next) {
        next = e->older;
        lw_free(e);
    }
    memset(ua_cache.bucket, 0, sizeof ua_cache.bucket);
    ua_cache.newest = ua_cache.oldest = NULL;
    ua_cache.count = 0;
    ua_cache.hits = ua_cache.misses = 0;
    if (!ua_cache.keyed) {
        /* sodium_init is idempotent; without it the key stays all-zero,
         * which loses only the flooding defence, not correctness. */
        if (sodium_init() >= 0)
            crypto_shorthash_keygen(ua_cache.hkey);
        ua_cache.keyed = true;
    }
    (void)pthread_mutex_unlock(&ua_cache.lock);
}

static ua_entry *ua_cache_find(uint64_t h, const char *p, size_t n)
{
    for (ua_entry *e = ua_cache.bucket[h & (UA_CACHE_BUCKETS - 1)]; e != NULL; e = e->chain)
        if (e->hash == h && e->len == n && memcmp(e->key, p, n) == 0)
            return e;
    return NULL;
}

static bool ua_cache_get(uint64_t h, const char *p, size_t n, lw_ua *out)
{
    (void)pthread_mutex_lock(&ua_cache.lock);
    ua_entry *e = ua_cache_find(h, p, n);
    if (e != NULL) {
        ua_lru_unlink(e);
        ua_lru_push(e);
        *out = e->val;
        ua_cache.hits++;
    } else {
        ua_cache.misses++;
    }
    (void)pthread_mutex_unlock(&ua_cache.lock);
    return e != NULL;
}

static void ua_cache_put(uint64_t h, const char *p, size_t n, const lw_ua *val)
{
    (void)pthread_mutex_lock(&ua_cache.lock);
    if (ua_cache_find(h, p, n) != NULL)
        goto done; /* another thread parsed the same string meanwhile */
    if (ua_cache.count >= LW_UA_CACHE_ENTRIES) {
        ua_entry *old = ua_cache.oldest;
        ua_lru_unlink(old);
        for (ua_entry **pp = &ua_cache.bucket[old->hash & (UA_CACHE_BUCKETS - 1)]; *pp; pp = &(*pp)->chain) {
            if (*pp == old) {
                *pp = old->chain;
                break;
            }
        }
        lw_free(old);
        ua_cache.count--;
    }
    ua_entry *e = lw_malloc(sizeof *e + n);
    if (e == NULL)
        goto done; /* not caching is always correct */
    e->hash = h;
    e->len = n;
    e->val = *val;
    memcpy(e->key, p, n);
    ua_entry **b = &ua_cache.bucket[h & (UA_CACHE_BUCKETS - 1)];
    e->chain = *b;
    *b = e;
    ua_lru_push(e);
    ua_cache.count++;
done:
    (void)pthread_mutex_unlock(&ua_cache.lock);
}

void lw_ua_get_stats(lw_ua_stats *st)
{
    memset(st, 0, sizeof *st);
    (void)pthread_rwlock_rdlock(&ua_lock);
    st->uap = ua_state == UA_UAP;
    for (int s = 0; s < UAP_SECTIONS; s++)
        st->rules += ua_sections[s].n;
    st->jit_rules = ua_jit_rules;
    (void)pthread_mutex_lock(&ua_cache.lock);
    st->cache_entries = ua_cache.count;
    st->cache_hits = ua_cache.hits;
    st->cache_misses = ua_cache.misses;
    (void)pthread_mutex_unlock(&ua_cache.lock);
    (void)pthread_rwlock_unlock(&ua_lock);
}

/* ---- the public parsers ---------------------------------------------------- */

static void ua_clean(char dst[LW_UA_FIELD], const char *src)
{
    ua_copy_clean(src, strlen(src), dst);
}

/* "120.0.6099": the non-empty leading parts joined by dots, cut to the field. */
static void ua_join_version(char dst[LW_UA_FIELD], const char *const *parts, size_t n)
{
    size_t o = 0;
    dst[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char part[LW_UA_FIELD];
        ua_clean(part, parts[i]);
        if (part[0] == '\0')
            break;
        if (i > 0 && o + 1 < LW_UA_FIELD)
            dst[o++] = '.';
        for (size_t k = 0; part[k] != '\0' && o + 1 < LW_UA_FIELD; k++)
            dst[o++] = part[k];
    }
    while (o > 0 && dst[o - 1] == '.')
        o--;
    dst[o] = '\0';
}

/* The model names the device ("iPhone", "Pixel 7", "Mac"; the family when a
 * rule gives no model), or nothing when uap-core knows no device. */
static void ua_device_model(char dst[LW_UA_FIELD], const lw_uap *d)
{
    dst[0] = '\0';
    if (strcmp(d->family, "Other") == 0)
        return;
    /* The "Generic" and "Spider" brands carry a form factor as their model
     * ("Smartphone", "Desktop"), which is no device name. */
    if (strcmp(d->brand, "Generic") == 0 || strcmp(d->brand, "Spider") == 0)
        return;
    /* Chrome's reduced User-Agent says "K" in place of every Android model;
     * the real one arrives as Sec-CH-UA-Model, if at all. */
    if (strncmp(d->brand, "Generic_Android", strlen("Generic_Android")) == 0 && strcmp(d->model, "K") == 0)
        return;
    ua_clean(dst, d->model[0] ? d->model : d->family);
}

static void ua_from_uap(lw_ua *u, const lw_uap *a, const lw_uap *o, const lw_uap *d)
{
    ua_clean(u->browser, a->family);
    if (u->browser[0] == '\0')
        ua_set(u->browser, "Other");
    const char *bv[] = {a->major, a->minor, a->patch};
    ua_join_version(u->browser_version, bv, 3);
    ua_clean(u->os, o->family);
    if (u->os[0] == '\0')
        ua_set(u->os, "Other");
    const char *ov[] = {o->major, o->minor, o->patch, o->patch_minor};
    ua_join_version(u->os_version, ov, 4);
    ua_device_model(u->device_model, d);
}

static int ua_section_public(int sec, lw_uap *out, const char *ua, size_t len)
{
    if (ua == NULL)
        len = 0;
    if (len > UA_MAX_INPUT)
        len = UA_MAX_INPUT;
    ua_read_lock();
    int rc;
    pcre2_match_data *md = NULL;
    if (ua_state != UA_UAP) {
        uap_other(out);
        rc = LW_EINVAL;
    } else if ((md = pcre2_match_data_create(UAP_GROUPS, ua_gctx)) == NULL) {
        uap_other(out);
        rc = LW_ENOMEM;
    } else {
        rc = uap_section_parse(sec, out, len ? ua : "", len, md);
    }
    pcre2_match_data_free(md);
    (void)pthread_rwlock_unlock(&ua_lock);
    return rc;
}

int lw_ua_parse_agent(lw_uap *out, const char *ua, size_t len)
{
    return ua_section_public(UAP_AGENT, out, ua, len);
}

int lw_ua_parse_os(lw_uap *out, const char *ua, size_t len)
{
    return ua_section_public(UAP_OS, out, ua, len);
}

int lw_ua_parse_device(lw_uap *out, const char *ua, size_t len)
{
    return ua_section_public(UAP_DEVICE, out, ua, len);
}

void lw_ua_parse(lw_ua *u, const char *ua, size_t len)
{
    memset(u, 0, sizeof *u);
    ua_text t = {ua, ua == NULL ? 0 : len};
    /* Our own CLI: uap-core has no rule for it, and its shape is ours. An
     * empty header needs no rules either. */
    if (t.len == 0 || (t.len >= 9 && memcmp(t.p, "linkward/", 9) == 0)) {
        ua_builtin_parse(t, u);
        return;
    }
    ua_read_lock();
    if (ua_state != UA_UAP) {
        ua_builtin_parse(t, u);
        goto done;
    }
    bool cacheable = t.len <= UA_CACHE_KEY_MAX;
    uint64_t h = cacheable ? ua_cache_hash(t.p, t.len) : 0;
    if (cacheable && ua_cache_get(h, t.p, t.len, u))
        goto done;
    pcre2_match_data *md = pcre2_match_data_create(UAP_GROUPS, ua_gctx);
    if (md == NULL) {
        ua_builtin_parse(t, u); /* out of memory: the cheap matcher still answers */
        goto done;
    }
    size_t n = t.len > UA_MAX_INPUT ? UA_MAX_INPUT : t.len;
    lw_uap a, o, d;
    (void)uap_section_parse(UAP_AGENT, &a, t.p, n, md);
    (void)uap_section_parse(UAP_OS, &o, t.p, n, md);
    (void)uap_section_parse(UAP_DEVICE, &d, t.p, n, md);
    pcre2_match_data_free(md);
    ua_from_uap(u, &a, &o, &d);
    if (cacheable)
        ua_cache_put(h, t.p, t.len, u);
done:
    (void)pthread_rwlock_unlock(&ua_lock);
}

/* ---- User-Agent Client Hints ------------------------------------------------ */

static bool hint_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* An RFC 8941 sf-string at s[*i] (which is '"') into dst; false if malformed
 * or longer than cap - 1. */
static bool hint_sf_string(const char *s, size_t n, size_t *i, char *dst, size_t cap)
{
    size_t k = *i + 1, o = 0;
    for (; k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        if (c == '"') {
            dst[o] = '\0';
            *i = k + 1;
            return true;
        }
        if (c == '\\') {
            if (k + 1 >= n || (s[k + 1] != '"' && s[k + 1] != '\\'))
                return false;
            c = (unsigned char)s[++k];
        } else if (!ua_printable(c)) {
            return false;
        }
        if (o + 1 >= cap)
            return false;
        dst[o++] = (char)c;
    }
    return false; /* no closing quote */
}

/* A single hint value: a quoted sf-string, or (tolerantly) bare printable
 * text. Surrounding whitespace is ignored. */
static bool hint_value(const char *v, char *dst, size_t cap)
{
    if (v == NULL)
        return false;
    size_t n = strnlen(v, UA_HINT_MAX + 1);
    if (n > UA_HINT_MAX)
        return false;
    size_t i = 0;
    while (i < n && hint_ows(v[i]))
        i++;
    while (n > i && hint_ows(v[n - 1]))
        n--;
    if (i < n && v[i] == '"') {
        if (!hint_sf_string(v, n, &i, dst, cap))
            return false;
        return i == n; /* parameters or a second item are not a single string */
    }
    if (n - i >= cap)
        return false;
    for (size_t k = i; k < n; k++)
        if (!ua_printable((unsigned char)v[k]) || v[k] == '"' || v[k] == ',' || v[k] == ';')
            return false;
    memcpy(dst, v + i, n - i);
    dst[n - i] = '\0';
    return true;
}

typedef struct hint_brand {
    char name[LW_UA_FIELD];
    char version[UA_HINT_VERSION_MAX];
} hint_brand;

static bool hint_key_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || c == '*' ||
           (!first && ((c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'));
}

/* A bare item after "=": an sf-string, or a token/integer (kept as text). */
static bool hint_param_value(const char *s, size_t n, size_t *i, char *dst, size_t cap)
{
    if (*i < n && s[*i] == '"')
        return hint_sf_string(s, n, i, dst, cap);
    size_t o = 0;
    while (*i < n && s[*i] != ';' && s[*i] != ',' && !hint_ows(s[*i])) {
        if (!ua_printable((unsigned char)s[*i]) || o + 1 >= cap)
            return false;
        dst[o++] = s[(*i)++];
    }
    dst[o] = '\0';
    return o > 0;
}

/* Parses the Sec-CH-UA list (`"Brand";v="1", …`) into brands; returns how
 * many, or -1 if the header is malformed (then it is ignored as a whole, as
 * RFC 8941 asks). */
static int hint_parse_brands(const char *v, hint_brand *out, int max)
{
    if (v == NULL)
        return -1;
    size_t n = strnlen(v, UA_HINT_LIST_MAX + 1);
    if (n > UA_HINT_LIST_MAX)
        return -1;
    size_t i = 0;
    int count = 0;
    while (i < n && hint_ows(v[i]))
        i++;
    while (i < n) {
        if (count >= max || v[i] != '"')
            return -1;
        hint_brand *b = &out[count++];
        b->version[0] = '\0';
        if (!hint_sf_string(v, n, &i, b->name, sizeof b->name))
            return -1;
        while (i < n && v[i] == ';') {
            i++;
            while (i < n && v[i] == ' ')
                i++;
            char key[16];
            size_t k = 0;
            while (i < n && hint_key_char(v[i], k == 0)) {
                if (k + 1 >= sizeof key)
                    return -1;
                key[k++] = v[i++];
            }
            if (k == 0)
                return -1;
            key[k] = '\0';
            char val[UA_HINT_VERSION_MAX];
            val[0] = '\0';
            if (i < n && v[i] == '=') {
                i++;
                if (!hint_param_value(v, n, &i, val, sizeof val))
                    return -1;
            }
            if (strcmp(key, "v") == 0)
                memcpy(b->version, val, sizeof val);
        }
        while (i < n && hint_ows(v[i]))
            i++;
        if (i == n)
            break;
        if (v[i] != ',')
            return -1;
        i++;
        while (i < n && hint_ows(v[i]))
            i++;
        if (i == n)
            return -1; /* a trailing comma */
    }
    return count;
}

/* Chromium's GREASE brands are "Not" + punctuation + "A" + punctuation +
 * "Brand" in ever-changing spellings ("Not-A.Brand", "Not/A)Brand",
 * " Not A;Brand"): recognise them by their letters alone. */
static bool hint_is_grease(const char *name)
{
    char letters[16];
    size_t o = 0;
    for (const char *p = name; *p; p++) {
        char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            if (o + 1 >= sizeof letters)
                return false;
            letters[o++] = (char)(c | 0x20);
        }
    }
    letters[o] = '\0';
    return strcmp(letters, "notabrand") == 0;
}

/* Digits and dots only, as Client Hints versions are. */
static bool hint_version_ok(const char *v)
{
    if (v[0] < '0' || v[0] > '9')
        return false;
    for (const char *p = v; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '.'))
            return false;
    return true;
}

/* Leading integer of a version ("124.0" -> 124); -1 if none or absurd. */
static long hint_major(const char *v)
{
    long m = 0;
    size_t i = 0;
    for (; v[i] >= '0' && v[i] <= '9'; i++) {
        if (i >= 6)
            return -1;
        m = m * 10 + (v[i] - '0');
    }
    return i == 0 ? -1 : m;
}

/* "14.0.0" -> "14", "10.15.7" stays: the form uap-core gives for the same system. */
static void hint_trim_zeros(char *v)
{
    for (;;) {
        char *dot = strrchr(v, '.');
        if (dot == NULL || strcmp(dot, ".0") != 0)
            break;
        *dot = '\0';
    }
}

/* "Chrome Mobile" is a kind of "Chrome": the UA's answer is more specific. */
static bool hint_same_family(const char *cur, const char *name)
{
    size_t n = strlen(name);
    return strncmp(cur, name, n) == 0 && (cur[n] == '\0' || cur[n] == ' ');
}

static void hint_apply_brands(lw_ua *u, const char *sec_ch_ua)
{
    static const struct {
        const char *hint, *family;
    } names[] = {
        {"Google Chrome", "Chrome"},
        {"Microsoft Edge", "Edge"},
        {"YaBrowser", "Yandex Browser"},
    };
    hint_brand brands[UA_HINT_BRANDS_MAX];
    int n = hint_parse_brands(sec_ch_ua, brands, UA_HINT_BRANDS_MAX);
    const hint_brand *pick = NULL, *chromium = NULL;
    for (int i = 0; i < n; i++) {
        if (brands[i].name[0] == '\0' || hint_is_grease(brands[i].name))
            continue;
        if (strcmp(brands[i].name, "Chromium") == 0)
            chromium = chromium ? chromium : &brands[i];
        else
            pick = pick ? pick : &brands[i];
    }
    if (pick == NULL) {
        /* Chromium alone names an unbranded build; what the User-Agent says
         * (HeadlessChrome, Electron, …) is at least as precise, if anything. */
        if (chromium == NULL || strcmp(u->browser, "Other") != 0)
            return;
        pick = chromium;
    }
    const char *family = pick->name;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(family, names[i].hint) == 0)
            family = names[i].family;
    const char *version = hint_version_ok(pick->version) ? pick->version : "";
    if (!hint_same_family(u->browser, family)) {
        ua_clean(u->browser, family);
        ua_clean(u->browser_version, version);
    } else if (version[0] != '\0' && hint_major(u->browser_version) != hint_major(version)) {
        /* The hint carries the major only; keep the UA's finer version when it agrees. */
        ua_clean(u->browser_version, version);
    }
}

static void hint_apply_platform(lw_ua *u, const char *platform, const char *platform_version)
{
    static const struct {
        const char *hint, *os;
    } systems[] = {
        {"Windows", "Windows"},       {"macOS", "Mac OS X"},  {"Linux", "Linux"},
        {"Android", "Android"},       {"iOS", "iOS"},         {"Chrome OS", "Chrome OS"},
        {"Chromium OS", "Chrome OS"}, {"Fuchsia", "Fuchsia"},
    };
    char name[LW_UA_FIELD];
    if (!hint_value(platform, name, sizeof name))
        return;
    const char *os = NULL;
    for (size_t i = 0; i < sizeof systems / sizeof systems[0]; i++)
        if (strcmp(name, systems[i].hint) == 0)
            os = systems[i].os;
    if (os == NULL)
        return; /* "Unknown" or something new: the User-Agent's answer stands */
    if (strcmp(u->os, os) != 0) {
        ua_set(u->os, os);
        u->os_version[0] = '\0';
    }
    char ver[UA_HINT_VERSION_MAX];
    if (!hint_value(platform_version, ver, sizeof ver) || !hint_version_ok(ver))
        return;
    if (strcmp(os, "Windows") == 0) {
        /* The platform version is the Windows.Foundation contract version:
         * 13 and up is Windows 11, 1..10 Windows 10; 0.1/0.2/0.3 are 7/8/8.1. */
        long major = hint_major(ver);
        if (major >= 13) {
            ua_set(u->os_version, "11");
        } else if (major >= 1 && major <= 10) {
            ua_set(u->os_version, "10");
        } else if (major == 0) {
            static const char *const old[] = {"7", "8", "8.1"};
            long minor = strlen(ver) > 2 && ver[1] == '.' ? hint_major(ver + 2) : -1;
            if (minor >= 1 && minor <= 3)
                ua_set(u->os_version, old[minor - 1]);
        }
        return;
    }
    hint_trim_zeros(ver);
    ua_clean(u->os_version, ver);
}

void lw_ua_apply_client_hints(lw_ua *u, const char *sec_ch_ua, const char *platform,
                              const char *platform_version, const char *model)
{
    if (u == NULL)
        return;
    hint_apply_brands(u, sec_ch_ua);
    hint_apply_platform(u, platform, platform_version);
    char m[LW_UA_FIELD];
    /* An empty model ("") is what desktops send: nothing to learn. */
    if (hint_value(model, m, sizeof m) && m[0] != '\0')
        ua_clean(u->device_model, m);
}

void lw_ua_name(const lw_ua *u, char *dst, size_t cap)
{
    if (dst == NULL || cap == 0)
        return;
    bool has_browser = u->browser[0] != '\0' && strcmp(u->browser, "Other") != 0;
    bool has_os = u->os[0] != '\0' && strcmp(u->os, "Other") != 0;
    int n;
    if (has_browser && has_os)
        n = snprintf(dst, cap, "%s on %s", u->browser, u->os);
    else if (has_browser)
        n = snprintf(dst, cap, "%s", u->browser);
    else if (has_os)
        n = snprintf(dst, cap, "%s device", u->os);
    else
        n = snprintf(dst, cap, "%s", "Unknown device");
    /* A cut-off name would mislead; an empty one lets the caller choose. */
    if (n < 0 || (size_t)n >= cap)
        dst[0] = '\0';
}
