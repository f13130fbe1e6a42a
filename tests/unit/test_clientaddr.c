/* Client address selection: headers count only from trusted proxies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <h2o.h>

#include "clientaddr.h"
#include "lw.h"

/* The address of the one header p->header names (xff or fwd, the other must be NULL). */
static const char *pick(const lw_proxies *p, const char *peer, const char *xff, const char *fwd)
{
    static char out[LW_IP_MAX];
    lw_proxies q = *p;
    q.header = fwd ? LW_PROXY_HEADER_FORWARDED : LW_PROXY_HEADER_XFF;
    const char *h = fwd ? fwd : xff;
    assert_true(!(xff && fwd));
    lw_clientaddr_pick(&q, peer, h, h ? strlen(h) : 0, out);
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
    assert_string_equal(pick(&p, "127.0.0.1", NULL, "for=192.0.2.60;proto=http;by=203.0.113.43"),
                        "192.0.2.60");
    assert_string_equal(pick(&p, "::1", NULL, "for=\"[2001:db8:cafe::17]:4711\""), "2001:db8:cafe::17");
    assert_string_equal(pick(&p, "127.0.0.1", NULL, "for=198.51.100.1, for=127.0.0.1"), "198.51.100.1");
    assert_string_equal(pick(&p, "127.0.0.1", NULL, "For=\"198.51.100.2\""), "198.51.100.2");
    /* "unknown" or obfuscated identifiers give nothing: the peer stays. */
    assert_string_equal(pick(&p, "127.0.0.1", NULL, "for=unknown"), "127.0.0.1");
}

/* IPv4 is formatted by hand (not inet_ntop): every octet width, both ends. */
static void test_ipv4_formatting(void **state)
{
    (void)state;
    lw_proxies none = {0};
    const char *cases[] = {"0.0.0.0",     "255.255.255.255", "1.22.133.4", "10.0.0.1",   "100.64.9.99",
                           "192.0.2.200", "127.0.0.1",       "8.8.8.8",    "203.0.113.5"};
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

/* A request as h2o hands it to us, from a peer on loopback (our proxy). */
typedef struct fake {
    h2o_req_t req;
    h2o_conn_t conn;
} fake;

static socklen_t loopback_peer(h2o_conn_t *conn, struct sockaddr *sa)
{
    (void)conn;
    struct sockaddr_in *in = (struct sockaddr_in *)sa;
    memset(in, 0, sizeof *in);
    in->sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &in->sin_addr);
    return sizeof *in;
}

static const h2o_conn_callbacks_t fake_callbacks = {.get_peername = loopback_peer};

static void fake_init(fake *f)
{
    memset(f, 0, sizeof *f);
    h2o_mem_init_pool(&f->req.pool);
    f->conn.callbacks = &fake_callbacks;
    f->req.conn = &f->conn;
}

static void fake_header(fake *f, const char *name, const char *value)
{
    h2o_add_header_by_str(&f->req.pool, &f->req.headers, name, strlen(name), 1, NULL, value, strlen(value));
}

static const char *from_request(const lw_proxies *p, fake *f)
{
    static char out[LW_IP_MAX];
    lw_clientaddr(p, &f->req, out);
    h2o_mem_clear_pool(&f->req.pool);
    return out;
}

/* Behind nginx, which appends to X-Forwarded-For and passes Forwarded on as
 * the client wrote it: only the configured header counts (--proxy-header). */
static void test_only_the_configured_header(void **state)
{
    (void)state;
    lw_proxies p;
    assert_int_equal(lw_proxies_parse(&p, "127.0.0.1", NULL), LW_OK);
    assert_int_equal(p.header, LW_PROXY_HEADER_XFF); /* the default */
    fake f;
    fake_init(&f);
    fake_header(&f, "forwarded", "for=6.6.6.6");
    fake_header(&f, "x-forwarded-for", "198.51.100.20");
    assert_string_equal(from_request(&p, &f), "198.51.100.20");
    /* A proxy that writes Forwarded: a client's X-Forwarded-For is its own invention. */
    p.header = LW_PROXY_HEADER_FORWARDED;
    fake_init(&f);
    fake_header(&f, "x-forwarded-for", "6.6.6.6");
    fake_header(&f, "forwarded", "for=198.51.100.3;proto=https");
    assert_string_equal(from_request(&p, &f), "198.51.100.3");
    /* The configured header absent: the other one is still not read. */
    fake_init(&f);
    fake_header(&f, "x-forwarded-for", "6.6.6.6");
    assert_string_equal(from_request(&p, &f), "127.0.0.1");
}

/* "1.2.3.4, 1.2.3.4, …" of at least len bytes, as a client may write it. */
static char *padding(size_t len)
{
    char *s = malloc(len + 16);
    assert_non_null(s);
    size_t n = 0;
    while (n < len)
        n += (size_t)snprintf(s + n, 16, "%s1.2.3.4", n ? ", " : "");
    return s;
}

/* A chain longer than we read keeps its right-most hops: the ones our proxy
 * appended. The left part is the client's and is what gets cut. */
static void test_long_chain_keeps_the_right(void **state)
{
    (void)state;
    lw_proxies p;
    assert_int_equal(lw_proxies_parse(&p, "127.0.0.1,10.0.0.0/8", NULL), LW_OK);
    char *pad = padding(3 * LW_FORWARDED_MAX);
    size_t big = strlen(pad) + 64;
    char *line = malloc(big);
    assert_non_null(line);
    /* One line: nginx appends the address it saw to what the client sent. */
    snprintf(line, big, "%s, 198.51.100.20, 10.0.0.7", pad);
    fake f;
    fake_init(&f);
    fake_header(&f, "x-forwarded-for", line);
    assert_string_equal(from_request(&p, &f), "198.51.100.20");
    /* Several lines: the client's long one first, the proxy's own last. */
    fake_init(&f);
    fake_header(&f, "x-forwarded-for", pad);
    fake_header(&f, "x-forwarded-for", "198.51.100.21");
    assert_string_equal(from_request(&p, &f), "198.51.100.21");
    /* The same through Forwarded. */
    p.header = LW_PROXY_HEADER_FORWARDED;
    fake_init(&f);
    fake_header(&f, "forwarded", pad);
    fake_header(&f, "forwarded", "for=198.51.100.22;proto=https");
    assert_string_equal(from_request(&p, &f), "198.51.100.22");
    free(line);
    free(pad);
}

/* The join itself: fits as is; cut at a hop boundary, never inside one. */
static void test_join(void **state)
{
    (void)state;
    char buf[16];
    const char *lines[] = {"1.1.1.1", "22.22.22.22"};
    size_t lens[] = {7, 11};
    /* 7 + 2 + 11 = 20 bytes do not fit in 15: "1.1.1.1" goes whole. */
    assert_int_equal(lw_clientaddr_join(lines, lens, 2, buf, sizeof buf), 11);
    assert_string_equal(buf, "22.22.22.22");
    char wide[32];
    assert_int_equal(lw_clientaddr_join(lines, lens, 2, wide, sizeof wide), 20);
    assert_string_equal(wide, "1.1.1.1, 22.22.22.22");
    /* The cut falls just after ", ": the next hop is whole and kept. */
    const char *l2[] = {"9.9.9.9, 3.3.3.3"};
    size_t n2[] = {16};
    char nine[9];
    assert_int_equal(lw_clientaddr_join(l2, n2, 1, nine, sizeof nine), 7);
    assert_string_equal(nine, "3.3.3.3");
    /* Inside a hop: "11.1.1.1" cut to "1.1.1.1" would be an address nobody sent. */
    const char *l3[] = {"11.1.1.1, 5.5.5.5"};
    size_t n3[] = {17};
    char sixteen[17];
    assert_int_equal(lw_clientaddr_join(l3, n3, 1, sixteen, sizeof sixteen), 7);
    assert_string_equal(sixteen, "5.5.5.5");
    /* ...and a single hop longer than the buffer leaves nothing. */
    const char *l4[] = {"2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"};
    size_t n4[] = {strlen(l4[0])};
    assert_int_equal(lw_clientaddr_join(l4, n4, 1, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
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
        cmocka_unit_test(test_only_the_configured_header),
        cmocka_unit_test(test_long_chain_keeps_the_right),
        cmocka_unit_test(test_join),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
