/*
 * proof.c — the signed messages "domain \0 text \0 raw" (proof.h).
 */
#include "proof.h"

#include <string.h>

#include "lw.h"

#define DOMAIN_LINK "linkward-link-v1"
#define DOMAIN_REFRESH "linkward-refresh-v1"
#define DOMAIN_ACCOUNT "linkward-account-v1"
#define DOMAIN_QR "linkward-qr-v1"

static const struct {
    const char *domain;
    size_t text_max;
    size_t raw_len;
} kinds[LW_PROOF_KINDS] = {
    [LW_PROOF_LINK] = {DOMAIN_LINK, LW_PROOF_ID_MAX, LW_PROOF_RAW_LEN},
    [LW_PROOF_REFRESH] = {DOMAIN_REFRESH, LW_PROOF_ID_MAX, LW_PROOF_RAW_LEN},
    [LW_PROOF_ACCOUNT] = {DOMAIN_ACCOUNT, LW_PROOF_ID_MAX, LW_PROOF_RAW_LEN},
    [LW_PROOF_QR] = {DOMAIN_QR, LW_PROOF_ORIGIN_MAX, LW_PROOF_QR_RAW_LEN},
};

/* LW_PROOF_MAX is the longest domain with the QR's text and raw part, the
 * longest of each. */
_Static_assert(sizeof DOMAIN_LINK <= LW_PROOF_DOMAIN_MAX && sizeof DOMAIN_REFRESH <= LW_PROOF_DOMAIN_MAX &&
                   sizeof DOMAIN_ACCOUNT <= LW_PROOF_DOMAIN_MAX && sizeof DOMAIN_QR <= LW_PROOF_DOMAIN_MAX,
               "LW_PROOF_DOMAIN_MAX holds every domain");
_Static_assert(LW_PROOF_ID_MAX <= LW_PROOF_ORIGIN_MAX && LW_PROOF_RAW_LEN <= LW_PROOF_QR_RAW_LEN,
               "the QR's text and raw part are the longest");

static bool kind_ok(lw_proof_kind kind)
{
    return (unsigned)kind < LW_PROOF_KINDS;
}

const char *lw_proof_domain(lw_proof_kind kind)
{
    return kind_ok(kind) ? kinds[kind].domain : NULL;
}

size_t lw_proof_raw_len(lw_proof_kind kind)
{
    return kind_ok(kind) ? kinds[kind].raw_len : 0;
}

int lw_proof_build(uint8_t *dst, size_t cap, size_t *len, lw_proof_kind kind, const char *text,
                   const uint8_t *raw, size_t raw_len)
{
    if (!kind_ok(kind) || dst == NULL || len == NULL || text == NULL || raw == NULL ||
        raw_len != kinds[kind].raw_len)
        return LW_EINVAL;
    /* strnlen one past the maximum: a longer text is told apart from one
     * that just fits without reading all of it. */
    size_t tlen = strnlen(text, kinds[kind].text_max + 1);
    if (tlen > kinds[kind].text_max)
        return LW_ETOOBIG;
    if (tlen == 0)
        return LW_EINVAL;
    for (size_t i = 0; i < tlen; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 || c == 0x7f)
            return LW_EINVAL;
    }
    size_t dsize = strlen(kinds[kind].domain) + 1; /* with its NUL */
    size_t need = dsize + tlen + 1 + raw_len;
    if (cap < need)
        return LW_ETOOBIG;
    memcpy(dst, kinds[kind].domain, dsize);
    memcpy(dst + dsize, text, tlen);
    dst[dsize + tlen] = 0;
    memcpy(dst + dsize + tlen + 1, raw, raw_len);
    *len = need;
    return LW_OK;
}

int lw_proof_sign(uint8_t sig[LW_SIG_LEN], lw_proof_kind kind, const char *text, const uint8_t *raw,
                  size_t raw_len, const uint8_t sk[LW_SK_LEN])
{
    uint8_t msg[LW_PROOF_MAX];
    size_t len;
    int rc = lw_proof_build(msg, sizeof msg, &len, kind, text, raw, raw_len);
    if (rc != LW_OK)
        return rc;
    lw_sign(sig, msg, len, sk);
    return LW_OK;
}

int lw_proof_verify(const uint8_t sig[LW_SIG_LEN], lw_proof_kind kind, const char *text, const uint8_t *raw,
                    size_t raw_len, const uint8_t pk[LW_PK_LEN])
{
    uint8_t msg[LW_PROOF_MAX];
    size_t len;
    int rc = lw_proof_build(msg, sizeof msg, &len, kind, text, raw, raw_len);
    if (rc != LW_OK)
        return rc;
    return lw_verify(sig, msg, len, pk);
}
