/*
 * qr.c — QR codes out (SVG, PNG, terminal) with libqrencode, and in (PNG)
 * with libpng and zbar.
 */
#include "qr.h"

#include <png.h>
#include <qrencode.h>
#include <stdint.h>
#include <string.h>
#include <zbar.h>

#include "lw.h"

#define QR_TEXT_MAX 2048          /* longer than any payload we make; QR M tops out near 2331 bytes */
#define QR_QUIET 4                /* quiet zone of SVG and PNG, in modules */
#define QR_TERM_QUIET 2           /* quiet zone of terminal output */
#define QR_IMG_MAX 4096           /* largest PNG side we write or decode, in pixels */
#define QR_SCALE_MAX 64
#define QR_SVG_MAX (1024 * 1024)  /* worst case for version 40 is about 400 KB */
#define QR_TERM_MAX (256 * 1024)

/* Encodes text (NUL-terminated, bounded) or returns NULL. */
static QRcode *qr_encode(const char *text)
{
    if (text == NULL)
        return NULL;
    size_t n = strnlen(text, QR_TEXT_MAX + 1);
    if (n == 0 || n > QR_TEXT_MAX)
        return NULL;
    return QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
}

static int qr_dark(const QRcode *q, int x, int y)
{
    if (x < 0 || y < 0 || x >= q->width || y >= q->width)
        return 0;
    return q->data[(size_t)y * (size_t)q->width + (size_t)x] & 1;
}

/* Hands the buffer's storage to the caller as a C string (lw_free it). */
static char *buf_take(lw_buf *b)
{
    if (b->cap == 0)
        return lw_strdup(""); /* never allocated: data is the shared "" */
    char *s = b->data;
    lw_buf_init(b, b->max);
    return s;
}

/* "M<x> <y>h<run>v1h-<run>z" without printf: an SVG has hundreds of runs,
 * and formatting them was most of the cost of opening a link request. */
static char *put_int(char *p, int v)
{
    char tmp[12];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0 && n < (int)sizeof tmp);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

static int append_run(lw_buf *b, int x, int y, int run)
{
    char seg[64], *p = seg;
    *p++ = 'M';
    p = put_int(p, x);
    *p++ = ' ';
    p = put_int(p, y);
    *p++ = 'h';
    p = put_int(p, run);
    memcpy(p, "v1h-", 4);
    p += 4;
    p = put_int(p, run);
    *p++ = 'z';
    return lw_buf_append(b, seg, (size_t)(p - seg));
}

char *lw_qr_svg(const char *text)
{
    QRcode *q = qr_encode(text);
    if (q == NULL)
        return NULL;
    int side = q->width + 2 * QR_QUIET;
    lw_buf b;
    lw_buf_init(&b, QR_SVG_MAX);
    /* A white rect under the path keeps the code scannable on dark pages. */
    int rc = lw_buf_appendf(&b,
                            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
                            "shape-rendering=\"crispEdges\"><rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>"
                            "<path fill=\"#000\" d=\"",
                            side, side, side, side);
    /* One subpath per horizontal run of dark modules keeps the path short. */
    for (int y = 0; rc == LW_OK && y < q->width; y++) {
        for (int x = 0; rc == LW_OK && x < q->width;) {
            if (!qr_dark(q, x, y)) {
                x++;
                continue;
            }
            int run = 1;
            while (qr_dark(q, x + run, y))
                run++;
            rc = append_run(&b, x + QR_QUIET, y + QR_QUIET, run);
            x += run;
        }
    }
    if (rc == LW_OK)
        rc = lw_buf_appendf(&b, "\"/></svg>");
    QRcode_free(q);
    if (rc != LW_OK) {
        lw_buf_free(&b);
        return NULL;
    }
    return buf_take(&b);
}

int lw_qr_png_write(const char *text, const char *path, int scale)
{
    if (path == NULL || scale < 1 || scale > QR_SCALE_MAX)
        return LW_EINVAL;
    QRcode *q = qr_encode(text);
    if (q == NULL)
        return LW_EINVAL;
    int modules = q->width + 2 * QR_QUIET;
    if (modules > QR_IMG_MAX / scale) {
        QRcode_free(q);
        return LW_ETOOBIG;
    }
    size_t side = (size_t)modules * (size_t)scale;
    uint8_t *px = lw_malloc(side * side);
    if (px == NULL) {
        QRcode_free(q);
        return LW_ENOMEM;
    }
    for (size_t y = 0; y < side; y++)
        for (size_t x = 0; x < side; x++)
            px[y * side + x] =
                qr_dark(q, (int)(x / (size_t)scale) - QR_QUIET, (int)(y / (size_t)scale) - QR_QUIET) ? 0 : 255;
    QRcode_free(q);

    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)side;
    img.height = (png_uint_32)side;
    img.format = PNG_FORMAT_GRAY;
    /* libpng removes a partly written file itself on failure. */
    int ok = png_image_write_to_file(&img, path, 0, px, (png_int_32)side, NULL);
    png_image_free(&img);
    lw_free(px);
    return ok ? LW_OK : LW_EIO;
}

char *lw_qr_terminal(const char *text)
{
    QRcode *q = qr_encode(text);
    if (q == NULL)
        return NULL;
    /* Terminals mostly draw light glyphs on a dark background, so the light
     * modules are the ones printed: that shows dark modules on a light field. */
    int lo = -QR_TERM_QUIET, hi = q->width + QR_TERM_QUIET; /* [lo, hi) in both axes */
    lw_buf b;
    lw_buf_init(&b, QR_TERM_MAX);
    int rc = LW_OK;
    for (int y = lo; rc == LW_OK && y < hi; y += 2) {
        for (int x = lo; rc == LW_OK && x < hi; x++) {
            int top = !qr_dark(q, x, y);
            int bottom = y + 1 < hi && !qr_dark(q, x, y + 1); /* past the end: background */
            const char *c = top && bottom ? "\u2588" : top ? "\u2580" : bottom ? "\u2584" : " ";
            rc = lw_buf_append(&b, c, strlen(c));
        }
        if (rc == LW_OK)
            rc = lw_buf_append(&b, "\n", 1);
    }
    QRcode_free(q);
    if (rc != LW_OK) {
        lw_buf_free(&b);
        return NULL;
    }
    return buf_take(&b);
}

/* Runs zbar over an 8-bit grayscale image; *out gets the first QR code's text. */
static int qr_scan(const uint8_t *gray, unsigned w, unsigned h, char **out)
{
    int rc = LW_ENOTFOUND;
    zbar_image_scanner_t *sc = zbar_image_scanner_create();
    zbar_image_t *zi = zbar_image_create();
    if (sc == NULL || zi == NULL) {
        rc = LW_ENOMEM;
        goto done;
    }
    zbar_image_scanner_set_config(sc, 0, ZBAR_CFG_ENABLE, 0);
    zbar_image_scanner_set_config(sc, ZBAR_QRCODE, ZBAR_CFG_ENABLE, 1);
    /* Raw bytes: zbar would otherwise guess a charset and transcode. */
    zbar_image_scanner_set_config(sc, ZBAR_QRCODE, ZBAR_CFG_BINARY, 1);
    zbar_image_set_format(zi, zbar_fourcc('Y', '8', '0', '0'));
    zbar_image_set_size(zi, w, h);
    zbar_image_set_data(zi, gray, (unsigned long)w * h, NULL);
    int n = zbar_scan_image(sc, zi);
    if (n < 0) {
        rc = LW_EIO;
        goto done;
    }
    for (const zbar_symbol_t *s = zbar_image_first_symbol(zi); s != NULL; s = zbar_symbol_next(s)) {
        if (zbar_symbol_get_type(s) != ZBAR_QRCODE)
            continue;
        const char *data = zbar_symbol_get_data(s);
        unsigned len = zbar_symbol_get_data_length(s);
        if (data == NULL || memchr(data, 0, len) != NULL) {
            rc = LW_EINVAL; /* not text: nothing we could have made */
            continue;
        }
        char *t = lw_strndup(data, len);
        if (t == NULL) {
            rc = LW_ENOMEM;
            goto done;
        }
        *out = t;
        rc = LW_OK;
        break;
    }
done:
    if (zi != NULL)
        zbar_image_destroy(zi);
    if (sc != NULL)
        zbar_image_scanner_destroy(sc);
    return rc;
}

int lw_qr_png_decode(const char *path, char **out)
{
    if (path == NULL || out == NULL)
        return LW_EINVAL;
    *out = NULL;
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path))
        return LW_EIO;
    /* Refuse huge images before allocating for them. */
    if (img.width == 0 || img.height == 0 || img.width > QR_IMG_MAX || img.height > QR_IMG_MAX) {
        png_image_free(&img);
        return LW_ETOOBIG;
    }
    /* libpng converts palette, RGB(A), 16-bit and gray+alpha to 8-bit gray,
     * compositing transparency on white. */
    img.format = PNG_FORMAT_GRAY;
    size_t size = (size_t)img.width * img.height;
    uint8_t *gray = lw_malloc(size);
    if (gray == NULL) {
        png_image_free(&img);
        return LW_ENOMEM;
    }
    png_color white = {255, 255, 255};
    unsigned w = img.width, h = img.height;
    int rc;
    if (!png_image_finish_read(&img, &white, gray, (png_int_32)w, NULL))
        rc = LW_EIO;
    else
        rc = qr_scan(gray, w, h, out);
    png_image_free(&img);
    lw_free(gray);
    return rc;
}
