/*
 * ua.h — what kind of device is asking, from its User-Agent (and, later,
 * User-Agent Client Hints). A small built-in matcher for the common browsers
 * and systems; the uap-core based parser replaces its internals later without
 * changing this interface.
 */
#ifndef LW_UA_H
#define LW_UA_H

#include <stddef.h>

#define LW_UA_FIELD 64

typedef struct lw_ua {
    char browser[LW_UA_FIELD];         /* "Chrome", "Firefox", "Safari", "Edge", "Opera", "curl", "Other" */
    char browser_version[LW_UA_FIELD]; /* "120.0.6099" or "" */
    char os[LW_UA_FIELD];              /* "Windows", "macOS", "Linux", "Android", "iOS", "ChromeOS", "Other" */
    char os_version[LW_UA_FIELD];      /* "10", "14.2", or "" */
    char device_model[LW_UA_FIELD];    /* "iPhone", "Pixel 7", "Mac", or "" */
} lw_ua;

/* Fills u from a User-Agent header value (may be NULL or empty: all "Other"/""). Never fails. */
void lw_ua_parse(lw_ua *u, const char *ua, size_t len);
/* Default device name, e.g. "Chrome on Windows". */
void lw_ua_name(const lw_ua *u, char *dst, size_t cap);

#endif
