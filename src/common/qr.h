/*
 * qr.h — QR codes: encoding with libqrencode (SVG for browsers, PNG files and
 * terminal blocks for the CLI) and decoding with zbar (phone link --image).
 */
#ifndef LW_QR_H
#define LW_QR_H

#include <stddef.h>

/* An SVG document (malloc'd, caller frees with lw_free) of text as a QR code,
 * error correction M, with a 4-module quiet zone, scalable (viewBox, no fixed size). */
char *lw_qr_svg(const char *text);
/* Writes text as a PNG QR code (scale px per module, quiet zone 4) to path. LW_OK or code. */
int lw_qr_png_write(const char *text, const char *path, int scale);
/* The QR code as UTF-8 half-block text for a terminal (two modules rows per
 * line, dark on light, quiet zone 2). malloc'd; caller frees with lw_free. */
char *lw_qr_terminal(const char *text);
/* Decodes the first QR code found in a PNG file; *out is malloc'd text.
 * LW_ENOTFOUND if no QR code is in the image, LW_EIO if the file cannot be read. */
int lw_qr_png_decode(const char *path, char **out);

/* For tests: the modules of text's QR code as the functions above draw them
 * (width * width bytes, row by row, 1 = dark; lw_free it) and the mask
 * Linkward chose (0-7), or -1 when libqrencode chose it. NULL on failure. */
unsigned char *lw_qr_modules(const char *text, int *width, int *mask);

#endif
