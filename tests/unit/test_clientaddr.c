/* Client address selection: headers count only from trusted proxies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "clientaddr.h"
#include "lw.h"

static const char *pick(const lw_proxies *p, const char *peer, const char *xff, const char *fwd)
{
    static char out[LW_IP_MAX];
    lw_clientaddr_pick(p, peer, xff, xff ? strlen(xff) : 0, fwd, fwd ? strlen(fwd) : 0, out);
    return out;
}

static void test_parse(void **state)
{
    lw_proxies p;
    const char *bad = NULL;
    assert_int_equal(lw_proxies_parse(&p, "127.0.0.1, 10.0.0.0/8,::1,fd00::/8", &bad), LW_OK);
    assert_int_equal(p.n, 4);
    assert_true(lw_proxies_contains(&p, "127.0.0.1"));
    assert_false(lw_proxies_contains(&p, "127.0.0.2"));
    assert_true(lw_proxies_contains(&p, "10.200.3.4"));
    assert_false(lw_proxies_contains(&p, "11.0.0.1"));
    assert_true(lw_proxies_contains(&p, "::1"));
    assert_true(lw_proxies_contains(&p, "fd12:3456::1"));
    assert_true(lw_proxies_contains(&p, "::ffff:10.1.1.1")); /* mapped v4 */
    assert_int_equal(lw_proxies_parse(&p, "", &bad), LW_OK);
    assert_int_equal(p.n, 0);
    assert_int_equal(lw_proxies_parse(&p, "10.0.0.0/33", &bad), LW_EINVAL);
    assert_string_equal(bad, "10.0.0.0/33");
    assert_int_equal(lw_proxies_parse(&p, "127.0.0.1,nonsense", &bad), LW_EINVAL);
    assert_string_equal(bad, "nonsense");
    assert_int_equal(lw_proxies_parse(&p, "1.2.3.4/", &bad), LW_EINVAL);
    /* Odd prefix lengths match bit by bit. */
    assert_int_equal(lw_proxies_parse(&p, "192.168.0.0/23", &bad), LW_OK);
    assert_true(lw_proxies_contains(&p, "192.168.1.255"));
    assert_false(lw_proxies_contains(&p, "192.168.2.0"));
}

static void test_untrusted_peer_headers_ignored(void **state)
{
    lw_proxies p;
    assert_int_equal(lw_proxies_parse(&p, "127.0.0.1", NULL), LW_OK);
    /* A client that is not our proxy cannot claim another address. */
    assert_string_equal(pick(&p, "198.51.100.7", "203.0.113.9", NULL), "198.51.100.7");
    assert_string_equal(pick(&p, "198.51.100.7", NULL, "for=203.0.113.9"), "198.51.100.7");
    /* With no trusted proxies at all, never. */
    lw_proxies none;
    lw_proxies_parse(&none, "", NULL);
    assert_string_equal(pick(&none, "127.0.0.1", "203.0.113.9", NULL), "127.0.0.1");
}

static void test_rightmost_untrusted(void **state)
{
    lw_proxies p;
    assert_int_equal(lw_proxies_parse(&p, "127.0.0.1,10.0.0.0/8", NULL), LW_OK);
    assert_string_equal(pick(&p, "127.0.0.1", "203.0.113.9", NULL), "203.0.113.9");
    /* A spoofed left part is ignored: the right-most untrusted hop is what our proxy saw. */
    assert_string_equal(pick(&p, "127.0.0.1", "1.2.3.4, 198.51.100.20, 10.1.1.1", NULL), "198.51.100.20");
    /* Every hop trusted: the left-most. */
    assert_string_equal(pick(&p, "127.0.0.1", "10.0.0.5, 10.0.0.6", NULL), "10.0.0.5");
    /* Garbage in the chain stops the walk at the last good hop. */
    assert_string_equal(pick(&p, "127.0.0.1", "garbage, 10.0.0.6", NULL), "10.0.0.6");
    assert_string_equal(pick(&p, "127.0.0.1", "garbage", NULL), "127.0.0.1");
    /* Ports and IPv6. */
    assert_string_equal(pick(&p, "127.0.0.1", "198.51.100.20:4711", NULL), "198.51.100.20");
    assert_string_equal(pick(&p, "127.0.0.1", "2001:db8::17", NULL), "2001:db8::17");
}

static void test_forwarded(void **state)
{
    lw_proxies p;
    assert_int_equal(lw_proxies_parse(&p, "127.0.0.1,::1", NULL), LW_OK);
    assert_string_equal(pick(&p, "127.0.0.1", NULL, "for=192.0.2.60;proto=http;by=203.0.113.43"), "192.0.2.60");
    assert_string_equal(pick(&p, "::1", NULL, "for=\"[2001:db8:cafe::17]:4711\""), "2001:db8:cafe::17");
    assert_string_equal(pick(&p, "127.0.0.1", NULL, "for=198.51.100.1, for=127.0.0.1"), "198.51.100.1");
    assert_string_equal(pick(&p, "127.0.0.1", NULL, "For=\"198.51.100.2\""), "198.51.100.2");
    /* Forwarded wins over X-Forwarded-For when both are present. */
    assert_string_equal(pick(&p, "127.0.0.1", "203.0.113.1", "for=198.51.100.3"), "198.51.100.3");
    /* "unknown" or obfuscated identifiers give nothing: the peer stays. */
    assert_string_equal(pick(&p, "127.0.0.1", NULL, "for=unknown"), "127.0.0.1");
}

/* IPv4 is formatted by hand (not inet_ntop): every octet width, both ends. */
static void test_ipv4_formatting(void **state)
{
    (void)state;
    lw_proxies none = {0};
    const char *cases[] = {"0.0.0.0", "255.255.255.255", "1.22.133.4", "10.0.0.1", "100.64.9.99",
                           "192.0.2.200", "127.0.0.1", "8.8.8.8", "203.0.113.5"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_string_equal(pick(&none, cases[i], NULL, NULL), cases[i]);
    assert_string_equal(pick(&none, "::ffff:198.51.100.7", NULL, NULL), "198.51.100.7");
    assert_string_equal(pick(&none, "2001:db8::1", NULL, NULL), "2001:db8::1");
}

static void test_mapped_and_bad_peer(void **state)
{
    lw_proxies p;
    lw_proxies_parse(&p, "", NULL);
    assert_string_equal(pick(&p, "::ffff:198.51.100.9", NULL, NULL), "198.51.100.9");
    assert_string_equal(pick(&p, "not an ip", NULL, NULL), "");
    assert_string_equal(pick(&p, NULL, NULL, NULL), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_untrusted_peer_headers_ignored),
        cmocka_unit_test(test_rightmost_untrusted),
        cmocka_unit_test(test_forwarded),
        cmocka_unit_test(test_mapped_and_bad_peer),
        cmocka_unit_test(test_ipv4_formatting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
