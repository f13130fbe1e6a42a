/*
 * httpmsg.h — what h2o's HTTP/1.1 parser leaves to us about a request:
 * whether its framing is unambiguous (RFC 9112 §6) and whether its body is
 * the media type a route takes (RFC 9110 §8.3). Pure functions over
 * caller-owned bytes: no I/O, no allocation, nothing kept.
 */
#ifndef LW_HTTPMSG_H
#define LW_HTTPMSG_H

#include <stdbool.h>
#include <stddef.h>

/* One header field as the parser split it (names in any case; a NULL name
 * is a line folded onto the field before it, as picohttpparser reports one). */
typedef struct lw_httpmsg_field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} lw_httpmsg_field;

typedef enum {
    LW_FRAMING_OK,     /* one way to find where the body ends */
    LW_FRAMING_CLOSE,  /* read as chunked, but the connection must carry nothing after it */
    LW_FRAMING_REJECT, /* answer 400 and close: the lengths disagree or cannot be read */
} lw_framing;

/* Longest sentence lw_httpmsg_framing and lw_httpmsg_media_type write. */
#define LW_HTTPMSG_WHY_MAX 256

/* Judges the framing of a request from its header fields and its minor
 * version (HTTP/1.minor), as RFC 9112 asks of a server:
 *   - Content-Length values (several fields, or a comma-separated list) that
 *     are not all the same decimal number: REJECT (§6.3 item 5); the same
 *     number repeated is that number (RFC 9110 §8.6);
 *   - more than one Transfer-Encoding field (chunked twice, or a coding before
 *     it that h2o would not see): REJECT;
 *   - either of them folded onto a second line: REJECT;
 *   - Transfer-Encoding with Content-Length, or in an HTTP/1.0 request: CLOSE
 *     (§6.1: Transfer-Encoding wins, and the connection is not reused).
 * For CLOSE and REJECT, why (cap bytes, NUL-terminated) says what was wrong;
 * on OK it is left empty. */
lw_framing lw_httpmsg_framing(const lw_httpmsg_field *fields, size_t n, int minor_version, char *why,
                              size_t cap);

/* True when the Content-Type value v[0..len) is one of the nwant media types
 * want ("application/json"), RFC 9110 §8.3.1: type "/" subtype, compared
 * without regard to case, then parameters `*( OWS ";" OWS [ name "=" value ] )`
 * with value a token or a quoted-string, of which only charset is allowed,
 * and only as utf-8 (any case, quoted or not). Whitespace around the whole
 * value is ignored. False with a sentence in why (cap bytes) saying what
 * differs, naming what the route takes as `what` ("application/json"); the
 * sentence may quote v, so it may hold any bytes the client sent. */
bool lw_httpmsg_media_type(const char *v, size_t len, const char *const *want, size_t nwant, const char *what,
                           char *why, size_t cap);

#endif
