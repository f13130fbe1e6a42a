#include "httpmsg.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Digits a Content-Length may have: 19 keep every value below 2^63, and h2o
 * refuses bodies past 64 KiB long before. */
#define LENGTH_DIGITS_MAX 19

static void say(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t cap, const char *fmt, ...)
{
    if (cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    if (n < 0)
        why[0] = '\0';
    else if ((size_t)n >= cap && cap > 4)
        memcpy(why + cap - 4, "...", 4); /* says it was cut */
}

static bool name_is(const lw_httpmsg_field *f, const char *name)
{
    size_t n = strlen(name);
    return f->name_len == n && strncasecmp(f->name, name, n) == 0;
}

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Reads the comma-separated Content-Length list v[0..len) into *first (when
 * *have is false) or compares each element with it. Returns false when an
 * element is not 1*DIGIT or differs from *first; *bad then holds the value. */
static bool lengths(const char *v, size_t len, bool *have, uint64_t *first, uint64_t *bad, bool *number)
{
    size_t i = 0;
    for (;;) {
        while (i < len && ows(v[i]))
            i++;
        size_t start = i;
        uint64_t x = 0;
        while (i < len && v[i] >= '0' && v[i] <= '9' && i - start < LENGTH_DIGITS_MAX)
            x = x * 10 + (uint64_t)(v[i++] - '0');
        size_t digits = i - start;
        while (i < len && ows(v[i]))
            i++;
        if (digits == 0 || (i < len && v[i] != ',')) {
            *number = false;
            return false;
        }
        if (!*have) {
            *first = x;
            *have = true;
        } else if (x != *first) {
            *bad = x;
            *number = true;
            return false;
        }
        if (i == len)
            return true;
        i++; /* the comma */
    }
}

lw_framing lw_httpmsg_framing(const lw_httpmsg_field *fields, size_t n, int minor_version, char *why,
                              size_t cap)
{
    size_t te = 0, cl = 0;
    bool have = false;
    uint64_t first = 0, bad = 0;
    if (cap)
        why[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (fields[i].name == NULL) {
            /* A line folded onto the one before (obs-fold, RFC 9112 §5.2):
             * h2o keeps it apart, so a length folded so would be read two ways. */
            if (i > 0 && fields[i - 1].name &&
                (name_is(&fields[i - 1], "transfer-encoding") || name_is(&fields[i - 1], "content-length"))) {
                say(why, cap, "The request's Content-Length or Transfer-Encoding is folded across lines.");
                return LW_FRAMING_REJECT;
            }
            continue;
        }
        if (name_is(&fields[i], "transfer-encoding")) {
            te++;
        } else if (name_is(&fields[i], "content-length")) {
            cl++;
            bool number;
            if (!lengths(fields[i].value, fields[i].value_len, &have, &first, &bad, &number)) {
                if (number)
                    say(why, cap,
                        "The request says two lengths (Content-Length %llu and %llu); "
                        "it cannot be read one way only.",
                        (unsigned long long)first, (unsigned long long)bad);
                else
                    say(why, cap, "The request's Content-Length is not a number of bytes.");
                return LW_FRAMING_REJECT;
            }
        }
    }
    if (te > 1) {
        say(why, cap,
            "The request has more than one Transfer-Encoding header; only one, \"chunked\", is understood.");
        return LW_FRAMING_REJECT;
    }
    if (te == 1 && cl > 0) {
        say(why, cap,
            "The request has both Transfer-Encoding and Content-Length: read as chunked, then closed.");
        return LW_FRAMING_CLOSE;
    }
    if (te == 1 && minor_version == 0) {
        say(why, cap, "An HTTP/1.0 request with Transfer-Encoding: read as chunked, then closed.");
        return LW_FRAMING_CLOSE;
    }
    return LW_FRAMING_OK;
}
