/*
 * cred.h — session credentials and link-request tokens.
 *
 * A credential is "<selector>.<verifier>" in base64url: the selector (128
 * bits) finds the record, the verifier (256 bits) proves possession. The
 * store keeps the selector and only a keyed hash of the verifier, so a stolen
 * database does not yield usable credentials; verifiers are compared in
 * constant time. Prefix "lws_" marks session credentials, "lwl_" link-request
 * tokens, so a token pasted in the wrong place is recognised at once.
 */
#ifndef LW_CRED_H
#define LW_CRED_H

#include <stdint.h>
#include "crypto.h"

#define LW_SEL_BYTES 16
#define LW_VER_BYTES 32
/* "lws_" + 22 + "." + 43 + NUL */
#define LW_CRED_STRLEN 72

typedef enum { LW_CRED_SESSION = 0, LW_CRED_LINK = 1 } lw_cred_kind;

typedef struct lw_cred {
    lw_cred_kind kind;
    uint8_t selector[LW_SEL_BYTES];
    uint8_t verifier[LW_VER_BYTES];
} lw_cred;

/* Creates a new random credential of the given kind. */
void lw_cred_new(lw_cred *c, lw_cred_kind kind);
/* Writes the string form into dst (LW_CRED_STRLEN bytes). */
void lw_cred_format(const lw_cred *c, char dst[LW_CRED_STRLEN]);
/* Parses the string form (exactly; no surrounding whitespace). LW_EINVAL on any deviation. */
int lw_cred_parse(lw_cred *c, const char *s, size_t len);
/* Keyed hash of the verifier: what the store keeps. */
void lw_cred_hash(const lw_cred *c, const uint8_t key[LW_KEY_LEN], uint8_t out[LW_HASH_LEN]);
/* Base64url of the selector, used as the store's lookup key (22 chars + NUL). */
void lw_cred_selector_str(const lw_cred *c, char dst[LW_ID_STRLEN]);
/* The same string, read off a credential text that lw_cred_parse accepted
 * (no decoding: parse refuses non-canonical base64, so the text's selector
 * part is exactly what lw_cred_selector_str would write). */
void lw_cred_selector_text(const char *s, char dst[LW_ID_STRLEN]);
/* Zeroes the credential. */
void lw_cred_wipe(lw_cred *c);

#endif
