/*
 * webpush.h — the cryptography of Web Push, on OpenSSL's libcrypto: what a
 * push sender needs to hand an alert to a browser's push service.
 *
 *  - Message encryption (RFC 8291) with the "aes128gcm" content coding
 *    (RFC 8188): ECDH on P-256 between a fresh key of ours and the
 *    subscription's p256dh key, HKDF-SHA-256 mixed with the subscription's
 *    auth secret, one AES-128-GCM record. Only the browser that subscribed
 *    can read the body; the push service sees its length.
 *  - VAPID (RFC 8292): the application server's long-lived P-256 key, kept as
 *    a PEM file (0600) beside the server key, and the ES256 JWT that names
 *    the push service it is sent to ("aud") and a contact ("sub").
 *  - Endpoints: the push service URL a browser gave, checked before anything
 *    is sent to it, and its origin (the JWT's "aud").
 *
 * Pure functions over caller-owned buffers: no I/O except the key file, no
 * logging (callers log once, with their subsystem tag), nothing kept between
 * calls. Every secret an operation derives is wiped before it returns.
 * Thread-safe: a push worker may call these from any thread; an lw_vapid key
 * may be used by several threads at once once loaded (it is never modified).
 * Every function returns LW_OK or a negative LW_E* code (lw.h).
 */
#ifndef LW_WEBPUSH_H
#define LW_WEBPUSH_H

#include <stddef.h>
#include <stdint.h>

#define LW_WEBPUSH_KEY_LEN 65  /* a P-256 public key, uncompressed: 0x04 || X || Y */
#define LW_WEBPUSH_PRIV_LEN 32 /* a P-256 private scalar, big endian */
#define LW_WEBPUSH_AUTH_LEN 16 /* the subscription's auth secret */
#define LW_WEBPUSH_SALT_LEN 16
/* The record size written in the header. The body is one record, always
 * smaller than this: RFC 8291 §4 has one record per push message. */
#define LW_WEBPUSH_RS 4096
/* salt(16) | rs(4, big endian) | idlen(1) | keyid (our ephemeral public key, 65) */
#define LW_WEBPUSH_HEADER_LEN (LW_WEBPUSH_SALT_LEN + 4 + 1 + LW_WEBPUSH_KEY_LEN)
#define LW_WEBPUSH_TAG_LEN 16
/* Header, the padding delimiter (0x02) and the AEAD tag. */
#define LW_WEBPUSH_OVERHEAD (LW_WEBPUSH_HEADER_LEN + 1 + LW_WEBPUSH_TAG_LEN)
/* A push service must accept 4096 bytes of body (RFC 8030 §7.2), so this is
 * the largest body we write, and the plaintext (padding included) that fits
 * in it: 4096 - 103 = 3993 bytes, RFC 8291 §4's figure. */
#define LW_WEBPUSH_BODY_MAX 4096
#define LW_WEBPUSH_PLAINTEXT_MAX (LW_WEBPUSH_BODY_MAX - LW_WEBPUSH_OVERHEAD)
/* The body's length for n bytes of plaintext (padding included). */
#define LW_WEBPUSH_BODY_LEN(n) ((size_t)(n) + LW_WEBPUSH_OVERHEAD)

/*
 * Encrypts plaintext[0..len) for the subscription (ua_public: its p256dh key,
 * auth: its auth secret) with a fresh ephemeral key and salt from the OS
 * CSPRNG, and writes the whole request body to out: the RFC 8188 header, then
 * the one record (plaintext || 0x02 || zero padding, sealed). The plaintext
 * is padded with zeros to pad_to bytes when pad_to > len (0: no padding), so
 * that bodies of different messages can be made to look alike in length.
 * out_cap must be at least LW_WEBPUSH_BODY_LEN(max(len, pad_to)); *out_len
 * gets the body's length.
 * LW_EINVAL: ua_public is not an uncompressed point on P-256, or a pointer
 * is NULL; LW_ETOOBIG: max(len, pad_to) > LW_WEBPUSH_PLAINTEXT_MAX;
 * LW_ENOMEM: out_cap too small (nothing written) or OpenSSL out of memory;
 * LW_ECRYPTO: OpenSSL failed otherwise. On error out holds no plaintext.
 */
int lw_webpush_encrypt(const uint8_t ua_public[LW_WEBPUSH_KEY_LEN], const uint8_t auth[LW_WEBPUSH_AUTH_LEN],
                       const void *plaintext, size_t len, size_t pad_to, uint8_t *out, size_t out_cap,
                       size_t *out_len);

/* lw_webpush_encrypt with the ephemeral private key (as_private, a scalar in
 * [1, n-1]) and the salt given: for known-answer tests (RFC 8291 Appendix A)
 * only. A sender must never reuse either; LW_EINVAL for a scalar out of range. */
int lw_webpush_encrypt_with(const uint8_t as_private[LW_WEBPUSH_PRIV_LEN],
                            const uint8_t salt[LW_WEBPUSH_SALT_LEN],
                            const uint8_t ua_public[LW_WEBPUSH_KEY_LEN],
                            const uint8_t auth[LW_WEBPUSH_AUTH_LEN], const void *plaintext, size_t len,
                            size_t pad_to, uint8_t *out, size_t out_cap, size_t *out_len);

/* ---- Endpoints -------------------------------------------------------------- */

/* The longest endpoint URL accepted (bytes, without the NUL). Real ones are
 * under 500; a browser gives it, but through a client we do not trust. */
#define LW_WEBPUSH_ENDPOINT_MAX 2048
#define LW_WEBPUSH_HOST_MAX 253 /* a DNS name's limit */
/* "https://" + host (or [IPv6]) + ":65535" + NUL, rounded up. */
#define LW_WEBPUSH_ORIGIN_LEN 272
/* Flags of lw_webpush_endpoint_check. */
#define LW_WEBPUSH_ALLOW_LOOPBACK 1u /* also http://127.0.0.1[:port]/ and http://[::1][:port]/ (tests) */

/*
 * Checks a push endpoint URL and writes its origin (RFC 6454 serialisation:
 * scheme "://" host, lowercased, [":" port] unless it is the scheme's default)
 * to origin, which is the "aud" of the VAPID JWT. Accepted: https:// only
 * (plain http only to 127.0.0.1 or [::1] with LW_WEBPUSH_ALLOW_LOOPBACK);
 * at most LW_WEBPUSH_ENDPOINT_MAX bytes, all of them characters RFC 3986 allows
 * in a URL; no userinfo ("@" in the authority), no fragment, no backslash (so
 * no two URL parsers can disagree on the host); a host of DNS characters
 * (labels of letters, digits, '-', no empty label) or a bracketed IPv6
 * literal; a port, when given, in 1..65535. The check is syntactic: whether
 * the host resolves to an address the server may connect to is the sender's
 * to check when it connects.
 * LW_EINVAL for anything refused (origin left empty), LW_ETOOBIG past the
 * length bound.
 */
int lw_webpush_endpoint_check(const char *url, unsigned flags, char origin[LW_WEBPUSH_ORIGIN_LEN]);

/* ---- VAPID (RFC 8292) -------------------------------------------------------- */

/* An application server key: a P-256 key pair. Opaque; lw_vapid_free frees
 * it (and OpenSSL wipes the private scalar). */
typedef struct lw_vapid lw_vapid;

/* base64url of the 65-byte public key, unpadded (87 chars) + NUL: the
 * applicationServerKey the page subscribes with and the header's k=. */
#define LW_VAPID_PUB_B64_LEN 88
/* The longest "sub" (contact) accepted, bytes without the NUL. */
#define LW_VAPID_SUB_MAX 256
/* RFC 8292 §2: exp no more than 24 hours after the request. */
#define LW_VAPID_TTL_MAX_S (24 * 3600)
/* A JWT of the longest aud and sub, and the whole Authorization value, with NUL. */
#define LW_VAPID_JWT_LEN 1024
#define LW_VAPID_AUTH_LEN (LW_VAPID_JWT_LEN + LW_VAPID_PUB_B64_LEN + 16)

/* A new key from the OS CSPRNG. *out is the caller's (lw_vapid_free). */
int lw_vapid_generate(lw_vapid **out);
/* Reads a private key in PEM (PKCS#8 "PRIVATE KEY" or SEC1 "EC PRIVATE KEY",
 * unencrypted) from path: a regular file of at most 8 KiB. LW_ENOTFOUND when
 * there is no such file, LW_EIO when it cannot be read, LW_EINVAL when it is
 * not an unencrypted P-256 private key. *out is the caller's. */
int lw_vapid_load(const char *path, lw_vapid **out);
/* Writes the private key to path as PKCS#8 PEM, mode 0600, whole or not at
 * all: written to "<path>.new", synced, then linked into place, so it never
 * replaces an existing file (LW_ECONFLICT when path exists) and a crash never
 * leaves half a key. LW_EIO on a write error. */
int lw_vapid_save(const lw_vapid *v, const char *path);
void lw_vapid_free(lw_vapid *v);

/* The public key, raw (0x04 || X || Y) or as base64url. */
void lw_vapid_public(const lw_vapid *v, uint8_t out[LW_WEBPUSH_KEY_LEN]);
void lw_vapid_public_b64(const lw_vapid *v, char out[LW_VAPID_PUB_B64_LEN]);

/*
 * Writes the VAPID JWT to out (cap bytes, LW_VAPID_JWT_LEN always enough):
 * header {"typ":"JWT","alg":"ES256"}, claims {"aud":aud,"exp":exp,"sub":sub},
 * each base64url without padding, and the ES256 signature (JWS, RFC 7515
 * §A.3: r || s, 32 bytes each, big endian) of "header.claims".
 * aud: an origin as lw_webpush_endpoint_check writes it; sub: a "mailto:"
 * or "https:" URI of printable ASCII (no '"' or '\'), at most
 * LW_VAPID_SUB_MAX bytes; exp: seconds since the epoch, after now_s and at
 * most LW_VAPID_TTL_MAX_S after it. LW_EINVAL for a refused claim,
 * LW_ENOMEM when cap is too small, LW_ECRYPTO when signing fails.
 */
int lw_vapid_jwt(const lw_vapid *v, const char *aud, const char *sub, int64_t now_s, int64_t exp_s, char *out,
                 size_t cap);

/* The Authorization header's value (RFC 8292 §3): "vapid t=<jwt>, k=<public
 * key, base64url>", with the JWT of lw_vapid_jwt. cap: LW_VAPID_AUTH_LEN is
 * always enough. Same errors as lw_vapid_jwt. */
int lw_vapid_authorization(const lw_vapid *v, const char *aud, const char *sub, int64_t now_s, int64_t exp_s,
                           char *out, size_t cap);

#endif
