/*
 * fuzz_cred.c — the credential parser (lw_cred_parse) and base64url
 * decoding (lw_b64_decode), which every token, key and signature a client
 * sends goes through. The cookie side of credentials (which cookie, the
 * __Host- prefix, several Cookie headers) is in router.c and reached through
 * fuzz_http's Cookie seeds.
 *
 * Oracle besides the sanitizers: both accept only canonical text, so what
 * parses must format back to exactly the input (a token has no aliases).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cred.h"
#include "fuzz.h"
#include "lw.h"

static void fail(const char *what, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_cred: %s for input '%.*s'\n", what, (int)size, (const char *)data);
    abort();
}

static void check_cred(const uint8_t *data, size_t size)
{
    lw_cred c;
    int rc = lw_cred_parse(&c, (const char *)data, size);
    if (rc != LW_OK) {
        if (rc != LW_EINVAL)
            fail("lw_cred_parse returned neither LW_OK nor LW_EINVAL", data, size);
        return;
    }
    char text[LW_CRED_STRLEN];
    lw_cred_format(&c, text);
    if (strlen(text) != size || memcmp(text, data, size) != 0)
        fail("a parsed credential does not format back to its input", data, size);
    if (c.kind != (memcmp(data, "lwl_", 4) == 0 ? LW_CRED_LINK : LW_CRED_SESSION))
        fail("the credential kind does not match its prefix", data, size);
    char sel[LW_ID_STRLEN];
    lw_cred_selector_str(&c, sel);
    if (memcmp(sel, data + 4, LW_ID_STRLEN - 1) != 0)
        fail("the selector string is not the input's", data, size);
    lw_cred_wipe(&c);
}

static void check_b64(const uint8_t *data, size_t size, size_t expect)
{
    size_t cap = size; /* decoded data is never longer than its text */
    uint8_t *out = malloc(cap ? cap : 1);
    if (!out)
        return;
    long n = lw_b64_decode(out, cap, (const char *)data, size, expect);
    if (n >= 0) {
        if (expect && (size_t)n != expect)
            fail("lw_b64_decode returned another length than expected", data, size);
        char *back = malloc(lw_b64_enc_len((size_t)n));
        if (back) {
            lw_b64_encode(back, out, (size_t)n);
            if (strlen(back) != size || memcmp(back, data, size) != 0)
                fail("base64url decodes to bytes that encode back to other text", data, size);
            free(back);
        }
    } else if (n != LW_EINVAL && n != LW_ETOOBIG) {
        fail("lw_b64_decode returned an unexpected code", data, size);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_cred(data, size);
    check_b64(data, size, 0);
    /* The lengths the server expects: ids, keys and hashes, signatures. */
    check_b64(data, size, 16);
    check_b64(data, size, 32);
    check_b64(data, size, 64);
    return 0;
}
