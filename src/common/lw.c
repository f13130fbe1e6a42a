/*
 * lw.c — error names, time, the allocation wrapper, bounded buffers,
 * base64url and hex.
 */
#include "lw.h"

#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

const char *lw_strerror(int err)
{
    switch (err) {
    case LW_OK:
        return "success";
    case LW_EINVAL:
        return "invalid input";
    case LW_ENOMEM:
        return "out of memory";
    case LW_ENOTFOUND:
        return "not found";
    case LW_ECONFLICT:
        return "conflict";
    case LW_ESTORE:
        return "storage failure";
    case LW_EEXPIRED:
        return "expired";
    case LW_ELIMIT:
        return "limit reached";
    case LW_EDENIED:
        return "denied";
    case LW_EIO:
        return "I/O failure";
    case LW_ECRYPTO:
        return "cryptographic verification failed";
    case LW_ETOOBIG:
        return "too large";
    case LW_ELOCKED:
        return "locked";
    case LW_EUNAVAIL:
        return "store unavailable";
    default:
        return "unknown error";
    }
}

int64_t lw_now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t lw_mono_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void lw_time_format(int64_t ms, char dst[LW_TIME_STRLEN])
{
    /* Floor division so that pre-epoch instants land on the right second. */
    int64_t sec = ms / 1000;
    if (ms % 1000 < 0)
        sec--;
    /* Most calls format "now" many times a second; strftime also re-reads
     * the time zone each call. Remember the last second formatted. */
    static _Thread_local int64_t last_sec = INT64_MIN;
    static _Thread_local char last[LW_TIME_STRLEN];
    if (sec == last_sec) {
        memcpy(dst, last, LW_TIME_STRLEN);
        return;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(dst, LW_TIME_STRLEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        dst[0] = '\0';
        return;
    }
    memcpy(last, dst, LW_TIME_STRLEN);
    last_sec = sec;
}

int lw_duration_parse(const char *s, int64_t *out_ms)
{
    if (s == NULL || out_ms == NULL)
        return LW_EINVAL;
    const char *p = s;
    int64_t v = 0;
    if (*p < '0' || *p > '9')
        return LW_EINVAL; /* also rejects "", "-5", "+5", " 5" */
    for (; *p >= '0' && *p <= '9'; p++) {
        int d = *p - '0';
        if (v > (INT64_MAX - d) / 10)
            return LW_EINVAL;
        v = v * 10 + d;
    }
    int64_t mult;
    if (strcmp(p, "") == 0 || strcmp(p, "s") == 0)
        mult = 1000;
    else if (strcmp(p, "ms") == 0)
        mult = 1;
    else if (strcmp(p, "m") == 0)
        mult = 60 * 1000;
    else if (strcmp(p, "h") == 0)
        mult = 3600 * 1000;
    else if (strcmp(p, "d") == 0)
        mult = 86400 * 1000;
    else
        return LW_EINVAL;
    if (v > INT64_MAX / mult)
        return LW_EINVAL;
    *out_ms = v * mult;
    return LW_OK;
}

/* ---- allocation ---------------------------------------------------------- */

/* Countdown for fault injection: -1 disabled; k >= 0 means k more allocations
 * succeed and the one after fails (once). Atomic because the server may
 * allocate from several threads. */
static _Atomic long alloc_countdown = -1;

void lw_alloc_fail_after(long n)
{
    atomic_store(&alloc_countdown, n < 0 ? -1 : n);
}

static bool alloc_should_fail(void)
{
    long cur = atomic_load(&alloc_countdown);
    while (cur >= 0) {
        long next = cur == 0 ? -1 : cur - 1;
        if (atomic_compare_exchange_weak(&alloc_countdown, &cur, next))
            return cur == 0;
    }
    return false;
}

void *lw_malloc(size_t n)
{
    if (alloc_should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *lw_calloc(size_t count, size_t n)
{
    if (alloc_should_fail())
        return NULL;
    if (count == 0 || n == 0)
        count = n = 1;
    return calloc(count, n);
}

void *lw_realloc(void *p, size_t n)
{
    if (alloc_should_fail())
        return NULL;
    /* realloc(p, 0) is implementation-defined; never let it free behind our back. */
    return realloc(p, n ? n : 1);
}

char *lw_strdup(const char *s)
{
    if (s == NULL)
        return NULL;
    return lw_strndup(s, strlen(s));
}

char *lw_strndup(const char *s, size_t n)
{
    if (s == NULL)
        return NULL;
    n = strnlen(s, n);
    if (n == SIZE_MAX)
        return NULL;
    char *d = lw_malloc(n + 1);
    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void lw_free(void *p)
{
    free(p);
}

/* ---- bounded buffer ------------------------------------------------------ */

/* An empty buffer reads as "" before its first allocation; cap == 0 marks
 * that data points here and must never be written or freed. */
static char buf_empty[1];

void lw_buf_init(lw_buf *b, size_t max)
{
    b->data = buf_empty;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

/* Makes room for `extra` more bytes plus the terminator, doubling up to max. */
static int buf_reserve(lw_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return LW_ETOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return LW_OK;
    size_t ncap = b->cap ? b->cap : 64;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    if (ncap > b->max + 1)
        ncap = b->max + 1;
    /* Not realloc: the old block may hold secrets and must be wiped. */
    char *nd = lw_malloc(ncap);
    if (nd == NULL)
        return LW_ENOMEM;
    if (b->cap) {
        memcpy(nd, b->data, b->len + 1);
        sodium_memzero(b->data, b->cap);
        lw_free(b->data);
    } else {
        nd[0] = '\0';
    }
    b->data = nd;
    b->cap = ncap;
    return LW_OK;
}

int lw_buf_reserve(lw_buf *b, size_t n)
{
    return buf_reserve(b, n);
}

int lw_buf_append(lw_buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);
    if (rc != LW_OK)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return LW_OK;
}

/* Bytes a JSON string literal cannot hold as they are: '"', '\\', controls. */
static const unsigned char json_escape[256] = {
    [0 ... 0x1f] = 1,
    ['"'] = 1,
    ['\\'] = 1,
};

int lw_buf_append_json_str(lw_buf *b, const char *s)
{
    int rc = buf_reserve(b, strlen(s) + 2); /* exact unless something needs escaping */
    if (rc == LW_OK)
        rc = lw_buf_append(b, "\"", 1);
    const unsigned char *run = (const unsigned char *)s;
    for (const unsigned char *p = run; rc == LW_OK; p++) {
        while (!json_escape[*p])
            p++;
        rc = lw_buf_append(b, run, (size_t)(p - run));
        if (rc != LW_OK || *p == 0)
            break;
        char esc[7] = {'\\', (char)*p, 0};
        size_t n = 2;
        if (*p < 0x20) {
            static const char hex[] = "0123456789abcdef";
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 15];
            n = 6;
        }
        rc = lw_buf_append(b, esc, n);
        run = p + 1;
    }
    return rc == LW_OK ? lw_buf_append(b, "\"", 1) : rc;
}

int lw_buf_appendf(lw_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return LW_EINVAL;
    if ((size_t)n < sizeof small) {
        int rc = lw_buf_append(b, small, (size_t)n);
        sodium_memzero(small, sizeof small); /* arguments may be secrets */
        return rc;
    }
    sodium_memzero(small, sizeof small);
    int rc = buf_reserve(b, (size_t)n);
    if (rc != LW_OK)
        return rc;
    va_start(ap, fmt);
    int m = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (m != n) {
        b->data[b->len] = '\0';
        return LW_EINVAL;
    }
    b->len += (size_t)n;
    return LW_OK;
}

void lw_buf_reset(lw_buf *b)
{
    if (b->cap) {
        sodium_memzero(b->data, b->len);
        b->data[0] = '\0';
    }
    b->len = 0;
}

void lw_buf_free(lw_buf *b)
{
    if (b->cap && b->data != NULL) {
        sodium_memzero(b->data, b->cap);
        lw_free(b->data);
    }
    b->data = buf_empty;
    b->len = 0;
    b->cap = 0;
}

bool lw_slice_eq(lw_slice a, const char *cstr)
{
    if (cstr == NULL)
        return false;
    size_t n = strlen(cstr);
    return a.len == n && (n == 0 || memcmp(a.ptr, cstr, n) == 0);
}

/* ---- base64url ----------------------------------------------------------- */

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void lw_b64_encode(char *dst, const uint8_t *src, size_t n)
{
    size_t i = 0, o = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
        dst[o++] = b64_alphabet[v >> 18 & 63];
        dst[o++] = b64_alphabet[v >> 12 & 63];
        dst[o++] = b64_alphabet[v >> 6 & 63];
        dst[o++] = b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)src[i] << 16;
        dst[o++] = b64_alphabet[v >> 18 & 63];
        dst[o++] = b64_alphabet[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;
        dst[o++] = b64_alphabet[v >> 18 & 63];
        dst[o++] = b64_alphabet[v >> 12 & 63];
        dst[o++] = b64_alphabet[v >> 6 & 63];
    }
    dst[o] = '\0';
}

/* base64url digit values; XX (bit 6 set) for anything that is not a digit,
 * so that four digits are checked with one test. A table, since every request
 * decodes a credential. */
#define XX 0x40
static const uint8_t b64_values[256] = {
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, 62, XX, XX, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, XX, XX, XX, XX, XX, XX, XX, 0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12,
    13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, XX, XX, XX, XX, 63, XX, 26, 27, 28, 29, 30, 31, 32,
    33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
};
#undef XX

long lw_b64_decode(uint8_t *dst, size_t dst_cap, const char *src, size_t src_len, size_t expect)
{
    size_t rem = src_len % 4;
    if (rem == 1 || src_len > (size_t)LONG_MAX)
        return LW_EINVAL;
    size_t out_len = src_len / 4 * 3 + (rem ? rem - 1 : 0);
    if (expect != 0 && out_len != expect)
        return LW_EINVAL;
    if (out_len > dst_cap)
        return LW_ETOOBIG;
    const uint8_t *s = (const uint8_t *)src;
    size_t o = 0, i = 0;
    for (; i + 4 <= src_len; i += 4) {
        uint32_t a = b64_values[s[i]], b = b64_values[s[i + 1]], c = b64_values[s[i + 2]],
                 d = b64_values[s[i + 3]];
        if ((a | b | c | d) & 0x40)
            goto fail;
        uint32_t v = a << 18 | b << 12 | c << 6 | d;
        dst[o++] = (uint8_t)(v >> 16);
        dst[o++] = (uint8_t)(v >> 8);
        dst[o++] = (uint8_t)v;
    }
    /* Leftover bits must be zero: otherwise two strings would decode to the
     * same bytes, and tokens compared as text would have aliases. */
    if (rem == 2) {
        uint32_t a = b64_values[s[i]], b = b64_values[s[i + 1]];
        if ((a | b) & 0x40 || (b & 0xf))
            goto fail;
        dst[o++] = (uint8_t)(a << 2 | b >> 4);
    } else if (rem == 3) {
        uint32_t a = b64_values[s[i]], b = b64_values[s[i + 1]], c = b64_values[s[i + 2]];
        if ((a | b | c) & 0x40 || (c & 0x3))
            goto fail;
        uint32_t v = a << 12 | b << 6 | c;
        dst[o++] = (uint8_t)(v >> 10);
        dst[o++] = (uint8_t)(v >> 2);
    }
    return (long)o;
fail:
    sodium_memzero(dst, out_len);
    return LW_EINVAL;
}

size_t lw_fmt_i64(char *dst, long long v)
{
    char tmp[20];
    size_t n = 0, o = 0;
    /* Through unsigned, so that LLONG_MIN negates without overflow. */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        dst[o++] = '-';
    while (n)
        dst[o++] = tmp[--n];
    return o;
}

void lw_hex_encode(char *dst, const uint8_t *src, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        dst[2 * i] = hex[src[i] >> 4];
        dst[2 * i + 1] = hex[src[i] & 15];
    }
    dst[2 * n] = '\0';
}

int lw_strlcpy(char *dst, const char *src, size_t cap)
{
    if (cap == 0)
        return LW_ETOOBIG;
    size_t n = strnlen(src, cap);
    if (n == cap) {
        dst[0] = '\0';
        return LW_ETOOBIG;
    }
    memcpy(dst, src, n + 1);
    return LW_OK;
}

size_t lw_utf8_seq(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0)
        len = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0)
        len = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0; /* a continuation byte first, or 0xF8..0xFF */
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

size_t lw_utf8_sanitize(char *s)
{
    unsigned char *p = (unsigned char *)s;
    size_t n = strlen(s), replaced = 0;
    for (size_t i = 0; i < n;) {
        size_t k = lw_utf8_seq(p + i, n - i);
        if (k == 0) {
            p[i++] = '?';
            replaced++;
        } else {
            i += k;
        }
    }
    return replaced;
}
