/* Unit tests for webpush.c: RFC 8291's own example, a receiver written here
 * (the browser's side of RFC 8291/8188) for bodies made with random keys,
 * the VAPID JWT verified with OpenSSL, the key file, and endpoint checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "crypto.h"
#include "lw.h"
#include "webpush.h"

#ifndef LW_WEBPUSH_VECTORS
#error "LW_WEBPUSH_VECTORS must name tests/vectors/webpush_rfc8291.json (CMakeLists.txt)"
#endif

static json_t *vectors;

static int setup(void **state)
{
    (void)state;
    json_error_t err;
    vectors = json_load_file(LW_WEBPUSH_VECTORS, 0, &err);
    if (vectors == NULL) {
        fprintf(stderr, "%s:%d: %s\n", LW_WEBPUSH_VECTORS, err.line, err.text);
        return -1;
    }
    return lw_crypto_init() == LW_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    json_decref(vectors);
    return 0;
}

/* A vector's field, decoded; its length must be expect (0: any). */
static size_t vec(const char *name, uint8_t *dst, size_t cap, size_t expect)
{
    const char *s = json_string_value(json_object_get(vectors, name));
    assert_non_null(s);
    long n = lw_b64_decode(dst, cap, s, strlen(s), expect);
    assert_true(n >= 0);
    return (size_t)n;
}

/* ---- The receiver: what a browser does with a push body ------------------------------ */

static EVP_PKEY *ua_key_from(const uint8_t priv[32])
{
    BIGNUM *d = BN_bin2bn(priv, 32, NULL);
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *p = EC_POINT_new(g);
    uint8_t pub[65];
    assert_int_equal(EC_POINT_mul(g, p, d, NULL, NULL, NULL), 1);
    assert_int_equal(EC_POINT_point2oct(g, p, POINT_CONVERSION_UNCOMPRESSED, pub, 65, NULL), 65);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d);
    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 65);
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *key = NULL;
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params), 1);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EC_POINT_free(p);
    EC_GROUP_free(g);
    BN_free(d);
    return key;
}

static void public_raw(EVP_PKEY *key, uint8_t pub[65])
{
    size_t n = 0;
    assert_int_equal(EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pub, 65, &n), 1);
    assert_int_equal(n, 65);
}

static EVP_PKEY *peer_from(const uint8_t pub[65])
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pub, 65),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *key = NULL;
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params), 1);
    EVP_PKEY_CTX_free(ctx);
    return key;
}

/* One HMAC-SHA-256, as RFC 8291 §3.4 writes the derivation (not HKDF as
 * webpush.c calls it: the same function, reached another way). */
static void hmac(const uint8_t *key, size_t klen, const uint8_t *a, size_t alen, const uint8_t *b,
                 size_t blen, uint8_t out[32])
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t n = 0;
    assert_int_equal(EVP_MAC_init(ctx, key, klen, params), 1);
    assert_int_equal(EVP_MAC_update(ctx, a, alen), 1);
    if (blen > 0)
        assert_int_equal(EVP_MAC_update(ctx, b, blen), 1);
    assert_int_equal(EVP_MAC_final(ctx, out, &n, 32), 1);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
}

/* Decrypts an aes128gcm body of one record for the UA key ua and auth secret.
 * Returns the plaintext length (padding removed) or -1 when anything does
 * not check out. */
static long receive(EVP_PKEY *ua, const uint8_t auth[16], const uint8_t *body, size_t len, uint8_t *pt,
                    size_t cap)
{
    if (len < 21)
        return -1;
    uint32_t rs = (uint32_t)body[16] << 24 | (uint32_t)body[17] << 16 | (uint32_t)body[18] << 8 | body[19];
    size_t idlen = body[20];
    if (idlen != 65 || len < 21 + idlen + 17 || len - 21 - idlen > rs)
        return -1;
    const uint8_t *salt = body, *as_pub = body + 21, *rec = body + 21 + idlen;
    size_t rlen = len - 21 - idlen;
    uint8_t ua_pub[65], secret[32], prk_key[32], ikm[32], prk[32], cek[32], nonce[32];
    public_raw(ua, ua_pub);
    EVP_PKEY *as = peer_from(as_pub);
    EVP_PKEY_CTX *dctx = EVP_PKEY_CTX_new_from_pkey(NULL, ua, NULL);
    size_t sn = 32;
    assert_int_equal(EVP_PKEY_derive_init(dctx), 1);
    assert_int_equal(EVP_PKEY_derive_set_peer(dctx, as), 1);
    assert_int_equal(EVP_PKEY_derive(dctx, secret, &sn), 1);
    EVP_PKEY_CTX_free(dctx);
    EVP_PKEY_free(as);

    uint8_t key_info[14 + 65 + 65 + 1];
    memcpy(key_info, "WebPush: info", 14);
    memcpy(key_info + 14, ua_pub, 65);
    memcpy(key_info + 79, as_pub, 65);
    key_info[144] = 0x01;
    hmac(auth, 16, secret, 32, NULL, 0, prk_key);
    hmac(prk_key, 32, key_info, sizeof key_info, NULL, 0, ikm);
    hmac(salt, 16, ikm, 32, NULL, 0, prk);
    hmac(prk, 32, (const uint8_t *)"Content-Encoding: aes128gcm\0\1", 29, NULL, 0, cek);
    hmac(prk, 32, (const uint8_t *)"Content-Encoding: nonce\0\1", 25, NULL, 0, nonce);

    size_t ctlen = rlen - 16;
    uint8_t *out = malloc(ctlen + 1);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, m = 0;
    int ok = EVP_DecryptInit_ex2(c, EVP_aes_128_gcm(), cek, nonce, NULL) == 1 &&
             EVP_DecryptUpdate(c, out, &n, rec, (int)ctlen) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, (void *)(rec + ctlen)) == 1 &&
             EVP_DecryptFinal_ex(c, out + n, &m) == 1;
    EVP_CIPHER_CTX_free(c);
    long result = -1;
    if (ok) {
        /* RFC 8188 §2: the last record's padding is 0x02 then zeros. */
        size_t end = (size_t)(n + m);
        while (end > 0 && out[end - 1] == 0)
            end--;
        if (end > 0 && out[end - 1] == 0x02 && end - 1 <= cap) {
            memcpy(pt, out, end - 1);
            result = (long)(end - 1);
        }
    }
    free(out);
    return result;
}

/* A fresh UA (browser) key pair and auth secret. */
static EVP_PKEY *new_ua(uint8_t pub[65], uint8_t auth[16])
{
    EVP_PKEY *ua = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(ua);
    public_raw(ua, pub);
    lw_random(auth, 16);
    return ua;
}

/* ---- RFC 8291 ---------------------------------------------------------------------- */

/* RFC 8291 Appendix A: the very body the RFC gives, from its keys and salt. */
static void test_rfc8291_known_answer(void **state)
{
    (void)state;
    uint8_t as_priv[32], salt[16], ua_pub[65], auth[16], as_pub[65], expect[256], body[256];
    vec("as_private", as_priv, sizeof as_priv, 32);
    vec("salt", salt, sizeof salt, 16);
    vec("ua_public", ua_pub, sizeof ua_pub, 65);
    vec("auth_secret", auth, sizeof auth, 16);
    vec("as_public", as_pub, sizeof as_pub, 65);
    size_t elen = vec("body", expect, sizeof expect, 0);
    const char *pt = json_string_value(json_object_get(vectors, "plaintext"));
    assert_string_equal(pt, "When I grow up, I want to be a watermelon");

    size_t blen = 0;
    assert_int_equal(
        lw_webpush_encrypt_with(as_priv, salt, ua_pub, auth, pt, strlen(pt), 0, body, sizeof body, &blen),
        LW_OK);
    assert_int_equal(blen, elen);
    assert_int_equal(blen, LW_WEBPUSH_BODY_LEN(strlen(pt)));
    assert_memory_equal(body, expect, elen);
    /* The header's keyid is the application server's public key. */
    assert_memory_equal(body + 21, as_pub, 65);
}

/* The receiver of this test opens the RFC's body: it is a receiver. */
static void test_receiver_opens_rfc_body(void **state)
{
    (void)state;
    uint8_t ua_priv[32], auth[16], body[256], pt[256];
    vec("ua_private", ua_priv, sizeof ua_priv, 32);
    vec("auth_secret", auth, sizeof auth, 16);
    size_t blen = vec("body", body, sizeof body, 0);
    EVP_PKEY *ua = ua_key_from(ua_priv);
    long n = receive(ua, auth, body, blen, pt, sizeof pt);
    assert_int_equal(n, 41);
    assert_memory_equal(pt, "When I grow up, I want to be a watermelon", 41);
    body[blen - 1] ^= 1; /* the tag */
    assert_int_equal(receive(ua, auth, body, blen, pt, sizeof pt), -1);
    EVP_PKEY_free(ua);
}

static void test_round_trip_random_keys(void **state)
{
    (void)state;
    uint8_t ua_pub[65], auth[16], a[LW_WEBPUSH_BODY_MAX], b[LW_WEBPUSH_BODY_MAX], pt[LW_WEBPUSH_BODY_MAX];
    EVP_PKEY *ua = new_ua(ua_pub, auth);
    const char *msg = "{\"alert\":\"Qm9vbS1ib29tLWJvb20tYm9vbQ\",\"kind\":\"new_device\"}";
    size_t alen = 0, blen = 0, len = strlen(msg);
    assert_int_equal(lw_webpush_encrypt(ua_pub, auth, msg, len, 0, a, sizeof a, &alen), LW_OK);
    assert_int_equal(lw_webpush_encrypt(ua_pub, auth, msg, len, 0, b, sizeof b, &blen), LW_OK);
    assert_int_equal(alen, LW_WEBPUSH_BODY_LEN(len));
    assert_int_equal(alen, blen);
    /* Fresh salt and key each time: nothing of the two bodies alike but rs and idlen. */
    assert_memory_not_equal(a, b, 16);
    assert_memory_not_equal(a + 21, b + 21, 65);
    assert_memory_equal(a + 16, "\x00\x00\x10\x00\x41", 5);
    assert_int_equal(receive(ua, auth, a, alen, pt, sizeof pt), (long)len);
    assert_memory_equal(pt, msg, len);
    assert_int_equal(receive(ua, auth, b, blen, pt, sizeof pt), (long)len);
    assert_memory_equal(pt, msg, len);

    /* Another auth secret opens nothing. */
    uint8_t other[16];
    memcpy(other, auth, 16);
    other[0] ^= 0x80;
    assert_int_equal(receive(ua, other, a, alen, pt, sizeof pt), -1);

    /* Padding: every message padded to 128 bytes gives one length. */
    assert_int_equal(lw_webpush_encrypt(ua_pub, auth, msg, len, 128, a, sizeof a, &alen), LW_OK);
    assert_int_equal(alen, LW_WEBPUSH_BODY_LEN(128));
    assert_int_equal(receive(ua, auth, a, alen, pt, sizeof pt), (long)len);
    assert_memory_equal(pt, msg, len);

    /* Empty, and the largest plaintext: a 4096-byte body. */
    assert_int_equal(lw_webpush_encrypt(ua_pub, auth, NULL, 0, 0, a, sizeof a, &alen), LW_OK);
    assert_int_equal(receive(ua, auth, a, alen, pt, sizeof pt), 0);
    uint8_t big[LW_WEBPUSH_PLAINTEXT_MAX];
    lw_random(big, sizeof big);
    assert_int_equal(lw_webpush_encrypt(ua_pub, auth, big, sizeof big, 0, a, sizeof a, &alen), LW_OK);
    assert_int_equal(alen, LW_WEBPUSH_BODY_MAX);
    assert_int_equal(receive(ua, auth, a, alen, pt, sizeof pt), (long)sizeof big);
    assert_memory_equal(pt, big, sizeof big);
    EVP_PKEY_free(ua);
}

static void test_encrypt_refusals(void **state)
{
    (void)state;
    uint8_t ua_pub[65], auth[16], out[LW_WEBPUSH_BODY_MAX + 64];
    static uint8_t big[LW_WEBPUSH_PLAINTEXT_MAX + 1];
    EVP_PKEY *ua = new_ua(ua_pub, auth);
    size_t n = 99;

    /* One byte over the bound, in the plaintext or the padding. */
    assert_int_equal(lw_webpush_encrypt(ua_pub, auth, big, sizeof big, 0, out, sizeof out, &n), LW_ETOOBIG);
    assert_int_equal(n, 0);
    assert_int_equal(
        lw_webpush_encrypt(ua_pub, auth, "x", 1, LW_WEBPUSH_PLAINTEXT_MAX + 1, out, sizeof out, &n),
        LW_ETOOBIG);
    /* A buffer one byte short. */
    assert_int_equal(lw_webpush_encrypt(ua_pub, auth, "abc", 3, 0, out, LW_WEBPUSH_BODY_LEN(3) - 1, &n),
                     LW_ENOMEM);
    assert_int_equal(lw_webpush_encrypt(ua_pub, auth, "abc", 3, 0, out, LW_WEBPUSH_BODY_LEN(3), &n), LW_OK);

    /* Keys that are not points of P-256 in uncompressed form. */
    uint8_t bad[65];
    memcpy(bad, ua_pub, 65);
    bad[64] ^= 1; /* off the curve */
    assert_int_equal(lw_webpush_encrypt(bad, auth, "abc", 3, 0, out, sizeof out, &n), LW_EINVAL);
    memcpy(bad, ua_pub, 65);
    bad[0] = 0x02; /* a compressed prefix */
    assert_int_equal(lw_webpush_encrypt(bad, auth, "abc", 3, 0, out, sizeof out, &n), LW_EINVAL);
    memset(bad, 0, sizeof bad);
    assert_int_equal(lw_webpush_encrypt(bad, auth, "abc", 3, 0, out, sizeof out, &n), LW_EINVAL);
    bad[0] = 0x04; /* (0, 0) */
    assert_int_equal(lw_webpush_encrypt(bad, auth, "abc", 3, 0, out, sizeof out, &n), LW_EINVAL);
    memset(bad + 1, 0xff, 64); /* coordinates past the field prime */
    assert_int_equal(lw_webpush_encrypt(bad, auth, "abc", 3, 0, out, sizeof out, &n), LW_EINVAL);

    /* Ephemeral scalars out of [1, n-1]: 0, n, all ones. */
    uint8_t salt[16] = {1}, d[32] = {0};
    assert_int_equal(lw_webpush_encrypt_with(d, salt, ua_pub, auth, "abc", 3, 0, out, sizeof out, &n),
                     LW_EINVAL);
    static const uint8_t order[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
                                      0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17,
                                      0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
    assert_int_equal(lw_webpush_encrypt_with(order, salt, ua_pub, auth, "abc", 3, 0, out, sizeof out, &n),
                     LW_EINVAL);
    memset(d, 0xff, sizeof d);
    assert_int_equal(lw_webpush_encrypt_with(d, salt, ua_pub, auth, "abc", 3, 0, out, sizeof out, &n),
                     LW_EINVAL);
    uint8_t nm1[32];
    memcpy(nm1, order, 32);
    nm1[31] -= 1; /* n - 1 is a scalar */
    assert_int_equal(lw_webpush_encrypt_with(nm1, salt, ua_pub, auth, "abc", 3, 0, out, sizeof out, &n),
                     LW_OK);

    /* NULLs. */
    assert_int_equal(lw_webpush_encrypt(NULL, auth, "abc", 3, 0, out, sizeof out, &n), LW_EINVAL);
    assert_int_equal(lw_webpush_encrypt(ua_pub, NULL, "abc", 3, 0, out, sizeof out, &n), LW_EINVAL);
    assert_int_equal(lw_webpush_encrypt(ua_pub, auth, NULL, 3, 0, out, sizeof out, &n), LW_EINVAL);
    assert_int_equal(lw_webpush_encrypt(ua_pub, auth, "abc", 3, 0, NULL, sizeof out, &n), LW_EINVAL);
    assert_int_equal(lw_webpush_encrypt(ua_pub, auth, "abc", 3, 0, out, sizeof out, NULL), LW_EINVAL);
    EVP_PKEY_free(ua);
}

/* ---- VAPID -------------------------------------------------------------------------- */

/* base64url part [p, p+n) of a JWT, decoded into a NUL-terminated buffer. */
static size_t part(const char *p, size_t n, uint8_t *dst, size_t cap)
{
    long r = lw_b64_decode(dst, cap - 1, p, n, 0);
    assert_true(r >= 0);
    dst[r] = 0;
    return (size_t)r;
}

/* Checks a JWT as a push service would: the header, the claims, and the
 * ES256 signature (raw r || s, made DER again for OpenSSL) under pub. */
static void check_jwt(const char *jwt, const uint8_t pub[65], const char *aud, const char *sub, int64_t exp)
{
    const char *d1 = strchr(jwt, '.');
    assert_non_null(d1);
    const char *d2 = strchr(d1 + 1, '.');
    assert_non_null(d2);
    assert_null(strchr(d2 + 1, '.'));
    assert_null(strchr(jwt, '=')); /* no padding */
    uint8_t header[128], claims[1024], sig[128];
    part(jwt, (size_t)(d1 - jwt), header, sizeof header);
    assert_string_equal((char *)header, "{\"typ\":\"JWT\",\"alg\":\"ES256\"}");
    part(d1 + 1, (size_t)(d2 - d1 - 1), claims, sizeof claims);
    json_t *c = json_loads((char *)claims, 0, NULL);
    assert_non_null(c);
    assert_int_equal(json_object_size(c), 3);
    assert_string_equal(json_string_value(json_object_get(c, "aud")), aud);
    assert_string_equal(json_string_value(json_object_get(c, "sub")), sub);
    assert_int_equal(json_integer_value(json_object_get(c, "exp")), exp);
    json_decref(c);
    assert_int_equal(part(d2 + 1, strlen(d2 + 1), sig, sizeof sig), 64);

    ECDSA_SIG *es = ECDSA_SIG_new();
    assert_int_equal(ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL)), 1);
    unsigned char *der = NULL;
    int dlen = i2d_ECDSA_SIG(es, &der);
    assert_true(dlen > 0);
    EVP_PKEY *key = peer_from(pub);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t signed_len = (size_t)(d2 - jwt);
    assert_int_equal(EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, key, NULL), 1);
    assert_int_equal(EVP_DigestVerify(md, der, (size_t)dlen, (const unsigned char *)jwt, signed_len), 1);
    /* and not over anything else */
    char *tampered = strdup(jwt);
    tampered[d1 - jwt + 2] ^= 1;
    assert_int_equal(EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, key, NULL), 1);
    assert_int_not_equal(EVP_DigestVerify(md, der, (size_t)dlen, (const unsigned char *)tampered, signed_len),
                         1);
    free(tampered);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
}

static void test_vapid_jwt(void **state)
{
    (void)state;
    lw_vapid *v = NULL;
    assert_int_equal(lw_vapid_generate(&v), LW_OK);
    uint8_t pub[65];
    char pub_b64[LW_VAPID_PUB_B64_LEN];
    lw_vapid_public(v, pub);
    lw_vapid_public_b64(v, pub_b64);
    assert_int_equal(pub[0], 0x04);
    assert_int_equal(strlen(pub_b64), 87);

    int64_t now = 1767225600; /* 2026-01-01 */
    char jwt[LW_VAPID_JWT_LEN];
    assert_int_equal(lw_vapid_jwt(v, "https://push.example.net", "mailto:ops@example.org", now,
                                  now + 12 * 3600, jwt, sizeof jwt),
                     LW_OK);
    check_jwt(jwt, pub, "https://push.example.net", "mailto:ops@example.org", now + 12 * 3600);
    /* ECDSA is randomised: another token for the same claims, just as valid. */
    char again[LW_VAPID_JWT_LEN];
    assert_int_equal(lw_vapid_jwt(v, "https://push.example.net", "mailto:ops@example.org", now,
                                  now + 12 * 3600, again, sizeof again),
                     LW_OK);
    assert_string_not_equal(jwt, again);
    check_jwt(again, pub, "https://push.example.net", "mailto:ops@example.org", now + 12 * 3600);

    /* The Authorization value of RFC 8292 §3. */
    char auth[LW_VAPID_AUTH_LEN];
    assert_int_equal(lw_vapid_authorization(v, "http://127.0.0.1:9000", "https://linkward.example/contact",
                                            now, now + LW_VAPID_TTL_MAX_S, auth, sizeof auth),
                     LW_OK);
    assert_memory_equal(auth, "vapid t=", 8);
    char *k = strstr(auth, ", k=");
    assert_non_null(k);
    assert_string_equal(k + 4, pub_b64);
    *k = '\0';
    check_jwt(auth + 8, pub, "http://127.0.0.1:9000", "https://linkward.example/contact",
              now + LW_VAPID_TTL_MAX_S);

    /* The longest claims fit the documented buffers. */
    char host[LW_WEBPUSH_HOST_MAX + 1], aud[LW_WEBPUSH_ORIGIN_LEN], sub[LW_VAPID_SUB_MAX + 1];
    for (size_t i = 0; i < LW_WEBPUSH_HOST_MAX; i++)
        host[i] = (i % 60 == 59) ? '.' : 'a';
    host[LW_WEBPUSH_HOST_MAX] = '\0';
    snprintf(aud, sizeof aud, "https://%s:65535", host);
    memset(sub, 'x', LW_VAPID_SUB_MAX);
    memcpy(sub, "mailto:", 7);
    sub[LW_VAPID_SUB_MAX] = '\0';
    assert_int_equal(lw_vapid_authorization(v, aud, sub, now, now + 60, auth, sizeof auth), LW_OK);
    lw_vapid_free(v);
}

static void test_vapid_refusals(void **state)
{
    (void)state;
    lw_vapid *v = NULL;
    assert_int_equal(lw_vapid_generate(&v), LW_OK);
    int64_t now = 1767225600;
    char jwt[LW_VAPID_JWT_LEN];
    const char *aud = "https://push.example.net", *sub = "mailto:ops@example.org";
    /* exp: past, now, more than 24 h ahead. */
    assert_int_equal(lw_vapid_jwt(v, aud, sub, now, now - 1, jwt, sizeof jwt), LW_EINVAL);
    assert_int_equal(lw_vapid_jwt(v, aud, sub, now, now, jwt, sizeof jwt), LW_EINVAL);
    assert_int_equal(lw_vapid_jwt(v, aud, sub, now, now + LW_VAPID_TTL_MAX_S + 1, jwt, sizeof jwt),
                     LW_EINVAL);
    assert_string_equal(jwt, "");
    /* sub: not mailto:/https:, a quote, a space, empty, too long. */
    const char *subs[] = {
        "ops@example.org", "http://example.org", "mailto:a\"b@example.org", "mailto:a b@example.org", "",
        "mailto:\\x"};
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
        assert_int_equal(lw_vapid_jwt(v, aud, subs[i], now, now + 60, jwt, sizeof jwt), LW_EINVAL);
    char longsub[LW_VAPID_SUB_MAX + 2];
    memset(longsub, 'x', sizeof longsub - 1);
    memcpy(longsub, "mailto:", 7);
    longsub[sizeof longsub - 1] = '\0';
    assert_int_equal(lw_vapid_jwt(v, aud, longsub, now, now + 60, jwt, sizeof jwt), LW_EINVAL);
    /* aud: only an origin in the form lw_webpush_endpoint_check writes. */
    const char *auds[] = {"https://push.example.net/",
                          "https://push.example.net/x",
                          "https://PUSH.example.net",
                          "https://push.example.net:443",
                          "http://push.example.net",
                          "push.example.net",
                          ""};
    for (size_t i = 0; i < sizeof auds / sizeof *auds; i++)
        assert_int_equal(lw_vapid_jwt(v, auds[i], sub, now, now + 60, jwt, sizeof jwt), LW_EINVAL);
    /* Buffers too small. */
    assert_int_equal(lw_vapid_jwt(v, aud, sub, now, now + 60, jwt, 100), LW_ENOMEM);
    char auth[LW_VAPID_AUTH_LEN];
    assert_int_equal(lw_vapid_authorization(v, aud, sub, now, now + 60, auth, 300), LW_ENOMEM);
    assert_string_equal(auth, "");
    assert_int_equal(lw_vapid_jwt(NULL, aud, sub, now, now + 60, jwt, sizeof jwt), LW_EINVAL);
    lw_vapid_free(v);
    lw_vapid_free(NULL);

    /* The allocation wrapper failing: no key, no leak. */
    lw_alloc_fail_after(0);
    v = (lw_vapid *)1;
    assert_int_equal(lw_vapid_generate(&v), LW_ENOMEM);
    assert_null(v);
    lw_alloc_fail_after(-1);
}

static char *tmp_path(const char *dir, const char *name)
{
    static char buf[4][512];
    static int i;
    char *p = buf[i++ % 4];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static void write_file(const char *path, const char *text, size_t n)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    fclose(f);
}

static void write_pem(const char *path, EVP_PKEY *key, bool traditional, const char *pass)
{
    BIO *b = BIO_new_file(path, "w");
    assert_non_null(b);
    if (traditional)
        assert_int_equal(PEM_write_bio_PrivateKey_traditional(b, key, NULL, NULL, 0, NULL, NULL), 1);
    else
        assert_int_equal(
            PEM_write_bio_PrivateKey(b, key, pass ? EVP_aes_128_cbc() : NULL, NULL, 0, NULL, (void *)pass),
            1);
    BIO_free(b);
}

static void test_vapid_key_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/lw-webpush-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *path = tmp_path(dir, "vapid.pem");

    lw_vapid *v = NULL, *w = NULL;
    assert_int_equal(lw_vapid_load(path, &w), LW_ENOTFOUND);
    assert_int_equal(lw_vapid_generate(&v), LW_OK);
    assert_int_equal(lw_vapid_save(v, path), LW_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(access(tmp_path(dir, "vapid.pem.new"), F_OK), -1);
    /* Never over an existing key. */
    assert_int_equal(lw_vapid_save(v, path), LW_ECONFLICT);

    assert_int_equal(lw_vapid_load(path, &w), LW_OK);
    uint8_t a[65], b[65];
    lw_vapid_public(v, a);
    lw_vapid_public(w, b);
    assert_memory_equal(a, b, 65);
    char jwt[LW_VAPID_JWT_LEN];
    assert_int_equal(
        lw_vapid_jwt(w, "https://push.example.net", "mailto:a@example.org", 1000, 2000, jwt, sizeof jwt),
        LW_OK);
    check_jwt(jwt, a, "https://push.example.net", "mailto:a@example.org", 2000);
    lw_vapid_free(w);
    w = NULL;

    /* A SEC1 "EC PRIVATE KEY" (what `openssl ecparam -genkey` writes) is a P-256 key too. */
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    const char *sec1 = tmp_path(dir, "sec1.pem");
    write_pem(sec1, k, true, NULL);
    assert_int_equal(lw_vapid_load(sec1, &w), LW_OK);
    uint8_t kp[65];
    public_raw(k, kp);
    lw_vapid_public(w, b);
    assert_memory_equal(kp, b, 65);
    lw_vapid_free(w);
    w = NULL;

    /* Refused: encrypted, another curve, another algorithm, a public key
     * only, garbage, too big, a directory. */
    const char *enc = tmp_path(dir, "enc.pem");
    write_pem(enc, k, false, "secret");
    assert_int_equal(lw_vapid_load(enc, &w), LW_EINVAL);
    EVP_PKEY_free(k);
    k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    const char *p384 = tmp_path(dir, "p384.pem");
    write_pem(p384, k, false, NULL);
    assert_int_equal(lw_vapid_load(p384, &w), LW_EINVAL);
    EVP_PKEY_free(k);
    k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    const char *ed = tmp_path(dir, "ed.pem");
    write_pem(ed, k, false, NULL);
    assert_int_equal(lw_vapid_load(ed, &w), LW_EINVAL);
    EVP_PKEY_free(k);
    const char *junk = tmp_path(dir, "junk.pem");
    write_file(junk, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", 58);
    assert_int_equal(lw_vapid_load(junk, &w), LW_EINVAL);
    static char huge[8193];
    memset(huge, 'A', sizeof huge);
    write_file(junk, huge, sizeof huge);
    assert_int_equal(lw_vapid_load(junk, &w), LW_EINVAL);
    assert_int_equal(lw_vapid_load(dir, &w), LW_EIO);
    assert_null(w);

    const char *files[] = {"vapid.pem", "sec1.pem", "enc.pem", "p384.pem", "ed.pem", "junk.pem"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        unlink(tmp_path(dir, files[i]));
    rmdir(dir);
    lw_vapid_free(v);
}

/* ---- Endpoints -------------------------------------------------------------------------- */

static void test_endpoint_accepted(void **state)
{
    (void)state;
    struct {
        const char *url;
        unsigned flags;
        const char *origin;
    } ok[] = {
        {"https://fcm.googleapis.com/fcm/send/dQw4w9WgXcQ:APA91bH", 0, "https://fcm.googleapis.com"},
        {"https://updates.push.services.mozilla.com/wpush/v2/gAAAAA", 0,
         "https://updates.push.services.mozilla.com"},
        {"https://web.push.apple.com/QGuQyavXutnMH6Ig2uYOJDwA", 0, "https://web.push.apple.com"},
        {"https://Push.Example.NET:8443/a?b=c", 0, "https://push.example.net:8443"},
        {"https://push.example.net:443/x", 0, "https://push.example.net"},
        {"https://push.example.net", 0, "https://push.example.net"},
        {"https://[2001:db8::1]:444/p", 0, "https://[2001:db8::1]:444"},
        {"https://127.0.0.1:9/p", 0, "https://127.0.0.1:9"},
        {"http://127.0.0.1:41234/push/abc", LW_WEBPUSH_ALLOW_LOOPBACK, "http://127.0.0.1:41234"},
        {"http://[::1]:8080/push", LW_WEBPUSH_ALLOW_LOOPBACK, "http://[::1]:8080"},
        {"http://127.0.0.1:80/push", LW_WEBPUSH_ALLOW_LOOPBACK, "http://127.0.0.1"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        char origin[LW_WEBPUSH_ORIGIN_LEN] = "x";
        int rc = lw_webpush_endpoint_check(ok[i].url, ok[i].flags, origin);
        if (rc != LW_OK)
            fail_msg("refused %s: %s", ok[i].url, lw_strerror(rc));
        assert_string_equal(origin, ok[i].origin);
    }
}

static void test_endpoint_refused(void **state)
{
    (void)state;
    struct {
        const char *url;
        unsigned flags;
    } bad[] = {
        {"http://push.example.net/x", 0},
        {"http://push.example.net/x", LW_WEBPUSH_ALLOW_LOOPBACK}, /* http only to loopback */
        {"http://127.0.0.1:9000/x", 0},                           /* loopback only with the flag */
        {"http://[::1]/x", 0},
        {"http://localhost:9000/x", LW_WEBPUSH_ALLOW_LOOPBACK},
        {"http://127.0.0.2/x", LW_WEBPUSH_ALLOW_LOOPBACK},
        {"http://127.0.0.1.example.net/x", LW_WEBPUSH_ALLOW_LOOPBACK},
        {"https://user@push.example.net/x", 0},
        {"https://user:pw@push.example.net/x", 0},
        {"https://push.example.net@evil.example/x", 0},
        {"https://evil.example\\@push.example.net/x", 0},
        {"https://push.example.net/x#frag", 0},
        {"https://push.example.net/a b", 0},
        {"https://push.example.net/\x7f", 0},
        {"https://push.example.net/\xc3\xa9", 0},
        {"https://push.example.net:0/x", 0},
        {"https://push.example.net:65536/x", 0},
        {"https://push.example.net:/x", 0},
        {"https://push.example.net:44a/x", 0},
        {"https://push.example.net:1:2/x", 0},
        {"https://:443/x", 0},
        {"https:///x", 0},
        {"https://push..example.net/x", 0},
        {"https://.push.example.net/x", 0},
        {"https://push.example.net./x", 0},
        {"https://-push.example.net/x", 0},
        {"https://push-.example.net/x", 0},
        {"https://push_x.example.net/x", 0},
        {"https://push%2eexample.net/x", 0},
        {"https://[2001:db8::1/x", 0},
        {"https://[zz::1]/x", 0},
        {"https://[::1]x/p", 0},
        {"HTTPS://push.example.net/x", 0},
        {"ftp://push.example.net/x", 0},
        {"push.example.net/x", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char origin[LW_WEBPUSH_ORIGIN_LEN] = "x";
        if (lw_webpush_endpoint_check(bad[i].url, bad[i].flags, origin) != LW_EINVAL)
            fail_msg("accepted %s", bad[i].url);
        assert_string_equal(origin, "");
    }
    assert_int_equal(lw_webpush_endpoint_check(NULL, 0, (char[LW_WEBPUSH_ORIGIN_LEN]){0}), LW_EINVAL);

    /* A label of 64, and a host of 254. */
    char url[LW_WEBPUSH_ENDPOINT_MAX + 2], origin[LW_WEBPUSH_ORIGIN_LEN];
    snprintf(url, sizeof url, "https://%064d.example/x", 0);
    assert_int_equal(lw_webpush_endpoint_check(url, 0, origin), LW_EINVAL);
    snprintf(url, sizeof url, "https://%063d.example/x", 0);
    assert_int_equal(lw_webpush_endpoint_check(url, 0, origin), LW_OK);
    char host[LW_WEBPUSH_HOST_MAX + 2];
    for (size_t i = 0; i < sizeof host - 1; i++)
        host[i] = (i % 50 == 49) ? '.' : 'a';
    host[sizeof host - 1] = '\0';
    snprintf(url, sizeof url, "https://%s/x", host);
    assert_int_equal(lw_webpush_endpoint_check(url, 0, origin), LW_EINVAL);
    host[sizeof host - 2] = '\0';
    snprintf(url, sizeof url, "https://%s/x", host);
    assert_int_equal(lw_webpush_endpoint_check(url, 0, origin), LW_OK);
}

/* The length bound, crossed by one. */
static void test_endpoint_length(void **state)
{
    (void)state;
    char url[LW_WEBPUSH_ENDPOINT_MAX + 2], origin[LW_WEBPUSH_ORIGIN_LEN];
    int n = snprintf(url, sizeof url, "https://push.example.net/");
    memset(url + n, 'a', LW_WEBPUSH_ENDPOINT_MAX - (size_t)n);
    url[LW_WEBPUSH_ENDPOINT_MAX] = '\0';
    assert_int_equal(lw_webpush_endpoint_check(url, 0, origin), LW_OK);
    url[LW_WEBPUSH_ENDPOINT_MAX] = 'a';
    url[LW_WEBPUSH_ENDPOINT_MAX + 1] = '\0';
    assert_int_equal(lw_webpush_endpoint_check(url, 0, origin), LW_ETOOBIG);
    assert_string_equal(origin, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc8291_known_answer),
        cmocka_unit_test(test_receiver_opens_rfc_body),
        cmocka_unit_test(test_round_trip_random_keys),
        cmocka_unit_test(test_encrypt_refusals),
        cmocka_unit_test(test_vapid_jwt),
        cmocka_unit_test(test_vapid_refusals),
        cmocka_unit_test(test_vapid_key_file),
        cmocka_unit_test(test_endpoint_accepted),
        cmocka_unit_test(test_endpoint_refused),
        cmocka_unit_test(test_endpoint_length),
    };
    return cmocka_run_group_tests_name("webpush", tests, setup, teardown);
}
