/* Unit tests for wsframe.c: RFC 6455 client-frame parsing and server-frame headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "wsframe.h"

static lw_wsf_result parse(const uint8_t *in, size_t len, size_t max, lw_wsf_header *h, uint16_t *code)
{
    memset(h, 0, sizeof *h);
    *code = 0;
    return lw_wsf_parse(in, len, max, h, code);
}

static void test_lengths_in_all_three_forms(void **state)
{
    (void)state;
    lw_wsf_header h;
    uint16_t code;
    const uint8_t small[] = {0x81, 0x85, 1, 2, 3, 4};
    assert_int_equal(parse(small, sizeof small, 4096, &h, &code), LW_WSF_OK);
    assert_true(h.fin);
    assert_int_equal(h.opcode, LW_WSF_TEXT);
    assert_int_equal(h.payload_len, 5);
    assert_int_equal(h.header_len, 6);
    assert_memory_equal(h.mask, small + 2, 4);

    const uint8_t mid[] = {0x02, 0xFE, 0x01, 0x00, 9, 9, 9, 9};
    assert_int_equal(parse(mid, sizeof mid, 4096, &h, &code), LW_WSF_OK);
    assert_false(h.fin);
    assert_int_equal(h.opcode, LW_WSF_BINARY);
    assert_int_equal(h.payload_len, 256);
    assert_int_equal(h.header_len, 8);

    const uint8_t big[] = {0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0x10, 0x00, 1, 1, 1, 1};
    assert_int_equal(parse(big, sizeof big, 4096, &h, &code), LW_WSF_OK);
    assert_int_equal(h.payload_len, 4096);
    assert_int_equal(h.header_len, 14);
}

static void test_incomplete_headers_wait(void **state)
{
    (void)state;
    lw_wsf_header h;
    uint16_t code;
    const uint8_t big[] = {0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0x00, 0x10, 1, 1, 1, 1};
    for (size_t n = 0; n < sizeof big; n++)
        assert_int_equal(parse(big, n, 4096, &h, &code), LW_WSF_NEED_MORE);
    assert_int_equal(parse(big, sizeof big, 4096, &h, &code), LW_WSF_OK);
}

static void test_violations_are_found_as_soon_as_visible(void **state)
{
    (void)state;
    lw_wsf_header h;
    uint16_t code;
    /* reserved bits, reserved opcodes, a fragmented control frame: the first byte shows it */
    const uint8_t rsv[] = {0xC1};
    assert_int_equal(parse(rsv, 1, 4096, &h, &code), LW_WSF_ERROR);
    assert_int_equal(code, LW_WSF_PROTOCOL_ERROR);
    for (uint8_t op = 3; op <= 0xF; op++) {
        if (op >= 8 && op <= 0xA)
            continue;
        const uint8_t b[] = {(uint8_t)(0x80 | op)};
        assert_int_equal(parse(b, 1, 4096, &h, &code), LW_WSF_ERROR);
    }
    const uint8_t frag_ping[] = {0x09};
    assert_int_equal(parse(frag_ping, 1, 4096, &h, &code), LW_WSF_ERROR);
    /* unmasked: the second byte shows it */
    const uint8_t unmasked[] = {0x81, 0x05};
    assert_int_equal(parse(unmasked, 2, 4096, &h, &code), LW_WSF_ERROR);
    assert_int_equal(code, LW_WSF_PROTOCOL_ERROR);
    /* a control frame longer than 125 */
    const uint8_t long_ping[] = {0x89, 0xFE, 0x00, 0x7E};
    assert_int_equal(parse(long_ping, sizeof long_ping, 4096, &h, &code), LW_WSF_ERROR);
    /* a 64-bit length with the top bit set */
    const uint8_t top[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(parse(top, sizeof top, 4096, &h, &code), LW_WSF_ERROR);
    assert_int_equal(code, LW_WSF_PROTOCOL_ERROR);
}

static void test_too_big_is_refused_before_the_mask(void **state)
{
    (void)state;
    lw_wsf_header h;
    uint16_t code;
    /* 4,097 announced: refused with only the length bytes in hand */
    const uint8_t b[] = {0x81, 0xFE, 0x10, 0x01};
    assert_int_equal(parse(b, sizeof b, 4096, &h, &code), LW_WSF_ERROR);
    assert_int_equal(code, LW_WSF_TOO_BIG);
    const uint8_t at[] = {0x81, 0xFE, 0x10, 0x00};
    assert_int_equal(parse(at, sizeof at, 4096, &h, &code), LW_WSF_NEED_MORE);
    const uint8_t huge[] = {0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    assert_int_equal(parse(huge, sizeof huge, 4096, &h, &code), LW_WSF_ERROR);
    assert_int_equal(code, LW_WSF_TOO_BIG);
}

static void test_unmask_and_server_headers(void **state)
{
    (void)state;
    uint8_t p[] = {'H' ^ 1, 'e' ^ 2, 'l' ^ 3, 'l' ^ 4, 'o' ^ 1};
    const uint8_t key[4] = {1, 2, 3, 4};
    lw_wsf_unmask(p, sizeof p, key);
    assert_memory_equal(p, "Hello", 5);

    uint8_t out[LW_WSF_SERVER_HEADER_MAX];
    assert_int_equal(lw_wsf_header_write(out, LW_WSF_TEXT, 125), 2);
    assert_int_equal(out[0], 0x81);
    assert_int_equal(out[1], 125);
    assert_int_equal(lw_wsf_header_write(out, LW_WSF_CLOSE, 126), 4);
    assert_int_equal(out[0], 0x88);
    assert_int_equal(out[1], 126);
    assert_int_equal(out[2] << 8 | out[3], 126);
    assert_int_equal(lw_wsf_header_write(out, LW_WSF_BINARY, 70000), 10);
    assert_int_equal(out[1], 127);
    uint64_t n = 0;
    for (int i = 2; i < 10; i++)
        n = n << 8 | out[i];
    assert_int_equal(n, 70000);
}

static void test_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t n;
        bool ok;
    } cases[] = {
        {"", 0, true},
        {"plain ascii", 11, true},
        {"\xC3\xA9t\xC3\xA9", 6, true}, /* été */
        {"\xE2\x82\xAC", 3, true},      /* € */
        {"\xF0\x9F\x98\x80", 4, true},  /* U+1F600 */
        {"\xF4\x8F\xBF\xBF", 4, true},  /* U+10FFFF */
        {"\xC3", 1, false},             /* cut short */
        {"\xE2\x82", 2, false},         /* cut short */
        {"\x80", 1, false},             /* a continuation first */
        {"\xC0\xAF", 2, false},         /* overlong '/' */
        {"\xE0\x80\xAF", 3, false},     /* overlong */
        {"\xED\xA0\x80", 3, false},     /* a surrogate */
        {"\xF4\x90\x80\x80", 4, false}, /* past U+10FFFF */
        {"\xFF", 1, false},
        {"a\xC3(b", 4, false}, /* a bad continuation */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(lw_wsf_utf8_valid((const uint8_t *)cases[i].s, cases[i].n), cases[i].ok);
}

static void test_close_codes(void **state)
{
    (void)state;
    const uint16_t ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4000, 4999};
    const uint16_t bad[] = {0, 999, 1004, 1005, 1006, 1012, 1015, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        assert_true(lw_wsf_close_code_valid(ok[i]));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(lw_wsf_close_code_valid(bad[i]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lengths_in_all_three_forms),
        cmocka_unit_test(test_incomplete_headers_wait),
        cmocka_unit_test(test_violations_are_found_as_soon_as_visible),
        cmocka_unit_test(test_too_big_is_refused_before_the_mask),
        cmocka_unit_test(test_unmask_and_server_headers),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_close_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
