/*
 * webpush_tool — src/common/webpush.c for tests in another language
 * (tests/integration/webpush_ece.test.js). Reads one JSON request on stdin,
 * writes one JSON answer on stdout; binary fields are base64url.
 *
 *   {"op":"encrypt","p256dh":B64,"auth":B64,"plaintext":B64[,"pad_to":N]}
 *       -> {"body":B64}
 *   {"op":"vapid","key":PATH,"endpoint":URL,"sub":S,"now":SECS,"exp":SECS[,"loopback":true]}
 *       -> {"origin":S,"authorization":S,"public_key":B64,"created":BOOL}
 *       (the key is read from PATH, or made and saved there when there is none)
 *   {"op":"endpoint","url":URL[,"loopback":true]} -> {"origin":S}
 *
 * A refusal of webpush.c answers {"error":"<lw_strerror>","code":N} with exit
 * status 0; a request the tool cannot read exits 2. Test-only: not installed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "crypto.h"
#include "lw.h"
#include "webpush.h"

static int answer(json_t *a)
{
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    if (s == NULL)
        return 2;
    puts(s);
    free(s);
    return 0;
}

static int refusal(int rc)
{
    return answer(json_pack("{s:s,s:i}", "error", lw_strerror(rc), "code", rc));
}

static long field(json_t *req, const char *name, uint8_t *dst, size_t cap)
{
    const char *s = json_string_value(json_object_get(req, name));
    return s == NULL ? LW_EINVAL : lw_b64_decode(dst, cap, s, strlen(s), 0);
}

static int encrypt(json_t *req)
{
    uint8_t pub[LW_WEBPUSH_KEY_LEN + 1], auth[LW_WEBPUSH_AUTH_LEN + 1], pt[LW_WEBPUSH_BODY_MAX];
    uint8_t body[LW_WEBPUSH_BODY_MAX];
    char b64[lw_b64_enc_len(LW_WEBPUSH_BODY_MAX)];
    long pn = field(req, "p256dh", pub, sizeof pub), an = field(req, "auth", auth, sizeof auth);
    long tn = field(req, "plaintext", pt, sizeof pt);
    if (pn != LW_WEBPUSH_KEY_LEN || an != LW_WEBPUSH_AUTH_LEN || tn < 0)
        return refusal(LW_EINVAL);
    size_t pad_to = (size_t)json_integer_value(json_object_get(req, "pad_to"));
    size_t n = 0;
    int rc = lw_webpush_encrypt(pub, auth, pt, (size_t)tn, pad_to, body, sizeof body, &n);
    if (rc != LW_OK)
        return refusal(rc);
    lw_b64_encode(b64, body, n);
    return answer(json_pack("{s:s}", "body", b64));
}

static unsigned flags_of(json_t *req)
{
    return json_is_true(json_object_get(req, "loopback")) ? LW_WEBPUSH_ALLOW_LOOPBACK : 0;
}

static int vapid(json_t *req)
{
    const char *path = json_string_value(json_object_get(req, "key"));
    const char *url = json_string_value(json_object_get(req, "endpoint"));
    const char *sub = json_string_value(json_object_get(req, "sub"));
    json_int_t now = json_integer_value(json_object_get(req, "now"));
    json_int_t exp = json_integer_value(json_object_get(req, "exp"));
    if (path == NULL || url == NULL || sub == NULL)
        return refusal(LW_EINVAL);
    char origin[LW_WEBPUSH_ORIGIN_LEN], auth[LW_VAPID_AUTH_LEN], pub[LW_VAPID_PUB_B64_LEN];
    int rc = lw_webpush_endpoint_check(url, flags_of(req), origin);
    if (rc != LW_OK)
        return refusal(rc);
    lw_vapid *v = NULL;
    bool created = false;
    rc = lw_vapid_load(path, &v);
    if (rc == LW_ENOTFOUND) {
        created = true;
        rc = lw_vapid_generate(&v);
        if (rc == LW_OK)
            rc = lw_vapid_save(v, path);
    }
    if (rc == LW_OK)
        rc = lw_vapid_authorization(v, origin, sub, now, exp, auth, sizeof auth);
    if (rc != LW_OK) {
        lw_vapid_free(v);
        return refusal(rc);
    }
    lw_vapid_public_b64(v, pub);
    lw_vapid_free(v);
    return answer(json_pack("{s:s,s:s,s:s,s:b}", "origin", origin, "authorization", auth, "public_key", pub,
                            "created", created));
}

static int endpoint(json_t *req)
{
    const char *url = json_string_value(json_object_get(req, "url"));
    char origin[LW_WEBPUSH_ORIGIN_LEN];
    int rc = url == NULL ? LW_EINVAL : lw_webpush_endpoint_check(url, flags_of(req), origin);
    return rc != LW_OK ? refusal(rc) : answer(json_pack("{s:s}", "origin", origin));
}

int main(void)
{
    if (lw_crypto_init() != LW_OK)
        return 2;
    json_error_t err;
    json_t *req = json_loadf(stdin, 0, &err);
    const char *op = json_string_value(json_object_get(req, "op"));
    int status = 2;
    if (op == NULL)
        fprintf(stderr, "webpush_tool: a JSON object with \"op\" on stdin, please (%s)\n", err.text);
    else if (strcmp(op, "encrypt") == 0)
        status = encrypt(req);
    else if (strcmp(op, "vapid") == 0)
        status = vapid(req);
    else if (strcmp(op, "endpoint") == 0)
        status = endpoint(req);
    else
        fprintf(stderr, "webpush_tool: unknown op \"%s\"\n", op);
    json_decref(req);
    return status;
}
