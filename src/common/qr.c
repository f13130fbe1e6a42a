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

#define QR_TEXT_MAX 2048 /* longer than any payload we make; QR M tops out near 2331 bytes */
#define QR_QUIET 4       /* quiet zone of SVG and PNG, in modules */
#define QR_TERM_QUIET 2  /* quiet zone of terminal output */
#define QR_IMG_MAX 4096  /* largest PNG side we write or decode, in pixels */
#define QR_SCALE_MAX 64
#define QR_SVG_MAX (1024 * 1024) /* worst case for version 40 is about 400 KB */
#define QR_TERM_MAX (256 * 1024)

/* libqrencode with a mask chosen by the caller: exported by the library
 * (Debian's 4.1.1 build) but not declared in qrencode.h. Weak, so that a
 * build of the library without it still links, and we then let
 * QRcode_encodeString choose the mask as before. */
extern QRcode *QRcode_encodeMask(QRinput *input, int mask) __attribute__((weak));

/* ---- mask choice ------------------------------------------------------------
 *
 * libqrencode chooses the mask (ISO/IEC 18004 §7.8.2) by drawing the symbol
 * eight times and scoring each drawing with byte-wise run scans: 1.9 M
 * instructions per code, a quarter of all the work of a link. Decoders read
 * any mask; the choice only keeps a code easy to scan (no big blocks, no
 * look-alike finder patterns). So we let it draw the symbol once with mask 0,
 * take that mask off the data modules, and score the eight masks ourselves,
 * with the standard's rules, a row (or column) of up to 64 modules per
 * 64-bit word: versions 1-11, every payload we make. Larger symbols keep
 * libqrencode's own choice. */

#define QR_FAST_MAX 64
#define QR_EC_M 0 /* error correction level M in the format information */

/* Set bits of v: the instruction where the build targets it, else SWAR
 * (libgcc's out-of-line popcount was a third of the scoring). */
static inline long popcount64(uint64_t v)
{
#ifdef __POPCNT__
    return __builtin_popcountll(v);
#else
    v = v - ((v >> 1) & 0x5555555555555555ull);
    v = (v & 0x3333333333333333ull) + ((v >> 2) & 0x3333333333333333ull);
    v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (long)((v * 0x0101010101010101ull) >> 56);
#endif
}

/* Whether mask k inverts the module at row y, column x (§7.8.2, table 10). */
static int mask_bit(int k, int y, int x)
{
    switch (k) {
    case 0:
        return (y + x) % 2 == 0;
    case 1:
        return y % 2 == 0;
    case 2:
        return x % 3 == 0;
    case 3:
        return (y + x) % 3 == 0;
    case 4:
        return (y / 2 + x / 3) % 2 == 0;
    case 5:
        return (y * x) % 2 + (y * x) % 3 == 0;
    case 6:
        return ((y * x) % 2 + (y * x) % 3) % 2 == 0;
    default:
        return ((y * x) % 3 + (y + x) % 2) % 2 == 0;
    }
}

/* The 15 format bits of level M with mask k (BCH(15,5), masked with 0x5412). */
static unsigned format_bits(int k)
{
    unsigned data = (unsigned)(QR_EC_M << 3 | k), rem = data;
    for (int i = 0; i < 10; i++)
        rem = (rem << 1) ^ ((rem >> 9) * 0x537u);
    return ((data << 10) | (rem & 0x3ffu)) ^ 0x5412u;
}

/* Sets module (row y, column x) of the bit rows to v. */
static void set_bit(uint64_t *rows, int y, int x, unsigned v)
{
    rows[y] = (rows[y] & ~(1ull << x)) | ((uint64_t)(v & 1) << x);
}

/* Both copies of the format information (§7.9.1, figure 25). */
static void put_format(uint64_t *rows, int w, int k)
{
    unsigned f = format_bits(k);
    for (int i = 0; i <= 5; i++)
        set_bit(rows, i, 8, f >> i);
    set_bit(rows, 7, 8, f >> 6);
    set_bit(rows, 8, 8, f >> 7);
    set_bit(rows, 8, 7, f >> 8);
    for (int i = 9; i < 15; i++)
        set_bit(rows, 8, 14 - i, f >> i);
    for (int i = 0; i < 8; i++)
        set_bit(rows, 8, w - 1 - i, f >> i);
    for (int i = 8; i < 15; i++)
        set_bit(rows, w - 15 + i, 8, f >> i);
}

/* Rule 1 (runs) and rule 3 (finder-like patterns) of one line of w modules,
 * bit i = module i, the modules outside the symbol counting as light. */
static long line_penalty(uint64_t line, int w)
{
    uint64_t all = w == 64 ? ~0ull : (1ull << w) - 1;
    long p = 0;
    /* Rule 1: a run of n >= 5 same-coloured modules scores n - 2. Bit i of e:
     * module i equals module i + 1, so such a run is a run of n - 1 >= 4 set
     * bits in e; `cover` keeps exactly those runs. */
    uint64_t e = ~(line ^ (line >> 1)) & (all >> 1);
    uint64_t f = e & (e >> 1) & (e >> 2) & (e >> 3);
    uint64_t cover = f | (f << 1) | (f << 2) | (f << 3);
    p += popcount64(cover) - popcount64(cover & ~(cover << 1));
    /* Rule 3: dark-light-dark-dark-dark-light-dark starting at module c
     * (bit c of core), with four light modules before it or after it: 40
     * each (light on both sides counts twice). */
    uint64_t core =
        line & ~(line >> 1) & (line >> 2) & (line >> 3) & (line >> 4) & ~(line >> 5) & (line >> 6);
    core &= all >> 6;
    if (core) {
        uint64_t light = ~line; /* bits past w: light */
        uint64_t before = ((light << 1) | 1) & ((light << 2) | 3) & ((light << 3) | 7) & ((light << 4) | 15);
        uint64_t after = ~0ull;
        for (int k = 7; k <= 10; k++)
            after &= (light >> k) | (~0ull << (64 - k));
        p += 40L * (popcount64(core & before) + popcount64(core & after));
    }
    return p;
}

/* Transposes a 64 x 64 bit matrix: bit x of row y goes to bit y of row x. */
static void transpose64(uint64_t a[64])
{
    uint64_t m = 0x00000000ffffffffull;
    for (int j = 32; j != 0; j >>= 1, m ^= m << j) {
        for (int k = 0; k < 64; k = ((k | j) + 1) & ~j) {
            uint64_t t = ((a[k] >> j) ^ a[k | j]) & m;
            a[k] ^= t << j;
            a[k | j] ^= t;
        }
    }
}

/* The standard's penalty score (rules 1-4) of a w x w symbol. */
static long symbol_penalty(const uint64_t *rows, int w)
{
    uint64_t cols[64];
    uint64_t all = w == 64 ? ~0ull : (1ull << w) - 1;
    long p = 0, dark = 0;
    for (int y = 0; y < w; y++) {
        p += line_penalty(rows[y], w);
        dark += popcount64(rows[y]);
        if (y + 1 < w) { /* rule 2: each 2 x 2 block of one colour scores 3 */
            uint64_t a = rows[y], b = rows[y + 1];
            uint64_t same = ~(a ^ b) & ~(a ^ (a >> 1)) & ~(b ^ (b >> 1)) & (all >> 1);
            p += 3L * popcount64(same);
        }
    }
    memcpy(cols, rows, (size_t)w * sizeof *rows);
    memset(cols + w, 0, (size_t)(64 - w) * sizeof *cols);
    transpose64(cols);
    for (int x = 0; x < w; x++)
        p += line_penalty(cols[x], w);
    /* Rule 4: 10 per whole 5 % that the dark share is away from 50 %. */
    long total = (long)w * w, dev = dark * 20 - total * 10;
    p += 10L * ((dev < 0 ? -dev : dev) / total);
    return p;
}

/* Mask k as bit rows, for row y (the masks repeat every 12 rows and 6 columns). */
static void mask_rows(uint64_t pat[8][12])
{
    for (int k = 0; k < 8; k++) {
        for (int y = 0; y < 12; y++) {
            uint64_t six = 0, row = 0;
            for (int x = 0; x < 6; x++)
                six |= (uint64_t)mask_bit(k, y, x) << x;
            for (int x = 0; x < 64; x += 6)
                row |= six << x;
            pat[k][y] = row;
        }
    }
}

/* q was drawn with mask 0: redraws it with the mask of lowest penalty.
 * Returns that mask. Data and error correction modules are the ones
 * libqrencode leaves bit 7 clear on (qrencode.h). */
static int choose_mask(QRcode *q)
{
    int w = q->width;
    uint64_t all = w == 64 ? ~0ull : (1ull << w) - 1;
    uint64_t pat[8][12], base[64], data[64], rows[64], best_rows[64];
    mask_rows(pat);
    for (int y = 0; y < w; y++) {
        const unsigned char *m = q->data + (size_t)y * (size_t)w;
        uint64_t dark = 0, d = 0;
        for (int x = 0; x < w; x++) {
            dark |= (uint64_t)(m[x] & 1) << x;
            d |= (uint64_t) !(m[x] & 0x80) << x;
        }
        data[y] = d;
        base[y] = dark ^ (d & pat[0][y % 12] & all); /* mask 0 taken off */
    }
    long best = -1;
    int best_k = 0;
    for (int k = 0; k < 8; k++) {
        for (int y = 0; y < w; y++)
            rows[y] = base[y] ^ (data[y] & pat[k][y % 12] & all);
        put_format(rows, w, k);
        long p = symbol_penalty(rows, w);
        if (best < 0 || p < best) {
            best = p;
            best_k = k;
            memcpy(best_rows, rows, (size_t)w * sizeof *rows);
        }
    }
    for (int y = 0; y < w; y++) {
        unsigned char *m = q->data + (size_t)y * (size_t)w;
        for (int x = 0; x < w; x++)
            m[x] = (unsigned char)((m[x] & ~1u) | ((best_rows[y] >> x) & 1));
    }
    return best_k;
}

/* Encodes text (NUL-terminated, bounded) or returns NULL; *mask gets the
 * mask we chose, or -1 when libqrencode chose it. */
static QRcode *qr_encode_mask(const char *text, int *mask)
{
    *mask = -1;
    if (text == NULL)
        return NULL;
    size_t n = strnlen(text, QR_TEXT_MAX + 1);
    if (n == 0 || n > QR_TEXT_MAX)
        return NULL;
    if (QRcode_encodeMask != NULL) {
        QRinput *in = QRinput_new2(0, QR_ECLEVEL_M);
        QRcode *q = NULL;
        if (in != NULL && QRinput_append(in, QR_MODE_8, (int)n, (const unsigned char *)text) == 0)
            q = QRcode_encodeMask(in, 0);
        QRinput_free(in);
        if (q != NULL && q->width <= QR_FAST_MAX) {
            *mask = choose_mask(q);
            return q;
        }
        QRcode_free(q); /* larger than our fast path: libqrencode's own choice */
    }
    return QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
}

static QRcode *qr_encode(const char *text)
{
    int mask;
    return qr_encode_mask(text, &mask);
}

unsigned char *lw_qr_modules(const char *text, int *width, int *mask)
{
    QRcode *q = qr_encode_mask(text, mask);
    if (q == NULL)
        return NULL;
    size_t n = (size_t)q->width * (size_t)q->width;
    unsigned char *out = lw_malloc(n);
    if (out != NULL) {
        for (size_t i = 0; i < n; i++)
            out[i] = q->data[i] & 1;
        *width = q->width;
    }
    QRcode_free(q);
    return out;
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

/* "M<x> <y>h<run>v1h-<run>z" without printf (lw_fmt_i64): an SVG has
 * hundreds of runs, and formatting them was most of the cost of opening a
 * link request. */
static char *put_int(char *p, int v)
{
    return p + lw_fmt_i64(p, v);
}

#define RUN_MAX 26 /* "M<x> <y>h<run>v1h-<run>z" with 4-digit numbers */

/* Writes one run at p (RUN_MAX bytes free); returns the end. */
static char *put_run(char *p, int x, int y, int run)
{
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
    return p;
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
    /* One subpath per horizontal run of dark modules keeps the path short.
     * The runs are counted first, so the buffer is allocated once. */
    int w = q->width;
    size_t runs = 0;
    for (int y = 0; y < w; y++) {
        const unsigned char *row = q->data + (size_t)y * (size_t)w;
        for (int x = 0; x < w; x++)
            runs += (row[x] & 1) && (x == 0 || !(row[x - 1] & 1));
    }
    if (rc == LW_OK)
        rc = lw_buf_reserve(&b, runs * RUN_MAX + 16);
    if (rc == LW_OK) {
        char *p = b.data + b.len, *start = p; /* room for every run, reserved above */
        for (int y = 0; y < w; y++) {
            const unsigned char *row = q->data + (size_t)y * (size_t)w;
            for (int x = 0; x < w;) {
                if (!(row[x] & 1)) {
                    x++;
                    continue;
                }
                int run = 1;
                while (x + run < w && (row[x + run] & 1))
                    run++;
                p = put_run(p, x + QR_QUIET, y + QR_QUIET, run);
                x += run;
            }
        }
        b.len += (size_t)(p - start);
        b.data[b.len] = '\0';
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
                qr_dark(q, (int)(x / (size_t)scale) - QR_QUIET, (int)(y / (size_t)scale) - QR_QUIET) ? 0
                                                                                                     : 255;
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
