/* The recovery key and the replacement of a primary (recovery.h). */
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "alert.h"
#include "log.h"
#include "lw.h"
#include "recovery.h"
#include "session.h"

static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* Domain separation: the same hash key also keys credential, code and PIN hashes. */
#define RECOVERY_TAG "linkward-recovery-v1"

void lw_recovery_format(const uint8_t raw[LW_RECOVERY_KEY_LEN], char text[LW_RECOVERY_TEXT_MAX])
{
    size_t o = 0;
    int letters = 0;
    /* 160 bits are exactly 32 letters of 5 bits: no padding. */
    for (int bit = 0; bit < LW_RECOVERY_KEY_LEN * 8; bit += 5) {
        unsigned v = 0;
        for (int k = 0; k < 5; k++) {
            int b = bit + k;
            v = (v << 1) | ((raw[b / 8] >> (7 - b % 8)) & 1u);
        }
        if (letters > 0 && letters % LW_RECOVERY_GROUP == 0)
            text[o++] = '-';
        text[o++] = b32[v];
        letters++;
    }
    text[o] = '\0';
}

void lw_recovery_generate(uint8_t raw[LW_RECOVERY_KEY_LEN], char text[LW_RECOVERY_TEXT_MAX])
{
    randombytes_buf(raw, LW_RECOVERY_KEY_LEN);
    lw_recovery_format(raw, text);
}

static int letter_value(char c)
{
    if (c >= 'a' && c <= 'z')
        c = (char)(c - 'a' + 'A');
    if (c == '0')
        c = 'O';
    if (c == '1')
        c = 'I';
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= '2' && c <= '7')
        return 26 + (c - '2');
    return -1;
}

int lw_recovery_parse(const char *in, uint8_t raw[LW_RECOVERY_KEY_LEN])
{
    if (in == NULL || strlen(in) >= LW_RECOVERY_INPUT_MAX)
        return LW_EINVAL;
    uint8_t out[LW_RECOVERY_KEY_LEN];
    memset(out, 0, sizeof out);
    int bit = 0;
    for (const char *p = in; *p; p++) {
        if (*p == ' ' || *p == '-')
            continue;
        int v = letter_value(*p);
        if (v < 0 || bit >= LW_RECOVERY_KEY_LEN * 8) {
            lw_wipe(out, sizeof out);
            return LW_EINVAL;
        }
        for (int k = 4; k >= 0; k--, bit++)
            if ((v >> k) & 1)
                out[bit / 8] |= (uint8_t)(1u << (7 - bit % 8));
    }
    if (bit != LW_RECOVERY_KEY_LEN * 8) {
        lw_wipe(out, sizeof out);
        return LW_EINVAL;
    }
    memcpy(raw, out, sizeof out);
    lw_wipe(out, sizeof out);
    return LW_OK;
}

void lw_recovery_hash(const uint8_t key[LW_KEY_LEN], const char *account_id,
                      const uint8_t raw[LW_RECOVERY_KEY_LEN], char out[LW_RECOVERY_HASH_MAX])
{
    uint8_t msg[sizeof RECOVERY_TAG + LW_ID_STRLEN + LW_RECOVERY_KEY_LEN];
    size_t tag = sizeof RECOVERY_TAG; /* with its NUL: the tag ends unambiguously */
    size_t id = strnlen(account_id, LW_ID_STRLEN - 1);
    memcpy(msg, RECOVERY_TAG, tag);
    memcpy(msg + tag, account_id, id);
    msg[tag + id] = 0;
    memcpy(msg + tag + id + 1, raw, LW_RECOVERY_KEY_LEN);
    uint8_t h[LW_HASH_LEN];
    lw_keyed_hash(h, key, msg, tag + id + 1 + LW_RECOVERY_KEY_LEN);
    lw_hex_encode(out, h, sizeof h);
    out[2 * LW_HASH_LEN] = '\0';
    lw_wipe(msg, sizeof msg);
    lw_wipe(h, sizeof h);
}

bool lw_recovery_check(const uint8_t key[LW_KEY_LEN], const char *account_id,
                       const uint8_t raw[LW_RECOVERY_KEY_LEN], const char *stored)
{
    char got[LW_RECOVERY_HASH_MAX];
    lw_recovery_hash(key, account_id, raw, got);
    /* An empty verifier is compared against a verifier-sized run of zeros,
     * so "no key" costs what "wrong key" does. */
    char want[LW_RECOVERY_HASH_MAX];
    memset(want, 0, sizeof want);
    bool have = strlen(stored) == 2 * LW_HASH_LEN;
    if (have)
        memcpy(want, stored, 2 * LW_HASH_LEN);
    bool same = sodium_memcmp(got, want, 2 * LW_HASH_LEN) == 0;
    lw_wipe(got, sizeof got);
    return have && same;
}

/* The devices that ended in a transaction of our own hear it now. */
static void tell(const lw_domain_deps *deps, lw_ended *list, size_t n)
{
    if (deps->sessions) {
        lw_end_request told = {.scope = LW_END_TOLD, .told = list, .ntold = n};
        lw_sessions_end_where(deps->sessions, &told, NULL);
    }
    lw_free(list);
}

int lw_recovery_claim(const lw_domain_deps *deps, const char *transfer_id, const lw_session *primary,
                      size_t *ended)
{
    lw_ended *list = NULL;
    size_t n = 0;
    int rc = lw_store_transfer_claim(deps->store, transfer_id, primary, LW_END_MOVED, lw_now_ms(), &list, &n);
    if (rc != LW_OK) {
        if (rc != LW_ECONFLICT && rc != LW_ENOTFOUND)
            lw_log_error("recovery", "cannot complete transfer %.8s: %s", transfer_id, lw_strerror(rc));
        return rc;
    }
    tell(deps, list, n);
    if (ended)
        *ended = n;
    lw_log_info("recovery", "account %.8s moved to a new phone %.8s", primary->account_id, primary->id);
    (void)lw_alert_raise(deps, primary->account_id, "account.moved", primary->id,
                         "Your account moved to a new phone; the old phone was logged out.",
                         json_pack("{s:s, s:I}", "reason", LW_END_MOVED, "ended", (json_int_t)n));
    return LW_OK;
}

int lw_recovery_replace(const lw_domain_deps *deps, const char *account_id, const char *role,
                        const char *reason, const lw_session *primary, const char *new_hash,
                        const char *alert_text, size_t *ended)
{
    lw_ended *list = NULL;
    size_t n = 0;
    int rc = lw_store_account_replace_primary(deps->store, account_id, role, reason, lw_now_ms(), primary,
                                              new_hash, &list, &n);
    if (rc != LW_OK) {
        if (rc != LW_ENOTFOUND)
            lw_log_error("recovery", "cannot replace the primary of account %.8s: %s", account_id,
                         lw_strerror(rc));
        return rc;
    }
    tell(deps, list, n);
    if (ended)
        *ended = n;
    lw_log_info("recovery", "account %.8s has a new primary %.8s (%s); %zu session(s) ended", account_id,
                primary->id, reason, n);
    if (alert_text)
        (void)lw_alert_raise(deps, account_id, "account.recovered", primary->id, alert_text,
                             json_pack("{s:s, s:I}", "reason", reason, "ended", (json_int_t)n));
    return LW_OK;
}
