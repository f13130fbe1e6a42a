/*
 * proof.h — every message Linkward signs, defined once.
 *
 * A signature is over
 *
 *   domain 0x00 text 0x00 raw
 *
 * with, per kind (raw lengths in bytes):
 *
 *   kind              domain                 text             raw                   signed by
 *   LW_PROOF_LINK     "linkward-link-v1"     link request id  nonce (32)            companion's device key
 *   LW_PROOF_REFRESH  "linkward-refresh-v1"  device id        challenge (32)        that device's key
 *   LW_PROOF_ACCOUNT  "linkward-account-v1"  account id       companion's key (32)  primary's device key
 *   LW_PROOF_QR       "linkward-qr-v1"       origin           ref (16), fp (32)     server key (payload.h)
 *
 * Ids are their base64url text as the API carries them, origins their UTF-8
 * text; raw values are the bytes after base64url decoding. The domain keeps a
 * signature made for one purpose from being replayed for another; text is
 * 1..max bytes (LW_PROOF_ID_MAX, or LW_PROOF_ORIGIN_MAX for the QR) with no
 * control characters, so no NUL and the message reads back one way only.
 *
 * The web client builds the same bytes in web/js/proof.mjs; the known-answer
 * vectors in tests/vectors/proof.json hold both to it (unit.test_proof,
 * integration.proof_vectors).
 */
#ifndef LW_PROOF_H
#define LW_PROOF_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

typedef enum lw_proof_kind {
    LW_PROOF_LINK,    /* link completion: possession of the approved device key */
    LW_PROOF_REFRESH, /* credential refresh: possession of the session's device key */
    LW_PROOF_ACCOUNT, /* account signature: the primary vouches for a companion's key */
    LW_PROOF_QR,      /* QR payload: the server names origin, ref and key fingerprint */
    LW_PROOF_KINDS
} lw_proof_kind;

#define LW_PROOF_ID_MAX 128     /* bytes of an id (the client library accepts ids up to this) */
#define LW_PROOF_ORIGIN_MAX 255 /* bytes of an origin (payload.h's LW_ORIGIN_MAX less its NUL) */
#define LW_PROOF_RAW_LEN 32     /* raw bytes of the device kinds */
#define LW_PROOF_QR_RAW_LEN (LW_ID_BYTES + LW_FP_LEN)
#define LW_PROOF_DOMAIN_MAX 20 /* sizeof the longest domain, with its NUL */
/* The longest message of any kind: what a caller's buffer needs. */
#define LW_PROOF_MAX (LW_PROOF_DOMAIN_MAX + LW_PROOF_ORIGIN_MAX + 1 + LW_PROOF_QR_RAW_LEN)

/* The domain string of kind ("linkward-link-v1"), NULL for an unknown kind. */
const char *lw_proof_domain(lw_proof_kind kind);
/* The raw length kind takes (LW_PROOF_RAW_LEN or LW_PROOF_QR_RAW_LEN), 0 for an unknown kind. */
size_t lw_proof_raw_len(lw_proof_kind kind);

/*
 * Writes the message of kind over text and raw into dst (cap bytes) and its
 * length into *len. LW_EINVAL for an unknown kind, a NULL argument, an empty
 * text or one with a control character, or raw_len other than the kind's;
 * LW_ETOOBIG for a text longer than the kind's maximum or a message that does
 * not fit cap. Everything is checked before anything is written: on error
 * dst and *len are untouched, and nothing is ever truncated.
 */
int lw_proof_build(uint8_t *dst, size_t cap, size_t *len, lw_proof_kind kind, const char *text,
                   const uint8_t *raw, size_t raw_len);

/* Signs the message of kind over text and raw with sk: LW_OK, or the error of lw_proof_build. */
int lw_proof_sign(uint8_t sig[LW_SIG_LEN], lw_proof_kind kind, const char *text, const uint8_t *raw,
                  size_t raw_len, const uint8_t sk[LW_SK_LEN]);

/* LW_OK if sig is pk's signature over the message of kind over text and raw;
 * LW_ECRYPTO if it is not, or the error of lw_proof_build if there is no such
 * message. */
int lw_proof_verify(const uint8_t sig[LW_SIG_LEN], lw_proof_kind kind, const char *text, const uint8_t *raw,
                    size_t raw_len, const uint8_t pk[LW_PK_LEN]);

#endif
