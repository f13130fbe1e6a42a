/*
 * link.c — linking a companion, from both sides, and the signatures it needs.
 *
 * The primary never trusts what it scans: a payload must carry the pinned
 * server key's signature and the pinned origin before anything is sent
 * (a phishing page relaying a foreign server's QR code fails here), and the
 * request the server then describes must hold the very key the payload
 * names (a server cannot swap in another device's key unnoticed). The
 * account signature binds the approval to that key.
 */
#include <stdio.h>
#include <string.h>

#include "client_int.h"
#include "code.h"
#include "payload.h"
#include "proof.h"

struct lwc_scan {
    char id[128];
    char fp_human[LW_FP_HUMAN_LEN];
    char public_key[lw_b64_enc_len(LW_PK_LEN)];
    json_t *answer; /* the whole scan answer; request and risk point into it */
};

struct lwc_link {
    char id[128];
    char *token; /* link token: a secret */
    char *payload;
    char code[64];
    char nonce[lw_b64_enc_len(32)];
    long expires_in;
    int64_t expires_at; /* ms since the epoch */
};

/* ---- signatures ---- */

/* Decodes the 32 raw bytes of a signed message (proof.h) from the API's
 * base64url, after checking id is one the API carries: LW_EINVAL if not. */
static int proof_raw(uint8_t raw[LW_PROOF_RAW_LEN], const char *id, const char *b64)
{
    if (id == NULL || b64 == NULL || !lwc_id_ok(id) ||
        lw_b64_decode(raw, LW_PROOF_RAW_LEN, b64, strlen(b64), LW_PROOF_RAW_LEN) != LW_PROOF_RAW_LEN)
        return LW_EINVAL;
    return LW_OK;
}

/* Signs the message of kind over id and raw(b64) and writes base64url into out. */
static int sign_proof(const uint8_t sk[LWC_SK_LEN], lw_proof_kind kind, const char *id, const char *b64,
                      char out[LWC_SIG_B64_LEN + 1])
{
    uint8_t raw[LW_PROOF_RAW_LEN], sig[LW_SIG_LEN];
    int rc = proof_raw(raw, id, b64);
    if (rc == LW_OK)
        rc = lw_proof_sign(sig, kind, id, raw, sizeof raw, sk);
    if (rc != LW_OK)
        return LW_EINVAL;
    lw_b64_encode(out, sig, sizeof(sig));
    return LW_OK;
}

int lwc_sign_link(const uint8_t sk[LWC_SK_LEN], const char *request_id, const char *nonce_b64,
                  char out[LWC_SIG_B64_LEN + 1])
{
    return sign_proof(sk, LW_PROOF_LINK, request_id, nonce_b64, out);
}

int lwc_sign_refresh(const uint8_t sk[LWC_SK_LEN], const char *device_id, const char *challenge_b64,
                     char out[LWC_SIG_B64_LEN + 1])
{
    return sign_proof(sk, LW_PROOF_REFRESH, device_id, challenge_b64, out);
}

int lwc_sign_account(const uint8_t sk[LWC_SK_LEN], const char *account_id, const char *companion_pk_b64,
                     char out[LWC_SIG_B64_LEN + 1])
{
    return sign_proof(sk, LW_PROOF_ACCOUNT, account_id, companion_pk_b64, out);
}

/* ---- checking what the server lists ---- */

/* The record's public_key, decoded, after checking that its key_fingerprint
 * names it (the fingerprint is what people compare with a device's screen,
 * so it must be the key's and no other). */
static int record_key(json_t *record, uint8_t pk[LW_PK_LEN])
{
    const char *pk_b64 = lwc_json_str(record, "public_key");
    const char *fp_text = lwc_json_str(record, "key_fingerprint");
    if (lw_b64_decode(pk, LW_PK_LEN, pk_b64, strlen(pk_b64), LW_PK_LEN) != LW_PK_LEN)
        return LW_EINVAL;
    uint8_t fp[LW_FP_LEN];
    char fphex[2 * LW_FP_LEN + 1];
    lw_fingerprint(fp, pk);
    lw_hex_encode(fphex, fp, sizeof fp);
    return strcmp(fp_text, fphex) == 0 ? LW_OK : LW_ECRYPTO;
}

int lwc_verify_account(const uint8_t sk[LWC_SK_LEN], const char *account_id, json_t *record)
{
    uint8_t pk[LW_PK_LEN], raw[LW_PROOF_RAW_LEN], sig[LW_SIG_LEN];
    if (!json_is_object(record) || account_id == NULL)
        return LW_EINVAL;
    int rc = record_key(record, pk);
    if (rc != LW_OK)
        return rc;
    const char *sig_b64 = lwc_json_str(record, "account_signature");
    if (lw_b64_decode(sig, sizeof sig, sig_b64, strlen(sig_b64), sizeof sig) != (long)sizeof sig)
        return LW_EINVAL;
    rc = proof_raw(raw, account_id, lwc_json_str(record, "public_key"));
    if (rc != LW_OK)
        return rc;
    /* libsodium's secret key is seed || public key: the phone's own public
     * key is its second half (crypto_sign_ed25519_sk_to_pk does the same). */
    return lw_proof_verify(sig, LW_PROOF_ACCOUNT, account_id, raw, sizeof raw, sk + LWC_SK_LEN - LWC_PK_LEN);
}

int lwc_device_verify_record(const lwc_device *d, json_t *record)
{
    const uint8_t *sk = lwc_device_sk(d);
    const char *account = lwc_device_get(d, LWC_ACCOUNT_ID);
    if (sk == NULL || account == NULL || !json_is_object(record))
        return LW_EINVAL;
    if (strcmp(lwc_json_str(record, "role"), "primary") != 0)
        return lwc_verify_account(sk, account, record);
    /* A primary row carries no signature: it must be this very phone, or the
     * server is showing a primary the account never had. */
    uint8_t pk[LW_PK_LEN];
    int rc = record_key(record, pk);
    if (rc != LW_OK)
        return rc;
    return lw_ct_equal(pk, sk + LWC_SK_LEN - LWC_PK_LEN, LW_PK_LEN) ? LW_OK : LW_ECRYPTO;
}

/* ---- the primary ---- */

int lwc_device_check_payload(lwc_device *d, const char *payload, uint8_t fp[LW_FP_LEN])
{
    lwc_error *err = lwc_device_err(d);
    const char *origin = lwc_device_get(d, LWC_ORIGIN);
    uint8_t key[LW_PK_LEN];
    lw_payload p;
    size_t len = strnlen(payload, LW_PAYLOAD_MAX + 1);
    if (origin == NULL || lwc_device_server_key(d, key) != LW_OK) {
        lwc_err_set(err, 0, "state", "this device has no pinned server key: register it first");
        return LW_EINVAL;
    }
    if (len > LW_PAYLOAD_MAX || lw_payload_parse(&p, payload, len) != LW_OK) {
        lwc_err_set(err, 0, "invalid_payload", "This is not a Linkward QR code.");
        return LW_EINVAL;
    }
    if (lw_payload_verify(&p, key) != LW_OK) {
        lwc_err_set(err, 0, "invalid_signature",
                    "This QR code was not issued by your Linkward server (its signature does not verify).");
        return LW_ECRYPTO;
    }
    if (strcmp(p.origin, origin) != 0) {
        lwc_err_set(err, 0, "wrong_origin",
                    "This QR code is for another site (%s), not your server (%s). Do not link it.", p.origin,
                    origin);
        return LW_EDENIED;
    }
    if (fp != NULL)
        memcpy(fp, p.fp, LW_FP_LEN);
    return LW_OK;
}

int lwc_payload_check(lwc_device *d, const char *payload)
{
    return lwc_device_check_payload(d, payload, NULL);
}

/* Checks the scan answer: the request it describes must be the one the
 * (verified) payload names. Fills s. */
static int check_scan_answer(lwc_device *d, json_t *answer, lwc_scan *s)
{
    lwc_error *err = lwc_device_err(d);
    json_t *req = json_object_get(answer, "request");
    const char *id = json_string_value(json_object_get(req, "id"));
    const char *pk = json_string_value(json_object_get(req, "public_key"));
    const char *payload = json_string_value(json_object_get(answer, "payload"));
    uint8_t raw[LW_PK_LEN], fp[LW_FP_LEN], want[LW_FP_LEN];
    if (id == NULL || !lwc_id_ok(id) || pk == NULL || payload == NULL ||
        lw_strlcpy(s->id, id, sizeof(s->id)) != LW_OK ||
        lw_b64_decode(raw, sizeof(raw), pk, strlen(pk), LW_PK_LEN) != LW_PK_LEN) {
        lwc_err_set(err, 200, "bad_response", "the server's answer to the scan is incomplete");
        return LW_EIO;
    }
    int rc = lwc_device_check_payload(d, payload, want);
    if (rc != LW_OK)
        return rc;
    lw_fingerprint(fp, raw);
    if (!lw_ct_equal(fp, want, LW_FP_LEN)) {
        lwc_err_set(err, 0, "fingerprint_mismatch",
                    "The device the server describes does not hold the key this QR code names. "
                    "Do not link it.");
        return LW_ECRYPTO;
    }
    lw_fingerprint_human(s->fp_human, fp);
    (void)lw_strlcpy(s->public_key, pk, sizeof(s->public_key));
    if (!json_is_object(json_object_get(answer, "risk")) &&
        json_object_set_new(answer, "risk", json_pack("{ss s[]}", "level", "unknown", "reasons")) != 0)
        return LW_ENOMEM;
    return LW_OK;
}

int lwc_link_scan(lwc_device *d, const char *payload, const char *code, lwc_scan **out)
{
    *out = NULL;
    lwc_error *err = lwc_device_err(d);
    json_t *body = NULL, *answer = NULL;
    char norm[LW_CODE_STRLEN];
    int rc;
    if ((payload == NULL) == (code == NULL)) {
        lwc_err_set(err, 0, "invalid_request", "give a payload or a pairing code");
        return LW_EINVAL;
    }
    if (payload != NULL) {
        /* Refuse a bad payload before the server learns anything. */
        if ((rc = lwc_device_check_payload(d, payload, NULL)) != LW_OK)
            return rc;
        body = json_pack("{ss}", "payload", payload);
    } else {
        if (lw_code_normalize(code, strlen(code), norm) != LW_OK) {
            lwc_err_set(err, 0, "invalid_code", "A pairing code is 8 letters and digits, like ABCD-2345.");
            return LW_EINVAL;
        }
        body = json_pack("{ss}", "code", norm);
    }
    if (body == NULL)
        return LW_ENOMEM;
    lwc_scan *s = lw_calloc(1, sizeof(*s));
    if (s == NULL) {
        json_decref(body);
        return LW_ENOMEM;
    }
    rc = lwc_device_call(d, "POST", "/v1/link-requests/scan", body, &answer);
    json_decref(body);
    if (rc != LW_OK)
        goto fail;
    s->answer = answer;
    if ((rc = check_scan_answer(d, answer, s)) != LW_OK) {
        /* We scanned it: deny it so the requester does not wait for an
         * approval that will never come (keeping our error for the caller). */
        if (s->id[0] != '\0' && rc != LW_EIO) {
            lwc_error keep = *err;
            (void)lwc_link_deny(d, s);
            *err = keep;
        }
        goto fail;
    }
    *out = s;
    return LW_OK;
fail:
    lwc_scan_free(s);
    return rc;
}

const char *lwc_scan_id(const lwc_scan *s)
{
    return s->id;
}

json_t *lwc_scan_request(const lwc_scan *s)
{
    return json_object_get(s->answer, "request");
}

json_t *lwc_scan_risk(const lwc_scan *s)
{
    return json_object_get(s->answer, "risk");
}

bool lwc_scan_blocked(const lwc_scan *s)
{
    return json_is_true(json_object_get(s->answer, "blocked"));
}

const char *lwc_scan_fingerprint(const lwc_scan *s)
{
    return s->fp_human;
}

void lwc_scan_free(lwc_scan *s)
{
    if (s == NULL)
        return;
    json_decref(s->answer);
    lw_free(s);
}

static int scan_path(char *dst, size_t cap, const char *id, const char *action)
{
    int n = snprintf(dst, cap, "/v1/link-requests/%s/%s", id, action);
    return n < 0 || (size_t)n >= cap ? LW_ETOOBIG : LW_OK;
}

int lwc_link_approve(lwc_device *d, const lwc_scan *s, const char *pin, bool accept_risk)
{
    const uint8_t *sk = lwc_device_sk(d);
    const char *account = lwc_device_get(d, LWC_ACCOUNT_ID);
    char sig[LWC_SIG_B64_LEN + 1], path[256];
    if (sk == NULL || account == NULL) {
        lwc_err_set(lwc_device_err(d), 0, "no_session", "this device is not registered");
        return LW_EDENIED;
    }
    if (lwc_sign_account(sk, account, s->public_key, sig) != LW_OK ||
        scan_path(path, sizeof(path), s->id, "approve") != LW_OK) {
        lwc_err_set(lwc_device_err(d), 0, "invalid_request", "cannot sign this request");
        return LW_EINVAL;
    }
    json_t *body = json_pack("{ss}", "account_signature", sig);
    if (body == NULL)
        return LW_ENOMEM;
    int rc = LW_ENOMEM;
    if (pin != NULL && json_object_set_new(body, "pin", json_string(pin)) != 0)
        goto done;
    if (accept_risk && json_object_set_new(body, "accept_risk", json_true()) != 0)
        goto done;
    rc = lwc_device_call(d, "POST", path, body, NULL);
done:
    lwc_json_wipe(body, "pin");
    json_decref(body);
    return rc;
}

int lwc_link_deny(lwc_device *d, const lwc_scan *s)
{
    char path[256];
    if (scan_path(path, sizeof(path), s->id, "deny") != LW_OK)
        return LW_EINVAL;
    return lwc_device_call(d, "POST", path, NULL, NULL);
}

/* ---- the companion ---- */

void lwc_link_free(lwc_link *l)
{
    if (l == NULL)
        return;
    if (l->token != NULL) {
        lw_wipe(l->token, strlen(l->token));
        lw_free(l->token);
    }
    lw_free(l->payload);
    lw_free(l);
}

int lwc_link_set_payload(lwc_link *l, const char *payload)
{
    if (payload == NULL || strnlen(payload, LW_PAYLOAD_MAX + 1) > LW_PAYLOAD_MAX)
        return LW_EINVAL;
    char *copy = lw_strdup(payload);
    if (copy == NULL)
        return LW_ENOMEM;
    lw_free(l->payload);
    l->payload = copy;
    return LW_OK;
}

static void set_expiry(lwc_link *l, json_t *answer)
{
    json_t *exp = json_object_get(answer, "expires_in");
    if (json_is_integer(exp) && json_integer_value(exp) >= 0 && json_integer_value(exp) < 86400) {
        l->expires_in = (long)json_integer_value(exp);
        l->expires_at = lw_now_ms() + (int64_t)l->expires_in * 1000;
    }
}

int lwc_link_create(lwc_device *d, json_t *client, bool persistent, lwc_link **out)
{
    *out = NULL;
    lwc_error *err = lwc_device_err(d);
    lwc_client *c = lwc_device_client(d);
    if (c == NULL) {
        lwc_err_set(err, 0, "no_server", "no server URL: give --server URL");
        return LW_EINVAL;
    }
    int rc = lwc_device_ensure_key(d);
    if (rc != LW_OK)
        return rc;
    char pk[lw_b64_enc_len(LW_PK_LEN)];
    lw_b64_encode(pk, lwc_device_sk(d) + 32, LW_PK_LEN);
    json_t *body = json_pack("{ss sb}", "public_key", pk, "persistent", persistent);
    json_t *answer = NULL;
    long status = 0;
    lwc_link *l = lw_calloc(1, sizeof(*l));
    if (body == NULL || l == NULL || (client != NULL && json_object_set(body, "client", client) != 0)) {
        rc = LW_ENOMEM;
        goto fail;
    }
    rc = lwc_request_bearer(c, "POST", "/v1/link-requests", NULL, body, &status, &answer);
    lwc_device_take_error(d, c);
    if (rc != LW_OK) {
        rc = LW_EIO;
        goto fail;
    }
    if ((rc = lwc_status_to_err(status, err->code)) != LW_OK)
        goto fail;
    const char *id = lwc_json_str(answer, "id"), *token = lwc_json_str(answer, "token");
    const char *payload = lwc_json_str(answer, "payload"), *code = lwc_json_str(answer, "code");
    const char *nonce = lwc_json_str(answer, "nonce");
    lw_payload p;
    if (!lwc_id_ok(id) || token[0] == '\0' || lw_strlcpy(l->id, id, sizeof(l->id)) != LW_OK ||
        lw_strlcpy(l->code, code, sizeof(l->code)) != LW_OK ||
        lw_strlcpy(l->nonce, nonce, sizeof(l->nonce)) != LW_OK || nonce[0] == '\0' ||
        lw_payload_parse(&p, payload, strlen(payload)) != LW_OK) {
        lwc_err_set(err, status, "bad_response", "the server's answer to the link request is incomplete");
        rc = LW_EIO;
        goto fail;
    }
    rc = LW_ENOMEM;
    if ((l->token = lw_strdup(token)) == NULL || lwc_link_set_payload(l, payload) != LW_OK)
        goto fail;
    set_expiry(l, answer);
    /* Remember where we are linking; the session itself comes at completion. */
    if (lwc_device_set(d, LWC_SERVER, lwc_client_url(c)) != LW_OK ||
        lwc_device_set(d, LWC_ORIGIN, p.origin) != LW_OK || lwc_device_set(d, LWC_ROLE, "companion") != LW_OK)
        goto fail;
    *out = l;
    l = NULL;
    rc = LW_OK;
fail:
    lwc_json_wipe(answer, "token");
    json_decref(answer);
    json_decref(body);
    lwc_link_free(l);
    return rc;
}

const char *lwc_link_id(const lwc_link *l)
{
    return l->id;
}

const char *lwc_link_payload(const lwc_link *l)
{
    return l->payload;
}

const char *lwc_link_code(const lwc_link *l)
{
    return l->code;
}

long lwc_link_expires_in(const lwc_link *l)
{
    int64_t left = l->expires_at - lw_now_ms();
    return left > 0 ? (long)((left + 999) / 1000) : 0;
}

lwc_ws *lwc_link_ws_connect(lwc_device *d, lwc_link *l, int *err)
{
    lwc_client *c = lwc_device_client(d);
    lwc_ws *ws = lwc_ws_connect(c, l->token, err);
    if (ws == NULL)
        lwc_device_take_error(d, c);
    return ws;
}

int lwc_link_poll(lwc_device *d, lwc_link *l, json_t **response)
{
    *response = NULL;
    lwc_client *c = lwc_device_client(d);
    char path[256];
    int n = snprintf(path, sizeof(path), "/v1/link-requests/%s", l->id);
    if (n < 0 || (size_t)n >= sizeof(path))
        return LW_EINVAL;
    long status = 0;
    json_t *answer = NULL;
    int rc = lwc_request_bearer(c, "GET", path, l->token, NULL, &status, &answer);
    lwc_device_take_error(d, c);
    if (rc != LW_OK)
        return LW_EIO;
    if ((rc = lwc_status_to_err(status, lwc_device_error(d)->code)) != LW_OK) {
        json_decref(answer);
        return rc;
    }
    set_expiry(l, answer);
    *response = answer;
    return LW_OK;
}

int lwc_link_complete(lwc_device *d, lwc_link *l)
{
    lwc_client *c = lwc_device_client(d);
    lwc_error *err = lwc_device_err(d);
    char sig[LWC_SIG_B64_LEN + 1], path[256];
    if (lwc_sign_link(lwc_device_sk(d), l->id, l->nonce, sig) != LW_OK ||
        scan_path(path, sizeof(path), l->id, "complete") != LW_OK) {
        lwc_err_set(err, 0, "bad_response", "the server's link nonce is not valid");
        return LW_EIO;
    }
    json_t *body = json_pack("{ss}", "signature", sig);
    json_t *answer = NULL;
    long status = 0;
    if (body == NULL)
        return LW_ENOMEM;
    int rc = lwc_request_bearer(c, "POST", path, l->token, body, &status, &answer);
    json_decref(body);
    lwc_device_take_error(d, c);
    if (rc != LW_OK) {
        rc = LW_EIO;
        goto done;
    }
    if ((rc = lwc_status_to_err(status, err->code)) != LW_OK)
        goto done;
    const char *device = lwc_json_str(answer, "device_id"), *account = lwc_json_str(answer, "account_id");
    const char *token = lwc_json_str(answer, "token"), *challenge = lwc_json_str(answer, "challenge");
    json_t *exp = json_object_get(answer, "token_expires_in");
    if (!lwc_id_ok(device) || token[0] == '\0' || challenge[0] == '\0') {
        lwc_err_set(err, status, "bad_response", "the server's answer to the completion is incomplete");
        rc = LW_EIO;
        goto done;
    }
    lwc_device_forget_session(d);
    if ((rc = lwc_device_set(d, LWC_DEVICE_ID, device)) != LW_OK ||
        (rc = lwc_device_set(d, LWC_ACCOUNT_ID, account[0] ? account : NULL)) != LW_OK ||
        (rc = lwc_device_set(d, LWC_HANDLE,
                             lwc_json_str(answer, "handle")[0] ? lwc_json_str(answer, "handle") : NULL)) !=
            LW_OK ||
        (rc = lwc_device_set_session(d, token, challenge,
                                     json_is_integer(exp) ? (long)json_integer_value(exp) : 0)) != LW_OK)
        goto done;
    rc = lwc_device_save(d);
done:
    lwc_json_wipe(answer, "token");
    json_decref(answer);
    return rc;
}
