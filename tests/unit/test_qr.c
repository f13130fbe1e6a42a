/* Unit tests for qr.c: encode to SVG/PNG/terminal, decode PNG with zbar. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <png.h>
#include <qrencode.h>

#include "crypto.h"
#include "lw.h"
#include "payload.h"
#include "qr.h"

static char tmpdir[] = "/tmp/lw-test-qr-XXXXXX";
static char payload[LW_PAYLOAD_MAX];

static int setup(void **state)
{
    (void)state;
    if (lw_crypto_init() != LW_OK || mkdtemp(tmpdir) == NULL)
        return -1;
    /* A real payload: about 200 characters, like the ones the server makes. */
    uint8_t pk[LW_PK_LEN], sk[LW_SK_LEN], ref[LW_ID_BYTES], fp[LW_FP_LEN];
    lw_sign_keypair(pk, sk);
    lw_random(ref, sizeof ref);
    lw_fingerprint(fp, pk);
    return lw_payload_make(payload, sizeof payload, "https://linkward.example.org", ref, fp, sk);
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(tmpdir);
}

static void tmp_path(char *dst, size_t cap, const char *name)
{
    int n = snprintf(dst, cap, "%s/%s", tmpdir, name);
    assert_true(n > 0 && (size_t)n < cap);
}

/* Writes an 8-bit grayscale side x side image. */
static void write_gray_png(const char *path, unsigned side, const uint8_t *px)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = side;
    img.height = side;
    img.format = PNG_FORMAT_GRAY;
    assert_true(png_image_write_to_file(&img, path, 0, px, 0, NULL));
}

static void test_svg(void **state)
{
    (void)state;
    char *svg = lw_qr_svg(payload);
    assert_non_null(svg);
    assert_true(strncmp(svg, "<svg", 4) == 0);
    assert_non_null(strstr(svg, "viewBox=\"0 0 "));
    assert_non_null(strstr(svg, "<path"));
    /* Scalable: the <svg> element itself has no fixed width or height. */
    size_t open_len = (size_t)(strchr(svg, '>') - svg);
    char *open_tag = lw_strndup(svg, open_len);
    assert_null(strstr(open_tag, "width"));
    assert_null(strstr(open_tag, "height"));
    lw_free(open_tag);
    assert_int_equal(strcmp(svg + strlen(svg) - 6, "</svg>"), 0);
    /* One path only. */
    const char *p1 = strstr(svg, "<path");
    assert_null(strstr(p1 + 1, "<path"));
    /* viewBox side = modules + 8 (quiet zone): a 200-byte payload at M is version 8..10 (49..57 modules). */
    int side = (int)strtol(strstr(svg, "viewBox=\"0 0 ") + 13, NULL, 10);
    assert_true(side >= 21 + 8 && side <= 177 + 8);
    assert_int_equal((side - 8 - 21) % 4, 0);

    /* Render the path ("M<x> <y>h<run>v1h-<run>z" runs) and scan it back. */
    int scale = 4, px_side = side * scale;
    uint8_t *px = malloc((size_t)px_side * (size_t)px_side);
    memset(px, 255, (size_t)px_side * (size_t)px_side);
    const char *d = strstr(p1, " d=\"") + 4;
    while (*d == 'M') {
        char *end;
        long x = strtol(d + 1, &end, 10);
        assert_int_equal(*end, ' ');
        long y = strtol(end + 1, &end, 10);
        assert_int_equal(*end, 'h');
        long run = strtol(end + 1, &end, 10);
        assert_true(x >= 4 && y >= 4 && run >= 1 && x + run <= side - 4 && y < side - 4);
        char tail[32];
        int n = snprintf(tail, sizeof tail, "v1h-%ldz", run);
        assert_int_equal(strncmp(end, tail, (size_t)n), 0);
        d = end + n;
        for (long yy = y * scale; yy < (y + 1) * scale; yy++)
            memset(px + yy * px_side + x * scale, 0, (size_t)(run * scale));
    }
    assert_int_equal(*d, '"');
    char path[256];
    tmp_path(path, sizeof path, "svg.png");
    write_gray_png(path, (unsigned)px_side, px);
    free(px);
    char *text = NULL;
    assert_int_equal(lw_qr_png_decode(path, &text), LW_OK);
    assert_string_equal(text, payload);
    lw_free(text);
    unlink(path);
    lw_free(svg);

    assert_null(lw_qr_svg(NULL));
    assert_null(lw_qr_svg(""));
}

static void test_png_roundtrip(void **state)
{
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "qr.png");
    assert_true(strlen(payload) > 150);
    for (int scale = 2; scale <= 8; scale += 3) {
        assert_int_equal(lw_qr_png_write(payload, path, scale), LW_OK);
        char *text = NULL;
        assert_int_equal(lw_qr_png_decode(path, &text), LW_OK);
        assert_non_null(text);
        assert_string_equal(text, payload);
        lw_free(text);
    }
    /* Short text and text with characters outside QR alphanumeric mode. */
    static const char *texts[] = {"A", "hello, world", "https://x.example/?q=a&b=c#frag",
                                  "lowercase and UPPER 123"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        assert_int_equal(lw_qr_png_write(texts[i], path, 4), LW_OK);
        char *text = NULL;
        assert_int_equal(lw_qr_png_decode(path, &text), LW_OK);
        assert_string_equal(text, texts[i]);
        lw_free(text);
    }
    unlink(path);
}

/* libqrencode drawing with a given mask (see qr.c); weak, may be absent. */
extern QRcode *QRcode_encodeMask(QRinput *input, int mask) __attribute__((weak));

static int dark_at(const unsigned char *m, int w, int y, int x)
{
    return x >= 0 && y >= 0 && x < w && y < w && (m[y * w + x] & 1);
}

/* ISO/IEC 18004 §7.8.3 penalty, written the plain way (one module at a
 * time), to check the bit-parallel one in qr.c through its choices. */
static long plain_penalty(const unsigned char *m, int w)
{
    static const int core[7] = {1, 0, 1, 1, 1, 0, 1};
    long p = 0, dark = 0;
    for (int dir = 0; dir < 2; dir++) {
        for (int a = 0; a < w; a++) {
            int run = 0, prev = -1;
            for (int b = 0; b <= w; b++) {
                int v = b == w ? -1 : dir ? dark_at(m, w, b, a) : dark_at(m, w, a, b);
                if (v == prev) {
                    run++;
                    continue;
                }
                if (run >= 5)
                    p += 3 + run - 5;
                run = 1;
                prev = v;
            }
            for (int c = 0; c + 7 <= w; c++) {
                int ok = 1, before = 1, after = 1;
                for (int t = 0; t < 7; t++)
                    ok &= (dir ? dark_at(m, w, c + t, a) : dark_at(m, w, a, c + t)) == core[t];
                for (int t = 1; t <= 4; t++) {
                    before &= !(dir ? dark_at(m, w, c - t, a) : dark_at(m, w, a, c - t));
                    after &= !(dir ? dark_at(m, w, c + 6 + t, a) : dark_at(m, w, a, c + 6 + t));
                }
                p += ok ? 40 * (before + after) : 0;
            }
        }
    }
    for (int y = 0; y < w; y++) {
        for (int x = 0; x < w; x++) {
            int v = dark_at(m, w, y, x);
            dark += v;
            if (y + 1 < w && x + 1 < w && dark_at(m, w, y, x + 1) == v && dark_at(m, w, y + 1, x) == v &&
                dark_at(m, w, y + 1, x + 1) == v)
                p += 3;
        }
    }
    long total = (long)w * w, dev = dark * 20 - total * 10;
    return p + 10 * ((dev < 0 ? -dev : dev) / total);
}

/* The mask Linkward chooses is the standard's lowest-penalty one, its drawing
 * is exactly libqrencode's with that mask, and what it draws scans. */
static void test_mask_choice(void **state)
{
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "mask.png");
    uint8_t pk[LW_PK_LEN], sk[LW_SK_LEN], ref[LW_ID_BYTES], fp[LW_FP_LEN];
    lw_sign_keypair(pk, sk);
    int masks_seen = 0;
    for (int i = 0; i < 24; i++) {
        char text[LW_PAYLOAD_MAX];
        static const char *const origins[] = {"http://127.0.0.1:8080", "https://linkward.example.org",
                                              "https://a.b",
                                              "https://links.a-rather-long-company-name.example"};
        lw_random(ref, sizeof ref);
        lw_random(fp, sizeof fp);
        assert_int_equal(lw_payload_make(text, sizeof text, origins[i % 4], ref, fp, sk), LW_OK);
        int w = 0, mask = -2;
        unsigned char *mods = lw_qr_modules(text, &w, &mask);
        assert_non_null(mods);
        if (QRcode_encodeMask == NULL) { /* a libqrencode without it: its own choice */
            assert_int_equal(mask, -1);
            lw_free(mods);
            continue;
        }
        assert_true(mask >= 0 && mask < 8);
        masks_seen |= 1 << mask;
        long mine = plain_penalty(mods, w);
        for (int k = 0; k < 8; k++) {
            QRinput *in = QRinput_new2(0, QR_ECLEVEL_M);
            assert_int_equal(QRinput_append(in, QR_MODE_8, (int)strlen(text), (const unsigned char *)text),
                             0);
            QRcode *q = QRcode_encodeMask(in, k);
            QRinput_free(in);
            assert_non_null(q);
            assert_int_equal(q->width, w);
            long theirs = plain_penalty(q->data, w);
            if (k == mask) {
                for (int j = 0; j < w * w; j++)
                    assert_int_equal(q->data[j] & 1, mods[j]);
            } else {
                assert_true(mine < theirs || (mine == theirs && mask < k));
            }
            QRcode_free(q);
        }
        lw_free(mods);
        if (i < 6) {
            assert_int_equal(lw_qr_png_write(text, path, 3), LW_OK);
            char *back = NULL;
            assert_int_equal(lw_qr_png_decode(path, &back), LW_OK);
            assert_string_equal(back, text);
            lw_free(back);
        }
    }
    if (QRcode_encodeMask != NULL)
        assert_true(__builtin_popcount((unsigned)masks_seen) >= 3); /* it does choose */
    unlink(path);
}

static void test_png_write_rejects(void **state)
{
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "bad.png");
    assert_int_equal(lw_qr_png_write(payload, path, 0), LW_EINVAL);
    assert_int_equal(lw_qr_png_write(payload, path, -3), LW_EINVAL);
    assert_int_equal(lw_qr_png_write(payload, path, 1000), LW_EINVAL);
    assert_int_equal(lw_qr_png_write(NULL, path, 4), LW_EINVAL);
    assert_int_equal(lw_qr_png_write(payload, NULL, 4), LW_EINVAL);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(lw_qr_png_write(payload, "/nonexistent-dir/x.png", 4), LW_EIO);
    /* Text beyond what a QR code holds. */
    char *big = lw_malloc(4000);
    memset(big, 'a', 3999);
    big[3999] = '\0';
    assert_int_equal(lw_qr_png_write(big, path, 1), LW_EINVAL);
    assert_null(lw_qr_svg(big));
    assert_null(lw_qr_terminal(big));
    lw_free(big);
}

/* Writes a w x h PNG of the given libpng simplified format; pixels from fill(). */
static void write_png(const char *path, unsigned w, unsigned h, png_uint_32 format, uint8_t value)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = w;
    img.height = h;
    img.format = format;
    size_t size = PNG_IMAGE_SIZE(img);
    uint8_t *px = malloc(size);
    assert_non_null(px);
    memset(px, value, size);
    assert_true(png_image_write_to_file(&img, path, 0, px, 0, NULL));
    free(px);
}

static void test_png_no_qr(void **state)
{
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "blank.png");
    char *text = (char *)"sentinel";
    write_png(path, 200, 200, PNG_FORMAT_GRAY, 255);
    assert_int_equal(lw_qr_png_decode(path, &text), LW_ENOTFOUND);
    assert_null(text);
    write_png(path, 64, 32, PNG_FORMAT_RGBA, 128);
    assert_int_equal(lw_qr_png_decode(path, &text), LW_ENOTFOUND);
    write_png(path, 1, 1, PNG_FORMAT_GA, 0);
    assert_int_equal(lw_qr_png_decode(path, &text), LW_ENOTFOUND);
    unlink(path);
}

/* The decoder takes colour, alpha and 16-bit images: re-encode a QR PNG in
 * each format and decode it again. */
static void test_png_formats(void **state)
{
    (void)state;
    char src[256], dst[256];
    tmp_path(src, sizeof src, "src.png");
    tmp_path(dst, sizeof dst, "conv.png");
    assert_int_equal(lw_qr_png_write(payload, src, 3), LW_OK);
    static const png_uint_32 formats[] = {PNG_FORMAT_RGB,
                                          PNG_FORMAT_RGBA,
                                          PNG_FORMAT_GA,
                                          PNG_FORMAT_LINEAR_Y,
                                          PNG_FORMAT_LINEAR_RGB_ALPHA,
                                          PNG_FORMAT_RGB_COLORMAP};
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        png_image img;
        memset(&img, 0, sizeof img);
        img.version = PNG_IMAGE_VERSION;
        assert_true(png_image_begin_read_from_file(&img, src));
        img.format = formats[i];
        void *px = malloc(PNG_IMAGE_SIZE(img));
        uint8_t cmap[256 * 4];
        assert_true(
            png_image_finish_read(&img, NULL, px, 0, (img.format & PNG_FORMAT_FLAG_COLORMAP) ? cmap : NULL));
        assert_true(png_image_write_to_file(&img, dst, 0, px, 0,
                                            (img.format & PNG_FORMAT_FLAG_COLORMAP) ? cmap : NULL));
        free(px);
        char *text = NULL;
        assert_int_equal(lw_qr_png_decode(dst, &text), LW_OK);
        assert_string_equal(text, payload);
        lw_free(text);
    }
    unlink(src);
    unlink(dst);
}

static void test_png_decode_errors(void **state)
{
    (void)state;
    char path[256];
    char *text = NULL;
    assert_int_equal(lw_qr_png_decode("/nonexistent/x.png", &text), LW_EIO);
    tmp_path(path, sizeof path, "notpng.png");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("this is not a png file at all", f);
    fclose(f);
    assert_int_equal(lw_qr_png_decode(path, &text), LW_EIO);
    /* A truncated PNG. */
    assert_int_equal(lw_qr_png_write(payload, path, 4), LW_OK);
    assert_int_equal(truncate(path, 200), 0);
    assert_int_equal(lw_qr_png_decode(path, &text), LW_EIO);
    assert_null(text);
    /* Dimensions past the limit are refused before anything is allocated. */
    write_png(path, 4097, 1, PNG_FORMAT_GRAY, 255);
    assert_int_equal(lw_qr_png_decode(path, &text), LW_ETOOBIG);
    write_png(path, 1, 4097, PNG_FORMAT_GRAY, 255);
    assert_int_equal(lw_qr_png_decode(path, &text), LW_ETOOBIG);
    unlink(path);
}

static void test_terminal(void **state)
{
    (void)state;
    char *t = lw_qr_terminal(payload);
    assert_non_null(t);
    assert_true(strlen(t) > 100);
    /* Only the half blocks, full block, space and newline. */
    size_t lines = 0, width = 0, cur = 0;
    for (const char *p = t; *p;) {
        if (*p == '\n') {
            if (width == 0)
                width = cur;
            assert_int_equal(cur, width); /* a square, line by line */
            cur = 0;
            lines++;
            p++;
        } else if (*p == ' ') {
            cur++;
            p++;
        } else if (strncmp(p, "\u2580", 3) == 0 || strncmp(p, "\u2584", 3) == 0 ||
                   strncmp(p, "\u2588", 3) == 0) {
            cur++;
            p += 3;
        } else {
            fail_msg("unexpected byte 0x%02x", (unsigned char)*p);
        }
    }
    /* width = modules + 4 (quiet zone 2); two module rows per line. */
    assert_int_equal(lines, (width + 1) / 2);
    /* The first line is the quiet zone: all light. */
    for (size_t i = 0; i < width; i++)
        assert_int_equal(strncmp(t + 3 * i, "\u2588", 3), 0);

    /* Blocks are the light modules: turn the text back into an image and scan it. */
    int scale = 4;
    size_t side = width * (size_t)scale;
    uint8_t *px = malloc(side * side);
    memset(px, 255, side * side);
    size_t row = 0, col = 0;
    for (const char *p = t; *p;) {
        int top_light = 0, bottom_light = 0, adv = 3;
        if (*p == '\n') {
            row += 2;
            col = 0;
            p++;
            continue;
        }
        if (*p == ' ')
            adv = 1;
        else if (strncmp(p, "\u2580", 3) == 0)
            top_light = 1;
        else if (strncmp(p, "\u2584", 3) == 0)
            bottom_light = 1;
        else
            top_light = bottom_light = 1;
        for (int half = 0; half < 2; half++) {
            size_t my = row + (size_t)half;
            int light = half ? bottom_light : top_light;
            if (my >= width || light)
                continue;
            for (size_t yy = my * (size_t)scale; yy < (my + 1) * (size_t)scale; yy++)
                memset(px + yy * side + col * (size_t)scale, 0, (size_t)scale);
        }
        col++;
        p += adv;
    }
    char path[256];
    tmp_path(path, sizeof path, "term.png");
    write_gray_png(path, (unsigned)side, px);
    free(px);
    char *text = NULL;
    assert_int_equal(lw_qr_png_decode(path, &text), LW_OK);
    assert_string_equal(text, payload);
    lw_free(text);
    unlink(path);
    lw_free(t);
    assert_null(lw_qr_terminal(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_svg),
        cmocka_unit_test(test_png_roundtrip),
        cmocka_unit_test(test_mask_choice),
        cmocka_unit_test(test_png_write_rejects),
        cmocka_unit_test(test_png_no_qr),
        cmocka_unit_test(test_png_formats),
        cmocka_unit_test(test_png_decode_errors),
        cmocka_unit_test(test_terminal),
    };
    return cmocka_run_group_tests_name("qr", tests, setup, teardown);
}
