/*
 * ua.h — what kind of device is asking, from its User-Agent, refined by
 * User-Agent Client Hints.
 *
 * The answers come from the uap-core regular expressions (Debian's uap-core:
 * /usr/share/uap-core/regexes.yaml), compiled once with PCRE2 and matched in
 * file order, with results cached by User-Agent string. Without that file a
 * small built-in matcher answers for the common browsers and systems, so the
 * server still works.
 *
 * Families are uap-core's as they are ("Chrome", "Mobile Safari", "Mac OS X",
 * "Chrome OS", ...), except our own CLI ("Linkward CLI").
 *
 * Thread safety: lw_ua_parse and the lw_ua_parse_* functions may run from
 * several threads at once; lw_ua_init and lw_ua_free wait for them.
 */
#ifndef LW_UA_H
#define LW_UA_H

#include <stdbool.h>
#include <stddef.h>

#define LW_UA_FIELD 64

typedef struct lw_ua {
    char browser[LW_UA_FIELD];         /* "Chrome", "Firefox", "Mobile Safari", "Edge", "curl", "Other" */
    char browser_version[LW_UA_FIELD]; /* "120.0.6099" (major.minor.patch, no trailing empties) or "" */
    char os[LW_UA_FIELD];         /* "Windows", "Mac OS X", "Linux", "Android", "iOS", "Chrome OS", "Other" */
    char os_version[LW_UA_FIELD]; /* "10", "14.2", "10.15.7", or "" */
    char device_model[LW_UA_FIELD]; /* "iPhone", "Pixel 7", "Mac", or "" when unknown */
} lw_ua;

/* The default location of the uap-core rules. */
#define LW_UA_REGEXES_DEFAULT "/usr/share/uap-core/regexes.yaml"

/* Loads and compiles the uap-core rules from regexes_path (NULL: the default
 * path), replacing any loaded before, and empties the cache. Returns LW_OK;
 * LW_ENOTFOUND if the file does not exist, LW_EINVAL if it is not a valid
 * rules file or a regex does not compile, LW_ETOOBIG past the size limits,
 * LW_ENOMEM, LW_EIO: in every failure case the built-in matcher answers from
 * then on, and lw_ua_error() says why (the caller logs it). Optional: the first
 * lw_ua_parse loads the default path if nobody called it. Takes a few hundred
 * milliseconds, so servers call it at start-up. */
int lw_ua_init(const char *regexes_path);

/* Frees the rules and the cache. A later lw_ua_parse loads the default rules
 * again. Must not race a running lw_ua_init. */
void lw_ua_free(void);

/* Why the last lw_ua_init failed ("" after a success). Never NULL; static storage. */
const char *lw_ua_error(void);

/* Fills u from a User-Agent header value (may be NULL or empty: all "Other"/"").
 * Never fails. Every field is printable ASCII (safe to log and show). */
void lw_ua_parse(lw_ua *u, const char *ua, size_t len);

/* Refines u with User-Agent Client Hints, each the raw header value or NULL
 * when absent: sec_ch_ua (`"Chromium";v="124", "Google Chrome";v="124",
 * "Not-A.Brand";v="99"`), platform (Sec-CH-UA-Platform, `"Windows"`),
 * platform_version (Sec-CH-UA-Platform-Version, `"15.0.0"`), model
 * (Sec-CH-UA-Model, `"Pixel 7"`). Quoted or bare values are accepted; a value
 * that is malformed or longer than its bound is ignored. */
void lw_ua_apply_client_hints(lw_ua *u, const char *sec_ch_ua, const char *platform,
                              const char *platform_version, const char *model);

/* Default device name, e.g. "Chrome on Windows". */
void lw_ua_name(const lw_ua *u, char *dst, size_t cap);

/* ---- uap-core's own view, for tests and diagnostics ---------------------- */

#define LW_UAP_FIELD 256

/* One section's answer with uap-core's fields; "" means null. Raw bytes of the
 * User-Agent (not sanitised: may hold any UTF-8), truncated to the field. */
typedef struct lw_uap {
    char family[LW_UAP_FIELD]; /* "Other" when no rule matched */
    char major[LW_UAP_FIELD];
    char minor[LW_UAP_FIELD];
    char patch[LW_UAP_FIELD];
    char patch_minor[LW_UAP_FIELD];
    char brand[LW_UAP_FIELD]; /* device section only */
    char model[LW_UAP_FIELD]; /* device section only */
} lw_uap;

/* Runs one section of the rules (user_agent_parsers, os_parsers,
 * device_parsers) on ua, uncached, loading the default rules if needed.
 * Return LW_OK when a rule matched, LW_ENOTFOUND when none did (family
 * "Other"), LW_EINVAL when the uap-core rules are not loaded (family "Other"). */
int lw_ua_parse_agent(lw_uap *out, const char *ua, size_t len);
int lw_ua_parse_os(lw_uap *out, const char *ua, size_t len);
int lw_ua_parse_device(lw_uap *out, const char *ua, size_t len);

typedef struct lw_ua_stats {
    bool uap;             /* the uap-core rules are loaded (else the built-in matcher answers) */
    size_t rules;         /* compiled rules, all sections */
    size_t jit_rules;     /* of which PCRE2 JIT-compiled */
    size_t cache_entries; /* current, at most LW_UA_CACHE_ENTRIES */
    unsigned long long cache_hits, cache_misses;
} lw_ua_stats;

#define LW_UA_CACHE_ENTRIES 1024

void lw_ua_get_stats(lw_ua_stats *st);

#endif
