#include "httpmsg.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* How many bytes of a client's value a sentence quotes. */
#define QUOTE_MAX 64
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

/* RFC 9110 §5.6.2 tchar. */
static bool tchar(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static size_t token(const char *v, size_t len, size_t i)
{
    size_t s = i;
    while (i < len && tchar(v[i]))
        i++;
    return i - s;
}

/* The quoted-string at v[i] (v[i] is '"'): its unescaped value goes to out
 * (cap bytes, NUL-terminated, cut if longer). Returns the bytes it spans, or
 * 0 when it does not end. */
static size_t quoted(const char *v, size_t len, size_t i, char *out, size_t cap)
{
    size_t s = i++, o = 0;
    while (i < len) {
        unsigned char c = (unsigned char)v[i];
        if (c == '"') {
            out[o] = '\0';
            return i + 1 - s;
        }
        if (c == '\\') {
            if (++i == len)
                return 0;
            c = (unsigned char)v[i];
        }
        /* qdtext and quoted-pair: HTAB, SP, visible ASCII and obs-text. */
        if (c != '\t' && (c < 0x20 || c == 0x7f))
            return 0;
        if (o + 1 < cap)
            out[o++] = (char)c;
        i++;
    }
    return 0;
}

bool lw_httpmsg_media_type(const char *v, size_t len, const char *const *want, size_t nwant, const char *what,
                           char *why, size_t cap)
{
    if (cap)
        why[0] = '\0';
    while (len > 0 && ows(v[0]))
        v++, len--;
    while (len > 0 && ows(v[len - 1]))
        len--;
    int shown = (int)(len < QUOTE_MAX ? len : QUOTE_MAX);
    size_t t = token(v, len, 0), i = t;
    size_t st = i < len && v[i] == '/' ? token(v, len, i + 1) : 0;
    if (t == 0 || st == 0) {
        say(why, cap, "The Content-Type \"%.*s\" is malformed (no type/subtype).", shown, v);
        return false;
    }
    i += 1 + st;
    const char *type = NULL;
    for (size_t k = 0; k < nwant && !type; k++)
        if (strlen(want[k]) == i && strncasecmp(v, want[k], i) == 0)
            type = want[k];
    if (!type) {
        say(why, cap, "The body must be %s, not %.*s.", what, (int)(i < QUOTE_MAX ? i : QUOTE_MAX), v);
        return false;
    }
    while (i < len) {
        while (i < len && ows(v[i]))
            i++;
        if (i == len)
            break;
        if (v[i] != ';') {
            say(why, cap, "The Content-Type \"%.*s\" is malformed at byte %zu (a \";\" was expected).", shown,
                v, i);
            return false;
        }
        i++;
        while (i < len && ows(v[i]))
            i++;
        if (i == len || v[i] == ';')
            continue; /* an empty parameter, which the grammar allows */
        size_t ns = i, nl = token(v, len, i);
        i += nl;
        if (nl == 0 || i == len || v[i] != '=') {
            say(why, cap, "The Content-Type \"%.*s\" is malformed at byte %zu (a parameter is name=value).",
                shown, v, i);
            return false;
        }
        i++;
        char value[QUOTE_MAX + 1];
        size_t vl;
        if (i < len && v[i] == '"') {
            vl = quoted(v, len, i, value, sizeof value);
        } else {
            vl = token(v, len, i);
            size_t k = vl < QUOTE_MAX ? vl : QUOTE_MAX;
            memcpy(value, v + i, k);
            value[k] = '\0';
        }
        if (vl == 0) {
            say(why, cap, "The Content-Type \"%.*s\" is malformed at byte %zu (a parameter has no value).",
                shown, v, i);
            return false;
        }
        i += vl;
        if (nl != 7 || strncasecmp(v + ns, "charset", 7) != 0) {
            say(why, cap, "%s takes no parameter but charset=utf-8, not %.*s.", type,
                (int)(nl < QUOTE_MAX ? nl : QUOTE_MAX), v + ns);
            return false;
        }
        if (strcasecmp(value, "utf-8") != 0) {
            say(why, cap, "The body must be UTF-8 (charset=utf-8), not charset=%s.", value);
            return false;
        }
    }
    return true;
}
