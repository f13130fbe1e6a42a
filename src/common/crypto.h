/*
 * crypto.h — the cryptography Linkward uses, all of it on libsodium:
 * randomness, keyed hashes for stored credentials, Ed25519 keys and
 * signatures, fingerprints, constant-time comparison, zeroing.
 *
 * lw_crypto_init() must be called once before anything else here.
 */
#ifndef LW_CRYPTO_H
#define LW_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define LW_PK_LEN 32    /* Ed25519 public key */
#define LW_SK_LEN 64    /* Ed25519 secret key (libsodium layout: seed || pk) */
#define LW_SIG_LEN 64   /* Ed25519 signature */
#define LW_FP_LEN 32    /* key fingerprint: BLAKE2b-256 of the public key */
#define LW_HASH_LEN 32  /* keyed hash output */
#define LW_KEY_LEN 32   /* server secret for keyed hashes */
#define LW_ID_BYTES 16  /* device ids, request ids, refs: 128 bits */
#define LW_ID_STRLEN 23 /* base64url of 16 bytes (22 chars) + NUL */

int lw_crypto_init(void);

void lw_random(void *dst, size_t n);
/* A fresh 128-bit random id as base64url (22 chars + NUL). */
void lw_random_id(char dst[LW_ID_STRLEN]);

/* Keyed BLAKE2b-256 of msg under key: what the store keeps instead of a secret. */
void lw_keyed_hash(uint8_t out[LW_HASH_LEN], const uint8_t key[LW_KEY_LEN], const void *msg, size_t len);

/* Ed25519. lw_sign_keypair fills pk and sk from the OS CSPRNG. */
int lw_sign_keypair(uint8_t pk[LW_PK_LEN], uint8_t sk[LW_SK_LEN]);
void lw_sign(uint8_t sig[LW_SIG_LEN], const void *msg, size_t len, const uint8_t sk[LW_SK_LEN]);
/* LW_OK if sig is a valid signature of msg by pk, else LW_ECRYPTO. */
int lw_verify(const uint8_t sig[LW_SIG_LEN], const void *msg, size_t len, const uint8_t pk[LW_PK_LEN]);

/* Fingerprint of a public key: BLAKE2b-256(pk). */
void lw_fingerprint(uint8_t fp[LW_FP_LEN], const uint8_t pk[LW_PK_LEN]);
/* Human form: first 16 bytes as hex in groups of 4 ("a1b2 c3d4 ..."), 40 chars + NUL. */
#define LW_FP_HUMAN_LEN 48
void lw_fingerprint_human(char dst[LW_FP_HUMAN_LEN], const uint8_t fp[LW_FP_LEN]);

/* Constant-time equality of two n-byte secrets: 1 if equal. */
int lw_ct_equal(const void *a, const void *b, size_t n);
/* Zeroes memory in a way the compiler cannot elide. */
void lw_wipe(void *p, size_t n);

#endif
