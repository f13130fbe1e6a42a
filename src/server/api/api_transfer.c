/* "Move to a new phone" (docs/security.md): the new phone opens a transfer
 * with its new primary key and shows a code (and a QR of it); the old
 * primary types or scans it and approves (PIN when set); the new phone
 * claims the account with its transfer token, and then the old primary ends
 * ("moved") while companions stay linked; the new phone re-signs their keys
 * (POST /v1/devices/signatures). */
#include <h2o.h>
#include <sodium.h>
#include <string.h>

#include "api.h"
#include "log.h"
#include "lw.h"
#include "metrics.h"
#include "pin.h"
#include "place.h"
#include "proof.h"
#include "qr.h"
#include "recovery.h"
#include "session.h"

#define TRANSFER_TTL_MS (5 * 60 * 1000)
#define CODE_LETTERS 12 /* 60 bits of base32, in 3 groups of 4 */
#define CODE_TEXT_MAX (CODE_LETTERS + 3)
#define CODE_INPUT_MAX 40
#define TOKEN_BYTES 32
#define TOKEN_PREFIX "lwt_"
#define TOKEN_TEXT_MAX (sizeof TOKEN_PREFIX - 1 + 44)
/* Signatures one re-signing request may carry: every companion an account may have. */
#define SIGNATURES_MAX 1000

static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static void code_hash(const lw_server *app, const char letters[CODE_LETTERS], uint8_t out[LW_HASH_LEN])
{
    uint8_t msg[32 + CODE_LETTERS];
    static const char tag[] = "linkward-transfer-code-v1";
    memcpy(msg, tag, sizeof tag);
    memcpy(msg + sizeof tag, letters, CODE_LETTERS);
    lw_keyed_hash(out, app->hash_key, msg, sizeof tag + CODE_LETTERS);
}

static void token_hash(const lw_server *app, const uint8_t raw[TOKEN_BYTES], uint8_t out[LW_HASH_LEN])
{
    uint8_t msg[32 + TOKEN_BYTES];
    static const char tag[] = "linkward-transfer-token-v1";
    memcpy(msg, tag, sizeof tag);
    memcpy(msg + sizeof tag, raw, TOKEN_BYTES);
    lw_keyed_hash(out, app->hash_key, msg, sizeof tag + TOKEN_BYTES);
    lw_wipe(msg, sizeof msg);
}

/* The letters of a typed code: either case, spaces and dashes anywhere, 0
 * read as O and 1 as I. False unless exactly CODE_LETTERS remain. */
static bool code_parse(const char *in, char out[CODE_LETTERS])
{
    size_t n = 0;
    for (const char *p = in; *p; p++) {
        char c = *p;
        if (c == ' ' || c == '-')
            continue;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (c == '0')
            c = 'O';
        if (c == '1')
            c = 'I';
        if (!((c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7')) || n == CODE_LETTERS)
            return false;
        out[n++] = c;
    }
    return n == CODE_LETTERS;
}

/* ---- POST /v1/transfers (the new phone) ---- */

void lw_api_transfer_create(lw_rq *rq)
{
    lw_server *app = rq->app;
    if (lw_api_rate_limited(rq, &app->cfg.rate_link, "ip", rq->ip, NULL))
        return;
    lw_transfer t;
    memset(&t, 0, sizeof t);
    if (lw_body_b64(rq, "public_key", true, t.public_key, LW_PK_LEN, NULL) != LW_OK)
        return;
    char letters[CODE_LETTERS], shown[CODE_TEXT_MAX];
    size_t o = 0;
    for (int i = 0; i < CODE_LETTERS; i++) {
        letters[i] = b32[randombytes_uniform(32)];
        if (i > 0 && i % 4 == 0)
            shown[o++] = '-';
        shown[o++] = letters[i];
    }
    shown[o] = '\0';
    uint8_t raw[TOKEN_BYTES];
    randombytes_buf(raw, sizeof raw);
    char token[TOKEN_TEXT_MAX + 1];
    memcpy(token, TOKEN_PREFIX, sizeof TOKEN_PREFIX - 1);
    lw_b64_encode(token + sizeof TOKEN_PREFIX - 1, raw, sizeof raw);
    lw_random_id(t.id);
    code_hash(app, letters, t.code_hash);
    token_hash(app, raw, t.token_hash);
    lw_wipe(raw, sizeof raw);
    lw_strlcpy(t.state, "pending", sizeof t.state);
    t.created_at = lw_now_ms();
    t.expires_at = t.created_at + TRANSFER_TTL_MS;
    int rc = lw_store_transfer_insert(app->store, &t);
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "opening a transfer");
        goto out;
    }
    char payload[sizeof "lwmove1:" + CODE_TEXT_MAX];
    snprintf(payload, sizeof payload, "lwmove1:%s", shown);
    char *svg = lw_qr_svg(payload);
    if (!svg) {
        lw_reply_error(rq, 503, "unavailable", "Out of memory.");
        goto out;
    }
    lw_reply_json(rq, 201,
                  json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "id", t.id, "token", token, "code", shown,
                            "payload", payload, "qr_svg", svg, "expires_in",
                            (json_int_t)lw_api_secs(TRANSFER_TTL_MS)));
    lw_free(svg);
out:
    lw_wipe(token, sizeof token);
    lw_wipe(letters, sizeof letters);
    lw_wipe(shown, sizeof shown);
}

/* ---- POST /v1/transfers/approve (the old phone) ---- */

typedef struct approve_op {
    lw_api_pin_op base; /* first: the PIN job hands back &base */
    lw_transfer t;
} approve_op;

static void approve_now(lw_server *app, lw_rq *rq, const char *account_id, const lw_transfer *t)
{
    int rc = lw_store_transfer_approve(app->store, t->id, account_id, lw_now_ms());
    if (rc == LW_ECONFLICT || rc == LW_ENOTFOUND) {
        if (rq)
            lw_reply_error(rq, 409, "conflict", "This transfer was approved already or has expired.");
        return;
    }
    if (rc != LW_OK) {
        if (rq)
            lw_api_store_failed(rq, rc, "approving the transfer");
        return;
    }
    lw_log_info("recovery", "account %.8s approved transfer %.8s", account_id, t->id);
    if (!rq)
        return;
    char fp[2 * 32 + 1];
    uint8_t h[32];
    crypto_generichash(h, sizeof h, t->public_key, LW_PK_LEN, NULL, 0);
    lw_hex_encode(fp, h, sizeof h);
    fp[64] = '\0';
    lw_reply_json(rq, 200,
                  json_pack("{s:s, s:s, s:s}", "id", t->id, "state", "approved", "key_fingerprint", fp));
}

static void approve_pin_right(lw_api_pin_op *b)
{
    approve_op *op = (approve_op *)b; /* base is its first member */
    approve_now(b->app, b->rq, b->account_id, &op->t);
}

void lw_api_transfer_approve(lw_rq *rq)
{
    lw_server *app = rq->app;
    const char *code_in, *pin;
    char letters[CODE_LETTERS];
    if (lw_body_str(rq, "code", true, CODE_INPUT_MAX, &code_in) != LW_OK ||
        lw_body_str(rq, "pin", false, 16, &pin) != LW_OK)
        return;
    if (!code_parse(code_in, letters)) {
        lw_reply_error(rq, 400, "invalid_request",
                       "The field \"code\" must be the 12 letters and digits (A-Z, 2-7) the new phone shows, "
                       "in groups or not.");
        return;
    }
    if (pin && !lw_pin_valid(pin)) {
        lw_reply_error(rq, 400, "invalid_request", "The field \"pin\" must be exactly 6 digits.");
        return;
    }
    if (lw_api_rate_limited(rq, &app->cfg.rate_code, "ip", rq->ip, NULL) ||
        lw_api_rate_limited(rq, &app->cfg.rate_code, "acct", rq->who.account_id, rq->who.account_id))
        return;
    lw_transfer t;
    uint8_t h[LW_HASH_LEN];
    code_hash(app, letters, h);
    int rc = lw_store_transfer_get_by_code(app->store, h, &t);
    if (rc == LW_OK && (strcmp(t.state, "pending") != 0 || t.expires_at <= lw_now_ms()))
        rc = LW_ENOTFOUND;
    if (rc == LW_ENOTFOUND) {
        lw_reply_error(
            rq, 404, "not_found",
            "No transfer waits with this code: check it, or open \"Move to a new phone\" on the new "
            "phone again (a code lasts 5 minutes).");
        return;
    }
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "finding the transfer");
        return;
    }
    lw_account a;
    if ((rc = lw_store_account_get(app->store, rq->who.account_id, &a)) != LW_OK) {
        lw_api_store_failed(rq, rc, "loading the account");
        return;
    }
    approve_op *op = NULL;
    if (a.pin_hash[0] == '\0') {
        approve_now(app, rq, a.id, &t);
        goto out;
    }
    if (!(op = lw_calloc(1, sizeof *op))) {
        lw_reply_error(rq, 503, "unavailable", "Out of memory.");
        goto out;
    }
    op->t = t;
    if (!lw_api_pin_gate(rq, &a, pin, "Enter your two-step PIN to move the account to a new phone.",
                         &op->base, approve_pin_right))
        lw_free(op);
out:
    lw_wipe(&a, sizeof a);
}

/* ---- POST /v1/transfers/{id}/claim (the new phone) ---- */

void lw_api_transfer_claim(lw_rq *rq)
{
    lw_server *app = rq->app;
    const char *token_in;
    struct lw_client_desc d;
    if (lw_body_str(rq, "token", true, TOKEN_TEXT_MAX, &token_in) != LW_OK ||
        lw_api_client_desc(rq, &d) != LW_OK)
        return;
    uint8_t raw[TOKEN_BYTES], h[LW_HASH_LEN];
    size_t plen = sizeof TOKEN_PREFIX - 1;
    if (strncmp(token_in, TOKEN_PREFIX, plen) != 0 ||
        lw_b64_decode(raw, sizeof raw, token_in + plen, strlen(token_in + plen), sizeof raw) != TOKEN_BYTES) {
        lw_reply_error(rq, 400, "invalid_request",
                       "The field \"token\" must be the transfer token (lwt_ and 43 base64url characters).");
        return;
    }
    token_hash(app, raw, h);
    lw_wipe(raw, sizeof raw);
    lw_transfer t;
    int rc = lw_store_transfer_get(app->store, rq->param, &t);
    if (rc == LW_OK && sodium_memcmp(h, t.token_hash, LW_HASH_LEN) != 0)
        rc = LW_ENOTFOUND; /* the id is no secret; the token is */
    if (rc == LW_ENOTFOUND) {
        lw_reply_error(rq, 404, "not_found", "No such transfer for this token.");
        return;
    }
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "loading the transfer");
        return;
    }
    int64_t now = lw_now_ms();
    if (strcmp(t.state, "claimed") == 0) {
        lw_reply_error(rq, 409, "conflict", "This transfer was completed already.");
        return;
    }
    if (t.expires_at <= now) {
        lw_reply_error(rq, 410, "expired", "This transfer expired; start \"Move to a new phone\" again.");
        return;
    }
    if (strcmp(t.state, "pending") == 0) {
        lw_reply_json(rq, 202,
                      json_pack("{s:s, s:s, s:I}", "id", t.id, "state", "pending", "expires_in",
                                (json_int_t)lw_api_secs(t.expires_at - now)));
        return;
    }
    lw_session *s = lw_calloc(1, sizeof *s);
    if (!s) {
        lw_reply_error(rq, 503, "unavailable", "Out of memory.");
        return;
    }
    lw_random_id(s->id);
    lw_strlcpy(s->account_id, t.account_id, sizeof s->account_id);
    lw_strlcpy(s->role, LW_ROLE_PRIMARY, sizeof s->role);
    lw_strlcpy(s->name, d.name, sizeof s->name);
    s->client = d.client;
    memcpy(s->public_key, t.public_key, LW_PK_LEN);
    lw_place where;
    lw_api_place_lookup(rq, &where, NULL);
    lw_place_seen_first(&where, s);
    s->linked_at = now;
    s->last_active_at = now;
    lw_strlcpy(s->state, "active", sizeof s->state);
    s->persistent = true;
    char token[LW_CRED_STRLEN];
    memset(token, 0, sizeof token);
    uint64_t epoch = lw_sessions_epoch(app->sessions);
    size_t ended = 0;
    rc = lw_sessions_prepare(app->sessions, s, token);
    if (rc == LW_OK)
        rc = lw_recovery_claim(&app->domain, t.id, s, &ended);
    if (rc == LW_ECONFLICT) {
        lw_reply_error(rq, 409, "conflict", "This transfer was completed already or has expired.");
        goto out;
    }
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "completing the transfer");
        goto out;
    }
    lw_sessions_cache(app->sessions, s, epoch);
    lw_account a;
    if (lw_store_account_get(app->store, t.account_id, &a) != LW_OK)
        memset(&a, 0, sizeof a);
    char pk[lw_b64_enc_len(LW_PK_LEN)], challenge[lw_b64_enc_len(32)];
    lw_b64_encode(pk, app->server_pk, LW_PK_LEN);
    lw_b64_encode(challenge, s->challenge, sizeof s->challenge);
    lw_metrics_inc("linkward_transfers_total", NULL);
    lw_reply_json(rq, 200,
                  json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:I}", "account_id", t.account_id,
                            "device_id", s->id, "handle", a.handle, "token", token, "token_expires_in",
                            (json_int_t)lw_api_secs(s->cred_expires_at - lw_now_ms()), "challenge", challenge,
                            "server_key", pk, "origin", app->cfg.public_origin, "ended", (json_int_t)ended));
    lw_wipe(&a, sizeof a);
out:
    lw_wipe(token, sizeof token);
    lw_wipe(s, sizeof *s);
    lw_free(s);
}

/* ---- POST /v1/devices/signatures (the new primary re-signs) ---- */

void lw_api_devices_resign(lw_rq *rq)
{
    lw_server *app = rq->app;
    json_t *list = rq->body ? json_object_get(rq->body, "signatures") : NULL;
    if (!json_is_array(list) || json_array_size(list) == 0 || json_array_size(list) > SIGNATURES_MAX) {
        lw_reply_error(rq, 400, "invalid_request",
                       "The field \"signatures\" must be an array of 1 to %d {device_id, account_signature}.",
                       SIGNATURES_MAX);
        return;
    }
    lw_session me;
    int rc = lw_store_session_get(app->store, rq->who.device_id, &me);
    if (rc != LW_OK) {
        lw_api_store_failed(rq, rc, "loading this device");
        return;
    }
    size_t i, n = json_array_size(list), stored = 0;
    for (i = 0; i < n; i++) {
        json_t *e = json_array_get(list, i);
        const char *dev = json_string_value(json_object_get(e, "device_id"));
        const char *sig_b64 = json_string_value(json_object_get(e, "account_signature"));
        uint8_t sig[LW_SIG_LEN];
        if (!json_is_object(e) || !dev || strlen(dev) >= LW_ID_STRLEN || !sig_b64 ||
            lw_b64_decode(sig, sizeof sig, sig_b64, strlen(sig_b64), sizeof sig) != LW_SIG_LEN) {
            lw_reply_error(rq, 400, "invalid_request",
                           "signatures[%zu] must be {device_id: a device id, account_signature: 64 bytes of "
                           "base64url}.",
                           i);
            return;
        }
        lw_session c;
        rc = lw_store_session_get(app->store, dev, &c);
        if (rc == LW_OK && (strcmp(c.account_id, rq->who.account_id) != 0 ||
                            strcmp(c.role, LW_ROLE_COMPANION) != 0 || strcmp(c.state, "active") != 0))
            rc = LW_ENOTFOUND;
        if (rc == LW_ENOTFOUND) {
            lw_reply_error(rq, 404, "not_found",
                           "signatures[%zu]: no linked companion of this account has this id.", i);
            return;
        }
        if (rc != LW_OK) {
            lw_api_store_failed(rq, rc, "loading a companion");
            return;
        }
        /* The signature must be this primary's, over that companion's key. */
        if (lw_proof_verify(sig, LW_PROOF_ACCOUNT, rq->who.account_id, c.public_key, LW_PK_LEN,
                            me.public_key) != LW_OK) {
            lw_reply_error(rq, 400, "invalid_signature",
                           "signatures[%zu] is not this phone's account signature over that device's key.",
                           i);
            return;
        }
        rc = lw_store_session_set_account_sig(app->store, rq->who.account_id, dev, sig);
        if (rc != LW_OK && rc != LW_ENOTFOUND) {
            lw_api_store_failed(rq, rc, "storing an account signature");
            return;
        }
        stored += rc == LW_OK;
    }
    lw_sessions_invalidate_account_views(app->sessions, rq->who.account_id);
    lw_reply_json(rq, 200, json_pack("{s:I}", "signed", (json_int_t)stored));
}
