/*
 * code.h — the 8-character pairing code, the alternative to scanning.
 *
 * Crockford base32 (0-9, A-Z without I, L, O, U): 8 symbols = 40 bits, shown
 * as "XXXX-XXXX". Parsing is forgiving about what people type: case, spaces
 * and hyphens are ignored, and the look-alikes O->0, I/L->1 are mapped.
 */
#ifndef LW_CODE_H
#define LW_CODE_H

#include <stddef.h>

#define LW_CODE_SYMBOLS 8
#define LW_CODE_STRLEN 10 /* "XXXX-XXXX" + NUL */

/* A new random code in display form. */
void lw_code_new(char dst[LW_CODE_STRLEN]);
/* Normalises typed input into display form; LW_EINVAL if it is not exactly 8
 * valid symbols (after removing spaces/hyphens). */
int lw_code_normalize(const char *in, size_t len, char dst[LW_CODE_STRLEN]);

#endif
