/*
 * lw.h — the few things every Linkward module shares: error codes, time, the
 * allocation wrapper, bounded buffers and base64url.
 *
 * Error convention: functions return LW_OK (0) or a negative LW_E* code. The
 * error is logged once, where it happens; callers propagate the code.
 */
#ifndef LW_H
#define LW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    LW_OK = 0,
    LW_EINVAL = -1,    /* malformed input */
    LW_ENOMEM = -2,    /* allocation failed or a bound would be crossed */
    LW_ENOTFOUND = -3, /* no such record */
    LW_ECONFLICT = -4, /* state changed under us (single-use consumed, unique key taken) */
    LW_ESTORE = -5,    /* storage backend failure */
    LW_EEXPIRED = -6,  /* too late */
    LW_ELIMIT = -7,    /* a configured limit was reached */
    LW_EDENIED = -8,   /* not allowed */
    LW_EIO = -9,       /* I/O or network failure */
    LW_ECRYPTO = -10,  /* signature/verification failure */
    LW_ETOOBIG = -11,  /* input larger than its bound */
    LW_ELOCKED = -12,  /* temporarily locked out */
    /* The store cannot take the operation now (disk full, read-only, I/O
     * error, locked past its wait, unreachable) and nothing was written:
     * retry later. The API answers it 503 store_unavailable; a write failing
     * so makes /v1/health say "degraded" (store.c). Server-side only. */
    LW_EUNAVAIL = -13,
};

/* Human-readable name of an LW_E* code ("invalid input", ...). Never NULL. */
const char *lw_strerror(int err);

/* Wall clock in milliseconds since the Unix epoch. */
int64_t lw_now_ms(void);
/* Milliseconds of CLOCK_MONOTONIC: for intervals and deadlines, which a change
 * of the wall clock must not stretch or cut. */
int64_t lw_mono_ms(void);

/* Formats a millisecond timestamp as RFC 3339 UTC ("2026-11-21T23:55:00Z") into
 * dst (at least LW_TIME_STRLEN bytes). */
#define LW_TIME_STRLEN 32
void lw_time_format(int64_t ms, char dst[LW_TIME_STRLEN]);

/* Parses a duration such as "250ms", "30s", "10m", "6h", "30d" (a bare number
 * means seconds) into milliseconds. Returns LW_OK or LW_EINVAL. */
int lw_duration_parse(const char *s, int64_t *out_ms);

/* Allocation wrapper: every module allocates through these so that tests can
 * inject failures. lw_alloc_fail_after(n) makes the n-th next allocation fail
 * (n < 0 disables). lw_calloc zero-fills. Never abort; return NULL on failure. */
void *lw_malloc(size_t n);
void *lw_calloc(size_t count, size_t n);
void *lw_realloc(void *p, size_t n);
char *lw_strdup(const char *s);
char *lw_strndup(const char *s, size_t n);
void lw_free(void *p);
void lw_alloc_fail_after(long n);

/* A growable byte buffer that refuses to grow past max. The contents are
 * always NUL-terminated (the terminator is not counted in len). */
typedef struct lw_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
} lw_buf;

void lw_buf_init(lw_buf *b, size_t max);
int lw_buf_append(lw_buf *b, const void *p, size_t n); /* LW_ETOOBIG past max */
/* Makes room for n more bytes at once (one allocation instead of a doubling
 * per append when the size is known or bounded). LW_ETOOBIG past max. */
int lw_buf_reserve(lw_buf *b, size_t n);
int lw_buf_appendf(lw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lw_buf_reset(lw_buf *b);
/* Appends s as a JSON string literal, quotes included: '"', '\\' and control
 * characters escaped, everything else copied as it is (s must be UTF-8). For
 * answers written by hand where jansson would decode every character. */
int lw_buf_append_json_str(lw_buf *b, const char *s);
/* Frees the storage; zeroes it first (buffers may have held secrets). */
void lw_buf_free(lw_buf *b);

/* A view into bytes owned by someone else. */
typedef struct lw_slice {
    const char *ptr;
    size_t len;
} lw_slice;

#define LW_SLICE_LIT(s) ((lw_slice){(s), sizeof(s) - 1})
bool lw_slice_eq(lw_slice a, const char *cstr);

/* base64url without padding. lw_b64_enc_len(n) bytes (including the NUL) are
 * needed for n input bytes. Decoding rejects padding, whitespace and any
 * character outside the alphabet, and requires the exact decoded length
 * `expect` when expect != 0; returns the decoded length or a negative code. */
#define lw_b64_enc_len(n) ((((n) + 2) / 3) * 4 + 1)
void lw_b64_encode(char *dst, const uint8_t *src, size_t n);
long lw_b64_decode(uint8_t *dst, size_t dst_cap, const char *src, size_t src_len, size_t expect);

/* Lowercase hex; dst needs 2n+1 bytes. */
void lw_hex_encode(char *dst, const uint8_t *src, size_t n);
/* Writes v in decimal (no terminator); returns the digits written (at most
 * 20). For hot paths where a printf would cost more than the work around it. */
size_t lw_fmt_i64(char *dst, long long v);

/* Copies src into dst of size cap; returns LW_ETOOBIG (and leaves dst empty) if it does not fit. */
int lw_strlcpy(char *dst, const char *src, size_t cap);

/* Length (1..4) of the well-formed UTF-8 sequence s[0..n) starts with, or 0
 * when it starts with none (RFC 3629: no overlong forms, no surrogates, nothing
 * past U+10FFFF; the rules jansson applies to every string it builds). */
size_t lw_utf8_seq(const unsigned char *s, size_t n);
/* Makes the NUL-terminated s well-formed UTF-8 in place: every byte that is
 * not part of a well-formed sequence becomes '?', so the length never changes
 * (a sequence cut by a bounded snprintf ends in '?'). Returns the number of
 * bytes replaced. For any text a client or a parser gave us that goes into an
 * error message or a log line: jansson refuses to encode anything else. */
size_t lw_utf8_sanitize(char *s);

#endif
