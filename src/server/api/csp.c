#include "csp.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Every directive a report can name (CSP 3, plus the fetch directives CSP 2
 * browsers report); anything else is "other", so the label set stays bounded. */
static const char *const directives[] = {
    "default-src",
    "script-src",
    "script-src-elem",
    "script-src-attr",
    "style-src",
    "style-src-elem",
    "style-src-attr",
    "img-src",
    "connect-src",
    "font-src",
    "media-src",
    "object-src",
    "frame-src",
    "child-src",
    "worker-src",
    "manifest-src",
    "prefetch-src",
    "fenced-frame-src",
    "base-uri",
    "form-action",
    "frame-ancestors",
    "navigate-to",
    "sandbox",
    "trusted-types",
    "require-trusted-types-for",
    "upgrade-insecure-requests",
    "webrtc",
};

/* Keywords browsers put in blocked-uri / blockedURL instead of a URL. */
static const char *const keywords[] = {
    "inline", "eval", "wasm-eval", "self", "trusted-types-policy", "trusted-types-sink"};

const char *lw_csp_directive(const char *reported)
{
    if (!reported)
        return "other";
    size_t n = strcspn(reported, " \t");
    for (size_t i = 0; i < sizeof directives / sizeof directives[0]; i++)
        if (strlen(directives[i]) == n && strncmp(directives[i], reported, n) == 0)
            return directives[i];
    return "other";
}

static bool scheme_char(char c, bool first)
{
    return isalpha((unsigned char)c) ||
           (!first && (isdigit((unsigned char)c) || c == '+' || c == '-' || c == '.'));
}

static bool host_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_';
}

void lw_csp_blocked(const char *reported, char *dst, size_t cap)
{
    if (cap == 0)
        return;
    dst[0] = '\0';
    if (!reported || !reported[0])
        return;
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if (strcmp(reported, keywords[i]) == 0) {
            snprintf(dst, cap, "%s", keywords[i]);
            return;
        }
    /* scheme ":" ... */
    size_t s = 0;
    while (reported[s] && scheme_char(reported[s], s == 0) && s < 32)
        s++;
    if (s == 0 || reported[s] != ':') {
        snprintf(dst, cap, "other");
        return;
    }
    char scheme[33];
    for (size_t i = 0; i < s; i++)
        scheme[i] = (char)tolower((unsigned char)reported[i]);
    scheme[s] = '\0';
    const char *rest = reported + s + 1;
    if (strncmp(rest, "//", 2) != 0) {
        snprintf(dst, cap, "%s:", scheme); /* data:, blob:, about: ... */
        return;
    }
    /* The authority ends at the path, query or fragment; user info (before
     * the last '@') is dropped. */
    const char *auth = rest + 2;
    size_t alen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (auth[i] == '@')
            at = auth + i;
    if (at) {
        alen -= (size_t)(at + 1 - auth);
        auth = at + 1;
    }
    if (alen == 0 || alen > 260) {
        snprintf(dst, cap, "%s:", scheme);
        return;
    }
    for (size_t i = 0; i < alen; i++)
        if (!host_char(auth[i])) {
            snprintf(dst, cap, "%s:", scheme);
            return;
        }
    int n = snprintf(dst, cap, "%s://%.*s", scheme, (int)alen, auth);
    if (n < 0 || (size_t)n >= cap)
        snprintf(dst, cap, "%s:", scheme);
    for (char *p = dst; *p; p++)
        *p = (char)tolower((unsigned char)*p);
}
