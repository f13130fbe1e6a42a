/*
 * payload.c — the signed QR payload "lw1:<origin>.<ref>.<fp>.<sig>".
 */
#include "payload.h"

#include <string.h>

#include "lw.h"
#include "proof.h"

#define PAYLOAD_PREFIX "lw1:"
#define PAYLOAD_PREFIX_LEN 4

_Static_assert(LW_ORIGIN_MAX - 1 == LW_PROOF_ORIGIN_MAX, "an origin that parses is one the QR message takes");

/* Unpadded base64url length of n bytes. */
static size_t b64_len(size_t n)
{
    return (n * 4 + 2) / 3;
}

/* An origin is 1..LW_ORIGIN_MAX-1 bytes with no control characters (NUL
 * included), so that it survives C strings, logs and JSON unchanged. */
static bool origin_ok(const char *o, size_t n)
{
    if (n == 0 || n >= LW_ORIGIN_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)o[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

/* The signed message's raw part: ref then fp (proof.h, LW_PROOF_QR). */
static void payload_raw(uint8_t raw[LW_PROOF_QR_RAW_LEN], const uint8_t ref[LW_ID_BYTES],
                        const uint8_t fp[LW_FP_LEN])
{
    memcpy(raw, ref, LW_ID_BYTES);
    memcpy(raw + LW_ID_BYTES, fp, LW_FP_LEN);
}

int lw_payload_make(char *dst, size_t cap, const char *origin, const uint8_t ref[LW_ID_BYTES],
                    const uint8_t fp[LW_FP_LEN], const uint8_t server_sk[LW_SK_LEN])
{
    if (dst == NULL || origin == NULL)
        return LW_EINVAL;
    size_t olen = strnlen(origin, LW_ORIGIN_MAX);
    if (!origin_ok(origin, olen))
        return LW_EINVAL;
    size_t need = PAYLOAD_PREFIX_LEN + b64_len(olen) + 1 + b64_len(LW_ID_BYTES) + 1 + b64_len(LW_FP_LEN) + 1 +
                  b64_len(LW_SIG_LEN) + 1;
    if (cap < need)
        return LW_ETOOBIG;

    uint8_t raw[LW_PROOF_QR_RAW_LEN], sig[LW_SIG_LEN];
    payload_raw(raw, ref, fp);
    int rc = lw_proof_sign(sig, LW_PROOF_QR, origin, raw, sizeof raw, server_sk);
    if (rc != LW_OK)
        return rc;
    size_t o = 0;
    memcpy(dst, PAYLOAD_PREFIX, PAYLOAD_PREFIX_LEN);
    o += PAYLOAD_PREFIX_LEN;
    lw_b64_encode(dst + o, (const uint8_t *)origin, olen);
    o += strlen(dst + o);
    dst[o++] = '.';
    lw_b64_encode(dst + o, ref, LW_ID_BYTES);
    o += strlen(dst + o);
    dst[o++] = '.';
    lw_b64_encode(dst + o, fp, LW_FP_LEN);
    o += strlen(dst + o);
    dst[o++] = '.';
    lw_b64_encode(dst + o, sig, LW_SIG_LEN);
    return LW_OK;
}

int lw_payload_parse(lw_payload *p, const char *s, size_t len)
{
    if (p == NULL || s == NULL || len >= LW_PAYLOAD_MAX || len < PAYLOAD_PREFIX_LEN ||
        memcmp(s, PAYLOAD_PREFIX, PAYLOAD_PREFIX_LEN) != 0)
        return LW_EINVAL;
    const char *f[4];
    size_t flen[4];
    const char *cur = s + PAYLOAD_PREFIX_LEN;
    const char *end = s + len;
    for (int i = 0; i < 4; i++) {
        const char *dot = memchr(cur, '.', (size_t)(end - cur));
        if ((dot == NULL) != (i == 3))
            return LW_EINVAL; /* fewer or more than four fields */
        f[i] = cur;
        flen[i] = (size_t)((dot ? dot : end) - cur);
        cur = dot ? dot + 1 : end;
    }
    lw_payload tmp;
    memset(&tmp, 0, sizeof tmp);
    long olen = lw_b64_decode((uint8_t *)tmp.origin, LW_ORIGIN_MAX - 1, f[0], flen[0], 0);
    if (olen <= 0 || !origin_ok(tmp.origin, (size_t)olen))
        return LW_EINVAL;
    tmp.origin[olen] = '\0';
    if (lw_b64_decode(tmp.ref, sizeof tmp.ref, f[1], flen[1], LW_ID_BYTES) != LW_ID_BYTES ||
        lw_b64_decode(tmp.fp, sizeof tmp.fp, f[2], flen[2], LW_FP_LEN) != LW_FP_LEN ||
        lw_b64_decode(tmp.sig, sizeof tmp.sig, f[3], flen[3], LW_SIG_LEN) != LW_SIG_LEN)
        return LW_EINVAL;
    *p = tmp;
    return LW_OK;
}

int lw_payload_verify(const lw_payload *p, const uint8_t server_pk[LW_PK_LEN])
{
    size_t olen = strnlen(p->origin, LW_ORIGIN_MAX);
    if (!origin_ok(p->origin, olen))
        return LW_ECRYPTO;
    uint8_t raw[LW_PROOF_QR_RAW_LEN];
    payload_raw(raw, p->ref, p->fp);
    return lw_proof_verify(p->sig, LW_PROOF_QR, p->origin, raw, sizeof raw, server_pk) == LW_OK ? LW_OK
                                                                                                : LW_ECRYPTO;
}
