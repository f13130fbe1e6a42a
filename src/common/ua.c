/*
 * ua.c — a small User-Agent matcher.
 *
 * The header is attacker-controlled and not NUL-terminated: every scan is
 * bounded by len, and what we copy out is restricted to printable ASCII so it
 * is safe to log and show.
 */
#include "ua.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lw.h"

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

/* Copies the version at t[at...] (digits and dots; '_' becomes '.') into dst. */
static void ua_version_at(ua_text t, size_t at, char dst[LW_UA_FIELD])
{
    size_t o = 0;
    for (size_t i = at; i < t.len && o + 1 < LW_UA_FIELD && ua_is_version_char(t.p[i]); i++)
        dst[o++] = t.p[i] == '_' ? '.' : t.p[i];
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
    ua_version_at(t, (size_t)at + strlen(token), dst);
    return true;
}

static void ua_set(char dst[LW_UA_FIELD], const char *s)
{
    if (lw_strlcpy(dst, s, LW_UA_FIELD) != LW_OK)
        dst[0] = '\0';
}

/* Copies t[from, to) trimmed of spaces into dst, printable ASCII only. */
static void ua_copy_span(ua_text t, size_t from, size_t to, char dst[LW_UA_FIELD])
{
    while (from < to && t.p[from] == ' ')
        from++;
    while (to > from && t.p[to - 1] == ' ')
        to--;
    size_t o = 0;
    for (size_t i = from; i < to && o + 1 < LW_UA_FIELD; i++) {
        unsigned char c = (unsigned char)t.p[i];
        if (c < 0x20 || c > 0x7e)
            break;
        dst[o++] = (char)c;
    }
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
        ua_version_at(t, 5, u->browser_version);
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
        {"Windows NT 10.0", "10"}, {"Windows NT 6.3", "8.1"}, {"Windows NT 6.2", "8"},
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
        ua_copy_span(t, seg, seg_end, model);
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

static void ua_os(ua_text t, lw_ua *u)
{
    long at;
    if (ua_has(t, "Windows")) {
        ua_windows(t, u);
    } else if ((at = ua_find(t, 0, "Android")) >= 0) {
        ua_set(u->os, "Android");
        size_t v = (size_t)at + strlen("Android");
        if (v < t.len && t.p[v] == ' ')
            ua_version_at(t, v + 1, u->os_version);
        ua_android_model(t, (size_t)at, u);
    } else if (ua_has(t, "iPhone") || ua_has(t, "iPad") || ua_has(t, "iPod")) {
        ua_set(u->os, "iOS");
        ua_set(u->device_model, ua_has(t, "iPad") ? "iPad" : ua_has(t, "iPod") ? "iPod" : "iPhone");
        /* "CPU iPhone OS 17_1 like Mac OS X" or "CPU OS 17_1 like …" */
        if ((at = ua_find(t, 0, " OS ")) >= 0)
            ua_version_at(t, (size_t)at + 4, u->os_version);
    } else if (ua_has(t, "CrOS")) {
        ua_set(u->os, "ChromeOS");
    } else if (ua_has(t, "Macintosh") || ua_has(t, "Mac OS X")) {
        ua_set(u->os, "macOS");
        ua_set(u->device_model, "Mac");
        if ((at = ua_find(t, 0, "Mac OS X ")) >= 0)
            ua_version_at(t, (size_t)at + strlen("Mac OS X "), u->os_version);
    } else if (ua_has(t, "Linux") || ua_has(t, "X11")) {
        ua_set(u->os, "Linux");
    } else {
        ua_set(u->os, "Other");
    }
}

void lw_ua_parse(lw_ua *u, const char *ua, size_t len)
{
    memset(u, 0, sizeof *u);
    ua_text t = {ua, ua == NULL ? 0 : len};
    ua_browser(t, u);
    ua_os(t, u);
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
