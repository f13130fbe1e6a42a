/*
 * webpush.c — RFC 8291 message encryption (aes128gcm, RFC 8188), RFC 8292
 * VAPID, push endpoint checks. The contract is in webpush.h.
 *
 * OpenSSL 3 only through its EVP and OSSL_PARAM interfaces (EC_KEY is
 * deprecated there); EC_GROUP/EC_POINT only to compute a public key from a
 * given scalar, which EVP cannot do. Secrets on our side of the calls (the
 * ECDH output, every HKDF output, a private scalar) live on the stack and are
 * wiped with lw_wipe on every path out.
 */
#include "webpush.h"

#include "crypto.h"
#include "lw.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#define CURVE "prime256v1"
#define SECRET_LEN 32 /* ECDH output and every HKDF output of RFC 8291 */
#define CEK_LEN 16
#define NONCE_LEN 12
#define KEY_FILE_MAX 8192

/* RFC 8291 §3.4 and RFC 8188 §2.2–2.3: the info strings, NUL included. */
static const char KEY_INFO[] = "WebPush: info";
static const char CEK_INFO[] = "Content-Encoding: aes128gcm";
static const char NONCE_INFO[] = "Content-Encoding: nonce";

/* ---- EVP helpers ----------------------------------------------------------------- */

/* An EVP_PKEY of the P-256 public point pub (uncompressed). OpenSSL decodes
 * the point, which refuses one not on the curve; the explicit public check
 * makes that a stated requirement rather than a side effect. */
static int pkey_from_public(const uint8_t pub[LW_WEBPUSH_KEY_LEN], EVP_PKEY **out)
{
    *out = NULL;
    if (pub[0] != 0x04)
        return LW_EINVAL; /* compressed, hybrid or the point at infinity */
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)CURVE, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pub, LW_WEBPUSH_KEY_LEN),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *pkey = NULL;
    int rc = LW_ENOMEM;
    if (ctx == NULL)
        goto out;
    rc = LW_EINVAL;
    if (EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        goto out;
    EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int ok = check != NULL && EVP_PKEY_public_check(check) == 1;
    EVP_PKEY_CTX_free(check);
    if (!ok)
        goto out;
    *out = pkey;
    pkey = NULL;
    rc = LW_OK;
out:
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

/* d*G for the scalar priv, uncompressed, into pub. LW_EINVAL unless
 * 1 <= d < n. */
static int public_of_scalar(const uint8_t priv[LW_WEBPUSH_PRIV_LEN], uint8_t pub[LW_WEBPUSH_KEY_LEN])
{
    int rc = LW_ENOMEM;
    EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    BIGNUM *d = BN_secure_new();
    EC_POINT *p = group != NULL ? EC_POINT_new(group) : NULL;
    BN_CTX *bn = BN_CTX_secure_new();
    if (group == NULL || d == NULL || p == NULL || bn == NULL ||
        BN_bin2bn(priv, LW_WEBPUSH_PRIV_LEN, d) == NULL)
        goto out;
    rc = LW_EINVAL;
    if (BN_is_zero(d) || BN_cmp(d, EC_GROUP_get0_order(group)) >= 0)
        goto out;
    rc = LW_ECRYPTO;
    if (EC_POINT_mul(group, p, d, NULL, NULL, bn) != 1 ||
        EC_POINT_point2oct(group, p, POINT_CONVERSION_UNCOMPRESSED, pub, LW_WEBPUSH_KEY_LEN, bn) !=
            LW_WEBPUSH_KEY_LEN)
        goto out;
    rc = LW_OK;
out:
    BN_CTX_free(bn);
    EC_POINT_free(p);
    BN_clear_free(d);
    EC_GROUP_free(group);
    return rc;
}

/* An EVP_PKEY of the key pair (priv, pub), pub being priv's public point. */
static int pkey_from_pair(const uint8_t priv[LW_WEBPUSH_PRIV_LEN], const uint8_t pub[LW_WEBPUSH_KEY_LEN],
                          EVP_PKEY **out)
{
    *out = NULL;
    int rc = LW_ENOMEM;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *d = BN_secure_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (bld == NULL || d == NULL || ctx == NULL || BN_bin2bn(priv, LW_WEBPUSH_PRIV_LEN, d) == NULL ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, CURVE, 0) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, LW_WEBPUSH_KEY_LEN) != 1 ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
        goto out;
    rc = LW_ECRYPTO;
    if (EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, out, EVP_PKEY_KEYPAIR, params) != 1)
        goto out;
    rc = LW_OK;
out:
    OSSL_PARAM_free(params); /* the scalar sits in its secure block, which is freed cleared */
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(d);
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

/* The uncompressed public point of an EC key. */
static int public_of_pkey(const EVP_PKEY *pkey, uint8_t pub[LW_WEBPUSH_KEY_LEN])
{
    size_t n = 0;
    if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, pub, LW_WEBPUSH_KEY_LEN, &n) != 1 ||
        n != LW_WEBPUSH_KEY_LEN || pub[0] != 0x04)
        return LW_ECRYPTO;
    return LW_OK;
}

static int ecdh(EVP_PKEY *ours, EVP_PKEY *peer, uint8_t secret[SECRET_LEN])
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, ours, NULL);
    size_t n = SECRET_LEN;
    int ok = ctx != NULL && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
             EVP_PKEY_derive(ctx, secret, &n) == 1 && n == SECRET_LEN;
    EVP_PKEY_CTX_free(ctx);
    return ok ? LW_OK : LW_ECRYPTO;
}

/* HKDF-SHA-256 (RFC 5869), extract then expand, out_len <= 32. */
static int hkdf(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len, const uint8_t *info,
                size_t info_len, uint8_t *out, size_t out_len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    if (ctx == NULL)
        return LW_ENOMEM;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len),
        OSSL_PARAM_construct_end(),
    };
    int ok = EVP_KDF_derive(ctx, out, out_len, params) == 1;
    EVP_KDF_CTX_free(ctx);
    return ok ? LW_OK : LW_ECRYPTO;
}

/* ---- RFC 8291 encryption ----------------------------------------------------------- */

/* The keys of RFC 8291 §3.3–3.4 and RFC 8188 §2.2–2.3:
 *   ecdh_secret = ECDH(as_private, ua_public)
 *   IKM   = HKDF(salt = auth_secret, ikm = ecdh_secret,
 *                info = "WebPush: info" 0x00 || ua_public || as_public, L = 32)
 *   CEK   = HKDF(salt, IKM, "Content-Encoding: aes128gcm" 0x00, 16)
 *   NONCE = HKDF(salt, IKM, "Content-Encoding: nonce" 0x00, 12)
 * (the 0x01 of the RFC's one-block HMAC form is HKDF-Expand's counter). */
static int derive_keys(EVP_PKEY *as, EVP_PKEY *ua, const uint8_t ua_public[LW_WEBPUSH_KEY_LEN],
                       const uint8_t as_public[LW_WEBPUSH_KEY_LEN], const uint8_t auth[LW_WEBPUSH_AUTH_LEN],
                       const uint8_t salt[LW_WEBPUSH_SALT_LEN], uint8_t cek[CEK_LEN],
                       uint8_t nonce[NONCE_LEN])
{
    uint8_t secret[SECRET_LEN], ikm[SECRET_LEN];
    uint8_t key_info[sizeof KEY_INFO + 2 * LW_WEBPUSH_KEY_LEN];
    memcpy(key_info, KEY_INFO, sizeof KEY_INFO);
    memcpy(key_info + sizeof KEY_INFO, ua_public, LW_WEBPUSH_KEY_LEN);
    memcpy(key_info + sizeof KEY_INFO + LW_WEBPUSH_KEY_LEN, as_public, LW_WEBPUSH_KEY_LEN);
    int rc = ecdh(as, ua, secret);
    if (rc == LW_OK)
        rc = hkdf(auth, LW_WEBPUSH_AUTH_LEN, secret, sizeof secret, key_info, sizeof key_info, ikm,
                  sizeof ikm);
    if (rc == LW_OK)
        rc = hkdf(salt, LW_WEBPUSH_SALT_LEN, ikm, sizeof ikm, (const uint8_t *)CEK_INFO, sizeof CEK_INFO, cek,
                  CEK_LEN);
    if (rc == LW_OK)
        rc = hkdf(salt, LW_WEBPUSH_SALT_LEN, ikm, sizeof ikm, (const uint8_t *)NONCE_INFO, sizeof NONCE_INFO,
                  nonce, NONCE_LEN);
    lw_wipe(secret, sizeof secret);
    lw_wipe(ikm, sizeof ikm);
    return rc;
}

/* Seals the one record, (plaintext || 0x02 || pad zeros) then the tag, into
 * out. Sequence number 0, so the record's nonce is NONCE itself (RFC 8188
 * §2.3: NONCE XOR SEQ). Fed to GCM in pieces: the plaintext is never copied. */
static int seal_record(const uint8_t cek[CEK_LEN], const uint8_t nonce[NONCE_LEN], const uint8_t *pt,
                       size_t len, size_t pad, uint8_t *out)
{
    static const uint8_t delimiter = 0x02, zeros[64] = {0};
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return LW_ENOMEM;
    int n = 0, ok = EVP_EncryptInit_ex2(ctx, EVP_aes_128_gcm(), NULL, NULL, NULL) == 1 &&
                    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1 &&
                    EVP_EncryptInit_ex2(ctx, NULL, cek, nonce, NULL) == 1;
    size_t o = 0;
    if (ok && len > 0) {
        ok = EVP_EncryptUpdate(ctx, out, &n, pt, (int)len) == 1;
        o += (size_t)n;
    }
    if (ok) {
        ok = EVP_EncryptUpdate(ctx, out + o, &n, &delimiter, 1) == 1;
        o += (size_t)n;
    }
    while (ok && pad > 0) {
        size_t k = pad < sizeof zeros ? pad : sizeof zeros;
        ok = EVP_EncryptUpdate(ctx, out + o, &n, zeros, (int)k) == 1;
        o += (size_t)n;
        pad -= k;
    }
    if (ok) {
        ok = EVP_EncryptFinal_ex(ctx, out + o, &n) == 1;
        o += (size_t)n;
    }
    ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, LW_WEBPUSH_TAG_LEN, out + o) == 1;
    EVP_CIPHER_CTX_free(ctx); /* clears the key schedule */
    return ok ? LW_OK : LW_ECRYPTO;
}

int lw_webpush_encrypt_with(const uint8_t as_private[LW_WEBPUSH_PRIV_LEN],
                            const uint8_t salt[LW_WEBPUSH_SALT_LEN],
                            const uint8_t ua_public[LW_WEBPUSH_KEY_LEN],
                            const uint8_t auth[LW_WEBPUSH_AUTH_LEN], const void *plaintext, size_t len,
                            size_t pad_to, uint8_t *out, size_t out_cap, size_t *out_len)
{
    if (out_len != NULL)
        *out_len = 0;
    if (as_private == NULL || salt == NULL || ua_public == NULL || auth == NULL || out == NULL ||
        out_len == NULL || (plaintext == NULL && len > 0))
        return LW_EINVAL;
    size_t padded = pad_to > len ? pad_to : len;
    if (padded > LW_WEBPUSH_PLAINTEXT_MAX)
        return LW_ETOOBIG;
    if (out_cap < LW_WEBPUSH_BODY_LEN(padded))
        return LW_ENOMEM;

    EVP_PKEY *ua = NULL, *as = NULL;
    uint8_t as_public[LW_WEBPUSH_KEY_LEN], cek[CEK_LEN], nonce[NONCE_LEN];
    int rc = pkey_from_public(ua_public, &ua);
    if (rc == LW_OK)
        rc = public_of_scalar(as_private, as_public);
    if (rc == LW_OK)
        rc = pkey_from_pair(as_private, as_public, &as);
    if (rc == LW_OK)
        rc = derive_keys(as, ua, ua_public, as_public, auth, salt, cek, nonce);
    if (rc == LW_OK) {
        uint8_t *h = out;
        memcpy(h, salt, LW_WEBPUSH_SALT_LEN);
        h += LW_WEBPUSH_SALT_LEN;
        uint32_t rs = LW_WEBPUSH_RS;
        *h++ = (uint8_t)(rs >> 24);
        *h++ = (uint8_t)(rs >> 16);
        *h++ = (uint8_t)(rs >> 8);
        *h++ = (uint8_t)rs;
        *h++ = LW_WEBPUSH_KEY_LEN;
        memcpy(h, as_public, LW_WEBPUSH_KEY_LEN);
        rc = seal_record(cek, nonce, plaintext, len, padded - len, out + LW_WEBPUSH_HEADER_LEN);
    }
    if (rc == LW_OK)
        *out_len = LW_WEBPUSH_BODY_LEN(padded);
    else
        lw_wipe(out, LW_WEBPUSH_BODY_LEN(padded)); /* GCM may have written ciphertext before failing */
    lw_wipe(cek, sizeof cek);
    lw_wipe(nonce, sizeof nonce);
    EVP_PKEY_free(as);
    EVP_PKEY_free(ua);
    return rc;
}

/* The order n of P-256's base point, big endian (SEC 2 §2.4.2). */
static const uint8_t P256_ORDER[LW_WEBPUSH_PRIV_LEN] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};

/* A uniform scalar in [1, n-1], by rejection: a 256-bit draw falls outside
 * with probability about 2^-32, so this draws more than once almost never. */
static int random_scalar(uint8_t priv[LW_WEBPUSH_PRIV_LEN])
{
    static const uint8_t zero[LW_WEBPUSH_PRIV_LEN] = {0};
    for (int tries = 0; tries < 8; tries++) {
        if (RAND_priv_bytes(priv, LW_WEBPUSH_PRIV_LEN) != 1)
            return LW_ECRYPTO;
        if (memcmp(priv, P256_ORDER, LW_WEBPUSH_PRIV_LEN) < 0 && memcmp(priv, zero, LW_WEBPUSH_PRIV_LEN) != 0)
            return LW_OK;
    }
    return LW_ECRYPTO; /* a broken generator, not bad luck */
}

int lw_webpush_encrypt(const uint8_t ua_public[LW_WEBPUSH_KEY_LEN], const uint8_t auth[LW_WEBPUSH_AUTH_LEN],
                       const void *plaintext, size_t len, size_t pad_to, uint8_t *out, size_t out_cap,
                       size_t *out_len)
{
    uint8_t priv[LW_WEBPUSH_PRIV_LEN], salt[LW_WEBPUSH_SALT_LEN];
    int rc = random_scalar(priv);
    if (rc == LW_OK && RAND_bytes(salt, sizeof salt) != 1)
        rc = LW_ECRYPTO;
    if (rc == LW_OK)
        rc = lw_webpush_encrypt_with(priv, salt, ua_public, auth, plaintext, len, pad_to, out, out_cap,
                                     out_len);
    else if (out_len != NULL)
        *out_len = 0;
    lw_wipe(priv, sizeof priv);
    return rc;
}

/* ---- Endpoints ------------------------------------------------------------------------ */

/* The characters RFC 3986 §2 allows in a URI (unreserved, reserved, '%'). */
static bool uri_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("-._~:/?#[]@!$&'()*+,;=%", c) != NULL;
}

static bool dns_host(const char *h, size_t n)
{
    if (n == 0 || n > LW_WEBPUSH_HOST_MAX)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (c == '.') {
            if (label == 0 || h[i - 1] == '-')
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-') {
            if ((label == 0 && c == '-') || ++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0 && h[n - 1] != '-';
}

/* "[" IPv6 "]": hex digits, ':' and '.' (an embedded IPv4), at least two ':'.
 * Loose on purpose beyond that: the sender's resolver parses it and refuses
 * what is not an address; this only keeps other characters out of the host. */
static bool ipv6_host(const char *h, size_t n)
{
    if (n < 4 || n > 47 || h[0] != '[' || h[n - 1] != ']')
        return false;
    size_t colons = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        char c = h[i];
        if (c == ':')
            colons++;
        else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.'))
            return false;
    }
    return colons >= 2;
}

int lw_webpush_endpoint_check(const char *url, unsigned flags, char origin[LW_WEBPUSH_ORIGIN_LEN])
{
    if (origin != NULL)
        origin[0] = '\0';
    if (url == NULL || origin == NULL)
        return LW_EINVAL;
    size_t len = strnlen(url, LW_WEBPUSH_ENDPOINT_MAX + 1);
    if (len > LW_WEBPUSH_ENDPOINT_MAX)
        return LW_ETOOBIG;
    for (size_t i = 0; i < len; i++)
        if (!uri_char((unsigned char)url[i]) || url[i] == '#')
            return LW_EINVAL;
    bool https = strncmp(url, "https://", 8) == 0;
    bool http = !https && strncmp(url, "http://", 7) == 0;
    if (!https && !(http && (flags & LW_WEBPUSH_ALLOW_LOOPBACK)))
        return LW_EINVAL;
    const char *auth = url + (https ? 8 : 7);
    size_t alen = strcspn(auth, "/?");
    if (memchr(auth, '@', alen) != NULL)
        return LW_EINVAL; /* userinfo: credentials in a URL, and a classic host confusion */

    /* host [":" port]; an IPv6 literal's colons are inside its brackets. */
    size_t hlen = alen;
    if (auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        if (close == NULL)
            return LW_EINVAL;
        hlen = (size_t)(close - auth) + 1;
    } else {
        const char *colon = memchr(auth, ':', alen);
        if (colon != NULL)
            hlen = (size_t)(colon - auth);
    }
    if (!(auth[0] == '[' ? ipv6_host(auth, hlen) : dns_host(auth, hlen)))
        return LW_EINVAL;
    long port = -1;
    if (hlen < alen) {
        if (auth[hlen] != ':' || alen - hlen < 2 || alen - hlen > 6)
            return LW_EINVAL;
        port = 0;
        for (size_t i = hlen + 1; i < alen; i++) {
            if (auth[i] < '0' || auth[i] > '9')
                return LW_EINVAL;
            port = port * 10 + (auth[i] - '0');
        }
        if (port < 1 || port > 65535)
            return LW_EINVAL;
    }
    if (http) {
        bool loop4 = hlen == 9 && memcmp(auth, "127.0.0.1", 9) == 0;
        bool loop6 = hlen == 5 && memcmp(auth, "[::1]", 5) == 0;
        if (!loop4 && !loop6)
            return LW_EINVAL;
    }

    /* RFC 6454 §6.2: lowercase scheme and host, the default port left out. */
    char host[LW_WEBPUSH_HOST_MAX + 1];
    for (size_t i = 0; i < hlen; i++) {
        char c = auth[i];
        host[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    host[hlen] = '\0';
    long dflt = https ? 443 : 80;
    int n =
        (port < 0 || port == dflt)
            ? snprintf(origin, LW_WEBPUSH_ORIGIN_LEN, "%s://%s", https ? "https" : "http", host)
            : snprintf(origin, LW_WEBPUSH_ORIGIN_LEN, "%s://%s:%ld", https ? "https" : "http", host, port);
    if (n < 0 || n >= LW_WEBPUSH_ORIGIN_LEN) {
        origin[0] = '\0';
        return LW_EINVAL;
    }
    return LW_OK;
}

/* ---- VAPID ------------------------------------------------------------------------------ */

struct lw_vapid {
    EVP_PKEY *key;
    uint8_t pub[LW_WEBPUSH_KEY_LEN];
};

/* Wraps a P-256 private key (taking it over); LW_EINVAL for another kind. */
static int vapid_wrap(EVP_PKEY *key, lw_vapid **out)
{
    char group[32] = "";
    size_t glen = 0;
    int rc = LW_EINVAL;
    lw_vapid *v = NULL;
    if (!EVP_PKEY_is_a(key, "EC") ||
        EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &glen) != 1 ||
        strcmp(group, CURVE) != 0)
        goto fail;
    BIGNUM *d = NULL;
    bool has_private = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &d) == 1;
    BN_clear_free(d);
    if (!has_private)
        goto fail;
    rc = LW_ENOMEM;
    if ((v = lw_calloc(1, sizeof *v)) == NULL)
        goto fail;
    /* Keys read from a file carry the encoding they were saved with: ask for
     * the uncompressed point, the one form Web Push uses. */
    if (EVP_PKEY_set_utf8_string_param(key, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "uncompressed") !=
            1 ||
        public_of_pkey(key, v->pub) != LW_OK) {
        rc = LW_EINVAL;
        goto fail;
    }
    v->key = key;
    *out = v;
    return LW_OK;
fail:
    lw_free(v);
    EVP_PKEY_free(key);
    return rc;
}

int lw_vapid_generate(lw_vapid **out)
{
    if (out == NULL)
        return LW_EINVAL;
    *out = NULL;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", CURVE);
    if (key == NULL)
        return LW_ECRYPTO;
    return vapid_wrap(key, out);
}

/* A PEM pass phrase callback that has none: an encrypted key file is refused
 * instead of OpenSSL prompting on the terminal of a server. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

int lw_vapid_load(const char *path, lw_vapid **out)
{
    if (path == NULL || out == NULL)
        return LW_EINVAL;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return errno == ENOENT ? LW_ENOTFOUND : LW_EIO;
    char text[KEY_FILE_MAX + 1];
    size_t n = 0;
    int rc = LW_OK;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = LW_EIO;
    else if (st.st_size > KEY_FILE_MAX)
        rc = LW_EINVAL;
    while (rc == LW_OK && n < sizeof text) {
        ssize_t r = read(fd, text + n, sizeof text - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = LW_EIO;
        else if (r == 0)
            break;
        else
            n += (size_t)r;
    }
    close(fd);
    if (rc == LW_OK && n > KEY_FILE_MAX)
        rc = LW_EINVAL; /* grew after the fstat */
    if (rc == LW_OK) {
        BIO *bio = BIO_new_mem_buf(text, (int)n);
        EVP_PKEY *key = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
        BIO_free(bio);
        rc = key == NULL ? (bio == NULL ? LW_ENOMEM : LW_EINVAL) : vapid_wrap(key, out);
    }
    lw_wipe(text, sizeof text);
    return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return LW_EIO;
        p += w;
        n -= (size_t)w;
    }
    return LW_OK;
}

int lw_vapid_save(const lw_vapid *v, const char *path)
{
    if (v == NULL || path == NULL)
        return LW_EINVAL;
    char tmp[4096];
    int tn = snprintf(tmp, sizeof tmp, "%s.new", path);
    if (tn < 0 || (size_t)tn >= sizeof tmp)
        return LW_EINVAL;
    BIO *bio = BIO_new(BIO_s_secmem()); /* freed cleared, like the key */
    if (bio == NULL)
        return LW_ENOMEM;
    int rc = LW_ECRYPTO;
    char *pem = NULL;
    long plen = 0;
    if (PEM_write_bio_PrivateKey(bio, v->key, NULL, NULL, 0, NULL, NULL) != 1 ||
        (plen = BIO_get_mem_data(bio, &pem)) <= 0)
        goto out;
    /* A leftover "<path>.new" of a crash here is a key never used: replaced. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    rc = LW_EIO;
    if (fd < 0)
        goto out;
    /* The mode of a file that existed already is not ours: make it 0600. */
    bool ok = fchmod(fd, 0600) == 0 && write_all(fd, pem, (size_t)plen) == LW_OK && fsync(fd) == 0;
    if (close(fd) != 0)
        ok = false;
    if (ok && link(tmp, path) == 0)
        rc = LW_OK;
    else if (ok && errno == EEXIST)
        rc = LW_ECONFLICT;
    (void)unlink(tmp);
out:
    if (pem != NULL && plen > 0)
        lw_wipe(pem, (size_t)plen);
    BIO_free(bio);
    return rc;
}

void lw_vapid_free(lw_vapid *v)
{
    if (v == NULL)
        return;
    EVP_PKEY_free(v->key);
    lw_free(v);
}

void lw_vapid_public(const lw_vapid *v, uint8_t out[LW_WEBPUSH_KEY_LEN])
{
    memcpy(out, v->pub, LW_WEBPUSH_KEY_LEN);
}

void lw_vapid_public_b64(const lw_vapid *v, char out[LW_VAPID_PUB_B64_LEN])
{
    lw_b64_encode(out, v->pub, LW_WEBPUSH_KEY_LEN);
}

/* A claim we write between quotes: printable ASCII without '"' or '\', so
 * the JSON needs no escaping. */
static bool claim_text(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
            return false;
    return true;
}

/* aud is an origin: what lw_webpush_endpoint_check writes, nothing else. */
static bool aud_ok(const char *aud)
{
    if (!claim_text(aud, LW_WEBPUSH_ORIGIN_LEN - 1))
        return false;
    char again[LW_WEBPUSH_ORIGIN_LEN];
    return lw_webpush_endpoint_check(aud, LW_WEBPUSH_ALLOW_LOOPBACK, again) == LW_OK &&
           strcmp(again, aud) == 0;
}

/* ES256 (RFC 7518 §3.4): ECDSA P-256 over SHA-256, the signature as the two
 * 32-byte big-endian integers r || s, not OpenSSL's DER. */
static int es256_sign(EVP_PKEY *key, const char *msg, size_t len, uint8_t sig[64])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char der[80];
    size_t dlen = sizeof der;
    ECDSA_SIG *es = NULL;
    int rc = LW_ECRYPTO;
    if (md == NULL)
        return LW_ENOMEM;
    if (EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, key, NULL) != 1 ||
        EVP_DigestSign(md, der, &dlen, (const unsigned char *)msg, len) != 1)
        goto out;
    const unsigned char *p = der;
    if ((es = d2i_ECDSA_SIG(NULL, &p, (long)dlen)) == NULL || p != der + dlen)
        goto out;
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG_get0(es, &r, &s);
    if (BN_bn2binpad(r, sig, 32) != 32 || BN_bn2binpad(s, sig + 32, 32) != 32)
        goto out;
    rc = LW_OK;
out:
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(md);
    return rc;
}

int lw_vapid_jwt(const lw_vapid *v, const char *aud, const char *sub, int64_t now_s, int64_t exp_s, char *out,
                 size_t cap)
{
    static const char header[] = "{\"typ\":\"JWT\",\"alg\":\"ES256\"}";
    if (out != NULL && cap > 0)
        out[0] = '\0';
    if (v == NULL || aud == NULL || sub == NULL || out == NULL || !aud_ok(aud) ||
        !claim_text(sub, LW_VAPID_SUB_MAX) ||
        (strncmp(sub, "mailto:", 7) != 0 && strncmp(sub, "https:", 6) != 0) || exp_s <= now_s ||
        exp_s - now_s > LW_VAPID_TTL_MAX_S)
        return LW_EINVAL;
    char claims[LW_WEBPUSH_ORIGIN_LEN + LW_VAPID_SUB_MAX + 64];
    int cn = snprintf(claims, sizeof claims, "{\"aud\":\"%s\",\"exp\":%lld,\"sub\":\"%s\"}", aud,
                      (long long)exp_s, sub);
    if (cn < 0 || (size_t)cn >= sizeof claims)
        return LW_EINVAL;
    size_t hlen = lw_b64_enc_len(sizeof header - 1) - 1, clen = lw_b64_enc_len((size_t)cn) - 1;
    /* lw_b64_enc_len counts padded groups: the unpadded text may be shorter. */
    if (cap < hlen + 1 + clen + 1 + lw_b64_enc_len(64))
        return LW_ENOMEM;
    lw_b64_encode(out, (const uint8_t *)header, sizeof header - 1);
    size_t o = strlen(out);
    out[o++] = '.';
    lw_b64_encode(out + o, (const uint8_t *)claims, (size_t)cn);
    o += strlen(out + o);
    uint8_t sig[64];
    int rc = es256_sign(v->key, out, o, sig);
    if (rc != LW_OK) {
        out[0] = '\0';
        return rc;
    }
    out[o++] = '.';
    lw_b64_encode(out + o, sig, sizeof sig);
    return LW_OK;
}

int lw_vapid_authorization(const lw_vapid *v, const char *aud, const char *sub, int64_t now_s, int64_t exp_s,
                           char *out, size_t cap)
{
    char jwt[LW_VAPID_JWT_LEN], k[LW_VAPID_PUB_B64_LEN];
    if (out != NULL && cap > 0)
        out[0] = '\0';
    if (out == NULL)
        return LW_EINVAL;
    int rc = lw_vapid_jwt(v, aud, sub, now_s, exp_s, jwt, sizeof jwt);
    if (rc != LW_OK)
        return rc;
    lw_vapid_public_b64(v, k);
    int n = snprintf(out, cap, "vapid t=%s, k=%s", jwt, k);
    if (n < 0 || (size_t)n >= cap) {
        if (cap > 0)
            out[0] = '\0';
        return LW_ENOMEM;
    }
    return LW_OK;
}
