/*
 * payload.h — the signed QR payload.
 *
 *   lw1:<origin>.<ref>.<fp>.<sig>
 *
 * each field base64url (no padding): origin is the server's public origin
 * ("https://example.org"), ref is 16 random bytes, fp the 32-byte fingerprint
 * of the companion's device key, sig the server's Ed25519 signature over the
 * LW_PROOF_QR message of origin, ref and fp (proof.h).
 * A primary checks the signature against the server key it pinned at
 * registration and that origin equals its server's origin, which defeats
 * payloads relayed from phishing pages and foreign servers.
 */
#ifndef LW_PAYLOAD_H
#define LW_PAYLOAD_H

#include <stdint.h>
#include <stddef.h>
#include "crypto.h"

#define LW_ORIGIN_MAX 256
#define LW_PAYLOAD_MAX 1024

typedef struct lw_payload {
    char origin[LW_ORIGIN_MAX];
    uint8_t ref[LW_ID_BYTES];
    uint8_t fp[LW_FP_LEN];
    uint8_t sig[LW_SIG_LEN];
} lw_payload;

/* Signs and formats a payload. dst must hold LW_PAYLOAD_MAX bytes. */
int lw_payload_make(char *dst, size_t cap, const char *origin, const uint8_t ref[LW_ID_BYTES],
                    const uint8_t fp[LW_FP_LEN], const uint8_t server_sk[LW_SK_LEN]);
/* Parses the text form without checking the signature. LW_EINVAL if malformed. */
int lw_payload_parse(lw_payload *p, const char *s, size_t len);
/* Checks p's signature with server_pk: LW_OK or LW_ECRYPTO. */
int lw_payload_verify(const lw_payload *p, const uint8_t server_pk[LW_PK_LEN]);

#endif
