/*
 * crypto.c — libsodium behind the small surface Linkward needs.
 */
#include "crypto.h"

#include <sodium.h>

#include "lw.h"

int lw_crypto_init(void)
{
    /* 1 means "already initialised", which is fine. */
    if (sodium_init() < 0)
        return LW_ECRYPTO;
    return LW_OK;
}

void lw_random(void *dst, size_t n)
{
    randombytes_buf(dst, n);
}

void lw_random_id(char dst[LW_ID_STRLEN])
{
    uint8_t raw[LW_ID_BYTES];
    randombytes_buf(raw, sizeof raw);
    lw_b64_encode(dst, raw, sizeof raw);
}

void lw_keyed_hash(uint8_t out[LW_HASH_LEN], const uint8_t key[LW_KEY_LEN], const void *msg, size_t len)
{
    crypto_generichash(out, LW_HASH_LEN, msg, len, key, LW_KEY_LEN);
}

int lw_sign_keypair(uint8_t pk[LW_PK_LEN], uint8_t sk[LW_SK_LEN])
{
    if (crypto_sign_ed25519_keypair(pk, sk) != 0)
        return LW_ECRYPTO;
    return LW_OK;
}

void lw_sign(uint8_t sig[LW_SIG_LEN], const void *msg, size_t len, const uint8_t sk[LW_SK_LEN])
{
    crypto_sign_ed25519_detached(sig, NULL, msg, len, sk);
}

int lw_verify(const uint8_t sig[LW_SIG_LEN], const void *msg, size_t len, const uint8_t pk[LW_PK_LEN])
{
    if (crypto_sign_ed25519_verify_detached(sig, msg, len, pk) != 0)
        return LW_ECRYPTO;
    return LW_OK;
}

void lw_fingerprint(uint8_t fp[LW_FP_LEN], const uint8_t pk[LW_PK_LEN])
{
    crypto_generichash(fp, LW_FP_LEN, pk, LW_PK_LEN, NULL, 0);
}

void lw_fingerprint_human(char dst[LW_FP_HUMAN_LEN], const uint8_t fp[LW_FP_LEN])
{
    /* 16 bytes = 32 hex digits in 8 groups of 4: enough to compare by eye. */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i > 0 && i % 2 == 0)
            dst[o++] = ' ';
        dst[o++] = hex[fp[i] >> 4];
        dst[o++] = hex[fp[i] & 15];
    }
    dst[o] = '\0';
}

int lw_ct_equal(const void *a, const void *b, size_t n)
{
    return sodium_memcmp(a, b, n) == 0;
}

void lw_wipe(void *p, size_t n)
{
    sodium_memzero(p, n);
}
