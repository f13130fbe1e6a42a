/*
 * code.c — Crockford base32 pairing codes.
 */
#include "code.h"

#include <stdint.h>

#include "crypto.h"
#include "lw.h"

static const char code_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

void lw_code_new(char dst[LW_CODE_STRLEN])
{
    uint8_t raw[5];
    lw_random(raw, sizeof raw);
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof raw; i++)
        v = v << 8 | raw[i];
    size_t o = 0;
    for (int i = LW_CODE_SYMBOLS - 1; i >= 0; i--) {
        if (o == 4)
            dst[o++] = '-';
        dst[o++] = code_alphabet[(v >> (5 * i)) & 31];
    }
    dst[o] = '\0';
    lw_wipe(raw, sizeof raw);
}

/* The canonical symbol for a typed character, or 0 if it is not one. */
static char code_symbol(unsigned char c)
{
    if (c >= 'a' && c <= 'z')
        c = (unsigned char)(c - 'a' + 'A');
    if (c == 'O')
        return '0';
    if (c == 'I' || c == 'L')
        return '1';
    if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z' && c != 'U'))
        return (char)c;
    return 0;
}

int lw_code_normalize(const char *in, size_t len, char dst[LW_CODE_STRLEN])
{
    char sym[LW_CODE_SYMBOLS];
    size_t n = 0;
    if (in == NULL)
        goto fail;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == ' ' || c == '-')
            continue;
        char s = code_symbol(c);
        if (s == 0 || n == LW_CODE_SYMBOLS)
            goto fail;
        sym[n++] = s;
    }
    if (n != LW_CODE_SYMBOLS)
        goto fail;
    for (size_t i = 0, o = 0; i < LW_CODE_SYMBOLS; i++) {
        if (i == 4)
            dst[o++] = '-';
        dst[o++] = sym[i];
    }
    dst[LW_CODE_STRLEN - 1] = '\0';
    return LW_OK;
fail:
    dst[0] = '\0';
    return LW_EINVAL;
}
