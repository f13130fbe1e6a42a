/*
 * fuzz_clientaddr.c — who the client is: the --trusted-proxies list
 * (lw_proxies_parse, lw_proxies_contains) and the X-Forwarded-For and
 * Forwarded headers a client or proxy writes (lw_clientaddr_pick, each under
 * its --proxy-header; lw_clientaddr_join of the two as header lines).
 *
 * Input: up to four fields separated by '\n':
 *   proxies '\n' peer '\n' x-forwarded-for '\n' forwarded
 * A missing field is absent (NULL). The header values are passed as the
 * (pointer, length) slices the API takes, in buffers of exactly that size
 * with no terminator, so a read past the length is caught.
 *
 * Oracles: the answer is "" or an address in canonical text (inet_ntop's,
 * IPv4-mapped folded to IPv4); from a peer that is not a trusted proxy the
 * answer is the peer itself, whatever the headers say (they are anyone's).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "clientaddr.h"
#include "fuzz.h"

static void fail(const char *what, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_clientaddr: %s for input '%.*s'\n", what, (int)size, (const char *)data);
    abort();
}

/* Canonical text of an address, or false if inet_pton does not take it. */
static bool canonical(const char *in, char out[LW_IP_MAX])
{
    uint8_t a[16];
    if (inet_pton(AF_INET, in, a) == 1)
        return inet_ntop(AF_INET, a, out, LW_IP_MAX) != NULL;
    if (inet_pton(AF_INET6, in, a) != 1)
        return false;
    if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)a))
        return inet_ntop(AF_INET, a + 12, out, LW_IP_MAX) != NULL;
    return inet_ntop(AF_INET6, a, out, LW_IP_MAX) != NULL;
}

/* A field in a heap block of its exact size (one more for a terminator, if
 * asked): what lies past it is the sanitizers' to guard. */
static char *dup_field(const uint8_t *p, size_t n, bool terminate)
{
    char *f = malloc(n + terminate + (n == 0));
    if (f) {
        memcpy(f, p, n);
        if (terminate)
            f[n] = '\0';
    }
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *field[4] = {NULL, NULL, NULL, NULL};
    size_t flen[4] = {0, 0, 0, 0};
    const uint8_t *p = data, *end = data + size;
    for (int i = 0; i < 4; i++) {
        const uint8_t *nl = i < 3 ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        flen[i] = (size_t)((nl ? nl : end) - p);
        /* proxies and peer are C strings; the headers are slices */
        if (!(field[i] = dup_field(p, flen[i], i < 2)))
            goto out;
        if (!nl)
            break;
        p = nl + 1;
    }

    lw_proxies proxies;
    const char *bad = NULL;
    if (lw_proxies_parse(&proxies, field[0] ? field[0] : "", &bad) != LW_OK) {
        if (!bad || bad < field[0] || bad > field[0] + flen[0])
            fail("lw_proxies_parse points outside its input", data, size);
        goto out;
    }
    if (proxies.n > LW_PROXIES_MAX)
        fail("more proxies than LW_PROXIES_MAX", data, size);
    if (!field[1])
        goto out;
    bool trusted = lw_proxies_contains(&proxies, field[1]);

    for (int h = 0; h < 2; h++) {
        char got[LW_IP_MAX], canon[LW_IP_MAX];
        memset(got, 'x', sizeof got);
        proxies.header = h ? LW_PROXY_HEADER_FORWARDED : LW_PROXY_HEADER_XFF;
        lw_clientaddr_pick(&proxies, field[1], field[2 + h], flen[2 + h], got);
        if (!memchr(got, '\0', sizeof got))
            fail("the answer is not terminated", data, size);
        if (got[0] && (!canonical(got, canon) || strcmp(canon, got) != 0))
            fail("the answer is not an address in canonical form", data, size);
        if (!trusted && canonical(field[1], canon) && strcmp(canon, got) != 0)
            fail("headers changed the address of an untrusted peer", data, size);
    }
    if (field[2] && field[3]) {
        /* A small buffer, so that the cut of an over-long chain is exercised:
         * what is kept is always a right part of the whole chain. */
        const char *lines[2] = {field[2], field[3]};
        char joined[24];
        memset(joined, 'x', sizeof joined);
        size_t n = lw_clientaddr_join(lines, &flen[2], 2, joined, sizeof joined);
        if (n >= sizeof joined || joined[n] != '\0')
            fail("the joined header overflows or is not terminated", data, size);
        size_t total = flen[2] + 2 + flen[3];
        char *whole = malloc(total + 1);
        if (whole) {
            memcpy(whole, field[2], flen[2]);
            memcpy(whole + flen[2], ", ", 2);
            memcpy(whole + flen[2] + 2, field[3], flen[3]);
            if (n > total || memcmp(joined, whole + total - n, n) != 0)
                fail("the joined header is not a right part of the chain", data, size);
            if (total < sizeof joined && n != total)
                fail("a chain that fits was cut", data, size);
            free(whole);
        }
    }
out:
    for (int i = 0; i < 4; i++)
        free(field[i]);
    return 0;
}
