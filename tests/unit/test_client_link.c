/* Unit tests for src/client/link.c: the primary checks the account
 * signature of each device the server lists (PRODUCT.md §2.5). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"
#include "linkward/client.h"
#include "lw.h"

#define ACCOUNT "AAAAAAAAAAAAAAAAAAAAAA"
#define OTHER_ACCOUNT "BBBBBBBBBBBBBBBBBBBBBA"

typedef struct fixture {
    uint8_t phone_pk[LW_PK_LEN], phone_sk[LW_SK_LEN];
    uint8_t other_pk[LW_PK_LEN], other_sk[LW_SK_LEN];
    uint8_t comp_pk[LW_PK_LEN], comp_sk[LW_SK_LEN];
} fixture;

static int setup(void **state)
{
    static fixture f;
    if (lw_crypto_init() != LW_OK || lw_sign_keypair(f.phone_pk, f.phone_sk) != LW_OK ||
        lw_sign_keypair(f.other_pk, f.other_sk) != LW_OK || lw_sign_keypair(f.comp_pk, f.comp_sk) != LW_OK)
        return -1;
    *state = &f;
    return 0;
}

/* A companion record as lw_record_json shows it: the key, its hex
 * fingerprint, and the signature signer_sk made over it for account. */
static json_t *companion_record(const uint8_t pk[LW_PK_LEN], const uint8_t signer_sk[LW_SK_LEN],
                                const char *account)
{
    char pk_b64[lw_b64_enc_len(LW_PK_LEN)], sig[LWC_SIG_B64_LEN + 1], fphex[2 * LW_FP_LEN + 1];
    uint8_t fp[LW_FP_LEN];
    lw_b64_encode(pk_b64, pk, LW_PK_LEN);
    lw_fingerprint(fp, pk);
    lw_hex_encode(fphex, fp, sizeof fp);
    assert_int_equal(lwc_sign_account(signer_sk, account, pk_b64, sig), LW_OK);
    json_t *r = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", "CCCCCCCCCCCCCCCCCCCCCA", "role", "companion",
                          "public_key", pk_b64, "key_fingerprint", fphex, "account_signature", sig);
    assert_non_null(r);
    return r;
}

static void test_good_signature(void **state)
{
    fixture *f = *state;
    json_t *r = companion_record(f->comp_pk, f->phone_sk, ACCOUNT);
    assert_int_equal(lwc_verify_account(f->phone_sk, ACCOUNT, r), LW_OK);
    json_decref(r);
}

static void test_wrong_account(void **state)
{
    fixture *f = *state;
    /* Signed by this phone, but for another account: not an approval here. */
    json_t *r = companion_record(f->comp_pk, f->phone_sk, OTHER_ACCOUNT);
    assert_int_equal(lwc_verify_account(f->phone_sk, ACCOUNT, r), LW_ECRYPTO);
    json_decref(r);
}

static void test_other_signer(void **state)
{
    fixture *f = *state;
    /* A valid signature, by a key that is not this phone's. */
    json_t *r = companion_record(f->comp_pk, f->other_sk, ACCOUNT);
    assert_int_equal(lwc_verify_account(f->phone_sk, ACCOUNT, r), LW_ECRYPTO);
    json_decref(r);
}

static void test_other_key(void **state)
{
    fixture *f = *state;
    /* The server swaps in another device key (with its fingerprint) under
     * a signature this phone made for the real one. */
    json_t *r = companion_record(f->comp_pk, f->phone_sk, ACCOUNT);
    json_t *swap = companion_record(f->other_pk, f->other_sk, ACCOUNT);
    json_object_set(r, "public_key", json_object_get(swap, "public_key"));
    json_object_set(r, "key_fingerprint", json_object_get(swap, "key_fingerprint"));
    assert_int_equal(lwc_verify_account(f->phone_sk, ACCOUNT, r), LW_ECRYPTO);
    json_decref(swap);
    json_decref(r);
}

static void test_tampered_fingerprint(void **state)
{
    fixture *f = *state;
    /* The signature is right but the fingerprint people compare is not the key's. */
    json_t *r = companion_record(f->comp_pk, f->phone_sk, ACCOUNT);
    char fp[2 * LW_FP_LEN + 1];
    assert_int_equal(lw_strlcpy(fp, json_string_value(json_object_get(r, "key_fingerprint")), sizeof fp),
                     LW_OK);
    fp[0] = fp[0] == '0' ? '1' : '0';
    json_object_set_new(r, "key_fingerprint", json_string(fp));
    assert_int_equal(lwc_verify_account(f->phone_sk, ACCOUNT, r), LW_ECRYPTO);
    json_decref(r);
}

static void test_malformed(void **state)
{
    fixture *f = *state;
    json_t *r = companion_record(f->comp_pk, f->phone_sk, ACCOUNT);
    json_object_set_new(r, "account_signature", json_null());
    assert_int_equal(lwc_verify_account(f->phone_sk, ACCOUNT, r), LW_EINVAL);
    char zero[LWC_SIG_B64_LEN + 1];
    uint8_t z[LW_SIG_LEN] = {0};
    lw_b64_encode(zero, z, sizeof z);
    json_object_set_new(r, "account_signature", json_string(zero));
    assert_int_not_equal(lwc_verify_account(f->phone_sk, ACCOUNT, r), LW_OK);
    json_object_del(r, "public_key");
    assert_int_equal(lwc_verify_account(f->phone_sk, ACCOUNT, r), LW_EINVAL);
    assert_int_equal(lwc_verify_account(f->phone_sk, ACCOUNT, NULL), LW_EINVAL);
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_signature),       cmocka_unit_test(test_wrong_account),
        cmocka_unit_test(test_other_signer),         cmocka_unit_test(test_other_key),
        cmocka_unit_test(test_tampered_fingerprint), cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
