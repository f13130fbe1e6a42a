/*
 * fuzz_code.c — the pairing code a person types (lw_code_normalize).
 *
 * Oracles: the answer matches a straightforward model of code.h's rules
 * (ignore spaces and hyphens, any case, O->0, I/L->1, Crockford symbols only,
 * exactly 8), normalising is idempotent, and a refusal leaves "".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "code.h"
#include "fuzz.h"
#include "lw.h"

static void fail(const char *what, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_code: %s for input '%.*s'\n", what, (int)size, (const char *)data);
    abort();
}

/* The model: the 8 symbols, or false. */
static bool model(const uint8_t *in, size_t len, char sym[8])
{
    static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int c = in[i];
        if (c == ' ' || c == '-')
            continue;
        if (c >= 'a' && c <= 'z')
            c -= 'a' - 'A';
        c = c == 'O' ? '0' : c == 'I' || c == 'L' ? '1' : c;
        if (c == 0 || !memchr(alphabet, c, sizeof alphabet - 1) || n == 8)
            return false;
        sym[n++] = (char)c;
    }
    return n == 8;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[LW_CODE_STRLEN], sym[8];
    int rc = lw_code_normalize((const char *)data, size, out);
    bool want = model(data, size, sym);
    if ((rc == LW_OK) != want)
        fail(want ? "a valid code was refused" : "an invalid code was accepted", data, size);
    if (rc != LW_OK) {
        if (out[0] != '\0')
            fail("a refused code left output", data, size);
        return 0;
    }
    if (strlen(out) != LW_CODE_STRLEN - 1 || out[4] != '-' || memcmp(out, sym, 4) != 0 ||
        memcmp(out + 5, sym + 4, 4) != 0)
        fail("the display form is not XXXX-XXXX of the symbols", data, size);
    char again[LW_CODE_STRLEN];
    if (lw_code_normalize(out, strlen(out), again) != LW_OK || strcmp(again, out) != 0)
        fail("normalising is not idempotent", data, size);
    return 0;
}
