/*
 * fuzz_payload.c — the signed QR payload a primary scans (lw_payload_parse,
 * lw_payload_verify): text from a camera, so anyone's.
 *
 * Oracles: whatever parses can be signed again (lw_payload_make accepts every
 * origin the parser accepts) and that re-signed payload parses to the same
 * fields and verifies; an input that verifies under the harness key is
 * byte for byte what lw_payload_make produces (Ed25519 is deterministic and
 * base64url canonical: a signed payload has no second spelling). The seeds
 * are signed with the harness key (fixed seed below), so the verifying path
 * is exercised, not only the rejecting one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fuzz.h"
#include "lw.h"
#include "payload.h"

static uint8_t pk[LW_PK_LEN], sk[LW_SK_LEN];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (lw_crypto_init() != LW_OK)
        abort();
    uint8_t seed[crypto_sign_SEEDBYTES];
    memset(seed, 0x5e, sizeof seed); /* fuzz/corpus/payload/ is signed with this key */
    crypto_sign_seed_keypair(pk, sk, seed);
    return 0;
}

static void fail(const char *what, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_payload: %s for input '%.*s'\n", what, (int)size, (const char *)data);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lw_payload p;
    if (lw_payload_parse(&p, (const char *)data, size) != LW_OK)
        return 0;
    if (strnlen(p.origin, sizeof p.origin) >= sizeof p.origin)
        fail("the parsed origin is not terminated", data, size);
    bool verified = lw_payload_verify(&p, pk) == LW_OK;

    char again[LW_PAYLOAD_MAX];
    if (lw_payload_make(again, sizeof again, p.origin, p.ref, p.fp, sk) != LW_OK)
        fail("a parsed payload cannot be made again", data, size);
    if (verified && (strlen(again) != size || memcmp(again, data, size) != 0))
        fail("a verified payload differs from the one the server makes", data, size);
    lw_payload q;
    if (lw_payload_parse(&q, again, strlen(again)) != LW_OK)
        fail("a made payload does not parse", data, size);
    if (strcmp(q.origin, p.origin) != 0 || memcmp(q.ref, p.ref, sizeof q.ref) != 0 ||
        memcmp(q.fp, p.fp, sizeof q.fp) != 0)
        fail("a made payload parses to other fields", data, size);
    if (lw_payload_verify(&q, pk) != LW_OK)
        fail("a made payload does not verify", data, size);
    return 0;
}
